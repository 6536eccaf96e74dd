use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use caviar_core::space::{Distribution, ParamValue};
use caviar_core::storage::{
    add_metrics_row, metrics_json, AttrOwner, ControlAction, ControlRecord, NewControl,
    NewParamChange, NewStudy, NewTrial, ParamChange, RunningTrial, Storage, StorageError,
    StudyRecord, StudySummary, TrialCounts, TrialUserAttrs,
};
use caviar_core::trial::{now_ms, Direction, FrozenTrial, StudyId, TrialId, TrialState};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

/// The schema version this build writes. Older files are migrated on open; newer ones are
/// refused rather than damaged.
pub const SCHEMA_VERSION: i64 = 12;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE studies (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    direction   TEXT NOT NULL,
    metric      TEXT,
    spec        TEXT,
    parent_id   INTEGER REFERENCES studies(id),
    created_ms  INTEGER NOT NULL
);
CREATE TABLE trials (
    id            INTEGER PRIMARY KEY,
    study_id      INTEGER NOT NULL REFERENCES studies(id),
    number        INTEGER NOT NULL,
    state         TEXT NOT NULL,
    value         REAL,
    error         TEXT,
    worker        TEXT,
    heartbeat_ms  INTEGER,
    started_ms    INTEGER,
    finished_ms   INTEGER,
    UNIQUE (study_id, number)
);
CREATE INDEX trials_by_state ON trials (study_id, state);
CREATE TABLE trial_params (
    trial_id      INTEGER NOT NULL REFERENCES trials(id),
    name          TEXT NOT NULL,
    value         TEXT NOT NULL,
    distribution  TEXT NOT NULL,
    PRIMARY KEY (trial_id, name)
) WITHOUT ROWID;
CREATE TABLE trial_values (
    trial_id  INTEGER NOT NULL REFERENCES trials(id),
    step      INTEGER NOT NULL,
    value     REAL,
    PRIMARY KEY (trial_id, step)
) WITHOUT ROWID;
CREATE TABLE param_changes (
    id         INTEGER PRIMARY KEY,
    trial_id   INTEGER NOT NULL REFERENCES trials(id),
    step       INTEGER,
    name       TEXT NOT NULL,
    old_value  TEXT,
    new_value  TEXT NOT NULL,
    who        TEXT,
    at_ms      INTEGER NOT NULL
);
"#,
    r#"
-- Version 2: finishes are numbered per study, so readers can fetch only what is new.
ALTER TABLE trials ADD COLUMN finish_seq INTEGER;
UPDATE trials SET finish_seq = r.seq
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY study_id ORDER BY finished_ms, id) AS seq
      FROM trials WHERE state IN ('complete', 'pruned', 'failed')) AS r
WHERE trials.id = r.id;
CREATE INDEX trials_by_finish ON trials (study_id, finish_seq);
"#,
    r#"
