//! The audit trail's records, as the gateway hands them over and as stored, and the rules
//! both backends apply before anything is written.
//!
//! A record names who (actor kind and id, role), did what (a dotted action code), to whose
//! data (tenant, pseudonymous subject id), why (purpose), with what outcome, under which
//! request id and from where. Its `detail` is opaque bytes: the gateway puts digests and
//! sealed bytes there, never plaintext personal information. Every text field is a code of
//! a fixed alphabet or an IP address, so a record cannot carry free text. `Debug` shows
//! neither the origin address nor the detail bytes.

use std::fmt;
use std::net::IpAddr;

use crypto::chain::Hash;

use crate::error::StoreError;
use crate::ledger::TenantId;

/// Most records one [`crate::CoreStore::append_audit`] call appends (one transaction).
pub const AUDIT_APPEND_MAX: usize = 1000;
/// Most bytes of a record's `detail`.
pub const DETAIL_BYTES_MAX: usize = 4096;
/// Most characters of a code: an action, a role, a purpose, a refusal.
pub const CODE_LEN_MAX: usize = 64;
/// Most characters of a request id.
pub const REQUEST_ID_LEN_MAX: usize = 64;
/// Most characters of an origin (an IP address in its canonical text form).
pub const ORIGIN_LEN_MAX: usize = 45;
/// The largest id, time or count the stores accept (PostgreSQL's `bigint`).
pub const BIGINT_MAX: u64 = i64::MAX as u64;

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// An operator, by operator id.
    Operator,
    /// A tenant (a signed request), by tenant id.
    Tenant,
    /// Someone not authenticated (a sign-in attempt); no id.
    Anonymous,
    /// The gateway itself (a background job); no id.
    System,
}

impl ActorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ActorKind; 4] =
        [ActorKind::Operator, ActorKind::Tenant, ActorKind::Anonymous, ActorKind::System];

    /// The stable snake_case name (stored in PostgreSQL).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Tenant => "tenant",
            Self::Anonymous => "anonymous",
            Self::System => "system",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<ActorKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The byte of the canonical encoding.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Operator => 1,
            Self::Tenant => 2,
            Self::Anonymous => 3,
            Self::System => 4,
        }
    }

    /// The kind encoded as `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<ActorKind> {
        Self::ALL.into_iter().find(|kind| kind.to_byte() == byte)
    }

    /// Whether this kind of actor is named by an id (operators and tenants are, the
    /// anonymous and the system are not).
    pub fn has_id(self) -> bool {
        matches!(self, Self::Operator | Self::Tenant)
    }
}

/// Whether the action happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was refused; the reason is a code (see [`valid_code`]).
    Refused(String),
}

/// A record to append: everything but its place in the chain.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAuditRecord {
    /// When, in nanoseconds since the Unix epoch (at most [`BIGINT_MAX`]).
    pub at_ns: u64,
    /// Who acted.
    pub actor_kind: ActorKind,
    /// The operator's or tenant's id: present exactly when [`ActorKind::has_id`].
    pub actor_id: Option<u64>,
    /// The role the actor acted in (a code).
    pub role: Option<String>,
    /// What was done: 1 to 64 characters of `[a-z0-9_.]` (`pi.read`, `tenant.create`).
    pub action: String,
    /// The tenant whose data it was.
    pub tenant: Option<TenantId>,
    /// The data subject's pseudonymous id (never 0); only with a tenant.
    pub subject: Option<u128>,
    /// Why (a declared purpose's code).
    pub purpose: Option<String>,
    /// With what outcome.
    pub outcome: Outcome,
    /// The request's id: 1 to 64 printable ASCII characters.
    pub request_id: Option<String>,
    /// The client's IP address, in its canonical text form (`IpAddr`'s `Display`).
    pub origin: Option<String>,
    /// Opaque bytes (digests, sealed values), at most [`DETAIL_BYTES_MAX`]; never plaintext
    /// personal information.
    pub detail: Vec<u8>,
}

