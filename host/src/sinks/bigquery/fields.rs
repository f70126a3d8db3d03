//! Does the table take an enricher's output fields? Asked before a version
//! goes live ([`crate::sinks::RecordSink::accepts_fields`]): at start-up
//! and before every hot swap, never on the event path.
//!
//! Rows are sent with `ignoreUnknownValues`, so without this check a new
//! field the table has no column for would be dropped silently, row after
//! row. Each output field needs a column of a compatible type
//! ([`compatible`]) that may be null when the field may be. A missing
//! column refuses the version, unless the operator allowed schema updates
//! (`bigquery_allow_schema_update`): then the missing columns are added,
//! NULLABLE, with `tables.patch` (the whole schema, existing columns first,
//! `If-Match` the etag read, so a concurrent change is not overwritten)
//! and the version goes live once the table shows them. Only additions:
//! a column of the wrong type or mode is never changed, the version is
//! refused.
//!
//! The emulator (bqemulator 1.4.0, when `base_url` is set) applies
//! `tables.patch` to its catalog only, not to its DuckDB storage (the next
//! `insertAll` fails with HTTP 500), and `ALTER TABLE ... ADD COLUMN` to its
//! storage only; against an emulator the columns are added with both, DDL
//! first. Real BigQuery needs the patch alone.

use serde_json::{Value, json};

use super::BigQuerySink;
use super::error::BigQueryError;
use super::table::query_errors;
use crate::wasm::bindings::{FieldSpec, ValueKind, kind_name};

/// Attempts of the read-patch cycle when the table changed in between
/// (HTTP 412 on the etag).
const PATCH_ATTEMPTS: usize = 3;
/// BigQuery's limit on a column description.
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Column types a value of `kind` can be written to by `insertAll`.
pub fn compatible(kind: ValueKind, column_type: &str) -> bool {
    let column_type = column_type.to_ascii_uppercase();
    let accepted: &[&str] = match kind {
        ValueKind::Boolean => &["BOOLEAN", "BOOL"],
        ValueKind::Int => &[
            "INTEGER",
            "INT64",
            "FLOAT",
            "FLOAT64",
            "NUMERIC",
            "BIGNUMERIC",
        ],
        ValueKind::Float => &["FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"],
        // Text BigQuery parses: a value that does not parse is a row error
        // (dead letter), but the column is the right kind of place.
        ValueKind::Text => &["STRING", "TIMESTAMP", "DATETIME", "DATE", "TIME"],
        // The sink writes JSON values as JSON text (see rows.rs).
        ValueKind::Json => &["STRING", "JSON"],
    };
    accepted.contains(&column_type.as_str())
}

/// The column type a new column for `kind` gets.
pub fn column_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Boolean => "BOOLEAN",
        ValueKind::Int => "INTEGER",
        ValueKind::Float => "FLOAT",
        ValueKind::Text | ValueKind::Json => "STRING",
    }
}

/// Letters, digits and underscores, not starting with a digit, at most 300
/// characters: a BigQuery column name (and safe in the emulator's DDL).
fn valid_column_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 300
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// How the table's columns fit the fields.
#[derive(Debug, Default, PartialEq)]
pub struct FieldFit {
    /// Fields without a column: added when allowed.
    pub missing: Vec<FieldSpec>,
    /// Columns that cannot take their field, in words: never fixed here.
    pub problems: Vec<String>,
}

/// Compares `fields` with the table resource's `schema.fields`.
pub fn fit(resource: &Value, fields: &[FieldSpec]) -> FieldFit {
    let columns: Vec<&Value> = resource
        .pointer("/schema/fields")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let mut fit = FieldFit::default();
    for field in fields {
        // Column names are case-insensitive in BigQuery.
        let column = columns.iter().find(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&field.name))
        });
        let Some(column) = column else {
            if valid_column_name(&field.name) {
                fit.missing.push(field.clone());
            } else {
                fit.problems.push(format!(
                    "field `{}` is not a valid BigQuery column name",
                    field.name
                ));
            }
            continue;
        };
        let ty = column.get("type").and_then(Value::as_str).unwrap_or("");
        let mode = column
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("NULLABLE");
        if !compatible(field.kind, ty) || mode.eq_ignore_ascii_case("REPEATED") {
            fit.problems.push(format!(
                "column `{}` is {ty} {mode}, which cannot hold the field's {} values (a {} column would)",
                field.name,
                kind_name(field.kind),
                column_type(field.kind)
            ));
        } else if field.nullable && mode.eq_ignore_ascii_case("REQUIRED") {
            fit.problems.push(format!(
                "column `{}` is REQUIRED but the field may be null (relax the column to NULLABLE)",
                field.name
            ));
        }
    }
    fit
}

/// A new NULLABLE column for `field`, as the REST API's `TableFieldSchema`.
fn new_column(field: &FieldSpec) -> Value {
    let description: String = field
        .description
        .chars()
        .take(MAX_DESCRIPTION_CHARS)
        .collect();
    json!({
        "name": field.name,
        "type": column_type(field.kind),
        "mode": "NULLABLE",
        "description": description,
    })
}

