//! One module per Vercel function, each exposing a route built once per
//! process and a `handle` that turns a request into a response.

pub mod purge_users;
