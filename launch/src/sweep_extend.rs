//! `ecgfm sweep run FILE --out DIR --extend`: grow a sweep in place (another budget, seed, size or
//! data fraction) without training its runs again. The new file must plan every run of the sweep
//! in DIR exactly as the old one did (same name, same settings, same steps and learning rate)
//! and evaluate them alike (same tasks, datasets and first seed); then it becomes DIR's
//! sweep.toml, the old one kept as sweep.K.toml, and `sweep run` trains only what is new.

use anyhow::{bail, Context, Result};
use ecgfm_sweep::{RunPlan, SweepPlan, SweepSpec};
use std::path::{Path, PathBuf};

/// What an extension keeps and adds.
pub struct Extension {
    /// Runs of the old file, planned identically by the new one.
    pub kept: usize,
    /// Runs only the new file plans.
    pub added: usize,
    /// Where the old sweep file now is.
    pub previous: PathBuf,
}

/// Parses the folder's sweep file `old_text` and checks that `new` shares what an extension
/// cannot change: the evaluations, the datasets it ingests and merges, the first seed. Runs
/// before any data is prepared for the new file.
pub fn check_shared(dir: &Path, old_text: &str, new: &SweepSpec) -> Result<SweepSpec> {
    let old = SweepSpec::parse(old_text, &dir.join("sweep.toml").display().to_string())?;
    let shared = [
        ("[[eval]] tasks", old.eval != new.eval),
        ("[ingest] datasets", old.ingest != new.ingest),
        ("[merge] datasets", old.merge != new.merge),
        (
            "first seed (the one evaluated from scratch)",
            old.seeds.first() != new.seeds.first(),
        ),
    ];
    if let Some((what, _)) = shared.iter().find(|(_, differs)| *differs) {
        bail!(
            "cannot extend the sweep in {}: its {what} differ from the new file's; an extension \
             may only add runs",
            dir.display()
        );
    }
    Ok(old)
}

/// Checks that `new` (planned from `new_text`) plans every run of `old` (the folder's sweep,
/// planned by `old_plan`) as before, and makes `new_text` the folder's sweep file.
pub fn extend(
    dir: &Path,
    old_plan: &SweepPlan,
    new_text: &str,
    new: &SweepPlan,
) -> Result<Extension> {
    for run in &old_plan.runs {
        let Some(now) = new.runs.iter().find(|r| r.name == run.name) else {
            bail!(
                "cannot extend the sweep in {}: the new file does not plan its run {}; an \
                 extension may only add runs",
                dir.display(),
                run.name
            );
        };
        if now != run {
            bail!(
                "cannot extend the sweep in {}: the new file would train its run {} otherwise \
                 ({}); an extension may only add runs",
                dir.display(),
                run.name,
                first_difference(run, now)
            );
        }
    }
    let sweep_file = dir.join("sweep.toml");
    let previous = (1..)
        .map(|k| dir.join(format!("sweep.{k}.toml")))
        .find(|p| !p.exists())
        .expect("a free file name");
    std::fs::rename(&sweep_file, &previous)
        .with_context(|| format!("keeping the old sweep file as {}", previous.display()))?;
    std::fs::write(&sweep_file, new_text)
        .with_context(|| format!("writing {}", sweep_file.display()))?;
    let kept = old_plan.runs.len();
    Ok(Extension {
        kept,
        added: new.runs.len() - kept,
        previous,
    })
}

/// The first setting in which two plans of one run differ, as `key: old -> new`.
fn first_difference(old: &RunPlan, new: &RunPlan) -> String {
    let (a, b) = (old.config.to_toml_string(), new.config.to_toml_string());
    let mut section = String::new();
    for (x, y) in a.lines().zip(b.lines()) {
        if x.starts_with('[') {
            section = x.trim_matches(['[', ']']).to_string() + ".";
        }
        if x != y {
            return format!(
                "{section}{x} -> {}",
                y.split('=').nth(1).unwrap_or(y).trim()
            );
        }
    }
    if a != b {
        return "its settings differ".to_string();
    }
    if old.ranks != new.ranks {
        return format!("ranks {} -> {}", old.ranks, new.ranks);
    }
    "its planned FLOPs per sample differ".to_string()
}
