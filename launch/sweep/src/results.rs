//! `results/` beside a sweep's `report.md`: the records the report was made from (`sweep.jsonl`)
//! and every run's `ecgfm eval` result files with their scored test units. A published report
//! can then be checked and extended without its run folders: `ecgfm compare` with the report's
//! bootstrap seed on two of these files prints the report's paired interval, and a run trained
//! later (another seed, on another machine) can be set against them.

use crate::analysis::{loss_of, Analysis, REPORT_SEED};
use crate::record::{eval_file, SweepRecord};
use crate::report::{io, ReportError};
use std::fmt::Write as _;
use std::path::Path;

/// The folder's name in the report's folder.
pub const FOLDER: &str = "results";

/// What `write` copied.
#[derive(Clone, Debug, Default)]
pub struct Copied {
    /// Result files written, as `results/RUN/eval-TASK-PROTOCOL.json`.
    pub files: Vec<String>,
    /// Result files a record names that could not be read from its run folder, each as
    /// `PATH (reason)`: left out, the rest copied.
    pub left_out: Vec<String>,
}

/// The path of `run`'s result file on `task` under `protocol`, relative to the report's folder.
fn published(run: &str, task: &str, protocol: &str) -> String {
    format!("{FOLDER}/{run}/eval-{task}-{protocol}.json")
}

/// Writes `out/results/`: `sweep.jsonl` with `records` (one line each), and each record's result
/// files, read from its run folder under `dir`, as compact JSON with the same content but for
/// paths into the sweep folder, written relative to it.
pub fn write(dir: &Path, out: &Path, records: &[SweepRecord]) -> Result<Copied, ReportError> {
    let root = out.join(FOLDER);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let mut lines = String::new();
    let mut copied = Copied::default();
    for r in records {
        let line = serde_json::to_string(r).expect("a sweep record serialises");
        let _ = writeln!(lines, "{line}");
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for e in &r.eval {
            let key = (e.task.as_str(), e.protocol.as_str());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let from = eval_file(&dir.join(&r.run_dir), &e.task, &e.protocol);
            let to = published(&r.run, &e.task, &e.protocol);
            let read = std::fs::read_to_string(&from).map_err(|e| e.to_string());
            let mut json = match read.and_then(|text| {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("invalid JSON: {e}"))
            }) {
                Ok(json) => json,
                Err(why) => {
                    copied.left_out.push(format!("{} ({why})", from.display()));
                    continue;
                }
            };
            relative_paths(&mut json, dir);
            let path = out.join(&to);
            let folder = path.parent().expect("a result file has a folder");
            std::fs::create_dir_all(folder).map_err(io(folder))?;
            std::fs::write(&path, json.to_string()).map_err(io(&path))?;
            copied.files.push(to);
        }
    }
    let jsonl = root.join("sweep.jsonl");
    std::fs::write(&jsonl, lines).map_err(io(&jsonl))?;
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
         ({} files), so its intervals can be checked, and later runs set against these, without \
         the run folders. `ecgfm compare --seed {REPORT_SEED}` on them prints the report's paired \
         intervals: one `--a` or `--b` per seed, `--resample records` for the interval over the \
         test records alone.",
        copied.files.len()
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
    if let Some(command) = example(a, copied) {
        let _ = writeln!(
            md,
            "\nThe first comparison of the verdict:\n\n```sh\n{command}\n```"
        );
    }
    let _ = writeln!(md);
}

/// `ecgfm compare` of the first group's smallest and largest sizes on the first task whose
/// probe files both sides have.
fn example(a: &Analysis, copied: &Copied) -> Option<String> {
    let g = a.groups.first()?;
    let (small, large) = (g.sizes.first()?, g.sizes.last()?);
    if small.size == large.size {
        return None;
    }
    let files_of = |size: &str, task: &str| -> Vec<String> {
        a.records
            .iter()
            .filter(|r| {
                r.dataset == g.dataset
                    && r.budget == g.budget
                    && r.fraction == g.fraction
                    && r.size == size
                    && loss_of(r).is_some()
                    && r.eval_result(task, "probe")
                        .is_some_and(|e| e.units.is_some())
            })
            .map(|r| published(&r.run, task, "probe"))
            .filter(|f| copied.files.contains(f))
            .collect()
    };
    a.tasks.iter().find_map(|task| {
        let (from, to) = (files_of(&small.size, task), files_of(&large.size, task));
        if from.is_empty() || to.is_empty() {
            return None;
        }
        let mut command = format!("ecgfm compare --seed {REPORT_SEED} --protocol probe");
        for (side, files) in [("a", &from), ("b", &to)] {
            for f in files {
                let _ = write!(command, " \\\n    --{side} {f}");
            }
        }
        Some(command)
    })
}
