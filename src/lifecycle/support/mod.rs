//! What support can see of an account and do for it: look it up by address
//! or id (an erased one by its id only, each resolved by
//! [`resolve`]), restore it, resend its link, hold it, release it,
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
//!   (it takes the purge gate, see [`crate::schema::sql::GATE_SHARED`]).
//! - `release`: lifts a hold.
//! - `erase_now`: [`crate::lifecycle::purge::erase_now`].
//! - `export`: emails the holder a link to a copy of their data
//!   ([`crate::lifecycle::export`]), as the user's own request does, without its
//!   once-a-day limit.
//!
//! Every step is in the account's history, with a time, an actor and a
//! code, never an address, an IP or free text.
//!
//! Here: what an operator asks and is answered, and [`Support`], which
//! runs an action ([`crate::lifecycle::account_view`] reads an account as support sees
//! it), `actions` holds the actions of support's own (a link
//! resent, a hold, its release) and the history step they write.
//!
//! It acts through the other jobs of the lifecycle (accounts, purge,
//! export, `account_view`), which import nothing of it; [`resolve`], which
//! account an operator names, is its own.

mod actions;
pub mod resolve;

use actions::record;

use crate::lifecycle::account_view::read_view;
pub use crate::lifecycle::account_view::{AccountView, Entry, Hold, Status};

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::{EraseBlocked, ExcludedColumns, MailConfig, RetentionDays, SupportConfig};
use crate::delivery::events::{self, PendingEvent};
use crate::delivery::outbox::{self, PendingEmail};
use crate::lifecycle::accounts::{self, NotRestored, Restoration, Via};
use crate::lifecycle::export::{self, NotRequested, Requester, Snapshot};
use crate::lifecycle::purge::{self, NotErased};
use crate::platform::db::{self, Limits};
use crate::platform::webhook::Webhook;
use crate::schema::sql::{AppTables, Records, Statements};
use crate::schema::{SchemaError, UserId};
use resolve::{Unresolved, Who};

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
            pool: pool
                .unwrap_or_else(|| crate::platform::db::lazy_pool(config.database.clone(), 3)),
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
