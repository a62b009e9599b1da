//! The purge cron: `CRON_SECRET`, its pacing, what blocks an erasure, how
//! long each of our tables keeps its rows.

use std::num::NonZeroU32;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::platform::bearer_secret::BearerSecret;
use crate::platform::webhook::Webhook;
use crate::schema::UsersTable;

use super::{ConfigErrors, Env, RetentionDays, bounded_u32, parse_bool};

/// How the purge paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeSettings {
    /// The most users one transaction deletes.
    pub batch_size: NonZeroU32,
    /// How long a batch should take (it holds its rows locked that long);
    /// each worker sizes its next batch from the last one's pace. `None`:
    /// every batch is `batch_size`.
    pub batch_target: Option<Duration>,
    /// After this long no new batch starts; the run answers `partial` and the
    /// next run continues. Well inside the function's `maxDuration`.
    pub time_budget: Duration,
    /// Batches in flight at once, each on its own connection.
    pub workers: NonZeroU32,
    /// `OVERDUE_AFTER_HOURS`: an account still present this long after its
    /// retention ended is overdue.
    pub overdue_after: OverdueAfter,
    /// `ERASE_BLOCKED`: what becomes of an expired account that rows
    /// without a delete action still reference.
    pub erase_blocked: EraseBlocked,
    /// What a run prunes when it ends (tombstones, the history of erased
    /// accounts, the ledger), and when.
    pub keep: Keep,
}

/// `ERASE_BLOCKED`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EraseBlocked {
    /// It stays, counted as blocked, until nothing references it.
    #[default]
    Wait,
    /// It is anonymized: the person erased, the row kept for the records
    /// that reference it, and deleted once nothing does.
    Anonymize,
}

impl EraseBlocked {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "wait" => Ok(Self::Wait),
            "anonymize" => Ok(Self::Anonymize),
            _ => Err(format!("expected wait or anonymize, got {raw:?}")),
        }
    }
}

/// How long this service keeps what it no longer needs, in days
/// (`KEEP_*_DAYS`): every table of ours has a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Emails sent (or superseded, or cancelled) and events delivered
    /// (`KEEP_DELIVERED_DAYS`, default 30), for support's questions. A
    /// link's email stays at least until its deletion's grace period ends.
    pub delivered_days: u16,
    /// Emails and events given up on (`KEEP_FAILED_DAYS`, default 30): an
    /// email's row holds its recipient's address, which has no other reason
    /// to stay; the status route reports them for its last 7 days.
    pub failed_days: u16,
    /// Tombstones, and with them the history of erased accounts
    /// (`KEEP_TOMBSTONES_DAYS`, default 400): longer than the backups of
    /// common hosts, so that a restored backup can be re-erased.
    pub tombstone_days: u16,
    /// The purge's ledger (`KEEP_PURGE_RUNS_DAYS`, default 400).
    pub purge_runs_days: u16,
    /// Expired rows of our own `sessions` table (`KEEP_EXPIRED_SESSIONS_DAYS`,
    /// default 30); an app's own session table is the app's.
    pub expired_sessions_days: u16,
}

impl Default for Keep {
    fn default() -> Self {
        Self {
            delivered_days: 30,
            failed_days: 30,
            tombstone_days: 400,
            purge_runs_days: 400,
            expired_sessions_days: 30,
        }
    }
}

impl Default for PurgeSettings {
    fn default() -> Self {
        Self {
            batch_size: NonZeroU32::new(1000).expect("non-zero"),
            // Measured (BENCHMARKS.md): batches aimed at 20 ms stay under
            // 50 ms at the 99th percentile, with two workers sharing two
            // cores, and cost little throughput to their commits.
            batch_target: Some(Duration::from_millis(20)),
            time_budget: Duration::from_secs(240),
            // Measured (BENCHMARKS.md): on a 2-core database two workers
            // purge faster than one `DELETE` statement, with batch latency
            // and concurrent traffic within target; four gain nothing more.
            workers: NonZeroU32::new(2).expect("non-zero"),
            overdue_after: OverdueAfter::DEFAULT,
            erase_blocked: EraseBlocked::Wait,
            keep: Keep::default(),
        }
    }
}

/// What the cron route needs.
#[derive(Debug, Clone)]
pub struct CronConfig {
    pub database: PgConnectOptions,
    pub users: UsersTable,
    pub cron_secret: BearerSecret,
    pub retention: RetentionDays,
    pub purge: PurgeSettings,
    /// Where account events go (`WEBHOOK_URL`); `None`: none are recorded.
    pub webhook: Option<Webhook>,
    /// `SEND_ERASED_EMAIL`: the purge queues a last "your account has been
    /// erased" email (sent by the email cron). Off by default.
    pub erased_email: bool,
}

