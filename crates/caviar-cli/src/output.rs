//! Tables, JSON and CSV for `studies`, `trials` and `best`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use caviar_core::space::format_g;
use caviar_core::storage::{Storage, StudyRecord};
use caviar_core::trial::{best_trials, FrozenTrial, TrialState};
use serde_json::{json, Value};

/// A trial as the `--json` contract shapes it.
pub fn trial_json(t: &FrozenTrial) -> Value {
    json!({
        "number": t.number,
        "state": t.state.as_str(),
        "params": t.params,
        "value": t.value,
        "values": t.values,
        "intermediate": t.intermediate.iter().map(|(s, v)| json!([s, v])).collect::<Vec<_>>(),
        "error": t.error,
        "feasible": t.is_feasible(),
        "constraints": t.constraints,
        "worker": t.worker,
        "started_ms": t.started_ms,
        "finished_ms": t.finished_ms,
        "duration_s": t.duration_secs(),
    })
}

/// A trial for `caviar trials --json`: [`trial_json`] plus its user attributes (set from the
/// Python API; `{}` when it has none).
pub fn listed_trial_json(t: &FrozenTrial, extra: &TrialExtras) -> Value {
    let mut v = trial_json(t);
    v["user_attrs"] = json!(extra.user_attrs.get(&t.id).cloned().unwrap_or_default());
    v["param_history"] = json!(extra.changes.get(&t.id).cloned().unwrap_or_default());
    v["metrics"] = json!(extra.metrics.get(&t.id).cloned().unwrap_or_default());
    v
}

/// The last finite value of each metric series.
pub fn last_metrics(
    series: Option<&std::collections::BTreeMap<String, Vec<(u64, f64)>>>,
) -> std::collections::BTreeMap<String, f64> {
    series
        .into_iter()
        .flatten()
        .filter_map(|(name, points)| {
            let last = points.iter().rev().find(|(_, v)| v.is_finite())?;
            Some((name.clone(), last.1))
        })
        .collect()
}

/// What `caviar trials --json` adds to each trial, read for the whole study at once.
#[derive(Default)]
pub struct TrialExtras {
    /// User attributes, by trial.
    pub user_attrs: caviar_core::storage::TrialUserAttrs,
    /// Parameter changes asked while it ran (panda mode), by trial.
    pub changes: std::collections::BTreeMap<
        caviar_core::trial::TrialId,
        Vec<caviar_core::storage::ParamChange>,
    >,
    /// Metric series besides the objective, by trial.
    pub metrics: caviar_core::storage::TrialMetrics,
}

impl TrialExtras {
    /// Reads them for a study.
    pub fn of(storage: &dyn Storage, record: &StudyRecord) -> Result<Self> {
        Ok(TrialExtras {
            user_attrs: storage
                .trial_user_attrs(record.id)
                .context("reading user attributes")?,
            changes: storage
                .study_param_changes(record.id)
                .context("reading parameter changes")?,
            metrics: storage
                .trial_metrics(record.id)
                .context("reading metrics")?,
        })
    }
}

/// The seed-format line: `Best-1 (val_acc:0.8300) | lr:0.0092, weight_decay:3.86e-07`.
pub fn best_line(rank: usize, metric: &str, t: &FrozenTrial) -> String {
    let params: Vec<String> = t
        .params
        .iter()
        .map(|(k, v)| format!("{k}:{}", v.short()))
        .collect();
    format!(
        "Best-{rank} ({metric}:{:.4}) | {}",
        t.value.unwrap_or(f64::NAN),
        params.join(", ")
    )
}

pub fn metric_name(record: &StudyRecord) -> &str {
    record.metric.as_deref().unwrap_or("value")
}

