//! Permanent deletion of accounts whose grace period has ended.
//!
//! A run claims the purge (a lease row in `purge_runs`), then deletes expired
//! accounts in small batches, each its own short transaction, until none are
//! left or its time budget is spent. Rows that reference the users table go
//! with their account through `ON DELETE CASCADE`; this project's own rows
//! about the account go in the same statement.
//!
//! An account that a foreign key without a delete action (`RESTRICT`, `NO
//! ACTION`) still references cannot be deleted. The batch statement leaves
//! such accounts out (every chain of keys that could block is read from the
//! catalog, see [`crate::schema`]), so they never fail a batch; every run
//! tries them again, and reports how many there are and which keys hold them.
//!
//! Why it is safe to run next to recoveries and other runs:
//! - Candidates are locked with `FOR UPDATE SKIP LOCKED`, so a batch never
//!   waits on (or deadlocks with) a row another transaction holds, and two
//!   batch workers never pick the same row.
//! - The `DELETE` re-checks `deleted_at <= cutoff` on the locked row version:
//!   an account recovered after the candidates were read stays.
//! - Each batch also records its count on the ledger in the same transaction
//!   (on its worker's row of `purge_run_workers`), and only while the run
//!   still holds the lease; the ledger is therefore exact even if the
//!   function is killed mid-run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;

use crate::config::{EraseBlocked, Keep, OverdueAfter, PurgeSettings, RetentionDays};
use crate::db::{self, Limits, Literal};
use crate::schema::{Catalog, ForeignKey, SchemaError, UserId};
use crate::sql::{AppTables, Statements};

mod batch_size;
use batch_size::BatchSize;

/// `set` clause of a run that ends: its totals, summed from the rows its
/// workers booked their batches on.
macro_rules! set_totals {
    () => {
        "deleted = (select coalesce(sum(w.deleted), 0) from account_deletion.purge_run_workers w where w.run_id = purge_runs.id),
         anonymized = (select coalesce(sum(w.anonymized), 0) from account_deletion.purge_run_workers w where w.run_id = purge_runs.id),
         batches = (select coalesce(sum(w.batches), 0) from account_deletion.purge_run_workers w where w.run_id = purge_runs.id)"
    };
}

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
    /// Accounts this run anonymized (`ERASE_BLOCKED=anonymize`; for a dry
    /// run, those it would).
    pub anonymized: u64,
    /// Eligible accounts left after the run that the next run can delete
    /// (for a dry run: all of them).
    pub remaining: u64,
    /// Eligible accounts that a foreign key without a delete action keeps
    /// from being deleted; not counted in `remaining`.
    pub blocked: u64,
    /// The names of those keys.
    pub blocked_by: Vec<String>,
    /// Eligible accounts left alone because they are held; not counted in
    /// `remaining` or `blocked`.
    pub held: u64,
    /// Accounts still present a purge interval after their retention ended
    /// (blocked ones included), when the run finished.
    pub overdue: Overdue,
    /// For a dry run: what in the app's schema keeps the purge from working
    /// well.
    pub findings: Option<Findings>,
    pub cutoff: DateTime<Utc>,
    pub batches: u32,
    pub duration: Duration,
    /// How long each batch transaction took, in the order they finished.
    pub batch_latencies: Vec<Duration>,
}

impl PurgeOutcome {
    /// The slowest batch, the figure that bounds how long rows stay locked.
    pub fn slowest_batch(&self) -> Duration {
        self.batch_latencies
            .iter()
            .copied()
            .max()
            .unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("purge database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The app's tables do not match the configuration.
    #[error(transparent)]
    Schema(SchemaError),
}

impl From<SchemaError> for PurgeError {
    fn from(error: SchemaError) -> Self {
        match error {
            SchemaError::Database(error) => Self::Database(error),
            misconfigured @ SchemaError::Misconfigured { .. } => Self::Schema(misconfigured),
        }
    }
}

impl PurgeError {
    /// A stable code for the ledger; never a message with data in it.
    fn code(&self) -> &'static str {
        match self {
            Self::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
                // A batch waited longer than its limit for a lock (an app
                // transaction holding a row the cascade must delete).
                "lock_timeout"
            }
            Self::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("57014") => {
                "statement_timeout"
            }
            Self::Database(error) if db::is_unavailable(error) => "database_unavailable",
            Self::Database(error) if is_foreign_key_violation(error) => {
                // A key the catalog did not show when the batch was rendered,
                // and still there after reading it again.
                "foreign_key_violation"
            }
            Self::Database(_) => "database_error",
            Self::Schema(_) => "schema_mismatch",
        }
    }
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// What a dry run found in the app's schema: the keys that will keep
/// accounts from being deleted, and the references every deleted account
/// makes the database scan for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Findings {
    /// Foreign keys without a delete action that lets the purge proceed:
    /// `RESTRICT` or `NO ACTION` on the users table, or on a table whose rows
    /// go with a user's through `ON DELETE CASCADE`.
    pub blocking_foreign_keys: Vec<KeyNote>,
    /// Referencing columns with no index that starts with them.
    pub unindexed_foreign_keys: Vec<KeyNote>,
    /// Whether the deleted-at column has an index the purge can walk.
    pub deleted_at_indexed: bool,
}

