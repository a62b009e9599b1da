//! Every statement that touches the app's tables, rendered once per process
//! from what the catalog says about them ([`schema::Catalog`]): the users
//! table's name and columns, the id's type (a user id travels as text and is
//! cast to it), whether deleted-at is naive UTC time, the sign-in's sessions
//! table, and the foreign keys that keep a user from being deleted.
//!
//! Statements on this project's own tables (`account_deletion.*`) do not
//! depend on the app and stay constants next to the code that runs them.
//!
//! Time: a `timestamp without time zone` column holds UTC wall-clock time
//! (the way Prisma writes `DateTime`). It is read as `col at time zone 'UTC'`
//! and compared with `(value at time zone 'UTC')`: the conversion sits on
//! the value, never on the column, so the comparison is right whatever the
//! session's `TimeZone` and still an index condition.

mod export;

use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::platform::db::{self, Limits, Statement};
pub use export::{DOWNLOADS_PER_LINK, ExportStatements};

use crate::schema::{
    self, BlockingPath, Catalog, Clear, Ident, OnDelete, QualifiedName, SchemaError, SessionTable,
    TimeType, UsersTable,
};

/// The most user ids one `account.purged` event carries: about 40 KB of
/// body with uuids, 70 KB with 64-character ids. A batch that deleted more
/// writes several events (the purge batch slices its ids into them).
pub const IDS_PER_EVENT: usize = 1000;

/// The purge gate, a transaction-scoped advisory lock (so it works through
/// a transaction pooler, and goes with the transaction whatever happens to
/// it): every purge batch takes it shared, before its main statement; a
/// hold takes it exclusively, so that no batch whose snapshot predates the
/// hold can still be running when the hold commits. The key pair is this
/// project's own (`account_deletion` as two int4s, `0x61636364`,
/// `0x656c6574`), unlikely to meet an app's.
pub const GATE_SHARED: &str = "select pg_advisory_xact_lock_shared(1633903460, 1701602676)";
pub const GATE_EXCLUSIVE: &str = "select pg_advisory_xact_lock(1633903460, 1701602676)";

/// What the statements record besides the change itself, as configured:
/// account events for the webhook (`WEBHOOK_URL`), and the purge's
/// "your account has been erased" email (`SEND_ERASED_EMAIL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Records {
    pub events: bool,
    pub erased_email: bool,
}

