use std::path::PathBuf;
use std::sync::Arc;

use caviar_core::storage::{Storage, StorageError};

use crate::SqliteStorage;

/// Where a study lives, parsed from `--storage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageUrl {
    /// `sqlite:PATH` (also `sqlite://PATH`).
    Sqlite(PathBuf),
    /// `memory:` — nothing kept after the process ends.
    Memory,
    /// `postgres://user@host:port/db[?schema=NAME]`.
    Postgres(String),
}

/// A storage URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// The text is not a storage URL.
    #[error(
        "storage URL `{0}` is not understood; use sqlite:PATH (e.g. sqlite:caviar.db), postgres://USER@HOST:PORT/DB or memory:"
    )]
    Malformed(String),
    /// The backend failed to open.
    #[error("cannot open storage `{url}`: {source}")]
    Open {
        /// The URL.
        url: String,
        /// Why.
        source: StorageError,
    },
}

impl StorageUrl {
    /// Parses `sqlite:PATH`, `sqlite://PATH`, `memory:` or `postgres://...`.
    ///
    /// ```
    /// use caviar_store::StorageUrl;
    /// assert_eq!(StorageUrl::parse("sqlite:caviar.db").unwrap(),
    ///            StorageUrl::Sqlite("caviar.db".into()));
    /// assert!(StorageUrl::parse("mysql://x").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(UrlError::Malformed(text.into()));
            }
            return Ok(StorageUrl::Sqlite(PathBuf::from(path)));
        }
        if text == "memory:" || text == "memory" {
            return Ok(StorageUrl::Memory);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StorageUrl::Postgres(text.into()));
        }
        Err(UrlError::Malformed(text.into()))
    }
}

/// Opens the storage a URL names.
pub fn open_storage(text: &str) -> Result<Arc<dyn Storage>, UrlError> {
    match StorageUrl::parse(text)? {
        StorageUrl::Sqlite(path) => SqliteStorage::open(&path)
            .map(|s| Arc::new(s) as Arc<dyn Storage>)
            .map_err(|source| UrlError::Open {
                url: text.into(),
                source,
            }),
        StorageUrl::Memory => Ok(Arc::new(caviar_core::storage::InMemoryStorage::new())),
        StorageUrl::Postgres(url) => crate::PostgresStorage::open(&url)
            .map(|s| Arc::new(s) as Arc<dyn Storage>)
            .map_err(|source| UrlError::Open {
                url: text.into(),
                source,
            }),
    }
}

/// Opens the storage a URL names for reading: SQLite files read-only (see
/// [`SqliteStorage::open_read_only`]), migrated by a writing open only when their schema is
/// older; a file that does not exist reads as an empty store (and is not created); other
/// backends as [`open_storage`] does.
pub fn open_storage_for_reading(text: &str) -> Result<Arc<dyn Storage>, UrlError> {
    let StorageUrl::Sqlite(path) = StorageUrl::parse(text)? else {
        return open_storage(text);
    };
    if !path.exists() {
        // Nothing stored yet reads as no studies, without creating the file.
        return Ok(Arc::new(caviar_core::storage::InMemoryStorage::new()));
    }
    match SqliteStorage::open_read_only(&path) {
        Ok(storage) => Ok(Arc::new(storage)),
        Err(StorageError::Incompatible(msg)) if msg.contains("older") => open_storage(text),
        Err(source) => Err(UrlError::Open {
            url: text.into(),
            source,
        }),
    }
}
