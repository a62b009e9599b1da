//! What every test needs: a database, the routes wired to it, requests and
//! seed data.

pub use testkit::{http_client, proxy, smtp, time_zone_proxy};

/// The shared harness, with this crate's migrations.
pub mod postgres {
    pub use testkit::free_port;

    /// A fresh database with `migrations/` applied.
    pub struct TestDb(testkit::postgres::TestDb);

    impl TestDb {
        pub async fn new() -> Self {
            testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
            Self(testkit::postgres::TestDb::new().await)
        }

        /// An empty database, for a test that builds an app's schema.
        pub async fn empty() -> Self {
            testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
            Self(testkit::postgres::TestDb::empty().await)
        }

        pub fn server_port() -> u16 {
            testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
            testkit::postgres::TestDb::server_port()
        }
    }

    impl std::ops::Deref for TestDb {
        type Target = testkit::postgres::TestDb;

        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }
}

use std::collections::HashMap;

use account_deletion::config::{ConfigErrors, CronConfig, StatusConfig};
use account_deletion::platform::web;
use account_deletion::routes::purge_users::PurgeUsers;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

pub use postgres::TestDb;

pub const CRON_SECRET: &str = "test-cron-secret-0123456789";
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789abcdef0123";

/// A response, read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The contract's error body, checked for shape; returns its code.
    pub fn error_code(&self) -> String {
        let body = self.json();
        let object = body.as_object().expect("error body is an object");
        assert_eq!(
            object.len(),
            2,
            "error body has exactly error and message: {body}"
        );
        assert!(object["message"].as_str().is_some_and(|m| !m.is_empty()));
        object["error"].as_str().unwrap().to_owned()
    }
}

pub fn request(method: Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> web::Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::copy_from_slice(body)).unwrap()
}

/// A reply, its body read to the end (a streamed one as the client gets it;
/// a torn one panics).
pub async fn read_reply(reply: web::Reply) -> TestResponse {
    use http_body_util::BodyExt;
    match reply {
        web::Reply::Whole(response) => read(response).await,
        web::Reply::Streamed(response) => {
            let (parts, body) = response.into_parts();
            TestResponse {
                status: parts.status,
                headers: parts.headers,
                body: body.collect().await.expect("a whole body").to_bytes(),
            }
        }
    }
}

