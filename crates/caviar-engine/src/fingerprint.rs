//! What a study ran on, so a re-test can say what changed: the command line, the git revision
//! and dirty state of the command's folder, and hashes of the files a study file names
//! (`fingerprint = ["train.py", "data/"]`).
//!
//! ```
//! use caviar_engine::fingerprint::{differences, take};
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("train.py"), "lr = 0.1").unwrap();
//! let command = vec!["python".to_string(), "train.py".to_string()];
//! let files = vec!["train.py".to_string()];
//! let before = take(&command, dir.path(), &files);
//! std::fs::write(dir.path().join("train.py"), "lr = 0.2").unwrap();
//! let after = take(&command, dir.path(), &files);
//! assert_eq!(differences(&before, &after), vec!["file train.py: content changed".to_string()]);
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The study attribute that holds the latest run's [`Fingerprint`].
pub const FINGERPRINT: &str = "fingerprint";

/// Files larger than this are hashed by size, modification time and [`SAMPLED_BLOCKS`] blocks
/// spread through them, so a fingerprint of a data set stays fast.
pub const WHOLE_FILE_LIMIT: u64 = 64 << 20;

/// Blocks read from a large file.
pub const SAMPLED_BLOCKS: u64 = 16;

const BLOCK: u64 = 64 << 10;

/// What a study ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The command line (placeholders unexpanded).
    pub command: Vec<String>,
    /// The git revision of the command's folder and whether it had uncommitted changes, when
    /// the folder is in a repository and git is installed.
    pub git: Option<GitState>,
    /// Each named file or folder, by the name the study file gives.
    pub files: BTreeMap<String, FileState>,
    /// When it was taken, milliseconds since the Unix epoch.
    pub taken_ms: i64,
}

/// A repository's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    /// `git rev-parse HEAD`.
    pub revision: String,
    /// Tracked files had uncommitted changes.
    pub dirty: bool,
}

/// A named file's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileState {
    /// A file: SHA-256 of its content (or of its size, time and sampled blocks when large).
    File {
        /// Hex digest.
        sha256: String,
        /// Bytes.
        size: u64,
        /// Hashed from sampled blocks, not the whole content.
        sampled: bool,
    },
    /// A folder: SHA-256 over its files' relative paths and digests, in name order.
    Folder {
        /// Hex digest.
        sha256: String,
        /// Files inside, at any depth.
        files: u64,
    },
    /// Nothing there (or unreadable: the reason).
    Missing {
        /// Why it could not be read.
        reason: String,
    },
}

/// Fingerprints a command run in `workdir`, with the `files` (relative to `workdir`, or
/// absolute) a study file names.
pub fn take(command: &[String], workdir: &Path, files: &[String]) -> Fingerprint {
    Fingerprint {
        command: command.to_vec(),
        git: git_state(workdir),
        files: files
            .iter()
            .map(|name| (name.clone(), file_state(&workdir.join(name))))
            .collect(),
        taken_ms: caviar_core::trial::now_ms(),
    }
}

/// What differs from `old` to `new`, one line each ("command: ...", "git: ...",
/// "file data.csv: content changed").
pub fn differences(old: &Fingerprint, new: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    if old.command != new.command {
        out.push(format!(
            "command: `{}` -> `{}`",
            old.command.join(" "),
            new.command.join(" ")
        ));
    }
    match (&old.git, &new.git) {
        (Some(a), Some(b)) => {
            if a.revision != b.revision {
                out.push(format!(
                    "git revision: {} -> {}",
                    short(&a.revision),
                    short(&b.revision)
                ));
            }
            if a.dirty != b.dirty {
                let words = |d: bool| if d { "uncommitted changes" } else { "clean" };
                out.push(format!("git: {} -> {}", words(a.dirty), words(b.dirty)));
            } else if a.dirty && a.revision == b.revision {
                out.push("git: uncommitted changes then and now (they may differ)".into());
            }
        }
        (Some(_), None) => out.push("git: the command's folder is no longer a repository".into()),
        (None, Some(_)) => out.push("git: the command's folder is a repository now".into()),
        (None, None) => {}
    }
    let names: std::collections::BTreeSet<&String> =
        old.files.keys().chain(new.files.keys()).collect();
    for name in names {
        match (old.files.get(name), new.files.get(name)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => out.push(format!("file {name}: {}", file_change(a, b))),
            (Some(_), None) => out.push(format!("file {name}: no longer fingerprinted")),
            (None, Some(_)) => out.push(format!("file {name}: newly fingerprinted")),
            (None, None) => {}
        }
    }
    out
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(12)]
}

