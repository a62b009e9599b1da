//! Shared pieces of the benchmarks: figures, percentiles, the throwaway
//! server with production durability.

use std::time::Duration;

/// Starts (once) the benchmark's PostgreSQL: the test harness's throwaway
/// server, but with production durability (fsync and synchronous commit on),
/// so batching pays for its commits as it would in production, and memory
/// settings for a few GB of data.
pub fn server() -> &'static testkit::postgres::Server {
    testkit::postgres::use_migrations(account_deletion::migrate::apply_defaults);
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
