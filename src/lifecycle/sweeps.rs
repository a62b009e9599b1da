//! Walks over the users table's soft-deleted accounts that cost what their
//! new work costs, however many accounts history has left behind (kept by
//! an invoice, held, anonymized, or soft-deleted by the app itself).
//!
//! A walk keeps its place in `account_deletion.sweeps`, as keys
//! (deleted-at, id) in the order of the users table's index on both:
//! - a watermark: everything at or below it has been walked, so each run
//!   walks what lies above it (new work);
//! - a cursor for a bounded slice of the rest per run (the sweep), which
//!   catches what an app changes behind our back: a deleted-at set in the
//!   past, an invoice deleted, a hold the database lost. A slice holds at
//!   most [`SLICE_ROWS`] accounts; a database with fewer accounts below the
//!   watermark than that has all of them walked by every run, as if there
//!   were no watermark.
//!
//! The purge's walk also keeps what the accounts it left below its
//! watermark count ([`Totals`]), so that its answer and `/api/status` need
//! not walk them again: `below`, summed as each run's new work is walked,
//! and replaced by the sweep's own sum each time a cycle of slices reaches
//! the watermark.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::platform::db::{self, Literal};
use crate::schema::sql::Statements;

/// The fewest accounts one slice of a sweep walks (and the most, while
/// fewer than [`CYCLE_RUNS`] slices lie below the watermark).
pub const SLICE_ROWS: i64 = 10_000;

/// How many runs a cycle of the purge's sweep takes at most: a change the
/// app makes behind its back (an invoice deleted) is found within a month
/// of daily runs, however many accounts are kept. Each run counts a
/// thirtieth of them (about 3 µs an account, BENCHMARKS.md).
pub const CYCLE_RUNS: i64 = 30;

/// A place in the walk: an account's deleted-at and id (as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Key {
    fn from_parts(at: Option<DateTime<Utc>>, id: Option<String>) -> Option<Self> {
        Some(Self { at: at?, id: id? })
    }

    /// The key as a statement's two parameters (deleted-at, id); nulls
    /// for none, which the statements read as an open bound.
    pub fn literals(key: Option<&Self>) -> [Literal; 2] {
        match key {
            Some(key) => [key.at.into(), key.id.as_str().into()],
            None => [Literal::Null, Literal::Null],
        }
    }

    /// The later of two places. Ids of one time compare as the database
    /// orders them: bigints by value, uuids and the ids apps write as text
    /// (lower-case letters and digits) by their text.
    #[must_use]
    pub fn max(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.is_after(&a) { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn is_after(&self, other: &Self) -> bool {
        if self.at != other.at {
            return self.at > other.at;
        }
        match (self.id.parse::<i64>(), other.id.parse::<i64>()) {
            (Ok(mine), Ok(theirs)) => mine > theirs,
            _ => self.id > other.id,
        }
    }
}

/// A walk with a place of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The purge.
    Purge,
    /// The purge's anonymizing walk (`ERASE_BLOCKED=anonymize`), which may
    /// lag the purge's: the accounts kept before anonymizing was set are
    /// its new work.
    Anonymize,
    /// The mail cron's recording of the deletions the app made itself.
    AppDeletions,
}

impl Walk {
    fn name(self) -> &'static str {
        match self {
            Self::Purge => "purge",
            Self::Anonymize => "anonymize",
            Self::AppDeletions => "app_deletions",
        }
    }
}

/// What the expired accounts of a stretch of the walk count: those the
/// purge could delete (left behind because a transaction held them), those
/// a key without a delete action keeps (and which keys), held, anonymized
/// and still referenced, overdue, and the oldest overdue one's deleted-at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub deletable: i64,
    pub blocked: i64,
    pub blocked_by: Vec<String>,
    pub held: i64,
    pub anonymized: i64,
    pub overdue: i64,
    pub oldest_overdue: Option<DateTime<Utc>>,
}

