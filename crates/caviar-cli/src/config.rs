//! The study file: TOML, checked strictly, with errors that name the file, line and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caviar_core::space::{Distribution, ParamValue, Scale, SearchSpace};
use caviar_core::trial::Direction;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::BadInput;

/// The study file as written.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    pub name: String,
    #[serde(default = "default_direction")]
    pub direction: String,
    /// The reported value to optimise; with several objectives, `metrics` instead.
    #[serde(default)]
    pub metric: String,
    /// Several objectives: one direction each (`["maximize", "minimize"]`).
    #[serde(default)]
    pub directions: Vec<String>,
    /// Several objectives: the reported values, in the order of `directions`.
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default = "default_trials")]
    pub trials: u64,
    #[serde(default = "default_workers")]
    pub workers: u64,
    /// Times the parameters of a trial lost with its worker (killed, machine gone) are queued
    /// again (default 0).
    #[serde(default)]
    pub retries: u32,
    /// How often running trials signal life, as seconds or "5s" (default 5 s). A trial silent
    /// for 1.75 periods is presumed lost, so a lost trial is marked failed within two periods.
    #[serde(default)]
    pub heartbeat: Option<TimeoutValue>,
    /// The folder commands run in, relative to this file (default: this file's folder).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Stop when the run's first N trials all failed (default 5; 0: never).
    #[serde(default)]
    pub max_failures: Option<u64>,
    /// Signal sent to a command when `CAVIAR_PARAMS_FILE` changes (`caviar set`):
    /// "SIGUSR1", "SIGUSR2" or "SIGHUP" (default: none; the command rereads the file itself).
    #[serde(default)]
    pub on_change: Option<String>,
    /// The folder that holds one folder per trial (`CAVIAR_TRIAL_DIR`), relative to this file
    /// (default: `caviar-trials/NAME` next to the SQLite file, or next to this file).
    #[serde(default)]
    pub trial_dir: Option<String>,
    /// Trial folders kept when a run ends: those of the best N complete trials (default 5),
    /// or "all".
    #[serde(default)]
    pub keep_checkpoints: Option<KeepValue>,
    /// The trial program; or use `objective` for the built-in trainer.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// `"mnist"`: the built-in trainer on MNIST instead of a command.
    #[serde(default)]
    pub objective: Option<String>,
    /// Fixed settings of the built-in trainer: `images`, `validation_fraction`, `seed`, `test`,
    /// and any hyperparameter not tuned in [params].
    #[serde(default)]
    pub mnist: Option<toml::Table>,
    /// Seconds (number) or a duration such as "90s", "10m", "2h".
    #[serde(default)]
    pub timeout: Option<TimeoutValue>,
    /// The study this one refines (written by `caviar narrow --write`).
    #[serde(default)]
    pub parent: Option<String>,
    /// Earlier studies (names, same storage) whose complete trials that fit this space
    /// warm-start a TPE or GP sampler as prior observations.
    #[serde(default)]
    pub warm_start: Vec<String>,
    /// Queue the best this many warm-start configurations as the new study's first trials.
    #[serde(default)]
    pub enqueue_best: usize,
    /// User attributes of the study (`user_attrs = { dataset = "mnist-v2" }`), stored when it
    /// runs.
    #[serde(default)]
    pub user_attrs: BTreeMap<String, toml::Value>,
    /// Files and folders whose content the study records when it runs (relative to the
    /// command's folder), so `caviar retest` can say which changed.
    #[serde(default)]
    pub fingerprint: Vec<String>,
    /// Constraints on reported values (`["memory_mb <= 4000", "latency_ms < 20"]`): a complete
    /// trial that breaks one is infeasible, kept out of the best trials.
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub sampler: SamplerSection,
    #[serde(default)]
    pub pruner: PrunerSection,
    /// Population-based training: the trials are the population.
    #[serde(default)]
    pub pbt: Option<caviar_engine::pbt::PbtSpec>,
    /// Devices each trial gets: `gpus` ("auto" or a list) split into `gpus_per_trial`.
    #[serde(default)]
    pub resources: Option<ResourcesSection>,
    pub params: BTreeMap<String, Spanned<ParamSection>>,
}

/// `[resources]`: which GPUs the trials of this machine's workers share, and how many each
/// trial gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSection {
    /// `"auto"` (what `nvidia-smi -L` lists) or device ids, e.g. `[0, 1, 2, 3]`.
    pub gpus: ResourceGpus,
    /// Devices per trial (default 1).
    #[serde(default = "one")]
    pub gpus_per_trial: usize,
}

/// Device ids may be written as numbers or strings (UUIDs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResourceGpus {
    /// `"auto"` or another word (refused with a message).
    Word(String),
    /// A list of ids.
    List(Vec<toml::Value>),
}

fn one() -> usize {
    1
}

