//! Deleting and restoring accounts: the two transactions behind the account
//! routes. Time rules run on the database clock, in the same statements that
//! act on them, so the purge and a recovery can never both win.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::RetentionDays;
use crate::delivery::events::{self, PendingEvent};
use crate::delivery::outbox::{self, EmailKind, PendingEmail};
use crate::platform::db::{self, Limits};
use crate::platform::tokens::RecoveryToken;
use crate::schema::UserId;
use crate::schema::sql::Statements;

/// A soft-deleted account, with its recovery email (unless the account has
/// no address) and its event (when events are on) ready for a first attempt.
#[derive(Debug)]
pub struct Deletion {
    pub deleted_at: DateTime<Utc>,
    pub purge_after: DateTime<Utc>,
    pub email: Option<PendingEmail>,
    pub event: Option<PendingEvent>,
}

/// A restored account's "restored" email (unless it has no address), and
/// its event when events are on.
#[derive(Debug)]
pub struct Restoration {
    pub restored_at: DateTime<Utc>,
    pub email: Option<PendingEmail>,
    pub event: Option<PendingEvent>,
}

/// Soft-deletes the signed-in user: `deleted_at = now()`, every session of
/// the sign-in's table deleted, older recovery tokens revoked and older link
/// emails superseded, a new token created (only its hash stored) and the
/// recovery email queued (and `account.deleted` recorded, when events are
/// on). An account without an address gets no token and no email: nothing
/// could reach its owner. `None` when the user is gone or already deleted.
///
/// All of it is one statement ([`Statements::delete_account`]), sent with the account limits in one round
/// trip and run as one transaction (a lock held elsewhere for 2 s answers 503
/// instead of waiting), so the user's row is locked only for as long as that
/// statement runs. Two deletes of one account serialize on that row; the
/// second re-checks `deleted_at is null` on the updated row, finds it deleted
/// and changes nothing (401).
pub async fn delete(
    pool: &PgPool,
    sql: &Statements,
    user: &UserId,
    retention: RetentionDays,
) -> Result<Option<Deletion>, sqlx::Error> {
    type Deleted = (
        Option<Uuid>,
        String,
        Option<String>,
        DateTime<Utc>,
        DateTime<Utc>,
        Option<Uuid>,
    );
    let token = RecoveryToken::generate();
    let deleted: Option<Deleted> = sql
        .delete_account
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[
                user.as_str().into(),
                retention.days().into(),
                token.hash().as_slice().into(),
                crate::delivery::CLAIM_SECONDS.into(),
            ],
        )
        .await?;
    Ok(deleted.map(
        |(outbox_id, user_id, address, deleted_at, purge_after, event_id)| Deletion {
            deleted_at,
            purge_after,
            email: outbox_id.zip(address).map(|(id, address)| {
                PendingEmail::first_attempt(id, EmailKind::Recovery, address)
                    .with_link(token, purge_after)
            }),
            event: event_id.map(|id| PendingEvent::deleted(id, user_id, deleted_at, purge_after)),
        },
    ))
}

/// When the account a valid recovery token can restore will be purged;
/// `None` for any token that cannot restore anything now. Reads only: a
/// link's page never consumes it.
pub async fn recoverable_until(
    pool: &PgPool,
    sql: &Statements,
    token: &RecoveryToken,
    retention: RetentionDays,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let until: Option<(DateTime<Utc>,)> = sql
        .recoverable_until
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[token.hash().as_slice().into(), retention.days().into()],
        )
        .await?;
    Ok(until.map(|(at,)| at))
}

/// Restores the account a recovery token belongs to, consuming the token,
/// queuing the "restored" email and recording `account.restored` (when
/// events are on), in one transaction. `None` for every token
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
    sql: &Statements,
    token: &RecoveryToken,
    retention: RetentionDays,
) -> Result<Option<Restoration>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let restored: Option<(String, Option<String>)> = db::query_as(&sql.recover)
        .bind(token.hash().as_slice())
        .bind(retention.days())
        .fetch_optional(&mut *tx)
        .await?;
    let Some((user_id, address)) = restored else {
        return Ok(None);
    };
    db::query("update account_deletion.recovery_tokens set used_at = now() where token_hash = $1")
        .bind(token.hash().as_slice())
        .execute(&mut *tx)
        .await?;
    let restoration = restored_by(&mut tx, sql, &user_id, address, Via::Link).await?;
    tx.commit().await?;
    Ok(Some(restoration))
}

/// How an account was restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The emailed link.
    Link,
    /// The signed-in user (`POST /api/account/restore`).
    SignIn,
    /// An operator.
    Admin,
}

impl Via {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::SignIn => "sign_in",
            Self::Admin => "admin",
        }
    }

    /// Who did it, as the history says.
    fn by(self) -> &'static str {
        match self {
            Self::Link | Self::SignIn => "user",
            Self::Admin => "admin",
        }
    }
}

