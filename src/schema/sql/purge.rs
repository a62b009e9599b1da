//! The purge's batch and what it is made of: the walk that locks a batch
//! of expired accounts, the holds read when a walk starts, the chains of
//! foreign keys that keep an account, and what erasing one account now
//! makes due.

use super::names::Names;
use super::{IDS_PER_EVENT, Records};

use crate::schema::{BlockingPath, QualifiedName};

/// The walk of one batch, as a CTE `walked`: up to `$2` accounts expired
/// at cutoff `$1` that no other transaction holds, in key order after the
/// key `after` and up to `up_to` (null bounds: open), only those of the
/// ids `only` (text[]) when it is not null, locked, with their keys; none
/// unless the run holds its lease (CTE `lease`).
pub(super) fn walked(t: &Names, after: [&str; 2], up_to: [&str; 2], only: &str) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let cutoff = t.as_column("$1");
    let after = t.after_key("u", after[0], after[1]);
    let up_to = t.up_to_key("u", up_to[0], up_to[1]);
    let deleted_at_tz = t.deleted_at_of("u");
    let listed = t.is_any_user("u", only);
    format!(
        "walked as (
    select u.ctid, {deleted_at_tz} as at, u.{id} as key_id
    from {users} u
    where u.{deleted_at} <= {cutoff}
      and {after}
      and {up_to}
      and ({only}::text[] is null or {listed})
      and exists (select 1 from lease)
    order by u.{deleted_at}, u.{id}
    limit $2
    for update of u skip locked
)"
    )
}

/// The CTE `walked_to`: how many accounts a batch walked, and the key of
/// the last.
pub(super) const WALKED_TO: &str = "walked_to as (
    select count(*) as n, max(at) as at,
           (array_agg(key_id::text order by at desc, key_id desc))[1] as key_id
    from walked";

/// One batch: walk and lock up to `$2` expired accounts (at cutoff `$1`)
/// that nobody else holds, in key order after (`$3`, `$10`) and up to
/// (`$11`, `$12`) (null bounds: open), all of them or only those of ids
/// `$6` (text[]) when it is not null; delete those no hold and no blocking
/// key keeps (re-checking the cutoff on the locked rows), book them on the
/// ledger row of worker `$5` of run `$4` if the run still holds the lease,
/// and report whether it did, how many went, how many it walked and the
/// key of the last it walked (where the next batch starts). One message, sent with the
/// batch's limits in one round trip and run as its own transaction
/// ([`crate::platform::db::Statement`]); erasing one account now runs the same one, with
/// the cutoff at infinity, inside the operator's transaction.
///
/// The shape is what keeps every batch as cheap as the first:
/// - `order by deleted_at, id` is answered by walking the partial index on
///   both (no sort node); without it, when many users are expired the
///   planner prefers a sequential scan, and every batch re-reads all the
///   rows earlier batches deleted (measured: 4.6× slower than one `DELETE`
///   at 1M accounts).
/// - The key the walk starts after is where the previous batch ended (or
///   the purge's watermark, [`crate::lifecycle::sweeps`]), so the index entries of
///   rows already deleted (dead until vacuum) and of accounts kept below
///   it are not walked again; the id in the key makes that exact when many
///   accounts share one deleted-at.
/// - The delete finds the locked rows by `ctid = any(array(…))`, a TID scan
///   straight to the row version the lock is on: no second index descent per
///   row, and no join a generic plan (after five executions of the prepared
///   statement) could turn into a hash join against every expired row. The
///   lock keeps the row version, so its `ctid` cannot change in between.
/// - A batch walks at most `$2` accounts, whatever it then deletes: the
///   accounts it must leave (a blocking chain of keys references them, see
///   [`referenced_along`], or a hold keeps them) are filtered out of what
///   it walked, so they never fail the batch, and a stretch of thousands
///   of them costs as many batches, each as short as any other, never one
///   statement that outlives its timeout. The purge counts and reports
///   them.
/// - Our own rows about each account (outbox, and through it recovery
///   tokens) go in the same statement, and so do Auth.js's sign-in links to
///   its address (`"VerificationToken"`, with the `prisma` preset).
/// - Its message first takes the purge gate ([`super::GATE_SHARED`], sent with the
///   batch's limits), in a statement of its own, so that this statement's
///   snapshot is taken after the gate is granted: a hold placed while a run
///   is under way takes the gate exclusively, waits for the batches in
///   flight and keeps new ones out until it commits, and every later batch
///   then sees it. (One statement could not: its snapshot predates any lock
///   it waits for.)
/// - Held accounts are left out like blocked ones; the purge counts them.
/// - Nothing is claimed unless the run still holds the lease: a run that
///   outlived it (another run took over) deletes nothing and books nothing,
///   so the batch needs no rollback.
/// - Each worker books on its own row, and holds the run's row only `for
///   share`: parallel workers never wait for each other's commits, and a
///   run cannot be marked abandoned while one of its batches is in flight.
/// - The commit does not wait for its WAL flush (`synchronous_commit` off,
///   for this transaction only): if the server crashed right after, the
///   batch would simply be undone, ledger count included, and the next run
///   would delete those accounts again.
pub(super) fn purge_batch(
    t: &Names,
    blocking: &[BlockingPath],
    verification_tokens: Option<&QualifiedName>,
    records: Records,
) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    let cutoff = t.as_column("$1");
    let walked = walked(t, ["$3", "$10"], ["$11", "$12"], "$6");
    let not_held = t.not_held_since_start("u", "$7", "$8", "$9");
    let id_text = t.id_text("u");
    let not_blocked: String = blocking.iter().fold(String::new(), |mut sql, path| {
        sql.push_str("\n      and not ");
        sql.push_str(&referenced_along(path, "u"));
        sql
    });
    // The purged ids, [`IDS_PER_EVENT`] to an event: slices of one array
    // (measured: a third of the cost of numbering the rows and grouping
    // them); an empty batch writes none.
    let announced = if records.events {
        format!(
            "
), announced as (
    insert into account_deletion.webhook_events (type, user_ids, occurred_at)
    select 'account.purged', purged.ids[first::int : first::int + {last}], now()
    from (select array_agg(id) as ids, count(*) as n from deleted) purged,
         generate_series(1, purged.n, {IDS_PER_EVENT}) first",
            last = IDS_PER_EVENT - 1
        )
    } else {
        String::new()
    };
    // Auth.js's sign-in links by address go with the account.
    let (identifier_out, unverified) = match verification_tokens {
        Some(table) => (
            format!(", u.{}::text as identifier", t.email),
            format!(
                "
), unverified as (
    delete from {} v
    where v.\"identifier\" = any(array(select identifier from deleted where identifier is not null))",
                table.quoted()
            ),
        ),
        None => (String::new(), String::new()),
    };
    // The address leaves with the account, except into this one email.
    let (email_out, farewell) = if records.erased_email {
        (
            format!(", {} as email", t.address_of("u")),
            "
), farewell as (
    insert into account_deletion.email_outbox (user_id, kind, recipient)
    select id, 'erased', email from deleted where email is not null",
        )
    } else {
        (String::new(), "")
    };
    format!(
        "
with lease as (
    select id from account_deletion.purge_runs where id = $4 and status = 'running' for share
), {walked}, candidates as (
    select u.ctid
    from {users} u
    where u.ctid = any(array(select ctid from walked))
      and {not_held}{not_blocked}
), deleted as (
    delete from {users} u
    where u.ctid = any(array(select ctid from candidates))
      and u.{deleted_at} <= {cutoff}
    returning {id_text} as id{email_out}{identifier_out}
), forgotten as (
    delete from account_deletion.email_outbox
    where user_id = any(array(select id from deleted))
), unmarked as (
    delete from account_deletion.anonymized
    where user_id = any(array(select id from deleted))
), tombstoned as (
    insert into account_deletion.tombstones (user_id) select id from deleted{announced}{farewell}{unverified}
), tally as (
    select count(*) as n from deleted
), {WALKED_TO}), booked as (
    insert into account_deletion.purge_run_workers as w (run_id, worker, deleted, batches)
    select lease.id, $5, tally.n, 1 from lease, tally
    on conflict (run_id, worker) do update
        set deleted = w.deleted + excluded.deleted, batches = w.batches + 1
    returning run_id
)
select exists (select 1 from booked), tally.n, walked_to.n, walked_to.at, walked_to.key_id,
       set_config('synchronous_commit', 'off', true)