/// The rendered statements, and the catalog they were rendered from.
#[derive(Debug)]
pub struct Statements {
    pub catalog: Catalog,
    pub records: Records,
    /// The soft delete of user `$1` (text), with `$2` retention days, `$3`
    /// the new recovery token's hash, `$4` the email's (and event's) claim
    /// in seconds; returns the email's id, the user's id and address (both
    /// null for an account without an address), when it was deleted and will
    /// be purged, and the event's id (null when events are off).
    pub delete_account: Statement,
    /// The user session token `$1` (its SHA-256 for our `sessions`, the
    /// token itself for Auth.js) signs in, if the session is live and the
    /// user exists, deleted or not (each route decides what a deleted user
    /// may do). `None` when the sign-in uses no table.
    pub session_user: Option<Statement>,
    /// User `$1`'s deletion as the signed-in user sees it (`$2` retention
    /// days): deleted-at and purge-after (null when active), and whether
    /// it is restorable (the user's own deletion, in its grace period, not
    /// anonymized). No row when there is no such user.
    pub deletion_state: Statement,
    /// Restores user `$1` (`$2` retention days) if it is soft-deleted,
    /// inside its grace period and not anonymized, and, for `own`, only if
    /// the user made the deletion before `$3` (the credential's issue, or
    /// null); returns the id and address. The purge's re-check on its
    /// locked row keeps the two from both winning, as with the link.
    pub restore_own: String,
    pub restore_any: String,
    /// User `$1` (`$2` retention days) locked for an operator's action:
    /// id, address, deleted-at, purge-after, whether the user made the
    /// deletion, whether it is in its grace period.
    pub lock_account: String,
    /// The users whose address is `$1` exactly (at most 20 ids; more than
    /// one only without a unique index).
    pub account_by_email: String,
    /// The users whose address is `$1` but for case and surrounding spaces
    /// (at most 20 ids), for when none is exactly.
    pub account_by_folded_email: String,
    /// User `$1`'s deleted-at, purge-after (`$2` retention days) and
    /// whether the user made the deletion, for support's view.
    pub account_state: String,
    /// User `$1`'s id as the database writes it, if there is such a user.
    pub account_id: String,
    /// Records the soft-deleted accounts of a range of deleted-at that the
    /// app deleted by itself (no deletion of theirs in the history) as
    /// deleted by the app ([`record_app_deletions`]).
    pub record_app_deletions: String,
    /// When the account recovery token `$1` can restore will be purged
    /// (`$2` retention days).
    pub recoverable_until: Statement,
    /// The restore: token `$1`, `$2` retention days; returns the user's id
    /// and address (null when it has none).
    pub recover: String,
    /// The account an outbox email `$1` is about, locked, if it is still in
    /// the deletion the email is about (`$2` retention days).
    pub email_account: String,
    /// Queues the reminders that are due (`$1` retention days, `$2` days
    /// before the purge), for accounts with an address.
    pub queue_reminders: String,
    /// One purge batch; see [`purge_batch`] for its shape.
    pub purge_batch: Statement,
    /// One anonymizing batch, when anonymizing is on and some key can
    /// block; see [`anonymize_batch`].
    pub anonymize_batch: Option<Statement>,
    /// Forgets the anonymized marks of accounts that are gone (the purge
    /// batch forgets those it deletes; these are the ones the app deleted
    /// itself), in one slice of at most `$2` marks after the mark `$1`
    /// (null: from the start): how many went, how many it walked and the
    /// last it walked.
    pub prune_anonymized: String,
    /// Forgets tombstones past their keep (`$2` days), at most `$1` of
    /// them, and with each the history of its account when the account is
    /// gone and nothing of its history is younger than the keep.
    pub prune_tombstones: String,
    /// Forgets the history of accounts that are gone without a tombstone
    /// (the app deleted them itself), in one slice of at most `$2` accounts
    /// after `$1` (null: from the start), once nothing of it is younger
    /// than `$3` days: how many rows went, how many accounts it walked and
    /// the last it walked. An account that still exists keeps all of its
    /// history (its own deletion says whether it may be restored, and by
    /// whom it was made).
    pub prune_history: String,
    /// What a walk of the purge reads of the holds when it starts
    /// ([`held_at_start`]).
    pub held_at_start: String,
    /// The names of the blocking keys along which rows reference user `$1`
    /// (text[]; empty when none do).
    pub blocked_by: String,
    /// Expired accounts at cutoff `$1` whose key lies after (`$3`, `$4`)
    /// and up to (`$5`, `$6`) (each bound null: open): how many the purge
    /// can delete, how many are blocked, how many each blocking path
    /// blocks, how many are overdue (`$2` hours past the cutoff), the
    /// oldest one's seconds past its retention, how many are held (none of
    /// the others), and how many are anonymized and still kept by their
    /// references.
    pub count_expired: String,
    /// A slice of a walk over the deleted-at key ([`slice`]).
    pub slice: String,
    /// How many accounts (at most `$3`) lie at or below key (`$1`, `$2`).
    pub count_below: String,
    /// Soft-deleted accounts still in their grace period at cutoff `$1`.
    pub count_pending: String,
    /// Makes the accounts among ids `$1` (text[]) that are present due for
    /// the purge at cutoff `$2`, and due for its next run's rechecks;
    /// returns how many are present.
    pub make_due: String,
    /// The export's requests and links.
    pub export: ExportStatements,
}

