use std::time::Duration;

use account_deletion::routes::purge_users::PurgeUsers;
use http::{Method, StatusCode};

use crate::helpers::{TestDb, count, cron_config, cron_request, read, seed_users, user_count};

#[tokio::test]
async fn a_tiny_budget_answers_partial_and_repeated_runs_finish_with_exact_totals() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 2_500, Some("31 days")).await;
    seed_users(&db.pool, 300, None).await;
    let mut config = cron_config(&db.url(), &[("PURGE_BATCH_SIZE", "100")]).unwrap();
    config.purge.time_budget = Duration::from_millis(1);
    let route = PurgeUsers::new(Ok(config));

    let mut total = 0;
    let mut runs = 0;
    loop {
        let response = read(route.handle(cron_request(Method::GET, "")).await).await;
        assert_eq!(response.status, StatusCode::OK);
        let body = response.json();
        runs += 1;
        let deleted = body["deleted"].as_u64().unwrap();
        let remaining = body["remaining"].as_u64().unwrap();
        total += deleted;
        assert_eq!(
            remaining,
            2_500 - total,
            "remaining is exact after run {runs}"
        );
        if body["status"] == "completed" {
            assert_eq!(remaining, 0);
            break;
        }
        assert_eq!(body["status"], "partial", "{body}");
        assert!(remaining > 0);
        assert!(deleted > 0, "every run makes progress");
        assert!(runs < 100, "the purge converges");
    }
    assert!(runs > 1, "the budget really cut runs short");
    assert_eq!(total, 2_500, "no account deleted twice or skipped");
    assert_eq!(user_count(&db.pool).await, 300);
    assert_eq!(
        count(
            &db.pool,
            "select sum(deleted)::bigint from account_deletion.purge_runs"
        )
        .await,
        2_500
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_batch_workers_delete_every_expired_account_once() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 5_000, Some("31 days")).await;
    seed_users(&db.pool, 500, None).await;
    let route = PurgeUsers::new(cron_config(
        &db.url(),
        &[("PURGE_BATCH_SIZE", "200"), ("PURGE_WORKERS", "4")],
    ));
    let body = read(route.handle(cron_request(Method::GET, "")).await)
        .await
        .json();
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["deleted"], 5_000);
    assert_eq!(body["remaining"], 0);
    assert!(body["batches"].as_u64().unwrap() >= 25);
    assert_eq!(user_count(&db.pool).await, 500);
}

#[tokio::test]
async fn batches_start_small_and_grow_towards_the_target_unless_sizing_is_off() {
    let db = TestDb::new().await;
    let purge = |extra: &'static [(&'static str, &'static str)]| {
        let route = PurgeUsers::new(cron_config(&db.url(), extra));
        async move {
            read(route.handle(cron_request(Method::GET, "")).await)
                .await
                .json()
        }
    };

    seed_users(&db.pool, 3_000, Some("31 days")).await;
    let fixed = purge(&[
        ("PURGE_BATCH_SIZE", "1000"),
        ("PURGE_BATCH_TARGET_MS", "0"),
        ("PURGE_WORKERS", "1"),
    ])
    .await;
    assert_eq!(fixed["deleted"], 3_000);
    // Three full batches, then the one that finds nothing left.
    assert_eq!(fixed["batches"], 4, "{fixed}");

    seed_users(&db.pool, 3_000, Some("31 days")).await;
    let sized = purge(&[
        ("PURGE_BATCH_SIZE", "1000"),
        ("PURGE_BATCH_TARGET_MS", "10000"),
        ("PURGE_WORKERS", "1"),
    ])
    .await;
    assert_eq!(sized["deleted"], 3_000);
    // 50, 100, 200, 400, 800, 1000, then the 450 left: a run on an unknown
    // schema starts with a short lock and doubles from there.
    assert_eq!(sized["batches"], 7, "{sized}");
}
