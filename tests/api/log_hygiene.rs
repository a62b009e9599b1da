//! Secrets and personal data never reach the logs, at any level: the whole
//! journey (delete, email, recover, reminder, purge, and failures on the
//! way) through the real function binaries at `RUST_LOG=trace`, with every
//! line they print scanned for the session tokens, the recovery tokens,
//! `CRON_SECRET`, the mail password, the webhook's secret and the token in
//! its URL, and the user's email address (sent a last time after the purge);
//! every other sign-in mode's credentials (an Auth.js session token, an
//! Auth.js JWE cookie and `AUTH_SECRET`, a provider's JWT and `JWT_SECRET`)
//! at `trace`; a statement made slow by a held lock at the default level
//! (where the driver used to print slow statements, values and all); and a
//! mail server's refusal, which quotes the address.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::helpers::http_client::send;
use crate::helpers::postgres::free_port;
use crate::helpers::smtp::SmtpSink;
use crate::helpers::{APP_URL, TestDb, urlencode};
use testkit::webhook_receiver::{SECRET, WebhookReceiver};

const CRON_SECRET: &str = "log-hygiene-cron-secret-9f8e7d6c5b4a";
const ADMIN_SECRET: &str = "log-hygiene-admin-secret-0123456789abcdef";

struct Logged {
    child: Child,
    port: u16,
}

impl Logged {
    /// `bin` at `RUST_LOG=trace`, printing into `dir`.
    async fn start(bin: &str, env: &[(&str, String)], dir: &std::path::Path) -> Self {
        Self::at_level(bin, env, dir, Some("trace")).await
    }

