//! Little-endian encodings of the embedded store's records: fixed layouts for accounts
//! and transfers (the hot path), length-prefixed layouts for API keys, operators,
//! sessions, and the vault's subjects, field values and consents.
//!
//! Each record starts with a layout byte so the format can evolve. Decoding checks the
//! length, the layout byte, flag bits, amount bounds, field sizes and text rules, and
//! reports corruption as an error: it never panics on stored bytes. The security records
//! hold sealed secrets and password hashes as opaque bytes, and the vault's records
//! wrapped keys and sealed values; nothing here formats them.

use crate::error::StoreError;
use crate::ledger::{AMOUNT_MAX, Account, AccountFlags, TenantId, Transfer, TransferFlags};
use crate::operators::{
    FAILED_ATTEMPTS_MAX, Operator, PASSWORD_PHC_BYTES_MAX, Role, TOTP_SEALED_BYTES_MAX,
    valid_username,
};
use crate::sessions::{FIELD_BYTES_MAX, Session};
use crate::tenants::{ApiKeyInfo, ApiKeyRecord, SEALED_SECRET_BYTES_MAX};
use crate::vault::consent::{CHANNEL_LEN_MAX, Consent, EVIDENCE_BYTES_MAX, valid_evidence};
use crate::vault::{
    FieldValue, SEALED_FIELD_BYTES_MAX, Subject, WRAPPED_KEY_BYTES_MAX, valid_token,
};

const LAYOUT_V1: u8 = 1;
/// Bytes of an encoded account.
pub const ACCOUNT_LEN: usize = 1 + 16 * 3 + 4 + 2 + 2 + 8 * 5;
/// Bytes of an encoded transfer.
pub const TRANSFER_LEN: usize = 1 + 16 * 5 + 8 + 4 + 2 + 2 + 4 + 8;

/// Encodes an account.
pub fn encode_account(a: &Account) -> [u8; ACCOUNT_LEN] {
    let mut w = Writer::<ACCOUNT_LEN>::new();
    w.u128(a.id).u128(a.user_data).u128(a.subject_id);
    w.u32(a.ledger).u16(a.code).u16(a.flags.bits());
    w.u64(a.debits_pending).u64(a.debits_posted).u64(a.credits_pending).u64(a.credits_posted);
    w.u64(a.timestamp);
    w.finish()
}

/// Decodes an account, checking what can be checked.
pub fn decode_account(bytes: &[u8]) -> Result<Account, StoreError> {
    let mut r = Reader::new(bytes, ACCOUNT_LEN, "account")?;
    let (id, user_data, subject_id) = (r.u128(), r.u128(), r.u128());
    let (ledger, code, flag_bits) = (r.u32(), r.u16(), r.u16());
    let flags = AccountFlags::from_bits(flag_bits).ok_or_else(|| corrupt("account", "flags"))?;
    let account = Account {
        id,
        ledger,
        code,
        flags,
        user_data,
        subject_id,
        debits_pending: r.amount()?,
        debits_posted: r.amount()?,
        credits_pending: r.amount()?,
        credits_posted: r.amount()?,
        timestamp: r.u64(),
    };
    Ok(account)
}

/// Encodes a transfer.
pub fn encode_transfer(t: &Transfer) -> [u8; TRANSFER_LEN] {
    let mut w = Writer::<TRANSFER_LEN>::new();
    w.u128(t.id).u128(t.debit_account_id).u128(t.credit_account_id);
    w.u128(t.pending_id).u128(t.user_data);
    w.u64(t.amount).u32(t.ledger).u16(t.code).u16(t.flags.bits()).u32(t.timeout_seconds);
    w.u64(t.timestamp);
    w.finish()
}

