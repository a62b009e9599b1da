//! `GET|POST /api/admin/accounts`: support's controls ([`crate::lifecycle::support`]).
//!
//! Auth: `Authorization: Bearer $ADMIN_SECRET`, by the cron routes' rules
//! (unset or invalid: every request refused with 500). `GET ?user_id=`
//! shows an account; `POST {"user_id" | "email", "action", "reason"?}`
//! shows it (`show`) or acts on it and shows it afterwards. An address
//! never goes in a URL. Every request is logged with its action and the
//! account's id as the database holds it, never an address or an id as
//! typed.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde::Deserialize;
use sqlx::PgPool;

use crate::config::{AdminConfig, ConfigErrors};
use crate::lifecycle::support::resolve::Who;
use crate::lifecycle::support::{Action, HoldReason, Refused, Support, SupportError};
use crate::platform::web::{ApiError, Background, Request, Response, json};
use crate::routes::protected::{Opened, Protected};
use crate::routes::schema_refusal;

const METHODS: &[Method] = &[Method::GET, Method::POST];

const INVALID: ApiError = ApiError::BadRequest {
    code: "invalid_request",
    message: "Name the account by exactly one of user_id (an id of the users table's type) and \
              email (not blank; never in a URL: POST it with action show); action is one of \
              show, restore, resend_recovery_link, hold, release, erase_now, export; a reason is \
              [a-z0-9_-]{1,40}.",
};

#[derive(Clone)]
pub struct AdminAccounts {
    route: Protected<Arc<Support>>,
}

impl AdminAccounts {
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(AdminConfig::from_env())
    }

    /// The route with a small pool of its own.
    #[must_use]
    pub fn new(config: Result<AdminConfig, ConfigErrors>) -> Self {
        Self::build(config, None)
    }

    /// The route on a pool the host shares between routes.
    #[must_use]
    pub fn with_pool(config: Result<AdminConfig, ConfigErrors>, pool: PgPool) -> Self {
        Self::build(config, Some(pool))
    }

    fn build(config: Result<AdminConfig, ConfigErrors>, pool: Option<PgPool>) -> Self {
        let route = Protected::new(
            "admin-accounts",
            METHODS,
            config,
            pool,
            |config| (config.support.database.clone(), 3),
            |config, pool| Opened {
                state: Arc::new(Support::new(config.support, Some(pool))),
                secrets: vec![config.admin_secret],
            },
        );
        Self { route }
    }

    pub async fn handle(&self, request: Request) -> Response {
        self.route.handle(request, Self::respond).await
    }

    async fn respond(support: &Arc<Support>, request: Request) -> Result<Response, ApiError> {
        let (who, action) = if request.method() == Method::GET {
            (lookup(request.uri().query()).ok_or(INVALID)?, Action::Show)
        } else {
            command(request.body()).ok_or(INVALID)?
        };
        let answer = support.act(&who, &action).await.map_err(refusal)?;
        // Only an id read back from the database: one as typed may be any
        // string (an address, with a text id column).
        let user_id = answer.user_id.as_deref().unwrap_or("-");
        match answer.outcome {
            Ok(acted) => {
                tracing::info!(
                    action = action.as_str(),
                    user_id,
                    outcome = "done",
                    "admin request"
                );
                let sql = support
                    .statements()
                    .await
                    .map_err(|error| schema_refusal("admin-accounts", error))?;
                let deliverer = Arc::clone(support);
                Background::of(&request)
                    .spawn(async move { deliverer.deliver(sql, acted.sends).await });
                Ok(json(StatusCode::OK, &acted.view))
            }
            Err(refused) => {
                tracing::info!(
                    action = action.as_str(),
                    user_id,
                    outcome = refused.code(),
                    "admin request"
                );
                refusal_answer(refused)
            }
        }
    }
}

/// `?user_id=`, once and alone. An address never goes in a URL (request
/// logs and proxies keep URLs): `?email=` is refused, and the look-up by
/// address is `POST {"email", "action": "show"}`.
fn lookup(query: Option<&str>) -> Option<Who> {
    let mut who = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "user_id" || who.replace(Who::Id(value.into_owned())).is_some() {
            return None;
        }
    }
    who
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    user_id: Option<Id>,
    email: Option<String>,
    action: String,
    reason: Option<String>,
}

/// A user id as JSON: a string, or a number for an integer id.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

/// The body's account and action, if it is a well-formed command.
fn command(body: &[u8]) -> Option<(Who, Action)> {
    let command: Command = serde_json::from_slice(body).ok()?;
    let who = match (command.user_id, command.email) {
        (Some(Id::Text(id)), None) => Who::Id(id),
        (Some(Id::Number(id)), None) => Who::Id(id.to_string()),
        (None, Some(email)) => Who::Email(email),
        _ => return None,
    };
    let reason = match command.reason.as_deref() {
        Some(raw) => Some(HoldReason::parse(raw)?),
        None => None,
    };
    let action = match (command.action.as_str(), reason) {
        ("show", _) => Action::Show,
        ("restore", _) => Action::Restore,
        ("resend_recovery_link", _) => Action::ResendRecoveryLink,
        ("hold", Some(reason)) => Action::Hold(reason),
        ("release", _) => Action::Release,
        ("erase_now", _) => Action::EraseNow,
        ("export", _) => Action::Export,
        _ => return None,
    };
    Some((who, action))
}

fn refusal(error: SupportError) -> ApiError {
    match error {
        SupportError::Database(error) => ApiError::from_database(error),
        SupportError::Schema(error) => schema_refusal("admin-accounts", error),
    }
}

fn refusal_answer(refused: Refused) -> Result<Response, ApiError> {
    match refused {
        Refused::Invalid => Err(INVALID),
        Refused::NotFound => Err(ApiError::NotFound),
        // Nothing was done: support picks the account by its id.
        Refused::Ambiguous(ref user_ids) => Ok(json(
            StatusCode::CONFLICT,
            &serde_json::json!({
                "error": refused.code(),
                "message": refused.message(),
                "user_ids": user_ids,
            }),
        )),
        refused => Err(ApiError::Conflict {
            code: refused.code(),
            message: refused.message().into(),
        }),
    }
}