impl ResourcesSection {
    /// The engine's slots for this machine.
    pub fn slots(&self) -> Result<caviar_engine::resources::Slots, String> {
        let gpus = match &self.gpus {
            ResourceGpus::Word(w) => caviar_engine::resources::Gpus::Auto(w.clone()),
            ResourceGpus::List(list) => caviar_engine::resources::Gpus::List(
                list.iter()
                    .map(|v| match v {
                        toml::Value::Integer(i) if *i >= 0 => Ok(i.to_string()),
                        toml::Value::String(s) if !s.is_empty() && !s.contains(',') => Ok(s.clone()),
                        other => Err(format!(
                            "[resources] gpus: `{other}` is not a device id; give numbers such as 0 or ids such as \"GPU-8f3c...\""
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        caviar_engine::resources::slots(&gpus, self.gpus_per_trial)
    }
}

fn default_direction() -> String {
    "minimize".into()
}
fn default_trials() -> u64 {
    100
}
fn default_workers() -> u64 {
    1
}

/// `keep_checkpoints` as written: a count or "all".
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum KeepValue {
    Count(i64),
    Text(String),
}

/// Trial folders kept at the end of a run when the study file says nothing.
pub const DEFAULT_KEEP_CHECKPOINTS: usize = 5;

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum TimeoutValue {
    Seconds(f64),
    Text(String),
}

/// The `[sampler]` table: the engine's registry entry, as study files write it.
pub type SamplerSection = caviar_engine::SamplerSpec;

/// The `[pruner]` table: the engine's registry entry, as study files write it.
pub type PrunerSection = caviar_engine::PrunerSpec;

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamSection {
    #[serde(default)]
    pub low: Option<toml::Value>,
    #[serde(default)]
    pub high: Option<toml::Value>,
    #[serde(default)]
    pub scale: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub step: Option<toml::Value>,
    #[serde(default)]
    pub choices: Option<Vec<toml::Value>>,
    /// Grid values to try for this parameter.
    #[serde(default)]
    pub values: Option<Vec<toml::Value>>,
    /// The parameter exists only when these categorical parameters take these values
    /// (`when = { optimizer = "adam" }`, or a list of allowed values).
    #[serde(default)]
    pub when: Option<toml::Table>,
}

/// A checked study, ready to run.
#[derive(Debug, Clone)]
pub struct Study {
    /// The study file as written (stored with the study, so `caviar worker` can rebuild it).
    pub text: String,
    pub file: StudyFile,
    pub objective: Objective,
    pub path: PathBuf,
    pub direction: Direction,
    pub space: SearchSpace,
    pub grid_values: BTreeMap<String, Vec<ParamValue>>,
    pub timeout: Option<Duration>,
    /// How often running trials signal life.
    pub heartbeat: Duration,
    /// The signal `on_change` names.
    pub on_change: Option<i32>,
    /// How many trial folders stay at the end of a run (the best complete trials'); `None`:
    /// all.
    pub keep_checkpoints: Option<usize>,
    /// What a complete trial's reports must meet to be feasible.
    pub constraints: Vec<caviar_core::constraint::Constraint>,
}

/// The heartbeat period when the study file sets none.
pub use caviar_engine::DEFAULT_HEARTBEAT;

/// Most trials one process runs at once (`workers`, `--workers`): one thread each, so more
/// would only exhaust the machine. Wider runs start more `caviar worker` processes.
pub const MAX_WORKERS: u64 = 1024;

/// What a trial runs.
#[derive(Debug, Clone)]
pub enum Objective {
    /// An external program.
    Command(Vec<String>),
    /// The built-in MNIST trainer.
    Mnist(BuiltinMnist),
}

/// Fixed settings of the built-in MNIST objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuiltinMnist {
    /// The first N training images are used (split into train and validation).
    pub images: usize,
    /// Share held out for validation.
    pub validation_fraction: f64,
    /// Seed of the split, the weights and the batches.
    pub seed: u64,
    /// Evaluate the best configuration on the test set once, after the study.
    pub test: bool,
    /// Hyperparameters fixed for every trial.
    pub fixed: BTreeMap<String, ParamValue>,
}

fn builtin_settings(table: Option<&toml::Table>) -> Result<BuiltinMnist, String> {
    let mut settings = BuiltinMnist {
        images: 10_000,
        validation_fraction: 0.2,
        seed: 0,
        test: true,
        fixed: BTreeMap::new(),
    };
    for (key, value) in table.into_iter().flatten() {
        match key.as_str() {
            "images" => match value.as_integer() {
                Some(n) if (10..=60_000).contains(&n) => settings.images = n as usize,
                _ => {
                    return Err(format!(
                        "[mnist] images must be a whole number in 10..=60000, not {value}"
                    ))
                }
            },
            "validation_fraction" => match value.as_float() {
                Some(f) if f > 0.0 && f < 1.0 => settings.validation_fraction = f,
                _ => {
                    return Err(format!(
                        "[mnist] validation_fraction must lie in (0, 1), not {value}"
                    ))
                }
            },
            "seed" => match value.as_integer() {
                Some(n) if n >= 0 => settings.seed = n as u64,
                _ => {
                    return Err(format!(
                        "[mnist] seed must be a whole number >= 0, not {value}"
                    ))
                }
            },
            "test" => match value.as_bool() {
                Some(b) => settings.test = b,
                None => return Err(format!("[mnist] test must be true or false, not {value}")),
            },
            name => {
                let v = match value {
                    toml::Value::String(s) => ParamValue::Str(s.clone()),
                    toml::Value::Integer(i) => ParamValue::Int(*i),
                    toml::Value::Float(f) => ParamValue::Float(*f),
                    toml::Value::Boolean(b) => ParamValue::Bool(*b),
                    other => {
                        return Err(format!(
                            "[mnist] {name} = {other} is not a number, string or boolean"
                        ))
                    }
                };
                settings.fixed.insert(name.to_string(), v);
            }
        }
    }
    let validation = (settings.images as f64 * settings.validation_fraction).round() as usize;
    if validation == 0 || validation >= settings.images {
        return Err(format!(
            "[mnist] images = {} with validation_fraction = {} leaves {} validation and {} training images; both need at least one",
            settings.images,
            settings.validation_fraction,
            validation.min(settings.images),
            settings.images.saturating_sub(validation)
        ));
    }
    caviar_nn::hparams::Hyperparams::default()
        .apply(&settings.fixed)
        .map_err(|e| format!("[mnist]: {e}"))?;
    Ok(settings)
}

/// Reads and checks a study file.
pub fn load(path: &Path) -> Result<Study, BadInput> {
    let bytes = std::fs::read(path)
        .map_err(|e| BadInput(format!("cannot read study file {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        BadInput(format!(
            "{}:{line}: byte {column} of the line (offset {} in the file) is not valid UTF-8; save the file as UTF-8",
            path.display(),
            good.len()
        ))
    })?;
    parse(&text, path)
}

/// Parses and checks study-file text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Study, BadInput> {
    let shown = path.display();
    let file: StudyFile = toml::from_str(text).map_err(|e| {
        // A key that is absent has no line: name it and what to write, not the first line.
        if let Some(key) = e
            .message()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            let example = match key {
                "metric" => "metric = \"val_acc\" (the reported value to optimise)".to_string(),
                "params" => "a [params] table, e.g.\n[params]\nlr = { low = 1e-5, high = 1e-1, scale = \"log\" }".to_string(),
                "name" => "name = \"my-study\"".to_string(),
                other => format!("{other} = ..."),
            };
            return BadInput(format!(
                "{shown}: the required key `{key}` is missing; add {example}"
            ));
        }
        let field = e
            .span()
            .and_then(|span| field_at(text, span.start))
            .map(|f| format!(" (field `{f}`)"))
            .unwrap_or_default();
        BadInput(format!("{shown}: {}{field}", e.to_string().trim_end()))
    })?;
    // Offsets of the line ends, so a span's line costs a binary search, not a scan: a file of
    // 20,000 parameters asks 20,000 times.
    let line_ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
    let at = |span: std::ops::Range<usize>| line_ends.partition_point(|&end| end < span.start) + 1;
    let fail = |line: Option<usize>, msg: String| {
        BadInput(match line {
            Some(l) => format!("{shown}:{l}: {msg}"),
            None => format!("{shown}: {msg}"),
        })
    };
    let key_line = |key: &str| find_key_line(text, key);

    if let Err(e) = caviar_core::space::check_name(&file.name) {
        return Err(fail(
            key_line("name"),
            format!("name: {}", e.reason.replace("names use", "study names use")),
        ));
    }
    let mut file = file;
    let directions = objectives(&mut file, text).map_err(|(key, msg)| fail(key_line(key), msg))?;
    let direction = Direction::parse(&file.direction).ok_or_else(|| {
        fail(
            key_line("direction"),
            format!(
                "direction = \"{}\" is not known; use \"minimize\" or \"maximize\"",
                file.direction
            ),
        )
    })?;
    if file.metric.trim().is_empty() {
        return Err(fail(
            key_line("metric"),
            "metric is empty; name the reported value to optimise, e.g. metric = \"val_acc\""
                .into(),
        ));
    }
    if !caviar_run::is_report_key(&file.metric) {
        return Err(fail(
            key_line("metric"),
            format!(
                "metric = {:?} can never be reported: report keys use letters, digits, '_', '-', '.' and '/' (e.g. metric = \"val_acc\", printed as `val_acc=0.93`)",
                file.metric
            ),
        ));
    }
    let objective = match (&file.command, file.objective.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(fail(key_line("objective"), "give either command or objective, not both".into()))
        }
        (None, None) => {
            return Err(fail(
                None,
                "no trial program: add command = [\"python3\", \"train.py\", \"--lr\", \"{lr}\"], or objective = \"mnist\" for the built-in trainer".into(),
            ))
        }
        (Some(command), None) => {
            if command.is_empty() {
                return Err(fail(
                    key_line("command"),
                    "command is empty; name the program and its arguments, e.g. command = [\"python3\", \"train.py\", \"--lr\", \"{lr}\"]".into(),
                ));
            }
            if file.mnist.is_some() {
                return Err(fail(section_line(text, "mnist"), "[mnist] settings need objective = \"mnist\"".into()));
            }
            Objective::Command(command.clone())
        }
        (None, Some("mnist")) => {
            if file.metric != "val_acc" {
                return Err(fail(
                    key_line("metric"),
                    format!("the built-in trainer reports val_acc; set metric = \"val_acc\" (not \"{}\")", file.metric),
                ));
            }
            if Direction::parse(&file.direction) != Some(Direction::Maximize) {
                return Err(fail(key_line("direction"), "val_acc is maximised; set direction = \"maximize\"".into()));
            }
            Objective::Mnist(builtin_settings(file.mnist.as_ref()).map_err(|m| fail(section_line(text, "mnist"), m))?)
        }
        (None, Some(other)) => {
            return Err(fail(
                key_line("objective"),
                format!("objective = \"{other}\" is not a built-in objective; use \"mnist\" or a command"),
            ))
        }
    };
    if file.workers == 0 || file.workers > MAX_WORKERS {
        return Err(fail(
            key_line("workers"),
            format!(
                "workers = {} is outside 1 to {MAX_WORKERS}; it is how many trials this process runs at once (start more `caviar worker` processes to go wider)",
                file.workers
            ),
        ));
    }
    if file.params.is_empty() {
        return Err(fail(None, "[params] is empty; define at least one parameter, e.g. lr = { low = 1e-5, high = 1e-1, scale = \"log\" }".into()));
    }
    file.sampler
        .validate()
        .map_err(|e| fail(e.key.and_then(key_line), e.message))?;
    let kind = file.sampler.kind.as_str();
    // Checked here so a bad section fails before anything runs; `caviar run` builds it again.
    file.pruner.build().map_err(|e| {
        fail(
            e.key.and_then(|k| find_section_key_line(text, "pruner", k)),
            e.message,
        )
    })?;
    let timeout = match &file.timeout {
        None => None,
        Some(t) => Some(parse_timeout(t).map_err(|msg| fail(key_line("timeout"), msg))?),
    };
    let heartbeat = match &file.heartbeat {
        None => DEFAULT_HEARTBEAT,
        Some(t) => {
            let period = parse_duration_of("heartbeat", t, "no default other than 5 s")
                .map_err(|msg| fail(key_line("heartbeat"), msg))?;
            if !(Duration::from_millis(200)..=Duration::from_secs(600)).contains(&period) {
                return Err(fail(
                    key_line("heartbeat"),
                    format!(
                        "heartbeat = {:.3} s is outside 0.2 s to 10 min; most studies want the default (5 s)",
                        period.as_secs_f64()
                    ),
                ));
            }
            period
        }
    };

    let mut space = SearchSpace::new();
    let mut grid_values = BTreeMap::new();
    for (name, spanned) in &file.params {
        let line = Some(at(spanned.span()));
        let param = spanned.get_ref();
        let dist = to_distribution(param)
            .map_err(|msg| fail(line, format!("parameter `{name}`: {msg}")))?;
        space
            .add(name, dist.clone())
            .map_err(|e| fail(line, e.to_string()))?;
        if let Some(values) = &param.values {
            if kind != "grid" {
                return Err(fail(line, format!("parameter `{name}`: values lists grid points; use [sampler] kind = \"grid\" or remove values")));
            }
            let mut list = Vec::new();
            for v in values {
                let value = to_value(v, &dist)
                    .map_err(|msg| fail(line, format!("parameter `{name}`: values: {msg}")))?;
                if !dist.contains(&value) {
                    return Err(fail(
                        line,
                        format!(
                            "parameter `{name}`: grid value {value} lies outside {}",
                            dist.describe()
                        ),
                    ));
                }
                list.push(value);
            }
            if list.is_empty() {
                return Err(fail(
                    line,
                    format!("parameter `{name}`: values is empty; list at least one"),
                ));
            }
            grid_values.insert(name.clone(), list);
        }
    }
    // Conditions once every parameter exists, since a parent may be written after its child.
    for (name, spanned) in &file.params {
        let Some(when) = &spanned.get_ref().when else {
            continue;
        };
        let line = Some(at(spanned.span()));
        let mut conditions = Vec::new();
        for (parent, allowed) in when {
            let parent_dist = space.get(parent).cloned();
            let as_value = |v: &toml::Value| -> Result<ParamValue, String> {
                match &parent_dist {
                    Some(d) => to_value(v, d),
                    None => Ok(ParamValue::Str(v.to_string())),
                }
            };
            let allowed = match allowed {
                toml::Value::Array(list) => list.iter().map(as_value).collect(),
                one => as_value(one).map(|v| vec![v]),
            }
            .map_err(|msg| fail(line, format!("parameter `{name}`: when: {msg}")))?;
            conditions.push(caviar_core::space::Condition {
                parent: parent.clone(),
                allowed,
            });
        }
        if conditions.is_empty() {
            return Err(fail(
                line,
                format!("parameter `{name}`: when = {{}} names no parent; write e.g. when = {{ optimizer = \"adam\" }} or remove it"),
            ));
        }
        space
            .set_conditions(name, conditions)
            .map_err(|e| fail(line, e.to_string()))?;
    }
    if let Objective::Mnist(settings) = &objective {
        for (name, spanned) in &file.params {
            if !caviar_nn::hparams::KNOWN.iter().any(|(k, _)| k == name) {
                let known: Vec<&str> = caviar_nn::hparams::KNOWN.iter().map(|(k, _)| *k).collect();
                return Err(fail(
                    Some(at(spanned.span())),
                    format!("parameter `{name}` is not a hyperparameter of the built-in trainer; known: {}", known.join(", ")),
                ));
            }
            let dist = space.get(name).expect("every parameter was added");
            caviar_nn::hparams::Hyperparams::check_distribution(name, dist).map_err(|why| {
                fail(
                    Some(at(spanned.span())),
                    format!("parameter `{name}`: {why}; the built-in trainer would fail every trial that draws it"),
                )
            })?;
            if settings.fixed.contains_key(name) {
                return Err(fail(
                    Some(at(spanned.span())),
                    format!("parameter `{name}` is both tuned in [params] and fixed in [mnist]; keep one"),
                ));
            }
        }
    }
    let command: &[String] = match &objective {
        Objective::Command(c) => c,
        Objective::Mnist(_) => &[],
    };
    if !command.is_empty() {
        // Each parameter reaches the command as its own environment variable.
        let mut by_var: BTreeMap<String, &str> = BTreeMap::new();
        for (name, spanned) in &file.params {
            if let Some(other) = by_var.insert(caviar_run::param_env_var(name), name) {
                return Err(fail(
                    Some(at(spanned.span())),
                    format!(
                        "parameters `{other}` and `{name}` would both reach the command as {}; rename one of them",
                        caviar_run::param_env_var(name)
                    ),
                ));
            }
        }
    }
    for arg in command {
        let dummy: BTreeMap<String, ParamValue> = space
            .iter()
            .map(|(k, _)| (k.clone(), ParamValue::Int(0)))
            .chain([(caviar_run::SEED_PLACEHOLDER.to_string(), ParamValue::Int(0))])
            .collect();
        caviar_run::substitute(arg, &dummy)
            .map_err(|e| fail(key_line("command"), e.to_string()))?;
    }
    // A program chosen by a parameter ({py}) is checked when the trial starts.
    if let Some(first) = command.first().filter(|p| !p.contains('{')) {
        let workdir = command_dir(path, file.workdir.as_deref());
        if let Some(dir) = workdir.as_deref().filter(|d| !d.is_dir()) {
            return Err(fail(
                key_line("workdir"),
                format!("workdir: {} is not a folder", dir.display()),
            ));
        }
        let program = caviar_run::substitute(first, &BTreeMap::new()).unwrap_or_default();
        caviar_run::check_program(&program, workdir.as_deref())
            .map_err(|e| fail(key_line("command"), format!("command: {e}")))?;
    }

    let on_change = match file.on_change.as_deref() {
        None => None,
        Some("SIGUSR1") => Some(libc::SIGUSR1),
        Some("SIGUSR2") => Some(libc::SIGUSR2),
        Some("SIGHUP") => Some(libc::SIGHUP),
        Some(other) => {
            return Err(fail(
                key_line("on_change"),
                format!("on_change = \"{other}\" is not a signal caviar sends; use \"SIGUSR1\", \"SIGUSR2\" or \"SIGHUP\", or leave it out"),
            ))
        }
    };
    if on_change.is_some() && file.command.is_none() {
        return Err(fail(
            key_line("on_change"),
            "on_change signals a command; the built-in trainer takes no signal, so remove it"
                .into(),
        ));
    }

    if let Some(pbt) = &file.pbt {
        pbt.validate()
            .map_err(|msg| fail(key_line("pbt"), format!("[pbt] {msg}")))?;
        let members = pbt.members() as u64;
        if file.trials != members || file.workers != members {
            let key = match pbt.screen {
                Some(_) => "screen",
                None => "population",
            };
            return Err(fail(
                key_line("pbt"),
                format!(
                    "[pbt] {key} = {members}: the members are the study's trials and train at once, so set trials = {members} and workers = {members}"
                ),
            ));
        }
        let trainer = file.command.is_none();
        if let Some(name) = file
            .params
            .keys()
            .find(|name| trainer && !caviar_nn::hparams::LIVE.contains(&name.as_str()))
        {
            return Err(fail(
                key_line("pbt"),
                format!(
                    "[pbt]: `{name}` cannot differ between members, because each member must load the others' checkpoints; fix it in [mnist] and tune only {}",
                    caviar_nn::hparams::LIVE.join(", ")
                ),
            ));
        }
    }
    let keep_checkpoints = match &file.keep_checkpoints {
        None => Some(DEFAULT_KEEP_CHECKPOINTS),
        Some(KeepValue::Count(n)) if *n >= 0 => Some(*n as usize),
        Some(KeepValue::Text(t)) if t == "all" => None,
        Some(other) => {
            let shown = match other {
                KeepValue::Count(n) => n.to_string(),
                KeepValue::Text(t) => format!("\"{t}\""),
            };
            return Err(fail(
                key_line("keep_checkpoints"),
                format!("keep_checkpoints = {shown}: give how many trial folders to keep (the best trials', e.g. 5; 0 keeps none) or \"all\""),
            ));
        }
    };

    let constraints = caviar_core::constraint::parse_all(&file.constraints)
        .map_err(|e| fail(key_line("constraints"), format!("constraints: {e}")))?;
    if directions.len() > 1 {
        several_objectives_fit(&file).map_err(|(key, msg)| fail(key_line(key), msg))?;
    }
    Ok(Study {
        constraints,
        keep_checkpoints,
        text: text.to_string(),
        file,
        objective,
        path: path.to_path_buf(),
        direction,
        space,
        grid_values,
        timeout,
        heartbeat,
        on_change,
    })
}

/// Reads `directions` and `metrics` (several objectives) into `direction` and `metric` (the
/// first objective), checking that they agree; returns every objective's direction. An error
/// names the key at fault.
fn objectives(file: &mut StudyFile, text: &str) -> Result<Vec<Direction>, (&'static str, String)> {
    let (n_dir, n_met) = (file.directions.len(), file.metrics.len());
    if n_dir == 0 && n_met == 0 {
        if file.metric.is_empty() && !text_has_key(text, "metric") {
            return Err((
                "metric",
                "the required key `metric` is missing; add metric = \"val_acc\" (the reported value to optimise)".into(),
            ));
        }
        return Ok(Direction::parse(&file.direction).into_iter().collect());
    }
    if n_dir != n_met {
        return Err((
            "directions",
            format!(
                "directions has {n_dir} entries and metrics {n_met}; give one direction per metric, e.g. directions = [\"maximize\", \"minimize\"] with metrics = [\"val_acc\", \"latency_ms\"]"
            ),
        ));
    }
    if !file.metric.is_empty() && file.metric != file.metrics[0] {
        return Err((
            "metric",
            format!(
                "metric = {:?} and metrics = [{:?}, ...] disagree; with several objectives drop metric",
                file.metric, file.metrics[0]
            ),
        ));
    }
    let mut directions = Vec::with_capacity(n_dir);
    for d in &file.directions {
        directions.push(Direction::parse(d).ok_or_else(|| {
            (
                "directions",
                format!("directions: \"{d}\" is not known; use \"minimize\" or \"maximize\""),
            )
        })?);
    }
    for (i, m) in file.metrics.iter().enumerate() {
        if file.metrics[..i].contains(m) {
            return Err((
                "metrics",
                format!("metrics names `{m}` twice; each objective is its own reported value"),
            ));
        }
        if !caviar_run::is_report_key(m) {
            return Err((
                "metrics",
                format!("metrics: {m:?} can never be reported: report keys use letters, digits, '_', '-', '.' and '/'"),
            ));
        }
    }
    if text_has_key(text, "direction") && Direction::parse(&file.direction) != Some(directions[0]) {
        return Err((
            "direction",
            "direction and directions disagree; with several objectives drop direction".into(),
        ));
    }
    file.metric = file.metrics[0].clone();
    file.direction = file.directions[0].clone();
    Ok(directions)
}

/// Whether a top-level `key = ...` line is in the study file's text.
fn text_has_key(text: &str, key: &str) -> bool {
    find_key_line(text, key).is_some()
}

/// What a study with several objectives cannot have: pruning (which judges one curve), a
/// sampler that models one value, population-based training, the built-in trainer.
fn several_objectives_fit(file: &StudyFile) -> Result<(), (&'static str, String)> {
    let n = file.metrics.len();
    if file.pruner.kind != "none" {
        return Err((
            "pruner",
            format!("[pruner] kind = \"{}\": a study with {n} objectives does not prune (a pruner judges one curve); use kind = \"none\"", file.pruner.kind),
        ));
    }
    if matches!(file.sampler.kind.as_str(), "gp" | "zoom") {
        return Err((
            "sampler",
            format!("[sampler] kind = \"{}\" optimises one objective; with {n} use \"nsga2\" or \"tpe\" (or random, sobol, grid)", file.sampler.kind),
        ));
    }
    if file.pbt.is_some() {
        return Err((
            "pbt",
            format!("[pbt] ranks members by one objective; a study with {n} cannot use it"),
        ));
    }
    if file.objective.is_some() {
        return Err(("objective", format!("the built-in trainer reports one objective (val_acc); a study with {n} needs a command")));
    }
    Ok(())
}

/// A duration written as seconds or with a unit ("90s", "10m", "2h").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_of(
        "the duration",
        &TimeoutValue::Text(text.to_string()),
        "use less",
    )
    .map_err(|e| e.replace("the duration = ", ""))
}

