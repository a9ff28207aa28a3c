//! The slice of Protea's HTTP/JSON API the tester speaks: request bodies and the
//! answers it reads.
//!
//! These are client-side copies of the wire shapes in docs/openapi.yaml. This module
//! must never depend on a server crate; unknown response fields are ignored.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A new account.
#[derive(Debug, Clone, Serialize)]
pub struct NewAccount {
    /// Client-chosen id.
    pub id: Uuid,
    /// Ledger number.
    pub ledger: u32,
    /// Chart-of-accounts code.
    pub code: u16,
    /// Flag names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
}

/// A new transfer, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTransfer {
    /// Client-chosen id (the idempotency key).
    pub id: Uuid,
    /// Debit account; omitted for posts and voids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debit_account_id: Option<Uuid>,
    /// Credit account; omitted for posts and voids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_account_id: Option<Uuid>,
    /// Amount; omitted for a full post and for voids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// Ledger; omitted for posts and voids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<u32>,
    /// Code; omitted for posts and voids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Flag names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
    /// The pending transfer a post or void resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_id: Option<Uuid>,
}

/// The answer to a single-object create.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateResult {
    /// The ledger's result code.
    pub result: String,
}

/// The answer to an array create.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateResults {
    /// One item per event, in order.
    pub results: Vec<CreateResultItem>,
}

/// One event's result in an array answer.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateResultItem {
    /// Position in the request array.
    pub index: usize,
    /// The ledger's result code.
    pub result: String,
}

/// An account as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Account {
    /// Id.
    pub id: Uuid,
    /// Pending debits.
    pub debits_pending: u64,
    /// Posted debits.
    pub debits_posted: u64,
    /// Pending credits.
    pub credits_pending: u64,
    /// Posted credits.
    pub credits_posted: u64,
}

/// A transfer as read back (or as expected to read back).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Transfer {
    /// Id.
    pub id: Uuid,
    /// Debit account.
    pub debit_account_id: Uuid,
    /// Credit account.
    pub credit_account_id: Uuid,
    /// Amount moved (or reserved).
    pub amount: u64,
    /// Ledger.
    pub ledger: u32,
    /// Code.
    pub code: u16,
    /// Flag names.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The resolved pending transfer of a post or void.
    #[serde(default)]
    pub pending_id: Option<Uuid>,
}

/// Whether a result code means "this transfer is applied".
pub fn is_applied(result: &str) -> bool {
    result == "ok" || result == "exists"
}
