//! caviar as a solver inside the real kurobako binary (skipped, with a reason, when kurobako
//! is not on PATH; `.ci/run` installs it).

use std::process::{Command, Stdio};

use serde_json::Value;

fn kurobako(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kurobako")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kurobako runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kurobako {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// kurobako's spec of the Python problem `script` in `benches/`, or `None` (the reason
/// printed) when kurobako or python3 is missing.
fn python_problem(script: &str, kind: &str) -> Option<String> {
    if Command::new("kurobako").arg("--version").output().is_err() {
        println!("skipped: kurobako is not on PATH (cargo install kurobako --version 0.2.10)");
        return None;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        println!("skipped: python3 (for the {kind} problem) is not on PATH");
        return None;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches")
        .join(script)
        .canonicalize()
        .unwrap();
    Some(kurobako(
        &[
            "problem",
            "command",
            "--",
            "python3",
            path.to_str().unwrap(),
        ],
        None,
    ))
}

#[test]
fn caviar_samplers_run_inside_kurobako() {
    if Command::new("kurobako").arg("--version").output().is_err() {
        println!("skipped: kurobako is not on PATH (cargo install kurobako --version 0.2.10)");
        return;
    }
    let caviar = env!("CARGO_BIN_EXE_caviar");
    let problems = [
        kurobako(&["problem", "sigopt", "--dim", "3", "ackley"], None),
        kurobako(&["problem", "sigopt", "hartmann6"], None),
    ];
    let solvers: Vec<String> = ["random", "sobol", "tpe"]
        .iter()
        .map(|s| {
            kurobako(
                &[
                    "solver",
                    "--name",
                    &format!("caviar-{s}"),
                    "command",
                    "--",
                    caviar,
                    "kurobako-solver",
                    "--sampler",
                    s,
                ],
                None,
            )
        })
        .collect();
    let mut args = vec!["studies", "--solvers"];
    args.extend(solvers.iter().map(|s| s.trim()));
    args.push("--problems");
    args.extend(problems.iter().map(|p| p.trim()));
    args.extend(["--repeats", "2", "--budget", "30", "--seed", "7"]);
    let studies = kurobako(&args, None);
    let results = kurobako(&["run"], Some(&studies));
    let records: Vec<Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        3 * 2 * 2,
        "3 solvers × 2 problems × 2 repeats"
    );
    for r in &records {
        assert_eq!(
            r["trials"].as_array().unwrap().len(),
            30,
            "{}",
            r["solver"]["spec"]["name"]
        );
        let name = r["solver"]["spec"]["name"].as_str().unwrap();
        assert!(name.starts_with("caviar-"), "{name}");
    }
    let report = kurobako(&["report"], Some(&results));
    assert!(report.contains("caviar-tpe") && report.contains("Hartmann6"));
}

#[test]
fn caviar_pruners_abandon_trials_of_a_multi_step_problem_inside_kurobako() {
    let Some(problem) = python_problem("kurobako_curve_problem.py", "multi-step") else {
        return;
    };
    let caviar = env!("CARGO_BIN_EXE_caviar");
    let solver = kurobako(
        &[
            "solver",
            "--name",
            "caviar-tpe-asha",
            "command",
            "--",
            caviar,
            "kurobako-solver",
            "--sampler",
            "tpe",
            "--pruner",
            "asha",
        ],
        None,
    );
    let studies = kurobako(
        &[
            "studies",
            "--solvers",
            solver.trim(),
            "--problems",
            problem.trim(),
            "--repeats",
            "1",
            "--budget",
            "10",
            "--seed",
            "3",
        ],
        None,
    );
    let results = kurobako(&["run"], Some(&studies));
    let record: Value = serde_json::from_str(results.lines().next().unwrap()).unwrap();
    let trials = record["trials"].as_array().unwrap();
    // Evaluations carry the study's step counter; a trial's steps are what its evaluations span.
    let reached: Vec<u64> = trials
        .iter()
        .map(|t| {
            t["evaluations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["end_step"].as_u64().unwrap() - e["start_step"].as_u64().unwrap())
                .sum()
        })
        .collect();
    let steps: u64 = trials
        .iter()
        .flat_map(|t| t["evaluations"].as_array().unwrap().iter())
        .map(|e| e["end_step"].as_u64().unwrap() - e["start_step"].as_u64().unwrap())
        .sum();
    assert!(steps >= 10 * 27, "the budget is counted in steps: {steps}");
    assert!(
        trials.len() > 10,
        "stopping trials early freed budget for more of them: {}",
        trials.len()
    );
    assert!(
        reached.iter().any(|&s| s < 27) && reached.contains(&27),
        "some abandoned, some run to the end: {reached:?}"
    );
}

#[test]
fn caviar_solves_a_conditional_problem_inside_kurobako() {
    let Some(problem) = python_problem("kurobako_conditional_problem.py", "conditional") else {
        return;
    };
    let caviar = env!("CARGO_BIN_EXE_caviar");
    let solvers: Vec<String> = ["random", "tpe", "gp"]
        .iter()
        .map(|s| {
            kurobako(
                &[
                    "solver",
                    "--name",
                    &format!("caviar-{s}"),
                    "command",
                    "--",
                    caviar,
                    "kurobako-solver",
                    "--sampler",
                    s,
                ],
                None,
            )
        })
        .collect();
    let mut args = vec!["studies", "--solvers"];
    args.extend(solvers.iter().map(|s| s.trim()));
    args.extend([
        "--problems",
        problem.trim(),
        "--repeats",
        "1",
        "--budget",
        "25",
        "--seed",
        "5",
    ]);
    let studies = kurobako(&args, None);
    // The problem replies with an error (and kurobako fails) if a parameter is present when
    // its condition fails or absent when it holds.
    let results = kurobako(&["run"], Some(&studies));
    let records: Vec<Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    for r in &records {
        let trials = r["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 25, "{}", r["solver"]["spec"]["name"]);
        let absent = trials.iter().filter(|t| t["params"][2].is_null()).count();
        assert!(absent > 0 && absent < 25, "beta1 absent in {absent} of 25");
    }
}
