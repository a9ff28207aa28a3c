//! Table-driven scenarios of the ledger state machine, one `check` per scenario in the
//! style of rust-analyzer's `check(input, expect)`.
//!
//! A scenario applies its setup batches (every setup event must succeed), then one batch,
//! and compares the result code of every event (`code`, or `code(failed_with)` for
//! `id_already_failed`) and the balances of named accounts with the table. Every check
//! also asserts that the records the batch created got strictly increasing timestamps, no
//! earlier than `now`. The tables cover single-phase and two-phase transfers, expiry,
//! limits and balancing, overflows, linked chains, idempotency, tenants, closed accounts
//! and time going backwards; `every_result_code_is_produced` proves they reach every
//! result code the ledger can return.

use std::collections::HashSet;

use storage::ledger::{
    AMOUNT_MAX, Account, AccountFlags, Event, Key, Outcome, Record, ResultCode, State, TenantId,
    TransferFlags, apply,
};

use crate::ledger_support::{Acct, OTHER_TENANT, SECOND, TENANT, Tx, balances, expire};
use crate::scenario_harness::{Backend, check_with};

/// One table row: setup, the batch under test, what each event answers, what the
/// accounts hold afterwards.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) setup: &'static [Batch],
    pub(crate) batch: Batch,
    /// One entry per event of `batch`.
    pub(crate) expect: &'static [&'static str],
    pub(crate) accounts: &'static [Expect],
}

/// Events applied together at one time.
#[derive(Clone, Copy)]
pub(crate) struct Batch {
    pub(crate) now: u64,
    pub(crate) events: &'static [Event],
}

/// What an account looks like after the batch.
pub(crate) enum Expect {
    /// `[debits_pending, debits_posted, credits_pending, credits_posted]`.
    Balances(Key, [u64; 4]),
    /// The account does not exist.
    Missing(Key),
}

const fn at(now: u64, events: &'static [Event]) -> Batch {
    Batch { now, events }
}

const fn bal(id: u128, balances: [u64; 4]) -> Expect {
    Expect::Balances(Key::new(TENANT, id), balances)
}

const fn bal_of(tenant: TenantId, id: u128, balances: [u64; 4]) -> Expect {
    Expect::Balances(Key::new(tenant, id), balances)
}

const fn missing(id: u128) -> Expect {
    Expect::Missing(Key::new(TENANT, id))
}

const fn missing_of(tenant: TenantId, id: u128) -> Expect {
    Expect::Missing(Key::new(tenant, id))
}

const MAX: u64 = AMOUNT_MAX;
const ZERO: [u64; 4] = [0; 4];

const NOW: u64 = 1_700_000_000 * SECOND;
const T1: u64 = NOW + SECOND;
const T2: u64 = NOW + 2 * SECOND;

// Accounts of tenant 1. Unless a scenario says otherwise they are all on ledger 1.
const A: u128 = 1;
const B: u128 = 2;
const C: u128 = 3;
/// `debits_must_not_exceed_credits`.
const DR_LIMITED: u128 = 4;
/// `credits_must_not_exceed_debits`.
const CR_LIMITED: u128 = 5;
/// On ledger 2.
const OTHER_LEDGER: u128 = 6;
/// Created `closed`.
const CLOSED: u128 = 7;
/// No account has this id.
const NOBODY: u128 = 99;

/// Creates every named account at `NOW` (timestamps `NOW` to `NOW + 6`).
const ACCOUNTS: Batch = at(
    NOW,
    &[
        Acct::new(A, 1).ev(),
        Acct::new(B, 1).ev(),
        Acct::new(C, 1).ev(),
        Acct::new(DR_LIMITED, 1).flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS).ev(),
        Acct::new(CR_LIMITED, 1).flags(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS).ev(),
        Acct::new(OTHER_LEDGER, 2).ev(),
        Acct::new(CLOSED, 1).flags(AccountFlags::CLOSED).ev(),
    ],
);

/// A pending transfer 1 of 100 from A to B at `T1` (timestamp `T1`), no timeout.
const PENDING_100: &[Batch] = &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, 100).pending().ev()])];

/// Like [`PENDING_100`], expiring one second after `T1`.
const PENDING_100_FOR_1S: &[Batch] =
    &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, 100).pending().timeout(1).ev()])];

