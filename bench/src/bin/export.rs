//! The export over HTTP: the real `account-export` function (release build)
//! streaming the archive of an account with `--large` rows (1,000,000) and
//! of one with `--small` rows (10,000, the common case), over three tables,
//! among other accounts' rows, connecting directly and through a PgBouncer
//! in transaction mode, side by side in one run.
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release -p account-deletion-bench --bin export -- --large 1000000 --small 10000 --rounds 3
//! ```
//!
//! Each download is a fresh link (asked for over HTTP as the frontend asks,
//! read from the emailed `.eml`), then the button's POST, read to the end by
//! a client that keeps up. Figures: time to the first byte, to the last,
//! archive MB/s, rows/s, and the function's peak resident memory over its
//! resting memory (a fresh process per account and connection path, the
//! peak read from `/proc` after the downloads). Medians of `--rounds`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use account_deletion_bench::{arg, median_f64, start};
use sqlx::PgPool;
use testkit::http_client::send;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DATABASE: &str = "bench_export";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let large: i64 = arg("--large", 1_000_000);
    let small: i64 = arg("--small", 10_000);
    let rounds: usize = arg("--rounds", 3);
    let server = account_deletion_bench::server();
    server.drop_database(DATABASE).await;
    server
        .create_database(DATABASE, Some(&server.template_name()))
        .await;
    let pool = PgPool::connect(&server.url(DATABASE)).await?;
    let seeding = Instant::now();
    let accounts = [
        ("large", seed_account(&pool, large).await?),
        ("small", seed_account(&pool, small).await?),
    ];
    // Other accounts' rows around them: 200 accounts of 5,000 rows.
    for _ in 0..200 {
        seed_account(&pool, 5_000).await?;
    }
    sqlx::raw_sql("vacuum analyze").execute(&pool).await?;
    println!(
        "seeded {large} + {small} rows (and 1,000,000 of 200 other accounts) in {:.0} s",
        seeding.elapsed().as_secs_f64()
    );

    let server_port = server.options("postgres").get_port();
    let pooler = testkit::pgbouncer::PgBouncer::start_with_pool(server_port, 5);
    let paths = [
        ("direct", server.url(DATABASE)),
        (
            "PgBouncer",
            format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", pooler.port()),
        ),
    ];
    println!(
        "\n| account | rows | the same rows read by a plain client (sqlx, `to_jsonb` text, no archive), s |"
    );
    println!("| --- | ---: | ---: |");
    for (name, (user, _, rows)) in &accounts {
        let mut took = Vec::new();
        for _ in 0..rounds {
            took.push(plain_read(&pool, user).await?.as_secs_f64());
        }
        println!("| {name} | {rows} | {:.2} |", median_f64(&took));
    }
    println!(
        "\n| account | connection | rows | archive MB | JSON MB | first byte, ms | whole, s | archive MB/s | JSON MB/s | rows/s | peak memory over resting, MB |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, (user, session, rows)) in &accounts {
        for (path, url) in &paths {
            let figures = measure(url, user, session, rounds).await?;
            let median =
                |f: fn(&Download) -> f64| median_f64(&figures.iter().map(f).collect::<Vec<_>>());
            let whole = median(|d| d.whole.as_secs_f64());
            println!(
                "| {name} | {path} | {rows} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} | {:.1} |",
                median(|d| mb(d.archive_bytes)),
                median(|d| mb(d.json_bytes)),
                median(|d| d.first_byte.as_secs_f64() * 1000.0),
                whole,
                median(|d| mb(d.archive_bytes) / d.whole.as_secs_f64()),
                median(|d| mb(d.json_bytes) / d.whole.as_secs_f64()),
                *rows as f64 / whole,
                median(|d| mb(d.peak_over_resting)),
            );
        }
    }
    drop(pooler);
    pool.close().await;
    server.drop_database(DATABASE).await;
    Ok(())
}

