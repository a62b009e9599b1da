//! The statements of the account routes and of support's actions: the
//! soft delete, the sign-in's session look-up, the deletion's state, the
//! restores (by the signed-in user, by the link, by an operator), and the
//! look-ups of an account by id or address.

use super::Records;
use super::names::{Names, as_column_time};
use crate::schema::{self, Catalog, SessionTable, TimeType};

pub(super) fn delete_account(t: &Names, catalog: &Catalog, records: Records) -> String {
    let Names {
        users,
        deleted_at,
        id_type,
        ..
    } = t;
    let now = t.as_column("now()");
    let deleted_at_tz = t.deleted_at_of("u");
    let address = t.address_of("u");
    let is_user = t.is_user("u", "$1");
    let id_text = t.id_text("u");
    // Sign-in sessions of the user go in the same statement.
    let signed_out = match &catalog.sessions {
        Some(sessions) => {
            let user = match sessions.kind {
                SessionTable::Ours => "user_id",
                SessionTable::Authjs => "\"userId\"",
            };
            format!(
                "signed_out as (
             delete from {table} where {user} in (select id::{id_type} from deleted)
         ), ",
                table = sessions.table.quoted()
            )
        }
        None => String::new(),
    };
    // The event is claimed for its first attempt, like the email.
    let (announced, event_id) = if records.events {
        (
            ", announced as (
             insert into account_deletion.webhook_events
                 (type, user_ids, occurred_at, purge_after, attempts, claimed_until)
             select 'account.deleted', array[id], deleted_at, deleted_at + make_interval(days => $2),
                    1, now() + make_interval(secs => $4)
             from deleted
             returning id
         )",
            "(select id from announced)",
        )
    } else {
        ("", "null::uuid")
    };
    format!(
        "with deleted as (
             update {users} u set {deleted_at} = {now}
             where {is_user} and u.{deleted_at} is null
             returning {id_text} as id, {address} as email, {deleted_at_tz} as deleted_at
         ), {signed_out}revoked as (
             update account_deletion.recovery_tokens set revoked_at = now()
             where user_id in (select id from deleted) and used_at is null and revoked_at is null
         ), superseded as (
             update account_deletion.email_outbox set status = 'superseded', claimed_until = null
             where user_id in (select id from deleted)
               and status = 'pending' and kind in ('recovery', 'reminder')
         ), queued as (
             insert into account_deletion.email_outbox
                 (user_id, kind, recipient, for_deleted_at, attempts, claimed_until)
             select id, 'recovery', email, deleted_at, 1, now() + make_interval(secs => $4)
             from deleted where email is not null
             returning id, user_id, for_deleted_at
         ), token as (
             insert into account_deletion.recovery_tokens (user_id, outbox_id, token_hash, for_deleted_at)
             select user_id, id, $3, for_deleted_at from queued
         ), recorded as (
             insert into account_deletion.history (user_id, action, by, for_deleted_at)
             select id, 'deleted', 'user', deleted_at from deleted
         ){announced}
         select q.id, d.id, d.email, d.deleted_at, d.deleted_at + make_interval(days => $2), {event_id}
         from deleted d left join queued q on q.user_id = d.id"
    )
}

pub(super) fn session_user(t: &Names, sessions: &schema::Sessions) -> String {
    let Names { users, id, .. } = t;
    let (token, user, expires) = match sessions.kind {
        SessionTable::Ours => ("token_hash", "user_id", "expires_at"),
        SessionTable::Authjs => ("\"sessionToken\"", "\"userId\"", "\"expires\""),
    };
    let now = as_column_time("now()", sessions.expires_type == TimeType::NaiveUtc);
    format!(
        "select s.{user}::text
         from {table} s
         join {users} u on u.{id} = s.{user}
         where s.{token} = $1 and s.{expires} > {now}",
        table = sessions.table.quoted()
    )
}

pub(super) fn deletion_state(t: &Names) -> String {
    format!(
        "select {deleted_at}, {purge_after},
                coalesce({restorable} and {made_by_user}, false)
         from {users} u where {is_user}",
        deleted_at = t.deleted_at_of("u"),
        purge_after = t.purge_after("u", "$2"),
        restorable = t.restorable("u", "$2"),
        made_by_user = t.made_by_user("u"),
        users = t.users,
        is_user = t.is_user("u", "$1"),
    )
}

