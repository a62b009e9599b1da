//! Reading the catalog: the users table, its columns' types, the sign-in's
//! sessions table, every foreign key that references the users table and
//! the chains of keys that can keep a user from being deleted.

use sqlx::PgConnection;

use crate::platform::db;

use super::{
    AnonymizeColumns, BlockingPath, Catalog, Clear, ForeignKey, IdType, Ident, OnDelete,
    QualifiedName, SchemaError, SessionTable, Sessions, TimeType, UsersTable,
};

/// How deep the search for blocking keys follows cascades (users → orders
/// → order items → …).
const MAX_CHAIN: usize = 4;

/// Reads the catalog for `users` (and `sessions`, if the sign-in uses a
/// table) and checks every name and type.
pub async fn inspect(
    conn: &mut PgConnection,
    users: &UsersTable,
    sessions: Option<SessionTable>,
    anonymizing: bool,
) -> Result<Catalog, SchemaError> {
    let (oid, table) = find_users_table(conn, users).await?;
    let columns = columns(conn, oid).await?;
    let column_type = |variable: &'static str, column: &Ident| {
        columns
            .iter()
            .find(|(name, _)| name == column.as_str())
            .map(|(_, ty)| ty.as_str())
            .ok_or_else(|| {
                SchemaError::misconfigured(
                    variable,
                    format!("table {table} has no column {column}"),
                )
            })
    };
    let id_type = match column_type("USERS_ID_COLUMN", &users.id)? {
        "uuid" => IdType::Uuid,
        "text" => IdType::Text,
        "bigint" => IdType::Bigint,
        other => {
            return Err(SchemaError::misconfigured(
                "USERS_ID_COLUMN",
                format!(
                    "column {} is {other}; uuid, text or bigint is needed",
                    users.id
                ),
            ));
        }
    };
    match column_type("USERS_EMAIL_COLUMN", &users.email)? {
        "text" | "character varying" | "citext" => {}
        other => {
            return Err(SchemaError::misconfigured(
                "USERS_EMAIL_COLUMN",
                format!(
                    "column {} is {other}; text or varchar is needed",
                    users.email
                ),
            ));
        }
    }
    let deleted_at_type = time_type(
        "USERS_DELETED_AT_COLUMN",
        &users.deleted_at,
        column_type("USERS_DELETED_AT_COLUMN", &users.deleted_at).map_err(|_| {
            SchemaError::misconfigured(
                "USERS_DELETED_AT_COLUMN",
                format!(
                    "table {table} has no column {}: add it (nullable, with an index) with the \
                     app's own migrations, or run `cargo dev migrate --add-deleted-at`",
                    users.deleted_at
                ),
            )
        })?,
    )?;
    let deleted_at_indexed = index_starts_with(conn, oid, &[&users.deleted_at]).await?;
    let sessions = match sessions {
        Some(kind) => Some(session_table(conn, &table.schema, kind).await?),
        None => None,
    };
    let references = foreign_keys(conn, oid).await?;
    let blocking = blocking_paths(conn, &references).await?;
    let verification_tokens = if users.authjs_verification_tokens {
        verification_tokens(conn, &table.schema).await?
    } else {
        None
    };
    let anonymize = if anonymizing {
        Some(anonymized_columns(conn, oid, users).await?)
    } else {
        None
    };
    Ok(Catalog {
        users: table,
        id: users.id.clone(),
        email: users.email.clone(),
        deleted_at: users.deleted_at.clone(),
        id_type,
        deleted_at_type,
        deleted_at_indexed,
        sessions,
        references,
        blocking,
        verification_tokens,
        anonymize,
    })
}

