//! Failed recovery attempts per client, counted in the database because
//! function instances share nothing. A client is identified by the address
//! Vercel puts in `x-real-ip` / `x-forwarded-for`, stored only as a hash.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool};

use crate::db::{self, Limits, Statement};

/// At most this many failures per client per window.
pub const MAX_FAILURES: i32 = 20;
pub const WINDOW_SECONDS: i32 = 15 * 60;

/// Who is asking, as far as the edge tells us.
pub fn client_key(headers: &HeaderMap) -> [u8; 32] {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let client = header("x-real-ip")
        .or_else(|| {
            header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(str::trim)
        })
        .unwrap_or("unknown");
    Sha256::digest(client.as_bytes()).into()
}

/// Seconds until the client may try again, if it is over the limit.
pub async fn retry_after(pool: &PgPool, client: &[u8; 32]) -> Result<Option<u64>, sqlx::Error> {
    let seconds: Option<(f64,)> = RETRY_AFTER
        .fetch_optional(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[
                client.as_slice().into(),
                f64::from(WINDOW_SECONDS).into(),
                MAX_FAILURES.into(),
            ],
        )
        .await?;
    Ok(seconds.map(|(s,)| s.ceil().max(1.0) as u64))
}

static RETRY_AFTER: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "select extract(epoch from window_started_at + make_interval(secs => $2) - now())::float8
         from account_deletion.recovery_failures
         where client_hash = $1
           and failures >= $3
           and window_started_at > now() - make_interval(secs => $2)",
    )
});

/// Counts one failure, starting a new window when the last one has passed.
pub async fn record_failure(pool: &PgPool, client: &[u8; 32]) -> Result<(), sqlx::Error> {
    RECORD_FAILURE
        .execute(
            &mut *pool.acquire().await?,
            &Limits::ACCOUNT,
            &[client.as_slice().into(), f64::from(WINDOW_SECONDS).into()],
        )
        .await?;
    Ok(())
}

static RECORD_FAILURE: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "insert into account_deletion.recovery_failures (client_hash, window_started_at, failures)
         values ($1, now(), 1)
         on conflict (client_hash) do update set
             failures = case when recovery_failures.window_started_at <= now() - make_interval(secs => $2)
                             then 1 else recovery_failures.failures + 1 end,
             window_started_at = case when recovery_failures.window_started_at <= now() - make_interval(secs => $2)
                                      then now() else recovery_failures.window_started_at end",
    )
});

/// Forgets windows that have passed; the email sweep calls it, inside its
/// own transaction.
pub async fn prune(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    Ok(db::query(
        "delete from account_deletion.recovery_failures where window_started_at <= now() - make_interval(secs => $1)",
    )
    .bind(f64::from(WINDOW_SECONDS))
    .execute(conn)
    .await?
    .rows_affected())
}
