use std::collections::HashSet;

use http::{Method, StatusCode};
use sqlx::Connection;

use crate::helpers::{PurgeApp, count, cron_request, hold_user, read, seed_users, user_count};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_concurrent_runs_delete_each_of_20000_expired_accounts_exactly_once() {
    let app = PurgeApp::with_env(&[("PURGE_BATCH_SIZE", "500")]).await;
    seed_users(app.pool(), 20_000, Some("31 days")).await;
    seed_users(app.pool(), 1_000, None).await;

    // Six function instances, each with its own pool, as Vercel would run
    // overlapping or duplicated deliveries.
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let route = app.another_instance(&[("PURGE_BATCH_SIZE", "500")]);
            tokio::spawn(
                async move { read(route.handle(cron_request(Method::GET, "")).await).await },
            )
        })
        .collect();
    let mut deleted = 0;
    let mut statuses = Vec::new();
    for run in runs {
        let response = run.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let body = response.json();
        let status = body["status"].as_str().unwrap().to_owned();
        assert!(
            ["completed", "partial", "skipped"].contains(&status.as_str()),
            "{body}"
        );
        if status == "skipped" {
            assert_eq!(body["deleted"], 0);
        }
        deleted += body["deleted"].as_u64().unwrap();
        statuses.push(status);
    }
    // Whatever was skipped, whatever is left is finished by one more run.
    let last = app.cron().await.json();
    deleted += last["deleted"].as_u64().unwrap();
    assert_eq!(deleted, 20_000, "statuses: {statuses:?}");
    assert_eq!(user_count(app.pool()).await, 1_000);
    let ledger_total = count(
        app.pool(),
        "select coalesce(sum(deleted), 0)::bigint from account_deletion.purge_runs",
    )
    .await;
    assert_eq!(ledger_total, 20_000, "the ledger adds up too");
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.purge_runs where status in ('failed', 'running')"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recoveries_racing_the_purge_are_never_reported_applied_for_a_deleted_account() {
    let app = PurgeApp::with_env(&[("PURGE_BATCH_SIZE", "25"), ("PURGE_WORKERS", "2")]).await;
    // Right at the cutoff: expired by the time the purge reads its cutoff.
    let ids = seed_users(app.pool(), 2_000, Some("30 days")).await;

    // Eight recoverers on their own connections, each restoring its share the
    // way a recovery does: only if the account is still soft-deleted.
    // They walk the accounts from the other end than the purge's index walk,
    // so the two meet somewhere in the middle, and all start together.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(9));
    let mut recoverers = Vec::new();
    for chunk in ids.chunks(250) {
        let chunk = chunk.to_vec();
        let mut conn = app.db.connect().await;
        let start = start.clone();
        recoverers.push(tokio::spawn(async move {
            start.wait().await;
            // From the moment the run has its lease: a function that is slow
            // to start (through a pooler, say) must not find every recovery
            // done before its first batch.
            while !sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from account_deletion.purge_runs)",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap()
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let mut applied = Vec::new();
            for id in chunk.into_iter().rev() {
                let rows = sqlx::query(
                    "update users set deleted_at = null where id = $1 and deleted_at is not null",
                )
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected();
                if rows == 1 {
                    applied.push(id);
                }
            }
            conn.close().await.unwrap();
            applied
        }));
    }
    let purge = async {
        start.wait().await;
        app.cron().await
    };
    let (response, applied) = tokio::join!(purge, async {
        let mut applied = HashSet::new();
        for recoverer in recoverers {
            applied.extend(recoverer.await.unwrap());
        }
        applied
    });
    assert_eq!(response.status, StatusCode::OK);
    let deleted = response.json()["deleted"].as_u64().unwrap() as usize;

    let survivors: HashSet<uuid::Uuid> =
        sqlx::query_scalar("select id from users where deleted_at is null")
            .fetch_all(app.pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(
        survivors, applied,
        "every applied recovery survived, and only those"
    );
    assert_eq!(
        user_count(app.pool()).await as usize,
        applied.len(),
        "no account both kept and unrecovered"
    );
    assert_eq!(deleted + applied.len(), ids.len());
    assert!(
        deleted > 0 && !applied.is_empty(),
        "the race really raced: {deleted} deleted, {} recovered",
        applied.len()
    );
}

