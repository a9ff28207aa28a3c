//! Request bodies to ledger events: create-accounts and create-transfers JSON, parsed in
//! place.
//!
//! simd-json builds a tape over the request buffer (strings are unescaped in place and
//! borrowed); we walk that tape once, matching keys to fields and filling the ledger's
//! `NewAccount`/`NewTransfer` directly. A body is one event object or an array of them,
//! and [`Decoded`] keeps which, because the response shape follows it. The first problem
//! rejects the whole body with a [`WireError`] naming the field by JSON path.
//!
//! simd-json's buffers and tape are kept per thread (one set per core, with per-core
//! runtimes: a few MiB at most) and reused for bodies up to 1 MiB, so a steady-state
//! decode allocates only its output vector; fresh buffers cost as much as the parse.
//!
//! Decoding must never allocate per field or per event beyond that (error paths
//! excepted), never panic on any input, and never repeat more than
//! [`ECHO_BYTES_MAX`](super::ECHO_BYTES_MAX) bytes of client input in an error. It checks
//! types and ranges only; the ledger decides what values mean (a zero account id on a
//! plain transfer is the ledger's `debit_account_id_must_not_be_zero`, not a wire error).

use std::cell::RefCell;

use simd_json::{Buffers, ErrorType, Node, StaticNode, Tape};
use storage::ledger::{AMOUNT_MAX, AccountFlags, NewAccount, NewTransfer, TransferFlags};

use super::{WireError, echo};

/// The most events one request may carry (TigerBeetle's batch size).
pub const EVENTS_MAX: usize = 8190;

/// The deepest nesting a body needs: an array of events, each an object holding the
/// `flags` array. Limits below this reject valid bodies.
pub const DEPTH_NEEDED: usize = 3;

/// Bounds on a body, checked while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The most events an array may hold (at most [`EVENTS_MAX`] makes sense).
    pub events_max: usize,
    /// The deepest nesting of arrays and objects simd-json accepts before giving up with
    /// `invalid_json`; at least [`DEPTH_NEEDED`]. It bounds the parser's work on hostile
    /// input such as `[[[[...]]]]`.
    pub depth_max: usize,
}

/// What a body held: one event object, or an array of them. The response mirrors it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// The body was a single object.
    One(T),
    /// The body was an array of 1 to `events_max` objects.
    Many(Vec<T>),
}

impl<T> Decoded<T> {
    /// The events, in body order.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Self::One(event) => std::slice::from_ref(event),
            Self::Many(events) => events,
        }
    }

    /// How many events the body held (never zero).
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no events; never true for a decoded body.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The events as a vector, in body order.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(event) => vec![event],
            Self::Many(events) => events,
        }
    }
}

/// Decodes a create-accounts body: an account object or an array of them. `body` is
/// parsed in place and left scrambled.
///
/// # Errors
///
/// A [`WireError`] for the first problem found: malformed JSON, a wrong top-level shape,
/// an empty or oversized array, or a missing, unknown, duplicated or invalid field.
pub fn decode_accounts(
    body: &mut [u8],
    limits: &DecodeLimits,
) -> Result<Decoded<NewAccount>, WireError> {
    decode::<AccountSchema>(body, limits)
}

/// Decodes a create-transfers body: a transfer object or an array of them. `body` is
/// parsed in place and left scrambled.
///
/// # Errors
///
/// As [`decode_accounts`].
pub fn decode_transfers(
    body: &mut [u8],
    limits: &DecodeLimits,
) -> Result<Decoded<NewTransfer>, WireError> {
    decode::<TransferSchema>(body, limits)
}

