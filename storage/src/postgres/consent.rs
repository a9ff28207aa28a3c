//! Consent in PostgreSQL (migration 0004's `consents`), on a core's pooled connection
//! ([`Db`]).
//!
//! An append locks the live subject's row (`FOR NO KEY UPDATE`), counts the subject's
//! records and reads the purpose's newest version and state (`check_room`), and inserts
//! the next one, in one transaction: appends to one subject from any number of gateway
//! processes take turns, so two never get the same version (the primary key would refuse
//! it anyway). The table's triggers refuse UPDATE, DELETE and TRUNCATE, and nothing here
//! tries. Never logs.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::codec::{db, get, i64_of, id_at, u64_at, uuid};
use super::conn::Db;
use super::store::PgCore;
use super::vault_sql as sql;
use crate::error::StoreError;
use crate::ledger::TenantId;
use crate::vault::consent::{CHANNEL_LEN_MAX, Consent, NewConsent, check_room, valid_evidence};
use crate::vault::{NAME_LEN_MAX, valid_token};

/// Appends `new` as the next version of its purpose, under the subject's row lock.
pub async fn append_consent(conn: &mut impl Db, new: NewConsent) -> Result<Consent, StoreError> {
    new.check()?;
    let (lock, tally, insert) = tokio::try_join!(
        conn.statement(sql::LOCK_LIVE_SUBJECT),
        conn.statement(sql::CONSENT_TALLY),
        conn.statement(sql::INSERT_CONSENT),
    )?;
    let (tenant, subject) = (i64_of(new.tenant)?, uuid(new.subject));
    let txn = conn.transaction().await?;
    if txn.query_opt(&lock, &[&tenant, &subject]).await.map_err(db)?.is_none() {
        return Err(StoreError::NotFound("subject"));
    }
    let counted = txn.query_one(&tally, &[&tenant, &subject, &new.purpose]).await.map_err(db)?;
    let records = usize::try_from(u64_at(&counted, 0, "consent count")?)
        .map_err(|_| StoreError::Corrupt("postgres row: consent count".into()))?;
    check_room(&new, records, get(&counted, 2)?)?;
    let last = u64_at(&counted, 1, "consent version")?;
    let version = u32::try_from(last + 1)
        .map_err(|_| StoreError::Invariant("consent version overflow".into()))?;
    let params: [&(dyn ToSql + Sync); 8] = [
        &tenant,
        &subject,
        &new.purpose,
        &i64::from(version),
        &new.granted,
        &new.channel,
        &new.evidence,
        &i64_of(new.at_s)?,
    ];
    txn.execute(&insert, &params).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(new.into_consent(version))
}

/// Every consent record of the subject, oldest first.
pub async fn consent_history(
    conn: &impl Db,
    tenant: TenantId,
    subject: u128,
) -> Result<Vec<Consent>, StoreError> {
    records(conn, &sql::CONSENT_HISTORY, tenant, subject).await
}

/// The subject's highest version per purpose, by purpose.
pub async fn current_consents(
    conn: &impl Db,
    tenant: TenantId,
    subject: u128,
) -> Result<Vec<Consent>, StoreError> {
    records(conn, &sql::CURRENT_CONSENTS, tenant, subject).await
}

/// Per purpose, how many current consents are granted and withdrawn.
pub async fn consent_counts(conn: &impl Db) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let statement = conn.statement(sql::CONSENT_COUNTS).await?;
    let rows = conn.client().query(&statement, &[]).await.map_err(db)?;
    rows.iter()
        .map(|row| Ok((get(row, 0)?, u64_at(row, 1, "granted")?, u64_at(row, 2, "withdrawn")?)))
        .collect()
}

async fn records(
    conn: &impl Db,
    query: &str,
    tenant: TenantId,
    subject: u128,
) -> Result<Vec<Consent>, StoreError> {
    let statement = conn.statement(query).await?;
    let params: [&(dyn ToSql + Sync); 2] = [&i64_of(tenant)?, &uuid(subject)];
    let rows = conn.client().query(&statement, &params).await.map_err(db)?;
    rows.iter().map(consent_row).collect()
}

/// A `consents` row (columns of `vault_sql::CONSENT_HISTORY`), checked against the rules.
fn consent_row(row: &Row) -> Result<Consent, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("postgres row: consent {what}"));
    let purpose: String = get(row, 2)?;
    let channel: String = get(row, 5)?;
    let evidence: String = get(row, 6)?;
    let version = u32::try_from(get::<i64>(row, 3)?).map_err(|_| corrupt("version"))?;
    let valid = valid_token(&purpose, NAME_LEN_MAX)
        && valid_token(&channel, CHANNEL_LEN_MAX)
        && valid_evidence(&evidence);
    if !valid || version == 0 {
        return Err(corrupt("text or version"));
    }
    Ok(Consent {
        tenant: u64_at(row, 0, "tenant id")?,
        subject: id_at(row, 1)?,
        purpose,
        version,
        granted: get(row, 4)?,
        channel,
        evidence,
        at_s: u64_at(row, 7, "consent at")?,
    })
}

/// Consent on this core's read pool.
impl PgCore {
    /// Appends `new` as the next version of its purpose.
    pub async fn append_consent(&self, new: NewConsent) -> Result<Consent, StoreError> {
        append_consent(&mut *self.read_client().await?, new).await
    }

    /// Every consent record of the subject, oldest first.
    pub async fn consent_history(
        &self,
        tenant: TenantId,
        subject: u128,
    ) -> Result<Vec<Consent>, StoreError> {
        consent_history(&*self.read_client().await?, tenant, subject).await
    }

    /// The subject's highest version per purpose, by purpose.
    pub async fn current_consents(
        &self,
        tenant: TenantId,
        subject: u128,
    ) -> Result<Vec<Consent>, StoreError> {
        current_consents(&*self.read_client().await?, tenant, subject).await
    }

    /// Per purpose, how many current consents are granted and withdrawn.
    pub async fn consent_counts(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        consent_counts(&*self.read_client().await?).await
    }
}
