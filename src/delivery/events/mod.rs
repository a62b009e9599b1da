//! Account events for the app's webhook: `account.deleted`,
//! `account.restored`, `account.purged`, `account.anonymized`,
//! `account.export_requested` and `account.exported`, each a row written in the same
//! transaction as the change (only while `WEBHOOK_URL` is set), then sent
//! the Standard Webhooks way ([`crate::platform::webhook`]).
//!
//! Delivery is at least once, by the email outbox's rules
//! ([`crate::delivery`]): the request that made the change sends its event
//! right after answering; the purge sends its events when its run ends; the
//! sweep cron retries the rest. A row is marked sent only after a 2xx
//! answer, so a receiver may see an event twice, always with the same
//! `webhook-id`. Events are not ordered: a receiver that cares compares
//! their `timestamp`s.
//!
//! It imports the rules both outboxes share (`crate::delivery`) and the
//! leaves; the lifecycle writes its rows, in the transactions of the
//! changes they report.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::delivery::CLAIM_SECONDS;
use crate::platform::db;
use crate::platform::time::rfc3339;

mod send;

pub use send::{EventSweepReport, send, sweep};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Deleted,
    Restored,
    Purged,
    /// An expired account that rows the app keeps still reference, erased
    /// of the person with its row kept (`ERASE_BLOCKED=anonymize`).
    Anonymized,
    /// A copy of the account's data was asked for (a link emailed).
    ExportRequested,
    /// A download of that copy started.
    Exported,
}

impl EventType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "account.deleted",
            Self::Restored => "account.restored",
            Self::Purged => "account.purged",
            Self::Anonymized => "account.anonymized",
            Self::ExportRequested => "account.export_requested",
            Self::Exported => "account.exported",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "account.deleted" => Some(Self::Deleted),
            "account.restored" => Some(Self::Restored),
            "account.purged" => Some(Self::Purged),
            "account.anonymized" => Some(Self::Anonymized),
            "account.export_requested" => Some(Self::ExportRequested),
            "account.exported" => Some(Self::Exported),
            _ => None,
        }
    }
}

/// A claimed event, ready to send.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: Uuid,
    pub kind: EventType,
    user_ids: Vec<String>,
    occurred_at: DateTime<Utc>,
    purge_after: Option<DateTime<Utc>>,
    /// For `account.restored`: how (`link`, `sign_in`, `admin`).
    via: Option<String>,
    attempt: i32,
}

impl PendingEvent {
    /// An `account.deleted` event the delete statement just wrote, claimed
    /// for its first attempt.
    pub(crate) fn deleted(
        id: Uuid,
        user_id: String,
        deleted_at: DateTime<Utc>,
        purge_after: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            kind: EventType::Deleted,
            user_ids: vec![user_id],
            occurred_at: deleted_at,
            purge_after: Some(purge_after),
            via: None,
            attempt: 1,
        }
    }

    /// The `webhook-id`: stable across attempts, so a receiver can drop a
    /// duplicate.
    #[must_use]
    pub fn webhook_id(&self) -> String {
        format!("msg_{}", self.id.simple())
    }

    /// The JSON body. Built from the row alone, so every attempt sends the
    /// same bytes.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        let at = rfc3339;
        let one = || self.user_ids.first().map_or("", String::as_str);
        let data = match self.kind {
            EventType::Deleted => Data::Deleted {
                user_id: one(),
                deleted_at: at(self.occurred_at),
                purge_after: self.purge_after.map(at),
            },
            EventType::Restored => Data::Restored {
                user_id: one(),
                restored_at: at(self.occurred_at),
                via: self.via.as_deref(),
            },
            EventType::Purged => Data::Purged {
                user_ids: &self.user_ids,
                purged_at: at(self.occurred_at),
            },
            EventType::Anonymized => Data::Anonymized {
                user_ids: &self.user_ids,
                anonymized_at: at(self.occurred_at),
            },
            EventType::ExportRequested => Data::ExportRequested {
                user_id: one(),
                requested_at: at(self.occurred_at),
            },
            EventType::Exported => Data::Exported {
                user_id: one(),
                exported_at: at(self.occurred_at),
            },
        };
        serde_json::to_vec(&Body {
            kind: self.kind.as_str(),
            timestamp: at(self.occurred_at),
            data,
        })
        .expect("strings and arrays serialize")
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Deleted {
        user_id: &'a str,
        deleted_at: String,
        purge_after: Option<String>,
    },
    Restored {
        user_id: &'a str,
        restored_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<&'a str>,
    },
    Purged {
        user_ids: &'a [String],
        purged_at: String,
    },
    Anonymized {
        user_ids: &'a [String],
        anonymized_at: String,
    },
    ExportRequested {
        user_id: &'a str,
        requested_at: String,
    },
    Exported {
        user_id: &'a str,
        exported_at: String,
    },
}

