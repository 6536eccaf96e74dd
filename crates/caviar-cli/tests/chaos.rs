//! Chaos: eight worker processes share one study while a driver SIGKILLs a random worker every
//! second or two and starts a replacement. Nothing may be lost or duplicated, on SQLite and on
//! PostgreSQL.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

#[path = "support/pg.rs"]
mod pg;
use pg::in_postgres_schema;

const TRIALS: usize = 300;
const WORKERS: usize = 8;
const KILLS: usize = 10;
const HEARTBEAT_MS: i64 = 1000;

/// Writes study `name` (maximise val_acc over a log-scale lr) running `fake_train.sh` with
/// `args`; `settings` are extra top-level lines, `sections` extra tables.
fn write_study(dir: &Path, name: &str, settings: &str, args: &str, sections: &str) -> PathBuf {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts")
        .canonicalize()
        .unwrap();
    let text = format!(
        r#"
name = "{name}"
direction = "maximize"
metric = "val_acc"
{settings}
command = ["{}/fake_train.sh", {args}]
{sections}
[params]
lr = {{ low = 1e-4, high = 1.0, scale = "log" }}
"#,
        scripts.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn study_file(dir: &Path) -> PathBuf {
    // The last argument marks this test's trial processes, to find any left behind.
    write_study(
        dir,
        "chaos",
        &format!("trials = {TRIALS}\nretries = 20\nheartbeat = \"{HEARTBEAT_MS}ms\""),
        &format!("\"quiet\", \"{{lr}}\", \"6\", \"{}\"", dir.display()),
        "[sampler]\nkind = \"tpe\"\n",
    )
}

/// Waits until study `name` has a trial.
fn wait_for_first_trial(dir: &Path, storage: &str, name: &str) {
    let started = Instant::now();
    while study_trials_len(dir, storage, name) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no trial began"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A small xorshift, seeded from the clock and printed, so a failing schedule can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Worker {
    child: Child,
    log: PathBuf,
}

fn spawn(dir: &Path, storage: &str, args: &[&str], serial: usize) -> Worker {
    let log = dir.join(format!("worker-{serial}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(["--storage", storage])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Worker { child, log }
}

fn trials_json(dir: &Path, storage: &str) -> Vec<Value> {
    study_trials(dir, storage, "chaos")
}

fn study_trials(dir: &Path, storage: &str, study: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(["--storage", storage, "trials", study, "--json"])
        .output()
        .unwrap();
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

fn chaos(dir: &Path, storage: &str) {
    let seed = (now_ms() as u64 ^ (storage.len() as u64) << 40) | 1;
    println!("chaos on {storage}: dice seed {seed}");
    let mut dice = Dice(seed);
    let study = study_file(dir);
    let mut serial = 0;
    let next = |serial: &mut usize| {
        *serial += 1;
        *serial
    };
    // The first worker creates the study; the rest join it by name, as on other machines.
    let mut live = vec![spawn(
        dir,
        storage,
        &["run", study.to_str().unwrap()],
        next(&mut serial),
    )];
    wait_for_first_trial(dir, storage, "chaos");
    while live.len() < WORKERS {
        live.push(spawn(dir, storage, &["worker", "chaos"], next(&mut serial)));
    }
    // (pid, when killed in ms since the epoch)
    let mut kills: Vec<(u32, i64)> = Vec::new();
    let mut exited_alone = 0;
    let mut replacements = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while !live.is_empty() {
        std::thread::sleep(Duration::from_millis(1000 + dice.below(1000)));
        // Replacements start a tick after the kill, so the live workers must find the lost
        // trial (a new worker would find it at once, when it starts).
        for _ in 0..std::mem::take(&mut replacements) {
            live.push(spawn(dir, storage, &["worker", "chaos"], next(&mut serial)));
        }
        let mut i = 0;
        while i < live.len() {
            if let Some(status) = live[i].child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&live[i].log).unwrap_or_default();
                assert!(status.success(), "a worker failed ({status}):\n{log}");
                assert!(!log.contains("locked"), "{log}");
                exited_alone += 1;
                live.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if Instant::now() > deadline {
            for w in &mut live {
                let _ = w.child.kill();
            }
            panic!("the study did not finish in time: {kills:?}");
        }
        // Kill while every worker still has work, then let the study finish.
        if kills.len() < KILLS && exited_alone == 0 && !live.is_empty() {
            let victim = dice.below(live.len() as u64) as usize;
            let mut w = live.swap_remove(victim);
            let pid = w.child.id();
            kills.push((pid, now_ms()));
            w.child.kill().unwrap();
            w.child.wait().unwrap();
            replacements += 1;
            // Its trial's command dies with it, at once: not when it next writes to the dead
            // worker's pipe (trials here stay silent for 0.6 s; in real training, minutes).
            let parents: Vec<u32> = live.iter().map(|w| w.child.id()).collect();
            let killed = Instant::now();
            let mut orphans = orphaned_trial_processes(dir, &parents);
            while !orphans.is_empty() && killed.elapsed() < Duration::from_millis(250) {
                std::thread::sleep(Duration::from_millis(10));
                orphans = orphaned_trial_processes(dir, &parents);
            }
            assert!(
                orphans.is_empty(),
                "trial processes outlived worker {pid} by 250 ms: {orphans:?}"
            );
        }
    }
    println!("{} kills, {serial} workers started", kills.len());
    assert!(kills.len() >= 5, "too few kills to mean much: {kills:?}");

    let trials = trials_json(dir, storage);
    let numbers: BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers.len(), trials.len(), "duplicate trial numbers");
    assert_eq!(
        numbers,
        (0..trials.len() as u64).collect(),
        "numbers without gaps"
    );
    let complete = trials.iter().filter(|t| t["state"] == "complete").count();
    assert_eq!(complete, TRIALS, "exactly the requested completes");
    for t in &trials {
        assert!(
            t["state"] == "complete" || t["state"] == "failed",
            "not terminal: {t}"
        );
    }
    let killed_pid = |t: &Value| {
        let worker = t["worker"].as_str().unwrap_or("");
        kills
            .iter()
            .find(|(pid, _)| worker.contains(&format!(":{pid}@")))
            .copied()
    };
    let mut lost = 0;
    let mut slowest_ms = 0;
    for t in trials.iter().filter(|t| t["state"] == "failed") {
        let Some((pid, killed_ms)) = killed_pid(t) else {
            panic!("a trial of a live worker failed: {t}");
        };
        let reason = t["error"].as_str().unwrap();
        assert!(
            reason.contains("ended while the trial was running"),
            "{reason}"
        );
        assert!(reason.contains("queued again"), "{reason}");
        let found_after = t["finished_ms"].as_i64().unwrap() - killed_ms;
        assert!(
            (0..=2 * HEARTBEAT_MS).contains(&found_after),
            "trial {} of killed worker {pid} was marked failed {found_after} ms after the kill",
            t["number"]
        );
        slowest_ms = slowest_ms.max(found_after);
        lost += 1;
    }
    // Every kill caught its worker inside a trial, or between two (then nothing was lost).
    assert!(lost <= kills.len(), "{lost} lost for {} kills", kills.len());
    for t in trials.iter().filter(|t| t["state"] == "complete") {
        if let Some((pid, killed_ms)) = killed_pid(t) {
            assert!(
                t["finished_ms"].as_i64().unwrap() <= killed_ms,
                "worker {pid} completed trial {} after it was killed",
                t["number"]
            );
        }
    }
    println!(
        "{} trials: {complete} complete, {lost} lost to kills and retried; the slowest was marked failed {slowest_ms} ms after its kill",
        trials.len()
    );
}

/// Processes of this test's trial commands whose parent is not one of `parents`.
fn orphaned_trial_processes(dir: &Path, parents: &[u32]) -> Vec<u32> {
    let marker = dir.display().to_string();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !(cmdline.contains("fake_train.sh") && cmdline.contains(&marker)) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid.is_some_and(|p| !parents.contains(&p)) {
            orphans.push(pid);
        }
    }
    orphans
}

#[test]
fn eight_sqlite_workers_killed_at_random_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("chaos.db").display());
    chaos(dir.path(), &storage);
}

#[test]
fn eight_postgres_workers_killed_at_random_lose_and_duplicate_nothing() {
    in_postgres_schema("chaos", chaos);
}

/// A worker that hangs (here SIGSTOP; in life a partition or a stuck machine) is alive by its
/// pid, so only its silence gives it away.
fn frozen_worker(dir: &Path, storage: &str) {
    let study = write_study(
        dir,
        "chaos",
        "trials = 6\nretries = 2\nheartbeat = \"500ms\"",
        "\"slow\", \"{lr}\", \"8\"",
        "",
    );
    let frozen = spawn(dir, storage, &["run", study.to_str().unwrap()], 1);
    wait_for_first_trial(dir, storage, "chaos");
    let live = spawn(dir, storage, &["worker", "chaos"], 2);
    std::thread::sleep(Duration::from_millis(300));
    let pid = frozen.child.id() as i32;
    let stopped_ms = now_ms();
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(2500));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    for mut w in [frozen, live] {
        let status = w.child.wait().unwrap();
        let log = std::fs::read_to_string(&w.log).unwrap();
        assert!(status.success(), "{log}");
    }
    let trials = trials_json(dir, storage);
    let failed: Vec<&Value> = trials.iter().filter(|t| t["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{trials:?}");
    let reason = failed[0]["error"].as_str().unwrap();
    assert!(reason.contains("no heartbeat"), "{reason}");
    assert!(failed[0]["worker"]
        .as_str()
        .unwrap()
        .contains(&format!(":{pid}@")));
    let found_after = failed[0]["finished_ms"].as_i64().unwrap() - stopped_ms;
    println!("a frozen worker's trial was marked failed {found_after} ms after it froze");
    assert!(
        (0..=1000).contains(&found_after),
        "marked failed {found_after} ms after the freeze; the heartbeat is 500 ms"
    );
    let log = std::fs::read_to_string(dir.join("worker-1.log")).unwrap();
    assert!(
        log.contains("already marked failed by another worker; its result is dropped"),
        "{log}"
    );
    assert_eq!(
        trials.iter().filter(|t| t["state"] == "complete").count(),
        6
    );
    assert_eq!(trials.len(), 7);
}

#[test]
fn a_frozen_sqlite_worker_is_found_by_its_silence() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("frozen.db").display());
    frozen_worker(dir.path(), &storage);
}

