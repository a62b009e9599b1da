//! Years of history: what a daily run costs on a database that has kept
//! accounts for years, against an empty one, the same functions over HTTP,
//! side by side in one run.
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release -p account-deletion-bench --bin history -- --scale 1 --rounds 3
//! cargo run --release -p account-deletion-bench --bin history -- --scale 10 --rounds 3
//! cargo run --release -p account-deletion-bench --bin history -- --scale 1 --rounds 1 --mass-ban 0   # quick
//! ```
//!
//! The grown database holds, times `--scale`: 1,000,000 active accounts,
//! 100,000 expired accounts an invoice keeps (`ON DELETE RESTRICT`,
//! deleted 31 to 400 days ago), 10,000 expired accounts on hold and
//! 200,000 the app soft-deleted itself days ago; the purge and the mail
//! cron have run on it once, as they would every day. Its anonymizing
//! twin has the kept accounts anonymized (`ERASE_BLOCKED=anonymize`:
//! anonymized rows waiting for their last reference). The empty database
//! has the same schema (the invoices table included) and nothing in it.
//! Both hold 100 more active accounts with mixed-case addresses, for the
//! look-ups.
//!
//! Each round copies each database afresh (in alternating order), starts
//! the functions on the copy and measures, over HTTP: a purge with no new
//! work, the mail cron's sweep, `/api/status` (median of 5), support's
//! look-up by an address in another case and by id (medians of 20), and a
//! purge of 5,000 accounts that expired since the last run. Then, on empty
//! copies: a purge of `--mass-ban` (200,000) accounts deleted in one
//! `UPDATE` (one timestamp) against as many with distinct timestamps.
//! Figures are medians over `--rounds`. `--anonymize no` leaves out the
//! anonymizing twin (whose first run anonymizes every kept account, about
//! 600 a second here); `--keep yes` leaves the databases on the server for
//! a closer look.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use account_deletion_bench::{arg, ms, start};
use sqlx::{Connection, PgConnection};
use testkit::http_client::{send, send_waiting};

const CRON_SECRET: &str = "benchmark-cron-secret-0123456789";
const ADMIN_SECRET: &str = "benchmark-admin-secret-0123456789abcdef";
const EMPTY: &str = "bench_history_empty";
const GROWN: &str = "bench_history_grown";
const ANONYMIZED: &str = "bench_history_anonymized";
const COPY: &str = "bench_history_copy";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EraseBlocked {
    Wait,
    Anonymize,
}

impl EraseBlocked {
    fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Anonymize => "anonymize",
        }
    }
}

/// One copy's figures, in milliseconds.
#[derive(Debug, Default, Clone)]
struct Figures {
    purge_no_work: f64,
    sweep: f64,
    status: f64,
    by_id: f64,
    by_address: f64,
    purge_new: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scale: i64 = arg("--scale", 1);
    let rounds: usize = arg("--rounds", 3);
    let mass_ban: i64 = arg("--mass-ban", 200_000);
    let anonymize = arg("--anonymize", "yes".to_owned()) == "yes";
    let server = account_deletion_bench::server();

