//! `GET|POST /api/cron/send-emails`: the outbox sweep. Queues reminders that
//! are due and sends every email whose first attempt failed or never
//! happened. Vercel Cron calls it; auth is `Authorization: Bearer $CRON_SECRET`.

use http::StatusCode;
use sqlx::PgPool;

use crate::config::{ConfigErrors, EmailCronConfig, MailConfig, RetentionDays};
use crate::cron_secret::CronSecret;
use crate::outbox;
use crate::routes::{Configured, authorize_cron};
use crate::web::{ApiError, Request, Response, json};

#[derive(Clone)]
pub struct SendEmails {
    state: Configured<Ready>,
}

struct Ready {
    pool: PgPool,
    secret: CronSecret,
    retention: RetentionDays,
    mail: MailConfig,
    reminder_days: u16,
    time_budget: std::time::Duration,
}

impl SendEmails {
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(EmailCronConfig::from_env())
    }

    #[must_use]
    pub fn new(config: Result<EmailCronConfig, ConfigErrors>) -> Self {
        let state = config.map(|config| Ready {
            pool: crate::db::lazy_pool(config.database, 12),
            secret: config.cron_secret,
            retention: config.retention,
            mail: config.mail,
            reminder_days: config.reminder_days,
            time_budget: config.time_budget,
        });
        Self {
            state: Configured::new("send-emails", state),
        }
    }

    pub async fn handle(&self, request: Request) -> Response {
        self.respond(request)
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    async fn respond(&self, request: Request) -> Result<Response, ApiError> {
        let ready = self.state.ready()?;
        authorize_cron(request.method(), request.headers(), &ready.secret)?;
        let report = outbox::sweep(
            &ready.pool,
            &ready.mail,
            ready.retention,
            ready.reminder_days,
            ready.time_budget,
        )
        .await
        .map_err(ApiError::from_database)?;
        Ok(json(StatusCode::OK, &report))
    }
}
