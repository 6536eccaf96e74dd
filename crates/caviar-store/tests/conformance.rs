//! The storage contract, checked against every backend.

use std::collections::HashSet;
use std::sync::Arc;

use caviar_core::space::{Distribution, ParamValue, Scale};
use caviar_core::storage::{InMemoryStorage, NewStudy, Storage, StorageError};
use caviar_core::trial::{Direction, TrialId, TrialState};
use caviar_store::{PostgresStorage, SqliteStorage};

fn new_study(name: &str) -> NewStudy {
    NewStudy {
        name: name.into(),
        direction: Direction::Maximize,
        metric: Some("acc".into()),
        spec: Some(serde_json::json!({"trials": 3})),
        parent: None,
    }
}

/// What keeps a backend's data alive during a test (a temporary folder, a database schema).
type Keep = Box<dyn std::any::Any>;

/// A PostgreSQL schema of its own for one test, dropped afterwards.
struct PgSchema {
    url: String,
    name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

/// A PostgreSQL storage in a fresh schema, when `CAVIAR_TEST_POSTGRES_URL` names a server.
fn postgres() -> Option<(Arc<dyn Storage>, PgSchema, String)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Ok(url) = std::env::var("CAVIAR_TEST_POSTGRES_URL") else {
        println!("PostgreSQL backend skipped: CAVIAR_TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!(
        "caviar_test_{}_{}_{}",
        std::process::id(),
        caviar_core::trial::now_ms(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let with_schema = format!("{url}?schema={name}");
    let storage = PostgresStorage::open(&with_schema).unwrap();
    Some((Arc::new(storage), PgSchema { url, name }, with_schema))
}

fn backends() -> Vec<(&'static str, Arc<dyn Storage>, Keep)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStorage::open(dir.path().join("c.db")).unwrap();
    let mut all: Vec<(&'static str, Arc<dyn Storage>, Keep)> = vec![
        ("memory", Arc::new(InMemoryStorage::new()), Box::new(())),
        ("sqlite", Arc::new(sqlite), Box::new(dir)),
    ];
    if let Some((pg, schema, _)) = postgres() {
        all.push(("postgres", pg, Box::new(schema)));
    }
    all
}

#[test]
fn study_lifecycle_and_duplicates() {
    for (name, s, _dir) in backends() {
        let rec = s.create_study(&new_study("a")).unwrap();
        assert_eq!(rec.metric.as_deref(), Some("acc"), "{name}");
        assert!(
            matches!(
                s.create_study(&new_study("a")),
                Err(StorageError::StudyExists(_))
            ),
            "{name}"
        );
        let found = s.study("a").unwrap().unwrap();
        assert_eq!(found.spec, Some(serde_json::json!({"trials": 3})), "{name}");
        assert!(s.study("b").unwrap().is_none(), "{name}");
    }
}

#[test]
fn trial_records_params_reports_and_end() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("a")).unwrap();
        let t = s.create_trial(study.id, "w1", None).unwrap().unwrap();
        let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        s.set_param(t.id, "lr", &lr, &ParamValue::Float(0.01))
            .unwrap();
        let act = Distribution::categorical(["relu", "tanh"]).unwrap();
        s.set_param(t.id, "act", &act, &"tanh".into()).unwrap();
        assert!(
            matches!(
                s.set_param(t.id, "lr", &lr, &ParamValue::Float(0.02)),
                Err(StorageError::ParamExists(_))
            ),
            "{name}"
        );
        s.report(t.id, 2, 0.5).unwrap();
        s.report(t.id, 1, 0.25).unwrap();
        s.report(t.id, 2, 0.75).unwrap();
        s.report(t.id, 3, f64::NAN).unwrap();
        s.finish_trial(t.id, TrialState::Complete, Some(0.75), None)
            .unwrap();
        let err = s
            .finish_trial(t.id, TrialState::Failed, None, Some("late"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::NotRunning {
                    number: 0,
                    state: TrialState::Complete
                }
            ),
            "{name}"
        );
        assert!(s.report(t.id, 4, 1.0).is_err(), "{name}");

        let got = s.trial(t.id).unwrap();
        assert_eq!(got.state, TrialState::Complete);
        assert_eq!(got.value, Some(0.75));
        assert_eq!(got.params["lr"], ParamValue::Float(0.01));
        assert_eq!(got.params["act"], ParamValue::Str("tanh".into()));
        assert_eq!(got.distributions["lr"], lr);
        assert_eq!(&got.intermediate[..2], &[(1, 0.25), (2, 0.75)], "{name}");
        assert_eq!(got.intermediate[2].0, 3);
        assert!(
            got.intermediate[2].1.is_nan(),
            "{name}: NaN reports survive"
        );
        assert_eq!(got.worker.as_deref(), Some("w1"));
        assert!(got.finished_ms.unwrap() >= got.started_ms.unwrap());

        let summary = &s.studies().unwrap()[0];
        assert_eq!(summary.counts.complete, 1);
        assert_eq!(summary.best_value, Some(0.75));
    }
}

#[test]
fn limit_is_never_overshot_and_numbers_are_unique_under_threads() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("a")).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    while let Some(t) = s
                        .create_trial(study.id, &format!("w{w}"), Some(200))
                        .unwrap()
                    {
                        mine.push(t.number);
                        s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
                            .unwrap();
                    }
                    mine
                })
            })
            .collect();
        let all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let unique: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(all.len(), 200, "{name}");
        assert_eq!(unique, (0..200).collect(), "{name}");
        assert_eq!(s.counts(study.id).unwrap().total(), 200, "{name}");
    }
}

