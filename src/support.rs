//! What support can see of an account and do for it: look it up by address
//! or id (an erased one by its id only, each resolved by
//! [`crate::resolve`]), restore it, resend its link, hold it, release it,
//! erase it now. The admin route and `cargo dev account`
//! both call these, so an operator with database access and one with the
//! admin secret do exactly the same things.
//!
//! The rules, each in the same transaction as the change:
//! - `restore`: any soft-deleted account in its grace period, one the app
//!   deleted by itself included, with the recovery link's guarantees.
//! - `resend_recovery_link`: a fresh link by email, for a deletion the user
//!   made, in its grace period; the older links stop working.
//! - `hold`: on any existing account; no erasure happens while it stands
//!   (it takes the purge gate, see [`crate::sql::GATE_SHARED`]).
//! - `release`: lifts a hold.
//! - `erase_now`: [`crate::purge::erase_now`].
//! - `export`: emails the holder a link to a copy of their data
//!   ([`crate::export`]), as the user's own request does, without its
//!   once-a-day limit.
//!
//! Every step is in the account's history, with a time, an actor and a
//! code, never an address, an IP or free text.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::accounts::{self, NotRestored, Restoration, Via};
use crate::config::{EraseBlocked, MailConfig, RetentionDays, SupportConfig};
use crate::db::{self, Limits};
use crate::events::{self, PendingEvent};
use crate::export::{self, ExcludedColumns, NotRequested, Requester, Snapshot};
use crate::outbox::{self, EmailKind, PendingEmail};
use crate::purge::{self, LockedAccount, NotErased};
use crate::resolve::{self, Unresolved, Who};
use crate::schema::{SchemaError, UserId};
use crate::sql::{AppTables, GATE_EXCLUSIVE, Records, Statements};
use crate::tokens::RecoveryToken;
use crate::webhook::Webhook;

/// Why an account is held: a short code (`legal_hold`, `dispute-4411`),
/// `[a-z0-9_-]{1,40}`, never free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldReason(String);

impl HoldReason {
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=40).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        valid.then(|| Self(raw.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an operator can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Changes nothing: the account as it stands.
    Show,
    Restore,
    ResendRecoveryLink,
    Hold(HoldReason),
    Release,
    EraseNow,
    /// Emails the account's holder a link to a copy of their data.
    Export,
}

impl Action {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Show => "show",
            Self::Restore => "restore",
            Self::ResendRecoveryLink => "resend_recovery_link",
            Self::Hold(_) => "hold",
            Self::Release => "release",
            Self::EraseNow => "erase_now",
            Self::Export => "export",
        }
    }
}

/// Why an action did not apply; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The input is no id of the id column's type, or a blank address.
    Invalid,
    NotFound,
    /// Several accounts match the address equally: their ids.
    Ambiguous(Vec<String>),
    NotDeleted,
    NotRestorable,
    /// A link cannot reach an account without an address.
    NoAddress,
    Held,
    /// Rows that must not go with the account reference it, along these keys.
    Blocked(Vec<String>),
}

impl Refused {
    /// The answer's code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid => "invalid_request",
            Self::NotFound => "not_found",
            Self::Ambiguous(_) => "ambiguous",
            Self::NotDeleted => "not_deleted",
            Self::NotRestorable => "not_restorable",
            Self::NoAddress => "no_address",
            Self::Held => "held",
            Self::Blocked(_) => "blocked",
        }
    }

    /// Why, in a sentence for the operator (a blocking key by its name).
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::Invalid => "The user id is no id of the users table's type, or the address is \
                              blank."
                .to_owned(),
            Self::NotFound => "There is no such account.".to_owned(),
            Self::Ambiguous(ids) => format!(
                "{} accounts match this address equally well; name one by its user id.",
                ids.len()
            ),
            Self::NotDeleted => "The account is not deleted.".to_owned(),
            Self::NotRestorable => "The account cannot be restored or sent a link: its grace \
                                    period has ended, it has been anonymized, or (for a link) \
                                    the deletion was not made by its owner."
                .to_owned(),
            Self::NoAddress => {
                "The account has no email address for a link to go to; restore it instead."
                    .to_owned()
            }
            Self::Held => "The account is held; release it first.".to_owned(),
            Self::Blocked(keys) => format!(
                "Rows that must not go with the account reference it ({}); delete them or give \
                 the key a delete action first.",
                keys.join(", ")
            ),
        }
    }
}

