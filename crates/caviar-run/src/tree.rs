//! Finding every process a trial started, wherever it went.
//!
//! A trial's command runs in its own process group, but a descendant may leave that group
//! (`setsid`, a daemonising double fork) and then outlive a timeout or the trial itself. Every
//! process the command starts inherits a marker in its environment, `CAVIAR_TRIAL_TOKEN`, unique
//! to this worker process and trial; scanning `/proc/*/environ` for it finds all of them,
//! whoever their parent now is, without privileges or cgroups. Only a descendant that scrubs
//! its own environment escapes this net.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that marks a trial's processes.
pub const TOKEN_VAR: &str = "CAVIAR_TRIAL_TOKEN";

/// A token no other trial of any worker shares: worker pid, a per-process counter and the time.
pub fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Pids of the live processes whose environment holds `TOKEN_VAR=token` (zombies have none).
pub fn marked_processes(token: &str) -> Vec<i32> {
    let needle = format!("{TOKEN_VAR}={token}\0").into_bytes();
    let me = std::process::id() as i32;
    process_ids()
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_slice()))
        })
        .collect()
}

/// The pids in /proc now.
fn process_ids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// SIGKILLs every process marked with `token` until none is left (a forking process may add
/// more while the first are killed), for at most `patience`. Returns how many were killed.
/// `leader` (the command itself, our child, reaped by its owner) is killed but never waited on
/// here; other killed processes that happen to be our children are reaped.
pub fn kill_marked(token: &str, leader: i32, patience: Duration) -> usize {
    let until = Instant::now() + patience;
    let mut killed = std::collections::HashSet::new();
    loop {
        let pids = marked_processes(token);
        if pids.is_empty() {
            return killed.len();
        }
        for &pid in &pids {
            // SAFETY: kill only sends a signal to a pid we just found carrying our token.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed.insert(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
        for &pid in pids.iter().filter(|&&p| p != leader) {
            // SAFETY: waitpid on a specific pid with WNOHANG only reaps it if it is our child.
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
        if Instant::now() >= until {
            return killed.len();
        }
    }
}

/// Makes this process the reaper of its orphaned descendants (Linux): a trial's process that
/// loses its parent, even one that scrubbed `CAVIAR_TRIAL_TOKEN` from its environment, becomes
/// a child of this process instead of init's, so [`kill_orphans`] can find it when the run ends.
/// Call it once, before any trial starts, in a process that runs trials.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// SIGKILLs and reaps every child of this process, for when no trial runs any more: whatever is
/// left is a trial's descendant adopted by [`adopt_orphans`]. Returns how many there were.
pub fn kill_orphans() -> usize {
    let me = std::process::id() as i32;
    let children: Vec<i32> = process_ids()
        .filter(|&pid| {
            // Field 4 is the parent's pid.
            crate::worker::stat_fields(pid as u32)
                .and_then(|fields| fields.get(1)?.parse::<i32>().ok())
                == Some(me)
        })
        .collect();
    for &pid in &children {
        // SAFETY: signals and reaps our own children only.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    children.len()
}