pub async fn read(response: web::Response) -> TestResponse {
    let (parts, body) = response.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// An environment, as a function would see it.
pub fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

pub fn cron_config(db_url: &str, extra: &[(&str, &str)]) -> Result<CronConfig, ConfigErrors> {
    let mut vars = vec![("DATABASE_URL", db_url), ("CRON_SECRET", CRON_SECRET)];
    vars.extend_from_slice(extra);
    CronConfig::from_lookup(&env(&vars))
}

pub fn status_config(db_url: &str, extra: &[(&str, &str)]) -> Result<StatusConfig, ConfigErrors> {
    let mut vars = vec![("DATABASE_URL", db_url), ("CRON_SECRET", CRON_SECRET)];
    vars.extend_from_slice(extra);
    StatusConfig::from_lookup(&env(&vars))
}

/// The purge route on a test database, called without a network.
pub struct PurgeApp {
    pub db: TestDb,
    pub route: PurgeUsers,
}

impl PurgeApp {
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    pub async fn with_env(extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let route = PurgeUsers::new(cron_config(&db.url(), extra));
        Self { db, route }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Another instance of the function on the same database, as Vercel
    /// would start for an overlapping run.
    pub fn another_instance(&self, extra: &[(&str, &str)]) -> PurgeUsers {
        PurgeUsers::new(cron_config(&self.db.url(), extra))
    }

    pub async fn call(&self, request: web::Request) -> TestResponse {
        read(self.route.handle(request).await).await
    }

    /// A run exactly as Vercel Cron sends it.
    pub async fn cron(&self) -> TestResponse {
        self.call(cron_request(Method::GET, "")).await
    }
}

pub fn cron_request(method: Method, query: &str) -> web::Request {
    let auth = format!("Bearer {CRON_SECRET}");
    request(
        method,
        &format!("/api/cron/permanent-delete-users{query}"),
        &[("authorization", &auth), ("user-agent", "vercel-cron/1.0")],
        b"",
    )
}

/// Inserts `count` users soft-deleted `ago` (a PostgreSQL interval) ago, or
/// active when `ago` is `None`; returns their ids.
pub async fn seed_users(pool: &PgPool, count: i64, ago: Option<&str>) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "insert into users (email, deleted_at)
         select 'user-' || gen_random_uuid() || '@example.test',
                case when $2::text is null then null else now() - $2::interval end
         from generate_series(1, $1)
         returning id",
    )
    .bind(count)
    .bind(ago)
    .fetch_all(pool)
    .await
    .unwrap()
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Another transaction (a recovery in progress, say) holding a user's row
/// until it is committed or rolled back.
pub async fn hold_user(
    pool: &PgPool,
    user_id: uuid::Uuid,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("select 1 from users where id = $1 for update")
        .bind(user_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder
}

/// An app table `table` whose rows reference `users` with `ON DELETE
/// CASCADE` (indexed, as the contract requires), with one row per user.
pub async fn app_table_with_a_row_each(pool: &PgPool, table: &str, users: &[uuid::Uuid]) {
    sqlx::raw_sql(&format!(
        "create table {table} (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete cascade
         );
         create index {table}_user_id_idx on {table} (user_id);"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "insert into {table} (user_id) select unnest($1::uuid[])"
    ))
    .bind(users)
    .execute(pool)
    .await
    .unwrap();
}

/// The app in the middle of editing a user's rows of `table`: they stay
/// locked until the transaction ends.
pub async fn hold_app_rows(
    pool: &PgPool,
    table: &str,
    user_id: uuid::Uuid,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(&format!(
        "select 1 from {table} where user_id = $1 for update"
    ))
    .bind(user_id)
    .execute(&mut *holder)
    .await
    .unwrap();
    holder
}

pub async fn user_count(pool: &PgPool) -> i64 {
    count(pool, "select count(*) from users").await
}

pub const APP_URL: &str = "https://app.example.test";

/// The account routes, the email sweep and the purge on one test database,
/// mailing a real SMTP server.
pub struct AccountApp {
    pub db: TestDb,
    pub smtp: smtp::SmtpSink,
    pub delete: account_deletion::routes::delete_account::DeleteAccount,
    pub recover: account_deletion::routes::recover_account::RecoverAccount,
    pub deletion: account_deletion::routes::deletion_status::DeletionStatus,
    pub restore: account_deletion::routes::restore_account::RestoreAccount,
    pub export: account_deletion::routes::export_account::ExportAccount,
    pub admin: account_deletion::routes::admin_accounts::AdminAccounts,
    pub sweep: account_deletion::routes::send_emails::SendEmails,
    pub purge: PurgeUsers,
}

impl AccountApp {
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    pub async fn with_env(extra: &[(&str, &str)]) -> Self {
        Self::build(None, extra).await
    }

    /// The app with its functions reaching the database through a proxy or
    /// pooler listening on `port`.
    pub async fn through_port(port: u16, extra: &[(&str, &str)]) -> Self {
        Self::build(Some(port), extra).await
    }

    async fn build(port: Option<u16>, extra: &[(&str, &str)]) -> Self {
        Self::on(TestDb::new().await, port, extra).await
    }

    /// The app on a database the test prepared (an app's own schema).
    pub async fn on(db: TestDb, port: Option<u16>, extra: &[(&str, &str)]) -> Self {
        let smtp = smtp::SmtpSink::start().await;
        let url = port.map_or_else(|| db.url(), |port| db.url_via(port));
        let mail_url = smtp.url();
        let mut vars = vec![
            ("DATABASE_URL", url.as_str()),
            ("CRON_SECRET", CRON_SECRET),
            ("ADMIN_SECRET", ADMIN_SECRET),
            ("APP_URL", APP_URL),
            ("MAIL_URL", mail_url.as_str()),
            ("MAIL_FROM", "Example App <no-reply@app.example.test>"),
        ];
        // A later setting of the same name wins, as in a shell.
        for (name, value) in extra {
            vars.retain(|(n, _)| n != name);
            vars.push((name, value));
        }
        let lookup = env(&vars);
        Self {
            delete: account_deletion::routes::delete_account::DeleteAccount::new(
                account_deletion::config::AccountConfig::from_lookup(&lookup),
            ),
            recover: account_deletion::routes::recover_account::RecoverAccount::new(
                account_deletion::config::AccountConfig::from_lookup(&lookup),
            ),
            deletion: account_deletion::routes::deletion_status::DeletionStatus::new(
                account_deletion::config::AccountConfig::from_lookup(&lookup),
            ),
            restore: account_deletion::routes::restore_account::RestoreAccount::new(
                account_deletion::config::AccountConfig::from_lookup(&lookup),
            ),
            export: account_deletion::routes::export_account::ExportAccount::new(
                account_deletion::config::AccountConfig::from_lookup(&lookup),
            ),
            admin: account_deletion::routes::admin_accounts::AdminAccounts::new(
                account_deletion::config::AdminConfig::from_lookup(&lookup),
            ),
            sweep: account_deletion::routes::send_emails::SendEmails::new(
                account_deletion::config::EmailCronConfig::from_lookup(&lookup),
            ),
            purge: PurgeUsers::new(CronConfig::from_lookup(&lookup)),
            db,
            smtp,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// A user with one live session, the way an app's sign-in creates it.
    pub async fn user_with_session(&self) -> (uuid::Uuid, String) {
        let user_id: uuid::Uuid = sqlx::query_scalar(
            "insert into users (email) values ('person-' || gen_random_uuid() || '@example.test') returning id",
        )
        .fetch_one(self.pool())
        .await
        .unwrap();
        let token = format!("session-{}", uuid::Uuid::new_v4());
        self.add_session(user_id, &token, "1 day").await;
        (user_id, token)
    }

    /// A session expiring `expires_in` (a PostgreSQL interval, may be negative).
    pub async fn add_session(&self, user_id: uuid::Uuid, token: &str, expires_in: &str) {
        sqlx::query(
            "insert into sessions (user_id, token_hash, expires_at)
             values ($1, sha256(convert_to($2, 'UTF8')), now() + $3::interval)",
        )
        .bind(user_id)
        .bind(token)
        .bind(expires_in)
        .execute(self.pool())
        .await
        .unwrap();
    }

    pub async fn delete_with(&self, session: &str) -> TestResponse {
        self.delete_request(&[("authorization", &format!("Bearer {session}"))])
            .await
    }

    /// `POST /api/account/delete` with `headers`.
    pub async fn delete_request(&self, headers: &[(&str, &str)]) -> TestResponse {
        read(
            self.delete
                .handle(request(Method::POST, "/api/account/delete", headers, b""))
                .await,
        )
        .await
    }

    /// Deletes the account and returns the token its recovery email carried.
    pub async fn delete_and_read_token(&self, session: &str) -> String {
        let recipient: String = sqlx::query_scalar(
            "select u.email from sessions s join users u on u.id = s.user_id
             where s.token_hash = sha256(convert_to($1, 'UTF8'))",
        )
        .bind(session)
        .fetch_one(self.pool())
        .await
        .unwrap();
        let before = self.smtp.received().len();
        let response = self.delete_with(session).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        // Other emails (a "restored" one sent in the background) may arrive
        // in between; take the first new one to this user with a link.
        let mut seen = before;
        loop {
            let mail = self
                .smtp
                .wait_for(seen + 1, std::time::Duration::from_secs(5))
                .await;
            if let Some(email) = mail[before..]
                .iter()
                .find(|m| m.to.iter().any(|t| t.contains(&recipient)) && !m.links().is_empty())
            {
                return email.token();
            }
            seen = mail.len();
        }
    }

    /// `GET /api/account/deletion` with `headers` (a session's bearer).
    pub async fn deletion_with(&self, headers: &[(&str, &str)]) -> TestResponse {
        read(
            self.deletion
                .handle(request(Method::GET, "/api/account/deletion", headers, b""))
                .await,
        )
        .await
    }

    /// `POST /api/account/restore` with `headers`.
    pub async fn restore_with(&self, headers: &[(&str, &str)]) -> TestResponse {
        read(
            self.restore
                .handle(request(Method::POST, "/api/account/restore", headers, b""))
                .await,
        )
        .await
    }

    /// `GET /api/admin/accounts?{query}` with the admin secret.
    pub async fn admin_show(&self, query: &str) -> TestResponse {
        let auth = format!("Bearer {ADMIN_SECRET}");
        read(
            self.admin
                .handle(request(
                    Method::GET,
                    &format!("/api/admin/accounts?{query}"),
                    &[("authorization", &auth)],
                    b"",
                ))
                .await,
        )
        .await
    }

    /// Support's look-up by address: `POST {"email", "action": "show"}`
    /// (an address never goes in a URL).
    pub async fn admin_find(&self, email: &str) -> TestResponse {
        self.admin_post(&serde_json::json!({ "email": email, "action": "show" }))
            .await
    }

    /// `POST /api/admin/accounts` with `body`, with the admin secret.
    pub async fn admin_post(&self, body: &Value) -> TestResponse {
        admin_post_to(&self.admin, body).await
    }

    pub async fn recover_json(&self, token: &str) -> TestResponse {
        self.recover_json_with(token, &[]).await
    }

    /// [`recover_json`](Self::recover_json) with more headers (a client's
    /// own address in `x-real-ip`, say).
    pub async fn recover_json_with(&self, token: &str, headers: &[(&str, &str)]) -> TestResponse {
        let body = serde_json::json!({ "token": token }).to_string();
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        read(
            self.recover
                .handle(request(
                    Method::POST,
                    "/api/account/recover",
                    &headers,
                    body.as_bytes(),
                ))
                .await,
        )
        .await
    }

    pub async fn recover_page(&self, token: &str) -> TestResponse {
        let uri = format!("/api/account/recover?token={}", urlencode(token));
        read(
            self.recover
                .handle(request(Method::GET, &uri, &[], b""))
                .await,
        )
        .await
    }

    pub async fn run_sweep(&self) -> Value {
        run_sweep(&self.sweep).await
    }

    pub async fn run_purge(&self) -> Value {
        let response = read(self.purge.handle(cron_request(Method::GET, "")).await).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    }

    pub async fn purge_dry_run(&self) -> Value {
        let response = read(
            self.purge
                .handle(cron_request(Method::GET, "?dry_run=true"))
                .await,
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    }

    /// Whether the user is soft-deleted, and how many sessions, outbox
    /// emails and recovery tokens they have: all of a deletion, or none.
    pub async fn account_state(&self, user_id: uuid::Uuid) -> (bool, i64, i64, i64) {
        sqlx::query_as(
            "select (select deleted_at is not null from users where id = $1),
                    (select count(*) from sessions where user_id = $1),
                    (select count(*) from account_deletion.email_outbox where user_id = $1::text),
                    (select count(*) from account_deletion.recovery_tokens where user_id = $1::text)",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// The app soft-deletes `user_id` by itself (a ban: its own column
    /// set, not through this service).
    pub async fn app_soft_deletes(&self, user_id: uuid::Uuid) {
        self.set_deleted_at(user_id, "now()").await;
    }

    /// The app (or support by hand) clears `user_id`'s deleted-at itself.
    pub async fn app_clears_deletion(&self, user_id: uuid::Uuid) {
        self.set_deleted_at(user_id, "null").await;
    }

    async fn set_deleted_at(&self, user_id: uuid::Uuid, value: &str) {
        sqlx::query(&format!(
            "update users set deleted_at = {value} where id = $1"
        ))
        .bind(user_id)
        .execute(self.pool())
        .await
        .unwrap();
    }

    /// Moves the user's deletion `interval` (a PostgreSQL interval) into
    /// the past, with what our tables hold about it, as if it had happened
    /// then: it is still the user's own deletion.
    pub async fn backdate(&self, user_id: uuid::Uuid, interval: &str) {
        sqlx::raw_sql(&format!(
            "update users set deleted_at = deleted_at - interval '{interval}' where id = '{user_id}';
             update account_deletion.history set for_deleted_at = for_deleted_at - interval '{interval}'
             where user_id = '{user_id}' and for_deleted_at is not null;
             update account_deletion.email_outbox set for_deleted_at = for_deleted_at - interval '{interval}'
             where user_id = '{user_id}' and for_deleted_at is not null;
             update account_deletion.recovery_tokens set for_deleted_at = for_deleted_at - interval '{interval}'
             where user_id = '{user_id}';"
        ))
        .execute(self.pool())
        .await
        .unwrap();
    }

    pub async fn deleted_at_of(
        &self,
        user_id: uuid::Uuid,
    ) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
        sqlx::query_scalar("select deleted_at from users where id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
            .unwrap()
    }
}

/// A race with the purge: for each of `accounts` (in order, 10 ms apart)
/// `attempt` runs while `purges` purge runs start 100 ms apart; then one
/// more purge finishes whatever they left. The attempts' answers, with
/// their accounts.
pub async fn race_the_purge<T, F, Fut>(
    app: &std::sync::Arc<AccountApp>,
    accounts: Vec<T>,
    purges: u64,
    attempt: F,
) -> Vec<(T, StatusCode)>
where
    T: Clone + Send + 'static,
    F: Fn(std::sync::Arc<AccountApp>, usize, T) -> Fut,
    Fut: std::future::Future<Output = StatusCode> + Send + 'static,
{
    let mut attempts = Vec::new();
    for (i, account) in accounts.into_iter().enumerate() {
        let running = attempt(app.clone(), i, account.clone());
        attempts.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * i as u64)).await;
            (account, running.await)
        }));
    }
    let runs: Vec<_> = (0..purges)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100 * i)).await;
                app.run_purge().await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.unwrap());
    }
    for run in runs {
        run.await.unwrap();
    }
    app.run_purge().await;
    answers
}

