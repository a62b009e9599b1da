//! `POST /api/account/delete`: the signed-in user deletes their account.
//!
//! Auth: the configured sign-in ([`crate::auth`]): a session token as
//! `Authorization: Bearer <token>`, or Auth.js's session cookie from a
//! trusted origin. Answers 202 with when the account was deleted and when it
//! will be purged; the recovery email goes out right after, without holding
//! up the answer.

use chrono::{DateTime, SecondsFormat, Utc};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::auth::Purpose;
use crate::lifecycle::accounts;
use crate::platform::web::{ApiError, Background, Request, Response, json};
use crate::routes::{AccountState, Configured, statements};

const ALLOWED: &[Method] = &[Method::OPTIONS, Method::POST];

#[derive(Clone)]
pub struct DeleteAccount {
    state: Configured<AccountState>,
}

account_route!(DeleteAccount, "account-delete");

impl DeleteAccount {
    pub async fn handle(&self, request: Request) -> Response {
        self.state.serve(request, ALLOWED, Self::respond).await
    }

    async fn respond(ready: &AccountState, request: Request) -> Result<Response, ApiError> {
        // Credentials first: a request without valid ones costs no query.
        let presented = ready
            .sign_in
            .present(request.headers(), Purpose::Change)
            .await?;
        let sql = statements("account-delete", &ready.tables, &ready.pool).await?;
        let user = ready.sign_in.user(presented, &ready.pool, &sql).await?;
        let deletion = accounts::delete(&ready.pool, &sql, &user, ready.retention)
            .await
            .map_err(ApiError::from_database)?
            // Deleted meanwhile (a second request of the same user).
            .ok_or(ApiError::Unauthorized)?;
        tracing::info!("account soft-deleted");
        let background = Background::of(&request);
        ready.send_event_later(&background, deletion.event);
        ready.send_email_later(&background, sql, deletion.email);
        Ok(json(
            StatusCode::ACCEPTED,
            &Deleted {
                deleted_at: rfc3339(deletion.deleted_at),
                purge_after: rfc3339(deletion.purge_after),
            },
        ))
    }
}

#[derive(Serialize)]
struct Deleted {
    deleted_at: String,
    purge_after: String,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
