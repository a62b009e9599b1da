use account_deletion::platform::web::{self, ApiError};
use bytes::Bytes;
use http::{Method, StatusCode};

use crate::function_binary::Function;
use crate::helpers::http_client::send;
use crate::helpers::{AccountApp, read, request};

const PATH: &str = "/api/account/recover";

#[tokio::test]
async fn hostile_bodies_get_4xx_contract_answers_change_nothing_and_the_route_keeps_serving() {
    let app = AccountApp::new().await;
    let (user_id, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{\"token\":".to_vec()),
        ("application/json", b"{\"token\": 123}".to_vec()),
        ("application/json", b"{\"token\": [\"a\"]}".to_vec()),
        ("application/json", b"{\"token\": null}".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", vec![0xff, 0xfe, b'{', 0x80]),
        (
            "application/json",
            b"{\"token\": \"' OR 1=1; drop table users; --\"}".to_vec(),
        ),
        (
            "application/json",
            format!("{{\"token\": \"{token}' --\"}}").into_bytes(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"token=%FF%FE".to_vec(),
        ),
        ("application/x-www-form-urlencoded", b"tok=en".to_vec()),
        ("text/plain", token.clone().into_bytes()),
    ];
    for (content_type, body) in bodies {
        let response = read(
            app.recover
                .handle(request(
                    Method::POST,
                    PATH,
                    &[
                        ("content-type", content_type),
                        ("x-real-ip", "198.51.100.1"),
                    ],
                    &body,
                ))
                .await,
        )
        .await;
        assert!(
            response.status.is_client_error(),
            "{content_type} {body:?}: {}",
            response.status
        );
        let code = response.error_code();
        assert!(
            code == "invalid_or_expired_token" || code == "unsupported_media_type",
            "{code}"
        );
    }
    assert!(
        app.deleted_at_of(user_id).await.unwrap().is_some(),
        "nothing changed"
    );
    assert_eq!(
        app.recover_json(&token).await.status,
        StatusCode::OK,
        "still serving, token intact"
    );
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_refused_before_parsing() {
    let body = http_body_util::Full::new(Bytes::from(vec![b'{'; 8 * 1024 * 1024]));
    let streamed = http::Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .body(body)
        .unwrap();
    let error = web::read_limited(streamed).await.unwrap_err();
    assert!(matches!(error, ApiError::PayloadTooLarge));
    let small = http::Request::builder()
        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        web::read_limited(small).await.unwrap().body().as_ref(),
        b"{}"
    );
}

#[tokio::test]
async fn an_8_mib_body_gets_413_from_the_function_binary_which_keeps_serving() {
    let app = AccountApp::new().await;
    let url = app.db.url();
    let mail_url = app.smtp.url();
    let function = Function::start_bin(
        env!("CARGO_BIN_EXE_account-recover"),
        &[
            ("DATABASE_URL", &url),
            ("APP_URL", crate::helpers::APP_URL),
            ("MAIL_URL", &mail_url),
            ("MAIL_FROM", "no-reply@app.example.test"),
        ],
    )
    .await;
    let huge = vec![b'a'; 8 * 1024 * 1024];
    let response = send(
        function.port,
        "POST",
        PATH,
        &[("content-type", "application/json")],
        &huge,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"], "payload_too_large");

    let page = send(function.port, "GET", &format!("{PATH}?token=x"), &[], b"")
        .await
        .unwrap();
    assert_eq!(page.status, 200, "still serving");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let bad = send(
        function.port,
        "POST",
        PATH,
        &[("content-type", "application/json")],
        b"{\"token\":\"nope\"}",
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid_or_expired_token");
}

#[tokio::test]
async fn twenty_one_failed_recoveries_from_one_client_get_429_with_retry_after_but_a_valid_token_still_restores()
 {
    let app = AccountApp::new().await;
    let (_, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    let attempt = |ip: &'static str, token: String| {
        let body = serde_json::json!({ "token": token }).to_string();
        let req = request(
            Method::POST,
            PATH,
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", ip),
            ],
            body.as_bytes(),
        );
        let recover = app.recover.clone();
        async move { read(recover.handle(req).await).await }
    };
    for i in 0..20 {
        let response = attempt("203.0.113.7", format!("wrong-{i}")).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "attempt {}",
            i + 1
        );
    }
    let limited = attempt("203.0.113.7", "wrong-21".to_owned()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_code(), "too_many_requests");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // The right token restores, whatever its client's count: a neighbour
    // behind the same address cannot lock the owner out.
    assert_eq!(
        attempt("203.0.113.7", token.clone()).await.status,
        StatusCode::OK
    );
}

/// One wrong-token recovery from `address` (in `x-real-ip`).
async fn fail_from(app: &AccountApp, address: &str) -> StatusCode {
    app.recover_json_with(&"W".repeat(43), &[("x-real-ip", address)])
        .await
        .status
}

#[tokio::test]
async fn failures_are_counted_per_ipv6_64_under_a_keyed_hash_and_pruned_as_they_are_written() {
    use sha2::{Digest, Sha256};
    let app = AccountApp::new().await;
    // Twenty addresses of one /64 are one client.
    for i in 1..=20 {
        let address = format!("2001:db8:1:2::{i:x}");
        assert_eq!(
            fail_from(&app, &address).await,
            StatusCode::BAD_REQUEST,
            "{address}"
        );
    }
    assert_eq!(
        fail_from(&app, "2001:db8:1:2:ffff:ffff:ffff:ffff").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The next /64 is another client.
    assert_eq!(
        fail_from(&app, "2001:db8:1:3::1").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fail_from(&app, "198.51.100.7").await,
        StatusCode::BAD_REQUEST
    );

    // Stored under the deployment's key: no row is a bare SHA-256 of the
    // address (which a table of every IPv4 address would reverse).
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select client_hash from account_deletion.recovery_failures")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 3);
    for address in ["198.51.100.7", "2001:db8:1:3::/64", "2001:db8:1:3::1"] {
        let bare: Vec<u8> = Sha256::digest(address.as_bytes()).to_vec();
        assert!(
            !stored.contains(&bare),
            "{address} is stored as a bare hash"
        );
    }

    // A window that has passed goes with the next failure of anyone, not
    // with the next daily sweep.
    sqlx::query(
        "update account_deletion.recovery_failures set window_started_at = now() - interval '16 minutes'
         where failures > 1",
    )
    .execute(app.pool())
    .await
    .unwrap();
    assert_eq!(
        fail_from(&app, "203.0.113.99").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        crate::helpers::count(
            app.pool(),
            "select count(*) from account_deletion.recovery_failures"
        )
        .await,
        3,
        "the /64's passed window was pruned, the two others and the new one stay"
    );
    // And that client starts over.
    assert_eq!(
        fail_from(&app, "2001:db8:1:2::1").await,
        StatusCode::BAD_REQUEST
    );
}