/// After [`race_the_purge`]: each account answered 200 exists and is
/// active, each answered one of `too_late` is erased, no other answer came,
/// and the race was one (some won, some lost).
pub async fn assert_each_account_is_restored_or_erased<T>(
    app: &AccountApp,
    answers: Vec<((uuid::Uuid, T), StatusCode)>,
    too_late: &[StatusCode],
) {
    let accounts = answers.len();
    let mut restored = 0;
    for ((user_id, _), status) in answers {
        if status == StatusCode::OK {
            restored += 1;
            assert_eq!(
                app.deleted_at_of(user_id).await,
                Some(None),
                "a 200 account exists and is active"
            );
        } else {
            assert!(too_late.contains(&status), "unexpected {status}");
            assert_eq!(
                app.deleted_at_of(user_id).await,
                None,
                "a refused account ({status}) is erased"
            );
        }
    }
    assert!(
        restored > 0 && restored < accounts,
        "the race was a race: {restored} of {accounts} restored"
    );
}

/// `POST /api/admin/accounts` with `body` and the admin secret, to `route`
/// (this app's, or one configured otherwise).
pub async fn admin_post_to(
    route: &account_deletion::routes::admin_accounts::AdminAccounts,
    body: &Value,
) -> TestResponse {
    let auth = format!("Bearer {ADMIN_SECRET}");
    read(
        route
            .handle(request(
                Method::POST,
                "/api/admin/accounts",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.to_string().as_bytes(),
            ))
            .await,
    )
    .await
}

