//! Where email and events go: `MAIL_URL`, `MAIL_FROM`, `APP_URL`,
//! `WEBHOOK_URL`, and the email cron.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use lettre::message::Mailbox;

use crate::platform::app_url::AppUrl;
use crate::platform::bearer_secret::BearerSecret;
use crate::platform::mail::{MailUrl, Mailer};
use crate::platform::webhook::{Webhook, WebhookSecrets, WebhookUrl};
use crate::schema::UsersTable;

use super::{ConfigError, ConfigErrors, Env, Keep, RetentionDays, bounded_u32};

/// Email settings: `MAIL_URL`, `MAIL_FROM`, and `APP_URL` for links.
#[derive(Clone)]
pub struct MailConfig {
    pub mailer: Mailer,
    pub app_url: AppUrl,
}

impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("from", &self.mailer.from.email.domain())
            .field("app_url", &self.app_url)
            .finish_non_exhaustive()
    }
}

/// What the email cron route (retries and reminders) needs.
#[derive(Debug, Clone)]
pub struct EmailCronConfig {
    pub database: PgConnectOptions,
    pub users: UsersTable,
    pub cron_secret: BearerSecret,
    pub retention: RetentionDays,
    pub mail: MailConfig,
    /// Days before the purge the reminder goes out; 0 sends none.
    pub reminder_days: u16,
    /// No new email starts sending after this long.
    pub time_budget: Duration,
    /// Where account events go; the sweep retries them too.
    pub webhook: Option<Webhook>,
    /// What the sweep prunes, and when.
    pub keep: Keep,
}

impl EmailCronConfig {
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(lookup);
        let database = env.database_url();
        let users = env.users_table();
        let cron_secret = env.required("CRON_SECRET", BearerSecret::parse);
        let retention = env.retention_days();
        let mail = env.mail();
        let reminder_days = env.optional("REMINDER_DAYS_BEFORE", 3, |raw| {
            bounded_u32(raw, 0, 3649).map(|d| d as u16)
        });
        let time_budget = env.optional("EMAIL_TIME_BUDGET_SECS", Duration::from_secs(240), |raw| {
            bounded_u32(raw, 1, 780).map(|s| Duration::from_secs(u64::from(s)))
        });
        let webhook = env.webhook();
        let keep = env.keep();
        env.finish()?;
        Ok(Self {
            database: database.expect("checked by finish"),
            users: users.expect("checked by finish"),
            cron_secret: cron_secret.expect("checked by finish"),
            retention: retention.expect("checked by finish"),
            mail: mail.expect("checked by finish"),
            reminder_days: reminder_days.expect("checked by finish"),
            keep: keep.expect("checked by finish"),
            time_budget: time_budget.expect("checked by finish"),
            webhook: webhook.expect("checked by finish"),
        })
    }
}

impl Env<'_> {
    pub(super) fn mail(&mut self) -> Option<MailConfig> {
        let url = self.required("MAIL_URL", MailUrl::parse);
        let from = self.required("MAIL_FROM", |raw| {
            raw.trim()
                .parse::<Mailbox>()
                .map_err(|_| "expected an address like \"App <no-reply@example.com>\"".to_owned())
        });
        let app_url = self.required("APP_URL", AppUrl::parse);
        let (url, from, app_url) = (url?, from?, app_url?);
        match Mailer::new(&url, from) {
            Ok(mailer) => Some(MailConfig { mailer, app_url }),
            Err(reason) => {
                self.errors.push(ConfigError::Invalid {
                    name: "MAIL_URL",
                    reason,
                });
                None
            }
        }
    }

    /// `WEBHOOK_URL` and `WEBHOOK_SECRET`; `Some(None)` when no webhook is
    /// configured (a secret alone is ignored: it may be set for every
    /// environment while only some send events).
    // The outer `None` is every `Env` reader's "an error was recorded".
    #[allow(clippy::option_option)]
    pub(super) fn webhook(&mut self) -> Option<Option<Webhook>> {
        let url = self.optional("WEBHOOK_URL", None, |raw| {
            if raw.trim().is_empty() {
                Ok(None)
            } else {
                WebhookUrl::parse(raw).map(Some)
            }
        })?;
        let Some(url) = url else {
            return Some(None);
        };
        let secrets = self.required("WEBHOOK_SECRET", WebhookSecrets::parse)?;
        Some(Some(Webhook { url, secrets }))
    }
}
