//! Panda mode for command trials: `caviar set` changes a running command's parameter; the
//! command reads it from `CAVIAR_PARAMS_FILE` (signalled with `on_change`), acknowledges with
//! `applied=VERSION`, and its curve and the record show it.

use std::path::Path;

#[path = "support/pg.rs"]
mod pg;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TRAIN: &str = r#"
import json, os, signal, time
signals = [0]
signal.signal(signal.SIGUSR1, lambda *_: signals.__setitem__(0, signals[0] + 1))
path = os.environ["CAVIAR_PARAMS_FILE"]
seen = 0
for epoch in range(1, 61):
    with open(path) as f:
        doc = json.load(f)
    ack = f" applied={doc['version']}" if doc["version"] > seen else ""
    seen = doc["version"]
    print(f"epoch={epoch} val={doc['params']['lr']} signals={signals[0]}{ack}", flush=True)
    time.sleep(0.1)
"#;

const STUDY: &str = r#"name = "babysat"
direction = "minimize"
metric = "val"
trials = 1
command = ["python3", "train.py"]
on_change = "SIGUSR1"

[params]
lr = { low = 0.0001, high = 0.1, scale = "log" }
"#;

fn caviar(storage: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caviar"))
        .arg("--storage")
        .arg(storage)
        .args(args)
        .output()
        .unwrap()
}

/// `caviar run FILE`, which must succeed (its errors are the test's message).
fn run_ok(storage: &str, file: &Path) {
    let run = caviar(storage, &["run", file.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `caviar run FILE` in the background (its errors kept for the test's message).
fn start_run(storage: &str, file: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", storage, "run"])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The trials of `study` as `caviar trials --json` lists them (null while none can be read).
fn listed(storage: &str, study: &str) -> serde_json::Value {
    let out = caviar(storage, &["trials", study, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn trials(storage: &str) -> serde_json::Value {
    listed(storage, "babysat")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn caviar_set_reaches_a_running_command_through_its_parameters_file() {
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        println!("skipped: no python3 to run the trial script");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), TRAIN).unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, STUDY).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("s.db").display());
    let mut run = start_run(&storage, &file);
    wait_for("three reports", || {
        trials(&storage)[0]["intermediate"]
            .as_array()
            .is_some_and(|c| c.len() >= 3)
    });
    // Out of range: refused, naming the parameter and its range.
    let refused = caviar(&storage, &["set", "babysat", "0", "lr=0.5"]);
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("`lr`") && message.contains("outside float [0.0001, 0.1] log"),
        "{message}"
    );
    let asked = caviar(
        &storage,
        &[
            "set", "babysat", "0", "lr=0.05", "--note", "faster", "--json",
        ],
    );
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let status = run.wait().unwrap();
    assert!(status.success(), "{:?}", run.stderr.take());
    let listed = trials(&storage);
    let trial = &listed[0];
    let (change,) = match trial["param_history"].as_array().unwrap().as_slice() {
        [c] => (c.clone(),),
        other => panic!("one change expected: {other:?}"),
    };
    assert_eq!(change["new"], 0.05);
    assert_eq!(change["note"], "faster");
    let applied = change["applied_step"]
        .as_u64()
        .expect("the command acknowledged it");
    let old = change["old"].as_f64().unwrap();
    // The curve: the old rate up to the step before, the new one from the acknowledged step.
    for point in trial["intermediate"].as_array().unwrap() {
        let (step, value) = (point[0].as_u64().unwrap(), point[1].as_f64().unwrap());
        let expected = if step < applied { old } else { 0.05 };
        assert_eq!(value, expected, "step {step} (applied at {applied})");
    }
    assert!(applied > 3 && applied < 60, "{applied}");
    assert_eq!(trial["params"]["lr"], 0.05);
    // on_change = "SIGUSR1" reached the command: its last lines count the signal.
    let store = caviar_store::open_storage(&storage).unwrap();
    let record = store.study("babysat").unwrap().unwrap();
    let id = store.trials(record.id).unwrap()[0].id;
    let log = store.trial_log(id).unwrap().unwrap_or_default();
    assert!(
        log.lines().last().is_some_and(|l| l.contains("signals=1")),
        "{log}"
    );
    assert!(Path::new(&dir.path().join("s.db")).exists());
}

#[test]
fn on_change_names_a_signal_caviar_sends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), TRAIN).unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, STUDY.replace("SIGUSR1", "SIGKILL")).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("s.db").display());
    let out = caviar(&storage, &["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("on_change") && message.contains("SIGUSR1"),
        "{message}"
    );
}

