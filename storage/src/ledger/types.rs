//! The ledger's vocabulary: keys, accounts, transfers, flags and events.
//!
//! Plain data with no behaviour beyond flag arithmetic. Amounts are integer minor units;
//! ids are 128-bit and client-chosen; zero means "absent" for optional ids (`pending_id`,
//! `user_data`, `subject_id`), as in TigerBeetle. Nothing here knows about encodings.

/// The internal id of a tenant (a payment network). Assigned by the store, never zero.
pub type TenantId = u64;

/// The largest amount a transfer may move and the largest value a balance may hold:
/// `i64::MAX`, so every amount and balance fits PostgreSQL's `bigint`.
pub const AMOUNT_MAX: u64 = i64::MAX as u64;

/// An id scoped to its tenant. Tenants choose ids freely, so two tenants may both own an
/// account `X`: every lookup goes through the tenant, which is what keeps tenants apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The client-chosen 128-bit id.
    pub id: u128,
}

impl Key {
    /// The key of `id` within `tenant`.
    pub const fn new(tenant: TenantId, id: u128) -> Self {
        Self { tenant, id }
    }
}

macro_rules! flags {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $flag:ident = $bit:expr, $wire:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name(u16);

        impl $name {
            $($(#[$fmeta])* pub const $flag: Self = Self(1 << $bit);)+
            /// Every flag with its wire name, in bit order.
            pub const NAMED: &'static [(&'static str, Self)] = &[$(($wire, Self::$flag)),+];
            const ALL_BITS: u16 = 0 $(| (1 << $bit))+;

            /// No flag set.
            pub const fn empty() -> Self {
                Self(0)
            }

            /// The raw bits, for storage.
            pub const fn bits(self) -> u16 {
                self.0
            }

            /// Flags from stored bits; `None` when an unknown bit is set.
            pub const fn from_bits(bits: u16) -> Option<Self> {
                if bits & !Self::ALL_BITS == 0 { Some(Self(bits)) } else { None }
            }

            /// The flag with this wire name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMED.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
            }

            /// Whether every flag of `other` is set.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Both sets of flags.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// The wire names of the flags set, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMED.iter().filter(move |(_, f)| self.contains(*f)).map(|(n, _)| *n)
            }
        }
    };
}

flags! {
    /// Account flags.
    AccountFlags {
        /// Chains this event to the next one in the batch: all succeed or none do.
        LINKED = 0, "linked";
        /// Debits (pending and posted) may never exceed posted credits.
        DEBITS_MUST_NOT_EXCEED_CREDITS = 1, "debits_must_not_exceed_credits";
        /// Credits (pending and posted) may never exceed posted debits.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 2, "credits_must_not_exceed_debits";
        /// The account takes no new transfers (voids of its pending transfers still apply).
        CLOSED = 3, "closed";
    }
}

flags! {
    /// Transfer flags.
    TransferFlags {
        /// Chains this event to the next one in the batch: all succeed or none do.
        LINKED = 0, "linked";
        /// Reserves the amount (an authorisation) until posted, voided or expired. Once its
        /// timeout passes it can no longer be posted; the store releases the reservation
        /// with an [`Event::ExpirePending`] within its expiry scan interval.
        PENDING = 1, "pending";
        /// Posts (captures) a pending transfer, fully or partially.
        POST_PENDING = 2, "post_pending";
        /// Voids (releases) a pending transfer.
        VOID_PENDING = 3, "void_pending";
        /// Moves at most the debit account's available credit balance.
        BALANCING_DEBIT = 4, "balancing_debit";
        /// Moves at most the credit account's available debit balance.
        BALANCING_CREDIT = 5, "balancing_credit";
    }
}

/// An account as stored: identity, limits and balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    /// Client-chosen id, unique within the tenant.
    pub id: u128,
    /// The ledger (one per currency or asset); transfers never cross ledgers.
    pub ledger: u32,
    /// The account's chart-of-accounts code, chosen by the client.
    pub code: u16,
    /// Limits and state.
    pub flags: AccountFlags,
    /// Opaque client data (zero when absent).
    pub user_data: u128,
    /// The pseudonymous data subject who owns the account (zero when none).
    pub subject_id: u128,
    /// Sum of pending debits.
    pub debits_pending: u64,
    /// Sum of posted debits.
    pub debits_posted: u64,
    /// Sum of pending credits.
    pub credits_pending: u64,
    /// Sum of posted credits.
    pub credits_posted: u64,
    /// When the ledger created the account: nanoseconds since the Unix epoch, unique.
    pub timestamp: u64,
}