impl From<Unresolved> for Refused {
    fn from(unresolved: Unresolved) -> Self {
        match unresolved {
            Unresolved::Invalid => Self::Invalid,
            Unresolved::NotFound => Self::NotFound,
            Unresolved::Ambiguous(ids) => Self::Ambiguous(ids),
        }
    }
}

/// An account as support sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub user_id: String,
    pub status: Status,
    pub deleted_at: Option<String>,
    pub purge_after: Option<String>,
    pub deleted_by: Option<&'static str>,
    pub hold: Option<Hold>,
    pub history: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Scheduled,
    Erased,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub reason: String,
    pub since: String,
}

/// One step of an account's deletion life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub at: String,
    pub action: String,
    pub by: String,
    /// For `restored`: how (`link`, `sign_in`, `admin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// For `held`: the reason's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An action done: the account as it is now, and what it sends.
#[derive(Debug)]
pub struct Acted {
    pub view: AccountView,
    pub sends: Sends,
}

/// What an operator's request came to, and the account's id as the
/// database holds it (for a log line; `None` when the input named no
/// account on record, whose id as typed may be anything, an address too).
#[derive(Debug)]
pub struct Answer {
    pub user_id: Option<String>,
    pub outcome: Result<Acted, Refused>,
}

impl Answer {
    fn refused(user_id: Option<String>, refused: Refused) -> Self {
        Self {
            user_id,
            outcome: Err(refused),
        }
    }
}

/// What an action queued to send (after the answer, on the route).
#[derive(Debug, Default)]
pub struct Sends {
    pub email: Option<PendingEmail>,
    pub event: Option<PendingEvent>,
    /// Events are due (an erasure's `account.purged`).
    pub events_due: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("support database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Schema(SchemaError),
}

impl From<SchemaError> for SupportError {
    fn from(error: SchemaError) -> Self {
        match error {
            SchemaError::Database(error) => Self::Database(error),
            misconfigured @ SchemaError::Misconfigured { .. } => Self::Schema(misconfigured),
        }
    }
}

/// Support's tools on one database.
pub struct Support {
    pub pool: PgPool,
    tables: AppTables,
    retention: RetentionDays,
    mail: MailConfig,
    webhook: Option<Arc<Webhook>>,
    erase_blocked: EraseBlocked,
    export_exclude: ExcludedColumns,
}

/// An operator's transaction: it may wait for a purge batch in flight (a
/// hold waits for all of them), so its lock wait is the batch's own limit.
fn limits() -> Limits {
    Limits::new(
        Duration::from_secs(5),
        Duration::from_secs(30),
        Duration::from_secs(10),
    )
}

impl Support {
    /// On `pool`, or a small pool of its own.
    #[must_use]
    pub fn new(config: SupportConfig, pool: Option<PgPool>) -> Self {
        Self {
            pool: pool.unwrap_or_else(|| crate::db::lazy_pool(config.database.clone(), 3)),
            tables: AppTables::new(config.users, None)
                .recording(Records {
                    events: config.webhook.is_some(),
                    erased_email: config.erased_email,
                })
                .anonymizing(config.erase_blocked == EraseBlocked::Anonymize),
            retention: config.retention,
            mail: config.mail,
            webhook: config.webhook.map(Arc::new),
            erase_blocked: config.erase_blocked,
            export_exclude: config.export_exclude,
        }
    }

    /// The statements, checking the app's tables the first time.
    pub async fn statements(&self) -> Result<Arc<Statements>, SchemaError> {
        self.tables.statements(&self.pool).await
    }

