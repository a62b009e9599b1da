//! `GET /api/account/deletion`: whether the signed-in user's account is
//! scheduled for erasure, when, and whether they can restore it here, for
//! the app's "your account will be erased on …, restore it?" banner.
//!
//! Auth: the configured sign-in, which accepts a soft-deleted user's
//! credential (the app's sign-in decides whether such a user may sign in).
//! A cookie counts from a trusted origin, or with no `Origin` at all (a
//! same-origin `GET` carries none; a read changes nothing).

use http::{Method, StatusCode};
use serde::Serialize;

use crate::auth::Purpose;
use crate::lifecycle::accounts::DeletionState;
use crate::platform::time::rfc3339;
use crate::platform::web::{ApiError, Request, Response, json};
use crate::routes::{AccountState, Configured};

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
        let signed_in = ready
            .signed_in("account-deletion", &request, Purpose::Read)
            .await?;
        let state = signed_in.deletion_state(ready).await?;
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
