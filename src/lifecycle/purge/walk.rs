//! The batches of a run and the workers that send them: one walk over a
//! stretch of the users table's soft-deleted accounts, in (deleted-at, id)
//! key order, each batch its own short transaction starting where the last
//! one ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;

use super::batch_size::BatchSize;
use super::{Lease, PurgeError};
use crate::config::PurgeSettings;
use crate::lifecycle::sweeps::Key;
use crate::platform::db::{self, Limits, Literal, Statement};
use crate::schema::sql::Statements;

/// A stretch of the walk: the accounts after `after` (exclusive) up to
/// `up_to` (inclusive), each open when none; the cutoff bounds it too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Range {
    pub after: Option<Key>,
    pub up_to: Option<Key>,
}

impl Range {
    fn literals(&self) -> [Literal; 4] {
        let [after_at, after_id] = Key::literals(self.after.as_ref());
        let [up_to_at, up_to_id] = Key::literals(self.up_to.as_ref());
        [after_at, after_id, up_to_at, up_to_id]
    }
}

/// What a run's walks have done, shared by its batch workers.
#[derive(Default)]
pub(super) struct Progress {
    pub deleted: AtomicU64,
    pub anonymized: AtomicU64,
    pub batches: AtomicU32,
    batches_started: AtomicU32,
    pub budget_spent: AtomicBool,
    pub lease_lost: AtomicBool,
    stop: AtomicBool,
    pub batch_latencies: std::sync::Mutex<Vec<Duration>>,
    /// The current walk has walked every account up to this key (but those
    /// another transaction held then, which the sweep finds later).
    floor: std::sync::Mutex<Option<Key>>,
}

impl Progress {
    pub fn floor(&self) -> Option<Key> {
        self.floor.lock().expect("no panics while held").clone()
    }

    fn start_walk(&self, after: Option<Key>) {
        *self.floor.lock().expect("no panics while held") = after;
    }

    /// The run stopped before its walks reached their ends.
    pub fn cut_short(&self) -> bool {
        self.budget_spent.load(Ordering::Relaxed) || self.lease_lost.load(Ordering::Relaxed)
    }

    fn raise_floor(&self, to: Key) {
        let mut floor = self.floor.lock().expect("no panics while held");
        *floor = Key::max(floor.take(), Some(to));
    }

