-- Protea ledger schema, version 2: ledger timestamps reserved without a row lock held
-- until COMMIT (ADR 0007).
--
-- Version 1 reserved timestamps with an UPDATE of one `ledger_clock` row, whose lock each
-- flush held until its COMMIT was on disk, so flushes from every core and process
-- committed one after another. Now a flush reserves its block through
-- protea_reserve_timestamps, which holds a session advisory lock only while it reads and
-- advances a sequence (non-transactional), and releases it before returning.
--
-- A flush still reserves only after it holds its account locks, so of two flushes that
-- share an account the later one to commit has the larger timestamps, and an account's
-- history never gains a transfer older than one a reader has already paged past.

CREATE SEQUENCE ledger_timestamps AS bigint MINVALUE 0 NO CYCLE;
SELECT setval('ledger_timestamps', (SELECT timestamp_last FROM ledger_clock WHERE id = 1), true);

-- Returns the last of `count` timestamps reserved after max(the last reserved, now_ns - 1).
CREATE FUNCTION protea_reserve_timestamps(now_ns bigint, count bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    -- "ledger-t" in ASCII: held for microseconds, never until COMMIT.
    PERFORM pg_advisory_lock(7810759523990383988);
    BEGIN
        SELECT last_value INTO last FROM ledger_timestamps;
        last := greatest(last, now_ns - 1) + count;
        PERFORM setval('ledger_timestamps', last, true);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_advisory_unlock(7810759523990383988);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(7810759523990383988);
    RETURN last;
END;
$$;

DROP TABLE ledger_clock;
