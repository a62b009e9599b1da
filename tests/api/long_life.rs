//! An account's long life: a grace period of up to ten years and holds
//! without end must not outlive what the way back needs (the link's email
//! and token, the history that says who made the deletion).

use http::StatusCode;

use crate::helpers::AccountApp;
use crate::support::actions;

/// Moves everything our tables hold about `user` `interval` into the past,
/// as if the deletion and its email had happened then.
async fn age_records(app: &AccountApp, user: uuid::Uuid, interval: &str) {
    app.backdate(user, interval).await;
    sqlx::raw_sql(&format!(
        "update account_deletion.email_outbox
             set created_at = created_at - interval '{interval}', sent_at = sent_at - interval '{interval}'
             where user_id = '{user}';
         update account_deletion.recovery_tokens set created_at = created_at - interval '{interval}'
             where user_id = '{user}';
         update account_deletion.history set at = at - interval '{interval}' where user_id = '{user}';"
    ))
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn with_a_retention_past_thirty_days_the_link_works_until_the_grace_period_ends() {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "90")]).await;
    let (user, session) = app.user_with_session().await;
    let token = app.delete_and_read_token(&session).await;
    // Day 60: the sent email is past the outbox's 30 days, its deletion is
    // not past its 90.
    age_records(&app, user, "60 days").await;
    app.run_sweep().await;
    let page = app.recover_page(&token).await;
    assert!(page.text().contains("<form"), "{}", page.text());
    let recovered = app.recover_json(&token).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.text());
    assert_eq!(app.deleted_at_of(user).await.flatten(), None);
}

#[tokio::test]
async fn a_link_email_whose_grace_period_ended_is_pruned() {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "40")]).await;
    let (user, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    age_records(&app, user, "41 days").await;
    let swept = app.run_sweep().await;
    assert!(swept["pruned"].as_u64().unwrap() >= 1, "{swept}");
    let kept: i64 =
        sqlx::query_scalar("select count(*) from account_deletion.email_outbox where user_id = $1")
            .bind(user.to_string())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(kept, 0);
}

async fn history_count(app: &AccountApp, user: &str) -> i64 {
    sqlx::query_scalar("select count(*) from account_deletion.history where user_id = $1")
        .bind(user)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn history_older_than_the_tombstones_is_kept_while_its_account_exists() {
    let app = AccountApp::with_env(&[("RETENTION_DAYS", "3650")]).await;
    let (user, session) = app.user_with_session().await;
    app.delete_and_read_token(&session).await;
    // 500 days into a ten-year grace period.
    age_records(&app, user, "500 days").await;
    // Accounts long gone: one whose erasure is older than the tombstones,
    // one erased lately after a long hold.
    let (forgotten, remembered) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "insert into account_deletion.history (user_id, at, action, by, for_deleted_at)
         select id, now() - interval '500 days', 'deleted', 'user', now() - interval '500 days'
         from unnest($1::text[]) id;
         ",
    )
    .bind(vec![forgotten.to_string(), remembered.to_string()])
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("insert into account_deletion.tombstones (user_id, purged_at) values ($1, now() - interval '3 days')")
        .bind(remembered.to_string())
        .execute(app.pool())
        .await
        .unwrap();

    // The runs that prune, and the sweep that records the app's deletions.
    assert_eq!(app.run_purge().await["deleted"], 0);
    app.run_sweep().await;

    assert_eq!(history_count(&app, &forgotten.to_string()).await, 0);
    assert_eq!(history_count(&app, &remembered.to_string()).await, 1);
    let view = app.admin_show(&format!("user_id={user}")).await.json();
    assert_eq!(view["deleted_by"], "user", "{view}");
    assert_eq!(
        actions(&view),
        vec![("deleted".to_owned(), "user".to_owned())],
        "{view}"
    );
    // Still the user's own deletion: signing in again restores it.
    let again = format!("again-{user}");
    app.add_session(user, &again, "1 day").await;
    let bearer = format!("Bearer {again}");
    let state = app
        .deletion_with(&[("authorization", &bearer)])
        .await
        .json();
    assert_eq!(state["restorable"], true, "{state}");
    let restored = app.restore_with(&[("authorization", &bearer)]).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
}

async fn count(app: &AccountApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.pool()).await.unwrap()
}

