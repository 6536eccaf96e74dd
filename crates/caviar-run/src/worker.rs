use std::time::Duration;

use caviar_core::storage::RunningTrial;

/// Identifies a worker process: host, pid and the process's start time, so a reused pid is not
/// mistaken for the same worker. Written as `host:pid@start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerId {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (0 when unknown).
    pub start: u64,
}

impl WorkerId {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        WorkerId {
            host: local_host(),
            pid,
            start: process_state(pid).map_or(0, |(_, start)| start),
        }
    }

    /// Parses the `host:pid@start` form.
    pub fn parse(text: &str) -> Option<Self> {
        let (host, rest) = text.rsplit_once(':')?;
        let (pid, start) = rest.split_once('@').unwrap_or((rest, "0"));
        Some(WorkerId {
            host: host.to_string(),
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }

    /// Whether this worker runs on this host and its process is gone (or replaced).
    pub fn is_dead_here(&self) -> bool {
        if self.host != local_host() {
            return false;
        }
        match process_state(self.pid) {
            None => true,
            // A zombie is dead: only its exit status waits for its parent.
            Some((state, _)) if state == 'Z' || state == 'X' => true,
            Some((_, start)) => self.start != 0 && start != self.start,
        }
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}@{}", self.host, self.pid, self.start)
    }
}

/// The host name plus the PID namespace: containers that share a host name but not a process
/// table never judge each other's workers by pid.
fn local_host() -> String {
    let ns = std::fs::read_link("/proc/self/ns/pid").ok().and_then(|p| {
        let text = p.to_string_lossy().to_string();
        text.strip_prefix("pid:[")?
            .strip_suffix(']')
            .map(str::to_string)
    });
    match ns {
        Some(inode) => format!("{}#{inode}", hostname()),
        None => hostname(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Fields 3 and on of /proc/PID/stat (state, parent, ...); `None` if the process does not exist.
pub(crate) fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after the last ')' are plain.
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// Fields 3 (state) and 22 (start time) of /proc/PID/stat; `None` if the process does not exist.
fn process_state(pid: u32) -> Option<(char, u64)> {
    let fields = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

/// Why a running trial is an orphan, or `None` if it may still be alive: its worker was on this
/// host and is gone, or nobody heard from it for `stale_after`.
pub fn orphan_reason(trial: &RunningTrial, me: &WorkerId, stale_after: Duration) -> Option<String> {
    let owner = trial.worker.as_deref().unwrap_or("");
    if let Some(worker) = WorkerId::parse(owner) {
        if worker == *me {
            return None;
        }
        if worker.is_dead_here() {
            return Some(format!(
                "orphaned: its worker process {} on {} ended while the trial was running (crash, kill or power loss); marked failed by {me}",
                worker.pid, worker.host
            ));
        }
    }
    let silent_ms = trial.silent_ms;
    if silent_ms > stale_after.as_millis() as i64 {
        return Some(format!(
            "orphaned: no heartbeat from worker `{owner}` for {:.0} s; marked failed by {me}",
            silent_ms as f64 / 1000.0
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::trial::TrialId;

    #[test]
    fn current_worker_round_trips_and_is_alive() {
        let me = WorkerId::current();
        assert_eq!(WorkerId::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.is_dead_here());
        assert!(me.start > 0);
    }

    #[test]
    fn a_killed_worker_not_yet_reaped_is_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let alive = WorkerId {
            pid,
            start: process_state(pid).unwrap().1,
            ..WorkerId::current()
        };
        assert!(!alive.is_dead_here());
        child.kill().unwrap();
        // Until its parent waits for it, the process lingers as a zombie.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(process_state(pid).map(|s| s.0), Some('Z'));
        assert!(alive.is_dead_here());
        child.wait().unwrap();
        assert!(alive.is_dead_here());
    }

    #[test]
    fn dead_and_silent_workers_are_orphans() {
        let me = WorkerId::current();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = WorkerId { pid, ..me.clone() };
        let trial = RunningTrial {
            id: TrialId(1),
            number: 0,
            worker: Some(dead.to_string()),
            silent_ms: 0,
            attempt: 0,
        };
        let reason = orphan_reason(&trial, &me, Duration::from_secs(60)).unwrap();
        assert!(
            reason.contains("ended while the trial was running"),
            "{reason}"
        );

        let remote = RunningTrial {
            worker: Some("elsewhere:1@1".into()),
            silent_ms: 120_000,
            ..trial.clone()
        };
        assert!(orphan_reason(&remote, &me, Duration::from_secs(60))
            .unwrap()
            .contains("no heartbeat"));
        let fresh = RunningTrial {
            silent_ms: 0,
            ..remote
        };
        assert_eq!(orphan_reason(&fresh, &me, Duration::from_secs(60)), None);
        let mine = RunningTrial {
            worker: Some(me.to_string()),
            ..trial
        };
        assert_eq!(orphan_reason(&mine, &me, Duration::from_secs(60)), None);
    }
}
