//! `POST /api/account/delete` — the signed-in user deletes their account (session bearer token).
//!
//! Locally: `VERCEL_DEV_PORT=3000 target/release/account-delete`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::delete_account::DeleteAccount;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = DeleteAccount::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
