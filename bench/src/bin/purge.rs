//! Purge throughput against PostgreSQL's own limit, and how gently it runs.
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release -p account-deletion-bench --bin purge -- --expired 1000000 --runs 3
//! cargo run --release -p account-deletion-bench --bin purge -- --expired 20000 --runs 1   # quick
//! ```
//!
//! One template database holds `--expired` expired and as many active users,
//! with five child rows each across two app tables (`ON DELETE CASCADE`,
//! indexed). Every measured run gets an identical copy. Variants, alternating
//! within each round: (a) the single `DELETE` Prisma's `deleteMany` sends,
//! (b) our purge through the library with 1, 2 and 4 workers, (c) our purge
//! through the real function binary over HTTP with its default settings,
//! (d) the same through a PgBouncer in transaction mode (pool of 5, the
//! function's own pool size), as on Supabase or Neon; (e) and (f): (c) and
//! (d) with account events on, sent to a receiver that verifies every
//! signature (`account_deletion_bench::receiver`). During every
//! variant four connections run single-row `UPDATE`s on active users; their
//! latency is the "gentleness" figure. Prints a Markdown report; writes the
//! chart of batch latency to `--chart` (default `bench/purge-batches.svg`).
//! With `DATABASE_URL` set, the data template is kept between runs of the
//! same scale. `--holds N` puts N active accounts on hold in every copy;
//! variant (h) is (c) with them (10,000 unless `--holds` says) on its copy
//! only, for a paired comparison.
//! `--blocked P` gives P% of the expired accounts an invoice by a key
//! without a delete action, which the function then leaves (c) or, as
//! variant (g), anonymizes (`ERASE_BLOCKED=anonymize`); the single
//! `DELETE` (a) cannot run on such data.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use account_deletion::config::{PurgeSettings, RetentionDays};
use account_deletion::platform::db;
use account_deletion::schema::migrate;
use account_deletion_bench::{arg, median_f64, ms, percentile, release_binary};
use sqlx::{Connection, PgConnection, PgPool};

const CRON_SECRET: &str = "benchmark-cron-secret-0123456789";
const DATA_TEMPLATE: &str = "bench_purge_data";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    SingleDelete,
    Library(u32),
    Http,
    HttpPooled,
    /// (c) or (d) with a webhook: every purged id goes out as an event.
    HttpEvents {
        pooled: bool,
    },
    /// (c) with `ERASE_BLOCKED=anonymize` (on data with `--blocked`).
    HttpAnonymize,
    /// (c) on a copy with `--holds` (10,000 by default) active accounts held.
    HttpHolds,
}

impl Variant {
    /// The order of the report's rows.
    const REPORTED: [Self; 10] = [
        Self::SingleDelete,
        Self::Library(1),
        Self::Library(2),
        Self::Library(4),
        Self::Http,
        Self::HttpPooled,
        Self::HttpEvents { pooled: false },
        Self::HttpEvents { pooled: true },
        Self::HttpAnonymize,
        Self::HttpHolds,
    ];

    fn label(self) -> String {
        match self {
            Self::SingleDelete => "(a) single DELETE".to_owned(),
            Self::Library(w) => format!("(b) library, {w} worker{}", if w == 1 { "" } else { "s" }),
            Self::Http => "(c) function over HTTP".to_owned(),
            Self::HttpPooled => "(d) (c) through PgBouncer".to_owned(),
            Self::HttpEvents { pooled: false } => "(e) (c) with webhooks".to_owned(),
            Self::HttpEvents { pooled: true } => "(f) (d) with webhooks".to_owned(),
            Self::HttpAnonymize => "(g) (c) anonymizing the blocked".to_owned(),
            Self::HttpHolds => "(h) (c) with accounts held".to_owned(),
        }
    }

    fn key(self) -> String {
        match self {
            Self::SingleDelete => "a".to_owned(),
            Self::Library(w) => format!("b{w}"),
            Self::Http => "c".to_owned(),
            Self::HttpPooled => "d".to_owned(),
            Self::HttpEvents { pooled: false } => "e".to_owned(),
            Self::HttpEvents { pooled: true } => "f".to_owned(),
            Self::HttpAnonymize => "g".to_owned(),
            Self::HttpHolds => "h".to_owned(),
        }
    }
}

