//! Running the Python side of a benchmark (PyTorch, pyarrow) and reading its result: every
//! script in bench/ prints one JSON object as its last line.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `bench/NAME` relative to the working directory, else to the source tree.
fn script_path(name: &str) -> PathBuf {
    let local = Path::new("bench").join(name);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bench")
        .join(name)
}

/// Runs `python SCRIPT --flag value ...` and parses the JSON object on its last line of output;
/// `SCRIPT` is `script` when given, else `bench/<default_name>`.
pub fn run_json_script(
    python: &str,
    script: Option<&Path>,
    default_name: &str,
    flags: &[(&str, String)],
) -> Result<serde_json::Value> {
    let script = script.map_or_else(|| script_path(default_name), Path::to_path_buf);
    let output = Command::new(python)
        .arg(&script)
        .args(
            flags
                .iter()
                .flat_map(|(flag, value)| [*flag, value.as_str()]),
        )
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
