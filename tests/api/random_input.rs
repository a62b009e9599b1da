//! Random input never gives a 5xx or a panic: property tests (proptest) over
//! each route's request handling and over the token and header parsers.
//! A fixed number of cases from a fixed seed, so every run tries the same
//! inputs and a failure reproduces.

use account_deletion::platform::bearer_secret::BearerSecret;
use account_deletion::platform::cors::AllowedOrigins;
use account_deletion::platform::rate_limit;
use account_deletion::platform::tokens::{RecoveryToken, SessionToken};
use account_deletion::platform::web;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use crate::helpers::{AccountApp, CRON_SECRET, read, read_reply};

/// Cases per route; each is a real request against a real database.
const ROUTE_CASES: u32 = 96;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Bytes a header value may hold (visible ASCII, space, tab, obs-text).
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x20u8..0x7f,
            1 => Just(b'\t'),
            1 => 0x80u8..=0xff,
        ],
        0..96,
    )
}

/// An `Authorization` value: every shape the parsers must survive.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_bytes(),
        header_bytes().prop_map(|rest| [b"Bearer ".as_slice(), &rest].concat()),
        header_bytes().prop_map(|rest| [b"bearer  ".as_slice(), &rest].concat()),
        Just(b"Bearer ".to_vec()),
        Just(b"Bearer undefined".to_vec()),
        Just(format!("Bearer {CRON_SECRET}").into_bytes()),
        Just(format!("Bearer {CRON_SECRET}x").into_bytes()),
        Just(format!("Basic {CRON_SECRET}").into_bytes()),
    ]
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    prop_oneof![
        authorization().prop_map(|v| ("authorization".to_owned(), v)),
        prop_oneof![
            header_bytes(),
            Just(b"https://app.example.test".to_vec()),
            Just(b"null".to_vec()),
        ]
        .prop_map(|v| ("origin".to_owned(), v)),
        prop_oneof![
            header_bytes(),
            Just(b"application/json".to_vec()),
            Just(b"application/x-www-form-urlencoded; charset=utf-8".to_vec()),
            Just(b"text/plain".to_vec()),
            Just(b"application/vnd.api+json".to_vec()),
        ]
        .prop_map(|v| ("content-type".to_owned(), v)),
        header_bytes().prop_map(|v| ("x-forwarded-for".to_owned(), v)),
        header_bytes().prop_map(|v| ("x-real-ip".to_owned(), v)),
        header_bytes().prop_map(|v| ("cookie".to_owned(), v)),
        header_bytes().prop_map(|v| ("access-control-request-method".to_owned(), v)),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => prop::sample::select(vec![
            Method::GET, Method::POST, Method::OPTIONS, Method::PUT,
            Method::DELETE, Method::PATCH, Method::HEAD, Method::TRACE,
        ]),
        1 => "[A-Z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9%&=+_.~-]{0,80}".prop_map(|q| format!("?{q}")),
        "[a-zA-Z0-9_-]{0,60}".prop_map(|t| format!("?token={t}")),
        prop::sample::select(vec!["true", "1", "false", "0", "yes", "", "%ff"])
            .prop_map(|v| format!("?dry_run={v}")),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        "[a-zA-Z0-9_-]{0,60}".prop_map(|t| format!(r#"{{"token":"{t}"}}"#).into_bytes()),
        any::<i64>().prop_map(|n| format!(r#"{{"token":{n}}}"#).into_bytes()),
        "[a-zA-Z0-9_%-]{0,60}".prop_map(|t| format!("token={t}").into_bytes()),
    ]
}

#[derive(Debug, Clone)]
struct RandomRequest {
    method: Method,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl RandomRequest {
    fn build(&self, path: &str) -> web::Request {
        let mut request = http::Request::builder()
            .method(self.method.clone())
            .uri(format!("{path}{}", self.query))
            .body(Bytes::from(self.body.clone()))
            .unwrap();
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                request
                    .headers_mut()
                    .append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
            }
        }
        request
    }
}

fn random_request() -> impl Strategy<Value = RandomRequest> {
    (
        method(),
        query(),
        prop::collection::vec(header(), 0..6),
        body(),
    )
        .prop_map(|(method, query, headers, body)| RandomRequest {
            method,
            query,
            headers,
            body,
        })
}

/// Runs `ROUTE_CASES` random requests through one route of a live app.
fn no_request_gets_a_5xx(path: &'static str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(AccountApp::with_env(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://app.example.test",
    )]));
    runner(ROUTE_CASES)
        .run(&random_request(), |input| {
            let response = runtime.block_on(async {
                let request = input.build(path);
                match path {
                    "/api/account/delete" => read(app.delete.handle(request).await).await,
                    "/api/account/recover" => read(app.recover.handle(request).await).await,
                    "/api/account/export" => read_reply(app.export.handle(request).await).await,
                    "/api/cron/send-emails" => read(app.sweep.handle(request).await).await,
                    _ => read(app.purge.handle(request).await).await,
                }
            });
            if response.status.is_server_error() {
                return Err(TestCaseError::fail(format!(
                    "{} for {input:?}: {}",
                    response.status,
                    response.text()
                )));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_requests_to_account_delete_never_get_a_5xx() {
    no_request_gets_a_5xx("/api/account/delete");
}

#[test]
fn random_requests_to_account_recover_never_get_a_5xx() {
    no_request_gets_a_5xx("/api/account/recover");
}

#[test]
fn random_requests_to_account_export_never_get_a_5xx() {
    no_request_gets_a_5xx("/api/account/export");
}

#[test]
fn random_requests_to_the_purge_never_get_a_5xx() {
    no_request_gets_a_5xx("/api/cron/permanent-delete-users");
}

#[test]
fn random_requests_to_the_email_sweep_never_get_a_5xx() {
    no_request_gets_a_5xx("/api/cron/send-emails");
}

fn headers_with(name: &'static str, value: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(name, value);
    }
    headers
}

#[test]
fn the_token_and_header_parsers_take_anything_without_panicking() {
    let secret = BearerSecret::parse(CRON_SECRET).unwrap();
    runner(2_000)
        .run(
            &(authorization(), header_bytes(), ".{0,64}"),
            |(auth, other, text)| {
                let headers = headers_with("authorization", &auth);
                // Only the exact secret, as a bearer token, opens a cron route.
                let exact = auth == format!("Bearer {CRON_SECRET}").as_bytes();
                prop_assert_eq!(secret.authorizes(&headers), exact);
                // A session token is visible ASCII, whatever arrived.
                if let Some(token) = SessionToken::from_headers(&headers) {
                    prop_assert_eq!(token.hash().len(), 32);
                }
                // Recovery tokens are exactly 43 base64url characters.
                if let Some(token) = RecoveryToken::parse(&text) {
                    prop_assert_eq!(token.as_str(), text.as_str());
                    prop_assert_eq!(text.len(), 43);
                }
                let _ = AllowedOrigins::parse(&text);
                let _ = AllowedOrigins::origin_of(&headers_with("origin", &other));
                let _ = rate_limit::ClientAddress::of(&headers_with("x-forwarded-for", &other));
                let _ = rate_limit::ClientAddress::of(&headers_with("x-real-ip", &other));
                let _ = BearerSecret::parse(&text);
                Ok(())
            },
        )
        .unwrap();
    // And every generated token parses back as itself.
    for _ in 0..100 {
        let token = RecoveryToken::generate();
        assert_eq!(
            RecoveryToken::parse(token.as_str()).map(|t| t.hash()),
            Some(token.hash())
        );
    }
}
