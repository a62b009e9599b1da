-- The deletion history of every account: one row per step (deleted by the
-- user or found deleted by the app, a link resent, restored, held,
-- released, erased, anonymized), written in the same statement or
-- transaction as the step itself. A row holds a time, an actor and a code,
-- never an address, an IP or free text, so it may be kept as long as the
-- tombstones (400 days) and answer "what happened to account X" after the
-- account is gone.
--
-- It also says which deletions the user made through the delete route: only
-- those ever get an email or a link that can restore the account. A
-- deletion the app made by itself (a ban through its own deleted-at) is
-- erased on schedule with no email of ours.
create table account_deletion.history (
    -- The user's id as text (`id::text`), like every table of ours.
    user_id text not null,
    at timestamptz not null default now(),
    action text not null
        constraint history_action_check
        check (action in ('deleted', 'restored', 'held', 'released', 'erased', 'link_resent', 'anonymized')),
    by text not null
        constraint history_by_check check (by in ('user', 'app', 'admin', 'purge')),
    -- For `deleted`: the deleted-at the step set (or found). The account is
    -- still in that deletion while its deleted-at equals this.
    for_deleted_at timestamptz,
    -- A code, never free text: how a restore was made (`link`, `sign_in`,
    -- `admin`), or why an account is held.
    detail text
        constraint history_detail_check check (detail ~ '^[a-z0-9_-]{1,40}$')
);

-- One account's history, and "did the user make this deletion".
create index history_user_id_idx on account_deletion.history (user_id);
-- Pruning rows older than the tombstones; rows are appended in time order.
create index history_at_idx on account_deletion.history using brin (at);

-- Deletions users made before this table existed: every recovery email and
-- recovery token of ours was for one.
insert into account_deletion.history (user_id, at, action, by, for_deleted_at)
select user_id, for_deleted_at, 'deleted', 'user', for_deleted_at
from (
    select user_id, for_deleted_at from account_deletion.email_outbox
    where kind = 'recovery' and for_deleted_at is not null
    union
    select user_id, for_deleted_at from account_deletion.recovery_tokens
) made_by_users;

-- Keys of this deployment, made here from the server's strong random source
-- (`gen_random_uuid`: 122 random bits each, two to a key).
create table account_deletion.server_keys (
    name text primary key,
    key bytea not null,
    created_at timestamptz not null default now()
);

-- The key the recovery rate limit stores clients under (an HMAC of the
-- address, not a bare hash that a table of all IPv4 addresses reverses).
insert into account_deletion.server_keys (name, key)
values ('rate_limit', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- Counts kept under the old bare hashes would never match again; a window
-- lasts 15 minutes, so nothing of value goes.
truncate account_deletion.recovery_failures;

-- Every failure prunes the windows that have passed.
create index recovery_failures_window_started_at_idx
    on account_deletion.recovery_failures (window_started_at);
