use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;

use super::Response;

/// A JSON answer. API answers are never cached: they describe state that
/// changes with every request.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("response types serialize");
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `Allow`'s value: the methods, comma-separated.
pub fn allow_header(allowed: &[Method]) -> HeaderValue {
    let list = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&list).expect("method names are valid header text")
}

pub(super) fn with_allow(mut response: Response, allowed: &[Method]) -> Response {
    response.headers_mut().insert(ALLOW, allow_header(allowed));
    response
}
