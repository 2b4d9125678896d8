//! Running the Python side of a benchmark (PyTorch, pyarrow) and reading its result: every
//! script in bench/ prints one JSON object as its last line.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `bench/NAME` relative to the working directory, else to the source tree.
pub fn script_path(name: &str) -> PathBuf {
    let local = Path::new("bench").join(name);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bench")
        .join(name)
}

/// Runs `python script args...` and parses the JSON object on its last line of output.
pub fn run_json_script(python: &str, script: &Path, args: &[String]) -> Result<serde_json::Value> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("{} printed no JSON last line", script.display()))
}
