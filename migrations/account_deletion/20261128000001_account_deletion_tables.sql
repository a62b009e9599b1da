-- This project's own tables, in a schema of their own so that they never
-- mix with an existing app's: Prisma's `migrate dev`, for one, treats a
-- table it does not know in its schema as drift and offers to reset the
-- database. The migrator keeps its own `_sqlx_migrations` here too.
--
-- Nothing here references the app's users table: its name and id type are
-- the app's (uuid, text or bigint), so a user id is stored as its text form,
-- and the purge deletes these rows itself, in the same transaction as the
-- account they concern.

create schema if not exists account_deletion;

-- Every email the service sends, written in the same transaction as the
-- change it reports, so a crash can delay an email but never lose it.
create table account_deletion.email_outbox (
    -- Also the stable Message-ID of the email, so a duplicate delivery is
    -- recognisable as one.
    id uuid primary key default gen_random_uuid(),
    -- The user's id as text (`id::text`).
    user_id text not null,
    kind text not null
        constraint email_outbox_kind_check check (kind in ('recovery', 'reminder', 'restored')),
    recipient text not null,
    -- For recovery and reminder emails: the deletion they are about. A link
    -- only works while the account is still in that same deletion.
    for_deleted_at timestamptz,
    status text not null default 'pending'
        constraint email_outbox_status_check
        check (status in ('pending', 'sent', 'superseded', 'cancelled', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- A sender holds the row until then; another sender skips it meanwhile.
    claimed_until timestamptz,
    sent_at timestamptz,
    -- A short error class, never message text from the mail server.
    last_error text,
    created_at timestamptz not null default now()
);

-- The purge and "supersede this user's pending emails" look up by user.
create index email_outbox_user_id_idx on account_deletion.email_outbox (user_id);
-- The sweep reads only what is due; sent rows stay out of this index.
create index email_outbox_due_idx on account_deletion.email_outbox (next_attempt_at)
    where status = 'pending';
-- One reminder per deletion, however many sweeps run at once.
create unique index email_outbox_one_reminder_idx on account_deletion.email_outbox (user_id, for_deleted_at)
    where kind = 'reminder';

create table account_deletion.recovery_tokens (
    id uuid primary key default gen_random_uuid(),
    user_id text not null,
    -- The email that carried this token.
    outbox_id uuid not null
        constraint recovery_tokens_outbox_id_fkey
        references account_deletion.email_outbox (id) on delete cascade,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash bytea not null constraint recovery_tokens_token_hash_key unique,
    -- The deletion this token can undo; useless once the account was restored
    -- and deleted again.
    for_deleted_at timestamptz not null,
    used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);

-- Revoking a user's older tokens, and the purge.
create index recovery_tokens_user_id_idx on account_deletion.recovery_tokens (user_id);
-- The outbox cascade.
create index recovery_tokens_outbox_id_idx on account_deletion.recovery_tokens (outbox_id);

-- Failed recovery attempts per client in a fixed window. Functions are
-- stateless, so the count lives here. The client is stored as a hash of its
-- address, not the address.
create table account_deletion.recovery_failures (
    client_hash bytea primary key,
    window_started_at timestamptz not null default now(),
    failures integer not null default 0,
    created_at timestamptz not null default now()
);

-- The purge ledger: one row per run of the permanent-delete cron, holding only
-- figures and constraint names (no ids, no emails), so operators can see what
-- ran and what it did. The row of the run in progress doubles as the overlap
-- guard: a lease that lives in a table works through transaction-pooling
-- proxies (PgBouncer, Supabase, Neon), where a session-level advisory lock
-- would not.
create table account_deletion.purge_runs (
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
    -- Expired accounts that a foreign key without a delete action (RESTRICT,
    -- NO ACTION) kept from being deleted, and the names of those keys.
    blocked bigint not null default 0,
    blocked_by text[] not null default '{}',
    -- While `running`: the run holds the purge until this time (its budget
    -- plus a grace period); a run that dies stops holding it then, and the
    -- next run marks it `abandoned`.
    lease_expires_at timestamptz,
    -- A stable code (never a message with data in it) when status is `failed`.
    error_code text,
    created_at timestamptz not null default now()
);

-- At most one run holds the purge at a time.
create unique index purge_runs_one_running_idx on account_deletion.purge_runs (status)
    where status = 'running';
-- Operators read the ledger newest first.
create index purge_runs_started_at_idx on account_deletion.purge_runs (started_at);

-- Each batch worker of a purge run books its batches on a row of its own.
-- With one ledger row per run, every batch of every worker updated that same
-- row and held it until commit, so parallel workers queued behind each other
-- (measured: two workers no faster than one). `purge_runs.deleted` and
-- `batches` are the sums of these rows, written when the run ends (or is
-- found abandoned); while a run is in progress, its figures are here. A
-- batch books only while its run is still `running`, holding the run's row
-- `for share` so it cannot be marked abandoned mid-batch.
create table account_deletion.purge_run_workers (
    run_id bigint not null
        constraint purge_run_workers_run_id_fkey
        references account_deletion.purge_runs (id) on delete cascade,
    worker integer not null,
    deleted bigint not null default 0,
    batches integer not null default 0,
    constraint purge_run_workers_pkey primary key (run_id, worker)
);