#[test]
fn two_handles_on_one_file_share_numbers() {
    // Two opens of one file behave like two processes: numbers stay unique.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Arc::new(SqliteStorage::open(&path).unwrap());
    let b = Arc::new(SqliteStorage::open(&path).unwrap());
    let study = a.create_study(&new_study("s")).unwrap();
    let run = |s: Arc<SqliteStorage>| {
        std::thread::spawn(move || {
            let mut n = Vec::new();
            while let Some(t) = s.create_trial(study.id, "x", Some(100)).unwrap() {
                n.push(t.number);
            }
            n
        })
    };
    let (ha, hb) = (run(a.clone()), run(b.clone()));
    let mut all = ha.join().unwrap();
    all.extend(hb.join().unwrap());
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

#[test]
fn running_trials_and_reopen_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    {
        let s = SqliteStorage::open(&path).unwrap();
        let study = s.create_study(&new_study("s")).unwrap();
        let t = s.create_trial(study.id, "host:1", None).unwrap().unwrap();
        s.report(t.id, 1, 0.5).unwrap();
    }
    let s = SqliteStorage::open(&path).unwrap();
    let study = s.study("s").unwrap().unwrap();
    let running = s.running_trials(study.id).unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].worker.as_deref(), Some("host:1"));
    assert!((0..60_000).contains(&running[0].silent_ms));
    let trials = s.trials(study.id).unwrap();
    assert_eq!(trials[0].intermediate, vec![(1, 0.5)]);
}

#[test]
fn foreign_and_future_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"this is not a database, just text that is long enough to be a header",
    )
    .unwrap();
    let err = SqliteStorage::open(&junk).err().unwrap();
    assert!(
        matches!(
            err,
            StorageError::Incompatible(_) | StorageError::Backend(_)
        ),
        "{err}"
    );

    let future = dir.path().join("future.db");
    {
        let conn = rusqlite_conn(&future);
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = SqliteStorage::open(&future).err().unwrap();
    assert!(err.to_string().contains("upgrade caviar"), "{err}");

    let other = dir.path().join("other.db");
    {
        let conn = rusqlite_conn(&other);
        conn.execute_batch("CREATE TABLE mine (x INTEGER)").unwrap();
    }
    let err = SqliteStorage::open(&other).err().unwrap();
    assert!(err.to_string().contains("not a caviar database"), "{err}");

    let missing_dir = dir.path().join("nope").join("x.db");
    let err = SqliteStorage::open(&missing_dir).err().unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn finished_since_returns_exactly_the_new_finishes_in_order() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("a")).unwrap();
        let ids: Vec<_> = (0..5)
            .map(|_| s.create_trial(study.id, "w", None).unwrap().unwrap())
            .collect();
        // Finish out of number order: 3, 0, 4.
        for i in [3, 0, 4] {
            s.finish_trial(ids[i].id, TrialState::Complete, Some(i as f64), None)
                .unwrap();
        }
        let all: Vec<u64> = s
            .finished_since(study.id, 0)
            .unwrap()
            .iter()
            .map(|t| t.number)
            .collect();
        assert_eq!(all, vec![3, 0, 4], "{name}");
        let later: Vec<u64> = s
            .finished_since(study.id, 2)
            .unwrap()
            .iter()
            .map(|t| t.number)
            .collect();
        assert_eq!(later, vec![4], "{name}");
        let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        s.set_param(ids[1].id, "lr", &lr, &ParamValue::Float(0.1))
            .unwrap();
        let running = s.running_with_params(study.id).unwrap();
        assert_eq!(
            running.iter().map(|t| t.number).collect::<Vec<_>>(),
            vec![1, 2],
            "{name}"
        );
        assert_eq!(running[0].params["lr"], ParamValue::Float(0.1), "{name}");
        s.finish_trial(ids[1].id, TrialState::Failed, None, Some("x"))
            .unwrap();
        assert_eq!(
            s.finished_since(study.id, 3).unwrap()[0].number,
            1,
            "{name}"
        );
    }
}

#[test]
fn a_version_1_file_is_migrated_with_its_finish_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let s = SqliteStorage::open(&path).unwrap();
        let study = s.create_study(&new_study("old")).unwrap();
        let a = s.create_trial(study.id, "w", None).unwrap().unwrap();
        let b = s.create_trial(study.id, "w", None).unwrap().unwrap();
        s.finish_trial(b.id, TrialState::Complete, Some(1.0), None)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.finish_trial(a.id, TrialState::Complete, Some(2.0), None)
            .unwrap();
    }
    {
        // Turn the file back into what version 1 wrote.
        let conn = rusqlite_conn(&path);
        conn.execute_batch(
            "ALTER TABLE trials DROP COLUMN objective_values; ALTER TABLE trials DROP COLUMN constraints; ALTER TABLE trials DROP COLUMN infeasible; ALTER TABLE trial_values DROP COLUMN metrics; DROP TABLE trial_metrics; DROP TABLE trial_controls; DROP INDEX param_changes_by_trial; ALTER TABLE param_changes DROP COLUMN note; ALTER TABLE param_changes DROP COLUMN forced; ALTER TABLE param_changes DROP COLUMN applied_ms; DROP TABLE trial_user_attrs; DROP TABLE study_user_attrs; DROP TABLE trial_logs; DROP TABLE study_attrs; DROP INDEX trials_by_finish; DROP INDEX trials_retried; ALTER TABLE trials DROP COLUMN finish_seq; ALTER TABLE trials DROP COLUMN attempt; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStorage::open(&path).unwrap();
    let study = s.study("old").unwrap().unwrap();
    let order: Vec<u64> = s
        .finished_since(study.id, 0)
        .unwrap()
        .iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(order, vec![1, 0]);
    let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
    s.finish_trial(t.id, TrialState::Complete, Some(3.0), None)
        .unwrap();
    assert_eq!(s.finished_since(study.id, 2).unwrap()[0].number, 2);
}

#[test]
fn study_attributes_keep_the_first_value_written() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("attrs")).unwrap();
        let other = s.create_study(&new_study("other")).unwrap();
        let first = serde_json::json!({"round": 1, "box": [0.2, 0.4]});
        let second = serde_json::json!({"round": 1, "box": [0.0, 1.0]});
        assert_eq!(
            s.study_attr_insert(study.id, "zoom.round.1", &first)
                .unwrap(),
            first,
            "{name}"
        );
        assert_eq!(
            s.study_attr_insert(study.id, "zoom.round.1", &second)
                .unwrap(),
            first,
            "{name}"
        );
        s.study_attr_insert(other.id, "zoom.round.1", &second)
            .unwrap();
        let all = s.study_attrs(study.id).unwrap();
        assert_eq!(all.len(), 1, "{name}");
        assert_eq!(all["zoom.round.1"], first, "{name}");
        assert_eq!(
            s.study_attrs(other.id).unwrap()["zoom.round.1"],
            second,
            "{name}"
        );
        let missing = caviar_core::trial::StudyId(other.id.0 + 100);
        assert!(
            matches!(
                s.study_attr_insert(missing, "k", &first),
                Err(StorageError::NoSuchStudy(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn racing_processes_agree_on_one_attribute_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let study = SqliteStorage::open(&path)
        .unwrap()
        .create_study(&new_study("s"))
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let s = SqliteStorage::open(&path).unwrap();
                s.study_attr_insert(study.id, "k", &serde_json::json!(i))
                    .unwrap()
            })
        })
        .collect();
    let seen: HashSet<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[test]
