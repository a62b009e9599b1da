//! `GET /api/status`: whether erasure is keeping up, for an uptime monitor.
//!
//! Auth: `Authorization: Bearer $STATUS_SECRET` (a read-only secret to give
//! a monitor) or `Bearer $CRON_SECRET`, by the cron routes' rules. Answers
//! the figures of [`crate::lifecycle::status`] with 200 when nothing needs a person and
//! 503 when something does, so a monitor that only looks at the status code
//! alarms at the right time.

use http::{Method, StatusCode};
use sqlx::PgPool;

use crate::config::{ConfigErrors, EraseBlocked, OverdueAfter, RetentionDays, StatusConfig};
use crate::lifecycle::status;
use crate::platform::web::{ApiError, Request, Response, json};
use crate::routes::protected::{Opened, Protected};
use crate::routes::schema_refusal;
use crate::schema::sql::AppTables;

#[derive(Clone)]
pub struct Status {
    route: Protected<Ready>,
}

struct Ready {
    pool: PgPool,
    tables: AppTables,
    retention: RetentionDays,
    overdue_after: OverdueAfter,
    erase_blocked: EraseBlocked,
}

/// A monitor reads; the manual `POST` of the crons has no meaning here, but
/// is kept for the monitors that can only send one.
const METHODS: &[Method] = &[Method::GET, Method::POST];

impl Status {
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(StatusConfig::from_env())
    }

    /// The route with a small pool of its own.
    #[must_use]
    pub fn new(config: Result<StatusConfig, ConfigErrors>) -> Self {
        Self::build(config, None)
    }

    /// The route on a pool the host shares between routes.
    #[must_use]
    pub fn with_pool(config: Result<StatusConfig, ConfigErrors>, pool: PgPool) -> Self {
        Self::build(config, Some(pool))
    }

    fn build(config: Result<StatusConfig, ConfigErrors>, pool: Option<PgPool>) -> Self {
        let route = Protected::new(
            "status",
            METHODS,
            config,
            pool,
            |config| (config.database.clone(), 2),
            |config, pool| Opened {
                state: Ready {
                    pool,
                    tables: AppTables::new(config.users, None),
                    retention: config.retention,
                    overdue_after: config.overdue_after,
                    erase_blocked: config.erase_blocked,
                },
                secrets: [Some(config.cron_secret), config.status_secret]
                    .into_iter()
                    .flatten()
                    .collect(),
            },
        );
        Self { route }
    }

    pub async fn handle(&self, request: Request) -> Response {
        self.route.handle(request, Self::respond).await
    }

    async fn respond(ready: &Ready, _request: Request) -> Result<Response, ApiError> {
        // The catalog is read on every call: a restricting key the app added
        // since this instance started must not hide blocked accounts, and a
        // monitor calls this once a minute at most.
        let sql = ready
            .tables
            .reload(&ready.pool)
            .await
            .map_err(|error| schema_refusal("status", error))?;
        let health = status::check(
            &ready.pool,
            &sql,
            ready.retention,
            ready.overdue_after,
            ready.erase_blocked,
        )
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
