//! `caviar kurobako-solver`: any caviar sampler as an external solver of the kurobako benchmark
//! harness (JSON lines over stdin/stdout; see shared/kurobako.md). kurobako minimises; problems
//! arrive as CREATE_SOLVER_CAST, trials as ASK_CALL / TELL_CALL.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use caviar_core::prelude::*;
use serde_json::{json, Value};

use crate::BadInput;

/// Samplers the adapter offers.
pub const SOLVER_SAMPLERS: &[&str] = &["random", "sobol", "zoom", "tpe", "tpe-mv", "gp"];

struct Solver {
    study: Study,
    params: Vec<(String, Distribution, bool)>,
    last_step: u64,
    running: HashMap<u64, Trial>,
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

fn create(sampler: &str, msg: &Value) -> Result<Solver, Failure> {
    let problem = &msg["problem"];
    if problem["values_domain"].as_array().map_or(0, Vec::len) != 1 {
        return Err(fail(
            "INCAPABLE",
            "only single-objective problems are supported",
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
        if var.get("constraint").is_some_and(|c| !c.is_null()) {
            return Err(fail(
                "INCAPABLE",
                "conditional parameters are not supported",
            ));
        }
        let (dist, categorical) = distribution(var)?;
        let name = format!("p{i}");
        space
            .add(&name, dist.clone())
            .map_err(|e| fail("INVALID_INPUT", e.to_string()))?;
        params.push((name, dist, categorical));
    }
    let last_step = match &problem["steps"] {
        Value::Number(n) => n.as_u64().unwrap_or(1),
        Value::Array(steps) => steps.last().and_then(Value::as_u64).unwrap_or(1),
        _ => 1,
    };
    let sampler = crate::run::default_sampler(sampler, &space, seed)
        .ok_or_else(|| fail("INVALID_INPUT", format!("unknown sampler {sampler}")))?;
    let study = Study::builder("kurobako")
        .shared_sampler(sampler)
        .build()
        .map_err(|e| fail("BUG", e.to_string()))?;
    Ok(Solver {
        study,
        params,
        last_step,
        running: HashMap::new(),
    })
}

fn ask(solver: &mut Solver, next_id: u64) -> Result<Value, Failure> {
    let mut trial = solver
        .study
        .ask()
        .map_err(|e| fail("OTHER", e.to_string()))?;
    let mut values = Vec::with_capacity(solver.params.len());
    for (name, dist, _) in &solver.params {
        let v = trial
            .suggest(name, dist.clone())
            .map_err(|e| fail("BUG", e.to_string()))?;
        values.push(v.as_f64().unwrap_or(f64::NAN));
    }
    solver.running.insert(next_id, trial);
    Ok(json!({
        "type": "ASK_REPLY",
        "trial": {"id": next_id, "params": values, "next_step": solver.last_step},
        "next_trial_id": next_id + 1,
    }))
}

fn tell(solver: &mut Solver, msg: &Value) -> Result<Value, Failure> {
    let id = msg["trial"]["id"]
        .as_u64()
        .ok_or_else(|| fail("INVALID_INPUT", "TELL_CALL without trial.id"))?;
    let trial = solver
        .running
        .remove(&id)
        .ok_or_else(|| fail("INVALID_INPUT", format!("TELL_CALL for unknown trial {id}")))?;
    let outcome = match msg["trial"]["values"]
        .as_array()
        .and_then(|v| v.first())
        .and_then(Value::as_f64)
    {
        Some(v) => Outcome::Complete(v),
        None => Outcome::Failed("the problem could not evaluate these parameters".into()),
    };
    solver
        .study
        .tell(trial, outcome)
        .map_err(|e| fail("BUG", e.to_string()))?;
    Ok(json!({"type": "TELL_REPLY"}))
}

/// Serves the protocol on `input`/`output` until end of input.
pub fn serve(sampler: &str, input: impl BufRead, mut output: impl Write) -> Result<()> {
    if !SOLVER_SAMPLERS.contains(&sampler) {
        return Err(BadInput(format!(
            "--sampler {sampler} is not available to kurobako; use one of {}",
            SOLVER_SAMPLERS.join(", ")
        ))
        .into());
    }
    let spec = json!({
        "type": "SOLVER_SPEC_CAST",
        "spec": {
            "name": format!("caviar-{sampler}"),
            "attrs": {"version": env!("CARGO_PKG_VERSION"), "github": "caviar"},
            "capabilities": ["UNIFORM_CONTINUOUS", "UNIFORM_DISCRETE", "LOG_UNIFORM_CONTINUOUS",
                             "LOG_UNIFORM_DISCRETE", "CATEGORICAL", "CONCURRENT"],
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
                match create(sampler, &msg) {
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
        serve(sampler, input.as_bytes(), &mut out).unwrap();
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

    #[test]
    fn unsupported_problems_are_refused_with_incapable() {
        let conditional = TRANSCRIPT.lines().next().unwrap().replace(
            r#""distribution":"UNIFORM"},{"name":"lr""#,
            r#""distribution":"UNIFORM","constraint":{"lua_script":"p0 > 1"}},{"name":"lr""#,
        );
        let input = format!(
            "{conditional}\n{{\"type\":\"ASK_CALL\",\"solver_id\":0,\"next_trial_id\":0}}\n"
        );
        let out = run("random", &input);
        assert_eq!(out[1]["type"], "ERROR_REPLY");
        assert_eq!(out[1]["kind"], "INCAPABLE");
    }
}
