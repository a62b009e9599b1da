//! Sign-in: who the signed-in user of a request is, for the delete route.
//!
//! One interface, [`SignIn::user`], turns a request's headers into a user id
//! or a refusal; the route does not know which mode `SESSION_AUTH` chose.
//! Each mode is a file of its own:
//! - [`sessions`]: our `sessions` table, a bearer token stored as SHA-256;
//! - [`authjs_database`]: Auth.js database sessions (`"Session"`), the token
//!   from a bearer header or from Auth.js's session cookie;
//! - [`authjs_jwt`]: Auth.js JWT sessions, the same cookie holding an
//!   encrypted token;
//! - [`jwt`]: a provider's signed JWT as the bearer (Supabase, Clerk, Auth0),
//!   with its keys from [`jwks`].
//!
//! The token modes keep no session rows: a token stays valid until it
//! expires, deleting the account does not revoke it. What stops it is the
//! deleted-at check (the delete itself only acts on a user not yet deleted).
//!
//! A browser sends cookies with cross-site requests too, so a cookie alone
//! never deletes an account: a request signed in by cookie must come from a
//! trusted origin ([`credentials::TrustedOrigins`]). A bearer header cannot
//! be sent cross-site without the page holding the token, so it needs no
//! such check.

mod authjs_database;
mod authjs_jwt;
mod claims;
mod credentials;
mod jwks;
mod jwt;
mod sessions;

use std::sync::Arc;

use http::HeaderMap;
use sqlx::PgPool;

use crate::config::{AppUrl, SessionAuth};
use crate::cors::AllowedOrigins;
use crate::schema::UserId;
use crate::sql::Statements;
use crate::web::ApiError;

pub use authjs_jwt::AuthSecrets;
pub use credentials::TrustedOrigins;
pub use jwt::{HmacSecret, JwksUrl, JwtSettings, KeySource};

/// Why a request has no signed-in user.
#[derive(Debug)]
pub enum Refusal {
    /// No credentials, or none that are valid now: 401.
    Unauthenticated,
    /// Credentials from a cookie, sent from an untrusted origin: 403.
    ForbiddenOrigin,
    /// The provider's signing keys could not be fetched: 503.
    KeysUnavailable,
    /// The session store could not be asked: 503 (or 500).
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => Self::Unauthorized,
            Refusal::ForbiddenOrigin => Self::ForbiddenOrigin,
            Refusal::KeysUnavailable => Self::KeysUnavailable,
            Refusal::Database(error) => Self::from_database(error),
        }
    }
}

/// The configured sign-in.
#[derive(Debug, Clone)]
pub struct SignIn {
    mode: Mode,
    trusted: TrustedOrigins,
}

/// [`SessionAuth`] with what each mode keeps for the instance's lifetime.
#[derive(Debug, Clone)]
enum Mode {
    Sessions,
    AuthjsDatabase,
    AuthjsJwt(AuthSecrets),
    Jwt(Arc<jwt::Verifier>),
}

impl SignIn {
    /// Cookies are trusted from `APP_URL`'s origin and the origins of
    /// `CORS_ALLOWED_ORIGINS`.
    #[must_use]
    pub fn new(mode: SessionAuth, app_url: &AppUrl, cors: &AllowedOrigins) -> Self {
        let mode = match mode {
            SessionAuth::Sessions => Mode::Sessions,
            SessionAuth::AuthjsDatabase => Mode::AuthjsDatabase,
            SessionAuth::AuthjsJwt(secrets) => Mode::AuthjsJwt(secrets),
            SessionAuth::Jwt(settings) => Mode::Jwt(jwt::Verifier::new(settings)),
        };
        Self {
            mode,
            trusted: TrustedOrigins::new(app_url, cors),
        }
    }

    /// The signed-in user of a request, or why there is none.
    pub async fn user(
        &self,
        headers: &HeaderMap,
        pool: &PgPool,
        sql: &Statements,
    ) -> Result<UserId, Refusal> {
        let id_type = sql.catalog.id_type;
        match &self.mode {
            Mode::Sessions => sessions::user(headers, pool, sql).await,
            Mode::AuthjsDatabase => authjs_database::user(headers, &self.trusted, pool, sql).await,
            Mode::AuthjsJwt(secrets) => authjs_jwt::user(headers, &self.trusted, secrets, id_type),
            Mode::Jwt(verifier) => jwt::user(headers, verifier, id_type).await,
        }
    }
}