/// Parses a UUID in its canonical hyphenated 36-character form, in any letter case
/// (`0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60`), as the big-endian 128-bit integer the ledger
/// uses. Other forms (no hyphens, braces, `urn:uuid:`) are `None`. No version check.
pub fn parse_uuid(s: &str) -> Option<u128> {
    let text: &[u8; 36] = s.as_bytes().try_into().ok()?;
    if text[8] != b'-' || text[13] != b'-' || text[18] != b'-' || text[23] != b'-' {
        return None;
    }
    // The 32 digits as four little-endian words of eight, loaded straight from the text.
    let eight = |at: usize| text.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes);
    let four = |at: usize| text.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes);
    let join = |low: u32, high: u32| u64::from(low) | (u64::from(high) << 32);
    let words = [eight(0)?, join(four(9)?, four(14)?), join(four(19)?, four(24)?), eight(28)?];
    let mut value = 0u128;
    let mut valid = true;
    for word in words {
        let (number, word_valid) = hex8(word);
        value = (value << 32) | u128::from(number);
        valid &= word_valid;
    }
    valid.then_some(value)
}

/// Eight ASCII hex digits, the first in the lowest byte of `word`, as a number, and
/// whether every byte was `0-9`, `a-f` or `A-F` (if not, the number is meaningless).
/// SWAR: each step works on all eight bytes at once, with no branches.
fn hex8(word: u64) -> (u32, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // With the high bits cleared, adding at most 0x80 to a byte never carries into the
    // next: `byte + (0x80 - n)` has its high bit set exactly when `byte >= n`.
    let ascii = word & !HIGH;
    let at_least = |bytes: u64, n: u8| bytes + ONES * u64::from(0x80 - n);
    let digit = at_least(ascii, b'0') & !at_least(ascii, b'9' + 1);
    let lower = ascii | (ONES * 0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'f' + 1);
    let valid = (digit | letter) & !word & HIGH == HIGH;
    // A digit's value is its low nibble; a letter's is its low nibble plus 9.
    let nibbles = (word & (ONES * 0x0f)) + ((letter & HIGH) >> 7) * 9;
    // Pair nibbles into bytes (in the even bytes), then gather those into the low half.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let gathered = (quads | (quads >> 16)) & 0xffff_ffff;
    // The first digit pair is now the lowest byte, and the number is big-endian.
    (u32::try_from(gathered).unwrap_or_default().swap_bytes(), valid)
}

const UUID_EXAMPLE: &str = "0190b9a4-7c3e-7d1a-9c1f-3b2a1d4e5f60";

/// One event type's fields: how keys map to fields and how a field's value is stored.
trait Schema {
    type Event;
    type Field: Copy + 'static;
    /// The event with every field zero.
    const EMPTY: Self::Event;
    /// Fields that must be present.
    const REQUIRED: &'static [Self::Field];
    /// Every field name, for messages.
    const NAMES: &'static [&'static str];

    fn field(key: &str) -> Option<Self::Field>;
    fn name(field: Self::Field) -> &'static str;
    /// This field's bit in a set of seen fields.
    fn bit(field: Self::Field) -> u32;
    fn set(event: &mut Self::Event, field: Self::Field, value: Value<'_, '_>) -> Result<(), Fault>;
}

/// A field value: its node and, for arrays and objects, the nodes nested in it.
type Value<'t, 'i> = &'t [Node<'i>];

/// What is wrong with a field value, before we know the path to report.
enum Fault {
    /// The whole value is wrong: the message follows the field name.
    Value(String),
    /// Item `index` of an array value is wrong: the message stands alone.
    Item(usize, String),
}

/// Where an event sits: `None` for a lone object, `Some(i)` for index `i` of an array.
type Slot = Option<usize>;

/// Bodies up to this size are parsed with the thread's retained [`Scratch`]; larger ones
/// get fresh buffers, freed afterwards, so that one huge body does not pin its memory.
const SCRATCH_BODY_BYTES_MAX: usize = 1 << 20;

/// simd-json's working memory, kept per thread and reused: allocating it afresh (and
/// growing the tape) doubled the time to decode 100 transfers. For a body of `n` bytes it
/// holds about `2n` bytes of buffers and a tape of 24-byte nodes (about `2n` more).
struct Scratch {
    buffers: Buffers,
    depth_max: usize,
    tape: Tape<'static>,
}

