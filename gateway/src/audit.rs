//! Audit records of administrative and security actions: operator sign-in and sign-out,
//! tenant and key management, operator management.
//!
//! Every such action builds one [`AuditRecord`] (who, in which role, did what, to what,
//! with what outcome, from where, under which request id) and hands it to [`record`].
//! Today `record` writes it as one JSON log line under the `audit` target;
//! the POPIA audit trail will make the same function append it to the hash-chained,
//! append-only trail, so callers do not change. A record never holds a secret, a password,
//! a TOTP code, a token or a username: actors and targets are ids.

use std::net::IpAddr;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An operator (by id), in the role of their session.
    Operator {
        /// The operator's id.
        id: u64,
        /// Their role.
        role: &'static str,
    },
    /// Someone not yet authenticated (a sign-in attempt).
    Anonymous,
}

/// Whether the action happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It was done.
    Success,
    /// It was refused; the reason is a fixed code.
    Refused(&'static str),
}

/// One audited action.
#[derive(Clone, Debug)]
pub struct AuditRecord<'a> {
    /// Who.
    pub actor: Actor,
    /// What, as a fixed dotted name (`tenant.create`, `key.revoke`, `operator.sign_in`).
    pub action: &'static str,
    /// To what: a tenant name, a key id, an operator id; `None` when there is none.
    pub target: Option<String>,
    /// With what outcome.
    pub outcome: AuditOutcome,
    /// The request's id.
    pub request_id: &'a str,
    /// The client's address (the load balancer's, behind one).
    pub origin: Option<IpAddr>,
}

/// Hands `record` to the audit trail (today: the `audit` log target).
pub fn record(record: &AuditRecord<'_>) {
    let (actor_kind, actor_id, role) = match &record.actor {
        Actor::Operator { id, role } => ("operator", Some(*id), Some(*role)),
        Actor::Anonymous => ("anonymous", None, None),
    };
    let (outcome, reason) = match record.outcome {
        AuditOutcome::Success => ("success", None),
        AuditOutcome::Refused(reason) => ("refused", Some(reason)),
    };
    tracing::info!(
        target: "audit",
        actor = actor_kind,
        actor_id,
        role,
        action = record.action,
        audit_target = record.target.as_deref(),
        outcome,
        reason,
        request_id = record.request_id,
        origin = record.origin.map(|ip| ip.to_string()),
        "audit"
    );
}
