//! Shared vocabulary of the ledger tests: `const` builders of account and transfer events
//! (so scenario tables can be `static`), and a balances accessor.
//!
//! Builders default to tenant [`TENANT`], ledger 1 and code 1; a `post`/`void` defaults to
//! zero accounts, ledger, code and amount ("as the pending transfer").

use storage::ledger::{
    Account, AccountFlags, Event, Key, NewAccount, NewTransfer, TenantId, TransferFlags,
};

/// The tenant every builder uses unless told otherwise.
pub const TENANT: TenantId = 1;
/// A second tenant, for isolation tests.
pub const OTHER_TENANT: TenantId = 2;
/// One second in nanoseconds.
pub const SECOND: u64 = 1_000_000_000;

/// An account-creation event under construction.
#[derive(Clone, Copy, Debug)]
pub struct Acct {
    tenant: TenantId,
    new: NewAccount,
}

impl Acct {
    /// Account `id` of [`TENANT`] on `ledger`, code 1, no flags.
    pub const fn new(id: u128, ledger: u32) -> Self {
        let new = NewAccount {
            id,
            ledger,
            code: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
            subject_id: 0,
        };
        Self { tenant: TENANT, new }
    }

    /// Adds `flags`.
    pub const fn flags(mut self, flags: AccountFlags) -> Self {
        self.new.flags = self.new.flags.union(flags);
        self
    }

    /// Chains this event to the next one.
    pub const fn linked(self) -> Self {
        self.flags(AccountFlags::LINKED)
    }

    /// Sets the chart-of-accounts code.
    pub const fn code(mut self, code: u16) -> Self {
        self.new.code = code;
        self
    }

    /// Sets the opaque client data.
    pub const fn user_data(mut self, user_data: u128) -> Self {
        self.new.user_data = user_data;
        self
    }

    /// Creates the account in `tenant` instead.
    pub const fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = tenant;
        self
    }

    /// The event.
    pub const fn ev(self) -> Event {
        Event::CreateAccount(self.tenant, self.new)
    }
}

/// A transfer-creation event under construction.
#[derive(Clone, Copy, Debug)]
pub struct Tx {
    tenant: TenantId,
    new: NewTransfer,
}

impl Tx {
    /// Single-phase transfer `id` of `amount` from `debit` to `credit`, ledger 1, code 1.
    pub const fn new(id: u128, debit: u128, credit: u128, amount: u64) -> Self {
        let new = NewTransfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            pending_id: 0,
            user_data: 0,
            ledger: 1,
            code: 1,
            flags: TransferFlags::empty(),
            timeout_seconds: 0,
        };
        Self { tenant: TENANT, new }
    }

    /// Post (capture) `amount` of pending transfer `pending_id`; zero means all of it.
    pub const fn post(id: u128, pending_id: u128, amount: u64) -> Self {
        Self::resolving(id, pending_id, amount).flags(TransferFlags::POST_PENDING)
    }

    /// Void (release) pending transfer `pending_id`.
    pub const fn void(id: u128, pending_id: u128) -> Self {
        Self::resolving(id, pending_id, 0).flags(TransferFlags::VOID_PENDING)
    }

    const fn resolving(id: u128, pending_id: u128, amount: u64) -> Self {
        let mut tx = Self::new(id, 0, 0, amount);
        tx.new.pending_id = pending_id;
        tx.new.ledger = 0;
        tx.new.code = 0;
        tx
    }

    /// Adds `flags`.
    pub const fn flags(mut self, flags: TransferFlags) -> Self {
        self.new.flags = self.new.flags.union(flags);
        self
    }

    /// Makes it a pending transfer (a reservation).
    pub const fn pending(self) -> Self {
        self.flags(TransferFlags::PENDING)
    }

    /// Chains this event to the next one.
    pub const fn linked(self) -> Self {
        self.flags(TransferFlags::LINKED)
    }

    /// Sets the pending timeout.
    pub const fn timeout(mut self, seconds: u32) -> Self {
        self.new.timeout_seconds = seconds;
        self
    }

    /// Sets the debit and credit accounts.
    pub const fn accounts(mut self, debit: u128, credit: u128) -> Self {
        self.new.debit_account_id = debit;
        self.new.credit_account_id = credit;
        self
    }

    /// Sets the amount.
    pub const fn amount(mut self, amount: u64) -> Self {
        self.new.amount = amount;
        self
    }

    /// Sets the pending id.
    pub const fn pending_id(mut self, pending_id: u128) -> Self {
        self.new.pending_id = pending_id;
        self
    }

    /// Sets the ledger.
    pub const fn ledger(mut self, ledger: u32) -> Self {
        self.new.ledger = ledger;
        self
    }

    /// Sets the code.
    pub const fn code(mut self, code: u16) -> Self {
        self.new.code = code;
        self
    }

    /// Sets the opaque client data.
    pub const fn user_data(mut self, user_data: u128) -> Self {
        self.new.user_data = user_data;
        self
    }

    /// Creates the transfer in `tenant` instead.
    pub const fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = tenant;
        self
    }

    /// The event.
    pub const fn ev(self) -> Event {
        Event::CreateTransfer(self.tenant, self.new)
    }
}

/// The event expiring pending transfer `id` of [`TENANT`].
pub const fn expire(id: u128) -> Event {
    Event::ExpirePending(Key::new(TENANT, id))
}

/// `[debits_pending, debits_posted, credits_pending, credits_posted]`.
pub fn balances(account: &Account) -> [u64; 4] {
    [account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted]
}
