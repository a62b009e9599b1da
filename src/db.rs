//! Connection pools and the embedded migrations.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `migrations/`, compiled in, so `cargo dev migrate` and the tests apply
/// exactly what ships.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A pool that connects on first use, so a function answers `/_vercel/ping`
/// and refuses bad requests without touching the database, and a database
/// outage at start-up is not fatal: every request tries again.
#[must_use]
pub fn lazy_pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        // A request waiting longer than this for a connection answers 503
        // rather than running into the function's own timeout.
        .acquire_timeout(Duration::from_secs(5))
        // Serverless instances sit idle for long stretches; do not hold
        // connections the database (or its pooler) could give to others.
        .idle_timeout(Some(Duration::from_secs(60)))
        .connect_lazy_with(options)
}
