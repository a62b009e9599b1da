//! Accounts the app must keep (`ERASE_BLOCKED=anonymize`): an expired
//! account that records the law says to keep still reference is erased of
//! the person (its cascading rows deleted, its personal columns cleared)
//! and kept as a row for those records, then deleted once nothing
//! references it. On the schemas Prisma and Django make.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use testkit::webhook_receiver::{SECRET, WebhookReceiver};

use crate::adopting::{Framework, app_for};
use crate::helpers::{AccountApp, race_the_purge, status_config, status_of};

const ANONYMIZE: (&str, &str) = ("ERASE_BLOCKED", "anonymize");

async fn count(pool: &PgPool, sql: &str, user: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A Prisma user with everything an Auth.js app keeps about a person:
/// a name and a picture, sessions, an OAuth account, posts, a pending
/// sign-in link, and two invoices the law says to keep.
async fn prisma_customer(pool: &PgPool) -> (String, String) {
    let (user, email) = Framework::Prisma.create_user(pool).await;
    sqlx::raw_sql(&format!(
        r#"update "User" set name = 'Ann Person', image = 'https://cdn.example.test/ann.png',
                  "emailVerified" = now() at time zone 'UTC' where id = '{user}';
           insert into "Account" ("userId", type, provider, "providerAccountId", "updatedAt")
           values ('{user}', 'oauth', 'github', 'gh-{user}', now() at time zone 'UTC');
           insert into "Post" (id, title, "authorId") values ('p1-{user}', 'hello', '{user}'), ('p2-{user}', 'again', '{user}');
           insert into "Invoice" (id, number, "totalCts", "userId")
           values ('i1-{user}', 'INV-1-{user}', 1999, '{user}'), ('i2-{user}', 'INV-2-{user}', 500, '{user}');
           insert into "VerificationToken" (identifier, token, expires)
           values ('{email}', 'link-{user}', now() + interval '1 day');"#
    ))
    .execute(pool)
    .await
    .unwrap();
    (user, email)
}

#[tokio::test]
async fn an_expired_prisma_customer_is_anonymized_kept_for_the_invoices_then_deleted_once_they_go()
{
    let receiver = WebhookReceiver::start(SECRET).await;
    let hook = receiver.url();
    let app = app_for(
        Framework::Prisma,
        &[
            ANONYMIZE,
            ("WEBHOOK_URL", &hook),
            ("WEBHOOK_SECRET", SECRET),
        ],
    )
    .await;
    let pool = app.pool();
    let (customer, email) = prisma_customer(pool).await;
    let (plain, _) = Framework::Prisma.create_user(pool).await;
    for user in [&customer, &plain] {
        Framework::Prisma.delete_signed_in(&app, user).await;
        Framework::Prisma.backdate(pool, user, 31).await;
    }
    let deleted_at_before = Framework::Prisma
        .deleted_at_of(pool, &customer)
        .await
        .flatten();

    // The dry run says what it would anonymize, and why.
    let dry = app.purge_dry_run().await;
    assert_eq!(dry["anonymized"], 1, "{dry}");
    assert_eq!(dry["would_delete"], 1, "{dry}");
    assert_eq!(
        dry["blocked_by"],
        serde_json::json!(["Invoice_userId_fkey"]),
        "{dry}"
    );
    let keys: Vec<&str> = dry["blocking_foreign_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["constraint"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"Invoice_userId_fkey"), "{dry}");

    let run = app.run_purge().await;
    assert_eq!(run["deleted"], 1, "{run}");
    assert_eq!(run["anonymized"], 1, "{run}");
    assert_eq!(run["blocked"], 0, "{run}");
    assert_eq!(run["status"], "completed");

    assert_anonymized(pool, &customer, &email, deleted_at_before).await;
    // Nothing needs a person: the status says so, and support sees it.
    let status = account_deletion::routes::status::Status::new(status_config(
        &app.db.url(),
        &[("SCHEMA_PRESET", "prisma"), ANONYMIZE],
    ));
    let (code, body) = status_of(&status).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        (body["anonymized"].clone(), body["blocked"].clone()),
        (1.into(), 0.into()),
        "{body}"
    );
    let view = app.admin_show(&format!("user_id={customer}")).await.json();
    assert_eq!(view["status"], "erased", "{view}");
    let steps: Vec<(&str, &str)> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("deleted", "user"), ("anonymized", "purge")]);
    assert!(!view.to_string().contains(&email));
    // The app hears of it.
    let event = wait_for_event(&receiver, "account.anonymized").await;
    assert_eq!(
        event["data"]["user_ids"],
        serde_json::json!([customer.clone()])
    );
    assert!(event["data"]["anonymized_at"].as_str().is_some());

    // The next run leaves it alone.
    let again = app.run_purge().await;
    assert_eq!(
        (again["deleted"].clone(), again["anonymized"].clone()),
        (0.into(), 0.into()),
        "{again}"
    );

    // The invoices go (kept long enough); a later run deletes the row.
    sqlx::query(r#"delete from "Invoice" where "userId" = $1"#)
        .bind(&customer)
        .execute(pool)
        .await
        .unwrap();
    let last = app.run_purge().await;
    assert_eq!(last["deleted"], 1, "{last}");
    assert_eq!(Framework::Prisma.deleted_at_of(pool, &customer).await, None);
    assert_eq!(
        count(
            pool,
            "select count(*) from account_deletion.anonymized where user_id = $1",
            &customer
        )
        .await,
        0,
        "its mark goes with it"
    );
    let purged = wait_for_purged(&receiver, &customer).await;
    assert!(purged, "account.purged names it");
}