struct Measurement {
    variant: Variant,
    seconds: f64,
    deleted: u64,
    batches: Vec<Duration>,
    updates: Vec<Duration>,
    /// With `--vacuum`: the `VACUUM` the purge left behind, timed after it.
    vacuum_seconds: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let expired: i64 = arg("--expired", 20_000);
    let runs: usize = arg("--runs", 1);
    // Holds on that many active accounts, in every copy (`--holds N`) or
    // in (h)'s only: every purge batch then looks each candidate up among
    // them, and deletes as much as without.
    let holds: i64 = arg("--holds", 0);
    let holds_of_h: i64 = if holds > 0 { holds } else { 10_000 };
    // That percentage of the expired accounts has an invoice, by a key
    // without a delete action: the purge leaves them (`--erase-blocked
    // wait`, the default) or anonymizes them (`anonymize`). The single
    // DELETE (a) cannot run on such data.
    let blocked_percent: i64 = arg("--blocked", 0);
    let blocked = expired * blocked_percent / 100;
    let chart: String = arg("--chart", "bench/purge-batches.svg".to_owned());
    let server = account_deletion_bench::server();

    let started = Instant::now();
    build_template(server, expired, blocked_percent).await?;
    eprintln!(
        "template: {expired} expired + {expired} active users, 5 child rows each, in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let all = [
        Variant::SingleDelete,
        Variant::Library(1),
        Variant::Http,
        Variant::Library(2),
        Variant::HttpPooled,
        Variant::Library(4),
        Variant::HttpEvents { pooled: false },
        Variant::HttpEvents { pooled: true },
        Variant::HttpAnonymize,
        Variant::HttpHolds,
    ];
    // `--variants a,c,d` runs a subset; (e), (f), (g) and (h) only when asked for.
    let chosen: String = arg("--variants", "a,b1,c,b2,d,b4".to_owned());
    let variants: Vec<Variant> = all
        .into_iter()
        .filter(|v| chosen.split(',').any(|c| c == v.key()))
        .collect();
    let mut results: Vec<Measurement> = Vec::new();
    for round in 0..runs {
        // Every other round in the reverse order: the one measured after
        // another runs while the server still writes out what that one
        // did, which must not count against the same variant every time.
        let order: Vec<Variant> = if round % 2 == 0 {
            variants.clone()
        } else {
            variants.iter().rev().copied().collect()
        };
        for &variant in &order {
            let name = format!("bench_run_{round}_{}", results.len());
            server.drop_database(&name).await;
            // A file copy: seconds for gigabytes, where a WAL-logged copy
            // would take minutes with fsync on.
            server
                .execute_admin(&format!(
                    r#"create database "{name}" template "{DATA_TEMPLATE}" strategy file_copy"#
                ))
                .await;
            if holds > 0 || variant == Variant::HttpHolds {
                hold_accounts(server, &name, holds_of_h).await?;
            }
            let measurement = measure(server, &name, variant).await?;
            assert_eq!(
                measurement.deleted,
                (expired - blocked) as u64,
                "{variant:?} deleted every expired account that nothing keeps"
            );
            if blocked > 0 {
                let anonymized = anonymized_in(server, &name).await?;
                let expected = if variant == Variant::HttpAnonymize {
                    blocked
                } else {
                    0
                };
                assert_eq!(
                    anonymized, expected,
                    "{variant:?} anonymized the blocked accounts"
                );
                eprintln!("  anonymized {anonymized} blocked accounts");
            }
            eprintln!(
                "round {round}: {:<26} {:>8.2} s  {:>9.0} rows/s{}",
                variant.label(),
                measurement.seconds,
                measurement.deleted as f64 / measurement.seconds,
                measurement
                    .vacuum_seconds
                    .map(|v| format!("  then VACUUM {v:.2} s"))
                    .unwrap_or_default()
            );
            server.drop_database(&name).await;
            results.push(measurement);
        }
    }
    report(&results, expired, runs, &chart)?;
    Ok(())
}

