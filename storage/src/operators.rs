//! Operators: the people who administer a gateway, as stored.
//!
//! An operator signs in with a password (an argon2id PHC string made by the gateway) and
//! a TOTP code (its secret sealed by the gateway under a key-encryption key; opaque here).
//! The store counts failed sign-ins and locks the operator at [`FAILED_ATTEMPTS_MAX`], and
//! records the TOTP time step of every successful sign-in so that a code is usable once,
//! even across gateway processes. The rules live here, as pure functions both backends
//! apply inside one transaction.
//!
//! This module never sees a password or a TOTP secret in clear, and never formats a
//! username, a password hash or a sealed secret: `Debug` redacts them (a username is
//! personal information).

use std::fmt;

use crate::error::StoreError;
use crate::tenants::check_time;

/// Failed sign-ins in a row that lock an operator out until an administrator unlocks it.
pub const FAILED_ATTEMPTS_MAX: u32 = 10;
/// Most bytes of a password's PHC string.
pub const PASSWORD_PHC_BYTES_MAX: usize = 512;
/// Most bytes of a sealed TOTP secret.
pub const TOTP_SEALED_BYTES_MAX: usize = 1024;
/// Fewest characters of a username.
pub const USERNAME_LEN_MIN: usize = 3;
/// Most characters of a username.
pub const USERNAME_LEN_MAX: usize = 64;

/// What an operator may do; the gateway decides what each role allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages operators, tenants and keys.
    Admin,
    /// Runs the service day to day.
    Operator,
    /// Reads the audit trail and reports.
    Auditor,
    /// POPIA's Information Officer: data-subject requests and compliance evidence.
    InformationOfficer,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] =
        [Role::Admin, Role::Operator, Role::Auditor, Role::InformationOfficer];

    /// The stable snake_case name (stored in PostgreSQL, shown in tokens and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::InformationOfficer => "information_officer",
        }
    }

    /// The role named `name`, if any.
    pub fn parse(name: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The byte the embedded store keeps.
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Admin => 1,
            Self::Operator => 2,
            Self::Auditor => 3,
            Self::InformationOfficer => 4,
        }
    }

    /// The role stored as `byte`, if any.
    pub(crate) fn from_byte(byte: u8) -> Option<Role> {
        Self::ALL.into_iter().find(|role| role.to_byte() == byte)
    }
}

/// A stored operator. `Debug` redacts the username, the password hash and the sealed TOTP
/// secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Operator {
    /// The store-assigned id.
    pub id: u64,
    /// The unique sign-in name (see [`valid_username`]).
    pub username: String,
    /// What the operator may do.
    pub role: Role,
    /// The argon2id PHC string of the password.
    pub password_phc: String,
    /// The TOTP secret, sealed by the gateway.
    pub totp_sealed: Vec<u8>,
    /// Failed sign-ins since the last success or unlock (at most [`FAILED_ATTEMPTS_MAX`]).
    pub failed_attempts: u32,
    /// Locked out after [`FAILED_ATTEMPTS_MAX`] failures, until unlocked.
    pub locked: bool,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// The TOTP time step of the last successful sign-in; a step at or below it is refused.
    pub totp_last_step: Option<u64>,
    /// When the operator was created, in Unix seconds.
    pub created_at_s: u64,
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operator")
            .field("id", &self.id)
            .field("username", &"[redacted]")
            .field("role", &self.role)
            .field("password_phc", &"[redacted]")
            .field("totp_sealed", &"[redacted]")
            .field("failed_attempts", &self.failed_attempts)
            .field("locked", &self.locked)
            .field("disabled", &self.disabled)
            .field("totp_last_step", &self.totp_last_step)
            .field("created_at_s", &self.created_at_s)
            .finish()
    }
}

/// An operator to create. `Debug` redacts like [`Operator`]'s.
#[derive(Clone, PartialEq, Eq)]
pub struct NewOperator {
    /// The unique sign-in name (see [`valid_username`]).
    pub username: String,
    /// What the operator may do.
    pub role: Role,
    /// The argon2id PHC string: `$`-prefixed, at most [`PASSWORD_PHC_BYTES_MAX`] bytes.
    pub password_phc: String,
    /// The sealed TOTP secret: 1 to [`TOTP_SEALED_BYTES_MAX`] bytes.
    pub totp_sealed: Vec<u8>,
    /// When the operator is created, in Unix seconds.
    pub created_at_s: u64,
}

impl NewOperator {
    /// Checks every field (both backends call this first).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if !valid_username(&self.username) {
            return Err(StoreError::Invalid(
                "username must be 3-64 characters of a-z, 0-9, '.', '_' and '-', \
                 starting with a letter or digit",
            ));
        }
        check_password_phc(&self.password_phc)?;
        if !(1..=TOTP_SEALED_BYTES_MAX).contains(&self.totp_sealed.len()) {
            return Err(StoreError::Invalid("sealed TOTP secret must be 1 to 1024 bytes"));
        }
        check_time(self.created_at_s)
    }

    /// The stored operator this becomes under `id`: no failures, not locked or disabled,
    /// no TOTP step used yet.
    pub(crate) fn into_operator(self, id: u64) -> Operator {
        Operator {
            id,
            username: self.username,
            role: self.role,
            password_phc: self.password_phc,
            totp_sealed: self.totp_sealed,
            failed_attempts: 0,
            locked: false,
            disabled: false,
            totp_last_step: None,
            created_at_s: self.created_at_s,
        }
    }
}

