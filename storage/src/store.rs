//! One face for both backends, so the gateway has no `match` on the backend in its
//! handlers: [`Store`] is the process's (tenants, keys, readiness), [`CoreStore`] is one
//! core's (batches and reads; tenants and API keys, operators, and operator sessions for
//! a gateway without DynamoDB).
//!
//! It adds no rule and no cache of its own: every call goes to the backend (only
//! [`CoreStore::session_get_and_touch`] is composed here, of a read and a touch, as
//! `DynamoSessions` composes it). Every security operation answers [`StoreError`]: the
//! refusals are its `NotFound`, `KeyExists`, `TooManyKeys`, `OperatorExists`,
//! `SessionExists` and `Invalid` variants.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::embedded::Embedded;
use crate::error::StoreError;
use crate::ledger::{Account, Event, Key, Outcome, TenantId, Transfer};
use crate::operators::{NewOperator, Operator, SignInRecorded};
use crate::postgres::{PgCore, PgStore};
use crate::sessions::Session;
use crate::tenants::{ApiKeyInfo, ApiKeyRecord, NewApiKey, NewTenant, Tenant};

/// The process's store.
#[derive(Clone)]
pub enum Store {
    /// The redb file (the default).
    Embedded(Arc<Embedded>),
    /// PostgreSQL / Aurora.
    Postgres(Arc<PgStore>),
}

impl Store {
    /// What one core uses; call on that core's runtime.
    pub fn core(&self) -> Result<CoreStore, StoreError> {
        match self {
            Self::Embedded(store) => Ok(CoreStore::Embedded(store.clone())),
            Self::Postgres(store) => Ok(CoreStore::Postgres(Box::new(store.core()?))),
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        match self {
            Self::Embedded(store) => store.is_ready(),
            Self::Postgres(store) => store.is_ready(),
        }
    }

    /// Name of the backend, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A committed batch as one core sees it.
#[derive(Debug)]
pub struct Submitted {
    /// One outcome per event, in order.
    pub outcomes: Vec<Outcome>,
    /// Rows the batch wrote, where the backend counts them (PostgreSQL).
    pub rows_written: Option<u64>,
}

/// One core's store.
pub enum CoreStore {
    /// The embedded store (its writer thread serves every core).
    Embedded(Arc<Embedded>),
    /// This core's PostgreSQL connections.
    Postgres(Box<PgCore>),
}

impl CoreStore {
    /// Commits `events` as one durable batch; outcomes only after the commit.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Submitted, StoreError> {
        match self {
            Self::Embedded(store) => {
                Ok(Submitted { outcomes: store.submit(events).await?, rows_written: None })
            }
            Self::Postgres(core) => {
                let committed = core.commit(&events, now_ns()).await?;
                let rows_written = Some(committed.rows_written);
                Ok(Submitted { outcomes: committed.outcomes, rows_written })
            }
        }
    }

    /// The account `key`, if it exists.
    pub async fn account(&self, key: Key) -> Result<Option<Account>, StoreError> {
        match self {
            Self::Embedded(store) => store.account(key),
            Self::Postgres(core) => core.account(key).await,
        }
    }

    /// The transfer `key`, if it exists.
    pub async fn transfer(&self, key: Key) -> Result<Option<Transfer>, StoreError> {
        match self {
            Self::Embedded(store) => store.transfer(key),
            Self::Postgres(core) => core.transfer(key).await,
        }
    }

    /// Up to `limit` transfers of account `key` after timestamp `after`, oldest first;
    /// `None` when the account does not exist.
    pub async fn account_transfers(
        &self,
        key: Key,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Transfer>>, StoreError> {
        match self {
            Self::Embedded(store) => store.account_transfers(key, after, limit),
            Self::Postgres(core) => core.account_transfers(key, after, limit).await,
        }
    }
}

/// Tenants and API keys.
impl CoreStore {
    /// Creates a tenant with its first API key, in one transaction:
    /// [`StoreError::TenantExists`] or [`StoreError::KeyExists`] when a name is taken.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError> {
        match self {
            Self::Embedded(store) => store.create_tenant(new).await,
            Self::Postgres(core) => core.create_tenant(new).await,
        }
    }

    /// The tenant `id`, if it exists.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        match self {
            Self::Embedded(store) => store.tenant(id),
            Self::Postgres(core) => core.tenant(id).await,
        }
    }

    /// The tenant named `name`, if it exists.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        match self {
            Self::Embedded(store) => store.tenant_by_name(name),
            Self::Postgres(core) => core.tenant_by_name(name).await,
        }
    }

    /// Every tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        match self {
            Self::Embedded(store) => store.tenants(),
            Self::Postgres(core) => core.tenants().await,
        }
    }

    /// Every active (not revoked) API key, for the gateway's key cache.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        match self {
            Self::Embedded(store) => store.api_keys(),
            Self::Postgres(core) => core.api_keys().await,
        }
    }

    /// Every key of `tenant`, active and revoked, oldest first (ties by key id).
    pub async fn api_key_infos(&self, tenant: TenantId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        match self {
            Self::Embedded(store) => store.api_key_infos(tenant),
            Self::Postgres(core) => core.api_key_infos(tenant).await,
        }
    }

    /// Adds an API key to `tenant`, atomically with counting its active keys:
    /// [`StoreError::NotFound`] for an unknown tenant, [`StoreError::TooManyKeys`] when it
    /// has [`crate::tenants::ACTIVE_KEYS_MAX`] already, [`StoreError::KeyExists`] when the
    /// key id is taken, [`StoreError::Invalid`] for a key breaking a rule.
    pub async fn add_api_key(&self, tenant: TenantId, key: NewApiKey) -> Result<(), StoreError> {
        match self {
            Self::Embedded(store) => store.add_api_key(tenant, key).await,
            Self::Postgres(core) => core.add_api_key(tenant, key).await,
        }
    }

    /// Revokes `tenant`'s active key `key_id` at `now_s` (Unix seconds): `true` when it
    /// did; `false` when `tenant` has no such active key (another tenant's key id changes
    /// nothing).
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key_id: &str,
        now_s: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.revoke_api_key(tenant, key_id, now_s).await,
            Self::Postgres(core) => core.revoke_api_key(tenant, key_id, now_s).await,
        }
    }
}

