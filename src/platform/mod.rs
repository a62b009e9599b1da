//! The leaves: what the rest of the library stands on, knowing nothing of
//! the app's schema or of a deletion's rules. HTTP ([`web`], the bridge from
//! Vercel's runtime in [`vercel`], [`cors`], [`html`], the outbound
//! [`http_client`]), the database ([`db`], and a client limiter kept in
//! it, [`rate_limit`], which the recovery and export links use), [`mail`] (SMTP: one message sent), the
//! [`webhook`]'s signature, [`tokens`] and [`bearer_secret`]s, the app's
//! public URL ([`app_url`]), the [`time`] format every answer writes
//! and [`telemetry`].
//!
//! It imports nothing of the library outside this folder.

pub mod app_url;
pub mod bearer_secret;
pub mod cors;
pub mod db;
pub mod html;
pub mod http_client;
pub mod mail;
pub mod rate_limit;
pub mod telemetry;
pub mod time;
pub mod tokens;
pub mod vercel;
pub mod web;
pub mod webhook;