impl Scratch {
    fn new(body_bytes: usize, depth_max: usize) -> Self {
        let buffers = Buffers::with_max_depth(body_bytes, depth_max);
        Self { buffers, depth_max, tape: Tape(Vec::new()) }
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

fn decode<S: Schema>(
    body: &mut [u8],
    limits: &DecodeLimits,
) -> Result<Decoded<S::Event>, WireError> {
    if body.len() > SCRATCH_BODY_BYTES_MAX {
        return decode_with::<S>(body, limits, &mut Scratch::new(body.len(), limits.depth_max));
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_some_and(|scratch| scratch.depth_max != limits.depth_max) {
                *slot = None;
            }
            let scratch = slot.get_or_insert_with(|| Scratch::new(body.len(), limits.depth_max));
            decode_with::<S>(body, limits, scratch)
        }
        // Unreachable (decoding never re-enters itself), but never worth a panic.
        Err(_) => decode_with::<S>(body, limits, &mut Scratch::new(body.len(), limits.depth_max)),
    })
}

fn decode_with<S: Schema>(
    body: &mut [u8],
    limits: &DecodeLimits,
    scratch: &mut Scratch,
) -> Result<Decoded<S::Event>, WireError> {
    let mut tape = std::mem::replace(&mut scratch.tape, Tape(Vec::new())).reset();
    let decoded = simd_json::fill_tape(body, &mut scratch.buffers, &mut tape)
        .map_err(|error| invalid_json(&error, limits.depth_max))
        .and_then(|()| decode_root::<S>(&tape.0, limits));
    scratch.tape = tape.reset();
    decoded
}

fn decode_root<S: Schema>(
    nodes: &[Node<'_>],
    limits: &DecodeLimits,
) -> Result<Decoded<S::Event>, WireError> {
    match nodes.first() {
        Some(Node::Object { .. }) => decode_event::<S>(nodes, None).map(Decoded::One),
        Some(&Node::Array { len, .. }) => decode_array::<S>(nodes, len, limits).map(Decoded::Many),
        _ => Err(WireError::whole(
            WireError::INVALID_FIELD,
            "the body must be a JSON object or an array of objects".to_owned(),
        )),
    }
}

fn decode_array<S: Schema>(
    nodes: &[Node<'_>],
    len: usize,
    limits: &DecodeLimits,
) -> Result<Vec<S::Event>, WireError> {
    check_batch_len(len, limits)?;
    let mut rest = nodes.get(1..).unwrap_or_default();
    let mut events = Vec::with_capacity(len);
    for index in 0..len {
        let (value, tail) = split_value(rest)?;
        rest = tail;
        events.push(decode_event::<S>(value, Some(index))?);
    }
    Ok(events)
}

fn check_batch_len(len: usize, limits: &DecodeLimits) -> Result<(), WireError> {
    if len == 0 {
        let message = format!("the array is empty; send 1 to {} events", limits.events_max);
        return Err(WireError::whole(WireError::EMPTY_BATCH, message));
    }
    if len > limits.events_max {
        let message =
            format!("the array holds {len} events; at most {} are allowed", limits.events_max);
        return Err(WireError::whole(WireError::TOO_MANY_EVENTS, message));
    }
    Ok(())
}

fn decode_event<S: Schema>(nodes: &[Node<'_>], slot: Slot) -> Result<S::Event, WireError> {
    let Some((&Node::Object { len, .. }, mut rest)) = nodes.split_first() else {
        return Err(not_an_object(slot));
    };
    let mut event = S::EMPTY;
    let mut seen = 0u32;
    for _ in 0..len {
        let (key, value, tail) = split_entry(rest)?;
        rest = tail;
        let field = S::field(key).ok_or_else(|| unknown_field(slot, key, S::NAMES))?;
        let name = S::name(field);
        if seen & S::bit(field) != 0 {
            let message = format!("duplicate field \"{name}\"");
            return Err(WireError::at(WireError::INVALID_FIELD, message, param(slot, name)));
        }
        seen |= S::bit(field);
        S::set(&mut event, field, value).map_err(|fault| field_error(slot, name, fault))?;
    }
    match S::REQUIRED.iter().find(|&&field| seen & S::bit(field) == 0) {
        Some(&field) => Err(missing_field(slot, S::name(field))),
        None => Ok(event),
    }
}

/// The first value of `nodes` (with its nested nodes) and the nodes after it.
fn split_value<'t, 'i>(nodes: &'t [Node<'i>]) -> Result<(Value<'t, 'i>, Value<'t, 'i>), WireError> {
    let span = match nodes.first() {
        Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
        Some(_) => 1,
        None => return Err(malformed_tape()),
    };
    nodes.split_at_checked(span).ok_or_else(malformed_tape)
}

/// The first key and value of an object's nodes, and the nodes after them.
fn split_entry<'t, 'i>(
    nodes: &'t [Node<'i>],
) -> Result<(&'i str, Value<'t, 'i>, Value<'t, 'i>), WireError> {
    let Some((&Node::String(key), rest)) = nodes.split_first() else {
        return Err(malformed_tape());
    };
    let (value, rest) = split_value(rest)?;
    Ok((key, value, rest))
}

// Field values. Optional fields take `null` as absent (zero), as serde's `Option` does.

fn is_null(value: Value<'_, '_>) -> bool {
    matches!(value.first(), Some(Node::Static(StaticNode::Null)))
}

fn uuid(value: Value<'_, '_>) -> Result<u128, Fault> {
    match value.first() {
        Some(Node::String(s)) => parse_uuid(s).ok_or_else(uuid_fault),
        _ => Err(uuid_fault()),
    }
}

fn uuid_or_zero(value: Value<'_, '_>) -> Result<u128, Fault> {
    if is_null(value) { Ok(0) } else { uuid(value) }
}

fn uuid_fault() -> Fault {
    Fault::Value(format!("must be a UUID string like \"{UUID_EXAMPLE}\""))
}

/// A JSON integer in `min..=max`; floats (even `1.0`), strings and the rest are faults.
fn int(value: Value<'_, '_>, min: u64, max: u64) -> Result<u64, Fault> {
    let n = match value.first() {
        Some(&Node::Static(StaticNode::U64(n))) => Some(n),
        Some(&Node::Static(StaticNode::I64(n))) => u64::try_from(n).ok(),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n))
        .ok_or_else(|| Fault::Value(format!("must be an integer from {min} to {max}")))
}

