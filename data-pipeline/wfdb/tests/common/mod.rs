//! Helpers shared by the integration tests: locating the shared real-data folder and running
//! the Python `wfdb` oracle.

use std::path::PathBuf;
use std::process::Command;

/// The shared data folder (`ECGFM_SHARED_DATA` or `<workspace>/../shared/data`), or `None`
/// after printing a skip message when it is absent.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("ECGFM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping {test}: shared data folder {} not found",
            dir.display()
        );
        None
    }
}

/// Runs `tests/wfdb_oracle.py` with `args` in `cwd` and returns its output lines split on tabs.
/// Panics with a clear message when python3 or the `wfdb` package is missing.
pub fn run_oracle(cwd: &PathBuf, args: &[String]) -> Vec<Vec<String>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wfdb_oracle.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("python3 is required for the wfdb oracle tests (CI installs it)");
    assert!(
        output.status.success(),
        "the wfdb oracle failed (is the Python `wfdb` package installed? pip install wfdb):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("oracle output is UTF-8")
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}