#[test]
fn a_frozen_postgres_worker_is_found_by_its_silence() {
    in_postgres_schema("frozen", frozen_worker);
}

/// The server drops every connection of the study's workers twice mid-study (as a restart or
/// a network cut does): the workers reconnect, redo what was cut short, and lose nothing.
fn dropped_connections(dir: &Path, storage: &str) {
    let app = format!("caviar_drop_{}", std::process::id());
    let storage = format!("{storage}&application_name={app}");
    let study = write_study(
        dir,
        "drops",
        "trials = 16\nworkers = 2",
        "\"slow\", \"{lr}\", \"3\"",
        "",
    );
    let run = spawn(dir, &storage, &["run", study.to_str().unwrap()], 1);
    let url = std::env::var("CAVIAR_TEST_POSTGRES_URL").unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut dropped = 0;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .unwrap();
        dropped += rows.len();
    }
    assert!(dropped >= 2, "no connection was dropped");
    let mut run = run;
    let status = run.child.wait().unwrap();
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(status.success(), "{log}");
    let trials = study_trials(dir, &storage, "drops");
    assert_eq!(trials.len(), 16, "{trials:?}");
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}\n{log}"
    );
    println!("{dropped} connections dropped; all 16 trials complete");
}

#[test]
fn postgres_connections_dropped_mid_study_lose_nothing() {
    in_postgres_schema("drops", dropped_connections);
}

