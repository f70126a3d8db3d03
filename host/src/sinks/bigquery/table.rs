//! The sink's table and view: [`BigQuerySink::ensure_table`] creates what is
//! missing at start-up, [`BigQuerySink::check_table`] only checks.
//!
//! The schema and the view are the files in the repository's `bigquery/`
//! folder, compiled in, so the host and a person running `bq` use the same
//! definitions. Existence is checked with a GET first, so a service account
//! that may only insert rows starts fine once everything exists; creating
//! needs dataset/table create rights and, for the view, a query job.
//! Neither runs on the event path.

use std::time::Duration;

use gcp_bigquery_client::model::clustering::Clustering;
use gcp_bigquery_client::model::dataset::Dataset;
use gcp_bigquery_client::model::error_proto::ErrorProto;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;
use serde_json::Value;

use super::BigQuerySink;
use super::error::BigQueryError;

/// `bigquery/enriched_events_schema.json`: the table's columns.
pub const SCHEMA_JSON: &str = include_str!("../../../../bigquery/enriched_events_schema.json");
/// `bigquery/current_events_view.sql`: the view of current versions.
pub const VIEW_SQL: &str = include_str!("../../../../bigquery/current_events_view.sql");
/// Names the SQL file uses; replaced by the configured ones.
const SQL_VIEW_NAME: &str = "`engagement_analytics.enriched_events_current`";
const SQL_TABLE_NAME: &str = "`engagement_analytics.enriched_events`";
/// Partitioning and clustering, as in `bigquery/create_table.sql`.
const PARTITION_FIELD: &str = "event_ts";
const CLUSTER_FIELDS: [&str; 2] = ["content_type", "event_type"];
/// How long `ensure_table` waits for the view's query job.
const VIEW_JOB_DEADLINE: Duration = Duration::from_secs(60);

/// What [`BigQuerySink::ensure_table`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSetup {
    pub dataset_created: bool,
    pub table_created: bool,
    pub view: ViewSetup,
}

/// The view of current versions after [`BigQuerySink::ensure_table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewSetup {
    Existed,
    Created,
    /// The query job failed (an emulator without views, missing rights):
    /// rows are still written; create it by hand from the SQL file.
    NotCreated(String),
}

/// The table's columns, from the embedded schema file.
pub fn schema_fields() -> Result<Vec<TableFieldSchema>, BigQueryError> {
    serde_json::from_str(SCHEMA_JSON).map_err(|err| BigQueryError::Client {
        step: "read enriched_events_schema.json",
        message: err.to_string(),
    })
}

/// The view's `CREATE VIEW IF NOT EXISTS` with the configured names.
pub fn view_sql(project: &str, dataset: &str, table: &str) -> Result<String, BigQueryError> {
    // The view first: the table's name is a prefix of it.
    if !VIEW_SQL.contains(SQL_VIEW_NAME) || !VIEW_SQL.contains(SQL_TABLE_NAME) {
        return Err(BigQueryError::Client {
            step: "read current_events_view.sql",
            message: format!("the file must name {SQL_VIEW_NAME} and {SQL_TABLE_NAME}"),
        });
    }
    Ok(VIEW_SQL
        .replace(
            SQL_VIEW_NAME,
            &format!("`{project}.{dataset}.{table}_current`"),
        )
        .replace(SQL_TABLE_NAME, &format!("`{project}.{dataset}.{table}`")))
}

impl BigQuerySink {
    /// Creates the dataset, the table (partitioned by `DATE(event_ts)`,
    /// clustered by `content_type, event_type`) and the view of current
    /// versions when they are missing. Idempotent, and safe to run from
    /// several replicas at once (an "already exists" answer is success).
    /// An existing table is checked like [`Self::check_table`]. A view that
    /// cannot be created is logged and reported, not an error: the rows do
    /// not depend on it.
    pub async fn ensure_table(&self) -> Result<TableSetup, BigQueryError> {
        let config = &self.config;
        let (project, dataset, table) = (&config.project, &config.dataset, &config.table);

        let dataset_created = if self
            .get_resource("get dataset", &self.dataset_url())
            .await?
            .is_some()
        {
            false
        } else {
            let mut resource = Dataset::new(project, dataset);
            if let Some(location) = &config.location {
                resource = resource.location(location);
            }
            let created = self.client.dataset().create(resource).await;
            already_exists_is_fine("create dataset", created.map(|_| ()))?
        };

        let table_created = match self
            .get_resource("get table", &self.table_url(table))
            .await?
        {
            Some(existing) => {
                check_columns(&self.table_label(), &existing)?;
                false
            }
            None => {
                let partitioning = TimePartitioning::per_day().field(PARTITION_FIELD);
                let resource =
                    Table::new(project, dataset, table, TableSchema::new(schema_fields()?))
                        .time_partitioning(partitioning)
                        .clustering(Clustering {
                            fields: Some(CLUSTER_FIELDS.iter().map(|f| f.to_string()).collect()),
                        })
                        .description(
                            "Enriched engagement events: one row per change, written by \
                         engagement-host. Current versions: the _current view.",
                        );
                let created = self.client.table().create(resource).await;
                let created = already_exists_is_fine("create table", created.map(|_| ()))?;
                if !created {
                    // Another replica won the race: check what it made.
                    self.check_table().await?;
                }
                created
            }
        };

        let view = config.view();
        let view = if self
            .get_resource("get view", &self.table_url(&view))
            .await?
            .is_some()
        {
            ViewSetup::Existed
        } else {
            match self.create_view().await {
                Ok(()) => ViewSetup::Created,
                Err(err) => {
                    tracing::warn!(view = %view, error = %err, "cannot create the view of current versions; rows are written without it (create it from bigquery/current_events_view.sql)");
                    ViewSetup::NotCreated(err.to_string())
                }
            }
        };
        let setup = TableSetup {
            dataset_created,
            table_created,
            view,
        };
        tracing::info!(table = %self.table_label(), dataset_created, table_created, view = ?setup.view, "BigQuery table ready");
        Ok(setup)
    }

