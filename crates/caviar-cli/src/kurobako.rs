//! `caviar kurobako-solver`: any caviar sampler as an external solver of the kurobako benchmark
//! harness (JSON lines over stdin/stdout; see shared/kurobako.md). kurobako minimises; problems
//! arrive as CREATE_SOLVER_CAST, trials as ASK_CALL / TELL_CALL.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use caviar_core::prelude::*;
use serde_json::{json, Value};

use crate::lua_expr::{self, LuaValue};
use crate::BadInput;

/// Samplers the adapter offers.
pub const SOLVER_SAMPLERS: &[&str] = &[
    "auto", "random", "sobol", "zoom", "tpe", "tpe-mv", "gp", "nsga2",
];
/// Pruners the adapter offers (with their defaults; ASHA and Hyperband span the problem's steps).
pub const SOLVER_PRUNERS: &[&str] = &["none", "median", "asha", "hyperband"];

/// One of the problem's parameters.
struct Param {
    /// caviar's name for it (`p0`, `p1`, ...).
    name: String,
    dist: Distribution,
    /// kurobako's name, by which constraints read it.
    var: String,
    /// A categorical parameter's choices (constraints read the choice, not its index).
    choices: Option<Vec<String>>,
    /// The Lua expression that must hold, over the parameters before it, for it to exist.
    constraint: Option<String>,
}

struct Solver {
    study: Study,
    params: Vec<Param>,
    /// The problem's evaluable steps, ascending.
    steps: Vec<u64>,
    /// Evaluate step by step (a pruner judges between steps) rather than straight to the end.
    stepwise: bool,
    /// Trials between steps or evaluating, by kurobako trial id, with their params as sent.
    running: HashMap<u64, (Trial, Vec<f64>)>,
    /// Paused trials the pruner let go on, to resume before starting new ones.
    waiting: VecDeque<u64>,
    /// Trials the pruner stopped, to abandon (`next_step: null`) at the next asks.
    abandoned: VecDeque<(u64, Vec<f64>)>,
    /// How many values the problem gives (several: a multi-objective problem, all minimised).
    objectives: usize,
}

/// Why a message could not be served: becomes an ERROR_REPLY.
struct Failure {
    kind: &'static str,
    message: String,
}

fn fail(kind: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
    }
}

fn distribution(var: &Value) -> Result<(Distribution, bool), Failure> {
    let range = &var["range"];
    let log = var["distribution"].as_str() == Some("LOG_UNIFORM");
    let scale = if log { Scale::Log } else { Scale::Linear };
    let name = var["name"].as_str().unwrap_or("?");
    let bad = |why: String| fail("INCAPABLE", format!("variable `{name}`: {why}"));
    match range["type"].as_str() {
        Some("CONTINUOUS") => {
            let (Some(low), Some(high)) = (range["low"].as_f64(), range["high"].as_f64()) else {
                return Err(bad("unbounded ranges are not supported".into()));
            };
            Distribution::float(low, high, scale)
                .map(|d| (d, false))
                .map_err(bad)
        }
        Some("DISCRETE") => {
            let (Some(low), Some(high)) = (range["low"].as_i64(), range["high"].as_i64()) else {
                return Err(bad("unbounded ranges are not supported".into()));
            };
            // kurobako's upper bound is exclusive.
            Distribution::int(low, high - 1, scale)
                .map(|d| (d, false))
                .map_err(bad)
        }
        Some("CATEGORICAL") => {
            let n = range["choices"].as_array().map_or(0, Vec::len) as i64;
            let d = Distribution::Categorical {
                choices: (0..n).map(ParamValue::Int).collect(),
            };
            d.validate().map(|_| (d, true)).map_err(bad)
        }
        other => Err(bad(format!("range type {other:?} is not supported"))),
    }
}

