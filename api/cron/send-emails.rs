//! `GET|POST /api/cron/send-emails` — Vercel Cron's outbox sweep: reminders
//! and retries of emails that could not be sent at once.
//!
//! Auth: `Authorization: Bearer $CRON_SECRET`. Locally:
//! `VERCEL_DEV_PORT=3000 target/release/cron-send-emails`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::send_emails::SendEmails;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = SendEmails::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
