//! The one canonical encoding of an audit record, the chaining of new records after the
//! head, and the check of a stored chain: append and verify call the same
//! [`canonical_bytes`], on both backends.
//!
//! Encoding version 1 (big-endian integers; an optional field is a tag byte, 0 absent or
//! 1 present, then the value; text and bytes are a 4-byte big-endian length then the
//! bytes):
//!
//! ```text
//! version     1      0x01
//! seq         8      u64
//! at_ns       8      u64
//! actor_kind  1      1 operator, 2 tenant, 3 anonymous, 4 system
//! actor_id    1+8?   optional u64
//! role        1+4+n? optional text
//! action      4+n    text
//! tenant      1+8?   optional u64
//! subject     1+16?  optional u128
//! purpose     1+4+n? optional text
//! outcome     1      1 success, 2 refused (then the refusal code: 4+n text)
//! request_id  1+4+n? optional text
//! origin      1+4+n? optional text
//! detail      4+n    bytes
//! ```
//!
//! The record's `seq` is part of its bytes, so a record cannot be renumbered or moved
//! without its own hash failing, and `hash = crypto::chain::link(prev_hash, bytes)`
//! links it to the one before. A new encoding gets a new version byte; stored records keep
//! the version they were hashed with. This module does no I/O.

use crypto::chain::{Broken, GENESIS, Hash, Verifier, link};

use super::bytes::{Decoder, Encoder};
use super::record::{
    ActorKind, AuditRecord, AuditVerification, BIGINT_MAX, CODE_LEN_MAX, DETAIL_BYTES_MAX,
    NewAuditRecord, ORIGIN_LEN_MAX, Outcome, REQUEST_ID_LEN_MAX,
};
use crate::error::StoreError;

/// The version byte [`canonical_bytes`] writes first.
pub const ENCODING_VERSION: u8 = 1;

const OUTCOME_SUCCESS: u8 = 1;
const OUTCOME_REFUSED: u8 = 2;

/// The canonical bytes of the record `entry` at `seq`: what its hash covers (see the
/// module doc for the layout). An exported record is verified by recomputing them.
pub fn canonical_bytes(seq: u64, entry: &NewAuditRecord) -> Vec<u8> {
    let mut w = Encoder::new(ENCODING_VERSION);
    w.u64(seq).u64(entry.at_ns).u8(entry.actor_kind.to_byte());
    w.optional_u64(entry.actor_id).optional_text(entry.role.as_deref()).text(&entry.action);
    w.optional_u64(entry.tenant).optional_u128(entry.subject);
    w.optional_text(entry.purpose.as_deref());
    match &entry.outcome {
        Outcome::Success => w.u8(OUTCOME_SUCCESS),
        Outcome::Refused(code) => w.u8(OUTCOME_REFUSED).text(code),
    };
    w.optional_text(entry.request_id.as_deref()).optional_text(entry.origin.as_deref());
    w.bytes(&entry.detail);
    w.finish()
}

/// The seq and record of canonical `bytes`, refusing anything [`canonical_bytes`] would
/// not have written (an unknown version or tag, trailing bytes, a field breaking a rule)
/// as [`StoreError::Corrupt`].
pub(crate) fn decode_canonical(bytes: &[u8]) -> Result<(u64, NewAuditRecord), StoreError> {
    let record = "audit";
    let mut r = Decoder::new(bytes, ENCODING_VERSION, record)?;
    let (seq, at_ns) = (r.u64()?, r.u64()?);
    let actor_kind = ActorKind::from_byte(r.u8()?).ok_or_else(|| corrupt("actor kind"))?;
    let actor_id = r.optional_u64()?;
    let role = r.optional_text(CODE_LEN_MAX)?;
    let action = r.text(CODE_LEN_MAX)?;
    let (tenant, subject) = (r.optional_u64()?, r.optional_u128()?);
    let purpose = r.optional_text(CODE_LEN_MAX)?;
    let outcome = match r.u8()? {
        OUTCOME_SUCCESS => Outcome::Success,
        OUTCOME_REFUSED => Outcome::Refused(r.text(CODE_LEN_MAX)?),
        _ => return Err(corrupt("outcome")),
    };
    let request_id = r.optional_text(REQUEST_ID_LEN_MAX)?;
    let origin = r.optional_text(ORIGIN_LEN_MAX)?;
    let detail = r.bytes(DETAIL_BYTES_MAX)?.to_vec();
    r.finish()?;
    let entry = NewAuditRecord {
        at_ns,
        actor_kind,
        actor_id,
        role,
        action,
        tenant,
        subject,
        purpose,
        outcome,
        request_id,
        origin,
        detail,
    };
    entry.check().map_err(|_| corrupt("field"))?;
    Ok((seq, entry))
}

