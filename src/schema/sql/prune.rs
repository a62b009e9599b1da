//! The statements that forget what was kept long enough and is about
//! accounts that are gone: anonymized marks, tombstones, history.

use super::names::Names;

/// The statement of a rotating prune: a slice `slice` (a CTE of `user_id`s
/// in order after `$1`), those of it that go (`gone`), and what goes with
/// them (`deleted`, returning a row for each row deleted).
fn rotating_prune(slice: &str, gone: &str, deleted: &str) -> String {
    format!(
        "with slice as ({slice}
        ), gone as ({gone}
        ), deleted as ({deleted}
        )
        select (select count(*) from deleted), (select count(*) from slice),
               (select max(user_id) from slice)"
    )
}

pub(super) fn prune_anonymized(t: &Names) -> String {
    rotating_prune(
        "select m.user_id from account_deletion.anonymized m
            where ($1::text is null or m.user_id > $1) order by m.user_id limit $2",
        &format!(
            "select s.user_id from slice s where {}",
            t.gone("s.user_id")
        ),
        "delete from account_deletion.anonymized a using gone g where a.user_id = g.user_id
            returning 1",
    )
}

/// The history of an account that is gone, none of it younger than the
/// keep (`$days`): no row of `users` has its id.
fn history_gone(t: &Names, candidates: &str, days: &str) -> String {
    format!(
        "select c.user_id from ({candidates}) c
            where {gone}
              and not exists (
                  select 1 from account_deletion.history n
                  where n.user_id = c.user_id and n.at >= now() - make_interval(days => {days}))",
        gone = t.gone("c.user_id"),
    )
}

pub(super) fn prune_tombstones(t: &Names) -> String {
    let gone = history_gone(t, "select distinct user_id from old", "$2");
    format!(
        "with old as (
            select ctid, user_id from account_deletion.tombstones
            where purged_at < now() - make_interval(days => $2) limit $1
        ), history_gone as (
            delete from account_deletion.history h
            where h.user_id = any(array({gone}))
        )
        delete from account_deletion.tombstones where ctid = any(array(select ctid from old))"
    )
}

pub(super) fn prune_history(t: &Names) -> String {
    let gone = history_gone(t, "select user_id from slice", "$3");
    rotating_prune(
        "select distinct h.user_id from account_deletion.history h
            where ($1::text is null or h.user_id > $1) order by h.user_id limit $2",
        &format!(
            "{gone}
              and not exists (
                  select 1 from account_deletion.tombstones s
                  where s.user_id = c.user_id and s.purged_at >= now() - make_interval(days => $3))"
        ),
        "delete from account_deletion.history h using gone g where h.user_id = g.user_id
            returning 1",
    )
}
