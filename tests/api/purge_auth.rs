use http::{Method, StatusCode};

use crate::helpers::{
    CRON_SECRET, PurgeApp, TestDb, cron_config, read, request, seed_users, user_count,
};
use account_deletion::routes::purge_users::PurgeUsers;

const PATH: &str = "/api/cron/permanent-delete-users";

#[tokio::test]
async fn every_wrong_credential_gets_401_with_a_bearer_challenge_and_deletes_nothing() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 5, Some("40 days")).await;
    let prefix = &CRON_SECRET[..CRON_SECRET.len() - 1];
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        (
            "wrong secret",
            Some("Bearer not-the-secret-at-all-0000".to_owned()),
        ),
        ("a prefix of the secret", Some(format!("Bearer {prefix}"))),
        (
            "the secret plus one character",
            Some(format!("Bearer {CRON_SECRET}x")),
        ),
        ("Bearer undefined", Some("Bearer undefined".to_owned())),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("basic scheme", Some(format!("Basic {CRON_SECRET}"))),
        ("bare secret", Some(CRON_SECRET.to_owned())),
    ];
    for method in [Method::GET, Method::POST] {
        for (case, header) in &cases {
            let headers: Vec<(&str, &str)> = header
                .iter()
                .map(|h| ("authorization", h.as_str()))
                .collect();
            let response = app.call(request(method.clone(), PATH, &headers, b"")).await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method} {case}");
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer"),
                "{case}"
            );
            assert_eq!(response.error_code(), "unauthorized");
        }
    }
    assert_eq!(user_count(app.pool()).await, 5, "nothing deleted");
}

#[tokio::test]
async fn a_missing_empty_or_short_cron_secret_refuses_every_request_with_500() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 5, Some("40 days")).await;
    let fifteen = "fifteen-chars!!";
    assert_eq!(fifteen.len(), 15);
    let configs = [
        ("unset", crate::helpers::env(&[("DATABASE_URL", &db.url())])),
        (
            "empty",
            crate::helpers::env(&[("DATABASE_URL", &db.url()), ("CRON_SECRET", "")]),
        ),
        (
            "15 characters",
            crate::helpers::env(&[("DATABASE_URL", &db.url()), ("CRON_SECRET", fifteen)]),
        ),
    ];
    for (case, env) in configs {
        let config = account_deletion::config::CronConfig::from_lookup(&env);
        let errors = config.as_ref().unwrap_err();
        assert_eq!(errors.0.len(), 1, "{case}: {errors}");
        assert_eq!(errors.0[0].variable(), "CRON_SECRET", "{case}");
        let route = PurgeUsers::new(config);
        let attempts = [
            request(Method::GET, PATH, &[], b""),
            request(
                Method::GET,
                PATH,
                &[("authorization", "Bearer undefined")],
                b"",
            ),
            request(Method::GET, PATH, &[("authorization", "Bearer ")], b""),
            request(
                Method::POST,
                PATH,
                &[("authorization", &format!("Bearer {fifteen}"))],
                b"",
            ),
            request(Method::DELETE, PATH, &[], b""),
        ];
        for attempt in attempts {
            let response = read(route.handle(attempt).await).await;
            assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR, "{case}");
            assert_eq!(response.error_code(), "server_misconfigured", "{case}");
            assert!(
                !response.text().contains("CRON_SECRET"),
                "no internals in the body"
            );
        }
    }
    assert_eq!(user_count(&db.pool).await, 5, "nothing deleted");
}

#[tokio::test]
async fn other_methods_get_405_with_an_allow_header() {
    let app = PurgeApp::new().await;
    for method in [
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ] {
        let response = app
            .call(request(
                method.clone(),
                PATH,
                &[("authorization", &format!("Bearer {CRON_SECRET}"))],
                b"",
            ))
            .await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(response.header("allow"), Some("GET, POST"));
        assert_eq!(response.error_code(), "method_not_allowed");
    }
}

#[tokio::test]
async fn get_and_post_with_the_secret_both_run_the_purge() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 3, Some("40 days")).await;
    let response = app
        .call(crate::helpers::cron_request(Method::GET, ""))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["deleted"], 3);
    assert!(
        response.header("access-control-allow-origin").is_none(),
        "cron routes send no CORS headers"
    );

    seed_users(app.pool(), 2, Some("40 days")).await;
    let response = app
        .call(crate::helpers::cron_request(Method::POST, ""))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["deleted"], 2);
}

#[tokio::test]
async fn an_invalid_dry_run_value_is_a_400_and_deletes_nothing() {
    let app = PurgeApp::new().await;
    seed_users(app.pool(), 3, Some("40 days")).await;
    let response = app
        .call(crate::helpers::cron_request(Method::GET, "?dry_run=maybe"))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.error_code(), "invalid_dry_run");
    assert_eq!(user_count(app.pool()).await, 3);
}

#[tokio::test]
async fn a_bad_retention_days_refuses_with_500_naming_the_variable() {
    let db = TestDb::new().await;
    let config = cron_config(&db.url(), &[("RETENTION_DAYS", "0")]);
    assert_eq!(
        config.as_ref().unwrap_err().0[0].variable(),
        "RETENTION_DAYS"
    );
    let route = PurgeUsers::new(config);
    let response = read(
        route
            .handle(crate::helpers::cron_request(Method::GET, ""))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.error_code(), "server_misconfigured");
}