impl NewAuditRecord {
    /// Checks every field against the rules above (both backends call this first, and
    /// decoding a stored record checks it too).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        self.check_actor()?;
        check_code(&self.action, "audit action must be 1-64 characters of a-z, 0-9, '_' and '.'")?;
        self.check_whose()?;
        if let Outcome::Refused(code) = &self.outcome {
            check_code(code, "refusal code must be 1-64 characters of a-z, 0-9, '_' and '.'")?;
        }
        self.check_request()?;
        if self.detail.len() > DETAIL_BYTES_MAX {
            return Err(StoreError::Invalid("audit detail must be at most 4096 bytes"));
        }
        Ok(())
    }

    fn check_actor(&self) -> Result<(), StoreError> {
        if self.at_ns > BIGINT_MAX {
            return Err(StoreError::Invalid("audit time must be at most 2^63-1 ns"));
        }
        if self.actor_kind.has_id() != self.actor_id.is_some() {
            return Err(StoreError::Invalid(
                "an operator or tenant actor needs an id; an anonymous or system one has none",
            ));
        }
        if self.actor_id.is_some_and(|id| id > BIGINT_MAX) {
            return Err(StoreError::Invalid("actor id must be at most 2^63-1"));
        }
        match &self.role {
            Some(role) => check_code(role, "role must be 1-64 characters of a-z, 0-9, '_' and '.'"),
            None => Ok(()),
        }
    }

    fn check_whose(&self) -> Result<(), StoreError> {
        if self.tenant.is_some_and(|tenant| tenant > BIGINT_MAX) {
            return Err(StoreError::Invalid("tenant id must be at most 2^63-1"));
        }
        match self.subject {
            Some(0) => return Err(StoreError::Invalid("subject id must not be 0")),
            Some(_) if self.tenant.is_none() => {
                return Err(StoreError::Invalid("a record about a subject names its tenant"));
            }
            _ => {}
        }
        match &self.purpose {
            Some(purpose) => {
                check_code(purpose, "purpose must be 1-64 characters of a-z, 0-9, '_' and '.'")
            }
            None => Ok(()),
        }
    }

    fn check_request(&self) -> Result<(), StoreError> {
        if self.request_id.as_deref().is_some_and(|id| !valid_request_id(id)) {
            return Err(StoreError::Invalid("request id must be 1-64 printable ASCII characters"));
        }
        if self.origin.as_deref().is_some_and(|origin| !valid_origin(origin)) {
            return Err(StoreError::Invalid("origin must be an IP address in canonical form"));
        }
        Ok(())
    }
}

impl fmt::Debug for NewAuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAuditRecord")
            .field("at_ns", &self.at_ns)
            .field("actor_kind", &self.actor_kind)
            .field("actor_id", &self.actor_id)
            .field("role", &self.role)
            .field("action", &self.action)
            .field("tenant", &self.tenant)
            .field("subject", &self.subject)
            .field("purpose", &self.purpose)
            .field("outcome", &self.outcome)
            .field("request_id", &self.request_id)
            .field("origin", &self.origin.as_ref().map(|_| "[redacted]"))
            .field("detail_bytes", &self.detail.len())
            .finish()
    }
}

/// A stored record: its fields, its place in the chain and its links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position: 1 for the first record, then contiguous.
    pub seq: u64,
    /// What was recorded.
    pub entry: NewAuditRecord,
    /// The previous record's hash ([`crypto::chain::GENESIS`] for the first).
    pub prev_hash: Hash,
    /// `crypto::chain::link(prev_hash, canonical bytes)`.
    pub hash: Hash,
}

impl AuditRecord {
    /// The record's canonical bytes (see [`super::canonical_bytes`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        super::canonical_bytes(self.seq, &self.entry)
    }
}

/// What [`crate::CoreStore::verify_audit`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditVerification {
    /// Every record from seq 1 to the head is present, in order, and links and hashes
    /// correctly; the stored head is the last record.
    Intact {
        /// How many records were checked (the head's seq).
        records: u64,
        /// The last record's hash ([`crypto::chain::GENESIS`] for an empty trail).
        head: Hash,
    },
    /// The chain first breaks at `seq`: that record's hash does not match its contents
    /// ([`crypto::chain::Broken::Hash`]), or its link to the previous record is wrong or
    /// the record is missing ([`crypto::chain::Broken::Link`]; for a gap, `seq` is the
    /// missing one). The reason's index is `seq - 1`.
    Broken {
        /// The first record that is not right.
        seq: u64,
        /// Why.
        reason: crypto::chain::Broken,
    },
}

/// Codes (actions, roles, purposes, refusals): 1 to [`CODE_LEN_MAX`] characters of
/// `[a-z0-9_.]`.
pub fn valid_code(code: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.';
    (1..=CODE_LEN_MAX).contains(&code.len()) && code.bytes().all(allowed)
}

