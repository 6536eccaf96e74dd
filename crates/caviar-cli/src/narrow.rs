//! `caviar narrow`: the ranges the best trials occupy, and a study file for the next, finer round.

use std::path::Path;

use anyhow::{Context, Result};
use caviar_core::analysis::{narrowed_ranges, narrowed_space};
use caviar_core::space::{Distribution, ParamValue, Scale};
use caviar_core::storage::{Storage, StudyRecord};
use serde_json::json;

use crate::BadInput;

/// Options of `caviar narrow`.
#[derive(Clone, Debug, clap::Args)]
pub struct NarrowArgs {
    /// Study name.
    pub study: String,
    /// How many of the best trials define the ranges.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Widening on each side, as a share of each parameter's range on its own scale.
    #[arg(long, default_value_t = 0.05)]
    pub margin: f64,
    /// Write a study file for the next round here; its parent is this study.
    #[arg(long)]
    pub write: Option<std::path::PathBuf>,
    /// Name of the study in the written file (default: STUDY-narrow).
    #[arg(long)]
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn toml_value(v: &ParamValue) -> toml::Value {
    match v {
        ParamValue::Int(i) => toml::Value::Integer(*i),
        ParamValue::Float(x) => toml::Value::Float(*x),
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Str(s) => toml::Value::String(s.clone()),
    }
}

fn param_table(dist: &Distribution) -> toml::Table {
    let mut t = toml::Table::new();
    let scale = |t: &mut toml::Table, s: &Scale| {
        if *s != Scale::Linear {
            t.insert("scale".into(), toml::Value::String(s.as_str().into()));
        }
    };
    match dist {
        Distribution::Float {
            low,
            high,
            scale: s,
            step,
        } => {
            t.insert("low".into(), toml::Value::Float(*low));
            t.insert("high".into(), toml::Value::Float(*high));
            scale(&mut t, s);
            if let Some(step) = step {
                t.insert("step".into(), toml::Value::Float(*step));
            }
        }
        Distribution::Int {
            low,
            high,
            step,
            scale: s,
        } => {
            t.insert("low".into(), toml::Value::Integer(*low));
            t.insert("high".into(), toml::Value::Integer(*high));
            t.insert("type".into(), toml::Value::String("int".into()));
            scale(&mut t, s);
            if *step != 1 {
                t.insert("step".into(), toml::Value::Integer(*step));
            }
        }
        Distribution::Categorical { choices } => {
            t.insert(
                "choices".into(),
                toml::Value::Array(choices.iter().map(toml_value).collect()),
            );
        }
    }
    t
}

pub fn narrow(storage: &dyn Storage, record: &StudyRecord, args: &NarrowArgs) -> Result<()> {
    if args.k == 0 || !(0.0..0.5).contains(&args.margin) {
        return Err(BadInput("-k must be at least 1 and --margin lie in [0, 0.5)".into()).into());
    }
    let trials = storage.trials(record.id).context("reading trials")?;
    let ranges = narrowed_ranges(&trials, record.direction, args.k);
    if ranges.is_empty() {
        return Err(BadInput(format!(
            "study `{}` has no complete trials to narrow from",
            record.name
        ))
        .into());
    }
    let space = narrowed_space(&trials, record.direction, args.k, args.margin);
    if args.json {
        let rows: Vec<_> = ranges
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "low": r.low, "high": r.high, "choices": r.choices, "k": r.k, "of": r.of,
                    "scale": r.scale.as_str(), "next": space.get(&r.name),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "ranges of the best {} trials of `{}`, each on its own scale:",
            ranges[0].of, record.name
        );
        for r in &ranges {
            println!("  {r}");
        }
    }
    let Some(path) = &args.write else {
        return Ok(());
    };
    let source = record
        .spec
        .as_ref()
        .and_then(|s| s.get("file"))
        .and_then(|f| f.as_str())
        .ok_or_else(|| BadInput(format!(
            "study `{}` was not made from a study file, so there is none to copy; narrow by hand from the ranges above",
            record.name
        )))?;
    let text = std::fs::read_to_string(source).map_err(|e| {
        BadInput(format!(
            "cannot read the study's file {source}: {e}; restore it to write the next round"
        ))
    })?;
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("re-reading {source}"))?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-narrow", record.name));
    doc.insert("name".into(), toml::Value::String(name.clone()));
    doc.insert("parent".into(), toml::Value::String(record.name.clone()));
    let original = doc
        .get("params")
        .and_then(|p| p.as_table())
        .cloned()
        .unwrap_or_default();
    let mut params = toml::Table::new();
    for (pname, dist) in space.iter() {
        let mut table = param_table(dist);
        if let Some(when) = original.get(pname).and_then(|p| p.get("when")) {
            table.insert("when".into(), when.clone());
        }
        params.insert(pname.clone(), toml::Value::Table(table));
    }
    keep_satisfiable_conditions(&mut params);
    // A parameter left out (no top trial had it, or its condition can no longer hold) never
    // exists in the next round, so its command arguments go, as they would at run time.
    let removed: std::collections::BTreeSet<String> = original
        .keys()
        .filter(|k| !params.contains_key(*k))
        .cloned()
        .collect();
    if let Some(toml::Value::Array(command)) = doc.get("command") {
        let argv: Option<Vec<String>> = command
            .iter()
            .map(|a| a.as_str().map(String::from))
            .collect();
        if let Some(argv) = argv.filter(|_| !removed.is_empty()) {
            let kept = caviar_run::drop_args(&argv, &removed);
            doc.insert(
                "command".into(),
                toml::Value::Array(kept.into_iter().map(toml::Value::String).collect()),
            );
        }
    }
    doc.insert("params".into(), toml::Value::Table(params));
    // Commands run in the study file's folder (or its `workdir`): a file written elsewhere keeps
    // running them where the original did.
    let old_file_dir = Path::new(source)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let old_workdir = match doc.get("workdir").and_then(|w| w.as_str()) {
        Some(w) => old_file_dir.join(w),
        None => old_file_dir.clone(),
    };
    let new_file_dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.canonicalize().ok(),
        None => Path::new(".").canonicalize().ok(),
    };
    let moved = old_file_dir.canonicalize().ok() != new_file_dir;
    let kept_workdir = old_workdir
        .canonicalize()
        .unwrap_or_else(|_| old_workdir.clone());
    if moved {
        doc.insert(
            "workdir".into(),
            toml::Value::String(kept_workdir.display().to_string()),
        );
    }
    let body = toml::to_string_pretty(&doc).context("writing TOML")?;
    let header = format!(
        "# Next round of `{}`: its [params] narrowed to the best {} trials (margin {}).\n# Written by `caviar narrow`; run it with `caviar run {}`.\n",
        record.name,
        ranges[0].of,
        args.margin,
        path.display()
    );
    std::fs::write(path, header + &body).with_context(|| format!("writing {}", path.display()))?;
    if moved {
        eprintln!(
            "note: {} is not beside {source}, so it sets workdir = \"{}\": its commands run where the original study's did, and relative paths in `command` still resolve",
            path.display(),
            kept_workdir.display()
        );
    }
    eprintln!(
        "wrote {} (study `{name}`, parent `{}`)",
        path.display(),
        record.name
    );
    Ok(())
}