const SINGLE_PHASE: &[Scenario] = &[
    Scenario {
        name: "single_phase_transfer_posts_both_sides",
        setup: &[ACCOUNTS],
        batch: at(T1, &[Tx::new(1, A, B, 100).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [0, 100, 0, 0]), bal(B, [0, 0, 0, 100])],
    },
    Scenario {
        name: "transfers_of_a_batch_apply_in_order",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[Tx::new(1, A, B, 100).ev(), Tx::new(2, B, C, 30).ev(), Tx::new(3, C, A, 5).ev()],
        ),
        expect: &["ok", "ok", "ok"],
        accounts: &[bal(A, [0, 100, 0, 5]), bal(B, [0, 30, 0, 100]), bal(C, [0, 5, 0, 30])],
    },
    Scenario {
        name: "accounts_are_created_once",
        setup: &[],
        batch: at(
            NOW,
            &[
                Acct::new(A, 1).ev(),
                Acct::new(A, 1).ev(),
                Acct::new(A, 1).code(2).ev(),
                Acct::new(A, 2).ev(),
                Acct::new(A, 1).user_data(7).ev(),
                // `linked` is not a field of the account, so this is the same account.
                Acct::new(A, 1).linked().ev(),
                Acct::new(B, 1).ev(),
            ],
        ),
        expect: &[
            "ok",
            "exists",
            "exists_with_different_fields",
            "exists_with_different_fields",
            "exists_with_different_fields",
            "exists",
            "ok",
        ],
        accounts: &[bal(A, ZERO), bal(B, ZERO), missing(C)],
    },
];

const VALIDATION: &[Scenario] = &[
    Scenario {
        name: "account_fields_are_validated",
        setup: &[],
        batch: at(
            NOW,
            &[
                Acct::new(0, 1).ev(),
                Acct::new(u128::MAX, 1).ev(),
                Acct::new(A, 1)
                    .flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                    .flags(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                    .ev(),
                Acct::new(A, 0).ev(),
                Acct::new(A, 1).code(0).ev(),
            ],
        ),
        expect: &[
            "id_must_not_be_zero",
            "id_must_not_be_int_max",
            "flags_are_mutually_exclusive",
            "ledger_must_not_be_zero",
            "code_must_not_be_zero",
        ],
        accounts: &[missing(A), missing(0)],
    },
    Scenario {
        name: "transfer_fields_are_validated",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(0, A, B, 1).ev(),
                Tx::new(u128::MAX, A, B, 1).ev(),
                Tx::new(1, A, B, 1).pending().flags(TransferFlags::POST_PENDING).ev(),
                Tx::void(1, 9).flags(TransferFlags::BALANCING_DEBIT).ev(),
                Tx::new(1, A, B, MAX + 1).ev(),
                Tx::new(1, 0, B, 1).ev(),
                Tx::new(1, A, 0, 1).ev(),
                Tx::new(1, A, A, 1).ev(),
                Tx::new(1, A, B, 1).pending_id(9).ev(),
                Tx::new(1, A, B, 1).timeout(1).ev(),
                Tx::new(1, A, B, 0).ev(),
                Tx::new(1, A, B, 1).ledger(0).ev(),
                Tx::new(1, A, B, 1).code(0).ev(),
                Tx::post(1, 0, 0).ev(),
                Tx::post(1, 1, 0).ev(),
                Tx::post(1, 9, 0).accounts(A, A).ev(),
                Tx::void(1, 9).timeout(1).ev(),
                // None of those rejections is stored: the id is still free.
                Tx::new(1, A, B, 1).ev(),
            ],
        ),
        expect: &[
            "id_must_not_be_zero",
            "id_must_not_be_int_max",
            "flags_are_mutually_exclusive",
            "flags_are_mutually_exclusive",
            "amount_exceeds_maximum",
            "debit_account_id_must_not_be_zero",
            "credit_account_id_must_not_be_zero",
            "accounts_must_be_different",
            "pending_id_must_be_zero",
            "timeout_reserved_for_pending_transfer",
            "amount_must_not_be_zero",
            "ledger_must_not_be_zero",
            "code_must_not_be_zero",
            "pending_id_must_not_be_zero",
            "pending_id_must_be_different",
            "accounts_must_be_different",
            "timeout_reserved_for_pending_transfer",
            "ok",
        ],
        accounts: &[bal(A, [0, 1, 0, 0]), bal(B, [0, 0, 0, 1])],
    },
    Scenario {
        name: "transfers_need_existing_accounts_on_their_ledger",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, NOBODY, B, 1).ev(),
                Tx::new(2, A, NOBODY, 1).ev(),
                Tx::new(3, A, OTHER_LEDGER, 1).ev(),
                Tx::new(4, A, B, 1).ledger(2).ev(),
            ],
        ),
        expect: &[
            "debit_account_not_found",
            "credit_account_not_found",
            "accounts_must_have_the_same_ledger",
            "transfer_must_have_the_same_ledger_as_accounts",
        ],
        accounts: &[bal(A, ZERO), bal(B, ZERO), bal(OTHER_LEDGER, ZERO), missing(NOBODY)],
    },
];

