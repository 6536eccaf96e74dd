//! Devices per trial: a run's GPUs are split into slots of `gpus_per_trial`, each worker
//! thread owns one slot for all its trials (so a slot is free again exactly when its trial has
//! ended, however it ended), and a run starts no more workers than there are slots.
//!
//! ```
//! use caviar_engine::resources::{slots, Gpus};
//! let groups = slots(&Gpus::List(vec!["0".into(), "1".into(), "2".into(), "3".into()]), 2).unwrap();
//! assert_eq!(groups.groups, vec![vec!["0", "1"], vec!["2", "3"]]);
//! ```

use std::cell::Cell;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// Which GPUs a run may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gpus {
    /// `"auto"`: those `nvidia-smi -L` lists on this machine.
    Auto(String),
    /// Device ids as CUDA numbers them (or UUIDs).
    List(Vec<String>),
}

/// The slots of a run: each a group of devices one trial uses at a time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slots {
    /// Device groups, one per slot.
    pub groups: Vec<Vec<String>>,
    /// What to tell the user (GPUs found, left over, or none).
    pub note: Option<String>,
}

/// Splits `gpus` into slots of `per_trial` devices (devices left over stay unused, with a
/// note). `"auto"` without `nvidia-smi` (or without GPUs) gives no slots and a note: trials then
/// run without devices and the number of workers is not limited by them.
pub fn slots(gpus: &Gpus, per_trial: usize) -> Result<Slots, String> {
    if per_trial == 0 {
        return Err("[resources] gpus_per_trial must be at least 1".into());
    }
    let (devices, found) = match gpus {
        Gpus::List(list) => (list.clone(), None),
        Gpus::Auto(word) if word == "auto" => match inherited().map_or_else(detect, Ok) {
            Ok(list) => {
                let note = format!(
                    "gpus = \"auto\": {} GPU(s) ({})",
                    list.len(),
                    if inherited().is_some() {
                        "CUDA_VISIBLE_DEVICES as inherited"
                    } else {
                        "nvidia-smi lists them"
                    }
                );
                (list, Some(note))
            }
            Err(why) => {
                return Ok(Slots {
                    groups: Vec::new(),
                    note: Some(format!("gpus = \"auto\": {why}; trials run without GPUs")),
                })
            }
        },
        Gpus::Auto(other) => {
            return Err(format!(
                "[resources] gpus = \"{other}\": give \"auto\" or a list of device ids, e.g. [0, 1]"
            ))
        }
    };
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = devices.iter().find(|d| !seen.insert(d.as_str())) {
        return Err(format!(
            "[resources] gpus lists device {dup} twice; list each once"
        ));
    }
    if devices.len() < per_trial && !devices.is_empty() {
        return Err(format!(
            "[resources] gpus_per_trial = {per_trial} but only {} GPU(s) are given; lower gpus_per_trial",
            devices.len()
        ));
    }
    let groups: Vec<Vec<String>> = devices
        .chunks_exact(per_trial)
        .map(<[String]>::to_vec)
        .collect();
    let left = devices.len() % per_trial;
    let note = match (found, left) {
        (found, 0) => found,
        (found, left) => Some(format!(
            "{}{left} GPU(s) left unused: {} is not a multiple of gpus_per_trial = {per_trial}",
            found.map(|f| format!("{f}; ")).unwrap_or_default(),
            devices.len()
        )),
    };
    Ok(Slots { groups, note })
}

/// The devices an inherited `CUDA_VISIBLE_DEVICES` allows (a scheduler chose them), if set.
fn inherited() -> Option<Vec<String>> {
    let value = std::env::var("CUDA_VISIBLE_DEVICES").ok()?;
    let list: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The GPUs `nvidia-smi -L` lists, by index.
fn detect() -> Result<Vec<String>, String> {
    let out = Command::new("nvidia-smi")
        .arg("-L")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("nvidia-smi could not be run ({e})"))?;
    if !out.status.success() {
        return Err(format!("nvidia-smi -L failed ({})", out.status));
    }
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("GPU ")?;
            let index = rest.split(':').next()?.trim();
            index.parse::<u32>().ok().map(|i| i.to_string())
        })
        .collect();
    if list.is_empty() {
        return Err("nvidia-smi lists no GPU".into());
    }
    Ok(list)
}

impl Slots {
    /// The environment of a trial run in `slot`: `CAVIAR_WORKER_SLOT` always, and with GPUs
    /// `CUDA_VISIBLE_DEVICES` and `CAVIAR_GPUS` (comma-separated devices).
    pub fn env(&self, slot: usize) -> Vec<(String, String)> {
        let mut env = vec![("CAVIAR_WORKER_SLOT".to_string(), slot.to_string())];
        if let Some(devices) = self.groups.get(slot) {
            let list = devices.join(",");
            env.push(("CUDA_VISIBLE_DEVICES".into(), list.clone()));
            env.push(("CAVIAR_GPUS".into(), list));
        }
        env
    }

    /// How many workers may run: `asked`, but no more than the slots when there are GPUs.
    pub fn workers(&self, asked: usize) -> usize {
        if self.groups.is_empty() {
            asked
        } else {
            asked.min(self.groups.len())
        }
    }
}

thread_local! {
    static WORKER_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Records which slot the calling worker thread owns ([`crate::drive`] numbers its workers
/// 0, 1, ...).
pub fn set_worker_slot(slot: usize) {
    WORKER_SLOT.with(|s| s.set(slot));
}

/// The slot of the worker thread running the current trial (0 outside [`crate::drive`]).
pub fn worker_slot() -> usize {
    WORKER_SLOT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> Gpus {
        Gpus::List((0..n).map(|i| i.to_string()).collect())
    }

    #[test]
    fn devices_split_into_disjoint_slots() {
        let s = slots(&list(5), 2).unwrap();
        assert_eq!(s.groups, vec![vec!["0", "1"], vec!["2", "3"]]);
        assert!(s.note.as_deref().unwrap().contains("1 GPU(s) left unused"));
        assert_eq!(s.workers(4), 2);
        assert_eq!(
            slots(&list(0), 1).unwrap().workers(4),
            4,
            "no GPUs: no limit"
        );
        let env = slots(&list(4), 2).unwrap().env(1);
        assert!(env.contains(&("CUDA_VISIBLE_DEVICES".into(), "2,3".into())));
        assert!(env.contains(&("CAVIAR_WORKER_SLOT".into(), "1".into())));
        assert!(slots(&list(1), 2)
            .unwrap_err()
            .contains("lower gpus_per_trial"));
        assert!(slots(&list(2), 0).is_err());
        let twice = Gpus::List(vec!["0".into(), "0".into()]);
        assert!(slots(&twice, 1).unwrap_err().contains("twice"));
        assert!(slots(&Gpus::Auto("all".into()), 1)
            .unwrap_err()
            .contains("\"auto\""));
    }
}