pub fn studies(storage: &dyn Storage, as_json: bool) -> Result<()> {
    let list = storage.studies().context("listing studies")?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let mut rows: Vec<Value> = Vec::with_capacity(list.len());
        for s in &list {
            let attrs = storage
                .user_attrs(caviar_core::storage::AttrOwner::Study(s.study.id))
                .context("reading study attributes")?;
            let directions = s.study.directions();
            let several = directions.len() > 1;
            rows.push(json!({
                "name": s.study.name,
                "direction": s.study.direction.as_str(),
                "metric": s.study.metric,
                "directions": directions.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                "metrics": if several { s.study.metrics() } else { vec![s.study.metric.clone().unwrap_or_default()] },
                "parent": s.study.parent,
                "n_trials": s.counts.total(),
                "counts": s.counts,
                // Several objectives have a front, not one best value (`caviar best` shows it).
                "best_value": if several { None } else { s.best_value },
                "created_ms": s.study.created_ms,
                "user_attrs": attrs,
            }));
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(
            out,
            "no studies yet; create one with `caviar run STUDY.toml`"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<9} {:<12} {:>7} {:>9} {:>7} {:>7} {:>8}  best",
        "name", "direction", "metric", "trials", "complete", "pruned", "failed", "running"
    )?;
    for s in &list {
        let directions = s.study.directions();
        let several = directions.len() > 1;
        let (direction, metric, best) = if several {
            (
                directions
                    .iter()
                    .map(|d| &d.as_str()[..3])
                    .collect::<Vec<_>>()
                    .join(","),
                s.study.metrics().join(","),
                Some("(Pareto front)".to_string()),
            )
        } else {
            (
                s.study.direction.as_str().to_string(),
                s.study.metric.clone().unwrap_or_else(|| "-".into()),
                None,
            )
        };
        writeln!(
            out,
            "{:<24} {:<9} {:<12} {:>7} {:>9} {:>7} {:>7} {:>8}  {}",
            s.study.name,
            direction,
            metric,
            s.counts.total(),
            s.counts.complete,
            s.counts.pruned,
            s.counts.failed,
            s.counts.running,
            best.unwrap_or_else(|| s
                .best_value
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into()))
        )?;
    }
    Ok(())
}

/// Trials read per page when streaming: memory stays flat however large the study.
const TRIALS_PAGE: u64 = 1000;

/// The study's trials as one pretty-printed JSON array (the same text as serializing them all
/// at once), read and written a page at a time.
fn stream_trials_json(
    storage: &dyn Storage,
    record: &StudyRecord,
    out: &mut impl Write,
) -> Result<()> {
    let mut out = std::io::BufWriter::new(out);
    let extras = TrialExtras::of(storage, record)?;
    let mut wrote_any = false;
    let mut from = 0;
    loop {
        let page = storage
            .trials_numbered(record.id, from, from + TRIALS_PAGE)
            .context("reading trials")?;
        if page.is_empty() {
            // Numbers are gap-free: an empty page is the end, unless numbers start later.
            let total = storage.counts(record.id)?.total();
            if from >= total {
                break;
            }
            from += TRIALS_PAGE;
            continue;
        }
        for trial in &page {
            out.write_all(if wrote_any { b",\n" } else { b"[\n" })?;
            wrote_any = true;
            let text = serde_json::to_string_pretty(&listed_trial_json(trial, &extras))?;
            for (i, line) in text.lines().enumerate() {
                if i > 0 {
                    out.write_all(b"\n")?;
                }
                out.write_all(b"  ")?;
                out.write_all(line.as_bytes())?;
            }
        }
        from += TRIALS_PAGE;
    }
    out.write_all(if wrote_any { b"\n]\n" } else { b"[]\n" })?;
    out.flush()?;
    Ok(())
}

