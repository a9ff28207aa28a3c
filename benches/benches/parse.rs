//! The hot path's JSON codec against serde_json doing the same work.
//!
//! Parsing: a create-transfers body of 1, 100 and 1000 transfers, decoded into
//! `NewTransfer`s by `gateway::wire::decode_transfers` (simd-json tape, in place) and by a
//! serde_json baseline: a `deny_unknown_fields` derive with borrowed `&str` UUIDs, the
//! same UUID parser, the same range checks and flag names folded without allocating.
//! simd-json scrambles its input, so every iteration of both first copies the body into a
//! reused buffer. Encoding: 1000 transfers written as a JSON array by
//! `gateway::wire::write_transfer` and by `serde_json::to_writer` of a derived
//! `Serialize` view (same UUID formatting, same omitted fields). Throughput is in bytes of
//! JSON read or written.

use std::fmt;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gateway::wire::{DecodeLimits, Decoded, decode_transfers, encode_uuid, parse_uuid};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use storage::ledger::{AMOUNT_MAX, NewTransfer, Transfer, TransferFlags};

const LIMITS: DecodeLimits = DecodeLimits { events_max: 8190, depth_max: 8 };
const BATCH_SIZES: [usize; 3] = [1, 100, 1000];

/// A small deterministic generator (splitmix64), so bodies are the same on every run.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uuid(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

fn uuid_text(id: u128) -> String {
    String::from_utf8_lossy(&encode_uuid(id)).into_owned()
}

/// A realistic transfer as a client sends it: plain card payments, some authorisations
/// (pending with a timeout) and some linked pairs, most carrying `user_data`.
fn transfer_json(ids: &mut Ids, index: usize) -> String {
    let id = uuid_text(ids.uuid());
    let debit = uuid_text(ids.uuid());
    let credit = uuid_text(ids.uuid());
    let amount = ids.next() % 5_000_000 + 1;
    let (flags, timeout) = match index % 10 {
        0 | 1 => (r#"["pending"]"#, r#","timeout_seconds":3600"#),
        2 => (r#"["linked"]"#, ""),
        _ => ("[]", ""),
    };
    let user_data = if index % 4 == 3 {
        String::new()
    } else {
        format!(r#","user_data":"{}""#, uuid_text(ids.uuid()))
    };
    format!(
        r#"{{"id":"{id}","debit_account_id":"{debit}","credit_account_id":"{credit}","amount":{amount},"ledger":710,"code":1,"flags":{flags}{timeout}{user_data}}}"#
    )
}

fn body(count: usize) -> Vec<u8> {
    let mut ids = Ids(u64::try_from(count).unwrap_or(0));
    if count == 1 {
        return transfer_json(&mut ids, 0).into_bytes();
    }
    let items: Vec<String> = (0..count).map(|index| transfer_json(&mut ids, index)).collect();
    format!("[{}]", items.join(",")).into_bytes()
}

// The serde_json baseline.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferIn<'a> {
    id: &'a str,
    #[serde(default)]
    debit_account_id: Option<&'a str>,
    #[serde(default)]
    credit_account_id: Option<&'a str>,
    #[serde(default)]
    amount: Option<u64>,
    #[serde(default)]
    pending_id: Option<&'a str>,
    #[serde(default)]
    ledger: Option<u32>,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    flags: Option<FlagsIn>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
    #[serde(default)]
    user_data: Option<&'a str>,
}

/// Flag names folded into a set as they are read, as our decoder does.
struct FlagsIn(TransferFlags);

impl<'de> Deserialize<'de> for FlagsIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(FlagsVisitor)
    }
}

struct FlagsVisitor;

impl<'de> Visitor<'de> for FlagsVisitor {
    type Value = FlagsIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of flag names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FlagsIn, A::Error> {
        let mut flags = TransferFlags::empty();
        while let Some(name) = seq.next_element::<&'de str>()? {
            let flag =
                TransferFlags::from_name(name).ok_or_else(|| de::Error::custom("unknown flag"))?;
            flags = flags.union(flag);
        }
        Ok(FlagsIn(flags))
    }
}

/// What the baseline rejected, as a field name.
#[derive(Debug)]
struct Invalid(&'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}", self.0)
    }
}

fn uuid_field(text: Option<&str>, name: &'static str) -> Result<u128, Invalid> {
    text.map_or(Ok(0), |text| parse_uuid(text).ok_or(Invalid(name)))
}

impl TryFrom<TransferIn<'_>> for NewTransfer {
    type Error = Invalid;

    fn try_from(t: TransferIn<'_>) -> Result<Self, Invalid> {
        let amount = t.amount.unwrap_or(0);
        if amount > AMOUNT_MAX {
            return Err(Invalid("amount"));
        }
        Ok(NewTransfer {
            id: parse_uuid(t.id).ok_or(Invalid("id"))?,
            debit_account_id: uuid_field(t.debit_account_id, "debit_account_id")?,
            credit_account_id: uuid_field(t.credit_account_id, "credit_account_id")?,
            amount,
            pending_id: uuid_field(t.pending_id, "pending_id")?,
            user_data: uuid_field(t.user_data, "user_data")?,
            ledger: t.ledger.unwrap_or(0),
            code: t.code.unwrap_or(0),
            flags: t.flags.map_or(TransferFlags::empty(), |flags| flags.0),
            timeout_seconds: t.timeout_seconds.unwrap_or(0),
        })
    }
}

