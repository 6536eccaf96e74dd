//! `caviar demo`: the textbook experiment. Random search on a log scale for the learning rate
//! and the weight decay of a 6×100 ReLU network on the first 500 MNIST images, a validation
//! split carved from them, the best-k table, the narrowed ranges, the curves, and the test set
//! touched once at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use caviar_core::analysis::narrowed_ranges;
use caviar_core::rng::derive_seed;
use caviar_core::sampler::RandomSampler;
use caviar_core::space::{Distribution, Scale, SearchSpace};
use caviar_core::study::Outcome;
use caviar_core::trial::{best_trials, Direction, FrozenTrial};
use caviar_nn::data::{Dataset, Split, DEFAULT_VALIDATION_FRACTION};
use caviar_nn::mnist;
use caviar_nn::net::NetConfig;
use caviar_nn::optim::Optimizer;
use caviar_nn::train::TrainConfig;
use caviar_run::WorkerId;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::builtin;
use crate::config::{PrunerSection, DEFAULT_HEARTBEAT};
use crate::driver::{self, Progress, StudySetup};
use crate::output::{best_line, trial_json};
use crate::{BadInput, EXIT_INTERRUPTED};

/// Default seed of `caviar demo`.
pub const DEFAULT_SEED: u64 = 4;

/// Options of `caviar demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Number of trials.
    #[arg(long, default_value_t = 100)]
    pub trials: u64,
    /// Seed of the split, the sampler, the initial weights and the batches. The default is one
    /// of the seeds 0-9 whose run lies inside every reference band (see BENCHMARKS.md).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Trials trained at once (default: one per core).
    #[arg(long)]
    pub workers: Option<u64>,
    /// Name of the stored study.
    #[arg(long, default_value = "demo")]
    pub study: String,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where to write the SVG figure of the best 20 curves (default: STUDY-curves.svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Folder holding the MNIST .gz files (default: data/mnist of this checkout).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// How many of the first MNIST training images to use (textbook: 500).
    #[arg(long, default_value_t = 500)]
    pub images: usize,
    /// Epochs per trial (textbook: 50).
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Stop bad trials early: none, median, asha (keep the best third at rungs from
    /// epochs/16: 3, 9, 27 of 50) or hyperband (brackets from 1 epoch up to --epochs).
    #[arg(long, default_value = "none")]
    pub pruner: String,
}

/// The settings a demo study is stored with; a resumed study must match them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    images: usize,
    validation_fraction: f64,
    hidden: Vec<usize>,
    epochs: usize,
    batch_size: usize,
    seed: u64,
}

fn space() -> SearchSpace {
    let mut space = SearchSpace::new();
    space
        .add(
            "lr",
            Distribution::float(1e-6, 1e-2, Scale::Log).expect("valid"),
        )
        .expect("new name");
    space
        .add(
            "weight_decay",
            Distribution::float(1e-8, 1e-4, Scale::Log).expect("valid"),
        )
        .expect("new name");
    space
}

/// The network and training settings of trial `number` (same seeds, so the same network).
fn trial_setup(
    settings: &Settings,
    split: &Split,
    lr: f64,
    weight_decay: f64,
    number: u64,
) -> (NetConfig, u64, TrainConfig) {
    let net = NetConfig {
        weight_decay: weight_decay as f32,
        ..NetConfig::mlp(split.train.dim(), settings.hidden.clone(), 10)
    };
    let cfg = TrainConfig {
        epochs: settings.epochs,
        batch_size: settings.batch_size,
        lr: lr as f32,
        lr_decay: 0.0,
        optimizer: Optimizer::Sgd,
        with_replacement: true,
        seed: derive_seed(settings.seed, &[number, 2]),
    };
    (net, derive_seed(settings.seed, &[number, 1]), cfg)
}

fn param(t: &FrozenTrial, name: &str) -> Result<f64> {
    t.params
        .get(name)
        .and_then(|v| v.as_f64())
        .with_context(|| format!("trial {} has no `{name}`", t.number))
}

