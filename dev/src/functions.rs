//! Every function at its Vercel path, served from the same library routes
//! the Vercel binaries call, plus `/_dev/seed` and `/_dev/backdate` for the demo journey.

use std::sync::Arc;
use std::time::Instant;

use account_deletion::config::{
    AccountConfig, AdminConfig, CronConfig, EmailCronConfig, StatusConfig, SupportConfig,
};
use account_deletion::lifecycle::support::Support;
use account_deletion::platform::db::{self, Limits};
use account_deletion::platform::web;
use account_deletion::routes::admin_accounts::AdminAccounts;
use account_deletion::routes::delete_account::DeleteAccount;
use account_deletion::routes::deletion_status::DeletionStatus;
use account_deletion::routes::export_account::ExportAccount;
use account_deletion::routes::purge_users::PurgeUsers;
use account_deletion::routes::recover_account::RecoverAccount;
use account_deletion::routes::restore_account::RestoreAccount;
use account_deletion::routes::send_emails::SendEmails;
use account_deletion::routes::status::Status;
use bytes::Bytes;
use http::StatusCode;
use sqlx::PgPool;

use crate::settings::DevSettings;

/// The functions (Vercel path, `api/` file) the dev server serves; a test
/// checks this against `api/`.
pub const PATHS: &[(&str, &str)] = &[
    ("/api/account/delete", "api/account/delete.rs"),
    ("/api/account/recover", "api/account/recover.rs"),
    ("/api/account/deletion", "api/account/deletion.rs"),
    ("/api/account/restore", "api/account/restore.rs"),
    ("/api/account/export", "api/account/export.rs"),
    ("/api/admin/accounts", "api/admin/accounts.rs"),
    (
        "/api/cron/permanent-delete-users",
        "api/cron/permanent-delete-users.rs",
    ),
    ("/api/cron/send-emails", "api/cron/send-emails.rs"),
    ("/api/status", "api/status.rs"),
];

#[derive(Clone)]
pub struct Functions {
    delete: DeleteAccount,
    recover: RecoverAccount,
    deletion: DeletionStatus,
    restore: RestoreAccount,
    export: ExportAccount,
    admin: AdminAccounts,
    /// Support's tools, for `cargo dev account` on the embedded database
    /// (`None` while the settings they need are invalid).
    support: Option<Arc<Support>>,
    purge: PurgeUsers,
    send_emails: SendEmails,
    status: Status,
    pool: PgPool,
}

impl Functions {
    /// Routes configured from the dev environment, sharing one pool (the
    /// embedded database takes a single connection).
    pub fn new(settings: &DevSettings, pool: PgPool) -> Self {
        let lookup = |name: &str| settings.get(name);
        Self {
            delete: DeleteAccount::with_pool(AccountConfig::from_lookup(&lookup), pool.clone()),
            recover: RecoverAccount::with_pool(AccountConfig::from_lookup(&lookup), pool.clone()),
            deletion: DeletionStatus::with_pool(AccountConfig::from_lookup(&lookup), pool.clone()),
            restore: RestoreAccount::with_pool(AccountConfig::from_lookup(&lookup), pool.clone()),
            export: ExportAccount::with_pool(AccountConfig::from_lookup(&lookup), pool.clone()),
            admin: AdminAccounts::with_pool(AdminConfig::from_lookup(&lookup), pool.clone()),
            support: SupportConfig::from_lookup(&lookup)
                .ok()
                .map(|config| Arc::new(Support::new(config, Some(pool.clone())))),
            purge: PurgeUsers::with_pool(CronConfig::from_lookup(&lookup), pool.clone()),
            send_emails: SendEmails::with_pool(EmailCronConfig::from_lookup(&lookup), pool.clone()),
            status: Status::with_pool(StatusConfig::from_lookup(&lookup), pool.clone()),
            pool,
        }
    }

    pub async fn handle(&self, request: web::Request) -> web::Reply {
        let started = Instant::now();
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let response: web::Reply = match path.as_str() {
            "/api/account/export" => self.export.handle(request).await,
            _ => self.handle_whole(request).await.into(),
        };
        // A streamed body is still being sent: this is when it started.
        println!(
            "{method} {path} → {} ({} ms)",
            response.status().as_u16(),
            started.elapsed().as_millis()
        );
        response
    }