/// One foreign key, by name, without data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyNote {
    pub constraint: String,
    pub table: String,
    pub columns: Vec<String>,
    pub on_delete: &'static str,
}

impl From<&ForeignKey> for KeyNote {
    fn from(key: &ForeignKey) -> Self {
        Self {
            constraint: key.constraint.to_string(),
            table: key.table.to_string(),
            columns: key.columns.iter().map(ToString::to_string).collect(),
            on_delete: key.on_delete.as_str(),
        }
    }
}

impl Findings {
    fn of(catalog: &Catalog) -> Self {
        let mut keys: Vec<&ForeignKey> = catalog.references.iter().collect();
        for path in &catalog.blocking {
            keys.extend(&path.0);
        }
        keys.sort_by(|a, b| {
            (&a.table.to_string(), a.constraint.as_str())
                .cmp(&(&b.table.to_string(), b.constraint.as_str()))
        });
        keys.dedup_by(|a, b| a.table == b.table && a.constraint == b.constraint);
        Self {
            blocking_foreign_keys: keys
                .iter()
                .filter(|key| !key.on_delete.lets_delete())
                .map(|key| KeyNote::from(*key))
                .collect(),
            unindexed_foreign_keys: keys
                .iter()
                .filter(|key| !key.indexed)
                .map(|key| KeyNote::from(*key))
                .collect(),
            deleted_at_indexed: catalog.deleted_at_indexed,
        }
    }
}

/// One purge run, as the cron route calls it.
pub async fn run(
    pool: &PgPool,
    tables: &AppTables,
    retention: RetentionDays,
    settings: PurgeSettings,
    dry_run: bool,
) -> Result<PurgeOutcome, PurgeError> {
    run_scoped(pool, tables, retention, settings, dry_run, None).await
}

/// A run that, whatever `ERASE_BLOCKED` says, anonymizes the blocked
/// accounts among `ids` (re-erasure after a restore, of accounts their
/// tombstones say were anonymized); it deletes whatever else is due, as
/// any run. `tables` must be anonymizing.
pub async fn run_anonymizing(
    pool: &PgPool,
    tables: &AppTables,
    retention: RetentionDays,
    settings: PurgeSettings,
    ids: &[String],
) -> Result<PurgeOutcome, PurgeError> {
    let settings = PurgeSettings {
        erase_blocked: EraseBlocked::Anonymize,
        ..settings
    };
    run_scoped(pool, tables, retention, settings, false, Some(ids)).await
}

async fn run_scoped(
    pool: &PgPool,
    tables: &AppTables,
    retention: RetentionDays,
    settings: PurgeSettings,
    dry_run: bool,
    anonymize_only: Option<&[String]>,
) -> Result<PurgeOutcome, PurgeError> {
    let started = Instant::now();
    let sql = tables.statements(pool).await?;
    let outcome = if dry_run {
        count_only(pool, &sql, retention, &settings, started).await?
    } else {
        match claim(pool, retention, settings.time_budget).await? {
            // Whatever stops the run once it holds the lease, the process
            // lives: it books what was done and frees the purge (retrying
            // through a short outage), so that only a run whose process
            // died makes the next ones wait for its lease to pass.
            Some(lease) => {
                match purge_with_lease(pool, tables, sql, lease, settings, started, anonymize_only)
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        record_failure(pool, lease, &error).await;
                        return Err(error);
                    }
                }
            }
            None => skipped(pool, &sql, retention, &settings, started).await?,
        }
    };
    if outcome.overdue.count > 0 {
        // Somebody must act: a blocked account, a backlog bigger than the
        // budget, or runs that fail. The figures say which.
        tracing::error!(
            run_id = outcome.run_id,
            overdue = outcome.overdue.count,
            oldest_overdue_seconds = outcome.overdue.oldest_seconds,
            blocked = outcome.blocked,
            remaining = outcome.remaining,
            "erasure is overdue: accounts are still present a purge interval after their retention ended"
        );
    }
    tracing::info!(
        run_id = outcome.run_id,
        status = outcome.status.as_str(),
        dry_run = outcome.dry_run,
        deleted = outcome.deleted,
        remaining = outcome.remaining,
        blocked = outcome.blocked,
        blocked_by = ?outcome.blocked_by,
        batches = outcome.batches,
        slowest_batch_ms = outcome.slowest_batch().as_millis() as u64,
        duration_ms = outcome.duration.as_millis() as u64,
        "purge run finished"
    );
    if outcome.blocked > 0 {
        tracing::warn!(
            blocked = outcome.blocked,
            blocked_by = ?outcome.blocked_by,
            "expired accounts are kept by foreign keys without ON DELETE CASCADE or SET NULL"
        );
    }
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

