-- A copy of the user's data (GDPR Art. 15 and 20), delivered like the
-- recovery link: a link to the account's address, whose token only its
-- holder has. One row per account: its current link (a newer request
-- replaces it) and when its holder last asked for one (one request a day).
--
-- The link's email owns the row: when the purge or an anonymization
-- forgets the account's emails, or the email cron prunes a delivered one
-- (at least a day later), the row and its link go with it.
create table account_deletion.exports (
    -- The user's id as text (`id::text`), like every table of ours.
    user_id text primary key,
    -- SHA-256 of the link's token; the token itself is never stored.
    token_hash bytea not null constraint exports_token_hash_key unique,
    -- The email that carries the link.
    outbox_id uuid not null
        constraint exports_outbox_id_fkey
        references account_deletion.email_outbox (id) on delete cascade,
    expires_at timestamptz not null,
    -- Downloads started with this link (at most 3).
    downloads integer not null default 0,
    -- The last request the user made (an operator's does not count).
    user_requested_at timestamptz
);

-- The outbox cascade.
create index exports_outbox_id_idx on account_deletion.exports (outbox_id);

-- The checks only widen, and the history may hold millions of rows: each
-- new check is added `not valid`, so adding it scans nothing under the
-- table's exclusive lock (a migration is one transaction, so validating it
-- here would scan under that lock all the same). It holds for every row
-- written from now on; every row before was written under a narrower one.
alter table account_deletion.email_outbox
    drop constraint email_outbox_kind_check,
    add constraint email_outbox_kind_check
        check (kind in ('recovery', 'reminder', 'restored', 'erased', 'export')) not valid;

alter table account_deletion.history
    drop constraint history_action_check,
    add constraint history_action_check
        check (action in ('deleted', 'restored', 'held', 'released', 'erased', 'link_resent',
                          'anonymized', 'export_requested', 'exported')) not valid;

alter table account_deletion.webhook_events
    drop constraint webhook_events_type_check,
    add constraint webhook_events_type_check
        check (type in ('account.deleted', 'account.restored', 'account.purged', 'account.anonymized',
                        'account.export_requested', 'account.exported')) not valid;