    /// Checks that the table exists and has every column the sink writes
    /// (rows are sent with `ignoreUnknownValues`, so a missing column would
    /// otherwise lose its values silently). Warns about columns the table
    /// requires but the sink may leave null.
    pub async fn check_table(&self) -> Result<(), BigQueryError> {
        match self
            .get_resource("get table", &self.table_url(&self.config.table))
            .await?
        {
            Some(existing) => check_columns(&self.table_label(), &existing),
            None => Err(BigQueryError::SchemaMismatch {
                table: self.table_label(),
                message: "the table does not exist (create it with bigquery/create_table.sql, \
                          or set create_if_missing)"
                    .into(),
            }),
        }
    }

    /// Runs the view's DDL as a query job and waits for it.
    async fn create_view(&self) -> Result<(), BigQueryError> {
        let config = &self.config;
        let sql = view_sql(&config.project, &config.dataset, &config.table)?;
        let mut request = QueryRequest::new(sql);
        request.timeout_ms = Some(10_000);
        let response = self
            .client
            .job()
            .query(&config.project, request)
            .await
            .map_err(|err| BigQueryError::from_client("create view", err))?;
        query_errors("create view", response.errors.as_deref())?;
        if response.job_complete != Some(false) {
            return Ok(());
        }
        // Not done within the request's timeout: poll the job.
        let Some(job) = response.job_reference else {
            return Err(BigQueryError::BadResponse {
                step: "create view",
                message: "incomplete job without a job reference".into(),
            });
        };
        let job_id = job.job_id.unwrap_or_default();
        let started = std::time::Instant::now();
        while started.elapsed() < VIEW_JOB_DEADLINE {
            let results = self
                .client
                .job()
                .get_query_results(
                    &config.project,
                    &job_id,
                    GetQueryResultsParameters {
                        location: job.location.clone(),
                        timeout_ms: Some(10_000),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|err| BigQueryError::from_client("create view", err))?;
            query_errors("create view", results.errors.as_deref())?;
            if results.job_complete != Some(false) {
                return Ok(());
            }
        }
        Err(BigQueryError::QueryFailed {
            step: "create view",
            message: format!("job {job_id} not done after {VIEW_JOB_DEADLINE:?}"),
        })
    }

    /// GETs a dataset or table resource: `None` when it does not exist.
    /// (gcp-bigquery-client's `get` cannot read a view without a schema.)
    pub(super) async fn get_resource(
        &self,
        step: &'static str,
        url: &str,
    ) -> Result<Option<Value>, BigQueryError> {
        let token = self.tokens.token().await?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|source| BigQueryError::RequestFailed { step, source })?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|source| BigQueryError::RequestFailed { step, source })?;
        if status == 404 {
            return Ok(None);
        }
        let value: Option<Value> = serde_json::from_str(&body).ok();
        if (200..300).contains(&status) {
            return value.map(Some).ok_or_else(|| BigQueryError::BadResponse {
                step,
                message: body.chars().take(300).collect(),
            });
        }
        Err(BigQueryError::refused(step, status, &body))
    }

    fn dataset_url(&self) -> String {
        format!(
            "{}/projects/{}/datasets/{}",
            self.config.v2_base_url(),
            self.config.project,
            self.config.dataset
        )
    }

    pub(super) fn table_url(&self, table: &str) -> String {
        format!("{}/tables/{table}", self.dataset_url())
    }

    /// `project.dataset.table`, for messages.
    pub(crate) fn table_label(&self) -> String {
        format!(
            "{}.{}.{}",
            self.config.project, self.config.dataset, self.config.table
        )
    }
}

/// `Ok(true)` created, `Ok(false)` it already existed (409).
fn already_exists_is_fine(
    step: &'static str,
    result: Result<(), gcp_bigquery_client::error::BQError>,
) -> Result<bool, BigQueryError> {
    match result {
        Ok(()) => Ok(true),
        Err(err) => match BigQueryError::from_client(step, err) {
            BigQueryError::Refused { status: 409, .. } => Ok(false),
            other => Err(other),
        },
    }
}

