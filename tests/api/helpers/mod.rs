//! What every test needs: a database, the routes wired to it, requests and
//! seed data.

pub mod http_client;
pub mod postgres;
pub mod proxy;

use std::collections::HashMap;

use account_deletion::config::{ConfigErrors, CronConfig};
use account_deletion::routes::purge_users::PurgeUsers;
use account_deletion::web;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

pub use postgres::TestDb;

pub const CRON_SECRET: &str = "test-cron-secret-0123456789";

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

pub async fn user_count(pool: &PgPool) -> i64 {
    count(pool, "select count(*) from users").await
}
