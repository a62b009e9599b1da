//! `SESSION_AUTH=sessions`: our `sessions` table. The token comes only as
//! `Authorization: Bearer`, and only its SHA-256 is stored and compared.

use http::HeaderMap;
use sqlx::PgPool;

use super::Refusal;
use crate::platform::db::Limits;
use crate::platform::tokens::SessionToken;
use crate::schema::UserId;
use crate::schema::sql::Statements;

/// The hash of the bearer token.
pub(super) fn token(headers: &HeaderMap) -> Result<[u8; 32], Refusal> {
    SessionToken::from_headers(headers)
        .map(|token| token.hash())
        .ok_or(Refusal::Unauthenticated)
}

pub(super) async fn user(
    hash: &[u8; 32],
    pool: &PgPool,
    sql: &Statements,
) -> Result<UserId, Refusal> {
    let lookup = sql
        .session_user
        .as_ref()
        .expect("this mode renders its session lookup");
    let user: Option<(String,)> = lookup
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[hash.as_slice().into()],
        )
        .await?;
    user.map(|(id,)| UserId::new(id))
        .ok_or(Refusal::Unauthenticated)
}
