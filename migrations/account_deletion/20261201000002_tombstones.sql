-- One row per purged account: its id and when it was purged, nothing else.
-- After a database is restored from a backup, the tombstones of the database
-- it replaced say which accounts must be erased again (`cargo dev forget`).
-- Written by the purge batch in the same statement as the delete; kept for
-- 400 days (the purge removes older ones), longer than the backups of common
-- hosts are kept.
create table account_deletion.tombstones (
    user_id text primary key,
    purged_at timestamptz not null default now()
);

create index tombstones_purged_at_idx on account_deletion.tombstones (purged_at);
