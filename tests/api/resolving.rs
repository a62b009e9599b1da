//! Which account support's input names: an id in any spelling is one
//! account, anything that is no id is refused before the database; an
//! address picks the exact match, or the one folded match, never one of
//! several; and an address never goes in a URL.

use http::StatusCode;
use serde_json::{Value, json};

use account_deletion::schema::UsersTable;
use account_deletion::schema::sql::AppTables;

use crate::adopting::{Framework, app_for};
use crate::helpers::{AccountApp, TestResponse};

async fn history_ids(app: &AccountApp) -> Vec<String> {
    sqlx::query_scalar("select distinct user_id from account_deletion.history order by 1")
        .fetch_all(app.pool())
        .await
        .unwrap()
}

fn spellings(id: uuid::Uuid) -> Vec<String> {
    let canonical = id.to_string();
    vec![
        canonical.to_uppercase(),
        id.simple().to_string(),
        format!("{{{canonical}}}"),
        format!("{{{}}}", canonical.to_uppercase()),
    ]
}

#[tokio::test]
async fn every_spelling_of_a_uuid_names_one_account_its_hold_and_its_history() {
    let app = AccountApp::new().await;
    let (user, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    let spelled = spellings(user);
    // Held under one spelling, seen under every other.
    let held = app
        .admin_post(&json!({"user_id": spelled[0], "action": "hold", "reason": "legal_hold"}))
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.text());
    assert_eq!(held.json()["user_id"], user.to_string());
    for spelling in &spelled {
        let shown = app
            .admin_post(&json!({"user_id": spelling, "action": "show"}))
            .await
            .json();
        assert_eq!(shown["user_id"], user.to_string(), "{spelling}");
        assert_eq!(shown["hold"]["reason"], "legal_hold", "{spelling}: {shown}");
        assert_eq!(shown["history"].as_array().unwrap().len(), 2, "{shown}");
        let query = format!("user_id={}", crate::helpers::urlencode(spelling));
        assert_eq!(app.admin_show(&query).await.json(), shown, "{spelling}");
    }
    // The hold stands whatever the spelling of the erasure.
    let refused = app
        .admin_post(&json!({"user_id": spelled[1], "action": "erase_now"}))
        .await;
    assert_eq!(refused.error_code(), "held", "{}", refused.text());
    app.admin_post(&json!({"user_id": spelled[2], "action": "release"}))
        .await;
    let erased = app
        .admin_post(&json!({"user_id": spelled[3], "action": "erase_now"}))
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text());
    // Every step is filed under the one id the database prints.
    assert_eq!(history_ids(&app).await, vec![user.to_string()]);
    for spelling in &spelled {
        let query = format!("user_id={}", crate::helpers::urlencode(spelling));
        let shown = app.admin_show(&query).await;
        assert_eq!(shown.status, StatusCode::OK, "{spelling}: {}", shown.text());
        assert_eq!(shown.json()["status"], "erased");
        let actions: Vec<String> = shown.json()["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            actions,
            ["deleted", "held", "released", "erased"],
            "{spelling}"
        );
    }
}

#[tokio::test]
async fn anything_that_is_no_id_of_the_columns_type_is_a_400_never_a_5xx() {
    let app = AccountApp::new().await;
    let (user, _) = app.user_with_session().await;
    let refusals: Vec<Value> = vec![
        json!(format!("urn:uuid:{user}")),
        json!("not-a-uuid"),
        json!(""),
        json!(format!(" {user}")),
        json!(7),
    ];
    for id in refusals {
        let response = app
            .admin_post(&json!({"user_id": id, "action": "hold", "reason": "x"}))
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{id}: {}",
            response.text()
        );
        assert_eq!(response.error_code(), "invalid_request", "{id}");
        if let Some(id) = id.as_str() {
            let query = format!("user_id={}", crate::helpers::urlencode(id));
            let shown = app.admin_show(&query).await;
            assert_eq!(
                shown.status,
                StatusCode::BAD_REQUEST,
                "{id}: {}",
                shown.text()
            );
        }
    }
    let holds: i64 = sqlx::query_scalar("select count(*) from account_deletion.holds")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(holds, 0);
}

#[tokio::test]
async fn an_integer_id_with_leading_zeros_is_the_same_account() {
    let app = app_for(Framework::Django, &[]).await;
    let (user, _) = Framework::Django.create_user(app.pool()).await;
    let padded = format!("00{user}");
    let held = app
        .admin_post(&json!({"user_id": padded, "action": "hold", "reason": "legal_hold"}))
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.text());
    assert_eq!(held.json()["user_id"], user);
    let shown = app.admin_show(&format!("user_id={user}")).await.json();
    assert_eq!(shown["hold"]["reason"], "legal_hold", "{shown}");
    let number: i64 = user.parse().unwrap();
    let by_number = app
        .admin_post(&json!({"user_id": number, "action": "show"}))
        .await
        .json();
    assert_eq!(by_number["hold"]["reason"], "legal_hold");
    for bad in ["+7", "7.0", "1e3", "99999999999999999999", "seven"] {
        let response = app
            .admin_post(&json!({"user_id": bad, "action": "show"}))
            .await;
        assert_eq!(response.error_code(), "invalid_request", "{bad}");
    }
}

