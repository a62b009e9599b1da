//! Structured logs: one line per event, `key=value` fields, no colours (Vercel
//! stores the raw text). Nothing logged may carry a token, a secret or an
//! email address, at any level (`tests/api/log_hygiene.rs` checks the whole
//! journey at `trace`).

use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// Installs the subscriber once; later calls (tests) are no-ops. `RUST_LOG`
/// sets the level: `error`, `warn`, `info` (the default), `debug`, `trace`
/// or `off`.
pub fn init() {
    let raw = std::env::var("RUST_LOG").ok();
    let level = raw.as_deref().map(|raw| LevelFilter::from_str(raw.trim()));
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_max_level(match level {
            Some(Ok(level)) => level,
            _ => LevelFilter::INFO,
        })
        .try_init();
    if let Some(Err(_)) = level {
        tracing::warn!(
            "RUST_LOG is invalid: expected one of error, warn, info, debug, trace, off; logging at info"
        );
    }
}