pub fn trials(
    storage: &dyn Storage,
    record: &StudyRecord,
    as_json: bool,
    as_csv: bool,
    query: Option<&caviar_core::table::TableQuery>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json && query.is_none() {
        return stream_trials_json(storage, record, &mut out);
    }
    let mut trials = storage.trials(record.id).context("reading trials")?;
    if let Some(q) = query {
        // Sorted and filtered as the dashboard's trials table is (caviar_core::table).
        let all: Vec<&FrozenTrial> = trials.iter().collect();
        let page = caviar_core::table::query(&all, q, caviar_core::trial::now_ms());
        let rows: Vec<FrozenTrial> = page.rows.into_iter().cloned().collect();
        trials = rows;
    }
    if as_json {
        let extras = TrialExtras::of(storage, record)?;
        let listed: Vec<Value> = trials
            .iter()
            .map(|t| listed_trial_json(t, &extras))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
        return Ok(());
    }
    let mut names: Vec<&String> = trials.iter().flat_map(|t| t.params.keys()).collect();
    names.sort();
    names.dedup();
    if as_csv {
        let metrics = storage
            .trial_metrics(record.id)
            .context("reading metrics")?;
        let mut metric_names: Vec<&String> = metrics.values().flat_map(|m| m.keys()).collect();
        metric_names.sort();
        metric_names.dedup();
        let mut header = vec![
            "number".to_string(),
            "state".into(),
            "value".into(),
            "duration_s".into(),
        ];
        header.extend(names.iter().map(|n| format!("param_{n}")));
        header.extend(metric_names.iter().map(|n| format!("metric_{n}")));
        let constrained = !record.constraints().is_empty();
        if constrained {
            header.push("feasible".into());
        }
        header.push("error".into());
        writeln!(out, "{}", header.join(","))?;
        for t in &trials {
            let mut row = vec![
                t.number.to_string(),
                t.state.as_str().to_string(),
                t.value.map(|v| v.to_string()).unwrap_or_default(),
                t.duration_secs()
                    .map(|d| format!("{d:.3}"))
                    .unwrap_or_default(),
            ];
            row.extend(
                names
                    .iter()
                    .map(|n| t.params.get(*n).map(|v| v.to_string()).unwrap_or_default()),
            );
            let last = last_metrics(metrics.get(&t.id));
            row.extend(
                metric_names
                    .iter()
                    .map(|n| last.get(*n).map(|v| v.to_string()).unwrap_or_default()),
            );
            if constrained {
                row.push(t.is_feasible().to_string());
            }
            row.push(t.error.clone().unwrap_or_default());
            let row: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", row.join(","))?;
        }
        return Ok(());
    }
    let metric = metric_name(record);
    let constraints = record.constraints();
    write!(
        out,
        "{:>6}  {:<9}  {:>10}  {:>8}",
        "number", "state", metric, "time"
    )?;
    for n in &names {
        write!(out, "  {:>10}", n)?;
    }
    writeln!(out, "  error")?;
    for t in &trials {
        write!(
            out,
            "{:>6}  {:<9}  {:>10}  {:>8}",
            t.number,
            t.state.as_str(),
            t.value
                .map(|v| format_g(v, 5))
                .unwrap_or_else(|| "-".into()),
            t.duration_secs()
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into()),
        )?;
        for n in &names {
            write!(
                out,
                "  {:>10}",
                t.params
                    .get(*n)
                    .map(|v| v.short())
                    .unwrap_or_else(|| "-".into())
            )?;
        }
        let first_line = match t.error.as_deref() {
            Some(e) => e.lines().next().unwrap_or("").to_string(),
            None if !t.is_feasible() => format!(
                "infeasible: {}",
                caviar_core::constraint::describe_broken(&constraints, &t.constraints).join(", ")
            ),
            None => String::new(),
        };
        writeln!(out, "  {first_line}")?;
    }
    Ok(())
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// The other metrics `--show` asks for, read once for the study.
struct ShownMetrics<'a> {
    show: &'a [String],
    metrics: caviar_core::storage::TrialMetrics,
}

impl<'a> ShownMetrics<'a> {
    fn read(storage: &dyn Storage, record: &StudyRecord, show: &'a [String]) -> Result<Self> {
        let metrics = if show.is_empty() {
            Default::default()
        } else {
            storage
                .trial_metrics(record.id)
                .context("reading metrics")?
        };
        Ok(ShownMetrics { show, metrics })
    }

    /// ` | train_loss:0.03, lr:-` for a table line (empty when nothing is asked for).
    fn suffix(&self, t: &FrozenTrial) -> String {
        let shown: Vec<String> = self
            .of(t)
            .into_iter()
            .map(|(n, v)| format!("{n}:{}", v.map_or("-".into(), |v| format_g(v, 4))))
            .collect();
        if shown.is_empty() {
            String::new()
        } else {
            format!(" | {}", shown.join(", "))
        }
    }

    /// The last value of each metric asked for, for one trial.
    fn of(&self, t: &FrozenTrial) -> Vec<(String, Option<f64>)> {
        let last = last_metrics(self.metrics.get(&t.id));
        self.show
            .iter()
            .map(|n| (n.clone(), last.get(n).copied()))
            .collect()
    }
}

