//! Account deletion with a grace period: soft-delete on request, recovery by
//! emailed link, and a scheduled, race-safe permanent purge.
//!
//! Everything lives here; the binaries under `api/` only build a route from
//! the environment and hand it to [`vercel::serve`].

pub mod account_view;
pub mod accounts;
pub mod app_url;
pub mod auth;
pub mod bearer_secret;
pub mod config;
pub mod cors;
pub mod db;
pub mod delivery;
pub mod events;
pub mod export;
pub mod forget;
pub mod html;
pub mod http_client;
pub mod mail;
pub mod migrate;
pub mod outbox;
pub mod prune;
pub mod purge;
pub mod rate_limit;
pub mod resolve;
pub mod routes;
pub mod schema;
pub mod sql;
pub mod status;
pub mod support;
pub mod sweeps;
pub mod telemetry;
pub mod tokens;
pub mod vercel;
pub mod web;
pub mod webhook;