const TWO_PHASE: &[Scenario] = &[
    Scenario {
        name: "pending_transfer_reserves",
        setup: &[ACCOUNTS],
        batch: at(T1, &[Tx::new(1, A, B, 100).pending().ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [100, 0, 0, 0]), bal(B, [0, 0, 100, 0])],
    },
    Scenario {
        name: "post_with_amount_zero_captures_everything",
        setup: PENDING_100,
        batch: at(T2, &[Tx::post(2, 1, 0).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [0, 100, 0, 0]), bal(B, [0, 0, 0, 100])],
    },
    Scenario {
        name: "partial_post_releases_the_rest",
        setup: PENDING_100,
        batch: at(T2, &[Tx::post(2, 1, 60).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [0, 60, 0, 0]), bal(B, [0, 0, 0, 60])],
    },
    Scenario {
        name: "post_naming_the_pending_fields_is_accepted",
        setup: PENDING_100,
        batch: at(T2, &[Tx::post(2, 1, 100).accounts(A, B).ledger(1).code(1).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [0, 100, 0, 0]), bal(B, [0, 0, 0, 100])],
    },
    Scenario {
        name: "void_releases_the_reservation",
        setup: PENDING_100,
        batch: at(T2, &[Tx::void(2, 1).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, ZERO), bal(B, ZERO)],
    },
    Scenario {
        name: "pending_transfer_resolves_once",
        setup: &[
            ACCOUNTS,
            at(T1, &[Tx::new(1, A, B, 100).pending().ev(), Tx::new(2, A, B, 50).pending().ev()]),
        ],
        batch: at(
            T2,
            &[
                Tx::void(3, 1).ev(),
                Tx::post(4, 1, 0).ev(),
                Tx::post(5, 2, 0).ev(),
                Tx::void(6, 2).ev(),
                Tx::post(7, 2, 0).ev(),
            ],
        ),
        expect: &[
            "ok",
            "pending_transfer_already_voided",
            "ok",
            "pending_transfer_already_posted",
            "pending_transfer_already_posted",
        ],
        accounts: &[bal(A, [0, 50, 0, 0]), bal(B, [0, 0, 0, 50])],
    },
    Scenario {
        name: "post_and_void_must_match_the_pending_transfer",
        setup: &[
            ACCOUNTS,
            at(T1, &[Tx::new(1, A, B, 100).pending().ev(), Tx::new(9, A, B, 10).ev()]),
        ],
        batch: at(
            T2,
            &[
                Tx::post(10, NOBODY, 0).ev(),
                Tx::post(11, 9, 0).ev(),
                Tx::post(12, 1, 0).accounts(C, 0).ev(),
                Tx::post(13, 1, 0).accounts(0, C).ev(),
                Tx::post(14, 1, 0).ledger(2).ev(),
                Tx::post(15, 1, 0).code(2).ev(),
                Tx::post(16, 1, 101).ev(),
                Tx::void(17, 1).amount(50).ev(),
            ],
        ),
        expect: &[
            "pending_transfer_not_found",
            "pending_transfer_not_pending",
            "pending_transfer_has_different_debit_account_id",
            "pending_transfer_has_different_credit_account_id",
            "pending_transfer_has_different_ledger",
            "pending_transfer_has_different_code",
            "exceeds_pending_transfer_amount",
            "pending_transfer_has_different_amount",
        ],
        accounts: &[bal(A, [100, 10, 0, 0]), bal(B, [0, 0, 100, 10])],
    },
    Scenario {
        name: "pending_and_its_resolution_in_one_batch",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, A, B, 100).pending().ev(),
                Tx::post(2, 1, 40).ev(),
                Tx::new(3, A, B, 10).pending().ev(),
                Tx::void(4, 3).ev(),
            ],
        ),
        expect: &["ok", "ok", "ok", "ok"],
        accounts: &[bal(A, [0, 40, 0, 0]), bal(B, [0, 0, 0, 40])],
    },
];

