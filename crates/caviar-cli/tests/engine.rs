//! The run loop as a library: a plain Rust program drives a study through `caviar_engine`
//! (two worker threads, a heartbeat, a cancellation, an observer), and `caviar run` resumes
//! the stored study to its total.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caviar_core::space::{Distribution, Scale, SearchSpace};
use caviar_core::storage::Storage;
use caviar_core::study::Outcome;
use caviar_core::trial::{Direction, TrialState};
use caviar_engine::{Limits, Observer, Recovery, SamplerSpec, StudySetup};
use caviar_run::WorkerId;

/// Counts what the run reports.
#[derive(Default)]
struct Counter {
    done: AtomicU64,
    complete: AtomicU64,
}

impl Observer for Counter {
    fn trial_done(&self, _: u64, state: TrialState, _: &Outcome, _: Direction) {
        self.done.fetch_add(1, Ordering::SeqCst);
        if state == TrialState::Complete {
            self.complete.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn note(&self, _: &str) {}
}

const STUDY_FILE: &str = r#"name = "lib"
direction = "minimize"
metric = "loss"
trials = 20
workers = 2
command = ["sh", "-c", "echo loss=$CAVIAR_PARAM_X"]

[sampler]
kind = "tpe"
startup_trials = 4

[params]
x = { low = 0.0, high = 1.0 }
"#;

#[test]
fn a_rust_program_runs_a_study_through_the_engine_and_caviar_run_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    let storage: Arc<dyn Storage> = Arc::new(caviar_store::SqliteStorage::open(&db).unwrap());
    let mut space = SearchSpace::new();
    space
        .add("x", Distribution::float(0.0, 1.0, Scale::Linear).unwrap())
        .unwrap();
    let sampler = SamplerSpec {
        startup_trials: Some(4),
        ..SamplerSpec::of_kind("tpe")
    }
    .build(&space, &Default::default())
    .unwrap();
    let me = WorkerId::current();
    let study = caviar_engine::open_study(
        &storage,
        StudySetup {
            name: "lib",
            direction: Direction::Minimize,
            metric: "loss",
            space: &space,
            spec: serde_json::json!({ "space": space }),
            sampler,
            pruner: caviar_engine::PrunerSpec::of_kind("none").build().unwrap(),
            origin: "a Rust program",
            url: "sqlite:lib.db",
            parent: None,
            warm_start: &[],
            enqueue_best: 0,
        },
        &me,
    )
    .unwrap();
    let recovery = Recovery {
        retries: 0,
        heartbeat: Duration::from_millis(200),
    };
    assert_eq!(
        caviar_engine::recover(&study, &me, recovery)
            .unwrap()
            .counts
            .total(),
        0
    );
    let cancel = AtomicBool::new(false);
    let counter = Counter::default();
    let finished = AtomicU64::new(0);
    caviar_engine::drive(
        &study,
        &space,
        Limits {
            total: 20,
            deadline: None,
            recovery,
            max_failures: caviar_engine::DEFAULT_MAX_FAILURES,
            run_trials: None,
        },
        2,
        &cancel,
        &counter,
        |trial, _| {
            std::thread::sleep(Duration::from_millis(30));
            let x = trial.params()["x"].as_f64().unwrap();
            // The token stops the run after 6 trials; those in flight finish.
            if finished.fetch_add(1, Ordering::SeqCst) + 1 >= 6 {
                cancel.store(true, Ordering::SeqCst);
            }
            Outcome::Complete(x)
        },
    )
    .unwrap();
    let stored = storage.trials(study.record().id).unwrap();
    let done = counter.done.load(Ordering::SeqCst);
    assert!(
        (6..20).contains(&done),
        "{done} trials before the cancel took"
    );
    assert_eq!(done, stored.len() as u64, "one event per stored trial");
    assert_eq!(counter.complete.load(Ordering::SeqCst), done);
    assert!(stored.iter().all(|t| t.state == TrialState::Complete));
    drop(study);
    drop(storage);

    // The CLI resumes what the library stored and runs it to its total.
    let file = dir.path().join("lib.toml");
    std::fs::write(&file, STUDY_FILE).unwrap();
    let url = format!("sqlite:{}", db.display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", &url, "run", file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("resuming study `lib`: {done} trials so far")),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["complete"], 20, "{summary}");
}
