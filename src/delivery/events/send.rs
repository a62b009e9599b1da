//! Sending the webhook's events: one attempt at a time (right after the
//! change, by the request or run that made it), and the sweep that retries
//! what is due; a row is marked sent only after a 2xx answer.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{EventType, PendingEvent};
use crate::delivery::{self, CLAIM_SECONDS, DUE, Delivery, NEXT_ATTEMPT_AT};
use crate::platform::db::{self, Limits, Statement};
use crate::platform::http_client::{self, Timeouts};
use crate::platform::webhook::Webhook;

/// Events claimed per round of the sweep, sent concurrently.
const SWEEP_BATCH: i64 = 32;

/// One attempt's deadlines. A receiver should answer at once and do its
/// work afterwards; one that takes longer than this counts as failed.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(3),
    total: Duration::from_secs(10),
};

/// The one client, built on first use: its connections to the receiver are
/// kept and reused by every later event of the instance.
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| http_client::client(TIMEOUTS));

/// Sends one claimed event and records the result (the request that made
/// the change sends its event this way). Never fails: errors are recorded
/// on the row (and retried) and logged, by class and receiver host only.
pub async fn send(pool: PgPool, webhook: Arc<Webhook>, event: PendingEvent) -> Delivery {
    let started = Instant::now();
    let delivery = match attempt(&pool, &webhook, &event, TIMEOUTS.total).await {
        Ok(()) => match mark_sent(&pool, &[event.id]).await {
            Ok(()) => Delivery::Sent,
            Err(error) => {
                // The claim runs out and the event goes again: a duplicate
                // with the same webhook-id.
                tracing::warn!(event_id = %event.id, error = %error, "could not record a delivered event");
                Delivery::Retrying
            }
        },
        Err(failed) => failed,
    };
    tracing::info!(
        event_id = %event.id,
        event = event.kind.as_str(),
        attempt = event.attempt,
        outcome = ?delivery,
        duration_ms = started.elapsed().as_millis() as u64,
        "webhook"
    );
    delivery
}

/// One attempt. `Ok`: the receiver took it (the caller records that);
/// `Err`: it failed, and the failure is logged and recorded here.
async fn attempt(
    pool: &PgPool,
    webhook: &Webhook,
    event: &PendingEvent,
    deadline: Duration,
) -> Result<(), Delivery> {
    let Err(class) = post(webhook, event, deadline).await else {
        return Ok(());
    };
    if class == "timeout" && deadline < TIMEOUTS.total {
        // Cut short by the sweep's budget, not timed out by the receiver:
        // not counted as an attempt, due again at once.
        tracing::info!(event_id = %event.id, receiver = webhook.url.host(), "webhook attempt cut at the sweep's budget");
        return Err(release(pool, event.id).await);
    }
    tracing::warn!(
        event_id = %event.id,
        event = event.kind.as_str(),
        attempt = event.attempt,
        receiver = webhook.url.host(),
        error = class,
        "webhook attempt failed"
    );
    Err(delivery::record_failure(pool, &RECORD_FAILURE, event.id, &class).await)
}

/// Gives a claimed event back, its attempt uncounted: one message, run as
/// its own transaction, so it works through a transaction pooler too.
async fn release(pool: &PgPool, id: Uuid) -> Delivery {
    let released = async {
        RELEASE
            .execute(&mut *pool.acquire().await?, &Limits::CRON, &[id.into()])
            .await
    }
    .await;
    if let Err(error) = released {
        // The claim runs out on its own; the event goes again then.
        tracing::warn!(event_id = %id, error = %error, "could not release a webhook event");
    }
    Delivery::Retrying
}

static RELEASE: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "update account_deletion.webhook_events
         set claimed_until = null, attempts = attempts - 1, next_attempt_at = now()
         where id = $1 and status = 'pending'",
    )
});

/// One POST; `Err` carries a short class for the row and the log.
async fn post(webhook: &Webhook, event: &PendingEvent, deadline: Duration) -> Result<(), String> {
    let id = event.webhook_id();
    let body = event.body();
    let timestamp = Utc::now().timestamp();
    let signature = webhook.secrets.sign(&id, timestamp, &body);
    let response = CLIENT
        .post(webhook.url.as_str())
        .timeout(deadline)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|error| request_error_class(&error))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status_{}", status.as_u16()))
    }
}

fn request_error_class(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    }
    .to_owned()
}

/// Records events as delivered, in one statement however many. Its commit
/// does not wait for the disk: if the server crashed right after, the
/// events would simply go again, with the same webhook-ids.
async fn mark_sent(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = format!(
        "{{{}}}",
        ids.iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    db::retry_while_unavailable("record delivered events", || async {
        MARK_SENT
            .execute(
                &mut *pool.acquire().await?,
                &Limits::CRON,
                &[list.as_str().into()],
            )
            .await
            .map(drop)
    })
    .await
}

static MARK_SENT: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "set local synchronous_commit = off;
         update account_deletion.webhook_events
         set status = 'sent', sent_at = now(), claimed_until = null, last_error = null
         where id = any($1::uuid[])",
    )
});

/// Releases the claim and schedules the next attempt, or gives up.
static RECORD_FAILURE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update account_deletion.webhook_events set
             claimed_until = null,
             last_error = $2,
             next_attempt_at = {NEXT_ATTEMPT_AT},
             status = case when attempts >= $3 then 'failed' else 'pending' end
         where id = $1 and status = 'pending'
         returning status"
    )
});

