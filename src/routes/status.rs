//! `GET /api/status`: whether erasure is keeping up, for an uptime monitor.
//!
//! Auth: `Authorization: Bearer $CRON_SECRET`, as the cron routes. Answers
//! the figures of [`crate::status`] with 200 when nothing needs a person and
//! 503 when something does, so a monitor that only looks at the status code
//! alarms at the right time.

use http::StatusCode;
use sqlx::PgPool;

use crate::config::{ConfigErrors, CronConfig, OverdueAfter, RetentionDays};
use crate::cron_secret::CronSecret;
use crate::routes::{Configured, authorize_cron, schema_refusal};
use crate::sql::AppTables;
use crate::status;
use crate::web::{ApiError, Request, Response, json};

#[derive(Clone)]
pub struct Status {
    state: Configured<Ready>,
}

struct Ready {
    pool: PgPool,
    tables: AppTables,
    secret: CronSecret,
    retention: RetentionDays,
    overdue_after: OverdueAfter,
}

impl Status {
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(CronConfig::from_env())
    }

    /// The route with a small pool of its own.
    #[must_use]
    pub fn new(config: Result<CronConfig, ConfigErrors>) -> Self {
        let pool = config
            .as_ref()
            .ok()
            .map(|config| crate::db::lazy_pool(config.database.clone(), 2));
        Self::build(config, pool)
    }

    /// The route on a pool the host shares between routes.
    #[must_use]
    pub fn with_pool(config: Result<CronConfig, ConfigErrors>, pool: PgPool) -> Self {
        Self::build(config, Some(pool))
    }

    fn build(config: Result<CronConfig, ConfigErrors>, pool: Option<PgPool>) -> Self {
        let state = config.map(|config| Ready {
            pool: pool.expect("a pool accompanies every valid configuration"),
            tables: AppTables::new(config.users, None),
            secret: config.cron_secret,
            retention: config.retention,
            overdue_after: config.purge.overdue_after,
        });
        Self {
            state: Configured::new("status", state),
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
        // The catalog is read on every call: a restricting key the app added
        // since this instance started must not hide blocked accounts, and a
        // monitor calls this once a minute at most.
        let sql = ready
            .tables
            .reload(&ready.pool)
            .await
            .map_err(|error| schema_refusal("status", error))?;
        let health = status::check(&ready.pool, &sql, ready.retention, ready.overdue_after)
            .await
            .map_err(ApiError::from_database)?;
        if !health.ok {
            tracing::warn!(problems = ?health.problems, "status: erasure needs a person");
        }
        let code = if health.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        Ok(json(code, &health))
    }
}
