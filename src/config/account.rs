//! The account routes: delete, recover, the deletion banner, restore,
//! export.

use sqlx::postgres::PgConnectOptions;

use crate::auth::SessionAuth;
use crate::platform::app_url::SignInUrl;
use crate::platform::cors::AllowedOrigins;
use crate::platform::webhook::Webhook;
use crate::schema::UsersTable;

use super::ExcludedColumns;
use super::{ConfigErrors, Env, MailConfig, RetentionDays};

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
