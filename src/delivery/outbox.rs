//! The email outbox: every email is a row written in the same transaction as
//! the change it reports, then sent. Delivery is at least once: a row is
//! marked sent only after the mail server accepted it, and a row whose sender
//! died is picked up again once its claim runs out. Each row's id is its
//! `Message-ID`, so a duplicate is recognisable as one.
//!
//! Recovery tokens are never stored in plain text, not even here: the request
//! that deletes an account holds its token in memory for the first attempt;
//! any later attempt mints a fresh token for the same email (the earlier ones
//! of that email stay valid, so a duplicate delivery carries a working link).

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::config::{MailConfig, RetentionDays};
pub use crate::delivery::Delivery;
use crate::delivery::email_texts::{self, Rendered};
use crate::delivery::{self, CLAIM_SECONDS, DUE, NEXT_ATTEMPT_AT};
use crate::platform::db::{self, Limits, Statement};
use crate::platform::mail;
use crate::platform::tokens::RecoveryToken;
use crate::schema::sql::Statements;

/// Rows claimed per round of the sweep, sent concurrently.
const SWEEP_BATCH: i64 = 10;

pub const RECOVER_PATH: &str = "/api/account/recover";
pub const EXPORT_PATH: &str = "/api/account/export";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    Recovery,
    Reminder,
    Restored,
    /// After the purge, when `SEND_ERASED_EMAIL` is on.
    Erased,
    /// A link to download a copy of the account's data.
    Export,
}

impl EmailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recovery => "recovery",
            Self::Reminder => "reminder",
            Self::Restored => "restored",
            Self::Erased => "erased",
            Self::Export => "export",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "recovery" => Some(Self::Recovery),
            "reminder" => Some(Self::Reminder),
            "restored" => Some(Self::Restored),
            "erased" => Some(Self::Erased),
            "export" => Some(Self::Export),
            _ => None,
        }
    }
}

/// A claimed outbox row, ready to send.
#[derive(Debug)]
pub struct PendingEmail {
    pub id: Uuid,
    pub kind: EmailKind,
    recipient: String,
    attempt: i32,
    /// The token and the date the email gives (a recovery link's purge,
    /// an export link's expiry), when the caller just created them.
    link: Option<(RecoveryToken, DateTime<Utc>)>,
}

impl PendingEmail {
    /// An email its caller just queued, claimed for the first attempt.
    pub(crate) fn first_attempt(id: Uuid, kind: EmailKind, recipient: String) -> Self {
        Self {
            id,
            kind,
            recipient,
            attempt: 1,
            link: None,
        }
    }

    /// The first attempt of a link email whose token the caller holds.
    pub(crate) fn with_link(mut self, token: RecoveryToken, date: DateTime<Utc>) -> Self {
        self.link = Some((token, date));
        self
    }
}

/// Queues an email inside the caller's transaction, claimed by the caller for
/// its first attempt right after commit. A new link email supersedes the
/// user's older unsent ones of its kind (recovery and reminder links are
/// one kind): only the newest link matters.
pub(crate) async fn queue(
    conn: &mut PgConnection,
    user_id: &str,
    kind: EmailKind,
    recipient: &str,
    for_deleted_at: Option<DateTime<Utc>>,
) -> Result<PendingEmail, sqlx::Error> {
    if kind == EmailKind::Export {
        db::query(
            "update account_deletion.email_outbox set status = 'superseded', claimed_until = null
             where user_id = $1 and status = 'pending' and kind = 'export'",
        )
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    } else {
        supersede_link_emails(conn, user_id).await?;
    }
    let id: Uuid = db::query_scalar(
        "insert into account_deletion.email_outbox (user_id, kind, recipient, for_deleted_at, attempts, claimed_until)
         values ($1, $2, $3, $4, 1, now() + make_interval(secs => $5))
         returning id",
    )
    .bind(user_id)
    .bind(kind.as_str())
    .bind(recipient)
    .bind(for_deleted_at)
    .bind(CLAIM_SECONDS)
    .fetch_one(&mut *conn)
    .await?;
    Ok(PendingEmail::first_attempt(id, kind, recipient.to_owned()))
}

