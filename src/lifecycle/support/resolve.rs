//! Which account an operator's input names: an id, normalized once where it
//! enters, or an address, resolved to exactly one account or to none. The
//! admin route and `cargo dev account` both resolve here, so that no input
//! can pick a different (or an arbitrary) account on one of them.
//!
//! The rules:
//! - an id must be a value of the id column's type, normalized the way
//!   PostgreSQL prints it (a UUID in lower case with hyphens, an integer
//!   without leading zeros); anything else is refused before any statement;
//! - an address: a blank one is refused; an exact match wins; otherwise the
//!   one match that differs only in case and surrounding spaces; two or more
//!   are ambiguous, and the caller is told their ids, never one of them.

use std::fmt;

use sqlx::PgPool;

use crate::platform::db::{self, Limits};
use crate::schema::UserId;
use crate::schema::sql::Statements;

/// How an operator names an account.
#[derive(Clone, PartialEq, Eq)]
pub enum Who {
    Id(String),
    Email(String),
}

impl fmt::Debug for Who {
    // An address is personal data, and an id as typed may be one (a text
    // id column takes any string): neither reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(_) => f.write_str("Who::Id(..)"),
            Self::Email(_) => f.write_str("Who::Email(..)"),
        }
    }
}

/// The account an input names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: UserId,
    /// Whether the users table has it now (its id was read back from it).
    /// An absent one may be on record as erased.
    pub present: bool,
}

/// Why an input names no single account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// Not a value of the id column's type, or a blank address.
    Invalid,
    /// No account has that address.
    NotFound,
    /// Several accounts match the address equally (several exactly, or
    /// none exactly and several but for case and spaces): their ids.
    Ambiguous(Vec<String>),
}

/// The account `who` names on `pool`.
pub async fn resolve(
    pool: &PgPool,
    sql: &Statements,
    who: &Who,
) -> Result<Result<Resolved, Unresolved>, sqlx::Error> {
    match who {
        Who::Id(raw) => {
            let Some(id) = sql.catalog.id_type.normalize(raw) else {
                return Ok(Err(Unresolved::Invalid));
            };
            let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
            let read: Option<String> = db::query_scalar(&sql.account_id)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(match read {
                Some(read) => Resolved {
                    id: UserId::new(read),
                    present: true,
                },
                None => Resolved {
                    id: UserId::new(id),
                    present: false,
                },
            }))
        }
        Who::Email(raw) => {
            // No PostgreSQL text holds a NUL: such an address is no
            // address of anyone (and would fail the statement).
            if raw.trim().is_empty() || raw.contains('\0') {
                return Ok(Err(Unresolved::Invalid));
            }
            let mut tx = db::begin(pool, &Limits::ACCOUNT).await?;
            let mut matches: Vec<String> = db::query_scalar(&sql.account_by_email)
                .bind(raw)
                .fetch_all(&mut *tx)
                .await?;
            if matches.is_empty() {
                matches = db::query_scalar(&sql.account_by_folded_email)
                    .bind(raw)
                    .fetch_all(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(one_of(matches).map(|id| Resolved {
                id: UserId::new(id),
                present: true,
            }))
        }
    }
}

/// The one account among an address's matches (the exact ones, or, when
/// there are none, the folded ones).
fn one_of(matches: Vec<String>) -> Result<String, Unresolved> {
    match <[String; 1]>::try_from(matches) {
        Ok([id]) => Ok(id),
        Err(none) if none.is_empty() => Err(Unresolved::NotFound),
        Err(several) => Err(Unresolved::Ambiguous(several)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_match_is_the_account_and_several_are_ambiguous() {
        let ids = |list: &[&str]| list.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
        assert_eq!(one_of(ids(&["a"])), Ok("a".to_owned()));
        assert_eq!(
            one_of(ids(&["a", "b"])),
            Err(Unresolved::Ambiguous(ids(&["a", "b"])))
        );
        assert_eq!(one_of(Vec::new()), Err(Unresolved::NotFound));
    }
}
