//! `/api/account/export`: a copy of the user's data (GDPR Art. 15 and 20).
//!
//! - `POST` signed in, without a token: emails the account's address a
//!   download link (202); once a day; 409 `no_address` when nothing could
//!   reach its holder. The sign-in's rules are the restore route's: a
//!   soft-deleted user's credential is accepted (the grace period is when a
//!   copy matters most), a token issued before the deletion is not.
//! - `GET ?token=`: the link's page, with a button; it never spends the link
//!   (mail scanners follow links).
//! - `POST` with the token (form or JSON): the archive, streamed
//!   ([`crate::lifecycle::export`]); any token that cannot serve is 410, whatever the
//!   reason, and a client's failures past the limit get 429, as on the
//!   recovery link.

use chrono::{DateTime, Utc};
use http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::auth::Purpose;
use crate::delivery::outbox;
use crate::lifecycle::export::{self, NotRequested, Requester, Snapshot};
use crate::platform::app_url::SignInUrl;
use crate::platform::html::{escape, html, page};
use crate::platform::rate_limit::ClientAddress;
use crate::platform::time::rfc3339;
use crate::platform::tokens::RecoveryToken;
use crate::platform::web::{self, ApiError, Background, Reply, Request, json};
use crate::routes::link_token::{self, BodyToken};
use crate::routes::{AccountState, Configured, SignedIn, schema_refusal, statements};

const ALLOWED: &[Method] = &[Method::GET, Method::OPTIONS, Method::POST];

const ROUTE: &str = "account-export";

/// The one answer for every link that cannot serve a download.
const INVALID_LINK: ApiError = ApiError::Gone {
    code: "invalid_or_expired_token",
    message: "This download link is invalid, used up or expired.",
};

const NO_ADDRESS: ApiError = ApiError::Conflict {
    code: "no_address",
    message: std::borrow::Cow::Borrowed(
        "This account has no email address to send the download link to.",
    ),
};

#[derive(Clone)]
pub struct ExportAccount {
    state: Configured<AccountState>,
}

account_route!(ExportAccount, "account-export");

impl ExportAccount {
    pub async fn handle(&self, request: Request) -> Reply {
        self.state.serve(request, ALLOWED, Self::respond).await
    }

    async fn respond(ready: &AccountState, request: Request) -> Result<Reply, ApiError> {
        if request.method() == Method::GET {
            return Self::page(ready, &request).await.map(Reply::from);
        }
        // A signed-in request for a link carries no token (and often no
        // body); a download carries one.
        let token = if request.body().is_empty() {
            BodyToken::Absent
        } else {
            link_token::from_body(&request)?
        };
        match token {
            BodyToken::Absent => Self::request_link(ready, &request).await.map(Reply::from),
            BodyToken::Present(_, raw) => Self::download(ready, &request, raw).await,
        }
    }

    /// POST, signed in: a new link by email.
    async fn request_link(
        ready: &AccountState,
        request: &Request,
    ) -> Result<web::Response, ApiError> {
        let signed_in = ready.signed_in(ROUTE, request, Purpose::Change).await?;
        signed_in.issued_after(&signed_in.deletion_state(ready).await?)?;
        let SignedIn { sql, user, .. } = signed_in;
        let requested = export::link::request(&ready.pool, &sql, &user, Requester::User)
            .await
            .map_err(ApiError::from_database)?
            .map_err(|refused| match refused {
                NotRequested::NoSuchUser => ApiError::Unauthorized,
                NotRequested::NoAddress => NO_ADDRESS,
                NotRequested::RateLimited {
                    retry_after_seconds,
                } => ApiError::RateLimited {
                    code: "rate_limited",
                    message: "A copy of this account's data was asked for less than 24 hours ago.",
                    retry_after_seconds,
                },
            })?;
        tracing::info!(by = "user", "export link requested");
        let background = Background::of(request);
        ready.send_event_later(&background, requested.event);
        ready.send_email_later(&background, sql, Some(requested.email));
        Ok(json(
            StatusCode::ACCEPTED,
            &Requested {
                requested_at: rfc3339(requested.requested_at),
                expires_at: rfc3339(requested.expires_at),
            },
        ))
    }

