//! The statements of the email cron and the outbox: the accounts the app
//! soft-deleted by itself recorded, the reminders queued, and the account
//! an email is about, checked before it is sent.

use super::names::Names;

/// Records in the history, as deleted by the app, the soft-deleted
/// accounts after the key (`$1`, `$2`) and up to (`$3`, `$4`) whose
/// deletion is not there yet.
pub(super) fn record_app_deletions(t: &Names) -> String {
    let deleted_at = t.deleted_at_of("u");
    format!(
        "insert into account_deletion.history (user_id, at, action, by, for_deleted_at)
         select {id}, {deleted_at}, 'deleted', 'app', {deleted_at}
         from {users} u
         where u.{deleted_at_column} is not null and {after} and {up_to}
           and not {recorded}",
        id = t.id_text("u"),
        users = t.users,
        deleted_at_column = t.deleted_at,
        after = t.after_key("u", "$1", "$2"),
        up_to = t.up_to_key("u", "$3", "$4"),
        recorded = t.deletion_in_history("u", false),
    )
}

pub(super) fn email_account(t: &Names) -> String {
    let deleted_at = t.deleted_at_of("u");
    format!(
        "select {id}, {deleted_at}, {purge_after}
         from account_deletion.email_outbox o
         join {users} u on {is_user}
         where o.id = $1
           and o.status = 'pending'
           and {deleted_at} = o.for_deleted_at
           and {in_grace}
         for share of u",
        id = t.id_text("u"),
        purge_after = t.purge_after("u", "$2"),
        users = t.users,
        is_user = t.is_user("u", "o.user_id"),
        in_grace = t.in_grace_period("u", "$2"),
    )
}

pub(super) fn queue_reminders(t: &Names) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    let id = t.id_text("u");
    let deleted_at_tz = t.deleted_at_of("u");
    let reminder_due = t.as_column("now() - make_interval(days => $1 - $2)");
    // An account without an address gets no reminder (nor a failing row),
    // and neither does one the app soft-deleted by itself: a reminder's
    // link restores the account, and a ban must not turn into one.
    let address = t.address_of("u");
    let made_by_user = t.made_by_user("u");
    format!(
        "with due as (
             select {id} as id, {address} as email, {deleted_at_tz} as deleted_at
             from {users} u
             where u.{deleted_at} <= {reminder_due}
               and {in_grace}
               and {address} is not null
               and {made_by_user}
               and not exists (
                   select 1 from account_deletion.email_outbox o
                   where o.user_id = {id} and o.kind = 'reminder'
                     and o.for_deleted_at = {deleted_at_tz}
               )
         ), superseded as (
             update account_deletion.email_outbox o set status = 'superseded', claimed_until = null
             from due
             where o.user_id = due.id and o.status = 'pending' and o.kind = 'recovery'
         )
         insert into account_deletion.email_outbox (user_id, kind, recipient, for_deleted_at)
         select id, 'reminder', email, deleted_at from due
         on conflict (user_id, for_deleted_at) where kind = 'reminder' do nothing",
        in_grace = t.in_grace_period("u", "$1"),
    )
}