impl Statements {
    #[must_use]
    pub fn render(catalog: Catalog, records: Records) -> Self {
        let t = Names::new(&catalog);
        Self {
            delete_account: Statement::new(delete_account(&t, &catalog, records)),
            session_user: catalog
                .sessions
                .as_ref()
                .map(|sessions| Statement::new(session_user(&t, sessions))),
            deletion_state: Statement::new(deletion_state(&t)),
            restore_own: restore_by_id(&t, true),
            restore_any: restore_by_id(&t, false),
            lock_account: lock_account(&t),
            account_by_email: account_by_email(&t, false),
            account_by_folded_email: account_by_email(&t, true),
            account_state: account_state(&t),
            account_id: format!(
                "select u.{}::text from {} u where u.{} = $1::{}",
                t.id, t.users, t.id, t.id_type
            ),
            record_app_deletions: record_app_deletions(&t),
            recoverable_until: Statement::new(recoverable_until(&t)),
            recover: recover(&t),
            email_account: email_account(&t),
            queue_reminders: queue_reminders(&t),
            purge_batch: Statement::new(purge_batch(
                &t,
                &catalog.blocking,
                catalog.verification_tokens.as_ref(),
                records,
            )),
            count_expired: count_expired(&t, &catalog.blocking),
            blocked_by: blocked_by(&t, &catalog.blocking),
            anonymize_batch: anonymize_batch(&t, &catalog, records).map(Statement::new),
            held_at_start: held_at_start(&t),
            prune_anonymized: prune_anonymized(&t),
            prune_tombstones: prune_tombstones(&t),
            prune_history: prune_history(&t),
            slice: slice(&t),
            count_below: count_below(&t),
            count_pending: count_pending(&t),
            make_due: make_due(&t),
            export: ExportStatements::render(&t),
            catalog,
            records,
        }
    }
}

/// The users table's names as SQL text, and its time conversions.
struct Names {
    users: String,
    id: String,
    email: String,
    deleted_at: String,
    id_type: &'static str,
    naive: bool,
}

impl Names {
    fn new(catalog: &Catalog) -> Self {
        Self {
            users: catalog.users.quoted(),
            id: catalog.id.quoted(),
            email: catalog.email.quoted(),
            deleted_at: catalog.deleted_at.quoted(),
            id_type: catalog.id_type.sql(),
            naive: catalog.deleted_at_type == TimeType::NaiveUtc,
        }
    }

    /// `u`'s deleted-at as a `timestamptz`.
    fn deleted_at_of(&self, alias: &str) -> String {
        as_timestamptz(&format!("{alias}.{}", self.deleted_at), self.naive)
    }

    /// A `timestamptz` value as the deleted-at column holds it.
    fn as_column(&self, value: &str) -> String {
        as_column_time(value, self.naive)
    }

    /// `alias`'s email address as text, or null when it has none: an app's
    /// column may be nullable (the Prisma schema of `NextAuth` v4) or blank
    /// (Django's default). Such an account is deleted, restored and purged
    /// like any other; there is just no email to send it.
    fn address_of(&self, alias: &str) -> String {
        format!("nullif(btrim({alias}.{}::text), '')", self.email)
    }

    /// `alias` lies after the key (`at`, `id`) in (deleted-at, id) order;
    /// true when `at` is null (a walk from the start). With an index on
    /// both columns, a row comparison the walk starts from exactly, ties
    /// included.
    fn after_key(&self, alias: &str, at: &str, key_id: &str) -> String {
        self.key_bound(alias, ">", at, key_id)
    }

    /// `alias` compares with the key (`at`, `id`) by `op`; true when `at`
    /// is null (an open bound).
    fn key_bound(&self, alias: &str, op: &str, at: &str, key_id: &str) -> String {
        let Self {
            id,
            deleted_at,
            id_type,
            ..
        } = self;
        let at_column = self.as_column(&format!("{at}::timestamptz"));
        format!(
            "({at}::timestamptz is null or ({alias}.{deleted_at}, {alias}.{id}) {op} ({at_column}, {key_id}::text::{id_type}))"
        )
    }

