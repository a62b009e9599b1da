//! The export (GDPR Art. 15 and 20): the signed-in request, the email and
//! its link, the link's page, the archive (read back by Python's own
//! `zipfile`, not by our code) compared with the database row by row, the
//! exclusions, the limits, support's action, the grace period, erasure, an
//! app's own schema, and a body torn by a fault.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::adopting::{self, Framework};
use crate::helpers::{APP_URL, AccountApp, TestResponse, read_reply, request, urlencode};

const EXPORT: &str = "/api/account/export";

async fn ask_with(app: &AccountApp, headers: &[(&str, &str)]) -> TestResponse {
    read_reply(
        app.export
            .handle(request(Method::POST, EXPORT, headers, b""))
            .await,
    )
    .await
}

/// The signed-in user's request for a link.
pub(crate) async fn ask(app: &AccountApp, session: &str) -> TestResponse {
    ask_with(app, &[("authorization", &format!("Bearer {session}"))]).await
}

/// The token of the first email after the `after`th to `address` that
/// carries a download link.
pub(crate) async fn link_token(app: &AccountApp, address: &str, after: usize) -> String {
    let mut seen = after;
    loop {
        let mail = app.smtp.wait_for(seen + 1, Duration::from_secs(10)).await;
        if let Some(email) = mail[after..]
            .iter()
            .find(|m| m.to.iter().any(|t| t.contains(address)) && !m.export_links().is_empty())
        {
            return email.export_token();
        }
        seen = mail.len();
    }
}

async fn page(app: &AccountApp, token: &str) -> TestResponse {
    let uri = format!("{EXPORT}?token={}", urlencode(token));
    read_reply(
        app.export
            .handle(request(Method::GET, &uri, &[], b""))
            .await,
    )
    .await
}

/// The button's POST, as a browser sends the page's form.
pub(crate) async fn download(app: &AccountApp, token: &str) -> TestResponse {
    let body = format!("token={}", urlencode(token));
    post(app, "application/x-www-form-urlencoded", body.as_bytes()).await
}

async fn download_json(app: &AccountApp, token: &str) -> TestResponse {
    let body = json!({ "token": token }).to_string();
    post(app, "application/json", body.as_bytes()).await
}

/// A POST to the export with a body of `content_type`, read to the end.
async fn post(app: &AccountApp, content_type: &str, body: &[u8]) -> TestResponse {
    read_reply(
        app.export
            .handle(request(
                Method::POST,
                EXPORT,
                &[("content-type", content_type)],
                body,
            ))
            .await,
    )
    .await
}

/// An archive as Python's `zipfile` reads it.
pub(crate) struct Archive {
    pub manifest: Value,
    pub files: BTreeMap<String, String>,
}

impl Archive {
    /// Every entry's text, for "never in the archive" checks.
    fn all_text(&self) -> String {
        self.files.values().cloned().collect::<Vec<_>>().join("\n")
    }

    fn table(&self, file: &str) -> &Value {
        self.manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["file"] == file)
            .unwrap_or_else(|| panic!("no {file} in {:#}", self.manifest))
    }

    fn lines(&self, file: &str) -> Vec<String> {
        let mut lines: Vec<String> = self.files[file].lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }
}

