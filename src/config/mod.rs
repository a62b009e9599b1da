//! Configuration from the environment, parsed once per process into types,
//! one module per part it configures: `account` (the account routes),
//! `sign_in` (`SESSION_AUTH` and its keys), `delivery` (mail, webhook, the
//! email cron), `purge` (the purge cron: pacing, keeps, what blocks), `status`,
//! `support` (the admin route and `cargo dev account`), `export_exclude`
//! (`EXPORT_EXCLUDE_COLUMNS`). Here: the errors,
//! the reader of the environment ([`Env`]) and what every part shares (the
//! database, the users table, the grace period).
//!
//! It may import `platform`, `schema` and `auth` (the types of the parts
//! it configures that live there); the delivery, the lifecycle and the
//! routes import it, never the other way.
//!
//! Every problem names the variable it is about and never echoes a secret.
//! Parsing goes through a lookup function rather than `std::env` directly so
//! tests can describe an environment without mutating the process's own.

mod account;
mod delivery;
mod export_exclude;
mod purge;
mod sign_in;
mod status;
mod support;
#[cfg(test)]
mod tests;

pub use account::AccountConfig;
pub use delivery::{EmailCronConfig, MailConfig};
pub use export_exclude::ExcludedColumns;
pub use purge::{CronConfig, EraseBlocked, Keep, OverdueAfter, PurgeSettings};
pub use status::StatusConfig;
pub use support::{AdminConfig, SupportConfig};

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::schema::{AnonymizeColumns, Ident, UsersTable};

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
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl<'a> Env<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            errors: Vec::new(),
        }
    }

    fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// A variable that must be present and parse.
    fn required<T>(
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
    fn optional<T>(
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

    fn database_url(&mut self) -> Option<PgConnectOptions> {
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
    fn users_table(&mut self) -> Option<UsersTable> {
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

    fn retention_days(&mut self) -> Option<RetentionDays> {
        self.optional(
            "RETENTION_DAYS",
            RetentionDays::DEFAULT,
            RetentionDays::parse,
        )
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
