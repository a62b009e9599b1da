//! `cargo dev`: the whole system on a laptop. Every function at its Vercel
//! path through the same library code the Vercel binaries call, the crons of
//! `vercel.json` firing on their schedules the way Vercel fires them, mail to
//! `.mail/`, and an embedded PostgreSQL when `DATABASE_URL` is unset.
//!
//! This crate is a workspace member of its own so that nothing here (the
//! embedded database, the cron parser) is compiled into a function.

pub mod account;
pub mod client;
pub mod crons;
pub mod database;
pub mod functions;
pub mod mailbox;
pub mod settings;
