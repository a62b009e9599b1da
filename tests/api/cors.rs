use http::{Method, StatusCode};

use crate::helpers::{AccountApp, read, request};

const LISTED: &str = "https://frontend.example.test";

#[tokio::test]
async fn a_listed_origin_gets_the_preflight_and_its_origin_back_on_answers() {
    let app = AccountApp::with_env(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://frontend.example.test, http://localhost:5173",
    )])
    .await;
    let preflight = read(
        app.delete
            .handle(request(
                Method::OPTIONS,
                "/api/account/delete",
                &[
                    ("origin", LISTED),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization, content-type",
                    ),
                ],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(LISTED)
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let allowed_headers = preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert_eq!(preflight.header("vary"), Some("Origin"));
    // Without it a browser hands the page no answer to a request made with
    // `credentials: "include"` (a cookie's).
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );

    let (_, session) = app.user_with_session().await;
    let auth = format!("Bearer {session}");
    let answer = app
        .delete_request(&[("authorization", &auth), ("origin", LISTED)])
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(answer.header("vary"), Some("Origin"));

    let recover = read(
        app.recover
            .handle(request(
                Method::POST,
                "/api/account/recover",
                &[("origin", LISTED), ("content-type", "application/json")],
                b"{\"token\":\"x\"}",
            ))
            .await,
    )
    .await;
    assert_eq!(recover.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        recover.header("access-control-allow-origin"),
        Some(LISTED),
        "errors carry CORS headers too"
    );
}

#[tokio::test]
async fn an_unlisted_origin_gets_no_cors_headers_at_all() {
    let app = AccountApp::with_env(&[("CORS_ALLOWED_ORIGINS", LISTED)]).await;
    for origin in [
        "https://evil.example.test",
        "https://frontend.example.test.evil.test",
        "null",
    ] {
        let preflight = read(
            app.delete
                .handle(request(
                    Method::OPTIONS,
                    "/api/account/delete",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                    ],
                    b"",
                ))
                .await,
        )
        .await;
        let (_, session) = app.user_with_session().await;
        let auth = format!("Bearer {session}");
        let answer = app
            .delete_request(&[("authorization", &auth), ("origin", origin)])
            .await;
        for response in [&preflight, &answer] {
            for (name, _) in &response.headers {
                assert!(
                    !name.as_str().starts_with("access-control-"),
                    "{origin}: {name}"
                );
            }
        }
    }
}

#[tokio::test]
async fn cron_routes_never_send_cors_headers() {
    let app = AccountApp::with_env(&[("CORS_ALLOWED_ORIGINS", LISTED)]).await;
    let auth = format!("Bearer {}", crate::helpers::CRON_SECRET);
    let response = read(
        app.purge
            .handle(request(
                Method::GET,
                "/api/cron/permanent-delete-users",
                &[("authorization", &auth), ("origin", LISTED)],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.header("access-control-allow-origin").is_none());
}