impl Account {
    /// A new account with zero balances, created at `timestamp`.
    pub const fn open(new: &NewAccount, timestamp: u64) -> Self {
        Self {
            id: new.id,
            ledger: new.ledger,
            code: new.code,
            flags: new.flags,
            user_data: new.user_data,
            subject_id: new.subject_id,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            timestamp,
        }
    }
}

/// A request to create an account: what a client may choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// See [`Account::id`].
    pub id: u128,
    /// See [`Account::ledger`].
    pub ledger: u32,
    /// See [`Account::code`].
    pub code: u16,
    /// See [`Account::flags`].
    pub flags: AccountFlags,
    /// See [`Account::user_data`].
    pub user_data: u128,
    /// See [`Account::subject_id`].
    pub subject_id: u128,
}

/// A transfer as stored. Immutable once written; for posts and voids the account ids,
/// ledger and code are those of the pending transfer and `amount` is what moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Client-chosen id: the idempotency key, unique within the tenant.
    pub id: u128,
    /// The account debited.
    pub debit_account_id: u128,
    /// The account credited.
    pub credit_account_id: u128,
    /// Minor units moved (or reserved, for a pending transfer).
    pub amount: u64,
    /// The pending transfer this one posts or voids (zero otherwise).
    pub pending_id: u128,
    /// Opaque client data (zero when absent).
    pub user_data: u128,
    /// The ledger of both accounts.
    pub ledger: u32,
    /// The client's reason code.
    pub code: u16,
    /// Kind and chaining.
    pub flags: TransferFlags,
    /// For a pending transfer: seconds until it expires (zero: never).
    pub timeout_seconds: u32,
    /// When the ledger applied it: nanoseconds since the Unix epoch, unique.
    pub timestamp: u64,
}

impl Transfer {
    /// When a pending transfer expires (nanoseconds), or `None` if it never does.
    pub fn expires_at(&self) -> Option<u64> {
        let pending = self.flags.contains(TransferFlags::PENDING);
        (pending && self.timeout_seconds > 0)
            .then(|| self.timestamp.saturating_add(u64::from(self.timeout_seconds) * 1_000_000_000))
    }
}

/// A request to create a transfer: what a client may choose. For `post_pending` and
/// `void_pending`, zero account ids, ledger and code mean "as the pending transfer", and a
/// zero amount on `post_pending` means "the full pending amount".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    /// See [`Transfer::id`].
    pub id: u128,
    /// See [`Transfer::debit_account_id`].
    pub debit_account_id: u128,
    /// See [`Transfer::credit_account_id`].
    pub credit_account_id: u128,
    /// See [`Transfer::amount`].
    pub amount: u64,
    /// See [`Transfer::pending_id`].
    pub pending_id: u128,
    /// See [`Transfer::user_data`].
    pub user_data: u128,
    /// See [`Transfer::ledger`].
    pub ledger: u32,
    /// See [`Transfer::code`].
    pub code: u16,
    /// See [`Transfer::flags`].
    pub flags: TransferFlags,
    /// See [`Transfer::timeout_seconds`].
    pub timeout_seconds: u32,
}

/// What became of a pending transfer. A pending transfer with no status is still pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingStatus {
    /// Captured by a `post_pending` transfer.
    Posted,
    /// Released by a `void_pending` transfer.
    Voided,
    /// Released because its timeout passed.
    Expired,
}

impl PendingStatus {
    /// The stable byte this status is stored as.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Posted => 1,
            Self::Voided => 2,
            Self::Expired => 3,
        }
    }

    /// The status stored as `byte`, if it is one.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Posted),
            2 => Some(Self::Voided),
            3 => Some(Self::Expired),
            _ => None,
        }
    }
}

/// One event of a batch, for one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Create an account.
    CreateAccount(TenantId, NewAccount),
    /// Create a transfer.
    CreateTransfer(TenantId, NewTransfer),
    /// Release a pending transfer whose timeout has passed (issued by the store, never by
    /// a client). Its result is `ok`, or the status that made it moot.
    ExpirePending(Key),
}

impl Event {
    /// Whether this event chains to the next one.
    pub fn is_linked(&self) -> bool {
        match self {
            Self::CreateAccount(_, a) => a.flags.contains(AccountFlags::LINKED),
            Self::CreateTransfer(_, t) => t.flags.contains(TransferFlags::LINKED),
            Self::ExpirePending(_) => false,
        }
    }
}