fn parse_timeout(t: &TimeoutValue) -> Result<Duration, String> {
    parse_duration_of("timeout", t, "drop timeout for no limit")
}

/// Parses the value of study-file key `key`; `too_long` says what to do about a year or more.
fn parse_duration_of(key: &str, t: &TimeoutValue, too_long: &str) -> Result<Duration, String> {
    let secs = match t {
        TimeoutValue::Seconds(s) => *s,
        TimeoutValue::Text(text) => {
            let text = text.trim();
            let (num, unit) = text.split_at(
                text.find(|c: char| c.is_ascii_alphabetic())
                    .unwrap_or(text.len()),
            );
            let n: f64 = num.trim().parse().map_err(|_| {
                format!("{key} = \"{text}\" is not a duration; write seconds ({key} = 600) or \"90s\", \"10m\", \"2h\"")
            })?;
            match unit {
                "" | "s" => n,
                "ms" => n / 1000.0,
                "m" | "min" => n * 60.0,
                "h" => n * 3600.0,
                _ => {
                    return Err(format!(
                        "{key} = \"{text}\": unknown unit `{unit}`; use ms, s, m or h"
                    ))
                }
            }
        }
    };
    if secs > 366.0 * 24.0 * 3600.0 {
        return Err(format!("{key} of {secs} s is more than a year; {too_long}"));
    }
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!(
            "{key} must be a positive number of seconds (got {secs})"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn number(v: &toml::Value, what: &str) -> Result<f64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) => Ok(*f),
        other => Err(format!("{what} must be a number, not {}", other.type_str())),
    }
}

