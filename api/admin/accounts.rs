//! `GET|POST /api/admin/accounts` — support's controls: look an account up, restore, resend its link, hold, release, erase now.
//!
//! Auth: `Authorization: Bearer $ADMIN_SECRET`. Locally:
//! `VERCEL_DEV_PORT=3000 target/release/admin-accounts`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::admin_accounts::AdminAccounts;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = AdminAccounts::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
