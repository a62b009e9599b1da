//! Sign-in with tokens: Auth.js JWT session cookies (`SESSION_AUTH=authjs-jwt`)
//! and providers' JWTs (`SESSION_AUTH=jwt`).
//!
//! No token here is made by our code: `tests/fixtures/tokens/generate` made
//! them with @auth/core, `NextAuth` v4 and jose from npm (see its header), and
//! valid ones expire decades from when they were made. The JWKS tests serve
//! the generated key sets from a server on loopback that counts its fetches.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Deserialize;
use sqlx::PgPool;
use testkit::jwks_server::{Behaviour, JwksServer};

use crate::adopting::{Framework, app_for};
use crate::helpers::{APP_URL, AccountApp, TestDb, TestResponse};

const AUTHJS: &str = include_str!("../fixtures/tokens/authjs.json");
const JWT: &str = include_str!("../fixtures/tokens/jwt.json");

#[derive(Deserialize)]
struct AuthjsVectors {
    secrets: Secrets,
    vectors: Vec<AuthjsVector>,
}

#[derive(Deserialize)]
struct Secrets {
    current: String,
    previous: String,
}

#[derive(Deserialize, Clone)]
struct AuthjsVector {
    name: String,
    cookie: String,
    token: String,
    sub: String,
    valid: bool,
}

#[derive(Deserialize)]
struct JwtVectors {
    issuer: String,
    audience: String,
    hs256_secret: String,
    authorized_party: String,
    jwks: serde_json::Value,
    jwks_rotated: serde_json::Value,
    vectors: Vec<JwtVector>,
}

#[derive(Deserialize, Clone)]
struct JwtVector {
    name: String,
    mode: String,
    token: String,
    sub: String,
    valid: bool,
}

fn authjs() -> AuthjsVectors {
    serde_json::from_str(AUTHJS).unwrap()
}

fn jwt() -> JwtVectors {
    serde_json::from_str(JWT).unwrap()
}

impl AuthjsVectors {
    fn named(&self, name: &str) -> AuthjsVector {
        self.vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .clone()
    }
}

impl JwtVectors {
    fn named(&self, name: &str) -> JwtVector {
        self.vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .clone()
    }
}

