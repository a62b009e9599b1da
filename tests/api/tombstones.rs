//! Re-erasure after a backup restore: take a dump, purge, restore the dump
//! into a fresh database, re-apply the tombstones of the database the
//! restore replaced. Every purged account is gone again, with its
//! `account.purged` event; the active ones are untouched.

use std::process::Command;
use std::sync::Arc;

use account_deletion::config::{PurgeSettings, RetentionDays};
use account_deletion::delivery::events::EventSweepReport;
use account_deletion::lifecycle::forget::{Forgotten, forget};
use account_deletion::platform::webhook::{Webhook, WebhookSecrets, WebhookUrl};
use account_deletion::schema::UsersTable;
use account_deletion::schema::sql::{AppTables, Records};
use sqlx::PgPool;
use testkit::webhook_receiver::{SECRET, WebhookReceiver};

use crate::helpers::{CRON_SECRET, TestDb, cron_config, read, request};

async fn users(pool: &PgPool, prefix: &str, n: i32, deleted_days_ago: Option<i32>) -> Vec<String> {
    sqlx::query_scalar(
        "insert into users (email, deleted_at)
         select $1 || g || '@example.test', now() - make_interval(days => $3)
         from generate_series(1, $2) g returning id::text",
    )
    .bind(prefix)
    .bind(n)
    .bind(deleted_days_ago)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn present(pool: &PgPool, ids: &[String]) -> Vec<(String, bool)> {
    sqlx::query_as(
        "select id::text, deleted_at is null from users where id::text = any($1) order by 1",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(testkit::postgres::client_program(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install PostgreSQL's client programs")
        });
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn purge(db: &TestDb) -> serde_json::Value {
    let route = account_deletion::routes::purge_users::PurgeUsers::new(cron_config(&db.url(), &[]));
    let auth = format!("Bearer {CRON_SECRET}");
    read(
        route
            .handle(request(
                http::Method::GET,
                "/api/cron/permanent-delete-users",
                &[("authorization", &auth)],
                b"",
            ))
            .await,
    )
    .await
    .json()
}

/// Re-erases with a webhook pointed at `receiver`, as `cargo dev forget`
/// does when `WEBHOOK_URL` is set.
async fn forget_into(
    replaced: &TestDb,
    restored: &TestDb,
    receiver: &WebhookReceiver,
) -> Forgotten {
    let webhook = Arc::new(Webhook {
        url: WebhookUrl::parse(&receiver.url()).unwrap(),
        secrets: WebhookSecrets::parse(SECRET).unwrap(),
    });
    forget(
        &replaced.pool,
        &restored.pool,
        &AppTables::new(UsersTable::default_names(), None).recording(Records {
            events: true,
            erased_email: false,
        }),
        RetentionDays::DEFAULT,
        PurgeSettings::default(),
        Some(&webhook),
    )
    .await
    .unwrap()
}

/// The receiver got one verified `account.purged` event, naming exactly
/// `ids`.
fn assert_one_purged_event(receiver: &WebhookReceiver, ids: &[String]) {
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["verified"], true);
    assert_eq!(seen[0]["event"]["type"], "account.purged");
    let mut got: Vec<String> = seen[0]["event"]["data"]["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_restored_backup_is_erased_again_from_the_tombstones() {
    let live = TestDb::new().await;
    let active = users(&live.pool, "active-", 5, None).await;
    let due = users(&live.pool, "due-", 3, Some(40)).await;
    let later = users(&live.pool, "later-", 2, None).await;
    sqlx::query(
        "insert into sessions (user_id, token_hash, expires_at)
         select id, sha256(convert_to(id::text, 'UTF8')), now() + interval '1 day'
         from users where id::text = any($1)",
    )
    .bind(&active)
    .execute(&live.pool)
    .await
    .unwrap();

    // The backup.
    let dump = std::env::temp_dir().join(format!("tombstones-{}.dump", std::process::id()));
    run(
        "pg_dump",
        &[
            "--format=custom",
            "--file",
            dump.to_str().unwrap(),
            "--dbname",
            &live.url_direct(),
        ],
    );

    // After it: two more accounts are deleted, and everything due is purged.
    sqlx::query(
        "update users set deleted_at = now() - interval '40 days' where id::text = any($1)",
    )
    .bind(&later)
    .execute(&live.pool)
    .await
    .unwrap();
    let run_answer = purge(&live).await;
    assert_eq!(run_answer["deleted"], 5, "{run_answer}");
    let tombstones: Vec<(String, i64)> = sqlx::query_as(
        "select user_id, (select count(*) from information_schema.columns
                          where table_schema = 'account_deletion' and table_name = 'tombstones')
         from account_deletion.tombstones order by 1",
    )
    .fetch_all(&live.pool)
    .await
    .unwrap();
    let mut purged: Vec<String> = due.iter().chain(&later).cloned().collect();
    purged.sort();
    assert_eq!(
        tombstones
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        purged
    );
    assert!(
        tombstones.iter().all(|(_, columns)| *columns == 3),
        "an id, a time and whether it was anonymized, nothing else"
    );

    // The restore, into a fresh database.
    let restored = TestDb::empty().await;
    run(
        "pg_restore",
        &[
            "--no-owner",
            "--dbname",
            &restored.url_direct(),
            dump.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&dump);
    let back = present(&restored.pool, &purged).await;
    assert_eq!(back.len(), 5, "the purged accounts are back: {back:?}");

    let receiver = WebhookReceiver::start(SECRET).await;
    let done = forget_into(&live, &restored, &receiver).await;
    assert_eq!(
        done,
        Forgotten {
            tombstones: 5,
            present: 5,
            purged: 5,
            anonymized: 0,
            blocked: 0,
            events: Some(EventSweepReport {
                sent: 1,
                ..EventSweepReport::default()
            }),
        }
    );
    // The app hears of the re-erasure, to erase its files again too.
    assert_one_purged_event(&receiver, &purged);
    assert_eq!(present(&restored.pool, &purged).await, vec![]);
    let mut kept = active.clone();
    kept.sort();
    assert_eq!(
        present(&restored.pool, &active).await,
        kept.iter().map(|id| (id.clone(), true)).collect::<Vec<_>>(),
        "active accounts are untouched"
    );
    let sessions: i64 = sqlx::query_scalar("select count(*) from sessions")
        .fetch_one(&restored.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 5);
    // Running it again finds nothing to do.
    let again = forget_into(&live, &restored, &receiver).await;
    assert_eq!((again.present, again.purged), (0, 0));
}

/// The tombstones written before the backup was taken name accounts the
/// backup no longer had: re-erasure reads only those since (the restored
/// database's newest tombstone says when, less an hour), so it costs what
/// the days since the backup erased, not the whole keep.
#[tokio::test]
async fn re_erasure_reads_only_the_tombstones_written_since_the_backup() {
    let replaced = TestDb::new().await;
    let restored = TestDb::new().await;
    // The backup's newest tombstone: five days ago.
    sqlx::query(
        "insert into account_deletion.tombstones (user_id, purged_at)
         values ('6f1c2b1e-0000-4000-8000-00000000b4c4', now() - interval '5 days')",
    )
    .execute(&restored.pool)
    .await
    .unwrap();
    // Back in the restored database: an account purged after the backup,
    // and one purged well before it (the app re-created a row with its id).
    let after = users(&restored.pool, "after-", 1, Some(40)).await;
    let before = users(&restored.pool, "before-", 1, None).await;
    sqlx::query(
        "insert into account_deletion.tombstones (user_id, purged_at)
         values ($1, now() - interval '2 days'), ($2, now() - interval '10 days'),
                ('6f1c2b1e-0000-4000-8000-00000000b4c4', now() - interval '5 days')",
    )
    .bind(&after[0])
    .bind(&before[0])
    .execute(&replaced.pool)
    .await
    .unwrap();
    let done = forget(
        &replaced.pool,
        &restored.pool,
        &AppTables::new(UsersTable::default_names(), None),
        RetentionDays::DEFAULT,
        PurgeSettings::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (done.tombstones, done.present, done.purged),
        (2, 1, 1),
        "the one since the backup (and the backup's newest), not the older one: {done:?}"
    );
    assert_eq!(present(&restored.pool, &after).await, vec![]);
    assert_eq!(
        present(&restored.pool, &before).await,
        vec![(before[0].clone(), true)]
    );
}
