//! The app's own tables, as this project sees them: the users table (its
//! name and the columns for id, email and deleted-at, from the environment)
//! and the sessions table of the configured sign-in, checked against the
//! database's catalog before any statement is rendered from them.
//!
//! Names are validated when the configuration is read, and quoted in exactly
//! one place, [`Ident::quoted`]. The id and time types are learned from the
//! catalog, once per process, together with every foreign key that
//! references the users table: those decide what the purge can delete.
//!
//! Here: the names and types the rest of the library speaks; [`inspect`](mod@inspect)
//! reads them from the catalog, [`sql`] renders every statement on the
//! app's tables from what it read, [`migrate`] applies `migrations/`.
//!
//! It may import `platform` only.

mod inspect;
pub mod migrate;
pub mod sql;

pub use inspect::inspect;

use std::fmt;

/// An identifier as PostgreSQL stores it (case-sensitive), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    /// Letters, digits, `_` and `$`, not starting with a digit or `$`, at
    /// most 63 bytes (PostgreSQL would cut a longer one short silently).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= 63
            && raw.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a table or column name: use letters, digits and _ \
                 (at most 63), starting with a letter or _"
            ))
        }
    }

    /// A name read from the catalog (already a real object's name), which
    /// may hold any character.
    pub(crate) fn from_catalog(name: String) -> Self {
        Self(name)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identifier as SQL text: always quoted, so case and reserved words
    /// are kept exactly. The only place an identifier becomes SQL.
    #[must_use]
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's id, in its text form (`id::text`) whatever the column's type;
/// statements cast it back to the column's type.
#[derive(Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    #[must_use]
    pub fn new(id: String) -> Self {
        Self(id)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    // Ids identify a person; logs carry them only where a line needs one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserId(..)")
    }
}

/// The users table as configured: `USERS_TABLE`, `USERS_ID_COLUMN`,
/// `USERS_EMAIL_COLUMN`, `USERS_DELETED_AT_COLUMN`, or a `SCHEMA_PRESET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersTable {
    /// `None`: found through the connection's `search_path` (normally
    /// `public`), once, when the catalog is read.
    pub schema: Option<Ident>,
    pub name: Ident,
    pub id: Ident,
    pub email: Ident,
    pub deleted_at: Ident,
    /// Auth.js keeps sign-in links by address in `"VerificationToken"`
    /// (`identifier` is the email): with the `prisma` preset the purge
    /// deletes a purged user's rows there too, when the table exists.
    pub authjs_verification_tokens: bool,
    /// The columns anonymizing an account clears (`ANONYMIZE_COLUMNS`, or
    /// the preset's).
    pub anonymize: AnonymizeColumns,
}

/// The personal columns of the users table that anonymizing clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnonymizeColumns {
    /// The preset's: those of them the table has.
    Preset(Vec<Ident>),
    /// `ANONYMIZE_COLUMNS`: every one must be there.
    Listed(Vec<Ident>),
}

impl AnonymizeColumns {
    /// `ANONYMIZE_COLUMNS`: comma-separated column names.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let columns: Vec<Ident> = raw
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(Ident::parse)
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            return Err("expected comma-separated columns of the users table".to_owned());
        }
        Ok(Self::Listed(columns))
    }
}

/// How anonymizing clears one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clear {
    /// A nullable column: `NULL`.
    Null,
    /// The email column when it is `NOT NULL` (and usually unique):
    /// `erased-<id>@invalid` (RFC 2606 reserves `.invalid`).
    ErasedAddress,
    /// A `NOT NULL` column with a default: its default.
    Default,
}

impl UsersTable {
    /// Our own migrations' `users` table.
    #[must_use]
    pub fn default_names() -> Self {
        Self {
            schema: None,
            name: Ident("users".into()),
            id: Ident("id".into()),
            email: Ident("email".into()),
            deleted_at: Ident("deleted_at".into()),
            authjs_verification_tokens: false,
            anonymize: AnonymizeColumns::Preset(vec![Ident("email".into())]),
        }
    }

