//! Runs the Python `wfdb` / pandas oracle (`tests/wfdb_oracle.py`) for the integration tests.

use std::path::Path;
use std::process::Command;

/// Runs `tests/wfdb_oracle.py` with `args` in `cwd` and returns its output lines split on tabs.
/// Panics with a clear message when python3 or the `wfdb` package is missing.
pub fn run_oracle(cwd: &Path, args: &[String]) -> Vec<Vec<String>> {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wfdb_oracle.py");
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
