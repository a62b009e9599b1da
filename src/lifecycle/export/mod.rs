//! A copy of the user's data (GDPR Art. 15 and 20), produced on demand and
//! streamed: no storage bucket, no background job to get stuck.
//!
//! - [`link`]: a request emails the account's address a link (once a day
//!   for the user; support's requests are not limited); a download spends
//!   one of the link's three uses.
//! - [`archive`]: one `REPEATABLE READ` snapshot, streamed as a ZIP
//!   ([`zip`]) of one NDJSON file per table and key ([`tables`]), the
//!   account's history and a manifest.
//!
//! Never in an archive: a credential (a column whose name holds
//! `password`, `secret`, `token`, `hash`, `salt` or `otp`, or one named in
//! `EXPORT_EXCLUDE_COLUMNS`), this service's own tables but the history,
//! and another account's rows.
//!
//! It may import every layer below the lifecycle (the leaves, the app's
//! schema and statements, the configuration, the outboxes) and, of the
//! lifecycle, the account's view (`account_view`); nothing here knows the
//! routes or support, which runs it.

pub mod archive;
pub mod link;
pub mod tables;
pub mod zip;

pub use archive::{ExportError, Manifest, Snapshot, TableEntry};
pub use link::{NotRequested, Redeemed, Requested, Requester};