    /// Prisma's default naming: `model User { id … email … deletedAt … }`,
    /// next to the Auth.js Prisma adapter's models.
    #[must_use]
    pub fn prisma() -> Self {
        Self {
            name: Ident("User".into()),
            deleted_at: Ident("deletedAt".into()),
            authjs_verification_tokens: true,
            // Auth.js's user: who the person is, and how they look.
            anonymize: AnonymizeColumns::Preset(
                ["name", "email", "emailVerified", "image"]
                    .map(|name| Ident(name.into()))
                    .to_vec(),
            ),
            ..Self::default_names()
        }
    }

    /// Whether this is the table our own migrations create (`cargo dev
    /// migrate` creates it, with `sessions`, on an empty database).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default_names()
            || *self
                == Self {
                    schema: Some(Ident("public".into())),
                    ..Self::default_names()
                }
    }

    /// `USERS_TABLE`'s value: `table` or `schema.table`.
    pub fn parse_table(raw: &str) -> Result<(Option<Ident>, Ident), String> {
        match raw.trim().split_once('.') {
            Some((schema, table)) => Ok((Some(Ident::parse(schema)?), Ident::parse(table)?)),
            None => Ok((None, Ident::parse(raw.trim())?)),
        }
    }

    /// How an operator wrote it, for messages.
    #[must_use]
    pub fn display_name(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// The sessions table a database sign-in reads and, on deletion, empties of
/// the user's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTable {
    /// Our `sessions` (`token_hash` = SHA-256 of the token, `user_id`,
    /// `expires_at`), next to the users table.
    Ours,
    /// Auth.js's `"Session"` (`"sessionToken"` in plain text, `"userId"`,
    /// `"expires"`), next to the users table, as its Prisma adapter makes it.
    Authjs,
}

impl SessionTable {
    fn names(self) -> [&'static str; 4] {
        match self {
            Self::Ours => ["sessions", "token_hash", "user_id", "expires_at"],
            Self::Authjs => ["Session", "sessionToken", "userId", "expires"],
        }
    }

    /// What `SESSION_AUTH` selected it, for messages.
    fn variable_value(self) -> &'static str {
        match self {
            Self::Ours => "sessions",
            Self::Authjs => "authjs-database",
        }
    }
}

/// The type of the users table's id column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    Uuid,
    Text,
    Bigint,
    /// Older tables (Django's own `auth_user`, Rails before 5.1).
    Integer,
}

impl IdType {
    /// The SQL type name a user id (held as text) is cast to.
    #[must_use]
    pub fn sql(self) -> &'static str {
        match self {
            Self::Uuid => "uuid",
            Self::Text => "text",
            Self::Bigint => "bigint",
            Self::Integer => "integer",
        }
    }

    /// The id `raw` names in a column of this type, as the database prints
    /// it (`id::text`), so that one account has one spelling everywhere
    /// (an id from outside: an operator's, a token's `sub`); `None` when it
    /// is no value of the type, so that casting it in SQL cannot fail.
    /// PostgreSQL reads more forms in places (spaces around an integer);
    /// these are the forms ids are copied in.
    #[must_use]
    pub fn normalize(self, raw: &str) -> Option<String> {
        match self {
            Self::Uuid => {
                // The uuid crate also reads `urn:uuid:…`, which PostgreSQL
                // does not: only the forms both read (hyphens or none, braces).
                let form_ok = matches!(raw.len(), 32 | 36 | 38) && !raw.contains(':');
                let id = uuid::Uuid::try_parse(raw).ok().filter(|_| form_ok)?;
                Some(id.hyphenated().to_string())
            }
            Self::Text => (!raw.is_empty() && !raw.contains('\0')).then(|| raw.to_owned()),
            Self::Bigint => digits(raw)?.parse::<i64>().ok().map(|id| id.to_string()),
            Self::Integer => digits(raw)?.parse::<i32>().ok().map(|id| id.to_string()),
        }
    }
}

