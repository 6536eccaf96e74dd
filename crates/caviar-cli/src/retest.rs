//! `caviar retest`: re-run a study's best configurations on today's program and report what
//! drifted (the planning and the report live in `caviar_engine::retest`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use caviar_core::storage::{AttrOwner, Storage, StudyRecord};
use caviar_engine::retest::{self, DriftReport, Verdict};
use serde_json::json;

use crate::run::{self, RunOptions};
use crate::{config, BadInput};

/// Arguments of `caviar retest`.
#[derive(clap::Args)]
pub struct RetestArgs {
    /// The study to re-test.
    pub study: String,
    /// How many of its best configurations (default 5; a resumed re-test keeps its own).
    #[arg(short)]
    pub k: Option<usize>,
    /// Runs of each configuration, each with its own seed (`{seed}` and CAVIAR_SEED are the
    /// run's trial number); default 3.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// A changed study file to run them with (new code, data or metric range; the old
    /// parameters must fit it); default: the study file stored with the study.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Name of the re-test study (default: STUDY-retest-N, the first free N); naming an
    /// unfinished re-test of STUDY resumes it.
    #[arg(long)]
    pub name: Option<String>,
    /// Runs at once (default: the study file's workers).
    #[arg(long)]
    pub workers: Option<u64>,
    /// Print the drift report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs (or resumes) the re-test and prints its drift report. Exits 0 whatever the verdict
/// (failing runs are a finding, reported as `broken`), 130 when interrupted.
pub fn retest(url: &str, args: &RetestArgs) -> Result<u8> {
    let storage = crate::open(url)?;
    let parent = crate::find_study(&*storage, &args.study, url)?;
    let parent_trials = storage
        .trials(parent.id)
        .context("reading the parent's trials")?;

    let name = match &args.name {
        Some(name) => name.clone(),
        None => free_name(&*storage, &parent.name)?,
    };
    let existing = storage.study(&name).context("reading the re-test study")?;
    let planned = match &existing {
        Some(child) => Some(check_is_retest(&*storage, child, &parent.name)?),
        None => None,
    };
    let (k, repeats) = match planned.as_ref() {
        Some(&retest::Plan { k, repeats, .. }) => {
            for (flag, given, kept) in [("-k", args.k, k), ("--repeats", args.repeats, repeats)] {
                if given.is_some_and(|g| g != kept) {
                    return Err(BadInput(format!(
                        "re-test `{name}` was planned with {flag} {kept}; leave {flag} out to resume it, or give --name for a new re-test"
                    ))
                    .into());
                }
            }
            (k, repeats)
        }
        None => (args.k.unwrap_or(5), args.repeats.unwrap_or(3)),
    };
    if k == 0 || repeats < 2 {
        return Err(BadInput(
            "-k must be at least 1 and --repeats at least 2 (the repeats measure the noise that drift is judged against)".into(),
        )
        .into());
    }

    let (path, text) = match &args.file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| BadInput(format!("--file {}: {e}", file.display())))?;
            (file.clone(), text)
        }
        None => run::stored_file(&parent)?,
    };
    let source = match &args.file {
        Some(file) => format!("--file {}", file.display()),
        None => format!("the study file stored with `{}`", parent.name),
    };
    // The planned count is known only after the configurations are checked; parse once to check
    // them, then again with the final file.
    let probe = config::parse(&child_text(&text, &name, &parent.name, 1)?, &path)?;
    if probe.direction != parent.direction {
        return Err(BadInput(format!(
            "{source} says direction = \"{}\" but `{}` was {}; a re-test keeps the direction",
            probe.direction.as_str(),
            parent.name,
            parent.direction.as_str()
        ))
        .into());
    }
    let configs = match &planned {
        Some(plan) => plan.configs(&parent_trials, parent.direction, &probe.space),
        None => retest::plan(&parent_trials, parent.direction, k, &probe.space),
    }
    .map_err(|e| BadInput(format!("`{}`: {source}: {e}", parent.name)))?;
    let total = (configs.len() * repeats) as u64;
    let cfg = config::parse(&child_text(&text, &name, &parent.name, total)?, &path)?;

    let origin = format!("re-test `{name}` of `{}` ({source})", parent.name);
    match &existing {
        None => {
            let child = run::open_config_study(&storage, &cfg, &origin, url, &[])?;
            // The plan first: a re-test cut short while queuing resumes from it.
            let numbers: Vec<u64> = configs.iter().map(|c| c.parent_trial).collect();
            storage
                .set_user_attr(
                    AttrOwner::Study(child.record().id),
                    retest::RETEST_OF_STUDY,
                    &json!(parent.name),
                )
                .context("recording the re-test's parent")?;
            storage
                .set_user_attr(
                    AttrOwner::Study(child.record().id),
                    retest::RETEST_PLAN,
                    &json!({"k": k, "repeats": repeats, "trials": numbers}),
                )
                .context("recording the re-test's plan")?;
            retest::enqueue(&*storage, child.record(), &parent.name, &configs, repeats)
                .context("queuing the configurations")?;
            eprintln!(
                "re-testing the best {} configurations of `{}` {repeats} times each in study `{name}`",
                configs.len(),
                parent.name
            );
        }
        Some(child) => {
            // Runs interrupted, lost or never queued are queued again.
            let queued = retest::top_up(&*storage, child, &configs, repeats)
                .context("queuing missing runs")?;
            if queued > 0 {
                eprintln!("queued {queued} run(s) that `{name}` still lacked");
            }
        }
    }
    let options = RunOptions {
        trials: None,
        workers: args.workers,
        json: false,
        time_budget: None,
        warm_start: Vec::new(),
    };
    let code = match run::run_config(url, cfg, &origin, &options)? {
        crate::EXIT_INTERRUPTED => crate::EXIT_INTERRUPTED,
        _ => 0,
    };

    let child = crate::find_study(&*storage, &name, url)?;
    let stored = retest::stored(&*storage, &child)
        .context("reading the re-test")?
        .ok_or_else(|| anyhow::anyhow!("study `{name}` lost its re-test attributes"))?;
    let suggestion = suggestion(&stored.report, &parent.name, &name, repeats);
    if args.json {
        let mut out = serde_json::to_value(&stored.report)?;
        out["study"] = json!(name);
        out["parent"] = json!(parent.name);
        out["k"] = json!(k);
        out["repeats"] = json!(repeats);
        out["direction"] = json!(parent.direction.as_str());
        out["metric"] = json!(crate::output::metric_name(&parent));
        out["suggestion"] = json!(suggestion);
        out["changed"] = serde_json::to_value(&stored)?["changed"].take();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&stored.report, &parent, &name, repeats, &suggestion);
        match &stored.changed {
            Ok(lines) if lines.is_empty() => {
                println!("changed since `{}` ran: nothing its fingerprint covers (command, git state, `fingerprint` files)", parent.name)
            }
            Ok(lines) => {
                println!("changed since `{}` ran:", parent.name);
                for line in lines {
                    println!("  {line}");
                }
            }
            Err(why) => println!("changed since `{}` ran: unknown ({why})", parent.name),
        }
    }
    Ok(code)
}

