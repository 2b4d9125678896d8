//! Runs the Python `wfdb` / pandas oracle (`tests/wfdb_oracle.py`) for the integration tests.

use std::path::Path;
use std::process::Command;

use ecgfm_test_support::python_stdout;

/// Runs `tests/wfdb_oracle.py` with `args` in `cwd` and returns its output lines split on tabs
/// (`None`: skipped, python3 or the `wfdb` package is missing). Panics with the oracle's stderr
/// when it fails.
pub fn run_oracle(cwd: &Path, args: &[String]) -> Option<Vec<Vec<String>>> {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wfdb_oracle.py");
    let stdout = python_stdout(
        Command::new("python3")
            .arg(&script)
            .args(args)
            .current_dir(cwd),
        &["wfdb", "pandas"],
        "the wfdb oracle",
    )?;
    let text = String::from_utf8(stdout).expect("oracle output is UTF-8");
    Some(
        text.lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect(),
    )
}