/// Expired accounts at a cutoff.
pub(crate) struct Expired {
    /// Those the purge can delete.
    pub deletable: i64,
    pub blocked: i64,
    /// The keys that block them, by name.
    pub blocked_by: Vec<String>,
    pub overdue: Overdue,
    /// Those an operator holds (none of the above).
    pub held: i64,
    /// Those anonymized, still kept by their references (none of the
    /// above).
    pub anonymized: i64,
}

/// Accounts still present more than one purge interval after their
/// retention ended: erasure has fallen behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overdue {
    pub count: u64,
    /// How long past its retention the oldest of them is.
    pub oldest_seconds: Option<i64>,
}

pub(crate) async fn count_expired(
    conn: &mut sqlx::PgConnection,
    sql: &Statements,
    cutoff: DateTime<Utc>,
    overdue_after: OverdueAfter,
) -> Result<Expired, sqlx::Error> {
    let (deletable, blocked, per_path, overdue, oldest_seconds, held, anonymized): (
        i64,
        i64,
        Vec<i64>,
        i64,
        Option<i64>,
        i64,
        i64,
    ) = db::query_as(&sql.count_expired)
        .bind(cutoff)
        .bind(overdue_after.hours() as i32)
        .fetch_one(conn)
        .await?;
    let mut blocked_by: Vec<String> = sql
        .catalog
        .blocking
        .iter()
        .zip(per_path)
        .filter(|(_, count)| *count > 0)
        .map(|(path, _)| path.constraint().to_string())
        .collect();
    blocked_by.dedup();
    Ok(Expired {
        deletable,
        blocked,
        blocked_by,
        overdue: Overdue {
            count: overdue as u64,
            oldest_seconds,
        },
        held,
        anonymized,
    })
}

/// A run that found the purge held: records itself and what is left.
async fn skipped(
    pool: &PgPool,
    sql: &Statements,
    retention: RetentionDays,
    settings: &PurgeSettings,
    started: Instant,
) -> Result<PurgeOutcome, sqlx::Error> {
    ledger_only(pool, sql, retention, settings, started, false).await
}

/// A dry run: counts, and reads the catalog for what will get in the way.
async fn count_only(
    pool: &PgPool,
    sql: &Statements,
    retention: RetentionDays,
    settings: &PurgeSettings,
    started: Instant,
) -> Result<PurgeOutcome, sqlx::Error> {
    let mut outcome = ledger_only(pool, sql, retention, settings, started, true).await?;
    outcome.findings = Some(Findings::of(&sql.catalog));
    Ok(outcome)
}

