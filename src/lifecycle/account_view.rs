//! An account as support sees it (the admin route, `cargo dev account`, the
//! export's `history.json`; a module of its own so that both `support` and
//! `export` can read it without importing each other): its state, its hold, its history (an
//! erased one's from its tombstone), read in one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::RetentionDays;
use crate::platform::db;
use crate::platform::time::rfc3339;
use crate::schema::UserId;
use crate::schema::sql::Statements;

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
