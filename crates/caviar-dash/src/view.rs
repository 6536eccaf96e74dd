//! What a study page shows, computed from the study's trials: the server aggregates and
//! downsamples, so a page never receives every trial of a large study.

use std::collections::BTreeMap;

use caviar_core::analysis::narrowed_ranges;
use caviar_core::importance::{importance, ImportanceOptions};
use caviar_core::space::{Distribution, ParamValue, Scale};
use caviar_core::storage::{StudyRecord, TrialCounts};
use caviar_core::trial::{best_trials, Direction, FrozenTrial, TrialState};
use serde_json::{json, Value};

/// Limits on what one study view holds.
#[derive(Clone, Copy, Debug)]
pub struct ViewLimits {
    /// Rows of the best-k table.
    pub best: usize,
    /// Learning curves shown (of the best trials).
    pub curves: usize,
    /// Points of the optimisation history.
    pub history_points: usize,
    /// Trials in the parallel-coordinates and slice plots.
    pub sample: usize,
    /// Points per learning curve.
    pub curve_points: usize,
}

impl Default for ViewLimits {
    fn default() -> Self {
        ViewLimits {
            best: 10,
            curves: 10,
            history_points: 2000,
            sample: 1000,
            curve_points: 200,
        }
    }
}

/// The study page's data, as JSON.
pub fn study_view(
    record: &StudyRecord,
    counts: &TrialCounts,
    finished: &[FrozenTrial],
    limits: &ViewLimits,
) -> Value {
    let direction = record.direction;
    let params = param_meta(finished);
    let directions = record.directions();
    let several = directions.len() > 1;
    let best = if several {
        caviar_core::pareto::pareto_front(finished, &directions)
    } else {
        best_trials(finished, direction, limits.best)
    };
    let curves: Vec<Value> = best_trials(finished, direction, limits.curves)
        .into_iter()
        .map(|t| {
            json!({
                "number": t.number,
                "value": t.value,
                "points": thin(&t.intermediate, limits.curve_points)
                    .iter()
                    .map(|(s, v)| json!([s, finite(*v)]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let importance = match importance(
        finished,
        direction,
        &ImportanceOptions {
            bootstrap: 30,
            ..Default::default()
        },
    ) {
        Ok(ranked) => json!({ "params": ranked }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let narrowed: Vec<Value> = narrowed_ranges(finished, direction, 10)
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "low": r.low,
                "high": r.high,
                "choices": r.choices,
                "scale": scale_name(r.scale),
                "k": r.k,
                "of": r.of,
                "text": r.to_string(),
            })
        })
        .collect();
    json!({
        "study": study_json(record, counts, finished),
        "params": params.iter().map(param_json).collect::<Vec<_>>(),
        "best": best.iter().map(|t| trial_row(t)).collect::<Vec<_>>(),
        "pareto": if several { pareto(record, finished, &directions, limits.sample) } else { Value::Null },
        "history": history(finished, direction, limits.history_points),
        "edf": edf(finished, limits.history_points),
        "curves": curves,
        "sample": sample(finished, direction, &params, limits.sample),
        "importance": importance,
        "narrowed": narrowed,
    })
}

/// The other metrics' curves of the trials whose objective curves the page shows (`numbers`,
/// with their ids): `{name: [{"number", "points"}]}`, thinned like the objective's.
pub fn metric_curves(
    numbers: &[(caviar_core::trial::TrialId, u64)],
    metrics: &caviar_core::storage::TrialMetrics,
    limits: &ViewLimits,
) -> Value {
    let mut out: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for (id, number) in numbers {
        for (name, points) in metrics.get(id).into_iter().flatten() {
            out.entry(name).or_default().push(json!({
                "number": number,
                "points": thin(points, limits.curve_points)
                    .iter()
                    .map(|(s, v)| json!([s, finite(*v)]))
                    .collect::<Vec<_>>(),
            }));
        }
    }
    json!(out)
}

/// Adds to each zoom round of `lineage` the best trial among its trials.
pub fn with_round_bests(
    mut lineage: Value,
    finished: &[FrozenTrial],
    direction: Direction,
) -> Value {
    if let Some(rounds) = lineage.get_mut("rounds").and_then(Value::as_array_mut) {
        for round in rounds {
            let first = round["first_trial"].as_u64().unwrap_or(0);
            let size = round["trials"].as_u64().unwrap_or(u64::MAX);
            let members: Vec<FrozenTrial> = finished
                .iter()
                .filter(|t| t.number >= first && t.number - first < size)
                .cloned()
                .collect();
            round["best"] = match best_trials(&members, direction, 1).first() {
                Some(t) => json!({ "number": t.number, "value": t.value }),
                None => Value::Null,
            };
        }
    }
    lineage
}

/// One line of the studies list.
pub fn study_json(record: &StudyRecord, counts: &TrialCounts, finished: &[FrozenTrial]) -> Value {
    let best = best_trials(finished, record.direction, 1);
    let last_activity = finished
        .iter()
        .filter_map(|t| t.finished_ms.or(t.started_ms))
        .max()
        .unwrap_or(record.created_ms);
    json!({
        "name": record.name,
        "direction": record.direction.as_str(),
        "metric": record.metric,
        "parent": record.parent,
        "counts": counts,
        "trials": counts.total(),
        "best_value": best.first().and_then(|t| t.value),
        "best_number": best.first().map(|t| t.number),
        "created_ms": record.created_ms,
        "last_activity_ms": last_activity,
    })
}

/// A study with several objectives: their names and directions, every feasible complete
/// trial's values (an even sample past `max`, the front always kept), the front's numbers and
/// its hypervolume.
fn pareto(
    record: &StudyRecord,
    finished: &[FrozenTrial],
    directions: &[Direction],
    max: usize,
) -> Value {
    let names = record.objective_names();
    let summary = caviar_core::pareto::summarize(finished, directions);
    let on_front: std::collections::HashSet<u64> = summary.front.iter().copied().collect();
    let points: Vec<&FrozenTrial> = finished
        .iter()
        .filter(|t| caviar_core::pareto::losses(t, directions).is_some())
        .collect();
    let stride = points.len().div_ceil(max.max(1)).max(1);
    let shown: Vec<Value> = points
        .iter()
        .enumerate()
        .filter(|(i, t)| i % stride == 0 || on_front.contains(&t.number))
        .map(|(_, t)| {
            let mut row = vec![json!(t.number)];
            row.extend(t.values.iter().map(|v| json!(v)));
            Value::Array(row)
        })
        .collect();
    json!({
        "names": names,
        "directions": directions.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "points": shown,
        "total": points.len(),
        "front": summary.front,
        "hypervolume": summary.hypervolume,
        "reference": summary.reference,
    })
}

/// A trial as the best-k table and the trial page show it.
pub fn trial_row(t: &FrozenTrial) -> Value {
    json!({
        "number": t.number,
        "state": t.state.as_str(),
        "value": t.value.and_then(finite),
        "params": t.params,
        "steps": t.intermediate.len(),
        "duration_s": t.duration_secs(),
        "feasible": t.is_feasible(),
        "values": t.values,
    })
}

/// Everything stored about one trial.
pub fn trial_detail(t: &FrozenTrial) -> Value {
    json!({
        "number": t.number,
        "state": t.state.as_str(),
        "value": t.value.and_then(finite),
        "params": t.params,
        "distributions": t.distributions.iter().map(|(k, d)| (k.clone(), d.describe())).collect::<BTreeMap<_, _>>(),
        "intermediate": t.intermediate.iter().map(|(s, v)| json!([s, finite(*v)])).collect::<Vec<_>>(),
        "error": t.error,
        "feasible": t.is_feasible(),
        "constraints": t.constraints,
        "worker": t.worker,
        "started_ms": t.started_ms,
        "finished_ms": t.finished_ms,
        "duration_s": t.duration_secs(),
    })
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn scale_name(scale: Scale) -> &'static str {
    match scale {
        Scale::Linear => "linear",
        Scale::Log => "log",
        Scale::ReverseLog => "reverse_log",
    }
}

/// One parameter as the plots see it: the union of the ranges (and choices) its trials were
/// drawn from, since a resumed study may have widened them.
struct ParamMeta {
    name: String,
    dist: Distribution,
}

fn param_meta(finished: &[FrozenTrial]) -> Vec<ParamMeta> {
    let mut merged: BTreeMap<&str, Distribution> = BTreeMap::new();
    for t in finished {
        for (name, dist) in &t.distributions {
            let Some(known) = merged.get_mut(name.as_str()) else {
                merged.insert(name, dist.clone());
                continue;
            };
            match (known, dist) {
                (
                    Distribution::Float { low, high, .. },
                    Distribution::Float {
                        low: l, high: h, ..
                    },
                ) => {
                    *low = low.min(*l);
                    *high = high.max(*h);
                }
                (
                    Distribution::Int { low, high, .. },
                    Distribution::Int {
                        low: l, high: h, ..
                    },
                ) => {
                    *low = (*low).min(*l);
                    *high = (*high).max(*h);
                }
                (
                    Distribution::Categorical { choices },
                    Distribution::Categorical { choices: more },
                ) => {
                    for c in more {
                        if !choices.contains(c) {
                            choices.push(c.clone());
                        }
                    }
                }
                // Redefined as another kind: the first definition is drawn, the rest left out.
                _ => {}
            }
        }
    }
    merged
        .into_iter()
        .map(|(name, dist)| ParamMeta {
            name: name.to_string(),
            dist,
        })
        .collect()
}

fn param_json(p: &ParamMeta) -> Value {
    match &p.dist {
        Distribution::Float {
            low, high, scale, ..
        } => {
            json!({"name": p.name, "kind": "float", "scale": scale_name(*scale), "low": low, "high": high})
        }
        Distribution::Int {
            low, high, scale, ..
        } => {
            json!({"name": p.name, "kind": "int", "scale": scale_name(*scale), "low": low, "high": high})
        }
        Distribution::Categorical { choices } => json!({
            "name": p.name, "kind": "categorical", "scale": "linear",
            "choices": choices.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        }),
    }
}

/// The empirical distribution of the complete trials' values: `[value, share of trials at or
/// below it]`, sorted; past `max_points`, evenly spaced quantiles, the extremes kept.
fn edf(finished: &[FrozenTrial], max_points: usize) -> Value {
    let mut values: Vec<f64> = finished
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| t.value.filter(|v| v.is_finite()))
        .collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let at = |i: usize| json!([values[i], (i + 1) as f64 / n as f64]);
    let points: Vec<Value> = if n <= max_points.max(2) {
        (0..n).map(at).collect()
    } else {
        let last = max_points.max(2) - 1;
        (0..=last).map(|k| at(k * (n - 1) / last)).collect()
    };
    json!({ "points": points, "total": n })
}

/// Complete trials by number with their values and the best so far; past `max_points`, a
/// stride keeps an even sample, and every trial that improved the best is kept regardless.
fn history(finished: &[FrozenTrial], direction: Direction, max_points: usize) -> Value {
    let mut complete: Vec<(u64, f64, bool)> = finished
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| {
            Some((
                t.number,
                t.value.filter(|v| v.is_finite())?,
                t.is_feasible(),
            ))
        })
        .collect();
    complete.sort_by_key(|c| c.0);
    // Only feasible trials can be the best.
    let mut best: Vec<(u64, f64)> = Vec::new();
    for &(n, v, feasible) in &complete {
        if feasible
            && best
                .last()
                .is_none_or(|&(_, b)| direction.cmp_best_first(v, b).is_lt())
        {
            best.push((n, v));
        }
    }
    let stride = complete.len().div_ceil(max_points.max(1)).max(1);
    let improved: std::collections::HashSet<u64> = best.iter().map(|b| b.0).collect();
    let points: Vec<Value> = complete
        .iter()
        .enumerate()
        .filter(|(i, c)| i % stride == 0 || improved.contains(&c.0))
        .map(|(_, (n, v, _))| json!([n, v]))
        .collect();
    json!({
        "total": complete.len(),
        "shown": points.len(),
        "points": points,
        "best": best.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
    })
}

/// Up to `max` complete trials for the parallel-coordinates and slice plots: the best fifth of
/// the budget, then an even stride through the rest. Categorical values are sent as indices.
fn sample(
    finished: &[FrozenTrial],
    direction: Direction,
    params: &[ParamMeta],
    max: usize,
) -> Value {
    let ranked = best_trials(finished, direction, usize::MAX);
    let chosen: Vec<&FrozenTrial> = if ranked.len() <= max {
        ranked
    } else if max == 0 {
        Vec::new()
    } else {
        // The best fifth, then evenly spaced ranks down to the worst.
        let head = max / 5;
        let rest = &ranked[head..];
        let spread = max - head;
        ranked[..head]
            .iter()
            .copied()
            .chain((0..spread).map(|i| rest[i * (rest.len() - 1) / (spread - 1).max(1)]))
            .collect()
    };
    let rows: Vec<Value> = chosen
        .iter()
        .map(|t| {
            let mut row: Vec<Value> = params
                .iter()
                .map(|p| match (t.params.get(&p.name), &p.dist) {
                    (None, _) => Value::Null,
                    // Categorical values go as indices into the merged choices, numbers or not.
                    (Some(v), Distribution::Categorical { choices }) => {
                        json!(choices.iter().position(|c| c == v))
                    }
                    (Some(ParamValue::Int(i)), _) => json!(i),
                    (Some(ParamValue::Float(x)), _) => json!(finite(*x)),
                    (Some(_), _) => Value::Null,
                })
                .collect();
            row.push(json!(t.value.and_then(finite)));
            row.push(json!(t.number));
            Value::Array(row)
        })
        .collect();
    json!({
        "columns": params.iter().map(|p| p.name.as_str()).chain(["value", "number"]).collect::<Vec<_>>(),
        "rows": rows,
        "total": finished.iter().filter(|t| t.state == TrialState::Complete).count(),
    })
}

/// How many curves, and points in all, the all-curves chart gets: a browser draws this many
/// lines smoothly, and past it more lines are a blur anyway.
pub const ALL_CURVES_LINES: usize = 500;
/// Points over all lines of the all-curves chart.
pub const ALL_CURVES_POINTS: usize = 50_000;

/// The learning curves of every trial that reported, in any state: all running trials first,
/// then the best complete ones, then an even stride through the rest, `lines` at most, each
/// thinned so the chart holds about `points` points. `changes` gives, per trial number, the
/// steps at which its parameters were changed while it ran; `rungs` the steps at which the
/// study's pruner compares trials.
pub fn all_curves(
    finished: &[FrozenTrial],
    running: &[FrozenTrial],
    direction: Direction,
    changes: &BTreeMap<u64, Vec<u64>>,
    rungs: Option<Vec<u64>>,
    lines: usize,
    points: usize,
) -> Value {
    let with_curve = |t: &&FrozenTrial| !t.intermediate.is_empty();
    let all: Vec<&FrozenTrial> = running
        .iter()
        .filter(with_curve)
        .chain(finished.iter().filter(with_curve))
        .collect();
    let total = all.len();
    let mut chosen: Vec<&FrozenTrial> = Vec::with_capacity(lines.min(total));
    let mut taken = std::collections::HashSet::new();
    fn take<'a>(
        t: &'a FrozenTrial,
        chosen: &mut Vec<&'a FrozenTrial>,
        taken: &mut std::collections::HashSet<u64>,
        lines: usize,
    ) {
        if chosen.len() < lines && taken.insert(t.number) {
            chosen.push(t);
        }
    }
    for t in &all {
        if t.state == TrialState::Running {
            take(t, &mut chosen, &mut taken, lines);
        }
    }
    if total > lines {
        // The best fifth of the room, then a stride, so the picture keeps its shape.
        let best: Vec<&FrozenTrial> = best_trials(finished, direction, lines / 5);
        for t in best.into_iter().filter(with_curve) {
            take(t, &mut chosen, &mut taken, lines);
        }
        let room = lines.saturating_sub(chosen.len()).max(1);
        let stride = total.div_ceil(room).max(1);
        for t in all.iter().step_by(stride) {
            take(t, &mut chosen, &mut taken, lines);
        }
    } else {
        for t in &all {
            take(t, &mut chosen, &mut taken, lines);
        }
    }
    chosen.sort_by_key(|t| t.number);
    let per_curve = (points / chosen.len().max(1)).max(20);
    let curves: Vec<Value> = chosen
        .iter()
        .map(|t| {
            json!({
                "number": t.number,
                "state": t.state.as_str(),
                "points": thin(&t.intermediate, per_curve)
                    .iter()
                    .map(|(s, v)| json!([s, finite(*v)]))
                    .collect::<Vec<_>>(),
                "changes": changes.get(&t.number).cloned().unwrap_or_default(),
            })
        })
        .collect();
    json!({
        "total": total,
        "shown": curves.len(),
        "curves": curves,
        "rungs": rungs,
    })
}

/// Trials the timeline shows at most: the latest by number.
pub const TIMELINE_TRIALS: usize = 5000;

/// Each started trial as `[number, worker, start_ms, end_ms, state, reason]`, the latest `max`
/// by number; a running trial ends at `now_ms`. Workers are listed in order of first start.
pub fn timeline(trials: &[&FrozenTrial], now_ms: i64, max: usize) -> Value {
    let mut started: Vec<&FrozenTrial> = trials
        .iter()
        .copied()
        .filter(|t| t.started_ms.is_some())
        .collect();
    let total = started.len();
    started.sort_by_key(|t| t.number);
    let started = &started[started.len().saturating_sub(max)..];
    let mut by_start: Vec<&FrozenTrial> = started.to_vec();
    by_start.sort_by_key(|t| (t.started_ms, t.number));
    let mut workers: Vec<String> = Vec::new();
    for t in &by_start {
        let w = t.worker.clone().unwrap_or_else(|| "unknown".into());
        if !workers.contains(&w) {
            workers.push(w);
        }
    }
    let rows: Vec<Value> = started
        .iter()
        .map(|t| {
            let end = t
                .finished_ms
                .or((t.state == TrialState::Running).then_some(now_ms));
            let reason = t
                .error
                .as_deref()
                .map(|e| e.lines().next().unwrap_or("").to_string());
            json!([
                t.number,
                t.worker.as_deref().unwrap_or("unknown"),
                t.started_ms,
                end,
                t.state.as_str(),
                reason
            ])
        })
        .collect();
    json!({ "rows": rows, "workers": workers, "total": total, "now_ms": now_ms })
}

/// At most `max` points of a curve: an even stride, always with the last point.
fn thin(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let stride = points.len().div_ceil(max - 1);
    let mut out: Vec<(u64, f64)> = points.iter().step_by(stride).copied().collect();
    if out.last() != points.last() {
        out.push(*points.last().unwrap());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::trial::TrialId;

    fn trials(n: u64) -> Vec<FrozenTrial> {
        let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        let act = Distribution::categorical(["relu", "tanh"]).unwrap();
        (0..n)
            .map(|i| {
                let x = (i as f64 * 0.618).fract();
                let mut params = BTreeMap::new();
                params.insert("lr".to_string(), lr.from_unit(x));
                params.insert("act".to_string(), act.from_unit((i % 2) as f64 * 0.9));
                let mut dists = BTreeMap::new();
                dists.insert("lr".to_string(), lr.clone());
                dists.insert("act".to_string(), act.clone());
                FrozenTrial {
                    id: TrialId(i as i64),
                    number: i,
                    state: TrialState::Complete,
                    params,
                    distributions: dists,
                    value: Some((x - 0.3).powi(2)),
                    intermediate: (1..=500).map(|s| (s, x / s as f64)).collect(),
                    error: None,
                    worker: None,
                    started_ms: Some(1000 + i as i64),
                    finished_ms: Some(2000 + i as i64),
                    constraints: Vec::new(),
                    values: Vec::new(),
                }
            })
            .collect()
    }

    fn record() -> StudyRecord {
        StudyRecord {
            id: caviar_core::trial::StudyId(1),
            name: "s".into(),
            direction: Direction::Minimize,
            metric: Some("loss".into()),
            spec: None,
            parent: None,
            created_ms: 5,
        }
    }

    #[test]
    fn a_large_study_is_downsampled_and_keeps_every_improvement() {
        let all = trials(100_000);
        let counts = TrialCounts {
            complete: 100_000,
            ..Default::default()
        };
        let view = study_view(&record(), &counts, &all, &ViewLimits::default());
        let history = &view["history"];
        assert_eq!(history["total"], 100_000);
        let shown = history["points"].as_array().unwrap();
        assert!(shown.len() <= 2000 + history["best"].as_array().unwrap().len());
        // Every improvement of the best so far is among the points shown.
        for b in history["best"].as_array().unwrap() {
            assert!(shown.contains(b), "{b}");
        }
        let best = history["best"].as_array().unwrap();
        assert!(best.windows(2).all(|w| w[1][1].as_f64() < w[0][1].as_f64()));
        assert_eq!(view["sample"]["rows"].as_array().unwrap().len(), 1000);
        assert_eq!(view["curves"].as_array().unwrap().len(), 10);
        let curve = view["curves"][0]["points"].as_array().unwrap();
        assert!(curve.len() <= 201 && curve.last().unwrap()[0] == 500);
        assert_eq!(view["best"][0]["number"], view["curves"][0]["number"]);
        assert_eq!(view["importance"]["params"][0]["name"], "lr");
        let bytes = serde_json::to_vec(&view).unwrap().len();
        assert!(bytes < 1_000_000, "{bytes} bytes");
        assert_eq!(view["study"]["last_activity_ms"], 2000 + 99_999);
    }

    #[test]
    fn the_sample_reaches_the_worst_trials_and_ranges_cover_every_definition() {
        let mut all = trials(1500);
        // A resumed study widened lr and added a numeric choice.
        let wide = Distribution::float(1e-6, 1.0, Scale::Log).unwrap();
        let sizes = Distribution::categorical([16i64, 32]).unwrap();
        let more = Distribution::categorical([16i64, 32, 64]).unwrap();
        for (i, t) in all.iter_mut().enumerate() {
            if i >= 1000 {
                t.distributions.insert("lr".into(), wide.clone());
                t.distributions.insert("batch".into(), more.clone());
                t.params.insert("batch".into(), ParamValue::Int(64));
            } else {
                t.distributions.insert("batch".into(), sizes.clone());
                t.params.insert("batch".into(), ParamValue::Int(32));
            }
        }
        let view = study_view(
            &record(),
            &TrialCounts::default(),
            &all,
            &ViewLimits::default(),
        );
        let rows = view["sample"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1000);
        let worst = all
            .iter()
            .map(|t| t.value.unwrap())
            .fold(f64::MIN, f64::max);
        let value_col = view["sample"]["columns"].as_array().unwrap().len() - 2;
        assert!(rows.iter().any(|r| r[value_col].as_f64() == Some(worst)));
        let params = view["params"].as_array().unwrap();
        let lr = params.iter().find(|p| p["name"] == "lr").unwrap();
        assert_eq!(lr["low"], 1e-6);
        let batch = params.iter().find(|p| p["name"] == "batch").unwrap();
        assert_eq!(batch["choices"], json!(["16", "32", "64"]));
        let col = view["sample"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == "batch")
            .unwrap();
        assert!(
            rows.iter().all(|r| r[col] == 1 || r[col] == 2),
            "indices, not values"
        );
        let none = study_view(
            &record(),
            &TrialCounts::default(),
            &all,
            &ViewLimits {
                sample: 0,
                ..Default::default()
            },
        );
        assert!(none["sample"]["rows"].as_array().unwrap().is_empty());
    }

    #[test]
    fn categorical_values_are_sent_as_indices_with_their_labels() {
        let view = study_view(
            &record(),
            &TrialCounts::default(),
            &trials(30),
            &ViewLimits::default(),
        );
        let act = view["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "act")
            .unwrap();
        assert_eq!(act["choices"], json!(["relu", "tanh"]));
        let column = view["sample"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == "act")
            .unwrap();
        for row in view["sample"]["rows"].as_array().unwrap() {
            assert!(row[column] == 0 || row[column] == 1, "{row}");
        }
        // Too few trials for importance: the reason is sent instead.
        let small = study_view(
            &record(),
            &TrialCounts::default(),
            &trials(5),
            &ViewLimits::default(),
        );
        assert!(small["importance"]["error"]
            .as_str()
            .unwrap()
            .ends_with("the study has 5: run 15 more"));
    }
}
