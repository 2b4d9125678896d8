//! `results/` beside a sweep's `report.md`: the records the report was made from (`sweep.jsonl`),
//! the sweep file (`sweep.toml`), the sizes its budgets left out (`left-out.json`) and every run's `ecgfm eval` result files with their scored
//! test units. A published report can then be checked and extended without its run folders:
//! `ecgfm sweep report results/` makes the same verdict again (the result files are read from
//! `results/RUN/` where there is no run folder, `record::read_result_files`), `ecgfm compare`
//! with the report's bootstrap seed on two of these files prints the report's paired interval,
//! and a run trained later (another seed, on another machine) can be set against them.

use crate::analysis::{Analysis, REPORT_SEED};
use crate::expand::LEFT_OUT_FILE;
use crate::record::{ResultFile, SweepRecord};
use crate::report::{io, ReportError};
use std::fmt::Write as _;
use std::path::Path;

/// The folder's name in the report's folder.
pub const FOLDER: &str = "results";

/// The sweep file of a sweep folder, copied into `results/`.
const SWEEP_FILE: &str = "sweep.toml";

/// What `write` copied.
#[derive(Clone, Debug, Default)]
pub struct Copied {
    /// Result files written.
    pub written: usize,
    /// Result files that could not be read from their run folder, each as `PATH (reason)`:
    /// left out, the rest copied.
    pub left_out: Vec<String>,
}

/// The path of `run`'s result file on `task` under `protocol`, relative to the report's folder.
fn published(run: &str, task: &str, protocol: &str) -> String {
    format!("{FOLDER}/{run}/eval-{task}-{protocol}.json")
}

/// Writes `out/results/`: `sweep.jsonl` with `records` (one line each), `dir`'s `sweep.toml`
/// and `left-out.json` where it has them, and the result `files` the report read from the run folders under `dir`
/// (`record::read_result_files`), each as
/// `results/RUN/eval-TASK-PROTOCOL.json` in compact JSON with the same content but for paths
/// into the sweep folder, written relative to it.
pub fn write(
    dir: &Path,
    out: &Path,
    records: &[SweepRecord],
    files: Vec<ResultFile>,
) -> Result<Copied, ReportError> {
    let root = out.join(FOLDER);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let mut copied = Copied::default();
    for file in files {
        let mut json = match file.json {
            Ok(json) => json,
            Err(why) => {
                copied
                    .left_out
                    .push(format!("{} ({why})", file.path.display()));
                continue;
            }
        };
        relative_paths(&mut json, dir);
        let path = out.join(published(&file.run, &file.task, &file.protocol));
        let folder = path.parent().expect("a result file has a folder");
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        std::fs::write(&path, json.to_string()).map_err(io(&path))?;
        copied.written += 1;
    }
    let mut lines = String::new();
    for r in records {
        let line = serde_json::to_string(r).expect("a sweep record serialises");
        let _ = writeln!(lines, "{line}");
    }
    let jsonl = root.join("sweep.jsonl");
    std::fs::write(&jsonl, lines).map_err(io(&jsonl))?;
    for name in [SWEEP_FILE, LEFT_OUT_FILE] {
        let from = dir.join(name);
        match std::fs::read(&from) {
            Ok(text) => {
                let to = root.join(name);
                std::fs::write(&to, text).map_err(io(&to))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&from)(e)),
        }
    }
    Ok(copied)
}

/// Writes the result file's checkpoint and dataset paths relative to the sweep folder `dir` where
/// they lie in it (`runs/RUN/checkpoints/...`, `data/NAME`), so a published copy names no path
/// of the machine it was made on.
fn relative_paths(json: &mut serde_json::Value, dir: &Path) {
    let prefixes = [Some(dir.to_path_buf()), dir.canonicalize().ok()];
    for key in ["checkpoint", "data"] {
        let Some(value) = json.get_mut(key) else {
            continue;
        };
        let Some(path) = value.as_str().map(Path::new) else {
            continue;
        };
        let inside = prefixes
            .iter()
            .flatten()
            .find_map(|prefix| path.strip_prefix(prefix).ok());
        if let Some(inside) = inside {
            *value = serde_json::Value::String(inside.display().to_string());
        }
    }
}

/// The report's section on `results/`: what it holds and the `ecgfm compare` command that prints
/// the verdict's first paired interval (the smallest size against the largest of the first
/// budget, on the first task both probed with scored units, every seed of each).
pub fn section(md: &mut String, a: &Analysis, copied: &Copied) {
    let _ = writeln!(
        md,
        "## Result files\n\n`{FOLDER}/` beside this report holds `sweep.jsonl` (the records it \
         was made from) and each run's `ecgfm eval` result files with their scored test units \
         ({} files) and the sweep file, so its intervals can be checked, the report made again \
         (`ecgfm sweep report {FOLDER}`), and later runs set against these, without the run \
         folders. `ecgfm compare --seed {REPORT_SEED}` on them prints the report's paired \
         intervals: one `--a` or `--b` per seed, `--resample records` for the interval over the \
         test set alone.",
        copied.written
    );
    if !copied.left_out.is_empty() {
        let _ = writeln!(
            md,
            "\n{} result file(s) named in sweep.jsonl could not be read from their run folders, \
             so they are not here: {}.",
            copied.left_out.len(),
            copied.left_out.join(", ")
        );
    }
    if let Some(command) = example(a) {
        let _ = writeln!(
            md,
            "\nThe first comparison of the verdict:\n\n```sh\n{command}\n```"
        );
    }
    let _ = writeln!(md);
}

/// `ecgfm compare` of the first group's smallest and largest sizes on the first task whose probe
/// the report pairs (every run of both kept its scored units, and they are the same units),
/// every seed of each.
fn example(a: &Analysis) -> Option<String> {
    let g = a.groups.first()?;
    let (small, large) = (g.sizes.first()?, g.sizes.last()?);
    if small.size == large.size {
        return None;
    }
    a.tasks.iter().find_map(|task| {
        let sides = [("a", small.probe(task)?), ("b", large.probe(task)?)];
        if sides.iter().any(|(_, t)| t.units.len() != t.runs.len()) {
            return None;
        }
        let mut units = sides.iter().flat_map(|(_, t)| &t.units);
        let first = units.next()?;
        if !units.all(|u| u.same_units(first)) {
            return None;
        }
        let mut command = format!("ecgfm compare --seed {REPORT_SEED} --protocol probe");
        for (side, t) in sides {
            for run in &t.runs {
                let _ = write!(
                    command,
                    " \\\n    --{side} {}",
                    published(run, task, "probe")
                );
            }
        }
        Some(command)
    })
}