const EXPIRY: &[Scenario] = &[
    Scenario {
        name: "post_one_nanosecond_before_the_timeout_succeeds",
        setup: PENDING_100_FOR_1S,
        batch: at(T1 + SECOND - 1, &[Tx::post(2, 1, 0).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [0, 100, 0, 0]), bal(B, [0, 0, 0, 100])],
    },
    Scenario {
        // The rejected post releases nothing: the store's `ExpirePending` does.
        name: "post_at_the_timeout_is_rejected",
        setup: PENDING_100_FOR_1S,
        batch: at(T1 + SECOND, &[Tx::post(2, 1, 0).ev()]),
        expect: &["pending_transfer_expired"],
        accounts: &[bal(A, [100, 0, 0, 0]), bal(B, [0, 0, 100, 0])],
    },
    Scenario {
        name: "expire_pending_releases_the_reservation",
        setup: PENDING_100_FOR_1S,
        batch: at(
            T1 + SECOND,
            &[expire(1), Tx::post(2, 1, 0).ev(), Tx::void(3, 1).ev(), expire(1)],
        ),
        expect: &[
            "ok",
            "pending_transfer_expired",
            "pending_transfer_expired",
            "pending_transfer_expired",
        ],
        accounts: &[bal(A, ZERO), bal(B, ZERO)],
    },
    Scenario {
        name: "expire_pending_says_why_it_is_moot",
        setup: &[
            ACCOUNTS,
            at(
                T1,
                &[
                    Tx::new(1, A, B, 100).pending().timeout(1).ev(),
                    Tx::new(2, A, B, 100).pending().ev(),
                    Tx::new(3, A, B, 10).ev(),
                    Tx::new(4, A, B, 20).pending().ev(),
                    Tx::new(5, A, B, 30).pending().ev(),
                    Tx::post(6, 4, 0).ev(),
                    Tx::void(7, 5).ev(),
                ],
            ),
        ],
        batch: at(
            T1 + SECOND / 2,
            &[expire(1), expire(2), expire(3), expire(NOBODY), expire(4), expire(5)],
        ),
        expect: &[
            // Not due yet.
            "pending_transfer_not_pending",
            // No timeout.
            "pending_transfer_not_pending",
            // Single-phase.
            "pending_transfer_not_pending",
            "pending_transfer_not_found",
            "pending_transfer_already_posted",
            "pending_transfer_already_voided",
        ],
        accounts: &[bal(A, [200, 30, 0, 0]), bal(B, [0, 0, 200, 30])],
    },
    Scenario {
        name: "longest_timeout_is_accepted",
        setup: &[ACCOUNTS],
        batch: at(T1, &[Tx::new(1, A, B, 1).pending().timeout(u32::MAX).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [1, 0, 0, 0]), bal(B, [0, 0, 1, 0])],
    },
];

const LIMITS: &[Scenario] = &[
    Scenario {
        name: "debits_must_not_exceed_credits_counts_pending_debits",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, DR_LIMITED, 100).ev()])],
        batch: at(
            T2,
            &[
                Tx::new(2, DR_LIMITED, B, 101).ev(),
                Tx::new(3, DR_LIMITED, B, 60).pending().ev(),
                Tx::new(4, DR_LIMITED, B, 41).ev(),
                Tx::new(5, DR_LIMITED, B, 40).ev(),
            ],
        ),
        expect: &["exceeds_credits", "ok", "exceeds_credits", "ok"],
        accounts: &[bal(DR_LIMITED, [60, 40, 0, 100]), bal(B, [0, 0, 60, 40])],
    },
    Scenario {
        name: "credits_must_not_exceed_debits_counts_pending_credits",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, CR_LIMITED, A, 100).ev()])],
        batch: at(
            T2,
            &[
                Tx::new(2, B, CR_LIMITED, 101).ev(),
                Tx::new(3, B, CR_LIMITED, 60).pending().ev(),
                Tx::new(4, B, CR_LIMITED, 41).ev(),
                Tx::new(5, B, CR_LIMITED, 40).ev(),
            ],
        ),
        expect: &["exceeds_debits", "ok", "exceeds_debits", "ok"],
        accounts: &[bal(CR_LIMITED, [0, 100, 60, 40]), bal(B, [60, 40, 0, 0])],
    },
    Scenario {
        name: "balancing_debit_moves_at_most_the_available_credit",
        setup: &[
            ACCOUNTS,
            at(T1, &[Tx::new(1, A, DR_LIMITED, 100).ev(), Tx::new(2, DR_LIMITED, B, 30).ev()]),
        ],
        batch: at(
            T2,
            &[
                Tx::new(3, DR_LIMITED, C, 1000).flags(TransferFlags::BALANCING_DEBIT).ev(),
                Tx::new(4, DR_LIMITED, C, 1).flags(TransferFlags::BALANCING_DEBIT).ev(),
                // A has no credit at all.
                Tx::new(5, A, C, 1).flags(TransferFlags::BALANCING_DEBIT).ev(),
            ],
        ),
        expect: &["ok", "exceeds_credits", "exceeds_credits"],
        accounts: &[bal(DR_LIMITED, [0, 100, 0, 100]), bal(C, [0, 0, 0, 70])],
    },
    Scenario {
        // C has no limit flag: the clamp alone keeps it from going negative.
        name: "balancing_debit_counts_pending_debits",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, B, C, 100).ev()])],
        batch: at(
            T2,
            &[
                Tx::new(2, C, A, 1000).pending().flags(TransferFlags::BALANCING_DEBIT).ev(),
                Tx::new(3, C, A, 1).flags(TransferFlags::BALANCING_DEBIT).ev(),
            ],
        ),
        expect: &["ok", "exceeds_credits"],
        accounts: &[bal(C, [100, 0, 0, 100]), bal(A, [0, 0, 100, 0])],
    },
    Scenario {
        name: "balancing_credit_counts_pending_credits",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, C, B, 100).ev()])],
        batch: at(
            T2,
            &[
                Tx::new(2, A, C, 1000).pending().flags(TransferFlags::BALANCING_CREDIT).ev(),
                Tx::new(3, A, C, 1).flags(TransferFlags::BALANCING_CREDIT).ev(),
            ],
        ),
        expect: &["ok", "exceeds_debits"],
        accounts: &[bal(C, [0, 100, 100, 0]), bal(A, [100, 0, 0, 0])],
    },
    Scenario {
        name: "balancing_credit_moves_at_most_the_available_debit",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, CR_LIMITED, A, 100).ev()])],
        batch: at(
            T2,
            &[
                Tx::new(2, B, CR_LIMITED, 500).flags(TransferFlags::BALANCING_CREDIT).ev(),
                Tx::new(3, B, CR_LIMITED, 1).flags(TransferFlags::BALANCING_CREDIT).ev(),
            ],
        ),
        expect: &["ok", "exceeds_debits"],
        accounts: &[bal(CR_LIMITED, [0, 100, 0, 100]), bal(B, [0, 100, 0, 0])],
    },
];

