//! Support's controls, `/api/admin/accounts`: look up, restore, resend the
//! link, hold, release, erase now; the history that answers "what happened
//! to account X"; holds the purge never crosses; and bad requests.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_SECRET, AccountApp, CRON_SECRET, TestResponse, admin_post_to, env, read, request,
    seed_users,
};

/// Another instance of the admin function on `url`.
fn admin_route(
    url: &str,
    extra: &[(&str, &str)],
) -> account_deletion::routes::admin_accounts::AdminAccounts {
    let mut vars = vec![
        ("DATABASE_URL", url),
        ("CRON_SECRET", CRON_SECRET),
        ("ADMIN_SECRET", ADMIN_SECRET),
        ("APP_URL", crate::helpers::APP_URL),
        ("MAIL_URL", "file:///tmp/unused-mail"),
        ("MAIL_FROM", "no-reply@app.example.test"),
    ];
    vars.extend_from_slice(extra);
    account_deletion::routes::admin_accounts::AdminAccounts::new(
        account_deletion::config::AdminConfig::from_lookup(&env(&vars)),
    )
}

/// An account the user deleted through the route; its id, address and the
/// token its email carried.
async fn deleted_by_user(app: &AccountApp) -> (uuid::Uuid, String, String) {
    let (user_id, session) = app.user_with_session().await;
    let email = email_of(app, user_id).await;
    let token = app.delete_and_read_token(&session).await;
    (user_id, email, token)
}