/// Operators.
impl CoreStore {
    /// Creates an operator with a store-assigned id: [`StoreError::OperatorExists`] when
    /// the username is taken, [`StoreError::Invalid`] for a field breaking a rule.
    pub async fn create_operator(&self, new: NewOperator) -> Result<Operator, StoreError> {
        match self {
            Self::Embedded(store) => store.create_operator(new).await,
            Self::Postgres(core) => core.create_operator(new).await,
        }
    }

    /// The operator `id`, if it exists.
    pub async fn operator(&self, id: u64) -> Result<Option<Operator>, StoreError> {
        match self {
            Self::Embedded(store) => store.operator(id),
            Self::Postgres(core) => core.operator(id).await,
        }
    }

    /// The operator signing in as `username`, if any.
    pub async fn operator_by_username(
        &self,
        username: &str,
    ) -> Result<Option<Operator>, StoreError> {
        match self {
            Self::Embedded(store) => store.operator_by_username(username),
            Self::Postgres(core) => core.operator_by_username(username).await,
        }
    }

    /// Every operator, by id.
    pub async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        match self {
            Self::Embedded(store) => store.operators(),
            Self::Postgres(core) => core.operators().await,
        }
    }

    /// Counts a failed sign-in of operator `id`, atomically; at
    /// [`crate::operators::FAILED_ATTEMPTS_MAX`] it is locked. The updated operator, or
    /// `None` when there is none.
    pub async fn record_sign_in_failure(&self, id: u64) -> Result<Option<Operator>, StoreError> {
        match self {
            Self::Embedded(store) => store.record_sign_in_failure(id).await,
            Self::Postgres(core) => core.record_sign_in_failure(id).await,
        }
    }

    /// Records a successful password and TOTP check at `totp_step`, atomically: refused
    /// when the operator is disabled or locked or the step is at or below the last one
    /// used (a code is usable once, across processes); otherwise the failures are reset
    /// and the step stored.
    pub async fn record_sign_in_success(
        &self,
        id: u64,
        totp_step: u64,
    ) -> Result<SignInRecorded, StoreError> {
        match self {
            Self::Embedded(store) => store.record_sign_in_success(id, totp_step).await,
            Self::Postgres(core) => core.record_sign_in_success(id, totp_step).await,
        }
    }

    /// Clears operator `id`'s lock and failures; `false` when there is no such operator.
    pub async fn unlock_operator(&self, id: u64) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.unlock_operator(id).await,
            Self::Postgres(core) => core.unlock_operator(id).await,
        }
    }

    /// Disables (`true`) or enables again (`false`) operator `id`; `false` when there is no
    /// such operator.
    pub async fn set_operator_disabled(&self, id: u64, disabled: bool) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.set_operator_disabled(id, disabled).await,
            Self::Postgres(core) => core.set_operator_disabled(id, disabled).await,
        }
    }

    /// Replaces operator `id`'s password hash (a PHC string); `false` when there is no
    /// such operator.
    pub async fn set_operator_password(
        &self,
        id: u64,
        password_phc: String,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.set_operator_password(id, password_phc).await,
            Self::Postgres(core) => core.set_operator_password(id, password_phc).await,
        }
    }
}

