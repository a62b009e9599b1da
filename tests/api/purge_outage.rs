use account_deletion::routes::purge_users::PurgeUsers;
use http::{Method, StatusCode};

use crate::helpers::proxy::Proxy;
use crate::helpers::{TestDb, cron_config, cron_request, read, seed_users, user_count};

/// What a 5xx body must never reveal.
fn assert_no_internals(text: &str, port: u16) {
    for leak in [
        "127.0.0.1",
        &port.to_string(),
        "sqlx",
        "postgres",
        "connection",
        "refused",
        "pool",
    ] {
        assert!(
            !text.to_lowercase().contains(leak),
            "{leak:?} leaked: {text}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_gives_a_generic_503_and_the_same_process_purges_once_it_is_back() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 12, Some("31 days")).await;
    let mut proxy = Proxy::start(TestDb::server_port()).await;
    let route = PurgeUsers::new(cron_config(&db.url_via(proxy.port), &[]));

    proxy.cut();
    let response = read(route.handle(cron_request(Method::GET, "")).await).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.error_code(), "service_unavailable");
    assert_no_internals(&response.text(), proxy.port);
    assert_eq!(user_count(&db.pool).await, 12);

    proxy.restore().await;
    let response = read(route.handle(cron_request(Method::GET, "")).await).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["deleted"], 12);
}

#[tokio::test]
async fn a_broken_schema_gives_a_generic_500_without_sql_in_it() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 3, Some("31 days")).await;
    // Sabotage: the ledger the purge writes to is gone.
    sqlx::query("alter table account_deletion.purge_runs rename to purge_runs_gone")
        .execute(&db.pool)
        .await
        .unwrap();
    let route = PurgeUsers::new(cron_config(&db.url(), &[]));
    let response = read(route.handle(cron_request(Method::GET, "")).await).await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.error_code(), "internal_error");
    let text = response.text();
    assert!(
        !text.contains("account_deletion.purge_runs") && !text.contains("relation"),
        "{text}"
    );
    assert_eq!(user_count(&db.pool).await, 3);
}

#[tokio::test]
async fn a_restricting_key_added_while_the_function_is_warm_is_found_and_isolates_its_account() {
    let db = TestDb::new().await;
    let ids = seed_users(&db.pool, 3, Some("31 days")).await;
    let route = PurgeUsers::new(cron_config(&db.url(), &[]));
    // A first request reads the catalog and renders the batch statement.
    let dry = read(
        route
            .handle(cron_request(Method::GET, "?dry_run=true"))
            .await,
    )
    .await;
    assert_eq!(dry.json()["blocked"], 0);
    // Then the app migrates: a key without a delete action, referencing
    // one of the expired accounts.
    sqlx::raw_sql(
        "create table invoices (user_id uuid not null constraint invoices_user_id_fkey references users (id) on delete restrict);
         create index invoices_user_id_idx on invoices (user_id);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("insert into invoices values ($1)")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();
    let response = read(route.handle(cron_request(Method::GET, "")).await).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["deleted"], 2);
    assert_eq!(body["blocked"], 1);
    assert_eq!(
        body["blocked_by"],
        serde_json::json!(["invoices_user_id_fkey"])
    );
    assert_eq!(user_count(&db.pool).await, 1);
    let (status, blocked, blocked_by): (String, i64, Vec<String>) = sqlx::query_as(
        "select status, blocked, blocked_by from account_deletion.purge_runs
         where not dry_run order by id desc limit 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), blocked, blocked_by),
        ("completed", 1, vec!["invoices_user_id_fkey".to_owned()])
    );
}