/// Decodes a transfer, checking what can be checked.
pub fn decode_transfer(bytes: &[u8]) -> Result<Transfer, StoreError> {
    let mut r = Reader::new(bytes, TRANSFER_LEN, "transfer")?;
    let (id, debit_account_id, credit_account_id) = (r.u128(), r.u128(), r.u128());
    let (pending_id, user_data) = (r.u128(), r.u128());
    let amount = r.amount()?;
    let (ledger, code, flag_bits) = (r.u32(), r.u16(), r.u16());
    let flags = TransferFlags::from_bits(flag_bits).ok_or_else(|| corrupt("transfer", "flags"))?;
    let transfer = Transfer {
        id,
        debit_account_id,
        credit_account_id,
        amount,
        pending_id,
        user_data,
        ledger,
        code,
        flags,
        timeout_seconds: r.u32(),
        timestamp: r.u64(),
    };
    Ok(transfer)
}

/// An API key as the embedded store keeps it: the cache's record and the listing's times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredApiKey {
    /// What the gateway's key cache holds.
    pub record: ApiKeyRecord,
    /// When the key was made (0 for a key upgraded from format 1).
    pub created_at_s: u64,
    /// When the key was revoked, if it was.
    pub revoked_at_s: Option<u64>,
}

impl StoredApiKey {
    /// The key as an administrator lists it.
    pub fn info(&self) -> ApiKeyInfo {
        ApiKeyInfo {
            key_id: self.record.key_id.clone(),
            tenant: self.record.tenant,
            created_at_s: self.created_at_s,
            revoked_at_s: self.revoked_at_s,
        }
    }
}

/// Bytes of a format-1 API key row: tenant (8 LE) and the secret's SHA-256 (32).
pub const API_KEY_V0_LEN: usize = 8 + 32;

/// Encodes an API key (its id is the table's key): layout byte, tenant (8), digest (32),
/// created at (8), revoked flag (1) and time (8), sealed secret (2-byte length, bytes).
pub fn encode_api_key(key: &StoredApiKey) -> Vec<u8> {
    let mut w = VarWriter::new();
    w.u64(key.record.tenant).put(&key.record.secret_digest).u64(key.created_at_s);
    w.u8(u8::from(key.revoked_at_s.is_some())).u64(key.revoked_at_s.unwrap_or(0));
    w.bytes(&key.record.sealed_secret);
    w.finish()
}

/// Decodes the API key `key_id`.
pub fn decode_api_key(key_id: &str, bytes: &[u8]) -> Result<StoredApiKey, StoreError> {
    let mut r = VarReader::new(bytes, "api key")?;
    let tenant: TenantId = r.u64()?;
    let secret_digest = r.array::<32>()?;
    let created_at_s = r.u64()?;
    let revoked_at_s = r.optional_u64()?;
    let sealed_secret = r.bytes(SEALED_SECRET_BYTES_MAX)?.to_vec();
    r.finish()?;
    let record = ApiKeyRecord { key_id: key_id.to_owned(), tenant, secret_digest, sealed_secret };
    Ok(StoredApiKey { record, created_at_s, revoked_at_s })
}

