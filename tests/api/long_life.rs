//! An account's long life: a grace period of up to ten years and holds
//! without end must not outlive what the way back needs (the link's email
//! and token, the history that says who made the deletion).

use http::StatusCode;
use serde_json::Value;

use crate::helpers::AccountApp;

/// Moves everything our tables hold about `user` `interval` into the past,
/// as if the deletion and its email had happened then.
async fn age_records(app: &AccountApp, user: uuid::Uuid, interval: &str) {
    app.backdate(user, interval).await;
    sqlx::raw_sql(&format!(
        "update account_deletion.email_outbox
             set created_at = created_at - interval '{interval}', sent_at = sent_at - interval '{interval}'
             where user_id = '{user}';
         update account_deletion.recovery_tokens set created_at = created_at - interval '{interval}'
             where user_id = '{user}';
         update account_deletion.history set at = at - interval '{interval}' where user_id = '{user}';"
    ))
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn with_a_retention_past_thirty_days_the_link_works_until_the_grace_period_ends() {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "90")]).await;
    let (user, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    // Day 60: the sent email is past the outbox's 30 days, its deletion is
    // not past its 90.
    age_records(&app, user, "60 days").await;
    app.run_sweep().await;
    let page = app.recover_page(&token).await;
    assert!(page.text().contains("<form"), "{}", page.text());
    let recovered = app.recover_json(&token).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.text());
    assert_eq!(app.deleted_at_of(user).await.flatten(), None);
}

#[tokio::test]
async fn a_link_email_whose_grace_period_ended_is_pruned() {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "40")]).await;
    let (user, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    age_records(&app, user, "41 days").await;
    let swept = app.run_sweep().await;
    assert!(swept["pruned"].as_u64().unwrap() >= 1, "{swept}");
    let kept: i64 =
        sqlx::query_scalar("select count(*) from account_deletion.email_outbox where user_id = $1")
            .bind(user.to_string())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(kept, 0);
}

fn actions(view: &Value) -> Vec<(String, String)> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap().to_owned(),
                entry["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn history_count(app: &AccountApp, user: &str) -> i64 {
    sqlx::query_scalar("select count(*) from account_deletion.history where user_id = $1")
        .bind(user)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn history_older_than_the_tombstones_is_kept_while_its_account_exists() {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "3650")]).await;
    let (user, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    // 500 days into a ten-year grace period.
    age_records(&app, user, "500 days").await;
    // Accounts long gone: one whose erasure is older than the tombstones,
    // one erased lately after a long hold.
    let (forgotten, remembered) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "insert into account_deletion.history (user_id, at, action, by, for_deleted_at)
         select id, now() - interval '500 days', 'deleted', 'user', now() - interval '500 days'
         from unnest($1::text[]) id;
         ",
    )
    .bind(vec![forgotten.to_string(), remembered.to_string()])
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("insert into account_deletion.tombstones (user_id, purged_at) values ($1, now() - interval '3 days')")
        .bind(remembered.to_string())
        .execute(app.pool())
        .await
        .unwrap();

    // The runs that prune, and the sweep that records the app's deletions.
    assert_eq!(app.run_purge().await["deleted"], 0);
    app.run_sweep().await;

    assert_eq!(history_count(&app, &forgotten.to_string()).await, 0);
    assert_eq!(history_count(&app, &remembered.to_string()).await, 1);
    let view = app.admin_show(&format!("user_id={user}")).await.json();
    assert_eq!(view["deleted_by"], "user", "{view}");
    assert_eq!(
        actions(&view),
        vec![("deleted".to_owned(), "user".to_owned())],
        "{view}"
    );
    // Still the user's own deletion: signing in again restores it.
    let again = format!("again-{user}");
    app.add_session(user, &again, "1 day").await;
    let bearer = format!("Bearer {again}");
    let state = app
        .deletion_with(&[("authorization", &bearer)])
        .await
        .json();
    assert_eq!(state["restorable"], true, "{state}");
    let restored = app.restore_with(&[("authorization", &bearer)]).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
}
