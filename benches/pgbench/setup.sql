-- benches/pgbench/setup.sql: the accounts of the pgbench baseline, in a database that
-- `gateway migrate` created (Protea's own schema) and in which `gateway tenant create`
-- made tenant :tenant. Run by benches/compare as
--   psql -v ON_ERROR_STOP=1 -v tenant=1 -v accounts=10000 -f setup.sql URL
-- Account n (1..accounts) has the id lpad(to_hex(n), 32, '0')::uuid, so a pgbench
-- script that draws n can name it. Same ledger (710) as the load tester's accounts,
-- no flags (no balance limit), zero balances.
INSERT INTO accounts (tenant_id, id, ledger, code, flags, user_data, subject_id,
                      debits_pending, debits_posted, credits_pending, credits_posted, timestamp)
SELECT :tenant, lpad(to_hex(n), 32, '0')::uuid, 710, 1, 0, NULL, NULL, 0, 0, 0, 0, n
FROM generate_series(1, :accounts) AS n;