fn create(sampler: &str, pruner: &str, msg: &Value) -> Result<Solver, Failure> {
    let problem = &msg["problem"];
    let objectives = problem["values_domain"].as_array().map_or(0, Vec::len);
    if objectives == 0 {
        return Err(fail("INVALID_INPUT", "the problem has no values_domain"));
    }
    if objectives > 1 && pruner != "none" {
        return Err(fail(
            "INCAPABLE",
            format!("a problem with {objectives} objectives is not pruned; use --pruner none"),
        ));
    }
    let seed = msg["random_seed"].as_u64().unwrap_or(0);
    let mut params = Vec::new();
    let mut space = SearchSpace::new();
    for (i, var) in problem["params_domain"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let constraint = match var.get("constraint") {
            None | Some(Value::Null) => None,
            Some(c) => Some(
                c["lua_script"]
                    .as_str()
                    .ok_or_else(|| fail("INVALID_INPUT", "a constraint without lua_script"))?
                    .to_string(),
            ),
        };
        let (dist, categorical) = distribution(var)?;
        let name = format!("p{i}");
        space
            .add(&name, dist.clone())
            .map_err(|e| fail("INVALID_INPUT", e.to_string()))?;
        let choices = categorical.then(|| {
            var["range"]["choices"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().map_or_else(|| c.to_string(), String::from))
                .collect()
        });
        params.push(Param {
            name,
            dist,
            var: var["name"].as_str().unwrap_or_default().to_string(),
            choices,
            constraint,
        });
    }
    let steps: Vec<u64> = match &problem["steps"] {
        Value::Number(n) => (1..=n.as_u64().unwrap_or(1).max(1)).collect(),
        Value::Array(steps) => steps.iter().filter_map(Value::as_u64).collect(),
        _ => vec![1],
    };
    let last_step = steps.last().copied().unwrap_or(1);
    let sampler = caviar_engine::SamplerSpec {
        seed,
        ..caviar_engine::SamplerSpec::of_kind(sampler)
    }
    .build(&space, &Default::default())
    .map_err(|e| fail("INVALID_INPUT", format!("sampler {sampler}: {e}")))?;
    let mut settings = caviar_engine::PrunerSpec::of_kind(pruner);
    if matches!(pruner, "asha" | "hyperband") {
        settings.min_resource = Some(steps.first().copied().unwrap_or(1));
        settings.max_resource = Some(last_step);
    }
    let pruner = settings
        .build()
        .map_err(|e| fail("INVALID_INPUT", e.message))?;
    // kurobako minimises every value.
    let study = Study::builder("kurobako")
        .directions(vec![caviar_core::trial::Direction::Minimize; objectives])
        .shared_sampler(sampler)
        .shared_pruner(pruner.clone())
        .build()
        .map_err(|e| fail("INCAPABLE", e.to_string()))?;
    Ok(Solver {
        study,
        params,
        stepwise: pruner.is_active() && steps.len() > 1,
        steps,
        running: HashMap::new(),
        waiting: VecDeque::new(),
        abandoned: VecDeque::new(),
        objectives,
    })
}

impl Solver {
    fn last_step(&self) -> u64 {
        self.steps.last().copied().unwrap_or(1)
    }

    /// The step after `current` (the last step when evaluating straight through).
    fn next_step(&self, current: Option<u64>) -> u64 {
        if !self.stepwise {
            return self.last_step();
        }
        let after = current.map_or(0, |c| self.steps.partition_point(|&s| s <= c));
        self.steps.get(after).copied().unwrap_or(self.last_step())
    }
}

fn ask(solver: &mut Solver, next_id: u64) -> Result<Value, Failure> {
    // A trial the pruner stopped is abandoned first, then a paused one resumed; only then does
    // a new one start (kurobako keeps its trial counter when an existing id comes back).
    if let Some((id, params)) = solver.abandoned.pop_front() {
        return Ok(json!({
            "type": "ASK_REPLY",
            "trial": {"id": id, "params": params, "next_step": null},
            "next_trial_id": next_id,
        }));
    }
    if let Some(id) = solver.waiting.pop_front() {
        let (trial, params) = &solver.running[&id];
        let current = trial.reported().last().map(|&(step, _)| step);
        let next_step = solver.next_step(current);
        return Ok(json!({
            "type": "ASK_REPLY",
            "trial": {"id": id, "params": params.clone(), "next_step": next_step},
            "next_trial_id": next_id,
        }));
    }
    let mut trial = solver
        .study
        .ask()
        .map_err(|e| fail("OTHER", e.to_string()))?;
    let mut values = Vec::with_capacity(solver.params.len());
    // What constraints read: the parameters drawn so far, by kurobako's names.
    let mut vars = HashMap::new();
    for p in &solver.params {
        if let Some(script) = &p.constraint {
            let exists = lua_expr::holds(script, &vars).map_err(|e| {
                fail(
                    "INVALID_INPUT",
                    format!("constraint of `{}` ({script}): {e}", p.var),
                )
            })?;
            if !exists {
                // Absent from this trial: sent as null, never suggested.
                values.push(f64::NAN);
                continue;
            }
        }
        let v = trial
            .suggest(&p.name, p.dist.clone())
            .map_err(|e| fail("BUG", e.to_string()))?;
        let x = v.as_f64().unwrap_or(f64::NAN);
        let seen = match &p.choices {
            Some(choices) => LuaValue::Str(choices.get(x as usize).cloned().unwrap_or_default()),
            None => LuaValue::Number(x),
        };
        vars.insert(p.var.clone(), seen);
        values.push(x);
    }
    let next_step = solver.next_step(None);
    solver.running.insert(next_id, (trial, values.clone()));
    Ok(json!({
        "type": "ASK_REPLY",
        "trial": {"id": next_id, "params": values, "next_step": next_step},
        "next_trial_id": next_id + 1,
    }))
}

