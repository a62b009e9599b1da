//! Through a real PgBouncer in transaction mode, pool of three, stock
//! settings (and the suite's own, which moves clients between server
//! connections): what a plain sqlx client trips over, what ours does instead,
//! migrations that refuse a pooler, and a pooler restarted under load.
//!
//! The whole suite also runs through the shared pooler (`scripts/test` sets
//! `TEST_VIA_POOLER=1`); these tests start poolers of their own so they can
//! stop them.

use std::str::FromStr;
use std::time::{Duration, Instant};

use account_deletion::platform::db::{self, Limits};
use account_deletion::schema::migrate::{MigrateError, Options, migrate, migrate_waiting};
use http::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Row};
use testkit::pgbouncer::{POOL_SIZE, PgBouncer, Reuse};

use crate::helpers::{AccountApp, TestDb, TestResponse, count, cron_request, read, seed_users};

fn options(url: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(url).unwrap()
}

#[tokio::test]
async fn a_plain_sqlx_client_fails_through_the_pooler_so_the_suite_would_catch_a_regression() {
    let db = TestDb::new().await;
    let pooler = PgBouncer::start(TestDb::server_port());
    let url = db.url_via(pooler.port());

    // sqlx's defaults: the startup parameter PgBouncer refuses.
    let refused = PgConnection::connect_with(&options(&url))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("extra_float_digits"),
        "{refused}"
    );

    // Without it, sqlx's named statements collide on shared server
    // connections: the second client prepares `sqlx_s_1` where the first
    // already did.
    let named = options(&url).extra_float_digits(None);
    let mut failures = Vec::new();
    for _ in 0..4 {
        let mut client = PgConnection::connect_with(&named).await.unwrap();
        if let Err(error) = sqlx::query_scalar::<_, i32>("select $1::int4")
            .bind(7)
            .fetch_one(&mut client)
            .await
        {
            failures.push(error.to_string());
        }
    }
    assert!(
        failures.iter().any(|f| f.contains("sqlx_s_1")),
        "named statements went through: {failures:?}"
    );

    // An unnamed statement outside a transaction: sqlx parses it in one
    // exchange and runs it in the next, which a pooler moving clients
    // between server connections (the suite's) sends to another one.
    let moving = PgBouncer::start_with(TestDb::server_port(), POOL_SIZE, Reuse::LongestIdle);
    let moving_url = db.url_via(moving.port());
    open_every_server_connection(&moving_url).await;
    let mut client = PgConnection::connect_with(&db::connect_options(options(&moving_url)))
        .await
        .unwrap();
    let lost = db::query_scalar::<i32>("select $1::int4")
        .bind(7)
        .fetch_one(&mut client)
        .await
        .expect_err("parsed on one server connection, run on another");
    assert!(
        lost.to_string()
            .contains("unnamed prepared statement does not exist"),
        "{lost}"
    );

    // Ours, from many clients at once, through either pooler: every
    // statement answers.
    for url in [&url, &moving_url] {
        every_statement_answers_from_many_clients(url).await;
    }
}

/// Makes the pooler open all [`POOL_SIZE`] of its server connections, by
/// holding that many transactions at once.
async fn open_every_server_connection(url: &str) {
    let mut clients = Vec::new();
    let mut backends = std::collections::HashSet::new();
    for _ in 0..POOL_SIZE {
        let mut client = PgConnection::connect_with(&db::connect_options(options(url)))
            .await
            .unwrap();
        client.execute("begin").await.unwrap();
        let backend: i32 = client
            .fetch_one("select pg_backend_pid()")
            .await
            .unwrap()
            .get(0);
        backends.insert(backend);
        clients.push(client);
    }
    assert_eq!(backends.len(), POOL_SIZE as usize);
    for mut client in clients {
        client.execute("commit").await.unwrap();
    }
}

async fn every_statement_answers_from_many_clients(url: &str) {
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect_with(db::connect_options(options(url)))
        .await
        .unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..48_i32 {
        let pool = pool.clone();
        clients.spawn(async move {
            let mut tx = db::begin(&pool, &Limits::ACCOUNT).await?;
            let answer: i32 = db::query_scalar("select $1::int4 + 1")
                .bind(i)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((i, answer))
        });
    }
    while let Some(result) = clients.join_next().await {
        let (i, answer) = result.unwrap().unwrap();
        assert_eq!(answer, i + 1);
    }
}

#[tokio::test]
async fn migrating_through_the_pooler_is_refused_in_seconds_naming_the_variable() {
    // Whichever server connection the pooler hands out next, the check
    // tells it from a direct connection.
    for reuse in [Reuse::LastFreed, Reuse::LongestIdle] {
        migrating_through_a_pooler_is_refused(reuse).await;
    }
}

