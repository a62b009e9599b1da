//! Forgetting what has been kept long enough. Every table this service
//! creates has a bound ([`Keep`], `KEEP_*_DAYS`): the email cron prunes the
//! deliveries (and our own expired sessions), the purge what it writes
//! (tombstones, the history of erased accounts, the anonymized marks, its
//! ledger).
//!
//! Each table is pruned in steps of at most [`STEP`] rows, each step a
//! transaction of its own, so that a slow or failing prune rolls back
//! nothing else, holds no lock for long, and never runs past [`BUDGET`].
//! Best effort: a prune that fails is logged, and the next run does it.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::config::{Keep, RetentionDays};
use crate::platform::db::{self, Limits};
use crate::schema::sql::Statements;

/// The most rows one step deletes.
pub const STEP: i64 = 10_000;

/// No prune starts a step after this long.
const BUDGET: Duration = Duration::from_secs(20);

/// One table's prune: a statement deleting at most `$1` rows that have
/// been kept long enough (`$2` days, and `$3` when it needs a second bound).
struct Prune {
    table: &'static str,
    statement: String,
    days: Vec<i32>,
}

impl Prune {
    fn new(table: &'static str, statement: impl Into<String>, days: &[u16]) -> Self {
        Self {
            table,
            statement: statement.into(),
            days: days.iter().map(|&days| i32::from(days)).collect(),
        }
    }
}

/// Rows of `table` matching `rule`, `$1` at a time, by their physical
/// address (every table of ours, whatever its key).
fn in_steps(table: &str, rule: &str) -> String {
    format!(
        "delete from {table} where ctid = any(array(
             select ctid from {table} where {rule} limit $1))"
    )
}

/// Whether the `sessions` table is ours (our migrations created it with
/// `users`), so that its expired rows are ours to prune; an app's own
/// session table, even one named `sessions`, is the app's.
async fn sessions_are_ours(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let tracked: bool =
        db::query_scalar("select to_regclass('public._sqlx_migrations') is not null")
            .fetch_one(&mut *tx)
            .await?;
    let ours = tracked
        && db::query_scalar(
            "select exists (select 1 from public._sqlx_migrations where version = $1 and success)",
        )
        .bind(crate::schema::migrate::first_app_migration())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ours)
}

