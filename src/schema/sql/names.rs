//! The users table's names as SQL text, and the fragments of SQL every
//! statement on it is written with: its time conversions, the bounds of a
//! walk over its (deleted-at, id) key, and the checks on an account that
//! recur (held, anonymized, deleted by its user).

use crate::schema::{Catalog, TimeType};

/// The users table's names as SQL text, and its time conversions.
pub(super) struct Names {
    pub(super) users: String,
    pub(super) id: String,
    pub(super) email: String,
    pub(super) deleted_at: String,
    pub(super) id_type: &'static str,
    pub(super) naive: bool,
}

impl Names {
    pub(super) fn new(catalog: &Catalog) -> Self {
        Self {
            users: catalog.users.quoted(),
            id: catalog.id.quoted(),
            email: catalog.email.quoted(),
            deleted_at: catalog.deleted_at.quoted(),
            id_type: catalog.id_type.sql(),
            naive: catalog.deleted_at_type == TimeType::NaiveUtc,
        }
    }

    /// `alias` is the user whose id is `value` (text), compared in the
    /// id's own type, so the primary key answers it.
    pub(super) fn is_user(&self, alias: &str, value: &str) -> String {
        format!("{alias}.{} = {value}::{}", self.id, self.id_type)
    }

    /// `alias` is one of the users whose ids are `array` (text), compared in
    /// the id's own type.
    pub(super) fn is_any_user(&self, alias: &str, array: &str) -> String {
        format!(
            "{alias}.{} = any({array}::text[]::{}[])",
            self.id, self.id_type
        )
    }

    /// `alias`'s id as text, as every id leaves a statement.
    pub(super) fn id_text(&self, alias: &str) -> String {
        format!("{alias}.{}::text", self.id)
    }

    /// No account has the id `value` (text): it is gone.
    pub(super) fn gone(&self, value: &str) -> String {
        format!(
            "not exists (select 1 from {} present where {})",
            self.users,
            self.is_user("present", value)
        )
    }

    /// `alias`'s deletion is within its grace period of `days` days (said
    /// on the column, so the deleted-at index answers it).
    pub(super) fn in_grace_period(&self, alias: &str, days: &str) -> String {
        let since = self.as_column(&format!("now() - make_interval(days => {days})"));
        format!("{alias}.{} > {since}", self.deleted_at)
    }

    /// The deletion `alias` is in can still be undone (`days` days of
    /// grace): within its grace period, and not anonymized.
    pub(super) fn restorable(&self, alias: &str, days: &str) -> String {
        format!(
            "{} and {}",
            self.in_grace_period(alias, days),
            self.not_anonymized(alias)
        )
    }

    /// When `alias`'s grace period of `days` days ends.
    pub(super) fn purge_after(&self, alias: &str, days: &str) -> String {
        format!(
            "{} + make_interval(days => {days})",
            self.deleted_at_of(alias)
        )
    }

    /// `u`'s deleted-at as a `timestamptz`.
    pub(super) fn deleted_at_of(&self, alias: &str) -> String {
        as_timestamptz(&format!("{alias}.{}", self.deleted_at), self.naive)
    }

    /// A `timestamptz` value as the deleted-at column holds it.
    pub(super) fn as_column(&self, value: &str) -> String {
        as_column_time(value, self.naive)
    }

    /// `alias`'s email address as text, or null when it has none: an app's
    /// column may be nullable (the Prisma schema of `NextAuth` v4) or blank
    /// (Django's default). Such an account is deleted, restored and purged
    /// like any other; there is just no email to send it.
    pub(super) fn address_of(&self, alias: &str) -> String {
        format!("nullif(btrim({alias}.{}::text), '')", self.email)
    }

    /// `alias` lies after the key (`at`, `id`) in (deleted-at, id) order;
    /// true when `at` is null (a walk from the start). With an index on
    /// both columns, a row comparison the walk starts from exactly, ties
    /// included.
    pub(super) fn after_key(&self, alias: &str, at: &str, key_id: &str) -> String {
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
    pub(super) fn after_key_estimated(&self, alias: &str, at: &str, key_id: &str) -> String {
        let at_column = self.as_column(&format!("{at}::timestamptz"));
        format!(
            "({at}::timestamptz is null or {alias}.{} >= {at_column}) and {}",
            self.deleted_at,
            self.after_key(alias, at, key_id)
        )
    }

    /// `alias` lies at or before the key (`at`, `id`); true when `at` is
    /// null.
    pub(super) fn up_to_key(&self, alias: &str, at: &str, key_id: &str) -> String {
        self.key_bound(alias, "<=", at, key_id)
    }

    /// A hold keeps user `alias` (an index probe of `holds`' key).
    pub(super) fn held(&self, alias: &str) -> String {
        format!(
            "exists (select 1 from account_deletion.holds h where h.user_id = {})",
            self.id_text(alias)
        )
    }

    /// No hold keeps user `alias`.
    pub(super) fn not_held(&self, alias: &str) -> String {
        format!("not {}", self.held(alias))
    }

    /// No hold keeps user `alias`, checked against what a purge run read
    /// when its walk started ([`super::purge::held_at_start`]): the held accounts that were
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
    pub(super) fn not_held_since_start(
        &self,
        alias: &str,
        held: &str,
        since: &str,
        xmin: &str,
    ) -> String {
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
    pub(super) fn not_anonymized(&self, alias: &str) -> String {
        format!("not {}", self.anonymized(alias))
    }

    /// `alias` has been anonymized.
    pub(super) fn anonymized(&self, alias: &str) -> String {
        format!(
            "exists (select 1 from account_deletion.anonymized a where a.user_id = {})",
            self.id_text(alias)
        )
    }

    /// `exists (…)`: the user made the deletion `alias` is in now through
    /// the delete route (its history says so for this very deleted-at), as
    /// opposed to the app setting the deleted-at by itself. Only such a
    /// deletion gets an email or a link that can restore the account.
    pub(super) fn made_by_user(&self, alias: &str) -> String {
        self.deletion_in_history(alias, true)
    }

    /// `exists (…)`: the history holds the deletion `alias` is in now (for
    /// this very deleted-at), made by its user only when `by_user`.
    pub(super) fn deletion_in_history(&self, alias: &str, by_user: bool) -> String {
        let by = if by_user { " and h.by = 'user'" } else { "" };
        format!(
            "exists (
                   select 1 from account_deletion.history h
                   where h.user_id = {id} and h.action = 'deleted'{by}
                     and h.for_deleted_at = {deleted_at}
               )",
            id = self.id_text(alias),
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

pub(super) fn as_column_time(value: &str, naive: bool) -> String {
    if naive {
        format!("(({value}) at time zone 'UTC')")
    } else {
        format!("({value})")
    }
}

/// A constant the catalog gave us (a constraint's name), as an SQL string
/// that reads the same whatever `standard_conforming_strings` says.
pub(super) fn text_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}
