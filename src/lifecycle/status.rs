//! Whether erasure is keeping up: the figures behind `GET /api/status`, and
//! what in them needs a person.
//!
//! Needs a person (the route answers 503):
//! - `overdue`: accounts still present a purge interval
//!   (`OVERDUE_AFTER_HOURS`) after their retention ended;
//! - `blocked`: accounts past their retention that a foreign key without a
//!   delete action keeps (under `ERASE_BLOCKED=wait`; under `anonymize` the
//!   purge anonymizes them);
//! - `purge_stale`: no purge completed within two intervals (or, before the
//!   first one, within two intervals of installing);
//! - `emails_given_up`: an email that gave up retrying in the last
//!   [`GIVEN_UP_WINDOW_DAYS`] days;
//! - `webhooks_given_up`: the same for an account event.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::{EraseBlocked, OverdueAfter, RetentionDays};
use crate::lifecycle::purge;
use crate::platform::db::{self, Limits};
use crate::platform::time::rfc3339;
use crate::schema::sql::Statements;

/// How long an email or event that gave up keeps the status at 503: long enough for
/// a monitor checking daily to see it, short enough that a handled one stops
/// alarming without a manual step.
pub const GIVEN_UP_WINDOW_DAYS: i32 = 7;

/// What our own tables say: now, the cutoff, the last completed purge, when
/// this project was installed, emails pending and given up, events pending
/// and given up.
type Ours = (
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i64,
    i64,
    i64,
    i64,
);

#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    /// What needs a person, by name (empty when `ok`).
    pub problems: Vec<&'static str>,
    /// Soft-deleted accounts in their grace period.
    pub pending: i64,
    /// Accounts past their retention, still present (blocked ones included,
    /// held ones not: they are not due while the hold stands).
    pub due: i64,
    pub overdue: u64,
    pub oldest_overdue_seconds: Option<i64>,
    pub blocked: i64,
    pub blocked_by: Vec<String>,
    /// Accounts past their retention that an operator holds: left alone on
    /// purpose, not a problem.
    pub held: i64,
    /// Accounts anonymized and kept for the rows that reference them (an
    /// invoice): the person is erased; not a problem.
    pub anonymized: i64,
    pub last_completed_purge: Option<String>,
    pub last_completed_purge_age_seconds: Option<i64>,
    pub emails_pending: i64,
    pub emails_given_up: i64,
    /// Account events not yet delivered to the webhook.
    pub webhooks_pending: i64,
    pub webhooks_given_up: i64,
}

/// Reads the figures in one transaction.
pub async fn check(
    pool: &PgPool,
    sql: &Statements,
    retention: RetentionDays,
    overdue_after: OverdueAfter,
    erase_blocked: EraseBlocked,
) -> Result<Health, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let (
        now,
        cutoff,
        last_completed,
        installed,
        emails_pending,
        emails_given_up,
        webhooks_pending,
        webhooks_given_up,
    ): Ours = db::query_as(
        "select now(), now() - make_interval(days => $1),
                (select max(finished_at) from account_deletion.purge_runs
                 where status = 'completed' and not dry_run and kind = 'scheduled'),
                (select min(installed_on) from account_deletion._sqlx_migrations),
                (select count(*) from account_deletion.email_outbox where status = 'pending'),
                (select count(*) from account_deletion.email_outbox
                 where status = 'failed' and next_attempt_at > now() - make_interval(days => $2)),
                (select count(*) from account_deletion.webhook_events where status = 'pending'),
                (select count(*) from account_deletion.webhook_events
                 where status = 'failed' and next_attempt_at > now() - make_interval(days => $2))",
    )
    .bind(retention.days())
    .bind(GIVEN_UP_WINDOW_DAYS)
    .fetch_one(&mut *tx)
    .await?;
    let expired = purge::count_expired(&mut tx, sql, cutoff, overdue_after).await?;
    let pending: i64 = db::query_scalar(&sql.count_pending)
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;

    let stale_after = chrono::Duration::hours(2 * i64::from(overdue_after.hours()));
    let purge_stale = match (last_completed, installed) {
        (Some(at), _) => now - at > stale_after,
        (None, Some(installed)) => now - installed > stale_after,
        (None, None) => true,
    };
    let mut problems = Vec::new();
    if expired.overdue.count > 0 {
        problems.push("overdue");
    }
    // Under `anonymize` the purge anonymizes blocked accounts; one it has
    // not reached in time is overdue like any other.
    if expired.blocked > 0 && erase_blocked == EraseBlocked::Wait {
        problems.push("blocked");
    }
    if purge_stale {
        problems.push("purge_stale");
    }
    if emails_given_up > 0 {
        problems.push("emails_given_up");
    }
    if webhooks_given_up > 0 {
        problems.push("webhooks_given_up");
    }
    Ok(Health {
        ok: problems.is_empty(),
        problems,
        pending,
        due: expired.deletable + expired.blocked,
        overdue: expired.overdue.count,
        oldest_overdue_seconds: expired.overdue.oldest_seconds,
        blocked: expired.blocked,
        blocked_by: expired.blocked_by,
        held: expired.held,
        anonymized: expired.anonymized,
        last_completed_purge: last_completed.map(rfc3339),
        last_completed_purge_age_seconds: last_completed.map(|at| (now - at).num_seconds()),
        emails_pending,
        emails_given_up,
        webhooks_pending,
        webhooks_given_up,
    })
}
