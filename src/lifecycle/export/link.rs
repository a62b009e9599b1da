//! Export links: a request emails the account's address a link (the token
//! is stored only as its SHA-256); a download spends one of its uses. Each
//! is one transaction with its history step and its event.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::ExcludedColumns;
use crate::delivery::events::{self, EventType, PendingEvent};
use crate::delivery::outbox::{self, EmailKind, PendingEmail};
use crate::lifecycle::export::tables;
use crate::platform::db::{self, Limits};
use crate::platform::tokens::RecoveryToken;
use crate::schema::sql::Statements;
use crate::schema::{SchemaError, UserId};

/// How long a link works, and how often its holder may ask for one.
pub const LINK_HOURS: i32 = 24;

/// Who asked for the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// The signed-in user: once a day.
    User,
    /// Support (the admin route): not limited.
    Admin,
}

impl Requester {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// A link made and its email queued (claimed for its first attempt).
#[derive(Debug)]
pub struct Requested {
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub email: PendingEmail,
    pub event: Option<PendingEvent>,
}

/// Why no link was made; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRequested {
    /// No such account, or it is erased (anonymized).
    NoSuchUser,
    /// Nothing could reach its holder.
    NoAddress,
    /// The user asked less than a day ago.
    RateLimited { retry_after_seconds: u64 },
}

/// Makes a new link for `user`'s account (the older one stops working)
/// and queues its email.
pub async fn request(
    pool: &PgPool,
    sql: &Statements,
    user: &UserId,
    by: Requester,
) -> Result<Result<Requested, NotRequested>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let account: Option<(String, Option<String>)> = db::query_as(&sql.export.account)
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let Some((user_id, address)) = account else {
        return Ok(Err(NotRequested::NoSuchUser));
    };
    let Some(address) = address else {
        return Ok(Err(NotRequested::NoAddress));
    };
    let email = outbox::queue(&mut tx, &user_id, EmailKind::Export, &address, None).await?;
    let token = RecoveryToken::generate();
    // The user's request is refused when their last one is less than a day
    // old, atomically: of two requests at once, one gets the day.
    let made: Option<(DateTime<Utc>, DateTime<Utc>)> = db::query_as(
        "insert into account_deletion.exports as e
             (user_id, token_hash, outbox_id, expires_at, downloads, user_requested_at)
         values ($1, $2, $3, now() + make_interval(hours => $4), 0, case when $5 then now() end)
         on conflict (user_id) do update set
             token_hash = excluded.token_hash,
             outbox_id = excluded.outbox_id,
             expires_at = excluded.expires_at,
             downloads = 0,
             user_requested_at = coalesce(excluded.user_requested_at, e.user_requested_at)
         where not $5
            or e.user_requested_at is null
            or e.user_requested_at <= now() - make_interval(hours => $4)
         returning now(), e.expires_at",
    )
    .bind(&user_id)
    .bind(token.hash().as_slice())
    .bind(email.id)
    .bind(LINK_HOURS)
    .bind(by == Requester::User)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((requested_at, expires_at)) = made else {
        let wait: i64 = db::query_scalar(
            "select greatest(1, ceil(extract(epoch from
                 user_requested_at + make_interval(hours => $2) - now())))::int8
             from account_deletion.exports where user_id = $1",
        )
        .bind(&user_id)
        .bind(LINK_HOURS)
        .fetch_one(&mut *tx)
        .await?;
        // Rolled back: the email queued above is not sent.
        return Ok(Err(NotRequested::RateLimited {
            retry_after_seconds: wait as u64,
        }));
    };
    db::query(
        "insert into account_deletion.history (user_id, action, by) values ($1, 'export_requested', $2)",
    )
    .bind(&user_id)
    .bind(by.as_str())
    .execute(&mut *tx)
    .await?;
    let event = if sql.records.events {
        Some(events::record(&mut tx, EventType::ExportRequested, &user_id).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(Ok(Requested {
        requested_at,
        expires_at,
        email: email.with_link(token, expires_at),
        event,
    }))
}

/// Whether link `token` would serve a download now: its expiry and the
/// downloads it has left. Reads only (a link's page never spends it).
pub async fn check(
    pool: &PgPool,
    sql: &Statements,
    token: &RecoveryToken,
) -> Result<Option<(DateTime<Utc>, i32)>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let link = db::query_as(&sql.export.link)
        .bind(token.hash().as_slice())
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(link)
}

/// A download started with a link.
#[derive(Debug)]
pub struct Redeemed {
    pub user: UserId,
    pub event: Option<PendingEvent>,
}

/// Spends one use of link `token`, with its history step (`exported`, by
/// the user) and its event; `None` for any link that cannot serve one
/// (unknown, expired, used up, its account gone or anonymized), with
/// nothing changed. `EXPORT_EXCLUDE_COLUMNS` is checked in the same
/// transaction (the archive's snapshot reads the catalog itself): a download
/// refused for the configuration spends nothing.
pub async fn redeem(
    pool: &PgPool,
    sql: &Statements,
    token: &RecoveryToken,
    excluded: &ExcludedColumns,
) -> Result<Option<Redeemed>, SchemaError> {
    let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
    let user_id: Option<String> = db::query_scalar(&sql.export.redeem)
        .bind(token.hash().as_slice())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    db::query(
        "insert into account_deletion.history (user_id, action, by) values ($1, 'exported', 'user')",
    )
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    let event = if sql.records.events {
        Some(events::record(&mut tx, EventType::Exported, &user_id).await?)
    } else {
        None
    };
    tables::check_named_columns_exist(&mut tx, excluded).await?;
    tx.commit().await?;
    Ok(Some(Redeemed {
        user: UserId::new(user_id),
        event,
    }))
}
