//! Cross-origin access to the account routes, for a frontend on another
//! origin. Only exact origins listed in `CORS_ALLOWED_ORIGINS` get CORS
//! headers: their own origin back (never `*`), and
//! `Access-Control-Allow-Credentials: true`, without which a browser hands
//! the page no answer to a `credentials: "include"` request (it still sends
//! the request: a delete would happen while the page is told it failed).
//! Who is signed in is still decided by the cookie rules of [`crate::auth`],
//! which trust a cookie only from these origins and the app's own.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ALLOW, HeaderValue, ORIGIN, VARY,
};
use http::{HeaderMap, StatusCode};

use crate::platform::web::Response;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// Parses a comma-separated list of origins such as
    /// `https://app.example.com,http://localhost:3000`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let url = url::Url::parse(item).map_err(|_| format!("{item:?} is not an origin"))?;
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https") || origin != item.trim_end_matches('/') {
                return Err(format!(
                    "{item:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
            origins.push(origin);
        }
        Ok(Self(origins))
    }

    /// The listed origins.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The request's `Origin`, kept to answer it after the request is gone.
    pub fn origin_of(headers: &HeaderMap) -> Option<HeaderValue> {
        headers.get(ORIGIN).cloned()
    }

    /// The origin, if it is on the list.
    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        self.0.iter().any(|o| o == text).then_some(origin)
    }

    /// Adds the CORS answer headers for a listed origin; nothing otherwise.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut http::HeaderMap) {
        if let Some(origin) = self.allowed(origin) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// The answer to an `OPTIONS` preflight: 204 with `Allow`, and the
    /// allow headers only for a listed origin (the caller then adds the
    /// headers of [`decorate`](Self::decorate), as to every answer).
    pub fn preflight(&self, origin: Option<&HeaderValue>, allowed: &[http::Method]) -> Response {
        let mut response = Response::new(bytes::Bytes::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let allow = crate::platform::web::allow_header(allowed);
        response.headers_mut().insert(ALLOW, allow.clone());
        if self.allowed(origin).is_some() {
            let headers = response.headers_mut();
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, allow);
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_origins_parse() {
        let origins = AllowedOrigins::parse("https://app.test, http://localhost:3000").unwrap();
        assert_eq!(origins.0, ["https://app.test", "http://localhost:3000"]);
        assert!(AllowedOrigins::parse("https://app.test/path").is_err());
        assert!(AllowedOrigins::parse("app.test").is_err());
        assert!(AllowedOrigins::parse("*").is_err());
        assert_eq!(
            AllowedOrigins::parse("").unwrap(),
            AllowedOrigins::default()
        );
    }
}
