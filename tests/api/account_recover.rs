use std::time::Duration;

use http::{Method, StatusCode};

use crate::helpers::{
    AccountApp, assert_each_account_is_restored_or_erased, race_the_purge, read, request, urlencode,
};

const PATH: &str = "/api/account/recover";

#[tokio::test]
async fn the_page_offers_a_button_for_a_valid_link_and_never_consumes_it() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    for _ in 0..3 {
        let page = app.recover_page(&token).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        let html = page.text();
        assert!(
            html.contains("<form method=\"post\" action=\"/api/account/recover\">"),
            "{html}"
        );
        assert!(html.contains(&format!("name=\"token\" value=\"{token}\"")));
    }
    assert!(
        app.deleted_at_of(user_id).await.unwrap().is_some(),
        "GET changed nothing"
    );
    assert_eq!(
        app.recover_json(&token).await.status,
        StatusCode::OK,
        "the token still works"
    );
}

#[tokio::test]
async fn bad_tokens_get_the_invalid_page_with_nothing_echoed_unescaped() {
    let app = AccountApp::new().await;
    for bad in [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "x' or '1'='1",
        "",
    ] {
        let page = app.recover_page(bad).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        let html = page.text();
        assert!(html.contains("invalid or has expired"), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(!html.contains("<form"), "no button for a bad link");
    }
    let no_query = read(
        app.recover
            .handle(request(Method::GET, PATH, &[], b""))
            .await,
    )
    .await;
    assert!(no_query.text().contains("invalid or has expired"));
}

#[tokio::test]
async fn a_json_post_restores_the_account_and_sends_the_restored_email() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    let response = app.recover_json(&token).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json(), serde_json::json!({"recovered": true}));
    assert_eq!(app.deleted_at_of(user_id).await, Some(None));
    let mail = app.smtp.wait_for(2, Duration::from_secs(5)).await;
    assert!(mail[1].header("subject").unwrap().contains("restored"));
    assert!(
        mail[1].links().is_empty(),
        "the restored email carries no link"
    );
    // Recovery does not sign the user in: their old session stays revoked.
    assert_eq!(
        app.delete_with(&session).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A purge run now leaves the account alone.
    app.app_clears_deletion(user_id).await;
    app.run_purge().await;
    assert_eq!(app.deleted_at_of(user_id).await, Some(None));
}

#[tokio::test]
async fn a_form_post_restores_the_account_and_answers_with_a_page() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    let body = format!("token={}", urlencode(&token));
    let response = read(
        app.recover
            .handle(request(
                Method::POST,
                PATH,
                &[("content-type", "application/x-www-form-urlencoded")],
                body.as_bytes(),
            ))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(response.text().contains("Your account is restored"));
    assert_eq!(app.deleted_at_of(user_id).await, Some(None));
}

async fn assert_refused(app: &AccountApp, token: &str) {
    let response = app.recover_json(token).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{token}: {}",
        response.text()
    );
    assert_eq!(response.error_code(), "invalid_or_expired_token");
}

