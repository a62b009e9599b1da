use std::collections::HashMap;
use std::time::Duration;

use account_deletion::platform::web::Background;
use http::{Method, StatusCode};

use crate::helpers::{AccountApp, CRON_SECRET, TestDb, read, request};

#[tokio::test]
async fn smtp_down_at_deletion_still_answers_202_and_the_sweep_delivers_once_it_is_back() {
    let mut app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    app.smtp.take_down();
    let response = app.delete_with(&session).await;
    assert_eq!(response.status, StatusCode::ACCEPTED);

    // The first attempt fails in the background and is booked for a retry.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, last_error): (String, Option<String>) = sqlx::query_as(
            "select status, last_error from account_deletion.email_outbox where user_id = $1::text",
        )
        .bind(user_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
        if last_error.is_some() {
            assert_eq!(status, "pending");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed attempt was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    app.smtp.bring_back().await;
    // The retry is due after its backoff; make it due now rather than wait.
    sqlx::query("update account_deletion.email_outbox set next_attempt_at = now()")
        .execute(app.pool())
        .await
        .unwrap();
    let report = app.run_sweep().await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    let token = mail[0].token();
    assert_eq!(
        app.recover_json(&token).await.status,
        StatusCode::OK,
        "the retried email's link works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_sweeps_deliver_each_outbox_row_exactly_once() {
    let app = AccountApp::new().await;
    // Thirty accounts whose first attempt never happened.
    for _ in 0..30 {
        let (_, session) = app.user_with_session().await;
        delete_and_die(&app, &session).await;
    }
    sqlx::query(
        "update account_deletion.email_outbox set claimed_until = now() - interval '1 second'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let (a, b) = tokio::join!(app.run_sweep(), app.run_sweep());
    assert_eq!(
        a["sent"].as_u64().unwrap() + b["sent"].as_u64().unwrap(),
        30,
        "{a} {b}"
    );
    let mail = app.smtp.wait_for(30, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mail_after = app.smtp.received();
    assert_eq!(mail_after.len(), 30, "no duplicates trickled in");
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for email in &mail {
        *per_id
            .entry(email.header("message-id").unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), 30);
    assert!(per_id.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_process_killed_between_commit_and_send_loses_no_email() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    delete_and_die(&app, &session).await;
    assert!(app.smtp.received().is_empty());

    // While the dead process's claim lasts, a sweep leaves the row alone...
    assert_eq!(app.run_sweep().await["sent"], 0);
    // ...and once it has run out, the sweep sends it.
    sqlx::query(
        "update account_deletion.email_outbox set claimed_until = now() - interval '1 second'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    assert_eq!(app.run_sweep().await["sent"], 1);
    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    let token = mail[0].token();
    assert_eq!(app.recover_json(&token).await.status, StatusCode::OK);
    assert_eq!(app.deleted_at_of(user_id).await, Some(None));
    crate::account_delete::assert_no_table_contains(&app, &token).await;
}

#[tokio::test]
async fn a_recovery_email_for_an_account_restored_meanwhile_is_not_sent() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    delete_and_die(&app, &session).await;
    app.app_clears_deletion(user_id).await;
    sqlx::query("update account_deletion.email_outbox set claimed_until = null")
        .execute(app.pool())
        .await
        .unwrap();
    let report = app.run_sweep().await;
    assert_eq!(
        (report["sent"].as_u64(), report["cancelled"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert!(app.smtp.received().is_empty());
}

#[tokio::test]
async fn the_sweep_route_wants_the_cron_secret() {
    let app = AccountApp::new().await;
    let response = read(
        app.sweep
            .handle(request(Method::GET, "/api/cron/send-emails", &[], b""))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    let wrong = read(
        app.sweep
            .handle(request(
                Method::GET,
                "/api/cron/send-emails",
                &[("authorization", &format!("Bearer {CRON_SECRET}x"))],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_file_mail_url_writes_one_eml_file_per_message() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("account-deletion-mail-{}", uuid::Uuid::new_v4()));
    let mail_url = format!("file://{}", dir.display());
    let vars = [
        ("DATABASE_URL", db.url()),
        ("APP_URL", "http://localhost:3000".to_owned()),
        ("MAIL_URL", mail_url),
        ("MAIL_FROM", "no-reply@localhost.test".to_owned()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = account_deletion::config::AccountConfig::from_lookup(&crate::helpers::env(&vars));
    let delete = account_deletion::routes::delete_account::DeleteAccount::new(config);
    let user_id: uuid::Uuid =
        sqlx::query_scalar("insert into users (email) values ('file@example.test') returning id")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    sqlx::query("insert into sessions (user_id, token_hash, expires_at) values ($1, sha256('s'::bytea), now() + interval '1 day')")
        .bind(user_id)
        .execute(&db.pool)
        .await
        .unwrap();
    let response = read(
        delete
            .handle(request(
                Method::POST,
                "/api/account/delete",
                &[("authorization", "Bearer s")],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            break files;
        }
        assert!(std::time::Instant::now() < deadline, "no .eml within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("To: file@example.test"), "{eml}");
    assert!(eml.contains("Message-ID: <"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The class of the first failed attempt at the user's email, once it is
/// recorded; the row must still be waiting for a retry.
async fn first_failure(app: &AccountApp, user_id: uuid::Uuid) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, last_error): (String, Option<String>) = sqlx::query_as(
            "select status, last_error from account_deletion.email_outbox where user_id = $1::text",
        )
        .bind(user_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
        if let Some(class) = last_error {
            assert_eq!(status, "pending", "queued for a retry");
            return class;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed attempt was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_credentials_a_server_without_starttls_gets_no_password_and_no_message() {
    let smtp = crate::helpers::smtp::SmtpSink::start().await;
    // `smtp://` with a password, and no `?tls=none`: STARTTLS is required.
    let url = format!(
        "smtp://mailer%40app.test:hunter2-password@127.0.0.1:{}",
        smtp.port
    );
    let app = AccountApp::with_env(&[("MAIL_URL", &url)]).await;
    let (user_id, session) = app.user_with_session().await;
    assert_eq!(app.delete_with(&session).await.status, StatusCode::ACCEPTED);
    assert_eq!(
        first_failure(&app, user_id).await,
        "smtp_starttls_unavailable"
    );
    let commands = smtp.commands();
    assert!(
        commands.iter().any(|c| c.starts_with("EHLO")),
        "it asked what the server offers: {commands:?}"
    );
    assert!(
        commands
            .iter()
            .all(|c| !c.starts_with("AUTH") && !c.starts_with("MAIL") && !c.contains("hunter2")),
        "no password and no message in the clear: {commands:?}"
    );
    assert!(smtp.received().is_empty() && app.smtp.received().is_empty());
}

#[tokio::test]
async fn without_credentials_starttls_is_used_when_the_server_offers_it() {
    let smtp = crate::helpers::smtp::SmtpSink::start().await;
    smtp.offer_starttls();
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = AccountApp::with_env(&[("MAIL_URL", &url)]).await;
    let (user_id, session) = app.user_with_session().await;
    assert_eq!(app.delete_with(&session).await.status, StatusCode::ACCEPTED);
    // The sink cannot finish the handshake (it has no certificate anyone
    // trusts), so the email waits for a retry; what matters is that the
    // client began it before sending anything.
    let class = first_failure(&app, user_id).await;
    assert!(
        matches!(class.as_str(), "smtp_tls" | "smtp_connection"),
        "the handshake broke off: {class}"
    );
    assert_eq!(smtp.tls_handshakes(), 1);
    let commands = smtp.commands();
    assert_eq!(
        commands
            .iter()
            .map(|c| c.split_whitespace().next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["EHLO", "STARTTLS"],
        "nothing but the greeting before TLS: {commands:?}"
    );
}

#[tokio::test]
async fn tls_none_waives_encryption_explicitly_for_a_local_catcher() {
    // Every other test mails the sink this way (`SmtpSink::url`).
    let app = AccountApp::new().await;
    assert!(app.smtp.url().ends_with("?tls=none"));
    let (_, session) = app.user_with_session().await;
    assert_eq!(app.delete_with(&session).await.status, StatusCode::ACCEPTED);
    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        mail[0].auth,
        Some(("mailer@app.test".to_owned(), "s3cret!".to_owned()))
    );
}

/// The signed-in user of `session` deletes their account, and the process
/// dies right after the commit: the background send never runs.
async fn delete_and_die(app: &AccountApp, session: &str) {
    let auth = format!("Bearer {session}");
    let mut req = request(
        Method::POST,
        "/api/account/delete",
        &[("authorization", &auth)],
        b"",
    );
    req.extensions_mut().insert(Background::new(|_task| {}));
    assert_eq!(
        read(app.delete.handle(req).await).await.status,
        StatusCode::ACCEPTED
    );
}
