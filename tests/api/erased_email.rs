//! The optional last email, "your account has been erased" (`SEND_ERASED_EMAIL`):
//! off by default; when on, the purge queues it with the account's address,
//! the sweep sends it, and the address is gone as soon as it is delivered
//! (or given up on).

use std::time::Duration;

use http::StatusCode;

use crate::helpers::{AccountApp, count};

/// A user deleted through the route, then past their retention; their id
/// and address.
async fn expired_user(app: &AccountApp) -> (uuid::Uuid, String) {
    let (user, session) = app.user_with_session().await;
    let address: String = sqlx::query_scalar("select email from users where id = $1")
        .bind(user)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(app.delete_with(&session).await.status, StatusCode::ACCEPTED);
    sqlx::query("update users set deleted_at = now() - interval '31 days' where id = $1")
        .bind(user)
        .execute(app.pool())
        .await
        .unwrap();
    (user, address)
}

/// Rows of our tables that still hold `address`.
async fn traces_of(app: &AccountApp, address: &str) -> i64 {
    sqlx::query_scalar(
        "select (select count(*) from users where email = $1)
              + (select count(*) from account_deletion.email_outbox where recipient = $1)",
    )
    .bind(address)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

async fn make_emails_due(app: &AccountApp) {
    sqlx::query(
        "update account_deletion.email_outbox set next_attempt_at = now(), claimed_until = null
         where status = 'pending'",
    )
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn by_default_no_farewell_email_is_queued_and_the_address_leaves_with_the_account() {
    let app = AccountApp::new().await;
    let (_, address) = expired_user(&app).await;
    assert_eq!(app.run_purge().await["deleted"], 1);
    assert_eq!(traces_of(&app, &address).await, 0);
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.email_outbox where kind = 'erased'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn when_on_the_erased_email_is_sent_after_the_purge_and_then_the_address_is_gone() {
    let app = AccountApp::with_env(&[("SEND_ERASED_EMAIL", "true")]).await;
    let (user, address) = expired_user(&app).await;
    // The recovery email went out at deletion.
    app.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(app.run_purge().await["deleted"], 1);
    // Until the email is delivered, the address is kept for it alone.
    assert_eq!(traces_of(&app, &address).await, 1);
    let swept = app.run_sweep().await;
    assert_eq!(swept["sent"], 1, "{swept}");
    let mail = app.smtp.wait_for(2, Duration::from_secs(5)).await;
    let farewell = &mail[1];
    assert!(
        farewell.to.iter().any(|to| to.contains(&address)),
        "{:?}",
        farewell.to
    );
    assert_eq!(
        farewell.header("Subject").as_deref(),
        Some("Your account has been erased")
    );
    assert!(farewell.links().is_empty(), "nothing left to link to");
    assert_eq!(
        traces_of(&app, &address).await,
        0,
        "the address is gone once delivered"
    );
    let (status, recipient): (String, String) = sqlx::query_as(
        "select status, recipient from account_deletion.email_outbox where user_id = $1::text",
    )
    .bind(user)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((status.as_str(), recipient.as_str()), ("sent", ""));
}

#[tokio::test]
async fn an_erased_email_that_cannot_be_delivered_gives_up_and_forgets_the_address_too() {
    let mut app = AccountApp::with_env(&[("SEND_ERASED_EMAIL", "true")]).await;
    let (_, address) = expired_user(&app).await;
    app.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(app.run_purge().await["deleted"], 1);
    app.smtp.take_down();
    let mut gave_up = 0;
    for _ in 0..8 {
        make_emails_due(&app).await;
        gave_up += app.run_sweep().await["gave_up"].as_u64().unwrap();
    }
    assert_eq!(gave_up, 1);
    assert_eq!(traces_of(&app, &address).await, 0);
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.email_outbox where kind = 'erased' and status = 'failed' and recipient = ''"
        )
        .await,
        1
    );
}
