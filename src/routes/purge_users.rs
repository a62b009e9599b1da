//! `GET|POST /api/cron/permanent-delete-users`: the daily permanent purge.
//!
//! Vercel Cron calls it with GET and `Authorization: Bearer $CRON_SECRET`;
//! operators may POST by hand. `?dry_run=true` only counts.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use sqlx::PgPool;

use crate::config::{ConfigErrors, CronConfig, EraseBlocked, PurgeSettings, RetentionDays};
use crate::delivery::events::{self, EventSweepReport};
use crate::lifecycle::purge::{self, PurgeOutcome};
use crate::platform::time::rfc3339;
use crate::platform::web::{ApiError, Request, Response, json};
use crate::platform::webhook::Webhook;
use crate::routes::protected::{CRON_METHODS, Opened, Protected};
use crate::routes::statements;
use crate::schema::sql::{AppTables, Records};

/// The route, built once per process.
#[derive(Clone)]
pub struct PurgeUsers {
    route: Protected<Ready>,
}

struct Ready {
    pool: PgPool,
    tables: AppTables,
    retention: RetentionDays,
    settings: PurgeSettings,
    webhook: Option<Arc<Webhook>>,
}

/// After a run, its events are sent in what is left of the run's time
/// budget, but for at least the first and at most the second of these (the
/// default budget leaves 60 s of the function's `maxDuration`, a budget
/// set to Pro's longest 20 s); what is left goes with the next sweep.
const EVENTS_BUDGET: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(30));

impl PurgeUsers {
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(CronConfig::from_env())
    }

    /// The route with a pool of its own, sized for one function instance.
    #[must_use]
    pub fn new(config: Result<CronConfig, ConfigErrors>) -> Self {
        Self::build(config, None)
    }

    /// The route on a pool the host shares between routes (the dev server's
    /// embedded database takes a single connection).
    #[must_use]
    pub fn with_pool(config: Result<CronConfig, ConfigErrors>, pool: PgPool) -> Self {
        Self::build(config, Some(pool))
    }

    fn build(config: Result<CronConfig, ConfigErrors>, pool: Option<PgPool>) -> Self {
        let route = Protected::new(
            "purge-users",
            CRON_METHODS,
            config,
            pool,
            // One connection per batch worker, and one for the ledger.
            |config| (config.database.clone(), config.purge.workers.get() + 1),
            |config, pool| Opened {
                state: Ready {
                    pool,
                    tables: AppTables::new(config.users, None)
                        .recording(Records {
                            events: config.webhook.is_some(),
                            erased_email: config.erased_email,
                        })
                        .anonymizing(config.purge.erase_blocked == EraseBlocked::Anonymize),
                    retention: config.retention,
                    settings: config.purge,
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

    async fn respond(ready: &Ready, request: Request) -> Result<Response, ApiError> {
        let dry_run = dry_run(request.uri().query())?;
        // Checked here, so that tables that do not match the configuration
        // answer like any other bad setting.
        statements("purge-users", &ready.tables, &ready.pool).await?;
        let outcome = purge::run(
            &ready.pool,
            &ready.tables,
            ready.retention,
            ready.settings,
            dry_run,
        )
        .await
        .map_err(|error| match error {
            purge::PurgeError::Database(error) => ApiError::from_database(error),
            purge::PurgeError::Schema(error) => {
                tracing::error!(problem = %error, "the app's tables no longer match the configuration");
                ApiError::ServerMisconfigured
            }
        })?;
        let mut body = PurgeBody::from(&outcome);
        if let (Some(webhook), false) = (&ready.webhook, dry_run) {
            let budget = events_budget(&ready.settings, &outcome);
            body.events = events::sweep(&ready.pool, webhook, budget).await;
        }
        Ok(json(StatusCode::OK, &body))
    }
}

fn events_budget(settings: &PurgeSettings, outcome: &PurgeOutcome) -> Duration {
    let (least, most) = EVENTS_BUDGET;
    settings
        .time_budget
        .saturating_sub(outcome.duration)
        .clamp(least, most)
}

fn dry_run(query: Option<&str>) -> Result<bool, ApiError> {
    let mut dry_run = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "dry_run" {
            match value.as_ref() {
                "true" | "1" => dry_run = true,
                "false" | "0" => {}
                _ => {
                    return Err(ApiError::BadRequest {
                        code: "invalid_dry_run",
                        message: "dry_run must be true, 1, false or 0.",
                    });
                }
            }
        }
    }
    Ok(dry_run)
}

/// The contract's answer. Fields may be added, never renamed.
#[derive(Debug, Serialize)]
struct PurgeBody {
    status: &'static str,
    deleted: u64,
    /// Accounts anonymized (`ERASE_BLOCKED=anonymize`; for a dry run, those
    /// it would).
    anonymized: u64,
    remaining: u64,
    /// Expired accounts that foreign keys without a delete action keep.
    blocked: u64,
    /// Those keys, by name.
    blocked_by: Vec<String>,
    /// Expired accounts an operator holds; left alone, not a problem.
    held: u64,
    /// Accounts still present a purge interval (`OVERDUE_AFTER_HOURS`) after
    /// their retention ended, and how long past it the oldest one is.
    overdue: u64,
    oldest_overdue_seconds: Option<i64>,
    dry_run: bool,
    /// For a dry run: how many accounts a real run would delete now.
    #[serde(skip_serializing_if = "Option::is_none")]
    would_delete: Option<u64>,
    cutoff: String,
    batches: u32,
    duration_ms: u64,
    slowest_batch_ms: u64,
    run_id: i64,
    /// Dry runs only: what in the app's schema gets in the purge's way.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    findings: Option<purge::Findings>,
    /// With a webhook: the delivery of this run's events (and any other
    /// that was due).
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<EventSweepReport>,
}

impl From<&PurgeOutcome> for PurgeBody {
    fn from(outcome: &PurgeOutcome) -> Self {
        Self {
            status: outcome.status.as_str(),
            deleted: outcome.deleted,
            anonymized: outcome.anonymized,
            remaining: outcome.remaining,
            blocked: outcome.blocked,
            blocked_by: outcome.blocked_by.clone(),
            held: outcome.held,
            overdue: outcome.overdue.count,
            oldest_overdue_seconds: outcome.overdue.oldest_seconds,
            dry_run: outcome.dry_run,
            would_delete: outcome.dry_run.then_some(outcome.remaining),
            cutoff: rfc3339(outcome.cutoff),
            batches: outcome.batches,
            duration_ms: outcome.duration.as_millis() as u64,
            slowest_batch_ms: outcome.slowest_batch().as_millis() as u64,
            run_id: outcome.run_id,
            findings: outcome.findings.clone(),
            events: None,
        }
    }
}