    let building = Instant::now();
    build_empty(server).await?;
    build_grown(server, scale, anonymize).await?;
    println!(
        "built the databases (scale {scale}) in {:.0} s",
        building.elapsed().as_secs_f64()
    );
    let mut sizes = String::new();
    let grown_databases: &[&str] = if anonymize {
        &[GROWN, ANONYMIZED]
    } else {
        &[GROWN]
    };
    for database in grown_databases {
        let mut conn = PgConnection::connect_with(&server.options(database)).await?;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "select c.relnamespace::regnamespace || '.' || c.relname, c.reltuples::int8,
                    pg_total_relation_size(c.oid)
             from pg_class c
             where c.relkind = 'r' and c.relnamespace::regnamespace::text in ('public', 'account_deletion')
               and pg_total_relation_size(c.oid) > 100000
             order by 3 desc",
        )
        .fetch_all(&mut conn)
        .await?;
        for (table, tuples, bytes) in rows {
            let _ = writeln!(
                sizes,
                "| {database} | {table} | {tuples} | {:.1} |",
                bytes as f64 / 1e6
            );
        }
    }

    let mut results: Vec<(EraseBlocked, Vec<Figures>, Vec<Figures>)> = Vec::new();
    let modes: &[EraseBlocked] = if anonymize {
        &[EraseBlocked::Wait, EraseBlocked::Anonymize]
    } else {
        &[EraseBlocked::Wait]
    };
    for &erase in modes {
        let grown = match erase {
            EraseBlocked::Wait => GROWN,
            EraseBlocked::Anonymize => ANONYMIZED,
        };
        let (mut empty_figures, mut grown_figures) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [EMPTY, grown]
            } else {
                [grown, EMPTY]
            };
            for template in order {
                let figures = measure(server, template, erase).await?;
                println!("round {round} {} {template}: {figures:?}", erase.as_str());
                if template == EMPTY {
                    empty_figures.push(figures);
                } else {
                    grown_figures.push(figures);
                }
            }
        }
        results.push((erase, empty_figures, grown_figures));
    }

    let mut bans = Vec::new();
    if mass_ban > 0 {
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            let mut pair = [0.0, 0.0];
            for one_time in order {
                let took = purge_banned(server, mass_ban, one_time).await?;
                println!("round {round} mass ban, one timestamp {one_time}: {took:.0} ms");
                pair[usize::from(!one_time)] = took;
            }
            bans.push(pair);
        }
    }

    report(scale, rounds, &results, &bans, mass_ban, &sizes);
    if arg("--keep", String::new()).is_empty() {
        for database in [EMPTY, GROWN, ANONYMIZED, COPY] {
            server.drop_database(database).await;
        }
    } else {
        println!(
            "kept the databases on {}",
            server
                .url(GROWN)
                .rsplit_once('/')
                .map_or("", |(server, _)| server)
        );
    }
    Ok(())
}

/// The schema of every database here: ours, an invoices table whose rows
/// must outlive their user, and 100 accounts to look up.
async fn build_empty(server: &testkit::postgres::Server) -> anyhow::Result<()> {
    server.drop_database(EMPTY).await;
    server
        .create_database(EMPTY, Some(&server.template_name()))
        .await;
    let mut conn = PgConnection::connect_with(&server.options(EMPTY)).await?;
    sqlx::raw_sql(
        "create table invoices (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete restrict,
             amount_cents bigint not null default 1000
         );
         create index invoices_user_id_idx on invoices (user_id);
         insert into users (email)
         select 'Probe.' || g || '@Example.test' from generate_series(1, 100) g;",
    )
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("vacuum analyze").execute(&mut conn).await?;
    Ok(())
}

/// The grown database, and its anonymizing twin: years of history, then
/// the purge and the mail cron run once, as every day.
async fn build_grown(
    server: &testkit::postgres::Server,
    scale: i64,
    anonymize: bool,
) -> anyhow::Result<()> {
    server.drop_database(GROWN).await;
    server.create_database(GROWN, Some(EMPTY)).await;
    let mut conn = PgConnection::connect_with(&server.options(GROWN)).await?;
    let (active, blocked, held, app_deleted) = (
        1_000_000 * scale,
        100_000 * scale,
        10_000 * scale,
        200_000 * scale,
    );
    let seeding = Instant::now();
    sqlx::raw_sql(&format!(
        "insert into users (email)
         select 'active-' || g || '@example.test' from generate_series(1, {active}) g;
         -- Expired between 31 and 400 days ago, an invoice each.
         insert into users (email, deleted_at)
         select 'kept-' || g || '@example.test',
                now() - interval '31 days' - make_interval(secs => g * (369.0 * 86400 / {blocked}))
         from generate_series(1, {blocked}) g;
         insert into invoices (user_id) select id from users where email like 'kept-%';
         -- Expired and held.
         insert into users (email, deleted_at)
         select 'held-' || g || '@example.test',
                now() - interval '31 days' - make_interval(secs => g * (60.0 * 86400 / {held}))
         from generate_series(1, {held}) g;
         insert into account_deletion.holds (user_id, reason, since)
         select id::text, 'legal_hold', now() - interval '1 day' from users where email like 'held-%';
         -- Soft-deleted by the app (bans) in the last 20 days.
         insert into users (email, deleted_at)
         select 'banned-' || g || '@example.test',
                now() - interval '1 day' - make_interval(secs => g * (19.0 * 86400 / {app_deleted}))
         from generate_series(1, {app_deleted}) g;"
    ))
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("vacuum analyze").execute(&mut conn).await?;
    println!(
        "seeded {} users in {:.0} s",
        active + blocked + held + app_deleted,
        seeding.elapsed().as_secs_f64()
    );
    conn.close().await?;
    settle(server, GROWN, EraseBlocked::Wait).await?;

    server.drop_database(ANONYMIZED).await;
    if !anonymize {
        return Ok(());
    }
    copy(server, GROWN, ANONYMIZED).await?;
    settle(server, ANONYMIZED, EraseBlocked::Anonymize).await?;
    Ok(())
}