/// Cancels the user's unsent recovery and reminder emails (the account was
/// restored, or a newer email replaces them).
pub(crate) async fn supersede_link_emails(
    conn: &mut PgConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    db::query(
        "update account_deletion.email_outbox set status = 'superseded', claimed_until = null
         where user_id = $1 and status = 'pending' and kind in ('recovery', 'reminder')",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sends one claimed email and records the result. Never fails: errors are
/// recorded on the row (and retried) and logged.
pub async fn send(
    pool: PgPool,
    sql: Arc<Statements>,
    mail: MailConfig,
    retention: RetentionDays,
    email: PendingEmail,
) -> Delivery {
    let started = Instant::now();
    let (id, kind, attempt) = (email.id, email.kind, email.attempt);
    let delivery = match attempt_delivery(&pool, &sql, &mail, retention, email).await {
        Ok(delivery) => delivery,
        Err(error) => {
            // By its class only: a mail server's reply quotes the address
            // (`550 <someone@example.com>: Recipient address rejected`).
            tracing::warn!(outbox_id = %id, kind = kind.as_str(), attempt, error = error.class(), "email attempt failed");
            if let AttemptError::Database(cause) = &error {
                tracing::warn!(outbox_id = %id, error = %cause, "email attempt: database error");
            }
            delivery::record_failure(&pool, &RECORD_FAILURE, id, error.class()).await
        }
    };
    tracing::info!(
        outbox_id = %id,
        kind = kind.as_str(),
        attempt,
        outcome = ?delivery,
        duration_ms = started.elapsed().as_millis() as u64,
        "email"
    );
    delivery
}

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Send(#[from] mail::SendError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the recipient address is not valid")]
    BadRecipient,
}

impl AttemptError {
    fn class(&self) -> &'static str {
        match self {
            Self::Send(error) => error.class(),
            Self::Database(_) => "database",
            Self::BadRecipient => "bad_recipient",
        }
    }
}

async fn attempt_delivery(
    pool: &PgPool,
    sql: &Statements,
    mail: &MailConfig,
    retention: RetentionDays,
    email: PendingEmail,
) -> Result<Delivery, AttemptError> {
    let rendered = match (email.kind, email.link) {
        (EmailKind::Restored, _) => email_texts::restored(),
        (EmailKind::Erased, _) => email_texts::erased(),
        (kind, Some((token, date))) => render_link_email(kind, mail, &token, date),
        (EmailKind::Export, None) => match relink_export(pool, sql, email.id).await? {
            Some((token, expires_at)) => {
                render_link_email(EmailKind::Export, mail, &token, expires_at)
            }
            None => return Ok(Delivery::Cancelled),
        },
        (kind, None) => match mint_link(pool, sql, email.id, retention).await? {
            Some((token, purge_after)) => render_link_email(kind, mail, &token, purge_after),
            None => return Ok(Delivery::Cancelled),
        },
    };
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|_| AttemptError::BadRecipient)?;
    let message = Message::builder()
        .message_id(Some(format!("<{}@{}>", email.id, mail.app_url.host())))
        .from(mail.mailer.from.clone())
        .to(to)
        .subject(rendered.subject)
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(mail::SendError::Build)?;
    mail.mailer.send(message).await?;
    mark_sent(pool, email.id).await?;
    Ok(Delivery::Sent)
}

/// Records that the mail server accepted the email, and forgets the address
/// of an "erased" email (the account it belonged to is gone; the address
/// was kept only to send this). Once it has, failing to
/// record it means sending it again later (a duplicate, with the same
/// `Message-ID`), so a database or pooler that is briefly away (a restart
/// takes seconds) is waited for. One round trip: every email a request
/// queues is marked here.
async fn mark_sent(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    db::retry_while_unavailable("record a sent email", || async {
        MARK_SENT
            .execute(&mut *pool.acquire().await?, &Limits::CRON, &[id.into()])
            .await
            .map(drop)
    })
    .await
}

static MARK_SENT: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "update account_deletion.email_outbox set status = 'sent', sent_at = now(), claimed_until = null, last_error = null,
             recipient = case when kind = 'erased' then '' else recipient end
         where id = $1",
    )
});

fn render_link_email(
    kind: EmailKind,
    mail: &MailConfig,
    token: &RecoveryToken,
    date: DateTime<Utc>,
) -> Rendered {
    let path = if kind == EmailKind::Export {
        EXPORT_PATH
    } else {
        RECOVER_PATH
    };
    let link = mail
        .app_url
        .join(&format!("{path}?token={}", token.as_str()));
    match kind {
        EmailKind::Reminder => email_texts::reminder(&link, date),
        EmailKind::Export => email_texts::export(&link, date),
        _ => email_texts::recovery(&link, date),
    }
}

/// A fresh token for a retried export email, if its link is still the
/// account's current one and unexpired, and the account is here; the
/// token of the attempt before stops working. Otherwise the email is
/// cancelled.
async fn relink_export(
    pool: &PgPool,
    sql: &Statements,
    outbox_id: Uuid,
) -> Result<Option<(RecoveryToken, DateTime<Utc>)>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let token = RecoveryToken::generate();
    let expires_at: Option<DateTime<Utc>> = db::query_scalar(&sql.export.relink)
        .bind(outbox_id)
        .bind(token.hash().as_slice())
        .fetch_optional(&mut *tx)
        .await?;
    if expires_at.is_none() {
        cancel(&mut tx, outbox_id).await?;
    }
    tx.commit().await?;
    Ok(expires_at.map(|at| (token, at)))
}

