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
//!
//! It may import every layer below the lifecycle, and of the lifecycle
//! only `sweeps` and `prune`; support, status and forget run it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::{EraseBlocked, PurgeSettings, RetentionDays};
use crate::lifecycle::sweeps::{self, Key, Walk};
use crate::platform::db::{self, Limits};
use crate::schema::sql::{AppTables, Statements};
use crate::schema::{Catalog, ForeignKey, SchemaError};

/// `set` clause of a run that ends: its totals, summed from the rows its
/// workers booked their batches on.
macro_rules! set_totals {
    () => {
        "deleted = (select coalesce(sum(w.deleted), 0) from account_deletion.purge_run_workers w where w.run_id = purge_runs.id),
         anonymized = (select coalesce(sum(w.anonymized), 0) from account_deletion.purge_run_workers w where w.run_id = purge_runs.id),
         batches = (select coalesce(sum(w.batches), 0) from account_deletion.purge_run_workers w where w.run_id = purge_runs.id)"
    };
}

mod batch_size;
mod counts;
mod erase_now;
mod lease;
mod stages;
mod walk;

pub use counts::Overdue;
pub(crate) use counts::{Expired, count_expired};
pub(crate) use erase_now::LockedAccount;
pub use erase_now::{NotErased, erase_now};
use lease::{claim, finish_run, record_failure};
use stages::{anonymize_new, count_only, delete, ledger_only, read_place, recheck, sweep};
use walk::{Progress, Range, Walker};

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
            // A live run holds the purge: this one records itself and what
            // is left.
            None => ledger_only(pool, &sql, retention, &settings, started, false).await?,
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

/// The purge with the lease held: the accounts asked for again first, then
/// the new work (what expired since the last run, above the watermark),
/// then one slice of the sweep below it; each stage only while the budget
/// lasts.
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
    let walker = Walker {
        pool,
        lease,
        settings,
        started,
        progress: &progress,
    };
    let mut place = read_place(pool, Walk::Purge, lease.cutoff).await?;
    let rechecks_left = recheck(&walker, &sql, anonymize_only).await?;

    // New work.
    let new_work = Range {
        after: place.watermark.clone(),
        up_to: None,
    };
    delete(&walker, tables, &mut sql, &new_work).await?;
    // Everything up to where the walk got (all of it, unless it was cut
    // short) has been walked.
    let watermark = Key::max(place.watermark.clone(), progress.floor());
    if !progress.cut_short() {
        match anonymize_only {
            Some(ids) => walker.anonymize(&sql, &Range::default(), Some(ids)).await?,
            None if settings.erase_blocked == EraseBlocked::Anonymize => {
                anonymize_new(&walker, &sql).await?;
            }
            None => {}
        }
    }
    if watermark != place.watermark {
        let stretch = Range {
            after: place.watermark.clone(),
            up_to: watermark.clone(),
        };
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let counted = counts::count_range(
            &mut tx,
            &sql,
            lease.cutoff,
            settings.overdue_after,
            &stretch,
        )
        .await?;
        let below = place.below.take().unwrap_or_default().plus(&counted);
        sweeps::set_watermark(&mut tx, Walk::Purge, watermark.as_ref(), Some(&below)).await?;
        tx.commit().await?;
        place.watermark = watermark;
        place.below = Some(below);
    }

    // One slice of what lies below the watermark.
    if !progress.cut_short()
        && let Some(watermark) = place.watermark.clone()
    {
        sweep(&walker, tables, &mut sql, &mut place, &watermark).await?;
    }

    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let totals =
        counts::count_with(&mut tx, &sql, lease.cutoff, settings.overdue_after, &place).await?;
    tx.commit().await?;
    let expired = Expired::of(&totals, lease.cutoff);
    // Under `anonymize`, blocked accounts are work the next run does too.
    let left = match settings.erase_blocked {
        EraseBlocked::Wait => expired.deletable,
        EraseBlocked::Anonymize => expired.deletable + expired.blocked,
    } + rechecks_left;
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