#[tokio::test]
async fn reuse_wrong_tokens_expiry_and_purged_accounts_all_get_the_same_400_and_change_nothing() {
    let app = AccountApp::new().await;

    // Reuse.
    let (reused_user, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    assert_eq!(app.recover_json(&token).await.status, StatusCode::OK);
    app.app_soft_deletes(reused_user).await;
    assert_refused(&app, &token).await;
    assert!(
        app.deleted_at_of(reused_user).await.unwrap().is_some(),
        "unchanged"
    );

    // A wrong token, well formed or not.
    assert_refused(&app, &"A".repeat(43)).await;
    assert_refused(&app, "'; delete from users; --").await;

    // Past the retention period, before the purge has run.
    let (late_user, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    sqlx::query(
        "update users set deleted_at = deleted_at - interval '30 days 1 second' where id = $1;",
    )
    .bind(late_user)
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("update account_deletion.recovery_tokens t set for_deleted_at = u.deleted_at from users u where u.id::text = t.user_id and u.id = $1")
        .bind(late_user)
        .execute(app.pool())
        .await
        .unwrap();
    let page = app.recover_page(&token).await;
    assert!(
        page.text().contains("invalid or has expired"),
        "the page agrees"
    );
    assert_refused(&app, &token).await;
    assert!(
        app.deleted_at_of(late_user).await.unwrap().is_some(),
        "still soft-deleted"
    );

    // After the purge.
    assert_eq!(app.run_purge().await["deleted"], 1);
    assert_eq!(app.deleted_at_of(late_user).await, None);
    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn a_support_restore_then_a_new_deletion_makes_the_old_link_useless() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let old_token = app.delete_and_read_token(&session).await;
    // Support restores by hand, the user signs in again and deletes again.
    app.app_clears_deletion(user_id).await;
    app.add_session(user_id, "second-session", "1 day").await;
    let new_token = app.delete_and_read_token("second-session").await;
    assert_ne!(old_token, new_token);
    assert_refused(&app, &old_token).await;
    assert_eq!(app.recover_json(&new_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn even_without_a_new_email_a_support_restore_and_raw_redelete_kill_the_old_link() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let old_token = app.delete_and_read_token(&session).await;
    app.app_clears_deletion(user_id).await;
    // The app soft-deletes again by itself, not through this service.
    app.app_soft_deletes(user_id).await;
    assert_refused(&app, &old_token).await;
}

#[tokio::test]
async fn the_reminder_carries_a_fresh_link_and_the_first_one_stops_working() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let first = app.delete_and_read_token(&session).await;
    // 27 days later: three days before the purge.
    app.backdate(user_id, "27 days 1 minute").await;
    let report = app.run_sweep().await;
    assert_eq!(report["reminders_queued"], 1, "{report}");
    assert_eq!(report["sent"], 1, "{report}");
    let mail = app.smtp.wait_for(2, Duration::from_secs(5)).await;
    let reminder = &mail[1];
    assert!(
        reminder
            .header("subject")
            .unwrap()
            .contains("will be erased"),
        "{:?}",
        reminder.header("subject")
    );
    let fresh = reminder.token();
    assert_ne!(fresh, first);
    // A second sweep sends no second reminder.
    assert_eq!(app.run_sweep().await["reminders_queued"], 0);
    assert_refused(&app, &first).await;
    assert_eq!(app.recover_json(&fresh).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_recoveries_racing_the_purge_never_answer_200_for_an_account_then_deleted() {
    let app = AccountApp::with_env(&[("PURGE_BATCH_SIZE", "5")]).await;
    let mut accounts = Vec::new();
    for _ in 0..40 {
        let (user_id, session) = app.user_with_session().await;
        let token = app.delete_and_read_token(&session).await;
        accounts.push((user_id, token));
    }
    // Put every deletion right at the edge of its retention period: still
    // recoverable for a few hundred milliseconds, then purgeable.
    sqlx::raw_sql(
        "update users set deleted_at = now() - interval '30 days' + interval '300 milliseconds' where deleted_at is not null;
         update account_deletion.recovery_tokens t set for_deleted_at = u.deleted_at from users u where u.id::text = t.user_id;",
    )
    .execute(app.pool())
    .await
    .unwrap();

    let app = std::sync::Arc::new(app);
    let answers = race_the_purge(&app, accounts, 4, |app, i, (_, token)| async move {
        // Forty people, each from their own address: however many lose
        // the race, none is slowed down for the others' failures.
        let address = format!("203.0.113.{i}");
        app.recover_json_with(&token, &[("x-real-ip", &address)])
            .await
            .status
    })
    .await;
    assert_each_account_is_restored_or_erased(&app, answers, &[StatusCode::BAD_REQUEST]).await;
}

#[tokio::test]
async fn an_account_the_app_soft_deleted_by_itself_gets_no_reminder_and_no_link_and_is_erased_on_schedule()
 {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "2"), ("REMINDER_DAYS_BEFORE", "1")]).await;
    // One user deletes their own account; the app bans another by setting
    // its deleted-at (as an admin tool over the app's own column would).
    let (deleter, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    let (banned, _) = app.user_with_session().await;
    app.app_soft_deletes(banned).await;
    // 36 hours later: both inside the reminder window.
    app.backdate(deleter, "36 hours").await;
    app.backdate(banned, "36 hours").await;
    let before = app.smtp.received().len();
    let report = app.run_sweep().await;
    assert_eq!(report["reminders_queued"], 1, "{report}");
    let mail = app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    let banned_email: String = sqlx::query_scalar("select email from users where id = $1")
        .bind(banned)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(
        mail.iter()
            .all(|m| m.to.iter().all(|to| !to.contains(&banned_email))),
        "no email of ours ever reached the banned account"
    );
    assert_eq!(
        crate::helpers::count(
            app.pool(),
            &format!(
                "select count(*) from account_deletion.email_outbox where user_id = '{banned}'"
            )
        )
        .await,
        0
    );
    // The sweep found it and put it in its history, as deleted by the app.
    assert_eq!(report["app_deletions_recorded"], 1, "{report}");
    let view = app.admin_show(&format!("user_id={banned}")).await.json();
    assert_eq!(view["deleted_by"], "app", "{view}");
    assert_eq!(view["history"][0]["action"], "deleted");
    assert_eq!(view["history"][0]["by"], "app");
    assert_eq!(app.run_sweep().await["app_deletions_recorded"], 0);
    // Erased on schedule like any other.
    app.backdate(deleter, "13 hours").await;
    app.backdate(banned, "13 hours").await;
    let purged = app.run_purge().await;
    assert_eq!(purged["deleted"], 2, "{purged}");
}

#[tokio::test]
async fn every_recovery_page_links_to_the_apps_sign_in() {
    for (extra, sign_in) in [
        (vec![], "https://app.example.test/"),
        (
            vec![(
                "APP_SIGN_IN_URL",
                "https://app.example.test/login?next=%2Fsettings",
            )],
            "https://app.example.test/login?next=%2Fsettings",
        ),
    ] {
        let app = AccountApp::with_env(&extra).await;
        let (_, session) = app.user_with_session().await;
        let token = app.delete_and_read_token(&session).await;
        let link = format!("href=\"{sign_in}\">Sign in</a>");
        let valid = app.recover_page(&token).await.text();
        let invalid = app.recover_page(&"A".repeat(43)).await.text();
        let form = read(
            app.recover
                .handle(request(
                    Method::POST,
                    PATH,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    format!("token={token}").as_bytes(),
                ))
                .await,
        )
        .await;
        assert_eq!(form.status, StatusCode::OK);
        for (page, text) in [
            ("valid", valid),
            ("invalid", invalid),
            ("restored", form.text()),
        ] {
            assert!(text.contains(&link), "{page} page for {sign_in}:\n{text}");
        }
    }
    let bad = AccountApp::with_env(&[("APP_SIGN_IN_URL", "/login")]).await;
    let (_, session) = bad.user_with_session().await;
    assert_eq!(
        bad.delete_with(&session).await.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a sign-in URL that is not absolute is a configuration error"
    );
}
