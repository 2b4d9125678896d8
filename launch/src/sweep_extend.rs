//! `ecgfm sweep run FILE --out DIR --extend`: grow a sweep in place (another budget, seed, size,
//! data fraction or evaluation) without training its runs again. The new file must plan every
//! run of the sweep in DIR exactly as the old one did (same name, same settings, same steps and
//! learning rate), evaluate them at least as before (each old task with the same data and
//! arguments, its protocols kept; tasks and protocols may be added) and keep the first seed and
//! the datasets it prepared; then it becomes DIR's sweep.toml, the old one kept as sweep.K.toml,
//! and `sweep run` trains only what is new and evaluates finished runs on what was added.

use anyhow::{bail, Context, Result};
use ecgfm_sweep::spec::EvalSpec;
use ecgfm_sweep::{RunPlan, SweepPlan, SweepSpec};
use ecgfm_trainer::write_whole::write_whole;
use std::collections::BTreeMap;
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

/// Parses the folder's sweep file `old_text` and checks that `new` keeps what an extension
/// cannot change: every evaluation, every dataset it ingested or merged, the first seed. Runs
/// before any data is prepared for the new file.
pub fn check_shared(dir: &Path, old_text: &str, new: &SweepSpec) -> Result<SweepSpec> {
    let old = SweepSpec::parse(old_text, &dir.join("sweep.toml").display().to_string())?;
    let refuse = |what: String| {
        anyhow::anyhow!(
            "cannot extend the sweep in {}: {what}; an extension may only add runs, datasets \
             and evaluations",
            dir.display()
        )
    };
    if old.seeds.first() != new.seeds.first() {
        return Err(refuse(
            "the new file's first seed (the one evaluated from scratch) differs".into(),
        ));
    }
    if let Some(what) = changed_entry("ingest", &old.ingest, &new.ingest)
        .or_else(|| changed_entry("merge", &old.merge, &new.merge))
        .or_else(|| changed_eval(&old.eval, &new.eval))
    {
        return Err(refuse(what));
    }
    Ok(old)
}

/// The first `[table.NAME]` of `old` that `new` drops or changes, described.
fn changed_entry<T: PartialEq>(
    table: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
) -> Option<String> {
    old.iter().find_map(|(name, entry)| match new.get(name) {
        None => Some(format!("the new file drops [{table}.{name}]")),
        Some(now) if now != entry => Some(format!("the new file changes [{table}.{name}]")),
        Some(_) => None,
    })
}

/// The first evaluation of `old` that `new` drops or runs otherwise, described.
fn changed_eval(old: &[EvalSpec], new: &[EvalSpec]) -> Option<String> {
    old.iter().find_map(|was| {
        let task = &was.task;
        let Some(now) = new.iter().find(|e| e.task == *task) else {
            return Some(format!("the new file drops the [[eval]] task {task}"));
        };
        let settings = [
            ("data", was.data != now.data),
            ("synth_records", was.synth_records != now.synth_records),
            ("args", was.args != now.args),
        ];
        if let Some((key, _)) = settings.iter().find(|(_, differs)| *differs) {
            return Some(format!(
                "the new file changes the {key} of the [[eval]] task {task}"
            ));
        }
        if let Some(p) = was.protocols.iter().find(|p| !now.protocols.contains(p)) {
            return Some(format!(
                "the new file drops the {p} protocol of the [[eval]] task {task}"
            ));
        }
        (was.scratch && !now.scratch).then(|| {
            format!("the new file drops the from-scratch baseline of the [[eval]] task {task}")
        })
    })
}

/// Checks that `new` plans every run of `old_plan` (the folder's sweep) as before, without
/// writing anything; the counts of runs kept and added.
pub fn check_runs(dir: &Path, old_plan: &SweepPlan, new: &SweepPlan) -> Result<(usize, usize)> {
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
    let kept = old_plan.runs.len();
    Ok((kept, new.runs.len() - kept))
}

