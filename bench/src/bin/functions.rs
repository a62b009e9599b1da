//! The function binaries: size, start-up, memory and latency under load.
//!
//! ```text
//! cargo build --release --bins
//! apt-get install wrk      # the load generator
//! cargo run --release -p account-deletion-bench --bin functions -- --starts 10 --seconds 10
//! cargo run --release -p account-deletion-bench --bin functions -- --starts 3 --seconds 3 --sessions 40000 --rss-requests 2000   # quick
//! ```
//!
//! Per binary: the stripped release size; time from process start to the
//! first answered `/_vercel/ping` and to the first database-backed answer
//! (median of `--starts` starts); RSS after `--rss-requests` (10,000) requests. Then, at
//! concurrency 16 with `wrk`: the cron route (dry run), the recover page,
//! and the delete route with a fresh, pre-created session per request.
//!
//! Every figure is taken twice (`--via direct,pgbouncer`): with the functions
//! connecting straight to PostgreSQL, then through a PgBouncer in transaction
//! mode (pool of 5, the account functions' own pool size), each on a freshly
//! seeded copy of the database; the ratios follow.

use std::time::Duration;

use account_deletion_bench::{Running, arg, median_f64, release_binary, start, wrk};
use sqlx::PgPool;
use testkit::http_client::send;

const CRON_SECRET: &str = "benchmark-cron-secret-0123456789";
const DATABASE: &str = "bench_functions";
/// A well-formed recovery token the benchmark plants, so the recover page
/// does its real lookup and renders the button.
const ADMIN_SECRET: &str = "benchmark-admin-secret-0123456789abcdef";
const RECOVERY_TOKEN: &str = "BenchmarkRecoveryToken000000000000000000000";

struct Function {
    name: &'static str,
    /// The request whose answer needs the database.
    db_request: (&'static str, String, Vec<(&'static str, String)>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let starts: usize = arg("--starts", 5);
    let seconds: u64 = arg("--seconds", 3);
    // Sessions for the delete load: each request uses up one.
    let sessions: i64 = arg("--sessions", 400_000);
    let rss_requests: usize = arg("--rss-requests", 10_000);
    let via: String = arg("--via", "direct,pgbouncer".to_owned());
    let server = account_deletion_bench::server();
    let mut figures = Vec::new();
    for mode in via.split(',') {
        server.drop_database(DATABASE).await;
        server
            .create_database(DATABASE, Some(&server.template_name()))
            .await;
        let pool = PgPool::connect(&server.url(DATABASE)).await?;
        seed(&pool, sessions).await?;
        pool.close().await;
        let pooler = (mode == "pgbouncer").then(|| {
            let server_port = server.options("postgres").get_port();
            testkit::pgbouncer::PgBouncer::start_with_pool(server_port, 5)
        });
        let url = match &pooler {
            Some(pooler) => format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", pooler.port()),
            None => server.url(DATABASE),
        };
        println!(
            "\n## Functions connecting {}\n",
            if pooler.is_some() {
                "through PgBouncer (transaction mode)"
            } else {
                "directly"
            }
        );
        figures.push((
            mode.to_owned(),
            run_mode(&url, starts, seconds, rss_requests).await?,
        ));
    }
    report_ratios(&figures);
    Ok(())
}

