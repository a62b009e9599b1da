//! A pooler that crashes at the wrong moment of a purge run: during a
//! batch, between batches, or while the run books its end. The function's
//! process lives on, so once the database answers again it books what was
//! done and frees the purge; the next run does not wait for the crashed
//! run's lease to pass. (Only a run whose process died makes them wait.)

use std::time::Duration;

use account_deletion::routes::purge_users::PurgeUsers;
use http::{Method, StatusCode};
use testkit::pgbouncer::PgBouncer;
use testkit::tripwire::{Tripwire, When};

use crate::helpers::{TestDb, cron_config, cron_request, read, seed_users, user_count};

/// Text only the purge batch sends (its booking step).
const BATCH: &str = "worker, deleted, batches)";
/// Text only the booking of a run's end sends.
const FINISH: &str = "set status = $2, remaining = $3";

const ACCOUNTS: i64 = 3_000;

/// Crashes the pooler when the function sends `needle` for the `nth` time
/// (`when` it is sent, or before), brings it back 4 s later, and checks
/// that the next run starts at once and that every account is erased and
/// booked exactly once.
async fn crash_the_pooler_at(needle: &str, nth: usize, when: When) {
    let db = TestDb::new().await;
    seed_users(&db.pool, ACCOUNTS, Some("31 days")).await;
    let mut pooler = PgBouncer::start(TestDb::server_port());
    let wire = Tripwire::start(pooler.port(), needle, nth, when).await;
    // Small fixed batches, one worker: the stages come in a known order.
    let route = PurgeUsers::new(cron_config(
        &db.url_via(wire.port),
        &[
            ("PURGE_BATCH_SIZE", "500"),
            ("PURGE_BATCH_TARGET_MS", "0"),
            ("PURGE_WORKERS", "1"),
        ],
    ));
    let crashed = tokio::spawn({
        let route = route.clone();
        async move { read(route.handle(cron_request(Method::GET, "")).await).await }
    });
    wire.tripped(Duration::from_secs(60)).await;
    pooler.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    pooler.restart();
    let crashed = crashed.await.unwrap();
    assert!(
        crashed.status == StatusCode::OK || crashed.status == StatusCode::SERVICE_UNAVAILABLE,
        "{}: {}",
        crashed.status,
        crashed.text()
    );
    // The crashed run freed the purge: the next one runs now, not after
    // its lease (budget + 60 s).
    let next = read(route.handle(cron_request(Method::GET, "")).await).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
    assert_eq!(next.json()["status"], "completed", "{}", next.text());
    assert_eq!(user_count(&db.pool).await, 0);
    let (running, deleted): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'running'), coalesce(sum(deleted), 0)::bigint
         from account_deletion.purge_runs where not dry_run",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (running, deleted),
        (0, ACCOUNTS),
        "crashed run: {}",
        crashed.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_crash_during_a_batch_frees_the_purge_once_it_is_back() {
    crash_the_pooler_at(BATCH, 2, When::After).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_crash_between_batches_frees_the_purge_once_it_is_back() {
    crash_the_pooler_at(BATCH, 3, When::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_crash_while_the_run_books_its_end_frees_the_purge_once_it_is_back() {
    crash_the_pooler_at(FINISH, 1, When::Before).await;
}
