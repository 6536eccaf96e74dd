//! Storage backends for caviar. SQLite: one file, write-ahead logging, a versioned schema with
//! migrations, and trial numbers that stay unique when several processes share the file.
//! PostgreSQL: the same schema in a server that workers on many machines share
//! (`postgres://user@host/db`, optionally `?schema=NAME`).
//!
//! ```
//! use caviar_core::storage::{NewStudy, Storage};
//! use caviar_core::trial::Direction;
//! use caviar_store::SqliteStorage;
//! let dir = std::env::temp_dir().join(format!("caviar-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteStorage::open(dir.join("studies.db")).unwrap();
//! let study = store.create_study(&NewStudy {
//!     name: "doc".into(), direction: Direction::Maximize, metric: Some("acc".into()),
//!     ..Default::default()
//! }).unwrap();
//! let trial = store.create_trial(study.id, "me", None).unwrap().unwrap();
//! assert_eq!(trial.number, 0);
//! # std::fs::remove_dir_all(dir).ok();
//! ```
#![warn(missing_docs)]

mod postgres;
mod sqlite;
mod url;

pub use postgres::{PostgresStorage, PG_SCHEMA_VERSION};
pub use sqlite::{SqliteStorage, SCHEMA_VERSION};
pub use url::{open_storage, open_storage_for_reading, StorageUrl, UrlError};
