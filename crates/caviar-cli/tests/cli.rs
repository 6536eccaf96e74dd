//! The `caviar` binary end to end: real study files, real SQLite files, real child processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/pg.rs"]
mod pg;

fn caviar(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("caviar runs")
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts")
        .canonicalize()
        .unwrap()
}

fn write_study(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = body.replace("SCRIPTS", &scripts().display().to_string());
    std::fs::write(&path, text).unwrap();
    path
}

fn trials_json(dir: &Path, study: &str) -> Vec<Value> {
    let out = caviar(dir, &["trials", study, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

const MODES: &str = r#"
name = "modes"
direction = "maximize"
metric = "val_acc"
trials = 10
workers = 2
timeout = 1.5
command = ["SCRIPTS/fake_train.sh", "{mode}", "{lr}"]

[sampler]
kind = "grid"

[params]
mode = { choices = ["ok", "crash", "segv", "hang", "nan", "silent", "params"] }
lr = { choices = [0.01] }
"#;

#[test]
fn every_kind_of_failure_is_recorded_and_the_study_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "modes", MODES);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let trials = trials_json(dir.path(), "modes");
    assert_eq!(
        trials.len(),
        7,
        "the grid of 7 modes is exhausted, not 10 trials"
    );
    let by_mode = |m: &str| {
        trials
            .iter()
            .find(|t| t["params"]["mode"] == m)
            .unwrap_or_else(|| panic!("no trial for mode {m}"))
            .clone()
    };
    let ok = by_mode("ok");
    assert_eq!(ok["state"], "complete");
    assert_eq!(ok["intermediate"].as_array().unwrap().len(), 3);
    assert_eq!(ok["intermediate"][0][0], 1);
    assert_eq!(by_mode("params")["state"], "complete");
    for (mode, needle) in [
        ("crash", "exited with status 3"),
        ("crash", "ValueError: bad shape"),
        ("segv", "signal 11"),
        ("hang", "timed out"),
        ("nan", "not a finite number"),
        ("silent", "never reported `val_acc`"),
    ] {
        let t = by_mode(mode);
        assert_eq!(t["state"], "failed", "{mode}");
        let err = t["error"].as_str().unwrap();
        assert!(err.contains(needle), "{mode}: {err}");
        assert!(t["value"].is_null());
    }
    // Keys of the JSON contract.
    for key in [
        "number",
        "state",
        "params",
        "value",
        "intermediate",
        "error",
    ] {
        assert!(ok.get(key).is_some(), "missing {key}");
    }
}

const TOY: &str = r#"
name = "toy"
direction = "maximize"
metric = "val_acc"
trials = 12
workers = 2
command = ["sh", "SCRIPTS/toy_train.sh", "{lr}", "{beta1}", "{units}", "{activation}", "3"]

[sampler]
kind = "KIND"
seed = 7

[params]
lr         = { low = 1e-5, high = 1.0, scale = "log" }
beta1      = { low = 0.9, high = 0.999, scale = "reverse_log" }
units      = { low = 50, high = 100, type = "int" }
activation = { choices = ["relu", "tanh"] }
"#;

#[test]
fn same_seed_same_trials_for_each_sampler_and_the_best_table_has_the_seed_format() {
    for kind in ["random", "sobol", "grid", "tpe", "zoom"] {
        let body = TOY.replace("KIND", kind);
        let params_of = |dir: &Path| {
            let study = write_study(dir, "toy", &body);
            // A model-based sampler sees which trials have finished, which depends on timing
            // when several run at once: it reproduces exactly with one worker.
            let workers = if kind == "tpe" || kind == "zoom" {
                "1"
            } else {
                "2"
            };
            let out = caviar(dir, &["run", study.to_str().unwrap(), "--workers", workers]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut trials = trials_json(dir, "toy");
            trials.sort_by_key(|t| t["number"].as_u64());
            trials
                .iter()
                .map(|t| t["params"].clone())
                .collect::<Vec<_>>()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = params_of(a.path());
        assert_eq!(first.len(), 12, "{kind}");
        assert_eq!(first, params_of(b.path()), "{kind}: same seed, same trials");

        let out = caviar(a.path(), &["best", "toy", "-k", "3"]);
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("Best-1 (val_acc:0."), "{text}");
        assert!(lines[0].contains(") | activation:"), "{text}");
        let value = |l: &str| {
            l[l.find(':').unwrap() + 1..l.find(')').unwrap()]
                .parse::<f64>()
                .unwrap()
        };
        assert!(value(lines[0]) >= value(lines[1]) && value(lines[1]) >= value(lines[2]));
    }
}

#[test]
fn bad_input_exits_2_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let body = TOY
        .replace("KIND", "random")
        .replace("scale = \"reverse_log\"", "scale = \"reverse\"");
    let study = write_study(dir.path(), "bad", &body);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:15:") && err.contains("beta1") && err.contains("reverse_log"),
        "{err}"
    );

    let body = TOY
        .replace("KIND", "random")
        .replace("trials = 12", "trials = \"many\"");
    let study = write_study(dir.path(), "bad2", &body);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad2.toml") && err.contains("line 5") && err.contains("field `trials`"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let out = caviar(dir.path(), &["trials", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no study named `nope`"));

    let out = caviar(dir.path(), &["--storage", "mysql://x", "studies"]);
    assert_eq!(out.status.code(), Some(2));
    let out = caviar(dir.path(), &["run", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

const SLOW: &str = r#"
name = "slow"
direction = "maximize"
metric = "val_acc"
trials = 16
workers = 2
command = ["SCRIPTS/fake_train.sh", "slow", "{lr}", "3"]

[params]
lr = { low = 1e-4, high = 1.0, scale = "log" }
"#;

fn wait_for_complete(dir: &Path, study: &str, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = caviar(dir, &["trials", study, "--json"]);
        if out.status.success() {
            let trials: Value = serde_json::from_slice(&out.stdout).unwrap();
            let done = trials
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["state"] == "complete")
                .count();
            if done >= at_least {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "trials did not complete in time; run log: {}",
            std::fs::read_to_string(dir.join("run.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_study_killed_with_sigkill_resumes_to_its_total_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "slow", SLOW);
    let mut child = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["run", study.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_complete(dir.path(), "slow", 3);
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    let before = trials_json(dir.path(), "slow");
    let running = before.iter().filter(|t| t["state"] == "running").count();
    assert!(running >= 1, "the kill should leave running trials behind");

    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming study `slow`"), "{err}");
    let after = trials_json(dir.path(), "slow");
    assert_eq!(after.len(), 16, "total trial count is the requested total");
    let mut numbers: Vec<u64> = after
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (0..16).collect::<Vec<_>>(),
        "no duplicates, no gaps"
    );
    let orphans: Vec<&Value> = after.iter().filter(|t| t["state"] == "failed").collect();
    assert_eq!(orphans.len(), running, "each orphan is marked failed once");
    for o in orphans {
        assert!(o["error"].as_str().unwrap().contains("orphaned"), "{o}");
    }
    assert!(after.iter().all(|t| t["state"] != "running"));
}

#[test]
fn ctrl_c_marks_running_trials_interrupted_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "slow", SLOW);
    // stderr goes to a file: a pipe nobody reads until the end could fill and block the run.
    let log_path = dir.path().join("run.log");
    let child = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["run", study.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_complete(dir.path(), "slow", 1);
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(out.status.code(), Some(130), "{log}");
    let trials = trials_json(dir.path(), "slow");
    assert!(trials.iter().all(|t| t["state"] != "running"));
    let interrupted = trials
        .iter()
        .filter(|t| t["error"] == "interrupted")
        .count();
    assert!(interrupted >= 1);
    assert!(trials.len() < 16);
}

const BUILTIN: &str = r#"
name = "builtin"
direction = "maximize"
metric = "val_acc"
trials = 6
workers = 2
objective = "mnist"

[mnist]
images = 300
epochs = 2
seed = 1

[params]
lr           = { low = 1e-3, high = 1e-1, scale = "log" }
optimizer    = { choices = ["sgd", "momentum", "adagrad", "rmsprop", "adam"] }
momentum     = { low = 0.8, high = 0.999, scale = "reverse_log" }
beta2        = { low = 0.99, high = 0.9999, scale = "reverse_log" }
epsilon      = { low = 1e-9, high = 1e-6, scale = "log" }
batch_size   = { choices = [16, 32] }
units        = { low = 20, high = 40, type = "int" }
layers       = { low = 1, high = 3, type = "int" }
activation   = { choices = ["relu", "tanh", "sigmoid"] }
lr_decay     = { low = 1e-4, high = 0.3, scale = "log" }
weight_decay = { low = 1e-8, high = 1e-3, scale = "log" }
dropout      = { low = 0.0, high = 0.5 }
batch_norm   = { choices = [true, false] }
"#;

#[test]
fn a_study_file_can_tune_every_hyperparameter_of_the_built_in_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "builtin", BUILTIN);
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .env("CAVIAR_MNIST_DIR", scripts().join("../../data/mnist"))
        .args(["run", study.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("touching the test set").count(),
        1,
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let test_acc = summary["final_test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&test_acc));
    let trials = trials_json(dir.path(), "builtin");
    assert_eq!(trials.len(), 6);
    for t in &trials {
        assert_eq!(t["params"].as_object().unwrap().len(), 13, "{t}");
        if t["state"] == "complete" {
            assert_eq!(
                t["intermediate"].as_array().unwrap().len(),
                2,
                "epochs fixed at 2: {t}"
            );
        } else {
            assert!(t["error"].as_str().unwrap().contains("diverged"), "{t}");
        }
    }
    assert!(trials.iter().filter(|t| t["state"] == "complete").count() >= 3);

    let bad = BUILTIN.replace("dropout      =", "droput       =");
    let study = write_study(dir.path(), "bad", &bad);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:26:") && err.contains("droput") && err.contains("known:"),
        "{err}"
    );
}

#[test]
fn narrow_prints_ranges_and_writes_the_next_round_as_a_child_study() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(
        dir.path(),
        "toy",
        &TOY.replace("KIND", "random")
            .replace("trials = 12", "trials = 30"),
    );
    assert!(caviar(dir.path(), &["run", study.to_str().unwrap()])
        .status
        .success());
    let out = caviar(
        dir.path(),
        &["narrow", "toy", "-k", "5", "--write", "next.toml"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("lr: ") && stdout.contains("(top 5)"),
        "{stdout}"
    );

    let next = dir.path().join("next.toml");
    let text = std::fs::read_to_string(&next).unwrap();
    assert!(
        text.contains("parent = \"toy\"") && text.contains("name = \"toy-narrow\""),
        "{text}"
    );
    let out = caviar(
        dir.path(),
        &["run", next.to_str().unwrap(), "--trials", "8"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let studies: Value =
        serde_json::from_slice(&caviar(dir.path(), &["studies", "--json"]).stdout).unwrap();
    let child = studies
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "toy-narrow")
        .unwrap();
    assert_eq!(child["parent"], "toy");

    // The top-5 lr range of the parent, widened by the margin, holds every child trial.
    let parent = trials_json(dir.path(), "toy");
    let mut done: Vec<&Value> = parent.iter().filter(|t| t["state"] == "complete").collect();
    done.sort_by(|a, b| {
        b["value"]
            .as_f64()
            .unwrap()
            .total_cmp(&a["value"].as_f64().unwrap())
    });
    let lrs: Vec<f64> = done[..5]
        .iter()
        .map(|t| t["params"]["lr"].as_f64().unwrap())
        .collect();
    let (lo, hi) = (
        lrs.iter().copied().fold(1.0, f64::min),
        lrs.iter().copied().fold(0.0, f64::max),
    );
    // 5% of the 5 decades of the parent's log range on each side.
    let (lo, hi) = (lo / 10f64.powf(0.25) * 0.9, hi * 10f64.powf(0.25) * 1.1); // two-digit rounding
    for t in trials_json(dir.path(), "toy-narrow") {
        let lr = t["params"]["lr"].as_f64().unwrap();
        assert!(lo <= lr && lr <= hi, "child lr {lr} outside {lo}..{hi}");
    }

    let out = caviar(dir.path(), &["narrow", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn zoom_rounds_are_stored_shown_and_kept_when_the_study_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let body = TOY
        .replace("KIND", "zoom")
        .replace("seed = 7", "seed = 7\nround_size = 6\nkeep = 0.5");
    let study = write_study(dir.path(), "toy", &body);
    let run = |trials: &str| {
        let out = caviar(
            dir.path(),
            &[
                "run",
                study.to_str().unwrap(),
                "--trials",
                trials,
                "--workers",
                "2",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let rounds_json = || {
        let out = caviar(dir.path(), &["rounds", "toy", "--json"]);
        assert!(out.status.success());
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let stderr = run("12");
    assert!(stderr.contains("round 1 (trials 6-11): "), "{stderr}");
    let first = rounds_json();
    assert_eq!(first.len(), 2);
    // A resumed run keeps the stored boxes and adds new rounds.
    run("18");
    let second = rounds_json();
    assert_eq!(second.len(), 3);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["unit"], b["unit"], "a stored box never changes");
    }
    let trials = trials_json(dir.path(), "toy");
    assert_eq!(trials.len(), 18);
    for round in &second {
        let first_trial = round["first_trial"].as_u64().unwrap();
        assert!(round["best"]["value"].is_number(), "{round}");
        for t in trials.iter().filter(|t| {
            let n = t["number"].as_u64().unwrap();
            n >= first_trial && n < first_trial + 6
        }) {
            for name in ["lr", "beta1", "units"] {
                let (v, lo, hi) = (
                    t["params"][name].as_f64().unwrap(),
                    round["range"][name][0].as_f64().unwrap(),
                    round["range"][name][1].as_f64().unwrap(),
                );
                assert!(
                    lo <= v && v <= hi,
                    "trial {} {name}={v} outside {lo}..{hi}",
                    t["number"]
                );
            }
        }
    }
    // Round 1's box is narrower than the whole space in at least one parameter.
    let unit = second[1]["unit"].as_object().unwrap();
    assert!(unit
        .values()
        .any(|p| p[1].as_f64().unwrap() - p[0].as_f64().unwrap() < 0.9));
    let text = caviar(dir.path(), &["rounds", "toy"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .nth(2)
            .unwrap()
            .starts_with("round 2 (trials 12-17): "),
        "{text}"
    );
    assert!(text.contains("| best val_acc "), "{text}");
}

const ASHA: &str = r#"
name = "asha"
direction = "maximize"
metric = "val_acc"
trials = 24
workers = 2
command = ["SCRIPTS/fake_train.sh", "ok", "{lr}", "9"]

[pruner]
kind = "asha"
min_resource = 1
reduction_factor = 3
max_resource = 9

[params]
lr = { low = 1e-4, high = 1.0, scale = "log" }
"#;

#[test]
fn asha_stops_external_commands_at_rungs_and_pruned_trials_show_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "asha", ASHA);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("pruned"), "{err}");
    let trials = trials_json(dir.path(), "asha");
    assert_eq!(trials.len(), 24);
    let pruned: Vec<&Value> = trials.iter().filter(|t| t["state"] == "pruned").collect();
    assert!(pruned.len() >= 8, "{} pruned of 24", pruned.len());
    for t in &pruned {
        let curve = t["intermediate"].as_array().unwrap();
        let (step, value) = {
            let last = curve.last().unwrap().as_array().unwrap();
            (last[0].as_u64().unwrap(), last[1].as_f64().unwrap())
        };
        assert!(
            [1, 3].contains(&step),
            "pruned at a rung before the end, not {step}"
        );
        assert_eq!(curve.len() as u64, step, "no report after the prune");
        assert_eq!(
            t["value"].as_f64(),
            Some(value),
            "recorded with its last value"
        );
    }
    // The best table lists complete trials only, unless asked.
    let best = caviar(dir.path(), &["best", "asha", "-k", "30", "--json"]);
    let best: Vec<Value> = serde_json::from_slice(&best.stdout).unwrap();
    assert!(best.iter().all(|t| t["state"] == "complete"));
    assert_eq!(best.len(), 24 - pruned.len());
    let csv = caviar(dir.path(), &["trials", "asha", "--csv"]);
    assert!(String::from_utf8_lossy(&csv.stdout).contains(",pruned,"));
    // Asked for, pruned trials join the table, marked.
    let all = caviar(
        dir.path(),
        &["best", "asha", "-k", "30", "--pruned", "--json"],
    );
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all.len(), 24);
    let text = caviar(dir.path(), &["best", "asha", "-k", "30", "--pruned"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("[pruned at step 1]"), "{text}");
}

#[test]
fn a_time_budget_stops_starting_trials_and_running_ones_finish() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "slow", SLOW);
    let started = Instant::now();
    let out = caviar(
        dir.path(),
        &["run", study.to_str().unwrap(), "--time-budget", "1s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    let trials = trials_json(dir.path(), "slow");
    assert!(
        (2..16).contains(&trials.len()),
        "{} trials in a 1 s budget of 0.6 s trials",
        trials.len()
    );
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "running trials finish"
    );
    let out = caviar(
        dir.path(),
        &["run", study.to_str().unwrap(), "--time-budget", "soon"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--time-budget"));
}

#[test]
fn workers_join_a_stored_study_from_elsewhere_and_fill_it_exactly() {
    let home = tempfile::tempdir().unwrap();
    let study = write_study(home.path(), "toy", &TOY.replace("KIND", "tpe"));
    let db = home.path().join("caviar.db");
    let storage = format!("sqlite:{}", db.display());
    let out = caviar(
        home.path(),
        &[
            "--storage",
            &storage,
            "run",
            study.to_str().unwrap(),
            "--trials",
            "4",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another folder, where the study file is not: the workers rebuild it from the storage.
    let elsewhere = tempfile::tempdir().unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_caviar"))
                .current_dir(elsewhere.path())
                .args(["--storage", &storage, "worker", "toy", "--trials", "14"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The default storage, sqlite:caviar.db in `home`, is the workers' file.
    let trials = trials_json(home.path(), "toy");
    assert_eq!(trials.len(), 14);
    let numbers: std::collections::BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..14).collect(),
        "exactly the total, no duplicates"
    );
    assert!(trials.iter().all(|t| t["state"] == "complete"));
    let out = caviar(elsewhere.path(), &["--storage", &storage, "worker", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

const LONG: &str = r#"
name = "long"
direction = "maximize"
metric = "val_acc"
trials = 8
workers = 1
retries = 1
command = ["SCRIPTS/fake_train.sh", "slow", "{lr}", "8"]

[params]
lr = { low = 1e-4, high = 1.0, scale = "log" }
"#;

#[test]
fn a_live_worker_fails_and_retries_the_trial_of_a_killed_worker_while_the_study_runs() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "long", LONG);
    let spawn = |log: &str| {
        Command::new(env!("CARGO_BIN_EXE_caviar"))
            .current_dir(dir.path())
            .args(["run", study.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let mut doomed = spawn("doomed.log");
    // Let it start a trial (each takes 1.6 s), then start the survivor and kill the first.
    std::thread::sleep(Duration::from_millis(700));
    let survivor = spawn("survivor.log");
    std::thread::sleep(Duration::from_millis(300));
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let killed_at = Instant::now();
    let out = survivor.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = std::fs::read_to_string(dir.path().join("survivor.log")).unwrap();
    assert!(
        log.contains("of workers that died were marked failed"),
        "{log}"
    );
    let trials = trials_json(dir.path(), "long");
    assert_eq!(
        trials.len(),
        9,
        "the retry replaces the lost trial in the total"
    );
    assert_eq!(
        trials.iter().filter(|t| t["state"] == "complete").count(),
        8
    );
    let failed: Vec<&Value> = trials.iter().filter(|t| t["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{trials:?}");
    let reason = failed[0]["error"].as_str().unwrap();
    assert!(
        reason.contains("ended while the trial was running"),
        "{reason}"
    );
    assert!(reason.contains("queued again (retry 1 of 1)"), "{reason}");
    let retried = trials
        .iter()
        .filter(|t| t["params"] == failed[0]["params"] && t["state"] == "complete")
        .count();
    assert_eq!(retried, 1, "the lost parameters ran again and completed");
    // Found by the survivor's scan (every 5 s), not at a later start.
    let found_ms = failed[0]["finished_ms"].as_i64().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let found_after_kill = now_ms - found_ms;
    assert!(
        (found_after_kill as u128) < killed_at.elapsed().as_millis() + 100,
        "marked after the kill"
    );
    assert!(trials.iter().all(|t| t["state"] != "running"));
}

#[test]
fn enqueued_parameters_run_first_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "toy", &TOY.replace("KIND", "tpe"));
    let run = |trials: &str| {
        let out = caviar(
            dir.path(),
            &["run", study.to_str().unwrap(), "--trials", trials],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("2");
    let out = caviar(
        dir.path(),
        &["enqueue", "toy", "lr=0.0123", "activation=tanh", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queued: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queued["number"], 2);
    assert_eq!(queued["params"]["lr"], 0.0123);
    let out = caviar(dir.path(), &["enqueue", "toy", "units=64"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("queued trial 3")
            && text.contains("sampled when it runs: activation, beta1, lr"),
        "{text}"
    );
    run("5");
    let trials = trials_json(dir.path(), "toy");
    assert_eq!(trials.len(), 5);
    assert_eq!(trials[2]["params"]["lr"], 0.0123);
    assert_eq!(trials[2]["params"]["activation"], "tanh");
    assert_eq!(trials[3]["params"]["units"], 64);
    assert!(trials.iter().all(|t| t["state"] == "complete"));

    for (args, says) in [
        (
            vec!["enqueue", "toy", "momentum=0.9"],
            "its parameters: activation, beta1, lr, units",
        ),
        (vec!["enqueue", "toy", "lr=5"], "outside"),
        (vec!["enqueue", "toy", "units=6.5"], "not a whole number"),
        (
            vec!["enqueue", "toy", "activation=gelu"],
            "use one of relu, tanh",
        ),
        (vec!["enqueue", "toy", "lr"], "write NAME=VALUE"),
        (vec!["enqueue", "toy", "lr=0.1", "lr=0.2"], "given twice"),
        (vec!["enqueue", "nope", "lr=0.1"], "no study named `nope`"),
    ] {
        let out = caviar(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(trials_json(dir.path(), "toy").len(), 5, "nothing queued");
}

#[test]
fn multivariate_tpe_from_the_study_file_is_the_sampler_that_runs() {
    // `multivariate = true` was once parsed, validated and then dropped by `caviar run`.
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<Vec<Value>> = ["false", "true"]
        .iter()
        .map(|multivariate| {
            let name = format!("mv{multivariate}");
            let body = format!(
                "name = \"{name}\"\ndirection = \"minimize\"\nmetric = \"loss\"\ntrials = 12\n\
                 command = [\"sh\", \"-c\", \"echo loss=$CAVIAR_PARAM_X\"]\n\
                 [sampler]\nkind = \"tpe\"\nseed = 4\nstartup_trials = 5\nmultivariate = {multivariate}\n\
                 [params]\nx = {{ low = 0.0, high = 1.0 }}\ny = {{ low = 0.0, high = 1.0 }}\n"
            );
            let study = write_study(dir.path(), &name, &body);
            let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            trials_json(dir.path(), &name)
                .iter()
                .map(|t| t["params"].clone())
                .collect()
        })
        .collect();
    assert_eq!(runs[0][..5], runs[1][..5], "same start-up draws");
    assert_ne!(
        runs[0][5..],
        runs[1][5..],
        "multivariate changed the model's draws"
    );
}

#[test]
fn reading_verbs_on_a_missing_database_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = "sqlite:nowhere.db";
    for verb in [
        vec!["studies"],
        vec!["trials", "toy"],
        vec!["best", "toy"],
        vec!["importance", "toy"],
        vec!["narrow", "toy"],
        vec!["rounds", "toy"],
        vec!["report", "toy", "--out", "r.html"],
        vec!["enqueue", "toy", "lr=0.1"],
        vec!["dashboard", "--port", "0"],
    ] {
        let mut args = vec!["--storage", url];
        args.extend(verb.iter());
        let out = caviar(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{verb:?}: {err}");
        assert!(
            err.contains("there is no database at nowhere.db"),
            "{verb:?}: {err}"
        );
        assert!(
            !dir.path().join("nowhere.db").exists(),
            "{verb:?} created the file"
        );
    }
}

#[test]
fn trials_zero_says_the_study_is_ready_for_workers() {
    let dir = tempfile::tempdir().unwrap();
    let body = TOY.replace("KIND", "random");
    let study = write_study(dir.path(), "ready", &body);
    let out = caviar(
        dir.path(),
        &["run", study.to_str().unwrap(), "--trials", "0"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("is stored with 0 trials; `caviar worker"),
        "{err}"
    );
    assert!(!err.contains("raise --trials"), "{err}");
}

#[test]
fn a_missing_required_key_is_named_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let body = TOY.replace("KIND", "random");
    let no_metric = body.replace("metric = \"val_acc\"\n", "");
    let no_params = body[..body.find("[params]").unwrap()].to_string();
    for (file, text, needle) in [
        (
            "nometric",
            no_metric,
            "the required key `metric` is missing; add metric = \"val_acc\"",
        ),
        (
            "noparams",
            no_params,
            "the required key `params` is missing; add a [params] table",
        ),
    ] {
        let study = write_study(dir.path(), file, &text);
        let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("{file}.toml: ")) && err.contains(needle),
            "{err}"
        );
        assert!(!err.contains("line 1"), "{err}");
    }
}

#[test]
fn a_command_that_cannot_succeed_stops_the_run_after_its_first_failures() {
    let dir = tempfile::tempdir().unwrap();
    let body = |name: &str, extra: &str| {
        format!(
            "name = \"{name}\"\ndirection = \"maximize\"\nmetric = \"val_acc\"\ntrials = 40\nworkers = 2\n{extra}\
             command = [\"sh\", \"-c\", \"echo cannot import torch >&2; exit 3\"]\n\
             [params]\nx = {{ low = 0.0, high = 1.0 }}\n"
        )
    };
    let study = write_study(dir.path(), "doomed", &body("doomed", ""));
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the first 5 trials of this run all failed, so it stopped")
            && err.contains("cannot import torch"),
        "{err}"
    );
    let ran = trials_json(dir.path(), "doomed").len();
    assert!(
        (5..=6).contains(&ran),
        "{ran} trials ran, not the 40 of the budget"
    );
    // 0 never stops; a custom limit is honoured.
    let study = write_study(
        dir.path(),
        "stubborn",
        &body("stubborn", "trials = 8\nmax_failures = 0\n").replace("trials = 40\n", ""),
    );
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(trials_json(dir.path(), "stubborn").len(), 8);
    let study = write_study(dir.path(), "two", &body("two", "max_failures = 2\n"));
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the first 2 trials"));
    assert!(trials_json(dir.path(), "two").len() <= 3);
}

#[test]
fn a_grid_axis_can_be_written_as_its_values_alone() {
    let dir = tempfile::tempdir().unwrap();
    let body = |sampler: &str| {
        format!(
            "name = \"axes\"\ndirection = \"maximize\"\nmetric = \"val_acc\"\n\
             command = [\"sh\", \"-c\", \"echo val_acc=$CAVIAR_PARAM_UNITS\"]\n\
             [sampler]\nkind = \"{sampler}\"\n\
             [params]\nunits = {{ values = [64, 128, 256] }}\nlr = {{ values = [0.1, 1e-3], scale = \"log\" }}\n"
        )
    };
    let study = write_study(dir.path(), "axes", &body("grid"));
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trials = trials_json(dir.path(), "axes");
    assert_eq!(trials.len(), 6, "3 x 2 grid points");
    let mut units: Vec<i64> = trials
        .iter()
        .map(|t| t["params"]["units"].as_i64().expect("an int axis"))
        .collect();
    units.sort();
    units.dedup();
    assert_eq!(units, vec![64, 128, 256]);
    // Outside a grid, the error says what to write.
    let study = write_study(
        dir.path(),
        "axes2",
        &body("random").replace("\"axes\"", "\"axes2\""),
    );
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("values lists grid points; use [sampler] kind = \"grid\""));
}

#[test]
fn a_narrowed_study_written_elsewhere_still_finds_its_relative_command() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let later = dir.path().join("later");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&later).unwrap();
    std::fs::write(first.join("train.sh"), "echo loss=$CAVIAR_PARAM_X\n").unwrap();
    let study = first.join("rel.toml");
    std::fs::write(
        &study,
        "name = \"rel\"\nmetric = \"loss\"\ntrials = 12\ncommand = [\"sh\", \"train.sh\"]\n\
         [params]\nx = { low = 0.0, high = 1.0 }\n",
    )
    .unwrap();
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let next = later.join("next.toml");
    let out = caviar(
        dir.path(),
        &["narrow", "rel", "--write", next.to_str().unwrap()],
    );
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{note}");
    assert!(note.contains("sets workdir"), "{note}");
    let out = caviar(dir.path(), &["run", next.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["complete"], 12, "{summary} {err}");
}

#[test]
fn trials_enqueued_beyond_the_total_are_explained_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("full.toml");
    std::fs::write(
        &study,
        "name = \"full\"\nmetric = \"loss\"\ntrials = 3\n\
         command = [\"sh\", \"-c\", \"echo loss=$CAVIAR_PARAM_X\"]\n\
         [params]\nx = { low = 0.0, high = 1.0 }\n",
    )
    .unwrap();
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(out.status.success());
    let out = caviar(dir.path(), &["enqueue", "full", "x=0.25"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("run even beyond the study's total"));
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("holds 4 trials, beyond its total of 3, because 1 enqueued trial(s) wait"),
        "{err}"
    );
    assert!(!err.contains("raise --trials"), "{err}");
    let trials = trials_json(dir.path(), "full");
    assert_eq!(trials.len(), 4);
    assert_eq!(trials[3]["state"], "complete");
    assert_eq!(trials[3]["params"]["x"], 0.25);
}

const DRIFTING: &str = r#"
name = "drift"
metric = "loss"
trials = 30
workers = 2
command = ["SCRIPTS/drifting.sh", "{x}", "{seed}"]
fingerprint = ["data.txt"]

[sampler]
kind = "random"
seed = 3

[pruner]
kind = "median"

[params]
x = { low = 0.0, high = 1.0 }
"#;

fn retest_json(dir: &Path, args: &[&str], drift: Option<&str>) -> (Output, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caviar"));
    cmd.current_dir(dir).arg("retest").args(args).arg("--json");
    match drift {
        Some(v) => cmd.env("DRIFT", v),
        None => cmd.env_remove("DRIFT"),
    };
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

#[test]
fn retest_reports_stable_stale_and_broken_from_real_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_study(dir.path(), "drift", DRIFTING);
    std::fs::write(dir.path().join("data.txt"), "rows 1-100").unwrap();
    let out = caviar(dir.path(), &["run", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_best = caviar(dir.path(), &["best", "drift", "-k", "1", "--json"]);
    let old_best: Value = serde_json::from_slice(&old_best.stdout).unwrap();
    let old_best = old_best[0]["number"].as_u64().unwrap();

    // Same program: every configuration repeats within the noise its repeats measure.
    let (out, stable) = retest_json(dir.path(), &["drift", "-k", "4"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stable["verdict"], "stable", "{stable:#}");
    assert_eq!(stable["study"], "drift-retest-1");
    let configs = stable["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 4);
    assert_eq!(configs[0]["parent_trial"], old_best);
    for c in configs {
        let values = c["new_values"].as_array().unwrap();
        assert_eq!(values.len(), 3, "{c}");
        // {seed} differs between repeats, so does the noise it fixes.
        assert_ne!(values[0], values[1], "{c}");
        assert_eq!(c["beyond_noise"], false, "{c}");
    }
    assert!(stable["noise_sd"].as_f64().unwrap() > 0.0);
    assert_eq!(stable["rank_correlation"].as_f64().unwrap(), 1.0);
    assert_eq!(stable["changed"], serde_json::json!([]), "{stable:#}");
    // The re-test is an ordinary child study: 12 runs, no pruner, its parent recorded.
    let studies = caviar(dir.path(), &["studies", "--json"]);
    let studies: Value = serde_json::from_slice(&studies.stdout).unwrap();
    let child = studies
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "drift-retest-1")
        .unwrap();
    assert_eq!(child["parent"], "drift", "{child}");
    assert_eq!(child["counts"]["complete"], 12, "{child}");

    // Resuming by name runs nothing more and says the same; another plan is refused.
    let (out, again) = retest_json(dir.path(), &["drift", "--name", "drift-retest-1"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(again["configs"], stable["configs"]);
    let (out, _) = retest_json(
        dir.path(),
        &["drift", "--name", "drift-retest-1", "-k", "2"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("planned with -k 4"));

    // The best setting moved (the data changed): the old best is worse by far more than the
    // noise, and the report names the file.
    std::fs::write(dir.path().join("data.txt"), "rows 1-200").unwrap();
    let (out, stale) = retest_json(dir.path(), &["drift", "-k", "4"], Some("1"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stale["verdict"], "stale", "{stale:#}");
    assert_eq!(stale["study"], "drift-retest-2");
    let first = &stale["configs"][0];
    assert!(first["change"].as_f64().unwrap() > 0.05, "{first}");
    assert_eq!(first["beyond_noise"], true);
    assert_ne!(stale["new_best"], old_best);
    let reason = stale["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("trial {old_best} +")), "{reason}");
    assert!(stale["suggestion"]
        .as_str()
        .unwrap()
        .contains("caviar narrow drift-retest-2"));
    assert_eq!(
        stale["changed"],
        serde_json::json!(["file data.txt: content changed"]),
        "{stale:#}"
    );

    // The program fails now.
    let (out, broken) = retest_json(
        dir.path(),
        &["drift", "-k", "2", "--repeats", "2"],
        Some("crash"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(broken["verdict"], "broken", "{broken:#}");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .contains("cannot open the data"),
        "{broken:#}"
    );

    // A changed study file must still hold the old configurations.
    let narrow = write_study(
        dir.path(),
        "narrowed",
        &DRIFTING.replace("low = 0.0, high = 1.0", "low = 0.9, high = 1.0"),
    );
    let (out, _) = retest_json(
        dir.path(),
        &["drift", "--file", narrow.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("widen it") && err.contains("x ="), "{err}");
}

#[test]
fn warm_start_feeds_old_trials_and_enqueue_best_runs_the_old_top_first() {
    let dir = tempfile::tempdir().unwrap();
    // Without the pruner, all 30 old trials are complete.
    let unpruned = DRIFTING.replace("[pruner]\nkind = \"median\"\n", "");
    let old = write_study(
        dir.path(),
        "old",
        &unpruned.replace("name = \"drift\"", "name = \"old\""),
    );
    let out = caviar(dir.path(), &["run", old.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let best = caviar(dir.path(), &["best", "old", "-k", "2", "--json"]);
    let best: Value = serde_json::from_slice(&best.stdout).unwrap();

    let warm_text = unpruned
        .replace(
            "name = \"drift\"",
            "name = \"warm\"\nwarm_start = [\"old\"]\nenqueue_best = 2",
        )
        .replace("trials = 30", "trials = 6")
        .replace("kind = \"random\"", "kind = \"tpe\"")
        .replace("workers = 2", "workers = 1");
    let warm = write_study(dir.path(), "warm", &warm_text);
    let out = caviar(dir.path(), &["run", warm.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trials = trials_json(dir.path(), "warm");
    // Six trials of its own: the old study's trials are not counted.
    assert_eq!(trials.len(), 6);
    assert_eq!(trials[0]["params"], best[0]["params"]);
    assert_eq!(trials[1]["params"], best[1]["params"]);
    // TPE models the 30 old trials at once (no random start-up): its own trials stay near the
    // old best x = 0.3.
    for t in &trials[2..] {
        let x = t["params"]["x"].as_f64().unwrap();
        assert!((x - 0.3).abs() < 0.25, "{t}");
    }

    // --warm-start on the command line, and a name that is no study.
    let cold = write_study(
        dir.path(),
        "cold",
        &DRIFTING.replace("name = \"drift\"", "name = \"cold\""),
    );
    // Renaming the old study keeps the warm study working: its stored file follows.
    let out = caviar(dir.path(), &["rename", "old", "older"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`warm` is now warm-started from `older`")
    );
    let out = caviar(dir.path(), &["worker", "warm", "--trials", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = caviar(
        dir.path(),
        &["run", cold.to_str().unwrap(), "--warm-start", "nope"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`nope`, which is not a study"), "{err}");
}

#[test]
fn delete_and_rename_a_study_with_its_folders_refusing_while_trials_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = DRIFTING
        .replace("trials = 30", "trials = 5")
        .replace("[pruner]\nkind = \"median\"\n", "");
    let file = write_study(dir.path(), "drift", &text);
    let out = caviar(dir.path(), &["run", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("caviar-trials/drift").is_dir());

    let out = caviar(dir.path(), &["rename", "drift", "5bad"]);
    assert_eq!(out.status.code(), Some(2));
    let out = caviar(dir.path(), &["rename", "drift", "moved"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("caviar-trials/drift").exists());
    assert!(dir.path().join("caviar-trials/moved").is_dir());
    assert_eq!(trials_json(dir.path(), "moved").len(), 5);
    // The stored study file carries the new name: a worker joins the renamed study.
    let out = caviar(dir.path(), &["worker", "moved", "--trials", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(trials_json(dir.path(), "moved").len(), 7);
    let out = caviar(
        dir.path(),
        &["run", file.to_str().unwrap(), "--trials", "1"],
    );
    assert!(out.status.success());
    let out = caviar(dir.path(), &["rename", "moved", "drift"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`drift` exists already"));

    // Not at a terminal, deleting needs --yes.
    let out = caviar(dir.path(), &["delete", "moved"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));

    // A trial that runs holds the study.
    let slow = write_study(
        dir.path(),
        "slow",
        "name = \"slow\"\nmetric = \"loss\"\ntrials = 1\ncommand = [\"sh\", \"-c\", \"sleep 30; echo loss=1\"]\n[params]\nx = { low = 0.0, high = 1.0 }\n",
    );
    let mut running = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["run", slow.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let is_running = || {
        let out = caviar(dir.path(), &["trials", "slow", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|ts| ts.iter().any(|t| t["state"] == "running"))
    };
    while !is_running() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the trial never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = caviar(dir.path(), &["delete", "slow", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 trial(s) of `slow` are running"));
    let out = caviar(dir.path(), &["rename", "slow", "quick"]);
    assert_eq!(out.status.code(), Some(2));
    running.kill().unwrap();
    running.wait().unwrap();

    let out = caviar(dir.path(), &["delete", "moved", "--yes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said, serde_json::json!({"deleted": "moved", "trials": 7}));
    assert!(String::from_utf8_lossy(&out.stderr).contains("its trial folders stay in"));
    let out = caviar(dir.path(), &["delete", "moved", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        dir.path().join("caviar-trials/drift").is_dir(),
        "another study's folders stay"
    );
}

fn caviar_at(dir: &Path, storage: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .arg("--storage")
        .arg(storage)
        .args(args)
        .output()
        .expect("caviar runs");
    assert!(
        out.status.success(),
        "caviar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A study with a retried trial, reports, logs, a fingerprint attribute and a child (a
/// re-test), in `dir`'s caviar.db.
fn study_with_a_child(dir: &Path) {
    let text = DRIFTING
        .replace("trials = 30", "trials = 8")
        .replace("fingerprint = [\"data.txt\"]", "");
    let file = write_study(dir, "drift", &text);
    caviar_at(dir, "sqlite:caviar.db", &["run", file.to_str().unwrap()]);
    caviar_at(
        dir,
        "sqlite:caviar.db",
        &["retest", "drift", "-k", "2", "--repeats", "2"],
    );
}

#[test]
fn export_import_export_is_identical_and_children_need_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    study_with_a_child(dir.path());
    let first = caviar_at(dir.path(), "sqlite:caviar.db", &["export", "drift"]).stdout;
    let doc: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(doc["format"], "caviar-study");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["trials"].as_array().unwrap().len(), 8);
    std::fs::write(dir.path().join("drift.json"), &first).unwrap();
    caviar_at(dir.path(), "sqlite:other.db", &["import", "drift.json"]);
    let second = caviar_at(dir.path(), "sqlite:other.db", &["export", "drift"]).stdout;
    assert_eq!(
        String::from_utf8(second).unwrap(),
        String::from_utf8(first).unwrap()
    );

    // The child needs its parent where it goes; under another name it needs no other study.
    let child = caviar_at(
        dir.path(),
        "sqlite:caviar.db",
        &["export", "drift-retest-1", "--out", "child.json"],
    );
    assert!(child.stdout.is_empty());
    let out = caviar(
        dir.path(),
        &["--storage", "sqlite:empty.db", "import", "child.json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refines `drift`"));
    caviar_at(dir.path(), "sqlite:other.db", &["import", "child.json"]);
    let out = caviar(
        dir.path(),
        &["--storage", "sqlite:other.db", "import", "drift.json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
    caviar_at(
        dir.path(),
        "sqlite:other.db",
        &["import", "drift.json", "--name", "drift2"],
    );
    // The renamed copy's stored study file carries its new name: a worker can go on with it.
    caviar_at(
        dir.path(),
        "sqlite:other.db",
        &["worker", "drift2", "--trials", "9"],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(
            &caviar_at(
                dir.path(),
                "sqlite:other.db",
                &["trials", "drift2", "--json"]
            )
            .stdout
        )
        .unwrap()
        .as_array()
        .unwrap()
        .len(),
        9
    );
    // Not a document.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"format": "caviar-study", "version": 99}"#,
    )
    .unwrap();
    let out = caviar(dir.path(), &["import", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade caviar"));
}

#[test]
fn copy_sqlite_to_postgres_and_back_keeps_every_trial() {
    pg::in_postgres_schema("caviar_copy", |dir, pg_url| {
        study_with_a_child(dir);
        let trials =
            |url: &str, study: &str| caviar_at(dir, url, &["trials", study, "--json"]).stdout;
        for study in ["drift", "drift-retest-1"] {
            caviar_at(dir, "sqlite:caviar.db", &["copy", study, "--to", pg_url]);
        }
        for study in ["drift", "drift-retest-1"] {
            caviar_at(dir, pg_url, &["copy", study, "--to", "sqlite:back.db"]);
            assert_eq!(
                trials(pg_url, study),
                trials("sqlite:caviar.db", study),
                "{study}"
            );
            assert_eq!(
                trials("sqlite:back.db", study),
                trials("sqlite:caviar.db", study),
                "{study}"
            );
            assert_eq!(
                caviar_at(dir, "sqlite:back.db", &["export", study]).stdout,
                caviar_at(dir, "sqlite:caviar.db", &["export", study]).stdout
            );
        }
        let studies: Value = serde_json::from_slice(
            &caviar_at(dir, "sqlite:back.db", &["studies", "--json"]).stdout,
        )
        .unwrap();
        let child = studies
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "drift-retest-1")
            .unwrap();
        assert_eq!(child["parent"], "drift");
    });
}

/// A trial program that notes its devices and slot, then ends as its `mode` says.
const GPU_PROBE: &str = r#"#!/bin/sh
echo "$CAVIAR_TRIAL_NUMBER ${CAVIAR_WORKER_SLOT:-none} ${CUDA_VISIBLE_DEVICES-unset} ${CAVIAR_GPUS-unset}" >> "$PROBE_LOG"
case "$1" in
  crash) sleep 0.2; exit 1 ;;
  slow) sleep 5 ;;
  bad) echo "epoch=1 loss=100"; sleep 1; echo "epoch=2 loss=100" ;;
  *) sleep 0.2; echo "epoch=1 loss=1" ;;
esac
"#;

#[test]
fn each_running_trial_gets_its_own_gpus_and_slots_come_back_however_trials_end() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.sh");
    std::fs::write(&probe, GPU_PROBE).unwrap();
    let log = dir.path().join("probe.log");
    let study = write_study(
        dir.path(),
        "gpus",
        &format!(
            r#"
name = "gpus"
metric = "loss"
trials = 16
workers = 4
timeout = "1s"
max_failures = 0
command = ["sh", "{}", "{{mode}}"]

[resources]
gpus = [0, 1, 2, 3]
gpus_per_trial = 2

[sampler]
kind = "random"
seed = 5

[pruner]
kind = "median"
startup_trials = 1

[params]
mode = {{ choices = ["ok", "crash", "slow", "bad"] }}
"#,
            probe.display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["run", study.to_str().unwrap()])
        .env("PROBE_LOG", &log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("running 2 trials at once, one per slot of 2 GPU(s)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut devices = std::collections::HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        // CAVIAR_GPUS names the same devices as CUDA_VISIBLE_DEVICES.
        assert_eq!(f[2], f[3], "{line}");
        devices.insert(
            f[0].parse::<u64>().unwrap(),
            (f[1].to_string(), f[2].to_string()),
        );
    }
    let trials = trials_json(dir.path(), "gpus");
    assert_eq!(trials.len(), 16);
    let span = |t: &Value| {
        (
            t["started_ms"].as_i64().unwrap(),
            t["finished_ms"].as_i64().unwrap(),
        )
    };
    let mut slot_after_end = std::collections::HashSet::new();
    for a in &trials {
        let n = a["number"].as_u64().unwrap();
        let (slot, gpus) = &devices[&n];
        assert!(
            (slot == "0" && gpus == "0,1") || (slot == "1" && gpus == "2,3"),
            "trial {n}: slot {slot}, devices {gpus}"
        );
        let (a0, a1) = span(a);
        for b in &trials {
            let m = b["number"].as_u64().unwrap();
            let (b0, b1) = span(b);
            if m != n && a0 < b1 && b0 < a1 {
                assert_ne!(
                    devices[&m].1, *gpus,
                    "trials {n} and {m} ran at once on {gpus}"
                );
            }
        }
        // Never more than the two slots at once: count what runs at this trial's start.
        let at_start = trials
            .iter()
            .filter(|b| span(b).0 <= a0 && a0 < span(b).1)
            .count();
        assert!(
            at_start <= 2,
            "{at_start} trials ran when trial {n} started"
        );
        // A slot is used again after a trial that crashed, was pruned or timed out in it.
        let reused = trials
            .iter()
            .any(|b| span(b).0 >= a1 && devices[&b["number"].as_u64().unwrap()].0 == *slot);
        if a["state"] != "complete" && reused {
            slot_after_end.insert(match a["error"].as_str() {
                Some(e) if e.contains("timed out") || e.contains("timeout") => "timeout",
                Some(_) => "crash",
                None => "pruned",
            });
        }
    }
    assert_eq!(
        slot_after_end,
        ["timeout", "crash", "pruned"].into_iter().collect(),
        "{trials:#?}"
    );
}

#[test]
fn gpus_auto_uses_nvidia_smi_and_without_it_runs_without_gpus() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.sh");
    std::fs::write(&probe, GPU_PROBE).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let study_text = |name: &str| {
        format!(
            "name = \"{name}\"\nmetric = \"loss\"\ntrials = 4\nworkers = 4\ncommand = [\"sh\", \"{}\", \"ok\"]\n[resources]\ngpus = \"auto\"\n[params]\nx = {{ low = 0.0, high = 1.0 }}\n",
            probe.display()
        )
    };
    let run = |name: &str, path: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let file = write_study(dir.path(), name, &study_text(name));
        let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
            .current_dir(dir.path())
            .args(["run", file.to_str().unwrap()])
            .env("PROBE_LOG", &log)
            .env("PATH", path)
            .env_remove("CUDA_VISIBLE_DEVICES")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            std::fs::read_to_string(&log).unwrap(),
        )
    };
    // No nvidia-smi: no GPUs, a note, all four workers.
    let (said, log) = run("none", &format!("{}:/usr/bin:/bin", bin.display()));
    assert!(
        said.contains("gpus = \"auto\": nvidia-smi could not be run"),
        "{said}"
    );
    assert!(log.lines().all(|l| l.ends_with(" unset unset")), "{log}");
    // A fake nvidia-smi with two GPUs: two slots of one.
    std::fs::write(
        bin.join("nvidia-smi"),
        "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-aaaa)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-bbbb)'\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", bin.join("nvidia-smi").to_str().unwrap()])
        .status()
        .unwrap();
    let (said, log) = run("two", &format!("{}:/usr/bin:/bin", bin.display()));
    assert!(said.contains("2 GPU(s) (nvidia-smi lists them)"), "{said}");
    let seen: std::collections::BTreeSet<&str> =
        log.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(seen, ["0", "1"].into_iter().collect(), "{log}");
}

#[test]
fn commands_and_study_files_attach_user_attributes_that_are_kept_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(
        dir.path(),
        "attrs",
        r#"
name = "attrs"
metric = "loss"
trials = 2
command = ["sh", "-c", "echo attr:git_sha=abc123; echo 'attr: epochs = 3'; echo 'attr:tags=[\"a\",\"b\"]'; echo attr:retry_of=99; echo attr:bad key=1; echo loss=0.5"]
user_attrs = { dataset = "mnist-v2", owner = "ann", fingerprint = "mine" }

[params]
x = { low = 0.0, high = 1.0 }
"#,
    );
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("user_attrs.fingerprint is caviar's own"));
    for t in trials_json(dir.path(), "attrs") {
        assert_eq!(
            t["user_attrs"],
            serde_json::json!({"git_sha": "abc123", "epochs": 3, "tags": ["a", "b"]}),
            "{t}"
        );
        // The lines stay in the log.
        assert!(t["error"].is_null());
    }
    let studies: Value =
        serde_json::from_slice(&caviar(dir.path(), &["studies", "--json"]).stdout).unwrap();
    let attrs = &studies[0]["user_attrs"];
    assert_eq!(attrs["dataset"], "mnist-v2");
    assert_eq!(attrs["owner"], "ann");
    assert!(
        attrs["fingerprint"].is_object(),
        "caviar's fingerprint stays: {attrs}"
    );
    let doc: Value =
        serde_json::from_slice(&caviar(dir.path(), &["export", "attrs"]).stdout).unwrap();
    assert_eq!(doc["user_attrs"]["dataset"], "mnist-v2");
    assert_eq!(doc["trials"][0]["user_attrs"]["git_sha"], "abc123");
    assert!(doc["trials"][0]["log"]
        .as_str()
        .unwrap()
        .contains("attr:git_sha=abc123"));
}

#[test]
fn every_reported_key_is_kept_as_its_own_series_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(
        dir.path(),
        "five",
        r#"
name = "five"
metric = "val_loss"
trials = 3
command = ["sh", "-c", "for e in 1 2 3; do echo \"epoch=$e val_loss=0.$e train_loss=0.0$e lr=0.01 acc=0.9$e throughput=12$e note=fast\"; done; echo 'a line that is no report'"]

[params]
x = { low = 0.0, high = 1.0 }
"#,
    );
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in trials_json(dir.path(), "five") {
        // The objective's curve, and four more series, one per key.
        assert_eq!(
            t["intermediate"],
            serde_json::json!([[1, 0.1], [2, 0.2], [3, 0.3]])
        );
        let metrics = t["metrics"].as_object().unwrap();
        assert_eq!(
            metrics.keys().collect::<Vec<_>>(),
            ["acc", "lr", "throughput", "train_loss"],
            "{t}"
        );
        assert_eq!(
            t["metrics"]["throughput"],
            serde_json::json!([[1, 121.0], [2, 122.0], [3, 123.0]])
        );
    }
    // The log keeps what was not a number.
    let doc: Value =
        serde_json::from_slice(&caviar(dir.path(), &["export", "five"]).stdout).unwrap();
    let first = &doc["trials"][0];
    assert_eq!(
        first["metrics"]["acc"],
        serde_json::json!([[1, 0.91], [2, 0.92], [3, 0.93]])
    );
    assert!(first["log"].as_str().unwrap().contains("note=fast"));
    assert!(first["log"]
        .as_str()
        .unwrap()
        .contains("a line that is no report"));
    // CSV: the last value of each metric.
    let csv = String::from_utf8(caviar(dir.path(), &["trials", "five", "--csv"]).stdout).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with("param_x,metric_acc,metric_lr,metric_throughput,metric_train_loss,error"),
        "{header}"
    );
    assert!(
        csv.lines().nth(1).unwrap().contains(",0.93,0.01,123,0.03,"),
        "{csv}"
    );
    // best --show adds the metrics asked for.
    let best = String::from_utf8(
        caviar(
            dir.path(),
            &["best", "five", "-k", "1", "--show", "train_loss,lr,nope"],
        )
        .stdout,
    )
    .unwrap();
    assert!(
        best.contains("| train_loss:0.03, lr:0.01, nope:-"),
        "{best}"
    );
    let best: Value = serde_json::from_slice(
        &caviar(
            dir.path(),
            &["best", "five", "-k", "1", "--show", "acc", "--json"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(best[0]["metrics"], serde_json::json!({"acc": 0.93}));
}

#[test]
fn a_renamed_parent_stays_the_parent_of_its_retest_for_workers_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    study_with_a_child(dir.path());
    caviar_at(dir.path(), "sqlite:caviar.db", &["rename", "drift", "base"]);
    // The re-test still resumes by name (its parent attribute followed) ...
    let out = caviar_at(
        dir.path(),
        "sqlite:caviar.db",
        &["retest", "base", "--name", "drift-retest-1", "--json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["parent"], "base");
    // ... and its workers find their parent by the new name in the stored study file.
    caviar_at(
        dir.path(),
        "sqlite:caviar.db",
        &["worker", "drift-retest-1", "--trials", "5"],
    );
    let studies: Value = serde_json::from_slice(
        &caviar_at(dir.path(), "sqlite:caviar.db", &["studies", "--json"]).stdout,
    )
    .unwrap();
    let child = studies
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "drift-retest-1")
        .unwrap();
    assert_eq!(child["parent"], "base");
    assert_eq!(child["n_trials"], 5);
}

#[test]
fn an_interrupted_retest_resumes_and_reruns_what_ctrl_c_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let unpruned = DRIFTING
        .replace("[pruner]\nkind = \"median\"\n", "")
        .replace("fingerprint = [\"data.txt\"]", "")
        .replace("trials = 30", "trials = 8");
    let file = write_study(dir.path(), "drift", &unpruned);
    caviar_at(
        dir.path(),
        "sqlite:caviar.db",
        &["run", file.to_str().unwrap()],
    );
    // The same program, slower, so Ctrl-C finds runs in flight.
    let slow = write_study(
        dir.path(),
        "slow",
        &unpruned.replace(
            "command = [\"SCRIPTS/drifting.sh\", \"{x}\", \"{seed}\"]",
            "command = [\"sh\", \"-c\", \"sleep 0.4; exec SCRIPTS/drifting.sh \\\"$0\\\" \\\"$1\\\"\", \"{x}\", \"{seed}\"]",
        ),
    );
    let log_path = dir.path().join("retest.log");
    let child = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args([
            "retest",
            "drift",
            "-k",
            "2",
            "--repeats",
            "3",
            "--workers",
            "2",
        ])
        .args(["--file", slow.to_str().unwrap()])
        .env_remove("DRIFT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_complete(dir.path(), "drift-retest-1", 1);
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(out.status.code(), Some(130), "{log}");
    let before = trials_json(dir.path(), "drift-retest-1");
    assert!(
        before.iter().any(|t| t["error"] == "interrupted"),
        "{before:#?}"
    );
    // Resuming queues again what was stopped; interrupted runs are not failures.
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["retest", "drift", "--name", "drift-retest-1", "--json"])
        .env_remove("DRIFT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run(s) that `drift-retest-1` still lacked")
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "stable", "{report:#}");
    for c in report["configs"].as_array().unwrap() {
        assert_eq!(c["new_values"].as_array().unwrap().len(), 3, "{c}");
        assert!(c["failures"].as_array().unwrap().is_empty(), "{c}");
    }
    assert!(trials_json(dir.path(), "drift-retest-1").len() > 6);
}

#[test]
fn conditional_parameters_reach_commands_only_when_their_conditions_hold() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo \"attr:argv=$*\"; echo \"attr:env=${{CAVIAR_PARAM_BETA1:-absent}}\"; \
                  echo \"attr:file=$(cat \"$CAVIAR_TRIAL_FILE\")\"; echo loss=$CAVIAR_PARAM_LR";
    let body = format!(
        "name = \"cond\"\nmetric = \"loss\"\ntrials = 24\n\
         command = [\"sh\", \"-c\", {script:?}, \"sh\", \"--lr\", \"{{lr}}\", \"--beta1\", \"{{beta1}}\", \"--floor={{floor}}\"]\n\
         [sampler]\nkind = \"tpe\"\nseed = 3\n\
         [params]\n\
         beta1 = {{ low = 0.5, high = 0.999, scale = \"reverse_log\", when = {{ optimizer = \"adam\" }} }}\n\
         optimizer = {{ choices = [\"sgd\", \"adam\", \"adamw\"] }}\n\
         lr = {{ low = 1e-4, high = 1.0, scale = \"log\" }}\n\
         amsgrad = {{ choices = [true, false], when = {{ optimizer = [\"adam\", \"adamw\"] }} }}\n\
         floor = {{ low = 1e-8, high = 1e-2, scale = \"log\", when = {{ amsgrad = true }} }}\n"
    );
    let study = write_study(dir.path(), "cond", &body);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trials = trials_json(dir.path(), "cond");
    assert_eq!(trials.len(), 24);
    let mut seen = std::collections::BTreeSet::new();
    for t in &trials {
        assert_eq!(t["state"], "complete", "{t}");
        let params = t["params"].as_object().unwrap();
        let optimizer = params["optimizer"].as_str().unwrap();
        let adam_like = optimizer != "sgd";
        let floor = adam_like && params.get("amsgrad") == Some(&Value::Bool(true));
        assert_eq!(params.contains_key("beta1"), optimizer == "adam", "{t}");
        assert_eq!(params.contains_key("amsgrad"), adam_like, "{t}");
        assert_eq!(params.contains_key("floor"), floor, "{t}");
        let attrs = &t["user_attrs"];
        let argv = attrs["argv"].as_str().unwrap();
        let file_params = attrs["file"]["params"].as_object().unwrap();
        assert_eq!(
            file_params.len(),
            params.len(),
            "the trial file holds what the trial has"
        );
        if optimizer == "adam" {
            assert!(argv.contains("--beta1 0."), "{argv}");
            assert_ne!(attrs["env"], "absent");
        } else {
            assert!(
                !argv.contains("--beta1"),
                "flag and value both dropped: {argv}"
            );
            assert_eq!(attrs["env"], "absent");
        }
        assert_eq!(argv.contains("--floor="), floor, "{argv}");
        seen.insert((optimizer.to_string(), floor));
    }
    assert!(seen.len() >= 4, "branches tried: {seen:?}");
    // A queued trial cannot carry a parameter its own parents rule out.
    let out = caviar(
        dir.path(),
        &["enqueue", "cond", "optimizer=sgd", "beta1=0.9"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists only when optimizer is one of"));
    let out = caviar(
        dir.path(),
        &["enqueue", "cond", "optimizer=adam", "beta1=0.9"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A condition on a parameter that is not categorical names the fix.
    let bad = body
        .replace("\"cond\"", "\"bad\"")
        .replace("when = { optimizer = \"adam\" }", "when = { lr = 0.1 }");
    let study = write_study(dir.path(), "bad", &bad);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("parameter `beta1`") && err.contains("categorical"),
        "{err}"
    );
}

#[test]
fn narrowing_a_conditional_study_keeps_each_branch_that_survives() {
    let dir = tempfile::tempdir().unwrap();
    // Adam is always worse here, so the best trials all use sgd or momentum.
    let script = "case $CAVIAR_PARAM_OPTIMIZER in adam) echo loss=9;; \
                  *) echo loss=$CAVIAR_PARAM_LR;; esac";
    let body = format!(
        "name = \"branches\"\nmetric = \"loss\"\ntrials = 40\n\
         command = [\"sh\", \"-c\", {script:?}, \"sh\", \"--beta1\", \"{{beta1}}\", \"--m={{momentum}}\"]\n\
         [sampler]\nkind = \"random\"\nseed = 1\n\
         [params]\n\
         optimizer = {{ choices = [\"sgd\", \"momentum\", \"adam\"] }}\n\
         lr = {{ low = 1e-4, high = 1.0, scale = \"log\" }}\n\
         beta1 = {{ low = 0.5, high = 0.999, when = {{ optimizer = \"adam\" }} }}\n\
         momentum = {{ low = 0.5, high = 0.99, when = {{ optimizer = [\"momentum\", \"adam\"] }} }}\n"
    );
    let study = write_study(dir.path(), "branches", &body);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let next = dir.path().join("next.toml");
    let out = caviar(
        dir.path(),
        &[
            "narrow",
            "branches",
            "-k",
            "8",
            "--write",
            next.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&next).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let params = doc["params"].as_table().unwrap();
    let choices = params["optimizer"]["choices"].as_array().unwrap();
    assert!(!choices.contains(&toml::Value::from("adam")), "{text}");
    assert!(
        !params.contains_key("beta1"),
        "adam's own parameter goes: {text}"
    );
    let command: Vec<&str> = doc["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        !command.contains(&"--beta1") && !command.contains(&"{beta1}"),
        "{command:?}"
    );
    if choices.contains(&toml::Value::from("momentum")) {
        assert_eq!(
            params["momentum"]["when"]["optimizer"].as_str(),
            Some("momentum"),
            "{text}"
        );
        assert!(command.contains(&"--m={momentum}"), "{command:?}");
    }
    // The next round runs as written.
    let out = caviar(dir.path(), &["run", next.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const CONSTRAINED: &str = r#"
name = "fit"
direction = "maximize"
metric = "score"
trials = 8
constraints = ["memory_mb <= 500", "score > 1"]
command = ["sh", "-c", "echo epoch=1 score={width} memory_mb=$(({width} * 100))"]

[sampler]
kind = "grid"

[params]
width = { choices = [1, 2, 3, 4, 5, 6, 7, 8] }
"#;

#[test]
fn constraints_keep_infeasible_trials_complete_but_out_of_the_best_tables() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "fit", CONSTRAINED);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trials = trials_json(dir.path(), "fit");
    assert_eq!(trials.len(), 8);
    for t in &trials {
        let width = t["params"]["width"].as_f64().unwrap();
        assert_eq!(t["state"], "complete", "{t}");
        let feasible = (2.0..=5.0).contains(&width);
        assert_eq!(t["feasible"], feasible, "{t}");
        // memory_mb <= 500 reads width * 100 - 500; score > 1 reads 1 - width.
        assert_eq!(
            t["constraints"][0].as_f64().unwrap(),
            width * 100.0 - 500.0,
            "{t}"
        );
    }
    let best = String::from_utf8(caviar(dir.path(), &["best", "fit", "-k", "3"]).stdout).unwrap();
    let ranked: Vec<&str> = best.lines().filter(|l| l.starts_with("Best-")).collect();
    assert_eq!(ranked.len(), 3, "{best}");
    assert!(
        ranked[0].starts_with("Best-1 (score:5.0000) | width:5"),
        "{best}"
    );
    assert!(ranked[2].contains("width:3"), "{best}");
    assert!(
        best.contains(
            "4 complete trials broke a constraint (memory_mb <= 500, score > 1) and are left out"
        ),
        "{best}"
    );
    let best: Value =
        serde_json::from_slice(&caviar(dir.path(), &["best", "fit", "--json"]).stdout).unwrap();
    assert_eq!(best.as_array().unwrap().len(), 4);
    assert!(best
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["feasible"] == true));
    // The listing says which constraint each infeasible trial broke, with what it reported.
    let listing = String::from_utf8(caviar(dir.path(), &["trials", "fit"]).stdout).unwrap();
    assert!(
        listing.contains("infeasible: memory_mb <= 500 (800)"),
        "{listing}"
    );
    assert!(listing.contains("infeasible: score > 1 (1)"), "{listing}");
    let csv = String::from_utf8(caviar(dir.path(), &["trials", "fit", "--csv"]).stdout).unwrap();
    assert!(
        csv.lines().next().unwrap().ends_with(",feasible,error"),
        "{csv}"
    );
    let studies: Value =
        serde_json::from_slice(&caviar(dir.path(), &["studies", "--json"]).stdout).unwrap();
    assert_eq!(studies[0]["best_value"], 5.0);

    // Other constraints for the stored study are refused; a bad one names the key and the fix.
    std::fs::write(&study, CONSTRAINED.replace("<= 500", "<= 600")).unwrap();
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("constraints") && err.contains("memory_mb <= 500"),
        "{err}"
    );
    std::fs::write(
        &study,
        CONSTRAINED.replace("memory_mb <= 500", "memory_mb =< 500"),
    )
    .unwrap();
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("fit.toml:6: constraints: constraint `memory_mb =< 500`"),
        "{err}"
    );
    assert!(err.contains("KEY <= NUMBER"), "{err}");
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .canonicalize()
        .unwrap()
}

#[test]
fn two_objectives_give_a_pareto_front_with_its_hypervolume() {
    let dir = tempfile::tempdir().unwrap();
    let zdt = example("zdt1.toml");
    let out = caviar(
        dir.path(),
        &["run", zdt.to_str().unwrap(), "--trials", "40"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Pareto front:"), "{err}");
    let trials = trials_json(dir.path(), "zdt1");
    assert_eq!(trials.len(), 40);
    let front: Value =
        serde_json::from_slice(&caviar(dir.path(), &["best", "zdt1", "--json"]).stdout).unwrap();
    let front = front.as_array().unwrap();
    let values = |t: &Value| -> Vec<f64> {
        t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    assert!(!front.is_empty());
    // Every trial on the front is undominated, and every other trial is dominated by one on it.
    let dominates =
        |a: &[f64], b: &[f64]| a[0] <= b[0] && a[1] <= b[1] && (a[0] < b[0] || a[1] < b[1]);
    let on_front: Vec<u64> = front
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    for t in &trials {
        let v = values(t);
        assert_eq!(v.len(), 2, "{t}");
        let dominated = trials.iter().any(|o| dominates(&values(o), &v));
        assert_eq!(
            on_front.contains(&t["number"].as_u64().unwrap()),
            !dominated,
            "{t}"
        );
    }
    let text = String::from_utf8(caviar(dir.path(), &["best", "zdt1"]).stdout).unwrap();
    assert!(text.starts_with("Pareto front of `zdt1`:"), "{text}");
    assert!(text.contains("f1 (min), f2 (min)"), "{text}");
    assert!(text.contains("hypervolume "), "{text}");
    let two = String::from_utf8(caviar(dir.path(), &["best", "zdt1", "-k", "1"]).stdout).unwrap();
    if front.len() > 1 {
        assert!(
            two.contains(&format!("({} more on the front", front.len() - 1)),
            "{two}"
        );
    }

    // What a study of several objectives cannot be, each named with its fix.
    let base = std::fs::read_to_string(&zdt)
        .unwrap()
        .replace("scripts/", &format!("{}/", scripts().display()));
    for (change, says) in [
        (
            ("metrics = [\"f1\", \"f2\"]", "metrics = [\"f1\"]"),
            "directions has 2 entries and metrics 1",
        ),
        (
            ("kind = \"nsga2\"\npopulation_size = 20", "kind = \"gp\""),
            "[sampler] kind = \"gp\" optimises one objective",
        ),
        (
            ("[params]", "[pruner]\nkind = \"median\"\n\n[params]"),
            "does not prune",
        ),
        (
            (
                "directions = [\"minimize\", \"minimize\"]",
                "directions = [\"minimize\", \"up\"]",
            ),
            "\"up\" is not known",
        ),
        (
            ("metrics = [\"f1\", \"f2\"]", "metrics = [\"f1\", \"f1\"]"),
            "names `f1` twice",
        ),
    ] {
        let study = dir.path().join("bad.toml");
        std::fs::write(&study, base.replace(change.0, change.1)).unwrap();
        let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{says}: {err}");
        assert!(err.contains(says), "{says}: {err}");
    }
}

#[test]
fn a_study_made_under_the_old_default_sampler_keeps_it_when_its_file_names_none() {
    let dir = tempfile::tempdir().unwrap();
    let body = |sampler: &str| {
        format!(
            "name = \"kept\"\nmetric = \"loss\"\ntrials = TRIALS\n\
             command = [\"sh\", \"-c\", \"echo loss=$CAVIAR_PARAM_X\"]\n{sampler}\
             [params]\nx = {{ low = 0.0, high = 1.0 }}\n"
        )
    };
    // The study as a version whose default was random stored it.
    let old = body("[sampler]\nkind = \"random\"\n").replace("TRIALS", "3");
    let study = write_study(dir.path(), "kept", &old);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same study resumed from a file that names no sampler.
    let resumed = write_study(dir.path(), "kept", &body("").replace("TRIALS", "5"));
    let out = caviar(dir.path(), &["run", resumed.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("keeps [sampler] kind = \"random\""),
        "{stderr}"
    );
    assert_eq!(trials_json(dir.path(), "kept").len(), 5);
    // A new study from the same file gets the new default, and says nothing.
    let fresh = write_study(
        dir.path(),
        "fresh",
        &body("")
            .replace("TRIALS", "2")
            .replace("\"kept\"", "\"fresh\""),
    );
    let out = caviar(dir.path(), &["run", fresh.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("keeps [sampler]"), "{stderr}");
    // A file that sets an option of the new default gets the new default, not the old kind.
    let tuned = body("[sampler]\nstartup_trials = 2\n").replace("TRIALS", "6");
    let tuned = write_study(dir.path(), "kept", &tuned);
    let out = caviar(dir.path(), &["run", tuned.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("keeps [sampler]"), "{stderr}");
    assert_eq!(trials_json(dir.path(), "kept").len(), 6);
}

#[test]
fn importance_ranks_lr_first_by_fanova_or_ped_anova_and_names_a_bad_method() {
    let dir = tempfile::tempdir().unwrap();
    let body = TOY
        .replace("KIND", "tpe")
        .replace("trials = 12", "trials = 40")
        .replace("workers = 2", "workers = 1");
    let study = write_study(dir.path(), "toy", &body);
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ranked = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["importance", "toy", "--json"];
        args.extend(extra);
        let out = caviar(dir.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The toy's accuracy falls with the square of lr's decades from 10^-2.5: lr decides.
    let fanova = ranked(&[]);
    assert_eq!(fanova[0]["name"], "lr", "{fanova:?}");
    assert!(
        fanova[0]["importance"].as_f64().unwrap() > 0.5,
        "{fanova:?}"
    );
    assert!(
        fanova[0]["variance_fraction"].as_f64().unwrap() > 0.3,
        "{fanova:?}"
    );
    assert!(fanova[0]["divergence"].as_f64().is_some(), "{fanova:?}");
    let ped = ranked(&["--method", "ped-anova"]);
    assert_eq!(ped.len(), 4);
    assert!(ped[0]["variance_fraction"].is_null(), "{ped:?}");
    let text = caviar(dir.path(), &["importance", "toy"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("fANOVA") && text.contains("lr"), "{text}");
    for (args, named) in [
        (vec!["--method", "shap"], "--method"),
        (vec!["--trees", "0"], "--trees"),
    ] {
        let mut all = vec!["importance", "toy"];
        all.extend(args);
        let out = caviar(dir.path(), &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(named), "{err}");
    }
}

#[test]
fn trials_sort_filter_and_limit_as_the_dashboards_table_does() {
    let dir = tempfile::tempdir().unwrap();
    let study = write_study(dir.path(), "toy", &TOY.replace("KIND", "random"));
    let out = caviar(dir.path(), &["run", study.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = trials_json(dir.path(), "toy");
    let mut values: Vec<f64> = all.iter().map(|t| t["value"].as_f64().unwrap()).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let out = caviar(
        dir.path(),
        &[
            "trials", "toy", "--sort", "value", "--desc", "--limit", "3", "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let shown: Vec<f64> = top.iter().map(|t| t["value"].as_f64().unwrap()).collect();
    assert_eq!(shown, values[..3]);
    let out = caviar(
        dir.path(),
        &["trials", "toy", "--state", "failed", "--json"],
    );
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    // The plain table: a header and the two trials of smallest lr.
    let out = caviar(
        dir.path(),
        &["trials", "toy", "--sort", "param:lr", "--limit", "2"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    for (args, named) in [
        (vec!["--sort", "speed"], "--sort: unknown column `speed`"),
        (vec!["--state", "done"], "--state: `done`"),
    ] {
        let mut all = vec!["trials", "toy"];
        all.extend(args);
        let out = caviar(dir.path(), &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(named), "{err}");
    }
}