/// `STUDY-retest-N` with the first N no study has.
fn free_name(storage: &dyn Storage, parent: &str) -> Result<String> {
    for n in 1.. {
        let name = format!("{parent}-retest-{n}");
        if storage.study(&name).context("listing studies")?.is_none() {
            return Ok(name);
        }
    }
    unreachable!("some number is free")
}

/// The stored plan of an existing study, which must be a re-test of `parent`.
fn check_is_retest(
    storage: &dyn Storage,
    child: &StudyRecord,
    parent: &str,
) -> Result<retest::Plan> {
    let attrs = storage
        .user_attrs(AttrOwner::Study(child.id))
        .context("reading the study's attributes")?;
    let of = attrs.get(retest::RETEST_OF_STUDY).and_then(|v| v.as_str());
    if of != Some(parent) {
        return Err(BadInput(format!(
            "study `{}` exists and is not a re-test of `{parent}`; choose another --name",
            child.name
        ))
        .into());
    }
    retest::Plan::read(&attrs).ok_or_else(|| {
        anyhow::anyhow!(
            "re-test `{}` lost its plan (attribute {})",
            child.name,
            retest::RETEST_PLAN
        )
    })
}

/// The re-test's study file: the parent's (or the given) file renamed, its parent set, `trials`
/// set to every queued run, and no pruner or population-based training (a re-run must run to
/// its end to be compared) or warm start (every run is queued).
fn child_text(text: &str, name: &str, parent: &str, trials: u64) -> Result<String> {
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| BadInput(format!("the study file does not parse: {e}")))?;
    table.insert("name".into(), name.into());
    table.insert("parent".into(), parent.into());
    table.insert("trials".into(), toml::Value::Integer(trials as i64));
    for key in ["pruner", "pbt", "warm_start", "enqueue_best"] {
        table.remove(key);
    }
    // Its own trial folders: the parent's checkpoints are neither resumed nor pruned.
    if let Some(toml::Value::String(dir)) = table.get("trial_dir") {
        let own = format!("{}/{name}", dir.trim_end_matches('/'));
        table.insert("trial_dir".into(), own.into());
    }
    toml::to_string(&table).context("writing the re-test's study file")
}