impl CronConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(lookup);
        let database = env.database_url();
        let users = env.users_table();
        let cron_secret = env.required("CRON_SECRET", BearerSecret::parse);
        let retention = env.retention_days();
        let purge = env.purge_settings();
        let webhook = env.webhook();
        let erased_email = env.optional("SEND_ERASED_EMAIL", false, parse_bool);
        env.finish()?;
        Ok(Self {
            database: database.expect("checked by finish"),
            users: users.expect("checked by finish"),
            cron_secret: cron_secret.expect("checked by finish"),
            retention: retention.expect("checked by finish"),
            purge: purge.expect("checked by finish"),
            webhook: webhook.expect("checked by finish"),
            erased_email: erased_email.expect("checked by finish"),
        })
    }
}

/// One purge interval: an account still present this long after its
/// retention ended is overdue, and a purge that has not completed for twice
/// this long has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverdueAfter {
    hours: u32,
}

impl OverdueAfter {
    /// The daily cron's interval.
    pub const DEFAULT: Self = Self { hours: 24 };

    #[must_use]
    pub fn hours(self) -> u32 {
        self.hours
    }
}

impl Env<'_> {
    /// `ERASE_BLOCKED`: `wait` (the default) or `anonymize`.
    pub(super) fn erase_blocked(&mut self) -> Option<EraseBlocked> {
        self.optional("ERASE_BLOCKED", EraseBlocked::Wait, EraseBlocked::parse)
    }

    /// `OVERDUE_AFTER_HOURS`: one purge interval, `1..=8760` hours.
    pub(super) fn overdue_after(&mut self) -> Option<OverdueAfter> {
        self.optional("OVERDUE_AFTER_HOURS", OverdueAfter::DEFAULT, |raw| {
            bounded_u32(raw, 1, 8760).map(|hours| OverdueAfter { hours })
        })
    }

    pub(super) fn keep(&mut self) -> Option<Keep> {
        let defaults = Keep::default();
        let mut days = |name: &'static str, default: u16, min: u32| {
            self.optional(name, default, |raw| {
                bounded_u32(raw, min, 3650).map(|days| days as u16)
            })
        };
        let delivered_days = days("KEEP_DELIVERED_DAYS", defaults.delivered_days, 1);
        // The status route counts what was given up in its last 7 days.
        let failed_days = days("KEEP_FAILED_DAYS", defaults.failed_days, 7);
        let tombstone_days = days("KEEP_TOMBSTONES_DAYS", defaults.tombstone_days, 30);
        let purge_runs_days = days("KEEP_PURGE_RUNS_DAYS", defaults.purge_runs_days, 7);
        let expired_sessions_days = days(
            "KEEP_EXPIRED_SESSIONS_DAYS",
            defaults.expired_sessions_days,
            0,
        );
        Some(Keep {
            delivered_days: delivered_days?,
            failed_days: failed_days?,
            tombstone_days: tombstone_days?,
            purge_runs_days: purge_runs_days?,
            expired_sessions_days: expired_sessions_days?,
        })
    }
    pub(super) fn purge_settings(&mut self) -> Option<PurgeSettings> {
        let defaults = PurgeSettings::default();
        let batch_size = self.optional("PURGE_BATCH_SIZE", defaults.batch_size, |raw| {
            bounded_u32(raw, 1, 10_000).map(|n| NonZeroU32::new(n).expect("at least 1"))
        });
        let batch_target = self.optional("PURGE_BATCH_TARGET_MS", defaults.batch_target, |raw| {
            // 0 turns sizing off: every batch is PURGE_BATCH_SIZE.
            bounded_u32(raw, 0, 10_000)
                .map(|ms| (ms > 0).then(|| Duration::from_millis(u64::from(ms))))
        });
        let time_budget = self.optional("PURGE_TIME_BUDGET_SECS", defaults.time_budget, |raw| {
            // Pro functions run at most 800 s; the budget must leave room for
            // the last batch and the answer.
            bounded_u32(raw, 1, 780).map(|s| Duration::from_secs(u64::from(s)))
        });
        let workers = self.optional("PURGE_WORKERS", defaults.workers, |raw| {
            bounded_u32(raw, 1, 16).map(|n| NonZeroU32::new(n).expect("at least 1"))
        });
        let overdue_after = self.overdue_after();
        let erase_blocked = self.erase_blocked();
        let keep = self.keep();
        Some(PurgeSettings {
            batch_size: batch_size?,
            batch_target: batch_target?,
            time_budget: time_budget?,
            workers: workers?,
            overdue_after: overdue_after?,
            erase_blocked: erase_blocked?,
            keep: keep?,
        })
    }
}
