//! Commands that behave badly on purpose: descendants that leave the process group, lines of
//! hundreds of megabytes, a report callback that panics.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use caviar_core::space::ParamValue;
use caviar_core::study::Outcome;
use caviar_run::{run_command, CommandSpec, Control, RunResult, TrialInput, MAX_LINE_BYTES};

fn sh(script: &str, timeout: Option<Duration>) -> RunResult {
    let mut spec = CommandSpec::new(vec!["sh".into(), "-c".into(), script.into()], "val_acc");
    spec.timeout = timeout;
    spec.kill_grace = Duration::from_millis(300);
    let params = BTreeMap::from([("lr".to_string(), ParamValue::Float(0.01))]);
    let input = TrialInput {
        study: "hostile",
        number: 0,
        params: &params,
    };
    run_command(&spec, &input, &AtomicBool::new(false), &mut |_, _| {
        Control::Continue
    })
    .unwrap()
}

/// The pid a script wrote to `file`, waiting for it to appear.
fn read_pid(file: &Path) -> i32 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < until, "{} never written", file.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is gone or a zombie, waiting up to a second for it to die.
fn dies(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim().chars().next());
        if stat.is_empty() || state == Some('Z') {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: i32) {
    // SAFETY: only signals a pid a test's own script started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[test]
fn a_setsid_grandchild_holding_stdout_cannot_stretch_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!(
        "echo val_acc=0.5; setsid sh -c 'echo $$ > {}; exec sleep 30' & sleep 30",
        pid_file.display()
    );
    let started = Instant::now();
    let result = sh(&script, Some(Duration::from_secs(1)));
    let took = started.elapsed();
    let grandchild = read_pid(&pid_file);
    let gone = dies(grandchild);
    kill(grandchild);
    match &result.outcome {
        Outcome::Failed(reason) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(4), "the trial took {took:?}");
    assert!(gone, "the setsid grandchild outlived the timed-out trial");
}

#[test]
fn a_setsid_grandchild_dies_with_a_trial_that_completes() {
    let dir = tempfile::tempdir().unwrap();
    let holding = dir.path().join("holding.pid");
    let detached = dir.path().join("detached.pid");
    // One keeps stdout open, the other sends its output elsewhere; the command itself reports
    // and exits at once.
    let script = format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 30' & \
         setsid sh -c 'echo $$ > {}; exec sleep 30' >/dev/null 2>&1 & \
         sleep 0.3; echo val_acc=0.9",
        holding.display(),
        detached.display()
    );
    let started = Instant::now();
    let result = sh(&script, None);
    let took = started.elapsed();
    let (a, b) = (read_pid(&holding), read_pid(&detached));
    let (a_gone, b_gone) = (dies(a), dies(b));
    kill(a);
    kill(b);
    assert_eq!(result.outcome, Outcome::Complete(0.9));
    assert!(took < Duration::from_secs(4), "the trial took {took:?}");
    assert!(a_gone, "the grandchild holding stdout outlived its trial");
    assert!(b_gone, "the detached grandchild outlived its trial");
}

#[test]
fn a_report_after_a_600_mb_line_is_read_and_the_line_is_cut() {
    let result = sh(
        "echo epoch=1 val_acc=0.2; head -c 600000000 /dev/zero | tr '\\0' x; echo; \
         echo epoch=2 val_acc=0.7",
        None,
    );
    assert_eq!(result.outcome, Outcome::Complete(0.7));
    assert_eq!(result.reports, 2);
    let cut = result
        .output
        .lines()
        .find(|l| l.contains("line cut"))
        .expect("the cut is noted in the log");
    let skipped = 600_000_000 - MAX_LINE_BYTES;
    assert!(
        cut.contains(&format!("{skipped} more bytes skipped")),
        "{cut}"
    );
}

#[test]
fn a_panicking_report_callback_stops_the_command_then_panics_on() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let script = format!(
        "sleep 30 & echo $! > {}; echo epoch=1 val_acc=0.1; sleep 30",
        pid_file.display()
    );
    let spec = CommandSpec::new(vec!["sh".into(), "-c".into(), script], "val_acc");
    let params = BTreeMap::new();
    let input = TrialInput {
        study: "hostile",
        number: 1,
        params: &params,
    };
    let started = Instant::now();
    let caught = std::panic::catch_unwind(|| {
        run_command(&spec, &input, &AtomicBool::new(false), &mut |_, _| {
            panic!("pruner bug")
        })
    });
    let panic = caught.expect_err("the callback's panic goes on to the caller");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"pruner bug"));
    let child = read_pid(&pid_file);
    let gone = dies(child);
    kill(child);
    assert!(gone, "the command's child outlived the panic");
    assert!(started.elapsed() < Duration::from_secs(10));
}
