//! Shared pieces of the benchmarks: figures, percentiles, the throwaway
//! server with production durability.

use std::time::Duration;

pub mod receiver;

/// Starts (once) the benchmark's PostgreSQL: the test harness's throwaway
/// server, but with production durability (fsync and synchronous commit on),
/// so batching pays for its commits as it would in production, and memory
/// settings for a few GB of data.
pub fn server() -> &'static testkit::postgres::Server {
    testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
    testkit::postgres::use_server_settings(&[
        ("fsync", "on"),
        ("synchronous_commit", "on"),
        ("full_page_writes", "on"),
        ("shared_buffers", "2GB"),
        ("max_wal_size", "16GB"),
        ("checkpoint_timeout", "30min"),
        ("maintenance_work_mem", "512MB"),
    ]);
    testkit::postgres::server()
}

/// The value at percentile `p` (0..=100) of unsorted samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[sorted.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `--name value` from the command line, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}"))
        })
}

/// Where the workspace's release binaries are.
pub fn release_binary(name: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let path = root.join("target/release").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --bins` first",
        path.display()
    );
    path
}

/// A function binary running as `vercel_runtime` serves it locally.
pub struct Running {
    pub child: std::process::Child,
    pub port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts release binary `name` on a free port with only `env` set; the
/// instant it was started.
pub fn start(name: &str, env: &[(&str, String)]) -> (Running, std::time::Instant) {
    let port = testkit::free_port();
    let started = std::time::Instant::now();
    let child = std::process::Command::new(release_binary(name))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("VERCEL_DEV_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the function");
    (Running { child, port }, started)
}

/// `wrk -t2 -c16` against `path` for `seconds`: (requests/s, p50 ms, p99 ms).
/// Any answer other than 2xx fails the run.
pub fn wrk(port: u16, path: &str, seconds: u64, extra: &[&str]) -> anyhow::Result<(f64, f64, f64)> {
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c16", "--latency", "-d"])
        .arg(format!("{seconds}s"))
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run wrk ({e}); apt-get install wrk"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = |prefix: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(prefix))?;
        let raw = line.trim_start().trim_start_matches(prefix).trim();
        parse_duration_ms(raw).or_else(|| raw.parse().ok())
    };
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw error answers:\n{text}");
    Ok((
        value("Requests/sec:").unwrap_or(0.0),
        value("50%").unwrap_or(f64::NAN),
        value("99%").unwrap_or(f64::NAN),
    ))
}

fn parse_duration_ms(raw: &str) -> Option<f64> {
    for (suffix, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] {
        if let Some(number) = raw.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    None
}
