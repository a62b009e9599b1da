-- The purge ledger: one row per run of the permanent-delete cron, holding only
-- figures (no ids, no emails), so operators can see what ran and what it did.
-- The row of the run in progress doubles as the overlap guard: a lease that
-- lives in a table works through transaction-pooling proxies (PgBouncer,
-- Supabase, Neon), where a session-level advisory lock would not.

create table purge_runs (
    id bigint generated always as identity primary key,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null
        constraint purge_runs_status_check
        check (status in ('running', 'completed', 'partial', 'skipped', 'failed', 'abandoned')),
    dry_run boolean not null,
    cutoff timestamptz not null,
    deleted bigint not null default 0,
    remaining bigint,
    batches integer not null default 0,
    -- While `running`: the run holds the purge until this time. Every batch
    -- pushes it forward; a run that dies stops renewing it, and the next run
    -- marks it `abandoned` once it has passed.
    lease_expires_at timestamptz,
    -- A stable code (never a message with data in it) when status is `failed`.
    error_code text,
    created_at timestamptz not null default now()
);

-- At most one run holds the purge at a time.
create unique index purge_runs_one_running_idx on purge_runs (status) where status = 'running';

-- Operators read the ledger newest first.
create index purge_runs_started_at_idx on purge_runs (started_at);
