//! Account deletion with a grace period: soft-delete on request, recovery by
//! emailed link, and a scheduled, race-safe permanent purge.
//!
//! Everything lives here; the binaries under `api/` only build a route from
//! the environment and hand it to [`platform::vercel::serve`].
//!
//! The folders are the layers, each importing only those listed before it
//! (`tests/api/tree.rs` keeps it so):
//! 1. [`platform`]: what the rest stands on: HTTP, the database, mail, the
//!    webhook's signature, tokens and secrets, telemetry;
//! 2. [`schema`]: the app's schema: its catalog, the statements rendered
//!    from it, and the migrations;
//! 3. [`auth`]: sign-in, who the user of a request is;
//! 4. [`config`]: the environment, read into the types of the parts it
//!    configures;
//! 5. [`delivery`]: the outboxes: emails and webhook events, sent at least
//!    once;
//! 6. [`lifecycle`]: the deletion's life and its jobs: delete, restore,
//!    purge, anonymize, forget, prune, export, support, status;
//! 7. [`routes`]: one per Vercel function.

pub mod auth;
pub mod config;
pub mod delivery;
pub mod lifecycle;
pub mod platform;
pub mod routes;
pub mod schema;
