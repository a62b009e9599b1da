//! `GET|POST /api/account/recover` — the recovery link's page and the restore (token in the link).
//!
//! Locally: `VERCEL_DEV_PORT=3000 target/release/account-recover`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::recover_account::RecoverAccount;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = RecoverAccount::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
