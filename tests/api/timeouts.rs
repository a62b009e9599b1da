//! A lock held elsewhere (an app transaction, a stuck session) makes every
//! route give up in seconds with a clean 503, and leaves nothing half done,
//! instead of running into the function's `maxDuration`.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::helpers::{
    AccountApp, TestResponse, app_table_with_a_row_each, count, hold_app_rows, hold_user,
    seed_users,
};

/// The account routes wait at most 2 s for a lock (`db::Limits::ACCOUNT`).
const ACCOUNT_LOCK_LIMIT: Duration = Duration::from_secs(2);

/// Without the limits these would wait for the lock for ever; fail instead.
async fn within_10s<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("still waiting for the lock after 10 s")
}

/// A clean 503, given once the account routes' lock limit had passed, and
/// not long after.
fn assert_gave_up_at_the_lock_limit(answer: &TestResponse, waited: Duration) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.error_code(), "service_unavailable");
    assert!(
        waited >= ACCOUNT_LOCK_LIMIT && waited < ACCOUNT_LOCK_LIMIT + Duration::from_secs(3),
        "gave up after {waited:?}"
    );
}

#[tokio::test]
async fn a_held_user_row_makes_delete_answer_503_in_seconds_and_change_nothing() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let holder = hold_user(app.pool(), user_id).await;

    let started = Instant::now();
    let answer = within_10s(app.delete_with(&session)).await;
    assert_gave_up_at_the_lock_limit(&answer, started.elapsed());
    holder.rollback().await.unwrap();
    assert_eq!(
        app.account_state(user_id).await,
        (false, 1, 0, 0),
        "untouched"
    );

    // Once the lock is gone, the same request works.
    let answer = app.delete_with(&session).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    assert_eq!(app.account_state(user_id).await, (true, 0, 1, 1));
}

#[tokio::test]
async fn a_held_user_row_makes_recovery_answer_503_in_seconds_and_the_link_keeps_working() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    let holder = hold_user(app.pool(), user_id).await;

    let started = Instant::now();
    let answer = within_10s(app.recover_json(&token)).await;
    assert_gave_up_at_the_lock_limit(&answer, started.elapsed());
    holder.rollback().await.unwrap();
    assert!(
        app.deleted_at_of(user_id).await.unwrap().is_some(),
        "still deleted"
    );
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.recovery_tokens where used_at is not null"
        )
        .await,
        0,
        "the token was not consumed"
    );

    let answer = app.recover_json(&token).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(app.deleted_at_of(user_id).await, Some(None));
}

#[tokio::test]
async fn a_batch_blocked_on_an_app_lock_fails_the_run_in_seconds_and_rolls_back_whole() {
    let app = AccountApp::new().await;
    let expired = seed_users(app.pool(), 5, Some("40 days")).await;
    app_table_with_a_row_each(app.pool(), "posts", &expired).await;
    // The app is in the middle of editing one of those users' posts.
    let app_tx = hold_app_rows(app.pool(), "posts", expired[2]).await;

    // Default settings: 20 ms batches may wait 1 s for a lock.
    let started = Instant::now();
    let answer = within_10s(async {
        crate::helpers::read(
            app.purge
                .handle(crate::helpers::cron_request(http::Method::GET, ""))
                .await,
        )
        .await
    })
    .await;
    let waited = started.elapsed();
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert!(waited < Duration::from_secs(5), "the run took {waited:?}");
    let (status, error_code, deleted): (String, Option<String>, i64) = sqlx::query_as(
        "select status, error_code, deleted from account_deletion.purge_runs order by id desc limit 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), error_code.as_deref(), deleted),
        ("failed", Some("lock_timeout"), 0)
    );
    assert_eq!(
        count(app.pool(), "select count(*) from users").await,
        5,
        "the batch rolled back whole"
    );
    assert_eq!(count(app.pool(), "select count(*) from posts").await, 5);

    app_tx.rollback().await.unwrap();
    let purged = app.run_purge().await;
    assert_eq!(
        (purged["status"].as_str(), purged["deleted"].as_i64()),
        (Some("completed"), Some(5))
    );
    assert_eq!(count(app.pool(), "select count(*) from posts").await, 0);
}