fn many_processes_creating_one_new_file_at_once_all_open_it() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("new-{round}.db"));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStorage::open(&path)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().expect("every opener succeeds");
        }
    }
}

#[test]
fn postgres_handles_and_processes_share_numbers_and_data() {
    let Some((a, _schema, url)) = postgres() else {
        return;
    };
    // A second handle is another pool of connections, like another worker machine.
    let b: Arc<dyn Storage> = Arc::new(PostgresStorage::open(&url).unwrap());
    let study = a.create_study(&new_study("s")).unwrap();
    let run = |s: Arc<dyn Storage>| {
        std::thread::spawn(move || {
            let mut n = Vec::new();
            while let Some(t) = s.create_trial(study.id, "x", Some(100)).unwrap() {
                s.report(t.id, 1, 0.5).unwrap();
                s.finish_trial(t.id, TrialState::Complete, Some(0.5), None)
                    .unwrap();
                n.push(t.number);
            }
            n
        })
    };
    let (ha, hb, hc) = (run(a.clone()), run(b.clone()), run(b.clone()));
    let mut all = ha.join().unwrap();
    all.extend(hb.join().unwrap());
    all.extend(hc.join().unwrap());
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    // Finish numbers are gap-free, so a reader resuming at any point misses nothing.
    let finished = a.finished_since(study.id, 40).unwrap();
    assert_eq!(finished.len(), 60);
    assert!(finished.iter().all(|t| t.intermediate == vec![(1, 0.5)]));
    // Reopening finds everything; an unknown schema version is refused.
    let again = PostgresStorage::open(&url).unwrap();
    assert_eq!(again.counts(study.id).unwrap().complete, 100);
    let mut c = postgres::Client::connect(url.split('?').next().unwrap(), postgres::NoTls).unwrap();
    // A version-1 schema is brought up to date.
    c.batch_execute(&format!(
        "SET search_path TO \"{0}\"; DROP INDEX trials_retried; DROP TABLE trial_logs;
         DROP TABLE trial_controls;
         DROP TABLE trial_user_attrs; DROP TABLE study_user_attrs;
         UPDATE caviar_meta SET value = '1' WHERE key = 'schema_version'",
        _schema.name
    ))
    .unwrap();
    PostgresStorage::open(&url).unwrap();
    let row = c
        .query_one(
            "SELECT (SELECT value FROM caviar_meta WHERE key = 'schema_version'),
                    (SELECT count(*) FROM pg_indexes WHERE indexname = 'trials_retried'
                     AND schemaname = current_schema())",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        (caviar_store::PG_SCHEMA_VERSION.to_string(), 1)
    );
    c.batch_execute(&format!(
        "UPDATE \"{}\".caviar_meta SET value = '99' WHERE key = 'schema_version'",
        _schema.name
    ))
    .unwrap();
    let err = PostgresStorage::open(&url).err().unwrap();
    assert!(err.to_string().contains("newer than this caviar"), "{err}");
}

#[test]
fn queued_trials_are_claimed_once_each_with_their_parameters() {
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("q")).unwrap();
        let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        let first = s.create_trial(study.id, "w", None).unwrap().unwrap();
        assert!(!first.from_queue, "{name}");
        let queued: Vec<_> = (0..20)
            .map(|i| {
                s.enqueue_trial(
                    study.id,
                    &[(
                        "lr".into(),
                        lr.clone(),
                        ParamValue::Float(0.001 * (i + 1) as f64),
                    )],
                    2,
                )
                .unwrap()
            })
            .collect();
        assert_eq!(
            queued[0].number, 1,
            "{name}: queued trials take the next numbers"
        );
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    // The limit (1) is already reached: only queued trials are handed out.
                    while let Some(t) = s.create_trial(study.id, &format!("w{w}"), Some(1)).unwrap()
                    {
                        assert!(t.from_queue);
                        mine.push(t.number);
                    }
                    mine
                })
            })
            .collect();
        let mut claimed: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        claimed.sort();
        assert_eq!(
            claimed,
            (1..=20).collect::<Vec<_>>(),
            "{name}: each claimed once"
        );
        let trials = s.trials(study.id).unwrap();
        assert_eq!(trials[5].params["lr"], ParamValue::Float(0.005), "{name}");
        assert_eq!(trials[5].state, TrialState::Running, "{name}");
        let running = s.running_trials(study.id).unwrap();
        assert_eq!(
            running.iter().filter(|r| r.attempt == 2).count(),
            20,
            "{name}"
        );
        // Retries (attempt > 0) replace lost trials in the limit: 21 trials count as 1.
        assert!(
            s.create_trial(study.id, "w", Some(1)).unwrap().is_none(),
            "{name}"
        );
        let extra = s.create_trial(study.id, "w", Some(2)).unwrap().unwrap();
        assert_eq!(extra.number, 21, "{name}");
        assert!(
            s.create_trial(study.id, "w", Some(2)).unwrap().is_none(),
            "{name}"
        );
    }
}

#[test]
fn eight_connections_writing_one_sqlite_file_never_see_it_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let study = SqliteStorage::open(&path)
        .unwrap()
        .create_study(&new_study("busy"))
        .unwrap();
    let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let path = path.clone();
            let lr = lr.clone();
            std::thread::spawn(move || {
                // Each thread its own connection, as separate processes have.
                let s = SqliteStorage::open(&path).unwrap();
                let mut n = 0;
                while let Some(t) = s
                    .create_trial(study.id, &format!("w{w}"), Some(800))
                    .unwrap()
                {
                    s.set_param(t.id, "lr", &lr, &ParamValue::Float(0.01))
                        .unwrap();
                    for step in 1..=5 {
                        s.report(t.id, step, 0.1).unwrap();
                    }
                    s.heartbeat(t.id).unwrap();
                    s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 800);
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.finished_since(study.id, 0).unwrap().len(), 800);
}