impl fmt::Debug for NewOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOperator")
            .field("username", &"[redacted]")
            .field("role", &self.role)
            .field("created_at_s", &self.created_at_s)
            .finish_non_exhaustive()
    }
}

/// What [`record_success`] decided about a successful password and TOTP check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInRecorded {
    /// The step was stored and the failures reset: the sign-in may proceed.
    Recorded,
    /// The TOTP step is at or below the last one used: the code was used already.
    CodeReused,
    /// The operator is locked out.
    Locked,
    /// The operator is disabled.
    Disabled,
    /// No operator has this id.
    NotFound,
}

/// Usernames: 3 to 64 characters of `[a-z0-9._-]`, starting with a letter or digit.
pub fn valid_username(username: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    (USERNAME_LEN_MIN..=USERNAME_LEN_MAX).contains(&username.len())
        && username.bytes().all(allowed)
        && username.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Checks a PHC string's shape and size (its content is the gateway's business).
pub(crate) fn check_password_phc(phc: &str) -> Result<(), StoreError> {
    let printable = phc.bytes().all(|b| b.is_ascii_graphic());
    if phc.starts_with('$') && phc.len() <= PASSWORD_PHC_BYTES_MAX && printable {
        Ok(())
    } else {
        Err(StoreError::Invalid("password must be a PHC string of at most 512 printable bytes"))
    }
}

/// A failed sign-in: one more failure (never past the maximum), locked at the maximum.
pub(crate) fn record_failure(operator: &mut Operator) {
    operator.failed_attempts = operator.failed_attempts.saturating_add(1).min(FAILED_ATTEMPTS_MAX);
    if operator.failed_attempts >= FAILED_ATTEMPTS_MAX {
        operator.locked = true;
    }
}

/// A successful password and TOTP check at `totp_step`: refused when disabled, locked or
/// the step was used; otherwise the failures are reset and the step stored.
pub(crate) fn record_success(operator: &mut Operator, totp_step: u64) -> SignInRecorded {
    if operator.disabled {
        return SignInRecorded::Disabled;
    }
    if operator.locked {
        return SignInRecorded::Locked;
    }
    if operator.totp_last_step.is_some_and(|last| totp_step <= last) {
        return SignInRecorded::CodeReused;
    }
    operator.failed_attempts = 0;
    operator.totp_last_step = Some(totp_step);
    SignInRecorded::Recorded
}

/// An unlock: no failures, not locked.
pub(crate) fn unlock(operator: &mut Operator) {
    operator.failed_attempts = 0;
    operator.locked = false;
}

/// Refuses a TOTP step PostgreSQL's bigint cannot hold (both backends, for one answer).
pub(crate) fn check_step(totp_step: u64) -> Result<(), StoreError> {
    if i64::try_from(totp_step).is_ok() {
        Ok(())
    } else {
        Err(StoreError::Invalid("TOTP step out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator() -> Operator {
        NewOperator {
            username: "ada.l".into(),
            role: Role::Admin,
            password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            totp_sealed: vec![9; 40],
            created_at_s: 1_900_000_000,
        }
        .into_operator(1)
    }

    #[test]
    fn roles_round_trip_by_name_and_byte() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(Role::from_byte(role.to_byte()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::from_byte(0), None);
    }

    #[test]
    fn username_rule() {
        for good in ["ada", "ada.lovelace", "0cool", "a-b_c.d", &"a".repeat(64)] {
            assert!(valid_username(good), "{good}");
        }
        for bad in ["ab", "Ada", ".ada", "-ada", "ada lovelace", "adà", &"a".repeat(65), ""] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn lock_out_at_exactly_the_maximum() {
        let mut op = operator();
        for n in 1..FAILED_ATTEMPTS_MAX {
            record_failure(&mut op);
            assert_eq!((op.failed_attempts, op.locked), (n, false));
        }
        record_failure(&mut op);
        assert_eq!((op.failed_attempts, op.locked), (FAILED_ATTEMPTS_MAX, true));
        record_failure(&mut op);
        assert_eq!(op.failed_attempts, FAILED_ATTEMPTS_MAX, "never past the maximum");
        assert_eq!(record_success(&mut op, 5), SignInRecorded::Locked);
        unlock(&mut op);
        assert_eq!(record_success(&mut op, 5), SignInRecorded::Recorded);
    }

    #[test]
    fn a_step_is_used_once() {
        let mut op = operator();
        record_failure(&mut op);
        assert_eq!(record_success(&mut op, 100), SignInRecorded::Recorded);
        assert_eq!((op.failed_attempts, op.totp_last_step), (0, Some(100)));
        assert_eq!(record_success(&mut op, 100), SignInRecorded::CodeReused);
        assert_eq!(record_success(&mut op, 99), SignInRecorded::CodeReused);
        assert_eq!(record_success(&mut op, 101), SignInRecorded::Recorded);
        op.disabled = true;
        assert_eq!(record_success(&mut op, 102), SignInRecorded::Disabled);
    }

    #[test]
    fn debug_redacts_personal_and_secret_fields() {
        let op = operator();
        let text = format!("{op:?}");
        assert!(!text.contains("ada") && !text.contains("argon2") && !text.contains("9, 9"));
    }
}
