//! Structured logs: one line per event, `key=value` fields, no colours (Vercel
//! stores the raw text). Nothing logged may carry a token, a secret or an
//! email address.

/// Installs the subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}