    /// GET: explains and offers a button; never spends the link.
    async fn page(ready: &AccountState, request: &Request) -> Result<web::Response, ApiError> {
        let token = link_token::from_query(request.uri().query())
            .and_then(|raw| RecoveryToken::parse(&raw));
        let link = match &token {
            Some(token) => {
                let sql = statements(ROUTE, &ready.tables, &ready.pool).await?;
                export::link::check(&ready.pool, &sql, token)
                    .await
                    .map_err(ApiError::from_database)?
            }
            None => None,
        };
        let body = match (token, link) {
            (Some(token), Some((expires_at, left))) => {
                valid_link_page(&token, expires_at, left, &ready.sign_in_url)
            }
            _ => invalid_link_page(&ready.sign_in_url),
        };
        Ok(html(StatusCode::OK, body))
    }

    /// POST with a token: the archive. The link's use is spent (and its
    /// history step and event written) before the first byte; the snapshot
    /// is opened, and the account found in it, before the answer's status
    /// is sent, so a link whose account went meanwhile is a 410, not a torn
    /// body.
    async fn download(
        ready: &AccountState,
        request: &Request,
        raw: Option<String>,
    ) -> Result<Reply, ApiError> {
        let sql = statements(ROUTE, &ready.tables, &ready.pool).await?;
        let redeemed = match raw.as_deref().and_then(RecoveryToken::parse) {
            Some(token) => export::link::redeem(&ready.pool, &sql, &token, &ready.export_exclude)
                .await
                .map_err(|error| schema_refusal(ROUTE, error))?,
            None => None,
        };
        let Some(redeemed) = redeemed else {
            let client = ClientAddress::of(request.headers());
            return match ready.limiter.record_failure(&ready.pool, &client).await {
                Ok(None) => Err(INVALID_LINK),
                Ok(Some(retry_after_seconds)) => Err(ApiError::TooManyRequests {
                    retry_after_seconds,
                }),
                Err(error) => Err(ApiError::from_database(error)),
            };
        };
        let snapshot = Snapshot::open(
            &ready.pool,
            &sql,
            &redeemed.user,
            ready.retention,
            &ready.export_exclude,
        )
        .await
        .map_err(|error| schema_refusal(ROUTE, error))?
        .ok_or(INVALID_LINK)?;
        let background = Background::of(request);
        ready.send_event_later(&background, redeemed.event);
        let file_name = snapshot.file_name();
        let (sink, body) = web::channel();
        background.spawn(async move {
            let started = std::time::Instant::now();
            match snapshot.stream(sink).await {
                Ok(manifest) => tracing::info!(
                    tables = manifest.tables.len(),
                    rows = manifest.tables.iter().map(|t| t.rows).sum::<u64>(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "export downloaded"
                ),
                Err(error) if error.client_gone() => {
                    tracing::info!("export download stopped: the client went away");
                }
                Err(error) => {
                    tracing::error!(error = %error, "export download failed; the body was torn");
                }
            }
        });
        Ok(Reply::Streamed(archive_response(&file_name, body)))
    }
}

#[derive(Serialize)]
struct Requested {
    requested_at: String,
    expires_at: String,
}

fn archive_response(file_name: &str, body: web::Streamed) -> http::Response<web::Streamed> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
            .expect("the file name is ASCII letters, digits and dashes"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn valid_link_page(
    token: &RecoveryToken,
    expires_at: DateTime<Utc>,
    downloads_left: i32,
    sign_in: &SignInUrl,
) -> String {
    let until = expires_at.format("%-d %B %Y at %H:%M UTC").to_string();
    let left = if downloads_left == 1 {
        "1 download".to_owned()
    } else {
        format!("{downloads_left} downloads")
    };
    page(
        "Download your data",
        &format!(
            "<h1>Download your data</h1>\
             <p>A copy of your account's data, as a ZIP file of JSON files: your account \
             and everything in it, read at the moment you download.</p>\
             <form method=\"post\" action=\"{}\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">Download my data</button></form>\
             <p class=\"muted\">This link works until <strong>{}</strong>, for {} more.</p>\
             <p><a href=\"{}\">Back to the app</a></p>",
            outbox::EXPORT_PATH,
            escape(token.as_str()),
            escape(&until),
            escape(&left),
            escape(sign_in.as_str()),
        ),
    )
}

fn invalid_link_page(sign_in: &SignInUrl) -> String {
    page(
        "Link invalid or expired",
        &format!(
            "<h1>This link is invalid or has expired</h1>\
             <p>A download link works for 24 hours and 3 downloads, while the account exists. \
             A newer request replaces the link in an older email.</p>\
             <p class=\"muted\">Sign in and ask for a new one.</p>\
             <p><a class=\"button\" href=\"{}\">Sign in</a></p>",
            escape(sign_in.as_str())
        ),
    )
}