/// Operator sessions, with the semantics of `sessions::Sessions` (for a gateway without
/// DynamoDB).
impl CoreStore {
    /// Stores a new session, after deleting up to [`crate::sessions::PURGE_MAX`] sessions
    /// past their absolute expiry at its `created_at_s`. An id already stored (even
    /// revoked) is [`StoreError::SessionExists`], never overwritten.
    pub async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        match self {
            Self::Embedded(store) => store.create_session(session).await,
            Self::Postgres(core) => core.create_session(session).await,
        }
    }

    /// The session `id` if it is live at `now_s`; `None` when it does not exist, is
    /// revoked, or has expired (absolute or idle). Does not record activity.
    pub async fn session(&self, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
        match self {
            Self::Embedded(store) => store.session(id, now_s),
            Self::Postgres(core) => core.session(id, now_s).await,
        }
    }

    /// Like [`CoreStore::session`], and records activity at `now_s` when the stored
    /// `last_seen_s` is [`crate::sessions::TOUCH_INTERVAL_S`] or more old: what the
    /// gateway calls per request.
    pub async fn session_get_and_touch(
        &self,
        id: &str,
        now_s: u64,
    ) -> Result<Option<Session>, StoreError> {
        let Some(session) = self.session(id, now_s).await? else { return Ok(None) };
        if !session.touch_due(now_s) {
            return Ok(Some(session));
        }
        self.session_touch(id, now_s).await
    }

    /// Records activity at `now_s` (moving `last_seen_s` forward) if the session is live
    /// then; the updated session, or `None` when it is not live (an idle-expired session
    /// is not revived).
    pub async fn session_touch(&self, id: &str, now_s: u64) -> Result<Option<Session>, StoreError> {
        match self {
            Self::Embedded(store) => store.session_touch(id, now_s).await,
            Self::Postgres(core) => core.session_touch(id, now_s).await,
        }
    }

    /// Revokes (signs out) session `id`: `true` when it is stored (even if revoked
    /// already), `false` when it is not. Once this returns, no process answers it as live.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.revoke_session(id).await,
            Self::Postgres(core) => core.revoke_session(id).await,
        }
    }

    /// Revokes every stored session of `operator_id` (a `Session::operator_id`); returns
    /// how many are stored, as `Sessions::revoke_all_for` counts them.
    pub async fn revoke_sessions_of(&self, operator_id: &str) -> Result<usize, StoreError> {
        match self {
            Self::Embedded(store) => store.revoke_sessions_of(operator_id).await,
            Self::Postgres(core) => core.revoke_sessions_of(operator_id).await,
        }
    }
}

/// Wall-clock nanoseconds since the Unix epoch (the ledger keeps its timestamps strictly
/// increasing whatever the clock does).
pub(crate) fn now_ns() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}