/// Per route: (ready ms, first DB answer ms) and per load: p99 ms.
#[derive(Default)]
struct Figures {
    first_db: Vec<(&'static str, f64)>,
    p99: Vec<(&'static str, f64)>,
    rps: Vec<(&'static str, f64)>,
}

fn report_ratios(figures: &[(String, Figures)]) {
    let [(_, direct), (_, pooled)] = figures else {
        return;
    };
    println!("\n### Through PgBouncer ÷ direct\n");
    println!("| figure | direct | through PgBouncer | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    for ((name, d), (_, p)) in direct.first_db.iter().zip(&pooled.first_db) {
        println!(
            "| {name}: first DB answer, ms | {d:.1} | {p:.1} | {:.2} |",
            p / d
        );
    }
    for ((name, d), (_, p)) in direct.p99.iter().zip(&pooled.p99) {
        println!("| {name}: p99 ms | {d:.2} | {p:.2} | {:.2} |", p / d);
    }
    for ((name, d), (_, p)) in direct.rps.iter().zip(&pooled.rps) {
        println!("| {name}: requests/s | {d:.0} | {p:.0} | {:.2} |", p / d);
    }
}

/// Each function, with a request that needs the database (for the time to
/// its first database answer).
fn functions() -> [Function; 8] {
    let auth = format!("Bearer {CRON_SECRET}");
    [
        Function {
            name: "account-delete",
            db_request: (
                "POST",
                "/api/account/delete".into(),
                vec![("authorization", "Bearer start-probe".into())],
            ),
        },
        Function {
            name: "account-recover",
            db_request: (
                "GET",
                format!("/api/account/recover?token={RECOVERY_TOKEN}"),
                vec![],
            ),
        },
        Function {
            name: "cron-permanent-delete-users",
            db_request: (
                "GET",
                "/api/cron/permanent-delete-users?dry_run=true".into(),
                vec![("authorization", auth.clone())],
            ),
        },
        Function {
            name: "cron-send-emails",
            db_request: (
                "GET",
                "/api/cron/send-emails".into(),
                vec![("authorization", auth.clone())],
            ),
        },
        Function {
            name: "account-deletion",
            db_request: (
                "GET",
                "/api/account/deletion".into(),
                vec![("authorization", "Bearer start-probe".into())],
            ),
        },
        Function {
            name: "account-restore",
            db_request: (
                "POST",
                "/api/account/restore".into(),
                vec![("authorization", "Bearer start-probe".into())],
            ),
        },
        Function {
            name: "admin-accounts",
            db_request: (
                "GET",
                "/api/admin/accounts?user_id=00000000-0000-4000-8000-000000000001".into(),
                vec![("authorization", format!("Bearer {ADMIN_SECRET}"))],
            ),
        },
        Function {
            name: "status",
            db_request: (
                "GET",
                "/api/status".into(),
                vec![("authorization", auth.clone())],
            ),
        },
    ]
}

async fn run_mode(
    url: &str,
    starts: usize,
    seconds: u64,
    rss_requests: usize,
) -> anyhow::Result<Figures> {
    let url = url.to_owned();
    let mail_dir = std::env::temp_dir().join(format!("bench-mail-{}", std::process::id()));
    let env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", url.clone()),
        ("CRON_SECRET", CRON_SECRET.to_owned()),
        ("APP_URL", "https://app.example.test".to_owned()),
        ("MAIL_URL", format!("file://{}", mail_dir.display())),
        ("MAIL_FROM", "Bench <no-reply@example.test>".to_owned()),
        ("REMINDER_DAYS_BEFORE", "0".to_owned()),
        ("ADMIN_SECRET", ADMIN_SECRET.to_owned()),
    ];
    let functions = functions();

    let mut figures = Figures {
        first_db: report_binaries(&functions, &env, starts, rss_requests).await?,
        ..Figures::default()
    };

    println!("\n### Latency at concurrency 16 (wrk, {seconds} s)\n");
    println!("| route | requests/s | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: |");
    let loads = [
        (
            "cron-permanent-delete-users",
            "GET /api/cron/permanent-delete-users?dry_run=true",
            load_cron(&env, seconds),
        ),
        (
            "account-recover",
            "GET /api/account/recover (valid link)",
            load_recover(&env, seconds),
        ),
        (
            "account-delete",
            "POST /api/account/delete (fresh session each)",
            load_delete(&env, seconds),
        ),
    ];
    for (name, label, result) in loads {
        let (rps, p50, p99) = result?;
        println!("| {label} | {rps:.0} | {p50:.2} | {p99:.2} |");
        figures.p99.push((name, p99));
        figures.rps.push((name, rps));
    }
    let _ = std::fs::remove_dir_all(&mail_dir);
    Ok(figures)
}

/// Size, start-up and memory of each binary.
async fn report_binaries(
    functions: &[Function],
    env: &[(&str, String)],
    starts: usize,
    rss_requests: usize,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let mut first_db_medians = Vec::new();
    println!("\n### Function binaries\n");
    println!(
        "| binary | stripped size | ready (ping) | first DB answer | RSS after {rss_requests} requests |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for function in functions {
        let size = std::fs::metadata(release_binary(function.name))?.len();
        let mut ready = Vec::new();
        let mut first_db = Vec::new();
        for _ in 0..starts {
            let (running, started) = start(function.name, env);
            while send(running.port, "GET", "/_vercel/ping", &[], b"")
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            ready.push(started.elapsed().as_secs_f64() * 1000.0);
            let (method, path, headers) = &function.db_request;
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = send(running.port, method, path, &headers, b"").await?;
            first_db.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                answer.status < 500,
                "{} answered {}: {}",
                function.name,
                answer.status,
                answer.body
            );
        }
        let rss = rss_after_requests(function, env, rss_requests).await?;
        println!(
            "| {} | {:.1} MB | {:.1} ms | {:.1} ms | {:.1} MB |",
            function.name,
            size as f64 / 1_000_000.0,
            median_f64(&ready),
            median_f64(&first_db),
            rss as f64 / 1_000_000.0
        );
        first_db_medians.push((function.name, median_f64(&first_db)));
    }
    Ok(first_db_medians)
}

/// Users with sessions `bench-<thread>-<n>` for the delete load (and the
/// RSS run), one probe session per start, and a planted recovery link.
async fn seed(pool: &PgPool, sessions: i64) -> anyhow::Result<()> {
    sqlx::query(
        "insert into users (email)
         select 'load' || g || '@bench.test' from generate_series(1, $1) g",
    )
    .bind(sessions)
    .execute(pool)
    .await?;
    // Thread t of wrk uses bench-t-1, bench-t-2, …; the RSS run uses rss-n.
    sqlx::query(
        "insert into sessions (user_id, token_hash, expires_at)
         select id,
                sha256(convert_to(case when n <= $1 / 2 then 'bench-0-' || n
                                       when n <= $1 * 3 / 4 then 'bench-1-' || (n - $1 / 2)
                                       else 'rss-' || (n - $1 * 3 / 4) end, 'UTF8')),
                now() + interval '1 day'
         from (select id, row_number() over () as n from users) u",
    )
    .bind(sessions)
    .execute(pool)
    .await?;
    sqlx::raw_sql(&format!(
        "with u as (insert into users (email, deleted_at) values ('planted@bench.test', now()) returning id, deleted_at),
              o as (insert into account_deletion.email_outbox (user_id, kind, recipient, for_deleted_at, status)
                    select id, 'recovery', 'planted@bench.test', deleted_at, 'sent' from u returning id, user_id, for_deleted_at)
         insert into account_deletion.recovery_tokens (user_id, outbox_id, token_hash, for_deleted_at)
         select user_id, id, sha256(convert_to('{RECOVERY_TOKEN}', 'UTF8')), for_deleted_at from o;"
    ))
    .execute(pool)
    .await?;
    sqlx::raw_sql("vacuum analyze").execute(pool).await?;
    Ok(())
}

async fn rss_after_requests(
    function: &Function,
    env: &[(&str, String)],
    requests: usize,
) -> anyhow::Result<u64> {
    let (running, _) = start(function.name, env);
    while send(running.port, "GET", "/_vercel/ping", &[], b"")
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for n in 1..=requests {
        let (method, path, headers) = &function.db_request;
        let session;
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if function.name == "account-delete" {
            session = format!("Bearer rss-{n}");
            headers = vec![("authorization", session.as_str())];
        }
        send(running.port, method, path, &headers, b"").await?;
    }
    let (rss, _peak) = testkit::process::memory_of(running.child.id())
        .ok_or_else(|| anyhow::anyhow!("no memory figures for {}", function.name))?;
    Ok(rss)
}

async fn ready(name: &str, env: &[(&str, String)]) -> Running {
    let (running, _) = start(name, env);
    while send(running.port, "GET", "/_vercel/ping", &[], b"")
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    running
}

fn load_cron(env: &[(&str, String)], seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    let runtime = tokio::runtime::Handle::current();
    let running =
        tokio::task::block_in_place(|| runtime.block_on(ready("cron-permanent-delete-users", env)));
    let header = format!("Authorization: Bearer {CRON_SECRET}");
    wrk(
        running.port,
        "/api/cron/permanent-delete-users?dry_run=true",
        seconds,
        &["-H", &header],
    )
}

fn load_recover(env: &[(&str, String)], seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    let runtime = tokio::runtime::Handle::current();
    let running = tokio::task::block_in_place(|| runtime.block_on(ready("account-recover", env)));
    wrk(
        running.port,
        &format!("/api/account/recover?token={RECOVERY_TOKEN}"),
        seconds,
        &[],
    )
}

fn load_delete(env: &[(&str, String)], seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    let runtime = tokio::runtime::Handle::current();
    let running = tokio::task::block_in_place(|| runtime.block_on(ready("account-delete", env)));
    let script = std::env::temp_dir().join(format!("bench-delete-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        r#"
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/account/delete",
    { ["Authorization"] = "Bearer bench-" .. id .. "-" .. counter }, "")
end
"#,
    )?;
    let result = wrk(
        running.port,
        "/api/account/delete",
        seconds,
        &["-s", script.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&script);
    result
}
