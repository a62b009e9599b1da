//! Faults in the middle of the work: a backend terminated mid-transaction,
//! an SMTP server hanging up in the middle of DATA. (A pooler restarted
//! under load is in `pooler.rs`; an unreachable database in
//! `purge_outage.rs`.)

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use sqlx::PgPool;

use crate::helpers::{
    AccountApp, app_table_with_a_row_each, count, cron_request, hold_app_rows, read, seed_users,
};

/// Waits until a backend of this database waits for a lock while running a
/// statement that contains `marker`, then terminates it.
async fn terminate_waiting_backend(pool: &PgPool, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "select pid from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'
               and query like '%' || $1 || '%' and pid <> pg_backend_pid()
             limit 1",
        )
        .bind(marker)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(pid) = pid {
            let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
            assert!(terminated);
            return;
        }
        assert!(Instant::now() < deadline, "no backend waited on the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn terminating_the_purge_backend_mid_batch_rolls_it_back_and_the_ledger_stays_exact() {
    let app = AccountApp::with_env(&[
        ("PURGE_WORKERS", "1"),
        ("PURGE_BATCH_TARGET_MS", "0"),
        ("PURGE_BATCH_SIZE", "10"),
    ])
    .await;
    // One full batch goes first; the user whose file the app holds is in a
    // later one.
    seed_users(app.pool(), 10, Some("50 days")).await;
    let later = seed_users(app.pool(), 20, Some("40 days")).await;
    app_table_with_a_row_each(app.pool(), "files", &later).await;
    let app_tx = hold_app_rows(app.pool(), "files", later[7]).await;

    let purge = app.purge.clone();
    let run =
        tokio::spawn(async move { read(purge.handle(cron_request(Method::GET, "")).await).await });
    terminate_waiting_backend(app.pool(), "candidates").await;
    let answer = run.await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.error_code(), "service_unavailable");
    app_tx.rollback().await.unwrap();

    let left = count(app.pool(), "select count(*) from users").await;
    assert!(left == 10 || left == 20, "whole batches only: {left} left");
    assert_eq!(
        count(app.pool(), "select count(*) from files").await,
        left.min(20),
        "the killed batch's cascade rolled back with it"
    );
    let (status, deleted, batches): (String, i64, i32) = sqlx::query_as(
        "select status, deleted, batches from account_deletion.purge_runs order by id limit 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(deleted, 30 - left, "exactly what was deleted");
    assert_eq!(i64::from(batches), (30 - left) / 10);

    let purged = app.run_purge().await;
    assert_eq!(purged["status"], "completed", "{purged}");
    assert_eq!(purged["deleted"].as_i64(), Some(left));
    assert_eq!(count(app.pool(), "select count(*) from users").await, 0);
}

#[tokio::test]
async fn terminating_the_delete_backend_mid_transaction_leaves_the_account_untouched() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    app.add_session(user_id, "the-same-user-on-a-laptop", "1 day")
        .await;
    // The app is touching one of the user's sessions: the delete gets as far
    // as signing the user out, and waits there.
    let mut app_tx = app.pool().begin().await.unwrap();
    sqlx::query(
        "select 1 from sessions where token_hash = sha256(convert_to('the-same-user-on-a-laptop', 'UTF8')) for update",
    )
    .execute(&mut *app_tx)
    .await
    .unwrap();

    let app = std::sync::Arc::new(app);
    let deleting = {
        let (app, session) = (app.clone(), session.clone());
        tokio::spawn(async move { app.delete_with(&session).await })
    };
    terminate_waiting_backend(app.pool(), "signed_out").await;
    let answer = deleting.await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    app_tx.rollback().await.unwrap();

    let state = app.account_state(user_id).await;
    assert_eq!(
        state,
        (false, 2, 0, 0),
        "untouched: active, both sessions, no email, no token"
    );

    // Asked again, it happens whole.
    let answer = app.delete_with(&session).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    assert_eq!(app.account_state(user_id).await, (true, 0, 1, 1));
    app.smtp.wait_for(1, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_smtp_server_hanging_up_mid_data_gets_the_email_retried_and_delivered_once() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    app.smtp.drop_connection_during_data(1);

    let answer = app.delete_with(&session).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    // The first attempt fails and is booked for a retry.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (attempts, last_error): (i32, Option<String>) = loop {
        let row: (i32, Option<String>, bool) = sqlx::query_as(
            "select attempts, last_error, claimed_until is null from account_deletion.email_outbox where user_id = $1::text",
        )
        .bind(user_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
        if row.2 {
            break (row.0, row.1);
        }
        assert!(Instant::now() < deadline, "the first attempt never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(attempts, 1);
    assert!(last_error.is_some());
    assert!(
        app.smtp.received().is_empty(),
        "the cut message was not accepted"
    );

    // The retry (due in a minute) goes out with the next sweep, once.
    sqlx::query(
        "update account_deletion.email_outbox set next_attempt_at = now() where user_id = $1::text",
    )
    .bind(user_id)
    .execute(app.pool())
    .await
    .unwrap();
    let report = app.run_sweep().await;
    assert_eq!(report["sent"], 1, "{report}");
    let report = app.run_sweep().await;
    assert_eq!(report["sent"], 0, "{report}");
    let mail = app.smtp.received();
    assert_eq!(mail.len(), 1);
    // Its link works.
    let page = app.recover_page(&mail[0].token()).await;
    assert!(page.text().contains("Restore my account"));
}