    pub fn booked(&self, batch: &Batch, anonymizing: bool) {
        let counter = if anonymizing {
            &self.anonymized
        } else {
            &self.deleted
        };
        counter.fetch_add(batch.done, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_latencies
            .lock()
            .expect("no panics while held")
            .push(batch.took);
    }

    /// Whether one more batch as long as `last` fits the budget; the run's
    /// first batch always goes, so that every run makes progress.
    fn next_batch_fits(&self, started: Instant, last: Duration, budget: Duration) -> bool {
        let first = self.batches_started.fetch_add(1, Ordering::Relaxed) == 0;
        if !first && started.elapsed() + last > budget {
            self.budget_spent.store(true, Ordering::Relaxed);
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// What every batch of one walk shares.
pub(super) struct Walker<'a> {
    pub pool: &'a PgPool,
    pub lease: Lease,
    pub settings: PurgeSettings,
    pub started: Instant,
    pub progress: &'a Arc<Progress>,
}

impl Walker<'_> {
    /// Deletes what the purge may in `range` with `settings.workers`
    /// workers, to the range's end, the budget or the first error.
    pub async fn delete(&self, sql: &Arc<Statements>, range: &Range) -> Result<(), PurgeError> {
        self.progress.start_walk(range.after.clone());
        let held = Arc::new(HeldAtStart::read(self.pool, sql, range, self.lease.cutoff).await?);
        let mut workers = JoinSet::new();
        for id in 0..self.settings.workers.get() {
            workers.spawn(worker(
                WorkerShare {
                    pool: self.pool.clone(),
                    sql: Arc::clone(sql),
                    lease: self.lease,
                    settings: self.settings,
                    started: self.started,
                    progress: Arc::clone(self.progress),
                    held: Arc::clone(&held),
                    up_to: range.up_to.clone(),
                },
                id,
            ));
        }
        let mut failure = None;
        while let Some(joined) = workers.join_next().await {
            let result =
                joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
            if let Err(error) = result {
                self.progress.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(error);
            }
        }
        // Workers stopped by another's failure are ready for another walk.
        self.progress.stop.store(false, Ordering::Relaxed);
        failure.map_or(Ok(()), Err)
    }

    /// Anonymizes the blocked accounts in `range` (or, with `only`, those
    /// of these ids wherever they are) with anonymizing batches
    /// ([`Statements::anonymize_batch`]) on a worker row of its own, sized
    /// like the deleting ones, to the end, the budget or the lease's loss.
    pub async fn anonymize(
        &self,
        sql: &Statements,
        range: &Range,
        only: Option<&[String]>,
    ) -> Result<(), sqlx::Error> {
        let Some(statement) = &sql.anonymize_batch else {
            return Ok(());
        };
        self.progress.start_walk(range.after.clone());
        let held = match only {
            // Few accounts, each probed.
            Some(_) => None,
            None => Some(HeldAtStart::read(self.pool, sql, range, self.lease.cutoff).await?),
        };
        let mut size = BatchSize::new(self.settings.batch_size, self.settings.batch_target);
        let limits = batch_limits(&self.settings);
        let worker = self.settings.workers.get();
        let mut last = Duration::ZERO;
        loop {
            if !self
                .progress
                .next_batch_fits(self.started, last, self.settings.time_budget)
            {
                return Ok(());
            }
            let wanted = size.next();
            let range = Range {
                after: self.progress.floor(),
                up_to: range.up_to.clone(),
            };
            let batch = anonymize_batch(
                &mut *self.pool.acquire().await?,
                statement,
                &limits,
                AnonymizeBatch {
                    batch: DeleteBatch {
                        lease: self.lease,
                        worker,
                        size: wanted,
                        range: &range,
                        only,
                        held: held.as_ref(),
                    },
                    by: "purge",
                },
            )
            .await?;
            let Some(batch) = batch else {
                self.progress.lease_lost.store(true, Ordering::Relaxed);
                return Ok(());
            };
            last = batch.took;
            size.record(batch.walked, last);
            self.progress.booked(&batch, true);
            if let Some(key) = batch.last.clone() {
                self.progress.raise_floor(key);
            }
            if batch.walked < u64::from(wanted) {
                return Ok(());
            }
        }
    }
}

/// What each worker of a deleting walk holds.
struct WorkerShare {
    pool: PgPool,
    sql: Arc<Statements>,
    lease: Lease,
    settings: PurgeSettings,
    started: Instant,
    progress: Arc<Progress>,
    held: Arc<HeldAtStart>,
    up_to: Option<Key>,
}

/// Runs batches until none are left for this worker, the budget is spent or
/// another worker stops the walk.
async fn worker(share: WorkerShare, id: u32) -> Result<(), PurgeError> {
    let WorkerShare {
        pool,
        sql,
        lease,
        settings,
        started,
        progress,
        held,
        up_to,
    } = share;
    let mut batch_size = BatchSize::new(settings.batch_size, settings.batch_target);
    let limits = batch_limits(&settings);
    let mut last_batch = Duration::ZERO;
    loop {
        if progress.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // After the first batch, one starts only if one as long as the
        // last still fits.
        if !progress.next_batch_fits(started, last_batch, settings.time_budget) {
            return Ok(());
        }
        let range = Range {
            after: progress.floor(),
            up_to: up_to.clone(),
        };
        let size = batch_size.next();
        let Some(batch) = delete_batch(
            &mut *pool.acquire().await?,
            &sql,
            &limits,
            DeleteBatch {
                lease,
                worker: id,
                size,
                range: &range,
                only: None,
                held: Some(&held),
            },
        )
        .await?
        else {
            progress.lease_lost.store(true, Ordering::Relaxed);
            progress.stop.store(true, Ordering::Relaxed);
            return Ok(());
        };
        last_batch = batch.took;
        batch_size.record(batch.walked, last_batch);
        if let Some(key) = batch.last.clone() {
            progress.raise_floor(key);
        }
        progress.booked(&batch, false);
        tracing::debug!(
            run_id = lease.run_id,
            deleted = batch.done,
            next_size = batch_size.next(),
            batch_ms = last_batch.as_millis() as u64,
            "purge batch"
        );
        // A short batch means the range had no more accounts unlocked for
        // this worker; the others finish their own.
        if batch.walked < u64::from(size) {
            return Ok(());
        }
    }
}

/// The most held ids a walk sends with each batch: 1,000 cost a batch
/// about 1.7 ms of parsing (BENCHMARKS.md), 10,000 about 15 ms, more than
/// the probe of the holds' key for each account a batch walks.
const HELD_IDS_MAX: usize = 1_000;

/// What a walk read of the holds when it started; its batches check a
/// candidate against this, and probe the holds only for what changed since
/// (see [`Statements::purge_batch`]).
#[derive(Debug, Clone)]
pub(super) struct HeldAtStart {
    /// Held accounts soft-deleted in the walk's range then.
    ids: Vec<String>,
    /// Holds placed after this are looked up by every batch.
    since: DateTime<Utc>,
    /// The snapshot's `xmin`: rows changed by transactions from then on get
    /// the full probe.
    xmin: i64,
}

impl HeldAtStart {
    /// Reads it after taking the purge gate: no hold is half placed.
    async fn read(
        pool: &PgPool,
        sql: &Statements,
        range: &Range,
        cutoff: DateTime<Utc>,
    ) -> Result<Self, sqlx::Error> {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        db::query(crate::schema::sql::GATE_SHARED)
            .execute(&mut *tx)
            .await?;
        let (ids, since, xmin): (Vec<String>, DateTime<Utc>, i64) =
            db::query_as(&sql.held_at_start)
                .bind(range.after.as_ref().map(|key| key.at))
                .bind(range.after.as_ref().map(|key| key.id.as_str()))
                .bind(range.up_to.as_ref().map(|key| key.at))
                .bind(range.up_to.as_ref().map(|key| key.id.as_str()))
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        if ids.len() > HELD_IDS_MAX {
            // Too many to send with every batch (a walk over years of
            // kept accounts, the first time): every row walked gets the
            // probe instead, as if changed since (the frozen xid 2 is
            // older than any row).
            return Ok(Self {
                ids: Vec::new(),
                since,
                xmin: 2,
            });
        }
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
pub(super) struct Batch {
    /// Accounts it deleted (or anonymized).
    pub done: u64,
    /// Accounts it walked (and locked): fewer than it asked for when the
    /// range had no more.
    pub walked: u64,
    /// The key of the last account it walked; where the next batch starts.
    pub last: Option<Key>,
    /// From `BEGIN` to the end of `COMMIT`: how long its rows were locked.
    /// Waiting for a pool connection (opening it, on a run's first batch)
    /// locks nothing and is not counted.
    pub took: Duration,
}

/// What one deleting batch takes.
#[derive(Clone, Copy)]
pub(super) struct DeleteBatch<'a> {
    pub lease: Lease,
    pub worker: u32,
    pub size: u32,
    pub range: &'a Range,
    /// Only these accounts, wherever they lie.
    pub only: Option<&'a [String]>,
    pub held: Option<&'a HeldAtStart>,
}

type BatchRow = (bool, i64, i64, Option<DateTime<Utc>>, Option<String>);

fn batch_from(row: BatchRow, started: Instant) -> Option<Batch> {
    let (booked, done, walked, last_at, last_id) = row;
    booked.then(|| Batch {
        done: done as u64,
        walked: walked as u64,
        last: last_at.zip(last_id).map(|(at, id)| Key { at, id }),
        took: started.elapsed(),
    })
}

/// Deletes one batch and books it on the ledger, in one transaction (the
/// statement is [`Statements::purge_batch`]). `None` when the run no longer
/// holds the lease (it outlived it and another run took over); the batch
/// then deleted nothing.
pub(super) async fn delete_batch(
    conn: &mut PgConnection,
    sql: &Statements,
    limits: &Limits,
    batch: DeleteBatch<'_>,
) -> Result<Option<Batch>, sqlx::Error> {
    let started = Instant::now();
    let [held_ids, held_since, held_xmin] = HeldAtStart::literals(batch.held);
    let [after_at, after_id, up_to_at, up_to_id] = batch.range.literals();
    // The last column is the batch's `set_config` (no WAL flush wait).
    let (booked, done, walked, last_at, last_id, _): (
        bool,
        i64,
        i64,
        Option<DateTime<Utc>>,
        Option<String>,
        String,
    ) = sql
        .purge_batch
        .fetch_optional(
            conn,
            limits,
            &[
                batch.lease.cutoff.into(),
                batch.size.into(),
                after_at,
                batch.lease.run_id.into(),
                batch.worker.into(),
                batch
                    .only
                    .map_or(Literal::Null, |ids| Literal::TextArray(ids.to_vec())),
                held_ids,
                held_since,
                held_xmin,
                after_id,
                up_to_at,
                up_to_id,
            ],
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(batch_from(
        (booked, done, walked, last_at, last_id),
        started,
    ))
}

/// What one anonymizing batch takes: the accounts a deleting batch would
/// take, and who the history says did it (`purge` or `admin`).
pub(super) struct AnonymizeBatch<'a> {
    pub batch: DeleteBatch<'a>,
    pub by: &'static str,
}

/// Anonymizes one batch ([`Statements::anonymize_batch`]); `None` when the
/// run no longer holds the lease.
pub(super) async fn anonymize_batch(
    conn: &mut PgConnection,
    statement: &Statement,
    limits: &Limits,
    anonymizing: AnonymizeBatch<'_>,
) -> Result<Option<Batch>, sqlx::Error> {
    let AnonymizeBatch { batch, by } = anonymizing;
    let started = Instant::now();
    let [held_ids, held_since, held_xmin] = HeldAtStart::literals(batch.held);
    let [after_at, after_id, up_to_at, up_to_id] = batch.range.literals();
    let row: BatchRow = statement
        .fetch_optional(
            conn,
            limits,
            &[
                batch.lease.cutoff.into(),
                batch.size.into(),
                batch.lease.run_id.into(),
                batch.worker.into(),
                batch
                    .only
                    .map_or(Literal::Null, |ids| Literal::TextArray(ids.to_vec())),
                by.into(),
                after_at,
                held_ids,
                held_since,
                held_xmin,
                after_id,
                up_to_at,
                up_to_id,
            ],
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(batch_from(row, started))
}

/// The limits of one batch transaction. A batch is sized to take the batch
/// target; one that runs a hundred times longer is stuck, most likely on a
/// lock an app transaction holds on a row the cascade must delete, and is
/// cancelled so that it cannot eat the run. Without a target, batches are as
/// large as `PURGE_BATCH_SIZE` and get more room. Never more than a quarter
/// of the budget, so the run still has time to record why it stopped; never
/// less than a second, so a tiny budget still lets its one batch finish.
pub(super) fn batch_limits(settings: &PurgeSettings) -> Limits {
    let wanted = settings
        .batch_target
        .map_or(Duration::from_secs(30), |target| target * 100);
    let statement = wanted
        .min(settings.time_budget / 4)
        .max(Duration::from_secs(1));
    // A lock wait gives up first, so the ledger names the lock as the cause.
    // The gate goes first, before the batch's snapshot (see `sql`).
    Limits::new(statement / 2, statement, Duration::from_secs(10))
        .then(crate::schema::sql::GATE_SHARED)
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
