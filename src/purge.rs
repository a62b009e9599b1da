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
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::{EraseBlocked, Keep, PurgeSettings, RetentionDays};
use crate::db::{self, Limits};
use crate::schema::{Catalog, ForeignKey, SchemaError};
use crate::sql::{AppTables, Statements};
use crate::sweeps::{self, Key, Place, Totals, Walk};

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
mod walk;

pub use counts::Overdue;
pub(crate) use counts::{Expired, count_expired};
pub(crate) use erase_now::LockedAccount;
pub use erase_now::{NotErased, erase_now};
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

/// The purge's own state for one run: where its walk stands, read when it
/// starts.
async fn read_place(
    pool: &PgPool,
    walk: Walk,
    cutoff: DateTime<Utc>,
) -> Result<Place, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let mut place = sweeps::place(&mut tx, walk).await?;
    tx.commit().await?;
    // A watermark past the cutoff (the retention grew since): the accounts
    // between them are not expired yet, and must be walked when they are.
    // Walk everything once more, as a new installation would.
    if place.watermark.as_ref().is_some_and(|key| key.at > cutoff) {
        place = Place::default();
    }
    Ok(place)
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

/// Deletes what is deletable in `range`.
async fn delete(
    walker: &Walker<'_>,
    tables: &AppTables,
    sql: &mut Arc<Statements>,
    range: &Range,
) -> Result<(), PurgeError> {
    let mut reread_catalog = false;
    loop {
        match walker.delete(sql, range).await {
            Ok(()) => return Ok(()),
            // A key that was not there when the statements were rendered (an
            // app migration since): read the catalog again, once, so the
            // batch leaves the accounts it blocks out, and walk again.
            Err(PurgeError::Database(error))
                if is_foreign_key_violation(&error) && !reread_catalog =>
            {
                tracing::warn!(run_id = walker.lease.run_id, error = %error, "a foreign key blocked a batch; reading the catalog again");
                reread_catalog = true;
                *sql = tables.reload(walker.pool).await.map_err(PurgeError::from)?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Anonymizes the blocked accounts above the anonymizing walk's own
/// watermark: what expired since the last run, or, the first time
/// `ERASE_BLOCKED=anonymize` is set, every account the purge has kept so
/// far (as many runs as that takes).
async fn anonymize_new(walker: &Walker<'_>, sql: &Statements) -> Result<(), PurgeError> {
    let place = read_place(walker.pool, Walk::Anonymize, walker.lease.cutoff).await?;
    let range = Range {
        after: place.watermark.clone(),
        up_to: None,
    };
    walker.anonymize(sql, &range, None).await?;
    let reached = Key::max(place.watermark.clone(), walker.progress.floor());
    if reached != place.watermark {
        let mut tx = db::begin(walker.pool, &Limits::CRON).await?;
        sweeps::set_watermark(&mut tx, Walk::Anonymize, reached.as_ref(), None).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// One slice of the sweep below the watermark: counted, and only when the
/// count finds work (an account the app made deletable behind the purge's
/// back, or, under `anonymize`, a blocked one not yet anonymized) deleted
/// and anonymized like new work and counted again; the count goes into the
/// cycle, whose sum replaces what the purge knew of the accounts below when
/// the cycle reaches the watermark.
async fn sweep(
    walker: &Walker<'_>,
    tables: &AppTables,
    sql: &mut Arc<Statements>,
    place: &mut Place,
    watermark: &Key,
) -> Result<(), PurgeError> {
    let pool = walker.pool;
    let (cutoff, overdue_after) = (walker.lease.cutoff, walker.settings.overdue_after);
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let rows = sweeps::slice_rows(place.below.as_ref());
    let slice = sweeps::next_slice(
        &mut tx,
        sql,
        place.cursor.as_ref(),
        Some(watermark),
        None,
        rows,
    )
    .await?;
    let range = Range {
        after: slice.after.clone(),
        up_to: slice.up_to.clone(),
    };
    let mut counted = if slice.rows > 0 {
        counts::count_range(&mut tx, sql, cutoff, overdue_after, &range).await?
    } else {
        Totals::default()
    };
    tx.commit().await?;
    let anonymizing = walker.settings.erase_blocked == EraseBlocked::Anonymize;
    let work = counted.deletable > 0 || (anonymizing && counted.blocked > 0);
    if work {
        delete(walker, tables, sql, &range).await?;
        if anonymizing && !walker.progress.cut_short() {
            walker.anonymize(sql, &range, None).await?;
        }
        if walker.progress.cut_short() {
            return Ok(());
        }
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        counted = counts::count_range(&mut tx, sql, cutoff, overdue_after, &range).await?;
        tx.commit().await?;
    }
    let cycle = place.cycle.take().unwrap_or_default().plus(&counted);
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    sweeps::advance_cursor(&mut tx, Walk::Purge, &slice, Some(&cycle)).await?;
    tx.commit().await?;
    if slice.reaches_end {
        place.cursor = None;
        place.below = Some(cycle);
    } else {
        place.cursor.clone_from(&slice.up_to);
        place.cycle = Some(cycle);
    }
    Ok(())
}

/// The most accounts asked for again that one batch takes.
const RECHECKS_PER_BATCH: i64 = 1000;

/// The accounts asked for again (a hold released, re-erasure after a
/// restore), wherever they lie: each batch of them deleted, or anonymized
/// when the run may, and forgotten from the list. Returns how many are left
/// on it when the budget ran out.
async fn recheck(
    walker: &Walker<'_>,
    sql: &Statements,
    anonymize_only: Option<&[String]>,
) -> Result<i64, PurgeError> {
    let pool = walker.pool;
    let limits = batch_limits(&walker.settings);
    loop {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let ids: Vec<String> = db::query_scalar(
            "select user_id from account_deletion.rechecks order by since, user_id limit $1",
        )
        .bind(RECHECKS_PER_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if ids.is_empty() {
            return Ok(0);
        }
        if walker.progress.cut_short() {
            return Ok(ids.len() as i64);
        }
        let batch = walk::delete_batch(
            &mut *pool.acquire().await?,
            sql,
            &limits,
            walk::DeleteBatch {
                lease: walker.lease,
                worker: walker.settings.workers.get(),
                size: ids.len() as u32,
                range: &Range::default(),
                only: Some(&ids),
                held: None,
            },
        )
        .await?;
        let Some(batch) = batch else {
            walker.progress.lease_lost.store(true, Ordering::Relaxed);
            return Ok(ids.len() as i64);
        };
        walker.progress.booked(&batch, false);
        let anonymizing =
            anonymize_only.is_some() || walker.settings.erase_blocked == EraseBlocked::Anonymize;
        if anonymizing {
            walker.anonymize(sql, &Range::default(), Some(&ids)).await?;
        }
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        db::query("delete from account_deletion.rechecks where user_id = any($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if (ids.len() as i64) < RECHECKS_PER_BATCH {
            return Ok(0);
        }
    }
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
