//! Permanent deletion of accounts whose grace period has ended.
//!
//! A run claims the purge (a lease row in `purge_runs`), then deletes expired
//! accounts in small batches, each its own short transaction, until none are
//! left or its time budget is spent. Rows that reference `users` go with their
//! account through `ON DELETE CASCADE`.
//!
//! Why it is safe to run next to recoveries and other runs:
//! - Candidates are locked with `FOR UPDATE SKIP LOCKED`, so a batch never
//!   waits on (or deadlocks with) a row another transaction holds, and two
//!   batch workers never pick the same row.
//! - The `DELETE` re-checks `deleted_at <= cutoff` on the locked row version:
//!   an account recovered after the candidates were read stays.
//! - Each batch also records its count on the run's ledger row in the same
//!   transaction, and only while the run still holds the lease; the ledger is
//!   therefore exact even if the function is killed mid-run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::config::{PurgeSettings, RetentionDays};

/// One batch: claim up to `$2` expired accounts that nobody else holds, then
/// delete them. The candidates come straight off the partial index on
/// `deleted_at` with a `LIMIT`: no `ORDER BY`, so no sort of the backlog.
pub const BATCH_DELETE_SQL: &str = "
with candidates as (
    select id
    from users
    where deleted_at <= $1
    limit $2
    for update skip locked
)
delete from users
using candidates
where users.id = candidates.id
  and users.deleted_at <= $1";

/// How long past its time budget a run's lease lasts: room for the last batch
/// and the answer. After that a run that died is presumed dead.
const LEASE_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeStatus {
    /// Nothing eligible is left (or, for a dry run, the count is done).
    Completed,
    /// The time budget ran out with eligible accounts left; the next run
    /// continues.
    Partial,
    /// Another run holds the purge; this one did nothing.
    Skipped,
}

impl PurgeStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Partial => "partial",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeOutcome {
    pub run_id: i64,
    pub status: PurgeStatus,
    pub dry_run: bool,
    /// Accounts this run deleted.
    pub deleted: u64,
    /// Eligible accounts left after the run (for a dry run: all of them).
    pub remaining: u64,
    pub cutoff: DateTime<Utc>,
    pub batches: u32,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("purge database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl PurgeError {
    /// A stable code for the ledger; never a message with data in it.
    fn code(&self) -> &'static str {
        match self {
            Self::Database(error) if crate::web::is_unavailable(error) => "database_unavailable",
            Self::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                // An app table references `users` without ON DELETE CASCADE.
                "foreign_key_violation"
            }
            Self::Database(_) => "database_error",
        }
    }
}

/// One purge run, as the cron route calls it.
pub async fn run(
    pool: &PgPool,
    retention: RetentionDays,
    settings: PurgeSettings,
    dry_run: bool,
) -> Result<PurgeOutcome, PurgeError> {
    let started = Instant::now();
    let outcome = if dry_run {
        count_only(pool, retention, started).await?
    } else {
        match claim(pool, retention, settings.time_budget).await? {
            Some(lease) => purge_with_lease(pool, lease, settings, started).await?,
            None => skipped(pool, retention, started).await?,
        }
    };
    tracing::info!(
        run_id = outcome.run_id,
        status = outcome.status.as_str(),
        dry_run = outcome.dry_run,
        deleted = outcome.deleted,
        remaining = outcome.remaining,
        batches = outcome.batches,
        duration_ms = outcome.duration.as_millis() as u64,
        "purge run finished"
    );
    Ok(outcome)
}

/// A run that holds the purge.
#[derive(Debug, Clone, Copy)]
struct Lease {
    run_id: i64,
    cutoff: DateTime<Utc>,
}

