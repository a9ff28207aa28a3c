//! Fixed-layout little-endian encodings of accounts and transfers for the embedded store.
//!
//! Each record starts with a layout byte so the format can evolve. Decoding checks the
//! length, the layout byte, the flag bits and the amount bounds, and reports corruption
//! as an error: it never panics on stored bytes.

use crate::error::StoreError;
use crate::ledger::{AMOUNT_MAX, Account, AccountFlags, Transfer, TransferFlags};

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