/// Runs the purge until it completes and the mail cron once on
/// `database`, as the days before would have.
async fn settle(
    server: &testkit::postgres::Server,
    database: &str,
    erase: EraseBlocked,
) -> anyhow::Result<()> {
    let functions = Functions::start(server, database, erase).await;
    let settling = Instant::now();
    loop {
        let answer = functions.purge().await?;
        if answer["status"] == "completed" {
            println!(
                "{database}: settled in {:.0} s: {answer}",
                settling.elapsed().as_secs_f64()
            );
            break;
        }
    }
    // And the mail cron until it has recorded every ban.
    while functions.sweep().await?["app_deletions_recorded"] != 0 {}
    drop(functions);
    let mut conn = PgConnection::connect_with(&server.options(database)).await?;
    sqlx::raw_sql("vacuum analyze").execute(&mut conn).await?;
    Ok(())
}

/// A file-level copy: much faster than the default strategy for large
/// databases.
async fn copy(
    server: &testkit::postgres::Server,
    template: &str,
    name: &str,
) -> anyhow::Result<()> {
    server.drop_database(name).await;
    server
        .execute_admin(&format!(
            r#"create database "{name}" template "{template}" strategy file_copy"#
        ))
        .await;
    Ok(())
}

/// The functions a day touches, started on one database.
struct Functions {
    purge: account_deletion_bench::Running,
    sweep: account_deletion_bench::Running,
    status: account_deletion_bench::Running,
    admin: account_deletion_bench::Running,
}

impl Functions {
    async fn start(
        server: &testkit::postgres::Server,
        database: &str,
        erase: EraseBlocked,
    ) -> Self {
        let env = [
            ("DATABASE_URL", server.url(database)),
            ("CRON_SECRET", CRON_SECRET.to_owned()),
            ("ADMIN_SECRET", ADMIN_SECRET.to_owned()),
            ("APP_URL", "https://app.example.test".to_owned()),
            ("MAIL_URL", "file:///tmp/bench-history-mail".to_owned()),
            ("MAIL_FROM", "no-reply@app.example.test".to_owned()),
            ("ERASE_BLOCKED", erase.as_str().to_owned()),
        ];
        let _ = std::fs::create_dir_all("/tmp/bench-history-mail");
        let functions = Self {
            purge: start("cron-permanent-delete-users", &env).0,
            sweep: start("cron-send-emails", &env).0,
            status: start("status", &env).0,
            admin: start("admin-accounts", &env).0,
        };
        for port in [
            functions.purge.port,
            functions.sweep.port,
            functions.status.port,
            functions.admin.port,
        ] {
            wait_until_serving(port).await;
        }
        functions
    }

    async fn purge(&self) -> anyhow::Result<serde_json::Value> {
        cron(self.purge.port, "/api/cron/permanent-delete-users").await
    }

    async fn sweep(&self) -> anyhow::Result<serde_json::Value> {
        cron(self.sweep.port, "/api/cron/send-emails").await
    }
}

async fn cron(port: u16, path: &str) -> anyhow::Result<serde_json::Value> {
    let auth = format!("Bearer {CRON_SECRET}");
    let answer = send_waiting(
        port,
        "GET",
        path,
        &[("authorization", &auth), ("user-agent", "vercel-cron/1.0")],
        b"",
        Duration::from_mins(15),
    )
    .await?;
    anyhow::ensure!(
        answer.status == 200,
        "{path}: {} {}",
        answer.status,
        answer.body
    );
    Ok(answer.json())
}

