-- Support's controls: holds, and erasing one account now.

-- An account on hold is never erased, by the purge or by an operator's
-- "erase now", for as long as the hold stands (a dispute, a legal request).
-- One hold per account; its reason is a short code, never free text.
create table account_deletion.holds (
    -- The user's id as text (`id::text`), like every table of ours; the
    -- purge batch looks each candidate up here.
    user_id text primary key,
    reason text not null
        constraint holds_reason_check check (reason ~ '^[a-z0-9_-]{1,40}$'),
    -- When the hold was placed: the clock time after it took the purge gate,
    -- so a purge run that started before sees it as placed since its start.
    since timestamptz not null default clock_timestamp()
);

-- A purge run reads the holds once, when it starts; each of its batches
-- then looks up only the holds placed since.
create index holds_since_idx on account_deletion.holds (since);

-- A run of the purge is either the scheduled one (the cron, and `cargo dev
-- forget`) or an operator erasing one account now. Both book their batches
-- on the ledger; only scheduled runs exclude each other, and only they say
-- whether the purge keeps up.
alter table account_deletion.purge_runs
    add column kind text not null default 'scheduled'
        constraint purge_runs_kind_check check (kind in ('scheduled', 'erase_now')),
    -- Expired accounts left alone because they are held.
    add column held bigint not null default 0;

drop index account_deletion.purge_runs_one_running_idx;
-- At most one scheduled run holds the purge at a time.
create unique index purge_runs_one_running_idx on account_deletion.purge_runs (status)
    where status = 'running' and kind = 'scheduled';

-- How an account was restored (`link`, `sign_in`, `admin`), for the
-- `account.restored` event's `data.via`.
alter table account_deletion.webhook_events
    add column via text;