/// A network namespace joined to this one by a veth pair: "another machine" whose link can be
/// cut. Removed when dropped.
struct Netns {
    name: String,
    host_link: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let id = std::process::id();
        let net = Netns {
            name: format!("caviar{id}"),
            host_link: format!("cvh{}", id % 100_000),
            host_ip: format!("10.231.{}.1", id % 250),
        };
        let ns_link = format!("cvn{}", id % 100_000);
        let ns_ip = format!("10.231.{}.2/30", id % 250);
        let ns = net.name.as_str();
        ip(&["netns", "add", ns])?;
        ip(&[
            "link",
            "add",
            &net.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &ns_link,
        ])?;
        ip(&["link", "set", &ns_link, "netns", ns])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", net.host_ip),
            "dev",
            &net.host_link,
        ])?;
        ip(&["link", "set", &net.host_link, "up"])?;
        ip(&[
            "netns", "exec", ns, "ip", "addr", "add", &ns_ip, "dev", &ns_link,
        ])?;
        ip(&["netns", "exec", ns, "ip", "link", "set", &ns_link, "up"])?;
        ip(&["netns", "exec", ns, "ip", "link", "set", "lo", "up"])?;
        Ok(net)
    }

    fn link(&self, up: bool) {
        ip(&[
            "link",
            "set",
            &self.host_link,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Forwards connections from `listener` (on the veth address) to the database, so workers in
/// the namespace reach it across the virtual link. Threads end with their connections.
fn forward(listener: std::net::TcpListener, to: String) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&to) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}

fn cut_link(dir: &Path, storage: &str) {
    let net = match Netns::create() {
        Ok(net) => net,
        Err(why) => {
            println!(
                "skipped: cannot make a network namespace here ({why}); needs root and iproute2"
            );
            return;
        }
    };
    let url = std::env::var("CAVIAR_TEST_POSTGRES_URL").unwrap();
    let db_addr = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let listener = std::net::TcpListener::bind((net.host_ip.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    forward(listener, db_addr.clone());
    let remote = storage.replace(&db_addr, &format!("{}:{port}", net.host_ip));
    let study = write_study(
        dir,
        "netcut",
        "trials = 24\nretries = 5\nheartbeat = \"1s\"",
        "\"slow\", \"{lr}\", \"5\"",
        "",
    );
    let local = spawn(dir, storage, &["run", study.to_str().unwrap()], 1);
    let local_pid = local.child.id();
    wait_for_first_trial(dir, storage, "netcut");
    let far: Vec<Worker> = (2..4)
        .map(|serial| {
            let log = dir.join(format!("worker-{serial}.log"));
            let child = Command::new("ip")
                .args(["netns", "exec", &net.name, env!("CARGO_BIN_EXE_caviar")])
                .args(["--storage", &remote, "worker", "netcut"])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            Worker { child, log }
        })
        .collect();
    // Cut while a namespaced worker is inside a trial.
    let local_id = format!(":{local_pid}@");
    let started = Instant::now();
    while !study_trials(dir, storage, "netcut")
        .iter()
        .any(|t| t["state"] == "running" && !t["worker"].as_str().unwrap_or("").contains(&local_id))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the namespaced workers started no trial"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    net.link(false);
    std::thread::sleep(Duration::from_secs(4));
    net.link(true);
    for mut w in std::iter::once(local).chain(far) {
        let status = w.child.wait().unwrap();
        let log = std::fs::read_to_string(&w.log).unwrap();
        assert!(status.success(), "{log}");
    }
    let trials = study_trials(dir, storage, "netcut");
    let complete = trials.iter().filter(|t| t["state"] == "complete").count();
    assert_eq!(complete, 24, "{trials:?}");
    let failed: Vec<&Value> = trials.iter().filter(|t| t["state"] == "failed").collect();
    assert!(
        !failed.is_empty(),
        "the cut cost no trial: was the link cut?"
    );
    for t in &failed {
        let reason = t["error"].as_str().unwrap();
        assert!(reason.contains("no heartbeat"), "{reason}");
    }
    assert!(trials
        .iter()
        .all(|t| t["state"] == "complete" || t["state"] == "failed"));
    println!(
        "link cut for 4 s: {} trials of cut-off workers failed by silence and retried; 24 complete ({} by the far workers in all)",
        failed.len(),
        far_trials(dir, storage, local_pid)
    );
}

/// Trials run by the workers in the namespace: any but the local worker's.
fn far_trials(dir: &Path, storage: &str, local_pid: u32) -> usize {
    let local = format!(":{local_pid}@");
    study_trials(dir, storage, "netcut")
        .iter()
        .filter(|t| !t["worker"].as_str().unwrap_or("").contains(&local))
        .count()
}

fn study_trials_len(dir: &Path, storage: &str, study: &str) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(["--storage", storage, "trials", study, "--json"])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn workers_in_another_network_namespace_survive_a_cut_link() {
    in_postgres_schema("netcut", cut_link);
}
