//! `SESSION_AUTH=authjs-database`: Auth.js database sessions, as its Prisma
//! adapter stores them (`"Session"`: `"sessionToken"` in plain text,
//! `"userId"`, `"expires"`). The token is the value of Auth.js's session
//! cookie, or a bearer header.

use http::HeaderMap;
use sqlx::PgPool;

use super::Refusal;
use super::credentials::{
    AUTHJS_SESSION_COOKIES, Credential, Purpose, TrustedOrigins, bearer_or_cookie,
};
use crate::platform::db::Limits;
use crate::schema::UserId;
use crate::schema::sql::Statements;

/// The session token, from the bearer header or (from a trusted origin) the
/// session cookie.
pub(super) fn token(
    headers: &HeaderMap,
    trusted: &TrustedOrigins,
    purpose: Purpose,
) -> Result<String, Refusal> {
    let token = match bearer_or_cookie(headers, &AUTHJS_SESSION_COOKIES)? {
        // Refused before the token is looked at, so a forged request learns
        // nothing about it.
        Some(Credential::Cookie { .. }) if !trusted.allows(headers, purpose) => {
            return Err(Refusal::ForbiddenOrigin);
        }
        Some(Credential::Bearer(token) | Credential::Cookie { token, .. }) => token,
        None => return Err(Refusal::Unauthenticated),
    };
    String::from_utf8(token.as_bytes().to_vec()).map_err(|_| Refusal::Unauthenticated)
}

pub(super) async fn user(token: &str, pool: &PgPool, sql: &Statements) -> Result<UserId, Refusal> {
    let lookup = sql
        .session_user
        .as_ref()
        .expect("this mode renders its session lookup");
    let user: Option<(String,)> = lookup
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[token.into()],
        )
        .await?;
    user.map(|(id,)| UserId::new(id))
        .ok_or(Refusal::Unauthenticated)
}
