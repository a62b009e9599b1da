//! A statement sent with its arguments written into its text as literals,
//! after its transaction's limits, in one simple-protocol message: one
//! round trip, one implicit transaction, nothing prepared, so it runs the
//! same through a transaction pooler. The hot paths go this way (see the
//! folder's `mod.rs`).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Executor, FromRow, PgConnection};
use uuid::Uuid;

use super::Limits;
use crate::platform::time::rfc3339;

/// A value written into a [`Statement`] as a literal. Only types whose
/// text is made by us (numbers, times, ids, hex bytes) exist here: nothing a
/// client sent can become statement text.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Timestamp(DateTime<Utc>),
    Uuid(Uuid),
    Bytes(Vec<u8>),
    /// Text (a session token from a cookie, a user id from a token), written
    /// as an escape string constant `E'…'` with every backslash doubled and
    /// every quote doubled, so that whatever it holds stays inside the
    /// literal.
    Text(String),
    /// Texts (user ids), as `array[…]::text[]` of [`Self::Text`]s.
    TextArray(Vec<String>),
    Null,
}

impl Literal {
    fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self {
            Self::Int(n) => write!(out, "{n}"),
            // Debug gives the shortest text that reads back as the same f64.
            Self::Float(f) if f.is_finite() => write!(out, "{f:?}::float8"),
            Self::Float(f) if f.is_nan() => write!(out, "'NaN'::float8"),
            Self::Float(f) if *f > 0.0 => write!(out, "'Infinity'::float8"),
            Self::Float(_) => write!(out, "'-Infinity'::float8"),
            Self::Timestamp(at) => write!(out, "'{}'::timestamptz", rfc3339(*at)),
            Self::Uuid(id) => write!(out, "'{}'::uuid", id.hyphenated()),
            // No backslash, so `standard_conforming_strings` cannot matter;
            // `decode` is immutable, so an index on the column still serves.
            Self::Bytes(bytes) => {
                write_hex(out, bytes);
                Ok(())
            }
            // A constant takes the column's type and collation, so a
            // comparison with it is an index condition. (An expression such
            // as `convert_from(decode(…))` was not: its collation is not the
            // column's, and the planner scanned the table.) `E'…'` reads the
            // same whatever `standard_conforming_strings` says; a quote is
            // doubled, never backslashed, so a server with `backslash_quote
            // = off` (which refuses `\'`) reads it too. No PostgreSQL text
            // holds a NUL, so a value with one equals nothing: null.
            Self::Text(text) if text.contains('\0') => write!(out, "null"),
            Self::Text(text) => {
                out.push_str("E'");
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("''"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                Ok(())
            }
            Self::TextArray(texts) => {
                out.push_str("array[");
                for (i, text) in texts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    Self::Text(text.clone()).write(out);
                }
                out.push_str("]::text[]");
                Ok(())
            }
            Self::Null => write!(out, "null"),
        };
    }
}

/// `decode('<hex>', 'hex')`
fn write_hex(out: &mut String, bytes: &[u8]) {
    use std::fmt::Write as _;
    out.push_str("decode('");
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out.push_str("', 'hex')");
}

impl From<i32> for Literal {
    fn from(n: i32) -> Self {
        Self::Int(n.into())
    }
}

