//! `GET|POST /api/admin/accounts`: support's controls ([`crate::support`]).
//!
//! Auth: `Authorization: Bearer $ADMIN_SECRET`, by the cron routes' rules
//! (unset or invalid: every request refused with 500). `GET ?email=` or
//! `?user_id=` shows an account; `POST {"user_id" | "email", "action",
//! "reason"?}` acts on it and shows it afterwards. Every request is logged
//! with its action and the account's id only, never an address.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde::Deserialize;
use sqlx::PgPool;

use crate::config::{AdminConfig, ConfigErrors};
use crate::routes::protected::{Opened, Protected};
use crate::routes::schema_refusal;
use crate::support::{Action, HoldReason, Refused, Support, SupportError, Who};
use crate::web::{ApiError, Background, Request, Response, json};

const METHODS: &[Method] = &[Method::GET, Method::POST];

const INVALID: ApiError = ApiError::BadRequest {
    code: "invalid_request",
    message: "Name the account by exactly one of user_id and email; action is one of restore, \
              resend_recovery_link, hold, release, erase_now; a reason is [a-z0-9_-]{1,40}.",
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
        if request.method() == Method::GET {
            let who = lookup(request.uri().query()).ok_or(INVALID)?;
            let found = support.find(&who).await.map_err(refusal)?;
            tracing::info!(
                action = "show",
                user_id = found.as_ref().map_or("-", |view| view.user_id.as_str()),
                found = found.is_some(),
                "admin request"
            );
            return found
                .map(|view| json(StatusCode::OK, &view))
                .ok_or(ApiError::NotFound);
        }
        let (who, action) = command(request.body()).ok_or(INVALID)?;
        let acted = support.act(&who, &action).await.map_err(refusal)?;
        let user_id = match (&acted, &who) {
            (Ok(acted), _) => acted.view.user_id.clone(),
            (Err(_), Who::Id(id)) => id.clone(),
            (Err(_), Who::Email(_)) => "-".to_owned(),
        };
        match acted {
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
                Err(conflict(refused))
            }
        }
    }
}

/// `?email=` or `?user_id=`, exactly one, each once.
fn lookup(query: Option<&str>) -> Option<Who> {
    let mut who = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let named = match key.as_ref() {
            "email" => Who::Email(value.into_owned()),
            "user_id" => Who::Id(value.into_owned()),
            _ => return None,
        };
        if who.replace(named).is_some() {
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
        ("restore", _) => Action::Restore,
        ("resend_recovery_link", _) => Action::ResendRecoveryLink,
        ("hold", Some(reason)) => Action::Hold(reason),
        ("release", _) => Action::Release,
        ("erase_now", _) => Action::EraseNow,
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

fn conflict(refused: Refused) -> ApiError {
    match refused {
        Refused::NotFound => ApiError::NotFound,
        refused => ApiError::Conflict {
            code: refused.code(),
            message: refused.message().into(),
        },
    }
}