/// Python's reading of `bytes`: `Err` with its complaint when it refuses
/// them as an archive.
pub(crate) fn python_reads(bytes: &[u8], content: bool) -> Result<Value, String> {
    let dir = tempdir();
    let path = dir.join("archive.zip");
    std::fs::write(&path, bytes).unwrap();
    let mut command =
        std::process::Command::new(testkit::python::interpreter("its zipfile module"));
    command
        .arg(testkit::python::script("read_zip.py"))
        .arg(&path);
    if !content {
        command.arg("--no-content");
    }
    let output = command.output().expect("run Python");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    match read["error"].as_str() {
        Some(error) => Err(error.to_owned()),
        None => Ok(read),
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("export-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn unzip(bytes: &[u8]) -> Archive {
    let read = python_reads(bytes, true).expect("a whole archive");
    assert_eq!(read["bad"], Value::Null, "every entry's CRC checks out");
    let entries = read["entries"].as_array().unwrap().clone();
    for entry in &entries {
        assert_eq!(entry["method"], 8, "Deflate, not Stored: {entry}");
        assert_eq!(
            entry["flags"].as_u64().unwrap() & 0x08,
            0x08,
            "sizes in a data descriptor: {entry}"
        );
    }
    let files: BTreeMap<String, String> = entries
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let manifest = serde_json::from_str(&files["manifest.json"]).unwrap();
    Archive { manifest, files }
}

/// The rows `select` finds, as PostgreSQL's `to_jsonb` renders them.
async fn rows(pool: &PgPool, select: &str, user: &str) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(select)
        .bind(user)
        .fetch_all(pool)
        .await
        .unwrap();
    rows.sort();
    rows
}

async fn email_of(pool: &PgPool, user: Uuid) -> String {
    sqlx::query_scalar("select email from users where id = $1")
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn at(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("a time: {value}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// Tables of an app beside the users table: every type the comparison must
/// get right, credentials in columns the rules exclude, a table with two
/// keys to the users table, one with a key that blocks the purge, and one
/// with no rows of the user.
async fn app_tables(pool: &PgPool) {
    sqlx::raw_sql(
        "create table export_things (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete cascade,
             amount numeric, doc jsonb, blob bytea, at timestamptz, naive timestamp(3),
             note text, api_token text, password_hash text, ssn text, \"totpSecret\" text
         );
         create index on export_things (user_id);
         create table messages (
             id bigint generated always as identity primary key,
             sender_id uuid references users (id) on delete set null,
             recipient_id uuid references users (id) on delete set null,
             body text
         );
         create index on messages (sender_id);
         create index on messages (recipient_id);
         create table invoices (
             id text primary key,
             user_id uuid not null references users (id),
             total integer not null
         );
         create index on invoices (user_id);
         create table empty_things (user_id uuid references users (id) on delete cascade);
         create index on empty_things (user_id);",
    )
    .execute(pool)
    .await
    .unwrap();
}

const SENTINELS: [&str; 4] = [
    "SENTINEL-API-TOKEN",
    "SENTINEL-PASSWORD-HASH",
    "SENTINEL-SSN",
    "SENTINEL-TOTP",
];

async fn seed_things(pool: &PgPool, user: Uuid, note: &str) {
    sqlx::query(
        "insert into export_things
             (user_id, amount, doc, blob, at, naive, note, api_token, password_hash, ssn, \"totpSecret\")
         values
             ($1, 12345678901234567890.123456789, '{\"nested\": {\"a\": [1, 2.5, \"x\"]}, \"unicode\": \"é\\n\"}',
              '\\xdeadbeef', '2026-01-02 03:04:05.123456+02', '2026-01-02 03:04:05.123', $2,
              $3, $4, $5, $6),
             ($1, -0.5, 'null', '', null, null, 'line\nbreak \"quoted\"', null, null, null, null)",
    )
    .bind(user)
    .bind(note)
    .bind(SENTINELS[0])
    .bind(SENTINELS[1])
    .bind(SENTINELS[2])
    .bind(SENTINELS[3])
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_emailed_link_downloads_every_row_of_the_user_as_postgres_renders_it_and_nothing_else()
{
    let app = AccountApp::with_env(&[("EXPORT_EXCLUDE_COLUMNS", "export_things.ssn")]).await;
    let pool = app.pool();
    app_tables(pool).await;
    let (alice, session) = app.user_with_session().await;
    let (bob, _) = app.user_with_session().await;
    seed_things(pool, alice, "alice's note").await;
    seed_things(pool, bob, "BOB-PRIVATE-NOTE").await;
    sqlx::query(
        "insert into messages (sender_id, recipient_id, body) values
             ($1, $2, 'hello bob'), ($2, $1, 'hello alice'), ($2, $2, 'BOB-TO-HIMSELF');
         ",
    )
    .bind(alice)
    .bind(bob)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("insert into invoices values ('inv-a', $1, 100), ('BOB-INVOICE', $2, 200)")
        .bind(alice)
        .bind(bob)
        .execute(pool)
        .await
        .unwrap();
    let (alice_email, bob_email) = (email_of(pool, alice).await, email_of(pool, bob).await);

    let token = request_and_read_link(&app, &alice_email, &session).await;
    check_page(&app, &token).await;
    let archive = download_and_check_headers(&app, &token).await;
    check_manifest(&archive, alice);
    check_rows(pool, &archive, alice).await;
    check_nothing_of_others(&archive, alice, bob, &bob_email);
    // The history, as support sees it, the download included.
    let history: Value = serde_json::from_str(&archive.files["history.json"]).unwrap();
    let steps: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("export_requested", "user"), ("exported", "user")]);

    // A JSON client gets the same archive.
    let again = download_json(&app, &token).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(unzip(&again.body).files.len(), archive.files.len());
}

/// The request: 202, a link by email, valid a day, stored as a hash only.
async fn request_and_read_link(app: &AccountApp, alice_email: &str, session: &str) -> String {
    let pool = app.pool();
    // The request: 202, a link by email, valid a day.
    let before = app.smtp.received().len();
    let asked = ask(app, session).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text());
    let body = asked.json();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["expires_at", "requested_at"]
    );
    assert_eq!(
        at(&body["expires_at"]) - at(&body["requested_at"]),
        chrono::Duration::hours(24)
    );
    let token = link_token(app, alice_email, before).await;
    let mail = app.smtp.received();
    let email = mail[before..]
        .iter()
        .find(|m| !m.export_links().is_empty())
        .unwrap();
    assert!(
        email.export_links()[0].starts_with(&format!("{APP_URL}{EXPORT}?token=")),
        "{:?}",
        email.export_links()
    );
    assert!(token.len() >= 22, "at least 128 bits");
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from account_deletion.exports where token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&token)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(stored, 1, "only the token's SHA-256 is stored");

    token
}