/// What every restore does after the user's row is restored, inside its
/// transaction: the account's links stop working and its unsent link
/// emails are cancelled, the "restored" email is queued (unless it has no
/// address), `account.restored` is recorded (when events are on) and the
/// history records how.
pub(crate) async fn restored_by(
    tx: &mut sqlx::PgConnection,
    sql: &Statements,
    user_id: &str,
    address: Option<String>,
    via: Via,
) -> Result<Restoration, sqlx::Error> {
    revoke_tokens(tx, user_id).await?;
    outbox::supersede_link_emails(tx, user_id).await?;
    let email = match address {
        Some(address) => {
            Some(outbox::queue(tx, user_id, EmailKind::Restored, &address, None).await?)
        }
        // Its address was removed while it was deleted.
        None => None,
    };
    let event = if sql.records.events {
        Some(events::record_restored(tx, user_id, via.as_str()).await?)
    } else {
        None
    };
    let restored_at: DateTime<Utc> = db::query_scalar(
        "insert into account_deletion.history (user_id, action, by, detail)
         values ($1, 'restored', $2, $3) returning at",
    )
    .bind(user_id)
    .bind(via.by())
    .bind(via.as_str())
    .fetch_one(&mut *tx)
    .await?;
    Ok(Restoration {
        restored_at,
        email,
        event,
    })
}

pub(crate) async fn revoke_tokens(
    conn: &mut sqlx::PgConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    db::query(
        "update account_deletion.recovery_tokens set revoked_at = now()
         where user_id = $1 and used_at is null and revoked_at is null",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A signed-in user's account, as `GET /api/account/deletion` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionState {
    Active,
    Scheduled {
        deleted_at: DateTime<Utc>,
        purge_after: DateTime<Utc>,
        /// The user made the deletion and its grace period has not ended.
        restorable: bool,
    },
}

/// A row of [`Statements::deletion_state`]: deleted-at, purge-after,
/// restorable.
type StateRow = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, bool);

/// Where `user`'s account stands; `None` when there is no such user.
pub async fn deletion_state(
    pool: &PgPool,
    sql: &Statements,
    user: &UserId,
    retention: RetentionDays,
) -> Result<Option<DeletionState>, sqlx::Error> {
    let row: Option<StateRow> = sql
        .deletion_state
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[user.as_str().into(), retention.days().into()],
        )
        .await?;
    Ok(row.map(
        |(deleted_at, purge_after, restorable)| match deleted_at.zip(purge_after) {
            Some((deleted_at, purge_after)) => DeletionState::Scheduled {
                deleted_at,
                purge_after,
                restorable,
            },
            None => DeletionState::Active,
        },
    ))
}

/// Why a restore did not happen; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRestored {
    /// No such user (any more).
    NoSuchUser,
    NotDeleted,
    /// Deleted, but not by the user (for the signed-in restore), or past its
    /// grace period.
    NotRestorable,
}

/// Restores `user`'s account, with the recovery link's guarantees: one
/// transaction, its links dead, the "restored" email and event. The signed-in
/// user ([`Via::SignIn`]) restores only a deletion they made, and, with
/// `issued_at` (a token's, which the deletion could not revoke), only one
/// made before it; an operator, any soft-deleted account in its grace
/// period. An anonymized account is erased: nobody restores it.
pub async fn restore(
    pool: &PgPool,
    sql: &Statements,
    user: &UserId,
    retention: RetentionDays,
    via: Via,
    issued_at: Option<DateTime<Utc>>,
) -> Result<Result<Restoration, NotRestored>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let query = if via == Via::Admin {
        db::query_as(&sql.restore_any)
            .bind(user.as_str())
            .bind(retention.days())
    } else {
        db::query_as(&sql.restore_own)
            .bind(user.as_str())
            .bind(retention.days())
            .bind(issued_at)
    };
    let restored: Option<(String, Option<String>)> = query.fetch_optional(&mut *tx).await?;
    let Some((user_id, address)) = restored else {
        // Why not, read in the same transaction.
        let state: Option<StateRow> = sql
            .deletion_state
            .fetch_optional(
                &mut tx,
                &Limits::ACCOUNT,
                &[user.as_str().into(), retention.days().into()],
            )
            .await?;
        tx.rollback().await?;
        return Ok(Err(match state {
            None => NotRestored::NoSuchUser,
            Some((None, ..)) => NotRestored::NotDeleted,
            Some((Some(_), ..)) => NotRestored::NotRestorable,
        }));
    };
    let restoration = restored_by(&mut tx, sql, &user_id, address, via).await?;
    tx.commit().await?;
    Ok(Ok(restoration))
}
