//! Configuration from the environment, parsed once per process into types.
//!
//! Every problem names the variable it is about and never echoes a secret.
//! Parsing goes through a lookup function rather than `std::env` directly so
//! tests can describe an environment without mutating the process's own.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use lettre::message::Mailbox;

use crate::app_url::{AppUrl, SignInUrl};
use crate::auth::{AuthSecrets, HmacSecret, JwksUrl, JwtSettings, KeySource, SessionAuth};
use crate::bearer_secret::BearerSecret;
use crate::cors::AllowedOrigins;
use crate::export::ExcludedColumns;
use crate::mail::{MailUrl, Mailer};
use crate::schema::{AnonymizeColumns, Ident, UsersTable};
use crate::webhook::{Webhook, WebhookSecrets, WebhookUrl};

/// One variable that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl ConfigError {
    /// The environment variable this error is about.
    #[must_use]
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Missing { name } | Self::Invalid { name, .. } => name,
        }
    }
}

/// Every problem found in one pass, so an operator fixes them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The grace period: whole days in `1..=3650`, default 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(u16);

impl RetentionDays {
    pub const DEFAULT: Self = Self(30);
    const RANGE: std::ops::RangeInclusive<u16> = 1..=3650;

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<u16>() {
            Ok(days) if Self::RANGE.contains(&days) => Ok(Self(days)),
            _ => Err(format!(
                "expected a whole number of days from 1 to 3650, got {raw:?}"
            )),
        }
    }

    #[must_use]
    pub fn days(self) -> i32 {
        i32::from(self.0)
    }
}

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

/// What the account routes (delete, recover) need.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub database: PgConnectOptions,
    pub users: UsersTable,
    pub retention: RetentionDays,
    pub mail: MailConfig,
    pub cors: AllowedOrigins,
    /// How the delete route finds the signed-in user.
    pub session_auth: SessionAuth,
    /// Where account events go (`WEBHOOK_URL`); `None`: none are recorded.
    pub webhook: Option<Webhook>,
    /// `APP_SIGN_IN_URL`, default `APP_URL`: the pages' "Sign in" link.
    pub sign_in_url: SignInUrl,
    /// `EXPORT_EXCLUDE_COLUMNS`: columns no archive holds, besides
    /// credentials.
    pub export_exclude: ExcludedColumns,
}

