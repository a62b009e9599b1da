//! Support's own actions: a fresh recovery link, a hold and its release,
//! each in one transaction with its history step.

use crate::delivery::outbox::{self, EmailKind, PendingEmail};
use crate::lifecycle::accounts;
use crate::lifecycle::purge::LockedAccount;
use crate::platform::db;
use crate::platform::tokens::RecoveryToken;
use crate::schema::UserId;
use crate::schema::sql::{GATE_EXCLUSIVE, Statements};

use super::{HoldReason, Refused, Support, limits};

impl Support {
    /// A fresh link, by email, for a deletion the user made.
    pub(super) async fn resend_link(
        &self,
        sql: &Statements,
        user: &UserId,
    ) -> Result<Result<PendingEmail, Refused>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &limits()).await?;
        let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
            .bind(user.as_str())
            .bind(self.retention.days())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id, address, deleted_at, purge_after, made_by_user, in_grace)) = account
        else {
            return Ok(Err(Refused::NotFound));
        };
        let Some((deleted_at, purge_after)) = deleted_at.zip(purge_after) else {
            return Ok(Err(Refused::NotDeleted));
        };
        // Links exist only for deletions the user made, in their grace
        // period: a ban must never turn into one.
        if !made_by_user || !in_grace {
            return Ok(Err(Refused::NotRestorable));
        }
        let Some(address) = address else {
            return Ok(Err(Refused::NoAddress));
        };
        accounts::revoke_tokens(&mut tx, &user_id).await?;
        let email = outbox::queue(
            &mut tx,
            &user_id,
            EmailKind::Recovery,
            &address,
            Some(deleted_at),
        )
        .await?;
        let token = RecoveryToken::generate();
        outbox::insert_token(&mut tx, &user_id, email.id, &token, deleted_at).await?;
        record(&mut tx, &user_id, "link_resent", None).await?;
        tx.commit().await?;
        Ok(Ok(email.with_link(token, purge_after)))
    }

    /// Holds the account: takes the purge gate exclusively (waiting for the
    /// batches in flight, keeping new ones out until it commits), then the
    /// account's row, in the order erasing now takes them.
    pub(super) async fn hold(
        &self,
        sql: &Statements,
        user: &UserId,
        reason: &HoldReason,
    ) -> Result<Result<(), Refused>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &limits()).await?;
        db::query(GATE_EXCLUSIVE).execute(&mut *tx).await?;
        let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
            .bind(user.as_str())
            .bind(self.retention.days())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id, ..)) = account else {
            return Ok(Err(Refused::NotFound));
        };
        db::query(
            "insert into account_deletion.holds (user_id, reason, since) values ($1, $2, clock_timestamp())
             on conflict (user_id) do update set reason = excluded.reason",
        )
        .bind(&user_id)
        .bind(reason.as_str())
        .execute(&mut *tx)
        .await?;
        record(&mut tx, &user_id, "held", Some(reason.as_str())).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Lifts the account's hold, if it has one (nothing changes otherwise).
    pub(super) async fn release(
        &self,
        sql: &Statements,
        user: &UserId,
    ) -> Result<Result<(), Refused>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &limits()).await?;
        let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
            .bind(user.as_str())
            .bind(self.retention.days())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id, _, deleted_at, ..)) = account else {
            return Ok(Err(Refused::NotFound));
        };
        let released = db::query("delete from account_deletion.holds where user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if released > 0 {
            record(&mut tx, &user_id, "released", None).await?;
        }
        if released > 0 && deleted_at.is_some() {
            // It may lie below the purge's watermark, where only the sweep
            // would find it again: the next run looks at it first.
            db::query(
                "insert into account_deletion.rechecks (user_id) values ($1) on conflict (user_id) do nothing",
            )
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }
}

/// A step of an operator's, in the account's history.
pub(super) async fn record(
    conn: &mut sqlx::PgConnection,
    user_id: &str,
    action: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    db::query(
        "insert into account_deletion.history (user_id, action, by, detail)
         values ($1, $2, 'admin', $3)",
    )
    .bind(user_id)
    .bind(action)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}