impl From<i64> for Literal {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<u32> for Literal {
    fn from(n: u32) -> Self {
        Self::Int(n.into())
    }
}

impl From<f64> for Literal {
    fn from(f: f64) -> Self {
        Self::Float(f)
    }
}

impl From<DateTime<Utc>> for Literal {
    fn from(at: DateTime<Utc>) -> Self {
        Self::Timestamp(at)
    }
}

impl From<Option<DateTime<Utc>>> for Literal {
    fn from(at: Option<DateTime<Utc>>) -> Self {
        at.map_or(Self::Null, Self::Timestamp)
    }
}

impl From<Uuid> for Literal {
    fn from(id: Uuid) -> Self {
        Self::Uuid(id)
    }
}

impl From<&[u8]> for Literal {
    fn from(bytes: &[u8]) -> Self {
        Self::Bytes(bytes.to_vec())
    }
}

impl From<&str> for Literal {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// A statement the hot paths send in one round trip: its limits and the
/// statement in one simple-protocol message, which the server runs as one
/// implicit transaction (so the `SET LOCAL`s hold for it, and a pooler keeps
/// the whole message on one server connection), with its `$n` parameters
/// written in as [`Literal`]s. An extended-protocol statement in a
/// transaction takes four round trips (`BEGIN`, parse, execute, `COMMIT`);
/// this takes one. Written once (from a constant, or rendered once from the
/// app's schema by [`crate::schema::sql`]); only the literals change.
#[derive(Debug, Clone)]
pub struct Statement {
    sql: String,
    /// The text between parameters, as ranges of `sql`; one more piece than
    /// parameters.
    pieces: Vec<std::ops::Range<usize>>,
    /// The parameter (from 0) that follows each piece but the last.
    slots: Vec<usize>,
}

impl Statement {
    /// Splits `sql` at its `$1`…`$n`, outside quoted identifiers and string
    /// literals (an app's column may be called `a$1`). Panics on any other
    /// `$`, which only a programming error produces.
    pub fn new(sql: impl Into<String>) -> Self {
        let sql = sql.into();
        let bytes = sql.as_bytes();
        let (mut pieces, mut slots, mut start) = (Vec::new(), Vec::new(), 0);
        let mut quote = None;
        let mut at = 0;
        while at < bytes.len() {
            match (quote, bytes[at]) {
                (None, q @ (b'"' | b'\'')) => quote = Some(q),
                // A doubled quote inside quotes reopens at once: no harm.
                (Some(q), b) if b == q => quote = None,
                (None, b'$') => {
                    let digits = bytes[at + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    assert!(digits > 0, "a `$` that is not a parameter in: {sql}");
                    let number: usize = sql[at + 1..at + 1 + digits].parse().expect("digits");
                    assert!(number >= 1, "parameters start at $1 in: {sql}");
                    pieces.push(start..at);
                    slots.push(number - 1);
                    start = at + 1 + digits;
                    at = start;
                    continue;
                }
                _ => {}
            }
            at += 1;
        }
        pieces.push(start..sql.len());
        Self { sql, pieces, slots }
    }

    /// The statement's text, with `$n` parameters (for `EXPLAIN` in tests).
    #[must_use]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The statement alone with `params` written in, without limits.
    #[must_use]
    pub fn with_literals(&self, params: &[Literal]) -> String {
        let mut out = String::with_capacity(self.sql.len() + 256);
        self.write(&mut out, params);
        out
    }

    fn write(&self, out: &mut String, params: &[Literal]) {
        for (piece, slot) in self.pieces.iter().zip(&self.slots) {
            out.push_str(&self.sql[piece.clone()]);
            params
                .get(*slot)
                .expect("a literal for every parameter")
                .write(out);
        }
        out.push_str(&self.sql[self.pieces.last().expect("at least one piece").clone()]);
    }

    /// The message: `limits`' settings, then the statement with `params`.
    fn render(&self, limits: &Limits, params: &[Literal]) -> String {
        let mut out = String::with_capacity(limits.settings.len() + 1024);
        out.push_str(&limits.settings);
        out.push_str(";\n");
        self.write(&mut out, params);
        out
    }

    /// Runs it on `conn` and reads the first row of its last statement (a
    /// statement may be several, run in order in the one transaction: the
    /// purge batch takes a lock before its main statement starts), if any.
    pub async fn fetch_optional<O>(
        &self,
        conn: &mut PgConnection,
        limits: &Limits,
        params: &[Literal],
    ) -> Result<Option<O>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        use futures_util::TryStreamExt as _;
        // A `&str` with no arguments goes out as one simple-protocol Query.
        let rendered = self.render(limits, params);
        let mut results = conn.fetch_many(rendered.as_str());
        let (mut current, mut last) = (None, None);
        while let Some(item) = results.try_next().await? {
            match item {
                sqlx::Either::Right(row) => {
                    current.get_or_insert(row);
                }
                // The end of one statement: its first row, if it had one.
                sqlx::Either::Left(_) => last = current.take(),
            }
        }
        last.or(current).as_ref().map(O::from_row).transpose()
    }

    /// Runs it on `conn`; how many rows it changed.
    pub async fn execute(
        &self,
        conn: &mut PgConnection,
        limits: &Limits,
        params: &[Literal],
    ) -> Result<u64, sqlx::Error> {
        Ok(conn
            .execute(self.render(limits, params).as_str())
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_writes_each_parameter_as_a_typed_literal_after_its_limits() {
        let statement = Statement::new("select $2, $1, $3, $4, $5, $6, $1");
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let text = statement.render(
            &Limits::ACCOUNT,
            &[
                Literal::from(7_i32),
                Literal::from(&[0x00_u8, 0xab, 0x27][..]),
                Literal::from(at),
                Literal::from(None::<DateTime<Utc>>),
                Literal::from(120.0_f64),
                Literal::from(Uuid::nil()),
            ],
        );
        assert!(text.starts_with("set local lock_timeout = '2s';"));
        assert!(text.ends_with(
            "select decode('00ab27', 'hex'), 7, '2026-11-28T10:00:00.123456Z'::timestamptz, null, \
             120.0::float8, '00000000-0000-0000-0000-000000000000'::uuid, 7"
        ));
    }

    #[test]
    fn floats_that_are_not_finite_are_written_as_postgres_spells_them() {
        let text = |f: f64| {
            let mut out = String::new();
            Literal::from(f).write(&mut out);
            out
        };
        assert_eq!(text(f64::INFINITY), "'Infinity'::float8");
        assert_eq!(text(f64::NEG_INFINITY), "'-Infinity'::float8");
        assert_eq!(text(f64::NAN), "'NaN'::float8");
        assert_eq!(text(-0.25), "-0.25::float8");
    }

    #[test]
    fn a_dollar_inside_quotes_is_not_a_parameter() {
        let statement = Statement::new(r#"select "a$1", 'b$2', $1 from "t""""#);
        assert_eq!(
            statement.with_literals(&[Literal::from("x")]),
            r#"select "a$1", 'b$2', E'x' from "t""""#
        );
    }

    #[test]
    #[should_panic(expected = "not a parameter")]
    fn a_statement_refuses_a_dollar_that_is_not_a_parameter() {
        let _ = Statement::new("select $x");
    }
}