impl Totals {
    /// Both stretches together.
    #[must_use]
    pub fn plus(mut self, other: &Self) -> Self {
        self.deletable += other.deletable;
        self.blocked += other.blocked;
        for name in &other.blocked_by {
            if !self.blocked_by.contains(name) {
                self.blocked_by.push(name.clone());
            }
        }
        self.blocked_by.sort();
        self.held += other.held;
        self.anonymized += other.anonymized;
        self.overdue += other.overdue;
        self.oldest_overdue = match (self.oldest_overdue, other.oldest_overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }
}

/// Where a walk stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// Everything at or below it has been walked; none before the first
    /// run.
    pub watermark: Option<Key>,
    /// Where the sweep below the watermark resumes (exclusive); none at
    /// the start.
    pub cursor: Option<Key>,
    /// What the expired accounts below the watermark count (the purge).
    pub below: Option<Totals>,
    /// What the sweep's current cycle has counted so far (the purge).
    pub cycle: Option<Totals>,
}

type PlaceRow = (
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub async fn place(conn: &mut PgConnection, walk: Walk) -> Result<Place, sqlx::Error> {
    let row: Option<PlaceRow> = db::query_as(
        "select watermark_at, watermark_id, cursor_at, cursor_id, below::text, cycle::text
         from account_deletion.sweeps where name = $1",
    )
    .bind(walk.name())
    .fetch_optional(conn)
    .await?;
    let Some((watermark_at, watermark_id, cursor_at, cursor_id, below, cycle)) = row else {
        return Ok(Place::default());
    };
    // Written only by us; one that does not read back is counted afresh.
    let totals = |json: Option<String>| json.and_then(|json| serde_json::from_str(&json).ok());
    Ok(Place {
        watermark: Key::from_parts(watermark_at, watermark_id),
        cursor: Key::from_parts(cursor_at, cursor_id),
        below: totals(below),
        cycle: totals(cycle),
    })
}

/// A stretch of the walk: the accounts after `after` (exclusive; none:
/// from the start) up to `up_to` (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub after: Option<Key>,
    /// Its last account; none when it holds none.
    pub up_to: Option<Key>,
    /// How many accounts it holds.
    pub rows: i64,
    /// Whether it holds every account up to where it was cut (a slice
    /// shorter than it was allowed).
    pub reaches_end: bool,
}

impl Totals {
    /// The accounts these figures count.
    #[must_use]
    pub fn accounts(&self) -> i64 {
        self.deletable + self.blocked + self.held + self.anonymized
    }
}

/// How many accounts a slice of the purge's sweep takes when `below` are
/// counted below its watermark: [`SLICE_ROWS`], or enough for a cycle of
/// [`CYCLE_RUNS`] runs.
#[must_use]
pub fn slice_rows(below: Option<&Totals>) -> i64 {
    let kept = below.map_or(0, Totals::accounts);
    SLICE_ROWS.max((kept + CYCLE_RUNS - 1) / CYCLE_RUNS)
}

/// The next slice after `after`, at most `rows` accounts, never past the
/// key `up_to` nor deleted after `ceiling`.
pub async fn next_slice(
    conn: &mut PgConnection,
    sql: &Statements,
    after: Option<&Key>,
    up_to: Option<&Key>,
    ceiling: Option<DateTime<Utc>>,
    rows: i64,
) -> Result<Slice, sqlx::Error> {
    let last: Option<(i64, DateTime<Utc>, String)> = db::query_as(&sql.slice)
        .bind(after.map(|key| key.at))
        .bind(after.map(|key| key.id.as_str()))
        .bind(up_to.map(|key| key.at))
        .bind(up_to.map(|key| key.id.as_str()))
        .bind(ceiling)
        .bind(rows)
        .fetch_optional(conn)
        .await?;
    let allowed = rows;
    let (rows, up_to) = last.map_or((0, None), |(rows, at, id)| (rows, Some(Key { at, id })));
    Ok(Slice {
        after: after.cloned(),
        up_to,
        rows,
        reaches_end: rows < allowed,
    })
}

