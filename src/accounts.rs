//! Deleting and restoring accounts: the two transactions behind the account
//! routes. Time rules run on the database clock, in the same statements that
//! act on them, so the purge and a recovery can never both win.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::RetentionDays;
use crate::db::{self, Limits, Statement};
use crate::outbox::{self, EmailKind, PendingEmail};
use crate::tokens::{RecoveryToken, SessionToken};

/// A soft-deleted account, with its recovery email ready for a first attempt.
#[derive(Debug)]
pub struct Deletion {
    pub deleted_at: DateTime<Utc>,
    pub purge_after: DateTime<Utc>,
    pub email: PendingEmail,
}

/// The soft delete: one statement (see [`delete`]).
static DELETE: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "with deleted as (
             update users u set deleted_at = now()
             from sessions s
             where s.token_hash = $1 and s.expires_at > now()
               and u.id = s.user_id and u.deleted_at is null
             returning u.id, u.email, u.deleted_at
         ), signed_out as (
             delete from sessions where user_id in (select id from deleted)
         ), revoked as (
             update recovery_tokens set revoked_at = now()
             where user_id in (select id from deleted) and used_at is null and revoked_at is null
         ), superseded as (
             update email_outbox set status = 'superseded', claimed_until = null
             where user_id in (select id from deleted)
               and status = 'pending' and kind in ('recovery', 'reminder')
         ), queued as (
             insert into email_outbox (user_id, kind, recipient, for_deleted_at, attempts, claimed_until)
             select id, 'recovery', email, deleted_at, 1, now() + make_interval(secs => $4)
             from deleted
             returning id, user_id, for_deleted_at
         ), token as (
             insert into recovery_tokens (user_id, outbox_id, token_hash, for_deleted_at)
             select user_id, id, $3, for_deleted_at from queued
         )
         select q.id, d.email, d.deleted_at, d.deleted_at + make_interval(days => $2)
         from deleted d join queued q on q.user_id = d.id",
    )
});

/// Soft-deletes the session's user: `deleted_at = now()`, every session
/// revoked, older recovery tokens revoked and older link emails superseded,
/// a new token created (only its hash stored) and the recovery email queued.
/// `None` when the session is missing, expired, or its user already deleted.
///
/// All of it is one statement, sent with the account limits in one round
/// trip and run as one transaction (a lock held elsewhere for 2 s answers 503
/// instead of waiting), so the user's row is locked only for as long as that
/// statement runs. Two deletes of one account serialize on that row; the
/// second re-checks `deleted_at is null` on the updated row, finds it deleted
/// and changes nothing (401).
pub async fn delete(
    pool: &PgPool,
    session: &SessionToken,
    retention: RetentionDays,
) -> Result<Option<Deletion>, sqlx::Error> {
    let token = RecoveryToken::generate();
    let deleted: Option<(Uuid, String, DateTime<Utc>, DateTime<Utc>)> = DELETE
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[
                session.hash().as_slice().into(),
                retention.days().into(),
                token.hash().as_slice().into(),
                outbox::CLAIM_SECONDS.into(),
            ],
        )
        .await?;
    Ok(
        deleted.map(|(outbox_id, email, deleted_at, purge_after)| Deletion {
            deleted_at,
            purge_after,
            email: PendingEmail::first_attempt(outbox_id, EmailKind::Recovery, email)
                .with_link(token, purge_after),
        }),
    )
}

/// The lookup behind the link's page (see [`recoverable_until`]).
static RECOVERABLE_UNTIL: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "select u.deleted_at + make_interval(days => $2)
         from recovery_tokens t
         join users u on u.id = t.user_id
         where t.token_hash = $1
           and t.used_at is null
           and t.revoked_at is null
           and u.deleted_at = t.for_deleted_at
           and u.deleted_at > now() - make_interval(days => $2)",
    )
});

/// When the account a valid recovery token can restore will be purged;
/// `None` for any token that cannot restore anything now. Reads only: a
/// link's page never consumes it.
pub async fn recoverable_until(
    pool: &PgPool,
    token: &RecoveryToken,
    retention: RetentionDays,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let until: Option<(DateTime<Utc>,)> = RECOVERABLE_UNTIL
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[token.hash().as_slice().into(), retention.days().into()],
        )
        .await?;
    Ok(until.map(|(at,)| at))
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
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let restored: Option<(Uuid, String)> = db::query_as(
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
    db::query("update recovery_tokens set used_at = now() where token_hash = $1")
        .bind(token.hash().as_slice())
        .execute(&mut *tx)
        .await?;
    revoke_tokens(&mut tx, user_id).await?;
    let pending = outbox::queue(&mut tx, user_id, EmailKind::Restored, &email, None).await?;
    tx.commit().await?;
    Ok(Some(pending))
}

async fn revoke_tokens(conn: &mut sqlx::PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    db::query(
        "update recovery_tokens set revoked_at = now()
         where user_id = $1 and used_at is null and revoked_at is null",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