    /// [`Self::after_key`] with the bound on deleted-at alone said too,
    /// for a statement that reads its whole range: the planner estimates a
    /// row comparison as a third of the table, and a plain bound from its
    /// histogram (a count of the few accounts above the watermark read a
    /// million below it at ten million accounts). A batch walk keeps the
    /// estimate that makes it walk the index in order.
    fn after_key_estimated(&self, alias: &str, at: &str, key_id: &str) -> String {
        let at_column = self.as_column(&format!("{at}::timestamptz"));
        format!(
            "({at}::timestamptz is null or {alias}.{} >= {at_column}) and {}",
            self.deleted_at,
            self.after_key(alias, at, key_id)
        )
    }

    /// `alias` lies at or before the key (`at`, `id`); true when `at` is
    /// null.
    fn up_to_key(&self, alias: &str, at: &str, key_id: &str) -> String {
        self.key_bound(alias, "<=", at, key_id)
    }

    /// No hold keeps user `alias` (an index probe of `holds`' key).
    fn not_held(&self, alias: &str) -> String {
        format!(
            "not exists (select 1 from account_deletion.holds h where h.user_id = {alias}.{}::text)",
            self.id
        )
    }

    /// No hold keeps user `alias`, checked against what a purge run read
    /// when its walk started ([`held_at_start`]): the held accounts that were
    /// soft-deleted then (`$held`, a literal array, hashed by the planner),
    /// the holds placed since (`$since`, a few index entries), and, for a
    /// row some transaction changed since (its `xmin` not older than the
    /// start's snapshot `$xmin`), the probe of [`Self::not_held`]. A probe
    /// per purged account cost the purge 6 to 9% with 10,000 holds; this
    /// costs it nothing measurable with 10,000 holds on active accounts
    /// (0.997×), but `$held` travels in every batch's text: about 1.7 ms a
    /// batch with 1,000 held deleted accounts, 15 ms with 10,000
    /// (BENCHMARKS.md). With all three null, it is the probe for every row
    /// (erasing one account now).
    fn not_held_since_start(&self, alias: &str, held: &str, since: &str, xmin: &str) -> String {
        let Self { id, id_type, .. } = self;
        let probe = self.not_held(alias);
        format!(
            "{alias}.{id} <> all(coalesce({held}::text[], '{{}}')::{id_type}[])
      and {alias}.{id} <> all(array(
          select h.user_id::{id_type} from account_deletion.holds h
          where h.since > coalesce({since}, '-infinity'::timestamptz)))
      and (age({alias}.xmin) > age(({xmin} % 4294967296)::text::xid) or {probe})"
        )
    }

    /// `alias` has not been anonymized: an anonymized account is erased (its
    /// person is gone, its row stays for the records that must be kept), so
    /// nothing may restore it or send it a link.
    fn not_anonymized(&self, alias: &str) -> String {
        format!(
            "not exists (select 1 from account_deletion.anonymized a where a.user_id = {alias}.{}::text)",
            self.id
        )
    }

    /// `exists (…)`: the user made the deletion `alias` is in now through
    /// the delete route (its history says so for this very deleted-at), as
    /// opposed to the app setting the deleted-at by itself. Only such a
    /// deletion gets an email or a link that can restore the account.
    fn made_by_user(&self, alias: &str) -> String {
        format!(
            "exists (
                   select 1 from account_deletion.history h
                   where h.user_id = {alias}.{id}::text and h.action = 'deleted' and h.by = 'user'
                     and h.for_deleted_at = {deleted_at}
               )",
            id = self.id,
            deleted_at = self.deleted_at_of(alias),
        )
    }
}

fn as_timestamptz(column: &str, naive: bool) -> String {
    if naive {
        format!("({column} at time zone 'UTC')")
    } else {
        column.to_owned()
    }
}

fn as_column_time(value: &str, naive: bool) -> String {
    if naive {
        format!("(({value}) at time zone 'UTC')")
    } else {
        format!("({value})")
    }
}

fn delete_account(t: &Names, catalog: &Catalog, records: Records) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let now = t.as_column("now()");
    let deleted_at_tz = t.deleted_at_of("u");
    let address = t.address_of("u");
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
             where u.{id} = $1::{id_type} and u.{deleted_at} is null
             returning u.{id}::text as id, {address} as email, {deleted_at_tz} as deleted_at
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