/// An active Prisma `"User"` with the token's subject as its id.
async fn prisma_user(pool: &PgPool, id: &str) {
    sqlx::query(r#"insert into "User" (id, email) values ($1, $1 || '@example.test')"#)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

async fn prisma_deleted(pool: &PgPool, id: &str) -> bool {
    sqlx::query_scalar(r#"select "deletedAt" is not null from "User" where id = $1"#)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// 202 for a valid vector, 401 for any other.
fn expect_answer(response: &TestResponse, valid: bool, name: &str) {
    let expected = if valid {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNAUTHORIZED
    };
    assert_eq!(response.status, expected, "{name}: {}", response.text());
}

async fn with_cookie(app: &AccountApp, cookie: &str, origin: Option<&str>) -> TestResponse {
    let mut headers = vec![("cookie", cookie)];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    app.delete_request(&headers).await
}

#[tokio::test]
async fn authjs_jwt_cookies_made_by_auth_core_sign_in_and_nothing_else_does() {
    let vectors = authjs();
    let secrets = format!("{},{}", vectors.secrets.current, vectors.secrets.previous);
    let app = app_for(
        Framework::Prisma,
        &[("SESSION_AUTH", "authjs-jwt"), ("AUTH_SECRET", &secrets)],
    )
    .await;
    let pool = app.pool();
    for vector in &vectors.vectors {
        prisma_user(pool, &vector.sub).await;
        let cookie = format!("theme=dark; {}={}", vector.cookie, vector.token);
        let response = with_cookie(&app, &cookie, Some(APP_URL)).await;
        expect_answer(&response, vector.valid, &vector.name);
        assert_eq!(
            prisma_deleted(pool, &vector.sub).await,
            vector.valid,
            "{}",
            vector.name
        );
    }
    // Every case the issue names is among them.
    for name in [
        "v5 cookie",
        "v5 secure cookie",
        "v5 cookie, previous secret (rotation)",
        "v5 cookie, expired an hour ago",
        "v5 cookie, tampered ciphertext",
        "v5 cookie, A256GCM",
        "v4 next-auth.session-token",
        "v4 __Secure-next-auth.session-token",
    ] {
        vectors.named(name);
    }
}

#[tokio::test]
async fn an_authjs_cookie_from_before_the_deletion_cannot_restore_a_newer_one_can() {
    let vectors = authjs();
    let app = app_for(
        Framework::Prisma,
        &[
            ("SESSION_AUTH", "authjs-jwt"),
            ("AUTH_SECRET", &vectors.secrets.current),
            ("RETENTION_DAYS", "3650"),
        ],
    )
    .await;
    let pool = app.pool();
    let vector = vectors.named("v5 cookie");
    prisma_user(pool, &vector.sub).await;
    let cookie = format!("{}={}", vector.cookie, vector.token);
    let headers = [("cookie", cookie.as_str()), ("origin", APP_URL)];
    let deleted = app.delete_request(&headers).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text());
    // The cookie a shared device kept (Auth.js JWT sessions last 30 days)
    // was issued before the deletion, which could not revoke it.
    let old = app.restore_with(&headers).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.text());
    assert_eq!(old.error_code(), "sign_in_again");
    assert!(prisma_deleted(pool, &vector.sub).await);
    // Had the deletion been years before the cookie (made when the user
    // signed in again), the cookie restores.
    Framework::Prisma.backdate(pool, &vector.sub, 3000).await;
    let restored = app.restore_with(&headers).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
    assert!(!prisma_deleted(pool, &vector.sub).await);
}

#[tokio::test]
async fn a_retired_secret_no_longer_decrypts() {
    let vectors = authjs();
    let app = app_for(
        Framework::Prisma,
        &[
            ("SESSION_AUTH", "authjs-jwt"),
            ("AUTH_SECRET", &vectors.secrets.current),
        ],
    )
    .await;
    let rotated = vectors.named("v5 cookie, previous secret (rotation)");
    prisma_user(app.pool(), &rotated.sub).await;
    let cookie = format!("{}={}", rotated.cookie, rotated.token);
    assert_eq!(
        with_cookie(&app, &cookie, Some(APP_URL)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(!prisma_deleted(app.pool(), &rotated.sub).await);
}

#[tokio::test]
async fn authjs_jwt_cookies_need_a_trusted_origin_bearers_and_chunks_work() {
    let vectors = authjs();
    let app = app_for(
        Framework::Prisma,
        &[
            ("SESSION_AUTH", "authjs-jwt"),
            ("AUTH_SECRET", &vectors.secrets.current),
        ],
    )
    .await;
    let pool = app.pool();
    let valid = vectors.named("v5 cookie");
    prisma_user(pool, &valid.sub).await;
    let cookie = format!("{}={}", valid.cookie, valid.token);
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let response = with_cookie(&app, &cookie, origin).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert_eq!(response.error_code(), "forbidden_origin");
    }
    assert!(
        !prisma_deleted(pool, &valid.sub).await,
        "a refused request changes nothing"
    );

    // Too long for one cookie, Auth.js splits it into `name.0`, `name.1`, ….
    let token = &valid.token;
    let third = token.len() / 3;
    let chunked = format!(
        "{name}.2={}; {name}.0={}; {name}.1={}",
        &token[2 * third..],
        &token[..third],
        &token[third..2 * third],
        name = valid.cookie
    );
    let response = with_cookie(&app, &chunked, Some(APP_URL)).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    // Deleted: the same token no longer signs in (the deleted-at check; a
    // JWT itself cannot be revoked).
    assert_eq!(
        with_cookie(&app, &cookie, Some(APP_URL)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // As a bearer header (Auth.js's getToken reads it too), no origin needed.
    let secure = vectors.named("v5 secure cookie");
    prisma_user(pool, &secure.sub).await;
    let response = app.delete_with(&secure.token).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
}

/// The functions on our default schema (uuid ids), signing in with a
/// provider's JWTs.
async fn provider_app(extra: &[(&str, &str)]) -> AccountApp {
    let vectors = jwt();
    let mut env = vec![
        ("SESSION_AUTH", "jwt"),
        ("JWT_ISSUER", vectors.issuer.as_str()),
        ("JWT_AUDIENCE", vectors.audience.as_str()),
    ];
    env.extend_from_slice(extra);
    AccountApp::on(TestDb::new().await, None, &env).await
}

async fn user(pool: &PgPool, id: &str) {
    sqlx::query("insert into users (id, email) values ($1::uuid, $1 || '@example.test')")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

async fn deleted(pool: &PgPool, id: &str) -> bool {
    sqlx::query_scalar("select deleted_at is not null from users where id = $1::uuid")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn jwks_tokens_verify_only_with_their_own_key_algorithm_and_claims() {
    let vectors = jwt();
    let server = JwksServer::start(&vectors.jwks.to_string()).await;
    let app = provider_app(&[("JWT_JWKS_URL", &server.url())]).await;
    let pool = app.pool();
    for vector in vectors.vectors.iter().filter(|v| v.mode == "jwks") {
        // The rotation's key is not served yet, and `azp` is checked only
        // with JWT_AUTHORIZED_PARTIES: their tests are below.
        if vector.name.contains("rotation") || vector.name.starts_with("Clerk-style") {
            continue;
        }
        user(pool, &vector.sub).await;
        let response = app.delete_with(&vector.token).await;
        expect_answer(&response, vector.valid, &vector.name);
        assert_eq!(
            deleted(pool, &vector.sub).await,
            vector.valid,
            "{}",
            vector.name
        );
    }
    for name in [
        "ES256",
        "RS256",
        "alg none",
        "HS256 signed with the RSA public key PEM",
        "wrong issuer",
        "wrong audience",
        "expired an hour ago",
        "not valid for decades",
    ] {
        vectors.named(name);
    }
    // One fetch for the first token; the unknown kid came within the
    // cooldown after it.
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn unknown_kids_cannot_make_us_hammer_the_provider() {
    let vectors = jwt();
    let server = JwksServer::start(&vectors.jwks.to_string()).await;
    let app = provider_app(&[("JWT_JWKS_URL", &server.url())]).await;
    let valid = vectors.named("ES256");
    user(app.pool(), &valid.sub).await;
    assert_eq!(
        app.delete_with(&valid.token).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(server.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    // Fifty tokens, each naming a kid of its own (their signatures do not
    // matter: the key is looked up first).
    let [_, payload, signature] =
        <[&str; 3]>::try_from(valid.token.split('.').collect::<Vec<_>>()).unwrap();
    for i in 0..50 {
        let header = base64_url(&format!(r#"{{"alg":"ES256","kid":"random-{i}"}}"#));
        let token = format!("{header}.{payload}.{signature}");
        assert_eq!(
            app.delete_with(&token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(server.fetches(), 2, "one refetch for fifty unknown kids");
}

#[tokio::test]
async fn a_key_added_by_a_rotation_is_fetched_after_the_cooldown() {
    let vectors = jwt();
    let server = JwksServer::start(&vectors.jwks.to_string()).await;
    let app = provider_app(&[("JWT_JWKS_URL", &server.url())]).await;
    let before = vectors.named("ES256");
    let after = vectors.named("RS256 with the key added by the rotation");
    user(app.pool(), &before.sub).await;
    user(app.pool(), &after.sub).await;
    assert_eq!(
        app.delete_with(&before.token).await.status,
        StatusCode::ACCEPTED
    );
    server.set_document(&vectors.jwks_rotated.to_string());
    // Ten seconds pass before a kid we lack makes us fetch again.
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    let response = app.delete_with(&after.token).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    assert!(deleted(app.pool(), &after.sub).await);
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_provider_that_is_down_or_hangs_gives_503_then_recovers() {
    let vectors = jwt();
    let server = JwksServer::start(&vectors.jwks.to_string()).await;
    let app = provider_app(&[("JWT_JWKS_URL", &server.url())]).await;
    let token = vectors.named("ES256");
    user(app.pool(), &token.sub).await;

    server.go_down();
    let response = app.delete_with(&token.token).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(response.error_code(), "service_unavailable");
    assert!(!deleted(app.pool(), &token.sub).await);

    // Back, but hanging: still 503, within the request's deadline.
    server.come_back().await;
    server.set_behaviour(Behaviour::Hang);
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    let started = Instant::now();
    let response = app.delete_with(&token.token).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    server.set_behaviour(Behaviour::Serve);
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    let response = app.delete_with(&token.token).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
}

#[tokio::test]
async fn a_shared_secret_verifies_hs256_and_nothing_else() {
    let vectors = jwt();
    let app = provider_app(&[("JWT_SECRET", &vectors.hs256_secret)]).await;
    let pool = app.pool();
    let mut seen = 0;
    for vector in vectors.vectors.iter().filter(|v| v.mode == "secret") {
        seen += 1;
        user(pool, &vector.sub).await;
        let response = app.delete_with(&vector.token).await;
        expect_answer(&response, vector.valid, &vector.name);
    }
    assert_eq!(seen, 5);
}

#[tokio::test]
async fn an_authorized_party_list_refuses_tokens_made_for_other_origins() {
    let vectors = jwt();
    let server = JwksServer::start(&vectors.jwks.to_string()).await;
    let app = provider_app(&[
        ("JWT_JWKS_URL", &server.url()),
        ("JWT_AUTHORIZED_PARTIES", &vectors.authorized_party),
    ])
    .await;
    for (name, status) in [
        ("Clerk-style azp from the app", StatusCode::ACCEPTED),
        (
            "Clerk-style azp from another origin",
            StatusCode::UNAUTHORIZED,
        ),
        // No azp at all, once parties are configured.
        ("ES256", StatusCode::UNAUTHORIZED),
    ] {
        let vector = vectors.named(name);
        user(app.pool(), &vector.sub).await;
        assert_eq!(
            app.delete_with(&vector.token).await.status,
            status,
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_audience_is_required_and_waived_only_by_saying_none() {
    let vectors = jwt();
    let server = JwksServer::start(&vectors.jwks.to_string()).await;
    let no_audience = vectors.named("no audience");
    // Required: a token made for another API of the provider is refused.
    let app = provider_app(&[("JWT_JWKS_URL", &server.url())]).await;
    user(app.pool(), &no_audience.sub).await;
    assert_eq!(
        app.delete_with(&no_audience.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Waived explicitly, for a provider that issues none (Clerk).
    let vectors_env = [
        ("SESSION_AUTH", "jwt"),
        ("JWT_ISSUER", vectors.issuer.as_str()),
        ("JWT_AUDIENCE", "none"),
    ];
    let url = server.url();
    let mut env = vectors_env.to_vec();
    env.push(("JWT_JWKS_URL", &url));
    let waived = AccountApp::on(TestDb::new().await, None, &env).await;
    user(waived.pool(), &no_audience.sub).await;
    assert_eq!(
        waived.delete_with(&no_audience.token).await.status,
        StatusCode::ACCEPTED
    );
    // Unset: every request is refused, naming the variable.
    env.retain(|(name, _)| *name != "JWT_AUDIENCE");
    let unset = AccountApp::on(TestDb::new().await, None, &env).await;
    let response = unset.delete_with(&no_audience.token).await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.error_code(), "server_misconfigured");
}

#[tokio::test]
async fn a_token_mode_missing_its_settings_answers_500() {
    let app = AccountApp::on(
        TestDb::new().await,
        None,
        &[
            ("SESSION_AUTH", "jwt"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
    )
    .await;
    let response = app.delete_with("a.b.c").await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.error_code(), "server_misconfigured");
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// Credentials are checked before the database is: a request without valid
/// ones is refused even when the database cannot be reached, in every mode.
#[tokio::test]
async fn requests_without_valid_credentials_are_refused_before_the_database() {
    let vectors = authjs();
    let expired = vectors.named("v5 cookie, expired an hour ago");
    let jwt_vectors = jwt();
    let cookie = format!("{}={}", expired.cookie, expired.token);
    let wrong_secret = format!(
        "Bearer {}",
        jwt_vectors.named("HS256 with another secret").token
    );
    let cases: Vec<(Pairs, Pairs, StatusCode)> = vec![
        (vec![], vec![], StatusCode::UNAUTHORIZED),
        (
            vec![("SESSION_AUTH", "authjs-database")],
            vec![("cookie", "authjs.session-token=abc")],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![
                ("SESSION_AUTH", "authjs-jwt"),
                ("AUTH_SECRET", &vectors.secrets.current),
            ],
            vec![("cookie", &cookie), ("origin", APP_URL)],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![
                ("SESSION_AUTH", "jwt"),
                ("JWT_SECRET", &jwt_vectors.hs256_secret),
                ("JWT_ISSUER", &jwt_vectors.issuer),
                ("JWT_AUDIENCE", &jwt_vectors.audience),
            ],
            vec![("authorization", &wrong_secret)],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (mode, headers, status) in cases {
        let mut vars = vec![
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("APP_URL", APP_URL),
            ("MAIL_URL", "file:///tmp/unused-mail"),
            ("MAIL_FROM", "no-reply@app.example.test"),
        ];
        vars.extend(mode.iter().copied());
        let route = account_deletion::routes::delete_account::DeleteAccount::new(
            account_deletion::config::AccountConfig::from_lookup(&crate::helpers::env(&vars)),
        );
        let response = crate::helpers::read(
            route
                .handle(crate::helpers::request(
                    http::Method::POST,
                    "/api/account/delete",
                    &headers,
                    b"",
                ))
                .await,
        )
        .await;
        assert_eq!(response.status, status, "{mode:?}: {}", response.text());
    }
}
