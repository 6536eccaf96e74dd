//! caviar-run: runs trials as external commands, in any language.
//!
//! Parameters reach the command as `{name}` placeholders in its arguments, as
//! `CAVIAR_PARAM_<NAME>` environment variables, and as a JSON file named by `CAVIAR_TRIAL_FILE`;
//! `{seed}` and `CAVIAR_SEED` give each trial its own seed (its number).
//! The command reports on stdout, one line per report, as `key=value` pairs
//! (`epoch=3 val_acc=0.81 loss=0.4`). A timed-out, pruned or interrupted command is stopped with
//! its whole process group (TERM, a grace period, then KILL).
#![warn(missing_docs)]

mod command;
mod report;
mod tree;
mod worker;

pub use command::{
    check_program, drop_args, kill_running_commands, param_env_var, parse_attr, run_command,
    run_command_live, substitute, substitute_args, CommandSpec, Control, LiveParams, RunError,
    RunResult, TrialInput, MAX_LINE_BYTES, OUTPUT_LINES, SEED_PLACEHOLDER,
};
pub use report::{is_report_key, parse_report, Report};
pub use tree::{adopt_orphans, kill_marked, kill_orphans, marked_processes, TOKEN_VAR};
pub use worker::{orphan_reason, WorkerId};
