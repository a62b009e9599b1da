//! Years of history: accounts the purge must leave (kept by an invoice,
//! held) pile up below its watermark, and a run walks only its new work
//! and one bounded slice of them ([`account_deletion::lifecycle::sweeps`]). These
//! tests prove the design on a few more accounts than one slice holds, not
//! its speed (that is `bench --bin history`).

use account_deletion::lifecycle::sweeps::SLICE_ROWS;
use serde_json::{Value, json};

use crate::helpers::{AccountApp, count, status_config, status_of};

/// More kept accounts than one slice of the sweep holds.
const KEPT: i64 = SLICE_ROWS + 2_000;

/// An app table whose rows must outlive their user (`ON DELETE RESTRICT`),
/// with one row for each of `users`.
async fn invoices_for(app: &AccountApp, users: &str) {
    sqlx::raw_sql(&format!(
        "create table invoices (
             id bigint generated always as identity primary key,
             user_id uuid not null references users (id) on delete restrict
         );
         create index invoices_user_id_idx on invoices (user_id);
         insert into invoices (user_id) select id from users where {users};"
    ))
    .execute(app.pool())
    .await
    .unwrap();
}

/// [`KEPT`] accounts expired 40 days ago, a second apart, each with an
/// invoice.
async fn kept_by_invoices(app: &AccountApp) {
    sqlx::query(
        "insert into users (email, deleted_at)
         select 'kept-' || g || '@example.test', now() - interval '40 days' + make_interval(secs => g)
         from generate_series(1, $1) g",
    )
    .bind(KEPT)
    .execute(app.pool())
    .await
    .unwrap();
    invoices_for(app, "deleted_at is not null").await;
}

async fn purge_place(app: &AccountApp) -> (Option<String>, Option<String>) {
    sqlx::query_as(
        "select watermark_id, cursor_id from account_deletion.sweeps where name = 'purge'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap()
}

async fn status(app: &AccountApp) -> Value {
    let url = app.db.url();
    let route = account_deletion::routes::status::Status::new(status_config(&url, &[]));
    status_of(&route).await.1
}

/// A mass ban (one `UPDATE`, one deleted-at for every account) whose
/// accounts an invoice keeps: the run that finds them walks them once and
/// leaves them below its watermark; once their invoices go behind the
/// purge's back, each later run takes one slice of them, cut between two
/// accounts of the same deleted-at, and the figures follow.
#[tokio::test]
async fn kept_accounts_below_the_watermark_cost_a_run_one_slice_even_when_they_share_a_time() {
    let app = AccountApp::new().await;
    sqlx::query(
        "insert into users (email, deleted_at)
         select 'banned-' || g || '@example.test', now() - interval '40 days'
         from generate_series(1, $1) g",
    )
    .bind(KEPT)
    .execute(app.pool())
    .await
    .unwrap();
    invoices_for(&app, "deleted_at is not null").await;

    let first = app.run_purge().await;
    assert_eq!(
        (first["deleted"].as_i64(), first["blocked"].as_i64()),
        (Some(0), Some(KEPT)),
        "{first}"
    );
    let (watermark, cursor) = purge_place(&app).await;
    let newest: String =
        sqlx::query_scalar("select id::text from users order by deleted_at desc, id desc limit 1")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        watermark.as_deref(),
        Some(newest.as_str()),
        "every kept account walked"
    );
    assert!(cursor.is_some(), "the sweep stopped after one slice");
    // The status reads what the run counted, not a walk of them all.
    let figures = status(&app).await;
    assert_eq!(figures["blocked"], KEPT, "{figures}");
    assert_eq!(figures["due"], KEPT, "{figures}");

    // The invoices go, behind the purge's back.
    sqlx::query("delete from invoices")
        .execute(app.pool())
        .await
        .unwrap();
    let second = app.run_purge().await;
    assert_eq!(
        second["deleted"],
        KEPT - SLICE_ROWS,
        "the rest of the first cycle: {second}"
    );
    let third = app.run_purge().await;
    assert_eq!(
        third["deleted"], SLICE_ROWS,
        "one slice, from the start again: {third}"
    );
    assert_eq!(count(app.pool(), "select count(*) from users").await, 0);
    let fourth = app.run_purge().await;
    assert_eq!(
        (
            fourth["deleted"].as_i64(),
            fourth["blocked"].as_i64(),
            fourth["remaining"].as_i64()
        ),
        (Some(0), Some(0), Some(0)),
        "{fourth}"
    );
    let tombstones = count(
        app.pool(),
        "select count(*) from account_deletion.tombstones",
    )
    .await;
    assert_eq!(tombstones, KEPT, "each erased once");
}

