//! `caviar bench storage`: write throughput of each backend and the cost of opening a big study.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use caviar_core::space::{Distribution, ParamValue, Scale};
use caviar_core::storage::{InMemoryStorage, NewStudy, Storage};
use caviar_core::trial::{Direction, TrialState};
use caviar_store::SqliteStorage;
use serde_json::json;

fn bench_params() -> Vec<(String, Distribution)> {
    vec![
        (
            "lr".into(),
            Distribution::float(1e-6, 1e-2, Scale::Log).unwrap(),
        ),
        (
            "weight_decay".into(),
            Distribution::float(1e-8, 1e-4, Scale::Log).unwrap(),
        ),
        (
            "beta1".into(),
            Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap(),
        ),
        (
            "units".into(),
            Distribution::int(50, 100, Scale::Linear).unwrap(),
        ),
    ]
}

/// Writes `n` trials the way a study does: create, 4 params, 10 reports, finish.
fn write_trials(storage: &dyn Storage, name: &str, n: u64) -> Result<f64> {
    let study = storage.create_study(&NewStudy {
        name: name.into(),
        direction: Direction::Maximize,
        metric: Some("val_acc".into()),
        spec: None,
        parent: None,
    })?;
    let params = bench_params();
    let start = Instant::now();
    for i in 0..n {
        let t = storage
            .create_trial(study.id, "bench", None)?
            .context("no trial")?;
        // The value depends mostly on the first parameter, a little on the second, so the
        // study has a best tenth for `caviar importance` to find.
        let mut value = 0.0;
        for (k, (name, dist)) in params.iter().enumerate() {
            let u = ((i * 7919 + name.len() as u64 * 104729) % 1000) as f64 / 1000.0;
            value += u * [0.8, 0.15, 0.0, 0.0][k.min(3)];
            storage.set_param(t.id, name, dist, &dist.from_unit(u))?;
        }
        for step in 1..=10 {
            storage.report(t.id, step, value * step as f64 / 10.0)?;
        }
        storage.finish_trial(t.id, TrialState::Complete, Some(value), None)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

pub fn storage(trials: u64, open_trials: u64, as_json: bool) -> Result<()> {
    let dir = tempdir()?;
    let mut rows = Vec::new();

    let memory = InMemoryStorage::new();
    let secs = write_trials(&memory, "bench", trials)?;
    rows.push(json!({"backend": "memory", "trials": trials, "seconds": secs, "trials_per_s": trials as f64 / secs}));
    eprintln!(
        "memory: {trials} trials in {secs:.3} s = {:.0} trials/s",
        trials as f64 / secs
    );

    let path = dir.join("write.db");
    let sqlite = SqliteStorage::open(&path)?;
    let secs = write_trials(&sqlite, "bench", trials)?;
    rows.push(json!({"backend": "sqlite", "trials": trials, "seconds": secs, "trials_per_s": trials as f64 / secs}));
    eprintln!(
        "sqlite: {trials} trials in {secs:.3} s = {:.0} trials/s",
        trials as f64 / secs
    );
    drop(sqlite);

    let big = dir.join("big.db");
    {
        let sqlite = SqliteStorage::open(&big)?;
        eprintln!("writing a {open_trials}-trial study for the open test...");
        write_trials(&sqlite, "big", open_trials)?;
    }
    // What `caviar run` does when it resumes: open, migrate, find the study, count, find orphans.
    let start = Instant::now();
    let sqlite: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&big)?);
    let study = sqlite.study("big")?.context("study vanished")?;
    let counts = sqlite.counts(study.id)?;
    let running = sqlite.running_trials(study.id)?;
    let open_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        counts.total() == open_trials && running.is_empty(),
        "unexpected counts"
    );
    // What `caviar trials --json` and the samplers that read history do: load everything.
    let start = Instant::now();
    let all = sqlite.trials(study.id)?;
    let load_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(all.len() as u64 == open_trials && all[0].intermediate.len() == 10);
    let first = &all[0].params;
    anyhow::ensure!(matches!(first.get("units"), Some(ParamValue::Int(_))));
    // What `caviar importance` does: read, then PED-ANOVA with 100 bootstrap resamples.
    let start = Instant::now();
    let read = sqlite.trials_for_analysis(study.id)?;
    let read_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let ranked = caviar_core::importance::importance(
        &read,
        Direction::Maximize,
        &caviar_core::importance::ImportanceOptions::default(),
    )?;
    let importance_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(ranked[0].name == "lr", "lr should matter most: {ranked:?}");
    eprintln!(
        "importance of a {open_trials}-trial study: read {read_secs:.3} s + compute {importance_secs:.3} s"
    );
    rows.push(json!({"backend": "sqlite", "open_trials": open_trials, "importance_read_seconds": read_secs, "importance_compute_seconds": importance_secs}));
    eprintln!("open a {open_trials}-trial study (resume path): {open_secs:.3} s");
    eprintln!("load all {open_trials} trials with params and 10 reports each: {load_secs:.3} s");
    rows.push(json!({"backend": "sqlite", "open_trials": open_trials, "open_seconds": open_secs, "load_all_seconds": load_secs}));
    let _ = std::fs::remove_dir_all(&dir);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

