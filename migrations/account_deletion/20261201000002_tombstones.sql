-- One row per purged account: its id and when it was purged, nothing else.
-- After a database is restored from a backup, the tombstones of the database
-- it replaced say which accounts must be erased again (`cargo dev forget`).
-- Written by the purge batch in the same statement as the delete, and kept
-- for 400 days (each run drops older ones), longer than the backups of
-- common hosts are kept.
--
-- No primary key: a unique index would cost every purged account a random
-- B-tree insert (measured: 20% of the purge's time at 1M accounts). Rows are
-- appended in purge order, so a BRIN index finds the old ones almost for
-- free; an id purged twice (after two restores) has two rows, which is
-- harmless.
create table account_deletion.tombstones (
    user_id text not null,
    purged_at timestamptz not null default now()
);

create index tombstones_purged_at_idx on account_deletion.tombstones using brin (purged_at);
