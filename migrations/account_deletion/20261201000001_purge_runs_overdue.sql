-- Accounts still present more than one purge interval (OVERDUE_AFTER_HOURS)
-- after their retention ended, when the run finished, and how long past its
-- retention the oldest of them was. Figures only, like the rest of the ledger.
alter table account_deletion.purge_runs
    add column overdue bigint not null default 0,
    add column oldest_overdue_seconds bigint;

-- The status route counts the emails that gave up; sent rows (nearly all of
-- them) stay out of this index.
create index email_outbox_failed_idx on account_deletion.email_outbox (next_attempt_at)
    where status = 'failed';