pub fn demo(url: &str, args: &DemoArgs) -> Result<u8> {
    if args.trials == 0
        || args.images < 10
        || args.epochs == 0
        || args.workers == Some(0)
        || args.workers > Some(crate::config::MAX_WORKERS)
    {
        return Err(BadInput(
            "--trials, --epochs and --workers must be at least 1 (--workers at most 1024), --images at least 10".into(),
        )
        .into());
    }
    let settings = Settings {
        images: args.images,
        validation_fraction: DEFAULT_VALIDATION_FRACTION,
        hidden: vec![100; 6],
        epochs: args.epochs,
        batch_size: 100,
        seed: args.seed,
    };
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => mnist::find_data_dir().ok_or_else(|| {
            BadInput("cannot find the MNIST files (data/mnist); run from the caviar checkout, pass --data DIR or set CAVIAR_MNIST_DIR".into())
        })?,
    };
    let data: Dataset =
        mnist::load_train(&dir, Some(settings.images)).map_err(|e| BadInput(e.to_string()))?;
    let split = data.split(settings.validation_fraction, settings.seed);
    drop(data);
    let workers = args
        .workers
        .map(|w| w as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let storage = crate::open(url)?;
    if let Some(existing) = storage.study(&args.study)? {
        let stored: Option<Settings> = existing
            .spec
            .as_ref()
            .and_then(|s| s.get("demo"))
            .and_then(|d| serde_json::from_value(d.clone()).ok());
        if stored.as_ref() != Some(&settings) {
            return Err(BadInput(format!(
                "study `{}` in {url} was made with other settings ({}); pass --study NEW_NAME or the same options",
                args.study,
                stored.map(|s| format!("{} images, {} epochs, seed {}", s.images, s.epochs, s.seed))
                    .unwrap_or_else(|| "not a demo study".into())
            ))
            .into());
        }
    }
    let mut pruner_settings = PrunerSection::of_kind(&args.pruner);
    if matches!(args.pruner.as_str(), "asha" | "hyperband") {
        pruner_settings.max_resource = Some(args.epochs as u64);
    }
    if args.pruner == "asha" {
        // After one epoch on 400 images the curves still cross; a first rung at 1/16 of the
        // budget (3 of 50 epochs) keeps the slow starters that end best (BENCHMARKS.md).
        pruner_settings.min_resource = Some((args.epochs as u64 / 16).max(1));
    }
    let pruner = pruner_settings.build().map_err(|e| {
        BadInput(format!(
            "--pruner: {}",
            e.message.replace("[pruner] kind", "kind")
        ))
    })?;
    let space = space();
    let me = WorkerId::current();
    let study = driver::open_study(
        &storage,
        StudySetup {
            name: &args.study,
            direction: Direction::Maximize,
            metric: "val_acc",
            space: &space,
            spec: json!({ "demo": settings, "space": space }),
            sampler: Arc::new(RandomSampler::new(args.seed)),
            pruner,
            origin: "caviar demo",
            url,
            parent: None,
            warm_start: &[],
            enqueue_best: 0,
        },
        &me,
    )?;
    eprintln!(
        "caviar demo: {} trials of a {}-{}-10 ReLU network (plain SGD, batch {}, {} epochs) on the first {} MNIST training images: {} train / {} validation; lr = 10^U(-6,-2), weight_decay = 10^U(-8,-4); {workers} workers",
        args.trials,
        split.train.dim(),
        settings.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("-"),
        settings.batch_size,
        settings.epochs,
        settings.images,
        split.train.len(),
        split.validation.len(),
    );
    let recovery = driver::Recovery {
        retries: 0,
        heartbeat: DEFAULT_HEARTBEAT,
    };
    let before = driver::recover(&study, &me, args.trials, recovery)?;
    let cancel = driver::cancel_on_ctrl_c()?;
    let progress = Progress::new(before.total(), args.trials, "val_acc", true);
    let started = Instant::now();
    driver::run_trials(
        &study,
        &space,
        driver::Limits {
            total: args.trials,
            deadline: None,
            recovery,
            max_failures: caviar_engine::DEFAULT_MAX_FAILURES,
            run_trials: None,
        },
        workers,
        &cancel,
        &progress,
        |trial, cancel: &AtomicBool| {
            let params = trial.params();
            let (Some(lr), Some(wd)) = (
                params.get("lr").and_then(|v| v.as_f64()),
                params.get("weight_decay").and_then(|v| v.as_f64()),
            ) else {
                return Outcome::Failed("missing parameters".into());
            };
            let (net, net_seed, cfg) = trial_setup(&settings, &split, lr, wd, trial.number());
            builtin::fit_trial(
                trial,
                cancel,
                &split,
                net,
                net_seed,
                &cfg,
                &Default::default(),
            )
        },
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    if cancel.load(Ordering::SeqCst) {
        eprintln!(
            "interrupted: running trials were marked failed; run `caviar demo` again to continue"
        );
        return Ok(EXIT_INTERRUPTED);
    }

    let trials = study.trials()?;
    let counts = storage.counts(study.record().id)?;
    let top = best_trials(&trials, Direction::Maximize, 20);
    let Some(best) = top.first().copied() else {
        anyhow::bail!("no trial completed; see `caviar trials {}`", args.study);
    };
    let epochs_trained: usize = trials.iter().map(|t| t.intermediate.len()).sum();
    eprintln!(
        "\n{} trials ({} complete, {} pruned, {} failed) in {elapsed:.1} s; {epochs_trained} epochs trained ({:.0}% of {} × {})\n",
        counts.total(),
        counts.complete,
        counts.pruned,
        counts.failed,
        100.0 * epochs_trained as f64 / (counts.total().max(1) as f64 * settings.epochs as f64),
        counts.total(),
        settings.epochs,
    );
    let mut out = String::new();
    for (i, t) in top.iter().take(5).enumerate() {
        out.push_str(&best_line(i + 1, "val_acc", t));
        out.push('\n');
    }
    let k = 10.min(top.len());
    let ranges = narrowed_ranges(&trials, Direction::Maximize, k);
    out.push_str("\nnarrowed ranges of the best trials (search here next):\n");
    for r in &ranges {
        out.push_str(&format!("  {r}\n"));
    }
    let plot_path = args
        .plot
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-curves.svg", args.study)));
    let svg = crate::plot::curves_svg(
        &top,
        "val_acc",
        &format!(
            "caviar demo: validation accuracy per epoch of the best {} of {} trials",
            top.len(),
            counts.total()
        ),
    );
    std::fs::write(&plot_path, svg).with_context(|| format!("writing {}", plot_path.display()))?;
    out.push_str(&format!(
        "\ncurves of the best {}: {}\n",
        top.len(),
        plot_path.display()
    ));

    // The one and only look at the test set: retrain the winner with its own seeds.
    let (lr, wd) = (param(best, "lr")?, param(best, "weight_decay")?);
    let (net_cfg, net_seed, cfg) = trial_setup(&settings, &split, lr, wd, best.number);
    let (test_acc, n_test) =
        builtin::retrain_and_test(&dir, &split, best, net_cfg, net_seed, &cfg)?;
    out.push_str(&format!(
        "\nfinal test accuracy: {test_acc:.4} (best configuration, trial {}, lr {:.3e}, weight_decay {:.3e}; {n_test} test images, evaluated once)\n",
        best.number, lr, wd
    ));

    if args.json {
        let summary = json!({
            "study": args.study,
            "settings": settings,
            "n_trials": counts.total(),
            "counts": counts,
            "elapsed_s": elapsed,
            "pruner": args.pruner,
            "epochs_trained": epochs_trained,
            "best": top.iter().take(5).enumerate().map(|(i, t)| {
                let mut v = trial_json(t);
                v["rank"] = json!(i + 1);
                v
            }).collect::<Vec<_>>(),
            "narrowed": ranges.iter().map(|r| json!({"name": r.name, "low": r.low, "high": r.high, "k": r.k})).collect::<Vec<_>>(),
            "plot": plot_path.display().to_string(),
            "final_test_accuracy": test_acc,
            "test_images": n_test,
        });
        eprint!("{out}");
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{out}");
    }
    Ok(0)
}
