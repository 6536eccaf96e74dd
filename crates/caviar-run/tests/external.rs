//! Real child processes through the runner: success, crash, signals, hangs, NaN, silence.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use caviar_core::space::ParamValue;
use caviar_core::study::Outcome;
use caviar_run::{run_command, CommandSpec, Control, RunResult, TrialInput};

fn script() -> String {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/scripts/fake_train.sh");
    root.canonicalize().unwrap().display().to_string()
}

fn run(
    mode: &str,
    timeout: Option<Duration>,
    env: Vec<(String, String)>,
) -> (RunResult, Vec<(u64, f64)>) {
    let mut spec = CommandSpec::new(vec![script(), mode.into(), "{lr}".into()], "val_acc");
    spec.timeout = timeout;
    spec.kill_grace = Duration::from_millis(500);
    spec.env = env;
    let mut params = BTreeMap::new();
    params.insert("lr".to_string(), ParamValue::Float(0.01));
    let input = TrialInput {
        study: "s",
        number: 7,
        params: &params,
    };
    let mut seen = Vec::new();
    let result = run_command(&spec, &input, &AtomicBool::new(false), &mut |step, v| {
        seen.push((step, v));
        Control::Continue
    })
    .unwrap();
    (result, seen)
}

fn failure(result: &RunResult) -> &str {
    match &result.outcome {
        Outcome::Failed(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn success_reports_every_epoch_and_the_last_is_the_objective() {
    let (result, seen) = run("ok", None, vec![]);
    assert_eq!(result.outcome, Outcome::Complete(0.95));
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!((seen[0].1 - 0.95 / 3.0).abs() < 1e-5);
}

#[test]
fn parameters_arrive_as_argument_environment_and_file() {
    let (result, _) = run("params", None, vec![]);
    assert_eq!(result.outcome, Outcome::Complete(0.01));
}

#[test]
fn a_final_line_overrides_the_last_report() {
    let (result, seen) = run("final", None, vec![]);
    assert_eq!(result.outcome, Outcome::Complete(0.25));
    assert_eq!(seen, vec![(1, 0.2), (2, 0.3)]);
}

#[test]
fn crash_is_a_failure_with_status_and_stderr_tail() {
    let (result, seen) = run("crash", None, vec![]);
    let reason = failure(&result);
    assert!(reason.contains("exited with status 3"), "{reason}");
    assert!(reason.contains("ValueError: bad shape"), "{reason}");
    assert_eq!(seen, vec![(1, 0.1)], "reports before the crash are kept");
}

#[test]
fn a_signal_is_named() {
    let (result, _) = run("segv", None, vec![]);
    let reason = failure(&result);
    assert!(reason.contains("signal 11"), "{reason}");
}

#[test]
fn a_hang_past_the_timeout_stops_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let started = std::time::Instant::now();
    let (result, seen) = run(
        "hang",
        Some(Duration::from_millis(800)),
        vec![("CHILD_PID_FILE".into(), pid_file.display().to_string())],
    );
    let reason = failure(&result);
    assert!(reason.contains("timed out"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(seen, vec![(1, 0.5)]);
    let child: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild `sleep` must be gone (or a zombie about to be reaped by init).
    let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim().chars().next().unwrap_or('X'));
    assert!(
        stat.is_empty() || state == Some('Z'),
        "stray child still alive: {stat}"
    );
}

#[test]
fn nan_objective_is_a_failure() {
    let (result, _) = run("nan", None, vec![]);
    assert!(failure(&result).contains("not a finite number"));
}

#[test]
fn silence_is_a_failure_that_says_what_to_print() {
    let (result, _) = run("silent", None, vec![]);
    let reason = failure(&result);
    assert!(reason.contains("never reported `val_acc`"), "{reason}");
    assert!(
        reason.contains("I print no reports"),
        "stdout tail kept: {reason}"
    );
}

#[test]
fn pruning_stops_the_command() {
    let mut spec = CommandSpec::new(vec![script(), "hang".into(), "{lr}".into()], "val_acc");
    spec.kill_grace = Duration::from_millis(200);
    let mut params = BTreeMap::new();
    params.insert("lr".to_string(), ParamValue::Float(0.01));
    let input = TrialInput {
        study: "s",
        number: 0,
        params: &params,
    };
    let result = run_command(&spec, &input, &AtomicBool::new(false), &mut |_, _| {
        Control::Prune
    })
    .unwrap();
    assert_eq!(result.outcome, Outcome::Pruned);
}

/// Whether process `pid` is gone (or a zombie about to be reaped).
fn is_gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim().chars().next().unwrap_or('X'));
    stat.is_empty() || state == Some('Z')
}

#[test]
fn a_pruned_command_that_ignores_term_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let mut spec = CommandSpec::new(vec![script(), "stubborn".into(), "{lr}".into()], "val_acc");
    spec.kill_grace = Duration::from_millis(300);
    spec.env = vec![("CHILD_PID_FILE".into(), pid_file.display().to_string())];
    let mut params = BTreeMap::new();
    params.insert("lr".to_string(), ParamValue::Float(0.01));
    let input = TrialInput {
        study: "s",
        number: 0,
        params: &params,
    };
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    let mut stopped_at = None;
    let result = run_command(&spec, &input, &AtomicBool::new(false), &mut |step, v| {
        seen.push((step, v));
        if step == 3 {
            stopped_at = Some(std::time::Instant::now());
            Control::Prune
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert_eq!(result.outcome, Outcome::Pruned);
    assert_eq!(
        seen.last().map(|s| s.0),
        Some(3),
        "no report after the prune"
    );
    let waited = stopped_at.unwrap().elapsed();
    assert!(
        waited >= Duration::from_millis(250) && started.elapsed() < Duration::from_secs(5),
        "TERM ignored, so KILL comes after the grace period: {waited:?}"
    );
    let child: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(is_gone(child), "the child that ignores TERM survived");
}

#[test]
fn cancel_interrupts() {
    let spec = CommandSpec::new(vec![script(), "hang".into(), "{lr}".into()], "val_acc");
    let mut params = BTreeMap::new();
    params.insert("lr".to_string(), ParamValue::Float(0.01));
    let input = TrialInput {
        study: "s",
        number: 0,
        params: &params,
    };
    let cancel = AtomicBool::new(true);
    let result = run_command(&spec, &input, &cancel, &mut |_, _| Control::Continue).unwrap();
    assert_eq!(result.outcome, Outcome::Failed("interrupted".into()));
}

#[test]
fn the_output_keeps_stdout_and_stderr_lines_for_the_trial_log() {
    let (ok, _) = run("ok", None, vec![]);
    let lines: Vec<&str> = ok.output.lines().collect();
    assert!(lines[0].starts_with("starting: lr=0.01"), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("epoch=")).count(), 3);
    let (crash, _) = run("crash", None, vec![]);
    for line in [
        "epoch=1 val_acc=0.1",
        "Traceback: something broke",
        "ValueError: bad shape",
    ] {
        assert!(crash.output.contains(line), "{}", crash.output);
    }
}
