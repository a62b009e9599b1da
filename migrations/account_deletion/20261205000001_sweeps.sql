-- Years, not days: a walk over the users table's deleted-at costs what its
-- new work costs, not what history left behind (accounts kept by an
-- invoice, held, anonymized, or soft-deleted by the app itself).
--
-- Where each walk stands, as keys (deleted-at, id) of the users table, so
-- that a thousand accounts deleted in one statement (one timestamp) are
-- walked once, never again from the first of them:
-- - `watermark`: every account at or below it has been walked (the purge:
--   deleted, or left for a reason that is counted in `below`; its
--   anonymizing walk: anonymized if blocked; the mail cron: its deletion is
--   in the history); new work lies above it;
-- - `cursor`: where the next slice of the sweep below the watermark starts
--   (exclusive; null: at the start). The sweep walks a bounded slice per
--   run and catches what an app changes behind our back (a deleted-at set
--   in the past, an invoice deleted); a prune's slice has only an id;
-- - `below` (purge): what the kept accounts below the watermark count, as
--   last walked; `cycle`: the same, summed over the sweep's current cycle,
--   which replaces `below` when the cycle reaches the watermark.
-- One row per walk, never more.
create table account_deletion.sweeps (
    name text primary key
        constraint sweeps_name_check
            check (name in ('purge', 'anonymize', 'app_deletions', 'prune_history', 'prune_anonymized')),
    watermark_at timestamptz,
    watermark_id text,
    cursor_at timestamptz,
    cursor_id text,
    below jsonb,
    cycle jsonb,
    updated_at timestamptz not null default now(),
    constraint sweeps_watermark_check check ((watermark_at is null) = (watermark_id is null))
);

-- The prunes of the history and of the anonymized marks of accounts the
-- app deleted itself walk a slice of user ids per run (`cursor_id` alone).
insert into account_deletion.sweeps (name)
values ('purge'), ('anonymize'), ('app_deletions'), ('prune_history'), ('prune_anonymized');

-- Accounts to look at again in the next purge run, whatever the watermark
-- says: a hold released, an account made due again by re-erasure after a
-- backup restore. The run takes them first and forgets each row it took.
create table account_deletion.rechecks (
    user_id text primary key,
    since timestamptz not null default now()
);