/// Records an event about one account that carries only its id and when
/// it happened (`account.export_requested`, `account.exported`) inside the
/// caller's transaction, claimed by the caller for its first attempt right
/// after commit.
pub(crate) async fn record(
    conn: &mut PgConnection,
    kind: EventType,
    user_id: &str,
) -> Result<PendingEvent, sqlx::Error> {
    let (id, occurred_at): (Uuid, DateTime<Utc>) = db::query_as(
        "insert into account_deletion.webhook_events
             (type, user_ids, occurred_at, attempts, claimed_until)
         values ($1, array[$2], now(), 1, now() + make_interval(secs => $3))
         returning id, occurred_at",
    )
    .bind(kind.as_str())
    .bind(user_id)
    .bind(CLAIM_SECONDS)
    .fetch_one(conn)
    .await?;
    Ok(PendingEvent {
        id,
        kind,
        user_ids: vec![user_id.to_owned()],
        occurred_at,
        purge_after: None,
        via: None,
        attempt: 1,
    })
}

/// Records `account.restored` (restored `via` the link, a sign-in or an
/// operator) inside the caller's transaction, claimed by the caller for its
/// first attempt right after commit.
pub(crate) async fn record_restored(
    conn: &mut PgConnection,
    user_id: &str,
    via: &str,
) -> Result<PendingEvent, sqlx::Error> {
    let (id, occurred_at): (Uuid, DateTime<Utc>) = db::query_as(
        "insert into account_deletion.webhook_events
             (type, user_ids, occurred_at, via, attempts, claimed_until)
         values ('account.restored', array[$1], now(), $3, 1, now() + make_interval(secs => $2))
         returning id, occurred_at",
    )
    .bind(user_id)
    .bind(CLAIM_SECONDS)
    .bind(via)
    .fetch_one(conn)
    .await?;
    Ok(PendingEvent {
        id,
        kind: EventType::Restored,
        user_ids: vec![user_id.to_owned()],
        occurred_at,
        purge_after: None,
        via: Some(via.to_owned()),
        attempt: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    #[test]
    fn bodies_carry_ids_and_times_in_the_contract_shape() {
        let deleted = PendingEvent::deleted(
            Uuid::nil(),
            "42".to_owned(),
            at("2026-12-01T10:00:00Z"),
            at("2026-12-31T10:00:00Z"),
        );
        assert_eq!(
            String::from_utf8(deleted.body()).unwrap(),
            r#"{"type":"account.deleted","timestamp":"2026-12-01T10:00:00.000000Z","data":{"user_id":"42","deleted_at":"2026-12-01T10:00:00.000000Z","purge_after":"2026-12-31T10:00:00.000000Z"}}"#
        );
        assert_eq!(deleted.webhook_id(), "msg_00000000000000000000000000000000");
        let purged = PendingEvent {
            kind: EventType::Purged,
            user_ids: vec!["a".to_owned(), "b".to_owned()],
            purge_after: None,
            ..deleted
        };
        assert_eq!(
            String::from_utf8(purged.body()).unwrap(),
            r#"{"type":"account.purged","timestamp":"2026-12-01T10:00:00.000000Z","data":{"user_ids":["a","b"],"purged_at":"2026-12-01T10:00:00.000000Z"}}"#
        );
    }
}