const TRAINER_STUDY: &str = r#"name = "trainer"
direction = "maximize"
metric = "val_acc"
trials = 1
objective = "mnist"

[mnist]
images = 1000
validation_fraction = 0.2
seed = 0
epochs = 150
layers = 1
batch_size = 64

[params]
lr = { low = 0.001, high = 0.1, scale = "log" }
units = { low = 8, high = 32, type = "int" }
"#;

#[test]
fn the_built_in_trainer_applies_changes_after_an_epoch_and_refuses_structural_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, TRAINER_STUDY).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("t.db").display());
    let mut run = start_run(&storage, &file);
    let list = |storage: &str| listed(storage, "trainer");
    wait_for("three reports", || {
        list(&storage)[0]["intermediate"]
            .as_array()
            .is_some_and(|c| c.len() >= 3)
    });
    let structural = caviar(&storage, &["set", "trainer", "0", "units=20"]);
    assert_eq!(structural.status.code(), Some(2));
    let message = String::from_utf8_lossy(&structural.stderr);
    assert!(
        message.contains("`units`") && message.contains("cannot change it during training"),
        "{message}"
    );
    let asked = caviar(
        &storage,
        &["set", "trainer", "0", "lr=0.002", "--note", "calmer"],
    );
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let status = run.wait().unwrap();
    assert!(status.success(), "{:?}", run.stderr.take());
    let trial = &list(&storage)[0];
    let change = &trial["param_history"][0];
    assert_eq!(change["new"], 0.002);
    assert_eq!(change["note"], "calmer");
    let applied = change["applied_step"]
        .as_u64()
        .expect("applied after an epoch");
    assert!((3..150).contains(&applied), "{applied}");
    assert_eq!(trial["params"]["lr"], 0.002);
    assert_eq!(
        trial["intermediate"].as_array().unwrap().len(),
        150,
        "it trained on"
    );
    // The trainer's log says when it took the change.
    let store = caviar_store::open_storage(&storage).unwrap();
    let record = store.study("trainer").unwrap().unwrap();
    let id = store.trials(record.id).unwrap()[0].id;
    let log = store.trial_log(id).unwrap().unwrap_or_default();
    assert!(
        log.contains(&format!("after epoch {applied}: lr = 0.002")),
        "{log}"
    );
}

const COUNTER: &str = r#"
import time
for epoch in range(1, 601):
    print(f"epoch={epoch} val={epoch}", flush=True)
    time.sleep(0.1)
"#;

const COUNTED: &str = r#"name = "held"
direction = "maximize"
metric = "val"
trials = 1
command = ["python3", "counter.py"]
heartbeat = "0.3s"

[params]
lr = { low = 0.0001, high = 0.1, scale = "log" }
"#;

fn reports(storage: &str) -> usize {
    listed(storage, "held")[0]["intermediate"]
        .as_array()
        .map_or(0, |c| c.len())
}

