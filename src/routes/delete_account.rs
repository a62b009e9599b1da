//! `POST /api/account/delete`: the signed-in user deletes their account.
//!
//! Auth: the configured sign-in ([`crate::auth`]): a session token as
//! `Authorization: Bearer <token>`, or Auth.js's session cookie from a
//! trusted origin. Answers 202 with when the account was deleted and when it
//! will be purged; the recovery email goes out right after, without holding
//! up the answer.

use http::{Method, StatusCode};
use serde::Serialize;

use crate::auth::Purpose;
use crate::lifecycle::accounts;
use crate::platform::time::rfc3339;
use crate::platform::web::{ApiError, Background, Request, Response, json};
use crate::routes::{AccountState, Configured, SignedIn};

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
        let SignedIn { sql, user, .. } = ready
            .signed_in("account-delete", &request, Purpose::Change)
            .await?;
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