/// The best-k table: complete trials, or with `include_pruned` pruned ones too (ranked by the
/// last value they reported, and marked).
pub fn best(
    storage: &dyn Storage,
    record: &StudyRecord,
    k: usize,
    as_json: bool,
    include_pruned: bool,
    show: &[String],
) -> Result<()> {
    let trials = storage.trials(record.id).context("reading trials")?;
    let shown = ShownMetrics::read(storage, record, show)?;
    let top: Vec<&FrozenTrial> = if include_pruned {
        let mut ranked: Vec<&FrozenTrial> = trials
            .iter()
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
            .filter(|t| t.value.is_some_and(f64::is_finite) && t.is_feasible())
            .collect();
        ranked.sort_by(|a, b| {
            record
                .direction
                .cmp_best_first(a.value.unwrap(), b.value.unwrap())
                .then(a.number.cmp(&b.number))
        });
        ranked.truncate(k);
        ranked
    } else {
        best_trials(&trials, record.direction, k)
    };
    // Parameters changed while a trial ran (panda mode): its params are the final ones.
    let changes = storage
        .study_param_changes(record.id)
        .context("reading parameter changes")?;
    let applied = |t: &FrozenTrial| -> Vec<caviar_core::storage::ParamChange> {
        changes
            .get(&t.id)
            .map(|all| {
                all.iter()
                    .filter(|c| c.applied_step.is_some())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        let rows: Vec<Value> = top
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = trial_json(t);
                v["rank"] = json!(i + 1);
                let history = applied(t);
                v["changed"] = json!(!history.is_empty());
                v["param_history"] = json!(history);
                if !show.is_empty() {
                    v["metrics"] = json!(shown.of(t).into_iter().collect::<BTreeMap<_, _>>());
                }
                v
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    let infeasible = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && !t.is_feasible())
        .count();
    let left_out = || -> String {
        let constraints: Vec<String> = record.constraints().iter().map(|c| c.to_string()).collect();
        format!(
            "{infeasible} complete trial{} broke a constraint ({}) and {} left out",
            if infeasible == 1 { "" } else { "s" },
            constraints.join(", "),
            if infeasible == 1 { "is" } else { "are" }
        )
    };
    if top.is_empty() {
        if infeasible > 0 {
            writeln!(
                out,
                "study `{}` has no feasible complete trials yet: {}",
                record.name,
                left_out()
            )?;
        } else {
            writeln!(out, "study `{}` has no complete trials yet", record.name)?;
        }
        return Ok(());
    }
    let metric = metric_name(record);
    for (i, t) in top.iter().enumerate() {
        let mark = match (t.state, t.last_intermediate()) {
            (TrialState::Pruned, Some((step, _))) => format!(" [pruned at step {step}]"),
            (TrialState::Pruned, None) => " [pruned]".into(),
            _ => String::new(),
        };
        let history = applied(t);
        let changed = if history.is_empty() {
            String::new()
        } else {
            let what: Vec<String> = history
                .iter()
                .map(|c| {
                    let old = c.old.as_ref().map_or("?".into(), |o| o.short());
                    format!(
                        "{} {}->{} after step {}",
                        c.name,
                        old,
                        c.new.short(),
                        c.applied_step.unwrap_or(0)
                    )
                })
                .collect();
            format!(" [changed while running: {}]", what.join("; "))
        };
        let extra = shown.suffix(t);
        writeln!(out, "{}{extra}{mark}{changed}", best_line(i + 1, metric, t))?;
    }
    if infeasible > 0 {
        writeln!(out, "({})", left_out())?;
    }
    Ok(())
}

/// The Pareto front of a study with several objectives: every feasible complete trial no
/// other dominates (by number, at most `k`), and the hypervolume they dominate.
pub fn pareto(
    storage: &dyn Storage,
    record: &StudyRecord,
    k: usize,
    as_json: bool,
    show: &[String],
) -> Result<()> {
    let trials = storage.trials(record.id).context("reading trials")?;
    let directions = record.directions();
    let names = record.objective_names();
    let summary = caviar_core::pareto::summarize(&trials, &directions);
    let front: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| summary.front.binary_search(&t.number).is_ok())
        .collect();
    let shown = ShownMetrics::read(storage, record, show)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let rows: Vec<Value> = front
            .iter()
            .take(k)
            .map(|t| {
                let mut v = trial_json(t);
                if !show.is_empty() {
                    v["metrics"] = json!(shown.of(t).into_iter().collect::<BTreeMap<_, _>>());
                }
                v
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    if front.is_empty() {
        writeln!(
            out,
            "study `{}` has no feasible complete trials yet",
            record.name
        )?;
        return Ok(());
    }
    let objectives: Vec<String> = names
        .iter()
        .zip(&directions)
        .map(|(n, d)| {
            format!(
                "{n} ({})",
                if *d == caviar_core::trial::Direction::Maximize {
                    "max"
                } else {
                    "min"
                }
            )
        })
        .collect();
    writeln!(
        out,
        "Pareto front of `{}`: {} of {} complete trials; {}",
        record.name,
        front.len(),
        summary.complete,
        objectives.join(", ")
    )?;
    write!(out, "{:>6}", "trial")?;
    for n in &names {
        write!(out, "  {:>12}", n)?;
    }
    writeln!(out, "  params")?;
    for t in front.iter().take(k) {
        write!(out, "{:>6}", t.number)?;
        for v in &t.values {
            write!(out, "  {:>12}", format_g(*v, 6))?;
        }
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.short()))
            .collect();
        let extra = shown.suffix(t);
        writeln!(out, "  {}{extra}", params.join(", "))?;
    }
    if front.len() > k {
        writeln!(
            out,
            "({} more on the front; -k shows more)",
            front.len() - k
        )?;
    }
    if let (Some(hv), Some(reference)) = (summary.hypervolume, &summary.reference) {
        let point: Vec<String> = names
            .iter()
            .zip(reference)
            .map(|(n, r)| format!("{n} {}", format_g(*r, 4)))
            .collect();
        writeln!(
            out,
            "hypervolume {} (reference point {}: each objective's worst among feasible trials, 10% of its range further)",
            format_g(hv, 6),
            point.join(", ")
        )?;
    }
    if summary.infeasible > 0 {
        writeln!(
            out,
            "({} complete trial{} broke a constraint and {} left out)",
            summary.infeasible,
            if summary.infeasible == 1 { "" } else { "s" },
            if summary.infeasible == 1 { "is" } else { "are" }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::space::{Distribution, Scale};
    use caviar_core::storage::{InMemoryStorage, NewStudy};
    use caviar_core::trial::{Direction, TrialState};

    #[test]
    fn streamed_json_is_the_text_of_the_whole_array() {
        let storage = InMemoryStorage::new();
        let record = storage
            .create_study(&NewStudy {
                name: "s".into(),
                direction: Direction::Minimize,
                metric: Some("loss".into()),
                spec: None,
                parent: None,
            })
            .unwrap();
        let stream = |storage: &InMemoryStorage| {
            let mut out = Vec::new();
            stream_trials_json(storage, &record, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(stream(&storage), "[]\n");
        let x = Distribution::float(0.0, 1.0, Scale::Linear).unwrap();
        // More than two pages, with failures, reports and text needing escapes.
        for i in 0..2_345u64 {
            let t = storage.create_trial(record.id, "w", None).unwrap().unwrap();
            let value = x.from_unit(i as f64 / 2345.0);
            storage.set_param(t.id, "x", &x, &value).unwrap();
            storage.report(t.id, 1, 0.5).unwrap();
            if i % 100 == 0 {
                let owner = caviar_core::storage::AttrOwner::Trial(t.id);
                storage
                    .set_user_attr(owner, "fold", &json!({"k": i}))
                    .unwrap();
            }
            if i % 7 == 0 {
                let why = "crashed:\n\"quoted\" \u{e9}";
                storage
                    .finish_trial(t.id, TrialState::Failed, None, Some(why))
                    .unwrap();
            } else {
                storage
                    .finish_trial(t.id, TrialState::Complete, Some(i as f64), None)
                    .unwrap();
            }
        }
        let extras = TrialExtras::of(&storage, &record).unwrap();
        let all: Vec<Value> = storage
            .trials(record.id)
            .unwrap()
            .iter()
            .map(|t| listed_trial_json(t, &extras))
            .collect();
        let whole = format!("{}\n", serde_json::to_string_pretty(&all).unwrap());
        assert_eq!(stream(&storage), whole);
        let listed: Vec<Value> = serde_json::from_str(&whole).unwrap();
        assert_eq!(listed[200]["user_attrs"]["fold"]["k"], json!(200));
        assert_eq!(listed[201]["user_attrs"], json!({}));
    }
}
