use account_deletion::schema::UsersTable;
use account_deletion::schema::sql::AppTables;
use chrono::{DateTime, Utc};

use crate::helpers::{TestDb, seed_users};

#[tokio::test]
async fn every_foreign_key_to_users_says_what_happens_on_delete_and_is_indexed() {
    let db = TestDb::new().await;
    let keys: Vec<(String, String, String, bool)> = sqlx::query_as(
        "select c.conname::text,
                c.conrelid::regclass::text,
                c.confdeltype::text,
                exists (
                    select 1 from pg_index i
                    where i.indrelid = c.conrelid
                      and cardinality(c.conkey) = 1
                      and i.indkey[0] = c.conkey[1]
                )
         from pg_constraint c
         where c.contype = 'f' and c.confrelid = 'users'::regclass
         order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!keys.is_empty(), "sessions at least references users");
    for (name, table, on_delete, indexed) in keys {
        // 'a' is NO ACTION, the default: the migration did not say.
        assert_ne!(
            on_delete, "a",
            "{table}.{name} must say what happens on delete"
        );
        assert_eq!(
            on_delete, "c",
            "{table}.{name}: this project's tables go with their account"
        );
        assert!(
            indexed,
            "{table}.{name}: the referencing column needs an index"
        );
    }
}

/// The plan of the batch statement, as the purge sends it (parameters as
/// literals): for a run's first batch and for a later one with a floor.
async fn batch_plans(db: &TestDb) -> Vec<(&'static str, String)> {
    let sql = AppTables::new(UsersTable::default_names(), None)
        .statements(&db.pool)
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let cutoff: DateTime<Utc> = sqlx::query_scalar("select now() - interval '30 days'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut plans = Vec::new();
    let some_id: String = sqlx::query_scalar("select id::text from users order by id limit 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let key = |at: DateTime<Utc>| -> [account_deletion::platform::db::Literal; 2] {
        [at.into(), some_id.as_str().into()]
    };
    let null = || account_deletion::platform::db::Literal::Null;
    for (batch, after, up_to) in [
        ("first batch", [null(), null()], [null(), null()]),
        (
            "later batch",
            key(cutoff - chrono::Duration::days(90)),
            [null(), null()],
        ),
        (
            "a slice of the sweep",
            key(cutoff - chrono::Duration::days(90)),
            key(cutoff - chrono::Duration::days(10)),
        ),
    ] {
        let [after_at, after_id] = after;
        let [up_to_at, up_to_id] = up_to;
        let statement = sql.purge_batch.with_literals(&[
            cutoff.into(),
            500_i64.into(),
            after_at,
            1_i64.into(),
            0_i32.into(),
            null(),
            // What the walk read of the holds when it started.
            account_deletion::platform::db::Literal::TextArray(vec![]),
            cutoff.into(),
            1_i64.into(),
            after_id,
            up_to_at,
            up_to_id,
        ]);
        let plan: Vec<String> = sqlx::query_scalar(&format!("explain {statement}"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        plans.push((batch, plan.join("\n")));
    }
    plans
}

fn assert_walks_the_index(mode: &str, plan: &str) {
    // A slice of the sweep is bounded (at most a slice of accounts): the
    // planner may read it off the index and sort it. An open walk must not.
    if mode != "a slice of the sweep" {
        assert!(
            !plan.contains("Sort"),
            "{mode}: the batch plan sorts:\n{plan}"
        );
    }
    assert!(
        plan.contains("Index Scan using users_deleted_at_id_idx")
            || (mode == "a slice of the sweep"
                && plan.contains("Bitmap Index Scan on users_deleted_at_id_idx")),
        "{mode}: candidates come off the partial index:\n{plan}"
    );
    // But of the holds, hashed once per batch when a row needs the probe.
    assert!(
        !plan
            .lines()
            .any(|line| line.contains("Seq Scan") && !line.contains("Seq Scan on holds")),
        "{mode}: no sequential scan:\n{plan}"
    );
    assert!(
        !plan.contains("Hash Join") && plan.contains("Tid Scan on users u"),
        "{mode}: the delete goes straight to the locked rows (TID scan):\n{plan}"
    );
}

#[tokio::test]
async fn the_batch_query_reads_the_partial_index_and_never_sorts_the_candidates() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 5_000, Some("31 days")).await;
    seed_users(&db.pool, 20_000, None).await;
    sqlx::query("analyze users")
        .execute(&db.pool)
        .await
        .unwrap();
    for (mode, plan) in batch_plans(&db).await {
        assert_walks_the_index(mode, &plan);
    }
}

#[tokio::test]
async fn the_batch_query_keeps_to_the_index_when_half_the_users_are_expired() {
    // The distribution that tempts the planner into a sequential scan, which
    // re-reads every earlier batch's dead rows on each batch.
    let db = TestDb::new().await;
    sqlx::query(
        "insert into users (email, deleted_at)
         select 'u' || g || '@example.test',
                case when g % 2 = 0 then now() - interval '31 days' - random() * interval '365 days' end
         from generate_series(1, 40000) g",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("analyze users")
        .execute(&db.pool)
        .await
        .unwrap();
    for (mode, plan) in batch_plans(&db).await {
        assert_walks_the_index(mode, &plan);
    }
}

/// Text written into a statement as a literal reads back exactly, whatever
/// it holds, and a value no PostgreSQL text can hold equals nothing.
#[tokio::test]
async fn text_literals_read_back_exactly_and_cannot_break_out() {
    use account_deletion::platform::db::{Literal, Statement};
    let db = TestDb::new().await;
    let statement = Statement::new("select $1::text");
    for text in [
        "plain",
        "it's",
        r"back\slash",
        r"\'; drop table users; --",
        "''",
        r"\\",
        "ünïcødé €",
        "",
    ] {
        let sql = statement.with_literals(&[Literal::Text(text.to_owned())]);
        let back: Option<String> = sqlx::query_scalar(&sql).fetch_one(&db.pool).await.unwrap();
        assert_eq!(back.as_deref(), Some(text), "{sql}");
    }
    for setting in ["on", "off"] {
        for backslash_quote in ["on", "off"] {
            let mut conn = db.connect().await;
            sqlx::raw_sql(&format!(
                "set standard_conforming_strings = {setting}; set backslash_quote = {backslash_quote}"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
            let sql = statement.with_literals(&[Literal::Text(r"a\'b".to_owned())]);
            let back: String = sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
            assert_eq!(
                back, r"a\'b",
                "standard_conforming_strings = {setting}, backslash_quote = {backslash_quote}"
            );
        }
    }
    let sql = statement.with_literals(&[Literal::Text("a\0b".to_owned())]);
    let back: Option<String> = sqlx::query_scalar(&sql).fetch_one(&db.pool).await.unwrap();
    assert_eq!(back, None);
}