#[test]
fn pause_holds_a_command_with_its_heartbeat_alive_resume_continues_and_stop_completes_it() {
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        println!("skipped: no python3 to run the trial script");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("counter.py"), COUNTER).unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, COUNTED).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("s.db").display());
    let mut run = start_run(&storage, &file);
    wait_for("three reports", || reports(&storage) >= 3);
    // Not paused: nothing to resume, refused with exit 2.
    let refused = caviar(&storage, &["resume", "held", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not paused"));
    let paused = caviar(
        &storage,
        &["pause", "held", "0", "--note", "lunch", "--json"],
    );
    assert!(
        paused.status.success(),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&paused.stdout).unwrap();
    assert_eq!(answer["action"], "pause");
    // Taken within a poll (0.5 s) plus a line in flight.
    std::thread::sleep(Duration::from_millis(1500));
    let held_at = reports(&storage);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reports(&storage), held_at, "no reports while paused");
    let store = caviar_store::open_storage(&storage).unwrap();
    let record = store.study("held").unwrap().unwrap();
    let running = store.running_trials(record.id).unwrap();
    assert_eq!(running.len(), 1, "still running after 10 heartbeat periods");
    assert!(
        running[0].silent_ms < 1000,
        "its heartbeat went on: silent {} ms",
        running[0].silent_ms
    );
    let twice = caviar(&storage, &["pause", "held", "0"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(caviar(&storage, &["resume", "held", "0"]).status.success());
    wait_for("reports after the resume", || {
        reports(&storage) >= held_at + 3
    });
    assert!(
        caviar(&storage, &["stop", "held", "0", "--note", "good enough"])
            .status
            .success()
    );
    let status = run.wait().unwrap();
    assert!(status.success(), "{:?}", run.stderr.take());
    let trial = &listed(&storage, "held")[0];
    assert_eq!(trial["state"], "complete");
    let curve = trial["intermediate"].as_array().unwrap();
    let last = curve.last().unwrap()[1].as_f64().unwrap();
    assert_eq!(
        trial["value"].as_f64(),
        Some(last),
        "its last reported value"
    );
    assert!(last < 300.0, "stopped early: {last}");
    let requests = store
        .controls(store.trials(record.id).unwrap()[0].id)
        .unwrap();
    let actions: Vec<&str> = requests.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["pause", "resume", "stop"]);
    assert!(requests.iter().all(|r| r.applied_ms.is_some()));
    assert_eq!(requests[0].note.as_deref(), Some("lunch"));
    assert!(requests[0].applied_step.is_some_and(|s| s >= 3));
}

#[test]
fn the_built_in_trainer_waits_between_batches_while_paused_and_a_stop_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(
        &file,
        TRAINER_STUDY.replace("\"trainer\"", "\"held-trainer\""),
    )
    .unwrap();
    let storage = format!("sqlite:{}", dir.path().join("t.db").display());
    let mut run = start_run(&storage, &file);
    let curve = |storage: &str| {
        listed(storage, "held-trainer")[0]["intermediate"]
            .as_array()
            .map_or(0, |c| c.len())
    };
    wait_for("three reports", || curve(&storage) >= 3);
    assert!(caviar(&storage, &["pause", "held-trainer", "0"])
        .status
        .success());
    std::thread::sleep(Duration::from_millis(1500));
    let held_at = curve(&storage);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(curve(&storage), held_at, "no epochs while paused");
    // Stopped while paused: it ends at once, complete with its last validation accuracy.
    assert!(caviar(&storage, &["stop", "held-trainer", "0"])
        .status
        .success());
    let status = run.wait().unwrap();
    assert!(status.success(), "{:?}", run.stderr.take());
    let trial = &listed(&storage, "held-trainer")[0];
    assert_eq!(trial["state"], "complete");
    let points = trial["intermediate"].as_array().unwrap();
    assert_eq!(points.len(), held_at, "{points:?}");
    assert_eq!(trial["value"], points.last().unwrap()[1]);
}

const CHECKPOINTED: &str = r#"
import json, os
folder = os.environ["CAVIAR_TRIAL_DIR"]
first = 1
restore = os.environ.get("CAVIAR_RESTORE_FROM")
if restore:
    with open(os.path.join(restore, "checkpoint.json")) as f:
        first = json.load(f)["epoch"] + 1
lr = float(os.environ["CAVIAR_PARAM_LR"])
for epoch in range(first, first + 5):
    print(f"epoch={epoch} val={epoch * lr}", flush=True)
    with open(os.path.join(folder, "checkpoint.new"), "w") as f:
        json.dump({"epoch": epoch}, f)
    os.replace(os.path.join(folder, "checkpoint.new"), os.path.join(folder, "checkpoint.json"))
"#;

const FORKED: &str = r#"name = "forked"
direction = "maximize"
metric = "val"
trials = 3
command = ["python3", "checkpointed.py"]
keep_checkpoints = 2

