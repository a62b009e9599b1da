//! The dev scheduler: Vercel's rules for schedules, next firing times, and
//! firing through an injected clock.

use std::sync::{Arc, Mutex};

use account_deletion_dev::crons::{self, Clock, CronJob, Schedule};
use chrono::{DateTime, TimeZone, Utc};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn next(expression: &str, after: DateTime<Utc>) -> DateTime<Utc> {
    Schedule::parse(expression).unwrap().next_after(after)
}

#[test]
fn the_schedules_in_vercel_json_fire_when_vercel_fires_them() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let jobs = crons::load(&root.join("vercel.json")).unwrap();
    let purge = jobs
        .iter()
        .find(|j| j.path == "/api/cron/permanent-delete-users")
        .unwrap();
    assert_eq!(
        purge.schedule.next_after(at(2026, 11, 27, 1, 59)),
        at(2026, 11, 27, 2, 0)
    );
    assert_eq!(
        purge.schedule.next_after(at(2026, 11, 27, 2, 0)),
        at(2026, 11, 28, 2, 0),
        "strictly after"
    );
    let emails = jobs
        .iter()
        .find(|j| j.path == "/api/cron/send-emails")
        .unwrap();
    assert_eq!(
        emails.schedule.next_after(at(2026, 12, 31, 23, 0)),
        at(2027, 1, 1, 2, 30)
    );
}

#[test]
fn steps_ranges_and_lists_compute_the_right_next_time() {
    let t = at(2026, 11, 27, 10, 7); // a Friday
    assert_eq!(next("*/15 * * * *", t), at(2026, 11, 27, 10, 15));
    assert_eq!(next("0 9-17/4 * * *", t), at(2026, 11, 27, 13, 0));
    assert_eq!(next("5,35 * * * *", t), at(2026, 11, 27, 10, 35));
    assert_eq!(next("0 0 1 * *", t), at(2026, 12, 1, 0, 0));
    assert_eq!(
        next("0 0 29 2 *", t),
        at(2028, 2, 29, 0, 0),
        "next leap day"
    );
    assert_eq!(
        next("30 2 * * 1-5", at(2026, 11, 28, 0, 0)),
        at(2026, 11, 30, 2, 30),
        "Saturday → Monday"
    );
}

#[test]
fn day_of_week_0_and_7_both_mean_sunday() {
    let friday = at(2026, 11, 27, 12, 0);
    let sunday = at(2026, 11, 29, 0, 0);
    assert_eq!(next("0 0 * * 0", friday), sunday);
    assert_eq!(next("0 0 * * 7", friday), sunday);
}

#[test]
fn what_vercel_rejects_is_rejected() {
    for bad in [
        "0 2 * * MON",
        "0 2 * JAN *",
        "0 0 2 * * *",
        "0 2 * *",
        "@daily",
        "0  2 * * *",
        "0 2 1 * 1",
        "60 2 * * *",
        "0 24 * * *",
        "",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

/// A clock that jumps straight to whatever time it is asked to wait for.
struct InstantClock(Mutex<DateTime<Utc>>);

impl Clock for InstantClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut now = self.0.lock().unwrap();
        assert!(at > *now, "the scheduler never waits for the past");
        *now = at;
    }
}

#[tokio::test]
async fn the_scheduler_fires_each_job_at_its_times_through_an_injected_clock() {
    let jobs = vec![
        CronJob {
            path: "/api/cron/permanent-delete-users".into(),
            schedule: Schedule::parse("0 2 * * *").unwrap(),
        },
        CronJob {
            path: "/api/cron/send-emails".into(),
            schedule: Schedule::parse("30 2 * * *").unwrap(),
        },
        CronJob {
            path: "/api/cron/hourly".into(),
            schedule: Schedule::parse("0 * * * *").unwrap(),
        },
    ];
    let clock = InstantClock(Mutex::new(at(2026, 11, 27, 1, 10)));
    let fired = Arc::new(Mutex::new(Vec::new()));
    crons::run(&clock, &jobs, Some(6), |job, when| {
        let fired = fired.clone();
        async move {
            fired.lock().unwrap().push((job.path, when));
        }
    })
    .await;
    let fired = fired.lock().unwrap().clone();
    assert_eq!(
        fired,
        vec![
            (
                "/api/cron/permanent-delete-users".to_owned(),
                at(2026, 11, 27, 2, 0)
            ),
            ("/api/cron/hourly".to_owned(), at(2026, 11, 27, 2, 0)),
            ("/api/cron/send-emails".to_owned(), at(2026, 11, 27, 2, 30)),
            ("/api/cron/hourly".to_owned(), at(2026, 11, 27, 3, 0)),
            ("/api/cron/hourly".to_owned(), at(2026, 11, 27, 4, 0)),
            ("/api/cron/hourly".to_owned(), at(2026, 11, 27, 5, 0)),
        ]
    );
}

#[test]
fn the_dev_server_serves_every_function_in_api() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    // Every `.rs` under api/, at any depth.
    let mut files = Vec::new();
    let mut dirs = vec![root.join("api")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    }
    files.sort();
    let mut served: Vec<String> = account_deletion_dev::functions::PATHS
        .iter()
        .map(|(_, f)| (*f).to_owned())
        .collect();
    served.sort();
    assert_eq!(served, files);
    for (path, file) in account_deletion_dev::functions::PATHS {
        assert_eq!(format!("api{}.rs", path.trim_start_matches("/api")), *file);
    }
}
