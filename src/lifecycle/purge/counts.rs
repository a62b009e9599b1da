//! What the expired accounts count: the purge's answer, its ledger and
//! `/api/status`, without walking again the accounts history keeps.
//!
//! Above the purge's watermark (new work) they are counted as they are.
//! Below it lie the accounts the purge walked and left (kept by an
//! invoice, held, anonymized), counted when they were walked and again by
//! each cycle of the sweep ([`crate::lifecycle::sweeps`]): where fewer than a slice
//! lie there they are counted as they are too, so a small database (every
//! test's) gets the exact figures of a full walk, and a large one gets
//! figures as fresh as the sweep's last cycle.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::walk::Range;
use crate::config::OverdueAfter;
use crate::lifecycle::sweeps::{self, Key, Place, SLICE_ROWS, Totals, Walk};
use crate::platform::db;
use crate::schema::sql::Statements;

/// Expired accounts at a cutoff.
pub(crate) struct Expired {
    /// Those the purge can delete.
    pub deletable: i64,
    pub blocked: i64,
    /// The keys that block them, by name.
    pub blocked_by: Vec<String>,
    pub overdue: Overdue,
    /// Those an operator holds (none of the above).
    pub held: i64,
    /// Those anonymized, still kept by their references (none of the
    /// above).
    pub anonymized: i64,
}

/// Accounts still present more than one purge interval after their
/// retention ended: erasure has fallen behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overdue {
    pub count: u64,
    /// How long past its retention the oldest of them is.
    pub oldest_seconds: Option<i64>,
}

impl Expired {
    pub(super) fn of(totals: &Totals, cutoff: DateTime<Utc>) -> Self {
        Self {
            deletable: totals.deletable,
            blocked: totals.blocked,
            blocked_by: totals.blocked_by.clone(),
            overdue: Overdue {
                count: totals.overdue as u64,
                oldest_seconds: totals
                    .oldest_overdue
                    .map(|oldest| (cutoff - oldest).num_seconds()),
            },
            held: totals.held,
            anonymized: totals.anonymized,
        }
    }
}

/// The expired accounts of `range` at `cutoff`, walked.
pub(super) async fn count_range(
    conn: &mut PgConnection,
    sql: &Statements,
    cutoff: DateTime<Utc>,
    overdue_after: OverdueAfter,
    range: &Range,
) -> Result<Totals, sqlx::Error> {
    let (deletable, blocked, per_path, overdue, oldest_seconds, held, anonymized): (
        i64,
        i64,
        Vec<i64>,
        i64,
        Option<i64>,
        i64,
        i64,
    ) = db::query_as(&sql.count_expired)
        .bind(cutoff)
        .bind(overdue_after.hours() as i32)
        .bind(range.after.as_ref().map(|key| key.at))
        .bind(range.after.as_ref().map(|key| key.id.as_str()))
        .bind(range.up_to.as_ref().map(|key| key.at))
        .bind(range.up_to.as_ref().map(|key| key.id.as_str()))
        .fetch_one(conn)
        .await?;
    let mut blocked_by: Vec<String> = sql
        .catalog
        .blocking
        .iter()
        .zip(per_path)
        .filter(|(_, count)| *count > 0)
        .map(|(path, _)| path.constraint().to_string())
        .collect();
    blocked_by.sort();
    blocked_by.dedup();
    Ok(Totals {
        deletable,
        blocked,
        blocked_by,
        held,
        anonymized,
        overdue,
        oldest_overdue: oldest_seconds.map(|seconds| cutoff - chrono::Duration::seconds(seconds)),
    })
}

/// The expired accounts at `cutoff`: those above the purge's watermark
/// walked, and those below it as the purge last counted them, or walked
/// too when there are fewer than a slice.
pub(crate) async fn count_expired(
    conn: &mut PgConnection,
    sql: &Statements,
    cutoff: DateTime<Utc>,
    overdue_after: OverdueAfter,
) -> Result<Expired, sqlx::Error> {
    let place = sweeps::place(conn, Walk::Purge).await?;
    let totals = count_with(conn, sql, cutoff, overdue_after, &place).await?;
    Ok(Expired::of(&totals, cutoff))
}

/// [`count_expired`] from a place already read.
pub(super) async fn count_with(
    conn: &mut PgConnection,
    sql: &Statements,
    cutoff: DateTime<Utc>,
    overdue_after: OverdueAfter,
    place: &Place,
) -> Result<Totals, sqlx::Error> {
    let below = match (&place.watermark, &place.below) {
        (Some(watermark), Some(below)) if watermark.at <= cutoff => {
            if few_below(conn, sql, watermark).await? {
                None
            } else {
                Some((watermark.clone(), below.clone()))
            }
        }
        _ => None,
    };
    let Some((watermark, below)) = below else {
        return count_range(conn, sql, cutoff, overdue_after, &Range::default()).await;
    };
    let above = Range {
        after: Some(watermark),
        up_to: None,
    };
    let counted = count_range(conn, sql, cutoff, overdue_after, &above).await?;
    Ok(below.plus(&counted))
}

/// Whether at most a slice of accounts lie at or below `watermark`: a
/// walk of at most that many index entries.
async fn few_below(
    conn: &mut PgConnection,
    sql: &Statements,
    watermark: &Key,
) -> Result<bool, sqlx::Error> {
    let below: i64 = db::query_scalar(&sql.count_below)
        .bind(watermark.at)
        .bind(watermark.id.as_str())
        .bind(SLICE_ROWS + 1)
        .fetch_one(conn)
        .await?;
    Ok(below <= SLICE_ROWS)
}
