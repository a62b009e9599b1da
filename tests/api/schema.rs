use account_deletion::purge::BATCH_DELETE_SQL;
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

#[tokio::test]
async fn the_batch_query_reads_the_partial_index_and_never_sorts_the_candidates() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 5_000, Some("31 days")).await;
    seed_users(&db.pool, 20_000, None).await;
    sqlx::query("analyze users")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let cutoff: DateTime<Utc> = sqlx::query_scalar("select now() - interval '30 days'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // Both the plan for these values and the generic plan a pooled prepared
    // statement may settle on.
    for mode in ["auto", "force_generic_plan"] {
        sqlx::query(&format!("set plan_cache_mode = {mode}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("explain {BATCH_DELETE_SQL}"))
            .bind(cutoff)
            .bind(1000_i64)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            !plan.contains("Sort"),
            "{mode}: the batch plan sorts:\n{plan}"
        );
        assert!(
            plan.contains("users_deleted_at_idx"),
            "{mode}: candidates come off the partial index:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan"),
            "{mode}: no sequential scan:\n{plan}"
        );
    }
}