/// Request ids: 1 to [`REQUEST_ID_LEN_MAX`] printable ASCII characters, no spaces.
pub fn valid_request_id(id: &str) -> bool {
    (1..=REQUEST_ID_LEN_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Origins: an IP address written as `IpAddr`'s `Display` writes it (so one address has
/// one text), at most [`ORIGIN_LEN_MAX`] characters.
pub fn valid_origin(origin: &str) -> bool {
    origin.len() <= ORIGIN_LEN_MAX
        && origin.parse::<IpAddr>().is_ok_and(|ip| ip.to_string() == origin)
}

/// `Ok` when `code` is [`valid_code`], else [`StoreError::Invalid`] with `rule`.
pub(crate) fn check_code(code: &str, rule: &'static str) -> Result<(), StoreError> {
    if valid_code(code) { Ok(()) } else { Err(StoreError::Invalid(rule)) }
}

/// Refuses more than [`AUDIT_APPEND_MAX`] records, or any record breaking a rule.
pub(crate) fn check_batch(entries: &[NewAuditRecord]) -> Result<(), StoreError> {
    if entries.len() > AUDIT_APPEND_MAX {
        return Err(StoreError::Invalid("at most 1000 audit records per append"));
    }
    entries.iter().try_for_each(NewAuditRecord::check)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry() -> NewAuditRecord {
        NewAuditRecord {
            at_ns: 1_900_000_000_000_000_000,
            actor_kind: ActorKind::Operator,
            actor_id: Some(7),
            role: Some("information_officer".into()),
            action: "pi.read".into(),
            tenant: Some(3),
            subject: Some(0x0102_0304),
            purpose: Some("fraud_prevention".into()),
            outcome: Outcome::Success,
            request_id: Some("req_1".into()),
            origin: Some("192.0.2.1".into()),
            detail: vec![0xaa; 32],
        }
    }

    #[test]
    fn kinds_round_trip_by_name_and_byte() {
        for kind in ActorKind::ALL {
            assert_eq!(ActorKind::parse(kind.as_str()), Some(kind));
            assert_eq!(ActorKind::from_byte(kind.to_byte()), Some(kind));
        }
        assert_eq!((ActorKind::parse("root"), ActorKind::from_byte(0)), (None, None));
    }

    #[test]
    fn every_rule_is_enforced() {
        assert!(entry().check().is_ok());
        let broken: [fn(&mut NewAuditRecord); 17] = [
            |r| r.at_ns = BIGINT_MAX + 1,
            |r| r.actor_id = None,
            |r| r.actor_kind = ActorKind::System,
            |r| r.actor_id = Some(BIGINT_MAX + 1),
            |r| r.role = Some("Admin".into()),
            |r| r.action = String::new(),
            |r| r.action = "pi read".into(),
            |r| r.action = "a".repeat(CODE_LEN_MAX + 1),
            |r| r.tenant = None,
            |r| r.subject = Some(0),
            |r| r.tenant = Some(BIGINT_MAX + 1),
            |r| r.purpose = Some(String::new()),
            |r| r.outcome = Outcome::Refused("Bad Thing".into()),
            |r| r.request_id = Some("has space".into()),
            |r| r.origin = Some("::FFFF:192.0.2.1".into()),
            |r| r.origin = Some("example.com".into()),
            |r| r.detail = vec![0; DETAIL_BYTES_MAX + 1],
        ];
        for breaks in broken {
            let mut bad = entry();
            breaks(&mut bad);
            assert!(matches!(bad.check(), Err(StoreError::Invalid(_))), "{bad:?}");
        }
        let anonymous = NewAuditRecord {
            actor_kind: ActorKind::Anonymous,
            actor_id: None,
            tenant: None,
            subject: None,
            origin: Some("2001:db8::1".into()),
            detail: vec![0; DETAIL_BYTES_MAX],
            ..entry()
        };
        assert!(anonymous.check().is_ok());
        let too_many = vec![entry(); AUDIT_APPEND_MAX + 1];
        assert!(check_batch(&too_many).is_err() && check_batch(&too_many[1..]).is_ok());
    }

    #[test]
    fn debug_shows_neither_the_origin_nor_the_detail() {
        let text = format!("{:?}", entry());
        assert!(!text.contains("192.0.2.1") && !text.contains("170"), "{text}");
        assert!(text.contains("detail_bytes: 32"), "{text}");
    }
}