async fn migrating_through_a_pooler_is_refused(reuse: Reuse) {
    let db = TestDb::new().await;
    let server = testkit::postgres::server();
    let empty = format!("{}_empty", db.name);
    server.create_database(&empty, None).await;
    let pooler = PgBouncer::start_with(TestDb::server_port(), POOL_SIZE, reuse);
    let through_pooler = format!("postgres://postgres@127.0.0.1:{}/{empty}", pooler.port());
    let direct = format!(
        "postgres://postgres@127.0.0.1:{}/{empty}",
        TestDb::server_port()
    );

    let started = Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        migrate(&through_pooler, "DATABASE_URL", &Options::default()),
    )
    .await
    .expect("migrating through a pooler must not hang")
    .unwrap_err();
    assert!(
        matches!(
            refused,
            MigrateError::ThroughPooler {
                variable: "DATABASE_URL"
            }
        ),
        "{reuse:?}: {refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("DIRECT_URL") && message.contains("pooler"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing was applied, and no lock was left behind: the direct
    // migration runs at once and applies everything.
    let migrated = tokio::time::timeout(
        Duration::from_secs(20),
        migrate(&direct, "DIRECT_URL", &Options::default()),
    )
    .await
    .expect("the direct migration must not wait for a lock")
    .unwrap();
    assert_eq!(migrated.already_present, 0);
    assert_eq!(
        migrated.applied.len(),
        account_deletion::schema::migrate::MIGRATOR.iter().count()
            + account_deletion::schema::migrate::APP_MIGRATOR
                .iter()
                .count()
    );
    let again = migrate(&direct, "DIRECT_URL", &Options::default())
        .await
        .unwrap();
    assert!(again.applied.is_empty());
    server.drop_database(&empty).await;
}