#[tokio::test]
async fn a_run_that_died_holding_the_purge_is_marked_abandoned_once_its_lease_passes() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 5, Some("31 days")).await;
    // A live lease: the next run must not touch the purge.
    sqlx::query(
        "insert into account_deletion.purge_runs (status, dry_run, cutoff, lease_expires_at)
         values ('running', false, now() - interval '30 days', now() + interval '5 minutes')",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let body = app.cron().await.json();
    assert_eq!(body["status"], "skipped");
    assert_eq!(body["deleted"], 0);
    assert_eq!(body["remaining"], 5);
    assert_eq!(user_count(app.pool()).await, 5);

    // The holder died after its two workers had committed three batches;
    // its lease passes, and the next run takes over.
    sqlx::query(
        "insert into account_deletion.purge_run_workers (run_id, worker, deleted, batches)
         select id, w, 10 * w, w from account_deletion.purge_runs, (values (1), (2)) as v (w) where status = 'running'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("update account_deletion.purge_runs set lease_expires_at = now() - interval '1 second' where status = 'running'")
        .execute(app.pool())
        .await
        .unwrap();
    let body = app.cron().await.json();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["deleted"], 5);
    let abandoned: Vec<(i64, i32)> = sqlx::query_as(
        "select deleted, batches from account_deletion.purge_runs where status = 'abandoned'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        abandoned,
        [(30, 3)],
        "what the dead run committed is on its ledger row"
    );
}

#[tokio::test]
async fn a_dry_run_is_never_skipped_by_a_running_purge() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 2, Some("31 days")).await;
    sqlx::query(
        "insert into account_deletion.purge_runs (status, dry_run, cutoff, lease_expires_at)
         values ('running', false, now() - interval '30 days', now() + interval '5 minutes')",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let body = app
        .call(cron_request(Method::GET, "?dry_run=true"))
        .await
        .json();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["remaining"], 2);
}

#[tokio::test]
async fn a_row_locked_elsewhere_is_skipped_not_waited_for_and_a_later_run_deletes_it() {
    let app = PurgeApp::with_env(&[("PURGE_BATCH_SIZE", "10")]).await;
    let ids = seed_users(app.pool(), 50, Some("31 days")).await;
    // Another transaction (a recovery in progress, say) holds one account.
    let tx = hold_user(app.pool(), ids[0]).await;
    let body = app.cron().await.json();
    assert_eq!(body["deleted"], 49, "{body}");
    assert_eq!(body["remaining"], 1);
    tx.rollback().await.unwrap();
    let body = app.cron().await.json();
    assert_eq!(body["deleted"], 1, "{body}");
    assert_eq!(user_count(app.pool()).await, 0);
}

#[tokio::test]
async fn a_row_released_after_the_walk_passed_it_is_deleted_by_the_same_run() {
    let app =
        PurgeApp::with_env(&[("PURGE_BATCH_SIZE", "10"), ("PURGE_BATCH_TARGET_MS", "0")]).await;
    let ids = seed_users(app.pool(), 3_000, Some("31 days")).await;
    // The oldest deletion: the first row the walk reaches.
    sqlx::query("update users set deleted_at = now() - interval '60 days' where id = $1")
        .bind(ids[0])
        .execute(app.pool())
        .await
        .unwrap();
    let tx = hold_user(app.pool(), ids[0]).await;
    let run = tokio::spawn({
        let route =
            app.another_instance(&[("PURGE_BATCH_SIZE", "10"), ("PURGE_BATCH_TARGET_MS", "0")]);
        async move {
            read(route.handle(cron_request(Method::GET, "")).await)
                .await
                .json()
        }
    });
    // Release the row once the first batches have walked past it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(
        app.pool(),
        "select coalesce(sum(deleted), 0)::bigint from account_deletion.purge_run_workers",
    )
    .await
        < 20
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the purge never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    tx.rollback().await.unwrap();
    let deleted_at_release = count(
        app.pool(),
        "select coalesce(sum(deleted), 0)::bigint from account_deletion.purge_run_workers",
    )
    .await;
    let body = run.await.unwrap();
    assert!(
        deleted_at_release < 2_999,
        "released while the first pass was still walking"
    );
    assert_eq!(body["deleted"], 3_000, "{body}");
    assert_eq!(body["remaining"], 0, "{body}");
    assert_eq!(user_count(app.pool()).await, 0);
}

#[tokio::test]
async fn a_run_whose_lease_is_taken_mid_purge_stops_and_books_exactly_what_it_deleted() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 3_000, Some("31 days")).await;
    let run = tokio::spawn({
        let route =
            app.another_instance(&[("PURGE_BATCH_SIZE", "10"), ("PURGE_BATCH_TARGET_MS", "0")]);
        async move {
            read(route.handle(cron_request(Method::GET, "")).await)
                .await
                .json()
        }
    });
    let booked = "select coalesce(sum(deleted), 0)::bigint from account_deletion.purge_run_workers";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(app.pool(), booked).await < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the purge never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    // What the next run does to a run whose lease has passed; it waits for
    // the batches in flight, which hold the run's row `for share`.
    sqlx::query(
        "update account_deletion.purge_runs set status = 'abandoned' where status = 'running'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let body = run.await.unwrap();
    assert_eq!(body["status"], "partial", "{body}");
    let gone = 3_000 - user_count(app.pool()).await;
    assert!(gone < 3_000, "the run stopped before the end: {body}");
    assert_eq!(
        count(app.pool(), booked).await,
        gone,
        "every deletion booked, none unbooked"
    );
    assert_eq!(body["deleted"], gone, "{body}");
}
