//! PostgreSQL storage: the SQLite schema's twin, for studies that workers on many machines share.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use caviar_core::space::{Distribution, ParamValue};
use caviar_core::storage::{
    AttrOwner, ControlAction, ControlRecord, NewControl, NewParamChange, NewStudy, NewTrial,
    ParamChange, RunningTrial, Storage, StorageError, StudyRecord, StudySummary, TrialCounts,
    TrialUserAttrs,
};
use caviar_core::trial::{now_ms, Direction, FrozenTrial, StudyId, TrialId, TrialState};
use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls, Row};

/// The schema version this build writes; a newer database is refused rather than damaged.
pub const PG_SCHEMA_VERSION: i64 = 8;

/// Changes from each version to the next, applied in order to older databases.
const MIGRATIONS: &[&str] = &[
    // Version 2: a retry replaces its lost trial in the study's limit; this counts them quickly.
    "CREATE INDEX IF NOT EXISTS trials_retried ON trials (study_id) WHERE attempt > 0",
    // Version 3: the last lines each trial's program printed.
    "CREATE TABLE IF NOT EXISTS trial_logs (
         trial_id  BIGINT PRIMARY KEY REFERENCES trials(id),
         text      TEXT NOT NULL
     )",
    // Version 4: user attributes of studies and trials (JSON values; a later write replaces).
    "CREATE TABLE IF NOT EXISTS study_user_attrs (
         study_id  BIGINT NOT NULL REFERENCES studies(id),
         key       TEXT NOT NULL,
         value     TEXT NOT NULL,
         PRIMARY KEY (study_id, key)
     );
     CREATE TABLE IF NOT EXISTS trial_user_attrs (
         trial_id  BIGINT NOT NULL REFERENCES trials(id),
         key       TEXT NOT NULL,
         value     TEXT NOT NULL,
         PRIMARY KEY (trial_id, key)
     )",
    // Version 5: parameter changes of running trials (panda mode): `at_ms` is when it was
    // asked, `step` and `applied_ms` when the trial applied it.
    "ALTER TABLE param_changes ADD COLUMN IF NOT EXISTS note TEXT;
     ALTER TABLE param_changes ADD COLUMN IF NOT EXISTS forced BOOLEAN NOT NULL DEFAULT false;
     ALTER TABLE param_changes ADD COLUMN IF NOT EXISTS applied_ms BIGINT;
     CREATE INDEX IF NOT EXISTS param_changes_by_trial ON param_changes (trial_id, id)",
    // Version 6: pause, resume and stop asked of running trials, and when each was done.
    "CREATE TABLE IF NOT EXISTS trial_controls (
         id          BIGSERIAL PRIMARY KEY,
         trial_id    BIGINT NOT NULL REFERENCES trials(id),
         action      TEXT NOT NULL,
         who         TEXT NOT NULL,
         note        TEXT,
         asked_ms    BIGINT NOT NULL,
         applied_ms  BIGINT,
         step        BIGINT
     );
     CREATE INDEX IF NOT EXISTS trial_controls_by_trial ON trial_controls (trial_id, id)",
    // Version 7: every value a trial reports besides its objective: one row per step, a JSON
    // object of name to value ("NaN" for NaN), so a report with five metrics is one more row.
    "CREATE TABLE IF NOT EXISTS trial_metrics (
         trial_id  BIGINT NOT NULL REFERENCES trials(id),
         step      BIGINT NOT NULL,
         metrics   JSONB NOT NULL,
         PRIMARY KEY (trial_id, step)
     )",
    // Version 8: the study's constraints evaluated for each complete trial (a JSON array, at
    // most zero where one holds), and whether one is broken, so summaries skip infeasible ones.
    // Also every objective's value of a study with several (a JSON array).
    "ALTER TABLE trials ADD COLUMN IF NOT EXISTS constraints TEXT;
     ALTER TABLE trials ADD COLUMN IF NOT EXISTS infeasible BOOLEAN NOT NULL DEFAULT false;
     ALTER TABLE trials ADD COLUMN IF NOT EXISTS objective_values TEXT",
];

const SCHEMA: &str = r#"
CREATE TABLE caviar_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE studies (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    direction    TEXT NOT NULL,
    metric       TEXT,
    spec         TEXT,
    parent_id    BIGINT REFERENCES studies(id),
    created_ms   BIGINT NOT NULL,
    -- Counters whose row lock serialises trial numbers and finish order per study.
    next_number  BIGINT NOT NULL DEFAULT 0,
    next_finish  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE trials (
    id            BIGSERIAL PRIMARY KEY,
    study_id      BIGINT NOT NULL REFERENCES studies(id),
    number        BIGINT NOT NULL,
    state         TEXT NOT NULL,
    value         DOUBLE PRECISION,
    error         TEXT,
    worker        TEXT,
    heartbeat_ms  BIGINT,
    started_ms    BIGINT,
    finished_ms   BIGINT,
    finish_seq    BIGINT,
    attempt       BIGINT NOT NULL DEFAULT 0,
    UNIQUE (study_id, number)
);
CREATE INDEX trials_by_state ON trials (study_id, state);
CREATE INDEX trials_by_finish ON trials (study_id, finish_seq);
CREATE INDEX trials_waiting ON trials (study_id, number) WHERE state = 'waiting';
CREATE TABLE trial_params (
    trial_id      BIGINT NOT NULL REFERENCES trials(id),
    name          TEXT NOT NULL,
    value         TEXT NOT NULL,
    distribution  TEXT NOT NULL,
    PRIMARY KEY (trial_id, name)
);
CREATE TABLE trial_values (
    trial_id  BIGINT NOT NULL REFERENCES trials(id),
    step      BIGINT NOT NULL,
    value     DOUBLE PRECISION,
    PRIMARY KEY (trial_id, step)
);
CREATE TABLE param_changes (
    id         BIGSERIAL PRIMARY KEY,
    trial_id   BIGINT NOT NULL REFERENCES trials(id),
    step       BIGINT,
    name       TEXT NOT NULL,
    old_value  TEXT,
    new_value  TEXT NOT NULL,
    who        TEXT,
    at_ms      BIGINT NOT NULL
);
CREATE TABLE study_attrs (
    study_id  BIGINT NOT NULL REFERENCES studies(id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (study_id, key)
);
"#;

/// For the frequent, cheap-to-lose writes (parameters, reports, heartbeats): commit without
/// waiting for the disk flush. A server crash may lose the last fraction of a second of them
/// (the trial then looks stale and is recovered as failed), never corrupt anything; creating and
/// finishing trials still wait for durability. SQLite's WAL with `synchronous = NORMAL` makes the
/// same trade for every write.
const LAZY_COMMIT: &str = "SET LOCAL synchronous_commit = off";

/// The server's clock in milliseconds since the Unix epoch, for heartbeats: silence is then
/// measured by one clock, whatever the workers' clocks say.
macro_rules! server_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// Idle connections kept for reuse.
const POOL_SIZE: usize = 8;

/// Storage in a PostgreSQL database (optionally in one schema of it), shared by any number of
/// threads and processes. Connections are pooled; trial numbers and finish order are serialised
/// per study by a row lock, so they stay unique and gap-free under any concurrency.
pub struct PostgresStorage {
    config: postgres::Config,
    schema: Option<String>,
    idle: Mutex<Vec<Client>>,
    /// Once open, how long to keep trying to reconnect before an operation gives up.
    reconnect_for: Duration,
    opened: AtomicBool,
}

/// How long an open storage waits for a lost database to come back (then the operation fails
/// with a clear error and the worker stops).
pub const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// SQL errors are the operation's; a broken or timed-out connection is worth another try.
fn backend(e: postgres::Error) -> StorageError {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // SQLSTATE 08: connection exceptions; 57P: the server is shutting down or restarting, or
    // an administrator ended the session.
    let code = e.code().map(|c| c.code()).unwrap_or("");
    let lost = e.is_closed() || io || code.starts_with("08") || code.starts_with("57P");
    let text = match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    if lost {
        StorageError::Unavailable(text)
    } else {
        StorageError::Backend(text)
    }
}

/// Connection settings that notice a dead network in seconds, not the kernel's minutes, unless
/// the URL sets its own.
fn client_config(url: &str) -> Result<postgres::Config, StorageError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| StorageError::Backend(format!("the PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(15));
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    Ok(config)
}

fn json_err(e: serde_json::Error) -> StorageError {
    StorageError::Backend(format!("corrupt JSON in the database: {e}"))
}

/// A pooled connection, given back when dropped (unless it broke).
struct Conn<'a> {
    client: Option<Client>,
    storage: &'a PostgresStorage,
}

impl Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                let mut idle = self.storage.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < POOL_SIZE {
                    idle.push(client);
                }
            }
        }
    }
}