const OVERFLOWS: &[Scenario] = &[
    Scenario {
        name: "pending_expiry_must_be_representable",
        setup: &[ACCOUNTS],
        batch: at(u64::MAX - 1_000_000_000, &[Tx::new(1, A, B, 5).pending().timeout(2).ev()]),
        expect: &["overflows_timeout"],
        accounts: &[bal(A, [0, 0, 0, 0]), bal(B, [0, 0, 0, 0])],
    },
    Scenario {
        name: "amounts_up_to_the_maximum_are_accepted",
        setup: &[ACCOUNTS],
        batch: at(T1, &[Tx::new(1, A, B, MAX).ev()]),
        expect: &["ok"],
        accounts: &[bal(A, [0, MAX, 0, 0]), bal(B, [0, 0, 0, MAX])],
    },
    Scenario {
        name: "posted_balances_cannot_overflow",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, MAX).ev()])],
        batch: at(T2, &[Tx::new(2, A, C, 1).ev(), Tx::new(3, C, B, 1).ev()]),
        expect: &["overflows_debits_posted", "overflows_credits_posted"],
        accounts: &[bal(A, [0, MAX, 0, 0]), bal(B, [0, 0, 0, MAX]), bal(C, ZERO)],
    },
    Scenario {
        name: "pending_balances_and_totals_cannot_overflow",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, MAX).pending().ev()])],
        batch: at(
            T2,
            &[
                Tx::new(2, A, C, 1).pending().ev(),
                Tx::new(3, C, B, 1).pending().ev(),
                Tx::new(4, A, C, 1).ev(),
                Tx::new(5, C, B, 1).ev(),
                // The full reservation can still be captured.
                Tx::post(6, 1, 0).ev(),
            ],
        ),
        expect: &[
            "overflows_debits_pending",
            "overflows_credits_pending",
            "overflows_debits",
            "overflows_credits",
            "ok",
        ],
        accounts: &[bal(A, [0, MAX, 0, 0]), bal(B, [0, 0, 0, MAX]), bal(C, ZERO)],
    },
];

const CHAINS: &[Scenario] = &[
    Scenario {
        name: "linked_chain_applies_whole",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, A, B, 10).linked().ev(),
                Tx::new(2, B, C, 10).linked().ev(),
                Tx::new(3, C, A, 1).ev(),
            ],
        ),
        expect: &["ok", "ok", "ok"],
        accounts: &[bal(A, [0, 10, 0, 1]), bal(B, [0, 10, 0, 10]), bal(C, [0, 1, 0, 10])],
    },
    Scenario {
        name: "linked_chain_fails_whole",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, A, B, 10).linked().ev(),
                Tx::new(2, DR_LIMITED, C, 10).linked().ev(),
                Tx::new(3, B, C, 5).ev(),
                Tx::new(4, A, C, 1).ev(),
            ],
        ),
        expect: &["linked_event_failed", "exceeds_credits", "linked_event_failed", "ok"],
        accounts: &[
            bal(A, [0, 1, 0, 0]),
            bal(B, ZERO),
            bal(C, [0, 0, 0, 1]),
            bal(DR_LIMITED, ZERO),
        ],
    },
    Scenario {
        name: "failed_chain_takes_back_its_accounts",
        setup: &[],
        batch: at(
            NOW,
            &[
                Acct::new(A, 1).linked().ev(),
                Acct::new(B, 1).linked().ev(),
                Tx::new(1, A, B, 10).linked().ev(),
                Tx::new(2, A, B, 0).ev(),
            ],
        ),
        expect: &[
            "linked_event_failed",
            "linked_event_failed",
            "linked_event_failed",
            "amount_must_not_be_zero",
        ],
        accounts: &[missing(A), missing(B)],
    },
    Scenario {
        name: "failed_chain_takes_back_a_post",
        setup: PENDING_100,
        batch: at(T2, &[Tx::post(2, 1, 0).linked().ev(), Tx::void(3, 1).ev(), Tx::void(4, 1).ev()]),
        expect: &["linked_event_failed", "pending_transfer_already_posted", "ok"],
        accounts: &[bal(A, ZERO), bal(B, ZERO)],
    },
    Scenario {
        name: "batch_ending_linked_leaves_the_chain_open",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, A, B, 10).ev(),
                Tx::new(2, A, B, 10).linked().ev(),
                Tx::new(3, A, B, 10).linked().ev(),
            ],
        ),
        expect: &["ok", "linked_event_failed", "linked_event_chain_open"],
        accounts: &[bal(A, [0, 10, 0, 0]), bal(B, [0, 0, 0, 10])],
    },
    Scenario {
        name: "lone_linked_event_is_an_open_chain",
        setup: &[ACCOUNTS],
        batch: at(T1, &[Tx::new(1, A, B, 10).linked().ev()]),
        expect: &["linked_event_chain_open"],
        accounts: &[bal(A, ZERO), bal(B, ZERO)],
    },
];