/// An integer as digits with an optional minus sign (no `+`, no spaces).
fn digits(raw: &str) -> Option<&str> {
    let unsigned = raw.strip_prefix('-').unwrap_or(raw);
    (!unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit())).then_some(raw)
}

/// The type of a time column: `timestamptz`, or `timestamp` holding UTC
/// wall-clock time (how Prisma writes `DateTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeType {
    WithTimeZone,
    NaiveUtc,
}

/// A column of another table that references the users table (or a table
/// that goes with a user's row), as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub constraint: Ident,
    /// The referencing table, schema-qualified.
    pub table: QualifiedName,
    pub columns: Vec<Ident>,
    /// The referenced columns, in the same order.
    pub references: Vec<Ident>,
    pub on_delete: OnDelete,
    /// Whether an index starts with the referencing columns. Without one,
    /// every deleted user costs a scan of the referencing table.
    pub indexed: bool,
}

/// A foreign key's `ON DELETE` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    SetNull,
    SetDefault,
    /// `RESTRICT` or `NO ACTION`: a referenced user cannot be deleted.
    Restrict,
    NoAction,
}

impl OnDelete {
    fn from_catalog(action: &str) -> Self {
        match action {
            "c" => Self::Cascade,
            "n" => Self::SetNull,
            "d" => Self::SetDefault,
            "r" => Self::Restrict,
            _ => Self::NoAction,
        }
    }

    /// Whether the purge can delete a referenced user.
    #[must_use]
    pub fn lets_delete(self) -> bool {
        !matches!(self, Self::Restrict | Self::NoAction)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cascade => "cascade",
            Self::SetNull => "set_null",
            Self::SetDefault => "set_default",
            Self::Restrict => "restrict",
            Self::NoAction => "no_action",
        }
    }
}

/// `schema.table`, both parts exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub schema: Ident,
    pub name: Ident,
}

impl QualifiedName {
    /// As SQL text, both parts quoted.
    #[must_use]
    pub fn quoted(&self) -> String {
        format!("{}.{}", self.schema.quoted(), self.name.quoted())
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A chain of foreign keys from the users table to a key that keeps a user
/// from being deleted: the first key references the users table, each next
/// one the table before it, every one but the last cascades, and the last
/// has no delete action. A user with rows along the whole chain is blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingPath(pub Vec<ForeignKey>);

impl BlockingPath {
    /// The key that blocks: the last of the chain.
    #[must_use]
    pub fn constraint(&self) -> &Ident {
        &self.0.last().expect("a path has a key").constraint
    }
}

/// What the catalog says about the configured tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub users: QualifiedName,
    pub id: Ident,
    pub email: Ident,
    pub deleted_at: Ident,
    pub id_type: IdType,
    pub deleted_at_type: TimeType,
    /// Whether an index starts with the deleted-at column (the purge walks
    /// it; without one every batch scans the table).
    pub deleted_at_indexed: bool,
    /// The sign-in's sessions table, if it uses one.
    pub sessions: Option<Sessions>,
    /// Every foreign key that references the users table directly.
    pub references: Vec<ForeignKey>,
    /// Every chain of keys that keeps a referenced user from being deleted.
    pub blocking: Vec<BlockingPath>,
    /// Auth.js's `"VerificationToken"`, next to the users table, when the
    /// configuration asks for it and it exists.
    pub verification_tokens: Option<QualifiedName>,
    /// When anonymizing is on: each column it clears, and how.
    pub anonymize: Option<Vec<(Ident, Clear)>>,
}

/// The sessions table, found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    pub kind: SessionTable,
    pub table: QualifiedName,
    pub expires_type: TimeType,
}