/// The user's rows of the three tables as `to_jsonb` text, read to the end
/// by a plain client: what the database alone costs.
async fn plain_read(pool: &PgPool, user: &str) -> anyhow::Result<Duration> {
    use futures_util::TryStreamExt;
    let started = Instant::now();
    let mut rows = 0u64;
    for table in ["posts", "comments", "events"] {
        let select = format!("select to_jsonb(t)::text from {table} t where user_id = $1::uuid");
        let mut stream = sqlx::query_scalar::<_, String>(&select)
            .bind(user)
            .fetch(pool);
        while stream.try_next().await?.is_some() {
            rows += 1;
        }
    }
    anyhow::ensure!(rows > 0);
    Ok(started.elapsed())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A user with a session and `rows` rows over three tables (40% posts, 30%
/// comments, 30% events) of the kinds an app keeps: text, times, JSON,
/// numbers. Returns the id, the session and the rows (the user's row
/// and sessions included).
async fn seed_account(pool: &PgPool, rows: i64) -> anyhow::Result<(String, String, i64)> {
    sqlx::raw_sql(
        "create table if not exists posts (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete cascade,
             title text not null, body text not null, created_at timestamptz not null,
             tags jsonb not null);
         create index if not exists posts_user_id_idx on posts (user_id);
         create table if not exists comments (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete cascade,
             post_id bigint not null, body text not null, created_at timestamptz not null);
         create index if not exists comments_user_id_idx on comments (user_id);
         create table if not exists events (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete cascade,
             kind text not null, at timestamptz not null, amount numeric(12, 2),
             payload jsonb not null);
         create index if not exists events_user_id_idx on events (user_id);",
    )
    .execute(pool)
    .await?;
    let session = format!("bench-session-{}", uuid::Uuid::new_v4());
    let user: String = sqlx::query_scalar(
        "with u as (
             insert into users (email) values ('bench-' || gen_random_uuid() || '@example.test')
             returning id
         ), s as (
             insert into sessions (user_id, token_hash, expires_at)
             select id, sha256(convert_to($1, 'UTF8')), now() + interval '30 days' from u
         )
         select id::text from u",
    )
    .bind(&session)
    .fetch_one(pool)
    .await?;
    let (posts, comments) = (rows * 4 / 10, rows * 3 / 10);
    let events = rows - posts - comments;
    for statement in [
        "insert into posts (user_id, title, body, created_at, tags)
         select $1::uuid, 'Post number ' || g, repeat('Some words of a post, ' || md5(g::text) || '. ', 3),
                now() - make_interval(mins => g::int), jsonb_build_array('tag' || (g % 17), 'tag' || (g % 5))
         from generate_series(1, $2) g",
        "insert into comments (user_id, post_id, body, created_at)
         select $1::uuid, g * 7, 'A comment: ' || md5(g::text), now() - make_interval(secs => g)
         from generate_series(1, $2) g",
        "insert into events (user_id, kind, at, amount, payload)
         select $1::uuid, 'kind_' || (g % 12), now() - make_interval(secs => g * 3), (g % 10000) / 100.0,
                jsonb_build_object('ip_country', 'FR', 'n', g, 'ok', g % 2 = 0)
         from generate_series(1, $2) g",
    ]
    .iter()
    .zip([posts, comments, events])
    {
        sqlx::query(statement.0)
            .bind(&user)
            .bind(statement.1)
            .execute(pool)
            .await?;
    }
    Ok((user, session, rows + 2))
}

struct Download {
    first_byte: Duration,
    whole: Duration,
    archive_bytes: u64,
    json_bytes: u64,
    peak_over_resting: u64,
}