/// The command to run next, by verdict.
fn suggestion(report: &DriftReport, parent: &str, child: &str, repeats: usize) -> String {
    let around_best = format!(
        "caviar narrow {child} -k {repeats} --margin 0.1 --write {child}-next.toml && caviar run {child}-next.toml"
    );
    match report.verdict {
        Verdict::Stable => format!("the old best holds; nothing to do (caviar best {parent})"),
        Verdict::Shifted => {
            format!("the best holds but values moved; to search around it again: {around_best}")
        }
        Verdict::Stale => format!("search again around the new best: {around_best}"),
        Verdict::Broken => {
            format!("see why they fail: caviar trials {child} (each failed trial keeps its reason and log)")
        }
        Verdict::Incomplete => format!("finish the re-test: caviar worker {child}"),
    }
}

fn print_report(
    report: &DriftReport,
    parent: &StudyRecord,
    child: &str,
    repeats: usize,
    suggestion: &str,
) {
    let metric = crate::output::metric_name(parent);
    println!(
        "re-test `{child}` of `{}`: {} configurations, {repeats} runs each ({metric}, {})",
        parent.name,
        report.configs.len(),
        parent.direction.as_str()
    );
    println!(
        "{:>4} {:>4} {:>6} {:>12} {:>24} {:>12}  params",
        "old", "new", "trial", "old value", "new mean ± sd", "change"
    );
    let number = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for c in &report.configs {
        let params: Vec<String> = c
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.short()))
            .collect();
        let mean_sd = match (c.new_mean, c.new_sd) {
            (Some(m), Some(sd)) => format!("{m:.4} ± {sd:.4}"),
            (Some(m), None) => format!("{m:.4}"),
            _ => "-".into(),
        };
        let mut change = c.change.map_or("-".into(), |v| format!("{v:+.4}"));
        if c.beyond_noise {
            change.push_str(" *");
        }
        let failed = if c.failures.is_empty() {
            String::new()
        } else {
            format!("  ({} of {} runs failed)", c.failures.len(), c.runs)
        };
        println!(
            "{:>4} {:>4} {:>6} {:>12.4} {:>24} {:>12}  {}{failed}",
            c.old_rank,
            c.new_rank.map_or("-".into(), |r| r.to_string()),
            c.parent_trial,
            c.old_value,
            mean_sd,
            change,
            params.join(" ")
        );
    }
    match report.noise_sd {
        Some(sd) => println!(
            "* beyond the noise: more than {:.2} sd of the difference (run sd pooled over the repeats: {})",
            report.noise_sigmas,
            number(Some(sd))
        ),
        None => println!("* changed (one run each measures no noise; --repeats 3 does)"),
    }
    if let Some(rho) = report.rank_correlation {
        println!("rank correlation of the old and new order (Spearman): {rho:.2}");
    }
    println!("verdict: {}", report.verdict_text);
    println!("  because {}", report.reason);
    println!("next: {suggestion}");
}
