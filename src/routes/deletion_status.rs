//! `GET /api/account/deletion`: whether the signed-in user's account is
//! scheduled for erasure, when, and whether they can restore it here, for
//! the app's "your account will be erased on …, restore it?" banner.
//!
//! Auth: the configured sign-in, which accepts a soft-deleted user's
//! credential (the app's sign-in decides whether such a user may sign in).
//! A cookie counts from a trusted origin, or with no `Origin` at all (a
//! same-origin `GET` carries none; a read changes nothing).

use chrono::{DateTime, SecondsFormat, Utc};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::auth::Purpose;
use crate::lifecycle::accounts::{self, DeletionState};
use crate::platform::web::{ApiError, Request, Response, json};
use crate::routes::{AccountState, Configured, statements};

const ALLOWED: &[Method] = &[Method::GET, Method::OPTIONS];

#[derive(Clone)]
pub struct DeletionStatus {
    state: Configured<AccountState>,
}

account_route!(DeletionStatus, "account-deletion");

impl DeletionStatus {
    pub async fn handle(&self, request: Request) -> Response {
        self.state.serve(request, ALLOWED, Self::respond).await
    }

    async fn respond(ready: &AccountState, request: Request) -> Result<Response, ApiError> {
        let presented = ready
            .sign_in
            .present(request.headers(), Purpose::Read)
            .await?;
        let sql = statements("account-deletion", &ready.tables, &ready.pool).await?;
        let user = ready.sign_in.user(presented, &ready.pool, &sql).await?;
        let state = accounts::deletion_state(&ready.pool, &sql, &user, ready.retention)
            .await
            .map_err(ApiError::from_database)?
            // A token's subject with no account behind it.
            .ok_or(ApiError::Unauthorized)?;
        Ok(json(StatusCode::OK, &Body::from(state)))
    }
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Body {
    Active,
    Scheduled {
        deleted_at: String,
        purge_after: String,
        restorable: bool,
    },
}

impl From<DeletionState> for Body {
    fn from(state: DeletionState) -> Self {
        match state {
            DeletionState::Active => Self::Active,
            DeletionState::Scheduled {
                deleted_at,
                purge_after,
                restorable,
            } => Self::Scheduled {
                deleted_at: rfc3339(deleted_at),
                purge_after: rfc3339(purge_after),
                restorable,
            },
        }
    }
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
