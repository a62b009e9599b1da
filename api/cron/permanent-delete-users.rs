//! `GET|POST /api/cron/permanent-delete-users` — Vercel Cron's daily purge.
//!
//! Auth: `Authorization: Bearer $CRON_SECRET`. Locally:
//! `VERCEL_DEV_PORT=3000 target/release/cron-permanent-delete-users`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::purge_users::PurgeUsers;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = PurgeUsers::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
