//! The `ecgfm` command: parses the command line and hands over to `ecgfm_launch`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ecgfm_launch::cli::Cli::parse();
    ecgfm_launch::logging::init(cli.verbose);
    match ecgfm_launch::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", ecgfm_launch::error_text(&err));
            ecgfm_launch::child_error::report(&err);
            std::process::ExitCode::FAILURE
        }
    }
}
