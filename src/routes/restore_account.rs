//! `POST /api/account/restore`: the signed-in user restores their own
//! deleted account during its grace period, with the recovery link's
//! guarantees (one transaction; the links stop working; the "restored"
//! email and an `account.restored` event with `"via": "sign_in"`; a race
//! with the purge either restores, and the purge leaves the account alone,
//! or answers 409, and the purge erases it). The session used stays valid.
//!
//! Auth: the configured sign-in, which accepts a soft-deleted user's
//! credential, with the delete route's cookie and `Origin` rules.

use http::{Method, StatusCode};
use serde::Serialize;

use crate::auth::{Issued, Purpose};
use crate::lifecycle::accounts::{self, DeletionState, NotRestored, Via};
use crate::platform::time::rfc3339;
use crate::platform::web::{ApiError, Background, Request, Response, json};
use crate::routes::{AccountState, Configured, SignedIn};

const ALLOWED: &[Method] = &[Method::OPTIONS, Method::POST];

const NOT_DELETED: ApiError = ApiError::Conflict {
    code: "not_deleted",
    message: std::borrow::Cow::Borrowed("This account is not deleted."),
};

const NOT_RESTORABLE: ApiError = ApiError::Conflict {
    code: "not_restorable",
    message: std::borrow::Cow::Borrowed(
        "This account cannot be restored here: its grace period has ended, or the deletion was not made by its owner.",
    ),
};

#[derive(Clone)]
pub struct RestoreAccount {
    state: Configured<AccountState>,
}

account_route!(RestoreAccount, "account-restore");

impl RestoreAccount {
    pub async fn handle(&self, request: Request) -> Response {
        self.state.serve(request, ALLOWED, Self::respond).await
    }

    async fn respond(ready: &AccountState, request: Request) -> Result<Response, ApiError> {
        let signed_in = ready
            .signed_in("account-restore", &request, Purpose::Change)
            .await?;
        // An account that is not restorable is told why, before any write.
        let state = signed_in.deletion_state(ready).await?;
        match state {
            DeletionState::Active => return Err(NOT_DELETED),
            DeletionState::Scheduled {
                restorable: false, ..
            } => return Err(NOT_RESTORABLE),
            DeletionState::Scheduled { .. } => signed_in.issued_after(&state)?,
        }
        let SignedIn { sql, user, issued } = signed_in;
        // The statement checks the issue time again on the locked row (a
        // deletion since the check above is a newer one).
        let issued_at = match issued {
            Issued::AfterAnyDeletion => None,
            Issued::Token(at) => at,
        };
        let restored = accounts::restore(
            &ready.pool,
            &sql,
            &user,
            ready.retention,
            Via::SignIn,
            issued_at,
        )
        .await
        .map_err(ApiError::from_database)?
        .map_err(|why| match why {
            NotRestored::NotDeleted => NOT_DELETED,
            // Restored and deleted again meanwhile, past its grace
            // period, or erased by the purge meanwhile.
            NotRestored::NotRestorable | NotRestored::NoSuchUser => NOT_RESTORABLE,
        })?;
        tracing::info!(via = Via::SignIn.as_str(), "account restored");
        let background = Background::of(&request);
        ready.send_event_later(&background, restored.event);
        ready.send_email_later(&background, sql, restored.email);
        Ok(json(
            StatusCode::OK,
            &Restored {
                restored_at: rfc3339(restored.restored_at),
            },
        ))
    }
}

#[derive(Serialize)]
struct Restored {
    restored_at: String,
}