    /// Does `action` to the account `who` names, and shows it afterwards.
    pub async fn act(&self, who: &Who, action: &Action) -> Result<Answer, SupportError> {
        let sql = self.statements().await?;
        let account = match resolve::resolve(&self.pool, &sql, who).await? {
            Ok(account) => account,
            Err(unresolved) => return Ok(Answer::refused(None, unresolved.into())),
        };
        let user = &account.id;
        let read_back = account.present.then(|| user.as_str().to_owned());
        let mut sends = Sends::default();
        let done = match action {
            Action::Show => Ok(()),
            Action::Restore => {
                match accounts::restore(&self.pool, &sql, user, self.retention, Via::Admin, None)
                    .await?
                {
                    Ok(Restoration { email, event, .. }) => {
                        sends.email = email;
                        sends.event = event;
                        Ok(())
                    }
                    Err(NotRestored::NoSuchUser) => Err(Refused::NotFound),
                    Err(NotRestored::NotDeleted) => Err(Refused::NotDeleted),
                    Err(NotRestored::NotRestorable) => Err(Refused::NotRestorable),
                }
            }
            Action::ResendRecoveryLink => self.resend_link(&sql, user).await?.map(|email| {
                sends.email = Some(email);
            }),
            Action::Hold(reason) => self.hold(&sql, user, reason).await?,
            Action::Export => {
                match export::link::request(&self.pool, &sql, user, Requester::Admin).await? {
                    Ok(requested) => {
                        sends.email = Some(requested.email);
                        sends.event = requested.event;
                        Ok(())
                    }
                    // Not here, or anonymized: nobody's data to copy.
                    Err(NotRequested::NoSuchUser) => Err(Refused::NotFound),
                    Err(NotRequested::NoAddress) => Err(Refused::NoAddress),
                    Err(NotRequested::RateLimited { .. }) => {
                        unreachable!("an operator's request is not rate limited")
                    }
                }
            }
            Action::Release => self.release(&sql, user).await?,
            Action::EraseNow => {
                match purge::erase_now(&self.pool, &sql, user, self.erase_blocked).await? {
                    Ok(()) => {
                        sends.events_due = true;
                        Ok(())
                    }
                    Err(NotErased::NoSuchUser) => Err(Refused::NotFound),
                    Err(NotErased::NotDeleted) => Err(Refused::NotDeleted),
                    Err(NotErased::Held) => Err(Refused::Held),
                    Err(NotErased::Blocked(keys)) => Err(Refused::Blocked(keys)),
                }
            }
        };
        if let Err(refused) = done {
            let user_id = if refused == Refused::NotFound {
                None
            } else {
                read_back
            };
            return Ok(Answer::refused(user_id, refused));
        }
        // An account erased by this very action is still on record; one
        // the app deleted itself meanwhile may not be. An absent account
        // found on record has its id in our tables.
        Ok(match self.view(&sql, user).await? {
            Some(view) => Answer {
                user_id: Some(view.user_id.clone()),
                outcome: Ok(Acted { view, sends }),
            },
            None => Answer::refused(None, Refused::NotFound),
        })
    }

    /// The snapshot of the account `who` names, for an operator with
    /// database access to write its archive (`cargo dev account … export`;
    /// [`Self::record_exported`] once it is written).
    pub async fn open_archive(&self, who: &Who) -> Result<Result<Snapshot, Refused>, SupportError> {
        let sql = self.statements().await?;
        let account = match resolve::resolve(&self.pool, &sql, who).await? {
            Ok(account) if account.present => account,
            Ok(_) => return Ok(Err(Refused::NotFound)),
            Err(unresolved) => return Ok(Err(unresolved.into())),
        };
        Ok(Snapshot::open(
            &self.pool,
            &sql,
            &account.id,
            self.retention,
            &self.export_exclude,
        )
        .await?
        .ok_or(Refused::NotFound))
    }

    /// An operator's archive of account `user_id`, written: history
    /// `exported` by `admin`. After the archive, whose snapshot holds its
    /// connection until it is written (the embedded database has only one).
    pub async fn record_exported(&self, user_id: &str) -> Result<(), sqlx::Error> {
        let mut tx = db::begin(&self.pool, &Limits::ACCOUNT).await?;
        record(&mut tx, user_id, "exported", None).await?;
        tx.commit().await
    }

    /// Sends what an action queued: its email, its event, and (after an
    /// erasure) the events that are due. Never fails: each records its own
    /// outcome and is retried by the sweep.
    pub async fn deliver(&self, sql: Arc<Statements>, sends: Sends) {
        let Sends {
            email,
            event,
            events_due,
        } = sends;
        if let Some(email) = email {
            outbox::send(
                self.pool.clone(),
                sql,
                self.mail.clone(),
                self.retention,
                email,
            )
            .await;
        }
        if let Some(webhook) = &self.webhook {
            if let Some(event) = event {
                events::send(self.pool.clone(), Arc::clone(webhook), event).await;
            }
            if events_due {
                events::sweep(&self.pool, webhook, Duration::from_secs(20)).await;
            }
        }
    }