from tally, walked_to"
    )
}

/// What a walk of the purge reads of the holds when it starts, after
/// taking the purge gate in a statement before it (so no hold is half
/// placed): the held accounts soft-deleted in the walk's range, after
/// (`$1`, `$2`), up to (`$3`, `$4`) and at or before the cutoff `$5` (a
/// probe of the users table's key for each hold; there are few), when
/// that was (holds placed later have a later `since`, see
/// [`super::GATE_EXCLUSIVE`]), and its snapshot's `xmin` (a row changed by a
/// transaction from then on gets the full probe). Only the range's: the
/// ids travel with every batch of the walk.
pub(super) fn held_at_start(t: &Names) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    let after = t.after_key_estimated("u", "$1", "$2");
    let up_to = t.up_to_key("u", "$3", "$4");
    let cutoff = t.as_column("$5");
    let held = t.held("u");
    let id_text = t.id_text("u");
    // From the range's accounts to their holds, not from every hold: a
    // walk of new work reads what is new, however many accounts are held.
    format!(
        "select array(
             select {id_text} from {users} u
             where u.{deleted_at} <= {cutoff} and {after} and {up_to}
               and {held}),
         clock_timestamp(),
         txid_snapshot_xmin(txid_current_snapshot())"
    )
}

pub(super) fn make_due(t: &Names) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    // Just past the cutoff: due now, and not overdue for having been restored.
    let due = t.as_column("$2 - interval '1 second'");
    // Below the purge's watermark: the next run looks at them first.
    let listed = t.is_any_user("u", "$1");
    let id_text = t.id_text("u");
    format!(
        "with made as (
             update {users} u set {deleted_at} = {due}
             where {listed}
               and (u.{deleted_at} is null or u.{deleted_at} > {due})
         ), rechecked as (
             insert into account_deletion.rechecks (user_id)
             select {id_text} from {users} u where {listed}
             on conflict (user_id) do nothing
         )
         select count(*) from {users} u where {listed}"
    )
}

/// `exists (…)`: the user row `alias` has rows along every key of `path`.
pub(super) fn referenced_along(path: &BlockingPath, alias: &str) -> String {
    let mut from = String::new();
    let mut condition = String::new();
    for (i, key) in path.0.iter().enumerate() {
        let me = format!("r{i}");
        let parent = if i == 0 {
            alias.to_owned()
        } else {
            format!("r{}", i - 1)
        };
        let on: Vec<String> = key
            .columns
            .iter()
            .zip(&key.references)
            .map(|(column, referenced)| {
                format!(
                    "{me}.{} = {parent}.{}",
                    column.quoted(),
                    referenced.quoted()
                )
            })
            .collect();
        if i == 0 {
            from = format!("{} {me}", key.table.quoted());
            condition = on.join(" and ");
        } else {
            from = format!(
                "{from} join {} {me} on {}",
                key.table.quoted(),
                on.join(" and ")
            );
        }
    }
    format!("exists (select 1 from {from} where {condition})")
}
