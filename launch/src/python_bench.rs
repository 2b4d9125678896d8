//! Running the Python side of a benchmark (PyTorch, pyarrow) and reading its result: every
//! script in bench/ prints one JSON object as its last line. When the interpreter or one of the
//! script's packages is missing, the comparison is skipped with a message saying why, and the
//! benchmark still prints ecgfm's own figures.

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

/// What the model scripts need beyond `import torch` (their module name `torch2`): PyTorch
/// 2.0's fused attention (Debian's python3-torch 1.13 imports but lacks it).
const TORCH_2: &str = "import torch.nn.functional as F; assert hasattr(F, \
    'scaled_dot_product_attention'), 'torch ' + torch.__version__ + ' is older than 2.0, which \
    the comparison needs'";

/// Why the comparison cannot run: `python` does not start, or lacks one of `modules` (`torch2`:
/// torch 2.0 or newer). `pythonpath`, when given, is the `PYTHONPATH` it runs with.
fn missing_prerequisite(
    python: &str,
    modules: &[&str],
    pythonpath: Option<&Path>,
) -> Option<String> {
    let imports = modules
        .iter()
        .map(|&m| match m {
            "torch2" => format!("import torch; {TORCH_2}"),
            m => format!("import {m}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let names: Vec<&str> = modules
        .iter()
        .map(|&m| if m == "torch2" { "torch" } else { m })
        .collect();
    let mut command = Command::new(python);
    if let Some(path) = pythonpath {
        command.env("PYTHONPATH", path);
    }
    match command.args(["-c", &imports]).output() {
        Err(e) => Some(format!("cannot run {python}: {e}")),
        Ok(out) if out.status.success() => None,
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or("import failed").trim();
            Some(format!(
                "{python} cannot import {} ({last}); pip install --upgrade {}",
                names.join(", "),
                names.join(" ")
            ))
        }
    }
}

/// The PyTorch side of a benchmark's command line (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone)]
pub struct TorchSide {
    /// The PyTorch script to compare with (default: the benchmark's script in bench/).
    #[arg(long, value_name = "FILE")]
    pub torch_script: Option<PathBuf>,
    /// Python interpreter that has torch.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the PyTorch comparison.
    #[arg(long)]
    pub no_torch: bool,
}

impl TorchSide {
    /// `run_comparison` of `--torch-script` (default `bench/default_name`) under `--python`;
    /// `None` with `--no-torch` or when it was skipped.
    pub fn run(
        &self,
        modules: &[&str],
        default_name: &str,
        flags: &[(&str, String)],
        switches: &[&str],
    ) -> Result<Option<serde_json::Value>> {
        if self.no_torch {
            return Ok(None);
        }
        run_comparison(
            &self.python,
            modules,
            self.torch_script.as_deref(),
            default_name,
            flags,
            switches,
        )
    }
}

/// Runs the comparison script when `python` has `modules`: `Some` of its JSON result, or `None`
/// after printing why the comparison was skipped. A script that starts and then fails is an error.
pub fn run_comparison(
    python: &str,
    modules: &[&str],
    script: Option<&Path>,
    default_name: &str,
    flags: &[(&str, String)],
    switches: &[&str],
) -> Result<Option<serde_json::Value>> {
    if let Some(reason) = missing_prerequisite(python, modules, None) {
        say!("comparison skipped: {reason}");
        return Ok(None);
    }
    run_json_script(python, script, default_name, flags, switches).map(Some)
}

/// Runs `python SCRIPT --flag value ... --switch ...` and parses the JSON object on its last
/// line of output; `SCRIPT` is `script` when given, else `bench/<default_name>`.
fn run_json_script(
    python: &str,
    script: Option<&Path>,
    default_name: &str,
    flags: &[(&str, String)],
    switches: &[&str],
) -> Result<serde_json::Value> {
    let script = script.map_or_else(|| script_path(default_name), Path::to_path_buf);
    let output = Command::new(python)
        .arg(&script)
        .args(
            flags
                .iter()
                .flat_map(|(flag, value)| [*flag, value.as_str()]),
        )
        .args(switches)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_module_or_a_torch_before_2_skips_the_comparison_saying_why() {
        let why = missing_prerequisite("python3", &["no_such_module_ecgfm"], None).unwrap();
        assert!(why.contains("no_such_module_ecgfm"), "{why}");
        // A torch before 2.0 (as Debian's python3-torch 1.13, which scripts/test.sh installs for
        // /usr/bin/python3 where pip cannot) imports but lacks scaled_dot_product_attention: a
        // stand-in of it on PYTHONPATH, so this runs whichever torch the machine has, if any.
        let dir = std::env::temp_dir().join(format!("ecgfm-old-torch-{}", std::process::id()));
        let nn = dir.join("torch/nn");
        std::fs::create_dir_all(&nn).unwrap();
        std::fs::write(dir.join("torch/__init__.py"), "__version__ = '1.13.1'\n").unwrap();
        std::fs::write(nn.join("__init__.py"), "").unwrap();
        std::fs::write(nn.join("functional.py"), "def relu(x): return x\n").unwrap();
        let why = missing_prerequisite("python3", &["torch2"], Some(&dir)).unwrap();
        assert!(why.contains("torch 1.13.1 is older than 2.0"), "{why}");
        assert!(why.contains("pip install --upgrade torch"), "{why}");
        // The all-reduce's gloo comparison runs with it.
        assert_eq!(
            missing_prerequisite("python3", &["torch"], Some(&dir)),
            None
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
