//! Account events as Standard Webhooks, end to end: the routes record them
//! with the change, and a real receiver verifies each request with the
//! `standardwebhooks` package from `PyPI` (never with our own signing code).
//! Delivery is at least once with a stable `webhook-id`; these tests show
//! every event arrives, through a receiver that is down, failing, slow, and
//! swept by two instances at once.

use std::time::{Duration, Instant};

use account_deletion::config::EmailCronConfig;
use account_deletion::routes::send_emails::SendEmails;
use account_deletion::routes::status::Status;
use http::StatusCode;
use serde_json::{Value, json};
use testkit::webhook_receiver::{SECRET, WebhookReceiver};
use uuid::Uuid;

use crate::helpers::{
    APP_URL, AccountApp, CRON_SECRET, count, env, run_sweep, seed_users, show_logs_on_failure,
    status_config, status_of,
};

/// A second secret, for rotations.
const NEW_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM=";

/// The app with its webhook pointed at `receiver`, signing with `secrets`.
async fn app_for(receiver: &WebhookReceiver, secrets: &str, extra: &[(&str, &str)]) -> AccountApp {
    let url = receiver.url();
    let mut vars = vec![("WEBHOOK_URL", url.as_str()), ("WEBHOOK_SECRET", secrets)];
    vars.extend_from_slice(extra);
    AccountApp::with_env(&vars).await
}

async fn email_of(app: &AccountApp, user: Uuid) -> String {
    sqlx::query_scalar("select email from users where id = $1")
        .bind(user)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// Makes every pending event due now, as if its backoff had passed.
async fn make_events_due(app: &AccountApp) {
    sqlx::query(
        "update account_deletion.webhook_events set next_attempt_at = now(), claimed_until = null
         where status = 'pending'",
    )
    .execute(app.pool())
    .await
    .unwrap();
}

async fn expire(app: &AccountApp, users: &[Uuid]) {
    sqlx::query("update users set deleted_at = now() - interval '31 days' where id = any($1)")
        .bind(users)
        .execute(app.pool())
        .await
        .unwrap();
}

/// What the events table holds: (type, status, attempts), oldest first.
async fn events(app: &AccountApp) -> Vec<(String, String, i32)> {
    sqlx::query_as(
        "select type, status, attempts from account_deletion.webhook_events order by created_at, id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap()
}

fn of_type<'a>(requests: &'a [Value], kind: &str) -> Vec<&'a Value> {
    requests
        .iter()
        .filter(|r| r["event"]["type"] == kind)
        .collect()
}

fn rfc3339(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap_or_else(|_| panic!("not RFC 3339: {value}"))
}