/// Why the catalog does not fit the configuration. Each names the variable
/// an operator would change.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{variable}: {reason}")]
    Misconfigured {
        variable: &'static str,
        reason: String,
    },
    #[error("reading the catalog: {0}")]
    Database(#[from] sqlx::Error),
}

impl SchemaError {
    fn misconfigured(variable: &'static str, reason: impl Into<String>) -> Self {
        Self::Misconfigured {
            variable,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_in_any_case_with_or_without_hyphens_or_in_braces_is_one_id() {
        let canonical = "0b6f6e1e-3f1c-4c5e-9a57-1d2a3b4c5d6e";
        for raw in [
            canonical,
            "0B6F6E1E-3F1C-4C5E-9A57-1D2A3B4C5D6E",
            "0b6f6e1e3f1c4c5e9a571d2a3b4c5d6e",
            "{0b6f6e1e-3f1c-4c5e-9a57-1d2a3b4c5d6e}",
            "{0B6F6E1E-3F1C-4C5E-9A57-1D2A3B4C5D6E}",
        ] {
            assert_eq!(
                IdType::Uuid.normalize(raw).as_deref(),
                Some(canonical),
                "{raw}"
            );
        }
        for bad in [
            "urn:uuid:0b6f6e1e-3f1c-4c5e-9a57-1d2a3b4c5d6e",
            "0b6f6e1e-3f1c-4c5e-9a57-1d2a3b4c5d6",
            " 0b6f6e1e-3f1c-4c5e-9a57-1d2a3b4c5d6e",
            "ann@example.test",
            "",
            "7",
        ] {
            assert_eq!(IdType::Uuid.normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_integer_id_is_its_digits_without_leading_zeros() {
        assert_eq!(IdType::Bigint.normalize("007").as_deref(), Some("7"));
        assert_eq!(IdType::Bigint.normalize("-0").as_deref(), Some("0"));
        assert_eq!(
            IdType::Bigint.normalize("9223372036854775807").as_deref(),
            Some("9223372036854775807")
        );
        assert_eq!(IdType::Integer.normalize("0042").as_deref(), Some("42"));
        for bad in [
            "",
            "-",
            "+7",
            " 7",
            "7 ",
            "1e3",
            "9223372036854775808",
            "seven",
        ] {
            assert_eq!(IdType::Bigint.normalize(bad), None, "{bad:?}");
        }
        assert_eq!(IdType::Integer.normalize("2147483648"), None);
    }

    #[test]
    fn a_text_id_is_taken_as_it_is_but_never_empty_or_with_a_nul() {
        assert_eq!(
            IdType::Text.normalize("User_42").as_deref(),
            Some("User_42")
        );
        assert_eq!(IdType::Text.normalize(""), None);
        assert_eq!(IdType::Text.normalize("a\0b"), None);
    }

    #[test]
    fn identifiers_are_quoted_and_validated() {
        assert_eq!(Ident::parse("User").unwrap().quoted(), "\"User\"");
        assert_eq!(
            Ident::parse("deleted_at").unwrap().quoted(),
            "\"deleted_at\""
        );
        assert_eq!(Ident::from_catalog("a\"b".into()).quoted(), "\"a\"\"b\"");
        for bad in [
            "",
            "1users",
            "users;drop",
            "a\"b",
            "a b",
            "$x",
            &"x".repeat(64),
        ] {
            assert!(Ident::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_users_table_may_name_its_schema() {
        let (schema, table) = UsersTable::parse_table("app.User").unwrap();
        assert_eq!(schema.unwrap().as_str(), "app");
        assert_eq!(table.as_str(), "User");
        assert!(UsersTable::parse_table("a.b.c").is_err());
        assert!(UsersTable::parse_table(".User").is_err());
    }

    #[test]
    fn only_our_own_names_count_as_the_default_table() {
        assert!(UsersTable::default_names().is_default());
        assert!(!UsersTable::prisma().is_default());
    }
}