/// Decodes a format-1 API key row (no layout byte): a key without a sealed secret, made
/// at an unknown time (0), active.
pub fn decode_api_key_v0(key_id: &str, bytes: &[u8]) -> Result<StoredApiKey, StoreError> {
    let corrupt = || corrupt("format-1 api key", "length");
    if bytes.len() != API_KEY_V0_LEN {
        return Err(corrupt());
    }
    let (tenant, digest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let secret_digest: [u8; 32] = digest.try_into().map_err(|_| corrupt())?;
    let tenant = TenantId::from_le_bytes(*tenant);
    let record = ApiKeyRecord {
        key_id: key_id.to_owned(),
        tenant,
        secret_digest,
        sealed_secret: Vec::new(),
    };
    Ok(StoredApiKey { record, created_at_s: 0, revoked_at_s: None })
}

const OPERATOR_LOCKED: u8 = 1;
const OPERATOR_DISABLED: u8 = 1 << 1;
const OPERATOR_HAS_STEP: u8 = 1 << 2;
const OPERATOR_STATE_BITS: u8 = OPERATOR_LOCKED | OPERATOR_DISABLED | OPERATOR_HAS_STEP;

/// Encodes an operator: layout byte, id (8), role (1), state bits (1), failed attempts
/// (4), last TOTP step (8), created at (8), then username, PHC string and sealed TOTP
/// secret (each a 2-byte length and the bytes).
pub fn encode_operator(op: &Operator) -> Vec<u8> {
    let mut state = 0;
    for (set, bit) in [
        (op.locked, OPERATOR_LOCKED),
        (op.disabled, OPERATOR_DISABLED),
        (op.totp_last_step.is_some(), OPERATOR_HAS_STEP),
    ] {
        if set {
            state |= bit;
        }
    }
    let mut w = VarWriter::new();
    w.u64(op.id).u8(op.role.to_byte()).u8(state).u32(op.failed_attempts);
    w.u64(op.totp_last_step.unwrap_or(0)).u64(op.created_at_s);
    w.bytes(op.username.as_bytes()).bytes(op.password_phc.as_bytes()).bytes(&op.totp_sealed);
    w.finish()
}

/// Decodes an operator, checking its role, state bits, failure count and field rules.
pub fn decode_operator(bytes: &[u8]) -> Result<Operator, StoreError> {
    let record = "operator";
    let mut r = VarReader::new(bytes, record)?;
    let id = r.u64()?;
    let role = Role::from_byte(r.u8()?).ok_or_else(|| corrupt(record, "role"))?;
    let state = r.u8()?;
    if state & !OPERATOR_STATE_BITS != 0 {
        return Err(corrupt(record, "state"));
    }
    let failed_attempts = r.u32()?;
    if failed_attempts > FAILED_ATTEMPTS_MAX {
        return Err(corrupt(record, "failure count"));
    }
    let step = r.u64()?;
    let created_at_s = r.u64()?;
    let username = r.text(crate::operators::USERNAME_LEN_MAX)?.to_owned();
    let password_phc = r.text(PASSWORD_PHC_BYTES_MAX)?.to_owned();
    let totp_sealed = r.bytes(TOTP_SEALED_BYTES_MAX)?.to_vec();
    r.finish()?;
    if !valid_username(&username) {
        return Err(corrupt(record, "username"));
    }
    Ok(Operator {
        id,
        username,
        role,
        password_phc,
        totp_sealed,
        failed_attempts,
        locked: state & OPERATOR_LOCKED != 0,
        disabled: state & OPERATOR_DISABLED != 0,
        totp_last_step: (state & OPERATOR_HAS_STEP != 0).then_some(step),
        created_at_s,
    })
}

/// Encodes a session (its id is the table's key): layout byte, created at, last seen and
/// expires at (8 each), revoked (1), then operator id and role (each a 2-byte length and
/// the bytes).
pub fn encode_session(session: &Session) -> Vec<u8> {
    let mut w = VarWriter::new();
    w.u64(session.created_at_s).u64(session.last_seen_s).u64(session.expires_at_s);
    w.u8(u8::from(session.revoked));
    w.bytes(session.operator_id.as_bytes()).bytes(session.role.as_bytes());
    w.finish()
}

/// Decodes the session `id`.
pub fn decode_session(id: &str, bytes: &[u8]) -> Result<Session, StoreError> {
    let mut r = VarReader::new(bytes, "session")?;
    let (created_at_s, last_seen_s, expires_at_s) = (r.u64()?, r.u64()?, r.u64()?);
    let revoked = r.flag()?;
    let operator_id = r.text(FIELD_BYTES_MAX)?.to_owned();
    let role = r.text(FIELD_BYTES_MAX)?.to_owned();
    r.finish()?;
    let id = id.to_owned();
    Ok(Session { id, operator_id, role, created_at_s, last_seen_s, expires_at_s, revoked })
}

/// A subject's record, without its fields (they have rows of their own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectRecord {
    /// When the subject was created.
    pub created_at_s: u64,
    /// When its fields last changed, or it was erased.
    pub updated_at_s: u64,
    /// When it was erased, if it was.
    pub erased_at_s: Option<u64>,
    /// The KEK version of the wrapped key; 0 once erased.
    pub kek_version: u32,
    /// The wrapped data key; empty once erased.
    pub wrapped_key: Vec<u8>,
}

