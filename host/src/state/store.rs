//! The embedded on-disk state store (redb): content cache, pending events and
//! the event index survive a restart.
//!
//! The in-memory [`State`](super::State) is the working copy; this store is
//! written one [`StateDelta`] per batch, in one transaction, after the batch's
//! outputs were written, so a crash replays the batch instead of losing it.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::{ContentEntry, EventEntry, PendingEvent, StateDelta, StateWrite};

const CONTENT: TableDefinition<&str, &[u8]> = TableDefinition::new("content");
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events");

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("state store I/O failed: {0}")]
    Io(String),
    #[error("state store entry `{key}` is unreadable: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: postcard::Error,
    },
}

macro_rules! io {
    ($e:expr) => {
        $e.map_err(|err| StoreError::Io(err.to_string()))
    };
}

/// Everything stored, as loaded at start-up.
#[derive(Default)]
pub struct Snapshot {
    pub content: Vec<(String, ContentEntry)>,
    pub pending: Vec<PendingEvent>,
    pub events: Vec<(String, EventEntry)>,
}

/// The redb database.
pub struct StateStore {
    db: Database,
}

impl StateStore {
    /// Opens (or creates) `dir/state.redb`. Commits are fsynced.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("state.redb");
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let store = Self { db };
        store.create_tables()?;
        Ok(store)
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = io!(self.db.begin_write())?;
        io!(txn.open_table(CONTENT))?;
        io!(txn.open_table(PENDING))?;
        io!(txn.open_table(EVENTS))?;
        io!(txn.commit())
    }

    /// Reads everything (start-up).
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let mut snapshot = Snapshot::default();
        for item in io!(io!(txn.open_table(CONTENT))?.iter())? {
            let (k, v) = io!(item)?;
            snapshot
                .content
                .push((k.value().to_owned(), decode(k.value(), v.value())?));
        }
        for item in io!(io!(txn.open_table(PENDING))?.iter())? {
            let (k, v) = io!(item)?;
            snapshot.pending.push(decode(k.value(), v.value())?);
        }
        for item in io!(io!(txn.open_table(EVENTS))?.iter())? {
            let (k, v) = io!(item)?;
            snapshot
                .events
                .push((k.value().to_owned(), decode(k.value(), v.value())?));
        }
        Ok(snapshot)
    }

    /// Applies one batch's writes in one transaction.
    pub fn commit(&self, delta: &StateDelta) -> Result<(), StoreError> {
        if delta.is_empty() {
            return Ok(());
        }
        let txn = io!(self.db.begin_write())?;
        {
            let mut content = io!(txn.open_table(CONTENT))?;
            let mut pending = io!(txn.open_table(PENDING))?;
            let mut events = io!(txn.open_table(EVENTS))?;
            for write in &delta.writes {
                match write {
                    StateWrite::PutContent(k, v) => {
                        io!(content.insert(k.as_str(), encode(v).as_slice()))?;
                    }
                    StateWrite::ClearContent => io!(content.retain(|_, _| false))?,
                    StateWrite::PutPending(k, v) => {
                        io!(pending.insert(k.as_str(), encode(v).as_slice()))?;
                    }
                    StateWrite::DeletePending(k) => {
                        io!(pending.remove(k.as_str()))?;
                    }
                    StateWrite::ClearPending => io!(pending.retain(|_, _| false))?,
                    StateWrite::PutEvent(k, v) => {
                        io!(events.insert(k.as_str(), encode(v).as_slice()))?;
                    }
                    StateWrite::DeleteEvent(k) => {
                        io!(events.remove(k.as_str()))?;
                    }
                    StateWrite::ClearEvents => io!(events.retain(|_, _| false))?,
                }
            }
        }
        io!(txn.commit())
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        key: key.replace('\0', "/"),
        source,
    })
}