/// Runs trivial trials (create, 4 params, 10 reports, finish) on one thread per handle until
/// the study holds `total` trials.
fn fill(
    handles: &[Arc<dyn Storage>],
    study: caviar_core::trial::StudyId,
    total: u64,
    metrics: usize,
) -> Result<()> {
    let params = bench_params();
    let extra = extra_metrics(metrics);
    std::thread::scope(|scope| -> Result<()> {
        let runs: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(k, storage)| {
                let (params, extra) = (&params, &extra);
                scope.spawn(move || -> Result<()> {
                    let me = format!("bench-{k}");
                    while let Some(t) = storage.create_trial(study, &me, Some(total))? {
                        for (name, dist) in params {
                            storage.set_param(t.id, name, dist, &dist.from_unit(0.5))?;
                        }
                        for step in 1..=10 {
                            storage.report_all(t.id, step, step as f64 / 10.0, extra)?;
                        }
                        storage.finish_trial(t.id, TrialState::Complete, Some(0.9), None)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for r in runs {
            r.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })
}

/// Like [`fill`], but each handle is a worker of the engine (`caviar_engine::drive` on one
/// thread, a random sampler, the heartbeat and orphan sweeps), as `caviar worker` processes are.
fn drive_workers(
    handles: &[Arc<dyn Storage>],
    study_name: &str,
    total: u64,
    metrics: usize,
) -> Result<()> {
    let extra = extra_metrics(metrics);
    let mut space = caviar_core::space::SearchSpace::new();
    for (name, dist) in bench_params() {
        space.add(&name, dist)?;
    }
    std::thread::scope(|scope| -> Result<()> {
        let runs: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(k, storage)| {
                let (space, extra) = (&space, &extra);
                scope.spawn(move || -> Result<()> {
                    let study = caviar_core::study::Study::builder(study_name)
                        .storage(storage.clone())
                        .direction(Direction::Maximize)
                        .metric("val_acc")
                        .sampler(caviar_core::sampler::RandomSampler::new(k as u64))
                        .worker(format!("bench-{k}"))
                        .load_if_exists(true)
                        .build()?;
                    let limits = caviar_engine::Limits::up_to(total);
                    let cancel = std::sync::atomic::AtomicBool::new(false);
                    caviar_engine::drive(
                        &study,
                        space,
                        limits,
                        1,
                        &cancel,
                        &caviar_engine::Silent,
                        |trial, _| {
                            for step in 1..=10 {
                                let reported = trial.report_all(step, step as f64 / 10.0, extra);
                                if let Err(e) = reported {
                                    return caviar_core::study::Outcome::Failed(e.to_string());
                                }
                            }
                            caviar_core::study::Outcome::Complete(0.9)
                        },
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))
                })
            })
            .collect();
        for r in runs {
            r.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })
}

/// Trivial-trial throughput with `workers` threads, each with its own storage handle (its own
/// SQLite connection or PostgreSQL pool, as separate processes would have), on a study that
/// already holds `prefill` trials. Each worker runs the engine's loop, or with `direct` writes
/// the storage itself (the storage's own ceiling). Prints one line per (prefill, workers).
pub fn workers(
    url: &str,
    worker_counts: &[usize],
    trials: u64,
    prefills: &[u64],
    direct: bool,
    metrics: usize,
) -> Result<()> {
    let open = || caviar_store::open_storage(url).map_err(|e| anyhow::anyhow!("{e}"));
    let setup = open()?;
    println!("| study size before | workers | trials | seconds | trials/s |");
    println!("|---|---|---|---|---|");
    for &prefill in prefills {
        for &w in worker_counts {
            let name = format!("bench-w{w}-p{prefill}-{}", caviar_core::trial::now_ms());
            let study = setup.create_study(&NewStudy {
                name,
                direction: Direction::Maximize,
                metric: Some("val_acc".into()),
                spec: None,
                parent: None,
            })?;
            // SQLite takes one writer at a time: one filler. PostgreSQL fills faster with eight,
            // and, for the untimed prefill only, without waiting for each commit's flush.
            let (filler_count, fill_url) = if url.starts_with("sqlite") {
                (1, url.to_string())
            } else {
                let join = if url.contains('?') { '&' } else { '?' };
                (
                    8,
                    format!("{url}{join}options=-c%20synchronous_commit%3Doff"),
                )
            };
            let fillers: Vec<Arc<dyn Storage>> = (0..filler_count)
                .map(|_| caviar_store::open_storage(&fill_url).map_err(|e| anyhow::anyhow!("{e}")))
                .collect::<Result<_>>()?;
            fill(&fillers, study.id, prefill, metrics)?;
            drop(fillers);
            let handles: Vec<Arc<dyn Storage>> =
                (0..w.max(1)).map(|_| open()).collect::<Result<_>>()?;
            let total = prefill + trials;
            let start = Instant::now();
            if direct {
                fill(&handles, study.id, total, metrics)?;
            } else {
                drive_workers(&handles, &study.name, total, metrics)?;
            }
            let secs = start.elapsed().as_secs_f64();
            let counts = setup.counts(study.id)?;
            anyhow::ensure!(
                counts.complete == total,
                "expected {total} complete trials, found {}",
                counts.complete
            );
            println!(
                "| {prefill} | {w} | {trials} | {secs:.2} | {:.0} |",
                trials as f64 / secs
            );
        }
    }
    Ok(())
}

/// The values a trial reports besides the objective when it reports `metrics` in all.
fn extra_metrics(metrics: usize) -> Vec<(String, f64)> {
    (1..metrics.max(1))
        .map(|i| (format!("metric_{i}"), i as f64 / 10.0))
        .collect()
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("caviar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