/// How each column `ANONYMIZE_COLUMNS` (or the preset) names is cleared,
/// checked against the catalog: a nullable column becomes `NULL`, the email
/// column when `NOT NULL` an address at `.invalid`, another `NOT NULL`
/// column its default; one without a default, the id or the deleted-at is
/// a configuration error naming the variable.
async fn anonymized_columns(
    conn: &mut PgConnection,
    oid: i64,
    users: &UsersTable,
) -> Result<Vec<(Ident, Clear)>, SchemaError> {
    let found: Vec<(String, bool, bool)> = db::query_as(
        "select attname::text, attnotnull, atthasdef
         from pg_attribute
         where attrelid = $1::oid and attnum > 0 and not attisdropped",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    let (wanted, listed) = match &users.anonymize {
        AnonymizeColumns::Preset(columns) => (columns, false),
        AnonymizeColumns::Listed(columns) => (columns, true),
    };
    let refuse = |reason: String| SchemaError::misconfigured("ANONYMIZE_COLUMNS", reason);
    let mut clears = Vec::new();
    for column in wanted {
        let Some((_, not_null, has_default)) =
            found.iter().find(|(name, ..)| name == column.as_str())
        else {
            if listed {
                return Err(refuse(format!(
                    "table {} has no column {column}",
                    users.display_name()
                )));
            }
            continue;
        };
        if *column == users.id || *column == users.deleted_at {
            return Err(refuse(format!(
                "{column} is the id or the deleted-at column; the row keeps both"
            )));
        }
        let clear = match (not_null, has_default) {
            (false, _) => Clear::Null,
            (true, _) if *column == users.email => Clear::ErasedAddress,
            (true, true) => Clear::Default,
            (true, false) => {
                return Err(refuse(format!(
                    "{column} is NOT NULL without a default: there is no value to clear it to \
                     (make it nullable, give it a default, or leave it out)"
                )));
            }
        };
        clears.push((column.clone(), clear));
    }
    Ok(clears)
}

/// Auth.js's `"VerificationToken"` in `schema`, if it is there with its
/// `identifier` column (an app without email sign-in has none).
async fn verification_tokens(
    conn: &mut PgConnection,
    schema: &Ident,
) -> Result<Option<QualifiedName>, sqlx::Error> {
    let found: bool = db::query_scalar(
        "select exists (
             select 1 from pg_attribute a
             join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = $1 and c.relname = 'VerificationToken' and c.relkind in ('r', 'p')
               and a.attname = 'identifier' and not a.attisdropped
         )",
    )
    .bind(schema.as_str())
    .fetch_one(conn)
    .await?;
    Ok(found.then(|| QualifiedName {
        schema: schema.clone(),
        name: Ident::from_catalog("VerificationToken".to_owned()),
    }))
}

/// The users table's oid and exact name, or why there is none.
async fn find_users_table(
    conn: &mut PgConnection,
    users: &UsersTable,
) -> Result<(i64, QualifiedName), SchemaError> {
    let wanted = match &users.schema {
        Some(schema) => format!("{}.{}", schema.quoted(), users.name.quoted()),
        None => users.name.quoted(),
    };
    let found: Option<(i64, String, String)> = db::query_as(
        "select c.oid::int8, n.nspname::text, c.relname::text
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.oid = to_regclass($1) and c.relkind in ('r', 'p')",
    )
    .bind(&wanted)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((oid, schema, name)) = found else {
        return Err(SchemaError::misconfigured(
            "USERS_TABLE",
            format!(
                "no table {} in the database (names are case-sensitive; Prisma's default is \"User\", \
                 SCHEMA_PRESET=prisma)",
                users.display_name()
            ),
        ));
    };
    let table = QualifiedName {
        schema: Ident::from_catalog(schema),
        name: Ident::from_catalog(name),
    };
    Ok((oid, table))
}

fn time_type(variable: &'static str, column: &Ident, ty: &str) -> Result<TimeType, SchemaError> {
    match ty {
        "timestamp with time zone" => Ok(TimeType::WithTimeZone),
        "timestamp without time zone" => Ok(TimeType::NaiveUtc),
        other => Err(SchemaError::misconfigured(
            variable,
            format!("column {column} is {other}; timestamptz or timestamp is needed"),
        )),
    }
}

/// Each column's name and type (without modifiers: `timestamp(3) without
/// time zone` reads as `timestamp without time zone`).
async fn columns(conn: &mut PgConnection, oid: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
    db::query_as(
        "select attname::text, atttypid::regtype::text
         from pg_attribute
         where attrelid = $1::oid and attnum > 0 and not attisdropped",
    )
    .bind(oid)
    .fetch_all(conn)
    .await
}

async fn session_table(
    conn: &mut PgConnection,
    schema: &Ident,
    kind: SessionTable,
) -> Result<Sessions, SchemaError> {
    let [name, token, user, expires] = kind.names();
    let table = QualifiedName {
        schema: schema.clone(),
        name: Ident::from_catalog(name.to_owned()),
    };
    let oid: Option<i64> = db::query_scalar(
        "select c.oid::int8 from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')",
    )
    .bind(schema.as_str())
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let missing = |what: String| {
        SchemaError::misconfigured(
            "SESSION_AUTH",
            format!("SESSION_AUTH={} needs {what}", kind.variable_value()),
        )
    };
    let oid = oid.ok_or_else(|| missing(format!("a table {table} next to the users table")))?;
    let columns = columns(conn, oid).await?;
    let column = |wanted: &str| {
        columns
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, ty)| ty.clone())
            .ok_or_else(|| missing(format!("a column {wanted} in {table}")))
    };
    column(token)?;
    column(user)?;
    let expires_type = time_type(
        "SESSION_AUTH",
        &Ident::from_catalog(expires.to_owned()),
        &column(expires)?,
    )?;
    Ok(Sessions {
        kind,
        table,
        expires_type,
    })
}