[sampler]
kind = "random"
seed = 4

[params]
lr = { low = 0.0001, high = 0.01, scale = "log" }
"#;

#[test]
fn trials_get_folders_the_best_keep_theirs_and_a_fork_continues_from_a_checkpoint() {
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        println!("skipped: no python3 to run the trial script");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("checkpointed.py"), CHECKPOINTED).unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, FORKED).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("s.db").display());
    run_ok(&storage, &file);
    let folders = dir.path().join("caviar-trials").join("forked");
    let trials = listed(&storage, "forked");
    let mut by_value: Vec<(f64, u64)> = trials
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["value"].as_f64().unwrap(), t["number"].as_u64().unwrap()))
        .collect();
    by_value.sort_by(|a, b| b.0.total_cmp(&a.0));
    // keep_checkpoints = 2: the best two trials keep their folders, the third's is gone.
    for (rank, (_, number)) in by_value.iter().enumerate() {
        let kept = folders
            .join(format!("trial-{number}"))
            .join("checkpoint.json");
        assert_eq!(kept.exists(), rank < 2, "trial {number}, rank {rank}");
    }
    let (worst, best) = (by_value[2].1, by_value[0].1);
    let gone = caviar(&storage, &["fork", "forked", &worst.to_string()]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no checkpoint to fork from"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    let outside = caviar(&storage, &["fork", "forked", &best.to_string(), "lr=0.5"]);
    assert_eq!(outside.status.code(), Some(2));
    let forked = caviar(
        &storage,
        &[
            "fork",
            "forked",
            &best.to_string(),
            "lr=0.009",
            "--note",
            "push on",
            "--json",
        ],
    );
    assert!(
        forked.status.success(),
        "{}",
        String::from_utf8_lossy(&forked.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&forked.stdout).unwrap();
    assert_eq!(answer["number"], 3);
    assert_eq!(answer["params"]["lr"], 0.009);
    // A queued trial runs even beyond the total.
    let again = caviar(&storage, &["run", file.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let child = &listed(&storage, "forked")[3];
    assert_eq!(child["state"], "complete");
    assert_eq!(child["params"]["lr"], 0.009);
    assert_eq!(child["user_attrs"]["forked_from"], best);
    assert_eq!(child["user_attrs"]["fork_note"], "push on");
    // Its first report continues the parent's curve (epochs 1-5) at epoch 6.
    let curve = child["intermediate"].as_array().unwrap();
    assert_eq!(curve[0][0], 6, "{curve:?}");
    assert_eq!(curve.len(), 5);
}

#[test]
fn a_fork_of_a_built_in_trainer_trial_continues_from_its_saved_weights() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(
        &file,
        TRAINER_STUDY.replace("\"trainer\"", "\"forked-trainer\""),
    )
    .unwrap();
    let storage = format!("sqlite:{}", dir.path().join("t.db").display());
    let mut run = start_run(&storage, &file);
    let list = |storage: &str| listed(storage, "forked-trainer");
    wait_for("three reports", || {
        list(&storage)[0]["intermediate"]
            .as_array()
            .is_some_and(|c| c.len() >= 3)
    });
    assert!(caviar(&storage, &["stop", "forked-trainer", "0"])
        .status
        .success());
    assert!(run.wait().unwrap().success(), "{:?}", run.stderr.take());
    let parent = &list(&storage)[0];
    let last_step = parent["intermediate"].as_array().unwrap().last().unwrap()[0]
        .as_u64()
        .unwrap();
    let checkpoint = dir
        .path()
        .join("caviar-trials/forked-trainer/trial-0/trainer.ckpt");
    assert!(checkpoint.exists(), "{}", checkpoint.display());
    // What shapes the network cannot change: the fork starts from its weights.
    let structural = caviar(&storage, &["fork", "forked-trainer", "0", "units=20"]);
    assert_eq!(structural.status.code(), Some(2));
    let forked = caviar(&storage, &["fork", "forked-trainer", "0", "lr=0.002"]);
    assert!(
        forked.status.success(),
        "{}",
        String::from_utf8_lossy(&forked.stderr)
    );
    let again = caviar(&storage, &["run", file.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let child = &list(&storage)[1];
    assert_eq!(child["state"], "complete");
    assert_eq!(child["user_attrs"]["forked_from"], 0);
    let curve = child["intermediate"].as_array().unwrap();
    assert_eq!(curve[0][0].as_u64(), Some(last_step + 1), "{curve:?}");
    assert_eq!(curve.last().unwrap()[0], 150);
    // It started from trained weights, not from scratch: its first accuracy is the parent's
    // level, far above a fresh network's first epoch.
    let parent_first = parent["intermediate"][0][1].as_f64().unwrap();
    let child_first = curve[0][1].as_f64().unwrap();
    assert!(
        child_first >= parent_first - 0.02,
        "{child_first} vs {parent_first}"
    );
}

const PBT_STUDY: &str = r#"name = "population"
direction = "maximize"
metric = "val_acc"
trials = 4
workers = 4
objective = "mnist"

[mnist]
images = 1000
validation_fraction = 0.2
seed = 0
epochs = 8
layers = 1
units = 16
batch_size = 32
optimizer = "sgd"

[sampler]
kind = "random"
seed = 1

[pbt]
population = 4
interval = 2
seed = 5

[params]
lr = { low = 0.0001, high = 0.1, scale = "log" }
"#;

#[test]
fn pbt_members_in_the_bottom_copy_a_top_members_checkpoint_and_perturb_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, PBT_STUDY).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("p.db").display());
    // A structural parameter cannot differ between members.
    let structural = dir.path().join("structural.toml");
    std::fs::write(
        &structural,
        PBT_STUDY.replace("units = 16\n", "") + "units = { low = 8, high = 32, type = \"int\" }\n",
    )
    .unwrap();
    let refused = caviar(&storage, &["run", structural.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`units` cannot differ between members"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    run_ok(&storage, &file);
    let members = listed(&storage, "population");
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 4);
    let mut exploits = 0;
    for m in members {
        assert_eq!(m["state"], "complete", "{m}");
        let number = m["number"].as_u64().unwrap();
        let Some(lineage) = m["user_attrs"]["pbt_exploits"].as_array() else {
            continue;
        };
        for e in lineage {
            exploits += 1;
            let (step, from) = (e["step"].as_u64().unwrap(), e["from"].as_u64().unwrap());
            assert_eq!(step % 2, 0, "{e}");
            assert_ne!(from, number);
            // The explore step is in the audit record, asked by the scheduler, inside the
            // distribution.
            let note = format!("exploit trial {from} at step {step}");
            let changes: Vec<&serde_json::Value> = m["param_history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["note"] == note.as_str())
                .collect();
            assert!(!changes.is_empty(), "{m}");
            for c in changes {
                assert_eq!(c["who"], "pbt");
                assert_eq!(c["applied_step"], step);
                let lr = c["new"].as_f64().unwrap();
                assert!((0.0001..=0.1).contains(&lr), "{lr}");
            }
        }
    }
    assert!(exploits > 0, "no member exploited: {members:?}");
}

#[test]
fn a_pbt_screen_keeps_the_best_first_reports_and_stops_the_rest_as_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("s.db").display());
    let screened = PBT_STUDY
        .replace("trials = 4\nworkers = 4\n", "trials = 6\nworkers = 6\n")
        .replace("population = 4\n", "population = 3\nscreen = 6\n");
    // The screen must start more members than go on, and the trials are the members started.
    for (bad, says) in [
        (
            screened.replace("screen = 6", "screen = 3"),
            "screen = 3: give more members",
        ),
        (
            screened.replace("trials = 6\nworkers = 6", "trials = 3\nworkers = 3"),
            "screen = 6: the members are the study's trials",
        ),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, bad).unwrap();
        let refused = caviar(&storage, &["run", file.to_str().unwrap()]);
        assert_eq!(refused.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
    let file = dir.path().join("study.toml");
    std::fs::write(&file, &screened).unwrap();
    run_ok(&storage, &file);
    let members = listed(&storage, "population");
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 6);
    let first = |m: &serde_json::Value| m["intermediate"][0][1].as_f64().unwrap();
    let (kept, cut): (Vec<_>, Vec<_>) = members.iter().partition(|m| m["state"] == "complete");
    assert_eq!(kept.len(), 3, "{members:?}");
    for m in &cut {
        assert_eq!(m["state"], "pruned", "{m}");
        assert_eq!(m["intermediate"].as_array().unwrap().len(), 1, "{m}");
        // Every member kept had a first report at least as good.
        for k in &kept {
            assert!(first(k) >= first(m), "kept {k} below cut {m}");
        }
    }
}

const PBT_MEMBER: &str = r#"
import json, os, time
folder = os.environ["CAVIAR_TRIAL_DIR"]
params_file = os.environ["CAVIAR_PARAMS_FILE"]
score, seen, epoch = 0.0, 0, 0
while epoch < 12:
    epoch += 1
    with open(params_file) as f:
        doc = json.load(f)
    ack = ""
    if doc["version"] > seen:
        seen = doc["version"]
        ack = f" applied={seen}"
        if "restore_from" in doc:
            with open(os.path.join(doc["restore_from"], "checkpoint.json")) as f:
                saved = json.load(f)
            score, epoch = saved["score"], saved["epoch"] + 1
            print(f"restored from {os.path.basename(doc['restore_from'])} at epoch {saved['epoch']}", flush=True)
    score += doc["params"]["lr"]
    with open(os.path.join(folder, "checkpoint.new"), "w") as f:
        json.dump({"epoch": epoch, "score": score}, f)
    os.replace(os.path.join(folder, "checkpoint.new"), os.path.join(folder, "checkpoint.json"))
    print(f"epoch={epoch} val={score}{ack}", flush=True)
    time.sleep(0.1)
"#;

const PBT_COMMANDS: &str = r#"name = "commands"
direction = "maximize"
metric = "val"
trials = 4
workers = 4
command = ["python3", "member.py"]

[sampler]
kind = "random"
seed = 2

[pbt]
population = 4
interval = 3
seed = 1

[params]
lr = { low = 0.01, high = 1.0 }
"#;

#[test]
fn pbt_commands_load_the_donors_checkpoint_named_in_the_parameters_file() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("c.db").display());
    pbt_commands(dir.path(), &storage);
}