#[test]
fn silence_is_measured_from_the_last_sign_of_life() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("quiet")).unwrap();
        let t = s.create_trial(study.id, "host:1", None).unwrap().unwrap();
        let silent = |s: &Arc<dyn Storage>| s.running_trials(study.id).unwrap()[0].silent_ms;
        assert!((0..2_000).contains(&silent(&s)), "{name}: {}", silent(&s));
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(silent(&s) >= 350, "{name}: {}", silent(&s));
        s.heartbeat(t.id).unwrap();
        assert!(silent(&s) < 350, "{name}: {}", silent(&s));
        std::thread::sleep(std::time::Duration::from_millis(400));
        s.report(t.id, 1, 0.5).unwrap();
        assert!(silent(&s) < 350, "{name}: after a report {}", silent(&s));
    }
}

#[test]
fn a_trial_log_is_stored_replaced_and_read_back() {
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("logs")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        assert_eq!(s.trial_log(t.id).unwrap(), None, "{name}");
        s.set_trial_log(t.id, "epoch=1 val_acc=0.5\nwarning: ünïcode")
            .unwrap();
        s.set_trial_log(t.id, "epoch=2 val_acc=0.6").unwrap();
        assert_eq!(
            s.trial_log(t.id).unwrap().as_deref(),
            Some("epoch=2 val_acc=0.6"),
            "{name}"
        );
        assert!(
            matches!(
                s.set_trial_log(TrialId(987_654), "x"),
                Err(StorageError::NoSuchTrial(987_654))
            ),
            "{name}"
        );
    }
}

#[test]
fn many_params_are_stored_at_once_or_not_at_all_and_pages_and_analysis_reads_agree() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("a")).unwrap();
        let x = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
        let batch: Vec<(String, Distribution, ParamValue)> = (0..300)
            .map(|i| {
                (
                    format!("p{i:03}"),
                    x.clone(),
                    ParamValue::Float(i as f64 / 300.0),
                )
            })
            .collect();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        s.set_params(t.id, &batch).unwrap();
        assert_eq!(s.trial(t.id).unwrap().params.len(), 300, "{name}");
        // One name already there: nothing of the batch is added.
        let u = s.create_trial(study.id, "w", None).unwrap().unwrap();
        s.set_param(u.id, "p150", &x, &ParamValue::Float(0.5))
            .unwrap();
        assert!(
            matches!(
                s.set_params(u.id, &batch),
                Err(StorageError::ParamExists(_))
            ),
            "{name}"
        );
        assert_eq!(
            s.trial(u.id).unwrap().params.len(),
            1,
            "{name}: all or none"
        );
        s.report(t.id, 1, 0.5).unwrap();
        s.finish_trial(t.id, TrialState::Complete, Some(0.5), None)
            .unwrap();
        s.finish_trial(u.id, TrialState::Failed, None, Some("x"))
            .unwrap();
        let v = s.create_trial(study.id, "w", None).unwrap().unwrap();
        s.finish_trial(v.id, TrialState::Failed, None, Some("y"))
            .unwrap();
        assert!(
            matches!(
                s.set_params(v.id, &batch[..2]),
                Err(StorageError::NotRunning { .. })
            ),
            "{name}"
        );
        // Pages by number, and the analysis read: complete trials without curves.
        let page: Vec<u64> = s
            .trials_numbered(study.id, 1, 3)
            .unwrap()
            .iter()
            .map(|t| t.number)
            .collect();
        assert_eq!(page, vec![1, 2], "{name}");
        assert!(
            s.trials_numbered(study.id, 3, 10).unwrap().is_empty(),
            "{name}"
        );
        let analysed = s.trials_for_analysis(study.id).unwrap();
        assert_eq!(analysed.len(), 1, "{name}");
        assert_eq!(analysed[0].params.len(), 300, "{name}");
        assert!(analysed[0].intermediate.is_empty(), "{name}");
        assert_eq!(analysed[0].value, Some(0.5), "{name}");
    }
}

#[test]
fn a_recorded_parameter_is_replaced_only_while_its_trial_runs() {
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("pin")).unwrap();
        let pinned = Distribution::categorical([1i64]).unwrap();
        let queued = s
            .enqueue_trial(study.id, &[("lr".into(), pinned, ParamValue::Int(1))], 0)
            .unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        assert_eq!(t.id, queued.id, "{name}");
        let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        s.replace_param(t.id, "lr", &lr, &ParamValue::Float(1.0))
            .unwrap();
        let stored = s.trial(t.id).unwrap();
        assert_eq!(stored.params["lr"], ParamValue::Float(1.0), "{name}");
        assert_eq!(stored.distributions["lr"], lr, "{name}");
        s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
            .unwrap();
        assert!(
            s.replace_param(t.id, "lr", &lr, &ParamValue::Float(0.5))
                .is_err(),
            "{name}: a finished trial's parameter was replaced"
        );
        assert_eq!(
            s.trial(t.id).unwrap().params["lr"],
            ParamValue::Float(1.0),
            "{name}"
        );
    }
}

