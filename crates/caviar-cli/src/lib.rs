//! `caviar`: tune hyperparameters of any training program from a study file. The command is
//! this library's [`main_from`], so the Python package can install the same CLI.

mod bench;
mod bench_samplers;
mod builtin;
mod config;
mod dashboard;
mod demo;
mod driver;
mod enqueue;
#[cfg(test)]
mod fuzz;
mod importance;
mod kurobako;
mod lifecycle;
mod lua_expr;
mod narrow;
mod output;
mod plot;
mod retest;
mod rounds;
mod run;
mod set;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use caviar_core::storage::{ControlAction, Storage, StudyRecord};
use clap::{Parser, Subcommand};

/// Bad input from the user (file, flag, URL): exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Exit code of an interrupted run (128 + SIGINT), as shells expect.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "caviar",
    version,
    about = "Hyperparameter tuning for deep learning: random, grid, Sobol, zoom (coarse to fine), TPE and GP search with median, ASHA and Hyperband pruning, over any training command or the built-in MNIST trainer; studies stored in SQLite or PostgreSQL, shown by a web dashboard."
)]
struct Cli {
    /// Where studies are stored: sqlite:PATH, postgres://USER@HOST:PORT/DB or memory:
    #[arg(
        long,
        global = true,
        default_value = "sqlite:caviar.db",
        env = "CAVIAR_STORAGE"
    )]
    storage: String,
    #[command(subcommand)]
    command: Command,
}

/// Which running trial to pause, resume or stop, and why.
#[derive(clap::Args)]
struct ControlArgs {
    /// Study name.
    study: String,
    /// Trial number.
    trial: u64,
    /// Why, kept with the request.
    #[arg(long)]
    note: Option<String>,
    /// Print JSON: {"study", "trial", "action", "id"}.
    #[arg(long)]
    json: bool,
}

/// `caviar pause|resume|stop`: records the request for the trial's front end to carry out.
fn control(url: &str, action: ControlAction, args: ControlArgs) -> Result<u8> {
    drop(open_for_reading(url, Some(&args.study))?);
    let storage = open(url)?;
    let record = find_study(&*storage, &args.study, url)?;
    set::control(
        &*storage,
        &record,
        args.trial,
        action,
        args.note.as_deref(),
        args.json,
    )?;
    Ok(0)
}