    async fn handle_whole(&self, request: web::Request) -> web::Response {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        match path.as_str() {
            "/api/account/delete" => self.delete.handle(request).await,
            "/api/account/recover" => self.recover.handle(request).await,
            "/api/account/deletion" => self.deletion.handle(request).await,
            "/api/account/restore" => self.restore.handle(request).await,
            "/api/admin/accounts" => self.admin.handle(request).await,
            "/api/cron/permanent-delete-users" => self.purge.handle(request).await,
            "/api/cron/send-emails" => self.send_emails.handle(request).await,
            "/api/status" => self.status.handle(request).await,
            "/_vercel/ping" => text(StatusCode::OK, "OK"),
            "/_dev/seed" if method == http::Method::POST => {
                self.seed(query_param(&request, "email")).await
            }
            // JSON only: a page of any site can send a form or text to
            // localhost, but not JSON without asking first (CORS).
            "/_dev/account" | "/_dev/export" if !is_json(&request) => text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the command as application/json",
            ),
            "/_dev/account" if method == http::Method::POST => self.account(&request).await,
            "/_dev/export" if method == http::Method::POST => self.archive(&request).await,
            "/_dev/backdate" if method == http::Method::POST => {
                self.backdate(
                    query_param(&request, "email"),
                    query_param(&request, "days"),
                )
                .await
            }
            _ => not_found(),
        }
    }

    /// A user with a live session, as an app's sign-in would create: a new
    /// demo user, or a new session for the user with `email`.
    async fn seed(&self, email: Option<String>) -> web::Response {
        let token = format!("demo-{}", crate::settings::random_hex(16));
        let email = email
            .unwrap_or_else(|| format!("demo-{}@example.test", crate::settings::random_hex(4)));
        // Through a pooler too: one transaction, nothing prepared by name.
        let created: Result<(String,), sqlx::Error> = async {
            let mut tx = db::begin(&self.pool, &Limits::CRON).await?;
            let created = db::query_as(
                "with u as (
                 insert into users (email) values ($2)
                 on conflict (email) do update set email = excluded.email
                 returning id, email
             ), s as (
                 insert into sessions (user_id, token_hash, expires_at)
                 select id, sha256(convert_to($1, 'UTF8')), now() + interval '30 days' from u
             )
             select email from u",
            )
            .bind(&token)
            .bind(&email)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(created)
        }
        .await;
        match created {
            Ok((email,)) => web::json(
                StatusCode::CREATED,
                &serde_json::json!({ "email": email, "session_token": token }),
            ),
            Err(error) => {
                eprintln!("seed failed: {error}");
                text(StatusCode::INTERNAL_SERVER_ERROR, "seed failed")
            }
        }
    }

    /// `cargo dev account` on the embedded database, which only this process
    /// can open: `?who=…&command=…[&reason=…]`, run by the same calls.
    async fn account(&self, request: &web::Request) -> web::Response {
        let Some(support) = &self.support else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "support's settings are invalid; the dev server said which at start",
            );
        };
        // In the body: the account may be named by its address, which
        // never goes in a URL.
        let asked: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
        let who = asked["who"].as_str();
        let words: Option<Vec<&str>> = asked["words"]
            .as_array()
            .and_then(|words| words.iter().map(serde_json::Value::as_str).collect());
        let (Some(who), Some(words)) = (who, words) else {
            return text(
                StatusCode::BAD_REQUEST,
                "usage: POST /_dev/account {\"who\": …, \"words\": […]}",
            );
        };
        let answer = match crate::account::parse(who, &words) {
            Ok((who, crate::account::Command::Act(action))) => {
                crate::account::run(support, &who, &action).await
            }
            Ok((_, crate::account::Command::Export { .. })) => Err(anyhow::anyhow!(
                "an archive is written by POST /_dev/export"
            )),
            Err(error) => Err(error),
        };
        match answer {
            Ok(view) => web::json(StatusCode::OK, &view),
            Err(error) => web::json(
                StatusCode::CONFLICT,
                &serde_json::json!({ "error": format!("{error:#}") }),
            ),
        }
    }

    /// `cargo dev account <who> export` on the embedded database, which
    /// only this process can open: `{"who": …, "out": <absolute path>}`;
    /// writes the archive there and answers with its manifest.
    async fn archive(&self, request: &web::Request) -> web::Response {
        let Some(support) = &self.support else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "support's settings are invalid; the dev server said which at start",
            );
        };
        let asked: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
        let (Some(who), out) = (asked["who"].as_str(), asked["out"].as_str()) else {
            return text(
                StatusCode::BAD_REQUEST,
                "usage: POST /_dev/export {\"who\": …, \"out\": …}",
            );
        };
        match crate::account::write_archive(support, who, out.map(std::path::Path::new)).await {
            Ok((path, manifest)) => web::json(
                StatusCode::OK,
                // Where it is, wherever the command runs.
                &serde_json::json!({
                    "path": std::fs::canonicalize(&path).unwrap_or(path),
                    "manifest": manifest,
                }),
            ),
            Err(error) => web::json(
                StatusCode::CONFLICT,
                &serde_json::json!({ "error": format!("{error:#}") }),
            ),
        }
    }

    /// Makes a soft-deleted account look deleted `days` ago, so the purge
    /// (or the reminder) can be tried without waiting a month. What our
    /// tables hold about the deletion moves with it, so it is still the
    /// user's own deletion: its link keeps working while the grace period
    /// lasts, and the reminder goes out.
    async fn backdate(&self, email: Option<String>, days: Option<String>) -> web::Response {
        let (Some(email), Some(Ok(days))) = (email, days.map(|d| d.parse::<i32>())) else {
            return text(
                StatusCode::BAD_REQUEST,
                "usage: /_dev/backdate?email=…&days=…",
            );
        };
        let updated = async {
            let mut tx = db::begin(&self.pool, &Limits::CRON).await?;
            let moved: i64 = db::query_scalar(
                "with target as (
                     select id, deleted_at as before from users
                     where email = $1 and deleted_at is not null
                     for update
                 ), moved as (
                     update users u set deleted_at = now() - make_interval(days => $2)
                     from target where u.id = target.id
                     returning u.id::text as id, target.before, u.deleted_at as after
                 ), history as (
                     update account_deletion.history h set for_deleted_at = moved.after
                     from moved where h.user_id = moved.id and h.for_deleted_at = moved.before
                 ), outbox as (
                     update account_deletion.email_outbox o set for_deleted_at = moved.after
                     from moved where o.user_id = moved.id and o.for_deleted_at = moved.before
                 ), tokens as (
                     update account_deletion.recovery_tokens t set for_deleted_at = moved.after
                     from moved where t.user_id = moved.id and t.for_deleted_at = moved.before
                 )
                 select count(*) from moved",
            )
            .bind(&email)
            .bind(days)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(moved)
        }
        .await;
        match updated {
            Ok(moved) => web::json(StatusCode::OK, &serde_json::json!({ "backdated": moved })),
            Err(error) => {
                eprintln!("backdate failed: {error}");
                text(StatusCode::INTERNAL_SERVER_ERROR, "backdate failed")
            }
        }
    }
}