/// Cancels an email whose link could no longer work.
async fn cancel(conn: &mut PgConnection, outbox_id: Uuid) -> Result<(), sqlx::Error> {
    db::query(
        "update account_deletion.email_outbox set status = 'cancelled', claimed_until = null
         where id = $1 and status = 'pending'",
    )
    .bind(outbox_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A fresh token for a retried or reminder email, if the account is still in
/// the deletion the email is about. Tokens of the user's other emails stop
/// working; tokens of this same email (earlier attempts) keep working.
async fn mint_link(
    pool: &PgPool,
    sql: &Statements,
    outbox_id: Uuid,
    retention: RetentionDays,
) -> Result<Option<(RecoveryToken, DateTime<Utc>)>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let current: Option<(String, DateTime<Utc>, DateTime<Utc>)> = db::query_as(&sql.email_account)
        .bind(outbox_id)
        .bind(retention.days())
        .fetch_optional(&mut *tx)
        .await?;
    let Some((user_id, deleted_at, purge_after)) = current else {
        cancel(&mut tx, outbox_id).await?;
        tx.commit().await?;
        return Ok(None);
    };
    db::query(
        "update account_deletion.recovery_tokens set revoked_at = now()
         where user_id = $1 and outbox_id <> $2 and used_at is null and revoked_at is null",
    )
    .bind(&user_id)
    .bind(outbox_id)
    .execute(&mut *tx)
    .await?;
    let token = RecoveryToken::generate();
    insert_token(&mut tx, &user_id, outbox_id, &token, deleted_at).await?;
    tx.commit().await?;
    Ok(Some((token, purge_after)))
}

pub(crate) async fn insert_token(
    conn: &mut PgConnection,
    user_id: &str,
    outbox_id: Uuid,
    token: &RecoveryToken,
    for_deleted_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    db::query(
        "insert into account_deletion.recovery_tokens (user_id, outbox_id, token_hash, for_deleted_at)
         values ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(outbox_id)
    .bind(token.hash().as_slice())
    .bind(for_deleted_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Releases the claim and schedules the next attempt
/// ([`NEXT_ATTEMPT_AT`]), or gives up; an "erased" email that gives up
/// forgets its address.
static RECORD_FAILURE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update account_deletion.email_outbox set
             claimed_until = null,
             last_error = $2,
             next_attempt_at = {NEXT_ATTEMPT_AT},
             status = case when attempts >= $3 or $2 = 'bad_recipient' then 'failed' else 'pending' end,
             recipient = case when kind = 'erased' and (attempts >= $3 or $2 = 'bad_recipient') then ''
                              else recipient end
         where id = $1 and status = 'pending'
         returning status"
    )
});

/// What one round of sending the due emails did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    pub sent: u64,
    pub retrying: u64,
    pub gave_up: u64,
    pub cancelled: u64,
    /// Due rows left unsent because the time budget ran out.
    pub remaining_due: u64,
}

/// Sends every email that is due (first attempts whose sender died, and
/// retries), a few at a time, until none is left or `deadline` has passed
/// (no new email starts after it).
pub async fn send_due(
    pool: &PgPool,
    sql: &Arc<Statements>,
    mail: &MailConfig,
    retention: RetentionDays,
    deadline: Instant,
) -> Result<SendReport, sqlx::Error> {
    let mut report = SendReport::default();
    while Instant::now() < deadline {
        let claimed = claim_due(pool).await?;
        if claimed.is_empty() {
            break;
        }
        let mut sends = JoinSet::new();
        for email in claimed {
            sends.spawn(send(
                pool.clone(),
                Arc::clone(sql),
                mail.clone(),
                retention,
                email,
            ));
        }
        while let Some(delivery) = sends.join_next().await {
            match delivery.unwrap_or(Delivery::Retrying) {
                Delivery::Sent => report.sent += 1,
                Delivery::Retrying => report.retrying += 1,
                Delivery::GaveUp => report.gave_up += 1,
                Delivery::Cancelled => report.cancelled += 1,
            }
        }
    }
    report.remaining_due = count_due(pool).await?;
    Ok(report)
}

/// Claims due rows nobody holds. `SKIP LOCKED` plus the claim time keep two
/// concurrent sweeps from ever taking the same row.
async fn claim_due(pool: &PgPool) -> Result<Vec<PendingEmail>, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let rows: Vec<(Uuid, String, String, i32)> = db::query_as(&format!(
        "update account_deletion.email_outbox o
         set claimed_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
         where o.id in (
             select id from account_deletion.email_outbox
             where {DUE}
             limit $1
             for update skip locked
         )
         returning o.id, o.kind, o.recipient, o.attempts"
    ))
    .bind(SWEEP_BATCH)
    .bind(CLAIM_SECONDS)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, kind, recipient, attempt)| {
            Some(PendingEmail {
                id,
                kind: EmailKind::parse(&kind)?,
                recipient,
                attempt,
                link: None,
            })
        })
        .collect())
}

/// How many emails are due now (what a sweep whose time ran out leaves).
async fn count_due(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let due = db::query_scalar::<i64>(&format!(
        "select count(*) from account_deletion.email_outbox where {DUE}"
    ))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(due as u64)
}