#[test]
fn user_attributes_are_set_replaced_and_read_per_study_and_trial() {
    use caviar_core::storage::AttrOwner;
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("attrs")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        let other = s.create_trial(study.id, "w", None).unwrap().unwrap();
        s.set_user_attr(AttrOwner::Study(study.id), "dataset", &"mnist".into())
            .unwrap();
        s.set_user_attr(AttrOwner::Trial(t.id), "epochs", &serde_json::json!(3))
            .unwrap();
        s.set_user_attr(AttrOwner::Trial(t.id), "epochs", &serde_json::json!(5))
            .unwrap();
        s.set_user_attr(
            AttrOwner::Trial(t.id),
            "notes",
            &serde_json::json!({"gpu": [0, 1]}),
        )
        .unwrap();
        s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
            .unwrap();
        // A finished trial still takes attributes (annotations after the fact).
        s.set_user_attr(AttrOwner::Trial(t.id), "checked", &true.into())
            .unwrap();
        let attrs = s.user_attrs(AttrOwner::Trial(t.id)).unwrap();
        assert_eq!(attrs["epochs"], serde_json::json!(5), "{name}");
        assert_eq!(attrs["notes"]["gpu"][1], serde_json::json!(1), "{name}");
        assert_eq!(attrs.len(), 3, "{name}");
        assert_eq!(
            s.user_attrs(AttrOwner::Study(study.id)).unwrap()["dataset"],
            "mnist",
            "{name}"
        );
        let all = s.trial_user_attrs(study.id).unwrap();
        assert_eq!(all.len(), 1, "{name}: only the trial with attributes");
        assert_eq!(all[&t.id], attrs, "{name}");
        assert!(s.user_attrs(AttrOwner::Trial(other.id)).unwrap().is_empty());
        assert!(matches!(
            s.set_user_attr(AttrOwner::Trial(TrialId(987_654)), "k", &1.into()),
            Err(StorageError::NoSuchTrial(_))
        ));
    }
}

#[test]
fn a_deleted_study_leaves_nothing_behind_and_its_name_is_free() {
    use caviar_core::storage::AttrOwner;
    for (name, s, _keep) in backends() {
        let keep = s.create_study(&new_study("keep")).unwrap();
        let gone = s.create_study(&new_study("gone")).unwrap();
        for study in [&keep, &gone] {
            let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
            let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
            s.set_param(t.id, "lr", &lr, &ParamValue::Float(0.01))
                .unwrap();
            s.report(t.id, 1, 0.5).unwrap();
            s.set_trial_log(t.id, "epoch 1").unwrap();
            s.set_user_attr(AttrOwner::Trial(t.id), "k", &1.into())
                .unwrap();
            s.finish_trial(t.id, TrialState::Complete, Some(0.5), None)
                .unwrap();
            s.study_attr_insert(study.id, "zoom", &1.into()).unwrap();
            s.set_user_attr(AttrOwner::Study(study.id), "k", &1.into())
                .unwrap();
        }
        let mut child = new_study("child");
        child.parent = Some("gone".into());
        let child = s.create_study(&child).unwrap();
        let refused = s.delete_study(gone.id).unwrap_err().to_string();
        assert!(refused.contains("parent of `child`"), "{name}: {refused}");
        s.delete_study(child.id).unwrap();
        s.delete_study(gone.id).unwrap();
        assert!(s.study("gone").unwrap().is_none(), "{name}");
        let names: Vec<String> = s
            .studies()
            .unwrap()
            .into_iter()
            .map(|x| x.study.name)
            .collect();
        assert_eq!(names, ["keep"], "{name}");
        assert!(s.trials(gone.id).unwrap().is_empty(), "{name}");
        assert!(s.trial_user_attrs(gone.id).unwrap().is_empty(), "{name}");
        assert!(s.study_attrs(gone.id).unwrap().is_empty(), "{name}");
        // The other study is whole, and the name can be used again.
        assert_eq!(s.trials(keep.id).unwrap().len(), 1, "{name}");
        assert_eq!(s.trial_user_attrs(keep.id).unwrap().len(), 1, "{name}");
        let again = s.create_study(&new_study("gone")).unwrap();
        assert_ne!(again.id, keep.id, "{name}");
        assert!(s.trials(again.id).unwrap().is_empty(), "{name}");
        assert!(
            matches!(s.delete_study(gone.id), Err(StorageError::NoSuchStudy(_)))
                || gone.id == again.id,
            "{name}"
        );
    }
}

#[test]
fn parameter_values_and_attributes_read_back_bit_for_bit() {
    use caviar_core::storage::AttrOwner;
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("bits")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        let unit = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
        // Shortest-repr decimals whose naive parse lands one unit in the last place off.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let values: Vec<f64> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        let params: Vec<(String, Distribution, ParamValue)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("p{i}"), unit.clone(), ParamValue::Float(*v)))
            .collect();
        s.set_params(t.id, &params).unwrap();
        s.set_user_attr(AttrOwner::Trial(t.id), "all", &serde_json::json!(values))
            .unwrap();
        let stored = s.trial(t.id).unwrap();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                stored.params[&format!("p{i}")],
                ParamValue::Float(*v),
                "{name}: p{i}"
            );
        }
        let attrs = s.user_attrs(AttrOwner::Trial(t.id)).unwrap();
        let back: Vec<f64> = serde_json::from_value(attrs["all"].clone()).unwrap();
        assert_eq!(back, values, "{name}");
    }
}

