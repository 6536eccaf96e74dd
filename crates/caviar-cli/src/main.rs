//! The `caviar` command; everything it does is in the library (`caviar_cli::main_from`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(caviar_cli::main_from(std::env::args_os()))
}
