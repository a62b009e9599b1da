//! The test harness shared by the workspace's suites.
//!
//! - [`postgres`]: one PostgreSQL server per test run (a throwaway cluster
//!   unless `DATABASE_URL` is set) and a fresh migrated database per test.
//! - [`pgbouncer`]: a real PgBouncer in transaction mode in front of it.
//! - [`process`]: the servers' processes, run as `postgres` under root.
//! - [`smtp`]: a real SMTP server on loopback that keeps what it receives.
//! - [`proxy`]: a TCP proxy a test can cut, to make a server unreachable.
//! - [`time_zone_proxy`]: a proxy whose sessions run in another time zone.
//! - [`tripwire`]: a proxy that trips when a client sends a given statement,
//!   to crash a server at an exact stage of the work.
//! - [`http_client`]: one-request HTTP/1.1 client for real processes.
//! - [`jwks_server`]: a provider's JWKS endpoint that counts fetches and can
//!   go down.
//! - [`browser`]: Debian's Chromium driven by Playwright, for CORS and
//!   cookies as a browser decides them.
//! - [`python`]: the Python the helper scripts run on.
//! - [`webhook_receiver`]: a webhook receiver that verifies with the
//!   `standardwebhooks` package from `PyPI`, and can fail, hang or go down.

pub mod browser;
pub mod http_client;
pub mod jwks_server;
pub mod pgbouncer;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod python;
pub mod smtp;
pub mod time_zone_proxy;
pub mod tripwire;
pub mod webhook_receiver;

/// A free TCP port on loopback (bound, then released for the caller).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
