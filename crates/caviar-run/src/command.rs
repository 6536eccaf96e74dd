use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use caviar_core::space::ParamValue;
use caviar_core::study::{Outcome, Steer};

use crate::report::parse_report;

/// Lines of stderr (and of unparsed stdout) kept for a failed trial's error.
const TAIL_LINES: usize = 20;
/// Lines of output (stdout and stderr) kept for the trial's stored log.
pub const OUTPUT_LINES: usize = 200;
/// Longer output lines are cut to this many bytes in the stored log.
const OUTPUT_LINE_BYTES: usize = 2000;
/// Longest line read whole from a command; the rest of a longer line is skipped (and counted),
/// so a trial that prints gigabytes without a newline costs the worker no more than this.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines of stdout waiting for the runner at most; beyond that the reader waits and the pipe
/// pushes back on the command, so memory stays bounded however fast it prints.
const QUEUED_LINES: usize = 64;

/// The placeholder (and `CAVIAR_SEED`) that carries a trial's seed: its number, unless a
/// parameter is named `seed`.
pub const SEED_PLACEHOLDER: &str = "seed";

/// A user attribute line, `attr:KEY=VALUE`: the key, and the value as JSON when it parses
/// (`attr:epochs=3`, `attr:tags=["a","b"]`), else as text (`attr:git_sha=abc123`).
///
/// ```
/// use caviar_run::parse_attr;
/// assert_eq!(parse_attr("attr:git_sha=abc123"), Some(("git_sha", "abc123".into())));
/// assert_eq!(parse_attr("attr: n = 3"), Some(("n", 3.into())));
/// assert_eq!(parse_attr("epoch=1 loss=0.5"), None);
/// ```
pub fn parse_attr(line: &str) -> Option<(&str, serde_json::Value)> {
    let (key, value) = line.trim().strip_prefix("attr:")?.split_once('=')?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
    Some((key, value))
}

/// How to run a trial command.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    /// Program and arguments, with `{name}` placeholders.
    pub argv: Vec<String>,
    /// The reported key that is the objective.
    pub metric: String,
    /// Longest a trial may run.
    pub timeout: Option<Duration>,
    /// Time between TERM and KILL when a trial is stopped.
    pub kill_grace: Duration,
    /// Working directory of the command (default: inherited).
    pub workdir: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Signal sent to the command's process group after its parameters file changes.
    pub on_change: Option<i32>,
    /// Parameters that a trial may lack (conditional ones): an argument that names an absent
    /// one is dropped, with the flag before it (see [`substitute_args`]).
    pub optional: std::collections::BTreeSet<String>,
}

impl CommandSpec {
    /// A spec with defaults: no timeout, 5 s grace.
    pub fn new(argv: Vec<String>, metric: impl Into<String>) -> Self {
        CommandSpec {
            argv,
            metric: metric.into(),
            timeout: None,
            kill_grace: Duration::from_secs(5),
            workdir: None,
            env: Vec::new(),
            on_change: None,
            optional: Default::default(),
        }
    }
}

/// Parameter changes delivered to a running command (panda mode): the command reads
/// `CAVIAR_PARAMS_FILE` (`{"version": V, "params": {...}}`, rewritten atomically when a change
/// arrives) and acknowledges with `applied=V` in a report line.
pub trait LiveParams {
    /// Changes asked and not yet applied, oldest first: (version, name, value).
    fn pending(&self) -> Vec<(i64, String, ParamValue)>;
    /// The command applied every change up to `version`, after the report of `step`.
    fn applied(&self, version: i64, step: u64);
    /// The command attached a user attribute to its trial: a stdout line `attr:KEY=VALUE`
    /// (VALUE as JSON when it parses, else as text). Ignored by default.
    fn user_attr(&self, key: &str, value: serde_json::Value) {
        let _ = (key, value);
    }
    /// The values other than the objective that a report line carried, at `step`. Ignored by
    /// default.
    fn metrics(&self, step: u64, values: &[(String, f64)]) {
        let _ = (step, values);
    }
    /// Takes the pause, resume and stop requests asked since the last call (marked done after
    /// the report of `step`) and says where they leave the trial (never paused by default).
    fn steer(&self, step: Option<u64>) -> Steer {
        let _ = step;
        Steer::default()
    }
}

/// How often a running command's pending parameter changes are looked up.
const LIVE_POLL: Duration = Duration::from_millis(500);

