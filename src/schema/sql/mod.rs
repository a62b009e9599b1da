//! Every statement that touches the app's tables, rendered once per process
//! from what the catalog says about them ([`schema::Catalog`]): the users
//! table's name and columns, the id's type (a user id travels as text and is
//! cast to it), whether deleted-at is naive UTC time, the sign-in's sessions
//! table, and the foreign keys that keep a user from being deleted.
//!
//! Statements on this project's own tables (`account_deletion.*`) do not
//! depend on the app and stay constants next to the code that runs them.
//!
//! Time: a `timestamp without time zone` column holds UTC wall-clock time
//! (the way Prisma writes `DateTime`). It is read as `col at time zone 'UTC'`
//! and compared with `(value at time zone 'UTC')`: the conversion sits on
//! the value, never on the column, so the comparison is right whatever the
//! session's `TimeZone` and still an index condition.
//!
//! It may import `platform::db`, the schema's names and types, and
//! `inspect` (which [`AppTables`] reads the catalog with); nothing that
//! runs the statements.

mod account;
mod anonymize;
mod counts;
mod emails;
mod export;
mod names;
mod prune;
mod purge;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::platform::db::{self, Limits, Statement};
pub use export::{DOWNLOADS_PER_LINK, ExportStatements};

use crate::schema::{self, Catalog, SchemaError, SessionTable, UsersTable};
use names::Names;

/// The most user ids one `account.purged` event carries: about 40 KB of
/// body with uuids, 70 KB with 64-character ids. A batch that deleted more
/// writes several events (the purge batch slices its ids into them).
const IDS_PER_EVENT: usize = 1000;

/// The purge gate, a transaction-scoped advisory lock (so it works through
/// a transaction pooler, and goes with the transaction whatever happens to
/// it): every purge batch takes it shared, before its main statement; a
/// hold takes it exclusively, so that no batch whose snapshot predates the
/// hold can still be running when the hold commits. The key pair is this
/// project's own (`account_deletion` as two int4s, `0x61636364`,
/// `0x656c6574`), unlikely to meet an app's.
pub const GATE_SHARED: &str = "select pg_advisory_xact_lock_shared(1633903460, 1701602676)";
pub const GATE_EXCLUSIVE: &str = "select pg_advisory_xact_lock(1633903460, 1701602676)";

/// What the statements record besides the change itself, as configured:
/// account events for the webhook (`WEBHOOK_URL`), and the purge's
/// "your account has been erased" email (`SEND_ERASED_EMAIL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Records {
    pub events: bool,
    pub erased_email: bool,
}