/// What the email cron prunes: deliveries, failed attempts' windows, and
/// the expired rows of our own `sessions` table (when the users table is
/// the default one and our migrations made both). Returns how many rows
/// went.
pub async fn deliveries(
    pool: &PgPool,
    keep: Keep,
    retention: RetentionDays,
    default_users: bool,
) -> u64 {
    let our_sessions = default_users && sessions_are_ours(pool).await.unwrap_or(false);
    let retention = u16::try_from(retention.days()).unwrap_or(u16::MAX);
    let mut prunes = vec![
        // A link's email (its token goes with it) stays as long as its
        // deletion's grace period, whatever RETENTION_DAYS is.
        Prune::new(
            "email_outbox",
            in_steps(
                "account_deletion.email_outbox",
                "status in ('sent', 'superseded', 'cancelled')
                 and created_at < now() - make_interval(days => $2)
                 and (for_deleted_at is null or for_deleted_at < now() - make_interval(days => $3))",
            ),
            &[keep.delivered_days, retention],
        ),
        // A given-up email holds its recipient's address: no reason to
        // keep it past the status route's window and support's month.
        Prune::new(
            "email_outbox",
            in_steps(
                "account_deletion.email_outbox",
                "status = 'failed' and next_attempt_at < now() - make_interval(days => $2)",
            ),
            &[keep.failed_days],
        ),
        Prune::new(
            "webhook_events",
            in_steps(
                "account_deletion.webhook_events",
                "status = 'sent' and created_at < now() - make_interval(days => $2)",
            ),
            &[keep.delivered_days],
        ),
        Prune::new(
            "webhook_events",
            in_steps(
                "account_deletion.webhook_events",
                "status = 'failed' and next_attempt_at < now() - make_interval(days => $2)",
            ),
            &[keep.failed_days],
        ),
    ];
    if our_sessions {
        prunes.push(Prune::new(
            "sessions",
            in_steps("sessions", "expires_at < now() - make_interval(days => $2)"),
            &[keep.expired_sessions_days],
        ));
    }
    let mut total = run(pool, &prunes).await;
    // Small by construction (pruned as failures are written): one step.
    let windows = async {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let rows = crate::platform::rate_limit::prune(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(rows)
    };
    match windows.await {
        Ok(rows) => total += rows,
        Err(error) => {
            tracing::warn!(table = "recovery_failures", error = %error, "could not prune; the next run tries again");
        }
    }
    total
}

/// What the purge prunes when a run ends: tombstones past their keep, and
/// with each the history of its account, once the account is gone; its
/// ledger; and one slice each of the history and the anonymized marks of
/// accounts the app deleted itself, so that a run reads what became old
/// since the last one, never all the history kept. Returns how many rows
/// went.
pub async fn purge_records(pool: &PgPool, sql: &Statements, keep: Keep) -> u64 {
    let prunes = [
        Prune::new(
            "tombstones",
            sql.prune_tombstones.clone(),
            &[keep.tombstone_days],
        ),
        // A run's workers' rows go with it.
        Prune::new(
            "purge_runs",
            in_steps(
                "account_deletion.purge_runs",
                "status <> 'running' and started_at < now() - make_interval(days => $2)",
            ),
            &[keep.purge_runs_days],
        ),
    ];
    let mut total = run(pool, &prunes).await;
    let slices = [
        Slice::new(
            "history",
            "prune_history",
            sql.prune_history.clone(),
            &[keep.tombstone_days],
        ),
        Slice::new(
            "anonymized",
            "prune_anonymized",
            sql.prune_anonymized.clone(),
            &[],
        ),
    ];
    for slice in &slices {
        match slice.run(pool).await {
            Ok(rows) => total += rows,
            Err(error) => {
                tracing::warn!(table = slice.table, error = %error, "could not prune; the next run tries again");
            }
        }
    }
    total
}

/// One table's rotating prune: a slice of at most [`STEP`] accounts per
/// run, after where the last one stopped (kept in
/// `account_deletion.sweeps`), from the start again once a slice comes
/// back short.
struct Slice {
    table: &'static str,
    sweep: &'static str,
    statement: String,
    days: Vec<i32>,
}

impl Slice {
    fn new(table: &'static str, sweep: &'static str, statement: String, days: &[u16]) -> Self {
        Self {
            table,
            sweep,
            statement,
            days: days.iter().map(|&days| i32::from(days)).collect(),
        }
    }

    async fn run(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let cursor: Option<String> = db::query_scalar(
            "select cursor_id from account_deletion.sweeps where name = $1 for update",
        )
        .bind(self.sweep)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        let mut query = db::query_as(&self.statement).bind(cursor).bind(STEP);
        for days in &self.days {
            query = query.bind(*days);
        }
        let (deleted, walked, last): (i64, i64, Option<String>) = query.fetch_one(&mut *tx).await?;
        let next = if walked < STEP { None } else { last };
        db::query(
            "update account_deletion.sweeps set cursor_id = $2, updated_at = now() where name = $1",
        )
        .bind(self.sweep)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted as u64)
    }
}

async fn run(pool: &PgPool, prunes: &[Prune]) -> u64 {
    let started = Instant::now();
    let mut total = 0;
    for prune in prunes {
        loop {
            if started.elapsed() > BUDGET {
                tracing::warn!(
                    table = prune.table,
                    "pruning ran out of time; the next run goes on"
                );
                return total;
            }
            let step = async {
                let mut tx = db::begin(pool, &Limits::CRON).await?;
                let mut query = db::query(&prune.statement).bind(STEP);
                for days in &prune.days {
                    query = query.bind(*days);
                }
                let rows = query.execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok::<_, sqlx::Error>(rows)
            }
            .await;
            match step {
                Ok(rows) => {
                    total += rows;
                    if rows < STEP as u64 {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(table = prune.table, error = %error, "could not prune; the next run tries again");
                    break;
                }
            }
        }
    }
    total
}
