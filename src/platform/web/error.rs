use std::borrow::Cow;

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use serde::Serialize;

use super::Response;
use super::response::{json, with_allow};

/// Every way a request can fail, each with one status and one stable code.
///
/// This is the only place errors become responses. 5xx answers say nothing
/// about the cause to the client; the cause is logged here, in full.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request itself is wrong; `code` says how.
    #[error("bad request: {code}")]
    BadRequest {
        code: &'static str,
        message: &'static str,
    },
    /// 401: missing or wrong credentials, with a `Bearer` challenge.
    #[error("unauthorized")]
    Unauthorized,
    /// 401: a valid credential that may not do this (a token issued before
    /// the deletion it would undo): the user must sign in again.
    #[error("sign in again")]
    SignInAgain,
    /// 403: credentials came in a cookie, from a page of an origin the app
    /// does not trust (a cross-site request a browser sent them with).
    #[error("forbidden origin")]
    ForbiddenOrigin,
    /// 404: no such account (the admin route).
    #[error("not found")]
    NotFound,
    /// 409: the action does not apply to the account as it stands; `code`
    /// says why, `message` in a sentence (it may name a constraint, never
    /// data).
    #[error("conflict: {code}")]
    Conflict {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed { allowed: &'static [Method] },
    /// 413: the body is over the limit; nothing of it was parsed.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: a body in a format the route does not read.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 410: a link that cannot serve (whatever the reason: one answer, so
    /// an attacker learns nothing from it).
    #[error("gone: {code}")]
    Gone {
        code: &'static str,
        message: &'static str,
    },
    /// 429: too many failed attempts from one client; retry after `seconds`.
    #[error("too many requests")]
    TooManyRequests { retry_after_seconds: u64 },
    /// 429: the account asked for this too recently; `code` says what,
    /// `Retry-After` when it may ask again.
    #[error("rate limited: {code}")]
    RateLimited {
        code: &'static str,
        message: &'static str,
        retry_after_seconds: u64,
    },
    /// 500: the function's environment is wrong; it refuses to act at all.
    /// The variables at fault are logged when the process starts and with
    /// every refused request.
    #[error("server misconfigured")]
    ServerMisconfigured,
    /// 503: the sign-in provider's keys (`JWT_JWKS_URL`) could not be
    /// fetched, so no token can be checked; retrying later may work.
    #[error("sign-in keys unavailable")]
    KeysUnavailable,
    /// 503: the database could not be reached; retrying later may work.
    #[error("database unavailable: {0:#}")]
    DatabaseUnavailable(anyhow::Error),
    /// 500: anything else; a bug or an unexpected database answer.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// Classifies a database error: unreachable (503) or anything else (500).
    pub fn from_database(error: sqlx::Error) -> Self {
        if crate::platform::db::is_unavailable(&error) {
            Self::DatabaseUnavailable(error.into())
        } else {
            Self::Internal(error.into())
        }
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::SignInAgain => StatusCode::UNAUTHORIZED,
            Self::ForbiddenOrigin => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Gone { .. } => StatusCode::GONE,
            Self::TooManyRequests { .. } | Self::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::ServerMisconfigured | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::DatabaseUnavailable(_) | Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code_and_message(&self) -> (&'static str, &str) {
        match self {
            Self::BadRequest { code, message }
            | Self::Gone { code, message }
            | Self::RateLimited { code, message, .. } => (code, message),
            Self::NotFound => ("not_found", "There is no such account."),
            Self::Conflict { code, message } => (code, message),
            Self::Unauthorized => ("unauthorized", "Missing or invalid credentials."),
            Self::SignInAgain => (
                "sign_in_again",
                "This sign-in is older than the deletion; sign in again to restore the account.",
            ),
            Self::ForbiddenOrigin => (
                "forbidden_origin",
                "A request signed in by cookie must come from the app's own origin.",
            ),
            Self::MethodNotAllowed { .. } => (
                "method_not_allowed",
                "This route does not support that method.",
            ),
            Self::PayloadTooLarge => (
                "payload_too_large",
                "The request body is larger than this route accepts.",
            ),
            Self::UnsupportedMediaType => (
                "unsupported_media_type",
                "Send the body as application/json or application/x-www-form-urlencoded.",
            ),
            Self::TooManyRequests { .. } => (
                "too_many_requests",
                "Too many failed attempts. Try again later.",
            ),
            Self::ServerMisconfigured => (
                "server_misconfigured",
                "The server is not configured correctly. Its operators have been told why.",
            ),
            Self::DatabaseUnavailable(_) | Self::KeysUnavailable => (
                "service_unavailable",
                "The service is temporarily unavailable. Try again shortly.",
            ),
            Self::Internal(_) => ("internal_error", "Something went wrong on our side."),
        }
    }

    #[must_use]
    pub fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::DatabaseUnavailable(cause) => {
                tracing::error!(error = %format!("{cause:#}"), status = status.as_u16(), "database unavailable");
            }
            Self::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), status = status.as_u16(), "internal error");
            }
            _ => {}
        }
        let (error, message) = self.code_and_message();
        let response = json(status, &ErrorBody { error, message });
        match self {
            Self::MethodNotAllowed { allowed } => with_allow(response, allowed),
            Self::Unauthorized | Self::SignInAgain => {
                with_header(response, WWW_AUTHENTICATE, "Bearer")
            }
            Self::TooManyRequests {
                retry_after_seconds,
            }
            | Self::RateLimited {
                retry_after_seconds,
                ..
            } => with_header(response, RETRY_AFTER, &retry_after_seconds.to_string()),
            _ => response,
        }
    }
}

fn with_header(mut response: Response, name: http::HeaderName, value: &str) -> Response {
    response.headers_mut().insert(
        name,
        HeaderValue::from_str(value).expect("static header text"),
    );
    response
}

/// Checks the method against what a route allows, answering 405 with `Allow`
/// otherwise.
pub fn method_not_allowed(method: &Method, allowed: &'static [Method]) -> Option<ApiError> {
    if allowed.contains(method) {
        None
    } else {
        Some(ApiError::MethodNotAllowed { allowed })
    }
}
