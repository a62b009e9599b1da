//! Sign-in: who the signed-in user of a request is, for the account routes
//! (delete, and the deletion state and restore of a user who signed in
//! again).
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
//! A sign-in names a user whether or not the account is soft-deleted: the
//! app decides whether a deleted user may sign in again, and each route
//! what such a user may do (the delete acts only on a user not yet deleted;
//! the restore only on one who is). The token modes keep no session rows: a
//! token stays valid until it expires, deleting the account does not
//! revoke it.
//!
//! A browser sends cookies with cross-site requests too, so a cookie alone
//! never changes an account: a request signed in by cookie must come from a
//! trusted origin ([`credentials::TrustedOrigins`]; a read may also come
//! with no `Origin`, see [`Purpose`]). A bearer header cannot be sent
//! cross-site without the page holding the token, so it needs no such
//! check. A cookie sent twice is refused, never decided by which comes
//! first.
//!
//! It may import `platform` and `schema` (the statement that finds a
//! session's user); its settings' types live here, and `config` builds
//! them. Nothing of configuration, delivery, the lifecycle or the routes.

mod authjs_database;
mod authjs_jwt;
mod claims;
mod credentials;
mod jwks;
mod jwt;
mod sessions;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use sqlx::PgPool;

use crate::platform::app_url::AppUrl;
use crate::platform::cors::AllowedOrigins;
use crate::platform::web::ApiError;
use crate::schema::sql::Statements;
use crate::schema::{SessionTable, UserId};

pub use authjs_jwt::AuthSecrets;
pub use claims::Subject;
pub use credentials::{Purpose, TrustedOrigins};
pub use jwks::JwksUrl;
pub use jwt::{HmacSecret, JwtSettings, KeySource};

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

/// `SESSION_AUTH`: how the delete route finds the signed-in user, with what
/// the mode needs.
#[derive(Debug, Clone, Default)]
pub enum SessionAuth {
    /// Our `sessions` table (the default).
    #[default]
    Sessions,
    /// Auth.js database sessions.
    AuthjsDatabase,
    /// Auth.js JWT session cookies, decrypted with `AUTH_SECRET`.
    AuthjsJwt(AuthSecrets),
    /// A provider's JWT, verified with `JWT_*`.
    Jwt(JwtSettings),
}

impl SessionAuth {
    /// The sessions table the mode reads (and empties of the user's rows on
    /// deletion); token modes have none.
    #[must_use]
    pub fn session_table(&self) -> Option<SessionTable> {
        match self {
            Self::Sessions => Some(SessionTable::Ours),
            Self::AuthjsDatabase => Some(SessionTable::Authjs),
            Self::AuthjsJwt(_) | Self::Jwt(_) => None,
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

    /// What the request presents, checked as far as it can be without the
    /// database: a request with no credentials, a cookie from an untrusted
    /// origin or a token that does not verify is refused here, before the
    /// function touches the database at all.
    pub async fn present(
        &self,
        headers: &HeaderMap,
        purpose: Purpose,
    ) -> Result<Presented, Refusal> {
        match &self.mode {
            Mode::Sessions => sessions::token(headers).map(Presented::SessionHash),
            Mode::AuthjsDatabase => {
                authjs_database::token(headers, &self.trusted, purpose).map(Presented::SessionToken)
            }
            Mode::AuthjsJwt(secrets) => {
                authjs_jwt::subject(headers, &self.trusted, purpose, secrets)
                    .map(Presented::Subject)
            }
            Mode::Jwt(verifier) => jwt::subject(headers, verifier)
                .await
                .map(Presented::Subject),
        }
    }

    /// The signed-in user that `presented` names, or why there is none.
    pub async fn user(
        &self,
        presented: Presented,
        pool: &PgPool,
        sql: &Statements,
    ) -> Result<UserId, Refusal> {
        match presented {
            Presented::SessionHash(hash) => sessions::user(&hash, pool, sql).await,
            Presented::SessionToken(token) => authjs_database::user(&token, pool, sql).await,
            // A token's subject is the user, in the one spelling the
            // database prints; the delete acts only on a user that exists
            // and is not deleted.
            Presented::Subject(subject) => sql
                .catalog
                .id_type
                .normalize(&subject.sub)
                .map(UserId::new)
                .ok_or(Refusal::Unauthenticated),
        }
    }
}

/// The credentials of a request, as far as they were checked without the
/// database.
pub enum Presented {
    /// The SHA-256 of a token for our `sessions` table.
    SessionHash([u8; 32]),
    /// An Auth.js database session token.
    SessionToken(String),
    /// The `sub` of a token that verified, and when it was issued.
    Subject(claims::Subject),
}

/// When a credential was issued, as far as a deletion is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// A session row: the deletion deleted every one the user had, so a
    /// live one was made since.
    AfterAnyDeletion,
    /// A token, which a deletion cannot revoke: when it says it was issued
    /// (`None` when it does not say).
    Token(Option<DateTime<Utc>>),
}

impl Issued {
    /// Whether this credential was issued after a deletion at `deleted_at`,
    /// so that it may undo it: a token left signed in on a shared device
    /// from before must not.
    #[must_use]
    pub fn after(self, deleted_at: DateTime<Utc>) -> bool {
        match self {
            Self::AfterAnyDeletion => true,
            Self::Token(issued_at) => issued_at.is_some_and(|at| at > deleted_at),
        }
    }
}

impl Presented {
    /// When the credential was issued.
    #[must_use]
    pub fn issued(&self) -> Issued {
        match self {
            Self::SessionHash(_) | Self::SessionToken(_) => Issued::AfterAnyDeletion,
            Self::Subject(subject) => Issued::Token(subject.issued_at.and_then(|seconds| {
                DateTime::from_timestamp_micros((seconds * 1e6).round() as i64)
            })),
        }
    }
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presented(<redacted>)")
    }
}