#[test]
fn pbt_commands_share_a_postgres_study() {
    pg::in_postgres_schema("pbt", pbt_commands);
}

/// A PBT study of command members in `storage`, its files in `dir`.
fn pbt_commands(dir: &Path, storage: &str) {
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        println!("skipped: no python3 to run the trial script");
        return;
    }
    std::fs::write(dir.join("member.py"), PBT_MEMBER).unwrap();
    let file = dir.join("study.toml");
    std::fs::write(&file, PBT_COMMANDS).unwrap();
    run_ok(storage, &file);
    let store = caviar_store::open_storage(storage).unwrap();
    let record = store.study("commands").unwrap().unwrap();
    let mut exploits = 0;
    for m in listed(storage, "commands").as_array().unwrap() {
        assert_eq!(m["state"], "complete", "{m}");
        let Some(lineage) = m["user_attrs"]["pbt_exploits"].as_array() else {
            continue;
        };
        let id = store.trials(record.id).unwrap()[m["number"].as_u64().unwrap() as usize].id;
        let log = store.trial_log(id).unwrap().unwrap_or_default();
        for e in lineage {
            let from = e["from"].as_u64().unwrap();
            let note = format!("exploit trial {from} at step {}", e["step"]);
            let taken = m["param_history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["note"] == note.as_str())
                .all(|c| !c["applied_step"].is_null());
            if !taken {
                // Decided after the member's last report: it ended before reading it, and the
                // record says the change was asked, not applied.
                assert!(e["step"].as_u64() >= Some(11), "{e}: {log}");
                continue;
            }
            exploits += 1;
            assert!(
                log.contains(&format!("restored from trial-{from} at epoch")),
                "exploit {e} not taken: {log}"
            );
        }
    }
    assert!(exploits > 0, "no member exploited");
}

