//! Connection pools, transactions and statements that work the same on a
//! direct connection and through a transaction pooler (PgBouncer in
//! `pool_mode = transaction`, Supabase's port 6543, Neon's pooled host).
//!
//! A transaction pooler gives a client a server connection for one
//! transaction at a time, so every rule here follows from keeping no state
//! outside a transaction:
//! - no `extra_float_digits` startup parameter (a stock PgBouncer refuses
//!   the connection over it), see [`connect_options`];
//! - no named prepared statements: [`query`], [`query_as`] and
//!   [`query_scalar`] prepare the unnamed statement, which lives only until
//!   the next one on the same server connection;
//! - every statement inside an explicit transaction, opened by [`begin`]:
//!   sqlx parses a statement and executes it in two round trips, and outside
//!   a transaction the pooler may hand the second to another server
//!   connection, where the unnamed statement does not exist;
//! - limits set with `SET LOCAL` inside that transaction ([`Limits`]), never
//!   with a session `SET`, so they neither leak to another client nor get lost.
//!
//! A transaction of several statements pays two round trips for this (the
//! `BEGIN` and each parse) that a cached named statement would save. The hot
//! paths (the account delete, the recovery link's page, the rate limit, the
//! purge batch) are single statements and go as a [`Statement`] instead: the
//! limits and the statement in one simple-protocol message, one round trip,
//! run by the server as one implicit transaction. BENCHMARKS.md has the
//! figures.
//!
//! A leaf of the leaves: of the library it imports only `platform::time`
//! (how a time literal is written).

use std::borrow::Cow;

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow, Postgres};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{ConnectOptions as _, FromRow, PgPool, Transaction};

mod statement;

pub use statement::{Literal, Statement};

/// The options every pool of ours connects with: `options` as parsed from a
/// URL, minus what a transaction pooler refuses, and with the driver's
/// statement logging off.
#[must_use]
pub fn connect_options(options: PgConnectOptions) -> PgConnectOptions {
    options
        // Results come back in binary, so floats lose no digits without it.
        .extra_float_digits(None)
        // Nothing is prepared under a name (see `query`); keep no cache that
        // could name one.
        .statement_cache_capacity(0)
        // sqlx logs every statement's text at `debug` and any slower than a
        // second at `warn`. A [`Statement`] carries its values in its text,
        // and one of them is a credential (an Auth.js session token is
        // looked up as it is), so the driver must print none of it, at any
        // level. Our own log lines say what ran, with figures.
        .disable_statement_logging()
}

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
        .connect_lazy_with(connect_options(options))
}

/// A statement prepared without a name; see the module docs.
pub fn query(sql: &str) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// [`query`], reading rows into `O`.
pub fn query_as<O>(sql: &str) -> QueryAs<'_, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(false)
}

/// [`query`], reading the first column of each row.
pub fn query_scalar<O>(sql: &str) -> QueryScalar<'_, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(false)
}

/// How long a transaction may wait for a lock, run one statement, and sit
/// idle (its client gone quiet mid-transaction) before the server ends it.
/// Set with `SET LOCAL`: in the same round trip as `BEGIN` ([`begin`]), or
/// in the same message as the statement ([`Statement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `set local …; set local …; set local …`
    settings: Cow<'static, str>,
}

impl Limits {
    /// An account request: a user waits for the answer, and a function runs
    /// at most 30 s. A lock held elsewhere for longer than this is a fault
    /// (answered 503), not a queue to wait in.
    pub const ACCOUNT: Self = Self {
        settings: Cow::Borrowed(
            "set local lock_timeout = '2s'; set local statement_timeout = '5s'; \
             set local idle_in_transaction_session_timeout = '10s'",
        ),
    };

    /// Book-keeping of a cron run (the purge ledger, the email outbox): small
    /// statements, but counts over a large table may take a while.
    pub const CRON: Self = Self {
        settings: Cow::Borrowed(
            "set local lock_timeout = '5s'; set local statement_timeout = '60s'; \
             set local idle_in_transaction_session_timeout = '30s'",
        ),
    };