fn session_user(t: &Names, sessions: &schema::Sessions) -> String {
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

fn deletion_state(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let in_retention = t.as_column("now() - make_interval(days => $2)");
    let made_by_user = t.made_by_user("u");
    let not_anonymized = t.not_anonymized("u");
    format!(
        "select {deleted_at_tz}, {deleted_at_tz} + make_interval(days => $2),
                coalesce(u.{deleted_at} > {in_retention} and {not_anonymized} and {made_by_user}, false)
         from {users} u where u.{id} = $1::{id_type}"
    )
}

fn restore_by_id(t: &Names, own: bool) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let in_retention = t.as_column("now() - make_interval(days => $2)");
    let address = t.address_of("u");
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
    let not_anonymized = t.not_anonymized("u");
    format!(
        "update {users} u set {deleted_at} = null
         where u.{id} = $1::{id_type}
           and u.{deleted_at} > {in_retention}
           and {not_anonymized}{made_by_user}
         returning u.{id}::text, {address}"
    )
}

fn lock_account(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let in_retention = t.as_column("now() - make_interval(days => $2)");
    let made_by_user = t.made_by_user("u");
    let not_anonymized = t.not_anonymized("u");
    let address = t.address_of("u");
    format!(
        "select u.{id}::text, {address}, {deleted_at_tz}, {deleted_at_tz} + make_interval(days => $2),
                coalesce({made_by_user}, false),
                coalesce(u.{deleted_at} > {in_retention} and {not_anonymized}, false)
         from {users} u where u.{id} = $1::{id_type}
         for update of u"
    )
}

