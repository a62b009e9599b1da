//! The signed-in way back: `GET /api/account/deletion` and `POST
//! /api/account/restore`, for a user who signs in again during the grace
//! period, in every sign-in mode, with the recovery link's guarantees.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use testkit::webhook_receiver::{SECRET, WebhookReceiver};

use crate::adopting::{Framework, app_for};
use crate::helpers::{
    APP_URL, AccountApp, TestResponse, assert_each_account_is_restored_or_erased, race_the_purge,
};

fn bearer(session: &str) -> String {
    format!("Bearer {session}")
}

async fn history_of(app: &AccountApp, user: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "select action, by, detail from account_deletion.history where user_id = $1 order by at",
    )
    .bind(user)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

fn json_of(response: &TestResponse) -> Value {
    assert!(
        response.status.is_success(),
        "{}: {}",
        response.status,
        response.text()
    );
    response.json()
}

#[tokio::test]
async fn a_user_who_signs_in_again_sees_the_deletion_and_restores_it_like_the_link_would() {
    let receiver = WebhookReceiver::start(SECRET).await;
    let hook = receiver.url();
    let app =
        AccountApp::with_env(&[("WEBHOOK_URL", hook.as_str()), ("WEBHOOK_SECRET", SECRET)]).await;
    let (user_id, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    // The delete signed them out everywhere; the app lets them sign in again.
    app.add_session(user_id, "signed-in-again", "1 day").await;
    let auth = bearer("signed-in-again");

    let state = json_of(&app.deletion_with(&[("authorization", &auth)]).await);
    assert_eq!(state["status"], "scheduled", "{state}");
    assert_eq!(state["restorable"], true);
    let deleted_at =
        chrono::DateTime::parse_from_rfc3339(state["deleted_at"].as_str().unwrap()).unwrap();
    let purge_after =
        chrono::DateTime::parse_from_rfc3339(state["purge_after"].as_str().unwrap()).unwrap();
    assert_eq!(purge_after - deleted_at, chrono::Duration::days(30));

    let before = app.smtp.received().len();
    let restored = json_of(&app.restore_with(&[("authorization", &auth)]).await);
    assert!(restored["restored_at"].as_str().is_some(), "{restored}");
    assert_eq!(app.deleted_at_of(user_id).await, Some(None));
    // The links stop working, the "restored" email goes out, the event
    // says how, and the session used stays valid.
    assert_eq!(
        app.recover_json(&token).await.status,
        StatusCode::BAD_REQUEST
    );
    let mail = app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    assert!(
        mail[before]
            .header("subject")
            .unwrap()
            .contains("has been restored")
    );
    let state = json_of(&app.deletion_with(&[("authorization", &auth)]).await);
    assert_eq!(state, serde_json::json!({"status": "active"}));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let restored_event = loop {
        let found = receiver
            .accepted()
            .into_iter()
            .find(|r| r["event"]["type"] == "account.restored");
        if let Some(event) = found {
            break event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no account.restored event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(restored_event["event"]["data"]["via"], "sign_in");
    assert_eq!(
        restored_event["event"]["data"]["user_id"],
        user_id.to_string()
    );
    assert_eq!(
        history_of(&app, &user_id.to_string()).await,
        [
            ("deleted".to_owned(), "user".to_owned(), None),
            (
                "restored".to_owned(),
                "user".to_owned(),
                Some("sign_in".to_owned())
            ),
        ]
    );

    // Again: nothing to restore.
    let again = app.restore_with(&[("authorization", &auth)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "not_deleted");
}

#[tokio::test]
async fn a_deletion_the_app_made_or_one_past_its_grace_period_is_not_restorable_by_signing_in() {
    let app = AccountApp::new().await;
    // A ban: the app sets the deleted-at itself, and lets the user sign in.
    let (banned, session) = app.user_with_session().await;
    app.app_soft_deletes(banned).await;
    let auth = bearer(&session);
    let state = json_of(&app.deletion_with(&[("authorization", &auth)]).await);
    assert_eq!(state["status"], "scheduled");
    assert_eq!(state["restorable"], false);
    let refused = app.restore_with(&[("authorization", &auth)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "not_restorable");
    assert!(app.deleted_at_of(banned).await.unwrap().is_some());

    // The user's own deletion, past its grace period (the purge has not run).
    let (late, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    app.add_session(late, "late-session", "1 day").await;
    app.backdate(late, "30 days 1 second").await;
    let auth = bearer("late-session");
    assert_eq!(
        json_of(&app.deletion_with(&[("authorization", &auth)]).await)["restorable"],
        false
    );
    let refused = app.restore_with(&[("authorization", &auth)]).await;
    assert_eq!(refused.error_code(), "not_restorable");
    assert!(app.deleted_at_of(late).await.unwrap().is_some());

    // No credentials, or a session that is not live: 401.
    for headers in [vec![], vec![("authorization", "Bearer nobody-has-this")]] {
        assert_eq!(
            app.deletion_with(&headers).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.restore_with(&headers).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn an_authjs_cookie_of_a_soft_deleted_user_reads_and_restores_by_the_cookie_rules() {
    let app = app_for(Framework::Prisma, &[]).await;
    let pool = app.pool();
    let (user, _) = Framework::Prisma.create_user(pool).await;
    let session = Framework::Prisma.add_session(pool, &user, 1).await;
    let auth = bearer(&session);
    assert_eq!(
        app.delete_request(&[("authorization", &auth)]).await.status,
        StatusCode::ACCEPTED
    );
    // Auth.js lets them sign in again: a new database session.
    let again = Framework::Prisma.add_session(pool, &user, 1).await;
    let cookie = format!("authjs.session-token={again}");
    // A read may come without Origin (a same-origin GET), never from an
    // untrusted one.
    for (origin, expected) in [
        (None, StatusCode::OK),
        (Some(APP_URL), StatusCode::OK),
        (Some("https://evil.example.test"), StatusCode::FORBIDDEN),
    ] {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend(origin.map(|o| ("origin", o)));
        assert_eq!(
            app.deletion_with(&headers).await.status,
            expected,
            "{origin:?}"
        );
    }
    // A change needs the trusted Origin.
    for origin in [None, Some("https://evil.example.test")] {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend(origin.map(|o| ("origin", o)));
        let refused = app.restore_with(&headers).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{origin:?}");
    }
    assert!(matches!(
        Framework::Prisma.deleted_at_of(pool, &user).await,
        Some(Some(_))
    ));
    let restored = app
        .restore_with(&[("cookie", &cookie), ("origin", APP_URL)])
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
    assert_eq!(
        Framework::Prisma.deleted_at_of(pool, &user).await,
        Some(None)
    );
    // The session stays valid.
    assert_eq!(Framework::Prisma.sessions_of(pool, &user).await, 1);
}

/// The JWT vector `name` (made by `jose`, tests/fixtures/tokens) and all
/// the vectors' settings.
fn jwt_vector(name: &str) -> (Value, Value) {
    let vectors: Value = serde_json::from_str(include_str!("../fixtures/tokens/jwt.json")).unwrap();
    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap()
        .clone();
    (vectors, vector)
}

/// When a JWS says it was issued.
fn issued_at(token: &str) -> chrono::DateTime<chrono::Utc> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    chrono::DateTime::from_timestamp(claims["iat"].as_i64().unwrap(), 0).unwrap()
}

/// Moves user `sub`'s deletion (and our records of it) to a day before
/// `before`: the token was then issued after it, as one made by signing
/// in again would be.
async fn deleted_a_day_before(app: &AccountApp, sub: &str, before: chrono::DateTime<chrono::Utc>) {
    let deleted_at = app
        .deleted_at_of(sub.parse().unwrap())
        .await
        .flatten()
        .unwrap();
    let seconds = (deleted_at - before).num_seconds() + 86_400;
    app.backdate(sub.parse().unwrap(), &format!("{seconds} seconds"))
        .await;
}

async fn jwt_app(vectors: &Value) -> AccountApp {
    AccountApp::with_env(&[
        ("SESSION_AUTH", "jwt"),
        ("JWT_SECRET", vectors["hs256_secret"].as_str().unwrap()),
        ("JWT_ISSUER", vectors["issuer"].as_str().unwrap()),
        ("JWT_AUDIENCE", vectors["audience"].as_str().unwrap()),
        // The vectors were made days ago; a deletion before them is still
        // inside its grace period.
        ("RETENTION_DAYS", "3650"),
    ])
    .await
}

#[tokio::test]
async fn a_jwt_of_a_soft_deleted_user_reads_and_restores_only_if_issued_after_the_deletion() {
    let (vectors, vector) = jwt_vector("HS256 (shared secret)");
    let app = jwt_app(&vectors).await;
    let sub = vector["sub"].as_str().unwrap();
    let auth = bearer(vector["token"].as_str().unwrap());
    // A token whose subject has no account: no sign-in.
    assert_eq!(
        app.deletion_with(&[("authorization", &auth)]).await.status,
        StatusCode::UNAUTHORIZED
    );
    sqlx::query("insert into users (id, email) values ($1::uuid, 'jwt@example.test')")
        .bind(sub)
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        json_of(&app.deletion_with(&[("authorization", &auth)]).await)["status"],
        "active"
    );
    assert_eq!(
        app.restore_with(&[("authorization", &auth)])
            .await
            .error_code(),
        "not_deleted"
    );
    let deleted = app.delete_request(&[("authorization", &auth)]).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    // The same token still signs in (a JWT cannot be revoked) and reads the
    // deletion, but was issued before it: one left on a shared device must
    // not undo the owner's deletion.
    assert_eq!(
        json_of(&app.deletion_with(&[("authorization", &auth)]).await)["restorable"],
        true
    );
    let old = app.restore_with(&[("authorization", &auth)]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.text());
    assert_eq!(old.error_code(), "sign_in_again");
    assert!(
        app.deleted_at_of(sub.parse().unwrap())
            .await
            .flatten()
            .is_some()
    );
    // Signed in again after the deletion: that token restores.
    deleted_a_day_before(&app, sub, issued_at(vector["token"].as_str().unwrap())).await;
    let restored = app.restore_with(&[("authorization", &auth)]).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
    assert_eq!(
        app.deleted_at_of(sub.parse().unwrap()).await.flatten(),
        None
    );
}

#[tokio::test]
async fn a_jwt_that_does_not_say_when_it_was_issued_never_restores() {
    let (vectors, vector) = jwt_vector("HS256 without iat");
    let app = jwt_app(&vectors).await;
    let sub = vector["sub"].as_str().unwrap();
    let auth = bearer(vector["token"].as_str().unwrap());
    sqlx::query("insert into users (id, email) values ($1::uuid, 'no-iat@example.test')")
        .bind(sub)
        .execute(app.pool())
        .await
        .unwrap();
    let deleted = app.delete_request(&[("authorization", &auth)]).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text());
    // However long ago the deletion was.
    app.backdate(sub.parse().unwrap(), "3000 days").await;
    let refused = app.restore_with(&[("authorization", &auth)]).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
    assert_eq!(refused.error_code(), "sign_in_again");
    assert!(
        app.deleted_at_of(sub.parse().unwrap())
            .await
            .flatten()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_signed_in_restores_racing_the_purge_never_answer_200_for_an_account_then_erased() {
    let app = AccountApp::with_env(&[("PURGE_BATCH_SIZE", "5")]).await;
    let mut accounts = Vec::new();
    for i in 0..40 {
        let (user_id, session) = app.user_with_session().await;
        app.delete_and_read_token(&session).await;
        let again = format!("again-{i}-{user_id}");
        app.add_session(user_id, &again, "1 day").await;
        accounts.push((user_id, again));
    }
    // Every deletion right at the edge of its grace period: restorable for
    // a few hundred milliseconds more, then due.
    sqlx::raw_sql(
        "update users set deleted_at = now() - interval '30 days' + interval '300 milliseconds' where deleted_at is not null;
         update account_deletion.history h set for_deleted_at = u.deleted_at from users u
         where u.id::text = h.user_id and h.action = 'deleted';",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let app = std::sync::Arc::new(app);
    let answers = race_the_purge(&app, accounts, 4, |app, _, (_, session)| async move {
        app.restore_with(&[("authorization", &bearer(&session))])
            .await
            .status
    })
    .await;
    assert_each_account_is_restored_or_erased(
        &app,
        answers,
        &[
            // Too late: 409 while the row was still there, 401 once the purge
            // had taken it (and its sessions with it).
            StatusCode::CONFLICT,
            StatusCode::UNAUTHORIZED,
        ],
    )
    .await;
}