/// The trial a command runs.
#[derive(Clone, Debug)]
pub struct TrialInput<'a> {
    /// Study name.
    pub study: &'a str,
    /// Trial number.
    pub number: u64,
    /// Parameter values.
    pub params: &'a BTreeMap<String, ParamValue>,
}

/// What the report callback wants next.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop the command and record the trial as pruned.
    Prune,
    /// Stop the command and record the trial as failed with this reason.
    Abort(String),
    /// Keep going from another trial's checkpoint with these parameters (population-based
    /// training's exploit): the parameters file is rewritten with `version`, the parameters and
    /// `"restore_from": FOLDER`; the command loads the checkpoint in that folder and
    /// acknowledges with `applied=VERSION`.
    Reload {
        /// The new version of the parameters file.
        version: i64,
        /// Every parameter's value from now on.
        params: BTreeMap<String, ParamValue>,
        /// The folder whose checkpoint the command loads.
        restore_from: PathBuf,
    },
}

/// Process groups (and trial tokens) of the commands running now, so a hard exit can take them
/// along.
static ACTIVE_GROUPS: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

/// Kills (SIGKILL) the process group of every command this process is running. For a hard
/// exit (a second Ctrl-C): trial commands run in their own groups and would otherwise outlive us.
pub fn kill_running_commands() {
    for (pgid, token) in ACTIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        kill_group(*pgid, libc::SIGKILL);
        crate::tree::kill_marked(token, *pgid, Duration::from_millis(200));
    }
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// Complete with the objective, or failed with the reason (and the stderr tail).
    pub outcome: Outcome,
    /// Wall time of the command.
    pub elapsed: Duration,
    /// Number of metric reports received.
    pub reports: u64,
    /// The last [`OUTPUT_LINES`] lines the command printed, stdout and stderr in the order they
    /// were read.
    pub output: String,
}

/// Problems that stop the runner itself (not the trial).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A `{placeholder}` names no parameter.
    #[error(
        "argument `{arg}` uses `{{{name}}}`, which is not a parameter; known parameters: {known}"
    )]
    UnknownPlaceholder {
        /// The argument.
        arg: String,
        /// The placeholder's name.
        name: String,
        /// Parameter names.
        known: String,
    },
    /// A `{` without its `}`.
    #[error("argument `{0}` has an unclosed `{{`; write `{{{{` for a literal brace")]
    Unclosed(String),
    /// The command list is empty.
    #[error("the command is empty; name a program, e.g. command = [\"python3\", \"train.py\"]")]
    EmptyCommand,
    /// The program is not found or not executable.
    #[error("program `{0}` {1}")]
    Program(String, String),
    /// The trial file could not be written.
    #[error("cannot write the trial file {0}: {1}")]
    TrialFile(PathBuf, std::io::Error),
}