fn file_change(a: &FileState, b: &FileState) -> String {
    match (a, b) {
        (FileState::File { size: s1, .. }, FileState::File { size: s2, .. }) if s1 != s2 => {
            format!("content changed ({s1} -> {s2} bytes)")
        }
        (FileState::File { .. }, FileState::File { .. }) => "content changed".into(),
        (FileState::Folder { files: n1, .. }, FileState::Folder { files: n2, .. }) if n1 != n2 => {
            format!("folder content changed ({n1} -> {n2} files)")
        }
        (FileState::Folder { .. }, FileState::Folder { .. }) => "folder content changed".into(),
        (_, FileState::Missing { reason }) => format!("gone ({reason})"),
        (FileState::Missing { .. }, _) => "appeared".into(),
        _ => "changed between file and folder".into(),
    }
}

fn git_state(dir: &Path) -> Option<GitState> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let revision = git(&["rev-parse", "HEAD"])?.trim().to_string();
    // Tracked files only: caviar's own outputs (its database, trial folders) are untracked.
    let status = git(&["status", "--porcelain", "--untracked-files=no"])?;
    Some(GitState {
        revision,
        dirty: !status.trim().is_empty(),
    })
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_state(path: &Path) -> FileState {
    let missing = |e: std::io::Error| FileState::Missing {
        reason: e.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return missing(e),
    };
    if meta.is_dir() {
        let mut entries = Vec::new();
        if let Err(e) = walk(path, path, &mut entries) {
            return missing(e);
        }
        entries.sort();
        let mut hasher = Sha256::new();
        for (relative, digest) in &entries {
            hasher.update(relative.as_bytes());
            hasher.update([0]);
            hasher.update(digest.as_bytes());
            hasher.update([b'\n']);
        }
        return FileState::Folder {
            sha256: hex(&hasher.finalize()),
            files: entries.len() as u64,
        };
    }
    match hash_file(path, &meta) {
        Ok((sha256, sampled)) => FileState::File {
            sha256,
            size: meta.len(),
            sampled,
        },
        Err(e) => missing(e),
    }
}

/// Every file under `dir` as (path relative to `root`, digest); `.git` folders are skipped.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        // Links are not followed into folders: a link back up would loop.
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((relative, format!("link:{}", target.display())));
        } else if meta.is_dir() {
            walk(root, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((relative, hash_file(&path, &meta)?.0));
        }
    }
    Ok(())
}

/// SHA-256 of a file's content, or for a large one of its size, modification time and sampled
/// blocks; and whether it was sampled.
fn hash_file(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<(String, bool)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = meta.len();
    if size <= WHOLE_FILE_LIMIT {
        let mut buffer = vec![0u8; BLOCK as usize];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        return Ok((hex(&hasher.finalize()), false));
    }
    hasher.update(size.to_le_bytes());
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    hasher.update(modified.to_le_bytes());
    let mut buffer = vec![0u8; BLOCK as usize];
    for i in 0..SAMPLED_BLOCKS {
        // Evenly spread, the first at the start and the last ending at the end.
        let at = (size - BLOCK) / (SAMPLED_BLOCKS - 1) * i;
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut buffer)?;
        hasher.update(&buffer);
    }
    Ok((hex(&hasher.finalize()), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_hash_by_content_and_big_files_by_samples() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.csv"), "1,2\n").unwrap();
        std::fs::write(data.join("sub/b.csv"), "3,4\n").unwrap();
        let files = vec!["data".to_string(), "absent.txt".to_string()];
        let one = take(&[], dir.path(), &files);
        assert!(matches!(
            one.files["data"],
            FileState::Folder { files: 2, .. }
        ));
        assert!(matches!(one.files["absent.txt"], FileState::Missing { .. }));
        assert!(differences(&one, &take(&[], dir.path(), &files)).is_empty());
        std::fs::write(data.join("sub/b.csv"), "3,5\n").unwrap();
        let two = take(&[], dir.path(), &files);
        assert_eq!(
            differences(&one, &two),
            vec!["file data: folder content changed".to_string()]
        );

        // A file past the limit is read in blocks, so a change inside a sampled block shows.
        let big = dir.path().join("big.bin");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(WHOLE_FILE_LIMIT + 1).unwrap();
        drop(f);
        let names = vec!["big.bin".to_string()];
        let before = take(&[], dir.path(), &names);
        assert!(matches!(
            before.files["big.bin"],
            FileState::File { sampled: true, .. }
        ));
        let mut f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        std::io::Write::write_all(&mut f, b"changed").unwrap();
        drop(f);
        let after = take(&[], dir.path(), &names);
        assert_eq!(differences(&before, &after).len(), 1);
    }

    #[test]
    fn git_revision_and_dirty_state_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !git(&["init", "-q"]) {
            eprintln!("skipped: git is not installed");
            return;
        }
        std::fs::write(dir.path().join("train.py"), "v1").unwrap();
        assert!(git(&["add", "train.py"]));
        assert!(git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-qm",
            "v1"
        ]));
        let clean = take(&[], dir.path(), &[]);
        assert!(!clean.git.as_ref().unwrap().dirty);
        std::fs::write(dir.path().join("train.py"), "v2").unwrap();
        let dirty = take(&[], dir.path(), &[]);
        assert_eq!(
            differences(&clean, &dirty),
            vec!["git: clean -> uncommitted changes".to_string()]
        );
    }
}
