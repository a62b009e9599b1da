//! Support: the admin route (`ADMIN_SECRET`) and `cargo dev account`.

use sqlx::postgres::PgConnectOptions;

use super::ExcludedColumns;
use crate::platform::bearer_secret::BearerSecret;
use crate::platform::webhook::Webhook;
use crate::schema::UsersTable;

use super::{ConfigError, ConfigErrors, Env, EraseBlocked, MailConfig, RetentionDays, parse_bool};

/// What support's actions need (the admin route, and `cargo dev account`
/// for an operator with database access): the account functions' settings
/// for mail and events, and the purge's for erasing one account now.
#[derive(Debug, Clone)]
pub struct SupportConfig {
    pub database: PgConnectOptions,
    pub users: UsersTable,
    pub retention: RetentionDays,
    pub mail: MailConfig,
    /// Where account events go (`WEBHOOK_URL`); `None`: none are recorded.
    pub webhook: Option<Webhook>,
    /// `SEND_ERASED_EMAIL`, as the purge reads it: erasing now sends it too.
    pub erased_email: bool,
    /// `ERASE_BLOCKED`, as the purge reads it: erasing now a blocked
    /// account anonymizes it under `anonymize`.
    pub erase_blocked: EraseBlocked,
    /// `EXPORT_EXCLUDE_COLUMNS`, as the export route reads it.
    pub export_exclude: ExcludedColumns,
}

impl SupportConfig {
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(lookup);
        let support = env.support();
        env.finish()?;
        Ok(support.expect("checked by finish"))
    }
}

/// What the admin route needs: support's settings and `ADMIN_SECRET`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub support: SupportConfig,
    pub admin_secret: BearerSecret,
}

impl AdminConfig {
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// `ADMIN_SECRET` follows the cron secret's rules, with at least 32
    /// characters, and must be neither `CRON_SECRET` (whoever can start a
    /// purge must not also be able to erase or restore any one account) nor
    /// `STATUS_SECRET` (which is handed to an uptime monitor).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(lookup);
        let support = env.support();
        let admin_secret = env.required("ADMIN_SECRET", BearerSecret::parse_admin);
        for other in ["CRON_SECRET", "STATUS_SECRET"] {
            let other_secret = lookup(other).and_then(|raw| BearerSecret::parse(&raw).ok());
            if let (Some(admin), Some(other_secret)) = (&admin_secret, &other_secret)
                && admin.same_as(other_secret)
            {
                env.errors.push(ConfigError::Invalid {
                    name: "ADMIN_SECRET",
                    reason: format!(
                        "is the same as {other}; give the admin route a secret of its own"
                    ),
                });
            }
        }
        env.finish()?;
        Ok(Self {
            support: support.expect("checked by finish"),
            admin_secret: admin_secret.expect("checked by finish"),
        })
    }
}

impl Env<'_> {
    pub(super) fn support(&mut self) -> Option<SupportConfig> {
        let database = self.database_url();
        let users = self.users_table();
        let retention = self.retention_days();
        let mail = self.mail();
        let webhook = self.webhook();
        let erased_email = self.optional("SEND_ERASED_EMAIL", false, parse_bool);
        let erase_blocked = self.erase_blocked();
        let export_exclude = self.export_exclude();
        Some(SupportConfig {
            database: database?,
            users: users?,
            retention: retention?,
            mail: mail?,
            webhook: webhook?,
            erased_email: erased_email?,
            erase_blocked: erase_blocked?,
            export_exclude: export_exclude?,
        })
    }
}