impl AccountConfig {
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut env = Env::new(lookup);
        let database = env.database_url();
        let users = env.users_table();
        let retention = env.retention_days();
        let mail = env.mail();
        let cors = env.optional(
            "CORS_ALLOWED_ORIGINS",
            AllowedOrigins::default(),
            AllowedOrigins::parse,
        );
        let session_auth = env.session_auth();
        let webhook = env.webhook();
        let sign_in_url = env.optional("APP_SIGN_IN_URL", None, |raw| {
            SignInUrl::parse(raw).map(Some)
        });
        let export_exclude = env.export_exclude();
        env.finish()?;
        let mail = mail.expect("checked by finish");
        let sign_in_url = sign_in_url
            .expect("checked by finish")
            .unwrap_or_else(|| SignInUrl::app(&mail.app_url));
        Ok(Self {
            database: database.expect("checked by finish"),
            users: users.expect("checked by finish"),
            retention: retention.expect("checked by finish"),
            mail,
            cors: cors.expect("checked by finish"),
            session_auth: session_auth.expect("checked by finish"),
            webhook: webhook.expect("checked by finish"),
            sign_in_url,
            export_exclude: export_exclude.expect("checked by finish"),
        })
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

/// The users table alone (`SCHEMA_PRESET`, `USERS_*`), for `cargo dev
/// migrate`.
pub fn users_table(lookup: &dyn Fn(&str) -> Option<String>) -> Result<UsersTable, ConfigErrors> {
    let mut env = Env::new(lookup);
    let users = env.users_table();
    env.finish()?;
    Ok(users.expect("checked by finish"))
}

/// Reads variables and collects every problem instead of stopping at the
/// first, so one log line lists all of them.
pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            errors: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// A variable that must be present and parse.
    pub(crate) fn required<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match (self.lookup)(name) {
            None => {
                self.errors.push(ConfigError::Missing { name });
                None
            }
            Some(raw) => self.parse(name, &raw, parse),
        }
    }

    /// A variable with a default used only when it is absent; a present but
    /// bad value is an error, never silently replaced.
    pub(crate) fn optional<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match (self.lookup)(name) {
            None => Some(default),
            Some(raw) => self.parse(name, &raw, parse),
        }
    }

    fn parse<T>(
        &mut self,
        name: &'static str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(raw) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.errors.push(ConfigError::Invalid { name, reason });
                None
            }
        }
    }

    pub(crate) fn support(&mut self) -> Option<SupportConfig> {
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

    pub(crate) fn export_exclude(&mut self) -> Option<ExcludedColumns> {
        self.optional(
            "EXPORT_EXCLUDE_COLUMNS",
            ExcludedColumns::default(),
            ExcludedColumns::parse,
        )
    }

    pub(crate) fn database_url(&mut self) -> Option<PgConnectOptions> {
        self.required("DATABASE_URL", |raw| {
            if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
                return Err("expected a postgres:// or postgresql:// URL".to_owned());
            }
            // The parser's own message may quote the URL, password included.
            PgConnectOptions::from_str(raw)
                .map_err(|_| "not a valid PostgreSQL connection URL".to_owned())
        })
    }

    /// The app's users table: `SCHEMA_PRESET` (`default` or `prisma`), then
    /// each of `USERS_TABLE`, `USERS_ID_COLUMN`, `USERS_EMAIL_COLUMN` and
    /// `USERS_DELETED_AT_COLUMN` that is set overrides it.
    pub(crate) fn users_table(&mut self) -> Option<UsersTable> {
        let preset = self.optional(
            "SCHEMA_PRESET",
            UsersTable::default_names(),
            |raw| match raw.trim() {
                "default" => Ok(UsersTable::default_names()),
                "prisma" => Ok(UsersTable::prisma()),
                _ => Err(format!("expected default or prisma, got {raw:?}")),
            },
        )?;
        let table = self.optional(
            "USERS_TABLE",
            (preset.schema.clone(), preset.name.clone()),
            UsersTable::parse_table,
        );
        let id = self.optional("USERS_ID_COLUMN", preset.id.clone(), Ident::parse);
        let email = self.optional("USERS_EMAIL_COLUMN", preset.email.clone(), Ident::parse);
        let deleted_at = self.optional(
            "USERS_DELETED_AT_COLUMN",
            preset.deleted_at.clone(),
            Ident::parse,
        );
        let anonymize = self.optional(
            "ANONYMIZE_COLUMNS",
            preset.anonymize.clone(),
            AnonymizeColumns::parse,
        );
        let (schema, name) = table?;
        Some(UsersTable {
            schema,
            name,
            id: id?,
            email: email?,
            deleted_at: deleted_at?,
            authjs_verification_tokens: preset.authjs_verification_tokens,
            anonymize: anonymize?,
        })
    }

    /// `SESSION_AUTH`, and the variables its mode needs: `AUTH_SECRET` for
    /// `authjs-jwt`; for `jwt`, exactly one of `JWT_JWKS_URL` and `JWT_SECRET`,
    /// `JWT_ISSUER`, `JWT_AUDIENCE` (or `none`), and optionally
    /// `JWT_AUTHORIZED_PARTIES`.
    pub(crate) fn session_auth(&mut self) -> Option<SessionAuth> {
        #[derive(Clone, Copy)]
        enum Name {
            Sessions,
            AuthjsDatabase,
            AuthjsJwt,
            Jwt,
        }
        let name = self.optional("SESSION_AUTH", Name::Sessions, |raw| match raw.trim() {
            "sessions" => Ok(Name::Sessions),
            "authjs-database" => Ok(Name::AuthjsDatabase),
            "authjs-jwt" => Ok(Name::AuthjsJwt),
            "jwt" => Ok(Name::Jwt),
            _ => Err(format!(
                "expected sessions, authjs-database, authjs-jwt or jwt, got {raw:?}"
            )),
        })?;
        match name {
            Name::Sessions => Some(SessionAuth::Sessions),
            Name::AuthjsDatabase => Some(SessionAuth::AuthjsDatabase),
            Name::AuthjsJwt => self
                .required("AUTH_SECRET", AuthSecrets::parse)
                .map(SessionAuth::AuthjsJwt),
            Name::Jwt => self.jwt_settings().map(SessionAuth::Jwt),
        }
    }

    fn jwt_settings(&mut self) -> Option<JwtSettings> {
        let jwks = self.optional("JWT_JWKS_URL", None, |raw| JwksUrl::parse(raw).map(Some));
        let secret = self.optional("JWT_SECRET", None, |raw| HmacSecret::parse(raw).map(Some));
        let issuer = self.required("JWT_ISSUER", |raw| non_empty(raw, "the tokens' iss"));
        // Required: a token made for another API of the same provider (every
        // Supabase project's tokens say `authenticated`, every Auth0 API has
        // its own identifier) must not delete accounts here. `none` waives it
        // where the provider issues no `aud` (Clerk, which
        // JWT_AUTHORIZED_PARTIES guards instead).
        let audience = self.required("JWT_AUDIENCE", |raw| match raw.trim() {
            "none" => Ok(None),
            _ => non_empty(
                raw,
                "the tokens' aud, or none where the provider issues none (Clerk)",
            )
            .map(Some),
        });
        let authorized_parties = self.optional("JWT_AUTHORIZED_PARTIES", Vec::new(), |raw| {
            let parties: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|party| !party.is_empty())
                .map(str::to_owned)
                .collect();
            if parties.is_empty() {
                Err("expected comma-separated origins, like https://app.example.com".to_owned())
            } else {
                Ok(parties)
            }
        });
        let keys = match (jwks?, secret?) {
            (Some(url), None) => KeySource::Jwks(url),
            (None, Some(secret)) => KeySource::Secret(secret),
            (None, None) => {
                self.errors.push(ConfigError::Invalid {
                    name: "JWT_JWKS_URL",
                    reason: "SESSION_AUTH=jwt needs the provider's keys: set JWT_JWKS_URL, or \
                             JWT_SECRET for an HS256 shared secret"
                        .to_owned(),
                });
                return None;
            }
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason:
                        "JWT_JWKS_URL and JWT_SECRET are both set; keep the one the provider uses"
                            .to_owned(),
                });
                return None;
            }
        };
        Some(JwtSettings {
            keys,
            issuer: issuer?,
            audience: audience?,
            authorized_parties: authorized_parties?,
        })
    }

    pub(crate) fn mail(&mut self) -> Option<MailConfig> {
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
    pub(crate) fn webhook(&mut self) -> Option<Option<Webhook>> {
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

    /// `ERASE_BLOCKED`: `wait` (the default) or `anonymize`.
    pub(crate) fn erase_blocked(&mut self) -> Option<EraseBlocked> {
        self.optional("ERASE_BLOCKED", EraseBlocked::Wait, EraseBlocked::parse)
    }

    /// `OVERDUE_AFTER_HOURS`: one purge interval, `1..=8760` hours.
    pub(crate) fn overdue_after(&mut self) -> Option<OverdueAfter> {
        self.optional("OVERDUE_AFTER_HOURS", OverdueAfter::DEFAULT, |raw| {
            bounded_u32(raw, 1, 8760).map(|hours| OverdueAfter { hours })
        })
    }

    pub(crate) fn keep(&mut self) -> Option<Keep> {
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

    pub(crate) fn retention_days(&mut self) -> Option<RetentionDays> {
        self.optional(
            "RETENTION_DAYS",
            RetentionDays::DEFAULT,
            RetentionDays::parse,
        )
    }

    pub(crate) fn purge_settings(&mut self) -> Option<PurgeSettings> {
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

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" | "" => Ok(false),
        _ => Err(format!("expected true or false, got {raw:?}")),
    }
}

fn non_empty(raw: &str, what: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        Err(format!("expected {what}, got an empty value"))
    } else {
        Ok(value.to_owned())
    }
}

fn bounded_u32(raw: &str, min: u32, max: u32) -> Result<u32, String> {
    match raw.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, got {raw:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://app:pw@localhost:5432/app"),
        ("CRON_SECRET", "0123456789abcdef"),
    ];

    #[test]
    fn a_minimal_environment_gets_the_defaults() {
        let config = CronConfig::from_lookup(&lookup(GOOD)).unwrap();
        assert_eq!(config.retention, RetentionDays::DEFAULT);
        assert_eq!(config.purge, PurgeSettings::default());
    }

    #[test]
    fn every_keep_has_a_default_a_range_and_names_itself_when_out_of_it() {
        let keep = CronConfig::from_lookup(&lookup(GOOD)).unwrap().purge.keep;
        assert_eq!(keep, Keep::default());
        for (name, low, high) in [
            ("KEEP_DELIVERED_DAYS", "0", "3651"),
            // Below the status route's window of given-up deliveries.
            ("KEEP_FAILED_DAYS", "6", "3651"),
            ("KEEP_TOMBSTONES_DAYS", "29", "3651"),
            ("KEEP_PURGE_RUNS_DAYS", "6", "3651"),
            ("KEEP_EXPIRED_SESSIONS_DAYS", "-1", "3651"),
        ] {
            for bad in [low, high, "soon", ""] {
                let mut vars = GOOD.to_vec();
                vars.push((name, bad));
                let errors = CronConfig::from_lookup(&lookup(&vars)).unwrap_err();
                assert_eq!(errors.0.len(), 1, "{name}={bad:?}");
                assert_eq!(errors.0[0].variable(), name);
            }
            let mut vars = GOOD.to_vec();
            vars.push((name, "3650"));
            assert!(CronConfig::from_lookup(&lookup(&vars)).is_ok(), "{name}");
        }
        let mut vars = GOOD.to_vec();
        vars.push(("KEEP_FAILED_DAYS", "90"));
        assert_eq!(
            CronConfig::from_lookup(&lookup(&vars))
                .unwrap()
                .purge
                .keep
                .failed_days,
            90
        );
    }

    #[test]
    fn retention_days_accepts_its_range_and_names_itself_otherwise() {
        for (raw, ok) in [
            ("1", true),
            ("3650", true),
            ("0", false),
            ("3651", false),
            ("-1", false),
            ("30.5", false),
            ("", false),
            ("thirty", false),
        ] {
            let mut vars = GOOD.to_vec();
            vars.push(("RETENTION_DAYS", raw));
            let result = CronConfig::from_lookup(&lookup(&vars));
            match (ok, result) {
                (true, Ok(config)) => assert_eq!(config.retention.days().to_string(), raw),
                (false, Err(errors)) => {
                    assert_eq!(errors.0.len(), 1);
                    assert_eq!(errors.0[0].variable(), "RETENTION_DAYS");
                }
                (ok, result) => panic!("{raw:?}: expected ok={ok}, got {result:?}"),
            }
        }
    }

    #[test]
    fn mail_settings_parse_a_named_sender_and_every_transport() {
        for from in [
            "no-reply@localhost",
            "Account Deletion Dev <no-reply@localhost>",
            "\"App, Inc.\" <a@b.test>",
        ] {
            for url in [
                "smtp://u:p@mail.test:587",
                "smtps://mail.test",
                "file:///tmp/mail",
            ] {
                let mut vars = GOOD.to_vec();
                vars.extend([
                    ("MAIL_FROM", from),
                    ("MAIL_URL", url),
                    ("APP_URL", "https://app.test/"),
                ]);
                let config = AccountConfig::from_lookup(&lookup(&vars));
                assert!(config.is_ok(), "{from} {url}: {:?}", config.err());
            }
        }
    }

    #[test]
    fn every_bad_variable_is_reported_by_name_at_once() {
        let errors = CronConfig::from_lookup(&lookup(&[
            ("DATABASE_URL", "mysql://nope"),
            ("CRON_SECRET", "short"),
            ("PURGE_BATCH_SIZE", "0"),
            ("PURGE_BATCH_TARGET_MS", "fast"),
        ]))
        .unwrap_err();
        let names: Vec<_> = errors.0.iter().map(ConfigError::variable).collect();
        assert_eq!(
            names,
            [
                "DATABASE_URL",
                "CRON_SECRET",
                "PURGE_BATCH_SIZE",
                "PURGE_BATCH_TARGET_MS"
            ]
        );
    }

    #[test]
    fn a_batch_target_of_zero_means_fixed_size_batches() {
        let purge = |target: &str| {
            let mut vars = GOOD.to_vec();
            vars.push(("PURGE_BATCH_TARGET_MS", target));
            CronConfig::from_lookup(&lookup(&vars)).map(|c| c.purge.batch_target)
        };
        assert_eq!(purge("0").unwrap(), None);
        assert_eq!(purge("35").unwrap(), Some(Duration::from_millis(35)));
        assert!(purge("10001").is_err());
        assert_eq!(
            PurgeSettings::default().batch_target,
            Some(Duration::from_millis(20))
        );
    }

    fn account_with(extra: &[(&str, &str)]) -> Result<AccountConfig, ConfigErrors> {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("MAIL_FROM", "no-reply@app.test"),
            ("MAIL_URL", "file:///tmp/mail"),
            ("APP_URL", "https://app.test"),
        ]);
        vars.extend_from_slice(extra);
        AccountConfig::from_lookup(&lookup(&vars))
    }

    fn variables(result: Result<AccountConfig, ConfigErrors>) -> Vec<&'static str> {
        result
            .unwrap_err()
            .0
            .iter()
            .map(ConfigError::variable)
            .collect()
    }

    #[test]
    fn each_token_mode_names_the_variable_it_lacks() {
        assert_eq!(
            variables(account_with(&[("SESSION_AUTH", "authjs-jwt")])),
            ["AUTH_SECRET"]
        );
        assert_eq!(
            variables(account_with(&[("SESSION_AUTH", "jwt")])),
            ["JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL"]
        );
        // The audience is required; `none` waives it explicitly.
        let jwt = [
            ("SESSION_AUTH", "jwt"),
            ("JWT_ISSUER", "https://issuer.test/"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        assert_eq!(variables(account_with(&jwt)), ["JWT_AUDIENCE"]);
        let waived = account_with(&[jwt.as_slice(), &[("JWT_AUDIENCE", "none")]].concat()).unwrap();
        assert!(matches!(
            waived.session_auth,
            SessionAuth::Jwt(JwtSettings { audience: None, .. })
        ));
        assert_eq!(
            variables(account_with(
                &[jwt.as_slice(), &[("JWT_AUDIENCE", " ")]].concat()
            )),
            ["JWT_AUDIENCE"]
        );
        assert_eq!(
            variables(account_with(&[
                ("SESSION_AUTH", "jwt"),
                ("JWT_ISSUER", "https://issuer.test/"),
                ("JWT_AUDIENCE", "authenticated"),
                ("JWT_JWKS_URL", "https://issuer.test/jwks"),
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ])),
            ["JWT_SECRET"]
        );
        assert_eq!(
            variables(account_with(&[
                ("SESSION_AUTH", "jwt"),
                ("JWT_ISSUER", "https://issuer.test/"),
                ("JWT_AUDIENCE", "authenticated"),
                ("JWT_JWKS_URL", "http://issuer.test/jwks"),
            ])),
            ["JWT_JWKS_URL"]
        );
        assert_eq!(
            variables(account_with(&[("SESSION_AUTH", "cookies")])),
            ["SESSION_AUTH"]
        );
        let config = account_with(&[
            ("SESSION_AUTH", "jwt"),
            ("JWT_ISSUER", "https://issuer.test/"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_AUDIENCE", "authenticated"),
        ])
        .unwrap();
        assert!(matches!(
            config.session_auth,
            SessionAuth::Jwt(JwtSettings { keys: KeySource::Secret(_), ref audience, .. })
                if audience.as_deref() == Some("authenticated")
        ));
        assert!(config.session_auth.session_table().is_none());
    }

    #[test]
    fn the_admin_secret_is_long_and_not_the_cron_secret() {
        let admin = |secret: &str| {
            let mut vars = GOOD.to_vec();
            vars.extend([
                ("MAIL_FROM", "no-reply@app.test"),
                ("MAIL_URL", "file:///tmp/mail"),
                ("APP_URL", "https://app.test"),
                ("ADMIN_SECRET", secret),
            ]);
            AdminConfig::from_lookup(&lookup(&vars))
        };
        assert!(admin("0123456789abcdef0123456789abcdef").is_ok());
        for (bad, why) in [
            ("0123456789abcdef", "at least 32"),
            ("", "empty"),
            ("0123456789abcdef", "32"),
        ] {
            let errors = admin(bad).unwrap_err();
            assert_eq!(errors.0[0].variable(), "ADMIN_SECRET");
            assert!(errors.to_string().contains(why), "{errors}");
        }
        let mut same = GOOD.to_vec();
        let long = "0123456789abcdef0123456789abcdef-cron";
        same.retain(|(name, _)| *name != "CRON_SECRET");
        same.extend([
            ("CRON_SECRET", long),
            ("ADMIN_SECRET", long),
            ("MAIL_FROM", "no-reply@app.test"),
            ("MAIL_URL", "file:///tmp/mail"),
            ("APP_URL", "https://app.test"),
        ]);
        let errors = AdminConfig::from_lookup(&lookup(&same))
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("ADMIN_SECRET") && errors.contains("CRON_SECRET"),
            "{errors}"
        );
        assert!(!errors.contains(long), "{errors}");
        let mut monitors = GOOD.to_vec();
        monitors.extend([
            ("STATUS_SECRET", long),
            ("ADMIN_SECRET", long),
            ("MAIL_FROM", "no-reply@app.test"),
            ("MAIL_URL", "file:///tmp/mail"),
            ("APP_URL", "https://app.test"),
        ]);
        let errors = AdminConfig::from_lookup(&lookup(&monitors))
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("ADMIN_SECRET") && errors.contains("STATUS_SECRET"),
            "{errors}"
        );
        assert!(!errors.contains(long), "{errors}");
        let mut unset = GOOD.to_vec();
        unset.extend([
            ("MAIL_FROM", "no-reply@app.test"),
            ("MAIL_URL", "file:///tmp/mail"),
            ("APP_URL", "https://app.test"),
        ]);
        assert_eq!(
            AdminConfig::from_lookup(&lookup(&unset)).unwrap_err().0[0],
            ConfigError::Missing {
                name: "ADMIN_SECRET"
            }
        );
    }

    #[test]
    fn errors_never_quote_the_secret_or_the_database_password() {
        let errors = CronConfig::from_lookup(&lookup(&[
            ("DATABASE_URL", "postgres://app:hunter2@[::1:5432/app"),
            ("CRON_SECRET", "tooshortsecret"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(!errors.contains("hunter2"), "{errors}");
        assert!(!errors.contains("tooshortsecret"), "{errors}");
        assert!(errors.contains("DATABASE_URL") && errors.contains("CRON_SECRET"));
    }
}
