//! What the email cron does each time it runs, besides pruning: records
//! the accounts the app soft-deleted by itself, queues the reminders that
//! are due, and has the outbox send every email that is due
//! ([`crate::delivery::outbox::send_due`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::{MailConfig, RetentionDays};
use crate::delivery::outbox;
use crate::lifecycle::sweeps::{self, SLICE_ROWS, Walk};
use crate::platform::db::{self, Limits};
use crate::schema::sql::Statements;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Accounts found soft-deleted by the app itself, now in their history.
    pub app_deletions_recorded: u64,
    pub reminders_queued: u64,
    /// What sending the due emails did (its fields sit in the answer
    /// beside these).
    #[serde(flatten)]
    pub sending: outbox::SendReport,
    /// Rows of ours kept long enough and deleted ([`crate::lifecycle::prune::deliveries`]).
    pub pruned: u64,
}

/// The cron-driven sweep: queue reminders that are due, send everything due
/// (first attempts whose sender died, and retries). (Its cron prunes old
/// rows after it.)
pub async fn sweep(
    pool: &PgPool,
    sql: &Arc<Statements>,
    mail: &MailConfig,
    retention: RetentionDays,
    reminder_days: u16,
    budget: Duration,
) -> Result<SweepReport, sqlx::Error> {
    let started = Instant::now();
    let mut report = SweepReport {
        app_deletions_recorded: record_app_deletions(pool, sql).await?,
        reminders_queued: queue_reminders(pool, sql, retention, reminder_days).await?,
        ..SweepReport::default()
    };
    report.sending = outbox::send_due(pool, sql, mail, retention, started + budget).await?;
    tracing::info!(
        reminders_queued = report.reminders_queued,
        sent = report.sending.sent,
        retrying = report.sending.retrying,
        gave_up = report.sending.gave_up,
        cancelled = report.sending.cancelled,
        remaining_due = report.sending.remaining_due,
        duration_ms = started.elapsed().as_millis() as u64,
        app_deletions_recorded = report.app_deletions_recorded,
        "email sweep finished"
    );
    Ok(report)
}

/// Puts the accounts the app soft-deleted by itself (a ban) in their
/// history as deleted by the app, so that support can tell them apart. They
/// get no email of ours.
///
/// Each sweep walks what was deleted since the last one (above the walk's
/// watermark, which stays [`LATE_COMMIT_SLACK`] behind the clock for the
/// app's transactions that commit late), and one slice of the older rest
/// ([`crate::lifecycle::sweeps`]); each slice is a transaction of its own, with the
/// walk's new place.
async fn record_app_deletions(pool: &PgPool, sql: &Statements) -> Result<u64, sqlx::Error> {
    let started = Instant::now();
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let place = sweeps::place(&mut tx, Walk::AppDeletions).await?;
    let settled: DateTime<Utc> = db::query_scalar("select now() - make_interval(secs => $1)")
        .bind(LATE_COMMIT_SLACK.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    // What was deleted long enough ago: recorded, and the watermark
    // raised past it, slice by slice.
    let mut recorded = 0;
    let mut after = place.watermark.clone();
    let mut reached_settled = false;
    while !reached_settled && started.elapsed() < RECORDING_BUDGET {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let slice = sweeps::next_slice(
            &mut tx,
            sql,
            after.as_ref(),
            None,
            Some(settled),
            SLICE_ROWS,
        )
        .await?;
        recorded += record_slice(&mut tx, sql, &slice).await?;
        if slice.up_to.is_some() {
            sweeps::set_watermark(&mut tx, Walk::AppDeletions, slice.up_to.as_ref(), None).await?;
            after.clone_from(&slice.up_to);
        }
        tx.commit().await?;
        reached_settled = slice.reaches_end;
    }
    // The newest deletions: recorded now, walked again by the next sweep.
    while reached_settled && started.elapsed() < RECORDING_BUDGET {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let slice =
            sweeps::next_slice(&mut tx, sql, after.as_ref(), None, None, SLICE_ROWS).await?;
        recorded += record_slice(&mut tx, sql, &slice).await?;
        tx.commit().await?;
        if slice.reaches_end {
            break;
        }
        after = slice.up_to;
    }
    if let Some(watermark) = &place.watermark {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let slice = sweeps::next_slice(
            &mut tx,
            sql,
            place.cursor.as_ref(),
            Some(watermark),
            None,
            SLICE_ROWS,
        )
        .await?;
        recorded += record_slice(&mut tx, sql, &slice).await?;
        sweeps::advance_cursor(&mut tx, Walk::AppDeletions, &slice, None).await?;
        tx.commit().await?;
    }
    Ok(recorded)
}

async fn record_slice(
    tx: &mut sqlx::PgConnection,
    sql: &Statements,
    slice: &sweeps::Slice,
) -> Result<u64, sqlx::Error> {
    if slice.rows == 0 {
        return Ok(0);
    }
    Ok(db::query(&sql.record_app_deletions)
        .bind(slice.after.as_ref().map(|key| key.at))
        .bind(slice.after.as_ref().map(|key| key.id.as_str()))
        .bind(slice.up_to.as_ref().map(|key| key.at))
        .bind(slice.up_to.as_ref().map(|key| key.id.as_str()))
        .execute(tx)
        .await?
        .rows_affected())
}

/// How far behind the clock the app-deletion walk's watermark stays: an
/// app's transaction that set a deleted-at may commit that much later and
/// still be walked as new work (later than that, the sweep finds it).
const LATE_COMMIT_SLACK: Duration = Duration::from_secs(3600);

/// No slice of new app deletions starts after this long; the next sweep
/// goes on.
const RECORDING_BUDGET: Duration = Duration::from_secs(20);

/// One reminder per deletion, `reminder_days` before the purge.
async fn queue_reminders(
    pool: &PgPool,
    sql: &Statements,
    retention: RetentionDays,
    reminder_days: u16,
) -> Result<u64, sqlx::Error> {
    let reminder_days = i32::from(reminder_days);
    if reminder_days == 0 || reminder_days >= retention.days() {
        return Ok(0);
    }
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let queued = db::query(&sql.queue_reminders)
        .bind(retention.days())
        .bind(reminder_days)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(queued)
}
