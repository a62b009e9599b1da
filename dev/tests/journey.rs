//! The dev server driven over HTTP through a user's whole journey, and its
//! embedded database started from nothing.

mod support;

use std::time::{Duration, Instant};

use support::{DevServer, stdout};
use testkit::http_client::send;
use testkit::postgres::TestDb;

fn recovery_link(mail: &(String, Vec<String>)) -> String {
    mail.1
        .iter()
        .find(|l| l.contains("/api/account/recover?token="))
        .expect("a recovery link")
        .clone()
}

#[tokio::test]
async fn the_whole_journey_over_http_seed_delete_mail_recover_delete_purge() {
    testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
    let db = TestDb::new().await;
    let server = DevServer::start(Some(&db.url()), Duration::from_secs(30), &[]).await;
    let port = server.port;

    // Seed: a demo user with a session.
    let seeded = stdout(&server.command(&["seed"]));
    let token = seeded
        .lines()
        .find_map(|l| l.strip_prefix("session  "))
        .expect("a session token")
        .trim()
        .to_owned();
    let email = seeded
        .lines()
        .find_map(|l| l.strip_prefix("user     "))
        .unwrap()
        .trim()
        .to_owned();
    let auth = format!("Bearer {token}");

    // Delete.
    let deleted = send(
        port,
        "POST",
        "/api/account/delete",
        &[("authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(deleted.status, 202, "{}", deleted.body);

    // Open the mail, follow the link, press the button.
    let mail = server.wait_for_mail(1).await;
    assert_eq!(mail[0].0, "Your account has been deleted");
    let link = recovery_link(&mail[0]);
    let base = format!("http://127.0.0.1:{port}");
    assert!(link.starts_with(&base), "{link}");
    let path = link.strip_prefix(&base).unwrap();
    let page = send(port, "GET", path, &[], b"").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Restore my account"));
    let form = format!("token={}", link.split("token=").nth(1).unwrap());
    let restored = send(
        port,
        "POST",
        "/api/account/recover",
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert!(restored.body.contains("restored"));
    assert_eq!(
        server.wait_for_mail(2).await[1].0,
        "Your account has been restored"
    );

    // Sign in again (the app's job: a new session) and delete again.
    sqlx::query(
        "insert into sessions (user_id, token_hash, expires_at)
         select id, sha256('second-session'::bytea), now() + interval '1 day' from users where email = $1",
    )
    .bind(&email)
    .execute(&db.pool)
    .await
    .unwrap();
    export_journey(&server, &email).await;
    let again = send(
        port,
        "POST",
        "/api/account/delete",
        &[("authorization", "Bearer second-session")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(again.status, 202, "{}", again.body);
    server.wait_for_mail(4).await;

    // A month passes; the purge, fired the way Vercel fires it.
    stdout(&server.command(&["backdate", &email]));
    let answer = stdout(&server.command(&["cron", "/api/cron/permanent-delete-users"]));
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(answer["deleted"], 1, "{answer}");
    let left: i64 = sqlx::query_scalar("select count(*) from users where email = $1")
        .bind(&email)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // The console told the user about each message (the folder is polled).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = server.logs();
        if logs.contains("mail: \"Your account has been deleted\"") && logs.contains(&link) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no mail line with the link: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A copy of the data: asked for signed in, the link by email, the archive
/// streamed through the dev server as through Vercel; then the operator's
/// copy, written by `cargo dev account … export`.
async fn export_journey(server: &DevServer, email: &str) {
    let port = server.port;
    let asked = send(
        port,
        "POST",
        "/api/account/export",
        &[("authorization", "Bearer second-session")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(asked.status, 202, "{}", asked.body);
    let mail = server.wait_for_mail(3).await;
    assert_eq!(mail[2].0, "Your data is ready to download");
    let link = mail[2]
        .1
        .iter()
        .find(|l| l.contains("/api/account/export?token="))
        .expect("a download link")
        .clone();
    let form = format!("token={}", link.split("token=").nth(1).unwrap());
    let got = send(
        port,
        "POST",
        "/api/account/export",
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-type"), Some("application/zip"));
    // Streamed, as on Vercel: no length is known before the last byte.
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert!(got.header("content-length").is_none());
    assert!(is_whole_zip(&got.bytes));

    let out = server.dir.join("copy.zip");
    let printed =
        stdout(&server.command(&["account", email, "export", "--out", out.to_str().unwrap()]));
    assert!(printed.starts_with(out.to_str().unwrap()), "{printed}");
    assert!(
        printed.contains("1 rows  tables/public.users.ndjson"),
        "{printed}"
    );
    assert!(is_whole_zip(&std::fs::read(&out).unwrap()));
}

/// Starts with a local header, ends with the end of the central directory.
fn is_whole_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        && bytes.len() > 22
        && bytes[bytes.len() - 22..].starts_with(b"PK\x05\x06")
}

#[tokio::test]
async fn with_no_database_url_the_embedded_database_serves_everything() {
    let server = DevServer::start(None, Duration::from_mins(5), &[]).await;
    let page = send(server.port, "GET", "/api/account/recover?token=x", &[], b"")
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", server.logs());
    assert!(page.body.contains("invalid or has expired"));
    let refused = send(
        server.port,
        "GET",
        "/api/cron/permanent-delete-users",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 401);
    let answer = stdout(&server.command(&["cron", "/api/cron/permanent-delete-users"]));
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["status"], "completed", "{answer}");
    assert!(
        server.logs().contains("embedded PostgreSQL"),
        "{}",
        server.logs()
    );
    // Support's command reaches the embedded database through the server.
    let seeded = stdout(&server.command(&["seed"]));
    let email = seeded
        .lines()
        .find_map(|l| l.strip_prefix("user     "))
        .unwrap()
        .trim()
        .to_owned();
    let shown = account(&server, &[&email]);
    assert_eq!(shown["status"], "active", "{shown}");
    // The archive too: the dev server writes it where the command runs.
    let printed = stdout(&server.command(&["account", &email, "export", "--out", "mine.zip"]));
    assert!(printed.contains("tables/public.users.ndjson"), "{printed}");
    assert!(is_whole_zip(
        &std::fs::read(server.dir.join("mine.zip")).unwrap()
    ));
}

/// `cargo dev account …`'s printed account.
fn account(server: &DevServer, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["account"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout(&server.command(&all))).unwrap()
}

/// `cargo dev seed [email]`: the user's address and a session's bearer.
fn seed(server: &DevServer, email: Option<&str>) -> (String, String) {
    let mut args = vec!["seed"];
    args.extend(email);
    let seeded = stdout(&server.command(&args));
    let line = |prefix: &str| {
        seeded
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    (line("user     "), format!("Bearer {}", line("session  ")))
}

/// `method path` with `auth`, expecting `status`; the JSON answer.
async fn call(
    server: &DevServer,
    method: &str,
    path: &str,
    auth: &str,
    status: u16,
) -> serde_json::Value {
    let answer = send(server.port, method, path, &[("authorization", auth)], b"")
        .await
        .unwrap();
    assert_eq!(answer.status, status, "{path}: {}", answer.body);
    serde_json::from_str(&answer.body).unwrap_or_default()
}

#[tokio::test]
async fn the_way_back_journey_sign_in_see_the_banner_restore_then_the_support_path() {
    testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
    let db = TestDb::new().await;
    let server = DevServer::start(Some(&db.url()), Duration::from_secs(30), &[]).await;
    let (email, first) = seed(&server, None);
    call(&server, "POST", "/api/account/delete", &first, 202).await;

    // Sign in again: a new session for the soft-deleted user; the banner's
    // state; the restore.
    let (_, again) = seed(&server, Some(&email));
    let banner = call(&server, "GET", "/api/account/deletion", &again, 200).await;
    assert_eq!(banner["status"], "scheduled");
    assert_eq!(banner["restorable"], true);
    let restored = call(&server, "POST", "/api/account/restore", &again, 200).await;
    assert!(restored["restored_at"].is_string());

    // The support path: deleted again, looked up, held through a month and
    // a purge, released, erased now.
    call(&server, "POST", "/api/account/delete", &again, 202).await;
    let shown = account(&server, &[&email]);
    assert_eq!(shown["status"], "scheduled", "{shown}");
    assert_eq!(shown["deleted_by"], "user");
    let user_id = shown["user_id"].as_str().unwrap().to_owned();
    let held = account(&server, &[&email, "hold", "legal_hold"]);
    assert_eq!(held["hold"]["reason"], "legal_hold");
    stdout(&server.command(&["backdate", &email]));
    let answer = stdout(&server.command(&["cron", "/api/cron/permanent-delete-users"]));
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(
        (answer["deleted"].clone(), answer["held"].clone()),
        (0.into(), 1.into()),
        "{answer}"
    );
    assert_eq!(
        account(&server, &[&email, "release"])["hold"],
        serde_json::Value::Null
    );
    let erased = account(&server, &[&email, "erase-now"]);
    assert_eq!(erased["status"], "erased", "{erased}");
    let history = account(&server, &[&user_id])["history"].clone();
    let steps: Vec<String> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} by {}",
                e["action"].as_str().unwrap(),
                e["by"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "deleted by user",
            "restored by user",
            "deleted by user",
            "held by admin",
            "released by admin",
            "erased by admin"
        ]
    );
    // A refusal is an error naming why.
    let refused = server.command(&["account", &user_id, "restore"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not_found"));
    // An id in another spelling is the same account; two addresses that
    // differ only in case are never picked between.
    let shouted = account(&server, &[&user_id.to_uppercase()]);
    assert_eq!(shouted["user_id"], user_id.as_str(), "{shouted}");
    assert_eq!(shouted["status"], "erased");
    let (upper, _) = seed(&server, Some("Twin@example.test"));
    let (lower, _) = seed(&server, Some("twin@example.test"));
    assert_ne!(upper, lower);
    let ambiguous = server.command(&["account", "TWIN@example.test", "erase-now"]);
    assert!(!ambiguous.status.success());
    let said = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(said.contains("ambiguous"), "{said}");
    assert_eq!(account(&server, &[&lower])["status"], "active");
    assert_eq!(account(&server, &[&upper])["status"], "active");
    let bad = server.command(&["account", "not-a-uuid"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid_request"));
}
