//! The rules both outboxes (emails, webhook events) deliver by: a sender
//! claims a row for a while, a failed attempt is retried with exponential
//! backoff, and after a number of attempts the row is given up on and the
//! status route says so.

/// How long a sender holds a row before another may take it over: well past
/// the SMTP and webhook timeouts.
pub(crate) const CLAIM_SECONDS: f64 = 120.0;

/// After this many failed attempts a row is given up on (`failed`).
pub(crate) const MAX_ATTEMPTS: i32 = 8;

/// When the next attempt of a row that has had `attempts` is due: 1, 2, 4 …
/// minutes after the failure, at most 6 hours. Retries happen when a sweep
/// runs (the daily cron, or a manual call), so that is the least wait.
pub(crate) const NEXT_ATTEMPT_AT: &str = "now() + least(make_interval(mins => power(2, greatest(attempts - 1, 0))::int), interval '6 hours')";

/// Delivered rows are kept this long for support questions, then pruned.
pub(crate) const KEEP_SENT_DAYS: i32 = 30;

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Failed; will be retried after a backoff.
    Retrying,
    /// Failed for the last time.
    GaveUp,
    /// No longer worth sending (account restored, purged or expired).
    Cancelled,
}