fn serde_decode(body: &[u8]) -> Result<Decoded<NewTransfer>, Invalid> {
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_array {
        let one: TransferIn<'_> = serde_json::from_slice(body).map_err(|_| Invalid("json"))?;
        return one.try_into().map(Decoded::One);
    }
    let many: Vec<TransferIn<'_>> = serde_json::from_slice(body).map_err(|_| Invalid("json"))?;
    if many.is_empty() || many.len() > LIMITS.events_max {
        return Err(Invalid("batch size"));
    }
    many.into_iter().map(NewTransfer::try_from).collect::<Result<_, _>>().map(Decoded::Many)
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_transfers");
    for count in BATCH_SIZES {
        let body = body(count);
        let mut scratch = body.clone();
        let expected = decode_transfers(&mut scratch, &LIMITS).expect("a valid body");
        assert_eq!(
            serde_decode(&body).unwrap_or_else(|invalid| panic!("{invalid}")),
            expected,
            "same result"
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        let mut buffer = Vec::with_capacity(body.len());
        group.bench_with_input(BenchmarkId::new("simd_json", count), &body, |b, body| {
            b.iter(|| {
                buffer.clear();
                buffer.extend_from_slice(body);
                black_box(decode_transfers(&mut buffer, &LIMITS).is_ok())
            });
        });
        group.bench_with_input(BenchmarkId::new("serde_json", count), &body, |b, body| {
            b.iter(|| {
                buffer.clear();
                buffer.extend_from_slice(body);
                black_box(serde_decode(&buffer).is_ok())
            });
        });
    }
    group.finish();
}

// Encoding.

/// A transfer seen through serde: the same fields, omissions and UUID text as
/// `write_transfer`.
#[derive(Serialize)]
struct TransferOut {
    id: UuidOut,
    debit_account_id: UuidOut,
    credit_account_id: UuidOut,
    amount: u64,
    #[serde(skip_serializing_if = "UuidOut::is_zero")]
    pending_id: UuidOut,
    ledger: u32,
    code: u16,
    flags: FlagsOut,
    #[serde(skip_serializing_if = "is_zero")]
    timeout_seconds: u32,
    #[serde(skip_serializing_if = "UuidOut::is_zero")]
    user_data: UuidOut,
    timestamp: u64,
}

impl From<&Transfer> for TransferOut {
    fn from(t: &Transfer) -> Self {
        Self {
            id: UuidOut(t.id),
            debit_account_id: UuidOut(t.debit_account_id),
            credit_account_id: UuidOut(t.credit_account_id),
            amount: t.amount,
            pending_id: UuidOut(t.pending_id),
            ledger: t.ledger,
            code: t.code,
            flags: FlagsOut(t.flags),
            timeout_seconds: t.timeout_seconds,
            user_data: UuidOut(t.user_data),
            timestamp: t.timestamp,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

struct UuidOut(u128);

impl UuidOut {
    fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for UuidOut {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = encode_uuid(self.0);
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

struct FlagsOut(TransferFlags);

impl Serialize for FlagsOut {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for name in self.0.names() {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

/// A slice of transfers serialized as an array, converting each on the fly.
struct TransfersOut<'a>(&'a [Transfer]);

impl Serialize for TransfersOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(TransferOut::from))
    }
}

fn write_all(out: &mut Vec<u8>, transfers: &[Transfer]) {
    out.push(b'[');
    for (index, transfer) in transfers.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        gateway::wire::write_transfer(out, transfer);
    }
    out.push(b']');
}

fn stored_transfers(count: usize) -> Vec<Transfer> {
    let mut scratch = body(count);
    let decoded = decode_transfers(&mut scratch, &LIMITS).expect("a valid body").into_vec();
    let start = 1_760_000_000_000_000_000u64;
    (0u64..)
        .zip(decoded)
        .map(|(n, t)| Transfer {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount: t.amount,
            pending_id: t.pending_id,
            user_data: t.user_data,
            ledger: t.ledger,
            code: t.code,
            flags: t.flags,
            timeout_seconds: t.timeout_seconds,
            timestamp: start + n,
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let transfers = stored_transfers(1000);
    let mut ours = Vec::new();
    write_all(&mut ours, &transfers);
    let mut theirs = Vec::new();
    serde_json::to_writer(&mut theirs, &TransfersOut(&transfers)).expect("serializable");
    assert_eq!(ours, theirs, "same bytes");

    let mut group = c.benchmark_group("encode_transfers");
    group.throughput(Throughput::Bytes(ours.len() as u64));
    let mut out = Vec::with_capacity(ours.len());
    group.bench_function(BenchmarkId::new("write_transfer", 1000), |b| {
        b.iter(|| {
            out.clear();
            write_all(&mut out, black_box(&transfers));
            black_box(out.len())
        });
    });
    group.bench_function(BenchmarkId::new("serde_json", 1000), |b| {
        b.iter(|| {
            out.clear();
            let written = serde_json::to_writer(&mut out, &TransfersOut(black_box(&transfers)));
            black_box(written.is_ok())
        });
    });
    group.finish();
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