/// Builds the data template, or keeps the one a previous run on the same
/// server (`DATABASE_URL`) built for this scale and these migrations.
async fn build_template(
    server: &testkit::postgres::Server,
    expired: i64,
    blocked_percent: i64,
) -> anyhow::Result<()> {
    // The migrations' versions and contents: an edited migration (an index
    // added, a default changed) must not reuse a template built before.
    let schema = migrate::MIGRATOR
        .iter()
        .fold(String::new(), |mut schema, m| {
            use std::fmt::Write;
            let _ = write!(schema, "{}:", m.version);
            for byte in &m.checksum[..4] {
                let _ = write!(schema, "{byte:02x}");
            }
            schema.push(' ');
            schema
        });
    let label = format!(
        "bench data: expired={expired} blocked={blocked_percent}% schema={}",
        schema.trim_end()
    );
    let mut admin = PgConnection::connect_with(&server.options("postgres")).await?;
    let existing: Option<String> = sqlx::query_scalar(
        "select shobj_description(oid, 'pg_database') from pg_database where datname = $1",
    )
    .bind(DATA_TEMPLATE)
    .fetch_optional(&mut admin)
    .await?
    .flatten();
    if existing.as_deref() == Some(label.as_str()) {
        eprintln!("template: reusing {DATA_TEMPLATE} ({label})");
        return Ok(());
    }
    server.drop_database(DATA_TEMPLATE).await;
    server
        .create_database(DATA_TEMPLATE, Some(&server.template_name()))
        .await;
    let mut conn = PgConnection::connect_with(&server.options(DATA_TEMPLATE)).await?;
    // As in a real user base: deleted accounts are spread over the heap and
    // over a year of deletion dates (index order is not heap order), and an
    // account's child rows were written over its lifetime, so they are
    // scattered over their tables rather than stored next to each other in
    // user order (which would favour any plan that happens to visit users
    // in heap order).
    sqlx::query(
        "insert into users (email, created_at, deleted_at)
         select 'user' || g || '@bench.test', now() - interval '2 years',
                case when g % 2 = 0 then now() - interval '31 days' - random() * interval '365 days' end
         from generate_series(1, 2 * $1) g",
    )
    .bind(expired)
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql(
        "create table orders (
             id bigint generated always as identity primary key,
             user_id uuid not null,
             total_cents integer not null,
             created_at timestamptz not null default now()
         );
         create table notes (
             id bigint generated always as identity primary key,
             user_id uuid not null,
             body text not null,
             created_at timestamptz not null default now()
         );
         insert into orders (user_id, total_cents)
         select id, 1999 from users, generate_series(1, 3) order by random();
         insert into notes (user_id, body)
         select id, 'a note about this account' from users, generate_series(1, 2) order by random();
         create index orders_user_id_idx on orders (user_id);
         create index notes_user_id_idx on notes (user_id);
         alter table orders add constraint orders_user_id_fkey foreign key (user_id) references users (id) on delete cascade;
         alter table notes add constraint notes_user_id_fkey foreign key (user_id) references users (id) on delete cascade;",
    )
    .execute(&mut conn)
    .await?;
    if blocked_percent > 0 {
        // Invoices the law says to keep, for every n-th expired account.
        sqlx::raw_sql(
            "create table invoices (
                 id bigint generated always as identity primary key,
                 user_id uuid not null constraint invoices_user_id_fkey references users (id),
                 total_cents integer not null
             )",
        )
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "insert into invoices (user_id, total_cents)
             select id, 4999 from (
                 select id, row_number() over (order by id) as n from users where deleted_at is not null
             ) expired
             where n % (100 / $1) = 0",
        )
        .bind(blocked_percent)
        .execute(&mut conn)
        .await?;
        sqlx::raw_sql("create index invoices_user_id_idx on invoices (user_id)")
            .execute(&mut conn)
            .await?;
    }
    // Each on its own: neither runs inside a transaction block.
    sqlx::raw_sql("vacuum analyze").execute(&mut conn).await?;
    sqlx::raw_sql("checkpoint").execute(&mut conn).await?;
    conn.close().await?;
    sqlx::query(&format!(
        r#"comment on database "{DATA_TEMPLATE}" is '{label}'"#
    ))
    .execute(&mut admin)
    .await?;
    Ok(())
}

/// How many accounts a run anonymized.
async fn anonymized_in(server: &testkit::postgres::Server, database: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect_with(&server.options(database)).await?;
    let anonymized = sqlx::query_scalar("select count(*) from account_deletion.anonymized")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(anonymized)
}

/// `count` active accounts on hold, as support would place them.
async fn hold_accounts(
    server: &testkit::postgres::Server,
    database: &str,
    count: i64,
) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&server.options(database)).await?;
    sqlx::query(
        "insert into account_deletion.holds (user_id, reason)
         select id::text, 'bench' from users where deleted_at is null limit $1",
    )
    .bind(count)
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("analyze account_deletion.holds")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