/// Everything at or below `to` has been walked; `below` is what the
/// purge's kept accounts under it count.
pub async fn set_watermark(
    conn: &mut PgConnection,
    walk: Walk,
    to: Option<&Key>,
    below: Option<&Totals>,
) -> Result<(), sqlx::Error> {
    db::query(
        "update account_deletion.sweeps
         set watermark_at = $2, watermark_id = $3, below = $4::jsonb, updated_at = now()
         where name = $1",
    )
    .bind(walk.name())
    .bind(to.map(|key| key.at))
    .bind(to.map(|key| key.id.as_str()))
    .bind(below.map(json))
    .execute(conn)
    .await?;
    Ok(())
}

/// The sweep has walked `slice`, whose expired accounts count `counted`
/// (the purge): the next slice starts after it, or from the start again
/// when it reached the end, where the cycle's sum becomes `below`.
pub async fn advance_cursor(
    conn: &mut PgConnection,
    walk: Walk,
    slice: &Slice,
    cycle: Option<&Totals>,
) -> Result<(), sqlx::Error> {
    let (cursor, below_from_cycle) = if slice.reaches_end {
        (None, true)
    } else {
        (slice.up_to.as_ref(), false)
    };
    db::query(
        "update account_deletion.sweeps
         set cursor_at = $2, cursor_id = $3,
             below = case when $4 and $5::jsonb is not null then $5::jsonb else below end,
             cycle = case when $4 then null else $5::jsonb end,
             updated_at = now()
         where name = $1",
    )
    .bind(walk.name())
    .bind(cursor.map(|key| key.at))
    .bind(cursor.map(|key| key.id.as_str()))
    .bind(below_from_cycle)
    .bind(cycle.map(json))
    .execute(conn)
    .await?;
    Ok(())
}

fn json(totals: &Totals) -> String {
    serde_json::to_string(totals).expect("totals serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_and_keep_the_oldest_overdue_and_every_key_once() {
        let at = |days: i64| DateTime::<Utc>::from_timestamp(days * 86_400, 0).unwrap();
        let a = Totals {
            deletable: 1,
            blocked: 2,
            blocked_by: vec!["invoices_user_fkey".into()],
            held: 3,
            anonymized: 4,
            overdue: 5,
            oldest_overdue: Some(at(10)),
        };
        let b = Totals {
            blocked_by: vec!["orders_user_fkey".into(), "invoices_user_fkey".into()],
            oldest_overdue: Some(at(3)),
            ..a.clone()
        };
        let sum = a.plus(&b);
        assert_eq!(
            (
                sum.deletable,
                sum.blocked,
                sum.held,
                sum.anonymized,
                sum.overdue
            ),
            (2, 4, 6, 8, 10)
        );
        assert_eq!(sum.blocked_by, ["invoices_user_fkey", "orders_user_fkey"]);
        assert_eq!(sum.oldest_overdue, Some(at(3)));
        assert_eq!(
            Totals::default().plus(&Totals::default()),
            Totals::default()
        );
    }

    #[test]
    fn a_slice_takes_ten_thousand_or_a_cycle_of_thirty_runs() {
        let kept = |blocked| Totals {
            blocked,
            held: 1,
            ..Totals::default()
        };
        assert_eq!(slice_rows(None), SLICE_ROWS);
        assert_eq!(slice_rows(Some(&kept(110_000))), SLICE_ROWS);
        assert_eq!(slice_rows(Some(&kept(1_099_999))), 36_667);
        assert_eq!(slice_rows(Some(&kept(9_999_999))), 333_334);
    }

    #[test]
    fn the_later_key_is_by_time_then_by_id() {
        let key = |s, id: &str| {
            Some(Key {
                at: DateTime::<Utc>::from_timestamp(s, 0).unwrap(),
                id: id.into(),
            })
        };
        assert_eq!(Key::max(key(1, "b"), key(2, "a")), key(2, "a"));
        assert_eq!(Key::max(key(2, "a"), key(2, "b")), key(2, "b"));
        assert_eq!(Key::max(None, key(1, "a")), key(1, "a"));
        assert_eq!(Key::max(key(1, "a"), None), key(1, "a"));
        assert_eq!(Key::max(key(1, "9"), key(1, "10")), key(1, "10"));
    }
}