/// Rows of every bounded table of ours, one past its keep (`old`) and one
/// within it (`new`), as the defaults count.
async fn rows_old_and_new(app: &AccountApp, user: uuid::Uuid) {
    sqlx::raw_sql(&format!(
        "insert into account_deletion.email_outbox (user_id, kind, recipient, status, next_attempt_at, created_at)
         values ('{user}', 'restored', 'old-failed@example.test', 'failed', now() - interval '31 days', now() - interval '40 days'),
                ('{user}', 'restored', 'new-failed@example.test', 'failed', now() - interval '3 days', now() - interval '40 days');
         insert into account_deletion.webhook_events (type, user_ids, occurred_at, status, next_attempt_at, created_at)
         values ('account.restored', '{{old-sent}}', now(), 'sent', now(), now() - interval '31 days'),
                ('account.restored', '{{new-sent}}', now(), 'sent', now(), now() - interval '3 days'),
                ('account.restored', '{{old-failed}}', now(), 'failed', now() - interval '31 days', now() - interval '40 days'),
                ('account.restored', '{{new-failed}}', now(), 'failed', now() - interval '3 days', now() - interval '40 days');
         insert into sessions (user_id, token_hash, expires_at)
         values ('{user}', sha256('old-session'), now() - interval '31 days'),
                ('{user}', sha256('new-session'), now() - interval '3 days');
         insert into account_deletion.purge_runs (status, dry_run, cutoff, started_at)
         values ('completed', false, now(), now() - interval '401 days'),
                ('completed', false, now(), now() - interval '3 days');
         insert into account_deletion.purge_run_workers (run_id, worker)
         select id, 0 from account_deletion.purge_runs;"
    ))
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn every_table_of_ours_is_pruned_past_its_keep_and_keeps_what_is_within_it() {
    let app = AccountApp::new().await;
    let (user, _) = app.user_with_session().await;
    rows_old_and_new(&app, user).await;
    let swept = app.run_sweep().await;
    app.run_purge().await;
    assert!(swept["pruned"].as_u64().unwrap() >= 4, "{swept}");
    assert_eq!(
        count(
            &app,
            "select count(*) from account_deletion.email_outbox where recipient like '%-failed@%'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "select count(*) from account_deletion.email_outbox where recipient = 'old-failed@example.test'").await,
        0,
        "a given-up email's address goes"
    );
    let events: Vec<String> =
        sqlx::query_scalar("select user_ids[1] from account_deletion.webhook_events order by 1")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(events, ["new-failed", "new-sent"]);
    assert_eq!(
        count(&app, "select count(*) from sessions where token_hash in (sha256('old-session'), sha256('new-session'))").await,
        1
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from sessions where token_hash = sha256('new-session')"
        )
        .await,
        1
    );
    // The old run went with its workers' rows; the new one and this run's
    // stayed.
    assert_eq!(
        count(&app, "select count(*) from account_deletion.purge_runs where started_at < now() - interval '400 days'").await,
        0
    );
    assert_eq!(
        count(&app, "select count(*) from account_deletion.purge_run_workers w
                     where not exists (select 1 from account_deletion.purge_runs r where r.id = w.run_id)").await,
        0
    );
    assert_eq!(
        count(&app, "select count(*) from account_deletion.purge_runs").await,
        2
    );
}

#[tokio::test]
async fn a_longer_keep_keeps_longer() {
    let app = AccountApp::with_env(&[
        ("KEEP_FAILED_DAYS", "60"),
        ("KEEP_DELIVERED_DAYS", "60"),
        ("KEEP_PURGE_RUNS_DAYS", "500"),
        ("KEEP_EXPIRED_SESSIONS_DAYS", "60"),
    ])
    .await;
    let (user, _) = app.user_with_session().await;
    rows_old_and_new(&app, user).await;
    app.run_sweep().await;
    app.run_purge().await;
    assert_eq!(
        count(
            &app,
            "select count(*) from account_deletion.email_outbox where status = 'failed'"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "select count(*) from account_deletion.webhook_events").await,
        4
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from sessions where expires_at < now()"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "select count(*) from account_deletion.purge_runs").await,
        3
    );
}

#[tokio::test]
async fn an_apps_own_sessions_table_is_never_pruned() {
    use crate::adopting::{Framework, app_for};
    // Django's schema here has a `users` table (the default name) and a
    // `sessions` table of its own.
    let app = app_for(Framework::Django, &[]).await;
    let (user, _) = Framework::Django.create_user(app.pool()).await;
    sqlx::query(
        "insert into sessions (user_id, token_hash, expires_at)
         values ($1::bigint, sha256('expired-long-ago'), now() - interval '300 days')",
    )
    .bind(&user)
    .execute(app.pool())
    .await
    .unwrap();
    app.run_sweep().await;
    assert_eq!(
        count(
            &app,
            "select count(*) from sessions where token_hash = sha256('expired-long-ago')"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn tombstones_past_their_keep_go_in_steps_of_their_own() {
    let app = AccountApp::new().await;
    let step = account_deletion::lifecycle::prune::STEP;
    sqlx::query(
        "insert into account_deletion.tombstones (user_id, purged_at)
         select gen_random_uuid()::text, now() - interval '401 days' from generate_series(1, $1)",
    )
    .bind(step * 2 + 7)
    .execute(app.pool())
    .await
    .unwrap();
    app.run_purge().await;
    assert_eq!(
        count(&app, "select count(*) from account_deletion.tombstones").await,
        0
    );
}

/// The mail cron walks what the app deleted since its last run, in slices,
/// and a slice of the older rest per run: more deletions than one slice are
/// all recorded, none twice, and a deleted-at the app sets in the past,
/// below the walk's watermark, is found by the sweep of the next run.
#[tokio::test]
async fn app_deletions_are_recorded_slice_by_slice_and_one_set_in_the_past_is_found() {
    let app = AccountApp::with_env(&[]).await;
    let banned = account_deletion::lifecycle::sweeps::SLICE_ROWS + 2_500;
    sqlx::query(
        "insert into users (email, deleted_at)
         select 'banned-' || g || '@example.test', now() - make_interval(secs => g)
         from generate_series(1, $1) g",
    )
    .bind(banned)
    .execute(app.pool())
    .await
    .unwrap();
    let report = app.run_sweep().await;
    assert_eq!(report["app_deletions_recorded"], banned, "{report}");
    let recorded =
        "select count(*) from account_deletion.history where action = 'deleted' and by = 'app'";
    assert_eq!(crate::helpers::count(app.pool(), recorded).await, banned);
    // The walk's place: everything up to an hour ago handled.
    let (watermark_age, cursor): (f64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "select extract(epoch from now() - watermark_at)::float8, cursor_at
         from account_deletion.sweeps where name = 'app_deletions'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!((3590.0..3700.0).contains(&watermark_age), "{watermark_age}");
    assert_eq!(cursor, None);
    assert_eq!(app.run_sweep().await["app_deletions_recorded"], 0);

    // The app bans an account with a deleted-at long past: below the
    // watermark, where only the sweep looks.
    let (late, _) = app.user_with_session().await;
    sqlx::query("update users set deleted_at = now() - interval '400 days' where id = $1")
        .bind(late)
        .execute(app.pool())
        .await
        .unwrap();
    // Each run sweeps one slice of what lies below (here, all of it).
    let mut found = 0;
    for _ in 0..2 {
        found += app.run_sweep().await["app_deletions_recorded"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(found, 1);
    let view = app.admin_show(&format!("user_id={late}")).await.json();
    assert_eq!(view["deleted_by"], "app", "{view}");
    assert_eq!(app.run_sweep().await["app_deletions_recorded"], 0);
}

/// What the app deletes itself leaves no trace with us forever: the
/// history of an account it soft-deleted and then removed, and the mark of
/// an anonymized account whose row it removed, are pruned by a slice of
/// their own per run, from where the last slice stopped, wrapping to the
/// start; a living account's history and mark stay.
#[tokio::test]
async fn history_and_marks_of_rows_the_app_removed_go_slice_by_slice() {
    let app = AccountApp::new().await;
    let slice = account_deletion::lifecycle::prune::STEP;
    let extra = 1_500;
    // History and marks for ids no users row has (the app removed them),
    // all older than the keep, and one living account's.
    sqlx::raw_sql(&format!(
        "insert into account_deletion.history (user_id, at, action, by, for_deleted_at)
         select gen_random_uuid()::text, now() - interval '500 days', 'deleted', 'app',
                now() - interval '500 days'
         from generate_series(1, {n});
         insert into account_deletion.anonymized (user_id)
         select gen_random_uuid()::text from generate_series(1, {n});",
        n = slice + extra
    ))
    .execute(app.pool())
    .await
    .unwrap();
    let (living, _) = app.user_with_session().await;
    sqlx::query(
        "insert into account_deletion.history (user_id, at, action, by) values ($1, now() - interval '500 days', 'held', 'admin');
         ",
    )
    .bind(living.to_string())
    .execute(app.pool())
    .await
    .unwrap();
    sqlx::query("insert into account_deletion.anonymized (user_id) values ($1)")
        .bind(living.to_string())
        .execute(app.pool())
        .await
        .unwrap();
    let left = |table: &'static str| {
        let app = &app;
        async move {
            count(
                app,
                &format!("select count(*) from account_deletion.{table}"),
            )
            .await
        }
    };

    // One slice per run: the first takes a slice (the living account's
    // rows may be in it, and stay), the second the rest.
    app.run_purge().await;
    let one_slice = extra + 1..=extra + 2;
    assert!(
        one_slice.contains(&left("history").await),
        "one slice of the history"
    );
    assert!(
        one_slice.contains(&left("anonymized").await),
        "one slice of the marks"
    );
    app.run_purge().await;
    assert_eq!(left("history").await, 1);
    assert_eq!(left("anonymized").await, 1);
    assert_eq!(
        history_count(&app, &living.to_string()).await,
        1,
        "a living account keeps its history"
    );
    let cursors: Vec<Option<String>> = sqlx::query_scalar(
        "select cursor_id from account_deletion.sweeps where name like 'prune_%' order by name",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(cursors, [None, None], "both wrapped to the start");
}
