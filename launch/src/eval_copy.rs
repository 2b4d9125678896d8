//! The run's copy of an `ecgfm eval` result, in `<run>/eval/`, where `ecgfm export` reports the
//! exported step's results from, with the evaluation's TensorBoard scalars beside it.
//!
//! - A run folder this user cannot write (a colleague's shared run) takes no copy: the
//!   evaluation goes on, writing `--out` alone, and says so once ([`RunCopy::prepare`]). A file
//!   where the `eval` folder must be is refused: the run folder is not as `ecgfm` left it.
//! - The copy is named after `--out`'s file name, unless a file of that name there holds another
//!   evaluation's results (two `--out`s of one name in different folders: `probe/r.json`,
//!   `finetune/r.json`): that one is kept and the copy takes the first free `<stem>.N.json`
//!   ([`RunCopy::path_for`]). The same evaluation run again replaces its own copy.

use crate::out_folder::{prepare_out_file, MadeFolders};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where this evaluation's copy goes: the run's `eval/` folder, or nowhere.
pub(crate) struct RunCopy {
    /// `<run>/eval`, when it can be written; `None` and the reason otherwise.
    folder: Result<PathBuf, String>,
    /// The folders made for it, removed again (while empty) if the evaluation fails.
    _made: Option<MadeFolders>,
}

impl RunCopy {
    /// Makes `<run>/eval` and tries a write there, before any work; a run folder that cannot
    /// be written is a warning, not a refusal, but a file in the way is refused.
    pub(crate) fn prepare(run: &Path) -> anyhow::Result<RunCopy> {
        let folder = run.join("eval");
        let probe = folder.join("results.json");
        let made = prepare_out_file(&probe, "the run's copy of the results");
        Ok(match made {
            Ok(made) => RunCopy {
                folder: Ok(folder),
                _made: Some(made),
            },
            Err(e) if folder.ancestors().any(Path::is_file) => return Err(e),
            Err(e) => {
                let why = format!("{} ({})", folder.display(), crate::error_text(&e));
                tracing::warn!(
                    "the run keeps no copy of these results: {why}; `ecgfm export` of the run \
                     reports them only when given --eval with the --out file"
                );
                RunCopy {
                    folder: Err(why),
                    _made: None,
                }
            }
        })
    }

    /// The run's `eval/` folder, if it can be written.
    pub(crate) fn folder(&self) -> Option<&Path> {
        self.folder.as_deref().ok()
    }

    /// The copy's path for `report` (the result file's JSON), whose `--out` file name is `name`
    /// (see the module).
    pub(crate) fn path_for(&self, name: &str, report: &Value) -> Option<PathBuf> {
        let folder = self.folder()?;
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "json"));
        let candidates = std::iter::once(folder.join(name))
            .chain((2..).map(|n| folder.join(format!("{stem}.{n}.{ext}"))));
        for path in candidates {
            let held = match std::fs::read_to_string(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(path),
                Err(_) => continue,
                Ok(text) => text,
            };
            let old = serde_json::from_str::<Value>(&held).ok();
            if old.is_some_and(|old| identity(&old) == identity(report)) {
                return Some(path);
            }
        }
        unreachable!("an endless list of names has a free one")
    }
}

/// What makes two result files the same evaluation: its settings (the weights, the data, the
/// labels and classes, the pooling, the precision, the seed, the intervals' resamples, the
/// scoring unit, the fine-tuning settings) and the protocols with their label fractions; not
/// its timings or numbers.
fn identity(report: &Value) -> Vec<Value> {
    let fields = [
        "step",
        "weights_sha256",
        "data",
        "vocabulary",
        "classes",
        "pooling",
        "precision",
        "seed",
        "bootstrap_resamples",
        "scored_by",
        "finetune_settings",
    ];
    let mut id: Vec<Value> = fields.iter().map(|f| report[f].clone()).collect();
    let protocols = (report["results"].as_array().into_iter().flatten())
        .map(|r| serde_json::json!([r["protocol"], r["fraction"]]));
    id.push(Value::Array(protocols.collect()));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_evaluation_of_the_same_file_name_is_kept_and_a_rerun_replaces_its_own() {
        let run = std::env::temp_dir().join(format!("ecgfm-run-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        let copy = RunCopy::prepare(&run).unwrap();
        let eval = run.join("eval");
        assert_eq!(copy.folder(), Some(eval.as_path()));
        let probe = serde_json::json!({
            "step": 8, "data": "ds", "vocabulary": "snomed", "pooling": "mean", "seed": 0,
            "seconds": 3.0,
            "results": [{ "protocol": "probe", "fraction": 1.0, "auroc": 0.8 }]
        });
        let write = |path: &Path, value: &Value| std::fs::write(path, value.to_string()).unwrap();
        assert_eq!(copy.path_for("r.json", &probe), Some(eval.join("r.json")));
        write(&eval.join("r.json"), &probe);
        // The same evaluation again (other timings and numbers) replaces its own copy.
        let mut rerun = probe.clone();
        rerun["seconds"] = 4.0.into();
        rerun["results"][0]["auroc"] = 0.81.into();
        assert_eq!(copy.path_for("r.json", &rerun), Some(eval.join("r.json")));
        // Other settings, another protocol or step under the same file name take the next free
        // name.
        let mut other_lr = probe.clone();
        other_lr["finetune_settings"] = serde_json::json!({ "lr": 0.0003 });
        assert_eq!(
            copy.path_for("r.json", &other_lr),
            Some(eval.join("r.2.json"))
        );
        let mut finetune = probe.clone();
        finetune["results"][0]["protocol"] = "finetune".into();
        assert_eq!(
            copy.path_for("r.json", &finetune),
            Some(eval.join("r.2.json"))
        );
        write(&eval.join("r.2.json"), &finetune);
        let mut other_step = probe.clone();
        other_step["step"] = 4.into();
        assert_eq!(
            copy.path_for("r.json", &other_step),
            Some(eval.join("r.3.json"))
        );
        assert_eq!(
            copy.path_for("r.json", &finetune),
            Some(eval.join("r.2.json"))
        );
        std::fs::remove_dir_all(run).unwrap();
    }
}
