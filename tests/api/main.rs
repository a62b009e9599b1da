//! The integration suite: one binary, so one PostgreSQL server serves every
//! test (see `helpers::postgres`), each test on its own fresh database.

mod helpers;

mod account_delete;
mod account_recover;
mod adopting;
mod anonymize;
mod browser;
mod cors;
mod email_delivery;
mod erased_email;
mod export;
mod faults;
mod function_binary;
mod hostile_input;
mod kept_accounts;
mod layout;
mod log_hygiene;
mod long_life;
mod pooler;
mod purge_auth;
mod purge_budget;
mod purge_concurrency;
mod purge_crash;
mod purge_outage;
mod purge_rules;
mod random_input;
mod resolving;
mod schema;
mod status;
mod support;
mod timeouts;
mod token_sign_in;
mod tombstones;
mod tree;
mod way_back;
mod webhooks;
