//! Times as every answer, event, page and archive writes them: RFC 3339 in
//! UTC with microseconds (`2026-12-01T10:00:00.000000Z`), the precision
//! PostgreSQL keeps, so a time read back compares equal to the one stored.

use chrono::{DateTime, SecondsFormat, Utc};

#[must_use]
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