const IDEMPOTENCY: &[Scenario] = &[
    Scenario {
        name: "retried_transfer_exists",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, 100).ev()])],
        batch: at(
            T2,
            &[
                Tx::new(1, A, B, 100).ev(),
                Tx::new(1, A, B, 99).ev(),
                Tx::new(1, A, C, 100).ev(),
                Tx::new(1, A, B, 100).pending().ev(),
                Tx::new(1, A, B, 100).user_data(7).ev(),
            ],
        ),
        expect: &[
            "exists",
            "exists_with_different_fields",
            "exists_with_different_fields",
            "exists_with_different_fields",
            "exists_with_different_fields",
        ],
        accounts: &[bal(A, [0, 100, 0, 0]), bal(B, [0, 0, 0, 100]), bal(C, ZERO)],
    },
    Scenario {
        name: "rejected_id_keeps_its_first_answer",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, DR_LIMITED, B, 50).ev(),
                Tx::new(2, A, DR_LIMITED, 100).ev(),
                // Would succeed now, but the first answer stands.
                Tx::new(1, DR_LIMITED, B, 50).ev(),
                Tx::new(3, DR_LIMITED, B, 50).ev(),
            ],
        ),
        expect: &["exceeds_credits", "ok", "id_already_failed(exceeds_credits)", "ok"],
        accounts: &[bal(DR_LIMITED, [0, 50, 0, 100]), bal(B, [0, 0, 0, 50])],
    },
    Scenario {
        name: "validation_rejections_are_not_stored",
        setup: &[ACCOUNTS],
        batch: at(T1, &[Tx::new(1, A, B, 0).ev(), Tx::new(1, A, B, 10).ev()]),
        expect: &["amount_must_not_be_zero", "ok"],
        accounts: &[bal(A, [0, 10, 0, 0]), bal(B, [0, 0, 0, 10])],
    },
    Scenario {
        name: "linked_event_failed_is_not_stored",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, A, B, 10).linked().ev(),
                Tx::new(2, DR_LIMITED, B, 10).ev(),
                Tx::new(1, A, B, 10).ev(),
                Tx::new(2, DR_LIMITED, B, 10).ev(),
            ],
        ),
        expect: &[
            "linked_event_failed",
            "exceeds_credits",
            "ok",
            "id_already_failed(exceeds_credits)",
        ],
        accounts: &[bal(A, [0, 10, 0, 0]), bal(B, [0, 0, 0, 10]), bal(DR_LIMITED, ZERO)],
    },
    Scenario {
        name: "retried_full_post_exists",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, 100).pending().ev(), Tx::post(2, 1, 0).ev()])],
        batch: at(
            T2,
            &[
                Tx::post(2, 1, 0).ev(),
                Tx::post(2, 1, 100).ev(),
                Tx::post(2, 1, 100).accounts(A, B).ledger(1).code(1).ev(),
                Tx::post(2, 1, 50).ev(),
                Tx::void(2, 1).ev(),
            ],
        ),
        expect: &[
            "exists",
            "exists",
            "exists",
            "exists_with_different_fields",
            "exists_with_different_fields",
        ],
        accounts: &[bal(A, [0, 100, 0, 0]), bal(B, [0, 0, 0, 100])],
    },
    Scenario {
        // Amount zero asks for the whole reservation (100), which is not what was posted.
        name: "retried_partial_post_asking_for_everything_differs",
        setup: &[
            ACCOUNTS,
            at(T1, &[Tx::new(1, A, B, 100).pending().ev(), Tx::post(2, 1, 60).ev()]),
        ],
        batch: at(T2, &[Tx::post(2, 1, 60).ev(), Tx::post(2, 1, 0).ev()]),
        expect: &["exists", "exists_with_different_fields"],
        accounts: &[bal(A, [0, 60, 0, 0]), bal(B, [0, 0, 0, 60])],
    },
    Scenario {
        name: "retried_void_with_another_amount_differs",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, 100).pending().ev(), Tx::void(2, 1).ev()])],
        batch: at(
            T2,
            &[Tx::void(2, 1).ev(), Tx::void(2, 1).amount(100).ev(), Tx::void(2, 1).amount(50).ev()],
        ),
        expect: &["exists", "exists", "exists_with_different_fields"],
        accounts: &[bal(A, ZERO), bal(B, ZERO)],
    },
    Scenario {
        // A balancing transfer moved 100 of the 1000 asked: asking for 100 or more again
        // is the same request; asking for less is not.
        name: "retried_balancing_transfer_exists",
        setup: &[
            ACCOUNTS,
            at(
                T1,
                &[
                    Tx::new(1, A, DR_LIMITED, 100).ev(),
                    Tx::new(2, DR_LIMITED, C, 1000).flags(TransferFlags::BALANCING_DEBIT).ev(),
                ],
            ),
        ],
        batch: at(
            T2,
            &[
                Tx::new(2, DR_LIMITED, C, 1000).flags(TransferFlags::BALANCING_DEBIT).ev(),
                Tx::new(2, DR_LIMITED, C, 100).flags(TransferFlags::BALANCING_DEBIT).ev(),
                Tx::new(2, DR_LIMITED, C, 99).flags(TransferFlags::BALANCING_DEBIT).ev(),
            ],
        ),
        expect: &["exists", "exists", "exists_with_different_fields"],
        accounts: &[bal(DR_LIMITED, [0, 100, 0, 100]), bal(C, [0, 0, 0, 100])],
    },
];

