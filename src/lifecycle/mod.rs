//! The deletion's life and the jobs around it, each a module: deleting and
//! restoring ([`accounts`]), the purge and anonymizing ([`purge`]), the
//! walks it and the email cron keep their place in ([`sweeps`]),
//! re-erasure after a backup ([`forget`]), forgetting what was kept long
//! enough ([`prune`]), the email cron's work ([`email_sweep`]), the user's
//! copy of their data ([`export`]), support's actions and which account
//! an operator names ([`support`]), the account as support sees it
//! ([`account_view`]) and whether erasure keeps up ([`status`]).
//!
//! It may import every layer below it (`platform`, `schema`, `auth`,
//! `config`, `delivery`); never the routes.

pub mod account_view;
pub mod accounts;
pub mod email_sweep;
pub mod export;
pub mod forget;
pub mod prune;
pub mod purge;

pub mod status;
pub mod support;
pub mod sweeps;
