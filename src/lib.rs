//! Account deletion with a grace period: soft-delete on request, recovery by
//! emailed link, and a scheduled, race-safe permanent purge.
//!
//! Everything lives here; the binaries under `api/` only build a route from
//! the environment and hand it to [`vercel::serve`].

pub mod config;
pub mod cron_secret;
pub mod db;
pub mod purge;
pub mod routes;
pub mod telemetry;
pub mod vercel;
pub mod web;