fn tell(solver: &mut Solver, msg: &Value) -> Result<Value, Failure> {
    let id = msg["trial"]["id"]
        .as_u64()
        .ok_or_else(|| fail("INVALID_INPUT", "TELL_CALL without trial.id"))?;
    let (mut trial, params) = solver
        .running
        .remove(&id)
        .ok_or_else(|| fail("INVALID_INPUT", format!("TELL_CALL for unknown trial {id}")))?;
    let values: Vec<f64> = msg["trial"]["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if solver.objectives > 1 {
        let outcome = if values.len() == solver.objectives {
            Outcome::Values(values)
        } else {
            Outcome::Failed("the problem could not evaluate these parameters".into())
        };
        solver
            .study
            .tell(trial, outcome)
            .map_err(|e| fail("BUG", e.to_string()))?;
        return Ok(json!({"type": "TELL_REPLY"}));
    }
    let value = values.first().copied();
    let step = msg["trial"]["current_step"]
        .as_u64()
        .unwrap_or(solver.last_step());
    let outcome = match value {
        Some(v) if step < solver.last_step() => {
            trial
                .report(step, v)
                .map_err(|e| fail("BUG", e.to_string()))?;
            let prune = trial
                .should_prune()
                .map_err(|e| fail("BUG", e.to_string()))?;
            if !prune {
                solver.running.insert(id, (trial, params));
                solver.waiting.push_back(id);
                return Ok(json!({"type": "TELL_REPLY"}));
            }
            solver.abandoned.push_back((id, params));
            Outcome::Pruned
        }
        Some(v) => {
            if solver.stepwise {
                // The curve's last point, for pruners judging other trials.
                trial
                    .report(step, v)
                    .map_err(|e| fail("BUG", e.to_string()))?;
            }
            Outcome::Complete(v)
        }
        None => Outcome::Failed("the problem could not evaluate these parameters".into()),
    };
    solver
        .study
        .tell(trial, outcome)
        .map_err(|e| fail("BUG", e.to_string()))?;
    Ok(json!({"type": "TELL_REPLY"}))
}

