//! How many accounts the next batch takes.
//!
//! A batch's duration is how long its rows stay locked, and what one account
//! costs depends on the app: how many rows reference it, through how many
//! cascades, on how busy a database. So the size follows the measured
//! duration of the previous batch towards a target, instead of being a
//! fixed count that is right for one schema only.

use std::num::NonZeroU32;
use std::time::Duration;

/// The first batch of a worker is this small (or the configured largest
/// size, if smaller), so a run on an unknown schema starts with a short lock.
const FIRST_BATCH: u32 = 50;

#[derive(Debug, Clone)]
pub struct BatchSize {
    next: u32,
    largest: u32,
    target: Option<Duration>,
}

impl BatchSize {
    /// Sizes that aim at `target` per batch and never exceed `largest`; with
    /// no target, every batch is `largest`.
    pub fn new(largest: NonZeroU32, target: Option<Duration>) -> Self {
        let largest = largest.get();
        let next = match target {
            Some(_) => largest.min(FIRST_BATCH),
            None => largest,
        };
        Self {
            next,
            largest,
            target,
        }
    }

    /// Accounts the next batch should take.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// Adjusts to a batch that walked `walked` accounts in `took` (deleted,
    /// or left: what a batch locks is what it walks). At most doubling or
    /// halving per step, so one outlier (a checkpoint, a cold cache) cannot
    /// swing the size far. An empty batch says nothing about the cost of an
    /// account.
    pub fn record(&mut self, walked: u64, took: Duration) {
        let Some(target) = self.target else {
            return;
        };
        if walked == 0 {
            return;
        }
        let current = f64::from(self.next);
        let ideal = walked as f64 * target.as_secs_f64() / took.as_secs_f64().max(1e-6);
        let bounded = ideal.clamp(current / 2.0, current * 2.0);
        self.next = (bounded.round() as u32).clamp(1, self.largest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(largest: u32, target_ms: Option<u64>) -> BatchSize {
        BatchSize::new(
            NonZeroU32::new(largest).unwrap(),
            target_ms.map(Duration::from_millis),
        )
    }

    #[test]
    fn without_a_target_every_batch_is_the_largest() {
        let mut size = sizes(500, None);
        assert_eq!(size.next(), 500);
        size.record(500, Duration::from_secs(3));
        assert_eq!(size.next(), 500);
    }

    #[test]
    fn starts_small_and_grows_at_most_double_per_batch_up_to_the_largest() {
        let mut size = sizes(1000, Some(20));
        assert_eq!(size.next(), 50);
        let mut seen = Vec::new();
        for _ in 0..6 {
            // Each account costs 10 µs: the target fits 2,000.
            let n = u64::from(size.next());
            size.record(n, Duration::from_micros(10 * n));
            seen.push(size.next());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn settles_where_a_batch_takes_the_target() {
        let mut size = sizes(10_000, Some(20));
        for _ in 0..20 {
            // 80 µs per account: 250 fit in 20 ms.
            let n = u64::from(size.next());
            size.record(n, Duration::from_micros(80 * n));
        }
        assert_eq!(size.next(), 250);
    }

    #[test]
    fn a_slow_batch_at_most_halves_the_next_and_never_below_one() {
        let mut size = sizes(1000, Some(20));
        size.record(50, Duration::from_secs(5));
        assert_eq!(size.next(), 25);
        for _ in 0..20 {
            let n = u64::from(size.next());
            size.record(n, Duration::from_secs(5));
        }
        assert_eq!(size.next(), 1);
    }

    #[test]
    fn a_short_last_batch_is_judged_by_what_it_deleted() {
        let mut size = sizes(1000, Some(20));
        // 10 accounts in 0.2 ms is the same 20 µs an account as 50 in 1 ms.
        size.record(10, Duration::from_micros(200));
        assert_eq!(size.next(), 100, "grows as a full fast batch would");
        size.record(0, Duration::from_millis(1));
        assert_eq!(size.next(), 100, "an empty batch changes nothing");
    }

    #[test]
    fn a_smaller_largest_size_caps_the_first_batch() {
        assert_eq!(sizes(10, Some(20)).next(), 10);
    }
}