/// A run that deletes nothing (skipped, or dry): one ledger row with the
/// counts.
async fn ledger_only(
    pool: &PgPool,
    sql: &Statements,
    retention: RetentionDays,
    settings: &PurgeSettings,
    started: Instant,
    dry_run: bool,
) -> Result<PurgeOutcome, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let cutoff: DateTime<Utc> = db::query_scalar("select now() - make_interval(days => $1)")
        .bind(retention.days())
        .fetch_one(&mut *tx)
        .await?;
    let expired = count_expired(&mut tx, sql, cutoff, settings.overdue_after).await?;
    // What a run would anonymize: every blocked account, when it may.
    let anonymized = if dry_run && settings.erase_blocked == EraseBlocked::Anonymize {
        expired.blocked
    } else {
        0
    };
    let status = if dry_run {
        PurgeStatus::Completed
    } else {
        PurgeStatus::Skipped
    };
    let run_id: i64 = db::query_scalar(
        "insert into account_deletion.purge_runs
             (status, dry_run, cutoff, remaining, blocked, blocked_by, overdue,
              oldest_overdue_seconds, held, anonymized, finished_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
         returning id",
    )
    .bind(status.as_str())
    .bind(dry_run)
    .bind(cutoff)
    .bind(expired.deletable)
    .bind(expired.blocked)
    .bind(&expired.blocked_by)
    .bind(expired.overdue.count as i64)
    .bind(expired.overdue.oldest_seconds)
    .bind(expired.held)
    .bind(anonymized)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(PurgeOutcome {
        run_id,
        status,
        dry_run,
        deleted: 0,
        anonymized: anonymized as u64,
        remaining: expired.deletable as u64,
        blocked: expired.blocked as u64,
        blocked_by: expired.blocked_by,
        held: expired.held as u64,
        overdue: expired.overdue,
        findings: None,
        cutoff,
        batches: 0,
        duration: started.elapsed(),
        batch_latencies: Vec::new(),
    })
}