/// Serves the protocol on `input`/`output` until end of input.
pub fn serve(
    sampler: &str,
    pruner: &str,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<()> {
    if !SOLVER_SAMPLERS.contains(&sampler) {
        return Err(BadInput(format!(
            "--sampler {sampler} is not available to kurobako; use one of {}",
            SOLVER_SAMPLERS.join(", ")
        ))
        .into());
    }
    if !SOLVER_PRUNERS.contains(&pruner) {
        return Err(BadInput(format!(
            "--pruner {pruner} is not available to kurobako; use one of {}",
            SOLVER_PRUNERS.join(", ")
        ))
        .into());
    }
    let spec = json!({
        "type": "SOLVER_SPEC_CAST",
        "spec": {
            "name": if pruner == "none" { format!("caviar-{sampler}") } else { format!("caviar-{sampler}-{pruner}") },
            "attrs": {"version": env!("CARGO_PKG_VERSION"), "github": "caviar"},
            "capabilities": ["UNIFORM_CONTINUOUS", "UNIFORM_DISCRETE", "LOG_UNIFORM_CONTINUOUS",
                             "LOG_UNIFORM_DISCRETE", "CATEGORICAL", "CONDITIONAL", "CONCURRENT",
                             "MULTI_OBJECTIVE"],
        }
    });
    writeln!(output, "{spec}")?;
    output.flush()?;
    let mut solvers: HashMap<u64, Solver> = HashMap::new();
    for line in input.lines() {
        let line = line.context("reading from kurobako")?;
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let reply = json!({"type": "ERROR_REPLY", "kind": "INVALID_INPUT", "message": format!("not JSON: {e}")});
                writeln!(output, "{reply}")?;
                output.flush()?;
                continue;
            }
        };
        let solver_id = msg["solver_id"].as_u64().unwrap_or(0);
        let reply: Option<Result<Value, Failure>> = match msg["type"].as_str() {
            Some("CREATE_SOLVER_CAST") => {
                match create(sampler, pruner, &msg) {
                    Ok(s) => {
                        solvers.insert(solver_id, s);
                        None
                    }
                    // A cast has no reply; the next call for this solver reports the problem.
                    Err(f) => {
                        eprintln!(
                            "caviar kurobako-solver: cannot create solver {solver_id}: {}",
                            f.message
                        );
                        None
                    }
                }
            }
            Some("DROP_SOLVER_CAST") => {
                solvers.remove(&solver_id);
                None
            }
            Some("ASK_CALL") => Some(match solvers.get_mut(&solver_id) {
                Some(s) => ask(s, msg["next_trial_id"].as_u64().unwrap_or(0)),
                None => Err(fail(
                    "INCAPABLE",
                    format!("no solver {solver_id} (its problem is not supported)"),
                )),
            }),
            Some("TELL_CALL") => Some(match solvers.get_mut(&solver_id) {
                Some(s) => tell(s, &msg),
                None => Err(fail("INVALID_INPUT", format!("no solver {solver_id}"))),
            }),
            other => Some(Err(fail(
                "INVALID_INPUT",
                format!("unknown message type {other:?}"),
            ))),
        };
        if let Some(reply) = reply {
            let value = reply.unwrap_or_else(
                |f| json!({"type": "ERROR_REPLY", "kind": f.kind, "message": f.message}),
            );
            writeln!(output, "{value}")?;
            output.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sampler: &str, input: &str) -> Vec<Value> {
        let mut out = Vec::new();
        serve(sampler, "none", input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A transcript in the shape kurobako sends (see shared/kurobako.md).
    const TRANSCRIPT: &str = r#"{"type":"CREATE_SOLVER_CAST","solver_id":0,"random_seed":6113276232711064477,"problem":{"name":"sigopt/evalset/Ackley(dim=2)","attrs":{},"params_domain":[{"name":"p0","range":{"type":"CONTINUOUS","low":-10.0,"high":30.0},"distribution":"UNIFORM"},{"name":"lr","range":{"type":"CONTINUOUS","low":0.0001,"high":1.0},"distribution":"LOG_UNIFORM"},{"name":"n","range":{"type":"DISCRETE","low":1,"high":4},"distribution":"UNIFORM"},{"name":"c","range":{"type":"CATEGORICAL","choices":["a","b","c"]},"distribution":"UNIFORM"}],"values_domain":[{"name":"Objective Value","range":{"type":"CONTINUOUS"},"distribution":"UNIFORM"}],"steps":1}}
{"type":"ASK_CALL","solver_id":0,"next_trial_id":0}
{"type":"TELL_CALL","solver_id":0,"trial":{"id":0,"values":[19.8],"current_step":1}}
{"type":"ASK_CALL","solver_id":0,"next_trial_id":1}
{"type":"TELL_CALL","solver_id":0,"trial":{"id":1,"values":[],"current_step":1}}
{"type":"DROP_SOLVER_CAST","solver_id":0}
{"type":"ASK_CALL","solver_id":0,"next_trial_id":2}
"#;

    #[test]
    fn a_kurobako_session_is_served() {
        let out = run("tpe", TRANSCRIPT);
        assert_eq!(out[0]["type"], "SOLVER_SPEC_CAST");
        assert_eq!(out[0]["spec"]["name"], "caviar-tpe");
        assert_eq!(out[1]["type"], "ASK_REPLY");
        assert_eq!(out[1]["trial"]["id"], 0);
        assert_eq!(out[1]["next_trial_id"], 1);
        assert_eq!(out[1]["trial"]["next_step"], 1);
        let p = out[1]["trial"]["params"].as_array().unwrap();
        assert_eq!(p.len(), 4);
        let x = p[0].as_f64().unwrap();
        assert!((-10.0..30.0).contains(&x));
        let lr = p[1].as_f64().unwrap();
        assert!((1e-4..=1.0).contains(&lr));
        let n = p[2].as_f64().unwrap();
        assert!(
            n.fract() == 0.0 && (1.0..4.0).contains(&n),
            "discrete high is exclusive: {n}"
        );
        let c = p[3].as_f64().unwrap();
        assert!(
            [0.0, 1.0, 2.0].contains(&c),
            "categorical values are indices"
        );
        assert_eq!(out[2]["type"], "TELL_REPLY");
        assert_eq!(out[3]["trial"]["id"], 1);
        assert_eq!(
            out[4]["type"], "TELL_REPLY",
            "an unevaluable trial is told as failed"
        );
        assert_eq!(
            out[5]["type"], "ERROR_REPLY",
            "a dropped solver cannot be asked"
        );
        assert_eq!(out.len(), 6);
        // Seeds reproduce.
        assert_eq!(run("tpe", TRANSCRIPT)[1], out[1]);
    }

    /// Plays kurobako on a 27-step problem, value f(p0) + 1/step with f = (p0 - 0.3)², until
    /// `budget` steps are consumed. Returns (trials started, abandoned, completed, best value).
    fn simulate(sampler: &str, pruner: &str, budget: u64) -> (u64, u64, u64, f64) {
        let create_msg: Value = serde_json::from_str(r#"{"type":"CREATE_SOLVER_CAST","solver_id":0,"random_seed":7,"problem":{"name":"curve","attrs":{},"params_domain":[{"name":"p0","range":{"type":"CONTINUOUS","low":0.0,"high":1.0},"distribution":"UNIFORM"}],"values_domain":[{"name":"v","range":{"type":"CONTINUOUS"},"distribution":"UNIFORM"}],"steps":27}}"#).unwrap();
        let mut solver = create(sampler, pruner, &create_msg).ok().unwrap();
        let (mut next_id, mut consumed) = (0u64, 0u64);
        let mut at: HashMap<u64, (f64, u64)> = HashMap::new();
        let (mut abandoned, mut completed, mut best) = (0, 0, f64::INFINITY);
        while consumed < budget {
            let reply = ask(&mut solver, next_id).ok().unwrap();
            assert!(reply["next_trial_id"].as_u64().unwrap() >= next_id);
            next_id = reply["next_trial_id"].as_u64().unwrap();
            let id = reply["trial"]["id"].as_u64().unwrap();
            assert!(id < next_id);
            let p0 = reply["trial"]["params"][0].as_f64().unwrap();
            let Some(step) = reply["trial"]["next_step"].as_u64() else {
                let (sent, current) = at[&id];
                assert_eq!(sent, p0, "an abandoned trial keeps its params");
                assert!(current < 27, "only paused trials are abandoned");
                abandoned += 1;
                at.remove(&id);
                continue;
            };
            let start = match at.get(&id) {
                Some(&(sent, current)) => {
                    assert_eq!(sent, p0, "a resumed trial keeps its params");
                    current
                }
                None => 0,
            };
            assert!(step > start && step <= 27);
            consumed += step - start;
            let value = (p0 - 0.3).powi(2) + 1.0 / step as f64;
            at.insert(id, (p0, step));
            if step == 27 {
                completed += 1;
                best = best.min(value);
            }
            let tell_msg = json!({"type": "TELL_CALL", "solver_id": 0, "trial": {"id": id, "values": [value], "current_step": step}});
            assert_eq!(
                tell(&mut solver, &tell_msg).ok().unwrap()["type"],
                "TELL_REPLY"
            );
        }
        (next_id, abandoned, completed, best)
    }

    #[test]
    fn multi_step_problems_run_step_by_step_and_pruned_trials_are_abandoned() {
        let budget = 27 * 20;
        let (started, abandoned, completed, _) = simulate("random", "none", budget);
        assert_eq!(
            (started, abandoned, completed),
            (20, 0, 20),
            "no pruner: straight to the end"
        );
        let (started, abandoned, completed, best) = simulate("tpe", "asha", budget);
        assert!(
            started > 60,
            "ASHA frees budget for many more trials: {started}"
        );
        assert!(
            abandoned > started / 2,
            "{abandoned} of {started} abandoned"
        );
        assert!(
            completed >= 1 && best < 0.06,
            "{completed} complete, best {best}"
        );
        let (started_m, abandoned_m, ..) = simulate("tpe", "median", budget);
        assert!(
            started_m > 20 && abandoned_m > 0,
            "{started_m} {abandoned_m}"
        );
    }

    #[test]
    fn two_objective_problems_run_and_one_value_samplers_are_incapable() {
        let two_objectives = TRANSCRIPT.lines().next().unwrap().replace(
            r#""values_domain":[{"#,
            r#""values_domain":[{"name":"second","range":{"type":"CONTINUOUS"},"distribution":"UNIFORM"},{"#,
        );
        let mut input = format!("{two_objectives}\n");
        for id in 0..60 {
            input += &format!(
                "{{\"type\":\"ASK_CALL\",\"solver_id\":0,\"next_trial_id\":{id}}}\n\
                 {{\"type\":\"TELL_CALL\",\"solver_id\":0,\"trial\":{{\"id\":{id},\"values\":[{}, {}],\"current_step\":1}}}}\n",
                id % 7,
                7 - id % 7
            );
        }
        for sampler in ["auto", "random", "tpe", "nsga2"] {
            let out = run(sampler, &input);
            assert_eq!(out.len(), 1 + 120, "{sampler}");
            assert!(
                out[1..].iter().all(|m| m["type"] != "ERROR_REPLY"),
                "{sampler}: {out:?}"
            );
        }
        let out = run("gp", &input);
        assert_eq!(out[1]["type"], "ERROR_REPLY");
        assert_eq!(out[1]["kind"], "INCAPABLE");
    }

    #[test]
    fn conditional_parameters_are_null_exactly_when_their_constraint_fails() {
        // p0 exists when c is "b"; lr when p0 exists and exceeds 10 (nil otherwise: `p0 and`).
        let create = TRANSCRIPT
            .lines()
            .next()
            .unwrap()
            .replace(
                r#"{"name":"p0","range":{"type":"CONTINUOUS","low":-10.0,"high":30.0},"distribution":"UNIFORM"}"#,
                "",
            )
            .replace(r#""params_domain":[,"#, r#""params_domain":["#)
            .replace(
                r#"{"name":"c","range":{"type":"CATEGORICAL","choices":["a","b","c"]},"distribution":"UNIFORM"}"#,
                r#"{"name":"c","range":{"type":"CATEGORICAL","choices":["a","b","c"]},"distribution":"UNIFORM"},{"name":"p0","range":{"type":"CONTINUOUS","low":-10.0,"high":30.0},"distribution":"UNIFORM","constraint":{"lua_script":"c == \"b\""}},{"name":"late","range":{"type":"CONTINUOUS","low":0.0,"high":1.0},"distribution":"UNIFORM","constraint":{"lua_script":"p0 ~= nil and p0 > 10"}}"#,
            );
        for sampler in SOLVER_SAMPLERS {
            let mut input = format!("{create}\n");
            for id in 0..40 {
                input += &format!(
                    "{{\"type\":\"ASK_CALL\",\"solver_id\":0,\"next_trial_id\":{id}}}\n\
                     {{\"type\":\"TELL_CALL\",\"solver_id\":0,\"trial\":{{\"id\":{id},\"values\":[{}],\"current_step\":1}}}}\n",
                    id % 7
                );
            }
            let out = run(sampler, &input);
            let asks: Vec<&Value> = out.iter().filter(|m| m["type"] == "ASK_REPLY").collect();
            assert_eq!(asks.len(), 40, "{sampler}: {out:?}");
            let mut branches = std::collections::BTreeSet::new();
            for ask in asks {
                // lr, n, c, p0, late.
                let params = ask["trial"]["params"].as_array().unwrap();
                let c = params[2].as_f64().unwrap();
                assert_eq!(params[3].is_null(), c != 1.0, "{sampler}: {params:?}");
                let late = params[3].as_f64().is_some_and(|p0| p0 > 10.0);
                assert_eq!(params[4].is_null(), !late, "{sampler}: {params:?}");
                branches.insert((c as i64, late));
            }
            assert!(branches.len() >= 3, "{sampler}: {branches:?}");
        }
    }
}
