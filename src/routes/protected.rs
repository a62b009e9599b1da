//! The routes behind bearer secrets (the crons, status, admin): what they
//! share, in one place. Each is built once per process from its
//! configuration, refuses every request with 500 while that is invalid,
//! answers a method it does not take with 405, and lets a request through
//! only with exactly one `Authorization: Bearer <secret>` naming one of its
//! secrets (401 with a `Bearer` challenge otherwise), before it does
//! anything else.

use std::future::Future;

use http::Method;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::config::ConfigErrors;
use crate::platform::bearer_secret::BearerSecret;
use crate::platform::web::{ApiError, Request, Response, method_not_allowed};
use crate::routes::Configured;

/// What crons take: GET (what Vercel sends) and POST (manual runs).
pub(crate) const CRON_METHODS: &[Method] = &[Method::GET, Method::POST];

/// A route's state once configured, with the secrets that open it.
pub(crate) struct Opened<T> {
    pub(crate) state: T,
    pub(crate) secrets: Vec<BearerSecret>,
}

/// A secret-protected route.
pub(crate) struct Protected<T> {
    methods: &'static [Method],
    configured: Configured<Opened<T>>,
}

impl<T> Clone for Protected<T> {
    fn clone(&self) -> Self {
        Self {
            methods: self.methods,
            configured: self.configured.clone(),
        }
    }
}

impl<T> Protected<T> {
    /// The route `name`, taking `methods`, built by `open` from `config` and
    /// `pool` (or a pool of its own of `connections` when the host shares
    /// none: one function instance's worth).
    pub(crate) fn new<C>(
        name: &'static str,
        methods: &'static [Method],
        config: Result<C, ConfigErrors>,
        pool: Option<PgPool>,
        connections: impl FnOnce(&C) -> (PgConnectOptions, u32),
        open: impl FnOnce(C, PgPool) -> Opened<T>,
    ) -> Self {
        let opened = config.map(|config| {
            let pool = pool.unwrap_or_else(|| {
                let (options, size) = connections(&config);
                crate::platform::db::lazy_pool(options, size)
            });
            open(config, pool)
        });
        Self {
            methods,
            configured: Configured::new(name, opened),
        }
    }

    /// Checks the request against the route's configuration, methods and
    /// secrets, then hands it to `respond`; every error becomes its answer.
    pub(crate) async fn handle<'a, F, Fut>(&'a self, request: Request, respond: F) -> Response
    where
        F: FnOnce(&'a T, Request) -> Fut,
        Fut: Future<Output = Result<Response, ApiError>>,
    {
        let opened = match self.configured.ready() {
            Ok(opened) => opened,
            Err(error) => return error.into_response(),
        };
        if let Some(error) = method_not_allowed(request.method(), self.methods) {
            return error.into_response();
        }
        if !opened
            .secrets
            .iter()
            .any(|secret| secret.authorizes(request.headers()))
        {
            return ApiError::Unauthorized.into_response();
        }
        respond(&opened.state, request)
            .await
            .unwrap_or_else(ApiError::into_response)
    }
}