/// Trims each parameter's `when` to the choices its parents kept, and leaves out parameters
/// whose conditions can no longer hold (a parent left out, or none of its allowed values
/// kept), until nothing changes (children of a left-out parameter go too).
fn keep_satisfiable_conditions(params: &mut toml::Table) {
    loop {
        let mut removed = false;
        let names: Vec<String> = params.keys().cloned().collect();
        for name in names {
            let Some(when) = params[&name]
                .get("when")
                .and_then(|w| w.as_table())
                .cloned()
            else {
                continue;
            };
            let mut trimmed = toml::Table::new();
            let mut holds = true;
            for (parent, allowed) in &when {
                let choices = params
                    .get(parent)
                    .and_then(|p| p.get("choices"))
                    .and_then(|c| c.as_array());
                let Some(choices) = choices else {
                    holds = false;
                    break;
                };
                let listed = match allowed {
                    toml::Value::Array(list) => list.clone(),
                    one => vec![one.clone()],
                };
                let mut kept: Vec<toml::Value> =
                    listed.into_iter().filter(|v| choices.contains(v)).collect();
                match kept.len() {
                    0 => {
                        holds = false;
                        break;
                    }
                    1 => trimmed.insert(parent.clone(), kept.remove(0)),
                    _ => trimmed.insert(parent.clone(), toml::Value::Array(kept)),
                };
            }
            if holds {
                if let Some(toml::Value::Table(table)) = params.get_mut(&name) {
                    table.insert("when".into(), toml::Value::Table(trimmed));
                }
            } else {
                params.remove(&name);
                removed = true;
            }
        }
        if !removed {
            return;
        }
    }
}