const TENANTS_AND_CLOSED: &[Scenario] = &[
    Scenario {
        name: "tenants_cannot_reach_each_others_accounts",
        setup: &[
            ACCOUNTS,
            at(
                T1,
                &[
                    // Tenant 2 owns its own accounts B and C, and no A.
                    Acct::new(B, 1).tenant(OTHER_TENANT).ev(),
                    Acct::new(C, 1).tenant(OTHER_TENANT).ev(),
                    Tx::new(1, A, B, 10).ev(),
                    Tx::new(5, A, B, 20).pending().ev(),
                ],
            ),
        ],
        batch: at(
            T2,
            &[
                Tx::new(2, A, B, 5).tenant(OTHER_TENANT).ev(),
                Tx::new(3, B, A, 5).tenant(OTHER_TENANT).ev(),
                // Tenant 1's transfer 1 is no concern of tenant 2's transfer 1.
                Tx::new(1, B, C, 7).tenant(OTHER_TENANT).ev(),
                Tx::post(4, 5, 0).tenant(OTHER_TENANT).ev(),
                Event::ExpirePending(Key::new(OTHER_TENANT, 5)),
            ],
        ),
        expect: &[
            "debit_account_not_found",
            "credit_account_not_found",
            "ok",
            "pending_transfer_not_found",
            "pending_transfer_not_found",
        ],
        accounts: &[
            bal(A, [20, 10, 0, 0]),
            bal(B, [0, 0, 20, 10]),
            bal_of(OTHER_TENANT, B, [0, 7, 0, 0]),
            bal_of(OTHER_TENANT, C, [0, 0, 0, 7]),
            missing_of(OTHER_TENANT, A),
        ],
    },
    Scenario {
        name: "closed_accounts_take_no_new_transfers",
        setup: &[ACCOUNTS],
        batch: at(
            T1,
            &[
                Tx::new(1, CLOSED, A, 10).ev(),
                Tx::new(2, A, CLOSED, 10).ev(),
                Tx::new(3, A, CLOSED, 10).pending().ev(),
            ],
        ),
        expect: &["account_closed", "account_closed", "account_closed"],
        accounts: &[bal(CLOSED, ZERO), bal(A, ZERO)],
    },
    Scenario {
        name: "timestamps_increase_when_now_goes_backwards",
        setup: &[ACCOUNTS, at(T1, &[Tx::new(1, A, B, 1).ev()])],
        batch: at(
            NOW - SECOND,
            &[Tx::new(2, A, B, 1).ev(), Acct::new(20, 1).ev(), Tx::new(3, A, B, 1).ev()],
        ),
        expect: &["ok", "ok", "ok"],
        accounts: &[bal(A, [0, 3, 0, 0]), bal(B, [0, 0, 0, 3]), bal(20, ZERO)],
    },
];

/// Every table, for the coverage test.
pub(crate) const TABLES: &[&[Scenario]] = &[
    SINGLE_PHASE,
    VALIDATION,
    TWO_PHASE,
    EXPIRY,
    LIMITS,
    OVERFLOWS,
    CHAINS,
    IDEMPOTENCY,
    TENANTS_AND_CLOSED,
];

