//! The embedded store's rows of the audit trail and the compliance registers, in the
//! big-endian layouts of `audit::bytes`, each starting with a layout byte (1).
//!
//! ```text
//! audit record   0x01, prev_hash (32), hash (32), the record's canonical bytes (to the end)
//! audit head     0x01, seq (8), hash (32)
//! dsar           0x01, tenant (8), subject (16), kind (1), received (8),
//!                completed (optional 8), outcome (optional text)
//! breach         0x01, detected (8), reported by (8), description (text), categories
//!                (count 4, then texts), subjects affected (8), tenant (optional 8),
//!                regulator notified (optional 8), subjects notified (optional 8)
//! retention run  0x01, started (8), finished (8), fields purged (8), subjects erased (8),
//!                outcome (text)
//! key rotation   0x01, at (8), KEK id (text), from version (4), to version (4),
//!                rewrapped (8), remaining (8)
//! ```
//!
//! Decoding checks the layout and the record's rules and reports a bad row as
//! [`StoreError::Corrupt`]; it never panics on stored bytes.

use crypto::chain::Hash;

use crate::audit::{
    AuditRecord, Breach, CATEGORIES_MAX, CATEGORY_LEN_MAX, CODE_LEN_MAX, DESCRIPTION_BYTES_MAX,
    Decoder, Dsar, DsarKind, Encoder, KEK_ID_LEN_MAX, KeyRotation, RetentionRun, corrupt,
    decode_canonical,
};
use crate::error::StoreError;

const LAYOUT_V1: u8 = 1;

/// An audit record's row (its seq is the table's key and inside the canonical bytes).
pub(crate) fn encode_record(record: &AuditRecord) -> Vec<u8> {
    let mut w = Encoder::new(LAYOUT_V1);
    w.put(&record.prev_hash).put(&record.hash).put(&record.canonical_bytes());
    w.finish()
}

/// Decodes an audit record's row; its seq is the one inside the canonical bytes.
pub(crate) fn decode_record(bytes: &[u8]) -> Result<AuditRecord, StoreError> {
    let mut r = Decoder::new(bytes, LAYOUT_V1, "audit row")?;
    let (prev_hash, hash) = (r.array::<32>()?, r.array::<32>()?);
    let (seq, entry) = decode_canonical(r.rest())?;
    Ok(AuditRecord { seq, entry, prev_hash, hash })
}

/// The head row: the last record's seq and hash.
pub(crate) fn encode_head(seq: u64, hash: &Hash) -> Vec<u8> {
    Encoder::new(LAYOUT_V1).u64(seq).put(hash).finish()
}

/// Decodes the head row.
pub(crate) fn decode_head(bytes: &[u8]) -> Result<(u64, Hash), StoreError> {
    let mut r = Decoder::new(bytes, LAYOUT_V1, "audit head")?;
    let head = (r.u64()?, r.array::<32>()?);
    r.finish()?;
    Ok(head)
}

/// A data-subject request's row (its id is the table's key).
pub(crate) fn encode_dsar(dsar: &Dsar) -> Vec<u8> {
    let mut w = Encoder::new(LAYOUT_V1);
    w.u64(dsar.tenant).u128(dsar.subject).u8(dsar.kind.to_byte()).u64(dsar.received_at_s);
    w.optional_u64(dsar.completed_at_s).optional_text(dsar.outcome.as_deref());
    w.finish()
}

/// Decodes request `id`'s row.
pub(crate) fn decode_dsar(id: u64, bytes: &[u8]) -> Result<Dsar, StoreError> {
    let record = "dsar";
    let mut r = Decoder::new(bytes, LAYOUT_V1, record)?;
    let (tenant, subject) = (r.u64()?, r.u128()?);
    let kind = DsarKind::from_byte(r.u8()?).ok_or_else(|| corrupt(record, "kind"))?;
    let received_at_s = r.u64()?;
    let completed_at_s = r.optional_u64()?;
    let outcome = r.optional_text(CODE_LEN_MAX)?;
    r.finish()?;
    let dsar = Dsar { id, tenant, subject, kind, received_at_s, completed_at_s, outcome };
    dsar.check().map_err(|_| corrupt(record, "field"))?;
    Ok(dsar)
}

