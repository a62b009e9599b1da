use std::time::Duration;

use http::{Method, StatusCode};

use crate::helpers::{APP_URL, AccountApp, CRON_SECRET, count, hold_user, read, request};

const PATH: &str = "/api/account/delete";

#[tokio::test]
async fn get_and_other_methods_get_405_with_allow() {
    let app = AccountApp::new().await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let response = read(
            app.delete
                .handle(request(method.clone(), PATH, &[], b""))
                .await,
        )
        .await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(response.header("allow"), Some("OPTIONS, POST"));
        assert_eq!(response.error_code(), "method_not_allowed");
    }
}

#[tokio::test]
async fn missing_unknown_or_expired_sessions_and_the_cron_secret_get_401() {
    let app = AccountApp::new().await;
    let (user_id, _) = app.user_with_session().await;
    app.add_session(user_id, "expired-session", "-1 minute")
        .await;
    let no_header = read(
        app.delete
            .handle(request(Method::POST, PATH, &[], b""))
            .await,
    )
    .await;
    assert_eq!(no_header.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_header.error_code(), "unauthorized");
    for token in ["unknown-session", "expired-session", CRON_SECRET, ""] {
        let response = app.delete_with(token).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(response.error_code(), "unauthorized");
    }
    assert_eq!(app.deleted_at_of(user_id).await, Some(None), "still active");
    assert!(app.smtp.received().is_empty());
}

#[tokio::test]
async fn deleting_soft_deletes_revokes_every_session_and_mails_a_link_on_app_url() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    app.add_session(user_id, "the-same-user-on-a-phone", "7 days")
        .await;
    let (other_user, _) = app.user_with_session().await;

    let auth = format!("Bearer {session}");
    let response = read(
        app.delete
            .handle(request(
                Method::POST,
                PATH,
                &[
                    ("authorization", &auth),
                    ("host", "evil.example"),
                    ("x-forwarded-host", "evil.example"),
                    ("x-forwarded-proto", "http"),
                ],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    let body = response.json();
    let deleted_at =
        chrono::DateTime::parse_from_rfc3339(body["deleted_at"].as_str().unwrap()).unwrap();
    let purge_after =
        chrono::DateTime::parse_from_rfc3339(body["purge_after"].as_str().unwrap()).unwrap();
    assert_eq!(purge_after - deleted_at, chrono::Duration::days(30));
    let stored = app.deleted_at_of(user_id).await.unwrap().unwrap();
    assert_eq!(stored, deleted_at);

    let sessions_left: i64 = sqlx::query_scalar("select count(*) from sessions where user_id = $1")
        .bind(user_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(sessions_left, 0, "every session revoked");
    assert_eq!(
        count(app.pool(), "select count(*) from sessions").await,
        1,
        "other users keep theirs"
    );
    assert_eq!(
        app.delete_with(&session).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.deleted_at_of(other_user).await, Some(None));

    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    let email = &mail[0];
    assert_eq!(
        email.auth,
        Some(("mailer@app.test".to_owned(), "s3cret!".to_owned())),
        "AUTH from MAIL_URL"
    );
    let recipient: String = sqlx::query_scalar("select email from users where id = $1")
        .bind(user_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(email.to, [format!("<{recipient}>")]);
    assert!(
        email.from.starts_with("<no-reply@app.example.test>"),
        "{}",
        email.from
    );
    let links = email.links();
    assert!(!links.is_empty());
    for link in &links {
        assert!(
            link.starts_with(&format!("{APP_URL}/api/account/recover?token=")),
            "{link}"
        );
        assert!(!link.contains("evil"), "{link}");
    }
    let outbox_id: uuid::Uuid =
        sqlx::query_scalar("select id from account_deletion.email_outbox where user_id = $1::text")
            .bind(user_id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        email.header("message-id"),
        Some(format!("<{outbox_id}@app.example.test>"))
    );
    let subject = email.header("subject").unwrap();
    assert!(subject.contains("deleted"), "{subject}");
    let text = email.decoded();
    assert!(
        text.contains(&purge_after.format("%-d %B %Y").to_string()),
        "the purge date is in the email"
    );
    assert!(text.contains("If you did not delete your account"));

    let token = email.token();
    assert_eq!(token.len(), 43, "256 bits, base64url");
    assert_no_table_contains(&app, &token).await;
}

/// Searches every column of every table for the text.
pub async fn assert_no_table_contains(app: &AccountApp, needle: &str) {
    let tables: Vec<String> = sqlx::query_scalar(
        "select quote_ident(table_schema) || '.' || quote_ident(table_name)
         from information_schema.tables
         where table_schema in ('public', 'account_deletion') and table_type = 'BASE TABLE'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(tables.len() >= 5);
    for table in tables {
        let hits: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {table} t where strpos(t::text, $1) > 0"
        ))
        .bind(needle)
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(hits, 0, "the plaintext token is in {table}");
    }
}

#[tokio::test]
async fn concurrent_deletes_with_one_session_delete_once() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let (a, b) = tokio::join!(app.delete_with(&session), app.delete_with(&session));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::UNAUTHORIZED]);
    let emails: i64 = sqlx::query_scalar(
        "select count(*) from account_deletion.email_outbox where user_id = $1::text",
    )
    .bind(user_id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(emails, 1);
}

#[tokio::test]
async fn deletes_from_two_sessions_queued_on_the_locked_user_delete_once() {
    let app = AccountApp::new().await;
    let (user_id, first) = app.user_with_session().await;
    app.add_session(user_id, "second-session", "1 day").await;
    // Hold the user's row so both deletes queue on it and the second one
    // must re-check the row the first one changed.
    let holder = hold_user(app.pool(), user_id).await;
    let deletes = tokio::spawn({
        let app_delete = app.delete.clone();
        async move {
            let call = |session: String| {
                let route = app_delete.clone();
                async move {
                    let auth = format!("Bearer {session}");
                    read(
                        route
                            .handle(request(
                                Method::POST,
                                PATH,
                                &[("authorization", &auth)],
                                b"",
                            ))
                            .await,
                    )
                    .await
                    .status
                }
            };
            tokio::join!(call(first), call("second-session".to_owned()))
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(
        app.pool(),
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()",
    )
    .await
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "the deletes never queued on the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.commit().await.unwrap();
    let (a, b) = deletes.await.unwrap();
    let mut statuses = [a, b];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::UNAUTHORIZED]);
    let user = format!("'{user_id}'");
    for (table, expected) in [
        ("account_deletion.email_outbox", 1),
        ("account_deletion.recovery_tokens", 1),
        ("sessions", 0),
    ] {
        let sql = format!("select count(*) from {table} where user_id = {user}");
        assert_eq!(count(app.pool(), &sql).await, expected, "{table}");
    }
}
