//! What only a browser decides, decided by a real one (Debian's Chromium,
//! driven by Playwright): a frontend on a sibling subdomain calling the
//! delete function with the Auth.js session cookie the app set for the
//! parent domain, `credentials: "include"`.
//!
//! - `app.example.test` (listed in `CORS_ALLOWED_ORIGINS`): the page is
//!   handed the answer, 202, and the account is deleted; before the
//!   credentials header, the browser withheld a 202 (the account deleted,
//!   the page told "Failed to fetch").
//! - A second cookie of the same name planted for the parent domain by a
//!   sibling: 401, and no one's account is deleted.
//! - `other.example.test` (not listed): the browser sends the cookie, the
//!   function refuses it (403), and the page gets no answer at all.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::adopting::{Framework, app_database};
use crate::function_binary::Function;
use crate::helpers::postgres::free_port;
use crate::helpers::smtp::SmtpSink;

const COOKIE: &str = "authjs.session-token";

/// A page that does nothing by itself; the steps fetch from it.
const PAGE: &str = "<!doctype html><title>frontend</title><p>frontend</p>";

async fn deleted(pool: &PgPool, user: &str) -> bool {
    Framework::Prisma
        .deleted_at_of(pool, user)
        .await
        .is_some_and(|at| at.is_some())
}

#[tokio::test]
async fn a_browser_on_a_listed_sibling_origin_gets_the_answer_and_a_planted_cookie_deletes_no_one()
{
    let db = app_database(Framework::Prisma).await;
    let pool = db.pool.clone();
    let smtp = SmtpSink::start().await;
    let (front_port, other_port, accounts_port) = (free_port(), free_port(), free_port());
    let app_origin = format!("http://app.example.test:{front_port}");
    let other_origin = format!("http://other.example.test:{other_port}");
    let api = format!("http://accounts.example.test:{accounts_port}");
    let (url, mail_url) = (db.url(), smtp.url());
    let delete = Function::start_bin_on(
        env!("CARGO_BIN_EXE_account-delete"),
        accounts_port,
        &[
            ("DATABASE_URL", &url),
            ("SCHEMA_PRESET", "prisma"),
            ("SESSION_AUTH", "authjs-database"),
            ("APP_URL", &api),
            ("CORS_ALLOWED_ORIGINS", &app_origin),
            ("MAIL_URL", &mail_url),
            ("MAIL_FROM", "no-reply@app.example.test"),
        ],
    )
    .await;
    let delete_url = format!("{api}/api/account/delete");
    let run = |cookies: Value, page: &str| {
        json!({
            "hosts": ["app.example.test", "other.example.test", "accounts.example.test"],
            "pages": {app_origin.clone(): PAGE, other_origin.clone(): PAGE},
            "cookies": cookies,
            "steps": [{"page": format!("{page}/"), "fetch": delete_url, "method": "POST"}],
        })
    };
    // The app's cookie, as Auth.js sets it for the parent domain so every
    // subdomain of the app shares the session.
    let parent_cookie = |value: &str| {
        json!({"name": COOKIE, "value": value, "domain": ".example.test", "path": "/",
               "sameSite": "Lax", "httpOnly": true})
    };

    // A listed origin: the page gets the 202.
    let (user, _) = Framework::Prisma.create_user(&pool).await;
    let token = Framework::Prisma.add_session(&pool, &user, 1).await;
    let seen = testkit::browser::run(&run(json!([parent_cookie(&token)]), &app_origin)).await;
    assert_eq!(
        seen[0]["status"], 202,
        "the page was handed the answer: {seen:?}"
    );
    assert!(deleted(&pool, &user).await);

    // A sibling planted a cookie of the same name for the parent domain;
    // the victim's own is host-only on the accounts host. Both go along.
    let (victim, _) = Framework::Prisma.create_user(&pool).await;
    let victims = Framework::Prisma.add_session(&pool, &victim, 1).await;
    let (sibling, _) = Framework::Prisma.create_user(&pool).await;
    let planted = Framework::Prisma.add_session(&pool, &sibling, 1).await;
    let cookies = json!([
        {"name": COOKIE, "value": victims, "url": api, "sameSite": "Lax"},
        parent_cookie(&planted),
    ]);
    let seen = testkit::browser::run(&run(cookies, &app_origin)).await;
    assert_eq!(seen[0]["status"], 401, "{seen:?}");
    assert!(!deleted(&pool, &victim).await && !deleted(&pool, &sibling).await);

    // An origin that is not listed: the cookie goes along (same site), the
    // function refuses it, and the page is handed nothing.
    let (user, _) = Framework::Prisma.create_user(&pool).await;
    let token = Framework::Prisma.add_session(&pool, &user, 1).await;
    let seen = testkit::browser::run(&run(json!([parent_cookie(&token)]), &other_origin)).await;
    assert!(
        seen[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{seen:?}"
    );
    assert!(!deleted(&pool, &user).await);
    drop(delete);
}
