-- Accounts the app must keep (ERASE_BLOCKED=anonymize): an expired account
-- that rows the law says to keep (an invoice) still reference is erased of
-- the person instead of deleted: its cascading rows go, its personal
-- columns are cleared, and the row stays, with its id and deleted-at, until
-- nothing references it any more.

-- The accounts anonymized so far, so that no later run anonymizes one again
-- or counts it as blocked. A row outlives nothing: once the purge deletes
-- its account (nothing references it any more), each run drops the rows of
-- accounts that are gone.
create table account_deletion.anonymized (
    user_id text primary key,
    anonymized_at timestamptz not null default now()
);

-- A tombstone says whether its account was anonymized, so that re-erasure
-- after a backup restore anonymizes it again (and does not try to delete
-- what still must be kept).
alter table account_deletion.tombstones
    add column anonymized boolean not null default false;

-- Figures of the ledger: accounts anonymized by a run (a batch books them
-- on its worker's row, like deletions).
alter table account_deletion.purge_runs
    add column anonymized bigint not null default 0;
alter table account_deletion.purge_run_workers
    add column anonymized bigint not null default 0;

alter table account_deletion.webhook_events
    drop constraint webhook_events_type_check,
    add constraint webhook_events_type_check
        check (type in ('account.deleted', 'account.restored', 'account.purged', 'account.anonymized'));
