-- Accounts and their sign-in sessions: the two tables the contract lets the
-- app and the tests read and write directly.

create table users (
    id uuid primary key default gen_random_uuid(),
    email text not null constraint users_email_key unique,
    created_at timestamptz not null default now(),
    -- Set when the user deletes their account; the purge erases the row once
    -- it is older than the retention period. Null for active accounts.
    deleted_at timestamptz
);

-- The purge walks only soft-deleted rows, oldest first, in small batches. A
-- partial index keeps that walk proportional to the backlog, not to the whole
-- user base, and lets the batch query read candidates in index order instead
-- of sorting them.
create index users_deleted_at_idx on users (deleted_at) where deleted_at is not null;

create table sessions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null
        constraint sessions_user_id_fkey references users (id) on delete cascade,
    -- SHA-256 of the token's bytes; the token itself is never stored.
    token_hash bytea not null constraint sessions_token_hash_key unique,
    expires_at timestamptz not null,
    created_at timestamptz not null default now()
);

-- Revoking every session of a user and cascading the purge both look sessions
-- up by user.
create index sessions_user_id_idx on sessions (user_id);
