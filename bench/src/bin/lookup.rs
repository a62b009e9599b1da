//! Support's look-up at scale: the admin function over HTTP, finding one
//! account among `--users` (1,000,000) by its id, by its address as stored
//! and by its address as a ticket has it (another case, stray spaces),
//! with the folded-address index and without it, side by side in one run.
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release -p account-deletion-bench --bin lookup -- --users 1000000 --requests 200
//! ```
//!
//! Each figure is the median of `--requests` sequential requests (each a
//! different account), after 20 to warm the function and the cache; the
//! users table is seeded once, then the index dropped for the second pass.

use std::time::{Duration, Instant};

use account_deletion_bench::{arg, ms, start};
use sqlx::PgPool;
use testkit::http_client::send;

const CRON_SECRET: &str = "benchmark-cron-secret-0123456789";
const ADMIN_SECRET: &str = "benchmark-admin-secret-0123456789abcdef";
const DATABASE: &str = "bench_lookup";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users: i64 = arg("--users", 1_000_000);
    let requests: usize = arg("--requests", 200);
    let server = account_deletion_bench::server();
    server.drop_database(DATABASE).await;
    server
        .create_database(DATABASE, Some(&server.template_name()))
        .await;
    let pool = PgPool::connect(&server.url(DATABASE)).await?;
    let seeding = Instant::now();
    // Mixed-case addresses, as sign-up forms store them.
    sqlx::raw_sql(&format!(
        "insert into users (email)
         select 'Person.' || g || '@Example' || (g % 97) || '.test' from generate_series(1, {users}) g"
    ))
    .execute(&pool)
    .await?;
    sqlx::raw_sql("vacuum analyze users").execute(&pool).await?;
    let samples: Vec<(String, String)> = sqlx::query_as(
        "select id::text, email from users tablesample bernoulli (1) repeatable (7) limit $1",
    )
    .bind((requests + 20) as i64)
    .fetch_all(&pool)
    .await?;
    println!(
        "seeded {users} users in {:.1} s; {} sampled accounts",
        seeding.elapsed().as_secs_f64(),
        samples.len()
    );

    let mut rows = Vec::new();
    for indexed in [true, false] {
        if !indexed {
            sqlx::query("drop index users_email_folded_idx")
                .execute(&pool)
                .await?;
        }
        let env = [
            ("DATABASE_URL", server.url(DATABASE)),
            ("CRON_SECRET", CRON_SECRET.to_owned()),
            ("ADMIN_SECRET", ADMIN_SECRET.to_owned()),
            ("APP_URL", "https://app.example.test".to_owned()),
            ("MAIL_URL", "file:///tmp/bench-lookup-mail".to_owned()),
            ("MAIL_FROM", "no-reply@app.example.test".to_owned()),
        ];
        let (admin, _) = start("admin-accounts", &env);
        wait_until_serving(admin.port).await;
        let by_id = time(admin.port, &samples, requests, |(id, _)| {
            ("GET", format!("/api/admin/accounts?user_id={id}"), None)
        })
        .await?;
        let exact = time(admin.port, &samples, requests, |(_, email)| {
            let body = format!(r#"{{"email":"{email}","action":"show"}}"#);
            ("POST", "/api/admin/accounts".to_owned(), Some(body))
        })
        .await?;
        let folded = time(admin.port, &samples, requests, |(_, email)| {
            let body = format!(
                r#"{{"email":"  {}  ","action":"show"}}"#,
                email.to_uppercase()
            );
            ("POST", "/api/admin/accounts".to_owned(), Some(body))
        })
        .await?;
        rows.push((indexed, by_id, exact, folded));
    }
    println!(
        "\n| folded index | by id, ms | by address as stored, ms | by address in another case, ms | another case − by id, ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (indexed, by_id, exact, folded) in rows {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:+.2} |",
            if indexed { "yes" } else { "no" },
            ms(by_id),
            ms(exact),
            ms(folded),
            ms(folded) - ms(by_id)
        );
    }
    pool.close().await;
    server.drop_database(DATABASE).await;
    Ok(())
}

async fn wait_until_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(port, "GET", "/_vercel/ping", &[], b"").await.is_err() {
        assert!(Instant::now() < deadline, "the function did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The median time of one request per sample (after 20 warm-up ones), each
/// answered 200 with the sampled account.
async fn time(
    port: u16,
    samples: &[(String, String)],
    requests: usize,
    request: impl Fn(&(String, String)) -> (&'static str, String, Option<String>),
) -> anyhow::Result<Duration> {
    let auth = format!("Bearer {ADMIN_SECRET}");
    let mut took = Vec::new();
    for (i, sample) in samples.iter().take(requests + 20).enumerate() {
        let (method, path, body) = request(sample);
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let started = Instant::now();
        let answer = send(
            port,
            method,
            &path,
            &headers,
            body.as_deref().unwrap_or("").as_bytes(),
        )
        .await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            answer.status == 200 && answer.body.contains(&sample.0),
            "{method} {path}: {} {}",
            answer.status,
            answer.body
        );
        if i >= 20 {
            took.push(elapsed);
        }
    }
    took.sort();
    Ok(took[took.len() / 2])
}