fn int_or_zero(value: Value<'_, '_>, max: u64) -> Result<u64, Fault> {
    if is_null(value) { Ok(0) } else { int(value, 0, max) }
}

fn u32_in(value: Value<'_, '_>, min: u64) -> Result<u32, Fault> {
    let n = int(value, min, u32::MAX.into())?;
    u32::try_from(n).map_err(|_| Fault::Value(format!("must be at most {}", u32::MAX)))
}

fn u16_in(value: Value<'_, '_>, min: u64) -> Result<u16, Fault> {
    let n = int(value, min, u16::MAX.into())?;
    u16::try_from(n).map_err(|_| Fault::Value(format!("must be at most {}", u16::MAX)))
}

fn u32_or_zero(value: Value<'_, '_>) -> Result<u32, Fault> {
    if is_null(value) { Ok(0) } else { u32_in(value, 0) }
}

fn u16_or_zero(value: Value<'_, '_>) -> Result<u16, Fault> {
    if is_null(value) { Ok(0) } else { u16_in(value, 0) }
}

/// An array of flag names from `named`, folded into one set; `null` is no flags.
fn flags<F: Copy>(
    value: Value<'_, '_>,
    named: &'static [(&'static str, F)],
    empty: F,
    union: fn(F, F) -> F,
) -> Result<F, Fault> {
    let items = match value.split_first() {
        Some((Node::Static(StaticNode::Null), _)) => return Ok(empty),
        Some((Node::Array { .. }, items)) => items,
        _ => {
            return Err(Fault::Value(format!(
                "must be an array of flag names, {}",
                flag_list(named)
            )));
        }
    };
    let mut set = empty;
    for (index, item) in items.iter().enumerate() {
        set = union(set, flag(item, named).map_err(|message| Fault::Item(index, message))?);
    }
    Ok(set)
}

