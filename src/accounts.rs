//! Deleting and restoring accounts: the two transactions behind the account
//! routes. Time rules run on the database clock, in the same statements that
//! act on them, so the purge and a recovery can never both win.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::RetentionDays;
use crate::outbox::{self, EmailKind, PendingEmail};
use crate::tokens::{RecoveryToken, SessionToken};

/// A soft-deleted account, with its recovery email ready for a first attempt.
#[derive(Debug)]
pub struct Deletion {
    pub deleted_at: DateTime<Utc>,
    pub purge_after: DateTime<Utc>,
    pub email: PendingEmail,
}

/// Soft-deletes the session's user, in one transaction: `deleted_at = now()`,
/// every session revoked, older recovery tokens revoked, a new one created
/// (only its hash stored) and the recovery email queued. `None` when the
/// session is missing, expired, or its user already deleted.
pub async fn delete(
    pool: &PgPool,
    session: &SessionToken,
    retention: RetentionDays,
) -> Result<Option<Deletion>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Locking the user serializes concurrent deletes of one account: the
    // second sees it deleted (its session gone) and answers 401.
    let user: Option<(Uuid, String)> = sqlx::query_as(
        "select u.id, u.email
         from sessions s
         join users u on u.id = s.user_id
         where s.token_hash = $1 and s.expires_at > now() and u.deleted_at is null
         for update of u",
    )
    .bind(session.hash().as_slice())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, email)) = user else {
        return Ok(None);
    };
    let (deleted_at, purge_after): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "update users set deleted_at = now() where id = $1
         returning deleted_at, deleted_at + make_interval(days => $2)",
    )
    .bind(user_id)
    .bind(retention.days())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("delete from sessions where user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    revoke_tokens(&mut tx, user_id).await?;
    let pending = outbox::queue(
        &mut tx,
        user_id,
        EmailKind::Recovery,
        &email,
        Some(deleted_at),
    )
    .await?;
    let token = RecoveryToken::generate();
    outbox::insert_token(&mut tx, user_id, pending.id, &token, deleted_at).await?;
    tx.commit().await?;
    Ok(Some(Deletion {
        deleted_at,
        purge_after,
        email: pending.with_link(token, purge_after),
    }))
}

/// When the account a valid recovery token can restore will be purged;
/// `None` for any token that cannot restore anything now. Reads only: a
/// link's page never consumes it.
pub async fn recoverable_until(
    pool: &PgPool,
    token: &RecoveryToken,
    retention: RetentionDays,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "select u.deleted_at + make_interval(days => $2)
         from recovery_tokens t
         join users u on u.id = t.user_id
         where t.token_hash = $1
           and t.used_at is null
           and t.revoked_at is null
           and u.deleted_at = t.for_deleted_at
           and u.deleted_at > now() - make_interval(days => $2)",
    )
    .bind(token.hash().as_slice())
    .bind(retention.days())
    .fetch_optional(pool)
    .await
}

/// Restores the account a recovery token belongs to, consuming the token and
/// queuing the "restored" email, in one transaction. `None` for every token
/// that cannot (unknown, used, revoked, expired, account restored or purged),
/// with nothing changed.
///
/// The restore is one `UPDATE` that re-checks, on the locked row, that the
/// account is still in the same deletion and inside its retention period. If
/// the purge holds the row, the update waits for it, then finds the row gone
/// and restores nothing; if the restore commits first, the purge's own
/// re-check leaves the account alone.
pub async fn recover(
    pool: &PgPool,
    token: &RecoveryToken,
    retention: RetentionDays,
) -> Result<Option<PendingEmail>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let restored: Option<(Uuid, String)> = sqlx::query_as(
        "update users u set deleted_at = null
         from recovery_tokens t
         where t.token_hash = $1
           and t.used_at is null
           and t.revoked_at is null
           and u.id = t.user_id
           and u.deleted_at = t.for_deleted_at
           and u.deleted_at > now() - make_interval(days => $2)
         returning u.id, u.email",
    )
    .bind(token.hash().as_slice())
    .bind(retention.days())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, email)) = restored else {
        return Ok(None);
    };
    sqlx::query("update recovery_tokens set used_at = now() where token_hash = $1")
        .bind(token.hash().as_slice())
        .execute(&mut *tx)
        .await?;
    revoke_tokens(&mut tx, user_id).await?;
    let pending = outbox::queue(&mut tx, user_id, EmailKind::Restored, &email, None).await?;
    tx.commit().await?;
    Ok(Some(pending))
}

async fn revoke_tokens(conn: &mut sqlx::PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update recovery_tokens set revoked_at = now()
         where user_id = $1 and used_at is null and revoked_at is null",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
