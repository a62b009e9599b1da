//! The anonymizing batch (`ERASE_BLOCKED=anonymize`): the accounts the
//! app's records must keep lose their person instead of their row.

use std::fmt::Write as _;

use super::names::Names;
use super::purge::{WALKED_TO, referenced_along, walked};
use super::{IDS_PER_EVENT, Records};
use crate::schema::{BlockingPath, Catalog, Clear, Ident, OnDelete};

/// The anonymizing batch's optional CTEs: Auth.js's sign-in links to the
/// address, the `account.anonymized` events, the "erased" email.
fn anonymize_records(catalog: &Catalog, records: Records) -> String {
    let mut steps = String::new();
    if let Some(table) = &catalog.verification_tokens {
        let _ = write!(
            steps,
            "\n), unverified as (\n    delete from {} v where v.\"identifier\" = any(array(select identifier from targets where identifier is not null))",
            table.quoted()
        );
    }
    if records.events {
        let _ = write!(
            steps,
            "\n), announced as (
    insert into account_deletion.webhook_events (type, user_ids, occurred_at)
    select 'account.anonymized', anonymized.ids[first::int : first::int + {last}], now()
    from (select array_agg(id) as ids, count(*) as n from targets) anonymized,
         generate_series(1, anonymized.n, {IDS_PER_EVENT}) first",
            last = IDS_PER_EVENT - 1
        );
    }
    if records.erased_email {
        let _ = write!(
            steps,
            "\n), farewell as (
    insert into account_deletion.email_outbox (user_id, kind, recipient)
    select id, 'erased', email from targets where email is not null"
        );
    }
    steps
}

/// One anonymizing batch (`ERASE_BLOCKED=anonymize`): walk and lock up to
/// `$2` expired accounts in key order after (`$7`, `$11`) and up to
/// (`$12`, `$13`) (null bounds: open), and take those unheld that a
/// blocking key
/// keeps and that are not anonymized yet (all of them, or only those of ids
/// `$5` when it is not null), and in the one statement do to each what
/// deleting it would have done to everything but the rows that must be
/// kept:
/// - rows of every `CASCADE` key are deleted (the app's own cascades below
///   them follow), except those that rows along a blocking chain still
///   reference, which must stay as the kept rows' parents;
/// - `SET NULL` and `SET DEFAULT` keys are applied;
/// - the personal columns are cleared ([`Clear`]);
/// - our own rows go, and Auth.js's sign-in links to its address;
/// - its tombstone (marked anonymized), its mark, its history (`anonymized`
///   by `$6`) and its `account.anonymized` event are written, and the batch
///   is booked on worker `$4`'s row of run `$3`, if the run still holds the
///   lease.
///
/// The row keeps its id and deleted-at; the ordinary purge deletes it once
/// nothing references it any more. Like the purge batch, it walks the
/// deleted-at index from the key the previous batch ended at (returned
/// with how many it claimed): from the start every time, each batch
/// would walk again over the entries of every account deleted or
/// anonymized before it. The cutoff `$1` is re-checked on the
/// locked rows, as the purge's delete does, so a recovery and an
/// anonymization never both win.
pub(super) fn anonymize_batch(t: &Names, catalog: &Catalog, records: Records) -> Option<String> {
    let clears = catalog.anonymize.as_ref()?;
    if catalog.blocking.is_empty() {
        return None;
    }
    let Names {
        users, deleted_at, ..
    } = t;
    let cutoff = t.as_column("$1");
    let walked = walked(t, ["$7", "$11"], ["$12", "$13"], "$5");
    let deleted_at_tz = t.deleted_at_of("u");
    let not_held = t.not_held_since_start("u", "$8", "$9", "$10");
    let blocked = catalog
        .blocking
        .iter()
        .map(|path| referenced_along(path, "u"))
        .collect::<Vec<_>>()
        .join("\n        or ");
    let mine = "u.ctid = any(array(select ctid from targets))";
    let mut steps = reference_steps(t, catalog, mine);
    let cleared_columns: Vec<Ident> = clears.iter().map(|(column, _)| column.clone()).collect();
    let mut cleared: Vec<String> = clears
        .iter()
        .map(|(column, clear)| {
            let value = match clear {
                Clear::Null => "null".to_owned(),
                Clear::Default => "default".to_owned(),
                Clear::ErasedAddress => format!("'erased-' || {} || '@invalid'", t.id_text("u")),
            };
            format!("{} = {value}", column.quoted())
        })
        .collect();
    cleared.extend(self_reference_clears(t, catalog, &cleared_columns));
    if !cleared.is_empty() {
        let _ = write!(
            steps,
            "\n), cleared as (\n    update {users} u set {} where {mine}",
            cleared.join(", ")
        );
    }
    steps.push_str(&anonymize_records(catalog, records));
    let address = t.address_of("u");
    let not_anonymized = t.not_anonymized("u");
    let id_text = t.id_text("u");
    Some(format!(
        "
with lease as (
    select id from account_deletion.purge_runs where id = $3 and status = 'running' for share
), {walked}, candidates as (
    select u.ctid
    from {users} u
    where u.ctid = any(array(select ctid from walked))
      and {not_held}
      and {not_anonymized}
      and ({blocked})
), targets as (
    select u.ctid, {id_text} as id, u.{email}::text as identifier, {address} as email,
           {deleted_at_tz} as deleted_at
    from {users} u
    where u.ctid = any(array(select ctid from candidates))
      and u.{deleted_at} <= {cutoff}{steps}
), forgotten as (
    delete from account_deletion.email_outbox
    where user_id = any(array(select id from targets)) and kind <> 'erased'
), tombstoned as (
    insert into account_deletion.tombstones (user_id, anonymized) select id, true from targets
), marked as (
    insert into account_deletion.anonymized (user_id) select id from targets
    on conflict (user_id) do nothing
), recorded as (
    insert into account_deletion.history (user_id, action, by) select id, 'anonymized', $6 from targets
), tally as (
    select count(*) as n from targets
), {WALKED_TO}), booked as (
    insert into account_deletion.purge_run_workers as w (run_id, worker, anonymized, batches)
    select lease.id, $4, tally.n, 1 from lease, tally
    on conflict (run_id, worker) do update
        set anonymized = w.anonymized + excluded.anonymized, batches = w.batches + 1
    returning run_id
)
select exists (select 1 from booked), tally.n, walked_to.n, walked_to.at, walked_to.key_id
from tally, walked_to",
        email = t.email,
    ))
}

