//! The run's lease on the purge: claimed, finished with its figures, or
//! failed with its code.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::{Keep, RetentionDays};
use crate::platform::db::{self, Limits};
use crate::schema::sql::Statements;

use super::{Expired, LEASE_GRACE, Lease, PurgeError, PurgeStatus};

/// Takes the purge for this run, or `None` when a live run holds it.
pub(super) async fn claim(
    pool: &PgPool,
    retention: RetentionDays,
    budget: Duration,
) -> Result<Option<Lease>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    // A run whose lease has passed died without finishing (the function was
    // killed); record that, and free the purge for this run.
    db::query(concat!(
        "update account_deletion.purge_runs
         set status = 'abandoned', finished_at = now(), lease_expires_at = null, ",
        set_totals!(),
        " where status = 'running' and kind = 'scheduled' and lease_expires_at < now()"
    ))
    .execute(&mut *tx)
    .await?;

    let lease_seconds = (budget + LEASE_GRACE).as_secs_f64();
    let claimed: Option<(i64, DateTime<Utc>)> = db::query_as(
        "insert into account_deletion.purge_runs (status, dry_run, cutoff, lease_expires_at)
         values ('running', false, now() - make_interval(days => $1), now() + make_interval(secs => $2))
         on conflict (status) where status = 'running' and kind = 'scheduled' do nothing
         returning id, cutoff",
    )
    .bind(retention.days())
    .bind(lease_seconds)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed.map(|(run_id, cutoff)| Lease { run_id, cutoff }))
}

/// Records a run's end on the ledger (which frees the purge for the next
/// run), retried through a short outage: the run's work is done and must be
/// booked, not left to the lease's end. Then forgets what has been kept
/// long enough.
pub(super) async fn finish_run(
    pool: &PgPool,
    sql: &Statements,
    lease: Lease,
    status: PurgeStatus,
    left: i64,
    expired: &Expired,
    keep: Keep,
) -> Result<(), sqlx::Error> {
    db::retry_while_unavailable("record the end of a purge run", || async {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        db::query(concat!(
            "update account_deletion.purge_runs
             set status = $2, remaining = $3, blocked = $4, blocked_by = $5,
                 overdue = $6, oldest_overdue_seconds = $7, held = $8,
                 finished_at = now(), lease_expires_at = null, ",
            set_totals!(),
            " where id = $1 and status = 'running'"
        ))
        .bind(lease.run_id)
        .bind(status.as_str())
        .bind(left)
        .bind(expired.blocked)
        .bind(&expired.blocked_by)
        .bind(expired.overdue.count as i64)
        .bind(expired.overdue.oldest_seconds)
        .bind(expired.held)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await?;
    crate::lifecycle::prune::purge_records(pool, sql, keep).await;
    Ok(())
}

/// Best effort: if the database stays away this fails too, and the lease
/// simply expires; the next run then records the run as abandoned.
pub(super) async fn record_failure(pool: &PgPool, lease: Lease, error: &PurgeError) {
    // Retried through a short outage: a run that could not record its end
    // would hold the purge until its lease runs out.
    let recorded = db::retry_while_unavailable("record a failed purge run", || async {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        db::query(concat!(
            "update account_deletion.purge_runs
             set status = 'failed', error_code = $2, finished_at = now(), lease_expires_at = null, ",
            set_totals!(),
            " where id = $1 and status = 'running'"
        ))
        .bind(lease.run_id)
        .bind(error.code())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await;
    if let Err(ledger_error) = recorded {
        tracing::warn!(run_id = lease.run_id, error = %ledger_error, "could not record the failed purge run");
    }
}