/// What one sweep of the events did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct EventSweepReport {
    pub sent: u64,
    pub retrying: u64,
    pub gave_up: u64,
    /// Due events left unsent because the time budget ran out.
    pub remaining_due: u64,
}

/// Sends every due event (first attempts whose sender died, retries, and a
/// purge's events) until none is left or `budget` is spent. No attempt
/// outlives the budget: each is cut at what is left of it, so a receiver
/// that hangs costs the sweep its budget and no more.
///
/// `None` when the database failed it: that is logged, and the events stay
/// due for the next sweep (the status route counts them). Every caller has
/// committed its own work by then (a purge, a re-erasure, an email sweep),
/// which a failure here does not undo or turn into an error.
pub async fn sweep(
    pool: &PgPool,
    webhook: &Arc<Webhook>,
    budget: Duration,
) -> Option<EventSweepReport> {
    match sweep_due(pool, webhook, budget).await {
        Ok(report) => Some(report),
        Err(error) => {
            tracing::warn!(error = %error, "the webhook sweep failed; its events stay due");
            None
        }
    }
}

async fn sweep_due(
    pool: &PgPool,
    webhook: &Arc<Webhook>,
    budget: Duration,
) -> Result<EventSweepReport, sqlx::Error> {
    let started = Instant::now();
    let mut report = EventSweepReport::default();
    let mut rounds = 0;
    while let Some(left) = budget.checked_sub(started.elapsed()) {
        // A round that could not give its attempts their whole timeout
        // would only cut them short; the first one goes anyway, so a small
        // budget still sends something.
        if rounds > 0 && left < TIMEOUTS.total {
            break;
        }
        rounds += 1;
        let claimed = claim_due(pool).await?;
        if claimed.is_empty() {
            break;
        }
        let deadline = left.min(TIMEOUTS.total);
        let mut sends = JoinSet::new();
        for event in claimed {
            let (pool, webhook) = (pool.clone(), Arc::clone(webhook));
            sends.spawn(async move {
                tracing::debug!(event_id = %event.id, event = event.kind.as_str(), attempt = event.attempt, "webhook");
                attempt(&pool, &webhook, &event, deadline)
                    .await
                    .map(|()| event.id)
            });
        }
        // The round's deliveries are recorded together: one commit for up
        // to a round's worth of events.
        let mut delivered = Vec::new();
        while let Some(joined) = sends.join_next().await {
            match joined {
                Ok(Ok(id)) => delivered.push(id),
                Ok(Err(Delivery::GaveUp)) => report.gave_up += 1,
                Ok(Err(_)) | Err(_) => report.retrying += 1,
            }
        }
        match mark_sent(pool, &delivered).await {
            Ok(()) => report.sent += delivered.len() as u64,
            Err(error) => {
                tracing::warn!(events = delivered.len(), error = %error, "could not record delivered events");
                report.retrying += delivered.len() as u64;
            }
        }
    }
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    report.remaining_due = db::query_scalar::<i64>(&format!(
        "select count(*) from account_deletion.webhook_events where {DUE}"
    ))
    .fetch_one(&mut *tx)
    .await? as u64;
    tx.commit().await?;
    if report != EventSweepReport::default() {
        tracing::info!(
            sent = report.sent,
            retrying = report.retrying,
            gave_up = report.gave_up,
            remaining_due = report.remaining_due,
            duration_ms = started.elapsed().as_millis() as u64,
            "webhook sweep finished"
        );
    }
    Ok(report)
}

/// Claims due events nobody holds. `SKIP LOCKED` plus the claim time keep
/// two concurrent sweeps from ever taking the same event.
async fn claim_due(pool: &PgPool) -> Result<Vec<PendingEvent>, sqlx::Error> {
    type Row = (
        Uuid,
        String,
        Vec<String>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<String>,
        i32,
    );
    let mut tx = db::begin(pool, &Limits::CRON).await?;
    let claimed: Result<Vec<Row>, sqlx::Error> = db::query_as(&format!(
        "update account_deletion.webhook_events e
         set claimed_until = now() + make_interval(secs => $2), attempts = e.attempts + 1
         where e.id in (
             select id from account_deletion.webhook_events
             where {DUE}
             order by next_attempt_at
             limit $1
             for update skip locked
         )
         returning e.id, e.type, e.user_ids, e.occurred_at, e.purge_after, e.via, e.attempts"
    ))
    .bind(SWEEP_BATCH)
    .bind(CLAIM_SECONDS)
    .fetch_all(&mut *tx)
    .await;
    // A refused claim has locked the rows it picked: let them go before the
    // sweep answers (a dropped transaction is rolled back only when its
    // connection is next used, and through a pooler it keeps its server
    // connection, and the locks, until then).
    let rows = match claimed {
        Ok(rows) => rows,
        Err(error) => {
            let _ = tx.rollback().await;
            return Err(error);
        }
    };
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(id, kind, user_ids, occurred_at, purge_after, via, attempt)| {
                Some(PendingEvent {
                    id,
                    kind: EventType::parse(&kind)?,
                    user_ids,
                    occurred_at,
                    purge_after,
                    via,
                    attempt,
                })
            },
        )
        .collect())
}
