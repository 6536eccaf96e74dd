//! `caviar delete` and `caviar rename`: a study's lifecycle.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result};
use caviar_core::storage::{Storage, StorageError, StudyRecord};
use serde_json::json;

use crate::BadInput;

/// Arguments of `caviar delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The study to delete, with its trials and everything recorded of them.
    pub study: String,
    /// Do not ask (needed when not at a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Delete even while trials run (their workers then fail to record them).
    #[arg(long)]
    pub force: bool,
    /// Print JSON: {"deleted", "trials"}.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `caviar rename`.
#[derive(clap::Args)]
pub struct RenameArgs {
    /// The study's name now.
    pub study: String,
    /// Its new name.
    pub new_name: String,
    /// Rename even while trials run (their workers keep going; new ones must use the new
    /// name).
    #[arg(long)]
    pub force: bool,
}

/// Running trials refuse a lifecycle change unless forced.
fn refuse_while_running(
    storage: &dyn Storage,
    record: &StudyRecord,
    verb: &str,
    force: bool,
) -> Result<u64> {
    let counts = storage.counts(record.id).context("counting trials")?;
    if counts.running > 0 && !force {
        return Err(BadInput(format!(
            "{} trial(s) of `{}` are running; stop its workers first (or `caviar stop`), or {verb} anyway with --force",
            counts.running, record.name
        ))
        .into());
    }
    Ok(counts.total())
}

/// The folder of the study's trial folders when it is the default one, named after the study
/// (`caviar-trials/NAME`), and exists.
fn named_trial_folder(record: &StudyRecord, url: &str) -> Option<std::path::PathBuf> {
    let (path, text) = crate::run::stored_file(record).ok()?;
    let cfg = crate::config::parse(&text, &path).ok()?;
    if cfg.file.trial_dir.is_some() {
        return None;
    }
    let root = cfg.trial_dirs(url).root().to_path_buf();
    root.is_dir().then_some(root)
}

/// `caviar delete`.
pub fn delete(url: &str, args: &DeleteArgs) -> Result<u8> {
    let storage = crate::open(url)?;
    let record = crate::find_study(&*storage, &args.study, url)?;
    let trials = refuse_while_running(&*storage, &record, "delete", args.force)?;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(BadInput(format!(
                "deleting `{}` ({trials} trials) cannot be undone; pass --yes to do it without a question",
                record.name
            ))
            .into());
        }
        eprint!(
            "delete study `{}` with its {trials} trials? This cannot be undone. [y/N] ",
            record.name
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("kept `{}`", record.name);
            return Ok(1);
        }
    }
    let folder = named_trial_folder(&record, url);
    storage.delete_study(record.id).map_err(|e| match e {
        // A study with children: the user deletes those first.
        StorageError::Backend(why) if why.contains("delete that one first") => {
            anyhow::Error::from(BadInput(why))
        }
        other => anyhow::Error::from(other).context("deleting the study"),
    })?;
    // Kept: another storage in this folder may hold a study of that name using them.
    if let Some(folder) = folder {
        eprintln!(
            "its trial folders stay in {}; remove them when no copy of the study needs them",
            folder.display()
        );
    }
    if args.json {
        println!("{}", json!({"deleted": record.name, "trials": trials}));
    } else {
        eprintln!("deleted study `{}` and its {trials} trials", record.name);
    }
    Ok(0)
}

