-- Account events for the app's webhook (WEBHOOK_URL), written in the same
-- transaction as the change they report, like emails, and delivered at
-- least once. Only written while a webhook is configured.
--
-- An event holds user ids and times, never an email address. A purge batch
-- writes one `account.purged` event per 1,000 accounts it deleted, so a
-- million purged accounts are about a thousand requests, not a million.
create table account_deletion.webhook_events (
    -- Also the stable `webhook-id` (`msg_` and this id without dashes), so
    -- the receiver can drop a duplicate delivery.
    id uuid primary key default gen_random_uuid(),
    type text not null
        constraint webhook_events_type_check
        check (type in ('account.deleted', 'account.restored', 'account.purged')),
    -- Users' ids as text: one for deleted and restored, up to 1,000 for purged.
    user_ids text[] not null,
    -- When the change happened (the transaction's time).
    occurred_at timestamptz not null,
    -- For account.deleted: when the account will be purged.
    purge_after timestamptz,
    status text not null default 'pending'
        constraint webhook_events_status_check check (status in ('pending', 'sent', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- A sender holds the row until then; another sender skips it meanwhile.
    claimed_until timestamptz,
    sent_at timestamptz,
    -- A short error class (`timeout`, `status_500`), never the URL or the
    -- receiver's answer.
    last_error text,
    created_at timestamptz not null default now()
);

-- The sweep reads only what is due, the status route what gave up.
create index webhook_events_due_idx on account_deletion.webhook_events (next_attempt_at)
    where status = 'pending';
create index webhook_events_failed_idx on account_deletion.webhook_events (next_attempt_at)
    where status = 'failed';
-- Pruning delivered events.
create index webhook_events_created_at_idx on account_deletion.webhook_events using brin (created_at);

-- The optional "your account has been erased" email (SEND_ERASED_EMAIL),
-- queued by the purge batch that deletes the account. Its address is the
-- only trace of the person left, and it goes once the email is delivered
-- or given up on.
alter table account_deletion.email_outbox
    drop constraint email_outbox_kind_check,
    add constraint email_outbox_kind_check
        check (kind in ('recovery', 'reminder', 'restored', 'erased'));