fn corrupt(what: &str) -> StoreError {
    super::bytes::corrupt("audit", what)
}

/// `entries` as the records after `head` (its seq and hash; `(0, GENESIS)` for an empty
/// trail): contiguous seqs, each linked to the one before.
pub(crate) fn chain(
    head: (u64, Hash),
    entries: Vec<NewAuditRecord>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (mut seq, mut prev_hash) = head;
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        seq = seq
            .checked_add(1)
            .filter(|seq| *seq <= BIGINT_MAX)
            .ok_or_else(|| StoreError::Invariant("the audit trail has no seq left".into()))?;
        let hash = link(&prev_hash, &canonical_bytes(seq, &entry));
        records.push(AuditRecord { seq, entry, prev_hash, hash });
        prev_hash = hash;
    }
    Ok(records)
}

/// Checks a stored trail record by record from seq 1, in bounded memory: each record must
/// have the next seq, link to the one before and hash to its contents; at the end, the
/// stored head must be the last record.
pub(crate) struct ChainCheck {
    verifier: Verifier,
}

impl ChainCheck {
    /// A check expecting seq 1, linked to [`GENESIS`].
    pub(crate) fn new() -> Self {
        Self { verifier: Verifier::new(GENESIS) }
    }

    /// The seq of the last record checked (0 before any).
    pub(crate) fn last_seq(&self) -> u64 {
        self.verifier.checked()
    }

    /// Checks the next record; the verdict when the chain breaks at it.
    pub(crate) fn check(&mut self, record: &AuditRecord) -> Result<(), AuditVerification> {
        let expected = self.last_seq().saturating_add(1);
        if record.seq != expected {
            let reason = Broken::Link { index: self.last_seq() };
            return Err(AuditVerification::Broken { seq: expected, reason });
        }
        let bytes = record.canonical_bytes();
        self.verifier
            .check(&record.prev_hash, &record.hash, &bytes)
            .map_err(|reason| AuditVerification::Broken { seq: record.seq, reason })
    }

