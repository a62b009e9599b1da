//! Re-erasure after a backup restore. Every purge leaves a tombstone (the
//! account's id and purge time). After the database is restored from a
//! backup, accounts purged after the backup was taken are back; the
//! tombstones of the database the restore replaced name them. Each one that
//! is present again is made due and purged by the ordinary purge, with its
//! rows, a new tombstone and (with a webhook) its `account.purged` event, in
//! batches, blocked ones reported as any other.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::{PurgeSettings, RetentionDays};
use crate::delivery::events::{self, EventSweepReport};
use crate::lifecycle::purge::{self, PurgeError, PurgeStatus};
use crate::platform::db::{self, Limits};
use crate::platform::webhook::Webhook;
use crate::schema::sql::AppTables;

/// Accounts made due per statement.
const CHUNK: usize = 10_000;

/// What a re-erasure did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// Accounts with a tombstone in the database the restore replaced,
    /// written since the backup was taken.
    pub tombstones: u64,
    /// Of their accounts, those present in the restored database.
    pub present: u64,
    /// Accounts the purge runs deleted (those, and any other that was due).
    pub purged: u64,
    /// Accounts anonymized again (their tombstones said they had been, and
    /// rows the app keeps still reference them).
    pub anonymized: u64,
    /// Accounts left because a foreign key without a delete action holds them.
    pub blocked: u64,
    /// With a webhook: the delivery of the purge's events.
    pub events: Option<EventSweepReport>,
}

/// The events of a re-erasure are sent for at most this long; what is left
/// goes with the next sweep.
const EVENTS_BUDGET: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("reading the tombstones: {0}")]
    Source(sqlx::Error),
    #[error(transparent)]
    Purge(#[from] PurgeError),
}

/// Re-erases, in `restored`, every account whose tombstone is in `replaced`;
/// `tables` records events when `webhook` is given, and they are sent to it.
pub async fn forget(
    replaced: &PgPool,
    restored: &PgPool,
    tables: &AppTables,
    retention: RetentionDays,
    settings: PurgeSettings,
    webhook: Option<&Arc<Webhook>>,
) -> Result<Forgotten, ForgetError> {
    let sql = tables
        .statements(restored)
        .await
        .map_err(PurgeError::from)?;
    let mut done = Forgotten::default();
    // All at once: the table has no index on ids to page through (see its
    // migration), and an id is a few dozen bytes, so even ten million fit.
    let tombstoned = tombstoned_ids(replaced, restored).await?;
    done.tombstones = tombstoned.len() as u64;
    let ids: Vec<String> = tombstoned.iter().map(|(id, _)| id.clone()).collect();
    let anonymized: Vec<String> = tombstoned
        .into_iter()
        .filter_map(|(id, anonymized)| anonymized.then_some(id))
        .collect();
    for chunk in ids.chunks(CHUNK) {
        let mut tx = db::begin(restored, &Limits::CRON)
            .await
            .map_err(PurgeError::from)?;
        let cutoff: chrono::DateTime<chrono::Utc> =
            db::query_scalar("select now() - make_interval(days => $1)")
                .bind(retention.days())
                .fetch_one(&mut *tx)
                .await
                .map_err(PurgeError::from)?;
        let present: i64 = db::query_scalar(&sql.make_due)
            .bind(chunk)
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await
            .map_err(PurgeError::from)?;
        tx.commit().await.map_err(PurgeError::from)?;
        done.present += present as u64;
    }
    // The ordinary purge, run until nothing it can delete is left; then,
    // for accounts their tombstones say were anonymized and that rows the
    // app keeps still reference, anonymizing again (whatever ERASE_BLOCKED
    // says now: they were anonymized before the restore).
    until_done(restored, tables, retention, settings, None, &mut done).await?;
    if !anonymized.is_empty() {
        until_done(
            restored,
            tables,
            retention,
            settings,
            Some(&anonymized),
            &mut done,
        )
        .await?;
    }
    if let Some(webhook) = webhook {
        done.events = events::sweep(restored, webhook, EVENTS_BUDGET).await;
    }
    tracing::info!(
        tombstones = done.tombstones,
        present = done.present,
        purged = done.purged,
        blocked = done.blocked,
        "re-erasure after a restore finished"
    );
    Ok(done)
}

/// Purge runs until one completes (anonymizing `only` those, when given),
/// adding up what they did.
async fn until_done(
    pool: &PgPool,
    tables: &AppTables,
    retention: RetentionDays,
    settings: PurgeSettings,
    only: Option<&[String]>,
    done: &mut Forgotten,
) -> Result<(), PurgeError> {
    loop {
        let outcome = match only {
            None => purge::run(pool, tables, retention, settings, false).await?,
            Some(ids) => purge::run_anonymizing(pool, tables, retention, settings, ids).await?,
        };
        done.purged += outcome.deleted;
        done.anonymized += outcome.anonymized;
        done.blocked = outcome.blocked;
        match outcome.status {
            PurgeStatus::Partial => {}
            // Another run holds the purge: it deletes them too; wait for it.
            PurgeStatus::Skipped => tokio::time::sleep(Duration::from_secs(1)).await,
            PurgeStatus::Completed => return Ok(()),
        }
    }
}

/// Every id with a tombstone in `replaced` written since the backup the
/// restore brought back was taken, and whether one of its tombstones says
/// it was anonymized, read in a transaction (the database may sit behind a
/// transaction pooler; see [`db`]). When the backup was taken is read off
/// the newest tombstone it holds, less [`BACKUP_SLACK`] for batches that
/// were in flight then; older tombstones name accounts that were gone
/// before the backup, and the table's index on the time skips them. A
/// command, not a function: the read may take minutes over tens of
/// millions.
async fn tombstoned_ids(
    replaced: &PgPool,
    restored: &PgPool,
) -> Result<Vec<(String, bool)>, ForgetError> {
    let limits = Limits::new(
        Duration::from_secs(5),
        Duration::from_secs(30 * 60),
        Duration::from_secs(30),
    );
    let read_since = async {
        let mut tx = db::begin(restored, &limits).await?;
        let newest: Option<chrono::DateTime<chrono::Utc>> =
            db::query_scalar("select max(purged_at) from account_deletion.tombstones")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(newest.map(|at| at - BACKUP_SLACK))
    };
    let since = read_since
        .await
        .map_err(|error| ForgetError::Purge(PurgeError::from(error)))?;
    let read = async {
        let mut tx = db::begin(replaced, &limits).await?;
        let ids = db::query_as(
            "select user_id, bool_or(anonymized) from account_deletion.tombstones
             where purged_at >= coalesce($1, '-infinity'::timestamptz)
             group by user_id",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(ids)
    };
    read.await.map_err(ForgetError::Source)
}

/// How long before the restored database's newest tombstone the tombstones
/// of the replaced one are read: a purge batch writes its tombstones with
/// its start time and may commit after a backup began (a batch is limited
/// to minutes).
const BACKUP_SLACK: chrono::Duration = chrono::Duration::hours(1);