pub(super) fn restore_by_id(t: &Names, own: bool) -> String {
    // The signed-in user's own restore: only a deletion the user made, and
    // (`$3`, when not null) one made before the credential was issued.
    let made_by_user = if own {
        format!(
            "\n           and {}\n           and ($3::timestamptz is null or {} < $3::timestamptz)",
            t.made_by_user("u"),
            t.deleted_at_of("u")
        )
    } else {
        String::new()
    };
    format!(
        "update {users} u set {deleted_at} = null
         where {is_user}
           and {restorable}{made_by_user}
         returning {id}, {address}",
        users = t.users,
        deleted_at = t.deleted_at,
        is_user = t.is_user("u", "$1"),
        restorable = t.restorable("u", "$2"),
        id = t.id_text("u"),
        address = t.address_of("u"),
    )
}

pub(super) fn lock_account(t: &Names) -> String {
    format!(
        "select {id}, {address}, {deleted_at}, {purge_after},
                coalesce({made_by_user}, false),
                coalesce({restorable}, false)
         from {users} u where {is_user}
         for update of u",
        id = t.id_text("u"),
        address = t.address_of("u"),
        deleted_at = t.deleted_at_of("u"),
        purge_after = t.purge_after("u", "$2"),
        made_by_user = t.made_by_user("u"),
        restorable = t.restorable("u", "$2"),
        users = t.users,
        is_user = t.is_user("u", "$1"),
    )
}

pub(super) fn account_state(t: &Names) -> String {
    format!(
        "select {deleted_at}, {purge_after}, coalesce({made_by_user}, false)
         from {users} u where {is_user}",
        deleted_at = t.deleted_at_of("u"),
        purge_after = t.purge_after("u", "$2"),
        made_by_user = t.made_by_user("u"),
        users = t.users,
        is_user = t.is_user("u", "$1"),
    )
}

pub(super) fn account_by_email(t: &Names, folded: bool) -> String {
    let email = &t.email;
    // Exactly as stored; otherwise as typed differently (case, spaces):
    // support reads an address off a ticket. Every match, so the caller
    // can refuse to choose between two; a few more than one is enough to
    // say which ids collide. Each form is served by an index: the
    // column's own, and `lower(btrim(…))` (ours, or `cargo dev migrate
    // --add-email-index`); the folded one is asked only when no address
    // is exactly the one given.
    let matches = if folded {
        format!("lower(btrim(u.{email}::text)) = lower(btrim($1))")
    } else {
        format!("u.{email} = $1")
    };
    format!(
        "select {id} from {users} u where {matches} order by 1 limit 20",
        id = t.id_text("u"),
        users = t.users,
    )
}

/// User `$1`'s id as the database writes it, if there is such a user.
pub(super) fn account_id(t: &Names) -> String {
    format!(
        "select {id} from {users} u where {is_user}",
        id = t.id_text("u"),
        users = t.users,
        is_user = t.is_user("u", "$1"),
    )
}

/// Recovery token `t` is `$1` (a hash), unused and unrevoked, for the
/// deletion its account `u` is in, which can still be undone (`$2`
/// retention days): what the link's page and its restore both check.
fn token_restores(t: &Names) -> String {
    format!(
        "t.token_hash = $1
           and t.used_at is null
           and t.revoked_at is null
           and {deleted_at} = t.for_deleted_at
           and {restorable}",
        deleted_at = t.deleted_at_of("u"),
        restorable = t.restorable("u", "$2"),
    )
}

pub(super) fn recoverable_until(t: &Names) -> String {
    format!(
        "select {purge_after}
         from account_deletion.recovery_tokens t
         join {users} u on {is_user}
         where {token_restores}",
        purge_after = t.purge_after("u", "$2"),
        users = t.users,
        is_user = t.is_user("u", "t.user_id"),
        token_restores = token_restores(t),
    )
}

pub(super) fn recover(t: &Names) -> String {
    format!(
        "update {users} u set {deleted_at} = null
         from account_deletion.recovery_tokens t
         where {is_user}
           and {token_restores}
         returning {id}, {address}",
        users = t.users,
        deleted_at = t.deleted_at,
        is_user = t.is_user("u", "t.user_id"),
        token_restores = token_restores(t),
        id = t.id_text("u"),
        address = t.address_of("u"),
    )
}
