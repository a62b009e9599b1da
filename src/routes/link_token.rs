//! Reading an emailed link's token, the same way for each link's route
//! (recovery, export): from the page's URL (`?token=`), or from the body
//! its button posts (`token=…`) or a client sends (`{"token": "…"}`).

use http::header::CONTENT_TYPE;

use crate::platform::web::{ApiError, Request};

/// How the client sent the token, and so how it wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Form,
}

/// What a body said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyToken {
    /// No `token` field at all (an empty body included).
    Absent,
    /// A `token` field; its text, unless it held none (answered like a
    /// wrong token).
    Present(BodyFormat, Option<String>),
}

impl BodyToken {
    /// The format and token of a body that must hold one: an absent token
    /// is a wrong one.
    pub(crate) fn required(self) -> (BodyFormat, Option<String>) {
        match self {
            Self::Absent => (BodyFormat::Json, None),
            Self::Present(format, token) => (format, token),
        }
    }
}

pub(crate) fn from_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

/// The token of a JSON or form body. Another type with a body is 415; a
/// JSON-like type other than JSON itself holds no token we read.
pub(crate) fn from_body(request: &Request) -> Result<BodyToken, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let body = request.body();
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(form_urlencoded::parse(body)
            .find(|(key, _)| key == "token")
            .map_or(BodyToken::Absent, |(_, value)| {
                BodyToken::Present(BodyFormat::Form, Some(value.into_owned()))
            })),
        None | Some("application/json") => {
            let value = serde_json::from_slice::<serde_json::Value>(body).ok();
            Ok(match value.as_ref().and_then(|value| value.get("token")) {
                None => BodyToken::Absent,
                Some(token) => {
                    BodyToken::Present(BodyFormat::Json, token.as_str().map(str::to_owned))
                }
            })
        }
        Some(other) if other.ends_with("+json") => Ok(BodyToken::Present(BodyFormat::Json, None)),
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}
