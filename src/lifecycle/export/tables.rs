//! What an archive holds: the user's row of the users table, and the rows
//! of every table whose foreign key to the users table holds the user's
//! key, each without the columns that hold credentials.
//!
//! Read from the catalog in the download's own snapshot, not from the
//! catalog the process read when it started: a column an app adds later
//! (`api_token`, say) is excluded by the same rules the moment it exists.

use std::collections::HashSet;

use sqlx::PgConnection;

use crate::config::ExcludedColumns;
use crate::platform::db;
use crate::schema::{Catalog, Ident, SchemaError};

/// Words that mark a column as a credential, matched anywhere in its name,
/// whatever the case.
pub const CREDENTIAL_WORDS: [&str; 6] = ["password", "secret", "token", "hash", "salt", "otp"];

/// Whether a column's name marks it as a credential.
pub fn is_credential(column: &str) -> bool {
    let lower = column.to_lowercase();
    CREDENTIAL_WORDS.iter().any(|word| lower.contains(word))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    fn quoted(&self) -> String {
        format!(
            "{}.{}",
            Ident::from_catalog(self.schema.clone()).quoted(),
            Ident::from_catalog(self.name.clone()).quoted()
        )
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One file of the archive: a table's rows along one key.
#[derive(Debug, Clone)]
pub struct Source {
    pub table: TableName,
    /// The columns that hold the user's key; empty for the users table.
    pub key: Vec<String>,
    /// The entry's name in the archive.
    pub file: String,
    /// The table's columns that never leave, in the table's order.
    pub excluded: Vec<String>,
    /// The statement that reads the rows for user id `$1` (text): one row
    /// of JSON text per row, of the columns that may leave, named one by
    /// one (a column added or renamed since the catalog was read is not
    /// among them, and an excluded one is never even read).
    pub select: String,
}

impl Source {
    /// The key as the manifest names it: the column, or the columns
    /// joined by `+` for a composite key; `None` for the users table.
    pub fn key_name(&self) -> Option<String> {
        (!self.key.is_empty()).then(|| self.key.join("+"))
    }
}

/// A foreign key to the users table, with its table's columns.
type KeyRow = (String, String, Vec<String>, Vec<String>, Vec<String>);

/// The files of an archive, read from the catalog on `conn` (inside the
/// download's snapshot). A name in `EXPORT_EXCLUDE_COLUMNS` that is no
/// column of any table is a configuration error: it is most likely a typo
/// that would let the column it meant out.
pub async fn sources(
    conn: &mut PgConnection,
    catalog: &Catalog,
    excluded: &ExcludedColumns,
) -> Result<Vec<Source>, SchemaError> {
    let users = catalog.users.quoted();
    let (users_columns, keys) = read_catalog(conn, &users).await?;
    let users_name = TableName {
        schema: catalog.users.schema.as_str().to_owned(),
        name: catalog.users.name.as_str().to_owned(),
    };
    let id_type = catalog.id_type.sql();
    let id = catalog.id.quoted();
    let mut files = FileNames::default();
    let users_excluded = excluded_of(&users_name, &users_columns, excluded);
    let mut sources = vec![Source {
        file: files.name(&users_name, None),
        select: rows_of(
            &users,
            &users_columns,
            &users_excluded,
            &format!("t.{id} = $1::{id_type}"),
        ),
        excluded: users_excluded,
        table: users_name,
        key: Vec::new(),
    }];
    let mut seen = HashSet::new();
    let tables_with_several_keys = tables_with_several_keys(&keys);
    for (schema, table, columns, references, all_columns) in keys {
        // Two constraints on the same columns to the same columns are one
        // key.
        if !seen.insert((
            schema.clone(),
            table.clone(),
            columns.clone(),
            references.clone(),
        )) {
            continue;
        }
        let several = tables_with_several_keys.contains(&(schema.clone(), table.clone()));
        let name = TableName {
            schema,
            name: table,
        };
        let matches = columns
            .iter()
            .zip(&references)
            .map(|(column, referenced)| {
                format!(
                    "t.{} = (select u.{} from {users} u where u.{id} = $1::{id_type})",
                    Ident::from_catalog(column.clone()).quoted(),
                    Ident::from_catalog(referenced.clone()).quoted(),
                )
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let left_out = excluded_of(&name, &all_columns, excluded);
        sources.push(Source {
            file: files.name(&name, several.then(|| columns.join("+")).as_deref()),
            select: rows_of(&name.quoted(), &all_columns, &left_out, &matches),
            excluded: left_out,
            table: name,
            key: columns,
        });
    }
    check_named_columns_exist(conn, excluded).await?;
    Ok(sources)
}

/// The users table's columns, and every key to it with its table's
/// columns, as the catalog says in `conn`'s snapshot.
async fn read_catalog(
    conn: &mut PgConnection,
    users: &str,
) -> Result<(Vec<String>, Vec<KeyRow>), sqlx::Error> {
    let users_columns: Vec<String> = db::query_scalar(
        "select coalesce(array_agg(a.attname::text order by a.attnum), '{}')
         from pg_attribute a
         where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped",
    )
    .bind(users)
    .fetch_one(&mut *conn)
    .await?;
    let keys: Vec<KeyRow> = db::query_as(
        "select n.nspname::text, c.relname::text,
                array(select a.attname::text from unnest(con.conkey) with ordinality k(attnum, i)
                      join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
                      order by k.i),
                array(select a.attname::text from unnest(con.confkey) with ordinality k(attnum, i)
                      join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum
                      order by k.i),
                array(select a.attname::text from pg_attribute a
                      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                      order by a.attnum)
         from pg_constraint con
         join pg_class c on c.oid = con.conrelid
         join pg_namespace n on n.oid = c.relnamespace
         where con.contype = 'f' and con.confrelid = to_regclass($1)
           -- A partitioned table's key, not each partition's copy of it
           -- (its rows are the parent's).
           and con.conparentid = 0
           -- The users table's keys to itself (or a partition of it) lead
           -- to other accounts' rows.
           -- (A table that is not partitioned has no partition tree.)
           and con.conrelid <> con.confrelid
           and con.conrelid not in (select relid from pg_partition_tree(to_regclass($1)))
           -- A table that lives only in another session is no table of the app's.
           and c.relpersistence <> 't'
           -- This service's own tables are not the app's data.
           and n.nspname <> 'account_deletion'
         order by n.nspname, c.relname, con.conname",
    )
    .bind(users)
    .fetch_all(&mut *conn)
    .await?;

    Ok((users_columns, keys))
}

/// The tables that reference the users table along more than one key:
/// their files are named by key too.
fn tables_with_several_keys(keys: &[KeyRow]) -> HashSet<(String, String)> {
    let distinct: HashSet<(&String, &String, &Vec<String>)> = keys
        .iter()
        .map(|(schema, table, columns, ..)| (schema, table, columns))
        .collect();
    let mut per_table = std::collections::HashMap::<(String, String), usize>::new();
    for (schema, table, _) in distinct {
        *per_table
            .entry((schema.clone(), table.clone()))
            .or_insert(0) += 1;
    }
    per_table
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(table, _)| table)
        .collect()
}

/// The rows of `table` that `condition` selects, as JSON text of the
/// columns that are not `excluded`.
fn rows_of(table: &str, columns: &[String], excluded: &[String], condition: &str) -> String {
    let kept = columns
        .iter()
        .filter(|column| !excluded.contains(column))
        .map(|column| format!("t.{}", Ident::from_catalog(column.clone()).quoted()))
        .collect::<Vec<_>>()
        .join(", ");
    format!("select to_jsonb(r)::text from (select {kept} from {table} t where {condition}) r")
}

fn excluded_of(table: &TableName, columns: &[String], excluded: &ExcludedColumns) -> Vec<String> {
    columns
        .iter()
        .filter(|column| {
            is_credential(column) || excluded.names(&table.schema, &table.name, column)
        })
        .cloned()
        .collect()
}

/// Every column `EXPORT_EXCLUDE_COLUMNS` names exists somewhere.
pub(super) async fn check_named_columns_exist(
    conn: &mut PgConnection,
    excluded: &ExcludedColumns,
) -> Result<(), SchemaError> {
    for entry in excluded.iter() {
        let exists: bool = db::query_scalar(
            "select exists (
                 select 1 from pg_attribute a
                 join pg_class c on c.oid = a.attrelid
                 join pg_namespace n on n.oid = c.relnamespace
                 where c.relname = $2 and a.attname = $3 and a.attnum > 0 and not a.attisdropped
                   and ($1::text is null or n.nspname = $1)
                   and c.relkind in ('r', 'p', 'v', 'm', 'f'))",
        )
        .bind(entry.schema.as_deref())
        .bind(&entry.table)
        .bind(&entry.column)
        .fetch_one(&mut *conn)
        .await?;
        if !exists {
            return Err(SchemaError::Misconfigured {
                variable: "EXPORT_EXCLUDE_COLUMNS",
                reason: format!(
                    "names {}{}.{}, which is no column of any table; a misspelt name would let the column it meant into every archive",
                    entry
                        .schema
                        .as_deref()
                        .map(|s| format!("{s}."))
                        .unwrap_or_default(),
                    entry.table,
                    entry.column
                ),
            });
        }
    }
    Ok(())
}

/// Entry names: `tables/<schema>.<table>[.<key>].ndjson`, with any
/// character a file name should not hold (a table's name may hold `/`)
/// replaced, and made unique.
#[derive(Default)]
struct FileNames(HashSet<String>);

impl FileNames {
    fn name(&mut self, table: &TableName, key: Option<&str>) -> String {
        let mut stem = format!("{}.{}", safe(&table.schema), safe(&table.name));
        if let Some(key) = key {
            stem = format!("{stem}.{}", safe(key));
        }
        let mut name = format!("tables/{stem}.ndjson");
        let mut n = 1;
        while !self.0.insert(name.clone()) {
            n += 1;
            name = format!("tables/{stem}~{n}.ndjson");
        }
        name
    }
}

fn safe(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_columns_are_found_by_word_whatever_the_case() {
        for credential in [
            "password",
            "password_hash",
            "hashedPassword",
            "sessionToken",
            "refresh_token",
            "client_secret",
            "salt",
            "totp_seed",
            "OTP",
        ] {
            assert!(is_credential(credential), "{credential}");
        }
        for plain in ["email", "name", "created_at", "amount", "user_id"] {
            assert!(!is_credential(plain), "{plain}");
        }
    }

    #[test]
    fn file_names_hold_no_path_and_are_unique() {
        let mut files = FileNames::default();
        let odd = TableName {
            schema: "public".into(),
            name: "../../etc/passwd".into(),
        };
        let name = files.name(&odd, None);
        assert_eq!(name, "tables/public.______etc_passwd.ndjson");
        assert_eq!(
            files.name(&odd, None),
            "tables/public.______etc_passwd~2.ndjson"
        );
        let messages = TableName {
            schema: "public".into(),
            name: "messages".into(),
        };
        assert_eq!(
            files.name(&messages, Some("sender_id")),
            "tables/public.messages.sender_id.ndjson"
        );
    }
}