async fn email_of(app: &AccountApp, user_id: uuid::Uuid) -> String {
    sqlx::query_scalar("select email from users where id = $1")
        .bind(user_id)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn act(app: &AccountApp, user_id: uuid::Uuid, action: &str) -> TestResponse {
    app.admin_post(&json!({"user_id": user_id.to_string(), "action": action}))
        .await
}

pub(crate) fn actions(view: &Value) -> Vec<(String, String)> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap().to_owned(),
                entry["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn support_finds_an_account_by_address_or_id_and_an_erased_one_by_its_id() {
    let app = AccountApp::new().await;
    let (active, _) = app.user_with_session().await;
    let active_email = email_of(&app, active).await;
    let (deleted, deleted_email, _) = deleted_by_user(&app).await;

    let by_email = app.admin_find(&active_email).await;
    assert_eq!(by_email.status, StatusCode::OK, "{}", by_email.text());
    let view = by_email.json();
    assert_eq!(view["user_id"], active.to_string());
    assert_eq!(view["status"], "active");
    assert_eq!(view["deleted_by"], Value::Null);
    assert_eq!(view["hold"], Value::Null);
    // As typed on a ticket: another case, stray spaces.
    let shouted = format!(" {} ", active_email.to_uppercase());
    assert_eq!(
        app.admin_find(&shouted).await.json()["user_id"],
        active.to_string()
    );

    let view = app.admin_show(&format!("user_id={deleted}")).await.json();
    assert_eq!(view["status"], "scheduled");
    assert_eq!(view["deleted_by"], "user");
    assert!(view["deleted_at"].as_str().is_some() && view["purge_after"].as_str().is_some());
    assert_eq!(actions(&view), pairs(&[("deleted", "user")]));

    // Erased: found by its id, with its history; its address is gone.
    app.backdate(deleted, "31 days").await;
    assert_eq!(app.run_purge().await["deleted"], 1);
    let view = app.admin_show(&format!("user_id={deleted}")).await.json();
    assert_eq!(view["status"], "erased");
    assert_eq!(view["deleted_by"], "user");
    assert_eq!(
        actions(&view),
        pairs(&[("deleted", "user"), ("erased", "purge")])
    );
    assert_eq!(
        app.admin_find(&deleted_email).await.status,
        StatusCode::NOT_FOUND
    );
    // Nothing of the kind ever existed.
    let missing = app
        .admin_show(&format!("user_id={}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    let missing = app.admin_find("nobody@example.test").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    // The address never reaches the history.
    let text = app.admin_show(&format!("user_id={deleted}")).await.text();
    assert!(!text.contains(&deleted_email));
}

#[tokio::test]
async fn restore_and_resend_work_as_the_link_does_and_are_in_the_history() {
    let app = AccountApp::new().await;

    // restore: the user's deletion, and a deletion the app made.
    let (user, _, token) = deleted_by_user(&app).await;
    let before = app.smtp.received().len();
    let view = act(&app, user, "restore").await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text());
    let view = view.json();
    assert_eq!(view["status"], "active");
    assert_eq!(
        view["history"][1],
        json!({"at": view["history"][1]["at"], "action": "restored", "by": "admin", "via": "admin"})
    );
    assert_eq!(
        app.recover_json(&token).await.status,
        StatusCode::BAD_REQUEST
    );
    app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    let (banned, _) = app.user_with_session().await;
    app.app_soft_deletes(banned).await;
    assert_eq!(act(&app, banned, "restore").await.status, StatusCode::OK);
    assert_eq!(
        act(&app, banned, "restore").await.error_code(),
        "not_deleted"
    );

    // resend_recovery_link: a fresh link; the older one stops working.
    let (user, email, first) = deleted_by_user(&app).await;
    let before = app.smtp.received().len();
    let view = act(&app, user, "resend_recovery_link").await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text());
    assert_eq!(
        actions(&view.json()),
        pairs(&[("deleted", "user"), ("link_resent", "admin")])
    );
    let mail = app.smtp.wait_for(before + 1, Duration::from_secs(5)).await;
    let resent = mail[before..]
        .iter()
        .find(|m| m.to.iter().any(|to| to.contains(&email)))
        .unwrap()
        .token();
    assert_ne!(resent, first);
    assert_eq!(
        app.recover_json(&first).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.recover_json(&resent).await.status, StatusCode::OK);
    // Never for a deletion the app made (a ban), nor an active account.
    app.app_soft_deletes(user).await;
    assert_eq!(
        act(&app, user, "resend_recovery_link").await.error_code(),
        "not_restorable"
    );
    let (active, _) = app.user_with_session().await;
    assert_eq!(
        act(&app, active, "resend_recovery_link").await.error_code(),
        "not_deleted"
    );
}

#[tokio::test]
async fn hold_and_release_apply_to_any_account_and_are_in_the_history() {
    let app = AccountApp::new().await;
    let (active, _) = app.user_with_session().await;
    let held = app
        .admin_post(
            &json!({"user_id": active.to_string(), "action": "hold", "reason": "legal_hold"}),
        )
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.text());
    let view = held.json();
    assert_eq!(view["hold"]["reason"], "legal_hold");
    assert!(view["hold"]["since"].as_str().is_some());
    assert_eq!(view["history"][0]["reason"], "legal_hold");
    let released = act(&app, active, "release").await.json();
    assert_eq!(released["hold"], Value::Null);
    assert_eq!(
        actions(&released),
        pairs(&[("held", "admin"), ("released", "admin")])
    );
}

#[tokio::test]
async fn erase_now_erases_at_once_as_the_purge_would() {
    let app = AccountApp::new().await;
    let (active, _) = app.user_with_session().await;
    let (user, email, _) = deleted_by_user(&app).await;
    let view = act(&app, user, "erase_now").await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text());
    let view = view.json();
    assert_eq!(view["status"], "erased");
    assert_eq!(
        actions(&view),
        pairs(&[("deleted", "user"), ("erased", "admin")])
    );
    assert_eq!(app.deleted_at_of(user).await, None);
    let tombstones = crate::helpers::count(
        app.pool(),
        &format!("select count(*) from account_deletion.tombstones where user_id = '{user}'"),
    )
    .await;
    assert_eq!(tombstones, 1);
    let (kind, status, deleted): (String, String, i64) = sqlx::query_as(
        "select kind, status, deleted from account_deletion.purge_runs order by id desc limit 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        (kind.as_str(), status.as_str(), deleted),
        ("erase_now", "completed", 1)
    );
    assert!(
        !app.admin_show(&format!("user_id={user}"))
            .await
            .text()
            .contains(&email)
    );
    assert_eq!(
        act(&app, user, "erase_now").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(&app, active, "erase_now").await.error_code(),
        "not_deleted"
    );
}