#[test]
fn parameter_changes_are_asked_applied_at_a_step_and_kept() {
    use caviar_core::storage::NewParamChange;
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("panda")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        let lr = Distribution::float(1e-5, 1.0, Scale::Log).unwrap();
        s.set_param(t.id, "lr", &lr, &ParamValue::Float(0.01))
            .unwrap();
        let ask = |value: f64, note: Option<&str>, forced: bool| NewParamChange {
            name: "lr".into(),
            value: ParamValue::Float(value),
            who: "ann@box".into(),
            note: note.map(String::from),
            forced,
        };
        let first = s
            .ask_param_change(t.id, &ask(0.02, Some("day one looks slow"), false))
            .unwrap();
        let second = s.ask_param_change(t.id, &ask(3.0, None, true)).unwrap();
        assert!(second > first, "{name}");
        let missing = NewParamChange {
            name: "momentum".into(),
            ..ask(0.9, None, false)
        };
        assert!(s.ask_param_change(t.id, &missing).is_err(), "{name}");
        let pending = s.pending_param_changes(t.id).unwrap();
        assert_eq!(
            pending.iter().map(|c| c.id).collect::<Vec<_>>(),
            [first, second],
            "{name}"
        );
        // Nothing changes until the trial applies it.
        assert_eq!(s.trial(t.id).unwrap().params["lr"], ParamValue::Float(0.01));
        s.apply_param_change(t.id, first, 3).unwrap();
        assert_eq!(
            s.trial(t.id).unwrap().params["lr"],
            ParamValue::Float(0.02),
            "{name}"
        );
        assert!(
            s.apply_param_change(t.id, first, 4).is_err(),
            "{name}: applied twice"
        );
        assert_eq!(s.pending_param_changes(t.id).unwrap().len(), 1, "{name}");
        s.apply_param_change(t.id, second, 5).unwrap();
        let history = s.param_changes(t.id).unwrap();
        assert_eq!(history.len(), 2, "{name}");
        assert_eq!(history[0].old, Some(ParamValue::Float(0.01)), "{name}");
        assert_eq!(history[0].new, ParamValue::Float(0.02), "{name}");
        assert_eq!(history[0].applied_step, Some(3), "{name}");
        assert_eq!(history[0].note.as_deref(), Some("day one looks slow"));
        assert_eq!(history[0].who, "ann@box");
        assert!(!history[0].forced && history[1].forced, "{name}");
        assert_eq!(history[1].old, Some(ParamValue::Float(0.02)), "{name}");
        assert!(history[0].asked_ms <= history[0].applied_ms.unwrap());
        let bulk = s.study_param_changes(study.id).unwrap();
        assert_eq!(bulk.len(), 1, "{name}");
        assert_eq!(bulk[&t.id], history, "{name}");
        s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
            .unwrap();
        assert!(matches!(
            s.ask_param_change(t.id, &ask(0.5, None, false)),
            Err(StorageError::NotRunning { .. })
        ));
        s.delete_study(study.id).unwrap();
        assert!(s.param_changes(t.id).unwrap().is_empty(), "{name}");
    }
}

#[test]
fn pause_resume_and_stop_are_recorded_until_done() {
    use caviar_core::storage::{is_paused, ControlAction, NewControl};
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("panda-control")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        let ask = |action| NewControl {
            action,
            who: "ann@box".into(),
            note: Some("lunch".into()),
        };
        let pause = s.ask_control(t.id, &ask(ControlAction::Pause)).unwrap();
        let all = s.controls(t.id).unwrap();
        assert_eq!(all.len(), 1, "{name}");
        assert_eq!(all[0].action, ControlAction::Pause, "{name}");
        assert_eq!(all[0].note.as_deref(), Some("lunch"), "{name}");
        assert!(all[0].applied_ms.is_none(), "{name}");
        assert!(!is_paused(&all), "{name}: asked, not done");
        s.apply_control(t.id, pause, Some(7)).unwrap();
        // Done twice keeps the first record.
        s.apply_control(t.id, pause, Some(9)).unwrap();
        let all = s.controls(t.id).unwrap();
        assert_eq!(all[0].applied_step, Some(7), "{name}");
        assert!(all[0].asked_ms <= all[0].applied_ms.unwrap(), "{name}");
        assert!(is_paused(&all), "{name}");
        let resume = s.ask_control(t.id, &ask(ControlAction::Resume)).unwrap();
        assert!(resume > pause, "{name}");
        s.apply_control(t.id, resume, None).unwrap();
        assert!(!is_paused(&s.controls(t.id).unwrap()), "{name}");
        assert!(
            s.apply_control(t.id, resume + 1000, None).is_err(),
            "{name}"
        );
        s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
            .unwrap();
        assert!(matches!(
            s.ask_control(t.id, &ask(ControlAction::Stop)),
            Err(StorageError::NotRunning { .. })
        ));
        s.delete_study(study.id).unwrap();
        assert!(s.controls(t.id).unwrap().is_empty(), "{name}");
    }
}

#[test]
fn a_renamed_study_keeps_its_trials_children_and_new_definition() {
    for (name, s, _keep) in backends() {
        let old = s.create_study(&new_study("old")).unwrap();
        let t = s.create_trial(old.id, "w", None).unwrap().unwrap();
        s.finish_trial(t.id, TrialState::Complete, Some(0.5), None)
            .unwrap();
        let mut child = new_study("child");
        child.parent = Some("old".into());
        s.create_study(&child).unwrap();
        s.create_study(&new_study("taken")).unwrap();
        assert!(
            matches!(
                s.rename_study(old.id, "taken", None),
                Err(StorageError::StudyExists(ref n)) if n == "taken"
            ),
            "{name}"
        );
        let spec = serde_json::json!({"text": "name = \"new\""});
        s.rename_study(old.id, "new", Some(&spec)).unwrap();
        assert!(s.study("old").unwrap().is_none(), "{name}");
        let renamed = s.study("new").unwrap().unwrap();
        assert_eq!(renamed.id, old.id, "{name}");
        assert_eq!(renamed.spec, Some(spec.clone()), "{name}");
        assert_eq!(s.trials(old.id).unwrap().len(), 1, "{name}");
        let child = s.study("child").unwrap().unwrap();
        assert_eq!(child.parent.as_deref(), Some("new"), "{name}");
        // The same name with a new definition only replaces the definition.
        s.rename_study(old.id, "new", Some(&spec)).unwrap();
        // Without a new definition the old one stays.
        s.rename_study(old.id, "newer", None).unwrap();
        assert_eq!(
            s.study("newer").unwrap().unwrap().spec,
            renamed.spec,
            "{name}"
        );
        assert!(
            matches!(
                s.rename_study(caviar_core::trial::StudyId(9999), "x", None),
                Err(StorageError::NoSuchStudy(_))
            ),
            "{name}"
        );
    }
}