#[tokio::test]
async fn migrating_waits_a_bounded_time_for_a_held_migration_lock() {
    let db = TestDb::new().await;
    // What sqlx's migrator locks: a session advisory lock held elsewhere, as
    // a migration run through a pooler leaves it.
    let mut holder = db.connect().await;
    sqlx::migrate::Migrate::lock(&mut holder).await.unwrap();
    // A new migration file would need the lock; with everything applied,
    // sqlx still takes it first.
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        migrate_waiting(
            &db.url_direct(),
            "DIRECT_URL",
            &Options::default(),
            Duration::from_secs(2),
        ),
    )
    .await
    .expect("bounded by the lock timeout");
    assert!(
        matches!(result, Err(MigrateError::LockHeld { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_pooler_restart_mid_purge_and_mid_burst_gives_generic_5xx_then_full_service_with_every_email_once()
 {
    let mut pooler = PgBouncer::start(TestDb::server_port());
    let app = AccountApp::through_port(
        pooler.port(),
        &[("PURGE_BATCH_SIZE", "20"), ("PURGE_BATCH_TARGET_MS", "0")],
    )
    .await;
    let answer = app.delete_with("no-such-session").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", pooler.log());
    seed_users(app.pool(), 3_000, Some("40 days")).await;
    let mut users = Vec::new();
    for _ in 0..40 {
        users.push(app.user_with_session().await);
    }
    let app = std::sync::Arc::new(app);

    let (purge_answer, answers) =
        purge_and_burst_through_an_outage(&app, &mut pooler, &users).await;

    // The purge was cut off mid-run: a generic 503, and a ledger that says
    // exactly how many accounts it deleted before.
    assert_eq!(
        purge_answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        purge_answer.text()
    );
    assert_eq!(purge_answer.error_code(), "service_unavailable");
    let (status, booked): (String, i64) = sqlx::query_as(
        "select status, deleted from account_deletion.purge_runs where dry_run = false order by id limit 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    let gone = 3_000 - count(app.pool(), EXPIRED).await;
    assert_eq!(status, "failed");
    assert_eq!(booked, gone, "the ledger books exactly what was deleted");
    assert!(gone > 0 && gone < 3_000, "cut off mid-run: {gone} deleted");
    assert_generic_5xx_while_down(&answers);

    // Full service after: a retry of every refused deletion succeeds, the
    // purge finishes, and the sweep sends what the outage held back.
    for ((user_id, session), answer) in users.iter().zip(&answers) {
        if answer.status != StatusCode::ACCEPTED && app.deleted_at_of(*user_id).await == Some(None)
        {
            let retry = app.delete_with(session).await;
            assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.text());
        }
    }
    // The run the outage cut short recorded its failure once the pooler
    // was back, so the purge is free and the next run finishes the work.
    let purged = app.run_purge().await;
    assert_eq!(purged["status"], "completed", "{purged}");
    assert_eq!(purged["remaining"], 0, "{purged}");
    assert_eq!(count(app.pool(), EXPIRED).await, 0);
    sweep_until_every_email_is_sent(&app).await;
    assert_one_email_each(&app, &users).await;
}

const EXPIRED: &str = "select count(*) from users where deleted_at < now() - interval '30 days'";

/// Starts a purge and three deletions; stops the pooler once the purge has
/// booked its first batches, sends a deletion every 150 ms, and starts the
/// pooler again 6 s later: longer than a request waits for a connection (5 s).
async fn purge_and_burst_through_an_outage(
    app: &std::sync::Arc<AccountApp>,
    pooler: &mut PgBouncer,
    users: &[(uuid::Uuid, String)],
) -> (TestResponse, Vec<TestResponse>) {
    let purge = app.purge.clone();
    let purge_run =
        tokio::spawn(
            async move { read(purge.handle(cron_request(http::Method::GET, "")).await).await },
        );
    let mut burst = tokio::task::JoinSet::new();
    let mut started = None;
    for (i, (_, session)) in users.iter().enumerate() {
        if i == 3 {
            while count(
                app.pool(),
                "select coalesce(sum(deleted), 0)::int8 from account_deletion.purge_run_workers",
            )
            .await
                == 0
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            pooler.stop();
            started = Some(Instant::now());
        }
        let (app, session) = (app.clone(), session.clone());
        burst.spawn(async move { (i, app.delete_with(&session).await) });
        if let Some(started) = started {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if started.elapsed() > Duration::from_secs(6) && pooler_down(pooler) {
                pooler.restart();
            }
        }
    }
    if pooler_down(pooler) {
        pooler.restart();
    }
    let mut answers = burst.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    let answers = answers.into_iter().map(|(_, answer)| answer).collect();
    (purge_run.await.unwrap(), answers)
}

fn assert_generic_5xx_while_down(answers: &[TestResponse]) {
    for answer in answers {
        match answer.status {
            StatusCode::ACCEPTED => {}
            status if status.is_server_error() => {
                // Generic: the contract's error body, no internals.
                let code = answer.error_code();
                assert!(
                    code == "service_unavailable" || code == "internal_error",
                    "{code}"
                );
                let text = answer.text().to_lowercase();
                for internal in ["pgbouncer", "sql", "127.0.0.1", "connection refused"] {
                    assert!(!text.contains(internal), "{text}");
                }
            }
            status => panic!("unexpected {status}: {}", answer.text()),
        }
    }
    let statuses: Vec<_> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert!(
        statuses.iter().any(|s| *s >= 500),
        "the pooler was down for 6 s: {statuses:?}"
    );
    assert!(
        statuses.contains(&202),
        "and up before and after: {statuses:?}"
    );
}

async fn sweep_until_every_email_is_sent(app: &AccountApp) {
    let started = Instant::now();
    loop {
        // Retries are due in a minute; bring them forward. Rows still
        // claimed are being sent (or their sending recorded) right now, and
        // are left to their sender, as the sweep leaves them.
        sqlx::query(
            "update account_deletion.email_outbox set next_attempt_at = now()
             where status = 'pending' and claimed_until is null",
        )
        .execute(app.pool())
        .await
        .unwrap();
        // Past every sender's retry window (12.7 s), a row still claimed has
        // no sender: its request committed, then lost its connection before
        // answering (a 503 for a deletion that happened). Its claim would run
        // out after two minutes and the sweep would send it; let that time
        // pass.
        if started.elapsed() > Duration::from_secs(14) {
            sqlx::query(
                "update account_deletion.email_outbox set claimed_until = now() - interval '1 second'
                 where status = 'pending' and claimed_until is not null",
            )
            .execute(app.pool())
            .await
            .unwrap();
        }
        app.run_sweep().await;
        let pending = count(
            app.pool(),
            "select count(*) from account_deletion.email_outbox where status = 'pending'",
        )
        .await;
        if pending == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{pending} emails never went out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every account deleted got exactly one recovery email: none lost, none
/// sent twice.
async fn assert_one_email_each(app: &AccountApp, users: &[(uuid::Uuid, String)]) {
    let mail = app.smtp.received();
    for (user_id, _) in users {
        let email: String = sqlx::query_scalar("select email from users where id = $1")
            .bind(user_id)
            .fetch_one(app.pool())
            .await
            .unwrap();
        let to_user = mail
            .iter()
            .filter(|m| m.to.iter().any(|t| t.contains(&email)))
            .count();
        assert_eq!(to_user, 1, "{email}: {to_user} emails");
    }
}

fn pooler_down(pooler: &PgBouncer) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", pooler.port())).is_err()
}
