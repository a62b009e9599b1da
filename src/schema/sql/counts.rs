//! What the purge's answer, `/api/status` and support count, and the
//! slices the walks of `crate::lifecycle::sweeps` take.

use std::fmt::Write as _;

use super::names::{Names, text_literal};
use super::purge::referenced_along;
use crate::schema::BlockingPath;

pub(super) fn count_expired(t: &Names, blocking: &[BlockingPath]) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    let cutoff = t.as_column("$1");
    let overdue_before = t.as_column("$1 - make_interval(hours => $2)");
    let deleted_at_tz = t.deleted_at_of("u");
    let held = t.held("u");
    let anonymized = t.anonymized("u");
    let after = t.after_key_estimated("u", "$3", "$4");
    let up_to = t.up_to_key("u", "$5", "$6");
    let flags = blocking
        .iter()
        .enumerate()
        .fold(String::new(), |mut flags, (i, path)| {
            let _ = write!(flags, ", {} as b{i}", referenced_along(path, "u"));
            flags
        });
    let any = if blocking.is_empty() {
        "false".to_owned()
    } else {
        (0..blocking.len())
            .map(|i| format!("b{i}"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let each = if blocking.is_empty() {
        "'{}'::int8[]".to_owned()
    } else {
        let counts: Vec<String> = (0..blocking.len())
            .map(|i| format!("count(*) filter (where not held and not anonymized and b{i})"))
            .collect();
        format!("array[{}]::int8[]", counts.join(", "))
    };
    // A held account is neither deletable, nor blocked, nor overdue: the
    // purge leaves it on purpose. Nor is an anonymized one that is still
    // blocked: the person is erased, the row waits for its references to
    // go. (One that nothing references any more is deletable.) `offset 0`
    // keeps the flags one evaluation per account: pulled up into the
    // aggregate, each probe ran once for every figure that reads it
    // (measured: 3.5 times the probes). Overdue:
    // still here `$2` hours after the retention ended; the oldest one's age
    // past its retention, in seconds.
    let kept = format!("(anonymized and ({any}))");
    format!(
        "select count(*) filter (where not held and not ({any})),
                count(*) filter (where not held and not anonymized and ({any})),
                {each},
                count(*) filter (where not held and not {kept} and overdue),
                extract(epoch from $1 - min(deleted_at) filter (where not held and not {kept} and overdue))::int8,
                count(*) filter (where held),
                count(*) filter (where not held and {kept})
         from (select u.{deleted_at} <= {overdue_before} as overdue, {deleted_at_tz} as deleted_at,
                      {held} as held,
                      {anonymized} as anonymized{flags}
               from {users} u
               where u.{deleted_at} <= {cutoff} and {after} and {up_to}
               offset 0) expired"
    )
}

pub(super) fn blocked_by(t: &Names, blocking: &[BlockingPath]) -> String {
    let names: Vec<String> = blocking
        .iter()
        .map(|path| {
            format!(
                "case when {} then {} end",
                referenced_along(path, "u"),
                text_literal(path.constraint().as_str())
            )
        })
        .collect();
    if names.is_empty() {
        return "select '{}'::text[]".to_owned();
    }
    format!(
        "select array_remove(array[{names}], null) from {users} u where {is_user}",
        names = names.join(", "),
        users = t.users,
        is_user = t.is_user("u", "$1"),
    )
}

pub(super) fn count_pending(t: &Names) -> String {
    format!(
        "select count(*) from {users} u where u.{deleted_at} > {cutoff}",
        users = t.users,
        deleted_at = t.deleted_at,
        cutoff = t.as_column("$1"),
    )
}

/// A slice of a walk: the first `$6` soft-deleted accounts in key order
/// after (`$1`, `$2`), up to (`$3`, `$4`) and deleted at or before `$5`
/// (each bound null: open). One row, when the slice holds any: how many it
/// holds and the key of its last.
pub(super) fn slice(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let after = t.after_key("u", "$1", "$2");
    let up_to = t.up_to_key("u", "$3", "$4");
    let ceiling = t.as_column("$5::timestamptz");
    let deleted_at_tz = t.deleted_at_of("u");
    format!(
        "with s as (
             select {deleted_at_tz} as at, u.{id} as id from {users} u
             where u.{deleted_at} is not null and {after} and {up_to}
               and ($5::timestamptz is null or u.{deleted_at} <= {ceiling})
             order by u.{deleted_at}, u.{id}
             limit $6)
         select count(*) over (), at, id::text from s order by at desc, id desc limit 1"
    )
}

/// How many soft-deleted accounts (at most `$3`) lie at or below the key
/// (`$1`, `$2`): a walk of at most `$3` index entries.
pub(super) fn count_below(t: &Names) -> String {
    format!(
        "select count(*) from (
             select 1 from {users} u where u.{deleted_at} is not null and {up_to} limit $3) s",
        users = t.users,
        deleted_at = t.deleted_at,
        up_to = t.up_to_key("u", "$1", "$2"),
    )
}
