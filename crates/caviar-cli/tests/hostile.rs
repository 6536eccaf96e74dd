//! The `caviar` binary against hostile inputs: absurd settings, colliding names, huge spaces,
//! and a trial that prints gigabytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn caviar(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("caviar runs")
}

fn study_file(dir: &Path, name: &str, settings: &str, params: &str) -> PathBuf {
    study_of_script(dir, name, settings, "echo val_acc=0.5", params)
}

/// A study maximising `val_acc` whose command is `sh -c SCRIPT`.
fn study_of_script(dir: &Path, name: &str, settings: &str, script: &str, params: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\ndirection = \"maximize\"\nmetric = \"val_acc\"\n\
         command = [\"sh\", \"-c\", {}]\n{settings}\n\n[params]\n{params}",
        serde_json::to_string(script).unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

const ONE_PARAM: &str = "x = { low = 0.0, high = 1.0 }\n";

/// Runs the study and expects exit 2 with every `needle` in the error, quickly and calmly.
fn refused(dir: &Path, path: &Path, extra: &[&str], needles: &[&str]) {
    let started = Instant::now();
    let mut args = vec!["run", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = caviar(dir, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn absurd_worker_counts_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let params = "x = { low = 0.0, high = 1.0 }\n";
    // The first panicked then hung, the second tried to allocate 100 GB, the third spawned
    // threads until the OS refused.
    for workers in ["9223372036854775807", "4294967296", "100000", "0"] {
        let path = study_file(
            dir.path(),
            "wide",
            &format!("trials = 3\nworkers = {workers}"),
            params,
        );
        refused(dir.path(), &path, &[], &["wide.toml:6:", "workers", "1024"]);
    }
    let path = study_file(dir.path(), "flag", "trials = 3", params);
    refused(
        dir.path(),
        &path,
        &["--workers", "100000"],
        &["--workers", "1024"],
    );
    // A wide but sane setting runs: no more threads than trials.
    let path = study_file(dir.path(), "many", "trials = 3\nworkers = 1024", params);
    let out = caviar(dir.path(), &["run", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn parameters_that_share_an_environment_variable_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (a, b, var) in [
        ("lr", "LR", "CAVIAR_PARAM_LR"),
        ("a-b", "a_b", "CAVIAR_PARAM_A_B"),
    ] {
        let params = format!(
            "\"{a}\" = {{ low = 0.0, high = 1.0 }}\n\"{b}\" = {{ low = 0.0, high = 1.0 }}\n"
        );
        let path = study_file(dir.path(), "clash", "trials = 3", &params);
        refused(dir.path(), &path, &[], &[a, b, var, "rename one"]);
    }
}

#[test]
fn a_float_range_wider_than_a_double_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = study_file(
        dir.path(),
        "huge",
        "trials = 3",
        "x = { low = -1e308, high = 1e308 }\n",
    );
    refused(
        dir.path(),
        &path,
        &[],
        &["huge.toml:8:", "`x`", "wider than a 64-bit float"],
    );
}

#[test]
fn zoom_runs_a_space_of_more_than_1024_parameters() {
    // Dimension 1,025 used to index past the Sobol table: a panic, and the run said success.
    let dir = tempfile::tempdir().unwrap();
    let params: String = (0..1100)
        .map(|i| format!("p{i:04} = {{ low = 0.0, high = 1.0 }}\n"))
        .collect();
    let path = study_file(
        dir.path(),
        "big",
        "trials = 3\nworkers = 1\n[sampler]\nkind = \"zoom\"\n",
        &params,
    );
    let out = caviar(dir.path(), &["run", path.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["complete"], 3, "{summary}");
}

#[test]
fn a_trial_printing_gigabytes_keeps_the_worker_under_its_memory_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let hwm = dir.path().join("worker-hwm.txt");
    // 2 GiB on stdout without a newline, 1 GiB on stderr without one, 700 MB of short lines,
    // then the worker's peak memory is read (the command's parent is the worker) and the
    // report follows.
    let script = format!(
        "head -c 2147483648 /dev/zero | tr '\\0' x; echo; \
         head -c 1073741824 /dev/zero | tr '\\0' y >&2; echo >&2; \
         yes 'epoch running, loss still going down, nothing to report yet ........................' | head -c 700000000; echo; \
         grep VmHWM /proc/$PPID/status > {}; echo val_acc=0.75",
        hwm.display()
    );
    let path = study_of_script(dir.path(), "loud", "trials = 1", &script, ONE_PARAM);
    let out = caviar(dir.path(), &["run", path.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["counts"]["complete"], 1,
        "a report after the flood is read: {summary}"
    );
    let text = std::fs::read_to_string(&hwm).unwrap();
    let kib: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable VmHWM line: {text}"));
    let ceiling_mib = 200;
    eprintln!("worker peak RSS: {} MiB", kib / 1024);
    assert!(
        kib < ceiling_mib * 1024,
        "the worker peaked at {} MiB (ceiling {ceiling_mib} MiB)",
        kib / 1024
    );
}

/// A tmpfs mounted on a folder for the test's lifetime (unmounted on drop), or `None` with the
/// reason printed where mounting is not allowed (not root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: no mount command: {e}");
                None
            }
        }
    }

    fn remount_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn reading_verbs_work_on_a_read_only_disk_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "64m") else {
        return;
    };
    let path = study_file(
        dir.path(),
        "ro",
        "trials = 24",
        "x = { low = 0.0, high = 1.0 }\ny = { low = 1e-4, high = 1.0, scale = \"log\" }\n",
    );
    let url = format!("sqlite:{}", disk.0.join("studies.db").display());
    let out = caviar(
        dir.path(),
        &["--storage", &url, "run", path.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    disk.remount_read_only();
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&disk.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    };
    // The run made the database and its trials' folders; the reading verbs add nothing.
    assert_eq!(files(), vec!["caviar-trials", "studies.db"]);
    let report = dir.path().join("report.html");
    let verbs: Vec<Vec<&str>> = vec![
        vec!["studies"],
        vec!["trials", "ro", "--json"],
        vec!["best", "ro"],
        vec!["importance", "ro"],
        vec!["narrow", "ro"],
        vec!["rounds", "ro"],
        vec!["report", "ro", "--out", report.to_str().unwrap()],
    ];
    for verb in verbs {
        let mut args = vec!["--storage", url.as_str()];
        args.extend(verb.iter());
        let out = caviar(dir.path(), &args);
        assert!(
            out.status.success(),
            "caviar {verb:?} on a read-only disk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let trials = caviar(dir.path(), &["--storage", &url, "trials", "ro", "--json"]);
    let trials: serde_json::Value = serde_json::from_slice(&trials.stdout).unwrap();
    assert_eq!(trials.as_array().unwrap().len(), 24);
    assert!(report.exists());
    // The dashboard serves it read-only.
    let mut dashboard = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", url.as_str(), "dashboard", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Both start-up lines are read, and the pipe kept open, so the server never writes to a
    // closed pipe.
    let mut reader = std::io::BufReader::new(dashboard.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    std::io::BufRead::read_line(&mut reader, &mut second).unwrap();
    let answer = first
        .trim()
        .strip_prefix("caviar dashboard: http://")
        .map(|addr| http_get(addr.trim_end_matches('/'), "/api/studies/ro"));
    let _ = dashboard.kill();
    let _ = dashboard.wait();
    drop(reader);
    let answer = answer.unwrap_or_else(|| panic!("no dashboard address in {first:?}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"ro\""), "{answer}");
    assert_eq!(
        files(),
        vec!["caviar-trials", "studies.db"],
        "nothing was written beside it"
    );
    // Writing is refused with a clear error, not a hang or a panic.
    let out = caviar(
        dir.path(),
        &[
            "--storage",
            &url,
            "run",
            path.to_str().unwrap(),
            "--trials",
            "25",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
}

#[test]
fn a_full_disk_stops_the_run_and_names_the_trials_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "1m") else {
        return;
    };
    // Each trial stores a log of 200 lines of 1,999 bytes: the disk fills within a few trials.
    let script = "i=0; while [ $i -lt 200 ]; do head -c 1999 /dev/zero | tr '\\0' x; echo; i=$((i+1)); done; echo val_acc=0.5";
    let path = study_of_script(
        dir.path(),
        "full",
        "trials = 40\nworkers = 2",
        script,
        ONE_PARAM,
    );
    let url = format!("sqlite:{}", disk.0.join("studies.db").display());
    let out = caviar(
        dir.path(),
        &["--storage", &url, "run", path.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("full"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The full disk can still be read, and reading leaves nothing behind that breaks later
    // opens.
    for verb in [
        vec!["trials", "full", "--json"],
        vec!["studies"],
        vec!["best", "full"],
    ] {
        let mut args = vec!["--storage", url.as_str()];
        args.extend(verb.iter());
        let out = caviar(dir.path(), &args);
        assert!(
            out.status.success(),
            "caviar {verb:?} on a full disk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // With room again, every trial the failed writes left running is one the error named.
    let grow = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&disk.0)
        .output()
        .unwrap();
    assert!(grow.status.success());
    let trials = caviar(dir.path(), &["--storage", &url, "trials", "full", "--json"]);
    let trials: serde_json::Value = serde_json::from_slice(&trials.stdout).unwrap();
    let running: Vec<u64> = trials
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "running")
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    for number in &running {
        assert!(
            err.contains(&format!(
                "recording trial {number}, which is left `running`"
            )),
            "trial {number} is left running but the error does not say so: {err}"
        );
    }
    eprintln!("left running and named: {running:?}");
    // And the study goes on where it stopped: the next run fails the leftovers and completes.
    let out = caviar(
        dir.path(),
        &[
            "--storage",
            &url,
            "run",
            path.to_str().unwrap(),
            "--trials",
            "8",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_files_name_the_line_and_the_fix_before_any_trial_runs() {
    let dir = tempfile::tempdir().unwrap();
    let params = "x = { low = 0.0, high = 1.0 }\n";
    // Invalid UTF-8 in a comment on line 9, 6 bytes in.
    let path = study_file(dir.path(), "utf", "trials = 2", params);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&path, bytes).unwrap();
    refused(
        dir.path(),
        &path,
        &[],
        &["utf.toml:9:", "byte 6", "not valid UTF-8"],
    );
    // Nesting too deep for the parser.
    let deep = format!("deep = {}{}", "[".repeat(5000), "]".repeat(5000));
    let path = study_file(dir.path(), "deep", &format!("trials = 2\n{deep}"), params);
    refused(dir.path(), &path, &[], &["line 6", "recursion"]);
    let path = study_file(
        dir.path(),
        "orphan",
        "trials = 2\nparent = \"nope\"",
        params,
    );
    refused(
        dir.path(),
        &path,
        &[],
        &["orphan.toml:6:", "parent = \"nope\"", "names no study"],
    );
    for metric in ["val acc", "acc=1", "<b>acc</b>"] {
        let path = dir.path().join("metric.toml");
        let text = std::fs::read_to_string(study_file(dir.path(), "m", "trials = 2", params))
            .unwrap()
            .replace("metric = \"val_acc\"", &format!("metric = {metric:?}"));
        std::fs::write(&path, text).unwrap();
        refused(
            dir.path(),
            &path,
            &[],
            &["metric.toml:3:", "can never be reported"],
        );
    }
    let path = dir.path().join("act.toml");
    std::fs::write(
        &path,
        "name = \"act\"\ndirection = \"maximize\"\nmetric = \"val_acc\"\nobjective = \"mnist\"\n\
         [params]\nactivation = { choices = [\"relu\", \"adam\"] }\n",
    )
    .unwrap();
    refused(
        dir.path(),
        &path,
        &[],
        &["act.toml:6:", "`activation` = adam is not known", "relu"],
    );
    // None of them created a study.
    let out = caviar(dir.path(), &["studies", "--json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains("\"name\""), "{listed}");
}

/// A study of `n` finished trials (2 parameters, 3 reports each), written through the storage.
fn filled_study(path: &Path, n: u64) {
    use caviar_core::space::{Distribution, Scale};
    use caviar_core::storage::{NewStudy, Storage};
    use caviar_core::trial::{Direction, TrialState};
    let storage = caviar_store::SqliteStorage::open(path).unwrap();
    let study = storage
        .create_study(&NewStudy {
            name: "big".into(),
            direction: Direction::Maximize,
            metric: Some("val_acc".into()),
            spec: None,
            parent: None,
        })
        .unwrap();
    let lr = Distribution::float(1e-5, 1.0, Scale::Log).unwrap();
    let units = Distribution::int(16, 512, Scale::Linear).unwrap();
    for i in 0..n {
        let t = storage
            .create_trial(study.id, "fill", None)
            .unwrap()
            .unwrap();
        let u = (i % 997) as f64 / 997.0;
        storage
            .set_param(t.id, "lr", &lr, &lr.from_unit(u))
            .unwrap();
        storage
            .set_param(t.id, "units", &units, &units.from_unit(1.0 - u))
            .unwrap();
        for step in 1..=3 {
            storage.report(t.id, step, u * step as f64 / 3.0).unwrap();
        }
        storage
            .finish_trial(t.id, TrialState::Complete, Some(u), None)
            .unwrap();
    }
}

/// Runs `caviar ARGS` with stdout discarded; its exit status and peak resident memory in KiB.
// Reaped by wait4, which std cannot see.
#[allow(clippy::zombie_processes)]
fn peak_memory(dir: &Path, args: &[&str]) -> (bool, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(args)
        .stdout(std::fs::File::create("/dev/null").unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: wait4 fills the status and usage we own for our own child.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as i32, &mut status, 0, &mut usage);
        assert_eq!(pid, child.id() as i32);
        usage
    };
    (
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        usage.ru_maxrss,
    )
}

#[test]
fn trials_json_streams_with_memory_flat_in_the_study_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for n in [2_000u64, 20_000] {
        let db = dir.path().join(format!("big{n}.db"));
        filled_study(&db, n);
        let url = format!("sqlite:{}", db.display());
        let (ok, kib) = peak_memory(dir.path(), &["--storage", &url, "trials", "big", "--json"]);
        assert!(ok);
        eprintln!("trials --json on {n} trials: peak {} MiB", kib / 1024);
        peaks.push(kib);
    }
    // Holding every trial grew ~6 KB a trial (583 MB at 100,000): 20,000 would add ~100 MiB.
    assert!(
        peaks[1] < peaks[0] + 8 * 1024,
        "peak memory grew from {} to {} KiB with 10x the trials",
        peaks[0],
        peaks[1]
    );
}

/// The whole answer to `GET path` from the server at `addr` (host:port).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn a_descendant_that_scrubs_its_environment_does_not_outlive_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("escapee.pid");
    // `env -i` drops CAVIAR_TRIAL_TOKEN, `setsid` leaves the process group, and its parent exits
    // at once: only the worker's adoption of orphans can still find it.
    let script = format!(
        "sh -c 'env -i setsid sh -c \"echo \\$\\$ > {}; exec sleep 30\" &' ; sleep 0.3; echo val_acc=0.5",
        pid_file.display()
    );
    let path = study_of_script(dir.path(), "escape", "trials = 1", &script, ONE_PARAM);
    let out = caviar(dir.path(), &["run", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = !stat.is_empty()
        && stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim().starts_with('Z'));
    if alive {
        // SAFETY: only the test's own escapee.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    assert!(!alive, "the escapee {pid} outlived the run: {err}");
    assert!(
        err.contains("stopped 1 process(es) that trials left running"),
        "{err}"
    );
}
