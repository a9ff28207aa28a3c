//! Operators in the embedded store.
//!
//! Every change is a control job on the writer thread: read the record, apply the rule of
//! [`crate::operators`], write it back, all in one write transaction, so that two sign-ins
//! with the same TOTP step record exactly one. Reads run on the caller's thread.
//!
//! Never logs or formats a username, a password hash or a sealed TOTP secret.

use redb::{ReadableTable, WriteTransaction};

use super::codec::{decode_operator, encode_operator};
use super::tables::{META_OPERATOR_LAST, OPERATOR_NAMES, OPERATORS};
use super::{Embedded, next_id};
use crate::error::StoreError;
use crate::operators::{
    self, NewOperator, Operator, SignInRecorded, check_password_phc, check_step,
};

impl Embedded {
    /// Creates an operator with a store-assigned id: [`StoreError::OperatorExists`] when
    /// the username is taken.
    pub async fn create_operator(&self, new: NewOperator) -> Result<Operator, StoreError> {
        new.check()?;
        self.write(move |txn| create_operator(txn, new)).await
    }

    /// The operator `id`, if it exists.
    pub fn operator(&self, id: u64) -> Result<Option<Operator>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(OPERATORS)?;
            let value = table.get(id)?;
            value.map(|bytes| decode_operator(bytes.value())).transpose()
        })
    }

    /// The operator signing in as `username`, if any.
    pub fn operator_by_username(&self, username: &str) -> Result<Option<Operator>, StoreError> {
        self.read(|txn| {
            let Some(id) = txn.open_table(OPERATOR_NAMES)?.get(username)?.map(|v| v.value()) else {
                return Ok(None);
            };
            let table = txn.open_table(OPERATORS)?;
            let value = table.get(id)?;
            let bytes =
                value.ok_or_else(|| StoreError::Corrupt("username names no operator".into()))?;
            decode_operator(bytes.value()).map(Some)
        })
    }

    /// Every operator, by id.
    pub fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(OPERATORS)?;
            let mut operators = Vec::new();
            for entry in table.iter()? {
                operators.push(decode_operator(entry?.1.value())?);
            }
            Ok(operators)
        })
    }

    /// Counts a failed sign-in of operator `id`, locking it at
    /// [`operators::FAILED_ATTEMPTS_MAX`]; the updated record, or `None` when there is no
    /// such operator.
    pub async fn record_sign_in_failure(&self, id: u64) -> Result<Option<Operator>, StoreError> {
        self.write(move |txn| {
            update(txn, id, |op| {
                operators::record_failure(op);
                op.clone()
            })
        })
        .await
    }

    /// Records a successful sign-in at TOTP step `totp_step` unless the operator is
    /// disabled or locked or the step was used already (see [`SignInRecorded`]).
    pub async fn record_sign_in_success(
        &self,
        id: u64,
        totp_step: u64,
    ) -> Result<SignInRecorded, StoreError> {
        check_step(totp_step)?;
        let decided = self.write(move |txn| record_success(txn, id, totp_step)).await?;
        Ok(decided.unwrap_or(SignInRecorded::NotFound))
    }

    /// Clears operator `id`'s lock and failures; `false` when there is no such operator.
    pub async fn unlock_operator(&self, id: u64) -> Result<bool, StoreError> {
        let found = self.write(move |txn| update(txn, id, operators::unlock)).await?;
        Ok(found.is_some())
    }

    /// Disables (or enables again) operator `id`; `false` when there is no such operator.
    pub async fn set_operator_disabled(&self, id: u64, disabled: bool) -> Result<bool, StoreError> {
        let found = self.write(move |txn| update(txn, id, |op| op.disabled = disabled)).await?;
        Ok(found.is_some())
    }

    /// Replaces operator `id`'s password hash; `false` when there is no such operator.
    pub async fn set_operator_password(
        &self,
        id: u64,
        password_phc: String,
    ) -> Result<bool, StoreError> {
        check_password_phc(&password_phc)?;
        let found = self.write(move |txn| update(txn, id, |op| op.password_phc = password_phc));
        Ok(found.await?.is_some())
    }
}

fn create_operator(txn: &WriteTransaction, new: NewOperator) -> Result<Operator, StoreError> {
    let mut names = txn.open_table(OPERATOR_NAMES)?;
    if names.get(new.username.as_str())?.is_some() {
        return Err(StoreError::OperatorExists);
    }
    let operator = new.into_operator(next_id(txn, META_OPERATOR_LAST)?);
    names.insert(operator.username.as_str(), operator.id)?;
    txn.open_table(OPERATORS)?.insert(operator.id, encode_operator(&operator).as_slice())?;
    Ok(operator)
}

/// Applies `change` to operator `id` and stores the result; `None` when there is no such
/// operator (nothing written).
fn update<T>(
    txn: &WriteTransaction,
    id: u64,
    change: impl FnOnce(&mut Operator) -> T,
) -> Result<Option<T>, StoreError> {
    let mut table = txn.open_table(OPERATORS)?;
    let stored = table.get(id)?.map(|bytes| decode_operator(bytes.value()));
    let Some(mut operator) = stored.transpose()? else { return Ok(None) };
    let outcome = change(&mut operator);
    table.insert(id, encode_operator(&operator).as_slice())?;
    Ok(Some(outcome))
}

/// [`operators::record_success`] on operator `id`, written only when it was recorded.
fn record_success(
    txn: &WriteTransaction,
    id: u64,
    totp_step: u64,
) -> Result<Option<SignInRecorded>, StoreError> {
    let mut table = txn.open_table(OPERATORS)?;
    let stored = table.get(id)?.map(|bytes| decode_operator(bytes.value()));
    let Some(mut operator) = stored.transpose()? else { return Ok(None) };
    let decided = operators::record_success(&mut operator, totp_step);
    if decided == SignInRecorded::Recorded {
        table.insert(id, encode_operator(&operator).as_slice())?;
    }
    Ok(Some(decided))
}