-- Version 3: study attributes that samplers share across workers (zoom rounds' boxes).
CREATE TABLE study_attrs (
    study_id  INTEGER NOT NULL REFERENCES studies(id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (study_id, key)
) WITHOUT ROWID;
"#,
    r#"
-- Version 4: retries of lost trials are counted, so they stop at the study's limit.
ALTER TABLE trials ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Version 5: a retry replaces its lost trial in the study's limit; this counts them quickly.
CREATE INDEX trials_retried ON trials (study_id) WHERE attempt > 0;
"#,
    r#"
-- Version 6: the last lines each trial's program printed.
CREATE TABLE trial_logs (
    trial_id  INTEGER PRIMARY KEY REFERENCES trials(id),
    text      TEXT NOT NULL
);
"#,
    r#"
-- Version 7: user attributes of studies and trials (JSON values; a later write replaces).
CREATE TABLE study_user_attrs (
    study_id  INTEGER NOT NULL REFERENCES studies(id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (study_id, key)
) WITHOUT ROWID;
CREATE TABLE trial_user_attrs (
    trial_id  INTEGER NOT NULL REFERENCES trials(id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (trial_id, key)
) WITHOUT ROWID;
"#,
    r#"
-- Version 8: parameter changes of running trials (panda mode): `at_ms` is when it was asked,
-- `step` and `applied_ms` when the trial applied it.
ALTER TABLE param_changes ADD COLUMN note TEXT;
ALTER TABLE param_changes ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE param_changes ADD COLUMN applied_ms INTEGER;
CREATE INDEX param_changes_by_trial ON param_changes (trial_id, id);
"#,
    r#"
-- Version 9: pause, resume and stop asked of running trials, and when each was done.
CREATE TABLE trial_controls (
    id          INTEGER PRIMARY KEY,
    trial_id    INTEGER NOT NULL REFERENCES trials(id),
    action      TEXT NOT NULL,
    who         TEXT NOT NULL,
    note        TEXT,
    asked_ms    INTEGER NOT NULL,
    applied_ms  INTEGER,
    step        INTEGER
);
CREATE INDEX trial_controls_by_trial ON trial_controls (trial_id, id);
"#,
    r#"
-- Version 10: every value a trial reports besides its objective: one row per step, a JSON
-- object of name to value ("NaN" for NaN), so a report with five metrics is one more row.
CREATE TABLE trial_metrics (
    trial_id  INTEGER NOT NULL REFERENCES trials(id),
    step      INTEGER NOT NULL,
    metrics   TEXT NOT NULL,
    PRIMARY KEY (trial_id, step)
) WITHOUT ROWID;
"#,
    r#"
-- Version 11: metrics reported with the objective ride in the objective's own row (one insert
-- per report, not two); trial_metrics keeps those reported alone.
ALTER TABLE trial_values ADD COLUMN metrics TEXT;
"#,
    r#"
-- Version 12: the study's constraints evaluated for each complete trial (a JSON array, at most
-- zero where one holds), and whether one is broken, so summaries skip infeasible trials; and
-- every objective's value of a study with several (a JSON array).
ALTER TABLE trials ADD COLUMN constraints TEXT;
ALTER TABLE trials ADD COLUMN infeasible INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN objective_values TEXT;
"#,
];

/// Storage in one SQLite file. Cheap to share between threads; several processes may open the
/// same file (writers wait for each other up to a busy timeout).
pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

fn json_err(e: serde_json::Error) -> StorageError {
    StorageError::Backend(format!("corrupt JSON in the database: {e}"))
}

impl SqliteStorage {
    /// Opens (creating if needed) the file at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                return Err(StorageError::Backend(format!(
                    "directory {} does not exist; create it or choose another path",
                    dir.display()
                )));
            }
        }
        let conn = Connection::open(path)
            .map_err(|e| StorageError::Backend(format!("{}: {e}", path.display())))?;
        Self::setup(conn)
    }

    /// Opens an existing file for reading only: nothing is written, not even a WAL checkpoint,
    /// so listing verbs and the dashboard work on a read-only or full disk. Where SQLite cannot
    /// create the shared-memory file beside a WAL database (a read-only directory), the file is
    /// read as immutable. A file whose schema is older than this build's is refused as
    /// [`StorageError::Incompatible`] (a writing open migrates it).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(StorageError::Backend(format!(
                "{}: no database there; check --storage, or run a study first (`caviar run STUDY.toml`)",
                path.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let plain = Connection::open_with_flags(path, flags)
            .map_err(|e| StorageError::Backend(format!("{}: {e}", path.display())))
            .and_then(|conn| Self::check_read_only(conn, path));
        match plain {
            Err(StorageError::Backend(msg)) if msg.contains("unable to open") => {
                let uri = format!("file:{}?immutable=1", uri_path(path));
                let conn = Connection::open_with_flags(&uri, flags)
                    .map_err(|e| StorageError::Backend(format!("{}: {e}", path.display())))?;
                Self::check_read_only(conn, path)
            }
            other => other,
        }
    }

    fn check_read_only(conn: Connection, path: &Path) -> Result<Self, StorageError> {
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(backend)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    StorageError::Incompatible("the file is not a SQLite database".into())
                }
                other => StorageError::Backend(format!("{}: {other}", path.display())),
            })?;
        if version != SCHEMA_VERSION {
            let relation = if version > SCHEMA_VERSION {
                "newer than this caviar understands; upgrade caviar"
            } else {
                "older than this caviar's; open it once with a writing command (caviar run) to upgrade it"
            };
            return Err(StorageError::Incompatible(format!(
                "the database has schema version {version}, {relation} (this caviar: {SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(backend)?;
        Ok(SqliteStorage {
            conn: Mutex::new(conn),
        })
    }

    /// A private database in memory (for tests).
    pub fn open_in_memory() -> Result<Self, StorageError> {
        Self::setup(Connection::open_in_memory().map_err(backend)?)
    }

    fn setup(mut conn: Connection) -> Result<Self, StorageError> {
        // Every statement of a trial's life stays prepared (rusqlite keeps 16 by default, fewer
        // than a run uses, and re-preparing costs more than the write).
        conn.set_prepared_statement_cache_capacity(64);
        // Two processes opening a new file at once can find it locked while the other switches
        // it to WAL or creates the schema, before the busy timeout applies: retry for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match Self::prepare(&mut conn) {
                Err(StorageError::Backend(msg))
                    if (msg.contains("locked") || msg.contains("busy"))
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    return Ok(SqliteStorage {
                        conn: Mutex::new(conn),
                    })
                }
            }
        }
    }

    fn prepare(conn: &mut Connection) -> Result<(), StorageError> {
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(backend)?;
        // WAL lets readers (dashboards, `caviar trials`) run while a study writes; NORMAL sync
        // is crash-safe in WAL mode (a power cut may lose the last commits, never corrupt).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    StorageError::Incompatible("the file is not a SQLite database".into())
                }
                other => backend(other),
            })?;
        let _ = mode; // "memory" for in-memory databases
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(backend)?;
        migrate(conn)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // Every write is a transaction, so a panic elsewhere cannot leave half a change behind.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `path` as the path part of a SQLite `file:` URI: absolute, with `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for byte in absolute.as_os_str().as_encoded_bytes() {
        match byte {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{byte:02X}")),
            b if b.is_ascii() => out.push(*b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if version > SCHEMA_VERSION {
        return Err(StorageError::Incompatible(format!(
            "the database has schema version {version}, newer than this caviar understands ({SCHEMA_VERSION}); upgrade caviar"
        )));
    }
    if version == 0 {
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if tables > 0 {
            return Err(StorageError::Incompatible(
                "the file holds other tables and is not a caviar database; choose another path"
                    .into(),
            ));
        }
    }
    if version == SCHEMA_VERSION {
        // Nothing to change: write nothing, so a full disk can still be opened and read.
        return tx.commit().map_err(backend);
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .map_err(|e| StorageError::Backend(format!("migration to version {}: {e}", i + 1)))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

/// Writes metric points of a trial at `step` (inside the caller's transaction), merged into
/// what that step already holds.
fn insert_metrics(
    tx: &rusqlite::Transaction<'_>,
    trial: TrialId,
    step: u64,
    metrics: &[(String, f64)],
) -> Result<(), StorageError> {
    if metrics.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO trial_metrics (trial_id, step, metrics) VALUES (?1, ?2, ?3)
         ON CONFLICT (trial_id, step) DO UPDATE SET metrics = json_patch(metrics, excluded.metrics)",
    )
    .and_then(|mut s| s.execute(params![trial.0, step as i64, metrics_json(metrics)]))
    .map_err(backend)?;
    Ok(())
}

/// Refuses a trial that is missing or not running (inside the caller's transaction).
fn require_running(tx: &rusqlite::Transaction<'_>, trial: TrialId) -> Result<(), StorageError> {
    let running: bool = tx
        .query_row(
            "SELECT state = 'running' FROM trials WHERE id = ?1",
            [trial.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .ok_or(StorageError::NoSuchTrial(trial.0))?;
    if running {
        Ok(())
    } else {
        Err(not_running(tx, trial))
    }
}

fn parse_state(text: &str) -> Result<TrialState, StorageError> {
    TrialState::parse(text)
        .ok_or_else(|| StorageError::Backend(format!("unknown trial state `{text}` in database")))
}

fn study_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StudyRecord> {
    let direction: String = row.get(2)?;
    let spec: Option<String> = row.get(4)?;
    Ok(StudyRecord {
        id: StudyId(row.get(0)?),
        name: row.get(1)?,
        direction: Direction::parse(&direction).unwrap_or_default(),
        metric: row.get(3)?,
        spec: spec.and_then(|s| serde_json::from_str(&s).ok()),
        created_ms: row.get(5)?,
        parent: row.get(6)?,
    })
}

/// Columns of `studies s` (joined with its parent `p`) that `study_from_row` reads.
const STUDY_SELECT: &str =
    "SELECT s.id, s.name, s.direction, s.metric, s.spec, s.created_ms, p.name
     FROM studies s LEFT JOIN studies p ON p.id = s.parent_id";

/// The number the study's next trial gets; fails if there is no such study. Call it inside the
/// write transaction that inserts the trial, so the number stays unique.
fn next_number(conn: &Connection, study: StudyId) -> Result<i64, StorageError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT id FROM studies WHERE id = ?1")
        .and_then(|mut s| s.query_row([study.0], |r| r.get(0)).optional())
        .map_err(backend)?;
    if exists.is_none() {
        return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
    }
    conn.prepare_cached("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1")
        .and_then(|mut s| s.query_row([study.0], |r| r.get(0)))
        .map_err(backend)
}

/// Explains why a conditional change touched no row.
fn not_running(conn: &Connection, trial: TrialId) -> StorageError {
    let found = conn
        .query_row(
            "SELECT number, state FROM trials WHERE id = ?1",
            [trial.0],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional();
    match found {
        Ok(Some((number, state))) => match parse_state(&state) {
            Ok(state) => StorageError::NotRunning {
                number: number as u64,
                state,
            },
            Err(e) => e,
        },
        Ok(None) => StorageError::NoSuchTrial(trial.0),
        Err(e) => backend(e),
    }
}

/// Adds the `(trial_id, step, metrics)` rows of a metrics query on `study` to `out`.
fn metric_rows(
    stmt: &mut rusqlite::Statement<'_>,
    study: StudyId,
    mut out: caviar_core::storage::TrialMetrics,
) -> Result<caviar_core::storage::TrialMetrics, StorageError> {
    let mut rows = stmt.query([study.0]).map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let trial: i64 = r.get(0).map_err(backend)?;
        let step: i64 = r.get(1).map_err(backend)?;
        let text: String = r.get(2).map_err(backend)?;
        add_metrics_row(&mut out, TrialId(trial), step as u64, &text)?;
    }
    Ok(out)
}

impl Storage for SqliteStorage {
    fn create_study(&self, new: &NewStudy) -> Result<StudyRecord, StorageError> {
        let conn = self.conn();
        let spec = new
            .spec
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let created = now_ms();
        let parent_id: Option<i64> = match &new.parent {
            None => None,
            Some(parent) => Some(
                conn.query_row("SELECT id FROM studies WHERE name = ?1", [parent], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StorageError::NoSuchStudy(parent.clone()))?,
            ),
        };
        let result = conn.execute(
            "INSERT INTO studies (name, direction, metric, spec, parent_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![new.name, new.direction.as_str(), new.metric, spec, parent_id, created],
        );
        match result {
            Ok(_) => Ok(StudyRecord {
                id: StudyId(conn.last_insert_rowid()),
                name: new.name.clone(),
                direction: new.direction,
                metric: new.metric.clone(),
                spec: new.spec.clone(),
                parent: new.parent.clone(),
                created_ms: created,
            }),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StorageError::StudyExists(new.name.clone()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    fn study(&self, name: &str) -> Result<Option<StudyRecord>, StorageError> {
        let conn = self.conn();
        let sql = format!("{STUDY_SELECT} WHERE s.name = ?1");
        conn.query_row(&sql, [name], study_from_row)
            .optional()
            .map_err(backend)
    }

    fn studies(&self) -> Result<Vec<StudySummary>, StorageError> {
        let conn = self.conn();
        let sql = format!("{STUDY_SELECT} ORDER BY s.created_ms, s.id");
        let mut stmt = conn.prepare(&sql).map_err(backend)?;
        let studies: Vec<StudyRecord> = stmt
            .query_map([], study_from_row)
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let mut stats = conn
            .prepare(
                "SELECT state, count(*), min(CASE WHEN infeasible = 0 THEN value END),
                        max(CASE WHEN infeasible = 0 THEN value END)
                 FROM trials WHERE study_id = ?1 GROUP BY state",
            )
            .map_err(backend)?;
        let mut out = Vec::with_capacity(studies.len());
        for study in studies {
            let mut counts = TrialCounts::default();
            let mut best_value = None;
            let rows = stats
                .query_map([study.id.0], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<f64>>(2)?,
                        r.get::<_, Option<f64>>(3)?,
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (state, n, min, max) = row.map_err(backend)?;
                let state = parse_state(&state)?;
                for _ in 0..n {
                    counts.add(state);
                }
                if state == TrialState::Complete {
                    best_value = match study.direction {
                        Direction::Minimize => min,
                        Direction::Maximize => max,
                    };
                }
            }
            out.push(StudySummary {
                study,
                counts,
                best_value,
            });
        }
        Ok(out)
    }

    fn create_trial(
        &self,
        study: StudyId,
        worker: &str,
        limit: Option<u64>,
    ) -> Result<Option<NewTrial>, StorageError> {
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock first, so the number read below stays ours.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let next = next_number(&tx, study)?;
        let now = now_ms();
        let waiting: Option<(i64, i64)> = tx
            .query_row(
                // The state index finds the few waiting rows; left to itself the planner walks
                // the study's whole number index to satisfy ORDER BY (a scan per trial).
                "SELECT id, number FROM trials INDEXED BY trials_by_state
                 WHERE study_id = ?1 AND state = 'waiting' ORDER BY number LIMIT 1",
                [study.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        if let Some((id, number)) = waiting {
            tx.execute(
                "UPDATE trials SET state = 'running', worker = ?2, heartbeat_ms = ?3, started_ms = ?3
                 WHERE id = ?1",
                params![id, worker, now],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            return Ok(Some(NewTrial {
                id: TrialId(id),
                number: number as u64,
                from_queue: true,
            }));
        }
        let number = next;
        if let Some(limit) = limit {
            let retried: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM trials INDEXED BY trials_retried
                     WHERE study_id = ?1 AND attempt > 0",
                )
                .and_then(|mut s| s.query_row([study.0], |r| r.get(0)))
                .map_err(backend)?;
            if (number - retried) as u64 >= limit {
                return Ok(None);
            }
        }
        tx.prepare_cached(
            "INSERT INTO trials (study_id, number, state, worker, heartbeat_ms, started_ms) VALUES (?1, ?2, 'running', ?3, ?4, ?4)",
        )
        .and_then(|mut s| s.execute(params![study.0, number, worker, now]))
        .map_err(backend)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(backend)?;
        Ok(Some(NewTrial {
            id: TrialId(id),
            number: number as u64,
            from_queue: false,
        }))
    }

    fn enqueue_trial_with_attrs(
        &self,
        study: StudyId,
        params: &[caviar_core::storage::QueuedParam],
        attempt: u32,
        attrs: &[(String, serde_json::Value)],
    ) -> Result<NewTrial, StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let next = next_number(&tx, study)?;
        let number = next;
        tx.execute(
            "INSERT INTO trials (study_id, number, state, attempt) VALUES (?1, ?2, 'waiting', ?3)",
            params![study.0, number, attempt],
        )
        .map_err(backend)?;
        let id = tx.last_insert_rowid();
        for (name, dist, value) in params {
            tx.execute(
                "INSERT INTO trial_params (trial_id, name, value, distribution) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    name,
                    serde_json::to_string(value).map_err(json_err)?,
                    serde_json::to_string(dist).map_err(json_err)?
                ],
            )
            .map_err(backend)?;
        }
        for (key, value) in attrs {
            tx.execute(
                "INSERT INTO trial_user_attrs (trial_id, key, value) VALUES (?1, ?2, ?3)",
                params![id, key, serde_json::to_string(value).map_err(json_err)?],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(NewTrial {
            id: TrialId(id),
            number: number as u64,
            from_queue: false,
        })
    }

    fn replace_param(
        &self,
        trial: TrialId,
        name: &str,
        dist: &Distribution,
        value: &ParamValue,
    ) -> Result<(), StorageError> {
        let value_json = serde_json::to_string(value).map_err(json_err)?;
        let dist_json = serde_json::to_string(dist).map_err(json_err)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE trial_params SET value = ?3, distribution = ?4
                 WHERE trial_id = ?1 AND name = ?2 AND EXISTS
                   (SELECT 1 FROM trials WHERE id = ?1 AND state = 'running')",
                params![trial.0, name, value_json, dist_json],
            )
            .map_err(backend)?;
        if changed == 1 {
            return tx.commit().map_err(backend);
        }
        Err(not_running(&tx, trial))
    }

    fn set_param(
        &self,
        trial: TrialId,
        name: &str,
        dist: &Distribution,
        value: &ParamValue,
    ) -> Result<(), StorageError> {
        let value_json = serde_json::to_string(value).map_err(json_err)?;
        let dist_json = serde_json::to_string(dist).map_err(json_err)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO trial_params (trial_id, name, value, distribution)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS
                   (SELECT 1 FROM trials WHERE id = ?1 AND state = 'running')",
            )
            .and_then(|mut s| s.execute(params![trial.0, name, value_json, dist_json]));
        match inserted {
            Ok(1) => tx.commit().map_err(backend),
            Ok(_) => Err(not_running(&tx, trial)),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StorageError::ParamExists(name.into()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    fn set_params(
        &self,
        trial: TrialId,
        params: &[(String, Distribution, ParamValue)],
    ) -> Result<(), StorageError> {
        if params.is_empty() {
            return Ok(());
        }
        let rows = params
            .iter()
            .map(|(name, dist, value)| {
                Ok((
                    name,
                    serde_json::to_string(value).map_err(json_err)?,
                    serde_json::to_string(dist).map_err(json_err)?,
                ))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let running = tx
            .prepare_cached("SELECT 1 FROM trials WHERE id = ?1 AND state = 'running'")
            .and_then(|mut s| s.query_row([trial.0], |_| Ok(())).optional())
            .map_err(backend)?
            .is_some();
        if !running {
            return Err(not_running(&tx, trial));
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO trial_params (trial_id, name, value, distribution)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            for (name, value_json, dist_json) in &rows {
                match insert.execute(params![trial.0, name, value_json, dist_json]) {
                    Ok(_) => {}
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        return Err(StorageError::ParamExists(name.to_string()));
                    }
                    Err(e) => return Err(backend(e)),
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn report(&self, trial: TrialId, step: u64, value: f64) -> Result<(), StorageError> {
        self.report_all(trial, step, value, &[])
    }

    fn report_all(
        &self,
        trial: TrialId,
        step: u64,
        value: f64,
        metrics: &[(String, f64)],
    ) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let alive = tx
            .prepare_cached(
                "UPDATE trials SET heartbeat_ms = ?2 WHERE id = ?1 AND state = 'running'",
            )
            .and_then(|mut s| s.execute(params![trial.0, now_ms()]))
            .map_err(backend)?;
        if alive != 1 {
            return Err(not_running(&tx, trial));
        }
        // SQLite stores NaN as NULL; it reads back as NaN.
        let stored = if value.is_nan() { None } else { Some(value) };
        let metrics = (!metrics.is_empty()).then(|| metrics_json(metrics));
        tx.prepare_cached(
            "INSERT INTO trial_values (trial_id, step, value, metrics) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (trial_id, step) DO UPDATE SET value = excluded.value,
                 metrics = CASE WHEN excluded.metrics IS NULL THEN metrics
                                WHEN metrics IS NULL THEN excluded.metrics
                                ELSE json_patch(metrics, excluded.metrics) END",
        )
        .and_then(|mut s| s.execute(params![trial.0, step as i64, stored, metrics]))
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn report_metrics(
        &self,
        trial: TrialId,
        step: u64,
        metrics: &[(String, f64)],
    ) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        require_running(&tx, trial)?;
        insert_metrics(&tx, trial, step, metrics)?;
        tx.commit().map_err(backend)
    }

    fn trial_metrics_of(
        &self,
        study: StudyId,
        trials: &[TrialId],
    ) -> Result<caviar_core::storage::TrialMetrics, StorageError> {
        if trials.is_empty() {
            return Ok(Default::default());
        }
        // By the trials' own rows (their primary-key index), not a scan of the study's.
        let ids = trials
            .iter()
            .map(|t| t.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT trial_id, step, metrics FROM (
                     SELECT v.trial_id, v.step, v.metrics FROM trial_values v
                     JOIN trials t ON t.id = v.trial_id
                     WHERE t.study_id = ?1 AND v.trial_id IN ({ids}) AND v.metrics IS NOT NULL
                     UNION ALL
                     SELECT m.trial_id, m.step, m.metrics FROM trial_metrics m
                     JOIN trials t ON t.id = m.trial_id
                     WHERE t.study_id = ?1 AND m.trial_id IN ({ids}))
                 ORDER BY trial_id, step"
            ))
            .map_err(backend)?;
        metric_rows(&mut stmt, study, Default::default())
    }

    fn trial_metrics(
        &self,
        study: StudyId,
    ) -> Result<caviar_core::storage::TrialMetrics, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT trial_id, step, metrics FROM (
                     SELECT v.trial_id, v.step, v.metrics FROM trial_values v
                     JOIN trials t ON t.id = v.trial_id
                     WHERE t.study_id = ?1 AND v.metrics IS NOT NULL
                     UNION ALL
                     SELECT m.trial_id, m.step, m.metrics FROM trial_metrics m
                     JOIN trials t ON t.id = m.trial_id WHERE t.study_id = ?1)
                 ORDER BY trial_id, step",
            )
            .map_err(backend)?;
        metric_rows(&mut stmt, study, caviar_core::storage::TrialMetrics::new())
    }

    fn heartbeat(&self, trial: TrialId) -> Result<(), StorageError> {
        let conn = self.conn();
        let n = conn
            .prepare_cached(
                "UPDATE trials SET heartbeat_ms = ?2 WHERE id = ?1 AND state = 'running'",
            )
            .and_then(|mut s| s.execute(params![trial.0, now_ms()]))
            .map_err(backend)?;
        if n == 1 {
            Ok(())
        } else {
            Err(not_running(&conn, trial))
        }
    }

    fn set_constraints(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError> {
        let conn = self.conn();
        let text = serde_json::to_string(values).map_err(json_err)?;
        let infeasible = !caviar_core::constraint::is_feasible(values);
        let n = conn
            .prepare_cached(
                "UPDATE trials SET constraints = ?2, infeasible = ?3 WHERE id = ?1 AND state = 'running'",
            )
            .and_then(|mut s| s.execute(params![trial.0, text, infeasible as i64]))
            .map_err(backend)?;
        if n == 1 {
            Ok(())
        } else {
            Err(not_running(&conn, trial))
        }
    }

    fn set_values(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError> {
        let conn = self.conn();
        let text = serde_json::to_string(values).map_err(json_err)?;
        let n = conn
            .prepare_cached(
                "UPDATE trials SET objective_values = ?2 WHERE id = ?1 AND state = 'running'",
            )
            .and_then(|mut s| s.execute(params![trial.0, text]))
            .map_err(backend)?;
        if n == 1 {
            Ok(())
        } else {
            Err(not_running(&conn, trial))
        }
    }

    fn finish_trial(
        &self,
        trial: TrialId,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> Result<(), StorageError> {
        let conn = self.conn();
        let value = value.filter(|v| !v.is_nan());
        let n = conn
            .prepare_cached(
                "UPDATE trials SET state = ?2, value = ?3, error = ?4, finished_ms = ?5,
                     finish_seq = (SELECT COALESCE(MAX(f.finish_seq), 0) + 1 FROM trials f
                                   WHERE f.study_id = trials.study_id)
                 WHERE id = ?1 AND state = 'running'",
            )
            .and_then(|mut s| s.execute(params![trial.0, state.as_str(), value, error, now_ms()]))
            .map_err(backend)?;
        if n == 1 {
            Ok(())
        } else {
            Err(not_running(&conn, trial))
        }
    }

    fn trial(&self, trial: TrialId) -> Result<FrozenTrial, StorageError> {
        let conn = self.conn();
        load_trials(&conn, "t.id = ?1", &[trial.0])?
            .pop()
            .ok_or(StorageError::NoSuchTrial(trial.0))
    }

    fn trials(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let conn = self.conn();
        load_trials(&conn, "t.study_id = ?1", &[study.0])
    }

    fn trials_numbered(
        &self,
        study: StudyId,
        from: u64,
        to: u64,
    ) -> Result<Vec<FrozenTrial>, StorageError> {
        let conn = self.conn();
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        load_trials(
            &conn,
            "t.study_id = ?1 AND t.number >= ?2 AND t.number < ?3",
            &[study.0, clamp(from), clamp(to)],
        )
    }

    fn trials_for_analysis(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let conn = self.conn();
        load_trials_with(
            false,
            &conn,
            "t.study_id = ?1 AND t.state = 'complete'",
            &[study.0],
        )
    }

    fn counts(&self, study: StudyId) -> Result<TrialCounts, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT state, count(*) FROM trials WHERE study_id = ?1 GROUP BY state")
            .map_err(backend)?;
        let mut counts = TrialCounts::default();
        let rows = stmt
            .query_map([study.0], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(backend)?;
        for row in rows {
            let (state, n) = row.map_err(backend)?;
            let state = parse_state(&state)?;
            for _ in 0..n {
                counts.add(state);
            }
        }
        Ok(counts)
    }

    fn finished_since(&self, study: StudyId, after: u64) -> Result<Vec<FrozenTrial>, StorageError> {
        let conn = self.conn();
        let mut trials = load_trials(
            &conn,
            "t.study_id = ?1 AND t.finish_seq > ?2",
            &[study.0, after as i64],
        )?;
        // In finish order; numbers order the load, finishes are what readers count.
        let seqs: HashMap<i64, i64> = {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, finish_seq FROM trials WHERE study_id = ?1 AND finish_seq > ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([study.0, after as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)?
        };
        trials.sort_by_key(|t| seqs.get(&t.id.0).copied().unwrap_or(i64::MAX));
        Ok(trials)
    }

    fn running_with_params(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let conn = self.conn();
        load_trials(&conn, "t.study_id = ?1 AND t.state = 'running'", &[study.0])
    }

    fn study_attr_insert(
        &self,
        study: StudyId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM studies WHERE id = ?1", [study.0], |_| Ok(()))
            .optional()
            .map_err(backend)?
            .is_some();
        if !exists {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        }
        tx.execute(
            "INSERT OR IGNORE INTO study_attrs (study_id, key, value) VALUES (?1, ?2, ?3)",
            params![study.0, key, value.to_string()],
        )
        .map_err(backend)?;
        let stored: String = tx
            .query_row(
                "SELECT value FROM study_attrs WHERE study_id = ?1 AND key = ?2",
                params![study.0, key],
                |r| r.get(0),
            )
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        serde_json::from_str(&stored).map_err(json_err)
    }

    fn study_attrs(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT key, value FROM study_attrs WHERE study_id = ?1")
            .map_err(backend)?;
        let rows = stmt
            .query_map([study.0], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(backend)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (key, text) = row.map_err(backend)?;
            out.insert(key, serde_json::from_str(&text).map_err(json_err)?);
        }
        Ok(out)
    }

    fn running_trials(&self, study: StudyId) -> Result<Vec<RunningTrial>, StorageError> {
        let conn = self.conn();
        let now = now_ms();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, number, worker, heartbeat_ms, attempt FROM trials
                 WHERE study_id = ?1 AND state = 'running' ORDER BY number",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([study.0], |r| {
                Ok(RunningTrial {
                    id: TrialId(r.get(0)?),
                    number: r.get::<_, i64>(1)? as u64,
                    worker: r.get(2)?,
                    silent_ms: now - r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    attempt: r.get::<_, i64>(4)? as u32,
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn set_trial_log(&self, trial: TrialId, text: &str) -> Result<(), StorageError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO trial_logs (trial_id, text) VALUES (?1, ?2)
             ON CONFLICT (trial_id) DO UPDATE SET text = excluded.text",
            params![trial.0, text],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                StorageError::NoSuchTrial(trial.0)
            }
            other => backend(other),
        })?;
        Ok(())
    }

    fn trial_log(&self, trial: TrialId) -> Result<Option<String>, StorageError> {
        self.conn()
            .query_row(
                "SELECT text FROM trial_logs WHERE trial_id = ?1",
                [trial.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
    }

    fn set_user_attr(
        &self,
        owner: AttrOwner,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let conn = self.conn();
        let (sql, id, missing) = match owner {
            AttrOwner::Study(s) => (
                "INSERT INTO study_user_attrs (study_id, key, value)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM studies WHERE id = ?1)
                 ON CONFLICT (study_id, key) DO UPDATE SET value = excluded.value",
                s.0,
                StorageError::NoSuchStudy(format!("id {}", s.0)),
            ),
            AttrOwner::Trial(t) => (
                "INSERT INTO trial_user_attrs (trial_id, key, value)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM trials WHERE id = ?1)
                 ON CONFLICT (trial_id, key) DO UPDATE SET value = excluded.value",
                t.0,
                StorageError::NoSuchTrial(t.0),
            ),
        };
        match conn.execute(sql, params![id, key, value.to_string()]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(missing),
            Err(e) => Err(backend(e)),
        }
    }

    fn user_attrs(
        &self,
        owner: AttrOwner,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError> {
        let conn = self.conn();
        let (sql, id) = match owner {
            AttrOwner::Study(s) => (
                "SELECT key, value FROM study_user_attrs WHERE study_id = ?1",
                s.0,
            ),
            AttrOwner::Trial(t) => (
                "SELECT key, value FROM trial_user_attrs WHERE trial_id = ?1",
                t.0,
            ),
        };
        let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(backend)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (key, value) = row.map_err(backend)?;
            out.insert(key, serde_json::from_str(&value).map_err(json_err)?);
        }
        Ok(out)
    }

    fn trial_user_attrs(&self, study: StudyId) -> Result<TrialUserAttrs, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT a.trial_id, a.key, a.value FROM trial_user_attrs a
                 JOIN trials t ON t.id = a.trial_id WHERE t.study_id = ?1",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([study.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        let mut out = TrialUserAttrs::new();
        for row in rows {
            let (trial, key, value) = row.map_err(backend)?;
            out.entry(TrialId(trial))
                .or_default()
                .insert(key, serde_json::from_str(&value).map_err(json_err)?);
        }
        Ok(out)
    }

    fn ask_param_change(
        &self,
        trial: TrialId,
        change: &NewParamChange,
    ) -> Result<i64, StorageError> {
        let value = serde_json::to_string(&change.value).map_err(json_err)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        require_running(&tx, trial)?;
        let has: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM trial_params WHERE trial_id = ?1 AND name = ?2)",
                params![trial.0, change.name],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !has {
            return Err(StorageError::Backend(format!(
                "the trial has no parameter `{}`",
                change.name
            )));
        }
        tx.execute(
            "INSERT INTO param_changes (trial_id, name, new_value, who, at_ms, note, forced)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                trial.0,
                change.name,
                value,
                change.who,
                now_ms(),
                change.note,
                change.forced
            ],
        )
        .map_err(backend)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(backend)?;
        Ok(id)
    }

    fn pending_param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError> {
        read_changes(&self.conn(), ChangesOf::Trial(trial, true))
            .map(|mut all| all.remove(&trial).unwrap_or_default())
    }

    fn apply_param_change(&self, trial: TrialId, id: i64, step: u64) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT name, new_value FROM param_changes
                 WHERE id = ?1 AND trial_id = ?2 AND applied_ms IS NULL",
                params![id, trial.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        let Some((name, new_value)) = found else {
            return Err(StorageError::Backend(format!(
                "no pending change {id} of trial id {}",
                trial.0
            )));
        };
        let old: Option<String> = tx
            .query_row(
                "SELECT value FROM trial_params WHERE trial_id = ?1 AND name = ?2",
                params![trial.0, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE trial_params SET value = ?3 WHERE trial_id = ?1 AND name = ?2
                 AND EXISTS (SELECT 1 FROM trials WHERE id = ?1 AND state = 'running')",
                params![trial.0, name, new_value],
            )
            .map_err(backend)?;
        if changed != 1 {
            return Err(not_running(&tx, trial));
        }
        tx.execute(
            "UPDATE param_changes SET old_value = ?2, step = ?3, applied_ms = ?4 WHERE id = ?1",
            params![id, old, step as i64, now_ms()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError> {
        read_changes(&self.conn(), ChangesOf::Trial(trial, false))
            .map(|mut all| all.remove(&trial).unwrap_or_default())
    }

    fn study_param_changes(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError> {
        read_changes(&self.conn(), ChangesOf::Study(study))
    }

    fn ask_control(&self, trial: TrialId, control: &NewControl) -> Result<i64, StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        require_running(&tx, trial)?;
        tx.execute(
            "INSERT INTO trial_controls (trial_id, action, who, note, asked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                trial.0,
                control.action.as_str(),
                control.who,
                control.note,
                now_ms()
            ],
        )
        .map_err(backend)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(backend)?;
        Ok(id)
    }

    fn controls(&self, trial: TrialId) -> Result<Vec<ControlRecord>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, action, who, note, asked_ms, applied_ms, step FROM trial_controls
                 WHERE trial_id = ?1 ORDER BY id",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([trial.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, action, who, note, asked_ms, applied_ms, step) = row.map_err(backend)?;
            let action = ControlAction::parse(&action).ok_or_else(|| {
                StorageError::Backend(format!("unknown control `{action}` in database"))
            })?;
            out.push(ControlRecord {
                id,
                action,
                who,
                note,
                asked_ms,
                applied_ms,
                applied_step: step.map(|s| s as u64),
            });
        }
        Ok(out)
    }

    fn apply_control(
        &self,
        trial: TrialId,
        id: i64,
        step: Option<u64>,
    ) -> Result<(), StorageError> {
        let conn = self.conn();
        let found = conn
            .execute(
                "UPDATE trial_controls SET applied_ms = coalesce(applied_ms, ?3),
                 step = CASE WHEN applied_ms IS NULL THEN ?4 ELSE step END
                 WHERE id = ?1 AND trial_id = ?2",
                params![id, trial.0, now_ms(), step.map(|s| s as i64)],
            )
            .map_err(backend)?;
        if found != 1 {
            return Err(StorageError::Backend(format!(
                "no control request {id} of trial id {}",
                trial.0
            )));
        }
        Ok(())
    }

    fn trial_attempts(&self, study: StudyId) -> Result<BTreeMap<TrialId, u32>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id, attempt FROM trials WHERE study_id = ?1 AND attempt > 0")
            .map_err(backend)?;
        let rows = stmt
            .query_map([study.0], |r| {
                Ok((TrialId(r.get(0)?), r.get::<_, i64>(1)? as u32))
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn import_study(
        &self,
        doc: &caviar_core::document::StudyDocument,
    ) -> Result<StudyRecord, StorageError> {
        let json = |v: &serde_json::Value| serde_json::to_string(v).map_err(json_err);
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let taken: Option<i64> = tx
            .query_row("SELECT id FROM studies WHERE name = ?1", [&doc.name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        if taken.is_some() {
            return Err(StorageError::StudyExists(doc.name.clone()));
        }
        let parent_id: Option<i64> = match &doc.parent {
            None => None,
            Some(parent) => Some(
                tx.query_row("SELECT id FROM studies WHERE name = ?1", [parent], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StorageError::NoSuchStudy(parent.clone()))?,
            ),
        };
        let spec = doc.spec.as_ref().map(json).transpose()?;
        tx.execute(
            "INSERT INTO studies (name, direction, metric, spec, parent_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![doc.name, doc.direction.as_str(), doc.metric, spec, parent_id, doc.created_ms],
        )
        .map_err(backend)?;
        let study = tx.last_insert_rowid();
        for (key, value) in &doc.attrs {
            tx.execute(
                "INSERT INTO study_attrs (study_id, key, value) VALUES (?1, ?2, ?3)",
                params![study, key, json(value)?],
            )
            .map_err(backend)?;
        }
        for (key, value) in &doc.user_attrs {
            tx.execute(
                "INSERT INTO study_user_attrs (study_id, key, value) VALUES (?1, ?2, ?3)",
                params![study, key, json(value)?],
            )
            .map_err(backend)?;
        }
        let mut finish_seq = vec![None; doc.trials.len()];
        for (seq, i) in doc.finish_order().into_iter().enumerate() {
            finish_seq[i] = Some(seq as i64 + 1);
        }
        for (t, seq) in doc.trials.iter().zip(finish_seq) {
            let constraints = constraints_text(&t.constraints)?;
            let values = constraints_text(&t.values)?;
            tx.prepare_cached(
                "INSERT INTO trials (study_id, number, state, value, error, worker, heartbeat_ms, started_ms, finished_ms, finish_seq, attempt, constraints, infeasible, objective_values)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    study,
                    t.number as i64,
                    t.state.as_str(),
                    t.value,
                    t.error,
                    t.worker,
                    t.finished_ms.or(t.started_ms),
                    t.started_ms,
                    t.finished_ms,
                    seq,
                    t.attempt as i64,
                    constraints,
                    !caviar_core::constraint::is_feasible(&t.constraints) as i64,
                    values
                ])
            })
            .map_err(backend)?;
            let trial = tx.last_insert_rowid();
            for (name, value) in &t.params {
                let dist = t.distributions.get(name).ok_or_else(|| {
                    StorageError::Backend(format!(
                        "trial {}: parameter `{name}` has no distribution",
                        t.number
                    ))
                })?;
                tx.prepare_cached(
                    "INSERT INTO trial_params (trial_id, name, value, distribution) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        trial,
                        name,
                        serde_json::to_string(value).unwrap_or_default(),
                        serde_json::to_string(dist).unwrap_or_default()
                    ])
                })
                .map_err(backend)?;
            }
            for &(step, value) in &t.intermediate {
                tx.prepare_cached(
                    "INSERT INTO trial_values (trial_id, step, value) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![trial, step as i64, value]))
                .map_err(backend)?;
            }
            if let Some(log) = &t.log {
                tx.execute(
                    "INSERT INTO trial_logs (trial_id, text) VALUES (?1, ?2)",
                    params![trial, log],
                )
                .map_err(backend)?;
            }
            for (step, metrics) in caviar_core::storage::metrics_by_step(&t.metrics) {
                insert_metrics(&tx, TrialId(trial), step, &metrics)?;
            }
            for (key, value) in &t.user_attrs {
                tx.execute(
                    "INSERT INTO trial_user_attrs (trial_id, key, value) VALUES (?1, ?2, ?3)",
                    params![trial, key, json(value)?],
                )
                .map_err(backend)?;
            }
            for c in &t.param_changes {
                let old = c
                    .old
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(json_err)?;
                tx.execute(
                    "INSERT INTO param_changes (trial_id, step, name, old_value, new_value, who, at_ms, note, forced, applied_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        trial,
                        c.applied_step.map(|s| s as i64),
                        c.name,
                        old,
                        serde_json::to_string(&c.new).map_err(json_err)?,
                        c.who,
                        c.asked_ms,
                        c.note,
                        c.forced,
                        c.applied_ms
                    ],
                )
                .map_err(backend)?;
            }
            for c in &t.controls {
                tx.execute(
                    "INSERT INTO trial_controls (trial_id, action, who, note, asked_ms, applied_ms, step)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        trial,
                        c.action.as_str(),
                        c.who,
                        c.note,
                        c.asked_ms,
                        c.applied_ms,
                        c.applied_step.map(|s| s as i64)
                    ],
                )
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(StudyRecord {
            id: StudyId(study),
            name: doc.name.clone(),
            direction: doc.direction,
            metric: doc.metric.clone(),
            spec: doc.spec.clone(),
            parent: doc.parent.clone(),
            created_ms: doc.created_ms,
        })
    }

    fn rename_study(
        &self,
        study: StudyId,
        name: &str,
        spec: Option<&serde_json::Value>,
    ) -> Result<(), StorageError> {
        let spec = spec
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let conn = self.conn();
        match conn.execute(
            "UPDATE studies SET name = ?2, spec = COALESCE(?3, spec) WHERE id = ?1",
            rusqlite::params![study.0, name, spec],
        ) {
            Ok(0) => Err(StorageError::NoSuchStudy(format!("id {}", study.0))),
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StorageError::StudyExists(name.to_string()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    fn delete_study(&self, study: StudyId) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let name: String = tx
            .query_row("SELECT name FROM studies WHERE id = ?1", [study.0], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StorageError::NoSuchStudy(format!("id {}", study.0)))?;
        let child: Option<String> = tx
            .query_row(
                "SELECT name FROM studies WHERE parent_id = ?1 LIMIT 1",
                [study.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if let Some(child) = child {
            return Err(StorageError::Backend(format!(
                "study `{name}` is the parent of `{child}`; delete that one first"
            )));
        }
        let of_trials = "IN (SELECT id FROM trials WHERE study_id = ?1)";
        for table in [
            "trial_params",
            "trial_values",
            "param_changes",
            "trial_controls",
            "trial_logs",
            "trial_user_attrs",
            "trial_metrics",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE trial_id {of_trials}"),
                [study.0],
            )
            .map_err(backend)?;
        }
        for sql in [
            "DELETE FROM trials WHERE study_id = ?1",
            "DELETE FROM study_attrs WHERE study_id = ?1",
            "DELETE FROM study_user_attrs WHERE study_id = ?1",
            "DELETE FROM studies WHERE id = ?1",
        ] {
            tx.execute(sql, [study.0]).map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

/// Whose parameter changes to read: one trial's (only those not yet applied, with `true`), or
/// a whole study's.
enum ChangesOf {
    Trial(TrialId, bool),
    Study(StudyId),
}

/// Parameter changes by trial, each trial's oldest first.
fn read_changes(
    conn: &Connection,
    of: ChangesOf,
) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError> {
    const COLUMNS: &str =
        "c.id, c.name, c.old_value, c.new_value, c.who, c.note, c.forced, c.at_ms, c.step, c.applied_ms, c.trial_id";
    let (sql, key) = match of {
        ChangesOf::Trial(t, true) => (
            format!("SELECT {COLUMNS} FROM param_changes c WHERE c.trial_id = ?1 AND c.applied_ms IS NULL ORDER BY c.id"),
            t.0,
        ),
        ChangesOf::Trial(t, false) => (
            format!("SELECT {COLUMNS} FROM param_changes c WHERE c.trial_id = ?1 ORDER BY c.id"),
            t.0,
        ),
        ChangesOf::Study(s) => (
            format!("SELECT {COLUMNS} FROM param_changes c JOIN trials t ON t.id = c.trial_id WHERE t.study_id = ?1 ORDER BY c.id"),
            s.0,
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map([key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<i64>>(9)?,
                r.get::<_, i64>(10)?,
            ))
        })
        .map_err(backend)?;
    let mut out: BTreeMap<TrialId, Vec<ParamChange>> = BTreeMap::new();
    for row in rows {
        let (id, name, old, new, who, note, forced, asked_ms, step, applied_ms, trial) =
            row.map_err(backend)?;
        out.entry(TrialId(trial)).or_default().push(ParamChange {
            id,
            name,
            old: old
                .map(|o| serde_json::from_str(&o))
                .transpose()
                .map_err(json_err)?,
            new: serde_json::from_str(&new).map_err(json_err)?,
            who: who.unwrap_or_default(),
            note,
            forced,
            asked_ms,
            applied_step: step.map(|s| s as u64),
            applied_ms,
        });
    }
    Ok(out)
}

/// Loads trials matching `filter` (on alias `t`, with parameters `?1..` bound to `keys`) with
/// their params and intermediate values, in three queries.
/// Trials matching `filter` (over `trials t`, keys bound as ?1, ?2, ...) with their parameters
/// and curves, by number.
fn load_trials(
    conn: &Connection,
    filter: &str,
    keys: &[i64],
) -> Result<Vec<FrozenTrial>, StorageError> {
    load_trials_with(true, conn, filter, keys)
}

/// The same, without the curves (`intermediate` left empty) when `curves` is false.
/// A trial's constraint (or objective) values as stored: `NULL` when it has none.
fn constraints_text(values: &[f64]) -> Result<Option<String>, StorageError> {
    if values.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(values).map(Some).map_err(json_err)
}

fn load_trials_with(
    curves: bool,
    conn: &Connection,
    filter: &str,
    keys: &[i64],
) -> Result<Vec<FrozenTrial>, StorageError> {
    let sql = format!(
        "SELECT t.id, t.number, t.state, t.value, t.error, t.worker, t.started_ms, t.finished_ms,
                t.constraints, t.objective_values
         FROM trials t WHERE {filter} ORDER BY t.number"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let mut trials = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(keys))
        .map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let id: i64 = r.get(0).map_err(backend)?;
        let state: String = r.get(2).map_err(backend)?;
        index.insert(id, trials.len());
        trials.push(FrozenTrial {
            id: TrialId(id),
            number: r.get::<_, i64>(1).map_err(backend)? as u64,
            state: parse_state(&state)?,
            params: Default::default(),
            distributions: Default::default(),
            value: r.get(3).map_err(backend)?,
            intermediate: Vec::new(),
            error: r.get(4).map_err(backend)?,
            worker: r.get(5).map_err(backend)?,
            started_ms: r.get(6).map_err(backend)?,
            finished_ms: r.get(7).map_err(backend)?,
            constraints: match r.get::<_, Option<String>>(8).map_err(backend)? {
                Some(text) => serde_json::from_str(&text).map_err(json_err)?,
                None => Vec::new(),
            },
            values: match r.get::<_, Option<String>>(9).map_err(backend)? {
                Some(text) => serde_json::from_str(&text).map_err(json_err)?,
                None => Vec::new(),
            },
        });
    }
    if trials.is_empty() {
        return Ok(trials);
    }
    let sql = format!(
        "SELECT p.trial_id, p.name, p.value, p.distribution
         FROM trial_params p JOIN trials t ON t.id = p.trial_id WHERE {filter}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(keys))
        .map_err(backend)?;
    // Trials of one study share a few distributions; parse each text once.
    let mut dist_cache: HashMap<String, Distribution> = HashMap::new();
    while let Some(r) = rows.next().map_err(backend)? {
        let id: i64 = r.get(0).map_err(backend)?;
        let name: String = r.get(1).map_err(backend)?;
        let value: String = r.get(2).map_err(backend)?;
        let dist_text: String = r.get(3).map_err(backend)?;
        let Some(&i) = index.get(&id) else { continue };
        let dist = match dist_cache.get(&dist_text) {
            Some(d) => d.clone(),
            None => {
                let d: Distribution = serde_json::from_str(&dist_text).map_err(json_err)?;
                dist_cache.insert(dist_text, d.clone());
                d
            }
        };
        let value: ParamValue = serde_json::from_str(&value).map_err(json_err)?;
        trials[i].params.insert(name.clone(), value);
        trials[i].distributions.insert(name, dist);
    }
    if !curves {
        return Ok(trials);
    }
    let sql = format!(
        "SELECT v.trial_id, v.step, v.value
         FROM trial_values v JOIN trials t ON t.id = v.trial_id WHERE {filter}
         ORDER BY v.trial_id, v.step"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(keys))
        .map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let id: i64 = r.get(0).map_err(backend)?;
        let step: i64 = r.get(1).map_err(backend)?;
        let value: Option<f64> = r.get(2).map_err(backend)?;
        if let Some(&i) = index.get(&id) {
            trials[i]
                .intermediate
                .push((step as u64, value.unwrap_or(f64::NAN)));
        }
    }
    Ok(trials)
}