    /// Limits computed at run time (the purge sizes its own from its batch
    /// target and budget). Whole milliseconds, at least 1.
    #[must_use]
    pub fn new(lock: Duration, statement: Duration, idle: Duration) -> Self {
        let ms = |d: Duration| d.as_millis().max(1);
        Self {
            settings: Cow::Owned(format!(
                "set local lock_timeout = '{}ms'; set local statement_timeout = '{}ms'; \
                 set local idle_in_transaction_session_timeout = '{}ms'",
                ms(lock),
                ms(statement),
                ms(idle)
            )),
        }
    }

    /// These limits, and then `statement` (a lock to take before the
    /// statement they go with starts, and so before its snapshot).
    #[must_use]
    pub fn then(self, statement: &str) -> Self {
        Self {
            settings: Cow::Owned(format!("{}; {statement}", self.settings)),
        }
    }

    /// The statement that opens a transaction with these limits.
    #[must_use]
    pub fn begin_statement(&self) -> String {
        format!("begin; {}", self.settings)
    }
}

/// Opens a transaction on a pooled connection with `limits` in force.
pub async fn begin(
    pool: &PgPool,
    limits: &Limits,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(limits.begin_statement()).await
}

/// Opens a read-only `REPEATABLE READ` transaction: every statement in it
/// sees the database as it was at its first, whatever commits meanwhile.
/// Times render in UTC, whatever the server's or the role's `TimeZone`.
pub async fn begin_snapshot(
    pool: &PgPool,
    limits: &Limits,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(format!(
        "begin isolation level repeatable read, read only; {}; set local time zone 'UTC'",
        limits.settings
    ))
    .await
}

/// True when the database (or its pooler) could not serve the request now,
/// and the same request may well succeed later, as opposed to answering
/// with an error that retrying will not change.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A connection a proxy in front of the pooler accepted and closed
        // (Supabase's and Neon's poolers sit behind one): the driver reads
        // the end of the stream as an answer it cannot understand.
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception (PgBouncer reports its own errors,
            // such as a server it cannot reach, as 08P01).
            code.starts_with("08")
                // 57P: the server is shutting down or starting up, or
                // terminated this connection.
                || code.starts_with("57P")
                // 53: out of connections or memory.
                || code.starts_with("53")
                // A transaction's own limits (`db::Limits`): a lock held
                // elsewhere, a statement cancelled, a transaction left idle.
                || matches!(code.as_ref(), "55P03" | "57014" | "25P03")
        }),
        _ => false,
    }
}

/// Runs `attempt` again, for up to about 13 s, while the database or its
/// pooler cannot be reached: for book-keeping that must not be lost to a
/// pooler restart (the record that an email went out, or that a purge run
/// failed and frees the purge). Any other error is returned at once.
pub async fn retry_while_unavailable<T, F, Fut>(
    what: &str,
    mut attempt: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    // 100 ms, doubling: 12.7 s over the eight tries.
    const TRIES: u32 = 8;
    let mut pause = Duration::from_millis(100);
    for tried in 1.. {
        match attempt().await {
            Err(error) if tried < TRIES && is_unavailable(&error) => {
                tracing::warn!(tried, error = %error, "{what}: database unavailable; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            result => return result,
        }
    }
    unreachable!("the loop returns by its last try")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_limits_are_whole_milliseconds_and_never_zero() {
        let limits = Limits::new(
            Duration::from_micros(1500),
            Duration::from_secs(3),
            Duration::ZERO,
        );
        assert_eq!(
            limits.begin_statement(),
            "begin; set local lock_timeout = '1ms'; set local statement_timeout = '3000ms'; \
             set local idle_in_transaction_session_timeout = '1ms'"
        );
    }

    #[test]
    fn connect_options_send_no_parameter_a_pooler_refuses() {
        let options = connect_options(PgConnectOptions::new());
        // `extra_float_digits` is the one sqlx adds by default.
        assert!(!format!("{options:?}").contains("extra_float_digits: Some"));
    }
}