fn integer(v: &toml::Value, what: &str) -> Result<i64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i),
        toml::Value::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(*f as i64),
        other => Err(format!(
            "{what} must be a whole number for type = \"int\", not {other}"
        )),
    }
}

fn to_distribution(p: &ParamSection) -> Result<Distribution, String> {
    if let Some(choices) = &p.choices {
        if p.low.is_some() || p.high.is_some() || p.scale.is_some() || p.step.is_some() {
            return Err(
                "choices cannot be combined with low, high, scale or step; use one or the other"
                    .into(),
            );
        }
        if p.kind.as_deref().is_some_and(|k| k != "categorical") {
            return Err(
                "choices makes a categorical parameter; remove type or set type = \"categorical\""
                    .into(),
            );
        }
        let choices = choices
            .iter()
            .map(|c| match c {
                toml::Value::String(s) => Ok(ParamValue::Str(s.clone())),
                toml::Value::Integer(i) => Ok(ParamValue::Int(*i)),
                toml::Value::Float(f) => Ok(ParamValue::Float(*f)),
                toml::Value::Boolean(b) => Ok(ParamValue::Bool(*b)),
                other => Err(format!(
                    "choices hold strings, numbers or booleans, not {}",
                    other.type_str()
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let d = Distribution::Categorical { choices };
        d.validate()?;
        return Ok(d);
    }
    // A grid axis written as its points alone spans them: the range is inferred.
    let inferred;
    let (low, high) = match (&p.low, &p.high, &p.values) {
        (Some(low), Some(high), _) => (low, high),
        (None, None, Some(values)) if !values.is_empty() => {
            let numbers: Vec<&toml::Value> = values
                .iter()
                .filter(|v| matches!(v, toml::Value::Integer(_) | toml::Value::Float(_)))
                .collect();
            if numbers.len() != values.len() {
                return Err("values without low and high must all be numbers; for strings or booleans write choices = [...]".into());
            }
            let all_int = numbers.iter().all(|v| v.is_integer()) && p.kind.as_deref() != Some("float");
            let as_f64 = |v: &toml::Value| v.as_float().or(v.as_integer().map(|i| i as f64)).unwrap_or(f64::NAN);
            let lowest = numbers.iter().copied().min_by(|a, b| as_f64(a).total_cmp(&as_f64(b))).unwrap();
            let highest = numbers.iter().copied().max_by(|a, b| as_f64(a).total_cmp(&as_f64(b))).unwrap();
            inferred = if all_int {
                (lowest.clone(), highest.clone())
            } else {
                (toml::Value::Float(as_f64(lowest)), toml::Value::Float(as_f64(highest)))
            };
            (&inferred.0, &inferred.1)
        }
        _ => {
            return Err(
                "needs low and high (or choices), e.g. { low = 1e-5, high = 1e-1, scale = \"log\" }, or only the grid's values = [...]"
                    .into(),
            )
        }
    };
    let kind = match (p.kind.as_deref(), p.low.is_none() && low.is_integer()) {
        (None, true) => Some("int"),
        (kind, _) => kind,
    };
    let scale = match p.scale.as_deref() {
        None | Some("linear") => Scale::Linear,
        Some("log") => Scale::Log,
        Some("reverse_log") => Scale::ReverseLog,
        Some(other) => {
            return Err(format!(
                "scale = \"{other}\" is not known; use \"linear\", \"log\" or \"reverse_log\""
            ))
        }
    };
    let d = match kind {
        None | Some("float") => Distribution::Float {
            low: number(low, "low")?,
            high: number(high, "high")?,
            scale,
            step: p.step.as_ref().map(|s| number(s, "step")).transpose()?,
        },
        Some("int") => Distribution::Int {
            low: integer(low, "low")?,
            high: integer(high, "high")?,
            step: p
                .step
                .as_ref()
                .map(|s| integer(s, "step"))
                .transpose()?
                .unwrap_or(1),
            scale,
        },
        Some("categorical") => return Err("type = \"categorical\" needs choices = [...]".into()),
        Some(other) => {
            return Err(format!(
                "type = \"{other}\" is not known; use \"float\" or \"int\" (or give choices)"
            ))
        }
    };
    d.validate()?;
    Ok(d)
}

fn to_value(v: &toml::Value, dist: &Distribution) -> Result<ParamValue, String> {
    Ok(match (dist, v) {
        (Distribution::Int { .. }, v) => ParamValue::Int(integer(v, "a value")?),
        (Distribution::Float { .. }, v) => ParamValue::Float(number(v, "a value")?),
        (_, toml::Value::String(s)) => ParamValue::Str(s.clone()),
        (_, toml::Value::Integer(i)) => ParamValue::Int(*i),
        (_, toml::Value::Float(f)) => ParamValue::Float(*f),
        (_, toml::Value::Boolean(b)) => ParamValue::Bool(*b),
        (_, other) => return Err(format!("unsupported value {other}")),
    })
}

/// The key assigned on the line holding `offset` (`trials` in `trials = "many"`).
fn field_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains(['{', '[', ' '])).then(|| key.to_string())
}

/// Line of a `[name]` table header.
fn section_line(text: &str, name: &str) -> Option<usize> {
    let header = format!("[{name}]");
    text.lines().position(|l| l.trim() == header).map(|i| i + 1)
}

/// Line of the first `key =` assignment, for errors found after parsing.
/// The line of `key = ...` inside `[section]`.
fn find_section_key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = format!("[{section}]");
    let mut inside = false;
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            if l.starts_with('[') {
                inside = l.trim_end().starts_with(&header);
                return false;
            }
            inside
                && l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The folder a study file's commands run in: `workdir` resolved against the file's folder, or
/// that folder (`None`: the current one).
fn command_dir(file: &Path, workdir: Option<&str>) -> Option<PathBuf> {
    let base = file.parent().filter(|d| !d.as_os_str().is_empty());
    match (workdir, base) {
        (Some(w), Some(base)) => Some(base.join(w)),
        (Some(w), None) => Some(PathBuf::from(w)),
        (None, base) => base.map(Path::to_path_buf),
    }
}

impl Study {
    /// `path:line` of a top-level key in the study file (just the path when it is not found),
    /// for errors found after parsing.
    pub fn key_location(&self, key: &str) -> String {
        match find_key_line(&self.text, key) {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// The directory commands run in: the study file's.
    pub fn workdir(&self) -> Option<PathBuf> {
        command_dir(&self.path, self.file.workdir.as_deref())
    }

    /// Where this study's trials keep their folders when stored at `storage_url`.
    pub fn trial_dirs(&self, storage_url: &str) -> caviar_engine::TrialDirs {
        let here = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let database = match caviar_store::StorageUrl::parse(storage_url) {
            Ok(caviar_store::StorageUrl::Sqlite(path)) => Some(path),
            _ => None,
        };
        caviar_engine::TrialDirs::for_study(
            &self.file.name,
            database.as_deref(),
            self.file.trial_dir.as_deref().map(|d| here.join(d)),
            here,
        )
    }

    /// What this run runs on: its command line, the git state of its folder and the files the
    /// study file names.
    pub fn fingerprint(&self) -> caviar_engine::fingerprint::Fingerprint {
        let command = match &self.objective {
            Objective::Command(argv) => argv.clone(),
            Objective::Mnist(_) => vec![format!(
                "caviar {} (built-in MNIST trainer)",
                env!("CARGO_PKG_VERSION")
            )],
        };
        let here = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let folder = self.workdir().unwrap_or_else(|| here.to_path_buf());
        caviar_engine::fingerprint::take(&command, &folder, &self.file.fingerprint)
    }

    /// What is stored with the study so a resume or a worker can check and rebuild it.
    pub fn spec_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.path.canonicalize().unwrap_or_else(|_| self.path.clone()).display().to_string(),
            "text": self.text,
            "space": self.space,
            "sampler": self.file.sampler,
            "pruner": self.file.pruner,
            "command": self.file.command,
            "objective": self.file.objective,
            "constraints": self.constraints,
            "directions": (self.file.directions.len() > 1).then_some(&self.file.directions),
            "metrics": (self.file.metrics.len() > 1).then_some(&self.file.metrics),
            "mnist": match &self.objective {
                Objective::Mnist(m) => serde_json::to_value(m).unwrap_or_default(),
                Objective::Command(_) => serde_json::Value::Null,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Study, String> {
        parse(text, Path::new("study.toml")).map_err(|e| e.0)
    }

    const GOOD: &str = r#"
name = "s"
direction = "maximize"
metric = "val_acc"
trials = 10
command = ["sh", "-c", "echo val_acc={lr}"]
timeout = "2m"

[params]
lr = { low = 1e-6, high = 1e-2, scale = "log" }
beta1 = { low = 0.9, high = 0.999, scale = "reverse_log" }
units = { low = 50, high = 100, type = "int" }
act = { choices = ["relu", "tanh"] }
"#;

    #[test]
    fn a_good_file_parses() {
        let s = check(GOOD).unwrap();
        assert_eq!(s.space.len(), 4);
        assert_eq!(s.timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.direction, Direction::Maximize);
        assert_eq!(s.heartbeat, DEFAULT_HEARTBEAT);
        let fast = GOOD.replace("timeout = \"2m\"", "heartbeat = \"500ms\"");
        assert_eq!(check(&fast).unwrap().heartbeat, Duration::from_millis(500));
    }

    #[test]
    fn a_bad_heartbeat_names_its_line_and_the_range() {
        for (value, says) in [
            ("\"1ms\"", "outside 0.2 s to 10 min"),
            ("3600", "outside 0.2 s to 10 min"),
            ("\"often\"", "heartbeat = \"often\" is not a duration"),
            ("-1", "heartbeat must be a positive number"),
        ] {
            let bad = GOOD.replace("timeout = \"2m\"", &format!("heartbeat = {value}"));
            let e = check(&bad).unwrap_err();
            assert!(e.starts_with("study.toml:7:") && e.contains(says), "{e}");
        }
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = GOOD.replace("trials = 10", "trials = 10\nworkerz = 2");
        let e = check(&bad).unwrap_err();
        assert!(
            e.contains("study.toml") && e.contains("line 6") && e.contains("workerz"),
            "{e}"
        );

        let bad = GOOD.replace("low = 1e-6, high = 1e-2", "low = 0, high = 1e-2");
        let e = check(&bad).unwrap_err();
        assert!(
            e.starts_with("study.toml:10:") && e.contains("`lr`") && e.contains("low > 0"),
            "{e}"
        );

        let bad = GOOD.replace("high = 0.999", "high = 1.0");
        let e = check(&bad).unwrap_err();
        assert!(
            e.contains(":11:") && e.contains("beta1") && e.contains("high < 1"),
            "{e}"
        );

        let bad = GOOD.replace("low = 50, high = 100", "low = 100, high = 50");
        assert!(check(&bad).unwrap_err().contains("swap"));

        let bad = GOOD.replace("scale = \"log\"", "scale = \"logarithmic\"");
        assert!(check(&bad)
            .unwrap_err()
            .contains("\"linear\", \"log\" or \"reverse_log\""));

        let bad = GOOD.replace("lr = {", "lr = { color = 1,");
        let e = check(&bad).unwrap_err();
        assert!(e.contains("color"), "{e}");

        let bad = GOOD.replace("{lr}", "{learning_rate}");
        assert!(check(&bad).unwrap_err().contains("learning_rate"));

        let bad = GOOD.replace("\"sh\"", "\"no-such-program-xyz\"");
        assert!(check(&bad).unwrap_err().contains("not found on PATH"));

        let bad = GOOD.replace("timeout = \"2m\"", "timeout = \"soon\"");
        assert!(check(&bad).unwrap_err().contains("timeout"));

        let bad = GOOD.replace("direction = \"maximize\"", "direction = \"up\"");
        assert!(check(&bad).unwrap_err().contains(":3:"));

        let bad = GOOD.replace("timeout = \"2m\"", "timeout = 1e20");
        assert!(check(&bad).unwrap_err().contains("more than a year"));

        let builtin = GOOD
            .replace("command = [\"sh\", \"-c\", \"echo val_acc={lr}\"]", "objective = \"mnist\"")
            .replace("beta1 = { low = 0.9, high = 0.999, scale = \"reverse_log\" }\nunits = { low = 50, high = 100, type = \"int\" }\nact = { choices = [\"relu\", \"tanh\"] }\n", "");
        assert!(check(&builtin).is_ok(), "{:?}", check(&builtin).err());
        let empty_train = format!("{builtin}\n[mnist]\nimages = 10\nvalidation_fraction = 0.96\n");
        assert!(check(&empty_train)
            .unwrap_err()
            .contains("both need at least one"));

        let by_param = GOOD.replace("[\"sh\", \"-c\",", "[\"{act}\", \"-c\",");
        assert!(
            check(&by_param).is_ok(),
            "a program chosen by a parameter is checked at run time"
        );

        let gp = format!("{GOOD}\n[sampler]\nkind = \"gp\"\nstartup_trials = 5\n");
        assert!(check(&gp).is_ok());
        let bad = format!("{GOOD}\n[sampler]\nkind = \"cmaes\"\n");
        assert!(check(&bad)
            .unwrap_err()
            .contains("is not known; use one of"));
        let mv = format!("{GOOD}\n[sampler]\nkind = \"tpe\"\nmultivariate = true\n");
        assert_eq!(check(&mv).unwrap().file.sampler.multivariate, Some(true));
        let mv_gp = format!("{GOOD}\n[sampler]\nkind = \"gp\"\nmultivariate = true\n");
        assert!(check(&mv_gp)
            .unwrap_err()
            .contains("multivariate is for kind = \"tpe\" only"));
        let misplaced = format!("{GOOD}\n[sampler]\nkind = \"gp\"\ngamma = 0.2\n");
        assert!(check(&misplaced)
            .unwrap_err()
            .contains("gamma is for kind = \"tpe\" only"));
    }

    #[test]
    fn pruner_sections_are_checked_with_line_and_fix() {
        let with = |section: &str| {
            format!("{GOOD}\n[sampler]\nstartup_trials = 3\nkind = \"tpe\"\n\n[pruner]\n{section}")
        };
        for ok in [
            "kind = \"none\"\n",
            "kind = \"median\"\nstartup_trials = 3\nwarmup_steps = 2\ninterval_steps = 2\n",
            "kind = \"percentile\"\npercentile = 10.0\n",
            "kind = \"asha\"\nmin_resource = 2\nreduction_factor = 4\nmax_resource = 50\n",
            "kind = \"hyperband\"\nmin_resource = 1\nmax_resource = 81\n",
        ] {
            assert!(
                check(&with(ok)).is_ok(),
                "{ok}: {:?}",
                check(&with(ok)).err()
            );
        }
        let text = with("kind = \"median\"\nmin_resource = 2\n");
        let line = text
            .lines()
            .position(|l| l.starts_with("min_resource"))
            .unwrap()
            + 1;
        let err = check(&text).unwrap_err();
        assert!(
            err.contains(&format!("study.toml:{line}:"))
                && err.contains("min_resource is for kind = \"asha\" or \"hyperband\"; remove it"),
            "{err}"
        );
        // The pruner's startup_trials is found in [pruner], not in [sampler] above it.
        let text = with("kind = \"asha\"\nstartup_trials = 2\n");
        let line = text
            .rfind("startup_trials")
            .map(|at| text[..at].lines().count() + 1);
        let err = check(&text).unwrap_err();
        assert!(
            err.contains(&format!("study.toml:{}:", line.unwrap())),
            "{err}"
        );
        assert!(err.contains("\"median\" or \"percentile\""), "{err}");
        let err = check(&with("kind = \"hyperband\"\n")).unwrap_err();
        assert!(err.contains("needs max_resource"), "{err}");
        let err = check(&with("kind = \"asha\"\nreduction_factor = 1\n")).unwrap_err();
        assert!(
            err.contains("reduction_factor") && err.contains("use 2 or more"),
            "{err}"
        );
        let err = check(&with("kind = \"percentile\"\npercentile = 150.0\n")).unwrap_err();
        assert!(err.contains("outside 0..=100"), "{err}");
        let err = check(&with("kind = \"early\"\n")).unwrap_err();
        assert!(
            err.contains("is not known") && err.contains("\"asha\""),
            "{err}"
        );
    }
}