pub(super) fn query_errors(
    step: &'static str,
    errors: Option<&[ErrorProto]>,
) -> Result<(), BigQueryError> {
    match errors {
        Some(errors) if !errors.is_empty() => Err(BigQueryError::QueryFailed {
            step,
            message: errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.reason.as_deref().unwrap_or("error"),
                        e.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        }),
        _ => Ok(()),
    }
}

/// Every column of the sink's schema must be in the table (a table made by
/// the original pipeline lacks `op`, `content_missing`, ...).
fn check_columns(table: &str, resource: &Value) -> Result<(), BigQueryError> {
    let ours = schema_fields()?;
    let theirs: Vec<&Value> = resource
        .pointer("/schema/fields")
        .and_then(Value::as_array)
        .map(|fields| fields.iter().collect())
        .unwrap_or_default();
    let find = |name: &str| {
        theirs
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
    };
    let missing: Vec<&str> = ours
        .iter()
        .filter(|f| find(&f.name).is_none())
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(BigQueryError::SchemaMismatch {
            table: table.to_owned(),
            message: format!(
                "missing columns {} (add them: ALTER TABLE ... ADD COLUMN, types in \
                 bigquery/create_table.sql)",
                missing.join(", ")
            ),
        });
    }
    for field in &ours {
        let required_there = find(&field.name)
            .and_then(|f| f.get("mode"))
            .and_then(Value::as_str)
            == Some("REQUIRED");
        if required_there && field.mode.as_deref() != Some("REQUIRED") {
            tracing::warn!(table, column = %field.name, "column is REQUIRED in the table but may be null: rows with a null value will be rejected (relax it to NULLABLE)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_parses_with_the_record_columns() {
        let fields = schema_fields().expect("schema parses");
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "content_id",
                "user_id",
                "event_type",
                "event_ts",
                "duration_ms",
                "device",
                "raw_payload",
                "content_type",
                "length_seconds",
                "engagement_seconds",
                "engagement_pct",
                "content_missing",
                "op",
                "source_lsn",
                "source_ts_ms",
                "decoder_plugin",
                "decoder_sha256",
                "enricher_plugin",
                "enricher_sha256",
                "ingested_at",
            ]
        );
        let required: Vec<&str> = fields
            .iter()
            .filter(|f| f.mode.as_deref() == Some("REQUIRED"))
            .map(|f| f.name.as_str())
            .collect();
        // Nullable wherever PostgreSQL is (and event_ts: deletes have none).
        assert_eq!(required, ["id", "content_missing", "op"]);
    }

    /// create_table.sql and the JSON schema must describe the same table.
    #[test]
    fn ddl_matches_the_json_schema() {
        let ddl = include_str!("../../../../bigquery/create_table.sql");
        let mut columns = Vec::new();
        for line in ddl.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with("  ") && words.len() >= 2 && line.contains("OPTIONS") {
                let ty = match words[1] {
                    "INT64" => "INTEGER",
                    "FLOAT64" => "FLOAT",
                    "BOOL" => "BOOLEAN",
                    other => other,
                };
                let required = words.get(2..4) == Some(&["NOT", "NULL"][..]);
                columns.push((words[0].to_owned(), ty.to_owned(), required));
            }
        }
        let fields = schema_fields().expect("schema parses");
        let expected: Vec<(String, String, bool)> = fields
            .iter()
            .map(|f| {
                let ty = serde_json::to_value(&f.r#type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (f.name.clone(), ty, f.mode.as_deref() == Some("REQUIRED"))
            })
            .collect();
        assert_eq!(columns, expected);
        assert!(ddl.contains("PARTITION BY DATE(event_ts)"));
        assert!(ddl.contains("CLUSTER BY content_type, event_type"));
    }

    #[test]
    fn view_sql_gets_the_configured_names() {
        let sql = view_sql("p-1", "ds", "events").expect("names found");
        assert!(
            sql.contains("CREATE VIEW IF NOT EXISTS `p-1.ds.events_current`"),
            "{sql}"
        );
        assert!(sql.contains("FROM `p-1.ds.events`"), "{sql}");
        // Only the comments above the statement keep the file's names.
        let statement = &sql[sql.find("CREATE VIEW").expect("statement")..];
        assert!(!statement.contains("engagement_analytics"), "{statement}");
    }

    #[test]
    fn tables_without_the_sink_columns_are_refused() {
        let original = serde_json::json!({"schema": {"fields": [
            {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
            {"name": "user_id", "type": "STRING", "mode": "REQUIRED"}
        ]}});
        let err = check_columns("p.d.t", &original).expect_err("missing columns");
        assert!(err.to_string().contains("content_missing"), "{err}");
        let fields = serde_json::to_value(schema_fields().expect("schema")).expect("json");
        check_columns("p.d.t", &serde_json::json!({"schema": {"fields": fields}}))
            .expect("own schema fits");
    }
}