/// Children of a renamed study name it in their stored study files (`parent = ...`) and, for
/// re-tests, in an attribute; studies warm-started from it name it in `warm_start`: all follow
/// the new name, so their workers and resumes still find it.
fn relink_children(storage: &dyn Storage, old: &str, new: &str) -> Result<()> {
    let studies = storage.studies().context("listing studies")?;
    for child in studies
        .iter()
        .filter(|s| s.study.parent.as_deref() == Some(new))
    {
        let mut spec = child.study.spec.clone();
        if let Some(text) = spec
            .as_ref()
            .and_then(|s| s.get("text"))
            .and_then(|t| t.as_str())
        {
            let mut table: toml::Table =
                toml::from_str(text).context("reading a child's stored study file")?;
            if table.get("parent").and_then(|p| p.as_str()) == Some(old) {
                table.insert("parent".into(), new.into());
                if let Some(spec) = spec.as_mut() {
                    spec["text"] = json!(toml::to_string(&table)?);
                }
                storage
                    .rename_study(child.study.id, &child.study.name, spec.as_ref())
                    .context("updating a child's stored study file")?;
            }
        }
        let owner = caviar_core::storage::AttrOwner::Study(child.study.id);
        let attrs = storage
            .user_attrs(owner)
            .context("reading a child's attributes")?;
        let key = caviar_engine::retest::RETEST_OF_STUDY;
        if attrs.get(key).and_then(|v| v.as_str()) == Some(old) {
            storage
                .set_user_attr(owner, key, &json!(new))
                .context("updating a re-test's parent")?;
        }
        eprintln!("`{}` now names `{new}` as its parent", child.study.name);
    }
    // Studies warm-started from it name it in their study files and their `warm_start` record.
    for other in &studies {
        let mut spec = other.study.spec.clone();
        let mut changed = false;
        if let Some(text) = spec
            .as_ref()
            .and_then(|s| s.get("text"))
            .and_then(|t| t.as_str())
        {
            let mut table: toml::Table =
                toml::from_str(text).context("reading a stored study file")?;
            if let Some(toml::Value::Array(list)) = table.get_mut("warm_start") {
                for item in list.iter_mut() {
                    if item.as_str() == Some(old) {
                        *item = new.into();
                        changed = true;
                    }
                }
            }
            if changed {
                if let Some(spec) = spec.as_mut() {
                    spec["text"] = json!(toml::to_string(&table)?);
                }
                storage
                    .rename_study(other.study.id, &other.study.name, spec.as_ref())
                    .context("updating a stored study file")?;
            }
        }
        let owner = caviar_core::storage::AttrOwner::Study(other.study.id);
        let key = caviar_engine::warm_start::WARM_START;
        let attrs = storage.user_attrs(owner).context("reading attributes")?;
        if let Some(serde_json::Value::Array(list)) = attrs.get(key) {
            let mut list = list.clone();
            let mut renamed = false;
            for entry in &mut list {
                if entry["study"] == old {
                    entry["study"] = json!(new);
                    renamed = true;
                }
            }
            if renamed {
                storage
                    .set_user_attr(owner, key, &json!(list))
                    .context("updating a warm start record")?;
                changed = true;
            }
        }
        if changed {
            eprintln!("`{}` is now warm-started from `{new}`", other.study.name);
        }
    }
    Ok(())
}

/// A study's definition under a new name: the stored study file's `name` rewritten.
fn renamed_spec(spec: Option<serde_json::Value>, name: &str) -> Result<Option<serde_json::Value>> {
    let Some(mut spec) = spec else {
        return Ok(None);
    };
    if let Some(text) = spec.get("text").and_then(|t| t.as_str()) {
        let mut table: toml::Table =
            toml::from_str(text).context("reading the study file stored with the study")?;
        table.insert("name".into(), name.into());
        spec["text"] = json!(toml::to_string(&table)?);
    }
    Ok(Some(spec))
}

/// Arguments of `caviar export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The study.
    pub study: String,
    /// Write here instead of to standard output.
    #[arg(long, short)]
    pub out: Option<std::path::PathBuf>,
}

/// Arguments of `caviar import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// A document written by `caviar export` (`-`: standard input).
    pub file: std::path::PathBuf,
    /// Store it under this name instead of the document's.
    #[arg(long)]
    pub name: Option<String>,
}

/// Arguments of `caviar copy`.
#[derive(clap::Args)]
pub struct CopyArgs {
    /// The study (in --storage).
    pub study: String,
    /// The storage to copy it into: sqlite:PATH or postgres://...
    #[arg(long)]
    pub to: String,
    /// Store the copy under this name.
    #[arg(long)]
    pub name: Option<String>,
}

/// `caviar export`: the study as a JSON document ([`caviar_core::document`]).
pub fn export(url: &str, args: &ExportArgs) -> Result<u8> {
    let storage = crate::open_for_reading(url, Some(&args.study))?;
    let record = crate::find_study(&*storage, &args.study, url)?;
    let doc = caviar_core::document::export(&*storage, &record).context("reading the study")?;
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote study `{}` ({} trials) to {}",
                record.name,
                doc.trials.len(),
                path.display()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(0)
}