/// A study with one of everything a study can hold: each state, a retry, NaN and finite
/// reports, logs, attributes, a parameter change and a pause, a parent.
fn rich_study(s: &dyn Storage) -> caviar_core::storage::StudyRecord {
    use caviar_core::storage::{AttrOwner, ControlAction, NewControl, NewParamChange};
    s.create_study(&new_study("base")).unwrap();
    let mut new = new_study("rich");
    new.parent = Some("base".into());
    new.spec = Some(serde_json::json!({"text": "name = \"rich\"", "space": {"lr": 1}}));
    let study = s.create_study(&new).unwrap();
    s.set_user_attr(AttrOwner::Study(study.id), "dataset", &"mnist".into())
        .unwrap();
    s.study_attr_insert(
        study.id,
        "zoom_round_0",
        &serde_json::json!({"lr": [0.1, 0.2]}),
    )
    .unwrap();
    let lr = Distribution::float(1e-5, 1.0, Scale::Log).unwrap();
    let act = Distribution::categorical(vec![
        ParamValue::Str("relu".into()),
        ParamValue::Str("tanh".into()),
    ])
    .unwrap();
    let units = Distribution::int(1, 100, Scale::Linear).unwrap();
    let t0 = s
        .create_trial(study.id, "ann@box:1", None)
        .unwrap()
        .unwrap();
    s.set_params(
        t0.id,
        &[
            ("lr".into(), lr.clone(), ParamValue::Float(0.1 + 0.2)),
            ("act".into(), act.clone(), ParamValue::Str("tanh".into())),
            ("units".into(), units.clone(), ParamValue::Int(64)),
        ],
    )
    .unwrap();
    s.report(t0.id, 1, 0.5).unwrap();
    s.report(t0.id, 2, f64::NAN).unwrap();
    s.report(t0.id, 3, 1e-300).unwrap();
    s.report_metrics(
        t0.id,
        1,
        &[("train_loss".into(), 0.7), ("lr".into(), 0.1 + 0.2)],
    )
    .unwrap();
    s.report_metrics(t0.id, 2, &[("train_loss".into(), f64::NAN)])
        .unwrap();
    s.set_trial_log(t0.id, "epoch 1\nepoch 2 ünïcode\n")
        .unwrap();
    s.set_user_attr(
        AttrOwner::Trial(t0.id),
        "note",
        &serde_json::json!({"a": [1, 2.5]}),
    )
    .unwrap();
    let change = s
        .ask_param_change(
            t0.id,
            &NewParamChange {
                name: "lr".into(),
                value: ParamValue::Float(0.03),
                who: "ann".into(),
                note: Some("slower".into()),
                forced: false,
            },
        )
        .unwrap();
    s.apply_param_change(t0.id, change, 2).unwrap();
    let pause = s
        .ask_control(
            t0.id,
            &NewControl {
                action: ControlAction::Pause,
                who: "ann".into(),
                note: None,
            },
        )
        .unwrap();
    s.apply_control(t0.id, pause, Some(2)).unwrap();
    s.ask_control(
        t0.id,
        &NewControl {
            action: ControlAction::Resume,
            who: "bob".into(),
            note: Some("go on".into()),
        },
    )
    .unwrap();
    s.set_constraints(t0.id, &[-1.5, 0.25, caviar_core::constraint::MISSING])
        .unwrap();
    s.finish_trial(
        t0.id,
        TrialState::Complete,
        Some(0.123_456_789_012_345_67),
        None,
    )
    .unwrap();
    let t1 = s.create_trial(study.id, "w", None).unwrap().unwrap();
    s.set_param(t1.id, "lr", &lr, &ParamValue::Float(1e-5))
        .unwrap();
    s.finish_trial(t1.id, TrialState::Failed, None, Some("exit 3\nTraceback"))
        .unwrap();
    let t2 = s.create_trial(study.id, "w", None).unwrap().unwrap();
    s.report(t2.id, 1, 0.9).unwrap();
    s.finish_trial(t2.id, TrialState::Pruned, Some(0.9), None)
        .unwrap();
    s.create_trial(study.id, "w", None).unwrap().unwrap();
    s.enqueue_trial_with_attrs(
        study.id,
        &[("lr".into(), lr, ParamValue::Float(0.01))],
        1,
        &[("retry_of".into(), 1.into())],
    )
    .unwrap();
    study
}

#[test]
fn export_import_export_is_byte_for_byte_the_same_between_every_pair_of_backends() {
    use caviar_core::document::{export, StudyDocument};
    for (from, source, _keep) in backends() {
        let study = rich_study(&*source);
        let doc = export(&*source, &study).unwrap();
        let text = serde_json::to_string_pretty(&doc).unwrap();
        assert_eq!(doc.trials.len(), 5, "{from}");
        assert_eq!(doc.trials[4].attempt, 1, "{from}");
        assert_eq!(doc.trials[4].state, TrialState::Waiting, "{from}");
        assert_eq!(doc.trials[0].intermediate[1], (2, None), "{from}");
        assert_eq!(doc.trials[0].param_changes.len(), 1, "{from}");
        assert_eq!(doc.trials[0].controls.len(), 2, "{from}");
        assert_eq!(
            doc.trials[0].constraints,
            [-1.5, 0.25, caviar_core::constraint::MISSING],
            "{from}"
        );
        assert!(doc.trials[1].constraints.is_empty(), "{from}");
        assert_eq!(
            doc.trials[0].metrics["train_loss"],
            [(1, Some(0.7)), (2, None)],
            "{from}"
        );
        for (to, target, _keep_target) in backends() {
            target.create_study(&new_study("base")).unwrap();
            let read = StudyDocument::from_json(&text).unwrap();
            let imported = target.import_study(&read).unwrap();
            let again =
                serde_json::to_string_pretty(&export(&*target, &imported).unwrap()).unwrap();
            assert_eq!(again, text, "{from} -> {to}");
            // The imported study works on: its numbers go on, its finished trials are known
            // in their order, and the name is taken.
            // The queued retry is claimed first, then numbers go on.
            let queued = target
                .create_trial(imported.id, "w", None)
                .unwrap()
                .unwrap();
            assert_eq!(queued.number, 4, "{from} -> {to}");
            let next = target
                .create_trial(imported.id, "w", None)
                .unwrap()
                .unwrap();
            assert_eq!(next.number, 5, "{from} -> {to}");
            let finished: Vec<u64> = target
                .finished_since(imported.id, 0)
                .unwrap()
                .iter()
                .map(|t| t.number)
                .collect();
            assert_eq!(finished, [0, 1, 2], "{from} -> {to}");
            assert!(target.finished_since(imported.id, 3).unwrap().is_empty());
            assert!(matches!(
                target.import_study(&read),
                Err(StorageError::StudyExists(_))
            ));
        }
        // A parent that the target lacks is refused, and nothing is left behind.
        let (_, lonely, _k) = backends().remove(0);
        assert!(matches!(
            lonely.import_study(&doc),
            Err(StorageError::NoSuchStudy(ref p)) if p == "base"
        ));
        assert!(lonely.study("rich").unwrap().is_none());
    }
}