async fn measure(
    server: &testkit::postgres::Server,
    database: &str,
    variant: Variant,
) -> anyhow::Result<Measurement> {
    let options = server.options(database);
    let active = warm(&options).await?;

    let receiver = match variant {
        Variant::HttpEvents { .. } => Some(
            account_deletion_bench::receiver::Receiver::start(testkit::webhook_receiver::SECRET)
                .await?,
        ),
        _ => None,
    };
    let webhook = receiver
        .as_ref()
        .map(account_deletion_bench::receiver::Receiver::url);

    let stop = Arc::new(AtomicBool::new(false));
    let update_streams = start_update_streams(&options, &active, &stop).await?;

    let started = Instant::now();
    let (deleted, batches) = match variant {
        Variant::SingleDelete => {
            let mut conn = PgConnection::connect_with(&options).await?;
            // Exactly what `prisma.user.deleteMany({ where: { deletedAt: { lte: cutoff } } })` sends.
            let deleted = sqlx::query(r#"DELETE FROM "users" WHERE "deleted_at" <= $1"#)
                .bind(chrono_cutoff(&mut conn).await?)
                .execute(&mut conn)
                .await?
                .rows_affected();
            (deleted, Vec::new())
        }
        Variant::Library(workers) => {
            let settings = PurgeSettings {
                time_budget: Duration::from_hours(1),
                workers: NonZeroU32::new(workers).unwrap(),
                ..batch_settings()
            };
            let pool = db::lazy_pool(options.clone(), workers + 1);
            let tables = account_deletion::schema::sql::AppTables::new(
                account_deletion::schema::UsersTable::default_names(),
                None,
            );
            let mut deleted = 0;
            let mut batches = Vec::new();
            loop {
                let outcome = account_deletion::lifecycle::purge::run(
                    &pool,
                    &tables,
                    RetentionDays::DEFAULT,
                    settings,
                    false,
                )
                .await?;
                deleted += outcome.deleted;
                batches.extend(outcome.batch_latencies);
                if outcome.remaining == 0 {
                    break;
                }
            }
            pool.close().await;
            (deleted, batches)
        }
        Variant::Http | Variant::HttpHolds | Variant::HttpEvents { pooled: false } => {
            let url = server.url(database);
            http_purge(&url, webhook.as_deref(), "wait").await?
        }
        Variant::HttpAnonymize => {
            let url = server.url(database);
            http_purge(&url, None, "anonymize").await?
        }
        Variant::HttpPooled | Variant::HttpEvents { pooled: true } => {
            let pooler =
                testkit::pgbouncer::PgBouncer::start_with_pool(options.get_port(), FUNCTION_POOL);
            let url = format!(
                "postgres://{}@127.0.0.1:{}/{database}",
                options.get_username(),
                pooler.port()
            );
            http_purge(&url, webhook.as_deref(), "wait").await?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(receiver) = &receiver {
        every_id_arrived(receiver, deleted)?;
    }
    let mut updates = Vec::new();
    for task in update_streams {
        updates.extend(task.await?);
    }
    let vacuum_seconds = if arg("--vacuum", false) {
        Some(vacuum_left_behind(&options).await?)
    } else {
        None
    };
    Ok(Measurement {
        variant,
        seconds,
        deleted,
        batches,
        updates,
        vacuum_seconds,
    })
}

/// Warms the cache the same way for every variant; 10,000 active users for
/// the concurrent updates.
async fn warm(options: &sqlx::postgres::PgConnectOptions) -> anyhow::Result<Vec<uuid::Uuid>> {
    let pool = PgPool::connect_with(options.clone()).await?;
    sqlx::raw_sql(
        "select count(*) from users; select count(*) from orders; select count(*) from notes;",
    )
    .execute(&pool)
    .await?;
    let active: Vec<uuid::Uuid> = sqlx::query_scalar(
        "select id from users where deleted_at is null order by random() limit 10000",
    )
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    Ok(active)
}

/// Every purged id arrived, in a verified event, before the answer.
fn every_id_arrived(
    receiver: &account_deletion_bench::receiver::Receiver,
    deleted: u64,
) -> anyhow::Result<()> {
    let (requests, verified, ids) = receiver.counts();
    anyhow::ensure!(
        ids == deleted && verified == requests,
        "the receiver verified {verified} of {requests} requests, naming {ids} of {deleted} purged ids"
    );
    eprintln!("  {requests} account.purged events, {ids} ids");
    Ok(())
}

/// Four connections, each running a single-row `UPDATE` on a random active
/// user every 5 ms until `stop`; each returns its latencies.
async fn start_update_streams(
    options: &sqlx::postgres::PgConnectOptions,
    active: &[uuid::Uuid],
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<Vec<Duration>>>> {
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut conn = PgConnection::connect_with(options).await?;
        let (stop, ids) = (Arc::clone(stop), active.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut k = i * 7919;
            while !stop.load(Ordering::Relaxed) {
                let id = ids[k % ids.len()];
                k += 13;
                let t = Instant::now();
                sqlx::query("update users set email = email where id = $1")
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .expect("update");
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        }));
    }
    Ok(tasks)
}

/// A single DELETE leaves all its dead rows to VACUUM; committed batches let
/// autovacuum start on them during the purge. `--vacuum true` times what is
/// left afterwards, so the two can be compared on the total work.
async fn vacuum_left_behind(options: &sqlx::postgres::PgConnectOptions) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect_with(options).await?;
    let started = Instant::now();
    sqlx::raw_sql("vacuum users, orders, notes")
        .execute(&mut conn)
        .await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn chrono_cutoff(
    conn: &mut PgConnection,
) -> anyhow::Result<sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>> {
    Ok(sqlx::query_scalar("select now() - interval '30 days'")
        .fetch_one(conn)
        .await?)
}

/// Server connections the bench's PgBouncer keeps per database: as many as
/// the function's own pool (`PURGE_WORKERS` + 1, at most 5 here), so (d)
/// measures the pooler, not a smaller pool.
const FUNCTION_POOL: u32 = 5;

/// The release binary with its default settings (except for a budget that
/// lets one run finish), called the way Vercel Cron calls it, repeated while
/// it answers `partial`.
async fn http_purge(
    database_url: &str,
    webhook: Option<&str>,
    erase_blocked: &str,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    /// Stops the function however this run ends (an error included).
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let port = testkit::free_port();
    let mut command = std::process::Command::new(release_binary("cron-permanent-delete-users"));
    command.env_clear();
    command.env("ERASE_BLOCKED", erase_blocked);
    if let Some(url) = webhook {
        command
            .env("WEBHOOK_URL", url)
            .env("WEBHOOK_SECRET", testkit::webhook_receiver::SECRET);
    }
    let child = command
        .env("VERCEL_DEV_PORT", port.to_string())
        .env("DATABASE_URL", database_url)
        .env("CRON_SECRET", CRON_SECRET)
        .env("PURGE_TIME_BUDGET_SECS", "780")
        .env("PURGE_BATCH_SIZE", batch_settings().batch_size.to_string())
        .env(
            "PURGE_BATCH_TARGET_MS",
            batch_settings()
                .batch_target
                .map_or(0, |t| t.as_millis())
                .to_string(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let _stop = Stop(child);
    while testkit::http_client::send(port, "GET", "/_vercel/ping", &[], b"")
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut deleted = 0;
    let (started, mut purging) = (Instant::now(), Duration::ZERO);
    loop {
        let body = cron_purge(port).await?;
        deleted += body["deleted"].as_u64().unwrap_or(0);
        purging += Duration::from_millis(body["duration_ms"].as_u64().unwrap_or(0));
        if body["status"] != "partial" {
            break;
        }
    }
    // The runs' own figure against the whole answer: the rest is sending
    // the events (and the final count, and HTTP).
    eprintln!(
        "  purge {:.2} s, then {:.2} s",
        purging.as_secs_f64(),
        started.elapsed().saturating_sub(purging).as_secs_f64()
    );
    // What the next daily run costs once the backlog is gone: it walks
    // past what this one left (blocked or anonymized accounts).
    let later = cron_purge(port).await?;
    eprintln!(
        "  the next run: {} ms, {} deleted, {} blocked, {} anonymized (this run)",
        later["duration_ms"], later["deleted"], later["blocked"], later["anonymized"]
    );
    Ok((deleted, Vec::new()))
}

/// One purge run, as Vercel Cron calls it; its answer.
async fn cron_purge(port: u16) -> anyhow::Result<serde_json::Value> {
    let auth = format!("Bearer {CRON_SECRET}");
    let answer = testkit::http_client::send_waiting(
        port,
        "GET",
        "/api/cron/permanent-delete-users",
        &[("authorization", &auth), ("user-agent", "vercel-cron/1.0")],
        b"",
        Duration::from_mins(15),
    )
    .await?;
    anyhow::ensure!(
        answer.status == 200,
        "purge answered {}: {}",
        answer.status,
        answer.body
    );
    Ok(answer.json())
}

fn report(results: &[Measurement], expired: i64, runs: usize, chart: &str) -> anyhow::Result<()> {
    let median_seconds = |variant| median_of(results, variant, |m| Some(m.seconds));
    let limit = median_seconds(Variant::SingleDelete);
    println!(
        "\n### Purge throughput: {expired} expired + {expired} active users, 5 child rows each (median of {runs})\n"
    );
    println!("| variant | seconds | rows/s | ÷ (a) |");
    println!("| --- | ---: | ---: | ---: |");
    for variant in Variant::REPORTED {
        let s = median_seconds(variant);
        if s > 0.0 {
            println!(
                "| {} | {s:.2} | {:.0} | {:.2} |",
                variant.label(),
                expired as f64 / s,
                s / limit
            );
        }
    }
    report_ratio(
        results,
        Variant::HttpPooled,
        Variant::Http,
        "through the pooler ÷ direct",
    );
    report_ratio(
        results,
        Variant::Http,
        Variant::SingleDelete,
        "over HTTP ÷ single DELETE",
    );
    report_ratio(
        results,
        Variant::HttpEvents { pooled: false },
        Variant::Http,
        "with webhooks ÷ without",
    );
    report_ratio(
        results,
        Variant::HttpEvents { pooled: true },
        Variant::HttpPooled,
        "with webhooks ÷ without, through the pooler",
    );

    report_vacuum(results, runs);
    report_batches(results);
    if let Some(first) = results.iter().find(|m| m.variant == Variant::Library(1)) {
        let mut slowest: Vec<(usize, Duration)> =
            first.batches.iter().copied().enumerate().collect();
        slowest.sort_by_key(|&(_, d)| std::cmp::Reverse(d));
        let listed: Vec<String> = slowest
            .iter()
            .take(8)
            .map(|(i, d)| format!("#{i} {:.0} ms", ms(*d)))
            .collect();
        println!(
            "\nSlowest batches of the first 1-worker purge (of {}): {}",
            first.batches.len(),
            listed.join(", ")
        );
        draw_chart(&first.batches, chart)?;
        println!("\nChart of batch latency over one purge (1 worker): `{chart}`");
    }
    Ok(())
}

/// `top ÷ bottom`, of the medians and round by round (the n-th run of one
/// against the n-th of the other), when both ran.
fn report_ratio(results: &[Measurement], top: Variant, bottom: Variant, what: &str) {
    let seconds = |variant| {
        results
            .iter()
            .filter(|m| m.variant == variant)
            .map(|m| m.seconds)
            .collect::<Vec<_>>()
    };
    let (tops, bottoms) = (seconds(top), seconds(bottom));
    if tops.is_empty() || bottoms.is_empty() {
        return;
    }
    let per_round: Vec<String> = tops
        .iter()
        .zip(&bottoms)
        .map(|(t, b)| format!("{:.2}", t / b))
        .collect();
    println!(
        "\n{} ÷ {} {what}: {:.2} (medians); per round {}",
        top.key(),
        bottom.key(),
        median_f64(&tops) / median_f64(&bottoms),
        per_round.join(" / ")
    );
}

/// The median over the rounds of one variant's figure (rounds without it
/// left out).
fn median_of(
    results: &[Measurement],
    variant: Variant,
    figure: impl Fn(&Measurement) -> Option<f64>,
) -> f64 {
    median_f64(
        &results
            .iter()
            .filter(|m| m.variant == variant)
            .filter_map(figure)
            .collect::<Vec<_>>(),
    )
}

/// With `--vacuum true`: purge plus the VACUUM it left, per variant.
fn report_vacuum(results: &[Measurement], runs: usize) {
    if !results.iter().any(|m| m.vacuum_seconds.is_some()) {
        return;
    }
    let median_total = |variant| {
        median_of(results, variant, |m| {
            m.vacuum_seconds.map(|v| m.seconds + v)
        })
    };
    let limit_total = median_total(Variant::SingleDelete);
    println!("\n### Including the VACUUM each leaves behind (median of {runs})\n");
    println!("| variant | purge + VACUUM seconds | ÷ (a) |");
    println!("| --- | ---: | ---: |");
    for variant in Variant::REPORTED {
        let total = median_total(variant);
        if total > 0.0 {
            println!(
                "| {} | {total:.2} | {:.2} |",
                variant.label(),
                total / limit_total
            );
        }
    }
}

/// Batch latency per worker count, and the concurrent updates per variant,
/// for the variants that ran.
fn report_batches(results: &[Measurement]) {
    let library_ran = results
        .iter()
        .any(|m| matches!(m.variant, Variant::Library(_)));
    if library_ran {
        println!("\n### Batch latency ({})\n", batch_sizing());
        println!("| variant | batches | p50 ms | p99 ms | max ms | last tenth ÷ first tenth |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    }
    for workers in [1, 2, 4] {
        let runs: Vec<&Measurement> = results
            .iter()
            .filter(|m| m.variant == Variant::Library(workers))
            .collect();
        if runs.is_empty() {
            continue;
        }
        let all: Vec<Duration> = runs
            .iter()
            .flat_map(|m| m.batches.iter().copied())
            .collect();
        let drift = median_f64(
            &runs
                .iter()
                .map(|m| tenth_ratio(&m.batches))
                .collect::<Vec<_>>(),
        );
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {drift:.2} |",
            Variant::Library(workers).label(),
            all.len() / runs.len().max(1),
            ms(percentile(&all, 50.0)),
            ms(percentile(&all, 99.0)),
            ms(percentile(&all, 100.0)),
        );
    }

    println!("\n### Concurrent single-row UPDATEs on active users (4 connections)\n");
    println!("| while | updates | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for variant in Variant::REPORTED {
        let all: Vec<Duration> = results
            .iter()
            .filter(|m| m.variant == variant)
            .flat_map(|m| m.updates.iter().copied())
            .collect();
        if !results.iter().any(|m| m.variant == variant) {
            continue;
        }
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            variant.label(),
            all.len(),
            ms(percentile(&all, 50.0)),
            ms(percentile(&all, 99.0)),
            ms(percentile(&all, 100.0)),
        );
    }
}

/// The default batch sizing, or `--batch-size` (the largest batch) and
/// `--batch-target-ms` (0: fixed-size batches) to compare others.
fn batch_settings() -> PurgeSettings {
    let defaults = PurgeSettings::default();
    let target_ms: u64 = arg(
        "--batch-target-ms",
        defaults.batch_target.map_or(0, |t| t.as_millis() as u64),
    );
    PurgeSettings {
        batch_size: arg("--batch-size", defaults.batch_size),
        batch_target: (target_ms > 0).then(|| Duration::from_millis(target_ms)),
        ..defaults
    }
}

/// The batch sizing measured, in words.
fn batch_sizing() -> String {
    let settings = batch_settings();
    match settings.batch_target {
        Some(target) => format!(
            "batches sized for {} ms, at most {} users",
            target.as_millis(),
            settings.batch_size
        ),
        None => format!("{} users per batch", settings.batch_size),
    }
}

/// Mean of the last tenth of batches over the mean of the first tenth.
fn tenth_ratio(batches: &[Duration]) -> f64 {
    let tenth = (batches.len() / 10).max(1);
    if batches.len() < 2 * tenth {
        return 1.0;
    }
    let mean = |s: &[Duration]| s.iter().map(Duration::as_secs_f64).sum::<f64>() / s.len() as f64;
    mean(&batches[batches.len() - tenth..]) / mean(&batches[..tenth])
}

fn draw_chart(batches: &[Duration], path: &str) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let points: Vec<(f64, f64)> = batches
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64, ms(*d)))
        .collect();
    let max_ms = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Purge batch latency, 1 worker ({})", batch_sizing()),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..points.len().max(1) as f64, 0.0..max_ms)?;
    chart.configure_mesh().x_desc("batch").y_desc("ms").draw()?;
    chart.draw_series(points.iter().map(|p| Circle::new(*p, 1, BLUE.filled())))?;
    root.present()?;
    Ok(())
}