/// Splits caviar's own `schema=NAME` query parameter off a PostgreSQL URL.
fn split_schema(url: &str) -> Result<(String, Option<String>), StorageError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(StorageError::Backend(format!(
                        "schema `{name}`: use letters, digits and underscores"
                    )));
                }
                schema = Some(name.to_string());
            }
            None => rest.push(pair),
        }
    }
    let config = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((config, schema))
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user@host:port/db`, with an optional `?schema=NAME` to keep
    /// caviar's tables in their own schema) and creates or checks the tables.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let (config, schema) = split_schema(url)?;
        let storage = PostgresStorage {
            config: client_config(&config)?,
            schema,
            idle: Mutex::new(Vec::new()),
            reconnect_for: RECONNECT_FOR,
            opened: AtomicBool::new(false),
        };
        storage.migrate()?;
        storage.opened.store(true, Ordering::SeqCst);
        Ok(storage)
    }

    /// A new connection. Before the storage is open a failure is reported at once (a wrong
    /// URL should not make anyone wait); after, the database may be restarting or the network
    /// down, so it retries with backoff for [`RECONNECT_FOR`].
    fn connect(&self) -> Result<Client, StorageError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        let mut attempts = 0u32;
        let mut client = loop {
            attempts += 1;
            match self.config.connect(NoTls) {
                Ok(client) => break client,
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    if !self.opened.load(Ordering::SeqCst) {
                        return Err(StorageError::Backend(format!(
                            "cannot connect: {e}{cause}; check that the server runs and the URL's user, host, port and database"
                        )));
                    }
                    if started.elapsed() + wait > self.reconnect_for {
                        return Err(StorageError::Backend(format!(
                            "lost the database: {attempts} attempts to reconnect over {:.0} s failed, the last with: {e}{cause}",
                            started.elapsed().as_secs_f64()
                        )));
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!("SET search_path TO \"{schema}\""))
                .map_err(backend)?;
        }
        Ok(client)
    }

    fn conn(&self) -> Result<Conn<'_>, StorageError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let client = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(Conn {
            client: Some(client),
            storage: self,
        })
    }

    fn migrate(&self) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        // Workers starting together: one creates the tables, the others wait and find them.
        tx.execute("SELECT pg_advisory_xact_lock(7306742209)", &[])
            .map_err(backend)?;
        if let Some(schema) = &self.schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .map_err(backend)?;
        }
        let has_meta: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = 'caviar_meta')",
                &[],
            )
            .map_err(backend)?
            .get(0);
        if !has_meta {
            let others: i64 = tx
                .query_one(
                    "SELECT count(*) FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_name IN
                       ('studies', 'trials', 'trial_params', 'trial_values')",
                    &[],
                )
                .map_err(backend)?
                .get(0);
            if others > 0 {
                return Err(StorageError::Incompatible(
                    "the schema holds tables named like caviar's but is not a caviar store; add ?schema=NAME to the URL".into(),
                ));
            }
            tx.batch_execute(SCHEMA).map_err(backend)?;
            for sql in MIGRATIONS {
                tx.batch_execute(sql).map_err(backend)?;
            }
            tx.execute(
                "INSERT INTO caviar_meta (key, value) VALUES ('schema_version', $1)",
                &[&PG_SCHEMA_VERSION.to_string()],
            )
            .map_err(backend)?;
        } else {
            let version: String = tx
                .query_one(
                    "SELECT value FROM caviar_meta WHERE key = 'schema_version'",
                    &[],
                )
                .map_err(backend)?
                .get(0);
            let version: i64 = version.parse().unwrap_or(i64::MAX);
            if version > PG_SCHEMA_VERSION {
                return Err(StorageError::Incompatible(format!(
                    "the database has schema version {version}, newer than this caviar understands ({PG_SCHEMA_VERSION}); upgrade caviar"
                )));
            }
            if version < PG_SCHEMA_VERSION {
                for (i, sql) in MIGRATIONS.iter().enumerate().skip((version - 1) as usize) {
                    tx.batch_execute(sql).map_err(|e| {
                        StorageError::Backend(format!("migration to version {}: {e}", i + 2))
                    })?;
                }
                tx.execute(
                    "UPDATE caviar_meta SET value = $1 WHERE key = 'schema_version'",
                    &[&PG_SCHEMA_VERSION.to_string()],
                )
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }
}

/// Refuses a trial that is missing or not running (inside the caller's transaction).
fn require_running(tx: &mut postgres::Transaction<'_>, trial: TrialId) -> Result<(), StorageError> {
    let state: String = tx
        .query_opt("SELECT state FROM trials WHERE id = $1", &[&trial.0])
        .map_err(backend)?
        .ok_or(StorageError::NoSuchTrial(trial.0))?
        .get(0);
    if state == "running" {
        Ok(())
    } else {
        Err(not_running(tx, trial))
    }
}

fn parse_state(s: &str) -> Result<TrialState, StorageError> {
    TrialState::parse(s).ok_or_else(|| StorageError::Backend(format!("unknown trial state `{s}`")))
}

fn parse_direction(s: &str) -> Result<Direction, StorageError> {
    Direction::parse(s).ok_or_else(|| StorageError::Backend(format!("unknown direction `{s}`")))
}

const STUDY_SELECT: &str =
    "SELECT s.id, s.name, s.direction, s.metric, s.spec, s.created_ms, p.name
     FROM studies s LEFT JOIN studies p ON p.id = s.parent_id";

fn study_from_row(r: &Row) -> Result<StudyRecord, StorageError> {
    let spec: Option<String> = r.get(4);
    Ok(StudyRecord {
        id: StudyId(r.get(0)),
        name: r.get(1),
        direction: parse_direction(&r.get::<_, String>(2))?,
        metric: r.get(3),
        spec: spec
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(json_err)?,
        parent: r.get(6),
        created_ms: r.get(5),
    })
}

/// Takes the study's next trial number. The study row stays locked until the transaction ends,
/// so numbers are handed out one at a time (and a rollback gives the number back).
fn take_number(tx: &mut impl GenericClient, study: StudyId) -> Result<i64, StorageError> {
    Ok(tx
        .query_opt(
            "UPDATE studies SET next_number = next_number + 1 WHERE id = $1
             RETURNING next_number - 1",
            &[&study.0],
        )
        .map_err(backend)?
        .ok_or_else(|| StorageError::NoSuchStudy(format!("id {}", study.0)))?
        .get(0))
}

/// Marks a running trial alive now, by the server's clock; fails if it is not running.
/// Writes metric points of a trial at `step` (inside the caller's transaction), merged into
/// what that step already holds.
fn insert_metrics(
    tx: &mut impl GenericClient,
    trial: TrialId,
    step: u64,
    metrics: &[(String, f64)],
) -> Result<(), StorageError> {
    if metrics.is_empty() {
        return Ok(());
    }
    let json = caviar_core::storage::metrics_json(metrics);
    tx.execute(
        "INSERT INTO trial_metrics (trial_id, step, metrics) VALUES ($1, $2, $3::text::jsonb)
         ON CONFLICT (trial_id, step) DO UPDATE SET metrics = trial_metrics.metrics || excluded.metrics",
        &[&trial.0, &(step as i64), &json],
    )
    .map_err(backend)?;
    Ok(())
}

fn touch(tx: &mut impl GenericClient, trial: TrialId) -> Result<(), StorageError> {
    let alive = tx
        .execute(
            concat!(
                "UPDATE trials SET heartbeat_ms = ",
                server_now_ms!(),
                " WHERE id = $1 AND state = 'running'"
            ),
            &[&trial.0],
        )
        .map_err(backend)?;
    if alive == 1 {
        Ok(())
    } else {
        Err(not_running(tx, trial))
    }
}

/// Explains why a change to a running trial touched no row.
fn not_running(conn: &mut impl GenericClient, trial: TrialId) -> StorageError {
    match conn.query_opt(
        "SELECT number, state FROM trials WHERE id = $1",
        &[&trial.0],
    ) {
        Ok(Some(row)) => match parse_state(&row.get::<_, String>(1)) {
            Ok(state) => StorageError::NotRunning {
                number: row.get::<_, i64>(0) as u64,
                state,
            },
            Err(e) => e,
        },
        Ok(None) => StorageError::NoSuchTrial(trial.0),
        Err(e) => backend(e),
    }
}

/// One try of an operation on a pooled connection; [`PostgresStorage`] retries it when the
/// connection broke.
struct Attempt<'a>(&'a PostgresStorage);

impl Deref for Attempt<'_> {
    type Target = PostgresStorage;
    fn deref(&self) -> &PostgresStorage {
        self.0
    }
}

impl PostgresStorage {
    /// Runs `op` again, on fresh connections and with backoff, while the database is
    /// unreachable, for up to [`RECONNECT_FOR`]; then fails saying so.
    fn retry<T>(&self, mut op: impl FnMut() -> Result<T, StorageError>) -> Result<T, StorageError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match op() {
                Err(StorageError::Unavailable(why)) => {
                    // The pool's other connections went down the same way.
                    self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    if started.elapsed() + wait > self.reconnect_for {
                        return Err(StorageError::Backend(format!(
                            "lost the database: still unreachable after {:.0} s of retries: {why}",
                            started.elapsed().as_secs_f64()
                        )));
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

macro_rules! retried {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Storage for PostgresStorage {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.retry(|| Attempt(self).$name($($arg),*))
            })*
        }
    };
}

retried! {
    fn create_study(&self, new: &NewStudy) -> Result<StudyRecord, StorageError>;
    fn study(&self, name: &str) -> Result<Option<StudyRecord>, StorageError>;
    fn studies(&self) -> Result<Vec<StudySummary>, StorageError>;
    fn create_trial(&self, study: StudyId, worker: &str, limit: Option<u64>) -> Result<Option<NewTrial>, StorageError>;
    fn enqueue_trial_with_attrs(&self, study: StudyId, params: &[caviar_core::storage::QueuedParam], attempt: u32, attrs: &[(String, serde_json::Value)]) -> Result<NewTrial, StorageError>;
    fn set_param(&self, trial: TrialId, name: &str, dist: &Distribution, value: &ParamValue) -> Result<(), StorageError>;
    fn replace_param(&self, trial: TrialId, name: &str, dist: &Distribution, value: &ParamValue) -> Result<(), StorageError>;
    fn set_params(&self, trial: TrialId, params: &[(String, Distribution, ParamValue)]) -> Result<(), StorageError>;
    fn report(&self, trial: TrialId, step: u64, value: f64) -> Result<(), StorageError>;
    fn report_metrics(&self, trial: TrialId, step: u64, metrics: &[(String, f64)]) -> Result<(), StorageError>;
    fn report_all(&self, trial: TrialId, step: u64, value: f64, metrics: &[(String, f64)]) -> Result<(), StorageError>;
    fn trial_metrics(&self, study: StudyId) -> Result<caviar_core::storage::TrialMetrics, StorageError>;
    fn heartbeat(&self, trial: TrialId) -> Result<(), StorageError>;
    fn set_constraints(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError>;
    fn set_values(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError>;
    fn finish_trial(&self, trial: TrialId, state: TrialState, value: Option<f64>, error: Option<&str>) -> Result<(), StorageError>;
    fn trial(&self, trial: TrialId) -> Result<FrozenTrial, StorageError>;
    fn trials(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError>;
    fn trials_numbered(&self, study: StudyId, from: u64, to: u64) -> Result<Vec<FrozenTrial>, StorageError>;
    fn trials_for_analysis(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError>;
    fn counts(&self, study: StudyId) -> Result<TrialCounts, StorageError>;
    fn finished_since(&self, study: StudyId, after: u64) -> Result<Vec<FrozenTrial>, StorageError>;
    fn running_with_params(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError>;
    fn study_attr_insert(&self, study: StudyId, key: &str, value: &serde_json::Value) -> Result<serde_json::Value, StorageError>;
    fn study_attrs(&self, study: StudyId) -> Result<BTreeMap<String, serde_json::Value>, StorageError>;
    fn running_trials(&self, study: StudyId) -> Result<Vec<RunningTrial>, StorageError>;
    fn set_trial_log(&self, trial: TrialId, text: &str) -> Result<(), StorageError>;
    fn trial_log(&self, trial: TrialId) -> Result<Option<String>, StorageError>;
    fn set_user_attr(&self, owner: AttrOwner, key: &str, value: &serde_json::Value) -> Result<(), StorageError>;
    fn user_attrs(&self, owner: AttrOwner) -> Result<BTreeMap<String, serde_json::Value>, StorageError>;
    fn trial_user_attrs(&self, study: StudyId) -> Result<TrialUserAttrs, StorageError>;
    fn delete_study(&self, study: StudyId) -> Result<(), StorageError>;
    fn rename_study(&self, study: StudyId, name: &str, spec: Option<&serde_json::Value>) -> Result<(), StorageError>;
    fn trial_attempts(&self, study: StudyId) -> Result<BTreeMap<TrialId, u32>, StorageError>;
    fn import_study(&self, doc: &caviar_core::document::StudyDocument) -> Result<StudyRecord, StorageError>;
    fn ask_param_change(&self, trial: TrialId, change: &NewParamChange) -> Result<i64, StorageError>;
    fn pending_param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError>;
    fn apply_param_change(&self, trial: TrialId, id: i64, step: u64) -> Result<(), StorageError>;
    fn param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError>;
    fn study_param_changes(&self, study: StudyId) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError>;
    fn ask_control(&self, trial: TrialId, control: &NewControl) -> Result<i64, StorageError>;
    fn controls(&self, trial: TrialId) -> Result<Vec<ControlRecord>, StorageError>;
    fn apply_control(&self, trial: TrialId, id: i64, step: Option<u64>) -> Result<(), StorageError>;
}

impl Storage for Attempt<'_> {
    fn create_study(&self, new: &NewStudy) -> Result<StudyRecord, StorageError> {
        let mut conn = self.conn()?;
        let spec = new
            .spec
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err)?;
        let parent_id: Option<i64> = match &new.parent {
            None => None,
            Some(p) => Some(
                conn.query_opt("SELECT id FROM studies WHERE name = $1", &[p])
                    .map_err(backend)?
                    .ok_or_else(|| StorageError::NoSuchStudy(p.clone()))?
                    .get(0),
            ),
        };
        let created = now_ms();
        let inserted = conn.query_one(
            "INSERT INTO studies (name, direction, metric, spec, parent_id, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &new.name,
                &new.direction.as_str(),
                &new.metric,
                &spec,
                &parent_id,
                &created,
            ],
        );
        match inserted {
            Ok(row) => Ok(StudyRecord {
                id: StudyId(row.get(0)),
                name: new.name.clone(),
                direction: new.direction,
                metric: new.metric.clone(),
                spec: new.spec.clone(),
                parent: new.parent.clone(),
                created_ms: created,
            }),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StorageError::StudyExists(new.name.clone()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    fn study(&self, name: &str) -> Result<Option<StudyRecord>, StorageError> {
        let mut conn = self.conn()?;
        conn.query_opt(&format!("{STUDY_SELECT} WHERE s.name = $1"), &[&name])
            .map_err(backend)?
            .map(|r| study_from_row(&r))
            .transpose()
    }

    fn studies(&self) -> Result<Vec<StudySummary>, StorageError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(&format!("{STUDY_SELECT} ORDER BY s.created_ms, s.id"), &[])
            .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let study = study_from_row(&row)?;
            let stats = conn
                .query(
                    "SELECT state, count(*), min(value) FILTER (WHERE NOT infeasible),
                            max(value) FILTER (WHERE NOT infeasible)
                     FROM trials WHERE study_id = $1 GROUP BY state",
                    &[&study.id.0],
                )
                .map_err(backend)?;
            let mut counts = TrialCounts::default();
            let mut best_value = None;
            for s in stats {
                let state = parse_state(&s.get::<_, String>(0))?;
                for _ in 0..s.get::<_, i64>(1) {
                    counts.add(state);
                }
                if state == TrialState::Complete {
                    best_value = match study.direction {
                        Direction::Minimize => s.get(2),
                        Direction::Maximize => s.get(3),
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
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        let now = now_ms();
        // A waiting trial first; SKIP LOCKED hands each to exactly one worker without waits.
        let waiting = tx
            .query_opt(
                "SELECT id, number FROM trials WHERE study_id = $1 AND state = 'waiting'
                 ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&study.0],
            )
            .map_err(backend)?;
        if let Some(row) = waiting {
            let (id, number): (i64, i64) = (row.get(0), row.get(1));
            tx.execute(
                concat!(
                    "UPDATE trials SET state = 'running', worker = $2, heartbeat_ms = ",
                    server_now_ms!(),
                    ", started_ms = $3 WHERE id = $1"
                ),
                &[&id, &worker, &now],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            return Ok(Some(NewTrial {
                id: TrialId(id),
                number: number as u64,
                from_queue: true,
            }));
        }
        let number = take_number(&mut tx, study)?;
        if let Some(limit) = limit {
            let retried: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM trials WHERE study_id = $1 AND attempt > 0",
                    &[&study.0],
                )
                .map_err(backend)?
                .get(0);
            if (number - retried) as u64 >= limit {
                // Rolled back: the counter stays at the limit.
                return Ok(None);
            }
        }
        let id: i64 = tx
            .query_one(
                concat!(
                    "INSERT INTO trials (study_id, number, state, worker, heartbeat_ms, started_ms)
                     VALUES ($1, $2, 'running', $3, ",
                    server_now_ms!(),
                    ", $4) RETURNING id"
                ),
                &[&study.0, &number, &worker, &now],
            )
            .map_err(backend)?
            .get(0);
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
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        let number = take_number(&mut tx, study)?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO trials (study_id, number, state, attempt)
                 VALUES ($1, $2, 'waiting', $3) RETURNING id",
                &[&study.0, &number, &i64::from(attempt)],
            )
            .map_err(backend)?
            .get(0);
        for (name, dist, value) in params {
            let value = serde_json::to_string(value).map_err(json_err)?;
            let dist = serde_json::to_string(dist).map_err(json_err)?;
            tx.execute(
                "INSERT INTO trial_params (trial_id, name, value, distribution)
                 VALUES ($1, $2, $3, $4)",
                &[&id, name, &value, &dist],
            )
            .map_err(backend)?;
        }
        for (key, value) in attrs {
            let value = serde_json::to_string(value).map_err(json_err)?;
            tx.execute(
                "INSERT INTO trial_user_attrs (trial_id, key, value) VALUES ($1, $2, $3)",
                &[&id, key, &value],
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

    fn set_params(
        &self,
        trial: TrialId,
        params: &[(String, Distribution, ParamValue)],
    ) -> Result<(), StorageError> {
        if params.is_empty() {
            return Ok(());
        }
        let mut names = Vec::with_capacity(params.len());
        let mut values = Vec::with_capacity(params.len());
        let mut dists = Vec::with_capacity(params.len());
        for (name, dist, value) in params {
            names.push(name.clone());
            values.push(serde_json::to_string(value).map_err(json_err)?);
            dists.push(serde_json::to_string(dist).map_err(json_err)?);
        }
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        tx.batch_execute(LAZY_COMMIT).map_err(backend)?;
        // One statement for all of them: a trial of 20,000 parameters is one round trip.
        let inserted = tx.execute(
            "INSERT INTO trial_params (trial_id, name, value, distribution)
             SELECT $1, x.n, x.v, x.d FROM unnest($2::text[], $3::text[], $4::text[]) AS x(n, v, d)
             WHERE EXISTS (SELECT 1 FROM trials WHERE id = $1 AND state = 'running')",
            &[&trial.0, &names, &values, &dists],
        );
        match inserted {
            Ok(n) if n == params.len() as u64 => tx.commit().map_err(backend),
            Ok(_) => Err(not_running(&mut tx, trial)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StorageError::ParamExists(names.join(", ")))
            }
            Err(e) => Err(backend(e)),
        }
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
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE trial_params SET value = $3, distribution = $4
                 WHERE trial_id = $1 AND name = $2 AND EXISTS
                   (SELECT 1 FROM trials WHERE id = $1 AND state = 'running')",
                &[&trial.0, &name, &value_json, &dist_json],
            )
            .map_err(backend)?;
        if changed == 1 {
            return tx.commit().map_err(backend);
        }
        Err(not_running(&mut tx, trial))
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
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        tx.batch_execute(LAZY_COMMIT).map_err(backend)?;
        let inserted = tx.execute(
            "INSERT INTO trial_params (trial_id, name, value, distribution)
             SELECT $1, $2, $3, $4 WHERE EXISTS
               (SELECT 1 FROM trials WHERE id = $1 AND state = 'running')",
            &[&trial.0, &name, &value_json, &dist_json],
        );
        match inserted {
            Ok(1) => tx.commit().map_err(backend),
            Ok(_) => Err(not_running(&mut tx, trial)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StorageError::ParamExists(name.into()))
            }
            Err(e) => Err(backend(e)),
        }
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
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        tx.batch_execute(LAZY_COMMIT).map_err(backend)?;
        touch(&mut tx, trial)?;
        // NaN is stored as NULL (as in SQLite) and reads back as NaN.
        let stored = if value.is_nan() { None } else { Some(value) };
        tx.execute(
            "INSERT INTO trial_values (trial_id, step, value) VALUES ($1, $2, $3)
             ON CONFLICT (trial_id, step) DO UPDATE SET value = excluded.value",
            &[&trial.0, &(step as i64), &stored],
        )
        .map_err(backend)?;
        insert_metrics(&mut tx, trial, step, metrics)?;
        tx.commit().map_err(backend)
    }

    fn report_metrics(
        &self,
        trial: TrialId,
        step: u64,
        metrics: &[(String, f64)],
    ) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        tx.batch_execute(LAZY_COMMIT).map_err(backend)?;
        touch(&mut tx, trial)?;
        insert_metrics(&mut tx, trial, step, metrics)?;
        tx.commit().map_err(backend)
    }

    fn trial_metrics(
        &self,
        study: StudyId,
    ) -> Result<caviar_core::storage::TrialMetrics, StorageError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT m.trial_id, m.step, m.metrics::text FROM trial_metrics m
                 JOIN trials t ON t.id = m.trial_id WHERE t.study_id = $1
                 ORDER BY m.trial_id, m.step",
                &[&study.0],
            )
            .map_err(backend)?;
        let mut out = caviar_core::storage::TrialMetrics::new();
        for r in rows {
            let text: String = r.get(2);
            caviar_core::storage::add_metrics_row(
                &mut out,
                TrialId(r.get(0)),
                r.get::<_, i64>(1) as u64,
                &text,
            )?;
        }
        Ok(out)
    }

    fn heartbeat(&self, trial: TrialId) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        tx.batch_execute(LAZY_COMMIT).map_err(backend)?;
        touch(&mut tx, trial)?;
        tx.commit().map_err(backend)
    }

    fn set_constraints(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError> {
        let text = serde_json::to_string(values).map_err(json_err)?;
        let infeasible = !caviar_core::constraint::is_feasible(values);
        let mut conn = self.conn()?;
        let n = conn
            .execute(
                "UPDATE trials SET constraints = $2, infeasible = $3 WHERE id = $1 AND state = 'running'",
                &[&trial.0, &text, &infeasible],
            )
            .map_err(backend)?;
        if n == 1 {
            Ok(())
        } else {
            Err(not_running(&mut *conn, trial))
        }
    }

    fn set_values(&self, trial: TrialId, values: &[f64]) -> Result<(), StorageError> {
        let text = serde_json::to_string(values).map_err(json_err)?;
        let mut conn = self.conn()?;
        let n = conn
            .execute(
                "UPDATE trials SET objective_values = $2 WHERE id = $1 AND state = 'running'",
                &[&trial.0, &text],
            )
            .map_err(backend)?;
        if n == 1 {
            Ok(())
        } else {
            Err(not_running(&mut *conn, trial))
        }
    }

    fn finish_trial(
        &self,
        trial: TrialId,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> Result<(), StorageError> {
        let value = value.filter(|v| !v.is_nan());
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        let Some(row) = tx
            .query_opt(
                "SELECT study_id FROM trials WHERE id = $1 AND state = 'running' FOR UPDATE",
                &[&trial.0],
            )
            .map_err(backend)?
        else {
            return Err(not_running(&mut tx, trial));
        };
        let study: i64 = row.get(0);
        // Holding the study row until commit makes finish numbers follow commit order, so a
        // reader asking for "finished after N" never skips one that commits late.
        let seq: i64 = tx
            .query_one(
                "UPDATE studies SET next_finish = next_finish + 1 WHERE id = $1
                 RETURNING next_finish",
                &[&study],
            )
            .map_err(backend)?
            .get(0);
        tx.execute(
            "UPDATE trials SET state = $2, value = $3, error = $4, finished_ms = $5, finish_seq = $6
             WHERE id = $1",
            &[&trial.0, &state.as_str(), &value, &error, &now_ms(), &seq],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn trial(&self, trial: TrialId) -> Result<FrozenTrial, StorageError> {
        let mut conn = self.conn()?;
        load_trials(&mut *conn, "t.id = $1", &[trial.0])?
            .pop()
            .ok_or(StorageError::NoSuchTrial(trial.0))
    }

    fn trials(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut conn = self.conn()?;
        load_trials(&mut *conn, "t.study_id = $1", &[study.0])
    }

    fn trials_for_analysis(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut conn = self.conn()?;
        load_trials_with(
            false,
            &mut *conn,
            "t.study_id = $1 AND t.state = 'complete'",
            &[study.0],
        )
    }

    fn trials_numbered(
        &self,
        study: StudyId,
        from: u64,
        to: u64,
    ) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut conn = self.conn()?;
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        load_trials(
            &mut *conn,
            "t.study_id = $1 AND t.number >= $2 AND t.number < $3",
            &[study.0, clamp(from), clamp(to)],
        )
    }

    fn counts(&self, study: StudyId) -> Result<TrialCounts, StorageError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT state, count(*) FROM trials WHERE study_id = $1 GROUP BY state",
                &[&study.0],
            )
            .map_err(backend)?;
        let mut counts = TrialCounts::default();
        for row in rows {
            let state = parse_state(&row.get::<_, String>(0))?;
            for _ in 0..row.get::<_, i64>(1) {
                counts.add(state);
            }
        }
        Ok(counts)
    }

    fn finished_since(&self, study: StudyId, after: u64) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut conn = self.conn()?;
        let mut trials = load_trials(
            &mut *conn,
            "t.study_id = $1 AND t.finish_seq > $2",
            &[study.0, after as i64],
        )?;
        let seqs: HashMap<i64, i64> = conn
            .query(
                "SELECT id, finish_seq FROM trials WHERE study_id = $1 AND finish_seq > $2",
                &[&study.0, &(after as i64)],
            )
            .map_err(backend)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        trials.sort_by_key(|t| seqs.get(&t.id.0).copied().unwrap_or(i64::MAX));
        Ok(trials)
    }

    fn running_with_params(&self, study: StudyId) -> Result<Vec<FrozenTrial>, StorageError> {
        let mut conn = self.conn()?;
        load_trials(
            &mut *conn,
            "t.study_id = $1 AND t.state = 'running'",
            &[study.0],
        )
    }

    fn study_attr_insert(
        &self,
        study: StudyId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, StorageError> {
        let mut conn = self.conn()?;
        let exists = conn
            .query_opt("SELECT 1 FROM studies WHERE id = $1", &[&study.0])
            .map_err(backend)?
            .is_some();
        if !exists {
            return Err(StorageError::NoSuchStudy(format!("id {}", study.0)));
        }
        conn.execute(
            "INSERT INTO study_attrs (study_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (study_id, key) DO NOTHING",
            &[&study.0, &key, &value.to_string()],
        )
        .map_err(backend)?;
        let stored: String = conn
            .query_one(
                "SELECT value FROM study_attrs WHERE study_id = $1 AND key = $2",
                &[&study.0, &key],
            )
            .map_err(backend)?
            .get(0);
        serde_json::from_str(&stored).map_err(json_err)
    }

    fn study_attrs(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT key, value FROM study_attrs WHERE study_id = $1",
                &[&study.0],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(1);
                Ok((r.get(0), serde_json::from_str(&text).map_err(json_err)?))
            })
            .collect()
    }

    fn running_trials(&self, study: StudyId) -> Result<Vec<RunningTrial>, StorageError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                concat!(
                    "SELECT id, number, worker, ",
                    server_now_ms!(),
                    " - heartbeat_ms, attempt FROM trials
                 WHERE study_id = $1 AND state = 'running' ORDER BY number"
                ),
                &[&study.0],
            )
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| RunningTrial {
                id: TrialId(r.get(0)),
                number: r.get::<_, i64>(1) as u64,
                worker: r.get(2),
                silent_ms: r.get::<_, Option<i64>>(3).unwrap_or(i64::MAX),
                attempt: r.get::<_, i64>(4) as u32,
            })
            .collect())
    }

    fn set_trial_log(&self, trial: TrialId, text: &str) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO trial_logs (trial_id, text) VALUES ($1, $2)
             ON CONFLICT (trial_id) DO UPDATE SET text = excluded.text",
            &[&trial.0, &text],
        )
        .map_err(|e| {
            if e.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
                StorageError::NoSuchTrial(trial.0)
            } else {
                backend(e)
            }
        })?;
        Ok(())
    }

    fn trial_log(&self, trial: TrialId) -> Result<Option<String>, StorageError> {
        let mut conn = self.conn()?;
        Ok(conn
            .query_opt(
                "SELECT text FROM trial_logs WHERE trial_id = $1",
                &[&trial.0],
            )
            .map_err(backend)?
            .map(|r| r.get(0)))
    }

    fn set_user_attr(
        &self,
        owner: AttrOwner,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        let (sql, id, missing) = match owner {
            AttrOwner::Study(s) => (
                "INSERT INTO study_user_attrs (study_id, key, value)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM studies WHERE id = $1)
                 ON CONFLICT (study_id, key) DO UPDATE SET value = excluded.value",
                s.0,
                StorageError::NoSuchStudy(format!("id {}", s.0)),
            ),
            AttrOwner::Trial(t) => (
                "INSERT INTO trial_user_attrs (trial_id, key, value)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM trials WHERE id = $1)
                 ON CONFLICT (trial_id, key) DO UPDATE SET value = excluded.value",
                t.0,
                StorageError::NoSuchTrial(t.0),
            ),
        };
        match conn.execute(sql, &[&id, &key, &value.to_string()]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(missing),
            Err(e) => Err(backend(e)),
        }
    }

    fn user_attrs(
        &self,
        owner: AttrOwner,
    ) -> Result<BTreeMap<String, serde_json::Value>, StorageError> {
        let mut conn = self.conn()?;
        let (sql, id) = match owner {
            AttrOwner::Study(s) => (
                "SELECT key, value FROM study_user_attrs WHERE study_id = $1",
                s.0,
            ),
            AttrOwner::Trial(t) => (
                "SELECT key, value FROM trial_user_attrs WHERE trial_id = $1",
                t.0,
            ),
        };
        let mut out = BTreeMap::new();
        for row in conn.query(sql, &[&id]).map_err(backend)? {
            let value: String = row.get(1);
            out.insert(row.get(0), serde_json::from_str(&value).map_err(json_err)?);
        }
        Ok(out)
    }

    fn trial_user_attrs(&self, study: StudyId) -> Result<TrialUserAttrs, StorageError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT a.trial_id, a.key, a.value FROM trial_user_attrs a
                 JOIN trials t ON t.id = a.trial_id WHERE t.study_id = $1",
                &[&study.0],
            )
            .map_err(backend)?;
        let mut out = TrialUserAttrs::new();
        for row in rows {
            let value: String = row.get(2);
            out.entry(TrialId(row.get(0)))
                .or_default()
                .insert(row.get(1), serde_json::from_str(&value).map_err(json_err)?);
        }
        Ok(out)
    }

    fn ask_param_change(
        &self,
        trial: TrialId,
        change: &NewParamChange,
    ) -> Result<i64, StorageError> {
        let value = serde_json::to_string(&change.value).map_err(json_err)?;
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        require_running(&mut tx, trial)?;
        let has = tx
            .query_opt(
                "SELECT 1 FROM trial_params WHERE trial_id = $1 AND name = $2",
                &[&trial.0, &change.name],
            )
            .map_err(backend)?
            .is_some();
        if !has {
            return Err(StorageError::Backend(format!(
                "the trial has no parameter `{}`",
                change.name
            )));
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO param_changes (trial_id, name, new_value, who, at_ms, note, forced)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &trial.0,
                    &change.name,
                    &value,
                    &change.who,
                    &now_ms(),
                    &change.note,
                    &change.forced,
                ],
            )
            .map_err(backend)?
            .get(0);
        tx.commit().map_err(backend)?;
        Ok(id)
    }

    fn pending_param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError> {
        read_changes(&mut *self.conn()?, ChangesOf::Trial(trial, true))
            .map(|mut all| all.remove(&trial).unwrap_or_default())
    }

    fn apply_param_change(&self, trial: TrialId, id: i64, step: u64) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        let Some(found) = tx
            .query_opt(
                "SELECT name, new_value FROM param_changes
                 WHERE id = $1 AND trial_id = $2 AND applied_ms IS NULL FOR UPDATE",
                &[&id, &trial.0],
            )
            .map_err(backend)?
        else {
            return Err(StorageError::Backend(format!(
                "no pending change {id} of trial id {}",
                trial.0
            )));
        };
        let (name, new_value): (String, String) = (found.get(0), found.get(1));
        let old: Option<String> = tx
            .query_opt(
                "SELECT value FROM trial_params WHERE trial_id = $1 AND name = $2",
                &[&trial.0, &name],
            )
            .map_err(backend)?
            .map(|r| r.get(0));
        let changed = tx
            .execute(
                "UPDATE trial_params SET value = $3 WHERE trial_id = $1 AND name = $2
                 AND EXISTS (SELECT 1 FROM trials WHERE id = $1 AND state = 'running')",
                &[&trial.0, &name, &new_value],
            )
            .map_err(backend)?;
        if changed != 1 {
            return Err(not_running(&mut tx, trial));
        }
        tx.execute(
            "UPDATE param_changes SET old_value = $2, step = $3, applied_ms = $4 WHERE id = $1",
            &[&id, &old, &(step as i64), &now_ms()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn param_changes(&self, trial: TrialId) -> Result<Vec<ParamChange>, StorageError> {
        read_changes(&mut *self.conn()?, ChangesOf::Trial(trial, false))
            .map(|mut all| all.remove(&trial).unwrap_or_default())
    }

    fn study_param_changes(
        &self,
        study: StudyId,
    ) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError> {
        read_changes(&mut *self.conn()?, ChangesOf::Study(study))
    }

    fn ask_control(&self, trial: TrialId, control: &NewControl) -> Result<i64, StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        require_running(&mut tx, trial)?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO trial_controls (trial_id, action, who, note, asked_ms)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &trial.0,
                    &control.action.as_str(),
                    &control.who,
                    &control.note,
                    &now_ms(),
                ],
            )
            .map_err(backend)?
            .get(0);
        tx.commit().map_err(backend)?;
        Ok(id)
    }

    fn controls(&self, trial: TrialId) -> Result<Vec<ControlRecord>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, action, who, note, asked_ms, applied_ms, step FROM trial_controls
                 WHERE trial_id = $1 ORDER BY id",
                &[&trial.0],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let action: String = r.get(1);
                Ok(ControlRecord {
                    id: r.get(0),
                    action: ControlAction::parse(&action).ok_or_else(|| {
                        StorageError::Backend(format!("unknown control `{action}` in database"))
                    })?,
                    who: r.get(2),
                    note: r.get(3),
                    asked_ms: r.get(4),
                    applied_ms: r.get(5),
                    applied_step: r.get::<_, Option<i64>>(6).map(|s| s as u64),
                })
            })
            .collect()
    }

    fn apply_control(
        &self,
        trial: TrialId,
        id: i64,
        step: Option<u64>,
    ) -> Result<(), StorageError> {
        let found = self
            .conn()?
            .execute(
                "UPDATE trial_controls SET applied_ms = coalesce(applied_ms, $3),
                 step = CASE WHEN applied_ms IS NULL THEN $4 ELSE step END
                 WHERE id = $1 AND trial_id = $2",
                &[&id, &trial.0, &now_ms(), &step.map(|s| s as i64)],
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
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT id, attempt FROM trials WHERE study_id = $1 AND attempt > 0",
                &[&study.0],
            )
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| (TrialId(r.get(0)), r.get::<_, i64>(1) as u32))
            .collect())
    }

    fn import_study(
        &self,
        doc: &caviar_core::document::StudyDocument,
    ) -> Result<StudyRecord, StorageError> {
        let json = |v: &serde_json::Value| serde_json::to_string(v).map_err(json_err);
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        if tx
            .query_opt("SELECT id FROM studies WHERE name = $1", &[&doc.name])
            .map_err(backend)?
            .is_some()
        {
            return Err(StorageError::StudyExists(doc.name.clone()));
        }
        let parent_id: Option<i64> = match &doc.parent {
            None => None,
            Some(parent) => Some(
                tx.query_opt("SELECT id FROM studies WHERE name = $1", &[parent])
                    .map_err(backend)?
                    .ok_or_else(|| StorageError::NoSuchStudy(parent.clone()))?
                    .get(0),
            ),
        };
        let spec = doc.spec.as_ref().map(json).transpose()?;
        let order = doc.finish_order();
        let next_number = doc
            .trials
            .iter()
            .map(|t| t.number as i64 + 1)
            .max()
            .unwrap_or(0);
        let inserted = tx.query_one(
            "INSERT INTO studies (name, direction, metric, spec, parent_id, created_ms, next_number, next_finish)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &doc.name,
                &doc.direction.as_str(),
                &doc.metric,
                &spec,
                &parent_id,
                &doc.created_ms,
                &next_number,
                &(order.len() as i64),
            ],
        );
        let study: i64 = match inserted {
            Ok(row) => row.get(0),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StorageError::StudyExists(doc.name.clone()))
            }
            Err(e) => return Err(backend(e)),
        };
        for (key, value) in &doc.attrs {
            tx.execute(
                "INSERT INTO study_attrs (study_id, key, value) VALUES ($1, $2, $3)",
                &[&study, key, &json(value)?],
            )
            .map_err(backend)?;
        }
        for (key, value) in &doc.user_attrs {
            tx.execute(
                "INSERT INTO study_user_attrs (study_id, key, value) VALUES ($1, $2, $3)",
                &[&study, key, &json(value)?],
            )
            .map_err(backend)?;
        }
        let mut finish_seq: Vec<Option<i64>> = vec![None; doc.trials.len()];
        for (seq, i) in order.into_iter().enumerate() {
            finish_seq[i] = Some(seq as i64 + 1);
        }
        let insert_trial = tx
            .prepare(
                "INSERT INTO trials (study_id, number, state, value, error, worker, heartbeat_ms, started_ms, finished_ms, finish_seq, attempt, constraints, infeasible, objective_values)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            )
            .map_err(backend)?;
        let insert_param = tx
            .prepare("INSERT INTO trial_params (trial_id, name, value, distribution) VALUES ($1, $2, $3, $4)")
            .map_err(backend)?;
        let insert_value = tx
            .prepare("INSERT INTO trial_values (trial_id, step, value) VALUES ($1, $2, $3)")
            .map_err(backend)?;
        for (t, seq) in doc.trials.iter().zip(finish_seq) {
            let constraints = (!t.constraints.is_empty())
                .then(|| serde_json::to_string(&t.constraints))
                .transpose()
                .map_err(json_err)?;
            let infeasible = !caviar_core::constraint::is_feasible(&t.constraints);
            let values = (!t.values.is_empty())
                .then(|| serde_json::to_string(&t.values))
                .transpose()
                .map_err(json_err)?;
            let trial: i64 = tx
                .query_one(
                    &insert_trial,
                    &[
                        &study,
                        &(t.number as i64),
                        &t.state.as_str(),
                        &t.value,
                        &t.error,
                        &t.worker,
                        &t.finished_ms.or(t.started_ms),
                        &t.started_ms,
                        &t.finished_ms,
                        &seq,
                        &(t.attempt as i64),
                        &constraints,
                        &infeasible,
                        &values,
                    ],
                )
                .map_err(backend)?
                .get(0);
            for (name, value) in &t.params {
                let dist = t.distributions.get(name).ok_or_else(|| {
                    StorageError::Backend(format!(
                        "trial {}: parameter `{name}` has no distribution",
                        t.number
                    ))
                })?;
                let value = serde_json::to_string(value).map_err(json_err)?;
                let dist = serde_json::to_string(dist).map_err(json_err)?;
                tx.execute(&insert_param, &[&trial, name, &value, &dist])
                    .map_err(backend)?;
            }
            for &(step, value) in &t.intermediate {
                tx.execute(&insert_value, &[&trial, &(step as i64), &value])
                    .map_err(backend)?;
            }
            if let Some(log) = &t.log {
                tx.execute(
                    "INSERT INTO trial_logs (trial_id, text) VALUES ($1, $2)",
                    &[&trial, log],
                )
                .map_err(backend)?;
            }
            for (step, metrics) in caviar_core::storage::metrics_by_step(&t.metrics) {
                insert_metrics(&mut tx, TrialId(trial), step, &metrics)?;
            }
            for (key, value) in &t.user_attrs {
                tx.execute(
                    "INSERT INTO trial_user_attrs (trial_id, key, value) VALUES ($1, $2, $3)",
                    &[&trial, key, &json(value)?],
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
                let new = serde_json::to_string(&c.new).map_err(json_err)?;
                tx.execute(
                    "INSERT INTO param_changes (trial_id, step, name, old_value, new_value, who, at_ms, note, forced, applied_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &trial,
                        &c.applied_step.map(|s| s as i64),
                        &c.name,
                        &old,
                        &new,
                        &c.who,
                        &c.asked_ms,
                        &c.note,
                        &c.forced,
                        &c.applied_ms,
                    ],
                )
                .map_err(backend)?;
            }
            for c in &t.controls {
                tx.execute(
                    "INSERT INTO trial_controls (trial_id, action, who, note, asked_ms, applied_ms, step)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &trial,
                        &c.action.as_str(),
                        &c.who,
                        &c.note,
                        &c.asked_ms,
                        &c.applied_ms,
                        &c.applied_step.map(|s| s as i64),
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
        let mut conn = self.conn()?;
        match conn.execute(
            "UPDATE studies SET name = $2, spec = COALESCE($3, spec) WHERE id = $1",
            &[&study.0, &name, &spec],
        ) {
            Ok(0) => Err(StorageError::NoSuchStudy(format!("id {}", study.0))),
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StorageError::StudyExists(name.to_string()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    fn delete_study(&self, study: StudyId) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(backend)?;
        let name: String = tx
            .query_opt("SELECT name FROM studies WHERE id = $1", &[&study.0])
            .map_err(backend)?
            .ok_or_else(|| StorageError::NoSuchStudy(format!("id {}", study.0)))?
            .get(0);
        if let Some(child) = tx
            .query_opt(
                "SELECT name FROM studies WHERE parent_id = $1 LIMIT 1",
                &[&study.0],
            )
            .map_err(backend)?
        {
            let child: String = child.get(0);
            return Err(StorageError::Backend(format!(
                "study `{name}` is the parent of `{child}`; delete that one first"
            )));
        }
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
                &format!(
                    "DELETE FROM {table} WHERE trial_id IN (SELECT id FROM trials WHERE study_id = $1)"
                ),
                &[&study.0],
            )
            .map_err(backend)?;
        }
        for sql in [
            "DELETE FROM trials WHERE study_id = $1",
            "DELETE FROM study_attrs WHERE study_id = $1",
            "DELETE FROM study_user_attrs WHERE study_id = $1",
            "DELETE FROM studies WHERE id = $1",
        ] {
            tx.execute(sql, &[&study.0]).map_err(backend)?;
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
    conn: &mut impl GenericClient,
    of: ChangesOf,
) -> Result<BTreeMap<TrialId, Vec<ParamChange>>, StorageError> {
    const COLUMNS: &str = "c.id, c.name, c.old_value, c.new_value, c.who, c.note, c.forced, c.at_ms, c.step, c.applied_ms, c.trial_id";
    let (sql, key) = match of {
        ChangesOf::Trial(t, true) => (
            format!("SELECT {COLUMNS} FROM param_changes c WHERE c.trial_id = $1 AND c.applied_ms IS NULL ORDER BY c.id"),
            t.0,
        ),
        ChangesOf::Trial(t, false) => (
            format!("SELECT {COLUMNS} FROM param_changes c WHERE c.trial_id = $1 ORDER BY c.id"),
            t.0,
        ),
        ChangesOf::Study(s) => (
            format!("SELECT {COLUMNS} FROM param_changes c JOIN trials t ON t.id = c.trial_id WHERE t.study_id = $1 ORDER BY c.id"),
            s.0,
        ),
    };
    let rows = conn.query(&sql, &[&key]).map_err(backend)?;
    let mut out: BTreeMap<TrialId, Vec<ParamChange>> = BTreeMap::new();
    for r in rows {
        let old: Option<String> = r.get(2);
        let new: String = r.get(3);
        let step: Option<i64> = r.get(8);
        out.entry(TrialId(r.get(10)))
            .or_default()
            .push(ParamChange {
                id: r.get(0),
                name: r.get(1),
                old: old
                    .map(|o| serde_json::from_str(&o))
                    .transpose()
                    .map_err(json_err)?,
                new: serde_json::from_str(&new).map_err(json_err)?,
                who: r.get::<_, Option<String>>(4).unwrap_or_default(),
                note: r.get(5),
                forced: r.get(6),
                asked_ms: r.get(7),
                applied_step: step.map(|s| s as u64),
                applied_ms: r.get(9),
            });
    }
    Ok(out)
}

/// Loads trials matching `filter` (on alias `t`, parameters `$1..` bound to `keys`) with their
/// params and intermediate values, in three queries.
/// Trials matching `filter` (over `trials t`, keys bound as $1, $2, ...) with their parameters
/// and curves, by number.
fn load_trials(
    conn: &mut impl GenericClient,
    filter: &str,
    keys: &[i64],
) -> Result<Vec<FrozenTrial>, StorageError> {
    load_trials_with(true, conn, filter, keys)
}

/// The same, without the curves (`intermediate` left empty) when `curves` is false.
fn load_trials_with(
    curves: bool,
    conn: &mut impl GenericClient,
    filter: &str,
    keys: &[i64],
) -> Result<Vec<FrozenTrial>, StorageError> {
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = keys
        .iter()
        .map(|k| k as &(dyn postgres::types::ToSql + Sync))
        .collect();
    let rows = conn
        .query(
            &format!(
                "SELECT t.id, t.number, t.state, t.value, t.error, t.worker, t.started_ms,
                        t.finished_ms, t.constraints, t.objective_values
                 FROM trials t WHERE {filter} ORDER BY t.number"
            ),
            &params,
        )
        .map_err(backend)?;
    let mut trials = Vec::with_capacity(rows.len());
    let mut index: HashMap<i64, usize> = HashMap::new();
    for r in &rows {
        let id: i64 = r.get(0);
        index.insert(id, trials.len());
        trials.push(FrozenTrial {
            id: TrialId(id),
            number: r.get::<_, i64>(1) as u64,
            state: parse_state(&r.get::<_, String>(2))?,
            params: Default::default(),
            distributions: Default::default(),
            value: r.get(3),
            intermediate: Vec::new(),
            error: r.get(4),
            worker: r.get(5),
            started_ms: r.get(6),
            finished_ms: r.get(7),
            constraints: match r.get::<_, Option<String>>(8) {
                Some(text) => serde_json::from_str(&text).map_err(json_err)?,
                None => Vec::new(),
            },
            values: match r.get::<_, Option<String>>(9) {
                Some(text) => serde_json::from_str(&text).map_err(json_err)?,
                None => Vec::new(),
            },
        });
    }
    if trials.is_empty() {
        return Ok(trials);
    }
    let rows = conn
        .query(
            &format!(
                "SELECT p.trial_id, p.name, p.value, p.distribution
                 FROM trial_params p JOIN trials t ON t.id = p.trial_id WHERE {filter}"
            ),
            &params,
        )
        .map_err(backend)?;
    let mut dist_cache: HashMap<String, Distribution> = HashMap::new();
    for r in &rows {
        let Some(&i) = index.get(&r.get::<_, i64>(0)) else {
            continue;
        };
        let name: String = r.get(1);
        let value: ParamValue = serde_json::from_str(r.get::<_, &str>(2)).map_err(json_err)?;
        let dist_text: String = r.get(3);
        let dist = match dist_cache.get(&dist_text) {
            Some(d) => d.clone(),
            None => {
                let d: Distribution = serde_json::from_str(&dist_text).map_err(json_err)?;
                dist_cache.insert(dist_text, d.clone());
                d
            }
        };
        trials[i].params.insert(name.clone(), value);
        trials[i].distributions.insert(name, dist);
    }
    if !curves {
        return Ok(trials);
    }
    let rows = conn
        .query(
            &format!(
                "SELECT v.trial_id, v.step, v.value
                 FROM trial_values v JOIN trials t ON t.id = v.trial_id WHERE {filter}
                 ORDER BY v.trial_id, v.step"
            ),
            &params,
        )
        .map_err(backend)?;
    for r in &rows {
        if let Some(&i) = index.get(&r.get::<_, i64>(0)) {
            let value: Option<f64> = r.get(2);
            trials[i]
                .intermediate
                .push((r.get::<_, i64>(1) as u64, value.unwrap_or(f64::NAN)));
        }
    }
    Ok(trials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parameter_is_ours_and_checked() {
        assert_eq!(
            split_schema("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".into(), None)
        );
        assert_eq!(
            split_schema("postgres://u@h/db?schema=run_1&sslmode=disable").unwrap(),
            (
                "postgres://u@h/db?sslmode=disable".into(),
                Some("run_1".into())
            )
        );
        assert!(split_schema("postgres://u@h/db?schema=a;drop").is_err());
    }

    #[test]
    fn a_lost_database_is_retried_then_reported() {
        let Ok(url) = std::env::var("CAVIAR_TEST_POSTGRES_URL") else {
            println!("skipped: CAVIAR_TEST_POSTGRES_URL is not set");
            return;
        };
        let schema = format!("caviar_lost_{}", std::process::id());
        let mut storage = PostgresStorage::open(&format!("{url}?schema={schema}")).unwrap();
        // The server goes away: nothing listens on port 1.
        storage.idle.lock().unwrap().clear();
        storage.config = client_config("postgres://postgres@127.0.0.1:1/test").unwrap();
        storage.reconnect_for = Duration::from_millis(700);
        let started = Instant::now();
        let err = storage.studies().err().unwrap().to_string();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "it kept trying"
        );
        assert!(
            err.contains("lost the database") && err.contains("attempts"),
            "{err}"
        );
        let mut c = Client::connect(&url, NoTls).unwrap();
        c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }
}
