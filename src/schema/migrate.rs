//! Applying `migrations/` to a real database (`cargo dev migrate`).
//!
//! What it creates, and where:
//! - this project's own tables, always, in a schema of their own
//!   (`account_deletion`, from `migrations/account_deletion/`), so an
//!   existing app's schema gets nothing it does not know (Prisma would call
//!   it drift);
//! - `users` and `sessions` (`migrations/app/`) only on a new app's
//!   database: the configured users table is our default and does not
//!   exist yet;
//! - in an existing app's users table, nothing, unless asked with
//!   [`Options::add_deleted_at`]: then the deleted-at column and an index on
//!   it, if they are missing; or with [`Options::add_email_index`]: an index
//!   on the address as support's look-up folds it. Every other mismatch (no
//!   such table, a column missing or of the wrong type) is an error naming
//!   the variable.
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

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection, Executor, PgConnection, Row};

use crate::schema::{self, Ident, SchemaError, UsersTable};

/// `migrations/account_deletion/`: this project's own tables, in the
/// `account_deletion` schema (with their own `_sqlx_migrations` there).
/// Compiled in, so `cargo dev migrate` and the tests apply exactly what
/// ships; [`apply`] applies them.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/account_deletion");

/// `migrations/app/`: the `users` and `sessions` tables of a new app, which
/// `cargo dev migrate` creates only when the configured users table is our
/// default and does not exist yet (an existing app brings its own). Tracked
/// in `public._sqlx_migrations`, where a database migrated before the
/// `account_deletion` schema existed also lists versions that are no longer
/// here.
pub static APP_MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("migrations/app")
};

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
    #[error("{variable}: {reason}")]
    Schema {
        variable: &'static str,
        reason: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<SchemaError> for MigrateError {
    fn from(error: SchemaError) -> Self {
        match error {
            SchemaError::Misconfigured { variable, reason } => Self::Schema { variable, reason },
            SchemaError::Database(error) => Self::Database(error),
        }
    }
}

/// What to migrate against.
#[derive(Debug, Clone)]
pub struct Options {
    /// The app's users table, as the functions are configured.
    pub users: UsersTable,
    /// Add the deleted-at column (nullable `timestamptz`) and an index on it
    /// to an existing users table that lacks them (`cargo dev migrate
    /// --add-deleted-at`). Off by default: an app's table is the app's.
    pub add_deleted_at: bool,
    /// Add an index on `lower(btrim(email))` to an existing users table that
    /// lacks one (`cargo dev migrate --add-email-index`), for support's
    /// look-up by an address typed in another case. Off by default.
    pub add_email_index: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            users: UsersTable::default_names(),
            add_deleted_at: false,
            add_email_index: false,
        }
    }
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Migrated {
    /// Versions and descriptions applied now, in order.
    pub applied: Vec<(i64, String)>,
    /// How many were there already.
    pub already_present: usize,
    /// Changes to the app's tables and advice, one sentence each.
    pub notes: Vec<String>,
}

/// Applies every migration not yet applied to the database at `url`, read
/// from the environment variable `variable` (named in every error).
pub async fn migrate(
    url: &str,
    variable: &'static str,
    options: &Options,
) -> Result<Migrated, MigrateError> {
    migrate_waiting(url, variable, options, LOCK_WAIT).await
}

/// [`migrate`], waiting at most `lock_wait` for the migration lock.
pub async fn migrate_waiting(
    url: &str,
    variable: &'static str,
    options: &Options,
    lock_wait: Duration,
) -> Result<Migrated, MigrateError> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|_| MigrateError::InvalidUrl { variable })?
        // So that a pooler lets us in far enough to be recognised.
        .extra_float_digits(None)
        // As on every connection of ours (see `db::connect_options`).
        .disable_statement_logging();
    let unreachable = |error: sqlx::Error| MigrateError::Unreachable {
        variable,
        // sqlx's own text names the failure, never the URL or password.
        reason: error.to_string(),
    };
    if !is_a_session(&connect).await.map_err(unreachable)? {
        return Err(MigrateError::ThroughPooler { variable });
    }

    let mut conn = PgConnection::connect_with(&connect)
        .await
        .map_err(unreachable)?;
    // A session setting is right here: this connection is a session.
    conn.execute(format!("set lock_timeout = '{}ms'", lock_wait.as_millis().max(1)).as_str())
        .await
        .map_err(unreachable)?;
    let migrated = apply(&mut conn, options)
        .await
        .map_err(|error| match error {
            MigrateError::Migrate(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(
                db,
            ))) if db.code().as_deref() == Some("55P03") => {
                MigrateError::LockHeld { waited: lock_wait }
            }
            other => other,
        })?;
    let _ = conn.close().await;
    Ok(migrated)
}