#[test]
fn every_reported_metric_is_its_own_series_replaced_by_step_and_deleted_with_its_study() {
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("metrics")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        let other = s.create_trial(study.id, "w", None).unwrap().unwrap();
        for step in 1..=3u64 {
            s.report_metrics(
                t.id,
                step,
                &[
                    ("train_loss".into(), 1.0 / step as f64),
                    ("lr".into(), 0.1),
                    ("throughput".into(), 1000.0 + step as f64),
                ],
            )
            .unwrap();
        }
        // A repeated step replaces; NaN reads back as NaN.
        s.report_metrics(
            t.id,
            3,
            &[("lr".into(), 0.05), ("grad_norm".into(), f64::NAN)],
        )
        .unwrap();
        s.finish_trial(t.id, TrialState::Complete, Some(1.0), None)
            .unwrap();
        assert!(
            matches!(
                s.report_metrics(t.id, 4, &[("lr".into(), 0.01)]),
                Err(StorageError::NotRunning { .. })
            ),
            "{name}"
        );
        let all = s.trial_metrics(study.id).unwrap();
        assert_eq!(all.len(), 1, "{name}: only the trial with metrics");
        let m = &all[&t.id];
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["grad_norm", "lr", "throughput", "train_loss"],
            "{name}"
        );
        assert_eq!(m["lr"], [(1, 0.1), (2, 0.1), (3, 0.05)], "{name}");
        assert_eq!(m["train_loss"][2], (3, 1.0 / 3.0), "{name}");
        assert!(m["grad_norm"][0].1.is_nan(), "{name}");
        // Some trials' series only: the same rows, the others left out.
        let some = s.trial_metrics_of(study.id, &[t.id, other.id]).unwrap();
        assert_eq!(some.len(), 1, "{name}");
        assert_eq!(some[&t.id]["lr"], m["lr"], "{name}");
        assert_eq!(some[&t.id]["train_loss"], m["train_loss"], "{name}");
        assert!(
            s.trial_metrics_of(study.id, &[other.id])
                .unwrap()
                .is_empty(),
            "{name}"
        );
        assert!(
            s.trial_metrics_of(study.id, &[]).unwrap().is_empty(),
            "{name}"
        );
        s.finish_trial(other.id, TrialState::Failed, None, Some("x"))
            .unwrap();
        s.delete_study(study.id).unwrap();
        assert!(s.trial_metrics(study.id).unwrap().is_empty(), "{name}");
    }
}

#[test]
fn metrics_reported_with_the_objective_and_alone_read_back_as_one_series() {
    for (name, s, _keep) in backends() {
        let study = s.create_study(&new_study("mixed")).unwrap();
        let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
        s.report_all(t.id, 1, 0.9, &[("acc".into(), 0.5), ("lr".into(), 0.1)])
            .unwrap();
        // The same step again, and a metric of that step reported alone.
        s.report_all(t.id, 1, 0.8, &[("acc".into(), 0.6)]).unwrap();
        s.report_metrics(t.id, 1, &[("grad".into(), 2.0)]).unwrap();
        s.report_all(t.id, 2, 0.7, &[]).unwrap();
        s.report_metrics(t.id, 2, &[("acc".into(), 0.7)]).unwrap();
        s.report_all(t.id, 3, 0.6, &[("acc".into(), 0.8)]).unwrap();
        let m = &s.trial_metrics(study.id).unwrap()[&t.id];
        assert_eq!(m["acc"], [(1, 0.6), (2, 0.7), (3, 0.8)], "{name}");
        assert_eq!(m["lr"], [(1, 0.1)], "{name}");
        assert_eq!(m["grad"], [(1, 2.0)], "{name}");
        // Read for that trial alone, the objective's rows and the others' come back alike.
        assert_eq!(
            &s.trial_metrics_of(study.id, &[t.id]).unwrap()[&t.id],
            m,
            "{name}"
        );
        let values = s.trials(study.id).unwrap()[0].intermediate.clone();
        assert_eq!(values, [(1, 0.8), (2, 0.7), (3, 0.6)], "{name}");
        s.delete_study(study.id).unwrap();
    }
}

#[test]
fn constraint_values_are_kept_per_trial_and_infeasible_trials_are_not_the_summary_best() {
    for (name, s, _dir) in backends() {
        let study = s.create_study(&new_study("c")).unwrap();
        let mut ids = Vec::new();
        for (value, constraints) in [
            (0.9, vec![0.5, -1.0]),
            (0.7, vec![-0.5, 0.0]),
            (0.8, vec![]),
            (0.95, vec![caviar_core::constraint::MISSING]),
        ] {
            let t = s.create_trial(study.id, "w", None).unwrap().unwrap();
            if !constraints.is_empty() {
                s.set_constraints(t.id, &constraints).unwrap();
            }
            s.finish_trial(t.id, TrialState::Complete, Some(value), None)
                .unwrap();
            ids.push((t.id, constraints));
        }
        // Only a running trial takes constraint values.
        assert!(
            matches!(
                s.set_constraints(ids[0].0, &[1.0]),
                Err(StorageError::NotRunning { .. })
            ),
            "{name}"
        );
        for (id, constraints) in &ids {
            assert_eq!(&s.trial(*id).unwrap().constraints, constraints, "{name}");
        }
        let finished = s.finished_since(study.id, 0).unwrap();
        let feasible: Vec<bool> = finished.iter().map(|t| t.is_feasible()).collect();
        assert_eq!(feasible, [false, true, true, false], "{name}");
        // "acc" is maximised: 0.95 and 0.9 broke constraints, so 0.8 is the best.
        let summary = s
            .studies()
            .unwrap()
            .into_iter()
            .find(|x| x.study.name == "c")
            .unwrap();
        assert_eq!(summary.best_value, Some(0.8), "{name}");
        let all = s.trials(study.id).unwrap();
        let best = caviar_core::trial::best_trials(&all, Direction::Maximize, 3);
        let numbers: Vec<u64> = best.iter().map(|t| t.number).collect();
        assert_eq!(numbers, [2, 1], "{name}");
    }
}
