//! `POST /api/account/restore` — the signed-in user restores their own deleted account during its grace period.
//!
//! Auth: the app's sign-in (`SESSION_AUTH`), a soft-deleted user's too. Locally:
//! `VERCEL_DEV_PORT=3000 target/release/account-restore`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::restore_account::RestoreAccount;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = RestoreAccount::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
