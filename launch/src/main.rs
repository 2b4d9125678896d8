//! The `ecgfm` command: parses the command line and hands over to `ecgfm_launch`.

use clap::Parser;
use std::io::Write;

fn main() -> std::process::ExitCode {
    ecgfm_launch::signals::ignore_file_size_limit_signal();
    let cli = ecgfm_launch::cli::Cli::parse();
    ecgfm_launch::logging::init(cli.verbose);
    match ecgfm_launch::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Not `eprintln!`, which panics when the write fails: after a closed terminal or ssh
            // session (SIGHUP, a stop with its checkpoint) every write to it fails, and the exit
            // status must still say the run stopped. The commands print through `say!` for the
            // same reason (`ecgfm_launch::say`).
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                ecgfm_launch::error_text(&err)
            );
            ecgfm_launch::child_error::report(&err);
            if ecgfm_launch::signals::is_stop(&err) {
                std::process::ExitCode::from(ecgfm_launch::signals::STOPPED_EXIT)
            } else if ecgfm_launch::damaged_data::is_damaged(&err) {
                std::process::ExitCode::from(ecgfm_launch::damaged_data::DAMAGED_EXIT)
            } else if ecgfm_launch::bad_config::is_bad_config(&err) {
                std::process::ExitCode::from(ecgfm_launch::bad_config::CONFIG_EXIT)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