#[test]
fn the_pbt_example_screens_26_members_down_to_6() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mnist_pbt.toml");
    // The example as it is, on fewer images and epochs so the test stays short.
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("images = 10000", "images = 1000")
        .replace("epochs = 10", "epochs = 3")
        .replace("test = true", "test = false");
    let file = dir.path().join("mnist_pbt.toml");
    std::fs::write(&file, text).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("p.db").display());
    run_ok(&storage, &file);
    assert_eq!(complete_and_pruned(&listed(&storage, "mnist-pbt")), (6, 20));
}

/// How many of a `trials --json` listing are complete, and how many pruned.
fn complete_and_pruned(listing: &serde_json::Value) -> (usize, usize) {
    let states: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    let count = |state: &str| states.iter().filter(|s| **s == state).count();
    (count("complete"), count("pruned"))
}

#[test]
fn a_pbt_screen_stops_command_members_as_pruned() {
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        println!("skipped: no python3 to run the trial script");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("member.py"), PBT_MEMBER).unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(
        &file,
        PBT_COMMANDS
            .replace("trials = 4\nworkers = 4\n", "trials = 5\nworkers = 5\n")
            .replace("population = 4\n", "population = 2\nscreen = 5\n"),
    )
    .unwrap();
    let storage = format!("sqlite:{}", dir.path().join("c.db").display());
    run_ok(&storage, &file);
    let listing = listed(&storage, "commands");
    assert_eq!(complete_and_pruned(&listing), (2, 3));
    let members = listing.as_array().unwrap();
    // A member's first report is its lr: the two largest go on.
    let mut lrs: Vec<(f64, &str)> = members
        .iter()
        .map(|m| {
            (
                m["intermediate"][0][1].as_f64().unwrap(),
                m["state"].as_str().unwrap(),
            )
        })
        .collect();
    lrs.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert_eq!(
        lrs.iter().map(|l| l.1).collect::<Vec<_>>(),
        ["complete", "complete", "pruned", "pruned", "pruned"]
    );
}