/// The rendered statements, and the catalog they were rendered from.
#[derive(Debug)]
pub struct Statements {
    pub catalog: Catalog,
    pub records: Records,
    /// The soft delete of user `$1` (text), with `$2` retention days, `$3`
    /// the new recovery token's hash, `$4` the email's (and event's) claim
    /// in seconds; returns the email's id, the user's id and address (both
    /// null for an account without an address), when it was deleted and will
    /// be purged, and the event's id (null when events are off).
    pub delete_account: Statement,
    /// The user session token `$1` (its SHA-256 for our `sessions`, the
    /// token itself for Auth.js) signs in, if the session is live and the
    /// user exists, deleted or not (each route decides what a deleted user
    /// may do). `None` when the sign-in uses no table.
    pub session_user: Option<Statement>,
    /// User `$1`'s deletion as the signed-in user sees it (`$2` retention
    /// days): deleted-at and purge-after (null when active), and whether
    /// it is restorable (the user's own deletion, in its grace period, not
    /// anonymized). No row when there is no such user.
    pub deletion_state: Statement,
    /// Restores user `$1` (`$2` retention days) if it is soft-deleted,
    /// inside its grace period and not anonymized, and, for `own`, only if
    /// the user made the deletion before `$3` (the credential's issue, or
    /// null); returns the id and address. The purge's re-check on its
    /// locked row keeps the two from both winning, as with the link.
    pub restore_own: String,
    pub restore_any: String,
    /// User `$1` (`$2` retention days) locked for an operator's action:
    /// id, address, deleted-at, purge-after, whether the user made the
    /// deletion, whether it is in its grace period.
    pub lock_account: String,
    /// The users whose address is `$1` exactly (at most 20 ids; more than
    /// one only without a unique index).
    pub account_by_email: String,
    /// The users whose address is `$1` but for case and surrounding spaces
    /// (at most 20 ids), for when none is exactly.
    pub account_by_folded_email: String,
    /// User `$1`'s deleted-at, purge-after (`$2` retention days) and
    /// whether the user made the deletion, for support's view.
    pub account_state: String,
    /// User `$1`'s id as the database writes it, if there is such a user.
    pub account_id: String,
    /// Records the soft-deleted accounts of a range of deleted-at that the
    /// app deleted by itself (no deletion of theirs in the history) as
    /// deleted by the app ([`emails::record_app_deletions`]).
    pub record_app_deletions: String,
    /// When the account recovery token `$1` can restore will be purged
    /// (`$2` retention days).
    pub recoverable_until: Statement,
    /// The restore: token `$1`, `$2` retention days; returns the user's id
    /// and address (null when it has none).
    pub recover: String,
    /// The account an outbox email `$1` is about, locked, if it is still in
    /// the deletion the email is about (`$2` retention days).
    pub email_account: String,
    /// Queues the reminders that are due (`$1` retention days, `$2` days
    /// before the purge), for accounts with an address.
    pub queue_reminders: String,
    /// One purge batch; see [`purge::purge_batch`] for its shape.
    pub purge_batch: Statement,
    /// One anonymizing batch, when anonymizing is on and some key can
    /// block; see [`anonymize::anonymize_batch`].
    pub anonymize_batch: Option<Statement>,
    /// Forgets the anonymized marks of accounts that are gone (the purge
    /// batch forgets those it deletes; these are the ones the app deleted
    /// itself), in one slice of at most `$2` marks after the mark `$1`
    /// (null: from the start): how many went, how many it walked and the
    /// last it walked.
    pub prune_anonymized: String,
    /// Forgets tombstones past their keep (`$2` days), at most `$1` of
    /// them, and with each the history of its account when the account is
    /// gone and nothing of its history is younger than the keep.
    pub prune_tombstones: String,
    /// Forgets the history of accounts that are gone without a tombstone
    /// (the app deleted them itself), in one slice of at most `$2` accounts
    /// after `$1` (null: from the start), once nothing of it is younger
    /// than `$3` days: how many rows went, how many accounts it walked and
    /// the last it walked. An account that still exists keeps all of its
    /// history (its own deletion says whether it may be restored, and by
    /// whom it was made).
    pub prune_history: String,
    /// What a walk of the purge reads of the holds when it starts
    /// ([`purge::held_at_start`]).
    pub held_at_start: String,
    /// The names of the blocking keys along which rows reference user `$1`
    /// (text[]; empty when none do).
    pub blocked_by: String,
    /// Expired accounts at cutoff `$1` whose key lies after (`$3`, `$4`)
    /// and up to (`$5`, `$6`) (each bound null: open): how many the purge
    /// can delete, how many are blocked, how many each blocking path
    /// blocks, how many are overdue (`$2` hours past the cutoff), the
    /// oldest one's seconds past its retention, how many are held (none of
    /// the others), and how many are anonymized and still kept by their
    /// references.
    pub count_expired: String,
    /// A slice of a walk over the deleted-at key ([`counts::slice`]).
    pub slice: String,
    /// How many accounts (at most `$3`) lie at or below key (`$1`, `$2`).
    pub count_below: String,
    /// Soft-deleted accounts still in their grace period at cutoff `$1`.
    pub count_pending: String,
    /// Makes the accounts among ids `$1` (text[]) that are present due for
    /// the purge at cutoff `$2`, and due for its next run's rechecks;
    /// returns how many are present.
    pub make_due: String,
    /// The export's requests and links.
    pub export: ExportStatements,
}

