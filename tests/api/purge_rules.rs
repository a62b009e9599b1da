use chrono::{DateTime, Utc};
use http::{Method, StatusCode};

use crate::helpers::{PurgeApp, count, cron_request, seed_users, user_count};

#[tokio::test]
async fn an_account_one_minute_past_the_cutoff_is_deleted_and_one_minute_short_is_kept() {
    let app = PurgeApp::new().await;
    let past = seed_users(app.pool(), 1, Some("30 days 1 minute")).await;
    let short = seed_users(app.pool(), 1, Some("30 days")).await;
    // "30 days" minus one minute: soft-deleted one minute too recently.
    sqlx::query("update users set deleted_at = now() - interval '30 days' + interval '1 minute' where id = $1")
        .bind(short[0])
        .execute(app.pool())
        .await
        .unwrap();

    let response = app.cron().await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["deleted"], 1);
    assert_eq!(body["remaining"], 0);
    assert_eq!(body["status"], "completed");
    let pool = app.pool();
    let exists = |id| async move {
        count(
            pool,
            &format!("select count(*) from users where id = '{id}'"),
        )
        .await
            == 1
    };
    assert!(!exists(past[0]).await, "past the cutoff: deleted");
    assert!(exists(short[0]).await, "inside the grace period: kept");
}

#[tokio::test]
async fn active_accounts_are_never_deleted() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 50, None).await;
    seed_users(app.pool(), 10, Some("400 days")).await;
    let body = app.cron().await.json();
    assert_eq!(body["deleted"], 10);
    assert_eq!(user_count(app.pool()).await, 50);
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from users where deleted_at is null"
        )
        .await,
        50
    );
}

#[tokio::test]
async fn rows_referencing_users_go_with_their_account_and_only_theirs() {
    let app = PurgeApp::new().await;
    // An app's own table, following the contract's rule for foreign keys.
    sqlx::raw_sql(
        "create table notes (
             id bigint generated always as identity primary key,
             user_id uuid not null constraint notes_user_id_fkey references users (id) on delete cascade,
             body text not null
         );
         create index notes_user_id_idx on notes (user_id);",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let expired = seed_users(app.pool(), 3, Some("31 days")).await;
    let recent = seed_users(app.pool(), 3, Some("29 days")).await;
    let active = seed_users(app.pool(), 3, None).await;
    for id in expired.iter().chain(&recent).chain(&active) {
        sqlx::query(
            "insert into notes (user_id, body) select $1, 'note' from generate_series(1, 4);
             ",
        )
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();
        sqlx::query("insert into sessions (user_id, token_hash, expires_at) values ($1, sha256(gen_random_uuid()::text::bytea), now() + interval '1 day')")
            .bind(id)
            .execute(app.pool())
            .await
            .unwrap();
    }

    assert_eq!(app.cron().await.json()["deleted"], 3);

    let pool = app.pool();
    let notes_of = |ids: Vec<uuid::Uuid>| async move {
        sqlx::query_scalar::<_, i64>("select count(*) from notes where user_id = any($1)")
            .bind(ids)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(
        notes_of(expired.clone()).await,
        0,
        "the purged accounts' rows are gone"
    );
    assert_eq!(
        notes_of(recent.clone()).await,
        12,
        "accounts in their grace period keep theirs"
    );
    assert_eq!(
        notes_of(active.clone()).await,
        12,
        "active accounts keep theirs"
    );
    assert_eq!(count(app.pool(), "select count(*) from sessions").await, 6);
}

#[tokio::test]
async fn a_dry_run_counts_and_deletes_nothing() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 7, Some("31 days")).await;
    seed_users(app.pool(), 4, None).await;
    for query in ["?dry_run=true", "?dry_run=1"] {
        let response = app.call(cron_request(Method::GET, query)).await;
        assert_eq!(response.status, StatusCode::OK);
        let body = response.json();
        assert_eq!(body["dry_run"], true);
        assert_eq!(body["status"], "completed");
        assert_eq!(body["deleted"], 0);
        assert_eq!(body["remaining"], 7);
        assert_eq!(body["would_delete"], 7);
    }
    assert_eq!(user_count(app.pool()).await, 11);
    // A real run afterwards deletes exactly what the dry run counted.
    assert_eq!(app.cron().await.json()["deleted"], 7);
}

#[tokio::test]
async fn retention_days_moves_the_cutoff() {
    let app = PurgeApp::with_env(&[("RETENTION_DAYS", "7")]).await;
    seed_users(app.pool(), 2, Some("8 days")).await;
    seed_users(app.pool(), 3, Some("6 days")).await;
    assert_eq!(app.cron().await.json()["deleted"], 2);
    assert_eq!(user_count(app.pool()).await, 3);
}

#[tokio::test]
async fn the_answer_has_every_contract_field_and_a_database_clock_cutoff() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 2, Some("31 days")).await;
    let body = app.cron().await.json();
    for field in [
        "status",
        "deleted",
        "remaining",
        "dry_run",
        "cutoff",
        "batches",
        "duration_ms",
    ] {
        assert!(body.get(field).is_some(), "missing {field}: {body}");
    }
    assert!(body["batches"].as_u64().unwrap() >= 1);
    assert!(body["duration_ms"].is_u64());
    let cutoff = DateTime::parse_from_rfc3339(body["cutoff"].as_str().unwrap()).unwrap();
    let expected: DateTime<Utc> = sqlx::query_scalar("select now() - interval '30 days'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let skew = (expected - cutoff.with_timezone(&Utc)).num_seconds().abs();
    assert!(
        skew < 5,
        "cutoff {cutoff} is now() - 30 days on the database clock"
    );
}

/// status, dry run, deleted, remaining, batches, finished, error code
type LedgerRow = (String, bool, i64, Option<i64>, i32, bool, Option<String>);

#[tokio::test]
async fn every_run_is_written_to_the_ledger_without_personal_data() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 4, Some("31 days")).await;
    app.cron().await;
    app.call(cron_request(Method::GET, "?dry_run=true")).await;
    let rows: Vec<LedgerRow> = sqlx::query_as(
        "select status, dry_run, deleted, remaining, batches, finished_at is not null, error_code
         from account_deletion.purge_runs order by id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            // Two batches: one per default worker, one of them empty.
            ("completed".to_owned(), false, 4, Some(0), 2, true, None),
            ("completed".to_owned(), true, 0, Some(0), 0, true, None),
        ]
    );
    let columns: Vec<String> = sqlx::query_scalar(
        "select column_name::text from information_schema.columns where table_name = 'account_deletion.purge_runs'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    for column in &columns {
        assert!(
            !column.contains("email") && !column.contains("user"),
            "{column}"
        );
    }
}