/// `rounds` downloads of `user`'s archive from a fresh function on `url`.
async fn measure(
    url: &str,
    user: &str,
    session: &str,
    rounds: usize,
) -> anyhow::Result<Vec<Download>> {
    let mail = std::env::temp_dir().join(format!("bench-export-mail-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&mail)?;
    let env = [
        ("DATABASE_URL", url.to_owned()),
        ("APP_URL", "https://app.example.test".to_owned()),
        ("MAIL_URL", format!("file://{}", mail.display())),
        ("MAIL_FROM", "no-reply@app.example.test".to_owned()),
    ];
    let (function, _) = start("account-export", &env);
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(function.port, "GET", "/_vercel/ping", &[], b"")
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "the function did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = function.child.id();
    // The function started and answered once: what it holds at rest.
    let (resting, _) = testkit::process::memory_of(pid).unwrap_or_default();
    let mut downloads = Vec::new();
    for _ in 0..rounds {
        let token = fresh_link(function.port, user, session, &mail).await?;
        let mut download = download(function.port, &token).await?;
        let (_, peak) = testkit::process::memory_of(pid).unwrap_or_default();
        download.peak_over_resting = peak.saturating_sub(resting);
        downloads.push(download);
    }
    std::fs::remove_dir_all(&mail)?;
    Ok(downloads)
}

/// A link as the frontend gets one: the signed-in POST (the day's limit
/// lifted first: each round is a new request), then the emailed link.
async fn fresh_link(port: u16, user: &str, session: &str, mail: &Path) -> anyhow::Result<String> {
    // Straight to the server, whichever way the function connects.
    let pool = PgPool::connect(&account_deletion_bench::server().url(DATABASE)).await?;
    sqlx::query("update account_deletion.exports set user_requested_at = null where user_id = $1")
        .bind(user)
        .execute(&pool)
        .await?;
    pool.close().await;
    let before = eml_files(mail)?.len();
    let auth = format!("Bearer {session}");
    let asked = send(
        port,
        "POST",
        "/api/account/export",
        &[("authorization", &auth)],
        b"",
    )
    .await?;
    anyhow::ensure!(
        asked.status == 202,
        "asking: {} {}",
        asked.status,
        asked.body
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = eml_files(mail)?;
        if files.len() > before {
            let newest = files.last().expect("a file");
            return token_in(&std::fs::read_to_string(newest)?);
        }
        anyhow::ensure!(Instant::now() < deadline, "no email with a link");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn eml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap(), p))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// The download link's token in an `.eml` (quoted-printable).
fn token_in(eml: &str) -> anyhow::Result<String> {
    let text = eml
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let at = text
        .find("/api/account/export?token=")
        .ok_or_else(|| anyhow::anyhow!("no download link in the email"))?;
    Ok(text[at + "/api/account/export?token=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect())
}

/// The button's POST over HTTP/1.0 (the body runs to the end of the
/// connection), read to the end as fast as it comes.
async fn download(port: u16, token: &str) -> anyhow::Result<Download> {
    let body = format!("token={token}");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST /api/account/export HTTP/1.0\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut first_byte = None;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        first_byte.get_or_insert_with(|| started.elapsed());
        received.extend_from_slice(&chunk[..n]);
    }
    let whole = started.elapsed();
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no answer"))?;
    anyhow::ensure!(
        received.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&received[..split.min(500)])
    );
    let archive = &received[split + 4..];
    Ok(Download {
        first_byte: first_byte.unwrap_or(whole),
        whole,
        archive_bytes: archive.len() as u64,
        json_bytes: uncompressed_size(archive)?,
        peak_over_resting: 0,
    })
}

/// The sum of the entries' sizes, from the central directory (and a check
/// that the archive is whole: it ends with one).
fn uncompressed_size(archive: &[u8]) -> anyhow::Result<u64> {
    let end = archive
        .len()
        .checked_sub(22)
        .filter(|&at| archive[at..].starts_with(b"PK\x05\x06"));
    let end = end.ok_or_else(|| anyhow::anyhow!("the archive has no end record"))?;
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([archive[at], archive[at + 1]]));
    let u32_at = |at: usize| {
        u64::from(u32::from_le_bytes([
            archive[at],
            archive[at + 1],
            archive[at + 2],
            archive[at + 3],
        ]))
    };
    let count = u16_at(end + 10);
    let mut at = u32_at(end + 16) as usize;
    let mut total = 0;
    for _ in 0..count {
        anyhow::ensure!(archive[at..].starts_with(b"PK\x01\x02"), "a central header");
        total += u32_at(at + 24);
        at += 46 + (u16_at(at + 28) + u16_at(at + 30) + u16_at(at + 32)) as usize;
    }
    Ok(total)
}