    /// The verdict once every record was checked, given the stored head (`(0, GENESIS)`
    /// when there is none): a head past the last record means records are missing at the
    /// end; a head before it, records appended outside the chain; a head at it with
    /// another hash, a last record rewritten.
    pub(crate) fn finish(&self, head: (u64, Hash)) -> AuditVerification {
        let (last_seq, last_hash) = (self.last_seq(), self.verifier.last());
        let (head_seq, head_hash) = head;
        let broken = |seq, reason| AuditVerification::Broken { seq, reason };
        if head_seq > last_seq {
            broken(last_seq + 1, Broken::Link { index: last_seq })
        } else if head_seq < last_seq {
            broken(head_seq + 1, Broken::Link { index: head_seq })
        } else if head_hash != last_hash {
            broken(last_seq.max(1), Broken::Hash { index: last_seq.saturating_sub(1) })
        } else {
            AuditVerification::Intact { records: last_seq, head: last_hash }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn fixed() -> NewAuditRecord {
        NewAuditRecord {
            at_ns: 1_700_000_000_000_000_000,
            actor_kind: ActorKind::Operator,
            actor_id: Some(7),
            role: Some("auditor".into()),
            action: "audit.verify".into(),
            tenant: Some(3),
            subject: Some(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            purpose: None,
            outcome: Outcome::Refused("denied".into()),
            request_id: Some("req_1".into()),
            origin: Some("192.0.2.1".into()),
            detail: vec![0xde, 0xad],
        }
    }

    /// The layout written out field by field, and the hashes from an independent
    /// implementation (Python's hashlib over the same bytes).
    #[test]
    fn a_known_answer() {
        let expected = [
            "01",                                  // version
            "0000000000000001",                    // seq 1
            "17979cfe362a0000",                    // at_ns
            "01",                                  // operator
            "01_0000000000000007",                 // actor id: present, 7
            "01_00000007_61756469746f72",          // role: present, "auditor"
            "0000000c_61756469742e766572696679",   // action "audit.verify"
            "01_0000000000000003",                 // tenant: present, 3
            "01_0102030405060708090a0b0c0d0e0f10", // subject: present
            "00",                                  // purpose: absent
            "02_00000006_64656e696564",            // refused, "denied"
            "01_00000005_7265715f31",              // request id: present, "req_1"
            "01_00000009_3139322e302e322e31",      // origin: present, "192.0.2.1"
            "00000002_dead",                       // detail
        ]
        .concat()
        .replace('_', "");
        let bytes = canonical_bytes(1, &fixed());
        assert_eq!(hex(&bytes), expected);
        let records = chain((0, GENESIS), vec![fixed(), fixed()]).unwrap();
        // python3 -c "import hashlib; print(hashlib.sha256(bytes(32) + bytes.fromhex(
        //     '<expected>')).hexdigest())", and again from that hash for seq 2.
        assert_eq!(
            hex(&records[0].hash),
            "f13aa47b5b299909f9878aab8230fea34c106be4df51ec2d58d41ee7c1ab0ad2"
        );
        assert_eq!(records[1].prev_hash, records[0].hash);
        assert_eq!(
            hex(&records[1].hash),
            "f246d8b9ac9e9a904afed8ae0dc6cfef182d278f3a051efd2cf341cabb2fde97"
        );
    }

    #[test]
    fn a_minimal_record_has_its_layout_too() {
        let minimal = NewAuditRecord {
            at_ns: 0,
            actor_kind: ActorKind::System,
            actor_id: None,
            role: None,
            action: "retention.run".into(),
            tenant: None,
            subject: None,
            purpose: None,
            outcome: Outcome::Success,
            request_id: None,
            origin: None,
            detail: Vec::new(),
        };
        let expected = [
            "01",                                  // version
            "00000000000000ff",                    // seq 255
            "0000000000000000",                    // at_ns
            "04",                                  // system
            "00",                                  // actor id: absent
            "00",                                  // role: absent
            "0000000d_726574656e74696f6e2e72756e", // action "retention.run"
            "00",                                  // tenant: absent
            "00",                                  // subject: absent
            "00",                                  // purpose: absent
            "01",                                  // success
            "00",                                  // request id: absent
            "00",                                  // origin: absent
            "00000000",                            // detail: empty
        ]
        .concat()
        .replace('_', "");
        assert_eq!(hex(&canonical_bytes(255, &minimal)), expected);
        assert_eq!(decode_canonical(&canonical_bytes(255, &minimal)).unwrap(), (255, minimal));
    }

    #[test]
    fn chained_records_check_and_every_break_is_located() {
        let entries = vec![fixed(); 4];
        let records = chain((0, GENESIS), entries).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let head = (4, records[3].hash);
        let run = |records: &[AuditRecord], head| {
            let mut check = ChainCheck::new();
            for record in records {
                if let Err(broken) = check.check(record) {
                    return broken;
                }
            }
            check.finish(head)
        };
        assert_eq!(run(&records, head), AuditVerification::Intact { records: 4, head: head.1 });
        assert_eq!(run(&[], (0, GENESIS)), AuditVerification::Intact { records: 0, head: GENESIS });
        let broken = |seq, reason| AuditVerification::Broken { seq, reason };

        let mut changed = records.clone();
        changed[1].entry.action = "pi.erase".into();
        assert_eq!(run(&changed, head), broken(2, Broken::Hash { index: 1 }));

        let gap = [&records[..2], &records[3..]].concat();
        assert_eq!(run(&gap, head), broken(3, Broken::Link { index: 2 }));

        let mut forged = records.clone();
        forged[1].entry.action = "pi.erase".into();
        forged[1].hash = link(&forged[1].prev_hash, &forged[1].canonical_bytes());
        assert_eq!(run(&forged, head), broken(3, Broken::Link { index: 2 }));

        let mut renumbered = records.clone();
        renumbered[3].seq = 5;
        assert_eq!(run(&renumbered, head), broken(4, Broken::Link { index: 3 }));

        assert_eq!(run(&records[..3], head), broken(4, Broken::Link { index: 3 }), "end cut");
        assert_eq!(run(&records, (3, records[2].hash)), broken(4, Broken::Link { index: 3 }));
        assert_eq!(run(&records, (4, [9; 32])), broken(4, Broken::Hash { index: 3 }));
    }

    #[test]
    fn corrupt_canonical_bytes_are_reported_not_panicked() {
        let bytes = canonical_bytes(1, &fixed());
        for cut in 0..bytes.len() {
            assert!(matches!(decode_canonical(&bytes[..cut]), Err(StoreError::Corrupt(_))));
        }
        let mut bad_kind = bytes.clone();
        bad_kind[17] = 9;
        assert!(decode_canonical(&bad_kind).is_err());
        let mut breaks_a_rule = fixed();
        breaks_a_rule.action = "Not A Code".into();
        assert!(decode_canonical(&canonical_bytes(1, &breaks_a_rule)).is_err());
    }

    fn code() -> impl Strategy<Value = String> {
        "[a-z0-9_.]{1,64}"
    }

    fn entries() -> impl Strategy<Value = NewAuditRecord> {
        let who = (
            0..=BIGINT_MAX,
            prop::sample::select(ActorKind::ALL.to_vec()),
            0..=BIGINT_MAX,
            prop::option::of(code()),
            code(),
        );
        let whose = (
            prop::option::of((0..=BIGINT_MAX, prop::option::of(1..=u128::MAX))),
            prop::option::of(code()),
            prop::option::of(code()),
        );
        let request = (
            prop::option::of("[!-~]{1,64}"),
            prop::option::of(any::<std::net::IpAddr>()),
            prop::collection::vec(any::<u8>(), 0..=64),
        );
        (who, whose, request).prop_map(|(who, whose, request)| {
            let (at_ns, actor_kind, id, role, action) = who;
            let (tenant_subject, purpose, refusal) = whose;
            let (request_id, origin, detail) = request;
            NewAuditRecord {
                at_ns,
                actor_kind,
                actor_id: actor_kind.has_id().then_some(id),
                role,
                action,
                tenant: tenant_subject.map(|(tenant, _)| tenant),
                subject: tenant_subject.and_then(|(_, subject)| subject),
                purpose,
                outcome: refusal.map_or(Outcome::Success, Outcome::Refused),
                request_id,
                origin: origin.map(|ip| ip.to_string()),
                detail,
            }
        })
    }

    proptest! {
        #[test]
        fn the_encoding_round_trips(seq in 1..=BIGINT_MAX, entry in entries()) {
            prop_assert!(entry.check().is_ok());
            let bytes = canonical_bytes(seq, &entry);
            prop_assert_eq!(decode_canonical(&bytes).unwrap(), (seq, entry));
        }
    }
}
