//! Calls to the running dev server: firing a cron the way Vercel does, and
//! the `seed` helper.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What Vercel Cron sends as its user agent.
pub const VERCEL_CRON_USER_AGENT: &str = "vercel-cron/1.0";

pub struct Answer {
    pub status: http::StatusCode,
    pub body: String,
}

/// `method` `path` on `127.0.0.1:port`, with the given headers.
pub async fn call(
    port: u16,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    call_with_body(port, method, path, headers, b"").await
}

/// [`call`] with a body.
pub async fn call_with_body(
    port: u16,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Answer> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body)))?;
    let response = tokio::time::timeout(Duration::from_mins(15), client.request(request))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from 127.0.0.1:{port} within 15 minutes"))?
        .map_err(|error| {
            anyhow::anyhow!("could not reach the dev server on 127.0.0.1:{port} ({error}); is `cargo dev` running?")
        })?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A cron run exactly as Vercel sends it: GET, the bearer secret, Vercel's
/// user agent.
pub async fn fire_cron(port: u16, path: &str, secret: &str) -> anyhow::Result<Answer> {
    let auth = format!("Bearer {secret}");
    call(
        port,
        http::Method::GET,
        path,
        &[
            ("authorization", &auth),
            ("user-agent", VERCEL_CRON_USER_AGENT),
        ],
    )
    .await
}
