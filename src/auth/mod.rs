//! Sign-in: who the signed-in user of a request is, for the delete route.
//!
//! One interface, [`SignIn::user`], turns a request's headers into a user id
//! or a refusal; the route does not know which mode `SESSION_AUTH` chose.
//! Each mode is a file of its own:
//! - [`sessions`]: our `sessions` table, a bearer token stored as SHA-256;
//! - [`authjs_database`]: Auth.js database sessions (`"Session"`), the token
//!   from a bearer header or from Auth.js's session cookie.
//!
//! A browser sends cookies with cross-site requests too, so a cookie alone
//! never deletes an account: a request signed in by cookie must come from a
//! trusted origin ([`credentials::TrustedOrigins`]). A bearer header cannot
//! be sent cross-site without the page holding the token, so it needs no
//! such check.

mod authjs_database;
mod credentials;
mod sessions;

use http::HeaderMap;
use sqlx::PgPool;

use crate::config::{AppUrl, SessionAuth};
use crate::cors::AllowedOrigins;
use crate::schema::UserId;
use crate::sql::Statements;
use crate::web::ApiError;

pub use credentials::TrustedOrigins;

/// Why a request has no signed-in user.
#[derive(Debug)]
pub enum Refusal {
    /// No credentials, or none that are valid now: 401.
    Unauthenticated,
    /// Credentials from a cookie, sent from an untrusted origin: 403.
    ForbiddenOrigin,
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
            Refusal::Database(error) => Self::from_database(error),
        }
    }
}

/// The configured sign-in.
#[derive(Debug, Clone)]
pub struct SignIn {
    mode: SessionAuth,
    trusted: TrustedOrigins,
}

impl SignIn {
    /// Cookies are trusted from `APP_URL`'s origin and the origins of
    /// `CORS_ALLOWED_ORIGINS`.
    #[must_use]
    pub fn new(mode: SessionAuth, app_url: &AppUrl, cors: &AllowedOrigins) -> Self {
        Self {
            mode,
            trusted: TrustedOrigins::new(app_url, cors),
        }
    }

    #[must_use]
    pub fn mode(&self) -> SessionAuth {
        self.mode
    }

    /// The signed-in user of a request, or why there is none.
    pub async fn user(
        &self,
        headers: &HeaderMap,
        pool: &PgPool,
        sql: &Statements,
    ) -> Result<UserId, Refusal> {
        match self.mode {
            SessionAuth::Sessions => sessions::user(headers, pool, sql).await,
            SessionAuth::AuthjsDatabase => {
                authjs_database::user(headers, &self.trusted, pool, sql).await
            }
        }
    }
}
