//! `/api/account/recover`: the page a recovery link opens (GET) and the
//! restore itself (POST, JSON or form). No auth beyond the token; a valid
//! one always restores, and a client's failures past the limit get 429.

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::delivery::outbox;
use crate::lifecycle::accounts;
use crate::platform::app_url::SignInUrl;
use crate::platform::html::{escape, html, page};
use crate::platform::rate_limit::ClientAddress;
use crate::platform::tokens::RecoveryToken;
use crate::platform::web::{ApiError, Background, Request, Response, json};
use crate::routes::link_token::{self, BodyFormat};
use crate::routes::{AccountState, Configured, statements};

const ALLOWED: &[Method] = &[Method::GET, Method::OPTIONS, Method::POST];

#[derive(Clone)]
pub struct RecoverAccount {
    state: Configured<AccountState>,
}

/// The one answer for every token that cannot restore an account, whatever
/// the reason, so an attacker learns nothing from it.
const INVALID_TOKEN: ApiError = ApiError::BadRequest {
    code: "invalid_or_expired_token",
    message: "This recovery link is invalid or has expired.",
};

account_route!(RecoverAccount, "account-recover");

impl RecoverAccount {
    pub async fn handle(&self, request: Request) -> Response {
        self.state.serve(request, ALLOWED, Self::respond).await
    }

    async fn respond(ready: &AccountState, request: Request) -> Result<Response, ApiError> {
        if request.method() == Method::GET {
            Self::page(ready, &request).await
        } else {
            Self::restore(ready, request).await
        }
    }

    /// GET: explains and offers a button; never consumes the token (mail
    /// scanners follow links).
    async fn page(ready: &AccountState, request: &Request) -> Result<Response, ApiError> {
        let token = link_token::from_query(request.uri().query())
            .and_then(|raw| RecoveryToken::parse(&raw));
        let purge_after = match &token {
            Some(token) => {
                let sql = statements("account-recover", &ready.tables, &ready.pool).await?;
                accounts::recoverable_until(&ready.pool, &sql, token, ready.retention)
                    .await
                    .map_err(ApiError::from_database)?
            }
            None => None,
        };
        let body = match (token, purge_after) {
            (Some(token), Some(purge_after)) => {
                valid_link_page(&token, purge_after, &ready.sign_in_url)
            }
            _ => invalid_link_page(&ready.sign_in_url),
        };
        Ok(html(StatusCode::OK, body))
    }

    /// POST: restores the account, atomically with consuming the token. The
    /// token is tried before the client's failures are looked at: a valid
    /// one restores whatever its client's count, and only a failure is
    /// counted (and, past the limit, refused with 429).
    async fn restore(ready: &AccountState, request: Request) -> Result<Response, ApiError> {
        let (format, raw_token) = link_token::from_body(&request)?.required();
        let sql = statements("account-recover", &ready.tables, &ready.pool).await?;
        let restored = match raw_token.as_deref().and_then(RecoveryToken::parse) {
            Some(token) => accounts::recover(&ready.pool, &sql, &token, ready.retention)
                .await
                .map_err(ApiError::from_database)?,
            None => None,
        };
        let Some(restored) = restored else {
            let client = ClientAddress::of(request.headers());
            return match ready.limiter.record_failure(&ready.pool, &client).await {
                Ok(None) => Err(INVALID_TOKEN),
                Ok(Some(retry_after_seconds)) => Err(ApiError::TooManyRequests {
                    retry_after_seconds,
                }),
                Err(error) => Err(ApiError::from_database(error)),
            };
        };
        tracing::info!("account restored");
        let background = Background::of(&request);
        ready.send_event_later(&background, restored.event);
        ready.send_email_later(&background, sql, restored.email);
        Ok(match format {
            BodyFormat::Json => json(StatusCode::OK, &Recovered { recovered: true }),
            BodyFormat::Form => html(StatusCode::OK, restored_page(&ready.sign_in_url)),
        })
    }
}

#[derive(Serialize)]
struct Recovered {
    recovered: bool,
}

fn valid_link_page(
    token: &RecoveryToken,
    purge_after: DateTime<Utc>,
    sign_in: &SignInUrl,
) -> String {
    let when = purge_after.format("%-d %B %Y at %H:%M UTC").to_string();
    page(
        "Restore your account",
        &format!(
            "<h1>Restore your account</h1>\
             <p>Your account was deleted and will be erased for good on <strong>{}</strong>.</p>\
             <p>Restore it to keep it and everything in it.</p>\
             <form method=\"post\" action=\"{}\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">Restore my account</button></form>\
             <p class=\"muted\">Restoring does not sign you in; sign in again afterwards. \
             If you meant to delete your account, close this page.</p>{}",
            escape(&when),
            outbox::RECOVER_PATH,
            escape(token.as_str()),
            sign_in_link(sign_in),
        ),
    )
}

fn invalid_link_page(sign_in: &SignInUrl) -> String {
    page(
        "Link invalid or expired",
        &format!(
            "<h1>This link is invalid or has expired</h1>\
             <p>A recovery link works once, and only until the account is erased. \
             A newer email about the same account replaces the link in an older one.</p>\
             <p class=\"muted\">If you already restored your account, just sign in.</p>{}",
            sign_in_link(sign_in)
        ),
    )
}

fn restored_page(sign_in: &SignInUrl) -> String {
    page(
        "Account restored",
        &format!(
            "<h1>Your account is restored</h1>\
             <p>It will not be erased. Sign in again to use it.</p>{}",
            sign_in_link(sign_in)
        ),
    )
}

/// Every page's way back to the app.
fn sign_in_link(sign_in: &SignInUrl) -> String {
    format!(
        "<p><a class=\"button\" href=\"{}\">Sign in</a></p>",
        escape(sign_in.as_str())
    )
}
