//! The `ecgfm` command: parses the command line and hands over to `ecgfm_launch`.

use clap::Parser;
use std::io::Write;

fn main() -> std::process::ExitCode {
    end_by_sigpipe_on_closed_stdout();
    let cli = ecgfm_launch::cli::Cli::parse();
    ecgfm_launch::logging::init(cli.verbose);
    match ecgfm_launch::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Not `eprintln!`, which panics when the write fails: after a closed terminal or ssh
            // session (SIGHUP, a stop with its checkpoint) every write to it fails, and the exit
            // status must still say the run stopped.
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

/// Output piped into a reader that stopped (`ecgfm data inspect URL | head`): `println!`
/// panics on the broken pipe, since Rust ignores SIGPIPE (so that a write to a closed socket,
/// ours or NCCL's, is an error rather than death). This hook ends ecgfm there as other
/// command-line tools end, by SIGPIPE and silently; every other panic goes to the default hook.
fn end_by_sigpipe_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map_or("", String::as_str);
        let epipe = format!("(os error {})", libc::EPIPE);
        if text.starts_with("failed printing to stdout") && text.ends_with(&epipe) {
            // SAFETY: restoring the default action and raising the signal in this process.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        default(info);
    }));
}