/// The page: a button that posts the token back; it spends nothing.
async fn check_page(app: &AccountApp, token: &str) {
    for _ in 0..2 {
        let shown = page(app, token).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(
            shown
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(shown.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(shown.header("cache-control"), Some("no-store"));
        let html = shown.text();
        assert!(html.contains(&format!("action=\"{EXPORT}\"")), "{html}");
        assert!(html.contains(&format!("value=\"{token}\"")), "{html}");
        assert!(html.contains("3 downloads"), "{html}");
    }
}

async fn download_and_check_headers(app: &AccountApp, token: &str) -> Archive {
    let got = download(app, token).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.header("content-type"), Some("application/zip"));
    let disposition = got.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"") && disposition.ends_with(".zip\""),
        "{disposition}"
    );
    assert_eq!(got.header("cache-control"), Some("no-store"));
    unzip(&got.body)
}

fn check_manifest(archive: &Archive, alice: Uuid) {
    let manifest = &archive.manifest;
    assert_eq!(manifest["format"], "account-export/1");
    assert_eq!(manifest["user_id"], alice.to_string());
    assert_eq!(manifest["status"], "active");
    assert_eq!(manifest["deleted_at"], Value::Null);
    assert_eq!(manifest["purge_after"], Value::Null);
    let generated = at(&manifest["generated_at"]);
    assert!((Utc::now() - generated).num_seconds().abs() < 60);
    let listed: Vec<(String, String, Value, Value)> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_owned(),
                t["file"].as_str().unwrap().to_owned(),
                t["key"].clone(),
                t["excluded_columns"].clone(),
            )
        })
        .collect();
    let expected = [
        (
            "public.users",
            "tables/public.users.ndjson",
            Value::Null,
            json!([]),
        ),
        (
            "public.empty_things",
            "tables/public.empty_things.ndjson",
            json!("user_id"),
            json!([]),
        ),
        (
            "public.export_things",
            "tables/public.export_things.ndjson",
            json!("user_id"),
            json!(["api_token", "password_hash", "ssn", "totpSecret"]),
        ),
        (
            "public.invoices",
            "tables/public.invoices.ndjson",
            json!("user_id"),
            json!([]),
        ),
        (
            "public.messages",
            "tables/public.messages.recipient_id.ndjson",
            json!("recipient_id"),
            json!([]),
        ),
        (
            "public.messages",
            "tables/public.messages.sender_id.ndjson",
            json!("sender_id"),
            json!([]),
        ),
        (
            "public.sessions",
            "tables/public.sessions.ndjson",
            json!("user_id"),
            json!(["token_hash"]),
        ),
    ];
    let expected: Vec<(String, String, Value, Value)> = expected
        .into_iter()
        .map(|(t, f, k, e)| (t.to_owned(), f.to_owned(), k, e))
        .collect();
    assert_eq!(listed, expected);
    let mut names: Vec<&String> = archive.files.keys().collect();
    names.sort();
    assert_eq!(names.len(), expected.len() + 2, "{names:?}");
    assert!(archive.files.contains_key("history.json"));
}

/// Every file, row by row, as PostgreSQL renders the row.
async fn check_rows(pool: &PgPool, archive: &Archive, alice: Uuid) {
    let user = alice.to_string();
    let without = |excluded: &str| format!("'{excluded}'::text[]");
    let checks = [
        (
            "tables/public.users.ndjson",
            format!(
                "select (to_jsonb(t) - {})::text from users t where id = $1::uuid",
                without("{}")
            ),
        ),
        (
            "tables/public.empty_things.ndjson",
            "select to_jsonb(t)::text from empty_things t where user_id = $1::uuid".to_owned(),
        ),
        (
            "tables/public.export_things.ndjson",
            format!(
                "select (to_jsonb(t) - {})::text from export_things t where user_id = $1::uuid",
                without("{api_token,password_hash,ssn,totpSecret}")
            ),
        ),
        (
            "tables/public.invoices.ndjson",
            "select to_jsonb(t)::text from invoices t where user_id = $1::uuid".to_owned(),
        ),
        (
            "tables/public.messages.sender_id.ndjson",
            "select to_jsonb(t)::text from messages t where sender_id = $1::uuid".to_owned(),
        ),
        (
            "tables/public.messages.recipient_id.ndjson",
            "select to_jsonb(t)::text from messages t where recipient_id = $1::uuid".to_owned(),
        ),
        (
            "tables/public.sessions.ndjson",
            format!(
                "select (to_jsonb(t) - {})::text from sessions t where user_id = $1::uuid",
                without("{token_hash}")
            ),
        ),
    ];
    for (file, select) in &checks {
        // In UTC, as the export renders times, whatever this session's zone.
        sqlx::query("set time zone 'UTC'")
            .execute(pool)
            .await
            .unwrap();
        let in_db = rows(pool, select, &user).await;
        assert_eq!(archive.lines(file), in_db, "{file}");
        assert_eq!(
            archive.table(file)["rows"].as_u64().unwrap() as usize,
            in_db.len(),
            "{file}"
        );
    }
    assert_eq!(
        archive.table("tables/public.empty_things.ndjson")["rows"],
        0
    );
    assert_eq!(
        archive.table("tables/public.export_things.ndjson")["rows"],
        2
    );
    let things = &archive.files["tables/public.export_things.ndjson"];
    for rendered in [
        "\"amount\": 12345678901234567890.123456789",
        "\"blob\": \"\\\\xdeadbeef\"",
        "\"at\": \"2026-01-02T01:04:05.123456+00:00\"",
        "\"naive\": \"2026-01-02T03:04:05.123\"",
        "\"doc\": {\"nested\": {\"a\": [1, 2.5, \"x\"]}, \"unicode\": \"é\\n\"}",
        "\"id\": ",
    ] {
        assert!(things.contains(rendered), "{rendered} in {things}");
    }
}