/// One flag name. Nested arrays or objects in a flags array land here as their header
/// node, are rejected, and so their inner nodes are never visited.
fn flag<F: Copy>(item: &Node<'_>, named: &'static [(&'static str, F)]) -> Result<F, String> {
    let Node::String(name) = item else {
        return Err(format!("each flag must be a string, {}", flag_list(named)));
    };
    match named.iter().find(|(n, _)| n == name) {
        Some(&(_, flag)) => Ok(flag),
        None => Err(format!("unknown flag \"{}\"; expected {}", echo(name), flag_list(named))),
    }
}

fn flag_list<F>(named: &[(&'static str, F)]) -> String {
    let names: Vec<&str> = named.iter().map(|(name, _)| *name).collect();
    format!("one of {}", names.join(", "))
}

// Errors. Built only on the error path, so the happy path allocates nothing for them.

fn param(slot: Slot, field: &str) -> String {
    match slot {
        None => field.to_owned(),
        Some(index) => format!("[{index}].{field}"),
    }
}

fn field_error(slot: Slot, name: &str, fault: Fault) -> WireError {
    match fault {
        Fault::Value(rest) => {
            WireError::at(WireError::INVALID_FIELD, format!("{name} {rest}"), param(slot, name))
        }
        Fault::Item(index, message) => WireError::at(
            WireError::INVALID_FIELD,
            message,
            param(slot, &format!("{name}[{index}]")),
        ),
    }
}

fn missing_field(slot: Slot, name: &str) -> WireError {
    WireError::at(WireError::MISSING_FIELD, format!("missing field \"{name}\""), param(slot, name))
}

fn unknown_field(slot: Slot, key: &str, names: &[&str]) -> WireError {
    let key = echo(key);
    let message = format!("unknown field \"{key}\"; expected one of {}", names.join(", "));
    WireError::at(WireError::UNKNOWN_FIELD, message, param(slot, &key))
}

fn not_an_object(slot: Slot) -> WireError {
    let message = "each event must be a JSON object".to_owned();
    match slot {
        Some(index) => WireError::at(WireError::INVALID_FIELD, message, format!("[{index}]")),
        None => WireError::whole(WireError::INVALID_FIELD, message),
    }
}

fn invalid_json(error: &simd_json::Error, depth_max: usize) -> WireError {
    // The error kind and offset only: `Error`'s Display also quotes an input character.
    let message = match error.error() {
        ErrorType::DepthLimitExceeded => {
            format!("the body nests arrays and objects deeper than {depth_max} levels")
        }
        kind => {
            let kind = echo(&format!("{kind:?}"));
            format!("the body is not valid JSON: {kind} near byte {}", error.index())
        }
    };
    WireError::whole(WireError::INVALID_JSON, message)
}

#[cold]
fn malformed_tape() -> WireError {
    WireError::whole(WireError::INVALID_JSON, "the body is not valid JSON".to_owned())
}

// The two event types.

struct AccountSchema;

#[derive(Clone, Copy)]
enum AccountField {
    Id,
    Ledger,
    Code,
    Flags,
    UserData,
    SubjectId,
}

impl Schema for AccountSchema {
    type Event = NewAccount;
    type Field = AccountField;
    const EMPTY: NewAccount = NewAccount {
        id: 0,
        ledger: 0,
        code: 0,
        flags: AccountFlags::empty(),
        user_data: 0,
        subject_id: 0,
    };
    const REQUIRED: &'static [AccountField] =
        &[AccountField::Id, AccountField::Ledger, AccountField::Code];
    const NAMES: &'static [&'static str] =
        &["id", "ledger", "code", "flags", "user_data", "subject_id"];

    fn field(key: &str) -> Option<AccountField> {
        Some(match key {
            "id" => AccountField::Id,
            "ledger" => AccountField::Ledger,
            "code" => AccountField::Code,
            "flags" => AccountField::Flags,
            "user_data" => AccountField::UserData,
            "subject_id" => AccountField::SubjectId,
            _ => return None,
        })
    }

    fn name(field: AccountField) -> &'static str {
        match field {
            AccountField::Id => "id",
            AccountField::Ledger => "ledger",
            AccountField::Code => "code",
            AccountField::Flags => "flags",
            AccountField::UserData => "user_data",
            AccountField::SubjectId => "subject_id",
        }
    }

    fn bit(field: AccountField) -> u32 {
        1 << field as u32
    }

    fn set(a: &mut NewAccount, field: AccountField, value: Value<'_, '_>) -> Result<(), Fault> {
        match field {
            AccountField::Id => a.id = uuid(value)?,
            AccountField::Ledger => a.ledger = u32_in(value, 0)?,
            AccountField::Code => a.code = u16_in(value, 0)?,
            AccountField::Flags => {
                a.flags =
                    flags(value, AccountFlags::NAMED, AccountFlags::empty(), AccountFlags::union)?;
            }
            AccountField::UserData => a.user_data = uuid_or_zero(value)?,
            AccountField::SubjectId => a.subject_id = uuid_or_zero(value)?,
        }
        Ok(())
    }
}

struct TransferSchema;

#[derive(Clone, Copy)]
enum TransferField {
    Id,
    DebitAccountId,
    CreditAccountId,
    Amount,
    PendingId,
    Ledger,
    Code,
    Flags,
    TimeoutSeconds,
    UserData,
}

impl Schema for TransferSchema {
    type Event = NewTransfer;
    type Field = TransferField;
    const EMPTY: NewTransfer = NewTransfer {
        id: 0,
        debit_account_id: 0,
        credit_account_id: 0,
        amount: 0,
        pending_id: 0,
        user_data: 0,
        ledger: 0,
        code: 0,
        flags: TransferFlags::empty(),
        timeout_seconds: 0,
    };
    const REQUIRED: &'static [TransferField] = &[TransferField::Id];
    const NAMES: &'static [&'static str] = &[
        "id",
        "debit_account_id",
        "credit_account_id",
        "amount",
        "pending_id",
        "ledger",
        "code",
        "flags",
        "timeout_seconds",
        "user_data",
    ];

    fn field(key: &str) -> Option<TransferField> {
        Some(match key {
            "id" => TransferField::Id,
            "debit_account_id" => TransferField::DebitAccountId,
            "credit_account_id" => TransferField::CreditAccountId,
            "amount" => TransferField::Amount,
            "pending_id" => TransferField::PendingId,
            "ledger" => TransferField::Ledger,
            "code" => TransferField::Code,
            "flags" => TransferField::Flags,
            "timeout_seconds" => TransferField::TimeoutSeconds,
            "user_data" => TransferField::UserData,
            _ => return None,
        })
    }

    fn name(field: TransferField) -> &'static str {
        match field {
            TransferField::Id => "id",
            TransferField::DebitAccountId => "debit_account_id",
            TransferField::CreditAccountId => "credit_account_id",
            TransferField::Amount => "amount",
            TransferField::PendingId => "pending_id",
            TransferField::Ledger => "ledger",
            TransferField::Code => "code",
            TransferField::Flags => "flags",
            TransferField::TimeoutSeconds => "timeout_seconds",
            TransferField::UserData => "user_data",
        }
    }

    fn bit(field: TransferField) -> u32 {
        1 << field as u32
    }

    fn set(t: &mut NewTransfer, field: TransferField, value: Value<'_, '_>) -> Result<(), Fault> {
        match field {
            TransferField::Id => t.id = uuid(value)?,
            TransferField::DebitAccountId => t.debit_account_id = uuid_or_zero(value)?,
            TransferField::CreditAccountId => t.credit_account_id = uuid_or_zero(value)?,
            TransferField::Amount => t.amount = int_or_zero(value, AMOUNT_MAX)?,
            TransferField::PendingId => t.pending_id = uuid_or_zero(value)?,
            TransferField::Ledger => t.ledger = u32_or_zero(value)?,
            TransferField::Code => t.code = u16_or_zero(value)?,
            TransferField::Flags => {
                t.flags = flags(
                    value,
                    TransferFlags::NAMED,
                    TransferFlags::empty(),
                    TransferFlags::union,
                )?;
            }
            TransferField::TimeoutSeconds => t.timeout_seconds = u32_or_zero(value)?,
            TransferField::UserData => t.user_data = uuid_or_zero(value)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