impl SubjectRecord {
    /// The subject `(tenant, id)` with `fields`.
    pub fn into_subject(self, tenant: TenantId, id: u128, fields: Vec<FieldValue>) -> Subject {
        let SubjectRecord { created_at_s, updated_at_s, erased_at_s, kek_version, wrapped_key } =
            self;
        Subject {
            tenant,
            id,
            wrapped_key,
            kek_version,
            fields,
            created_at_s,
            updated_at_s,
            erased_at_s,
        }
    }
}

/// Encodes a subject record: layout byte, created at and updated at (8 each), erased flag
/// (1) and time (8), KEK version (4), wrapped key (2-byte length, bytes).
pub fn encode_subject(subject: &SubjectRecord) -> Vec<u8> {
    let mut w = VarWriter::new();
    w.u64(subject.created_at_s).u64(subject.updated_at_s);
    w.u8(u8::from(subject.erased_at_s.is_some())).u64(subject.erased_at_s.unwrap_or(0));
    w.u32(subject.kek_version).bytes(&subject.wrapped_key);
    w.finish()
}

/// Decodes a subject record: a live one has a wrapped key, an erased one none (and KEK
/// version 0).
pub fn decode_subject(bytes: &[u8]) -> Result<SubjectRecord, StoreError> {
    let record = "subject";
    let mut r = VarReader::new(bytes, record)?;
    let (created_at_s, updated_at_s) = (r.u64()?, r.u64()?);
    let erased_at_s = r.optional_u64()?;
    let kek_version = r.u32()?;
    let wrapped_key = r.bytes(WRAPPED_KEY_BYTES_MAX)?.to_vec();
    r.finish()?;
    let consistent = match erased_at_s {
        Some(_) => wrapped_key.is_empty() && kek_version == 0,
        None => !wrapped_key.is_empty(),
    };
    if !consistent {
        return Err(corrupt(record, "key for its state"));
    }
    Ok(SubjectRecord { created_at_s, updated_at_s, erased_at_s, kek_version, wrapped_key })
}

/// Encodes a field value (its name is the table's key): layout byte, updated at (8),
/// sealed value (2-byte length, bytes).
pub fn encode_field(value: &FieldValue) -> Vec<u8> {
    let mut w = VarWriter::new();
    w.u64(value.updated_at_s).bytes(&value.sealed);
    w.finish()
}

/// Decodes the value of field `name`.
pub fn decode_field(name: &str, bytes: &[u8]) -> Result<FieldValue, StoreError> {
    let record = "field value";
    let mut r = VarReader::new(bytes, record)?;
    let updated_at_s = r.u64()?;
    let sealed = r.bytes(SEALED_FIELD_BYTES_MAX)?.to_vec();
    r.finish()?;
    if sealed.is_empty() {
        return Err(corrupt(record, "sealed value"));
    }
    Ok(FieldValue { name: name.to_owned(), sealed, updated_at_s })
}

/// Encodes a consent record (tenant, subject, purpose and version are the table's key):
/// layout byte, granted (1), at (8), then channel and evidence (each a 2-byte length and
/// the bytes).
pub fn encode_consent(consent: &Consent) -> Vec<u8> {
    let mut w = VarWriter::new();
    w.u8(u8::from(consent.granted)).u64(consent.at_s);
    w.bytes(consent.channel.as_bytes()).bytes(consent.evidence.as_bytes());
    w.finish()
}

/// Decodes version `version` of `(tenant, subject, purpose)`'s consent.
pub fn decode_consent(
    (tenant, subject, purpose, version): (TenantId, u128, &str, u32),
    bytes: &[u8],
) -> Result<Consent, StoreError> {
    let record = "consent";
    let mut r = VarReader::new(bytes, record)?;
    let granted = r.flag()?;
    let at_s = r.u64()?;
    let channel = r.text(CHANNEL_LEN_MAX)?.to_owned();
    let evidence = r.text(EVIDENCE_BYTES_MAX)?.to_owned();
    r.finish()?;
    if !valid_token(&channel, CHANNEL_LEN_MAX) || !valid_evidence(&evidence) {
        return Err(corrupt(record, "text"));
    }
    let purpose = purpose.to_owned();
    Ok(Consent { tenant, subject, purpose, version, granted, channel, evidence, at_s })
}

