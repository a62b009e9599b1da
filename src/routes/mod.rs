//! One module per Vercel function, each exposing a route built once per
//! process and a `handle` that turns a request into a response. The
//! account routes share their shell ([`Configured::serve`]: configuration,
//! CORS, methods) and constructors ([`account_route`]); the routes behind
//! a bearer secret share theirs ([`protected`]); the recovery and export
//! links read their token one way ([`link_token`]). Those three are the
//! only modules here that are no function.
//!
//! The top layer: it may import every other; nothing in the library
//! imports it (only the binaries of `api/` and `cargo dev`).

#[macro_use]
mod account_route;
pub mod admin_accounts;
pub mod delete_account;
pub mod deletion_status;
pub mod export_account;
mod link_token;
mod protected;
pub mod purge_users;
pub mod recover_account;
pub mod restore_account;
pub mod send_emails;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use http::Method;

use sqlx::PgPool;

use crate::auth::{Issued, Purpose, SignIn};
use crate::config::{AccountConfig, ConfigErrors, ExcludedColumns, MailConfig, RetentionDays};
use crate::delivery::events::{self, PendingEvent};
use crate::delivery::outbox::{self, PendingEmail};
use crate::lifecycle::accounts::{self, DeletionState};
use crate::platform::app_url::SignInUrl;
use crate::platform::cors::AllowedOrigins;
use crate::platform::rate_limit::Limiter;
use crate::platform::web::{ApiError, Background, Reply, Request, Response, method_not_allowed};
use crate::platform::webhook::Webhook;
use crate::schema::sql::{AppTables, Records, Statements};
use crate::schema::{SchemaError, UserId};

/// A route's ready state, or why it has none. A misconfigured route still
/// serves: it refuses every request with 500 instead of crashing the function.
pub(crate) struct Configured<T> {
    name: &'static str,
    state: Arc<Result<T, ConfigErrors>>,
}

impl<T> Clone for Configured<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> Configured<T> {
    pub(crate) fn new(name: &'static str, state: Result<T, ConfigErrors>) -> Self {
        if let Err(errors) = &state {
            tracing::error!(route = name, problems = %errors, "misconfigured; refusing every request");
        }
        Self {
            name,
            state: Arc::new(state),
        }
    }

    pub(crate) fn ready(&self) -> Result<&T, ApiError> {
        self.state.as_ref().as_ref().map_err(|errors| {
            tracing::error!(route = self.name, problems = %errors, "refused a request: misconfigured");
            ApiError::ServerMisconfigured
        })
    }
}

/// The statements on the app's tables, rendered on first use. Tables that do
/// not match the configuration make the route refuse like any other bad
/// setting (500), naming the variable in the log.
pub(crate) async fn statements(
    route: &'static str,
    tables: &AppTables,
    pool: &PgPool,
) -> Result<Arc<Statements>, ApiError> {
    tables
        .statements(pool)
        .await
        .map_err(|error| schema_refusal(route, error))
}

/// The answer to a request whose route found the app's tables unusable.
pub(crate) fn schema_refusal(route: &'static str, error: SchemaError) -> ApiError {
    match error {
        SchemaError::Misconfigured { variable, reason } => {
            tracing::error!(route, variable, problem = %reason, "the app's tables do not match the configuration; refusing the request");
            ApiError::ServerMisconfigured
        }
        SchemaError::Database(error) => ApiError::from_database(error),
    }
}

/// An answer whose headers a route's shell adds to.
pub(crate) trait WithHeaders {
    fn headers_mut(&mut self) -> &mut http::HeaderMap;
}

impl WithHeaders for Response {
    fn headers_mut(&mut self) -> &mut http::HeaderMap {
        http::Response::headers_mut(self)
    }
}

impl WithHeaders for Reply {
    fn headers_mut(&mut self) -> &mut http::HeaderMap {
        match self {
            Self::Whole(response) => response.headers_mut(),
            Self::Streamed(response) => response.headers_mut(),
        }
    }
}

/// What the account routes hold once configured.
pub(crate) struct AccountState {
    pub(crate) pool: PgPool,
    pub(crate) tables: AppTables,
    pub(crate) retention: RetentionDays,
    pub(crate) mail: MailConfig,
    pub(crate) cors: AllowedOrigins,
    pub(crate) sign_in: SignIn,
    /// Where account events go; `None`: none are recorded.
    pub(crate) webhook: Option<Arc<Webhook>>,
    /// Failed recoveries per client.
    pub(crate) limiter: Limiter,
    /// Where the pages' "Sign in" link points.
    pub(crate) sign_in_url: SignInUrl,
    /// Columns no archive holds, besides credentials.
    pub(crate) export_exclude: ExcludedColumns,
}

