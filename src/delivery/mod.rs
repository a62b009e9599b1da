//! The rules both outboxes (emails, webhook events) deliver by: a sender
//! claims a row for a while, a failed attempt is retried with exponential
//! backoff, and after a number of attempts the row is given up on and the
//! status route says so.
//!
//! The two outboxes: [`outbox`] (emails, their texts in [`email_texts`])
//! and [`events`] (the webhook's account events). Their rows are written
//! by the functions here, called by the lifecycle inside the transaction
//! of the change they report; sending and retrying happen here too.
//!
//! It may import `platform`, `schema` and `config`; never the lifecycle or
//! the routes.

pub mod email_texts;
pub mod events;
pub mod outbox;

use sqlx::PgPool;
use uuid::Uuid;

use crate::platform::db::{self, Limits};

/// How long a sender holds a row before another may take it over: well past
/// the SMTP and webhook timeouts.
pub(crate) const CLAIM_SECONDS: f64 = 120.0;

/// After this many failed attempts a row is given up on (`failed`).
pub(crate) const MAX_ATTEMPTS: i32 = 8;

/// When the next attempt of a row that has had `attempts` is due: 1, 2, 4 …
/// minutes after the failure, at most 6 hours. Retries happen when a sweep
/// runs (the daily cron, or a manual call), so that is the least wait.
pub(crate) const NEXT_ATTEMPT_AT: &str = "now() + least(make_interval(mins => power(2, greatest(attempts - 1, 0))::int), interval '6 hours')";

/// The rows a sender may take now: pending, due, and held by nobody (a
/// claim that ran out holds nothing).
pub(crate) const DUE: &str = "status = 'pending' and next_attempt_at <= now()
    and (claimed_until is null or claimed_until < now())";

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Failed; will be retried after a backoff.
    Retrying,
    /// Failed for the last time.
    GaveUp,
    /// No longer worth sending (account restored, purged or expired).
    Cancelled,
}

/// Records a failed attempt with an outbox's own statement (`$1` the row,
/// `$2` the error class, `$3` [`MAX_ATTEMPTS`]; it releases the claim,
/// schedules the next attempt and returns the row's new status), and says
/// what the attempt came to. If even that fails, the claim runs out on its
/// own and the row is retried then.
pub(crate) async fn record_failure(
    pool: &PgPool,
    statement: &str,
    id: Uuid,
    class: &str,
) -> Delivery {
    let recorded: Result<Option<String>, sqlx::Error> = async {
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let status = db::query_scalar(statement)
            .bind(id)
            .bind(class)
            .bind(MAX_ATTEMPTS)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(status)
    }
    .await;
    match recorded {
        Ok(Some(status)) if status == "failed" => Delivery::GaveUp,
        Ok(_) => Delivery::Retrying,
        Err(error) => {
            tracing::warn!(row = %id, error = %error, "could not record a failed delivery attempt");
            Delivery::Retrying
        }
    }
}