/// Checks that `new` (planned from `new_text`) plans every run of `old` (the folder's sweep,
/// planned by `old_plan`) as before, and makes `new_text` the folder's sweep file.
pub fn extend(
    dir: &Path,
    old_plan: &SweepPlan,
    new_text: &str,
    new: &SweepPlan,
) -> Result<Extension> {
    let (kept, added) = check_runs(dir, old_plan, new)?;
    let sweep_file = dir.join("sweep.toml");
    // The old file is copied, not moved, and the new one replaces it whole: a failed write
    // (a full disk) leaves the folder's sweep as it was.
    let previous = keep_previous(dir, &sweep_file)?;
    write_whole(&sweep_file, new_text.as_bytes())
        .with_context(|| format!("writing {}", sweep_file.display()))?;
    Ok(Extension {
        kept,
        added,
        previous,
    })
}

/// Copies the folder's sweep file to the first free `sweep.K.toml`, or finds it already there
/// as the last copy (left by an extension that failed after making it); the copy's path.
fn keep_previous(dir: &Path, sweep_file: &Path) -> Result<PathBuf> {
    let old_text =
        std::fs::read(sweep_file).with_context(|| format!("reading {}", sweep_file.display()))?;
    let copy = |k: usize| dir.join(format!("sweep.{k}.toml"));
    let free = (1..)
        .find(|&k| !copy(k).exists())
        .expect("a free file name");
    if free > 1 && std::fs::read(copy(free - 1)).is_ok_and(|kept| kept == old_text) {
        return Ok(copy(free - 1));
    }
    write_whole(&copy(free), &old_text)
        .with_context(|| format!("keeping the old sweep file as {}", copy(free).display()))?;
    Ok(copy(free))
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

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: &str = r#"
name = "t"
seeds = [0]
[sizes]
family = { depths = [1], aspect_ratio = 32, head_dim = 32 }
[lr]
rule = "inverse-width"
base = 1e-3
base_width = 64
[budget]
kind = "equal-steps"
steps = 6
[base]
train = { batch_size = 4 }
[ingest.a]
source = "recordings/a"
format = "cinc2017"
"#;

    fn check(new_text: &str) -> Result<SweepSpec> {
        let new = SweepSpec::parse(new_text, "new.toml")?;
        check_shared(Path::new("DIR"), SWEEP, &new)
    }

    #[test]
    fn the_old_sweep_file_is_kept_once_however_often_an_extension_is_tried() {
        let dir = std::env::temp_dir().join(format!("ecgfm-keep-previous-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sweep_file = dir.join("sweep.toml");
        std::fs::write(&sweep_file, "first").unwrap();
        let kept = keep_previous(&dir, &sweep_file).unwrap();
        assert_eq!(kept, dir.join("sweep.1.toml"));
        // An extension that failed after the copy is run again: the copy serves.
        assert_eq!(keep_previous(&dir, &sweep_file).unwrap(), kept);
        std::fs::write(&sweep_file, "second").unwrap();
        assert_eq!(
            keep_previous(&dir, &sweep_file).unwrap(),
            dir.join("sweep.2.toml")
        );
        let texts: Vec<String> = (1..=2)
            .map(|k| std::fs::read_to_string(dir.join(format!("sweep.{k}.toml"))).unwrap())
            .collect();
        assert_eq!(texts, ["first", "second"]);
        assert!(!dir.join("sweep.3.toml").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn datasets_may_be_added_but_not_changed_or_dropped() {
        let added = format!("{SWEEP}[ingest.b]\nsource = \"recordings/b\"\nformat = \"ptbxl\"\n");
        check(&added).unwrap();
        let merged = format!("{SWEEP}[merge.m]\ndatasets = [\"@a\", \"elsewhere\"]\n");
        check(&merged).unwrap();
        let changed = SWEEP.replace("cinc2017", "ptbxl");
        let err = check(&changed).unwrap_err().to_string();
        assert!(err.contains("the new file changes [ingest.a]"), "{err}");
        let dropped = SWEEP.replace("[ingest.a]", "[ingest.b]");
        let err = check(&dropped).unwrap_err().to_string();
        assert!(err.contains("the new file drops [ingest.a]"), "{err}");
        assert!(err.contains("cannot extend the sweep in DIR"), "{err}");
    }
}