/// Replaces `{name}` with parameter values; `{{` and `}}` are literal braces.
///
/// ```
/// use std::collections::BTreeMap;
/// use caviar_run::substitute;
/// let mut p = BTreeMap::new();
/// p.insert("lr".to_string(), caviar_core::space::ParamValue::Float(0.01));
/// assert_eq!(substitute("--lr={lr}", &p).unwrap(), "--lr=0.01");
/// assert_eq!(substitute("{{x}}", &p).unwrap(), "{x}");
/// assert!(substitute("{nope}", &p).is_err());
/// ```
pub fn substitute(arg: &str, params: &BTreeMap<String, ParamValue>) -> Result<String, RunError> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
        } else {
            let close = tail
                .find('}')
                .ok_or_else(|| RunError::Unclosed(arg.into()))?;
            let name = &tail[1..close];
            let value = params
                .get(name)
                .ok_or_else(|| RunError::UnknownPlaceholder {
                    arg: arg.into(),
                    name: name.into(),
                    known: params.keys().cloned().collect::<Vec<_>>().join(", "),
                })?;
            out.push_str(&value.to_string());
            rest = &tail[close + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholder names in `arg` (`{{` and `}}` are literal braces, not placeholders).
fn placeholders(arg: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = arg;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('}') {
            rest = after;
        } else if let Some(close) = tail.find('}') {
            names.push(&tail[1..close]);
            rest = &tail[close + 1..];
        } else {
            break;
        }
    }
    names
}

/// Substitutes every argument, leaving out those that name an `optional` parameter absent
/// from `params`: such an argument is dropped whole (`--beta1={beta1}`), and when it is the
/// placeholder alone (`{beta1}`) the flag before it (an argument starting with `-` without
/// placeholders, `--beta1`) goes too.
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use caviar_run::substitute_args;
/// let params = BTreeMap::from([("lr".to_string(), caviar_core::space::ParamValue::Float(0.1))]);
/// let optional = BTreeSet::from(["beta1".to_string()]);
/// let argv: Vec<String> = ["--lr", "{lr}", "--beta1", "{beta1}", "--b2={beta1}", "-v"]
///     .map(String::from).to_vec();
/// assert_eq!(substitute_args(&argv, &params, &optional).unwrap(), ["--lr", "0.1", "-v"]);
/// ```
pub fn substitute_args(
    argv: &[String],
    params: &BTreeMap<String, ParamValue>,
    optional: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>, RunError> {
    let absent = |name: &str| !params.contains_key(name) && optional.contains(name);
    kept_args(argv, absent)
        .map(|arg| substitute(arg, params))
        .collect()
}

/// `argv` without the arguments that name any of `absent`, by the rule of
/// [`substitute_args`], placeholders left in place: what a study file's command becomes when
/// those parameters leave its search space.
///
/// ```
/// use std::collections::BTreeSet;
/// let argv: Vec<String> = ["train.py", "--momentum", "{momentum}", "--lr={lr}"].map(String::from).to_vec();
/// let gone = BTreeSet::from(["momentum".to_string()]);
/// assert_eq!(caviar_run::drop_args(&argv, &gone), ["train.py", "--lr={lr}"]);
/// ```
pub fn drop_args(argv: &[String], absent: &std::collections::BTreeSet<String>) -> Vec<String> {
    kept_args(argv, |name| absent.contains(name))
        .cloned()
        .collect()
}

/// The arguments kept when the parameters `absent` says are missing: an argument naming one
/// goes, and the flag before it when it is the placeholder alone.
fn kept_args(argv: &[String], absent: impl Fn(&str) -> bool) -> impl Iterator<Item = &String> {
    let mut keep = vec![true; argv.len()];
    // Whether the last argument kept is a plain flag, so that a dropped value takes it along.
    let mut last_is_flag = false;
    for (i, arg) in argv.iter().enumerate() {
        let names = placeholders(arg);
        if names.iter().any(|n| absent(n)) {
            let alone = names.len() == 1 && arg == &format!("{{{}}}", names[0]);
            if alone && last_is_flag {
                keep[i - 1] = false;
            }
            keep[i] = false;
            last_is_flag = false;
            continue;
        }
        last_is_flag = arg.starts_with('-') && names.is_empty();
    }
    argv.iter().zip(keep).filter(|(_, k)| *k).map(|(a, _)| a)
}

/// Checks that the program exists and is executable, looking it up on PATH if it has no slash.
pub fn check_program(program: &str, workdir: Option<&Path>) -> Result<PathBuf, RunError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let path = match workdir {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        if !path.exists() {
            return Err(RunError::Program(program.into(), "does not exist".into()));
        }
        if !executable(&path) {
            return Err(RunError::Program(
                program.into(),
                "is not executable; run `chmod +x` on it or start it through its interpreter (e.g. [\"python3\", \"train.py\"])".into(),
            ));
        }
        return Ok(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| RunError::Program(program.into(), "is not found on PATH".into()))
}

/// The environment variable that carries parameter `param` to a command:
/// `CAVIAR_PARAM_` and the name upper-cased, with every other character than a letter or digit
/// as `_`. Two parameters with the same variable would hide one another, so a study must not
/// have them.
///
/// ```
/// assert_eq!(caviar_run::param_env_var("batch-size"), "CAVIAR_PARAM_BATCH_SIZE");
/// ```
pub fn param_env_var(param: &str) -> String {
    let upper: String = param
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CAVIAR_PARAM_{upper}")
}

/// Why the runner stopped a command.
#[derive(Clone, Debug, PartialEq)]
enum StopReason {
    Timeout,
    Interrupted,
    Pruned,
    Aborted(String),
    /// `caviar stop`: the user decided the trial is done.
    Requested,
}

/// Runs one trial: spawns the command, feeds each metric report to `on_report(step, value)`,
/// and stops the process group when the callback prunes, the timeout passes or `cancel` is set.
pub fn run_command(
    spec: &CommandSpec,
    input: &TrialInput<'_>,
    cancel: &AtomicBool,
    on_report: &mut dyn FnMut(u64, f64) -> Control,
) -> Result<RunResult, RunError> {
    run_command_live(spec, input, cancel, on_report, None)
}

/// Writes the parameters file: to a temporary name, then renamed, so a reader never sees half.
fn write_params_file(
    path: &Path,
    version: i64,
    params: &BTreeMap<String, ParamValue>,
    restore_from: Option<&Path>,
) -> std::io::Result<()> {
    let mut payload = serde_json::json!({"version": version, "params": params});
    if let Some(folder) = restore_from {
        payload["restore_from"] = serde_json::json!(folder);
    }
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, payload.to_string())?;
    std::fs::rename(&temporary, path)
}

/// [`run_command`] with live parameter changes: `live` is asked for pending changes every half
/// second, each new one is written to the parameters file (and `spec.on_change` signalled), and
/// an `applied=V` in a report line is passed back.
pub fn run_command_live(
    spec: &CommandSpec,
    input: &TrialInput<'_>,
    cancel: &AtomicBool,
    on_report: &mut dyn FnMut(u64, f64) -> Control,
    live: Option<&dyn LiveParams>,
) -> Result<RunResult, RunError> {
    let started = Instant::now();
    let program = spec.argv.first().ok_or(RunError::EmptyCommand)?;
    // `{seed}` is the trial's number unless a parameter has that name: a program that takes a
    // seed gets a different one in every trial (a re-test's repeats differ), reproducibly.
    let mut placeholders = input.params.clone();
    placeholders
        .entry(SEED_PLACEHOLDER.to_string())
        .or_insert(ParamValue::Int(input.number as i64));
    let args = substitute_args(&spec.argv[1..], &placeholders, &spec.optional)?;
    let program = substitute(program, &placeholders)?;

    let trial_file = trial_file_path(input);
    let payload = serde_json::json!({
        "study": input.study,
        "trial": input.number,
        "params": input.params,
    });
    std::fs::write(&trial_file, payload.to_string())
        .map_err(|e| RunError::TrialFile(trial_file.clone(), e))?;
    let _cleanup = RemoveOnDrop(trial_file.clone());
    let params_file = trial_file.with_extension("params.json");
    let mut current = input.params.clone();
    let mut written_version = 0i64;
    write_params_file(&params_file, 0, &current, None)
        .map_err(|e| RunError::TrialFile(params_file.clone(), e))?;
    let _cleanup_params = RemoveOnDrop(params_file.clone());
    let mut last_poll = Instant::now();

    let token = crate::tree::new_token();
    let mut cmd = Command::new(&program);
    cmd.args(&args)
        // Marks every descendant, even one that leaves the process group, so all die with the
        // trial.
        .env(crate::tree::TOKEN_VAR, &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("CAVIAR_TRIAL_FILE", &trial_file)
        .env("CAVIAR_PARAMS_FILE", &params_file)
        .env("CAVIAR_TRIAL_NUMBER", input.number.to_string())
        .env("CAVIAR_SEED", placeholders[SEED_PLACEHOLDER].to_string())
        .env("CAVIAR_STUDY", input.study)
        // Its own process group, so a stop reaches the command's children too.
        .process_group(0);
    // A worker killed outright (SIGKILL, OOM) must not leave its trial running unowned.
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    #[cfg(target_os = "linux")]
    unsafe {
        let worker_pid = std::process::id() as libc::pid_t;
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The worker may have died before the line above took effect.
            if libc::getppid() != worker_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    for (name, value) in input.params {
        cmd.env(param_env_var(name), value.to_string());
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Ok(RunResult {
                outcome: Outcome::Failed(format!("cannot start `{program}`: {e}")),
                elapsed: started.elapsed(),
                reports: 0,
                output: String::new(),
            })
        }
    };
    let pgid = child.id() as i32;
    ACTIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((pgid, token.clone()));

    let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let output = Arc::new(Mutex::new(VecDeque::with_capacity(OUTPUT_LINES)));
    let stderr_thread = child.stderr.take().map(|err| {
        let (tail, output) = (stderr_tail.clone(), output.clone());
        thread::spawn(move || {
            for_each_line(err, |line| {
                push_output(&output, &line);
                push_tail(&mut tail.lock().unwrap_or_else(|p| p.into_inner()), line);
                true
            })
        })
    });
    let (tx, rx) = mpsc::sync_channel::<String>(QUEUED_LINES);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdout_thread = thread::spawn(move || for_each_line(stdout, |line| tx.send(line).is_ok()));
    // A panic in the callback (a pruner's bug) must not leave the command running: it is held
    // here, the command is stopped, then the panic goes on.
    let mut callback_panic = None;

    let deadline = spec.timeout.map(|t| started + t);
    let mut last_metric: Option<f64> = None;
    let mut final_metric: Option<f64> = None;
    let mut reports = 0u64;
    let mut stop: Option<StopReason> = None;
    let mut stdout_open = true;
    let mut log_tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut exited_at: Option<Instant> = None;
    let mut last_step: Option<u64> = None;
    // An exploit's folder stays in the parameters file until the command acknowledges it.
    let mut reload: Option<(i64, PathBuf)> = None;
    // A paused trial's time does not count toward its timeout.
    let mut paused_since: Option<Instant> = None;
    let mut paused_before = Duration::ZERO;

    while stop.is_none() {
        if cancel.load(Ordering::Relaxed) {
            stop = Some(StopReason::Interrupted);
            break;
        }
        let paused_for = paused_before + paused_since.map_or(Duration::ZERO, |s| s.elapsed());
        if deadline.is_some_and(|d| Instant::now() >= d + paused_for) {
            stop = Some(StopReason::Timeout);
            break;
        }
        if let Some(live) = live {
            if last_poll.elapsed() >= LIVE_POLL {
                last_poll = Instant::now();
                let pending = live.pending();
                if pending.iter().any(|(v, _, _)| *v > written_version) {
                    for (version, name, value) in pending {
                        current.insert(name, value);
                        written_version = written_version.max(version);
                    }
                    // A failed write leaves the old file; the next poll tries again.
                    if write_params_file(
                        &params_file,
                        written_version,
                        &current,
                        reload.as_ref().map(|r| r.1.as_path()),
                    )
                    .is_ok()
                    {
                        if let Some(signal) = spec.on_change {
                            kill_group(pgid, signal);
                        }
                    } else {
                        written_version = 0;
                    }
                }
                let steer = live.steer(last_step);
                if steer.paused && paused_since.is_none() {
                    kill_group(pgid, libc::SIGSTOP);
                    paused_since = Some(Instant::now());
                } else if !steer.paused {
                    if let Some(since) = paused_since.take() {
                        kill_group(pgid, libc::SIGCONT);
                        paused_before += since.elapsed();
                    }
                }
                if steer.stop {
                    stop = Some(StopReason::Requested);
                }
                if stop.is_some() {
                    break;
                }
            }
        }
        if stdout_open {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    push_output(&output, &line);
                    if let (Some(live), Some((key, value))) = (live, parse_attr(&line)) {
                        live.user_attr(key, value);
                    }
                    match parse_report(&line) {
                        Some(report) => {
                            // Every other number on the line is a metric of its own, at the
                            // line's step (its epoch or step, else the objective's count).
                            let others: Vec<(String, f64)> = report
                                .values
                                .iter()
                                .filter(|(k, _)| {
                                    !matches!(k.as_str(), "epoch" | "step" | "applied")
                                        && *k != spec.metric
                                })
                                .cloned()
                                .collect();
                            if let (Some(live), false) = (live, others.is_empty()) {
                                let counts = report.get(&spec.metric).is_some() && !report.is_final;
                                let step = report.step().unwrap_or(reports + u64::from(counts));
                                live.metrics(step, &others);
                            }
                            if let (Some(live), Some(version)) = (live, report.get("applied")) {
                                let step = report.step().unwrap_or(reports);
                                if version.is_finite() && version >= 1.0 {
                                    live.applied(version as i64, step);
                                    if reload.as_ref().is_some_and(|r| version as i64 >= r.0) {
                                        reload = None;
                                    }
                                }
                            }
                            if let Some(v) = report.get(&spec.metric) {
                                if report.is_final {
                                    final_metric = Some(v);
                                } else {
                                    reports += 1;
                                    last_metric = Some(v);
                                    let step = report.step().unwrap_or(reports);
                                    last_step = Some(step);
                                    let control = std::panic::catch_unwind(
                                        std::panic::AssertUnwindSafe(|| on_report(step, v)),
                                    );
                                    match control {
                                        Ok(Control::Continue) => {}
                                        Ok(Control::Prune) => stop = Some(StopReason::Pruned),
                                        Ok(Control::Reload {
                                            version,
                                            params,
                                            restore_from,
                                        }) => {
                                            current = params;
                                            written_version = written_version.max(version);
                                            reload = Some((written_version, restore_from.clone()));
                                            // A failed write is the trial's end: it cannot
                                            // take the exploit it was told to.
                                            match write_params_file(
                                                &params_file,
                                                written_version,
                                                &current,
                                                Some(&restore_from),
                                            ) {
                                                Ok(()) => {
                                                    if let Some(signal) = spec.on_change {
                                                        kill_group(pgid, signal);
                                                    }
                                                }
                                                Err(e) => {
                                                    stop = Some(StopReason::Aborted(format!(
                                                        "could not write {}: {e}",
                                                        params_file.display()
                                                    )))
                                                }
                                            }
                                        }
                                        Ok(Control::Abort(why)) => {
                                            stop = Some(StopReason::Aborted(why))
                                        }
                                        Err(panic) => {
                                            callback_panic = Some(panic);
                                            stop = Some(StopReason::Aborted("panicked".into()));
                                        }
                                    }
                                }
                            }
                        }
                        None => push_tail(&mut log_tail, line),
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else {
            thread::sleep(Duration::from_millis(20));
        }
        if exited_at.is_none() && has_exited(pgid) {
            exited_at = Some(Instant::now());
        }
        // After the exit, drain what it printed; a child it left behind holding stdout open
        // gets one second.
        if let Some(at) = exited_at {
            if !stdout_open || at.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
    }

    // The leader is not reaped until its group has been signalled, so the group id cannot have
    // been recycled for someone else's processes.
    if paused_since.is_some() {
        // A stopped process takes no TERM until it runs again.
        kill_group(pgid, libc::SIGCONT);
    }
    if stop.is_some() {
        stop_group(pgid, spec.kill_grace);
    } else {
        // Children the command left behind die with the trial.
        kill_group(pgid, libc::SIGKILL);
    }
    // So do descendants that left the group (setsid, double forks): they would hold its pipes
    // open and run on unowned.
    crate::tree::kill_marked(&token, pgid, Duration::from_secs(2));
    let status = child.wait().ok();
    ACTIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(g, _)| *g != pgid);
    drop(rx);
    // Whatever still holds the pipes (a process that scrubbed its environment) cannot hold the
    // trial: the readers get a moment to drain, then are left to end on their own.
    let readers_until = Instant::now() + Duration::from_millis(500);
    let readers = [Some(stdout_thread), stderr_thread];
    for reader in readers.into_iter().flatten() {
        while !reader.is_finished() && Instant::now() < readers_until {
            thread::sleep(Duration::from_millis(5));
        }
        if reader.is_finished() {
            let _ = reader.join();
        }
    }
    if let Some(panic) = callback_panic {
        std::panic::resume_unwind(panic);
    }
    let elapsed = started.elapsed();
    let tail = {
        let err = stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::new();
        if !err.is_empty() {
            text.push_str("\n--- last lines of stderr ---\n");
            text.push_str(&err.iter().cloned().collect::<Vec<_>>().join("\n"));
        }
        if !log_tail.is_empty() {
            text.push_str("\n--- last lines of stdout ---\n");
            text.push_str(&log_tail.iter().cloned().collect::<Vec<_>>().join("\n"));
        }
        text
    };

    let metric = &spec.metric;
    let outcome = match stop {
        Some(StopReason::Pruned) => Outcome::Pruned,
        Some(StopReason::Aborted(why)) => Outcome::Failed(why),
        Some(StopReason::Interrupted) => Outcome::Failed("interrupted".into()),
        Some(StopReason::Requested) => match last_metric {
            Some(v) if v.is_finite() => Outcome::Complete(v),
            Some(v) => Outcome::Failed(format!("stopped on request (caviar stop); its last {metric} was {v}, not a finite number")),
            None => Outcome::Failed(format!(
                "stopped on request (caviar stop) before it reported `{metric}`{tail}"
            )),
        },
        Some(StopReason::Timeout) => Outcome::Failed(format!(
            "timed out after {:.1} s (timeout = {} s); its process group was stopped{tail}",
            elapsed.as_secs_f64(),
            spec.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0)
        )),
        None => match status {
            Some(s) if s.success() => match final_metric.or(last_metric) {
                Some(v) if v.is_finite() => Outcome::Complete(v),
                Some(v) => Outcome::Failed(format!("reported {metric} = {v}, not a finite number{tail}")),
                None => Outcome::Failed(format!(
                    "exited with status 0 but never reported `{metric}`; print lines like `epoch=1 {metric}=0.93` on stdout{tail}"
                )),
            },
            Some(s) => Outcome::Failed(format!("{}{tail}", describe_exit(s))),
            None => Outcome::Failed(format!("lost track of the process{tail}")),
        },
    };
    let output = output
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    Ok(RunResult {
        outcome,
        elapsed,
        reports,
        output,
    })
}

fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => format!("killed by signal {sig} ({})", signal_name(sig)),
        None => "ended abnormally".into(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV, a crash",
        libc::SIGABRT => "SIGABRT, an abort",
        libc::SIGKILL => "SIGKILL; out of memory?",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        _ => "signal",
    }
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: killpg only sends a signal; an empty or foreign group yields an error we ignore.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// TERM to the group, up to `grace` for the leader to exit, then KILL to the group.
fn stop_group(pgid: i32, grace: Duration) {
    kill_group(pgid, libc::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until && !has_exited(pgid) {
        thread::sleep(Duration::from_millis(20));
    }
    kill_group(pgid, libc::SIGKILL);
}

/// Whether process `pid` (our child) has exited, without reaping it.
fn has_exited(pid: i32) -> bool {
    // SAFETY: waitid writes into the zeroed siginfo we own; WNOWAIT leaves the child waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == 0 && info.si_pid() == pid
    }
}

fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(cut_line(&line));
}

/// The note the reader appends to a line it cut.
const CUT_NOTE: &str = " … [line cut: ";

/// `line`, cut to [`OUTPUT_LINE_BYTES`] on a character boundary; the reader's note on a line it
/// cut is kept.
fn cut_line(line: &str) -> String {
    if line.len() <= OUTPUT_LINE_BYTES {
        return line.to_string();
    }
    let (body, note) = match line.rfind(CUT_NOTE) {
        Some(at) => line.split_at(at),
        None => (line, ""),
    };
    let mut cut = OUTPUT_LINE_BYTES.min(body.len());
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut kept = body[..cut].to_string();
    kept.push_str(if note.is_empty() { "…" } else { note });
    kept
}

fn push_output(output: &Mutex<VecDeque<String>>, line: &str) {
    let kept = cut_line(line);
    let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
    if output.len() == OUTPUT_LINES {
        output.pop_front();
    }
    output.push_back(kept);
}

/// Feeds each line of `stream` (lossy UTF-8, line end trimmed) to `f` until the stream ends or
/// `f` returns false. A line longer than [`MAX_LINE_BYTES`] is cut there and ends with a note of
/// how many bytes were skipped; what follows its newline is read as usual.
fn for_each_line(stream: impl Read, mut f: impl FnMut(String) -> bool) {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line: Vec<u8> = Vec::new();
    let mut skipped: u64 = 0;
    let finish = |line: &[u8], skipped: u64| {
        let mut text = String::from_utf8_lossy(line).trim_end().to_string();
        if skipped > 0 {
            text.push_str(&format!(
                "{CUT_NOTE}{skipped} more bytes skipped; lines are read up to {MAX_LINE_BYTES} bytes]"
            ));
        }
        text
    };
    loop {
        let (ended, used) = match reader.fill_buf() {
            Ok([]) => {
                if !line.is_empty() || skipped > 0 {
                    f(finish(&line, skipped));
                }
                return;
            }
            Ok(buf) => {
                let newline = buf.iter().position(|&b| b == b'\n');
                let chunk = &buf[..newline.unwrap_or(buf.len())];
                let room = MAX_LINE_BYTES.saturating_sub(line.len()).min(chunk.len());
                line.extend_from_slice(&chunk[..room]);
                skipped += (chunk.len() - room) as u64;
                (newline.is_some(), newline.map_or(buf.len(), |i| i + 1))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        reader.consume(used);
        if ended {
            if !f(finish(&line, skipped)) {
                return;
            }
            line.clear();
            // A long line's buffer is not kept for the short ones after it.
            line.shrink_to(4096);
            skipped = 0;
        }
    }
}

fn trial_file_path(input: &TrialInput<'_>) -> PathBuf {
    let safe: String = input
        .study
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // A counter too: two runs of one trial number in one process (tests, two studies of one
    // name in different storages) must not share, and delete, each other's files.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "caviar-{}-{run}-{safe}-{}.json",
        std::process::id(),
        input.number
    ))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
