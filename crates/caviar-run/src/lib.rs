//! caviar-run: runs trials as external commands, in any language.
//!
//! Parameters reach the command as `{name}` placeholders in its arguments, as
//! `CAVIAR_PARAM_<NAME>` environment variables, and as a JSON file named by `CAVIAR_TRIAL_FILE`.
//! The command reports on stdout, one line per report, as `key=value` pairs
//! (`epoch=3 val_acc=0.81 loss=0.4`). A timed-out, pruned or interrupted command is stopped with
//! its whole process group (TERM, a grace period, then KILL).
#![warn(missing_docs)]

mod command;
mod report;
mod worker;

pub use command::{
    check_program, kill_running_commands, run_command, substitute, CommandSpec, Control, RunError,
    RunResult, TrialInput, OUTPUT_LINES,
};
pub use report::{parse_report, Report};
pub use worker::{orphan_reason, WorkerId};
