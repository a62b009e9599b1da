//! `GET /api/status` and the purge's overdue figures: erasure that falls
//! behind is seen by a monitor, and the status recovers once it is fixed.

use account_deletion::routes::purge_users::PurgeUsers;
use account_deletion::routes::status::Status;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{CRON_SECRET, TestDb, cron_config, read, request, status_config, status_of};

struct Monitored {
    db: TestDb,
    status: Status,
    purge: PurgeUsers,
}

impl Monitored {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let url = db.url();
        Self {
            status: Status::new(status_config(&url, &[])),
            purge: PurgeUsers::new(cron_config(&url, &[])),
            db,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    async fn status(&self) -> (StatusCode, Value) {
        status_of(&self.status).await
    }

    async fn purge(&self, query: &str) -> Value {
        let auth = format!("Bearer {CRON_SECRET}");
        let response = read(
            self.purge
                .handle(request(
                    Method::GET,
                    &format!("/api/cron/permanent-delete-users{query}"),
                    &[("authorization", &auth)],
                    b"",
                ))
                .await,
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    }

    /// A soft-deleted user, deleted `hours` ago; its id.
    async fn deleted_hours_ago(&self, hours: i32) -> String {
        sqlx::query_scalar(
            "insert into users (email, deleted_at)
             values (gen_random_uuid() || '@example.test', now() - make_interval(hours => $1))
             returning id::text",
        )
        .bind(hours)
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// An app table whose key has no delete action: it blocks the purge
    /// of the accounts it references.
    async fn add_restricting_orders_table(&self) {
        sqlx::raw_sql(
            "create table orders (id bigint generated always as identity primary key,
                                  user_id uuid not null references users (id));
             create index on orders (user_id);",
        )
        .execute(self.pool())
        .await
        .unwrap();
    }

    async fn expect(&self, code: StatusCode, problems: &[&str]) -> Value {
        let (status, body) = self.status().await;
        assert_eq!(status, code, "{body}");
        assert_eq!(body["problems"], json!(problems), "{body}");
        assert_eq!(body["ok"], json!(problems.is_empty()));
        body
    }
}

const DAY: i32 = 24;
const RETENTION_HOURS: i32 = 30 * DAY;

#[tokio::test]
async fn the_status_goes_to_503_for_each_thing_that_needs_a_person_and_back() {
    let app = Monitored::new().await;
    // Installed minutes ago, nothing deleted: fine.
    let body = app.expect(StatusCode::OK, &[]).await;
    assert_eq!(body["last_completed_purge"], Value::Null);
    app.purge("").await;
    let body = app.expect(StatusCode::OK, &[]).await;
    assert!(body["last_completed_purge"].is_string(), "{body}");

    // The cron stopped: no completed purge for two intervals.
    sqlx::query("update account_deletion.purge_runs set finished_at = now() - interval '49 hours'")
        .execute(app.pool())
        .await
        .unwrap();
    let body = app
        .expect(StatusCode::SERVICE_UNAVAILABLE, &["purge_stale"])
        .await;
    assert!(body["last_completed_purge_age_seconds"].as_i64().unwrap() >= 49 * 3600);
    app.purge("").await;
    app.expect(StatusCode::OK, &[]).await;

    // A blocked account (past its retention, not yet overdue).
    app.add_restricting_orders_table().await;
    let held = app.deleted_hours_ago(RETENTION_HOURS + 2).await;
    sqlx::query("insert into orders (user_id) values ($1::uuid)")
        .bind(&held)
        .execute(app.pool())
        .await
        .unwrap();
    let run = app.purge("").await;
    assert_eq!(
        (run["blocked"].as_i64(), run["overdue"].as_i64()),
        (Some(1), Some(0)),
        "{run}"
    );
    let body = app
        .expect(StatusCode::SERVICE_UNAVAILABLE, &["blocked"])
        .await;
    assert_eq!(
        (body["due"].as_i64(), body["blocked"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["blocked_by"], json!(["orders_user_id_fkey"]));
    sqlx::query("delete from orders")
        .execute(app.pool())
        .await
        .unwrap();
    app.purge("").await;
    app.expect(StatusCode::OK, &[]).await;

    // Overdue: past its retention by more than a day, and still here.
    app.deleted_hours_ago(RETENTION_HOURS + DAY + 3).await;
    app.deleted_hours_ago(5).await;
    let body = app
        .expect(StatusCode::SERVICE_UNAVAILABLE, &["overdue"])
        .await;
    assert_eq!(
        (body["overdue"].as_i64(), body["pending"].as_i64()),
        (Some(1), Some(1))
    );
    let oldest = body["oldest_overdue_seconds"].as_i64().unwrap();
    assert!((27 * 3600..27 * 3600 + 120).contains(&oldest), "{oldest}");
    app.purge("").await;
    app.expect(StatusCode::OK, &[]).await;

    // An email that gave up, this week; a week later it no longer alarms.
    sqlx::query(
        "insert into account_deletion.email_outbox (user_id, kind, recipient, status, attempts)
         values ('x', 'recovery', 'gone@example.test', 'failed', 8)",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let body = app
        .expect(StatusCode::SERVICE_UNAVAILABLE, &["emails_given_up"])
        .await;
    assert_eq!(body["emails_given_up"], 1);
    sqlx::query(
        "update account_deletion.email_outbox set next_attempt_at = now() - interval '8 days'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    app.expect(StatusCode::OK, &[]).await;

    // Only with the secret.
    let response = read(
        app.status
            .handle(request(Method::GET, "/api/status", &[], b""))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_purge_reports_overdue_accounts_in_its_answer_and_its_ledger() {
    let app = Monitored::new().await;
    app.add_restricting_orders_table().await;
    for _ in 0..3 {
        let id = app.deleted_hours_ago(RETENTION_HOURS + 10 * DAY).await;
        sqlx::query("insert into orders (user_id) values ($1::uuid)")
            .bind(&id)
            .execute(app.pool())
            .await
            .unwrap();
    }
    app.deleted_hours_ago(RETENTION_HOURS + 10 * DAY).await;

    let dry = app.purge("?dry_run=true").await;
    assert_eq!(dry["overdue"], 4, "{dry}");
    let run = app.purge("").await;
    assert_eq!(
        (run["deleted"].as_i64(), run["overdue"].as_i64()),
        (Some(1), Some(3)),
        "{run}"
    );
    let oldest = run["oldest_overdue_seconds"].as_i64().unwrap();
    assert!(
        (10 * 86_400..10 * 86_400 + 120).contains(&oldest),
        "{oldest}"
    );
    let (overdue, seconds): (i64, Option<i64>) = sqlx::query_as(
        "select overdue, oldest_overdue_seconds from account_deletion.purge_runs
         where id = $1",
    )
    .bind(run["run_id"].as_i64().unwrap())
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((overdue, seconds), (3, Some(oldest)));
}

#[tokio::test]
async fn a_status_secret_reads_the_status_and_opens_nothing_else() {
    const STATUS_SECRET: &str = "monitor-only-secret-0123";
    let db = TestDb::new().await;
    let url = db.url();
    let status = Status::new(status_config(&url, &[("STATUS_SECRET", STATUS_SECRET)]));
    let purge = PurgeUsers::new(cron_config(&url, &[("STATUS_SECRET", STATUS_SECRET)]));
    sqlx::query(
        "insert into users (email, deleted_at) values ('due@example.test', now() - interval '31 days')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let call = |route: &'static str, secret: &str| {
        request(
            Method::GET,
            route,
            &[("authorization", &format!("Bearer {secret}"))],
            b"",
        )
    };
    for secret in [STATUS_SECRET, CRON_SECRET] {
        let response = read(status.handle(call("/api/status", secret)).await).await;
        assert!(
            matches!(
                response.status,
                StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{secret}: {}",
            response.text()
        );
        assert_eq!(response.json()["due"], 1);
    }
    // It never starts a purge.
    let refused = read(
        purge
            .handle(call("/api/cron/permanent-delete-users", STATUS_SECRET))
            .await,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(crate::helpers::user_count(&db.pool).await, 1);
    // Too short to be one: the status route refuses everything, naming it.
    let short = Status::new(status_config(&url, &[("STATUS_SECRET", "short")]));
    let response = read(short.handle(call("/api/status", CRON_SECRET)).await).await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.error_code(), "server_misconfigured");
    let errors = status_config(&url, &[("STATUS_SECRET", "short")]).unwrap_err();
    assert_eq!(errors.0[0].variable(), "STATUS_SECRET");
}