/// What deleting the accounts `mine` picks out (users rows `u`) would have
/// done through every foreign key on them, as CTEs `key0`, `key1`, …: rows
/// of `CASCADE` keys deleted (but those rows along a blocking chain still
/// reference), `SET NULL` and `SET DEFAULT` applied.
///
/// A key from the users table to itself (`invited_by`) is applied here only
/// to the rows that are not `mine`: the rows that are get it in the same
/// `UPDATE` that clears their columns ([`self_reference_clears`]), since
/// PostgreSQL applies only one of two changes a statement makes to one row.
fn reference_steps(t: &Names, catalog: &Catalog, mine: &str) -> String {
    let users = &t.users;
    let mut steps = String::new();
    for (i, key) in catalog.references.iter().enumerate() {
        let not_mine = if key.table == catalog.users {
            "\n      and t.ctid <> all(array(select ctid from targets))"
        } else {
            ""
        };
        let joined: Vec<String> = key
            .columns
            .iter()
            .zip(&key.references)
            .map(|(column, referenced)| {
                format!("t.{} = u.{}", column.quoted(), referenced.quoted())
            })
            .collect();
        let on = joined.join(" and ");
        let table = key.table.quoted();
        let columns = |value: &str| {
            key.columns
                .iter()
                .map(|column| format!("{} = {value}", column.quoted()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let step = match key.on_delete {
            OnDelete::Cascade => {
                // Rows the kept rows hang from stay, as their parents.
                let kept = catalog
                    .blocking
                    .iter()
                    .filter(|path| path.0.len() > 1 && path.0[0] == *key)
                    .fold(String::new(), |mut kept, path| {
                        let below = BlockingPath(path.0[1..].to_vec());
                        let _ = write!(kept, "\n      and not {}", referenced_along(&below, "t"));
                        kept
                    });
                format!("delete from {table} t using {users} u where {mine} and {on}{kept}")
            }
            OnDelete::SetNull => {
                format!(
                    "update {table} t set {} from {users} u where {mine} and {on}{not_mine}",
                    columns("null")
                )
            }
            OnDelete::SetDefault => format!(
                "update {table} t set {} from {users} u where {mine} and {on}{not_mine}",
                columns("default")
            ),
            OnDelete::Restrict | OnDelete::NoAction => continue,
        };
        let _ = write!(steps, "\n), key{i} as (\n    {step}");
    }
    steps
}

/// The assignments that apply the users table's `SET NULL` keys to itself
/// on the rows being anonymized (`u`), for the `UPDATE` that clears them:
/// a key that points at one of the rows (`targets`) becomes null. Columns
/// that are cleared anyway are left to the clearing. (A `SET DEFAULT` key
/// to itself is applied to the other rows only: a `DEFAULT` cannot be
/// chosen by a condition; such a reference between two anonymized rows is
/// set when the one it points at is deleted.)
fn self_reference_clears(t: &Names, catalog: &Catalog, cleared: &[Ident]) -> Vec<String> {
    let mut clears = Vec::new();
    for key in &catalog.references {
        if key.table != catalog.users || key.on_delete != OnDelete::SetNull {
            continue;
        }
        let on: Vec<String> = key
            .columns
            .iter()
            .zip(&key.references)
            .map(|(column, referenced)| {
                format!("u.{} = r.{}", column.quoted(), referenced.quoted())
            })
            .collect();
        let points_at_a_target = format!(
            "exists (select 1 from {} r where r.ctid = any(array(select ctid from targets)) and {})",
            t.users,
            on.join(" and ")
        );
        for column in &key.columns {
            if cleared.contains(column) {
                continue;
            }
            let column = column.quoted();
            clears.push(format!(
                "{column} = case when {points_at_a_target} then null else u.{column} end"
            ));
        }
    }
    clears
}