fn account_state(t: &Names) -> String {
    let Names {
        users, id, id_type, ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let made_by_user = t.made_by_user("u");
    format!(
        "select {deleted_at_tz}, {deleted_at_tz} + make_interval(days => $2), coalesce({made_by_user}, false)
         from {users} u where u.{id} = $1::{id_type}"
    )
}

fn account_by_email(t: &Names, folded: bool) -> String {
    let Names {
        users, id, email, ..
    } = t;
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
    format!("select u.{id}::text from {users} u where {matches} order by 1 limit 20")
}

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

fn prune_anonymized(t: &Names) -> String {
    let Names {
        users, id, id_type, ..
    } = t;
    rotating_prune(
        "select m.user_id from account_deletion.anonymized m
            where ($1::text is null or m.user_id > $1) order by m.user_id limit $2",
        &format!(
            "select s.user_id from slice s
            where not exists (select 1 from {users} u where u.{id} = s.user_id::{id_type})"
        ),
        "delete from account_deletion.anonymized a using gone g where a.user_id = g.user_id
            returning 1",
    )
}

/// The history of an account that is gone, none of it younger than the
/// keep (`$days`): no row of `users` has its id.
fn history_gone(t: &Names, candidates: &str, days: &str) -> String {
    let Names {
        users, id, id_type, ..
    } = t;
    format!(
        "select c.user_id from ({candidates}) c
            where not exists (select 1 from {users} u where u.{id} = c.user_id::{id_type})
              and not exists (
                  select 1 from account_deletion.history n
                  where n.user_id = c.user_id and n.at >= now() - make_interval(days => {days}))"
    )
}

fn prune_tombstones(t: &Names) -> String {
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

fn prune_history(t: &Names) -> String {
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

/// A slice of a walk: the first `$6` soft-deleted accounts in key order
/// after (`$1`, `$2`), up to (`$3`, `$4`) and deleted at or before `$5`
/// (each bound null: open). One row, when the slice holds any: how many it
/// holds and the key of its last.
fn slice(t: &Names) -> String {
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
fn count_below(t: &Names) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    let up_to = t.up_to_key("u", "$1", "$2");
    format!(
        "select count(*) from (
             select 1 from {users} u where u.{deleted_at} is not null and {up_to} limit $3) s"
    )
}

/// What a walk of the purge reads of the holds when it starts, after
/// taking the purge gate in a statement before it (so no hold is half
/// placed): the held accounts soft-deleted in the walk's range, after
/// (`$1`, `$2`), up to (`$3`, `$4`) and at or before the cutoff `$5` (a
/// probe of the users table's key for each hold; there are few), when
/// that was (holds placed later have a later `since`, see
/// [`GATE_EXCLUSIVE`]), and its snapshot's `xmin` (a row changed by a
/// transaction from then on gets the full probe). Only the range's: the
/// ids travel with every batch of the walk.
fn held_at_start(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let after = t.after_key_estimated("u", "$1", "$2");
    let up_to = t.up_to_key("u", "$3", "$4");
    let cutoff = t.as_column("$5");
    // From the range's accounts to their holds, not from every hold: a
    // walk of new work reads what is new, however many accounts are held.
    format!(
        "select array(
             select u.{id}::text from {users} u
             where u.{deleted_at} <= {cutoff} and {after} and {up_to}
               and exists (select 1 from account_deletion.holds h where h.user_id = u.{id}::text)),
         clock_timestamp(),
         txid_snapshot_xmin(txid_current_snapshot())"
    )
}

/// Records in the history, as deleted by the app, the soft-deleted
/// accounts after the key (`$1`, `$2`) and up to (`$3`, `$4`) whose
/// deletion is not there yet.
fn record_app_deletions(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let after = t.after_key("u", "$1", "$2");
    let up_to = t.up_to_key("u", "$3", "$4");
    format!(
        "insert into account_deletion.history (user_id, at, action, by, for_deleted_at)
         select u.{id}::text, {deleted_at_tz}, 'deleted', 'app', {deleted_at_tz}
         from {users} u
         where u.{deleted_at} is not null and {after} and {up_to}
           and not exists (
               select 1 from account_deletion.history h
               where h.user_id = u.{id}::text and h.action = 'deleted'
                 and h.for_deleted_at = {deleted_at_tz}
           )"
    )
}

fn recoverable_until(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let in_retention = t.as_column("now() - make_interval(days => $2)");
    format!(
        "select {deleted_at_tz} + make_interval(days => $2)
         from account_deletion.recovery_tokens t
         join {users} u on u.{id} = t.user_id::{id_type}
         where t.token_hash = $1
           and t.used_at is null
           and t.revoked_at is null
           and {deleted_at_tz} = t.for_deleted_at
           and u.{deleted_at} > {in_retention}
           and {not_anonymized}",
        not_anonymized = t.not_anonymized("u"),
    )
}

fn recover(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let in_retention = t.as_column("now() - make_interval(days => $2)");
    let address = t.address_of("u");
    format!(
        "update {users} u set {deleted_at} = null
         from account_deletion.recovery_tokens t
         where t.token_hash = $1
           and t.used_at is null
           and t.revoked_at is null
           and u.{id} = t.user_id::{id_type}
           and {deleted_at_tz} = t.for_deleted_at
           and u.{deleted_at} > {in_retention}
           and {not_anonymized}
         returning u.{id}::text, {address}",
        not_anonymized = t.not_anonymized("u"),
    )
}

fn email_account(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let in_retention = t.as_column("now() - make_interval(days => $2)");
    format!(
        "select u.{id}::text, {deleted_at_tz}, {deleted_at_tz} + make_interval(days => $2)
         from account_deletion.email_outbox o
         join {users} u on u.{id} = o.user_id::{id_type}
         where o.id = $1
           and o.status = 'pending'
           and {deleted_at_tz} = o.for_deleted_at
           and u.{deleted_at} > {in_retention}
         for share of u"
    )
}

fn queue_reminders(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let deleted_at_tz = t.deleted_at_of("u");
    let reminder_due = t.as_column("now() - make_interval(days => $1 - $2)");
    let in_retention = t.as_column("now() - make_interval(days => $1)");
    // An account without an address gets no reminder (nor a failing row),
    // and neither does one the app soft-deleted by itself: a reminder's
    // link restores the account, and a ban must not turn into one.
    let address = t.address_of("u");
    let made_by_user = t.made_by_user("u");
    format!(
        "with due as (
             select u.{id}::text as id, {address} as email, {deleted_at_tz} as deleted_at
             from {users} u
             where u.{deleted_at} <= {reminder_due}
               and u.{deleted_at} > {in_retention}
               and {address} is not null
               and {made_by_user}
               and not exists (
                   select 1 from account_deletion.email_outbox o
                   where o.user_id = u.{id}::text and o.kind = 'reminder'
                     and o.for_deleted_at = {deleted_at_tz}
               )
         ), superseded as (
             update account_deletion.email_outbox o set status = 'superseded', claimed_until = null
             from due
             where o.user_id = due.id and o.status = 'pending' and o.kind = 'recovery'
         )
         insert into account_deletion.email_outbox (user_id, kind, recipient, for_deleted_at)
         select id, 'reminder', email, deleted_at from due
         on conflict (user_id, for_deleted_at) where kind = 'reminder' do nothing"
    )
}

