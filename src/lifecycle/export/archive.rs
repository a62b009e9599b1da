//! One archive, read in one snapshot and written as it is read.
//!
//! [`Snapshot::open`] starts a read-only `REPEATABLE READ` transaction and
//! reads what the archive needs before any byte is sent (the account, the
//! catalog): an account that is gone is a plain answer, not a torn body.
//! [`Snapshot::write`] then streams each table's rows, one JSON text per
//! row as PostgreSQL's `to_jsonb` renders it, into the ZIP, and ends with
//! the account's history and the manifest (last, so it carries the row
//! counts). Memory holds one chunk of rows at a time, whatever the size of
//! the account.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

use super::tables::{self, Source};
use super::zip::{ZipError, ZipWriter};
use crate::config::{ExcludedColumns, RetentionDays};
use crate::lifecycle::account_view::{self, AccountView, Status};
use crate::platform::db::{self, Limits};
use crate::platform::time::rfc3339;
use crate::platform::web::BodySender;
use crate::schema::sql::Statements;
use crate::schema::{SchemaError, UserId};

pub const FORMAT: &str = "account-export/1";

/// Rows gathered before they are compressed.
const ROWS_BUFFER_BYTES: usize = 32 * 1024;

/// A download's transaction: it reads, and only reads, for as long as the
/// client takes (the function's `maxDuration` ends it first). A statement
/// streams one table's rows at the client's pace, so its limit is the
/// longest a function may run; a client that stops reading between two
/// tables for a minute loses its download.
fn limits() -> Limits {
    Limits::new(
        Duration::from_secs(2),
        Duration::from_secs(900),
        Duration::from_secs(60),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the account's rows: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Zip(#[from] ZipError),
}

impl ExportError {
    /// The client stopped reading: nothing went wrong on our side.
    pub fn client_gone(&self) -> bool {
        matches!(self, Self::Zip(ZipError::Gone(_)))
    }
}

/// What an archive held, for the log and `cargo dev account … export`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub user_id: String,
    pub generated_at: String,
    pub status: Status,
    pub deleted_at: Option<String>,
    pub purge_after: Option<String>,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableEntry {
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub key: Option<String>,
    pub excluded_columns: Vec<String>,
}

/// The archive's transaction, opened, with what it read first.
pub struct Snapshot {
    tx: Transaction<'static, Postgres>,
    user: UserId,
    view: AccountView,
    generated_at: DateTime<Utc>,
    sources: Vec<Source>,
}

impl Snapshot {
    /// The snapshot of `user`'s account; `None` when there is no such
    /// account now, or it is erased (anonymized: its person is gone).
    pub async fn open(
        pool: &PgPool,
        sql: &Statements,
        user: &UserId,
        retention: RetentionDays,
        excluded: &ExcludedColumns,
    ) -> Result<Option<Self>, SchemaError> {
        let mut tx = db::begin_snapshot(pool, &limits()).await?;
        let generated_at: DateTime<Utc> =
            db::query_scalar("select now()").fetch_one(&mut *tx).await?;
        let view = match account_view::read_view(&mut tx, sql, user, retention).await? {
            Some(view) if view.status != Status::Erased => view,
            _ => return Ok(None),
        };
        let sources = tables::sources(&mut tx, &sql.catalog, excluded).await?;
        Ok(Some(Self {
            tx,
            user: user.clone(),
            view,
            generated_at,
            sources,
        }))
    }

    /// A file name for the archive: the app's users' id and the day.
    pub fn file_name(&self) -> String {
        let id: String = self
            .user
            .as_str()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        format!(
            "account-export-{id}-{}.zip",
            self.generated_at.format("%Y-%m-%d")
        )
    }

    /// Streams the archive into `sink`; on an error the body is torn (cut
    /// before its end), so no client takes it for a whole archive.
    pub async fn stream(self, sink: BodySender) -> Result<Manifest, ExportError> {
        let tear = sink.clone();
        let written = self.write(sink).await;
        if written.is_err() {
            tear.tear().await;
        }
        written
    }

    async fn write(self, sink: BodySender) -> Result<Manifest, ExportError> {
        let Self {
            mut tx,
            user,
            view,
            generated_at,
            sources,
        } = self;
        let mut zip = ZipWriter::new(sink, generated_at);
        let mut entries = Vec::with_capacity(sources.len());
        let mut buffer = Vec::with_capacity(ROWS_BUFFER_BYTES * 2);
        for source in &sources {
            zip.start(&source.file).await?;
            let mut rows: u64 = 0;
            let mut stream = db::query_scalar::<String>(&source.select)
                .bind(user.as_str())
                .fetch(&mut *tx);
            while let Some(row) = stream.try_next().await? {
                buffer.extend_from_slice(row.as_bytes());
                buffer.push(b'\n');
                rows += 1;
                if buffer.len() >= ROWS_BUFFER_BYTES {
                    zip.write(&buffer).await?;
                    buffer.clear();
                }
            }
            drop(stream);
            zip.write(&buffer).await?;
            buffer.clear();
            entries.push(TableEntry {
                table: source.table.to_string(),
                file: source.file.clone(),
                rows,
                key: source.key_name(),
                excluded_columns: source.excluded.clone(),
            });
        }
        // Every row is read: the snapshot ends here, before the rest is sent
        // to a client that may be slow (the history was read when it opened).
        tx.rollback().await?;
        zip.start("history.json").await?;
        zip.write(&serde_json::to_vec_pretty(&view.history).expect("history serializes"))
            .await?;
        let manifest = Manifest {
            format: FORMAT,
            user_id: view.user_id.clone(),
            generated_at: rfc3339(generated_at),
            status: view.status,
            deleted_at: view.deleted_at.clone(),
            purge_after: view.purge_after.clone(),
            tables: entries,
        };
        zip.start("manifest.json").await?;
        zip.write(&serde_json::to_vec_pretty(&manifest).expect("manifest serializes"))
            .await?;
        // Nothing fails after this: a body whose end record is sent is whole.
        zip.finish().await?;
        Ok(manifest)
    }
}