async fn user_with_email(app: &AccountApp, email: &str) -> String {
    sqlx::query_scalar("insert into users (email) values ($1) returning id::text")
        .bind(email)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn by_email(app: &AccountApp, email: &str, action: &str) -> TestResponse {
    app.admin_post(&json!({"email": email, "action": action, "reason": "legal_hold"}))
        .await
}

#[tokio::test]
async fn an_exact_address_wins_one_folded_match_is_taken_and_several_are_ambiguous() {
    let app = AccountApp::new().await;
    // A case-sensitive unique index allows both.
    let upper = user_with_email(&app, "Ann@x.test").await;
    let lower = user_with_email(&app, "ann@x.test").await;
    let other = user_with_email(&app, "Bob@x.test").await;
    sqlx::query("update users set deleted_at = now() where id::text in ($1, $2)")
        .bind(&upper)
        .bind(&lower)
        .execute(app.pool())
        .await
        .unwrap();

    // Exact matches pick their own account.
    for (typed, id) in [("Ann@x.test", &upper), ("ann@x.test", &lower)] {
        let shown = by_email(&app, typed, "show").await;
        assert_eq!(shown.json()["user_id"], id.as_str(), "{typed}");
    }
    // One folded match: that account.
    assert_eq!(
        by_email(&app, " BOB@X.TEST ", "show").await.json()["user_id"],
        other.as_str()
    );
    // Two folded matches and no exact one: nothing done, both named.
    for action in ["erase_now", "hold", "restore", "show"] {
        let response = by_email(&app, "ANN@x.test", action).await;
        assert_eq!(
            response.status,
            StatusCode::CONFLICT,
            "{action}: {}",
            response.text()
        );
        let body = response.json();
        assert_eq!(body["error"], "ambiguous", "{body}");
        let mut ids: Vec<String> = body["user_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut expected = vec![upper.clone(), lower.clone()];
        expected.sort();
        assert_eq!(ids, expected, "{action}");
        assert!(!response.text().contains("x.test"), "{}", response.text());
    }
    let (present, held): (i64, i64) = sqlx::query_as(
        "select (select count(*) from users where deleted_at is not null),
                (select count(*) from account_deletion.holds)",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((present, held), (2, 0));
}

#[tokio::test]
async fn a_blank_address_or_one_no_text_can_hold_is_refused_even_where_a_table_stores_blank_addresses()
 {
    let app = app_for(Framework::Django, &[]).await;
    // Django stores '' for a user without an address.
    sqlx::query("insert into users (email, created_at) values ('', now())")
        .execute(app.pool())
        .await
        .unwrap();
    // A NUL is in no PostgreSQL text: found by Schemathesis as a 500.
    for blank in ["", "   ", "\t", "ann\u{0}@example.test", "\u{0}"] {
        let response = by_email(&app, blank, "hold").await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{blank:?}: {}",
            response.text()
        );
        assert_eq!(response.error_code(), "invalid_request");
    }
    let holds: i64 = sqlx::query_scalar("select count(*) from account_deletion.holds")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(holds, 0);
}

#[tokio::test]
async fn an_address_never_goes_in_a_url_the_look_up_is_a_post() {
    let app = AccountApp::new().await;
    let (user, _) = app.user_with_session().await;
    let email: String = sqlx::query_scalar("select email from users where id = $1")
        .bind(user)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let in_url = app
        .admin_show(&format!("email={}", crate::helpers::urlencode(&email)))
        .await;
    assert_eq!(in_url.status, StatusCode::BAD_REQUEST, "{}", in_url.text());
    assert_eq!(in_url.error_code(), "invalid_request");
    assert!(!in_url.text().contains(&email));
    let posted = app.admin_find(&email).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    assert_eq!(posted.json()["user_id"], user.to_string());
    assert_eq!(posted.json()["status"], "active");
}

/// The plan of support's look-up by address on `pool`, with sequential
/// scans priced out, so that it shows whether an index can serve it.
async fn plan_of_the_address_look_up(pool: &sqlx::PgPool, users: UsersTable) -> String {
    let tables = AppTables::new(users, None);
    let sql = tables.statements(pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("set enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let lines: Vec<String> =
        sqlx::query_scalar(&format!("explain {}", sql.account_by_folded_email))
            .bind("ANN@Example.test ")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn the_look_up_by_an_address_in_another_case_is_served_by_an_index() {
    let app = AccountApp::new().await;
    let plan = plan_of_the_address_look_up(app.pool(), UsersTable::default_names()).await;
    assert!(plan.contains("users_email_folded_idx"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

#[tokio::test]
async fn migrate_adds_the_folded_address_index_to_an_adopted_table_only_when_asked() {
    use account_deletion::schema::migrate::{self, Options};
    let db = crate::helpers::TestDb::empty().await;
    sqlx::raw_sql(include_str!("../fixtures/prisma/migration.sql"))
        .execute(&db.pool)
        .await
        .unwrap();
    let mut options = Options {
        users: UsersTable::prisma(),
        add_deleted_at: false,
        add_email_index: false,
    };
    let migrated = migrate::migrate(&db.url_direct(), "DIRECT_URL", &options)
        .await
        .unwrap();
    assert!(
        migrated
            .notes
            .iter()
            .any(|note| note.contains("--add-email-index")),
        "{:?}",
        migrated.notes
    );
    let plan = plan_of_the_address_look_up(&db.pool, UsersTable::prisma()).await;
    assert!(!plan.contains("folded_idx"), "{plan}");

    options.add_email_index = true;
    let migrated = migrate::migrate(&db.url_direct(), "DIRECT_URL", &options)
        .await
        .unwrap();
    assert!(
        migrated
            .notes
            .iter()
            .any(|note| note.starts_with("created the index")),
        "{:?}",
        migrated.notes
    );
    let plan = plan_of_the_address_look_up(&db.pool, UsersTable::prisma()).await;
    assert!(plan.contains("User_email_folded_idx"), "{plan}");
    // Once there, it is found, not built again.
    let again = migrate::migrate(&db.url_direct(), "DIRECT_URL", &options)
        .await
        .unwrap();
    assert!(
        !again.notes.iter().any(|note| note.contains("email")),
        "{:?}",
        again.notes
    );
}
