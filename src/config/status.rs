//! `GET /api/status`: its secrets and what counts as overdue.

use sqlx::postgres::PgConnectOptions;

use crate::platform::bearer_secret::BearerSecret;
use crate::schema::UsersTable;

use super::{ConfigErrors, Env, EraseBlocked, OverdueAfter, RetentionDays};

/// What the status route needs: the cron secret, or a read-only
/// `STATUS_SECRET` for an uptime monitor (which must not be able to start a
/// purge), and the figures' settings.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    pub database: PgConnectOptions,
    pub users: UsersTable,
    pub cron_secret: BearerSecret,
    /// `STATUS_SECRET`: opens the status route and nothing else.
    pub status_secret: Option<BearerSecret>,
    pub retention: RetentionDays,
    pub overdue_after: OverdueAfter,
    /// Under `anonymize`, a blocked account is not a problem: the purge
    /// anonymizes it.
    pub erase_blocked: EraseBlocked,
}

impl StatusConfig {
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(lookup);
        let database = env.database_url();
        let users = env.users_table();
        let cron_secret = env.required("CRON_SECRET", BearerSecret::parse);
        let status_secret = env.optional("STATUS_SECRET", None, |raw| {
            BearerSecret::parse(raw).map(Some)
        });
        let retention = env.retention_days();
        let overdue_after = env.overdue_after();
        let erase_blocked = env.erase_blocked();
        env.finish()?;
        Ok(Self {
            database: database.expect("checked by finish"),
            users: users.expect("checked by finish"),
            cron_secret: cron_secret.expect("checked by finish"),
            status_secret: status_secret.expect("checked by finish"),
            retention: retention.expect("checked by finish"),
            overdue_after: overdue_after.expect("checked by finish"),
            erase_blocked: erase_blocked.expect("checked by finish"),
        })
    }
}