/// The ledger state machine alone.
#[derive(Default)]
struct Pure(State);

impl Backend for Pure {
    fn reset(&mut self) {
        self.0 = State::default();
    }

    fn apply(&mut self, events: &[Event], now: u64) -> Vec<Outcome> {
        apply(&mut self.0, events, now).0
    }

    fn account(&mut self, key: Key) -> Option<Account> {
        self.0.accounts.get(&key).copied()
    }

    fn timestamp_floor(&mut self) -> u64 {
        self.0.timestamp_last
    }
}

/// Runs `scenario` on the pure ledger; returns its batch's outcomes, or what did not match.
fn check(scenario: &Scenario) -> Result<Vec<Outcome>, String> {
    check_with(&mut Pure::default(), scenario)
}

fn check_table(table: &[Scenario]) {
    let failures: Vec<String> = table
        .iter()
        .filter_map(|s| {
            check(s).err().map(|problem| format!("scenario `{}`:\n  {problem}", s.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn single_phase() {
    check_table(SINGLE_PHASE);
}

#[test]
fn validation() {
    check_table(VALIDATION);
}

#[test]
fn two_phase() {
    check_table(TWO_PHASE);
}

#[test]
fn expiry() {
    check_table(EXPIRY);
}

#[test]
fn limits_and_balancing() {
    check_table(LIMITS);
}

#[test]
fn overflows() {
    check_table(OVERFLOWS);
}

#[test]
fn linked_chains() {
    check_table(CHAINS);
}

#[test]
fn idempotency() {
    check_table(IDEMPOTENCY);
}

#[test]
fn tenants_closed_accounts_and_time() {
    check_table(TENANTS_AND_CLOSED);
}

#[test]
fn scenario_names_are_unique() {
    let mut seen = HashSet::new();
    let duplicates: Vec<&str> =
        TABLES.iter().flat_map(|t| t.iter()).map(|s| s.name).filter(|n| !seen.insert(*n)).collect();
    assert!(duplicates.is_empty(), "duplicate scenario names: {duplicates:?}");
}

#[test]
fn every_result_code_is_produced() {
    let mut produced = HashSet::new();
    for scenario in TABLES.iter().flat_map(|t| t.iter()) {
        let outcomes = check(scenario).unwrap_or_else(|p| panic!("{}: {p}", scenario.name));
        produced.extend(outcomes.iter().map(|o| o.code));
    }
    let missing: Vec<&str> = ResultCode::ALL
        .iter()
        .filter(|code| !produced.contains(*code))
        .map(|code| code.as_str())
        .collect();
    assert!(missing.is_empty(), "no scenario produces {missing:?}");
}

#[test]
fn timestamps_are_now_or_one_past_the_last() {
    let mut state = State::default();
    apply(&mut state, ACCOUNTS.events, NOW);
    let (outcomes, _) =
        apply(&mut state, &[Tx::new(1, A, B, 1).ev(), Tx::new(2, A, B, 1).ev()], NOW - SECOND);
    let timestamps: Vec<u64> = outcomes.iter().map(transfer_timestamp).collect();
    let last_account = NOW + ACCOUNTS.events.len() as u64 - 1;
    assert_eq!(timestamps, [last_account + 1, last_account + 2]);
    let (outcomes, _) = apply(&mut state, &[Tx::new(3, A, B, 1).ev()], T2);
    assert_eq!(transfer_timestamp(&outcomes[0]), T2);
    assert_eq!(state.timestamp_last, T2);
}

fn transfer_timestamp(outcome: &Outcome) -> u64 {
    match outcome.record {
        Some(Record::Transfer(transfer)) => transfer.timestamp,
        other => panic!("expected a transfer record, got {other:?}"),
    }
}

/// Accounts cannot be closed through an event, but a backend may store one closed while
/// it has pending transfers: those can still be voided or expire, never posted.
#[test]
fn pending_transfers_of_a_closed_account_can_only_be_released() {
    let mut state = State::default();
    apply(&mut state, ACCOUNTS.events, NOW);
    let setup =
        [Tx::new(1, A, B, 100).pending().ev(), Tx::new(2, A, B, 50).pending().timeout(1).ev()];
    apply(&mut state, &setup, T1);
    let a = state.accounts.get_mut(&Key::new(TENANT, A)).unwrap();
    a.flags = a.flags.union(AccountFlags::CLOSED);
    let batch = [Tx::post(3, 1, 0).ev(), Tx::void(4, 1).ev(), expire(2)];
    let (outcomes, _) = apply(&mut state, &batch, T1 + 2 * SECOND);
    let codes: Vec<&str> = outcomes.iter().map(|o| o.code.as_str()).collect();
    assert_eq!(codes, ["account_closed", "ok", "ok"]);
    assert_eq!(balances(&state.accounts[&Key::new(TENANT, A)]), ZERO);
}
