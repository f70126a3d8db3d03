//! The generator's SQL: one multi-row statement per kind of change per
//! transaction (arrays through `UNNEST`), so a tick is a handful of round
//! trips whatever its size.

use tokio_postgres::{Client, NoTls, Transaction};
use uuid::Uuid;

use super::model::{NewContent, NewEvent};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

fn query(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DbError {
    move |source| DbError::Query { what, source }
}

/// Where to connect; the original generator's flags.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
}

impl DbTarget {
    pub async fn connect(&self) -> Result<Client, DbError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .password(&self.password)
            .application_name("engagement-host datagen");
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|source| DbError::Connect {
                    target: format!(
                        "{}@{}:{}/{}",
                        self.user, self.host, self.port, self.database
                    ),
                    source,
                })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::error!(%error, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }
}

/// Existing content, to attach events to (`--use-existing`).
pub async fn existing_content(client: &Client) -> Result<Vec<(Uuid, String)>, DbError> {
    let rows = client
        .query(
            "SELECT id::text, coalesce(content_type, '') FROM content",
            &[],
        )
        .await
        .map_err(query("reading existing content"))?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let id: String = row.get(0);
            Some((id.parse().ok()?, row.get(1)))
        })
        .collect())
}

pub async fn insert_content(tx: &Transaction<'_>, rows: &[NewContent]) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let slugs: Vec<&str> = rows.iter().map(|r| r.slug.as_str()).collect();
    let titles: Vec<&str> = rows.iter().map(|r| r.title.as_str()).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.content_type).collect();
    let lengths: Vec<Option<i32>> = rows.iter().map(|r| r.length_seconds).collect();
    let ages: Vec<i64> = rows.iter().map(|r| r.published_secs_ago).collect();
    tx.execute(
        "INSERT INTO content (id, slug, title, content_type, length_seconds, publish_ts)
         SELECT id::uuid, slug, title, content_type, length_seconds, now() - make_interval(secs => age)
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int8[])
              AS r(id, slug, title, content_type, length_seconds, age)",
        &[&ids, &slugs, &titles, &types, &lengths, &ages],
    )
    .await
    .map_err(query("inserting content"))
}

/// Inserts events; returns their ids (in no particular order).
pub async fn insert_events(tx: &Transaction<'_>, rows: &[NewEvent]) -> Result<Vec<i64>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let content: Vec<String> = rows.iter().map(|r| r.content_id.to_string()).collect();
    let users: Vec<String> = rows.iter().map(|r| r.user_id.to_string()).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.event_type).collect();
    let durations: Vec<Option<i32>> = rows.iter().map(|r| r.duration_ms).collect();
    let devices: Vec<&str> = rows.iter().map(|r| r.device).collect();
    let payloads: Vec<&str> = rows.iter().map(|r| r.raw_payload.as_str()).collect();
    let inserted = tx
        .query(
            "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, duration_ms, device, raw_payload)
             SELECT content_id::uuid, user_id::uuid, event_type, clock_timestamp(), duration_ms, device, raw_payload::jsonb
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[])
                  AS r(content_id, user_id, event_type, duration_ms, device, raw_payload)
             RETURNING id",
            &[&content, &users, &types, &durations, &devices, &payloads],
        )
        .await
        .map_err(query("inserting engagement events"))?;
    Ok(inserted.iter().map(|row| row.get(0)).collect())
}

/// Sets new durations (`None` keeps SQL NULL) on events.
pub async fn update_events(
    tx: &Transaction<'_>,
    updates: &[(i64, Option<i32>)],
) -> Result<u64, DbError> {
    if updates.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = updates.iter().map(|u| u.0).collect();
    let durations: Vec<Option<i32>> = updates.iter().map(|u| u.1).collect();
    tx.execute(
        "UPDATE engagement_events e
         SET duration_ms = u.duration_ms,
             raw_payload = coalesce(e.raw_payload, '{}'::jsonb) || jsonb_build_object('updated_at', now())
         FROM UNNEST($1::int8[], $2::int4[]) AS u(id, duration_ms)
         WHERE e.id = u.id",
        &[&ids, &durations],
    )
    .await
    .map_err(query("updating engagement events"))
}

pub async fn delete_events(tx: &Transaction<'_>, ids: &[i64]) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    tx.execute(
        "DELETE FROM engagement_events WHERE id = ANY($1::int8[])",
        &[&ids],
    )
    .await
    .map_err(query("deleting engagement events"))
}

pub async fn update_content_lengths(
    tx: &Transaction<'_>,
    updates: &[(Uuid, Option<i32>)],
) -> Result<u64, DbError> {
    if updates.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = updates.iter().map(|u| u.0.to_string()).collect();
    let lengths: Vec<Option<i32>> = updates.iter().map(|u| u.1).collect();
    tx.execute(
        "UPDATE content c SET length_seconds = u.length_seconds
         FROM UNNEST($1::text[], $2::int4[]) AS u(id, length_seconds)
         WHERE c.id = u.id::uuid",
        &[&ids, &lengths],
    )
    .await
    .map_err(query("updating content"))
}
