//! Applying `migrations/` to a real database (`cargo dev migrate`).
//!
//! sqlx takes a session-level advisory lock for the whole run, and a session
//! is exactly what a transaction pooler does not keep: the lock lands on one
//! server connection, the unlock on another, and the lock stays held until
//! the pooler recycles that connection. Every later migration, direct ones
//! included, then waits for it forever. So before anything else this checks
//! that its connection is a real session, and refuses, naming the variable,
//! when it is not; and it waits a bounded time for the lock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::db::MIGRATOR;

/// How long a migration waits for another one to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long the session check waits for a second server connection. A
/// direct server answers at once; a pooler whose every server connection is
/// taken does not.
const PROBE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{variable} is not a valid postgres:// URL")]
    InvalidUrl { variable: &'static str },
    #[error(
        "{variable} points at a transaction pooler (PgBouncer, Supabase port 6543, Neon's -pooler host): \
         migrations hold a session lock that a pooler cannot keep. Set DIRECT_URL to the direct \
         connection string (Supabase: the \"Direct connection\" or session-mode string, port 5432; \
         Neon: the host without -pooler) and run `cargo dev migrate` again"
    )]
    ThroughPooler { variable: &'static str },
    #[error(
        "another migration has held the migration lock for {waited:?}; if none is running, a \
         migration run earlier through a pooler may have left it held: restart the pooler, then \
         try again"
    )]
    LockHeld { waited: Duration },
    #[error("could not reach the database named by {variable}: {reason}")]
    Unreachable {
        variable: &'static str,
        reason: String,
    },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Versions and descriptions applied now, in order.
    pub applied: Vec<(i64, String)>,
    /// How many were there already.
    pub already_present: usize,
}

/// Applies every migration not yet applied to the database at `url`, read
/// from the environment variable `variable` (named in every error).
pub async fn migrate(url: &str, variable: &'static str) -> Result<Migrated, MigrateError> {
    migrate_waiting(url, variable, LOCK_WAIT).await
}

/// [`migrate`], waiting at most `lock_wait` for the migration lock.
pub async fn migrate_waiting(
    url: &str,
    variable: &'static str,
    lock_wait: Duration,
) -> Result<Migrated, MigrateError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| MigrateError::InvalidUrl { variable })?
        // So that a pooler lets us in far enough to be recognised.
        .extra_float_digits(None);
    let unreachable = |error: sqlx::Error| MigrateError::Unreachable {
        variable,
        // sqlx's own text names the failure, never the URL or password.
        reason: error.to_string(),
    };
    if !is_a_session(&options).await.map_err(unreachable)? {
        return Err(MigrateError::ThroughPooler { variable });
    }

    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(unreachable)?;
    // A session setting is right here: this connection is a session.
    conn.execute(format!("set lock_timeout = '{}ms'", lock_wait.as_millis().max(1)).as_str())
        .await
        .map_err(unreachable)?;
    let before = applied_versions(&mut conn).await.map_err(unreachable)?;
    MIGRATOR
        .run(&mut conn)
        .await
        .map_err(|error| match &error {
            sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("55P03") =>
            {
                MigrateError::LockHeld { waited: lock_wait }
            }
            _ => MigrateError::Migrate(error),
        })?;
    let _ = conn.close().await;
    Ok(Migrated {
        applied: MIGRATOR
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect(),
        already_present: before.len(),
    })
}

/// Whether a connection to `options` is one server session from start to
/// end, as a direct connection (or a session-mode pooler) is.
///
/// Two clients: the first holds a transaction open, pinning its server
/// connection; the second asks for its backend twice, once while the first
/// holds on and once after. A direct server answers at once, from the same
/// backend both times. A transaction pooler either keeps the second waiting
/// (no free server connection) or serves it from another backend once the
/// first lets go (it hands out the connection freed last).
async fn is_a_session(options: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let mut holder = PgConnection::connect_with(options).await?;
    let mut probe = PgConnection::connect_with(options).await?;
    holder.execute("begin").await?;
    let held = backend(&mut holder).await?;
    let Ok(before) = tokio::time::timeout(PROBE_WAIT, backend(&mut probe)).await else {
        return Ok(false);
    };
    let before = before?;
    holder.execute("commit").await?;
    let after = backend(&mut probe).await?;
    let holder_after = backend(&mut holder).await?;
    let _ = holder.close().await;
    let _ = probe.close().await;
    Ok(before != held && before == after && holder_after == held)
}

/// The server process behind a connection, asked with the simple protocol
/// (nothing prepared, so a pooler serves it like any other client).
async fn backend(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    conn.fetch_one("select pg_backend_pid()").await?.try_get(0)
}

/// The versions applied to the database `conn` is a session of.
pub async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
        .fetch_all(&mut *conn)
        .await
}
