//! The POPIA audit trail and the compliance registers ([ADR 0008]).
//!
//! The trail is append-only and hash-chained: [`crate::CoreStore::append_audit`] gives
//! each record the next seq after the stored head and `hash = crypto::chain::link(prev_hash,
//! canonical bytes)` ([`canonical_bytes`]: one encoding, versioned, used by append and
//! verify alike), in one transaction that also moves the head. Several gateway processes
//! append to one PostgreSQL chain by locking its one-row head; the embedded store appends
//! through its single writer. [`crate::CoreStore::verify_audit`] streams the trail in
//! batches from seq 1 and names the first broken record. No API updates or deletes a
//! record; on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE of the trail.
//!
//! The registers: data-subject requests with their turnaround, retention runs, key
//! rotations and the breach register (POPIA s.22), for the Information Officer's report.
//!
//! This module never sees plaintext personal information (a record's `detail` holds what
//! the gateway sealed or digested, its texts are codes and an IP address) and never logs a
//! record.
//!
//! [ADR 0008]: ../../../docs/adr/0008-popia-vault-and-audit-trail.md

mod bytes;
mod canonical;
mod record;
mod registers;
mod store;

pub(crate) use bytes::{Decoder, Encoder, corrupt};
pub(crate) use canonical::{ChainCheck, chain, decode_canonical};
pub use canonical::{ENCODING_VERSION, canonical_bytes};
pub(crate) use record::check_batch;
pub use record::{
    AUDIT_APPEND_MAX, ActorKind, AuditRecord, AuditVerification, BIGINT_MAX, CODE_LEN_MAX,
    DETAIL_BYTES_MAX, NewAuditRecord, ORIGIN_LEN_MAX, Outcome, REQUEST_ID_LEN_MAX, valid_code,
    valid_origin, valid_request_id,
};
pub use registers::{
    Breach, CATEGORIES_MAX, CATEGORY_LEN_MAX, DESCRIPTION_BYTES_MAX, DSAR_STATS_SCAN_MAX, Dsar,
    DsarFilter, DsarKind, DsarStats, KEK_ID_LEN_MAX, KeyRotation, NewBreach, NewDsar, Notified,
    PAGE_MAX, RetentionRun, valid_category, valid_kek_id,
};
pub(crate) use registers::{
    COMPLETED_BEFORE_RECEIPT, NOTIFIED_BEFORE_DETECTION, check_completion, check_notification,
    page_limit,
};

/// Most records [`crate::CoreStore::verify_audit`] reads at a time (a larger batch is cut
/// to it; 0 counts as 1).
pub const VERIFY_BATCH_MAX: usize = PAGE_MAX;

/// `batch` within 1 and [`VERIFY_BATCH_MAX`].
pub(crate) fn verify_batch(batch: usize) -> usize {
    batch.clamp(1, VERIFY_BATCH_MAX)
}