/// Runs a sweep function (this app's, or another instance), expecting 200.
pub async fn run_sweep(sweep: &account_deletion::routes::send_emails::SendEmails) -> Value {
    let response = read(
        sweep
            .handle(request(
                Method::GET,
                "/api/cron/send-emails",
                &[("authorization", &format!("Bearer {CRON_SECRET}"))],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

/// `GET /api/status` as a monitor calls it: its code and body.
pub async fn status_of(status: &account_deletion::routes::status::Status) -> (StatusCode, Value) {
    let auth = format!("Bearer {CRON_SECRET}");
    let response = read(
        status
            .handle(request(
                Method::GET,
                "/api/status",
                &[("authorization", &auth)],
                b"",
            ))
            .await,
    )
    .await;
    (response.status, response.json())
}

pub fn urlencode(text: &str) -> String {
    form_urlencoded_encode(text)
}

fn form_urlencoded_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Shows the library's logs (info and up) in the test's captured output, so
/// a failing test prints what the code under test saw. Keep the guard for
/// the test's length; `#[tokio::test]` polls spawned tasks on the test's
/// own thread, so they log here too.
#[must_use]
pub fn show_logs_on_failure() -> tracing::subscriber::DefaultGuard {
    tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_test_writer()
            .finish(),
    )
}
