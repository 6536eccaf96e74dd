//! `caviar watch`: one plain-text frame with `--once`, and the live view in a real
//! pseudo-terminal of 80x24, read through a terminal emulator, following new reports and
//! leaving cleanly on `q`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caviar_core::prelude::*;

/// A study with a running trial: ten reports, `lr` changed after step 5, and a pause taken.
fn babysat(storage: &str) -> caviar_core::study::Trial {
    let store = caviar_store::open_storage(storage).unwrap();
    let study = Study::builder("babysit")
        .storage(store.clone())
        .metric("val_loss")
        .spec(serde_json::json!({"front_end": "python"}))
        .build()
        .unwrap();
    let mut trial = study.ask().unwrap();
    trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
    trial.suggest_int("units", 8, 64, Scale::Linear).unwrap();
    for step in 1..=5 {
        trial.report(step, 1.0 / step as f64).unwrap();
    }
    caviar_engine::ask_changes(
        &*store,
        study.record(),
        0,
        &[("lr".into(), caviar_engine::NewValue::Text("0.02".into()))],
        "ann@box",
        Some("flat"),
        false,
    )
    .unwrap();
    trial.apply_param_changes(5).unwrap();
    for step in 6..=10 {
        trial.report(step, 0.5 / step as f64).unwrap();
    }
    caviar_engine::ask_control(
        &*store,
        study.record(),
        0,
        caviar_core::storage::ControlAction::Pause,
        "ann@box",
        None,
    )
    .unwrap();
    trial.take_controls(Some(10)).unwrap();
    trial
}

#[test]
fn once_prints_the_curve_parameters_and_history_in_80_by_24() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("w.db").display());
    let _trial = babysat(&storage);
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", &storage, "watch", "babysit", "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 24, "{text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
    assert!(
        lines[0].starts_with("babysit - trial 0 - running (paused) - 10 reports"),
        "{text}"
    );
    assert!(text.contains("val_loss by step"), "{text}");
    assert!(text.contains("*lr = 0.02"), "{text}");
    assert!(text.contains(" units = "), "{text}");
    assert!(
        text.contains("after step 5: lr ") && text.contains("-> 0.02 (ann@box: flat)"),
        "{text}"
    );
    assert!(text.contains("after step 10: pause (ann@box)"), "{text}");
    // The curve is drawn: braille cells inside the chart.
    assert!(
        text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
        "{text}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", &storage, "watch", "babysit", "--once", "10x5"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// A pseudo-terminal of `cols` x `rows`: (the side the test reads and writes, the side the
/// program gets).
fn open_pty(cols: u16, rows: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors it opened, which we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[test]
fn the_live_view_follows_reports_in_a_terminal_and_quits_on_q() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("w.db").display());
    let mut trial = babysat(&storage);
    let (master, slave) = open_pty(80, 24);
    let slave_fd = slave.as_raw_fd();
    let mut command = Command::new(env!("CARGO_BIN_EXE_caviar"));
    command
        .args(["--storage", &storage, "watch", "babysit", "0"])
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Its own session with the pseudo-terminal as controlling terminal, as over SSH.
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let screen = Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0)));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let feed = screen.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            feed.lock().unwrap().process(&chunk[..n]);
        }
    });
    let contents = || screen.lock().unwrap().screen().contents();
    let wait_for = |what: &str| {
        let start = Instant::now();
        while !contents().contains(what) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "waited for `{what}`; screen:\n{}",
                contents()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("10 reports");
    assert!(contents().contains("*lr = 0.02"), "{}", contents());
    assert!(contents().contains("after step 5: lr"), "{}", contents());
    assert!(screen.lock().unwrap().screen().alternate_screen());
    // New reports show within a refresh.
    for step in 11..=12 {
        trial.report(step, 0.01).unwrap();
    }
    wait_for("12 reports");
    let mut writer = std::fs::File::from(master);
    writer.write_all(b"q").unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running after q"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The terminal is given back: the alternate screen is left.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!screen.lock().unwrap().screen().alternate_screen());
}