/// A breach's row (its id is the table's key).
pub(crate) fn encode_breach(breach: &Breach) -> Vec<u8> {
    let mut w = Encoder::new(LAYOUT_V1);
    w.u64(breach.detected_at_s).u64(breach.reported_by).text(&breach.description);
    let count = u32::try_from(breach.categories.len()).expect("at most 32 categories");
    w.u32(count);
    for category in &breach.categories {
        w.text(category);
    }
    w.u64(breach.subjects_affected).optional_u64(breach.tenant);
    w.optional_u64(breach.regulator_notified_at_s).optional_u64(breach.subjects_notified_at_s);
    w.finish()
}

/// Decodes breach `id`'s row.
pub(crate) fn decode_breach(id: u64, bytes: &[u8]) -> Result<Breach, StoreError> {
    let record = "breach";
    let mut r = Decoder::new(bytes, LAYOUT_V1, record)?;
    let (detected_at_s, reported_by) = (r.u64()?, r.u64()?);
    let description = r.text(DESCRIPTION_BYTES_MAX)?;
    let count = usize::try_from(r.u32()?).map_err(|_| corrupt(record, "category count"))?;
    if count > CATEGORIES_MAX {
        return Err(corrupt(record, "category count"));
    }
    let categories = (0..count).map(|_| r.text(CATEGORY_LEN_MAX)).collect::<Result<Vec<_>, _>>()?;
    let (subjects_affected, tenant) = (r.u64()?, r.optional_u64()?);
    let regulator_notified_at_s = r.optional_u64()?;
    let subjects_notified_at_s = r.optional_u64()?;
    r.finish()?;
    let breach = Breach {
        id,
        detected_at_s,
        reported_by,
        description,
        categories,
        subjects_affected,
        tenant,
        regulator_notified_at_s,
        subjects_notified_at_s,
    };
    breach.check().map_err(|_| corrupt(record, "field"))?;
    Ok(breach)
}

/// A retention run's row.
pub(crate) fn encode_run(run: &RetentionRun) -> Vec<u8> {
    let mut w = Encoder::new(LAYOUT_V1);
    w.u64(run.started_at_s).u64(run.finished_at_s);
    w.u64(run.fields_purged).u64(run.subjects_erased).text(&run.outcome);
    w.finish()
}

/// Decodes a retention run's row.
pub(crate) fn decode_run(bytes: &[u8]) -> Result<RetentionRun, StoreError> {
    let record = "retention run";
    let mut r = Decoder::new(bytes, LAYOUT_V1, record)?;
    let run = RetentionRun {
        started_at_s: r.u64()?,
        finished_at_s: r.u64()?,
        fields_purged: r.u64()?,
        subjects_erased: r.u64()?,
        outcome: r.text(CODE_LEN_MAX)?,
    };
    r.finish()?;
    run.check().map_err(|_| corrupt(record, "field"))?;
    Ok(run)
}

/// A key rotation's row.
pub(crate) fn encode_rotation(rotation: &KeyRotation) -> Vec<u8> {
    let mut w = Encoder::new(LAYOUT_V1);
    w.u64(rotation.at_s).text(&rotation.kek_id);
    w.u32(rotation.from_version).u32(rotation.to_version);
    w.u64(rotation.rewrapped).u64(rotation.remaining);
    w.finish()
}

