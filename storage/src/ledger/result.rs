//! Per-event result codes: stable snake_case names and stable stored numbers.
//!
//! This is the one table of codes (`docs/result-codes.md` renders it for clients). A
//! code's name and number never change once released; new codes get new numbers.
//! Nothing here decides HTTP statuses: that mapping lives in the gateway.

macro_rules! result_codes {
    ($($(#[$meta:meta])* $variant:ident = $num:literal, $name:literal, $stored:literal;)+) => {
        /// The result of one event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ResultCode {
            $($(#[$meta])* $variant = $num,)+
        }

        impl ResultCode {
            /// Every code, in number order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable snake_case name clients see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The code stored as `byte`, if it is one.
            pub const fn from_byte(byte: u8) -> Option<Self> {
                match byte {
                    $($num => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// Whether a rejection with this code is stored under the event's id, so that
            /// a retry answers `id_already_failed` even after balances changed. Codes that
            /// depend only on the event itself are not stored: a retry recomputes them.
            pub const fn is_stored_failure(self) -> bool {
                match self {
                    $(Self::$variant => $stored,)+
                }
            }
        }
    };
}

result_codes! {
    /// The event was applied.
    Ok = 0, "ok", false;
    /// An identical event with this id was applied before; nothing changed.
    Exists = 1, "exists", false;
    /// An event with this id but other fields was applied before; nothing changed.
    ExistsWithDifferentFields = 2, "exists_with_different_fields", false;
    /// An earlier attempt with this id was rejected; the rejection stands.
    IdAlreadyFailed = 3, "id_already_failed", false;
    /// Another event of this linked chain failed, so this one was not applied.
    LinkedEventFailed = 4, "linked_event_failed", false;
    /// The batch ended with a `linked` event: the chain was never closed.
    LinkedEventChainOpen = 5, "linked_event_chain_open", false;
    /// `id` is zero.
    IdMustNotBeZero = 6, "id_must_not_be_zero", false;
    /// `id` is 2^128-1, which is reserved.
    IdMustNotBeIntMax = 7, "id_must_not_be_int_max", false;
    /// Two flags that exclude each other are both set.
    FlagsAreMutuallyExclusive = 8, "flags_are_mutually_exclusive", false;
    /// `ledger` is zero.
    LedgerMustNotBeZero = 9, "ledger_must_not_be_zero", false;
    /// `code` is zero.
    CodeMustNotBeZero = 10, "code_must_not_be_zero", false;
    /// `debit_account_id` is zero.
    DebitAccountIdMustNotBeZero = 11, "debit_account_id_must_not_be_zero", false;
    /// `credit_account_id` is zero.
    CreditAccountIdMustNotBeZero = 12, "credit_account_id_must_not_be_zero", false;
    /// The debit and credit accounts are the same.
    AccountsMustBeDifferent = 13, "accounts_must_be_different", false;
    /// `amount` is zero.
    AmountMustNotBeZero = 14, "amount_must_not_be_zero", false;
    /// `amount` is above 2^63-1.
    AmountExceedsMaximum = 15, "amount_exceeds_maximum", false;
    /// `pending_id` is set on a transfer that neither posts nor voids.
    PendingIdMustBeZero = 16, "pending_id_must_be_zero", false;
    /// `pending_id` is missing on a post or void.
    PendingIdMustNotBeZero = 17, "pending_id_must_not_be_zero", false;
    /// `pending_id` is the transfer's own id.
    PendingIdMustBeDifferent = 18, "pending_id_must_be_different", false;
    /// `timeout_seconds` is set on a transfer that is not pending.
    TimeoutReservedForPendingTransfer = 19, "timeout_reserved_for_pending_transfer", false;
    /// The debit account does not exist (for this tenant).
    DebitAccountNotFound = 20, "debit_account_not_found", true;
    /// The credit account does not exist (for this tenant).
    CreditAccountNotFound = 21, "credit_account_not_found", true;
    /// The two accounts are on different ledgers.
    AccountsMustHaveTheSameLedger = 22, "accounts_must_have_the_same_ledger", true;
    /// The transfer's `ledger` is not the accounts' ledger.
    TransferMustHaveTheSameLedgerAsAccounts = 23, "transfer_must_have_the_same_ledger_as_accounts", true;
    /// The pending transfer to post or void does not exist.
    PendingTransferNotFound = 24, "pending_transfer_not_found", true;
    /// The transfer to post or void is not a pending transfer.
    PendingTransferNotPending = 25, "pending_transfer_not_pending", true;
    /// `debit_account_id` differs from the pending transfer's.
    PendingTransferHasDifferentDebitAccountId = 26, "pending_transfer_has_different_debit_account_id", true;
    /// `credit_account_id` differs from the pending transfer's.
    PendingTransferHasDifferentCreditAccountId = 27, "pending_transfer_has_different_credit_account_id", true;
    /// `ledger` differs from the pending transfer's.
    PendingTransferHasDifferentLedger = 28, "pending_transfer_has_different_ledger", true;
    /// `code` differs from the pending transfer's.
    PendingTransferHasDifferentCode = 29, "pending_transfer_has_different_code", true;
    /// A post asks for more than the pending transfer reserved.
    ExceedsPendingTransferAmount = 30, "exceeds_pending_transfer_amount", true;
    /// A void names an amount other than the pending transfer's.
    PendingTransferHasDifferentAmount = 31, "pending_transfer_has_different_amount", true;
    /// The pending transfer was already posted.
    PendingTransferAlreadyPosted = 32, "pending_transfer_already_posted", true;
    /// The pending transfer was already voided.
    PendingTransferAlreadyVoided = 33, "pending_transfer_already_voided", true;
    /// The pending transfer's timeout has passed; its reservation is released.
    PendingTransferExpired = 34, "pending_transfer_expired", true;
    /// The debit account's pending debits would exceed 2^63-1.
    OverflowsDebitsPending = 35, "overflows_debits_pending", true;
    /// The credit account's pending credits would exceed 2^63-1.
    OverflowsCreditsPending = 36, "overflows_credits_pending", true;
    /// The debit account's posted debits would exceed 2^63-1.
    OverflowsDebitsPosted = 37, "overflows_debits_posted", true;
    /// The credit account's posted credits would exceed 2^63-1.
    OverflowsCreditsPosted = 38, "overflows_credits_posted", true;
    /// The debit account's pending plus posted debits would exceed 2^63-1.
    OverflowsDebits = 39, "overflows_debits", true;
    /// The credit account's pending plus posted credits would exceed 2^63-1.
    OverflowsCredits = 40, "overflows_credits", true;
    /// The pending transfer's expiry time would overflow.
    OverflowsTimeout = 41, "overflows_timeout", true;
    /// The debit account's debits would exceed its credits (`debits_must_not_exceed_credits`).
    ExceedsCredits = 42, "exceeds_credits", true;
    /// The credit account's credits would exceed its debits (`credits_must_not_exceed_debits`).
    ExceedsDebits = 43, "exceeds_debits", true;
    /// The debit or credit account is closed.
    AccountClosed = 44, "account_closed", true;
}

impl ResultCode {
    /// The code with this snake_case name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }

    /// Whether the event left a record (new, or an identical one from before).
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Ok | Self::Exists)
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