/// Never a credential, never another user's data.
fn check_nothing_of_others(archive: &Archive, alice: Uuid, bob: Uuid, bob_email: &str) {
    let user = alice.to_string();
    let everything = archive.all_text();
    for never in SENTINELS.iter().copied().chain([
        "BOB-PRIVATE-NOTE",
        "BOB-TO-HIMSELF",
        "BOB-INVOICE",
        bob_email,
    ]) {
        assert!(!everything.contains(never), "{never} is in the archive");
    }
    for (file, text) in &archive.files {
        if text.contains(&bob.to_string()) {
            assert!(file.starts_with("tables/public.messages."), "{file}");
            for line in text.lines() {
                let row: Value = serde_json::from_str(line).unwrap();
                let keys = [&row["sender_id"], &row["recipient_id"]];
                assert!(keys.contains(&&json!(user)), "{line}");
            }
        }
    }
}

/// A user with a session, in an app with no tables of its own.
async fn signed_in(app: &AccountApp) -> (Uuid, String, String) {
    let (user, session) = app.user_with_session().await;
    let email = email_of(app.pool(), user).await;
    (user, session, email)
}

async fn downloads_of(pool: &PgPool, user: Uuid) -> i32 {
    sqlx::query_scalar("select downloads from account_deletion.exports where user_id = $1")
        .bind(user.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_link_serves_three_downloads_a_day_a_newer_one_replaces_it_and_every_other_token_is_410()
{
    let app = AccountApp::new().await;
    let (user, session, email) = signed_in(&app).await;
    let token = link_by_email(&app, &session, &email).await;

    // Another request within the day: 429, Retry-After, no email.
    let mails = app.smtp.received().len();
    let again = ask(&app, &session).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(again.error_code(), "rate_limited");
    let retry: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&retry), "{retry}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.received().len(), mails, "nothing sent");

    for n in 1..=3 {
        let got = download(&app, &token).await;
        assert_eq!(got.status, StatusCode::OK, "download {n}");
        assert_eq!(downloads_of(app.pool(), user).await, n);
    }
    let spent = download(&app, &token).await;
    assert_eq!(spent.status, StatusCode::GONE);
    assert_eq!(spent.error_code(), "invalid_or_expired_token");
    assert!(
        page(&app, &token)
            .await
            .text()
            .contains("invalid or has expired")
    );

    // Unknown, malformed, missing: the same answer.
    for bad in [
        "A".repeat(43),
        "short".to_owned(),
        String::new(),
        format!("{token}x"),
    ] {
        let got = download(&app, &bad).await;
        assert_eq!(got.status, StatusCode::GONE, "{bad:?}");
        assert_eq!(got.error_code(), "invalid_or_expired_token");
    }
    let not_a_string = post(&app, "application/json", br#"{"token": 7}"#).await;
    assert_eq!(not_a_string.status, StatusCode::GONE);

    // A day later the user may ask again; the new link replaces the old.
    sqlx::query(
        "update account_deletion.exports set user_requested_at = now() - interval '24 hours 1 second'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let fresh = link_by_email(&app, &session, &email).await;
    assert_ne!(fresh, token);
    assert_eq!(download(&app, &token).await.status, StatusCode::GONE);
    assert_eq!(download(&app, &fresh).await.status, StatusCode::OK);

    // Support's link replaces it too, and is not limited.
    let before = app.smtp.received().len();
    let acted = app
        .admin_post(&json!({ "user_id": user.to_string(), "action": "export" }))
        .await;
    assert_eq!(acted.status, StatusCode::OK, "{}", acted.text());
    assert_eq!(acted.json()["user_id"], user.to_string());
    let by_support = link_token(&app, &email, before).await;
    assert_eq!(download(&app, &fresh).await.status, StatusCode::GONE);
    assert_eq!(
        ask(&app, &session).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // An expired link: 410 too.
    sqlx::query("update account_deletion.exports set expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(download(&app, &by_support).await.status, StatusCode::GONE);
    assert!(
        page(&app, &by_support)
            .await
            .text()
            .contains("invalid or has expired")
    );
}

#[tokio::test]
async fn a_client_guessing_links_is_limited_and_a_valid_link_still_works() {
    let app = AccountApp::new().await;
    let (_, session, email) = signed_in(&app).await;
    let token = link_by_email(&app, &session, &email).await;
    let mut limited = false;
    for _ in 0..30 {
        let got = download(&app, &"B".repeat(43)).await;
        if got.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(got.header("retry-after").is_some());
            limited = true;
            break;
        }
        assert_eq!(got.status, StatusCode::GONE);
    }
    assert!(limited, "failures past the limit get 429");
    assert_eq!(download(&app, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn only_a_signed_in_user_with_an_address_gets_a_link() {
    let app = AccountApp::new().await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer not-a-session")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
    ] {
        let refused = ask_with(&app, &headers).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    }
    let (user, session, _) = signed_in(&app).await;
    sqlx::query("update users set email = '' where id = $1")
        .bind(user)
        .execute(app.pool())
        .await
        .unwrap();
    let before = app.smtp.received().len();
    let refused = ask(&app, &session).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "no_address");
    let by_support = app
        .admin_post(&json!({ "user_id": user.to_string(), "action": "export" }))
        .await;
    assert_eq!(by_support.status, StatusCode::CONFLICT);
    assert_eq!(by_support.error_code(), "no_address");
    let rows: i64 = sqlx::query_scalar(
        "select (select count(*) from account_deletion.exports)
              + (select count(*) from account_deletion.email_outbox)
              + (select count(*) from account_deletion.history)",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(rows, 0, "nothing written");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.smtp.received().len(), before);
}

#[tokio::test]
async fn during_the_grace_period_the_copy_says_when_and_after_the_erasure_the_link_is_gone() {
    let app = AccountApp::new().await;
    let (user, session, email) = signed_in(&app).await;
    assert_eq!(app.delete_with(&session).await.status, StatusCode::ACCEPTED);
    // The deletion's email says the data may be downloaded until the purge.
    let deletion_mail = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        deletion_mail[0]
            .decoded()
            .contains("download a copy of your data"),
        "{}",
        deletion_mail[0].decoded()
    );
    // Signed out everywhere by the deletion; signed in again.
    let again = format!("session-{}", Uuid::new_v4());
    app.add_session(user, &again, "1 day").await;
    let token = link_by_email(&app, &again, &email).await;
    let got = download(&app, &token).await;
    assert_eq!(got.status, StatusCode::OK);
    let archive = unzip(&got.body);
    assert_eq!(archive.manifest["status"], "scheduled");
    let deleted_at = at(&archive.manifest["deleted_at"]);
    assert_eq!(
        at(&archive.manifest["purge_after"]) - deleted_at,
        chrono::Duration::days(30)
    );
    let history: Value = serde_json::from_str(&archive.files["history.json"]).unwrap();
    assert_eq!(history[0]["action"], "deleted");

    // Erased: every link of the account is gone with it.
    app.backdate(user, "31 days").await;
    let purged = app.run_purge().await;
    assert_eq!(purged["deleted"], 1, "{purged}");
    let gone = download(&app, &token).await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert_eq!(gone.error_code(), "invalid_or_expired_token");
    let left: i64 = sqlx::query_scalar("select count(*) from account_deletion.exports")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "the link went with the account");
}

#[tokio::test]
async fn an_excluded_column_that_names_nothing_refuses_downloads_naming_the_variable() {
    let app = AccountApp::with_env(&[("EXPORT_EXCLUDE_COLUMNS", "users.pasword_typo")]).await;
    let (_, session, email) = signed_in(&app).await;
    let token = link_by_email(&app, &session, &email).await;
    let refused = download(&app, &token).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refused.error_code(), "server_misconfigured");
    // Refused for the configuration: the link's use is not spent, and no
    // download is recorded.
    let (downloads, exported): (i32, i64) = sqlx::query_as(
        "select (select downloads from account_deletion.exports),
                (select count(*) from account_deletion.history where action = 'exported')",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((downloads, exported), (0, 0));

    let bad = AccountApp::with_env(&[("EXPORT_EXCLUDE_COLUMNS", "just_a_column")]).await;
    let (_, session, _) = signed_in(&bad).await;
    let refused = ask(&bad, &session).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    let errors = account_deletion::config::AccountConfig::from_lookup(&crate::helpers::env(&[
        ("DATABASE_URL", "postgres://localhost/x"),
        ("APP_URL", APP_URL),
        ("MAIL_URL", "file:///tmp"),
        ("MAIL_FROM", "a@b.test"),
        ("EXPORT_EXCLUDE_COLUMNS", "just_a_column"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(errors.contains("EXPORT_EXCLUDE_COLUMNS"), "{errors}");
}

#[tokio::test]
async fn a_partitioned_table_is_read_once_and_the_users_keys_to_itself_are_not_followed() {
    let app = AccountApp::new().await;
    let pool = app.pool();
    sqlx::raw_sql(
        "alter table users add column invited_by uuid references users (id) on delete set null;
         create index on users (invited_by);
         create table visits (user_id uuid not null references users (id) on delete cascade,
                              on_day date not null) partition by range (on_day);
         create table visits_2025 partition of visits for values from ('2025-01-01') to ('2026-01-01');
         create table visits_2026 partition of visits for values from ('2026-01-01') to ('2027-01-01');
         create index on visits (user_id);",
    )
    .execute(pool)
    .await
    .unwrap();
    let (alice, session, email) = signed_in(&app).await;
    let (bob, _, bob_email) = signed_in(&app).await;
    sqlx::query("update users set invited_by = $1 where id = $2")
        .bind(alice)
        .bind(bob)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into visits values ($1, '2025-06-01'), ($1, '2026-06-01'), ($2, '2026-06-02')",
    )
    .bind(alice)
    .bind(bob)
    .execute(pool)
    .await
    .unwrap();
    let token = link_by_email(&app, &session, &email).await;
    let archive = unzip(&download(&app, &token).await.body);
    let tables: Vec<&str> = archive.manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["public.users", "public.sessions", "public.visits"]);
    assert_eq!(archive.table("tables/public.visits.ndjson")["rows"], 2);
    assert_eq!(archive.lines("tables/public.users.ndjson").len(), 1);
    let everything = archive.all_text();
    assert!(
        !everything.contains(&bob_email),
        "the invitee's row is not the user's"
    );
    assert!(!everything.contains(&bob.to_string()));
}

#[tokio::test]
async fn events_say_who_and_when_and_never_the_link() {
    let receiver =
        testkit::webhook_receiver::WebhookReceiver::start(testkit::webhook_receiver::SECRET).await;
    let url = receiver.url();
    let app = AccountApp::with_env(&[
        ("WEBHOOK_URL", url.as_str()),
        ("WEBHOOK_SECRET", testkit::webhook_receiver::SECRET),
    ])
    .await;
    let (user, session, email) = signed_in(&app).await;
    let token = link_by_email(&app, &session, &email).await;
    assert_eq!(download(&app, &token).await.status, StatusCode::OK);
    let seen = receiver
        .wait_until("both export events", Duration::from_secs(10), |r| {
            ["account.export_requested", "account.exported"]
                .iter()
                .all(|kind| r.iter().any(|r| r["event"]["type"] == *kind))
        })
        .await;
    for (kind, field) in [
        ("account.export_requested", "requested_at"),
        ("account.exported", "exported_at"),
    ] {
        let event = seen.iter().find(|r| r["event"]["type"] == kind).unwrap();
        assert_eq!(event["verified"], true, "{event}");
        let data = &event["event"]["data"];
        assert_eq!(data["user_id"], user.to_string());
        at(&data[field]);
        assert_eq!(data.as_object().unwrap().len(), 2, "{data}");
        let text = event.to_string();
        assert!(!text.contains(&token) && !text.contains(&email), "{text}");
    }
}

#[tokio::test]
async fn on_prisma_with_authjs_the_account_tokens_and_session_tokens_stay_out() {
    let app = adopting::app_for(Framework::Prisma, &[]).await;
    let pool = app.pool();
    let (user, email) = Framework::Prisma.create_user(pool).await;
    let session = Framework::Prisma.add_session(pool, &user, 24).await;
    for statement in [
        r#"insert into "Account" ("userId", type, provider, "providerAccountId", refresh_token,
                                  access_token, id_token, token_type, scope, "updatedAt")
           values ($1, 'oauth', 'github', 'gh-' || $1, 'SENTINEL-REFRESH', 'SENTINEL-ACCESS',
                   'SENTINEL-ID', 'bearer', 'read:user', now() at time zone 'UTC')"#,
        r#"insert into "Post" (id, title, "authorId") values ('post-' || $1, 'My post', $1)"#,
        r#"insert into "Order" (id, total, "userId") values ('order-' || $1, 4200, $1)"#,
    ] {
        sqlx::query(statement)
            .bind(&user)
            .execute(pool)
            .await
            .unwrap();
    }
    let token = link_by_email(&app, &session, &email).await;
    let got = download(&app, &token).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let archive = unzip(&got.body);
    assert_eq!(archive.manifest["user_id"], user);
    let account = archive.table("tables/public.Account.ndjson");
    assert_eq!(account["key"], "userId");
    assert_eq!(
        account["excluded_columns"],
        json!(["refresh_token", "access_token", "token_type", "id_token"])
    );
    assert_eq!(account["rows"], 1);
    assert_eq!(
        archive.table("tables/public.Session.ndjson")["excluded_columns"],
        json!(["sessionToken"])
    );
    assert_eq!(archive.table("tables/public.Session.ndjson")["rows"], 1);
    assert_eq!(archive.table("tables/public.Post.ndjson")["rows"], 1);
    assert_eq!(archive.table("tables/public.Order.ndjson")["rows"], 1);
    let everything = archive.all_text();
    for never in [
        "SENTINEL-REFRESH",
        "SENTINEL-ACCESS",
        "SENTINEL-ID",
        session.as_str(),
    ] {
        assert!(!everything.contains(never), "{never} is in the archive");
    }
    let account_row: Value =
        serde_json::from_str(archive.files["tables/public.Account.ndjson"].trim()).unwrap();
    assert_eq!(account_row["scope"], "read:user");
    // Prisma's naive UTC times, as stored.
    let user_row: Value =
        serde_json::from_str(archive.files["tables/public.User.ndjson"].trim()).unwrap();
    assert_eq!(user_row["email"], email);
    assert!(!user_row["createdAt"].as_str().unwrap().contains('+'));
}

#[tokio::test]
async fn on_a_django_schema_bigint_ids_are_numbers_and_the_rows_are_the_users() {
    let app = adopting::app_for(Framework::Django, &[]).await;
    let pool = app.pool();
    let (user, email) = Framework::Django.create_user(pool).await;
    let (other, _) = Framework::Django.create_user(pool).await;
    let session = Framework::Django.add_session(pool, &user, 24).await;
    for owner in [&user, &other] {
        sqlx::query("insert into posts (title, user_id) values ('post of ' || $1, $1::bigint)")
            .bind(owner)
            .execute(pool)
            .await
            .unwrap();
    }
    let token = link_by_email(&app, &session, &email).await;
    let archive = unzip(&download(&app, &token).await.body);
    assert_eq!(archive.manifest["user_id"], user);
    let post: Value =
        serde_json::from_str(archive.files["tables/public.posts.ndjson"].trim()).unwrap();
    assert_eq!(post["user_id"], json!(user.parse::<i64>().unwrap()));
    assert_eq!(post["title"], format!("post of {user}"));
    assert!(!archive.all_text().contains(&format!("post of {other}")));
}

/// The signed-in user of `session` asks for a copy (202); the token of the
/// link emailed to `email`.
async fn link_by_email(app: &AccountApp, session: &str, email: &str) -> String {
    let before = app.smtp.received().len();
    let asked = ask(app, session).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text());
    link_token(app, email, before).await
}

/// A signed-in user with `rows` rows of `notes` whose body is `body` (SQL
/// of `i`), and a fresh download link of theirs.
async fn link_to_many_notes(app: &AccountApp, body: &str, rows: i32) -> String {
    let pool = app.pool();
    let (user, session, email) = signed_in(app).await;
    sqlx::raw_sql(
        "create table notes (user_id uuid references users (id) on delete cascade, body text);
         create index on notes (user_id);",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "insert into notes select $1, {body} from generate_series(1, $2) i"
    ))
    .bind(user)
    .bind(rows)
    .execute(pool)
    .await
    .unwrap();
    link_by_email(app, &session, &email).await
}

#[tokio::test]
async fn a_body_cut_by_a_fault_is_no_archive_any_reader_accepts() {
    let app = AccountApp::new().await;
    let pool = app.pool();
    // Enough rows that the archive is still being read when the fault hits.
    let token = link_to_many_notes(
        &app,
        "md5(i::text) || repeat(md5(random()::text), 8)",
        200_000,
    )
    .await;
    let body = format!("token={}", urlencode(&token));
    let reply = app
        .export
        .handle(request(
            Method::POST,
            EXPORT,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        ))
        .await;
    let account_deletion::platform::web::Reply::Streamed(response) = reply else {
        panic!("the archive is streamed")
    };
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    // The first bytes, then the export's connection dies.
    while received.len() < 200_000 {
        let frame = body.frame().await.unwrap().unwrap();
        received.extend_from_slice(&frame.into_data().unwrap());
    }
    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (
             select pg_terminate_backend(pid) from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid()
               and query like '%to_jsonb%') t",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(killed >= 1, "the export's connection was found");
    let mut torn = false;
    while let Some(frame) = body.frame().await {
        if let Ok(frame) = frame {
            received.extend_from_slice(&frame.into_data().unwrap());
        } else {
            torn = true;
            break;
        }
    }
    assert!(torn, "the body ends in an error, not as if complete");
    let refused = python_reads(&received, false).expect_err("no reader takes it for an archive");
    assert!(!refused.is_empty());
}

#[tokio::test]
async fn the_function_streams_an_archive_of_hundreds_of_mb_in_constant_memory() {
    let app = AccountApp::new().await;
    // About 330 MB of rows that hardly compress (random ids): an archive
    // of about 180 MB.
    let uuids = vec!["gen_random_uuid()::text"; 28].join(", ");
    let token = link_to_many_notes(&app, &format!("concat({uuids})"), 320_000).await;

    let mail_url = app.smtp.url();
    let function = crate::function_binary::Function::start_bin(
        env!("CARGO_BIN_EXE_account-export"),
        &[
            ("DATABASE_URL", &app.db.url()),
            ("APP_URL", APP_URL),
            ("MAIL_URL", &mail_url),
            ("MAIL_FROM", "no-reply@app.example.test"),
        ],
    )
    .await;
    let pid = function.pid();
    let (resting, _) = testkit::process::memory_of(pid).expect("the function's memory");

    let (head, archive, first_byte, last_byte) = download_slowly(function.port, &token).await;
    let (_, peak) = testkit::process::memory_of(pid).expect("the function's memory");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/zip"),
        "{head}"
    );
    eprintln!(
        "archive {} MB; first byte after {:?}, last after {:?}; memory {} MB at rest, peak {} MB",
        archive.len() >> 20,
        first_byte,
        last_byte,
        resting >> 20,
        peak >> 20
    );
    assert!(
        archive.len() > 150 << 20,
        "hundreds of MB: {}",
        archive.len()
    );
    assert!(
        first_byte * 10 < last_byte,
        "the first byte ({first_byte:?}) long before the last ({last_byte:?})"
    );
    assert!(
        peak < resting + (64 << 20),
        "peak memory {} MB over {} MB at rest",
        peak >> 20,
        resting >> 20
    );
    let read = python_reads(&archive, false).expect("a whole archive");
    assert_eq!(read["bad"], Value::Null);
    let manifest: Value = serde_json::from_str(
        read["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "manifest.json")
            .unwrap()["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let rows = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.notes")
        .unwrap()["rows"]
        .clone();
    assert_eq!(rows, 320_000);
}

/// The archive's download over HTTP/1.0 (the body runs to the end of the
/// connection, no chunks), by a client that stops reading for a while
/// after the first 8 MB: the answer's head, the archive, and when its first
/// and last bytes arrived.
async fn download_slowly(port: u16, token: &str) -> (String, Vec<u8>, Duration, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let body = format!("token={}", urlencode(token));
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    stream
        .write_all(
            format!(
                "POST {EXPORT} HTTP/1.0\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut received = Vec::with_capacity(256 << 20);
    let mut chunk = vec![0u8; 1 << 16];
    let mut first_byte = None;
    let mut paused = false;
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        first_byte.get_or_insert_with(|| started.elapsed());
        received.extend_from_slice(&chunk[..n]);
        // A client that stops reading for a while: the function waits for
        // it instead of piling the archive up in memory.
        if !paused && received.len() > 8 << 20 {
            paused = true;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let last_byte = started.elapsed();
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&received[..split]).into_owned();
    (
        head,
        received[split + 4..].to_vec(),
        first_byte.expect("a first byte"),
        last_byte,
    )
}

#[tokio::test]
async fn a_link_email_that_failed_is_retried_by_the_sweep_with_a_fresh_working_token() {
    let mut app = AccountApp::new().await;
    let (user, session, email) = signed_in(&app).await;
    app.smtp.take_down();
    assert_eq!(ask(&app, &session).await.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, Option<String>>(
        "select last_error from account_deletion.email_outbox where user_id = $1 and kind = 'export'",
    )
    .bind(user.to_string())
    .fetch_one(app.pool())
    .await
    .unwrap()
    .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "the first attempt never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_hash: Vec<u8> =
        sqlx::query_scalar("select token_hash from account_deletion.exports where user_id = $1")
            .bind(user.to_string())
            .fetch_one(app.pool())
            .await
            .unwrap();
    app.smtp.bring_back().await;
    sqlx::query("update account_deletion.email_outbox set next_attempt_at = now()")
        .execute(app.pool())
        .await
        .unwrap();
    let before = app.smtp.received().len();
    let report = app.run_sweep().await;
    assert_eq!(report["sent"], 1, "{report}");
    let token = link_token(&app, &email, before).await;
    let hash: Vec<u8> =
        sqlx::query_scalar("select token_hash from account_deletion.exports where user_id = $1")
            .bind(user.to_string())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_ne!(hash, first_hash, "the retry carries a token of its own");
    assert_eq!(download(&app, &token).await.status, StatusCode::OK);
}
