//! The crons of `vercel.json`: validated with Vercel's rules, timed with a
//! maintained cron-expression crate (croner), fired on a clock that tests can
//! replace.

use std::future::Future;
use std::path::Path;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};

/// One `crons` entry.
#[derive(Debug, Clone)]
pub struct CronJob {
    pub path: String,
    pub schedule: Schedule,
}

/// A five-field schedule in UTC, as Vercel accepts it.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: croner::Cron,
}

impl Schedule {
    /// Refuses what Vercel refuses: anything but five fields of digits, `*`,
    /// `,`, `-` and `/` (so no names like `MON`, no `@daily`, no seconds), and
    /// a day-of-month and a day-of-week both restricted.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expression.split(' ').collect();
        if fields.len() != 5 || fields.iter().any(|f| f.is_empty()) {
            return Err(format!(
                "{expression:?}: a schedule has exactly five fields separated by single spaces"
            ));
        }
        if let Some(field) = fields
            .iter()
            .find(|f| !f.chars().all(|c| c.is_ascii_digit() || "*,-/".contains(c)))
        {
            return Err(format!(
                "{expression:?}: {field:?} is not numeric (Vercel accepts digits, *, ',', '-' and '/' only)"
            ));
        }
        if fields[2] != "*" && fields[4] != "*" {
            return Err(format!(
                "{expression:?}: Vercel does not accept both day of month and day of week"
            ));
        }
        let cron = croner::Cron::from_str(expression)
            .map_err(|error| format!("{expression:?}: {error}"))?;
        Ok(Self {
            expression: expression.to_owned(),
            cron,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        self.cron
            .find_next_occurrence(&after, false)
            .expect("a valid five-field schedule always fires again")
    }
}

/// Reads and validates the crons of a `vercel.json`.
pub fn load(vercel_json: &Path) -> anyhow::Result<Vec<CronJob>> {
    let text = std::fs::read_to_string(vercel_json)?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not strict JSON: {e}", vercel_json.display()))?;
    let mut jobs = Vec::new();
    for entry in config["crons"].as_array().into_iter().flatten() {
        let path = entry["path"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("a cron entry has no path"))?;
        let schedule = entry["schedule"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("cron {path} has no schedule"))?;
        jobs.push(CronJob {
            path: path.to_owned(),
            schedule: Schedule::parse(schedule).map_err(anyhow::Error::msg)?,
        });
    }
    Ok(jobs)
}

/// Time, as the scheduler sees it.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
    fn sleep_until(&self, at: DateTime<Utc>) -> impl Future<Output = ()> + Send;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        // Sleep in short steps so a suspended laptop wakes up on time.
        loop {
            let left = at - Utc::now();
            if left <= chrono::Duration::zero() {
                return;
            }
            let step = left
                .to_std()
                .unwrap_or_default()
                .min(std::time::Duration::from_secs(30));
            tokio::time::sleep(step).await;
        }
    }
}

/// Fires every job at each of its times, forever (or `limit` firings), in
/// time order. Jobs due at the same minute fire in `vercel.json` order.
pub async fn run<C, F, Fut>(clock: &C, jobs: &[CronJob], limit: Option<usize>, mut fire: F)
where
    C: Clock,
    F: FnMut(CronJob, DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    if jobs.is_empty() {
        return;
    }
    let mut fired = 0;
    let mut after = clock.now();
    loop {
        let next = jobs
            .iter()
            .map(|job| job.schedule.next_after(after))
            .min()
            .expect("at least one job");
        clock.sleep_until(next).await;
        for job in jobs
            .iter()
            .filter(|job| job.schedule.next_after(after) == next)
        {
            fire(job.clone(), next).await;
            fired += 1;
            if limit.is_some_and(|limit| fired >= limit) {
                return;
            }
        }
        after = next;
    }
}
