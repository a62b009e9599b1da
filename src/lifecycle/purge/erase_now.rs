//! Support's erasure of one account now, by the purge batch's own
//! statement.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Lease;
use super::walk::{AnonymizeBatch, DeleteBatch, Range, anonymize_batch, delete_batch};
use crate::config::EraseBlocked;
use crate::platform::db::{self, Limits};
use crate::schema::UserId;
use crate::schema::sql::Statements;

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
    db::query(crate::schema::sql::GATE_SHARED)
        .execute(&mut *tx)
        .await?;
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
    let only = [user.as_str().to_owned()];
    let anywhere = Range::default();
    let one = |size| DeleteBatch {
        lease,
        worker: 0,
        size,
        range: &anywhere,
        only: Some(&only),
        held: None,
    };
    let deleted = match delete_batch(&mut tx, sql, &limits, one(1)).await {
        Ok(batch) => batch.map_or(0, |batch| batch.done),
        // A key added since the statements were rendered.
        Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
            let constraint = error.constraint().unwrap_or("a foreign key").to_owned();
            return Ok(Err(NotErased::Blocked(vec![constraint])));
        }
        Err(error) => return Err(error),
    };
    // Blocked: anonymized instead when the purge would do that.
    let anonymized = match (deleted, erase_blocked, &sql.anonymize_batch) {
        (0, EraseBlocked::Anonymize, Some(statement)) => {
            let batch = AnonymizeBatch {
                batch: one(1),
                by: "admin",
            };
            anonymize_batch(&mut tx, statement, &limits, batch)
                .await?
                .map_or(0, |batch| batch.done)
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