#[tokio::test]
async fn erase_now_refuses_a_held_and_a_blocked_account_and_changes_nothing() {
    let app = AccountApp::new().await;
    let (held, _, _) = deleted_by_user(&app).await;
    app.admin_post(
        &json!({"user_id": held.to_string(), "action": "hold", "reason": "dispute-4411"}),
    )
    .await;
    let refused = act(&app, held, "erase_now").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "held");
    assert!(app.deleted_at_of(held).await.unwrap().is_some());

    // An invoice the law says to keep, by a key without a delete action.
    let (blocked, _, _) = deleted_by_user(&app).await;
    sqlx::raw_sql(&format!(
        "create table invoices (id bigint generated always as identity primary key,
                                user_id uuid not null constraint invoices_user_id_fkey references users (id));
         create index invoices_user_id_idx on invoices (user_id);
         insert into invoices (user_id) values ('{blocked}');"
    ))
    .execute(app.pool())
    .await
    .unwrap();
    // A new instance reads the catalog with the key in it.
    let fresh = admin_route(&app.db.url(), &[]);
    let refused = admin_post_to(
        &fresh,
        &json!({"user_id": blocked.to_string(), "action": "erase_now"}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert_eq!(refused.error_code(), "blocked");
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("invoices_user_id_fkey")
    );
    // An instance that rendered its statements before the key existed is
    // stopped by the key itself, and names it too.
    let refused = act(&app, blocked, "erase_now").await;
    assert_eq!(refused.error_code(), "blocked");
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("invoices_user_id_fkey")
    );
    assert!(app.deleted_at_of(blocked).await.unwrap().is_some());
    let runs = crate::helpers::count(
        app.pool(),
        "select count(*) from account_deletion.purge_runs where kind = 'erase_now'",
    )
    .await;
    assert_eq!(runs, 0, "a refusal books nothing");
}