#[tokio::test]
async fn each_event_type_reaches_a_receiver_that_verifies_it_with_the_reference_library() {
    let _logs = show_logs_on_failure();
    // The receiver knows only the old secret; the app signs with the new
    // and the old one during the rotation, so either verifies.
    let receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, &format!("{NEW_SECRET} {SECRET}"), &[]).await;
    let (user, session) = app.user_with_session().await;
    let address = email_of(&app, user).await;

    let token = app.delete_and_read_token(&session).await;
    let seen = receiver
        .wait_until("account.deleted", Duration::from_secs(10), |r| {
            !of_type(r, "account.deleted").is_empty()
        })
        .await;
    let deleted = of_type(&seen, "account.deleted")[0].clone();
    assert_eq!(deleted["verified"], true, "{deleted}");
    assert_eq!(deleted["signatures"], 2, "one signature per secret");
    assert_eq!(deleted["content_type"], "application/json");
    assert_eq!(deleted["path"], "/hooks/account");
    let id = deleted["webhook_id"].as_str().unwrap();
    assert!(id.starts_with("msg_"), "{id}");
    let data = &deleted["event"]["data"];
    assert_eq!(data["user_id"], user.to_string());
    let deleted_at: Option<chrono::DateTime<chrono::Utc>> = app.deleted_at_of(user).await.unwrap();
    assert_eq!(rfc3339(&data["deleted_at"]), deleted_at.unwrap());
    assert_eq!(
        rfc3339(&data["purge_after"]) - rfc3339(&data["deleted_at"]),
        chrono::Duration::days(30)
    );
    assert_eq!(deleted["event"]["timestamp"], data["deleted_at"]);

    assert_eq!(app.recover_json(&token).await.status, StatusCode::OK);
    let seen = receiver
        .wait_until("account.restored", Duration::from_secs(10), |r| {
            !of_type(r, "account.restored").is_empty()
        })
        .await;
    let restored = of_type(&seen, "account.restored")[0].clone();
    assert_eq!(restored["verified"], true, "{restored}");
    assert_eq!(restored["event"]["data"]["user_id"], user.to_string());
    assert!(rfc3339(&restored["event"]["data"]["restored_at"]) > deleted_at.unwrap());

    // Deleted again, past its retention, purged.
    app.delete_and_read_token(&session_of_new_login(&app, user).await)
        .await;
    expire(&app, &[user]).await;
    let run = app.run_purge().await;
    assert_eq!(run["deleted"], 1, "{run}");
    assert_eq!(
        run["events"]["sent"], 1,
        "the run sends its event before answering: {run}"
    );
    let seen = receiver.requests();
    let purged = of_type(&seen, "account.purged");
    assert_eq!(purged.len(), 1, "{seen:#?}");
    assert_eq!(purged[0]["verified"], true);
    assert_eq!(
        purged[0]["event"]["data"]["user_ids"],
        json!([user.to_string()])
    );
    rfc3339(&purged[0]["event"]["data"]["purged_at"]);

    // Four events (deleted, restored, deleted, purged), each once, each
    // verified, none naming the person.
    assert_eq!(seen.len(), 4, "{seen:#?}");
    let mut ids: Vec<&str> = seen
        .iter()
        .map(|r| r["webhook_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    for request in &seen {
        assert_eq!(request["verified"], true, "{request}");
        let body = request["event"].to_string();
        assert!(!body.contains(&address) && !body.contains('@'), "{body}");
    }
    assert!(
        events(&app)
            .await
            .iter()
            .all(|(_, status, attempts)| status == "sent" && *attempts == 1),
        "{:?}",
        events(&app).await
    );
}

/// A second session for `user` (the delete signed them out everywhere).
async fn session_of_new_login(app: &AccountApp, user: Uuid) -> String {
    let token = format!("session-{}", Uuid::new_v4());
    app.add_session(user, &token, "1 day").await;
    token
}

#[tokio::test]
async fn a_signature_under_a_secret_the_receiver_does_not_know_is_refused_and_retried() {
    let _logs = show_logs_on_failure();
    let receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, NEW_SECRET, &[]).await;
    let (_, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    let seen = receiver
        .wait_until("one request", Duration::from_secs(10), |r| !r.is_empty())
        .await;
    assert_eq!(seen[0]["verified"], false, "{seen:#?}");
    assert_eq!(seen[0]["status"], 400);
    wait_for_status(&app, "pending", 1).await;
    let (last_error,): (Option<String>,) =
        sqlx::query_as("select last_error from account_deletion.webhook_events")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(last_error.as_deref(), Some("status_400"));
}