/// The walk of one batch, as a CTE `walked`: up to `$2` accounts expired
/// at cutoff `$1` that no other transaction holds, in key order after the
/// key `after` and up to `up_to` (null bounds: open), only those of the
/// ids `only` (text[]) when it is not null, locked, with their keys; none
/// unless the run holds its lease (CTE `lease`).
fn walked(t: &Names, after: [&str; 2], up_to: [&str; 2], only: &str) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    let cutoff = t.as_column("$1");
    let after = t.after_key("u", after[0], after[1]);
    let up_to = t.up_to_key("u", up_to[0], up_to[1]);
    let deleted_at_tz = t.deleted_at_of("u");
    format!(
        "walked as (
    select u.ctid, {deleted_at_tz} as at, u.{id} as key_id
    from {users} u
    where u.{deleted_at} <= {cutoff}
      and {after}
      and {up_to}
      and ({only}::text[] is null or u.{id} = any({only}::text[]::{id_type}[]))
      and exists (select 1 from lease)
    order by u.{deleted_at}, u.{id}
    limit $2
    for update of u skip locked
)"
    )
}

/// The CTE `walked_to`: how many accounts a batch walked, and the key of
/// the last.
const WALKED_TO: &str = "walked_to as (
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
/// ([`db::Statement`]); erasing one account now runs the same one, with
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
/// - Its message first takes the purge gate ([`GATE_SHARED`], sent with the
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
fn purge_batch(
    t: &Names,
    blocking: &[BlockingPath],
    verification_tokens: Option<&QualifiedName>,
    records: Records,
) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let cutoff = t.as_column("$1");
    let walked = walked(t, ["$3", "$10"], ["$11", "$12"], "$6");
    let not_held = t.not_held_since_start("u", "$7", "$8", "$9");
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
    returning u.{id}::text as id{email_out}{identifier_out}
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
/// - the personal columns are cleared ([`schema::Clear`]);
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
fn anonymize_batch(t: &Names, catalog: &Catalog, records: Records) -> Option<String> {
    let clears = catalog.anonymize.as_ref()?;
    if catalog.blocking.is_empty() {
        return None;
    }
    let Names {
        users,
        id,
        deleted_at,
        ..
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
                Clear::ErasedAddress => format!("'erased-' || u.{id}::text || '@invalid'"),
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
    Some(format!(
        "
with lease as (
    select id from account_deletion.purge_runs where id = $3 and status = 'running' for share
), {walked}, candidates as (
    select u.ctid
    from {users} u
    where u.ctid = any(array(select ctid from walked))
      and {not_held}
      and not exists (select 1 from account_deletion.anonymized a where a.user_id = u.{id}::text)
      and ({blocked})
), targets as (
    select u.ctid, u.{id}::text as id, u.{email}::text as identifier, {address} as email,
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

fn count_expired(t: &Names, blocking: &[BlockingPath]) -> String {
    let Names {
        users,
        id,
        deleted_at,
        ..
    } = t;
    let cutoff = t.as_column("$1");
    let overdue_before = t.as_column("$1 - make_interval(hours => $2)");
    let deleted_at_tz = t.deleted_at_of("u");
    let held = t.not_held("u");
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
                      not {held} as held,
                      exists (select 1 from account_deletion.anonymized a where a.user_id = u.{id}::text)
                          as anonymized{flags}
               from {users} u
               where u.{deleted_at} <= {cutoff} and {after} and {up_to}
               offset 0) expired"
    )
}

fn blocked_by(t: &Names, blocking: &[BlockingPath]) -> String {
    let Names {
        users, id, id_type, ..
    } = t;
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
        "select array_remove(array[{}], null) from {users} u where u.{id} = $1::{id_type}",
        names.join(", ")
    )
}

/// A constant the catalog gave us (a constraint's name), as an SQL string
/// that reads the same whatever `standard_conforming_strings` says.
fn text_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

fn make_due(t: &Names) -> String {
    let Names {
        users,
        id,
        deleted_at,
        id_type,
        ..
    } = t;
    // Just past the cutoff: due now, and not overdue for having been restored.
    let due = t.as_column("$2 - interval '1 second'");
    // Below the purge's watermark: the next run looks at them first.
    format!(
        "with made as (
             update {users} u set {deleted_at} = {due}
             where u.{id} = any($1::text[]::{id_type}[])
               and (u.{deleted_at} is null or u.{deleted_at} > {due})
         ), rechecked as (
             insert into account_deletion.rechecks (user_id)
             select u.{id}::text from {users} u where u.{id} = any($1::text[]::{id_type}[])
             on conflict (user_id) do nothing
         )
         select count(*) from {users} u where u.{id} = any($1::text[]::{id_type}[])"
    )
}

fn count_pending(t: &Names) -> String {
    let Names {
        users, deleted_at, ..
    } = t;
    let cutoff = t.as_column("$1");
    format!("select count(*) from {users} u where u.{deleted_at} > {cutoff}")
}

/// `exists (…)`: the user row `alias` has rows along every key of `path`.
fn referenced_along(path: &BlockingPath, alias: &str) -> String {
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

/// The app's tables as a route sees them: named by the configuration,
/// checked against the catalog and rendered on first use, then kept for the
/// life of the process. A failed check is not kept, so a table created
/// meanwhile is found on the next request.
#[derive(Debug)]
pub struct AppTables {
    users: UsersTable,
    sessions: Option<SessionTable>,
    records: Records,
    /// Render the anonymizing batch (`ERASE_BLOCKED=anonymize`, and
    /// re-erasure after a restore), checking `ANONYMIZE_COLUMNS`.
    anonymizing: bool,
    rendered: RwLock<Option<Arc<Statements>>>,
}

impl AppTables {
    #[must_use]
    pub fn new(users: UsersTable, sessions: Option<SessionTable>) -> Self {
        Self {
            users,
            sessions,
            records: Records::default(),
            anonymizing: false,
            rendered: RwLock::new(None),
        }
    }

    /// Statements that can also anonymize accounts the app must keep.
    #[must_use]
    pub fn anonymizing(mut self, anonymizing: bool) -> Self {
        self.anonymizing = anonymizing;
        self
    }

    /// Statements that also record `records`.
    #[must_use]
    pub fn recording(mut self, records: Records) -> Self {
        self.records = records;
        self
    }

    /// The statements, reading the catalog the first time.
    pub async fn statements(&self, pool: &PgPool) -> Result<Arc<Statements>, SchemaError> {
        if let Some(rendered) = self.rendered.read().await.as_ref() {
            return Ok(Arc::clone(rendered));
        }
        self.reload(pool).await
    }

    /// Reads the catalog again (a foreign key may have been added since)
    /// and renders every statement anew.
    pub async fn reload(&self, pool: &PgPool) -> Result<Arc<Statements>, SchemaError> {
        let mut rendered = self.rendered.write().await;
        let mut tx = db::begin(pool, &Limits::CRON).await?;
        let catalog = schema::inspect(&mut tx, &self.users, self.sessions, self.anonymizing).await;
        tx.commit().await?;
        let statements = Arc::new(Statements::render(catalog?, self.records));
        *rendered = Some(Arc::clone(&statements));
        Ok(statements)
    }
}