/// Applies the migrations on `conn`, which must be a session of its own
/// (sqlx holds an advisory lock for the run): the dev server's embedded
/// database and the tests call this directly.
pub async fn apply(conn: &mut PgConnection, options: &Options) -> Result<Migrated, MigrateError> {
    let mut migrated = Migrated::default();
    // Our migrator keeps its `_sqlx_migrations` in our schema: it creates
    // that table in the first schema of the search path.
    conn.execute(
        "create schema if not exists account_deletion; set search_path to account_deletion",
    )
    .await?;
    let ours = run(conn, &MIGRATOR, &mut migrated).await;
    conn.execute("reset search_path").await?;
    ours?;

    let users = &options.users;
    let wanted = match &users.schema {
        Some(schema) => format!("{}.{}", schema.quoted(), users.name.quoted()),
        None => users.name.quoted(),
    };
    let exists: bool = sqlx::query_scalar("select to_regclass($1) is not null")
        .bind(&wanted)
        .fetch_one(&mut *conn)
        .await?;
    if users.is_default() && (!exists || app_migrations_applied(conn).await?) {
        run(conn, &APP_MIGRATOR, &mut migrated).await?;
    } else if !exists {
        return Err(MigrateError::Schema {
            variable: "USERS_TABLE",
            reason: format!(
                "no table {} in the database: create it with the app's own migrations first \
                 (names are case-sensitive; Prisma's is \"User\", SCHEMA_PRESET=prisma)",
                users.display_name()
            ),
        });
    }
    if options.add_deleted_at {
        add_deleted_at(conn, &wanted, &users.deleted_at, &mut migrated).await?;
    }
    // Everything the functions will check, checked now.
    let catalog = schema::inspect(conn, users, None, false).await?;
    if !catalog.deleted_at_indexed {
        migrated.notes.push(format!(
            "{} has no index on {}: every purge batch will scan the table. Add one with the \
             app's migrations (Prisma: @@index([{}])), or run `cargo dev migrate --add-deleted-at`",
            catalog.users, catalog.deleted_at, catalog.deleted_at
        ));
    }
    if options.add_email_index {
        add_email_index(conn, &wanted, &users.email, &mut migrated).await?;
    } else if !has_email_index(conn, &wanted, &users.email).await? {
        migrated.notes.push(format!(
            "{} has no index on lower(btrim({})): support's look-up by an address typed in \
             another case reads the whole table. Add one with the app's migrations (create \
             index on {wanted} (lower(btrim({}::text)))), or run `cargo dev migrate \
             --add-email-index`",
            catalog.users,
            users.email,
            users.email.quoted()
        ));
    }
    Ok(migrated)
}

/// [`apply`] with the default options, as a boxed future for harnesses that
/// take a function (the tests' and benchmarks' template database). Panics on
/// failure.
pub fn apply_defaults(
    conn: &mut PgConnection,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
    Box::pin(async move {
        apply(conn, &Options::default())
            .await
            .expect("the migrations apply to an empty database");
    })
}

async fn run(
    conn: &mut PgConnection,
    migrator: &Migrator,
    migrated: &mut Migrated,
) -> Result<(), MigrateError> {
    let before = applied_versions(conn).await?;
    migrator.run(&mut *conn).await?;
    migrated.already_present += migrator
        .iter()
        .filter(|m| before.contains(&m.version))
        .count();
    migrated.applied.extend(
        migrator
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| (m.version, m.description.to_string())),
    );
    Ok(())
}

/// The version of the migration that creates our `users` and `sessions`
/// (`migrations/app/`): where `public._sqlx_migrations` lists it, those two
/// tables are ours.
#[must_use]
pub fn first_app_migration() -> i64 {
    APP_MIGRATOR.iter().next().map_or(0, |m| m.version)
}

/// Whether `migrations/app/` created the users table (then later versions of
/// it apply too).
async fn app_migrations_applied(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let first = first_app_migration();
    let tracked: bool =
        sqlx::query_scalar("select to_regclass('public._sqlx_migrations') is not null")
            .fetch_one(&mut *conn)
            .await?;
    if !tracked {
        return Ok(false);
    }
    sqlx::query_scalar(
        "select exists (select 1 from public._sqlx_migrations where version = $1 and success)",
    )
    .bind(first)
    .fetch_one(conn)
    .await
}

