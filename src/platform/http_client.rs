//! The one outbound HTTP client (reqwest with rustls): JWKS keys for token
//! sign-in. Every request has a deadline, so a provider that hangs costs a
//! request a bounded wait, never the function's whole duration.

use std::time::Duration;

/// Deadlines of one outbound request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the end of the body.
    pub total: Duration,
}

/// A client with `timeouts`. It follows no redirects: the URLs it calls are
/// configured, and a redirect would be a misconfiguration to fix, not to
/// follow to wherever it points.
#[must_use]
pub fn client(timeouts: Timeouts) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("account-deletion/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with rustls and static settings builds")
}

/// The body of `response`, or `None` when it is longer than `limit` bytes
/// (read no further than that).
pub async fn body_up_to(
    mut response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