#[derive(Subcommand)]
enum Command {
    /// Create or resume the study a file describes, and run it to its total.
    Run {
        /// The study file (TOML).
        study: PathBuf,
        #[command(flatten)]
        options: run::RunOptions,
    },
    /// Join a stored study (from this or any machine sharing its storage) and run trials until
    /// it holds its total; start as many workers as you like.
    Worker {
        /// Study name.
        study: String,
        #[command(flatten)]
        options: run::RunOptions,
    },
    /// Re-run the best configurations of a study on today's program (its stored study file or
    /// --file), several times each, in a child study; report what drifted beyond the noise and
    /// a verdict: stable, shifted, stale or broken.
    Retest(retest::RetestArgs),
    /// Delete a study with its trials and everything recorded of them (asks first; --yes
    /// does not). Refused while trials run, unless --force.
    Delete(lifecycle::DeleteArgs),
    /// Rename a study; its trials, children and stored study file follow.
    Rename(lifecycle::RenameArgs),
    /// Write a study with everything stored of it as one JSON document (a versioned, lossless
    /// format: see docs/study-format.md).
    Export(lifecycle::ExportArgs),
    /// Store a study from a document written by `caviar export`.
    Import(lifecycle::ImportArgs),
    /// Copy a study with everything stored of it into another storage (SQLite to PostgreSQL
    /// and back).
    Copy(lifecycle::CopyArgs),
    /// The seed study: tune lr and weight decay of a 6x100 ReLU net on 500 MNIST images.
    Demo(demo::DemoArgs),
    /// The ranges the best trials occupy; --write makes the next, finer round's study file.
    Narrow(narrow::NarrowArgs),
    /// Show a zoom study's rounds: the box each searched and the best trial it found.
    Rounds {
        /// Study name.
        study: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve kurobako's external-solver protocol on stdin/stdout with a caviar sampler.
    KurobakoSolver {
        /// auto, random, sobol, zoom, tpe, tpe-mv (multivariate TPE), gp or nsga2.
        #[arg(long, default_value = "auto")]
        sampler: String,
        /// none, median, asha or hyperband: on multi-step problems, evaluate one step at a time
        /// and abandon trials the pruner stops.
        #[arg(long, default_value = "none")]
        pruner: String,
    },
    /// Queue a trial with chosen parameters (`lr=0.01 layers=3`); the next worker runs it
    /// before any sampled point, and parameters left out are sampled then.
    Enqueue {
        /// Study name.
        study: String,
        /// NAME=VALUE for each fixed parameter.
        #[arg(required = true, value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Print JSON: {"number", "params"}.
        #[arg(long)]
        json: bool,
    },
    /// Change parameters of a running trial (panda mode): each value is checked against its
    /// distribution, recorded with who asked and the note, and applied at the trial's next
    /// report (trials of Python-made studies today).
    Set {
        /// Study name.
        study: String,
        /// Trial number.
        trial: u64,
        /// NAME=VALUE for each parameter to change.
        #[arg(required = true, value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Why, kept with the change.
        #[arg(long)]
        note: Option<String>,
        /// Allow a value outside the parameter's range (the record says so).
        #[arg(long)]
        force: bool,
        /// Print JSON: {"study", "trial", "changes": [{"id", "name", "current", "new", "forced"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Pause a running trial: a command's processes are stopped (SIGSTOP), the built-in
    /// trainer waits between batches, a Python trial waits in its next report; its heartbeat
    /// goes on, so it is not presumed dead.
    Pause(ControlArgs),
    /// Resume a paused trial.
    Resume(ControlArgs),
    /// End a running trial now as complete with the last value it reported (you decided it
    /// is done); a Python trial ends at its next should_prune.
    Stop(ControlArgs),
    /// A live terminal view of a trial for babysitting over SSH: its curve with the steps where
    /// parameters changed, its parameters and its change history, redrawn every second (q,
    /// Esc or Ctrl-C leave it). Without TRIAL: the newest running trial.
    Watch {
        /// Study name.
        study: String,
        /// Trial number (default: the newest running trial).
        trial: Option<u64>,
        /// Print one plain-text frame of WIDTHxHEIGHT (e.g. 80x24) and exit, for scripts.
        #[arg(long, value_name = "WIDTHxHEIGHT", num_args = 0..=1, default_missing_value = "80x24")]
        once: Option<String>,
    },
    /// Queue a new trial that starts from a trial's latest checkpoint (its folder, given to the
    /// command as CAVIAR_RESTORE_FROM) with some parameters changed, recorded as its child.
    Fork {
        /// Study name.
        study: String,
        /// The trial to start from.
        trial: u64,
        /// NAME=VALUE for each parameter to change (none: the same parameters).
        #[arg(value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Why, kept with the new trial.
        #[arg(long)]
        note: Option<String>,
        /// Print JSON: {"study", "parent", "number", "params"}.
        #[arg(long)]
        json: bool,
    },
    /// Which hyperparameters mattered: PED-ANOVA in the scaled space, with bootstrap error bars.
    Importance(importance::ImportanceArgs),
    /// Serve the web dashboard: studies, plots and importance, updated live (read-only; a
    /// token printed at start-up allows changes).
    Dashboard {
        /// Port (0: any free one; the address is printed).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on; keep the default to stay reachable from this machine only.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Close a connection silent this long (idle, or a request sent half way), e.g. "30s".
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = config::parse_duration)]
        idle_timeout: std::time::Duration,
    },
    /// Write one study's plots and tables as a self-contained HTML file, for sharing.
    Report {
        /// Study name.
        study: String,
        /// The HTML file to write.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
    /// List the stored studies.
    Studies {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List all trials of a study.
    Trials {
        /// Study name.
        study: String,
        /// Print JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
        /// Sort by a column: number, state, value, duration, step, worker or param:NAME
        /// (trials without it last), as the dashboard's trials table does.
        #[arg(long)]
        sort: Option<String>,
        /// Sort largest first.
        #[arg(long)]
        desc: bool,
        /// Only trials in these states (comma-separated: waiting, running, complete, pruned,
        /// failed).
        #[arg(long)]
        state: Option<String>,
        /// At most this many trials (after sorting).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Measure caviar's own speed (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        what: BenchKind,
    },
    /// The best trials of a study, best first; with several objectives, its Pareto front.
    Best {
        /// Study name.
        study: String,
        /// How many (default 5; with several objectives, the whole Pareto front).
        #[arg(short)]
        k: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Rank pruned trials too, by the last value they reported.
        #[arg(long)]
        pruned: bool,
        /// Other reported metrics to show, comma-separated (their last values), e.g.
        /// `--show train_loss,lr`.
        #[arg(long, value_delimiter = ',', value_name = "METRICS")]
        show: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BenchKind {
    /// Ask cost at 100, 300, 1,000 and 10,000 trials, and simple regret on standard test
    /// functions.
    Samplers {
        /// Seeds per problem and sampler.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Largest history for the ask-cost table (100, 300, 1000 or 10000).
        #[arg(long, default_value_t = 10_000)]
        max_trials: u64,
        /// Samplers to compare, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        samplers: Vec<String>,
        /// Also print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trivial-trial throughput with several workers sharing one study (each worker its own
    /// connection, like separate processes), in a fresh study and in one already holding
    /// --prefill trials.
    Workers {
        /// Where: sqlite:PATH or postgres://... (a fresh study each measurement).
        #[arg(long)]
        url: String,
        /// Worker counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        workers: Vec<usize>,
        /// Trials per measurement.
        #[arg(long, default_value_t = 2_000)]
        trials: u64,
        /// Study sizes to measure at, comma-separated (trials already in the study).
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        prefill: Vec<u64>,
        /// Write the storage directly instead of running the engine's worker loop (measures the
        /// storage alone).
        #[arg(long)]
        direct: bool,
        /// Values each report carries, the objective included (the others are stored as
        /// their own metric series).
        #[arg(long, default_value_t = 1)]
        metrics: usize,
    },
    /// Trials written per second (create + 4 params + 10 reports + finish) and the time to open
    /// a large study.
    Storage {
        /// Trials written per backend.
        #[arg(long, default_value_t = 10_000)]
        trials: u64,
        /// Size of the study that is reopened.
        #[arg(long, default_value_t = 100_000)]
        open_trials: u64,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the `caviar` command with `args` (the first is the program's name) and returns its
/// exit code: 0 done, 1 failed, 2 bad input. `--help` and argument errors print and exit the
/// process, as a command does.
pub fn main_from<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            let bad_input = err.chain().any(|e| e.downcast_ref::<BadInput>().is_some());
            if bad_input {
                2
            } else {
                1
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    if !matches!(
        cli.command,
        Command::Run { .. }
            | Command::Worker { .. }
            | Command::Retest(_)
            | Command::Demo(_)
            | Command::Dashboard { .. }
    ) {
        // Listing verbs die quietly when piped into `head`, like other Unix tools.
        // SAFETY: restoring the default disposition of a signal has no memory effects.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Run { study, options } => run::run(&cli.storage, &study, &options),
        Command::Worker { study, options } => run::worker(&cli.storage, &study, &options),
        Command::Bench {
            what:
                BenchKind::Workers {
                    url,
                    workers,
                    trials,
                    prefill,
                    direct,
                    metrics,
                },
        } => {
            bench::workers(&url, &workers, trials, &prefill, direct, metrics)?;
            Ok(0)
        }
        Command::Bench {
            what:
                BenchKind::Storage {
                    trials,
                    open_trials,
                    json,
                },
        } => {
            bench::storage(trials, open_trials, json)?;
            Ok(0)
        }
        Command::Demo(args) => demo::demo(&cli.storage, &args),
        Command::Retest(args) => retest::retest(&cli.storage, &args),
        Command::Delete(args) => {
            drop(open_for_reading(&cli.storage, Some(&args.study))?);
            lifecycle::delete(&cli.storage, &args)
        }
        Command::Export(args) => lifecycle::export(&cli.storage, &args),
        Command::Import(args) => lifecycle::import(&cli.storage, &args),
        Command::Copy(args) => lifecycle::copy(&cli.storage, &args),
        Command::Rename(args) => {
            drop(open_for_reading(&cli.storage, Some(&args.study))?);
            lifecycle::rename(&cli.storage, &args)
        }
        Command::Narrow(args) => {
            let storage = open_for_reading(&cli.storage, Some(&args.study))?;
            let record = find_study(&*storage, &args.study, &cli.storage)?;
            narrow::narrow(&*storage, &record, &args)?;
            Ok(0)
        }
        Command::Rounds { study, json } => {
            let storage = open_for_reading(&cli.storage, Some(&study))?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            rounds::print(&*storage, &record, json)?;
            Ok(0)
        }
        Command::Bench {
            what:
                BenchKind::Samplers {
                    seeds,
                    max_trials,
                    samplers,
                    json,
                },
        } => {
            bench_samplers::samplers(seeds, max_trials, &samplers, json)?;
            Ok(0)
        }
        Command::KurobakoSolver { sampler, pruner } => {
            let stdin = std::io::stdin().lock();
            kurobako::serve(&sampler, &pruner, stdin, std::io::stdout().lock())?;
            Ok(0)
        }
        Command::Enqueue {
            study,
            params,
            json,
        } => {
            // Checked first, so a wrong path is reported and not created.
            drop(open_for_reading(&cli.storage, Some(&study))?);
            let storage = open(&cli.storage)?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            enqueue::enqueue(&*storage, &record, &params, json)?;
            Ok(0)
        }
        Command::Set {
            study,
            trial,
            params,
            note,
            force,
            json,
        } => {
            drop(open_for_reading(&cli.storage, Some(&study))?);
            let storage = open(&cli.storage)?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            set::set(
                &*storage,
                &record,
                trial,
                &params,
                note.as_deref(),
                force,
                json,
            )?;
            Ok(0)
        }
        Command::Watch { study, trial, once } => {
            let size = match once.as_deref() {
                None => None,
                Some(text) => Some(
                    text.split_once('x')
                        .and_then(|(w, h)| Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
                        .filter(|&(w, h)| w >= 40 && h >= 16)
                        .ok_or_else(|| {
                            BadInput(format!(
                                "--once {text}: give the frame as WIDTHxHEIGHT, at least 40x16 (e.g. 80x24)"
                            ))
                        })?,
                ),
            };
            let storage = open_for_reading(&cli.storage, Some(&study))?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            watch::watch(&*storage, &record, trial, size)?;
            Ok(0)
        }
        Command::Fork {
            study,
            trial,
            params,
            note,
            json,
        } => {
            drop(open_for_reading(&cli.storage, Some(&study))?);
            let storage = open(&cli.storage)?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            set::fork(
                &cli.storage,
                &*storage,
                &record,
                trial,
                &params,
                note.as_deref(),
                json,
            )?;
            Ok(0)
        }
        Command::Pause(args) => control(&cli.storage, ControlAction::Pause, args),
        Command::Resume(args) => control(&cli.storage, ControlAction::Resume, args),
        Command::Stop(args) => control(&cli.storage, ControlAction::Stop, args),
        Command::Importance(args) => {
            let storage = open_for_reading(&cli.storage, Some(&args.study))?;
            let record = find_study(&*storage, &args.study, &cli.storage)?;
            importance::print(&*storage, &record, &args)?;
            Ok(0)
        }
        Command::Dashboard {
            port,
            host,
            idle_timeout,
        } => {
            // A missing file is refused, not created; then writable for the token-guarded
            // enqueue route, read-only where writing is refused.
            open_for_reading(&cli.storage, None)?;
            let storage = open(&cli.storage).or_else(|write_err| {
                let storage = open_for_reading(&cli.storage, None).map_err(|_| write_err)?;
                eprintln!("the database cannot be written here; the dashboard serves it read-only (enqueue is unavailable)");
                Ok::<_, anyhow::Error>(storage)
            })?;
            dashboard::serve(storage, &cli.storage, &host, port, idle_timeout)?;
            Ok(0)
        }
        Command::Report { study, out } => {
            let storage = open_for_reading(&cli.storage, Some(&study))?;
            dashboard::report(&*storage, &study, &out)?;
            Ok(0)
        }
        Command::Studies { json } => {
            let storage = open_for_reading(&cli.storage, None)?;
            output::studies(&*storage, json)?;
            Ok(0)
        }
        Command::Trials {
            study,
            json,
            csv,
            sort,
            desc,
            state,
            limit,
        } => {
            let storage = open_for_reading(&cli.storage, Some(&study))?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            let query = trials_query(sort.as_deref(), desc, state.as_deref(), limit)?;
            output::trials(&*storage, &record, json, csv, query.as_ref())?;
            Ok(0)
        }
        Command::Best {
            study,
            k,
            json,
            pruned,
            show,
        } => {
            let storage = open_for_reading(&cli.storage, Some(&study))?;
            let record = find_study(&*storage, &study, &cli.storage)?;
            if record.directions().len() > 1 {
                output::pareto(&*storage, &record, k.unwrap_or(usize::MAX), json, &show)?;
            } else {
                output::best(&*storage, &record, k.unwrap_or(5), json, pruned, &show)?;
            }
            Ok(0)
        }
    }
}

/// Opens the storage named by `--storage`; a bad URL or unusable file is bad input.
pub fn open(url: &str) -> Result<Arc<dyn Storage>> {
    caviar_store::open_storage(url).map_err(|e| BadInput(e.to_string()).into())
}

/// The trials table's query of `caviar trials --sort/--desc/--state/--limit`, when one is given.
fn trials_query(
    sort: Option<&str>,
    desc: bool,
    state: Option<&str>,
    limit: Option<usize>,
) -> Result<Option<caviar_core::table::TableQuery>> {
    if sort.is_none() && !desc && state.is_none() && limit.is_none() {
        return Ok(None);
    }
    let mut q = caviar_core::table::TableQuery {
        descending: desc,
        limit: limit.unwrap_or(usize::MAX),
        ..Default::default()
    };
    if let Some(sort) = sort {
        q.sort = sort.parse().map_err(|e| BadInput(format!("--sort: {e}")))?;
    }
    if let Some(states) = state {
        for name in states.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let state = caviar_core::trial::TrialState::parse(name).ok_or_else(|| {
                BadInput(format!(
                    "--state: `{name}`: use waiting, running, complete, pruned or failed (comma-separated)"
                ))
            })?;
            q.states.push(state);
        }
    }
    Ok(Some(q))
}

/// Opens the storage named by `--storage` for the verbs that only read: a SQLite file is opened
/// read-only, so they work on a read-only or full disk and write nothing. A SQLite file that does
/// not exist is bad input (never created here); `study` names the study asked for, if one.
pub fn open_for_reading(url: &str, study: Option<&str>) -> Result<Arc<dyn Storage>> {
    if let Ok(caviar_store::StorageUrl::Sqlite(path)) = caviar_store::StorageUrl::parse(url) {
        if !path.exists() {
            let asked = study.map_or(String::new(), |s| format!("no study named `{s}`: "));
            return Err(BadInput(format!(
                "{asked}there is no database at {} (--storage {url}); check --storage or CAVIAR_STORAGE, or create one with `caviar run STUDY.toml`",
                path.display()
            ))
            .into());
        }
    }
    caviar_store::open_storage_for_reading(url).map_err(|e| BadInput(e.to_string()).into())
}

/// Looks a study up by name; a missing one is bad input that lists what exists.
pub fn find_study(storage: &dyn Storage, name: &str, url: &str) -> Result<StudyRecord> {
    if let Some(record) = storage.study(name).context("reading the study")? {
        return Ok(record);
    }
    let names: Vec<String> = storage
        .studies()
        .context("listing studies")?
        .into_iter()
        .map(|s| s.study.name)
        .collect();
    let hint = if names.is_empty() {
        format!("{url} holds no studies yet; create one with `caviar run STUDY.toml`")
    } else {
        format!("studies in {url}: {}", names.join(", "))
    };
    Err(BadInput(format!("no study named `{name}`; {hint}")).into())
}