async fn wait_until_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(port, "GET", "/_vercel/ping", &[], b"").await.is_err() {
        assert!(Instant::now() < deadline, "the function did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One copy of `template`, the functions on it, and each figure.
async fn measure(
    server: &testkit::postgres::Server,
    template: &str,
    erase: EraseBlocked,
) -> anyhow::Result<Figures> {
    copy(server, template, COPY).await?;
    let functions = Functions::start(server, COPY, erase).await;
    let mut figures = Figures::default();

    let started = Instant::now();
    let answer = functions.purge().await?;
    figures.purge_no_work = ms(started.elapsed());
    anyhow::ensure!(
        answer["status"] == "completed" && answer["deleted"] == 0,
        "a purge with no new work: {answer}"
    );

    let started = Instant::now();
    functions.sweep().await?;
    figures.sweep = ms(started.elapsed());

    let auth = format!("Bearer {CRON_SECRET}");
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = send(
            functions.status.port,
            "GET",
            "/api/status",
            &[("authorization", &auth)],
            b"",
        )
        .await?;
        took.push(started.elapsed());
        anyhow::ensure!(
            answer.body.contains("\"blocked\""),
            "status: {} {}",
            answer.status,
            answer.body
        );
    }
    figures.status = median(&mut took);

    let mut conn = PgConnection::connect_with(&server.options(COPY)).await?;
    let probes: Vec<(String, String)> =
        sqlx::query_as("select id::text, email from users where email like 'Probe.%' limit 40")
            .fetch_all(&mut conn)
            .await?;
    figures.by_id = look_up(functions.admin.port, &probes, |(id, _)| {
        format!(r#"{{"user_id":"{id}","action":"show"}}"#)
    })
    .await?;
    figures.by_address = look_up(functions.admin.port, &probes, |(_, email)| {
        format!(r#"{{"email":"{}","action":"show"}}"#, email.to_uppercase())
    })
    .await?;

    // New work: 5,000 accounts whose grace period ended since the last run.
    sqlx::raw_sql(
        "insert into users (email, deleted_at)
         select 'new-' || g || '@example.test',
                now() - interval '30 days' - make_interval(secs => g)
         from generate_series(1, 5000) g",
    )
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    let started = Instant::now();
    let answer = functions.purge().await?;
    figures.purge_new = ms(started.elapsed());
    anyhow::ensure!(
        answer["deleted"] == 5000 && answer["status"] == "completed",
        "a purge of 5,000 new: {answer}"
    );
    drop(functions);
    Ok(figures)
}

/// The median of one admin `show` per probe (after 20 to warm up).
async fn look_up(
    port: u16,
    probes: &[(String, String)],
    body: impl Fn(&(String, String)) -> String,
) -> anyhow::Result<f64> {
    let auth = format!("Bearer {ADMIN_SECRET}");
    let mut took = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let started = Instant::now();
        let answer = send(
            port,
            "POST",
            "/api/admin/accounts",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body(probe).as_bytes(),
        )
        .await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            answer.status == 200 && answer.body.contains(&probe.0),
            "look-up: {} {}",
            answer.status,
            answer.body
        );
        if i >= 20 {
            took.push(elapsed);
        }
    }
    Ok(median(&mut took))
}

/// A purge over HTTP of `count` accounts expired on an empty copy, deleted
/// at one instant or each at its own; milliseconds until it completes.
async fn purge_banned(
    server: &testkit::postgres::Server,
    count: i64,
    one_time: bool,
) -> anyhow::Result<f64> {
    copy(server, EMPTY, COPY).await?;
    let mut conn = PgConnection::connect_with(&server.options(COPY)).await?;
    let deleted_at = if one_time {
        "now() - interval '40 days'"
    } else {
        "now() - interval '40 days' - make_interval(secs => g)"
    };
    sqlx::raw_sql(&format!(
        "insert into users (email, deleted_at)
         select 'banned-' || g || '@example.test', {deleted_at} from generate_series(1, {count}) g"
    ))
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("vacuum analyze users")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let functions = Functions::start(server, COPY, EraseBlocked::Wait).await;
    let started = Instant::now();
    let mut deleted = 0;
    loop {
        let answer = functions.purge().await?;
        deleted += answer["deleted"].as_i64().unwrap_or(0);
        if answer["status"] == "completed" {
            break;
        }
    }
    let took = ms(started.elapsed());
    anyhow::ensure!(deleted == count, "deleted {deleted} of {count}");
    Ok(took)
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort();
    ms(samples[samples.len() / 2])
}

fn median_of(figures: &[Figures], pick: impl Fn(&Figures) -> f64) -> f64 {
    let values: Vec<f64> = figures.iter().map(pick).collect();
    account_deletion_bench::median_f64(&values)
}

fn report(
    scale: i64,
    rounds: usize,
    results: &[(EraseBlocked, Vec<Figures>, Vec<Figures>)],
    bans: &[[f64; 2]],
    mass_ban: i64,
    sizes: &str,
) {
    println!(
        "\nScale {scale}: {} active, {} kept by an invoice, {} held, {} soft-deleted by the app; medians of {rounds} rounds, ms.\n",
        1_000_000 * scale,
        100_000 * scale,
        10_000 * scale,
        200_000 * scale
    );
    println!("| ERASE_BLOCKED | measure | empty | grown | grown − empty | target | met |");
    println!("| --- | --- | ---: | ---: | ---: | --- | --- |");
    for (erase, empty, grown) in results {
        let rows: [Row; 4] = [
            ("purge, no new work", |f| f.purge_no_work, "+1000"),
            ("mail sweep", |f| f.sweep, "+1000"),
            ("/api/status", |f| f.status, "+300"),
            ("look-up by id", |f| f.by_id, ""),
        ];
        for (name, pick, target) in rows {
            let (e, g) = (median_of(empty, pick), median_of(grown, pick));
            let met = target
                .parse::<f64>()
                .map_or(String::new(), |limit| yes(g - e <= limit));
            println!(
                "| {} | {name} | {e:.1} | {g:.1} | {:+.1} | {target} | {met} |",
                erase.as_str(),
                g - e
            );
        }
        let g_id = median_of(grown, |f| f.by_id);
        let (e_addr, g_addr) = (
            median_of(empty, |f| f.by_address),
            median_of(grown, |f| f.by_address),
        );
        println!(
            "| {} | look-up by an address in another case | {e_addr:.1} | {g_addr:.1} | {:+.1} (over by id: {:+.1}) | +20 over by id | {} |",
            erase.as_str(),
            g_addr - e_addr,
            g_addr - g_id,
            yes(g_addr - g_id <= 20.0)
        );
        let (e, g) = (
            median_of(empty, |f| f.purge_new),
            median_of(grown, |f| f.purge_new),
        );
        println!(
            "| {} | purge of 5,000 newly expired | {e:.1} | {g:.1} | {:+.1} | ≤ 1.5 × empty + 500 = {:.0} | {} |",
            erase.as_str(),
            g - e,
            1.5 * e + 500.0,
            yes(g <= 1.5 * e + 500.0)
        );
    }
    if !bans.is_empty() {
        let one: Vec<f64> = bans.iter().map(|pair| pair[0]).collect();
        let distinct: Vec<f64> = bans.iter().map(|pair| pair[1]).collect();
        let ratios: Vec<f64> = bans.iter().map(|pair| pair[0] / pair[1]).collect();
        let ratio = account_deletion_bench::median_f64(&ratios);
        println!(
            "\nMass ban, {mass_ban} accounts purged over HTTP: one timestamp {:.0} ms, distinct timestamps {:.0} ms, ratio (median of rounds) {ratio:.2} (target ≤ 1.2: {})",
            account_deletion_bench::median_f64(&one),
            account_deletion_bench::median_f64(&distinct),
            yes(ratio <= 1.2)
        );
    }
    println!("\n| database | table | rows | MB |\n| --- | --- | ---: | ---: |\n{sizes}");
}

/// A line of the report: its name, its figure, its target over the empty
/// database.
type Row = (&'static str, fn(&Figures) -> f64, &'static str);

fn yes(met: bool) -> String {
    if met { "yes" } else { "NO" }.to_owned()
}
