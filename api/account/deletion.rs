//! `GET /api/account/deletion` — whether the signed-in user's account is scheduled for erasure (the app's banner).
//!
//! Auth: the app's sign-in (`SESSION_AUTH`), a soft-deleted user's too. Locally:
//! `VERCEL_DEV_PORT=3000 target/release/account-deletion`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::deletion_status::DeletionStatus;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = DeletionStatus::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