fn corrupt(record: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{record} record has an invalid {what}"))
}

struct Writer<const N: usize> {
    buf: [u8; N],
    at: usize,
}

impl<const N: usize> Writer<N> {
    fn new() -> Self {
        let mut buf = [0u8; N];
        buf[0] = LAYOUT_V1;
        Self { buf, at: 1 }
    }

    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
        self
    }

    fn u128(&mut self, v: u128) -> &mut Self {
        self.put(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_le_bytes())
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.put(&v.to_le_bytes())
    }

    fn finish(&self) -> [u8; N] {
        assert_eq!(self.at, N, "every byte of the record layout is written");
        self.buf
    }
}

/// Reads fields from a record whose length was checked up front, so field reads cannot
/// run past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    record: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], len: usize, record: &'static str) -> Result<Self, StoreError> {
        if bytes.len() != len {
            return Err(corrupt(record, "length"));
        }
        if bytes[0] != LAYOUT_V1 {
            return Err(corrupt(record, "layout byte"));
        }
        Ok(Self { bytes, at: 1, record })
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }

    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn amount(&mut self) -> Result<u64, StoreError> {
        let value = self.u64();
        if value > AMOUNT_MAX {
            return Err(corrupt(self.record, "amount or balance"));
        }
        Ok(value)
    }
}

/// A length-prefixed record under construction. Every length written was bounded by the
/// record's rules before, so a field longer than a 2-byte length is a programmer error.
struct VarWriter {
    buf: Vec<u8>,
}

impl VarWriter {
    fn new() -> Self {
        Self { buf: vec![LAYOUT_V1] }
    }

    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.put(&[v])
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_le_bytes())
    }

    /// A 2-byte length, then the bytes.
    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).expect("record fields are bounded below 64 KiB");
        self.put(&len.to_le_bytes()).put(bytes)
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads a length-prefixed record, every read checked against the end.
struct VarReader<'a> {
    bytes: &'a [u8],
    at: usize,
    record: &'static str,
}

impl<'a> VarReader<'a> {
    fn new(bytes: &'a [u8], record: &'static str) -> Result<Self, StoreError> {
        match bytes.first() {
            Some(&LAYOUT_V1) => Ok(Self { bytes, at: 1, record }),
            Some(_) => Err(corrupt(record, "layout byte")),
            None => Err(corrupt(record, "length")),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt(self.record, "length"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let record = self.record;
        self.take(N)?.try_into().map_err(|_| corrupt(record, "length"))
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn flag(&mut self) -> Result<bool, StoreError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt(self.record, "flag")),
        }
    }

    /// A flag and a u64 that must be 0 when the flag is clear.
    fn optional_u64(&mut self) -> Result<Option<u64>, StoreError> {
        let (present, value) = (self.flag()?, self.u64()?);
        match (present, value) {
            (true, value) => Ok(Some(value)),
            (false, 0) => Ok(None),
            (false, _) => Err(corrupt(self.record, "optional field")),
        }
    }