/// Stores `doc` (under `name` when given) in `storage`, with errors that say what to do.
fn store_document(
    storage: &dyn Storage,
    mut doc: caviar_core::document::StudyDocument,
    name: Option<&str>,
    url: &str,
) -> Result<()> {
    if let Some(name) = name {
        caviar_core::space::check_name(name).map_err(|e| {
            BadInput(format!(
                "--name `{name}`: {}",
                e.reason.replace("names use", "study names use")
            ))
        })?;
        doc.spec = renamed_spec(doc.spec.take(), name)?;
        doc.name = name.to_string();
    }
    let trials = doc.trials.len();
    storage.import_study(&doc).map_err(|e| match e {
        StorageError::StudyExists(n) => anyhow::Error::from(BadInput(format!(
            "{url} already has a study named `{n}`; give the copy another name with --name"
        ))),
        StorageError::NoSuchStudy(parent) => anyhow::Error::from(BadInput(format!(
            "study `{}` refines `{parent}`, which {url} does not have; copy that one first",
            doc.name
        ))),
        other => anyhow::Error::from(other).context("storing the study"),
    })?;
    eprintln!("stored study `{}` ({trials} trials) in {url}", doc.name);
    Ok(())
}

/// `caviar import`.
pub fn import(url: &str, args: &ImportArgs) -> Result<u8> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| BadInput(format!("{}: {e}", args.file.display())))?
    };
    let doc = caviar_core::document::StudyDocument::from_json(&text)
        .map_err(|e| BadInput(format!("{}: {e}", args.file.display())))?;
    let storage = crate::open(url)?;
    store_document(&*storage, doc, args.name.as_deref(), url)?;
    Ok(0)
}

/// `caviar copy`: export from one storage, import into another, in one step.
pub fn copy(url: &str, args: &CopyArgs) -> Result<u8> {
    let source = crate::open_for_reading(url, Some(&args.study))?;
    let record = crate::find_study(&*source, &args.study, url)?;
    let doc = caviar_core::document::export(&*source, &record).context("reading the study")?;
    let target = crate::open(&args.to).context("--to")?;
    store_document(&*target, doc, args.name.as_deref(), &args.to)?;
    Ok(0)
}

/// `caviar rename`: the stored study file's `name` is rewritten too, so `caviar worker NEW`
/// rebuilds the study under its new name.
pub fn rename(url: &str, args: &RenameArgs) -> Result<u8> {
    let storage = crate::open(url)?;
    let record = crate::find_study(&*storage, &args.study, url)?;
    caviar_core::space::check_name(&args.new_name).map_err(|e| {
        BadInput(format!(
            "new name `{}`: {}",
            args.new_name,
            e.reason.replace("names use", "study names use")
        ))
    })?;
    refuse_while_running(&*storage, &record, "rename", args.force)?;
    let folder = named_trial_folder(&record, url);
    let spec = match record.spec.clone() {
        Some(mut spec) => {
            if let Some(text) = spec.get("text").and_then(|t| t.as_str()) {
                let mut table: toml::Table =
                    toml::from_str(text).context("reading the study file stored with the study")?;
                table.insert("name".into(), args.new_name.clone().into());
                spec["text"] = json!(toml::to_string(&table)?);
            }
            Some(spec)
        }
        None => None,
    };
    storage
        .rename_study(record.id, &args.new_name, spec.as_ref())
        .map_err(|e| match e {
            StorageError::StudyExists(name) => anyhow::Error::from(BadInput(format!(
                "a study named `{name}` exists already; choose another name"
            ))),
            other => anyhow::Error::from(other).context("renaming the study"),
        })?;
    eprintln!("renamed `{}` to `{}`", record.name, args.new_name);
    relink_children(&*storage, &record.name, &args.new_name)?;
    // Checkpoints follow the name, so forks and resumes find them.
    if let Some(old) = folder {
        let new = old.with_file_name(&args.new_name);
        if new.exists() {
            eprintln!(
                "warning: kept the trial folders in {}: {} exists",
                old.display(),
                new.display()
            );
        } else if let Err(e) = std::fs::rename(&old, &new) {
            eprintln!(
                "warning: could not move the trial folders {} to {}: {e}",
                old.display(),
                new.display()
            );
        } else {
            eprintln!("moved its trial folders to {}", new.display());
        }
    }
    Ok(0)
}