fn is_json(request: &web::Request) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json")
}

fn query_param(request: &web::Request, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn text(status: StatusCode, body: &'static str) -> web::Response {
    let mut response = web::Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response
}

fn not_found() -> web::Response {
    web::json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"error": "not_found", "message": "No function is served at this path."}),
    )
}

type Body = http_body_util::combinators::BoxBody<Bytes, web::Torn>;

/// A streamed body goes out as it is produced, as on Vercel.
fn into_hyper(reply: web::Reply) -> http::Response<Body> {
    use http_body_util::BodyExt;
    match reply {
        web::Reply::Whole(response) => response.map(|body| {
            http_body_util::Full::new(body)
                .map_err(|never| match never {})
                .boxed()
        }),
        web::Reply::Streamed(response) => response.map(BodyExt::boxed),
    }
}

/// Serves `functions` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, functions: Functions) -> anyhow::Result<()> {
    let functions = Arc::new(functions);
    loop {
        let (stream, _) = listener.accept().await?;
        let functions = functions.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let functions = functions.clone();
                async move {
                    let reply = match web::read_limited(request).await {
                        Ok(request) => functions.handle(request).await,
                        Err(error) => error.into_response().into(),
                    };
                    Ok::<_, std::convert::Infallible>(into_hyper(reply))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