#[tokio::test]
async fn held_accounts_are_left_by_the_purge_counted_as_held_and_no_problem() {
    let app = AccountApp::new().await;
    let (held, _, _) = deleted_by_user(&app).await;
    let (other, _, _) = deleted_by_user(&app).await;
    act_hold(&app, held).await;
    app.backdate(held, "40 days").await;
    app.backdate(other, "40 days").await;
    let purged = app.run_purge().await;
    assert_eq!(purged["deleted"], 1, "{purged}");
    assert_eq!(purged["held"], 1);
    assert_eq!(purged["blocked"], 0);
    assert_eq!(purged["remaining"], 0);
    assert!(app.deleted_at_of(held).await.unwrap().is_some());
    let (ledger_held,): (i64,) = sqlx::query_as(
        "select held from account_deletion.purge_runs where kind = 'scheduled' order by id desc limit 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(ledger_held, 1);
    let status = account_deletion::routes::status::Status::new(crate::helpers::status_config(
        &app.db.url(),
        &[],
    ));
    let (code, body) = crate::helpers::status_of(&status).await;
    assert_eq!(body["held"], 1, "{body}");
    assert_eq!(body["overdue"], 0, "{body}");
    assert_eq!(code, StatusCode::OK, "{body}");
    // Released, it goes with the next run.
    act(&app, held, "release").await;
    assert_eq!(app.run_purge().await["deleted"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_placed_while_a_purge_run_is_under_way_are_never_crossed() {
    // Small fixed batches, so the run lasts while the holds come in.
    let app = std::sync::Arc::new(
        AccountApp::with_env(&[
            ("PURGE_BATCH_SIZE", "10"),
            ("PURGE_BATCH_TARGET_MS", "0"),
            ("PURGE_WORKERS", "2"),
        ])
        .await,
    );
    let users = seed_users(app.pool(), 3000, Some("31 days")).await;
    let purge = {
        let app = app.clone();
        tokio::spawn(async move { app.run_purge().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut holds = Vec::new();
    // Across the whole run, from the accounts the batches reach last (they
    // take them in the order they were inserted) to the first: the early
    // holds land before the batches reach theirs, the later ones may find
    // their account gone.
    for (i, user) in users.iter().rev().step_by(75).enumerate() {
        let (app, user) = (app.clone(), *user);
        holds.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
            let response = app
                .admin_post(
                    &json!({"user_id": user.to_string(), "action": "hold", "reason": "legal_hold"}),
                )
                .await;
            (user, response.status)
        }));
    }
    let mut answers = Vec::new();
    for hold in holds {
        answers.push(hold.await.unwrap());
    }
    purge.await.unwrap();
    app.run_purge().await;
    let mut held = 0;
    for (user, status) in answers {
        match status {
            StatusCode::OK => {
                held += 1;
                assert!(
                    app.deleted_at_of(user).await.is_some(),
                    "a hold that answered 200 is never crossed"
                );
            }
            StatusCode::NOT_FOUND => {
                assert_eq!(
                    app.deleted_at_of(user).await,
                    None,
                    "erased before the hold"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    eprintln!(
        "{held} of {} holds landed, the others found their account erased",
        users.len() / 75
    );
    assert!(held > 0, "some holds landed during the run");
    assert_eq!(
        crate::helpers::user_count(app.pool()).await,
        held,
        "everything not held went"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_held_while_active_and_deleted_by_the_app_during_a_run_is_left() {
    // A run reads the held, soft-deleted accounts when it starts; one that
    // was active then, and is soft-deleted (already expired) by the app
    // while the run is under way, is caught by its changed row.
    let app = std::sync::Arc::new(
        AccountApp::with_env(&[
            ("PURGE_BATCH_SIZE", "10"),
            ("PURGE_BATCH_TARGET_MS", "0"),
            ("PURGE_WORKERS", "1"),
        ])
        .await,
    );
    seed_users(app.pool(), 2000, Some("31 days")).await;
    let held = seed_users(app.pool(), 1, None).await[0];
    act_hold(&app, held).await;
    let purge = {
        let app = app.clone();
        tokio::spawn(async move { app.run_purge().await })
    };
    // Under way: a batch is booked, so the run has read the holds.
    loop {
        let booked: i64 = sqlx::query_scalar(
            "select coalesce(sum(w.batches), 0)::bigint from account_deletion.purge_run_workers w
             join account_deletion.purge_runs r on r.id = w.run_id where r.status = 'running'",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        if booked > 0 {
            break;
        }
        assert!(!purge.is_finished(), "the run outlasts the wait");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Expired, but later than every seeded account: the batches reach it
    // in this run.
    sqlx::query("update users set deleted_at = now() - interval '30 days 1 minute' where id = $1")
        .bind(held)
        .execute(app.pool())
        .await
        .unwrap();
    let purged = purge.await.unwrap();
    assert_eq!(purged["deleted"], 2000, "{purged}");
    assert!(
        app.deleted_at_of(held).await.is_some(),
        "the hold is never crossed: {purged}"
    );
    assert_eq!(app.run_purge().await["held"], 1);
}

#[tokio::test]
async fn a_batch_trusts_what_its_run_read_of_the_holds_and_looks_up_only_the_newer_ones() {
    use account_deletion::platform::db::{Limits, Literal};
    // The batch statement as a run sends it, with what the run read at its
    // start as literals: `start` (the holds placed since are looked up) and
    // an `xmin` newer than every row (no row gets the full probe).
    let app = AccountApp::new().await;
    let sql = account_deletion::schema::sql::AppTables::new(
        account_deletion::schema::UsersTable::default_names(),
        None,
    )
    .statements(app.pool())
    .await
    .unwrap();
    let [held, unheld] = seed_users(app.pool(), 2, Some("31 days")).await[..] else {
        unreachable!()
    };
    let before_the_hold: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select clock_timestamp()")
            .fetch_one(app.pool())
            .await
            .unwrap();
    act_hold(&app, held).await;
    let after_the_hold: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select clock_timestamp()")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let newer_than_every_row: i64 = sqlx::query_scalar("select txid_current()")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let run_id: i64 = sqlx::query_scalar(
        "insert into account_deletion.purge_runs (status, dry_run, cutoff, lease_expires_at)
         values ('running', false, now(), now() + interval '1 minute') returning id",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    let batch = |start: chrono::DateTime<chrono::Utc>, held_then: Vec<String>| {
        let sql = &sql;
        let app = &app;
        async move {
            let mut conn = app.pool().acquire().await.unwrap();
            let limits = Limits::new(
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(10),
            );
            let (booked, deleted, _, _, _, _): (
                bool,
                i64,
                i64,
                Option<chrono::DateTime<chrono::Utc>>,
                Option<String>,
                String,
            ) = sql
                .purge_batch
                .fetch_optional(
                    &mut conn,
                    &limits,
                    &[
                        chrono::Utc::now().into(),
                        10_i32.into(),
                        Literal::Null,
                        run_id.into(),
                        0_i32.into(),
                        Literal::Null,
                        Literal::TextArray(held_then),
                        start.into(),
                        newer_than_every_row.into(),
                        Literal::Null,
                        Literal::Null,
                        Literal::Null,
                    ],
                )
                .await
                .unwrap()
                .unwrap();
            assert!(booked);
            deleted
        }
    };
    // Run started before the hold: the batch looks the hold up.
    let run_before = batch(before_the_hold, vec![]).await;
    assert_eq!(run_before, 1, "only the unheld account goes");
    assert_eq!(app.deleted_at_of(unheld).await, None);
    assert!(app.deleted_at_of(held).await.is_some());
    // Run started after it, with the account among those it read as held:
    // left.
    let run_after = batch(after_the_hold, vec![held.to_string()]).await;
    assert_eq!(run_after, 0);
    assert!(app.deleted_at_of(held).await.is_some());
    // And nothing else is consulted: a run that (wrongly) read no holds
    // would take it, so the batches pay no probe per account.
    let blind = batch(after_the_hold, vec![]).await;
    assert_eq!(blind, 1, "no probe of the holds per account");
}

async fn act_hold(app: &AccountApp, user: uuid::Uuid) {
    let response = app
        .admin_post(&json!({"user_id": user.to_string(), "action": "hold", "reason": "legal_hold"}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_operators_acting_on_one_account_at_once_never_both_win() {
    let app = std::sync::Arc::new(AccountApp::new().await);
    let mut outcomes = std::collections::HashMap::new();
    for round in 0..12 {
        let (user, _, _) = deleted_by_user(&app).await;
        // Restore against erase-now, and hold against erase-now.
        let rival = if round % 2 == 0 {
            json!({"user_id": user.to_string(), "action": "restore"})
        } else {
            json!({"user_id": user.to_string(), "action": "hold", "reason": "dispute"})
        };
        let erase = json!({"user_id": user.to_string(), "action": "erase_now"});
        let (a, b) = {
            let (app_a, app_b) = (app.clone(), app.clone());
            tokio::join!(
                tokio::spawn(async move { app_a.admin_post(&rival).await.status }),
                tokio::spawn(async move { app_b.admin_post(&erase).await })
            )
        };
        let (rival, erase) = (a.unwrap(), b.unwrap());
        let exists = app.deleted_at_of(user).await;
        match (rival, erase.status) {
            (StatusCode::OK, StatusCode::CONFLICT) => {
                assert!(exists.is_some(), "the rival won: the account stays");
                assert!(["not_deleted", "held"].contains(&erase.error_code().as_str()));
            }
            (StatusCode::NOT_FOUND | StatusCode::CONFLICT, StatusCode::OK) => {
                assert!(exists.is_none(), "erase now won: the account is gone");
            }
            other => panic!("round {round}: both or neither won: {other:?}"),
        }
        *outcomes.entry((rival, erase.status)).or_insert(0) += 1;
    }
    eprintln!("outcomes: {outcomes:?}");
}

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let app = AccountApp::new().await;
    let (user, email, _) = deleted_by_user(&app).await;
    let id = user.to_string();
    for (body, code) in [
        (
            json!({"user_id": id, "action": "delete_everything"}),
            "invalid_request",
        ),
        (json!({"user_id": id}), "invalid_request"),
        (json!({"action": "restore"}), "invalid_request"),
        (
            json!({"user_id": id, "email": email, "action": "restore"}),
            "invalid_request",
        ),
        (json!({"user_id": id, "action": "hold"}), "invalid_request"),
        (
            json!({"user_id": id, "action": "hold", "reason": "Court order of 12 May"}),
            "invalid_request",
        ),
        (
            json!({"user_id": id, "action": "hold", "reason": "x".repeat(41)}),
            "invalid_request",
        ),
        (
            json!({"user_id": id, "action": "hold", "reason": "legal", "note": "free text"}),
            "invalid_request",
        ),
        (
            json!({"user_id": [id], "action": "restore"}),
            "invalid_request",
        ),
        (json!("restore"), "invalid_request"),
    ] {
        let response = app.admin_post(&body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.error_code(), code, "{body}");
    }
    let auth = format!("Bearer {ADMIN_SECRET}");
    let not_json = read(
        app.admin
            .handle(request(
                Method::POST,
                "/api/admin/accounts",
                &[("authorization", &auth)],
                b"{not json",
            ))
            .await,
    )
    .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    for query in [
        "",
        "user_id=1&email=a%40b.test",
        "user_id=1&user_id=2",
        "name=x",
    ] {
        let response = app.admin_show(query).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.error_code(), "invalid_request");
    }
    let unknown = app
        .admin_post(&json!({"user_id": uuid::Uuid::new_v4().to_string(), "action": "restore"}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "not_found");
    let unknown = app
        .admin_post(&json!({"email": "nobody@example.test", "action": "hold", "reason": "x"}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Nothing changed.
    let view = app.admin_show(&format!("user_id={user}")).await.json();
    assert_eq!(view["status"], "scheduled");
    assert_eq!(view["hold"], Value::Null);
    assert_eq!(actions(&view), pairs(&[("deleted", "user")]));
}

#[tokio::test]
async fn the_admin_secret_follows_the_cron_secrets_rules_and_fails_closed() {
    let app = AccountApp::new().await;
    let (user, _, _) = deleted_by_user(&app).await;
    let id = user.to_string();
    // The secret, by the cron routes' rules.
    for auth in [
        "",
        "Bearer wrong-admin-secret-0123456789abcdef",
        &format!("Bearer {CRON_SECRET}"),
    ] {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("authorization", auth)]
        };
        let refused = read(
            app.admin
                .handle(request(
                    Method::GET,
                    &format!("/api/admin/accounts?user_id={user}"),
                    &headers,
                    b"",
                ))
                .await,
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    }
    let put = read(
        app.admin
            .handle(request(
                Method::PUT,
                "/api/admin/accounts",
                &[("authorization", &format!("Bearer {ADMIN_SECRET}"))],
                b"",
            ))
            .await,
    )
    .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.header("allow"), Some("GET, POST"));
    // Unset, short, the cron secret, or the status secret (handed to an
    // uptime monitor): every request refused, closed.
    let url = app.db.url();
    for (admin_secret, status_secret) in [
        (None, None),
        (Some("short-admin-secret"), None),
        (Some(CRON_SECRET), None),
        (Some(ADMIN_SECRET), Some(ADMIN_SECRET)),
    ] {
        let mut vars = vec![
            ("DATABASE_URL", url.as_str()),
            ("CRON_SECRET", CRON_SECRET),
            ("APP_URL", crate::helpers::APP_URL),
            ("MAIL_URL", "file:///tmp/unused-mail"),
            ("MAIL_FROM", "no-reply@app.example.test"),
        ];
        vars.extend(admin_secret.map(|secret| ("ADMIN_SECRET", secret)));
        vars.extend(status_secret.map(|secret| ("STATUS_SECRET", secret)));
        let route = account_deletion::routes::admin_accounts::AdminAccounts::new(
            account_deletion::config::AdminConfig::from_lookup(&env(&vars)),
        );
        for secret in [ADMIN_SECRET, CRON_SECRET, "short-admin-secret"] {
            let response = read(
                route
                    .handle(request(
                        Method::POST,
                        "/api/admin/accounts",
                        &[("authorization", &format!("Bearer {secret}"))],
                        json!({"user_id": id, "action": "erase_now"})
                            .to_string()
                            .as_bytes(),
                    ))
                    .await,
            )
            .await;
            assert_eq!(
                response.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{admin_secret:?}"
            );
            assert_eq!(response.error_code(), "server_misconfigured");
        }
    }
    assert!(app.deleted_at_of(user).await.unwrap().is_some());
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_by_the_function_binary() {
    let app = AccountApp::new().await;
    let (user, _, _) = deleted_by_user(&app).await;
    let url = app.db.url();
    let function = crate::function_binary::Function::start_bin(
        env!("CARGO_BIN_EXE_admin-accounts"),
        &[
            ("DATABASE_URL", &url),
            ("CRON_SECRET", CRON_SECRET),
            ("ADMIN_SECRET", ADMIN_SECRET),
            ("APP_URL", crate::helpers::APP_URL),
            ("MAIL_URL", "file:///tmp/unused-mail"),
            ("MAIL_FROM", "no-reply@app.example.test"),
        ],
    )
    .await;
    let auth = format!("Bearer {ADMIN_SECRET}");
    let huge =
        json!({"user_id": user.to_string(), "action": "erase_now", "pad": "x".repeat(20_000)});
    let answer = crate::helpers::http_client::send(
        function.port,
        "POST",
        "/api/admin/accounts",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        huge.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 413);
    assert!(app.deleted_at_of(user).await.unwrap().is_some());
    // And the binary serves the route as Vercel would.
    let answer = crate::helpers::http_client::send(
        function.port,
        "GET",
        &format!("/api/admin/accounts?user_id={user}"),
        &[("authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_waits_for_the_batches_in_flight_and_keeps_new_ones_out_until_it_commits() {
    use account_deletion::schema::sql::{GATE_EXCLUSIVE, GATE_SHARED};
    let app = std::sync::Arc::new(AccountApp::new().await);
    let (user, _, _) = deleted_by_user(&app).await;
    app.backdate(user, "31 days").await;

    // A batch in flight (it holds the gate shared until it commits): the
    // hold waits for it.
    let mut batch = app.pool().begin().await.unwrap();
    sqlx::query(GATE_SHARED).execute(&mut *batch).await.unwrap();
    let hold = {
        let app = app.clone();
        tokio::spawn(async move {
            app.admin_post(
                &json!({"user_id": user.to_string(), "action": "hold", "reason": "legal_hold"}),
            )
            .await
            .status
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !hold.is_finished(),
        "the hold waits for the batch in flight"
    );
    batch.commit().await.unwrap();
    assert_eq!(hold.await.unwrap(), StatusCode::OK);
    act(&app, user, "release").await;

    // A hold being placed (it holds the gate exclusively until it commits):
    // a purge batch waits for it, and so sees it.
    let mut placing = app.pool().begin().await.unwrap();
    sqlx::query(GATE_EXCLUSIVE)
        .execute(&mut *placing)
        .await
        .unwrap();
    let purge = {
        let app = app.clone();
        tokio::spawn(async move { app.run_purge().await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !purge.is_finished(),
        "no batch starts while a hold is being placed"
    );
    sqlx::query("insert into account_deletion.holds (user_id, reason) values ($1, 'legal_hold')")
        .bind(user.to_string())
        .execute(&mut *placing)
        .await
        .unwrap();
    placing.commit().await.unwrap();
    let purged = purge.await.unwrap();
    assert_eq!(purged["deleted"], 0, "{purged}");
    assert_eq!(purged["held"], 1, "{purged}");
    assert!(app.deleted_at_of(user).await.is_some());
}
