//! The stages of a run: a count only (`dry_run`) or the ledger alone;
//! then, holding the lease, the rechecks, the new work from the
//! watermark, the new accounts to anonymize, and one slice of the sweep
//! below the watermark.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::{EraseBlocked, PurgeSettings, RetentionDays};
use crate::lifecycle::sweeps::{self, Key, Place, Totals, Walk};
use crate::platform::db::{self, Limits};
use crate::schema::sql::{AppTables, Statements};

use super::{
    Findings, PurgeError, PurgeOutcome, PurgeStatus, Range, Walker, count_expired, counts,
    is_foreign_key_violation, walk,
};

/// A dry run: counts, and reads the catalog for what will get in the way.
pub(super) async fn count_only(
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
pub(super) async fn ledger_only(
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
pub(super) async fn read_place(
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

/// Deletes what is deletable in `range`.
pub(super) async fn delete(
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
pub(super) async fn anonymize_new(walker: &Walker<'_>, sql: &Statements) -> Result<(), PurgeError> {
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
pub(super) async fn sweep(
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
pub(super) async fn recheck(
    walker: &Walker<'_>,
    sql: &Statements,
    anonymize_only: Option<&[String]>,
) -> Result<i64, PurgeError> {
    let pool = walker.pool;
    let limits = walk::batch_limits(&walker.settings);
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
