//! `POST|GET /api/account/export` — a copy of the user's data: the signed-in
//! request for a link, the link's page, and the archive, streamed.
//!
//! Locally: `VERCEL_DEV_PORT=3000 target/release/account-export`.

use account_deletion::platform::{telemetry, vercel};
use account_deletion::routes::export_account::ExportAccount;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    telemetry::init();
    let route = ExportAccount::from_env();
    vercel::serve(move |request| {
        let route = route.clone();
        async move { route.handle(request).await }
    })
    .await
}