impl Statements {
    #[must_use]
    pub fn render(catalog: Catalog, records: Records) -> Self {
        let t = Names::new(&catalog);
        Self {
            delete_account: Statement::new(account::delete_account(&t, &catalog, records)),
            session_user: catalog
                .sessions
                .as_ref()
                .map(|sessions| Statement::new(account::session_user(&t, sessions))),
            deletion_state: Statement::new(account::deletion_state(&t)),
            restore_own: account::restore_by_id(&t, true),
            restore_any: account::restore_by_id(&t, false),
            lock_account: account::lock_account(&t),
            account_by_email: account::account_by_email(&t, false),
            account_by_folded_email: account::account_by_email(&t, true),
            account_state: account::account_state(&t),
            account_id: account::account_id(&t),
            record_app_deletions: emails::record_app_deletions(&t),
            recoverable_until: Statement::new(account::recoverable_until(&t)),
            recover: account::recover(&t),
            email_account: emails::email_account(&t),
            queue_reminders: emails::queue_reminders(&t),
            purge_batch: Statement::new(purge::purge_batch(
                &t,
                &catalog.blocking,
                catalog.verification_tokens.as_ref(),
                records,
            )),
            count_expired: counts::count_expired(&t, &catalog.blocking),
            blocked_by: counts::blocked_by(&t, &catalog.blocking),
            anonymize_batch: anonymize::anonymize_batch(&t, &catalog, records).map(Statement::new),
            held_at_start: purge::held_at_start(&t),
            prune_anonymized: prune::prune_anonymized(&t),
            prune_tombstones: prune::prune_tombstones(&t),
            prune_history: prune::prune_history(&t),
            slice: counts::slice(&t),
            count_below: counts::count_below(&t),
            count_pending: counts::count_pending(&t),
            make_due: purge::make_due(&t),
            export: ExportStatements::render(&t),
            catalog,
            records,
        }
    }
}

/// The app's tables as a route sees them: named by the configuration,
/// checked against the catalog and rendered on first use, then kept for the
/// life of the process. A failed check is not kept, so a table created
/// meanwhile is found on the next request.
#[derive(Debug)]
pub struct AppTables {
    users: UsersTable,
    sessions: Option<SessionTable>,
    records: Records,
    /// Render the anonymizing batch (`ERASE_BLOCKED=anonymize`, and
    /// re-erasure after a restore), checking `ANONYMIZE_COLUMNS`.
    anonymizing: bool,
    rendered: RwLock<Option<Arc<Statements>>>,
}

impl AppTables {
    #[must_use]
    pub fn new(users: UsersTable, sessions: Option<SessionTable>) -> Self {
        Self {
            users,
            sessions,
            records: Records::default(),
            anonymizing: false,
            rendered: RwLock::new(None),
        }
    }

    /// Statements that can also anonymize accounts the app must keep.
    #[must_use]
    pub fn anonymizing(mut self, anonymizing: bool) -> Self {
        self.anonymizing = anonymizing;
        self
    }

    /// Statements that also record `records`.
    #[must_use]
    pub fn recording(mut self, records: Records) -> Self {
        self.records = records;
        self
    }

    /// The statements, reading the catalog the first time.
    pub async fn statements(&self, pool: &PgPool) -> Result<Arc<Statements>, SchemaError> {
        if let Some(rendered) = self.rendered.read().await.as_ref() {
            return Ok(Arc::clone(rendered));
        }
        self.reload(pool).await
    }

    /// Reads the catalog again (a foreign key may have been added since)
    /// and renders every statement anew.
    pub async fn reload(&self, pool: &PgPool) -> Result<Arc<Statements>, SchemaError> {
        let mut rendered = self.rendered.write().await;
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let catalog = schema::inspect(&mut tx, &self.users, self.sessions, self.anonymizing).await;
        tx.commit().await?;
        let statements = Arc::new(Statements::render(catalog?, self.records));
        *rendered = Some(Arc::clone(&statements));
        Ok(statements)
    }
}
