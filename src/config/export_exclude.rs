//! `EXPORT_EXCLUDE_COLUMNS`: the columns, besides those a credential word
//! marks, that never leave in a user's copy of their data. Read here, with
//! the account routes' and support's configuration; the export applies it
//! to the catalog of each download ([`crate::lifecycle::export`]).

use super::Env;

/// `EXPORT_EXCLUDE_COLUMNS`: more columns that never leave, as
/// `table.column` (any schema) or `schema.table.column`, exact names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludedColumns(Vec<ExcludedColumn>);

/// One column `EXPORT_EXCLUDE_COLUMNS` names; no schema: any schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedColumn {
    pub schema: Option<String>,
    pub table: String,
    pub column: String,
}

impl ExcludedColumns {
    /// A comma-separated list; blank entries are ignored, and an entry
    /// that is not `table.column` or `schema.table.column` is refused
    /// whole (a typo must not let the column out).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut excluded = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parts: Vec<&str> = entry.split('.').collect();
            let (schema, table, column) = match parts.as_slice() {
                [table, column] => (None, *table, *column),
                [schema, table, column] => (Some(*schema), *table, *column),
                _ => {
                    return Err(format!(
                        "`{entry}` is not table.column or schema.table.column"
                    ));
                }
            };
            if [schema.unwrap_or("x"), table, column]
                .iter()
                .any(|part| part.is_empty())
            {
                return Err(format!("`{entry}` has an empty name"));
            }
            excluded.push(ExcludedColumn {
                schema: schema.map(str::to_owned),
                table: table.to_owned(),
                column: column.to_owned(),
            });
        }
        Ok(Self(excluded))
    }

    /// Whether it names column `column` of table `schema.table`.
    pub fn names(&self, schema: &str, table: &str, column: &str) -> bool {
        self.0.iter().any(|e| {
            e.table == table && e.column == column && e.schema.as_ref().is_none_or(|s| s == schema)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &ExcludedColumn> {
        self.0.iter()
    }
}

impl Env<'_> {
    pub(super) fn export_exclude(&mut self) -> Option<ExcludedColumns> {
        self.optional(
            "EXPORT_EXCLUDE_COLUMNS",
            ExcludedColumns::default(),
            ExcludedColumns::parse,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_columns_parse_and_refuse_what_is_not_a_column_name() {
        let parsed = ExcludedColumns::parse(" profiles.ssn, billing.cards.pan ,").unwrap();
        assert!(parsed.names("public", "profiles", "ssn"));
        assert!(parsed.names("other", "profiles", "ssn"));
        assert!(!parsed.names("public", "profiles", "name"));
        assert!(parsed.names("billing", "cards", "pan"));
        assert!(!parsed.names("public", "cards", "pan"));
        for bad in ["ssn", "a.b.c.d", ".x", "t.", "a..b"] {
            assert!(ExcludedColumns::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ExcludedColumns::parse("").unwrap(),
            ExcludedColumns::default()
        );
    }
}
