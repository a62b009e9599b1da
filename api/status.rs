//! `GET /api/status` — whether erasure is keeping up, for an uptime monitor:
//! 200 when nothing needs a person, 503 when something does.
//!
//! Auth: `Authorization: Bearer $CRON_SECRET`. Locally:
//! `VERCEL_DEV_PORT=3000 target/release/status`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::status::Status;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = Status::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