/// Decodes a key rotation's row.
pub(crate) fn decode_rotation(bytes: &[u8]) -> Result<KeyRotation, StoreError> {
    let record = "key rotation";
    let mut r = Decoder::new(bytes, LAYOUT_V1, record)?;
    let rotation = KeyRotation {
        at_s: r.u64()?,
        kek_id: r.text(KEK_ID_LEN_MAX)?,
        from_version: r.u32()?,
        to_version: r.u32()?,
        rewrapped: r.u64()?,
        remaining: r.u64()?,
    };
    r.finish()?;
    rotation.check().map_err(|_| corrupt(record, "field"))?;
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use crypto::chain::GENESIS;

    use super::*;
    use crate::audit::{ActorKind, NewAuditRecord, Outcome, chain};

    const T0: u64 = 1_900_000_000;

    fn record() -> AuditRecord {
        let entry = NewAuditRecord {
            at_ns: 5,
            actor_kind: ActorKind::Tenant,
            actor_id: Some(3),
            role: None,
            action: "subject.create".into(),
            tenant: Some(3),
            subject: Some(99),
            purpose: Some("kyc".into()),
            outcome: Outcome::Refused("consent_missing".into()),
            request_id: None,
            origin: Some("2001:db8::7".into()),
            detail: vec![1, 2, 3],
        };
        chain((0, GENESIS), vec![entry]).unwrap().remove(0)
    }

    fn breach() -> Breach {
        Breach {
            id: 4,
            detected_at_s: T0,
            reported_by: 2,
            description: "laptop stolen; disk encrypted".into(),
            categories: vec!["contact_details".into(), "bank_account".into()],
            subjects_affected: 1000,
            tenant: None,
            regulator_notified_at_s: Some(T0 + 3600),
            subjects_notified_at_s: None,
        }
    }

    #[test]
    fn rows_round_trip() {
        assert_eq!(decode_record(&encode_record(&record())).unwrap(), record());
        assert_eq!(decode_head(&encode_head(7, &[3; 32])).unwrap(), (7, [3; 32]));
        let dsar = Dsar {
            id: 9,
            tenant: 1,
            subject: u128::MAX,
            kind: DsarKind::Deletion,
            received_at_s: T0,
            completed_at_s: Some(T0 + 86_400),
            outcome: Some("erased".into()),
        };
        assert_eq!(decode_dsar(9, &encode_dsar(&dsar)).unwrap(), dsar);
        let open = Dsar { completed_at_s: None, outcome: None, ..dsar };
        assert_eq!(decode_dsar(9, &encode_dsar(&open)).unwrap(), open);
        assert_eq!(decode_breach(4, &encode_breach(&breach())).unwrap(), breach());
        let run = RetentionRun {
            started_at_s: T0,
            finished_at_s: T0 + 5,
            fields_purged: 12,
            subjects_erased: 1,
            outcome: "completed".into(),
        };
        assert_eq!(decode_run(&encode_run(&run)).unwrap(), run);
        let rotation = KeyRotation {
            at_s: T0,
            kek_id: "kek-1".into(),
            from_version: 1,
            to_version: 2,
            rewrapped: 500,
            remaining: 20,
        };
        assert_eq!(decode_rotation(&encode_rotation(&rotation)).unwrap(), rotation);
    }

    #[test]
    fn corrupt_rows_are_reported_not_panicked() {
        type Fails = fn(&[u8]) -> bool;
        let rows: [(Vec<u8>, Fails); 3] = [
            (encode_record(&record()), |b| decode_record(b).is_err()),
            (encode_breach(&breach()), |b| decode_breach(4, b).is_err()),
            (encode_head(1, &[0; 32]), |b| decode_head(b).is_err()),
        ];
        for (row, fails) in rows {
            for cut in 0..row.len() {
                assert!(fails(&row[..cut]), "cut at {cut}");
            }
        }
        let mut bad_kind = encode_dsar(&Dsar {
            id: 1,
            tenant: 1,
            subject: 1,
            kind: DsarKind::Access,
            received_at_s: T0,
            completed_at_s: None,
            outcome: None,
        });
        bad_kind[1 + 8 + 16] = 0;
        assert!(decode_dsar(1, &bad_kind).is_err());
        let mut early = breach();
        early.regulator_notified_at_s = Some(T0 - 1);
        assert!(decode_breach(4, &encode_breach(&early)).is_err(), "rules checked on read");
    }
}