    /// `bin` at `level` (`None`: `RUST_LOG` unset, the default `info`).
    async fn at_level(
        bin: &str,
        env: &[(&str, String)],
        dir: &std::path::Path,
        level: Option<&str>,
    ) -> Self {
        let port = free_port();
        let log = dir.join(format!("{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(bin);
        command
            .env_clear()
            .env("VERCEL_DEV_PORT", port.to_string())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        if let Some(level) = level {
            command.env("RUST_LOG", level);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the function binary");
        let deadline = Instant::now() + Duration::from_secs(10);
        while send(port, "GET", "/_vercel/ping", &[], b"").await.is_err() {
            assert!(Instant::now() < deadline, "{bin} did not listen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self { child, port }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder for the functions' output.
fn log_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("log-hygiene-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every line printed into `dir`; fails on any that carries one of
/// `secrets`. Returns how many lines there were, and how many of them at
/// `debug` or `trace`.
fn scan_dir(dir: &std::path::Path, secrets: &[String]) -> (usize, usize) {
    let (mut lines, mut verbose) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            lines += 1;
            if line.contains("DEBUG") || line.contains("TRACE") {
                verbose += 1;
            }
            for secret in secrets {
                assert!(
                    !secret.is_empty() && !line.contains(secret.as_str()),
                    "a log line carries {secret:?}:\n{line}"
                );
            }
        }
    }
    eprintln!(
        "scanned {lines} log lines ({verbose} debug or trace) for {} secrets",
        secrets.len()
    );
    let _ = std::fs::remove_dir_all(dir);
    (lines, verbose)
}

async fn post_json(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let answer = send(port, "POST", path, &all, body.as_bytes())
        .await
        .unwrap();
    (answer.status, answer.body)
}

/// The four functions, the database, the mail server, and every secret the
/// journey has handed out so far.
struct Journey {
    db: TestDb,
    smtp: SmtpSink,
    receiver: WebhookReceiver,
    dir: std::path::PathBuf,
    delete: Logged,
    recover: Logged,
    sweep: Logged,
    purge: Logged,
    deletion: Logged,
    admin: Logged,
    export: Logged,
    user_id: uuid::Uuid,
    email: String,
    secrets: Vec<String>,
}

impl Journey {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let smtp = SmtpSink::start().await;
        let dir = log_dir();
        let email = format!(
            "hygiene.{}@person.example",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mail_password = format!("mail-password-{}", uuid::Uuid::new_v4().simple());
        let receiver = WebhookReceiver::start(SECRET).await;
        let hook_token = format!("hook-token-{}", uuid::Uuid::new_v4().simple());
        let env = vec![
            ("DATABASE_URL", db.url()),
            ("CRON_SECRET", CRON_SECRET.to_owned()),
            ("ADMIN_SECRET", ADMIN_SECRET.to_owned()),
            ("APP_URL", APP_URL.to_owned()),
            (
                "MAIL_URL",
                format!(
                    "smtp://mailer%40app.test:{mail_password}@127.0.0.1:{}?tls=none",
                    smtp.port
                ),
            ),
            (
                "MAIL_FROM",
                "Example App <no-reply@app.example.test>".to_owned(),
            ),
            (
                "WEBHOOK_URL",
                format!("{}?token={hook_token}", receiver.url()),
            ),
            ("WEBHOOK_SECRET", SECRET.to_owned()),
            ("SEND_ERASED_EMAIL", "true".to_owned()),
        ];
        let user_id = sqlx::query_scalar("insert into users (email) values ($1) returning id")
            .bind(&email)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        Self {
            delete: Logged::start(env!("CARGO_BIN_EXE_account-delete"), &env, &dir).await,
            recover: Logged::start(env!("CARGO_BIN_EXE_account-recover"), &env, &dir).await,
            sweep: Logged::start(env!("CARGO_BIN_EXE_cron-send-emails"), &env, &dir).await,
            purge: Logged::start(
                env!("CARGO_BIN_EXE_cron-permanent-delete-users"),
                &env,
                &dir,
            )
            .await,
            deletion: Logged::start(env!("CARGO_BIN_EXE_account-deletion"), &env, &dir).await,
            admin: Logged::start(env!("CARGO_BIN_EXE_admin-accounts"), &env, &dir).await,
            export: Logged::start(env!("CARGO_BIN_EXE_account-export"), &env, &dir).await,
            secrets: vec![
                CRON_SECRET.to_owned(),
                ADMIN_SECRET.to_owned(),
                mail_password,
                hook_token,
                SECRET.trim_start_matches("whsec_").to_owned(),
                urlencode(&email),
                email.clone(),
            ],
            email,
            db,
            smtp,
            receiver,
            dir,
            user_id,
        }
    }

    /// A new session for the user, as the app's sign-in creates one.
    async fn sign_in(&mut self) -> String {
        let session = format!("session-{}", uuid::Uuid::new_v4());
        sqlx::query(
            "insert into sessions (user_id, token_hash, expires_at)
             values ($1, sha256(convert_to($2, 'UTF8')), now() + interval '1 day')",
        )
        .bind(self.user_id)
        .bind(&session)
        .execute(&self.db.pool)
        .await
        .unwrap();
        self.secrets.push(session.clone());
        session
    }

    async fn delete_account(&mut self) {
        let session = self.sign_in().await;
        let auth = format!("Bearer {session}");
        let (status, body) = post_json(
            self.delete.port,
            "/api/account/delete",
            &[("authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }

    async fn cron(&self, function: &Logged, path: &str) {
        let auth = format!("Bearer {CRON_SECRET}");
        let answer = send(function.port, "GET", path, &[("authorization", &auth)], b"")
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    /// The signed-in deletion state, and support's look-up, hold and
    /// release by address: logged by action and account id only.
    async fn support(&mut self) {
        let session = self.sign_in().await;
        let auth = format!("Bearer {session}");
        let answer = send(
            self.deletion.port,
            "GET",
            "/api/account/deletion",
            &[("authorization", &auth)],
            b"",
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        let admin = format!("Bearer {ADMIN_SECRET}");
        let email = self.email.clone();
        for action in [
            r#""action":"show""#,
            r#""action":"hold","reason":"legal_hold""#,
            r#""action":"release""#,
        ] {
            let (status, body) = post_json(
                self.admin.port,
                "/api/admin/accounts",
                &[("authorization", &admin)],
                &format!(r#"{{"email":"{email}",{action}}}"#),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        let logged: String = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
            .collect();
        assert!(
            logged.contains("admin request") && logged.contains(&self.user_id.to_string()),
            "admin requests are logged, with the account's id"
        );
    }

    /// The token in the `nth` email (from 1), once it has arrived.
    /// The user asks for a copy of their data, opens the link's page and
    /// downloads it.
    async fn export(&mut self) {
        let session = self.sign_in().await;
        let auth = format!("Bearer {session}");
        let before = self.smtp.received().len();
        let (status, body) = post_json(
            self.export.port,
            "/api/account/export",
            &[("authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let token = self
            .smtp
            .wait_for(before + 1, Duration::from_secs(10))
            .await[before]
            .export_token();
        self.secrets.push(token.clone());
        let page = send(
            self.export.port,
            "GET",
            &format!("/api/account/export?token={token}"),
            &[],
            b"",
        )
        .await
        .unwrap();
        assert!(page.body.contains("Download my data"), "{}", page.body);
        let got = send(
            self.export.port,
            "POST",
            "/api/account/export",
            &[("content-type", "application/json")],
            format!(r#"{{"token":"{token}"}}"#).as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(got.status, 200, "{}", got.body);
        assert!(got.bytes.starts_with(b"PK"));
    }

    async fn token_of_email(&mut self, nth: usize) -> String {
        let token = self.smtp.wait_for(nth, Duration::from_secs(10)).await[nth - 1].token();
        self.secrets.push(token.clone());
        token
    }

    /// Moves the current deletion `days` into the past, our rows about it
    /// with it (one transaction: one `now()`).
    async fn backdate(&self, days: i32) {
        let id = self.user_id;
        sqlx::raw_sql(&format!(
            "update users set deleted_at = now() - make_interval(days => {days}) where id = '{id}';
             update account_deletion.history set for_deleted_at = now() - make_interval(days => {days})
             where user_id = '{id}' and action = 'deleted'
               and for_deleted_at = (select max(for_deleted_at) from account_deletion.history where user_id = '{id}');
             update account_deletion.email_outbox set for_deleted_at = now() - make_interval(days => {days})
             where user_id = '{id}' and for_deleted_at is not null;
             update account_deletion.recovery_tokens set for_deleted_at = now() - make_interval(days => {days})
             where user_id = '{id}';"
        ))
        .execute(&self.db.pool)
        .await
        .unwrap();
    }

    async fn failures(&mut self) {
        for (port, path, auth, body, expected) in [
            (
                self.delete.port,
                "/api/account/delete",
                "Bearer not-a-session-token-123",
                "",
                401,
            ),
            (
                self.purge.port,
                "/api/cron/permanent-delete-users",
                "Bearer wrong-cron-secret-0123456789",
                "",
                401,
            ),
            (
                self.recover.port,
                "/api/account/recover",
                "",
                r#"{"token":"AAAAbogusrecoverytokenAAAAAAAAAAAAAAAAAAAAA"}"#,
                400,
            ),
        ] {
            let headers: &[(&str, &str)] = if auth.is_empty() {
                &[]
            } else {
                &[("authorization", auth)]
            };
            let (status, _) = post_json(port, path, headers, body).await;
            assert_eq!(status, expected, "{path}");
        }
        self.secrets.extend(
            [
                "not-a-session-token-123",
                "wrong-cron-secret-0123456789",
                "AAAAbogusrecoverytokenAAAAAAAAAAAAAAAAAAAAA",
            ]
            .map(str::to_owned),
        );
    }

    /// Every line the functions printed; fails on any that carries a secret.
    fn scan(self) {
        let Self {
            delete,
            recover,
            sweep,
            purge,
            deletion,
            admin,
            dir,
            secrets,
            ..
        } = self;
        drop((delete, recover, sweep, purge, deletion, admin));
        let (lines, verbose) = scan_dir(&dir, &secrets);
        assert!(
            verbose > 20,
            "trace logging was on: {verbose} of {lines} lines"
        );
    }
}

#[tokio::test]
async fn the_whole_journey_at_trace_level_logs_no_secret_and_no_email_address() {
    let mut journey = Journey::start().await;
    journey.failures().await;

    // Deleted while the mail server is down: the first send fails, the
    // sweep sends it.
    journey.smtp.take_down();
    journey.delete_account().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, Option<String>>(
        "select last_error from account_deletion.email_outbox where user_id = $1::text",
    )
    .bind(journey.user_id)
    .fetch_one(&journey.db.pool)
    .await
    .unwrap()
    .is_none()
    {
        assert!(Instant::now() < deadline, "the first send never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    journey.smtp.bring_back().await;
    sqlx::query("update account_deletion.email_outbox set next_attempt_at = now()")
        .execute(&journey.db.pool)
        .await
        .unwrap();
    journey.cron(&journey.sweep, "/api/cron/send-emails").await;
    let token = journey.token_of_email(1).await;

    // The link's page, then the restore.
    let page = send(
        journey.recover.port,
        "GET",
        &format!("/api/account/recover?token={token}"),
        &[],
        b"",
    )
    .await
    .unwrap();
    assert!(page.body.contains("Restore my account"));
    let (status, body) = post_json(
        journey.recover.port,
        "/api/account/recover",
        &[],
        &format!(r#"{{"token":"{token}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    journey.smtp.wait_for(2, Duration::from_secs(10)).await;

    // Deleted again; the user signs in again and reads the deletion; support
    // looks the account up by its address, holds it and releases it; the
    // reminder three days before the purge; the purge.
    journey.delete_account().await;
    journey.token_of_email(3).await;
    journey.support().await;
    // A copy of the data, in the grace period.
    journey.export().await;
    journey.backdate(28).await;
    journey.cron(&journey.sweep, "/api/cron/send-emails").await;
    journey.token_of_email(5).await;
    assert!(
        journey.smtp.received()[4]
            .header("subject")
            .unwrap()
            .contains("will be erased")
    );
    journey.backdate(31).await;
    journey
        .cron(&journey.purge, "/api/cron/permanent-delete-users")
        .await;
    assert_eq!(crate::helpers::user_count(&journey.db.pool).await, 0);
    // The last email, after the purge.
    journey.cron(&journey.sweep, "/api/cron/send-emails").await;
    journey.smtp.wait_for(6, Duration::from_secs(10)).await;
    let events: Vec<String> = journey
        .receiver
        .accepted()
        .iter()
        .map(|r| r["event"]["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "account.deleted",
            "account.restored",
            "account.deleted",
            "account.export_requested",
            "account.exported",
            "account.purged"
        ]
    );

    journey.scan();
}

const AUTHJS: &str = include_str!("../fixtures/tokens/authjs.json");
const JWT: &str = include_str!("../fixtures/tokens/jwt.json");

/// An address of a person, unique to the test.
fn person() -> String {
    format!(
        "hygiene.{}@person.example",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// What every account function needs, mailing `smtp` with `password`.
fn account_env(db: &TestDb, smtp: &SmtpSink, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url()),
        ("CRON_SECRET", CRON_SECRET.to_owned()),
        ("APP_URL", APP_URL.to_owned()),
        (
            "MAIL_URL",
            format!(
                "smtp://mailer%40app.test:{password}@127.0.0.1:{}?tls=none",
                smtp.port
            ),
        ),
        (
            "MAIL_FROM",
            "Example App <no-reply@app.example.test>".to_owned(),
        ),
    ]
}

/// A Prisma `"User"` with `id` and `email`; with `session`, an Auth.js
/// database session for it.
async fn prisma_user(db: &TestDb, id: &str, email: &str, session: Option<&str>) {
    sqlx::query(r#"insert into "User" (id, email) values ($1, $2)"#)
        .bind(id)
        .bind(email)
        .execute(&db.pool)
        .await
        .unwrap();
    if let Some(token) = session {
        sqlx::query(
            r#"insert into "Session" ("sessionToken", "userId", expires, "updatedAt")
               values ($1, $2, (now() at time zone 'UTC') + interval '1 day', now() at time zone 'UTC')"#,
        )
        .bind(token)
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

/// One sign-in mode's delete function at `trace`, with its database and
/// every credential and address it was handed.
struct Mode {
    _db: TestDb,
    delete: Logged,
    secrets: Vec<String>,
}

/// Posts a delete from the app's origin; its status.
async fn delete_from_app(delete: &Logged, headers: &[(&str, &str)]) -> u16 {
    let mut headers = headers.to_vec();
    headers.push(("origin", APP_URL));
    post_json(delete.port, "/api/account/delete", &headers, "")
        .await
        .0
}

/// Auth.js database sessions: the token is the credential itself, and the
/// session lookup carries it as a literal.
async fn authjs_database_mode(smtp: &SmtpSink, dir: &std::path::Path, password: &str) -> Mode {
    use crate::adopting::{Framework, app_database};
    let db = app_database(Framework::Prisma).await;
    let (email, token) = (person(), format!("authjs-session-{}", uuid::Uuid::new_v4()));
    prisma_user(&db, "cmhygiene00000000000000001", &email, Some(&token)).await;
    let mut env = account_env(&db, smtp, password);
    env.extend([
        ("SCHEMA_PRESET", "prisma".to_owned()),
        ("SESSION_AUTH", "authjs-database".to_owned()),
    ]);
    let delete = Logged::start(env!("CARGO_BIN_EXE_account-delete"), &env, dir).await;
    let wrong = format!("authjs-session-wrong-{}", uuid::Uuid::new_v4());
    for (cookie, expected) in [(&wrong, 401), (&token, 202)] {
        let cookie = format!("authjs.session-token={cookie}");
        assert_eq!(
            delete_from_app(&delete, &[("cookie", &cookie)]).await,
            expected
        );
    }
    Mode {
        _db: db,
        delete,
        secrets: vec![token, wrong, email],
    }
}

/// Auth.js JWT sessions: the JWE cookie, and the secrets that open it.
async fn authjs_jwt_mode(smtp: &SmtpSink, dir: &std::path::Path, password: &str) -> Mode {
    use crate::adopting::{Framework, app_database};
    let vectors: serde_json::Value = serde_json::from_str(AUTHJS).unwrap();
    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v5 cookie")
        .unwrap();
    let db = app_database(Framework::Prisma).await;
    let email = person();
    prisma_user(&db, vector["sub"].as_str().unwrap(), &email, None).await;
    let current = vectors["secrets"]["current"].as_str().unwrap().to_owned();
    let previous = vectors["secrets"]["previous"].as_str().unwrap().to_owned();
    let mut env = account_env(&db, smtp, password);
    env.extend([
        ("SCHEMA_PRESET", "prisma".to_owned()),
        ("SESSION_AUTH", "authjs-jwt".to_owned()),
        ("AUTH_SECRET", format!("{current},{previous}")),
    ]);
    let delete = Logged::start(env!("CARGO_BIN_EXE_account-delete"), &env, dir).await;
    let jwe = vector["token"].as_str().unwrap().to_owned();
    let cookie = format!("{}={jwe}", vector["cookie"].as_str().unwrap());
    assert_eq!(delete_from_app(&delete, &[("cookie", &cookie)]).await, 202);
    Mode {
        _db: db,
        delete,
        secrets: vec![jwe, current, previous, email],
    }
}

/// A provider's JWT, verified with a shared secret.
async fn jwt_mode(smtp: &SmtpSink, dir: &std::path::Path, password: &str) -> Mode {
    let vectors: serde_json::Value = serde_json::from_str(JWT).unwrap();
    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "HS256 (shared secret)")
        .unwrap();
    let db = TestDb::new().await;
    let email = person();
    sqlx::query("insert into users (id, email) values ($1::uuid, $2)")
        .bind(vector["sub"].as_str().unwrap())
        .bind(&email)
        .execute(&db.pool)
        .await
        .unwrap();
    let secret = vectors["hs256_secret"].as_str().unwrap().to_owned();
    let mut env = account_env(&db, smtp, password);
    env.extend([
        ("SESSION_AUTH", "jwt".to_owned()),
        ("JWT_SECRET", secret.clone()),
        ("JWT_ISSUER", vectors["issuer"].as_str().unwrap().to_owned()),
        (
            "JWT_AUDIENCE",
            vectors["audience"].as_str().unwrap().to_owned(),
        ),
    ]);
    let delete = Logged::start(env!("CARGO_BIN_EXE_account-delete"), &env, dir).await;
    let jwt = vector["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {jwt}");
    assert_eq!(
        delete_from_app(&delete, &[("authorization", &bearer)]).await,
        202
    );
    Mode {
        _db: db,
        delete,
        secrets: vec![jwt, secret, email],
    }
}

#[tokio::test]
async fn every_sign_in_mode_at_trace_level_logs_no_credential_and_no_address() {
    let smtp = SmtpSink::start().await;
    let dir = log_dir();
    let password = format!("mail-password-{}", uuid::Uuid::new_v4().simple());
    let modes = [
        authjs_database_mode(&smtp, &dir, &password).await,
        authjs_jwt_mode(&smtp, &dir, &password).await,
        jwt_mode(&smtp, &dir, &password).await,
    ];
    // Each deletion's recovery email went out (and was logged) before the
    // functions stop.
    smtp.wait_for(3, Duration::from_secs(10)).await;
    let mut secrets = vec![password];
    for mode in modes {
        secrets.extend(mode.secrets);
        drop(mode.delete);
    }
    let (lines, verbose) = scan_dir(&dir, &secrets);
    assert!(
        verbose > 0,
        "trace logging was on: {verbose} of {lines} lines"
    );
}

#[tokio::test]
async fn a_statement_slowed_by_a_held_lock_logs_no_session_token_at_the_default_level() {
    use crate::adopting::{Framework, app_database};
    let smtp = SmtpSink::start().await;
    let dir = log_dir();
    let db = app_database(Framework::Prisma).await;
    let (email, token) = (person(), format!("authjs-session-{}", uuid::Uuid::new_v4()));
    prisma_user(&db, "cmhygiene00000000000000002", &email, Some(&token)).await;
    let mut env = account_env(&db, &smtp, "mail-password");
    env.extend([
        ("SCHEMA_PRESET", "prisma".to_owned()),
        ("SESSION_AUTH", "authjs-database".to_owned()),
    ]);
    let delete = Logged::at_level(env!("CARGO_BIN_EXE_account-delete"), &env, &dir, None).await;

    // An app migration holding the sessions table for 1.6 s: the session
    // lookup waits for it (inside the route's 2 s lock limit), past the
    // driver's one-second "slow statement" threshold.
    let mut holder = db.pool.begin().await.unwrap();
    sqlx::query(r#"lock table "Session" in access exclusive mode"#)
        .execute(&mut *holder)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        holder.commit().await.unwrap();
    });
    let started = Instant::now();
    let bearer = format!("Bearer {token}");
    let (status, body) = post_json(
        delete.port,
        "/api/account/delete",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    release.await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the lookup waited for the lock: {:?}",
        started.elapsed()
    );
    smtp.wait_for(1, Duration::from_secs(10)).await;
    drop(delete);
    let (lines, _) = scan_dir(&dir, &[token, email]);
    assert!(lines > 0, "the function logged at its default level");
}

#[tokio::test]
async fn a_mail_servers_refusal_is_logged_by_its_class_never_its_text() {
    let smtp = SmtpSink::start().await;
    smtp.refuse_recipients();
    let dir = log_dir();
    let db = TestDb::new().await;
    let email = person();
    let user_id: uuid::Uuid =
        sqlx::query_scalar("insert into users (email) values ($1) returning id")
            .bind(&email)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let token = format!("session-{}", uuid::Uuid::new_v4());
    sqlx::query(
        "insert into sessions (user_id, token_hash, expires_at)
         values ($1, sha256(convert_to($2, 'UTF8')), now() + interval '1 day')",
    )
    .bind(user_id)
    .bind(&token)
    .execute(&db.pool)
    .await
    .unwrap();
    let env = account_env(&db, &smtp, "mail-password");
    let delete = Logged::start(env!("CARGO_BIN_EXE_account-delete"), &env, &dir).await;
    let bearer = format!("Bearer {token}");
    let (status, body) = post_json(
        delete.port,
        "/api/account/delete",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // The server refused the recipient, quoting the address.
    let deadline = Instant::now() + Duration::from_secs(10);
    let class = loop {
        let class: Option<String> = sqlx::query_scalar(
            "select last_error from account_deletion.email_outbox where user_id = $1::text",
        )
        .bind(user_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if let Some(class) = class {
            break class;
        }
        assert!(Instant::now() < deadline, "the attempt never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(class, "smtp_permanent");
    assert!(
        smtp.commands().iter().any(|c| c.contains(&email)),
        "the refused recipient was this address"
    );
    drop(delete);
    let logged: String = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        logged.contains("email attempt failed") && logged.contains("smtp_permanent"),
        "the failure is logged, by its class:\n{logged}"
    );
    scan_dir(&dir, &[email, token]);
}

#[tokio::test]
async fn an_admin_request_logs_only_ids_read_back_from_the_database_never_the_input() {
    use crate::adopting::{Framework, app_database};
    // Prisma's ids are text: any string is a valid id, an address too.
    let db = app_database(Framework::Prisma).await;
    let smtp = SmtpSink::start().await;
    let dir = log_dir();
    let (someone, typed) = (person(), person());
    prisma_user(&db, "cmhygieneadmin0000000001", &someone, None).await;
    let mut env = account_env(&db, &smtp, "unused-password");
    env.extend([
        ("SCHEMA_PRESET", "prisma".to_owned()),
        ("ADMIN_SECRET", ADMIN_SECRET.to_owned()),
    ]);
    // At the default level, where every admin request is logged.
    let admin = Logged::at_level(env!("CARGO_BIN_EXE_admin-accounts"), &env, &dir, None).await;
    let auth = format!("Bearer {ADMIN_SECRET}");
    let shouted = someone.to_uppercase();
    for (body, status) in [
        // An address where an id goes: no such account.
        (
            format!(r#"{{"user_id":"{typed}","action":"restore"}}"#),
            404,
        ),
        (
            format!(r#"{{"user_id":"{typed}","action":"hold","reason":"legal_hold"}}"#),
            404,
        ),
        (format!(r#"{{"email":"{typed}","action":"show"}}"#), 404),
        // Found by an address as typed differently: the log has its id.
        (
            format!(r#"{{"email":"{shouted}","action":"restore"}}"#),
            409,
        ),
    ] {
        let (code, text) = post_json(
            admin.port,
            "/api/admin/accounts",
            &[("authorization", &auth)],
            &body,
        )
        .await;
        assert_eq!(code, status, "{body}: {text}");
    }
    drop(admin);
    let logged: String = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        logged.contains(r#"user_id="cmhygieneadmin0000000001""#)
            || logged.contains("user_id=cmhygieneadmin0000000001"),
        "{logged}"
    );
    assert_eq!(logged.matches("admin request").count(), 4, "{logged}");
    scan_dir(&dir, &[typed, someone, shouted]);
}