/// The person is gone from the row; the row stays, with its id and
/// deleted-at, for the invoices; everything else about them went.
async fn assert_anonymized(
    pool: &PgPool,
    customer: &str,
    email: &str,
    deleted_at_before: Option<chrono::DateTime<chrono::Utc>>,
) {
    let customer = customer.to_owned();
    let (row_email, name, image, verified): (
        String,
        Option<String>,
        Option<String>,
        Option<chrono::NaiveDateTime>,
    ) = sqlx::query_as(r#"select email, name, image, "emailVerified" from "User" where id = $1"#)
        .bind(&customer)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(row_email, format!("erased-{customer}@invalid"));
    assert_eq!((name, image, verified), (None, None, None));
    assert_eq!(
        Framework::Prisma.deleted_at_of(pool, &customer).await,
        Some(deleted_at_before)
    );
    for (table, column) in [
        ("Session", "userId"),
        ("Account", "userId"),
        ("Post", "authorId"),
    ] {
        let left = count(
            pool,
            &format!(r#"select count(*) from "{table}" where "{column}" = $1"#),
            &customer,
        )
        .await;
        assert_eq!(left, 0, "{table} rows went with the person");
    }
    assert_eq!(
        count(
            pool,
            r#"select count(*) from "Invoice" where "userId" = $1"#,
            &customer
        )
        .await,
        2,
        "the invoices still point at the same id"
    );
    assert_eq!(
        count(
            pool,
            r#"select count(*) from "VerificationToken" where identifier = $1"#,
            email
        )
        .await,
        0
    );
    assert_eq!(
        count(
            pool,
            "select count(*) from account_deletion.tombstones where user_id = $1 and anonymized",
            &customer
        )
        .await,
        1
    );
}

async fn wait_for_event(receiver: &WebhookReceiver, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(record) = receiver
            .accepted()
            .into_iter()
            .find(|r| r["event"]["type"] == kind)
        {
            return record["event"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no {kind} event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_purged(receiver: &WebhookReceiver, user: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let named = receiver.accepted().into_iter().any(|r| {
            r["event"]["type"] == "account.purged"
                && r["event"]["data"]["user_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == user))
        });
        if named || std::time::Instant::now() > deadline {
            return named;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_django_customer_with_protected_orders_is_anonymized_the_same_way() {
    let app = app_for(Framework::Django, &[ANONYMIZE]).await;
    let pool = app.pool();
    let (customer, _) = Framework::Django.create_user(pool).await;
    sqlx::raw_sql(&format!(
        "insert into posts (title, user_id) values ('hello', {customer}), ('again', {customer});
         insert into orders (total, user_id) values (1999, {customer});"
    ))
    .execute(pool)
    .await
    .unwrap();
    Framework::Django.delete_signed_in(&app, &customer).await;
    Framework::Django.backdate(pool, &customer, 31).await;
    let run = app.run_purge().await;
    assert_eq!(
        (run["deleted"].clone(), run["anonymized"].clone()),
        (0.into(), 1.into()),
        "{run}"
    );
    let email: String = sqlx::query_scalar("select email from users where id = $1::bigint")
        .bind(&customer)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(email, format!("erased-{customer}@invalid"));
    assert_eq!(
        count(
            pool,
            "select count(*) from posts where user_id = $1::bigint",
            &customer
        )
        .await,
        0
    );
    assert_eq!(
        count(
            pool,
            "select count(*) from orders where user_id = $1::bigint",
            &customer
        )
        .await,
        1
    );
    assert_eq!(app.run_purge().await["anonymized"], 0);
    sqlx::query("delete from orders where user_id = $1::bigint")
        .bind(&customer)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(app.run_purge().await["deleted"], 1);
    assert_eq!(Framework::Django.deleted_at_of(pool, &customer).await, None);
}

#[tokio::test]
async fn under_wait_the_same_account_stays_blocked_and_the_status_says_so() {
    let app = app_for(Framework::Prisma, &[]).await;
    let pool = app.pool();
    let (customer, email) = prisma_customer(pool).await;
    Framework::Prisma.delete_signed_in(&app, &customer).await;
    Framework::Prisma.backdate(pool, &customer, 31).await;
    let run = app.run_purge().await;
    assert_eq!(
        (run["blocked"].clone(), run["anonymized"].clone()),
        (1.into(), 0.into()),
        "{run}"
    );
    let still: String = sqlx::query_scalar(r#"select email from "User" where id = $1"#)
        .bind(&customer)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(still, email);
    let status = account_deletion::routes::status::Status::new(status_config(
        &app.db.url(),
        &[("SCHEMA_PRESET", "prisma")],
    ));
    let (code, body) = status_of(&status).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["problems"]
            .as_array()
            .unwrap()
            .contains(&"blocked".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recoveries_racing_the_anonymizing_purge_either_restore_or_anonymize_never_both() {
    let app =
        std::sync::Arc::new(AccountApp::with_env(&[ANONYMIZE, ("PURGE_BATCH_SIZE", "5")]).await);
    sqlx::raw_sql(
        "create table invoices (id bigint generated always as identity primary key,
                                user_id uuid not null constraint invoices_user_id_fkey references users (id));
         create index invoices_user_id_idx on invoices (user_id);",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let mut accounts = Vec::new();
    for _ in 0..60 {
        let (user_id, session) = app.user_with_session().await;
        sqlx::query("insert into invoices (user_id) values ($1)")
            .bind(user_id)
            .execute(app.pool())
            .await
            .unwrap();
        let token = app.delete_and_read_token(&session).await;
        accounts.push((user_id, token));
    }
    sqlx::raw_sql(
        "update users set deleted_at = now() - interval '30 days' + interval '300 milliseconds' where deleted_at is not null;
         update account_deletion.recovery_tokens t set for_deleted_at = u.deleted_at from users u where u.id::text = t.user_id;",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let answers = race_the_purge(&app, accounts, 7, |app, i, (_, token)| async move {
        let address = format!("198.51.100.{i}");
        app.recover_json_with(&token, &[("x-real-ip", &address)])
            .await
            .status
    })
    .await;
    let mut restored = 0;
    for ((user_id, _), status) in answers {
        let (deleted_at, email): (Option<chrono::DateTime<chrono::Utc>>, String) =
            sqlx::query_as("select deleted_at, email from users where id = $1")
                .bind(user_id)
                .fetch_one(app.pool())
                .await
                .unwrap();
        let anonymized = email.ends_with("@invalid");
        match status {
            StatusCode::OK => {
                restored += 1;
                assert!(
                    deleted_at.is_none() && !anonymized,
                    "a 200 account is whole and active"
                );
            }
            StatusCode::BAD_REQUEST => {
                assert!(
                    deleted_at.is_some() && anonymized,
                    "a refused account is anonymized"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        restored > 0 && restored < 60,
        "the race was a race: {restored} of 60"
    );
}

#[tokio::test]
async fn anonymize_columns_that_cannot_be_cleared_are_refused_naming_the_variable() {
    let app = AccountApp::new().await;
    sqlx::raw_sql(
        "alter table users add column handle text not null default 'x', add column bio text;
         alter table users alter column handle drop default;",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let url = app.db.url();
    let tables = |columns: &str| {
        let lookup = crate::helpers::env(&[("ANONYMIZE_COLUMNS", columns)]);
        account_deletion::schema::sql::AppTables::new(
            account_deletion::config::users_table(&lookup).unwrap(),
            None,
        )
        .anonymizing(true)
    };
    for (columns, why) in [
        ("email,handle", "NOT NULL without a default"),
        ("email,nickname", "no column nickname"),
        ("id", "id or the deleted-at"),
        ("deleted_at", "id or the deleted-at"),
    ] {
        match tables(columns).statements(app.pool()).await {
            Err(account_deletion::schema::SchemaError::Misconfigured { variable, reason }) => {
                assert_eq!(variable, "ANONYMIZE_COLUMNS", "{columns}");
                assert!(reason.contains(why), "{columns}: {reason}");
            }
            other => panic!("{columns}: {other:?}"),
        }
    }
    assert!(tables("email,bio").statements(app.pool()).await.is_ok());
    let errors = account_deletion::config::users_table(&crate::helpers::env(&[(
        "ANONYMIZE_COLUMNS",
        "email; drop table users",
    )]))
    .unwrap_err();
    assert_eq!(errors.0[0].variable(), "ANONYMIZE_COLUMNS");
    // The purge refuses every request, naming the variable in its log.
    let purge = account_deletion::routes::purge_users::PurgeUsers::new(
        crate::helpers::cron_config(&url, &[ANONYMIZE, ("ANONYMIZE_COLUMNS", "email,handle")]),
    );
    let response = crate::helpers::read(
        purge
            .handle(crate::helpers::cron_request(http::Method::GET, ""))
            .await,
    )
    .await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.error_code(), "server_misconfigured");
}

/// The greenfield schema with an app table of invoices the law says to
/// keep (a key without a delete action).
async fn with_invoices(app: &AccountApp) {
    sqlx::raw_sql(
        "create table invoices (id bigint generated always as identity primary key,
                                user_id uuid not null constraint invoices_user_id_fkey references users (id));
         create index invoices_user_id_idx on invoices (user_id);",
    )
    .execute(app.pool())
    .await
    .unwrap();
}

async fn invoice(app: &AccountApp, user: uuid::Uuid) {
    sqlx::query("insert into invoices (user_id) values ($1)")
        .bind(user)
        .execute(app.pool())
        .await
        .unwrap();
}

async fn email_of(app: &AccountApp, user: uuid::Uuid) -> String {
    sqlx::query_scalar("select email from users where id = $1")
        .bind(user)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restored_backup_anonymizes_again_what_its_tombstones_say_was_anonymized() {
    use account_deletion::config::{PurgeSettings, RetentionDays};
    // The restored database, as the backup had it: a customer with an
    // invoice, and another person, both active again.
    let restored = AccountApp::new().await;
    with_invoices(&restored).await;
    let (customer, _) = restored.user_with_session().await;
    invoice(&restored, customer).await;
    let (other, _) = restored.user_with_session().await;
    // The database the restore replaced had anonymized the one and purged
    // the other.
    let replaced = crate::helpers::TestDb::new().await;
    sqlx::query(
        "insert into account_deletion.tombstones (user_id, anonymized) values ($1, true), ($2, false)",
    )
    .bind(customer.to_string())
    .bind(other.to_string())
    .execute(&replaced.pool)
    .await
    .unwrap();
    // Whatever ERASE_BLOCKED says now (the default: wait).
    let tables = account_deletion::schema::sql::AppTables::new(
        account_deletion::schema::UsersTable::default_names(),
        None,
    )
    .anonymizing(true);
    let done = account_deletion::lifecycle::forget::forget(
        &replaced.pool,
        restored.pool(),
        &tables,
        RetentionDays::DEFAULT,
        PurgeSettings::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (done.present, done.purged, done.anonymized),
        (2, 1, 1),
        "{done:?}"
    );
    assert_eq!(restored.deleted_at_of(other).await, None);
    assert_eq!(
        email_of(&restored, customer).await,
        format!("erased-{customer}@invalid")
    );
    let invoices: i64 = sqlx::query_scalar("select count(*) from invoices where user_id = $1")
        .bind(customer)
        .fetch_one(restored.pool())
        .await
        .unwrap();
    assert_eq!(invoices, 1);
}

#[tokio::test]
async fn erasing_a_blocked_account_now_anonymizes_it_when_the_purge_would() {
    let app = AccountApp::with_env(&[ANONYMIZE]).await;
    with_invoices(&app).await;
    let (customer, session) = app.user_with_session().await;
    invoice(&app, customer).await;
    app.delete_and_read_token(&session).await;
    let erased = app
        .admin_post(&serde_json::json!({"user_id": customer.to_string(), "action": "erase_now"}))
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text());
    let view = erased.json();
    assert_eq!(view["status"], "erased", "{view}");
    assert_eq!(view["history"][1]["action"], "anonymized");
    assert_eq!(view["history"][1]["by"], "admin");
    assert_eq!(
        email_of(&app, customer).await,
        format!("erased-{customer}@invalid")
    );
    // Already anonymized: nothing more to do now; the purge deletes it once
    // the invoice goes.
    let again = app
        .admin_post(&serde_json::json!({"user_id": customer.to_string(), "action": "erase_now"}))
        .await;
    assert_eq!(again.error_code(), "blocked");
}

#[tokio::test]
async fn an_anonymized_account_is_erased_and_no_way_back_restores_it() {
    let app = AccountApp::with_env(&[ANONYMIZE]).await;
    with_invoices(&app).await;
    let (customer, session) = app.user_with_session().await;
    invoice(&app, customer).await;
    let token = app.delete_and_read_token(&session).await;
    // Erased now, inside its grace period: anonymized, its deleted-at kept.
    let erased = app
        .admin_post(&serde_json::json!({"user_id": customer.to_string(), "action": "erase_now"}))
        .await;
    assert_eq!(erased.json()["status"], "erased", "{}", erased.text());

    // The person signs in again (the app's sign-in makes a new session).
    let again = format!("again-{customer}");
    app.add_session(customer, &again, "1 day").await;
    let bearer = format!("Bearer {again}");
    let state = app.deletion_with(&[("authorization", &bearer)]).await;
    assert_eq!(state.status, StatusCode::OK, "{}", state.text());
    assert_eq!(state.json()["status"], "scheduled");
    assert_eq!(state.json()["restorable"], false, "{}", state.text());
    let restored = app.restore_with(&[("authorization", &bearer)]).await;
    assert_eq!(restored.status, StatusCode::CONFLICT, "{}", restored.text());
    assert_eq!(restored.error_code(), "not_restorable");
    // Nor support, nor the link, nor a fresh link.
    for action in ["restore", "resend_recovery_link"] {
        let refused = app
            .admin_post(&serde_json::json!({"user_id": customer.to_string(), "action": action}))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::CONFLICT,
            "{action}: {}",
            refused.text()
        );
        assert_eq!(refused.error_code(), "not_restorable", "{action}");
    }
    assert_eq!(
        app.recover_json(&token).await.error_code(),
        "invalid_or_expired_token"
    );
    assert!(app.deleted_at_of(customer).await.flatten().is_some());
    assert_eq!(
        email_of(&app, customer).await,
        format!("erased-{customer}@invalid")
    );
    let shown = app.admin_show(&format!("user_id={customer}")).await.json();
    assert_eq!(shown["status"], "erased", "{shown}");
}

/// The greenfield users table with a key to itself: who invited whom.
async fn with_invitations(app: &AccountApp) {
    sqlx::raw_sql(
        "alter table users add column invited_by uuid
             constraint users_invited_by_fkey references users (id) on delete set null;
         create index users_invited_by_idx on users (invited_by);",
    )
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn both_accounts_of_an_inviter_and_its_invitee_are_cleared_when_anonymized_together() {
    let app = AccountApp::with_env(&[ANONYMIZE]).await;
    with_invoices(&app).await;
    // A key from the users table to itself: clearing the guest's key and
    // its address are two changes to one row.
    with_invitations(&app).await;
    let (host, host_session) = app.user_with_session().await;
    let (guest, guest_session) = app.user_with_session().await;
    // Each invited the other: whichever row the batch takes first, both
    // rows are changed by both steps.
    sqlx::query(
        "update users set invited_by = case when id = $1 then $2 else $1 end where id in ($1, $2)",
    )
    .bind(host)
    .bind(guest)
    .execute(app.pool())
    .await
    .unwrap();
    for (user, session) in [(host, &host_session), (guest, &guest_session)] {
        invoice(&app, user).await;
        app.delete_and_read_token(session).await;
        app.backdate(user, "31 days").await;
    }
    let run = app.run_purge().await;
    assert_eq!(run["anonymized"], 2, "{run}");
    for user in [host, guest] {
        let (email, invited_by): (String, Option<uuid::Uuid>) =
            sqlx::query_as("select email, invited_by from users where id = $1")
                .bind(user)
                .fetch_one(app.pool())
                .await
                .unwrap();
        assert_eq!(email, format!("erased-{user}@invalid"));
        assert_eq!(invited_by, None, "{user}");
    }
}

#[tokio::test]
async fn an_invitee_who_stays_loses_the_key_to_an_anonymized_inviter_and_keeps_its_address() {
    let app = AccountApp::with_env(&[ANONYMIZE]).await;
    with_invoices(&app).await;
    with_invitations(&app).await;
    let (host, session) = app.user_with_session().await;
    let (guest, _) = app.user_with_session().await;
    let invitee_email = email_of(&app, guest).await;
    sqlx::query("update users set invited_by = $1 where id = $2")
        .bind(host)
        .bind(guest)
        .execute(app.pool())
        .await
        .unwrap();
    invoice(&app, host).await;
    app.delete_and_read_token(&session).await;
    app.backdate(host, "31 days").await;
    assert_eq!(app.run_purge().await["anonymized"], 1);
    let (email, invited_by): (String, Option<uuid::Uuid>) =
        sqlx::query_as("select email, invited_by from users where id = $1")
            .bind(guest)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((email, invited_by), (invitee_email, None));
    assert_eq!(email_of(&app, host).await, format!("erased-{host}@invalid"));
}
