//! `GET|POST /api/cron/send-emails`: the outbox sweep. Queues reminders that
//! are due and sends every email whose first attempt failed or never
//! happened, and, with a webhook, every account event still due, both
//! within the time budget. Vercel Cron calls it; auth is `Authorization:
//! Bearer $CRON_SECRET`.

use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;
use sqlx::PgPool;

use crate::config::{ConfigErrors, EmailCronConfig, Keep, MailConfig, RetentionDays};
use crate::delivery::events::{self, EventSweepReport};
use crate::lifecycle::{email_sweep, prune};
use crate::platform::web::{ApiError, Request, Response, json};
use crate::platform::webhook::Webhook;
use crate::routes::protected::{CRON_METHODS, Opened, Protected};
use crate::routes::statements;
use crate::schema::sql::AppTables;

#[derive(Clone)]
pub struct SendEmails {
    route: Protected<Ready>,
}

struct Ready {
    pool: PgPool,
    tables: AppTables,
    retention: RetentionDays,
    mail: MailConfig,
    reminder_days: u16,
    time_budget: std::time::Duration,
    webhook: Option<Arc<Webhook>>,
    keep: Keep,
    /// The users table is the default one: the `sessions` next to it may
    /// be ours to prune ([`prune::deliveries`] checks).
    default_users: bool,
}

/// The answer: the email sweep's figures, and the events' under `events`.
#[derive(Serialize)]
struct Swept {
    #[serde(flatten)]
    emails: email_sweep::SweepReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<EventSweepReport>,
}

impl SendEmails {
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(EmailCronConfig::from_env())
    }

    /// The route with a pool of its own, sized for one function instance.
    #[must_use]
    pub fn new(config: Result<EmailCronConfig, ConfigErrors>) -> Self {
        Self::build(config, None)
    }

    /// The route on a pool the host shares between routes (the dev server's
    /// embedded database takes a single connection).
    #[must_use]
    pub fn with_pool(config: Result<EmailCronConfig, ConfigErrors>, pool: PgPool) -> Self {
        Self::build(config, Some(pool))
    }

    fn build(config: Result<EmailCronConfig, ConfigErrors>, pool: Option<PgPool>) -> Self {
        let route = Protected::new(
            "send-emails",
            CRON_METHODS,
            config,
            pool,
            // A round of sends, concurrently, and the book-keeping.
            |config| (config.database.clone(), 12),
            |config, pool| Opened {
                state: Ready {
                    pool,
                    default_users: config.users.is_default(),
                    keep: config.keep,
                    tables: AppTables::new(config.users, None),
                    retention: config.retention,
                    mail: config.mail,
                    reminder_days: config.reminder_days,
                    time_budget: config.time_budget,
                    webhook: config.webhook.map(Arc::new),
                },
                secrets: vec![config.cron_secret],
            },
        );
        Self { route }
    }

    pub async fn handle(&self, request: Request) -> Response {
        self.route.handle(request, Self::respond).await
    }

    async fn respond(ready: &Ready, _request: Request) -> Result<Response, ApiError> {
        let sql = statements("send-emails", &ready.tables, &ready.pool).await?;
        // Side by side: a slow mail server does not hold up the events, nor
        // a slow receiver the emails.
        let emails = email_sweep::sweep(
            &ready.pool,
            &sql,
            &ready.mail,
            ready.retention,
            ready.reminder_days,
            ready.time_budget,
        );
        let events = async {
            let webhook = ready.webhook.as_ref()?;
            events::sweep(&ready.pool, webhook, ready.time_budget).await
        };
        let (emails, events) = tokio::join!(emails, events);
        let mut emails = emails.map_err(ApiError::from_database)?;
        emails.pruned = prune::deliveries(
            &ready.pool,
            ready.keep,
            ready.retention,
            ready.default_users,
        )
        .await;
        Ok(json(StatusCode::OK, &Swept { emails, events }))
    }
}
