//! `caviar demo` end to end on the real MNIST files: a reduced run, and the full textbook run
//! pinned to the reference bands.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn demo(dir: &Path, args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .env(
            "CAVIAR_MNIST_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"),
        )
        .arg("demo")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

fn trials(dir: &Path, study: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir)
        .args(["trials", study, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_small_demo_stores_an_ordinary_study_plots_and_touches_the_test_set_once() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, stderr) = demo(
        dir.path(),
        &[
            "--trials",
            "8",
            "--epochs",
            "4",
            "--images",
            "200",
            "--workers",
            "2",
        ],
    );
    assert_eq!(summary["n_trials"], 8);
    assert_eq!(summary["settings"]["images"], 200);
    let best = summary["best"].as_array().unwrap();
    assert_eq!(best.len(), 5);
    assert!(best[0]["value"].as_f64().unwrap() >= best[4]["value"].as_f64().unwrap());
    let test_acc = summary["final_test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&test_acc));
    assert_eq!(summary["test_images"], 10_000);
    assert_eq!(
        stderr.matches("touching the test set").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("Best-1 (val_acc:"), "{stderr}");
    assert!(
        stderr.contains("lr: ") && stderr.contains("(top 8)"),
        "{stderr}"
    );

    let svg = std::fs::read_to_string(dir.path().join("demo-curves.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches("<polyline").count(), 8);

    let stored = trials(dir.path(), "demo");
    assert_eq!(stored.len(), 8);
    for t in &stored {
        assert_eq!(t["state"], "complete");
        let curve = t["intermediate"].as_array().unwrap();
        assert_eq!(curve.len(), 4, "one validation accuracy per epoch");
        assert_eq!(curve.last().unwrap()[1], t["value"]);
    }

    // The trainer's per-epoch log is stored with each trial.
    {
        use caviar_core::storage::Storage;
        let storage = caviar_store::SqliteStorage::open(dir.path().join("caviar.db")).unwrap();
        let study = storage.study("demo").unwrap().unwrap();
        let first = &storage.trials(study.id).unwrap()[0];
        let log = storage.trial_log(first.id).unwrap().unwrap();
        assert!(
            log.starts_with("built-in trainer: 160 train / 40 validation"),
            "{log}"
        );
        assert_eq!(log.matches("train_loss=").count(), 4, "{log}");
    }

    // Running it again resumes the same study: nothing new to do, same best.
    let (again, _) = demo(
        dir.path(),
        &["--trials", "8", "--epochs", "4", "--images", "200"],
    );
    assert_eq!(again["best"][0]["number"], summary["best"][0]["number"]);
    // Other settings under the same name are refused.
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["demo", "--epochs", "5", "--images", "200"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The textbook run with the default seed lands in the reference implementation's bands.
#[test]
fn the_default_demo_lands_in_the_reference_bands() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = demo(dir.path(), &[]);
    assert_eq!(summary["n_trials"], 100);
    let all = trials(dir.path(), "demo");
    let rows: Vec<(f64, f64, f64)> = all
        .iter()
        .map(|t| {
            (
                t["value"].as_f64().unwrap(),
                t["params"]["lr"].as_f64().unwrap(),
                t["params"]["weight_decay"].as_f64().unwrap(),
            )
        })
        .collect();
    let n = rows.len() as f64;
    let best = rows.iter().map(|r| r.0).fold(0.0, f64::max);
    let above = |x: f64| rows.iter().filter(|r| r.0 > x).count() as f64 / n;
    assert!((0.72..=0.85).contains(&best), "best {best}");
    assert!(
        (0.10..=0.13).contains(&above(0.5)),
        "share above 0.5: {}",
        above(0.5)
    );
    assert!(
        (0.02..=0.07).contains(&above(0.7)),
        "share above 0.7: {}",
        above(0.7)
    );
    for r in rows.iter().filter(|r| r.0 > 0.5) {
        assert!((2e-3..=1e-2).contains(&r.1), "a good trial with lr {}", r.1);
    }
    let low_lr_best = rows
        .iter()
        .filter(|r| r.1 < 1e-3)
        .map(|r| r.0)
        .fold(0.0, f64::max);
    assert!(low_lr_best <= 0.29, "lr < 1e-3 reached {low_lr_best}");
    // Weight decay barely matters: among trials with a good lr, its (log) correlation with
    // accuracy is weak.
    let good: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| (2e-3..=1e-2).contains(&r.1))
        .map(|r| (r.2.log10(), r.0))
        .collect();
    let (mx, my) = (
        good.iter().map(|g| g.0).sum::<f64>() / good.len() as f64,
        good.iter().map(|g| g.1).sum::<f64>() / good.len() as f64,
    );
    let cov: f64 = good.iter().map(|g| (g.0 - mx) * (g.1 - my)).sum();
    let sx: f64 = good.iter().map(|g| (g.0 - mx).powi(2)).sum::<f64>().sqrt();
    let sy: f64 = good.iter().map(|g| (g.1 - my).powi(2)).sum::<f64>().sqrt();
    let r = cov / (sx * sy);
    assert!(
        r.abs() < 0.5,
        "weight decay correlates with accuracy: r = {r}"
    );
    let test_acc = summary["final_test_accuracy"].as_f64().unwrap();
    assert!(test_acc > 0.6, "test accuracy {test_acc}");

    // Importance puts the learning rate far above weight decay, error bars and all.
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .current_dir(dir.path())
        .args(["importance", "demo", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ranked: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (lr, wd) = (&ranked[0], &ranked[1]);
    println!("importance on the seed study: {ranked}");
    assert_eq!(lr["name"], "lr");
    assert_eq!(wd["name"], "weight_decay");
    let share = |v: &Value, key: &str| v[key].as_f64().unwrap();
    assert!(share(lr, "importance") > 0.8, "{ranked}");
    assert!(
        share(lr, "low") > share(wd, "high"),
        "the bars overlap: {ranked}"
    );
}