/// Takes the purge for this run, or `None` when a live run holds it.
async fn claim(
    pool: &PgPool,
    retention: RetentionDays,
    budget: Duration,
) -> Result<Option<Lease>, sqlx::Error> {
    // A run whose lease has passed died without finishing (the function was
    // killed); record that, and free the purge for this run.
    sqlx::query(
        "update purge_runs
         set status = 'abandoned', finished_at = now(), lease_expires_at = null
         where status = 'running' and lease_expires_at < now()",
    )
    .execute(pool)
    .await?;

    let lease_seconds = (budget + LEASE_GRACE).as_secs_f64();
    let claimed: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "insert into purge_runs (status, dry_run, cutoff, lease_expires_at)
         values ('running', false, now() - make_interval(days => $1), now() + make_interval(secs => $2))
         on conflict (status) where status = 'running' do nothing
         returning id, cutoff",
    )
    .bind(retention.days())
    .bind(lease_seconds)
    .fetch_optional(pool)
    .await?;
    Ok(claimed.map(|(run_id, cutoff)| Lease { run_id, cutoff }))
}

async fn skipped(
    pool: &PgPool,
    retention: RetentionDays,
    started: Instant,
) -> Result<PurgeOutcome, sqlx::Error> {
    let (run_id, cutoff, remaining): (i64, DateTime<Utc>, i64) = sqlx::query_as(
        "with run as (
             insert into purge_runs (status, dry_run, cutoff, finished_at)
             values ('skipped', false, now() - make_interval(days => $1), now())
             returning id, cutoff
         )
         select run.id, run.cutoff, (select count(*) from users where deleted_at <= run.cutoff)
         from run",
    )
    .bind(retention.days())
    .fetch_one(pool)
    .await?;
    sqlx::query("update purge_runs set remaining = $2 where id = $1")
        .bind(run_id)
        .bind(remaining)
        .execute(pool)
        .await?;
    Ok(PurgeOutcome {
        run_id,
        status: PurgeStatus::Skipped,
        dry_run: false,
        deleted: 0,
        remaining: remaining as u64,
        cutoff,
        batches: 0,
        duration: started.elapsed(),
    })
}

async fn count_only(
    pool: &PgPool,
    retention: RetentionDays,
    started: Instant,
) -> Result<PurgeOutcome, sqlx::Error> {
    let (run_id, cutoff, eligible): (i64, DateTime<Utc>, i64) = sqlx::query_as(
        "with cutoff as (
             select now() - make_interval(days => $1) as at
         ), eligible as (
             select count(*) as n from users, cutoff where deleted_at <= cutoff.at
         ), run as (
             insert into purge_runs (status, dry_run, cutoff, remaining, finished_at)
             select 'completed', true, cutoff.at, eligible.n, now() from cutoff, eligible
             returning id, cutoff, remaining
         )
         select id, cutoff, remaining from run",
    )
    .bind(retention.days())
    .fetch_one(pool)
    .await?;
    Ok(PurgeOutcome {
        run_id,
        status: PurgeStatus::Completed,
        dry_run: true,
        deleted: 0,
        remaining: eligible as u64,
        cutoff,
        batches: 0,
        duration: started.elapsed(),
    })
}

/// Progress shared by the batch workers of one run.
#[derive(Default)]
struct Progress {
    deleted: AtomicU64,
    batches: AtomicU32,
    batches_started: AtomicU32,
    budget_spent: AtomicBool,
    lease_lost: AtomicBool,
    stop: AtomicBool,
}

