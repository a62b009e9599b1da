-- Account recovery: emailed single-use links, the durable outbox that sends
-- them, and the failed-attempt counter that slows down guessing.

-- Every email the service sends, written in the same transaction as the
-- change it reports, so a crash can delay an email but never lose it.
create table email_outbox (
    -- Also the stable Message-ID of the email, so a duplicate delivery is
    -- recognisable as one.
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null
        constraint email_outbox_user_id_fkey references users (id) on delete cascade,
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

-- Purge cascade and "supersede this user's pending emails" look up by user.
create index email_outbox_user_id_idx on email_outbox (user_id);
-- The sweep reads only what is due; sent rows stay out of this index.
create index email_outbox_due_idx on email_outbox (next_attempt_at) where status = 'pending';
-- One reminder per deletion, however many sweeps run at once.
create unique index email_outbox_one_reminder_idx on email_outbox (user_id, for_deleted_at)
    where kind = 'reminder';

create table recovery_tokens (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null
        constraint recovery_tokens_user_id_fkey references users (id) on delete cascade,
    -- The email that carried this token.
    outbox_id uuid not null
        constraint recovery_tokens_outbox_id_fkey references email_outbox (id) on delete cascade,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash bytea not null constraint recovery_tokens_token_hash_key unique,
    -- The deletion this token can undo; useless once the account was restored
    -- and deleted again.
    for_deleted_at timestamptz not null,
    used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);

-- Revoking a user's older tokens, and the purge cascade.
create index recovery_tokens_user_id_idx on recovery_tokens (user_id);
-- The outbox cascade.
create index recovery_tokens_outbox_id_idx on recovery_tokens (outbox_id);

-- Failed recovery attempts per client in a fixed window. Functions are
-- stateless, so the count lives here. The client is stored as a hash of its
-- address, not the address.
create table recovery_failures (
    client_hash bytea primary key,
    window_started_at timestamptz not null default now(),
    failures integer not null default 0,
    created_at timestamptz not null default now()
);