/// Whether some index of the table starts with exactly these columns (in
/// any order), so a lookup by them is an index scan.
async fn index_starts_with(
    conn: &mut PgConnection,
    oid: i64,
    columns: &[&Ident],
) -> Result<bool, sqlx::Error> {
    let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    db::query_scalar(
        "select exists (
             select 1 from pg_index i
             where i.indrelid = $1::oid
               and (select array_agg(a.attname::text order by a.attname)
                    from pg_attribute a
                    where a.attrelid = i.indrelid
                      and a.attnum = any((i.indkey::int2[])[0:cardinality($2::text[]) - 1]))
                   = (select array_agg(c order by c) from unnest($2::text[]) c)
         )",
    )
    .bind(oid)
    .bind(&names)
    .fetch_one(conn)
    .await
}

/// Every foreign key that references table `oid`.
async fn foreign_keys(conn: &mut PgConnection, oid: i64) -> Result<Vec<ForeignKey>, sqlx::Error> {
    type Row = (
        String,
        i64,
        String,
        String,
        Vec<String>,
        Vec<String>,
        String,
    );
    let rows: Vec<Row> = db::query_as(
        "select con.conname::text, con.conrelid::int8, n.nspname::text, c.relname::text,
                array(select a.attname::text from unnest(con.conkey) with ordinality k(attnum, i)
                      join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
                      order by k.i),
                array(select a.attname::text from unnest(con.confkey) with ordinality k(attnum, i)
                      join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum
                      order by k.i),
                con.confdeltype::text
         from pg_constraint con
         join pg_class c on c.oid = con.conrelid
         join pg_namespace n on n.oid = c.relnamespace
         where con.contype = 'f' and con.confrelid = $1::oid
         order by n.nspname, c.relname, con.conname",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for (constraint, table_oid, schema, table, columns, references, action) in rows {
        let columns: Vec<Ident> = columns.into_iter().map(Ident::from_catalog).collect();
        let indexed =
            index_starts_with(conn, table_oid, &columns.iter().collect::<Vec<_>>()).await?;
        keys.push(ForeignKey {
            constraint: Ident::from_catalog(constraint),
            table: QualifiedName {
                schema: Ident::from_catalog(schema),
                name: Ident::from_catalog(table),
            },
            columns,
            references: references.into_iter().map(Ident::from_catalog).collect(),
            on_delete: OnDelete::from_catalog(&action),
            indexed,
        });
    }
    Ok(keys)
}

/// Follows cascading keys from the users table and collects every chain
/// that ends in a key without a delete action.
async fn blocking_paths(
    conn: &mut PgConnection,
    direct: &[ForeignKey],
) -> Result<Vec<BlockingPath>, sqlx::Error> {
    let mut paths = Vec::new();
    let mut frontier: Vec<Vec<ForeignKey>> = direct.iter().map(|k| vec![k.clone()]).collect();
    while let Some(chain) = frontier.pop() {
        let last = chain.last().expect("chains are not empty");
        if !last.on_delete.lets_delete() {
            paths.push(BlockingPath(chain));
            continue;
        }
        // Only a cascade deletes rows, whose own referencing rows may block.
        if last.on_delete != OnDelete::Cascade || chain.len() >= MAX_CHAIN {
            continue;
        }
        let oid: i64 = db::query_scalar("select to_regclass($1)::oid::int8")
            .bind(last.table.quoted())
            .fetch_one(&mut *conn)
            .await?;
        for next in foreign_keys(conn, oid).await? {
            // A table referencing itself (a tree of rows) is not followed.
            if chain.iter().any(|k| k.table == next.table) {
                continue;
            }
            let mut longer = chain.clone();
            longer.push(next);
            frontier.push(longer);
        }
    }
    paths.sort_by(|a, b| a.constraint().as_str().cmp(b.constraint().as_str()));
    Ok(paths)
}