async fn purge_with_lease(
    pool: &PgPool,
    lease: Lease,
    settings: PurgeSettings,
    started: Instant,
) -> Result<PurgeOutcome, PurgeError> {
    let progress = Arc::new(Progress::default());
    let mut workers = JoinSet::new();
    for _ in 0..settings.workers.get() {
        workers.spawn(worker(
            pool.clone(),
            lease,
            settings,
            started,
            Arc::clone(&progress),
        ));
    }
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        let result = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        if let Err(error) = result {
            progress.stop.store(true, Ordering::Relaxed);
            failure.get_or_insert(error);
        }
    }
    if let Some(error) = failure {
        record_failure(pool, lease, &error).await;
        return Err(error);
    }

    let remaining: i64 = sqlx::query_scalar("select count(*) from users where deleted_at <= $1")
        .bind(lease.cutoff)
        .fetch_one(pool)
        .await?;
    let cut_short = progress.budget_spent.load(Ordering::Relaxed)
        || progress.lease_lost.load(Ordering::Relaxed);
    let status = if remaining > 0 && cut_short {
        PurgeStatus::Partial
    } else {
        PurgeStatus::Completed
    };
    sqlx::query(
        "update purge_runs
         set status = $2, remaining = $3, finished_at = now(), lease_expires_at = null
         where id = $1 and status = 'running'",
    )
    .bind(lease.run_id)
    .bind(status.as_str())
    .bind(remaining)
    .execute(pool)
    .await?;

    Ok(PurgeOutcome {
        run_id: lease.run_id,
        status,
        dry_run: false,
        deleted: progress.deleted.load(Ordering::Relaxed),
        remaining: remaining as u64,
        cutoff: lease.cutoff,
        batches: progress.batches.load(Ordering::Relaxed),
        duration: started.elapsed(),
    })
}

/// Runs batches until none are left for this worker, the budget is spent or
/// another worker stops the run.
async fn worker(
    pool: PgPool,
    lease: Lease,
    settings: PurgeSettings,
    started: Instant,
    progress: Arc<Progress>,
) -> Result<(), PurgeError> {
    let batch_size = u64::from(settings.batch_size.get());
    let mut last_batch = Duration::ZERO;
    loop {
        if progress.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Every run makes progress, however small its budget: the first batch
        // always goes. After that a batch starts only if one as long as the
        // last still fits.
        let first = progress.batches_started.fetch_add(1, Ordering::Relaxed) == 0;
        if !first && started.elapsed() + last_batch > settings.time_budget {
            progress.budget_spent.store(true, Ordering::Relaxed);
            progress.stop.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let batch_started = Instant::now();
        let Some(deleted) = delete_batch(&pool, lease, batch_size).await? else {
            progress.lease_lost.store(true, Ordering::Relaxed);
            progress.stop.store(true, Ordering::Relaxed);
            return Ok(());
        };
        last_batch = batch_started.elapsed();
        progress.deleted.fetch_add(deleted, Ordering::Relaxed);
        progress.batches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            run_id = lease.run_id,
            deleted,
            batch_ms = last_batch.as_millis() as u64,
            "purge batch"
        );
        // A short batch means the index had no more unclaimed candidates for
        // this worker; the others finish their own.
        if deleted < batch_size {
            return Ok(());
        }
    }
}

/// Deletes one batch and books it on the ledger, in one transaction.
/// `None` when the run no longer holds the lease (it outlived it and another
/// run took over); the batch is then rolled back.
async fn delete_batch(
    pool: &PgPool,
    lease: Lease,
    batch_size: u64,
) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query(BATCH_DELETE_SQL)
        .bind(lease.cutoff)
        .bind(batch_size as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let booked = sqlx::query(
        "update purge_runs set deleted = deleted + $2, batches = batches + 1
         where id = $1 and status = 'running'",
    )
    .bind(lease.run_id)
    .bind(deleted as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if booked == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(deleted))
}

/// Best effort: if the database is gone this fails too, and the lease simply
/// expires; the next run then records the run as abandoned.
async fn record_failure(pool: &PgPool, lease: Lease, error: &PurgeError) {
    let recorded = sqlx::query(
        "update purge_runs
         set status = 'failed', error_code = $2, finished_at = now(), lease_expires_at = null
         where id = $1 and status = 'running'",
    )
    .bind(lease.run_id)
    .bind(error.code())
    .execute(pool)
    .await;
    if let Err(ledger_error) = recorded {
        tracing::warn!(run_id = lease.run_id, error = %ledger_error, "could not record the failed purge run");
    }
}