    /// The account as it stands, its hold and its history (the tombstone
    /// of an erased one included), read in one transaction.
    async fn view(
        &self,
        sql: &Statements,
        user: &UserId,
    ) -> Result<Option<AccountView>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &Limits::CRON).await?;
        let view = read_view(&mut tx, sql, user, self.retention).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// A fresh link, by email, for a deletion the user made.
    async fn resend_link(
        &self,
        sql: &Statements,
        user: &UserId,
    ) -> Result<Result<PendingEmail, Refused>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &limits()).await?;
        let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
            .bind(user.as_str())
            .bind(self.retention.days())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id, address, deleted_at, purge_after, made_by_user, in_grace)) = account
        else {
            return Ok(Err(Refused::NotFound));
        };
        let Some((deleted_at, purge_after)) = deleted_at.zip(purge_after) else {
            return Ok(Err(Refused::NotDeleted));
        };
        // Links exist only for deletions the user made, in their grace
        // period: a ban must never turn into one.
        if !made_by_user || !in_grace {
            return Ok(Err(Refused::NotRestorable));
        }
        let Some(address) = address else {
            return Ok(Err(Refused::NoAddress));
        };
        accounts::revoke_tokens(&mut tx, &user_id).await?;
        let email = outbox::queue(
            &mut tx,
            &user_id,
            EmailKind::Recovery,
            &address,
            Some(deleted_at),
        )
        .await?;
        let token = RecoveryToken::generate();
        outbox::insert_token(&mut tx, &user_id, email.id, &token, deleted_at).await?;
        record(&mut tx, &user_id, "link_resent", None).await?;
        tx.commit().await?;
        Ok(Ok(email.with_link(token, purge_after)))
    }

    /// Holds the account: takes the purge gate exclusively (waiting for the
    /// batches in flight, keeping new ones out until it commits), then the
    /// account's row, in the order erasing now takes them.
    async fn hold(
        &self,
        sql: &Statements,
        user: &UserId,
        reason: &HoldReason,
    ) -> Result<Result<(), Refused>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &limits()).await?;
        db::query(GATE_EXCLUSIVE).execute(&mut *tx).await?;
        let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
            .bind(user.as_str())
            .bind(self.retention.days())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id, ..)) = account else {
            return Ok(Err(Refused::NotFound));
        };
        db::query(
            "insert into account_deletion.holds (user_id, reason, since) values ($1, $2, clock_timestamp())
             on conflict (user_id) do update set reason = excluded.reason",
        )
        .bind(&user_id)
        .bind(reason.as_str())
        .execute(&mut *tx)
        .await?;
        record(&mut tx, &user_id, "held", Some(reason.as_str())).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Lifts the account's hold, if it has one (nothing changes otherwise).
    async fn release(
        &self,
        sql: &Statements,
        user: &UserId,
    ) -> Result<Result<(), Refused>, sqlx::Error> {
        let mut tx = db::begin(&self.pool, &limits()).await?;
        let account: Option<LockedAccount> = db::query_as(&sql.lock_account)
            .bind(user.as_str())
            .bind(self.retention.days())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id, _, deleted_at, ..)) = account else {
            return Ok(Err(Refused::NotFound));
        };
        let released = db::query("delete from account_deletion.holds where user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if released > 0 {
            record(&mut tx, &user_id, "released", None).await?;
        }
        if released > 0 && deleted_at.is_some() {
            // It may lie below the purge's watermark, where only the sweep
            // would find it again: the next run looks at it first.
            db::query(
                "insert into account_deletion.rechecks (user_id) values ($1) on conflict (user_id) do nothing",
            )
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }
}