/// `--add-deleted-at`: the column (nullable `timestamptz`) and an index on
/// it, each only if missing. The index is built `concurrently`, so a large
/// users table stays writable meanwhile.
async fn add_deleted_at(
    conn: &mut PgConnection,
    table: &str,
    column: &Ident,
    migrated: &mut Migrated,
) -> Result<(), MigrateError> {
    let has_column: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_attribute
                        where attrelid = to_regclass($1) and attname = $2 and attnum > 0
                          and not attisdropped)",
    )
    .bind(table)
    .bind(column.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if !has_column {
        conn.execute(
            format!(
                "alter table {table} add column {} timestamptz",
                column.quoted()
            )
            .as_str(),
        )
        .await?;
        migrated.notes.push(format!(
            "added the column {column} (timestamptz, null) to {table}"
        ));
    }
    let has_index: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_index i join pg_attribute a
                          on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                        where i.indrelid = to_regclass($1) and a.attname = $2)",
    )
    .bind(table)
    .bind(column.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if !has_index {
        let index = index_name(conn, table, column, "_del_idx").await?;
        conn.execute(
            format!(
                "create index concurrently if not exists {} on {table} ({col}) where {col} is not null",
                index.quoted(),
                col = column.quoted()
            )
            .as_str(),
        )
        .await?;
        migrated
            .notes
            .push(format!("created the index {index} on {table} ({column})"));
    }
    Ok(())
}

/// The name of a new index on `table`'s `column`: `<table>_<column>` and
/// `suffix`, within PostgreSQL's 63 bytes.
async fn index_name(
    conn: &mut PgConnection,
    table: &str,
    column: &Ident,
    suffix: &str,
) -> Result<Ident, sqlx::Error> {
    let name: String = sqlx::query_scalar(
        "select left(c.relname || '_' || $2, 63 - length($3)) || $3 from pg_class c where c.oid = to_regclass($1)",
    )
    .bind(table)
    .bind(column.as_str())
    .bind(suffix)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Ident::from_catalog(name))
}

/// Whether an index of `table` is on the address as support's look-up
/// folds it (`lower(btrim(email))`).
async fn has_email_index(
    conn: &mut PgConnection,
    table: &str,
    column: &Ident,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (
             select 1 from pg_index i
             where i.indrelid = to_regclass($1)
               and regexp_replace(pg_get_expr(i.indexprs, i.indrelid), '[()\"]|::text', '', 'g')
                   = 'lowerbtrim' || $2)",
    )
    .bind(table)
    .bind(column.as_str())
    .fetch_one(&mut *conn)
    .await
}

/// `--add-email-index`: an index on `lower(btrim(email))`, only if missing,
/// built `concurrently` so a large users table stays writable meanwhile.
async fn add_email_index(
    conn: &mut PgConnection,
    table: &str,
    column: &Ident,
    migrated: &mut Migrated,
) -> Result<(), MigrateError> {
    if has_email_index(conn, table, column).await? {
        return Ok(());
    }
    let index = index_name(conn, table, column, "_folded_idx").await?;
    conn.execute(
        format!(
            "create index concurrently if not exists {} on {table} (lower(btrim({}::text)))",
            index.quoted(),
            column.quoted()
        )
        .as_str(),
    )
    .await?;
    migrated.notes.push(format!(
        "created the index {index} on {table} (lower(btrim({column})))"
    ));
    Ok(())
}

/// Whether a connection to `options` is one server session from start to
/// end, as a direct connection (or a session-mode pooler) is.
///
/// Two clients: the first holds a transaction open, pinning its server
/// connection; the second asks for its backend while the first holds on,
/// twice more after it lets go, and the first asks once more. A direct
/// server answers each client from its own backend every time. A
/// transaction pooler either keeps the second waiting (no free server
/// connection) or moves a client to another backend: one that hands out the
/// connection freed last (PgBouncer's default) gives the second client the
/// first one's, and one that hands out the connection idle longest
/// (`server_round_robin`) moves the second client between its two asks.
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
    let again = backend(&mut probe).await?;
    let holder_after = backend(&mut holder).await?;
    let _ = holder.close().await;
    let _ = probe.close().await;
    Ok(before != held && before == after && after == again && holder_after == held)
}

/// The server process behind a connection, asked with the simple protocol
/// (nothing prepared, so a pooler serves it like any other client).
async fn backend(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    conn.fetch_one("select pg_backend_pid()").await?.try_get(0)
}

/// The versions applied to the database `conn` is a session of, as listed
/// in the `_sqlx_migrations` its search path finds first.
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