const RESUMABLE: &str = r#"name = "resumed"
direction = "maximize"
metric = "val"
trials = 1
retries = 1
keep_checkpoints = "all"
command = ["python3", "checkpointed.py"]

[params]
lr = { low = 0.0001, high = 0.01, scale = "log" }
"#;

#[test]
fn a_trial_lost_with_its_worker_is_retried_from_its_last_checkpoint() {
    if Command::new("python3").arg("-c").arg("1").output().is_err() {
        println!("skipped: no python3 to run the trial script");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The checkpointing script, slowed down so the worker can be killed mid-trial.
    let slow = CHECKPOINTED.replace(
        "    print(f\"epoch={epoch} val={epoch * lr}\", flush=True)\n",
        "    print(f\"epoch={epoch} val={epoch * lr}\", flush=True)\n    __import__('time').sleep(0.3)\n",
    );
    std::fs::write(dir.path().join("checkpointed.py"), slow).unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, RESUMABLE).unwrap();
    let storage = format!("sqlite:{}", dir.path().join("r.db").display());
    let mut run = start_run(&storage, &file);
    wait_for("two reports", || {
        listed(&storage, "resumed")[0]["intermediate"]
            .as_array()
            .is_some_and(|c| c.len() >= 2)
    });
    // SAFETY: killing our own child process.
    unsafe { libc::kill(run.id() as i32, libc::SIGKILL) };
    run.wait().unwrap();
    let again = caviar(&storage, &["run", file.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let trials = listed(&storage, "resumed");
    let (lost, retry) = (&trials[0], &trials[1]);
    assert_eq!(lost["state"], "failed");
    assert_eq!(retry["state"], "complete");
    assert_eq!(retry["user_attrs"]["retry_of"], 0);
    let saved = std::fs::read_to_string(
        dir.path()
            .join("caviar-trials/resumed/trial-0/checkpoint.json"),
    )
    .unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    // Its curve goes on after the lost trial's last checkpoint.
    assert_eq!(
        retry["intermediate"][0][0].as_u64(),
        Some(saved["epoch"].as_u64().unwrap() + 1),
        "{retry}"
    );
}