/// A hold released on an account deep below the watermark, where the
/// sweep will not pass again for a while: the next run looks at it first.
#[tokio::test]
async fn a_released_hold_below_the_watermark_is_erased_by_the_next_run() {
    let app = AccountApp::new().await;
    kept_by_invoices(&app).await;
    // The oldest of all, held: in the slice the first run sweeps.
    let held: uuid::Uuid = sqlx::query_scalar(
        "insert into users (email, deleted_at) values ('held@example.test', now() - interval '90 days')
         returning id",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    let placed = app
        .admin_post(&json!({"user_id": held.to_string(), "action": "hold", "reason": "legal_hold"}))
        .await;
    assert_eq!(placed.status, http::StatusCode::OK, "{}", placed.text());

    let first = app.run_purge().await;
    assert_eq!(
        (first["held"].as_i64(), first["blocked"].as_i64()),
        (Some(1), Some(KEPT)),
        "{first}"
    );
    let released = app
        .admin_post(&json!({"user_id": held.to_string(), "action": "release"}))
        .await;
    assert_eq!(released.status, http::StatusCode::OK, "{}", released.text());

    let second = app.run_purge().await;
    assert_eq!(second["deleted"], 1, "{second}");
    assert_eq!(app.deleted_at_of(held).await, None, "erased");
    assert_eq!(
        count(app.pool(), "select count(*) from account_deletion.rechecks").await,
        0
    );
}

/// An account the app backdates below the watermark (a ban dated to the
/// offence): the sweep of a small database reaches it in the next run, as
/// a full walk would.
#[tokio::test]
async fn an_account_backdated_below_the_watermark_is_found_by_the_next_run() {
    let app = AccountApp::new().await;
    sqlx::query(
        "insert into users (email, deleted_at)
         select 'kept-' || g || '@example.test', now() - interval '35 days' + make_interval(secs => g)
         from generate_series(1, 50) g",
    )
    .execute(app.pool())
    .await
    .unwrap();
    invoices_for(&app, "deleted_at is not null").await;
    assert_eq!(app.run_purge().await["blocked"], 50);
    let (banned, _) = app.user_with_session().await;
    sqlx::query("update users set deleted_at = now() - interval '400 days' where id = $1")
        .bind(banned)
        .execute(app.pool())
        .await
        .unwrap();
    let run = app.run_purge().await;
    assert_eq!(
        (run["deleted"].as_i64(), run["blocked"].as_i64()),
        (Some(1), Some(50)),
        "{run}"
    );
}

/// `ERASE_BLOCKED=anonymize` set on a database whose purge has kept
/// accounts for a while: they are all below its watermark, and all new
/// work for the anonymizing walk, which has a watermark of its own.
#[tokio::test]
async fn anonymizing_set_later_takes_every_account_kept_before_not_a_slice() {
    let app = AccountApp::new().await;
    kept_by_invoices(&app).await;
    assert_eq!(app.run_purge().await["blocked"], KEPT);

    let url = app.db.url();
    let anonymizing = account_deletion::routes::purge_users::PurgeUsers::new(
        crate::helpers::cron_config(&url, &[("ERASE_BLOCKED", "anonymize")]),
    );
    let answer = crate::helpers::read(
        anonymizing
            .handle(crate::helpers::cron_request(http::Method::GET, ""))
            .await,
    )
    .await
    .json();
    assert_eq!(answer["anonymized"], KEPT, "{answer}");
    let left = count(
        app.pool(),
        "select count(*) from users where email not like 'erased-%@invalid'",
    )
    .await;
    assert_eq!(left, 0);
}

/// More held accounts in a walk's range than a batch carries as a list
/// (a first run over years of history): every account walked is probed
/// against the holds instead, and none of them goes.
#[tokio::test]
async fn more_holds_than_a_batch_carries_are_probed_and_none_is_erased() {
    let app = AccountApp::new().await;
    sqlx::raw_sql(
        "insert into users (email, deleted_at)
         select 'held-' || g || '@example.test', now() - interval '40 days' + make_interval(secs => g)
         from generate_series(1, 1200) g;
         insert into account_deletion.holds (user_id, reason, since)
         select id::text, 'legal_hold', now() - interval '1 day' from users;
         insert into users (email, deleted_at)
         select 'due-' || g || '@example.test', now() - interval '40 days' + make_interval(secs => g)
         from generate_series(1, 300) g;",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let run = app.run_purge().await;
    assert_eq!(
        (run["deleted"].as_i64(), run["held"].as_i64()),
        (Some(300), Some(1200)),
        "{run}"
    );
    assert_eq!(
        count(
            app.pool(),
            "select count(*) from users where email like 'held-%'"
        )
        .await,
        1200
    );
}