/// Waits until the event's first attempt has been recorded (it runs after
/// the route answered).
async fn wait_for_status(app: &AccountApp, status: &str, attempts: i64) {
    let started = Instant::now();
    loop {
        let n = count(
            app.pool(),
            &format!(
                "select count(*) from account_deletion.webhook_events
                 where status = '{status}' and attempts = {attempts} and claimed_until is null"
            ),
        )
        .await;
        if n == 1 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            events(app).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_event_when_it_is_back() {
    let _logs = show_logs_on_failure();
    let mut receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, SECRET, &[]).await;
    receiver.go_down().await;
    let (user, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    wait_for_status(&app, "pending", 1).await;
    // Backed off like an email: the next attempt a minute later, then two.
    let wait: f64 = sqlx::query_scalar(
        "select extract(epoch from next_attempt_at - now())::float8 from account_deletion.webhook_events",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!((50.0..=61.0).contains(&wait), "{wait}");
    // Not due yet: the sweep leaves it.
    let swept = app.run_sweep().await;
    assert_eq!(swept["events"]["sent"], 0, "{swept}");
    make_events_due(&app).await;
    let swept = app.run_sweep().await;
    assert_eq!(swept["events"]["retrying"], 1, "{swept}");
    let wait: f64 = sqlx::query_scalar(
        "select extract(epoch from next_attempt_at - now())::float8 from account_deletion.webhook_events",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!((110.0..=121.0).contains(&wait), "{wait}");
    let (last_error,): (Option<String>,) =
        sqlx::query_as("select last_error from account_deletion.webhook_events")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(last_error.as_deref(), Some("connect"));

    receiver.come_back().await;
    make_events_due(&app).await;
    let swept = app.run_sweep().await;
    assert_eq!(swept["events"]["sent"], 1, "{swept}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["verified"], true);
    assert_eq!(seen[0]["event"]["data"]["user_id"], user.to_string());
    assert_eq!(
        events(&app).await,
        vec![("account.deleted".into(), "sent".into(), 3)]
    );
    // Delivered: later sweeps send nothing more.
    make_events_due(&app).await;
    assert_eq!(app.run_sweep().await["events"]["sent"], 0);
}

#[tokio::test]
async fn a_receiver_answering_500_is_retried_then_given_up_on_and_the_status_says_so() {
    let _logs = show_logs_on_failure();
    let receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, SECRET, &[]).await;
    let status = Status::new(status_config(&app.db.url(), &[]));
    // Installed just now, nothing wrong.
    assert_eq!(status_of(&status).await.0, StatusCode::OK);

    receiver.set_mode("fail", 0).await;
    let (_, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    wait_for_status(&app, "pending", 1).await;
    let mut gave_up = 0;
    for _ in 2..=8 {
        make_events_due(&app).await;
        let swept = app.run_sweep().await;
        gave_up += swept["events"]["gave_up"].as_u64().unwrap();
    }
    assert_eq!(gave_up, 1);
    assert_eq!(
        events(&app).await,
        vec![("account.deleted".into(), "failed".into(), 8)]
    );
    let seen = receiver.requests();
    assert_eq!(seen.len(), 8, "eight attempts: {seen:#?}");
    assert!(
        seen.iter()
            .all(|r| r["verified"] == true && r["status"] == 500)
    );
    let first = &seen[0]["webhook_id"];
    assert!(
        seen.iter().all(|r| &r["webhook_id"] == first),
        "one id for every attempt"
    );

    let (code, body) = status_of(&status).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["problems"], json!(["webhooks_given_up"]));
    assert_eq!(
        (
            body["webhooks_given_up"].as_i64(),
            body["webhooks_pending"].as_i64()
        ),
        (Some(1), Some(0))
    );

    // Given up means given up: the receiver is fine again, nothing is sent.
    receiver.set_mode("ok", 0).await;
    make_events_due(&app).await;
    assert_eq!(app.run_sweep().await["events"]["sent"], 0);
    // A week later it no longer alarms.
    sqlx::query(
        "update account_deletion.webhook_events set next_attempt_at = now() - interval '8 days'",
    )
    .execute(app.pool())
    .await
    .unwrap();
    assert_eq!(status_of(&status).await.0, StatusCode::OK);
}

/// Another instance of the sweep function on the app's database and
/// webhook, with `extra` settings.
fn another_sweep(
    app: &AccountApp,
    receiver: &WebhookReceiver,
    extra: &[(&str, &str)],
) -> SendEmails {
    let (url, mail, hook) = (app.db.url(), app.smtp.url(), receiver.url());
    let mut vars = vec![
        ("DATABASE_URL", url.as_str()),
        ("CRON_SECRET", CRON_SECRET),
        ("APP_URL", APP_URL),
        ("MAIL_URL", mail.as_str()),
        ("MAIL_FROM", "no-reply@app.example.test"),
        ("WEBHOOK_URL", hook.as_str()),
        ("WEBHOOK_SECRET", SECRET),
    ];
    vars.extend_from_slice(extra);
    SendEmails::new(EmailCronConfig::from_lookup(&env(&vars)))
}

/// (`last_error`, attempts, whether due now) of every pending event.
async fn attempts(app: &AccountApp) -> Vec<(Option<String>, i32, bool)> {
    sqlx::query_as(
        "select last_error, attempts, next_attempt_at <= now() from account_deletion.webhook_events
         where status = 'pending' order by id",
    )
    .fetch_all(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_receiver_that_hangs_costs_a_sweep_its_budget_and_no_more() {
    let _logs = show_logs_on_failure();
    let mut receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, SECRET, &[("EMAIL_TIME_BUDGET_SECS", "2")]).await;
    receiver.go_down().await;
    for _ in 0..3 {
        let (_, session) = app.user_with_session().await;
        app.delete_and_read_token(&session).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver.come_back().await;
    receiver.set_mode("slow", 12).await;

    // A 2 s sweep: its attempts are cut at its budget. That is the sweep's
    // limit, not the receiver's failure: not counted, due again at once.
    make_events_due(&app).await;
    let started = Instant::now();
    let swept = app.run_sweep().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the sweep took {took:?}: {swept}"
    );
    assert_eq!(swept["events"]["retrying"], 3, "{swept}");
    assert_eq!(
        attempts(&app).await,
        vec![(Some("connect".to_owned()), 1, true); 3]
    );

    // A 14 s sweep: the attempts get their whole 10 s and time out, which
    // counts; with 4 s left no second round starts.
    let patient = another_sweep(&app, &receiver, &[("EMAIL_TIME_BUDGET_SECS", "14")]);
    let started = Instant::now();
    let swept = run_sweep(&patient).await;
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(13)).contains(&took),
        "the sweep took {took:?}: {swept}"
    );
    assert_eq!(swept["events"]["retrying"], 3, "{swept}");
    assert_eq!(
        attempts(&app).await,
        vec![(Some("timeout".to_owned()), 2, false); 3]
    );

    // The receiver answers at once again: all three arrive. It saw each
    // before too (it only answered late), so it drops those by webhook-id.
    receiver.set_mode("ok", 0).await;
    make_events_due(&app).await;
    let swept = app.run_sweep().await;
    assert_eq!(swept["events"]["sent"], 3, "{swept}");
    assert_eq!(receiver.accepted().len(), 3);
}

#[tokio::test]
async fn two_concurrent_sweeps_deliver_every_event_exactly_once() {
    let _logs = show_logs_on_failure();
    let mut receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, SECRET, &[]).await;
    receiver.go_down().await;
    let users = 40;
    for _ in 0..users {
        let (_, session) = app.user_with_session().await;
        let response = app.delete_with(&session).await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
    }
    // Every first attempt failed (connection refused).
    let started = Instant::now();
    while count(
        app.pool(),
        "select count(*) from account_deletion.webhook_events where attempts = 1 and claimed_until is null",
    )
    .await
        < users
    {
        assert!(started.elapsed() < Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.come_back().await;
    // Slow enough that the two sweeps overlap for the whole run.
    receiver.set_mode("slow", 1).await;
    make_events_due(&app).await;
    let other = another_sweep(&app, &receiver, &[]);
    let (one, two) = tokio::join!(run_sweep(&app.sweep), run_sweep(&other));
    let sent = |v: &Value| v["events"]["sent"].as_i64().unwrap();
    assert_eq!(sent(&one) + sent(&two), users, "{one} {two}");
    assert!(
        sent(&one) > 0 && sent(&two) > 0,
        "both sweeps took part: {one} {two}"
    );
    let seen = receiver.requests();
    assert_eq!(seen.len() as i64, users, "no event twice: {seen:#?}");
    assert_eq!(receiver.accepted().len() as i64, users);
}

#[tokio::test]
async fn a_large_purge_groups_its_ids_a_thousand_to_an_event() {
    let _logs = show_logs_on_failure();
    let receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(
        &receiver,
        SECRET,
        &[
            ("PURGE_BATCH_SIZE", "2500"),
            ("PURGE_BATCH_TARGET_MS", "0"),
            ("PURGE_WORKERS", "1"),
        ],
    )
    .await;
    let ids = crate::helpers::seed_users(app.pool(), 2500, Some("31 days")).await;
    let run = app.run_purge().await;
    // One batch deletes all 2,500 (the next finds none and writes no event).
    assert_eq!(run["deleted"], 2500, "{run}");
    assert_eq!(run["events"]["sent"], 3, "{run}");
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.webhook_events"
        )
        .await,
        3
    );
    let seen = receiver.requests();
    let purged = of_type(&seen, "account.purged");
    let mut sizes: Vec<usize> = purged
        .iter()
        .map(|r| r["event"]["data"]["user_ids"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![500, 1000, 1000]);
    let mut got: Vec<String> = purged
        .iter()
        .flat_map(|r| r["event"]["data"]["user_ids"].as_array().unwrap().clone())
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut expected: Vec<String> = ids.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(got, expected);
    assert!(purged.iter().all(|r| r["verified"] == true));
}

/// The database refusing the event sweep (here a trigger on claiming an
/// event) fails neither the purge before it nor the email sweep beside it:
/// both answer for their own committed work, and the events stay due.
#[tokio::test]
async fn an_event_sweep_the_database_fails_leaves_the_purge_and_the_email_sweep_standing() {
    let _logs = show_logs_on_failure();
    let receiver = WebhookReceiver::start(SECRET).await;
    let app = app_for(&receiver, SECRET, &[]).await;
    let expired = seed_users(app.pool(), 3, Some("31 days")).await;
    sqlx::raw_sql(
        "create function account_deletion.refuse() returns trigger language plpgsql
             as $$ begin raise exception 'refused by the test'; end $$;
         create trigger refuse before update on account_deletion.webhook_events
             for each row execute function account_deletion.refuse();",
    )
    .execute(app.pool())
    .await
    .unwrap();

    let run = app.run_purge().await;
    assert_eq!(run["deleted"], 3, "{run}");
    assert!(run.get("events").is_none(), "{run}");
    let swept = app.run_sweep().await;
    assert_eq!(swept["sent"], 0, "{swept}");
    assert!(swept.get("events").is_none(), "{swept}");
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.webhook_events where status = 'pending' and attempts = 0"
        )
        .await,
        1
    );

    // Once the database takes it again, the next sweep sends the event.
    sqlx::raw_sql("drop trigger refuse on account_deletion.webhook_events")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(app.run_sweep().await["events"]["sent"], 1);
    let purged = &receiver.accepted()[0]["event"];
    let mut named: Vec<Uuid> = purged["data"]["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().parse().unwrap())
        .collect();
    named.sort_unstable();
    let mut expected = expired;
    expected.sort_unstable();
    assert_eq!(named, expected);
}

#[tokio::test]
async fn without_a_webhook_url_no_event_is_recorded() {
    let _logs = show_logs_on_failure();
    // A secret alone (set for every environment) changes nothing.
    let app = AccountApp::with_env(&[("WEBHOOK_SECRET", SECRET)]).await;
    let (user, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    assert_eq!(app.recover_json(&token).await.status, StatusCode::OK);
    app.delete_and_read_token(&session_of_new_login(&app, user).await)
        .await;
    expire(&app, &[user]).await;
    let run = app.run_purge().await;
    assert_eq!(run["deleted"], 1);
    assert!(run.get("events").is_none(), "{run}");
    assert!(app.run_sweep().await.get("events").is_none());
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from account_deletion.webhook_events"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_webhook_url_without_a_secret_refuses_every_request_naming_the_variable() {
    let _logs = show_logs_on_failure();
    let config = account_deletion::config::CronConfig::from_lookup(&env(&[
        ("DATABASE_URL", "postgres://localhost/x"),
        ("CRON_SECRET", CRON_SECRET),
        ("WEBHOOK_URL", "https://hooks.example.test/in"),
    ]));
    let errors = config.unwrap_err();
    assert_eq!(
        errors
            .0
            .iter()
            .map(account_deletion::config::ConfigError::variable)
            .collect::<Vec<_>>(),
        vec!["WEBHOOK_SECRET"]
    );
    let config = account_deletion::config::CronConfig::from_lookup(&env(&[
        ("DATABASE_URL", "postgres://localhost/x"),
        ("CRON_SECRET", CRON_SECRET),
        ("WEBHOOK_URL", "https://hooks.example.test/in"),
        ("WEBHOOK_SECRET", "not-a-whsec-secret"),
    ]));
    let message = config.unwrap_err().to_string();
    assert!(
        message.contains("WEBHOOK_SECRET") && message.contains("whsec_"),
        "{message}"
    );
    assert!(!message.contains("not-a-whsec-secret"), "{message}");
}