/// The account as support sees it, read on `conn` (one transaction: the
/// caller's, which may be an export's snapshot); `None` when there is no
/// such account and no record of it.
pub(crate) async fn read_view(
    conn: &mut sqlx::PgConnection,
    sql: &Statements,
    user: &UserId,
    retention: RetentionDays,
) -> Result<Option<AccountView>, sqlx::Error> {
    type State = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, bool);
    let state: Option<State> = db::query_as(&sql.account_state)
        .bind(user.as_str())
        .bind(retention.days())
        .fetch_optional(&mut *conn)
        .await?;
    let anonymized: bool = db::query_scalar(
        "select exists (select 1 from account_deletion.anonymized where user_id = $1)",
    )
    .bind(user.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let hold: Option<(String, DateTime<Utc>)> =
        db::query_as("select reason, since from account_deletion.holds where user_id = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let rows: Vec<HistoryRow> = db::query_as(
        "select at, action, by, detail from account_deletion.history
         where user_id = $1 order by at, action",
    )
    .bind(user.as_str())
    .fetch_all(&mut *conn)
    .await?;
    // The purge writes no history of its own (it would cost every
    // erased account an index insert): its tombstone says when. (An
    // anonymization, rarer, writes its own.) The table has no index on
    // ids, so the scan starts at the account's first recorded deletion
    // (its BRIN index on the time skips the rest), or its last one when
    // the account is still here (nothing erased it since); an
    // operator's erasure is in the history already, at the same
    // instant as its tombstone.
    let mut deletions = rows
        .iter()
        .filter(|(_, action, ..)| action == "deleted")
        .map(|(at, ..)| *at);
    let since = if state.is_some() {
        deletions.next_back()
    } else {
        deletions.next()
    };
    // An account that is here and was never deleted was never erased.
    let purged: Vec<DateTime<Utc>> = if state.is_some() && since.is_none() {
        Vec::new()
    } else {
        db::query_scalar(
            "select purged_at from account_deletion.tombstones
             where user_id = $1 and purged_at >= coalesce($2, '-infinity'::timestamptz)
               and not anonymized",
        )
        .bind(user.as_str())
        .bind(since)
        .fetch_all(&mut *conn)
        .await?
    };
    if state.is_none() && rows.is_empty() && purged.is_empty() {
        return Ok(None);
    }
    let history = history(&rows, purged);
    let last_deletion_by = rows
        .iter()
        .rev()
        .find(|(_, action, ..)| action == "deleted")
        .map(|(_, _, by, _)| if by == "user" { "user" } else { "app" });
    let (status, deleted_at, purge_after, deleted_by) = match state {
        // Anonymized: the person is erased; the row stays for the rows
        // that must be kept.
        Some((Some(deleted_at), purge_after, made_by_user)) => (
            if anonymized {
                Status::Erased
            } else {
                Status::Scheduled
            },
            Some(rfc3339(deleted_at)),
            purge_after.map(rfc3339),
            Some(if made_by_user { "user" } else { "app" }),
        ),
        Some((None, ..)) => (Status::Active, None, None, None),
        None => (Status::Erased, None, None, last_deletion_by),
    };
    Ok(Some(AccountView {
        user_id: user.as_str().to_owned(),
        status,
        deleted_at,
        purge_after,
        deleted_by,
        hold: hold.map(|(reason, since)| Hold {
            reason,
            since: rfc3339(since),
        }),
        history,
    }))
}

/// The account's history as support reads it: our rows, and the purge's
/// erasures from the tombstones (an operator's erasure is in our rows
/// already, at the same instant as its tombstone), in time order.
fn history(rows: &[HistoryRow], purged: Vec<DateTime<Utc>>) -> Vec<Entry> {
    let mut history: Vec<(DateTime<Utc>, Entry)> = rows
        .iter()
        .map(|(at, action, by, detail)| {
            let (via, reason) = match action.as_str() {
                "restored" => (detail.clone(), None),
                "held" => (None, detail.clone()),
                _ => (None, None),
            };
            (
                *at,
                Entry {
                    at: rfc3339(*at),
                    action: action.clone(),
                    by: by.clone(),
                    via,
                    reason,
                },
            )
        })
        .collect();
    for at in purged {
        let recorded = rows
            .iter()
            .any(|(when, action, ..)| *when == at && action == "erased");
        if !recorded {
            history.push((
                at,
                Entry {
                    at: rfc3339(at),
                    action: "erased".to_owned(),
                    by: "purge".to_owned(),
                    via: None,
                    reason: None,
                },
            ));
        }
    }
    history.sort_by_key(|(at, _)| *at);
    history.into_iter().map(|(_, entry)| entry).collect()
}

/// A row of `account_deletion.history`: at, action, by, detail.
type HistoryRow = (DateTime<Utc>, String, String, Option<String>);

/// A step of an operator's, in the account's history.
async fn record(
    conn: &mut sqlx::PgConnection,
    user_id: &str,
    action: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    db::query(
        "insert into account_deletion.history (user_id, action, by, detail)
         values ($1, $2, 'admin', $3)",
    )
    .bind(user_id)
    .bind(action)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_reasons_are_short_codes() {
        for ok in ["legal_hold", "dispute-4411", "a", &"x".repeat(40)] {
            assert!(HoldReason::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(41),
            "Legal",
            "legal hold",
            "court order 12",
            "a@b.c",
            "élan",
            "x\n",
        ] {
            assert!(HoldReason::parse(bad).is_none(), "{bad:?}");
        }
    }
}