impl Configured<AccountState> {
    /// Serves an account route: 500 while misconfigured, the CORS preflight
    /// for `OPTIONS`, 405 for a method not in `allowed`, otherwise
    /// `respond`'s answer (read whole, or streamed: [`Reply`]); every
    /// answer with the CORS headers a listed origin gets.
    pub(crate) async fn serve<'a, F, Fut, R>(
        &'a self,
        request: Request,
        allowed: &'static [Method],
        respond: F,
    ) -> R
    where
        F: FnOnce(&'a AccountState, Request) -> Fut,
        Fut: Future<Output = Result<R, ApiError>>,
        R: From<Response> + WithHeaders,
    {
        let origin = AllowedOrigins::origin_of(request.headers());
        let ready = match self.ready() {
            Ok(ready) => ready,
            Err(error) => return error.into_response().into(),
        };
        let mut response: R = if request.method() == Method::OPTIONS {
            ready.cors.preflight(origin.as_ref(), allowed).into()
        } else if let Some(error) = method_not_allowed(request.method(), allowed) {
            error.into_response().into()
        } else {
            respond(ready, request)
                .await
                .unwrap_or_else(|error| error.into_response().into())
        };
        ready.cors.decorate(origin.as_ref(), response.headers_mut());
        response
    }
}

/// The signed-in user of an account route's request, with the
/// statements the route runs.
pub(crate) struct SignedIn {
    pub(crate) sql: Arc<Statements>,
    pub(crate) user: UserId,
    /// When the credential was issued: a deletion made after it is not
    /// undone with it.
    pub(crate) issued: Issued,
}

impl SignedIn {
    /// The deletion the user's account is in; a credential whose user is
    /// not there is no sign-in.
    pub(crate) async fn deletion_state(
        &self,
        ready: &AccountState,
    ) -> Result<DeletionState, ApiError> {
        accounts::deletion_state(&ready.pool, &self.sql, &self.user, ready.retention)
            .await
            .map_err(ApiError::from_database)?
            .ok_or(ApiError::Unauthorized)
    }

    /// Refuses a credential issued before the deletion `state` is in (one
    /// left signed in on a shared device): after a deletion it is no
    /// sign-in for what a deleted user may do (restore, export).
    pub(crate) fn issued_after(&self, state: &DeletionState) -> Result<(), ApiError> {
        match state {
            DeletionState::Scheduled { deleted_at, .. } if !self.issued.after(*deleted_at) => {
                Err(ApiError::SignInAgain)
            }
            _ => Ok(()),
        }
    }
}

impl AccountState {
    /// The signed-in user of `request` (for `purpose`), the credentials
    /// checked first: a request without valid ones costs no query.
    pub(crate) async fn signed_in(
        &self,
        route: &'static str,
        request: &Request,
        purpose: Purpose,
    ) -> Result<SignedIn, ApiError> {
        let presented = self.sign_in.present(request.headers(), purpose).await?;
        let sql = statements(route, &self.tables, &self.pool).await?;
        let issued = presented.issued();
        let user = self.sign_in.user(presented, &self.pool, &sql).await?;
        Ok(SignedIn { sql, user, issued })
    }

    /// The route's state on `pool`, or on a pool of its own sized for one
    /// function instance when the host shares none.
    pub(crate) fn configured(
        name: &'static str,
        config: Result<AccountConfig, ConfigErrors>,
        pool: Option<PgPool>,
    ) -> Configured<Self> {
        let state = config.map(|config| Self {
            pool: pool
                .unwrap_or_else(|| crate::platform::db::lazy_pool(config.database.clone(), 5)),
            tables: AppTables::new(config.users, config.session_auth.session_table()).recording(
                Records {
                    events: config.webhook.is_some(),
                    erased_email: false,
                },
            ),
            retention: config.retention,
            sign_in: SignIn::new(config.session_auth, &config.mail.app_url, &config.cors),
            mail: config.mail,
            cors: config.cors,
            webhook: config.webhook.map(Arc::new),
            limiter: Limiter::default(),
            sign_in_url: config.sign_in_url,
            export_exclude: config.export_exclude,
        });
        Configured::new(name, state)
    }

    /// Sends the change's email after the response. An account without an
    /// address has none; that is logged, so support can tell why no link came.
    pub(crate) fn send_email_later(
        &self,
        background: &Background,
        sql: Arc<Statements>,
        email: Option<PendingEmail>,
    ) {
        let Some(email) = email else {
            tracing::info!("the account has no email address; no email sent");
            return;
        };
        tracing::info!(outbox_id = %email.id, kind = email.kind.as_str(), "email queued");
        background.spawn(outbox::send(
            self.pool.clone(),
            sql,
            self.mail.clone(),
            self.retention,
            email,
        ));
    }

    /// Sends the change's event after the response, like its email.
    pub(crate) fn send_event_later(&self, background: &Background, event: Option<PendingEvent>) {
        if let (Some(webhook), Some(event)) = (&self.webhook, event) {
            background.spawn(events::send(self.pool.clone(), Arc::clone(webhook), event));
        }
    }
}