    /// A 2-byte length, at most `len_max`, then the bytes.
    fn bytes(&mut self, len_max: usize) -> Result<&'a [u8], StoreError> {
        let len = usize::from(self.u16()?);
        if len > len_max {
            return Err(corrupt(self.record, "field length"));
        }
        self.take(len)
    }

    fn text(&mut self, len_max: usize) -> Result<&'a str, StoreError> {
        let record = self.record;
        std::str::from_utf8(self.bytes(len_max)?).map_err(|_| corrupt(record, "text"))
    }

    /// Refuses trailing bytes.
    fn finish(&self) -> Result<(), StoreError> {
        if self.at == self.bytes.len() { Ok(()) } else { Err(corrupt(self.record, "length")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            id: u128::MAX - 1,
            ledger: 840,
            code: 7,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::CLOSED),
            user_data: 42,
            subject_id: 1 << 100,
            debits_pending: 1,
            debits_posted: 2,
            credits_pending: 3,
            credits_posted: AMOUNT_MAX,
            timestamp: 1_700_000_000_000_000_000,
        }
    }

    fn transfer() -> Transfer {
        Transfer {
            id: 9,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: AMOUNT_MAX,
            pending_id: 3,
            user_data: 4,
            ledger: 5,
            code: 6,
            flags: TransferFlags::POST_PENDING.union(TransferFlags::LINKED),
            timeout_seconds: 0,
            timestamp: 8,
        }
    }

    #[test]
    fn account_round_trips() {
        assert_eq!(decode_account(&encode_account(&account())).unwrap(), account());
    }

    #[test]
    fn transfer_round_trips() {
        assert_eq!(decode_transfer(&encode_transfer(&transfer())).unwrap(), transfer());
    }

    fn api_key() -> StoredApiKey {
        let record = ApiKeyRecord {
            key_id: "pk_a".into(),
            tenant: 3,
            secret_digest: [5; 32],
            sealed_secret: vec![6; SEALED_SECRET_BYTES_MAX],
        };
        StoredApiKey { record, created_at_s: 1_900_000_000, revoked_at_s: Some(1_900_000_001) }
    }

    fn operator() -> Operator {
        Operator {
            id: 12,
            username: "ada.l".into(),
            role: Role::InformationOfficer,
            password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            totp_sealed: vec![1; 44],
            failed_attempts: FAILED_ATTEMPTS_MAX,
            locked: true,
            disabled: false,
            totp_last_step: Some(0),
            created_at_s: 7,
        }
    }

    fn session() -> Session {
        let mut session = Session::new("0123456789abcdef", "12", "admin", 1_900_000_000);
        session.revoked = true;
        session
    }

    #[test]
    fn security_records_round_trip() {
        let key = api_key();
        assert_eq!(decode_api_key("pk_a", &encode_api_key(&key)).unwrap(), key);
        let active = StoredApiKey { revoked_at_s: None, ..api_key() };
        assert_eq!(decode_api_key("pk_a", &encode_api_key(&active)).unwrap(), active);
        assert_eq!(decode_operator(&encode_operator(&operator())).unwrap(), operator());
        let fresh = Operator { totp_last_step: None, locked: false, disabled: true, ..operator() };
        assert_eq!(decode_operator(&encode_operator(&fresh)).unwrap(), fresh);
        let id = session().id;
        assert_eq!(decode_session(&id, &encode_session(&session())).unwrap(), session());
    }

    #[test]
    fn format_1_api_keys_decode_without_a_sealed_secret() {
        let mut row = 9u64.to_le_bytes().to_vec();
        row.extend_from_slice(&[4; 32]);
        let key = decode_api_key_v0("pk_old", &row).unwrap();
        assert_eq!((key.record.tenant, key.record.secret_digest), (9, [4; 32]));
        assert!(key.record.sealed_secret.is_empty() && key.revoked_at_s.is_none());
        assert!(decode_api_key_v0("pk_old", &row[..39]).is_err());
    }

    #[test]
    fn corrupt_security_records_are_reported_not_panicked() {
        let key = encode_api_key(&api_key());
        for cut in 0..key.len() {
            assert!(decode_api_key("pk_a", &key[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = key.clone();
        trailing.push(0);
        assert!(decode_api_key("pk_a", &trailing).is_err());
        let mut bad_flag = key;
        bad_flag[1 + 8 + 32 + 8] = 2;
        assert!(decode_api_key("pk_a", &bad_flag).is_err());
        let op = encode_operator(&operator());
        for cut in 0..op.len() {
            assert!(decode_operator(&op[..cut]).is_err(), "cut at {cut}");
        }
        let edits: [(usize, u8); 4] = [(0, 2), (9, 0), (10, 0xf0), (11, 11)];
        for (at, value) in edits {
            let mut bad = op.clone();
            bad[at] = value;
            assert!(decode_operator(&bad).is_err(), "byte {at} = {value}");
        }
        let mut bad_name = operator();
        bad_name.username = "Ada".into();
        assert!(decode_operator(&encode_operator(&bad_name)).is_err());
        let session = encode_session(&session());
        for cut in 0..session.len() {
            assert!(decode_session("0123456789abcdef", &session[..cut]).is_err());
        }
    }

    fn subject_record() -> SubjectRecord {
        SubjectRecord {
            created_at_s: 1_900_000_000,
            updated_at_s: 1_900_000_005,
            erased_at_s: None,
            kek_version: 3,
            wrapped_key: vec![0x5a; WRAPPED_KEY_BYTES_MAX],
        }
    }

    fn consent() -> Consent {
        Consent {
            tenant: 4,
            subject: 1 << 90,
            purpose: "marketing".into(),
            version: 2,
            granted: true,
            channel: "call_centre".into(),
            evidence: "rec/2031-04-01/17".into(),
            at_s: 1_900_000_100,
        }
    }

    #[test]
    fn vault_records_round_trip() {
        let live = subject_record();
        assert_eq!(decode_subject(&encode_subject(&live)).unwrap(), live);
        let erased = SubjectRecord {
            erased_at_s: Some(1_900_000_009),
            kek_version: 0,
            wrapped_key: vec![],
            ..subject_record()
        };
        assert_eq!(decode_subject(&encode_subject(&erased)).unwrap(), erased);
        let value = FieldValue {
            name: "email".into(),
            sealed: vec![1; SEALED_FIELD_BYTES_MAX],
            updated_at_s: 9,
        };
        assert_eq!(decode_field("email", &encode_field(&value)).unwrap(), value);
        let c = consent();
        let key = (c.tenant, c.subject, c.purpose.as_str(), c.version);
        assert_eq!(decode_consent(key, &encode_consent(&c)).unwrap(), c);
    }

    #[test]
    fn corrupt_vault_records_are_reported_not_panicked() {
        let subject = encode_subject(&subject_record());
        for cut in 0..subject.len() {
            assert!(decode_subject(&subject[..cut]).is_err(), "cut at {cut}");
        }
        let keyless = SubjectRecord { wrapped_key: vec![], ..subject_record() };
        assert!(decode_subject(&encode_subject(&keyless)).is_err(), "live without a key");
        let keyed = SubjectRecord { erased_at_s: Some(1), ..subject_record() };
        assert!(decode_subject(&encode_subject(&keyed)).is_err(), "erased with a key");
        let empty = FieldValue { name: "x".into(), sealed: vec![], updated_at_s: 1 };
        assert!(decode_field("x", &encode_field(&empty)).is_err());
        let c = consent();
        let key = (c.tenant, c.subject, c.purpose.as_str(), c.version);
        let bytes = encode_consent(&c);
        for cut in 0..bytes.len() {
            assert!(decode_consent(key, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_flag = bytes.clone();
        bad_flag[1] = 2;
        assert!(decode_consent(key, &bad_flag).is_err());
        let shouting = Consent { channel: "WEB".into(), ..consent() };
        assert!(decode_consent(key, &encode_consent(&shouting)).is_err());
    }

    #[test]
    fn corruption_is_reported_not_panicked() {
        let good = encode_transfer(&transfer());
        assert!(decode_transfer(&good[..good.len() - 1]).is_err());
        let mut bad_layout = good;
        bad_layout[0] = 9;
        assert!(decode_transfer(&bad_layout).is_err());
        let mut bad_amount = good;
        bad_amount[1 + 16 * 5 + 7] = 0xff;
        assert!(decode_transfer(&bad_amount).is_err());
        let mut bad_flags = encode_account(&account());
        bad_flags[1 + 48 + 6 + 1] = 0xff;
        assert!(decode_account(&bad_flags).is_err());
    }
}