impl BigQuerySink {
    /// Checks that the table takes `fields` (see the module doc), adding
    /// the missing columns when `allow_schema_update` is set.
    pub async fn accept_fields(&self, fields: &[FieldSpec]) -> Result<(), String> {
        let table = self.table_label();
        for attempt in 1..=PATCH_ATTEMPTS {
            let resource = self
                .get_resource("get table", &self.table_url(&self.config.table))
                .await
                .map_err(|err| format!("cannot read table {table}: {err}"))?
                .ok_or_else(|| format!("table {table} does not exist"))?;
            let fit = fit(&resource, fields);
            if !fit.problems.is_empty() {
                return Err(format!("table {table}: {}", fit.problems.join("; ")));
            }
            if fit.missing.is_empty() {
                return Ok(());
            }
            let names: Vec<String> = fit
                .missing
                .iter()
                .map(|f| format!("{} ({})", f.name, column_type(f.kind)))
                .collect();
            if !self.config.allow_schema_update {
                return Err(format!(
                    "table {table} has no column for the output field(s) {}: add them \
                     (ALTER TABLE ... ADD COLUMN), or set bigquery_allow_schema_update = true \
                     to let the host add them",
                    names.join(", ")
                ));
            }
            match self.add_columns(&resource, &fit.missing).await {
                Ok(()) => {
                    tracing::info!(table = %table, columns = %names.join(", "), "BigQuery columns added for the enricher's new output fields");
                    // Checked again: the table must show them now.
                    continue;
                }
                Err(BigQueryError::Refused { status: 412, .. }) if attempt < PATCH_ATTEMPTS => {
                    tracing::info!(table = %table, "table changed while adding columns; reading it again");
                    continue;
                }
                Err(err) => {
                    return Err(format!(
                        "cannot add the column(s) {} to table {table}: {err}",
                        names.join(", ")
                    ));
                }
            }
        }
        Err(format!(
            "table {table} still lacks columns for the output fields after {PATCH_ATTEMPTS} attempts"
        ))
    }

    /// `tables.patch` with the table's schema plus `missing` (and, on an
    /// emulator, the DDL first: see the module doc).
    async fn add_columns(
        &self,
        resource: &Value,
        missing: &[FieldSpec],
    ) -> Result<(), BigQueryError> {
        const STEP: &str = "add columns";
        if self.config.base_url.is_some() {
            self.add_columns_ddl(missing).await?;
        }
        let mut columns: Vec<Value> = resource
            .pointer("/schema/fields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        columns.extend(missing.iter().map(new_column));
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .patch(self.table_url(&self.config.table))
            .bearer_auth(token)
            .json(&json!({"schema": {"fields": columns}}));
        if let Some(etag) = resource.get("etag").and_then(Value::as_str) {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|source| BigQueryError::RequestFailed { step: STEP, source })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(BigQueryError::refused(STEP, status, &body))
    }

    /// `ALTER TABLE ... ADD COLUMN IF NOT EXISTS` for each missing field
    /// (names were checked by [`fit`]).
    async fn add_columns_ddl(&self, missing: &[FieldSpec]) -> Result<(), BigQueryError> {
        const STEP: &str = "add columns (DDL)";
        let config = &self.config;
        let adds: Vec<String> = missing
            .iter()
            .map(|f| {
                format!(
                    "ADD COLUMN IF NOT EXISTS {} {}",
                    f.name,
                    column_type(f.kind)
                )
            })
            .collect();
        let sql = format!(
            "ALTER TABLE `{}.{}.{}` {}",
            config.project,
            config.dataset,
            config.table,
            adds.join(", ")
        );
        let mut request = gcp_bigquery_client::model::query_request::QueryRequest::new(sql);
        request.timeout_ms = Some(10_000);
        let response = self
            .client
            .job()
            .query(&config.project, request)
            .await
            .map_err(|err| BigQueryError::from_client(STEP, err))?;
        query_errors(STEP, response.errors.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: ValueKind, nullable: bool) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            kind,
            nullable,
            description: format!("{name} field"),
        }
    }

    fn table() -> Value {
        json!({"etag": "\"abc\"", "schema": {"fields": [
            {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
            {"name": "content_type", "type": "STRING", "mode": "NULLABLE"},
            {"name": "engagement_pct", "type": "FLOAT"},
            {"name": "length_seconds", "type": "INTEGER", "mode": "NULLABLE"},
            {"name": "Flag", "type": "BOOL", "mode": "NULLABLE"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"}
        ]}})
    }

    #[test]
    fn fields_with_compatible_columns_fit() {
        let fields = [
            spec("content_type", ValueKind::Text, true),
            spec("engagement_pct", ValueKind::Float, true),
            spec("length_seconds", ValueKind::Int, true),
            spec("flag", ValueKind::Boolean, true),
            spec("id", ValueKind::Int, false),
        ];
        assert_eq!(fit(&table(), &fields), FieldFit::default());
    }

    #[test]
    fn missing_columns_are_listed_and_bad_ones_explained() {
        let fields = [
            spec("engagement_tier", ValueKind::Text, true),
            spec("content_type", ValueKind::Int, true),
            spec("id", ValueKind::Int, true),
            spec("tags", ValueKind::Text, true),
            spec("bad name", ValueKind::Text, true),
        ];
        let fit = fit(&table(), &fields);
        assert_eq!(fit.missing, vec![fields[0].clone()]);
        assert_eq!(fit.problems.len(), 4, "{:?}", fit.problems);
        assert!(fit.problems[0].contains("`content_type` is STRING"));
        assert!(fit.problems[1].contains("REQUIRED"));
        assert!(fit.problems[2].contains("REPEATED"));
        assert!(fit.problems[3].contains("not a valid BigQuery column name"));
    }

    #[test]
    fn kinds_map_to_columns_they_fit() {
        for kind in [
            ValueKind::Boolean,
            ValueKind::Int,
            ValueKind::Float,
            ValueKind::Text,
            ValueKind::Json,
        ] {
            assert!(compatible(kind, column_type(kind)), "{kind:?}");
        }
        assert!(!compatible(ValueKind::Float, "INTEGER"));
        assert!(!compatible(ValueKind::Text, "JSON"));
        let column = new_column(&spec("engagement_tier", ValueKind::Text, true));
        assert_eq!(column["type"], "STRING");
        assert_eq!(column["mode"], "NULLABLE");
    }
}