/// Progress shared by the batch workers of one run.
#[derive(Default)]
struct Progress {
    deleted: AtomicU64,
    anonymized: AtomicU64,
    batches: AtomicU32,
    batches_started: AtomicU32,
    budget_spent: AtomicBool,
    lease_lost: AtomicBool,
    stop: AtomicBool,
    batch_latencies: std::sync::Mutex<Vec<Duration>>,
    /// Every candidate below this was deleted or skipped (locked) by a batch.
    floor: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl Progress {
    fn floor(&self) -> Option<DateTime<Utc>> {
        *self.floor.lock().expect("no panics while held")
    }

    /// Next batches walk the index from its start again.
    fn lower_floor_to_start(&self) {
        *self.floor.lock().expect("no panics while held") = None;
    }

    /// The run stopped before the index was walked to its end.
    fn cut_short(&self) -> bool {
        self.budget_spent.load(Ordering::Relaxed) || self.lease_lost.load(Ordering::Relaxed)
    }

    fn raise_floor(&self, to: DateTime<Utc>) {
        let mut floor = self.floor.lock().expect("no panics while held");
        if floor.is_none_or(|f| f < to) {
            *floor = Some(to);
        }
    }
}

async fn purge_with_lease(
    pool: &PgPool,
    tables: &AppTables,
    mut sql: Arc<Statements>,
    lease: Lease,
    settings: PurgeSettings,
    started: Instant,
    anonymize_only: Option<&[String]>,
) -> Result<PurgeOutcome, PurgeError> {
    let progress = Arc::new(Progress::default());
    let mut expired = None;
    let mut reread_catalog = false;
    // The first pass walks the index once, from old deletions to new. Rows
    // it skipped because a transaction held them at that moment (a recovery
    // in flight) lie below where it ended; only if the count says some are
    // left does a second pass look again from the start. Walking back over
    // the index entries of everything just deleted (dead until vacuum) is
    // slow, so it is not part of every run.
    let held = Arc::new(HeldAtStart::read(pool, &sql).await?);
    let mut pass = 0;
    while pass < 2 {
        if pass > 0 {
            if expired.as_ref().is_some_and(|e: &Expired| e.deletable == 0) || progress.cut_short()
            {
                break;
            }
            progress.lower_floor_to_start();
        }
        match run_workers(pool, &sql, lease, settings, started, &progress, &held).await {
            Ok(()) => {}
            // A key that was not there when the statements were rendered (an
            // app migration since): read the catalog again, once, so the
            // batch leaves the accounts it blocks out, and walk again.
            Err(PurgeError::Database(error))
                if is_foreign_key_violation(&error) && !reread_catalog =>
            {
                tracing::warn!(run_id = lease.run_id, error = %error, "a foreign key blocked a batch; reading the catalog again");
                reread_catalog = true;
                match tables.reload(pool).await {
                    Ok(reloaded) => sql = reloaded,
                    Err(error) => return Err(PurgeError::from(error)),
                }
                progress.lower_floor_to_start();
                continue;
            }
            Err(error) => return Err(error),
        }
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        expired = Some(count_expired(&mut tx, &sql, lease.cutoff, settings.overdue_after).await?);
        tx.commit().await?;
        pass += 1;
    }
    let mut expired = expired.expect("the first pass always runs");
    if settings.erase_blocked == EraseBlocked::Anonymize
        && expired.blocked > 0
        && !progress.cut_short()
        && let Some(batch) = &sql.anonymize_batch
    {
        anonymize(
            pool,
            batch,
            lease,
            settings,
            started,
            &progress,
            anonymize_only,
            &held,
        )
        .await?;
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        expired = count_expired(&mut tx, &sql, lease.cutoff, settings.overdue_after).await?;
        tx.commit().await?;
    }
    // Under `anonymize`, blocked accounts are work the next run does too.
    let left = match settings.erase_blocked {
        EraseBlocked::Wait => expired.deletable,
        EraseBlocked::Anonymize => expired.deletable + expired.blocked,
    };
    let status = if left > 0 && progress.cut_short() {
        PurgeStatus::Partial
    } else {
        PurgeStatus::Completed
    };
    finish_run(pool, &sql, lease, status, left, &expired, settings.keep).await?;

    Ok(PurgeOutcome {
        run_id: lease.run_id,
        status,
        dry_run: false,
        deleted: progress.deleted.load(Ordering::Relaxed),
        anonymized: progress.anonymized.load(Ordering::Relaxed),
        remaining: left as u64,
        blocked: expired.blocked as u64,
        blocked_by: expired.blocked_by,
        held: expired.held as u64,
        overdue: expired.overdue,
        findings: None,
        cutoff: lease.cutoff,
        batches: progress.batches.load(Ordering::Relaxed),
        duration: started.elapsed(),
        batch_latencies: std::mem::take(
            &mut *progress
                .batch_latencies
                .lock()
                .expect("no panics while held"),
        ),
    })
}

/// Records a run's end on the ledger (which frees the purge for the next
/// run), retried through a short outage: the run's work is done and must be
/// booked, not left to the lease's end. Then forgets what has been kept
/// long enough.
async fn finish_run(
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
    crate::prune::purge_records(pool, sql, keep).await;
    Ok(())
}

/// Runs `settings.workers` batch workers to the end of the index (from the
/// progress floor), the budget or the first error.
async fn run_workers(
    pool: &PgPool,
    sql: &Arc<Statements>,
    lease: Lease,
    settings: PurgeSettings,
    started: Instant,
    progress: &Arc<Progress>,
    held: &Arc<HeldAtStart>,
) -> Result<(), PurgeError> {
    let mut workers = JoinSet::new();
    for id in 0..settings.workers.get() {
        workers.spawn(worker(
            pool.clone(),
            Arc::clone(sql),
            lease,
            id,
            settings,
            started,
            Arc::clone(progress),
            Arc::clone(held),
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
    // Workers stopped by another's failure are ready for another pass.
    progress.stop.store(false, Ordering::Relaxed);
    failure.map_or(Ok(()), Err)
}

/// Runs batches until none are left for this worker, the budget is spent or
/// another worker stops the run.
#[allow(clippy::too_many_arguments)]
async fn worker(
    pool: PgPool,
    sql: Arc<Statements>,
    lease: Lease,
    id: u32,
    settings: PurgeSettings,
    started: Instant,
    progress: Arc<Progress>,
    held: Arc<HeldAtStart>,
) -> Result<(), PurgeError> {
    let mut batch_size = BatchSize::new(settings.batch_size, settings.batch_target);
    let limits = batch_limits(&settings);
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
        let floor = progress.floor();
        let size = batch_size.next();
        let Some(Batch {
            deleted,
            newest,
            took,
        }) = delete_batch(
            &mut *pool.acquire().await?,
            &sql,
            &limits,
            lease,
            id,
            size,
            floor,
            None,
            Some(&held),
        )
        .await?
        else {
            progress.lease_lost.store(true, Ordering::Relaxed);
            progress.stop.store(true, Ordering::Relaxed);
            return Ok(());
        };
        last_batch = took;
        batch_size.record(deleted, last_batch);
        if let Some(newest) = newest {
            progress.raise_floor(newest);
        }
        progress.deleted.fetch_add(deleted, Ordering::Relaxed);
        progress.batches.fetch_add(1, Ordering::Relaxed);
        progress
            .batch_latencies
            .lock()
            .expect("no panics while held")
            .push(last_batch);
        tracing::debug!(
            run_id = lease.run_id,
            deleted,
            next_size = batch_size.next(),
            batch_ms = last_batch.as_millis() as u64,
            "purge batch"
        );
        // A short batch means the index had no more unclaimed candidates for
        // this worker above the floor; the others finish their own.
        if deleted < u64::from(size) {
            return Ok(());
        }
    }
}

/// What a run read of the holds when it started; its batches check a
/// candidate against this, and probe the holds only for what changed since
/// (see [`Statements::purge_batch`]).
#[derive(Debug, Clone)]
struct HeldAtStart {
    /// Held accounts that were soft-deleted then.
    ids: Vec<String>,
    /// Holds placed after this are looked up by every batch.
    since: DateTime<Utc>,
    /// The snapshot's `xmin`: rows changed by transactions from then on get
    /// the full probe.
    xmin: i64,
}

impl HeldAtStart {
    /// Reads it after taking the purge gate: no hold is half placed.
    async fn read(pool: &PgPool, sql: &Statements) -> Result<Self, sqlx::Error> {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        db::query(crate::sql::GATE_SHARED).execute(&mut *tx).await?;
        let (ids, since, xmin): (Vec<String>, DateTime<Utc>, i64) =
            db::query_as(&sql.held_at_start).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Self { ids, since, xmin })
    }

    /// The batch's three parameters; none (every row probed) without.
    fn literals(held: Option<&Self>) -> [Literal; 3] {
        match held {
            Some(held) => [
                Literal::TextArray(held.ids.clone()),
                held.since.into(),
                held.xmin.into(),
            ],
            None => [Literal::Null, Literal::Null, Literal::Null],
        }
    }
}

/// A batch that committed.
struct Batch {
    deleted: u64,
    /// The newest `deleted_at` it deleted; where the next batch starts.
    newest: Option<DateTime<Utc>>,
    /// From `BEGIN` to the end of `COMMIT`: how long its rows were locked.
    /// Waiting for a pool connection (opening it, on a run's first batch)
    /// locks nothing and is not counted.
    took: Duration,
}

/// Deletes one batch and books it on the ledger, in one transaction (the
/// statement is [`Statements::purge_batch`]). `None` when the run no longer
/// holds the lease (it outlived it and another run took over); the batch
/// then deleted nothing.
#[allow(clippy::too_many_arguments)]
async fn delete_batch(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    lease: Lease,
    worker: u32,
    batch_size: u32,
    floor: Option<DateTime<Utc>>,
    only: Option<&UserId>,
    held: Option<&HeldAtStart>,
) -> Result<Option<Batch>, sqlx::Error> {
    let started = Instant::now();
    let [held_ids, held_since, held_xmin] = HeldAtStart::literals(held);
    let (booked, deleted, newest, _): (bool, i64, Option<DateTime<Utc>>, String) = sql
        .purge_batch
        .fetch_optional(
            conn,
            limits,
            &[
                lease.cutoff.into(),
                batch_size.into(),
                floor.into(),
                lease.run_id.into(),
                worker.into(),
                only.map_or(Literal::Null, |user| user.as_str().into()),
                held_ids,
                held_since,
                held_xmin,
            ],
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(booked.then(|| Batch {
        deleted: deleted as u64,
        newest,
        took: started.elapsed(),
    }))
}

/// Best effort: if the database stays away this fails too, and the lease
/// simply expires; the next run then records the run as abandoned.
async fn record_failure(pool: &PgPool, lease: Lease, error: &PurgeError) {
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

/// The limits of one batch transaction. A batch is sized to take the batch
/// target; one that runs a hundred times longer is stuck, most likely on a
/// lock an app transaction holds on a row the cascade must delete, and is
/// cancelled so that it cannot eat the run. Without a target, batches are as
/// large as `PURGE_BATCH_SIZE` and get more room. Never more than a quarter
/// of the budget, so the run still has time to record why it stopped; never
/// less than a second, so a tiny budget still lets its one batch finish.
fn batch_limits(settings: &PurgeSettings) -> Limits {
    let wanted = settings
        .batch_target
        .map_or(Duration::from_secs(30), |target| target * 100);
    let statement = wanted
        .min(settings.time_budget / 4)
        .max(Duration::from_secs(1));
    // A lock wait gives up first, so the ledger names the lock as the cause.
    // The gate goes first, before the batch's snapshot (see `sql`).
    Limits::new(statement / 2, statement, Duration::from_secs(10)).then(crate::sql::GATE_SHARED)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn batch_limits_follow_the_target_within_the_budget() {
        let settings = |target_ms: Option<u64>, budget_s: u64| PurgeSettings {
            batch_size: NonZeroU32::new(1000).unwrap(),
            batch_target: target_ms.map(Duration::from_millis),
            time_budget: Duration::from_secs(budget_s),
            workers: NonZeroU32::new(2).unwrap(),
            ..PurgeSettings::default()
        };
        let statement_timeout = |limits: Limits| {
            limits
                .begin_statement()
                .split("statement_timeout = '")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .unwrap()
                .to_owned()
        };
        // The defaults: 20 ms batches may run 2 s.
        assert_eq!(
            statement_timeout(batch_limits(&settings(Some(20), 240))),
            "2000ms"
        );
        // Fixed-size batches: 30 s, but at most a quarter of the budget.
        assert_eq!(
            statement_timeout(batch_limits(&settings(None, 240))),
            "30000ms"
        );
        assert_eq!(
            statement_timeout(batch_limits(&settings(None, 60))),
            "15000ms"
        );
        // A tiny budget still lets a batch run a second.
        assert_eq!(
            statement_timeout(batch_limits(&settings(Some(20), 1))),
            "1000ms"
        );
        assert!(
            batch_limits(&settings(Some(20), 240))
                .begin_statement()
                .contains("lock_timeout = '1000ms'")
        );
    }
}

/// Runs anonymizing batches ([`Statements::anonymize_batch`]) on a worker
/// row of its own, sized like the deleting ones, until none are left (of
/// `only`, when given), the budget is spent or the lease is lost. Returns
/// how many it anonymized.
#[allow(clippy::too_many_arguments)]
async fn anonymize(
    pool: &PgPool,
    batch: &crate::db::Statement,
    lease: Lease,
    settings: PurgeSettings,
    started: Instant,
    progress: &Progress,
    only: Option<&[String]>,
    held: &HeldAtStart,
) -> Result<u64, sqlx::Error> {
    let mut size = BatchSize::new(settings.batch_size, settings.batch_target);
    let limits = batch_limits(&settings);
    let worker = settings.workers.get();
    let mut last = Duration::ZERO;
    let mut total = 0;
    let mut floor: Option<DateTime<Utc>> = None;
    loop {
        if started.elapsed() + last > settings.time_budget && total > 0 {
            progress.budget_spent.store(true, Ordering::Relaxed);
            return Ok(total);
        }
        let wanted = size.next();
        let mut conn = pool.acquire().await?;
        let began = Instant::now();
        let [held_ids, held_since, held_xmin] = HeldAtStart::literals(Some(held));
        let (booked, anonymized, newest): (bool, i64, Option<DateTime<Utc>>) = batch
            .fetch_optional(
                &mut conn,
                &limits,
                &[
                    lease.cutoff.into(),
                    wanted.into(),
                    lease.run_id.into(),
                    worker.into(),
                    only.map_or(Literal::Null, |ids| Literal::TextArray(ids.to_vec())),
                    "purge".into(),
                    floor.into(),
                    held_ids,
                    held_since,
                    held_xmin,
                ],
            )
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        floor = newest.or(floor);
        if !booked {
            progress.lease_lost.store(true, Ordering::Relaxed);
            return Ok(total);
        }
        last = began.elapsed();
        size.record(anonymized as u64, last);
        total += anonymized as u64;
        progress
            .anonymized
            .fetch_add(anonymized as u64, Ordering::Relaxed);
        progress.batches.fetch_add(1, Ordering::Relaxed);
        progress
            .batch_latencies
            .lock()
            .expect("no panics while held")
            .push(last);
        if (anonymized as u64) < u64::from(wanted) {
            return Ok(total);
        }
    }
}

/// Anonymizes one account by the anonymizing batch, within `erase_now`'s
/// transaction; the history says an operator did it. Returns how many it
/// anonymized (0 when it was no longer blocked, held or due).
async fn anonymize_one(
    tx: &mut PgConnection,
    batch: &crate::db::Statement,
    limits: &Limits,
    lease: Lease,
    user: &UserId,
) -> Result<i64, sqlx::Error> {
    let (_, anonymized, _): (bool, i64, Option<DateTime<Utc>>) = batch
        .fetch_optional(
            tx,
            limits,
            &[
                lease.cutoff.into(),
                1.into(),
                lease.run_id.into(),
                0.into(),
                Literal::TextArray(vec![user.as_str().to_owned()]),
                "admin".into(),
                Literal::Null,
                // Its hold was checked on its locked row; the batch probes.
                Literal::Null,
                Literal::Null,
                Literal::Null,
            ],
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(anonymized)
}

/// A row of [`Statements::lock_account`]: id, address, deleted-at,
/// purge-after, whether the user made the deletion, whether it is in its
/// grace period.
pub(crate) type LockedAccount = (
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    bool,
    bool,
);

/// Why erasing one account now did not happen; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotErased {
    NoSuchUser,
    NotDeleted,
    Held,
    /// Rows that must not go with it reference it, along these keys.
    Blocked(Vec<String>),
}

/// Erases one soft-deleted, unheld account now, exactly as a purge batch
/// would (it runs the batch's own statement, for that one account, with the
/// cutoff at infinity): its rows through the cascade, our rows about it, its
/// tombstone, its `account.purged` event, booked on the ledger as a run of
/// its own (`kind` `erase_now`), and the history says an operator did it.
/// One transaction: the gate first, then the account's row, in the order a
/// hold takes them, so the two never deadlock and never both win.
pub async fn erase_now(
    pool: &PgPool,
    sql: &Statements,
    user: &UserId,
    erase_blocked: EraseBlocked,
) -> Result<Result<(), NotErased>, sqlx::Error> {
    let limits = Limits::new(
        Duration::from_secs(5),
        Duration::from_secs(30),
        Duration::from_secs(10),
    );
    let mut tx = db::begin(pool, &limits).await?;
    db::query(crate::sql::GATE_SHARED).execute(&mut *tx).await?;
    // (Its retention does not matter here: any soft-deleted account goes.)
    let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
        .bind(user.as_str())
        .bind(0_i32)
        .fetch_optional(&mut *tx)
        .await?;
    let held: bool =
        db::query_scalar("select exists (select 1 from account_deletion.holds where user_id = $1)")
            .bind(user.as_str())
            .fetch_one(&mut *tx)
            .await?;
    match account {
        None => return Ok(Err(NotErased::NoSuchUser)),
        Some((_, _, None, ..)) => return Ok(Err(NotErased::NotDeleted)),
        Some(_) if held => return Ok(Err(NotErased::Held)),
        Some(_) => {}
    }
    let run_id: i64 = db::query_scalar(
        "insert into account_deletion.purge_runs (status, kind, dry_run, cutoff, lease_expires_at)
         values ('running', 'erase_now', false, now(), now() + interval '1 minute')
         returning id",
    )
    .fetch_one(&mut *tx)
    .await?;
    // Any soft-deleted account is due: the cutoff is as late as a date
    // both sides write (the end of year 9999).
    let end_of_time = "9999-12-31T23:59:59Z"
        .parse::<DateTime<Utc>>()
        .expect("a valid time");
    let lease = Lease {
        run_id,
        cutoff: end_of_time,
    };
    // Its hold was checked on its locked row above; the batch probes again.
    let batch = delete_batch(&mut tx, sql, &limits, lease, 0, 1, None, Some(user), None).await;
    let deleted = match batch {
        Ok(batch) => batch.map_or(0, |batch| batch.deleted),
        // A key added since the statements were rendered.
        Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
            let constraint = error.constraint().unwrap_or("a foreign key").to_owned();
            return Ok(Err(NotErased::Blocked(vec![constraint])));
        }
        Err(error) => return Err(error),
    };
    // Blocked: anonymized instead when the purge would do that.
    let anonymized = match (deleted, erase_blocked, &sql.anonymize_batch) {
        (0, EraseBlocked::Anonymize, Some(batch)) => {
            anonymize_one(&mut tx, batch, &limits, lease, user).await?
        }
        _ => 0,
    };
    if deleted == 0 && anonymized == 0 {
        let blocked_by: Vec<String> = db::query_scalar(&sql.blocked_by)
            .bind(user.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.rollback().await?;
        return Ok(Err(NotErased::Blocked(blocked_by)));
    }
    db::query(concat!(
        "update account_deletion.purge_runs
         set status = 'completed', remaining = 0, finished_at = now(), lease_expires_at = null, ",
        set_totals!(),
        " where id = $1"
    ))
    .bind(run_id)
    .execute(&mut *tx)
    .await?;
    if deleted > 0 {
        db::query(
            "insert into account_deletion.history (user_id, action, by) values ($1, 'erased', 'admin')",
        )
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(run_id, "account erased now by an operator");
    Ok(Ok(()))
}
