//! `ecgfm eval`'s finished units (a protocol at a label fraction, before scoring) kept beside its
//! result file, in `OUT.units.jsonl`, while it runs: an evaluation interrupted (a signal, a
//! preempted job, a crash, a failure in a later unit) and run again with the same command goes
//! on from the units it finished, with the results of one never interrupted. The file's first
//! line names the evaluation: a SHA-256 of ecgfm's version, the checkpoint's weights, the
//! dataset's data digest, the device's kind (a GPU's name and compute capability, not which of
//! a node's GPUs), the precision and every setting a unit's outcome depends on (not the list of
//! protocols or fractions, nor the bootstrap, which scoring applies afresh), one key for probes
//! (without the fine-tuning settings) and one for trained protocols (`UnitKeys`). Units of
//! another evaluation are discarded, saying so. The file goes once `--out` is written.
//!
//! For tests, `ECGFM_FAULT_EVAL_ABORT_AFTER_UNITS=N` aborts the process (as a crash would) right
//! after its Nth unit is kept.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ecgfm_trainer::eval::units::{unit_from_line, unit_to_line};
use ecgfm_trainer::eval::{EvalError, EvalSettings, Protocol, UnitOutcome, UnitStore};
use serde::{Deserialize, Serialize};

/// The units file of the evaluation whose result goes to `out`.
pub struct UnitFile {
    path: PathBuf,
    /// The first line, naming the evaluation.
    header: String,
    /// Open for appending once there is a unit in it.
    file: Option<std::fs::File>,
    kept: BTreeMap<(Protocol, u64), UnitOutcome>,
    /// Units this process kept, for the fault hook.
    written: usize,
    abort_after: Option<usize>,
}

/// The names of an evaluation's units: a probe's outcome depends on less than a trained
/// protocol's (not on the fine-tuning settings), so a probe finished before a fine-tuning that
/// diverged is kept when the run again lowers `--lr`.
#[derive(Serialize, Deserialize, PartialEq)]
pub struct UnitKeys {
    /// Of `probe` and `random_probe` units.
    probe: String,
    /// Of `finetune` and `scratch` units.
    train: String,
}

/// The units file's first line.
#[derive(Serialize, Deserialize)]
struct Header {
    evaluation: UnitKeys,
}

impl UnitKeys {
    /// The keys of an evaluation under `settings` of the inputs `inputs` names (the weights,
    /// the data, the device, ...): SHA-256s of them and the settings a unit's outcome depends
    /// on, all but which protocols and fractions run and the bootstrap (scoring's), and for a
    /// probe not the fine-tuning settings either.
    pub fn new(inputs: &[(&str, String)], settings: &EvalSettings) -> Result<UnitKeys> {
        let mut settings = serde_json::to_value(settings).context("serialising the settings")?;
        let fields = settings
            .as_object_mut()
            .context("settings serialise as a table")?;
        for scoring_only in ["protocols", "fractions", "bootstrap"] {
            fields.remove(scoring_only);
        }
        let key = |settings: &serde_json::Value| {
            let text = serde_json::to_string(&(inputs, settings)).expect("JSON serialises");
            crate::package::sha256_hex(text.as_bytes())
        };
        let train = key(&settings);
        if let Some(fields) = settings.as_object_mut() {
            fields.remove("finetune");
        }
        Ok(UnitKeys {
            probe: key(&settings),
            train,
        })
    }

    fn of(&self, protocol: Protocol) -> &str {
        match protocol.trains_encoder() {
            true => &self.train,
            false => &self.probe,
        }
    }
}

impl UnitFile {
    /// Opens `OUT.units.jsonl` for the evaluation `keys` name, reading the units an interrupted
    /// run of it kept there (each unit by the key of its kind). The file is written again with
    /// only those, or removed when there are none (the first unit kept makes it anew).
    pub fn open(out: &Path, keys: UnitKeys) -> Result<UnitFile> {
        let mut path = out.as_os_str().to_owned();
        path.push(".units.jsonl");
        let path = PathBuf::from(path);
        let mut kept = BTreeMap::new();
        let mut lines = Vec::new();
        let mut discarded = 0;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut rows = text.lines();
        let earlier = rows
            .next()
            .and_then(|l| serde_json::from_str::<Header>(l).ok());
        // A line cut short when the process died, and any after it, are dropped.
        for line in rows {
            let Some((protocol, fraction, unit)) = unit_from_line(line) else {
                break;
            };
            match &earlier {
                Some(h) if h.evaluation.of(protocol) == keys.of(protocol) => {
                    kept.insert((protocol, fraction.to_bits()), unit);
                    lines.push(line);
                }
                _ => discarded += 1,
            }
        }
        if discarded > 0 {
            say!(
                "{} held {discarded} finished units of an evaluation with other settings, \
                 weights, data or device: discarded",
                path.display()
            );
        }
        let header = serde_json::to_string(&Header { evaluation: keys }).expect("JSON serialises");
        let file = match kept.is_empty() {
            true => {
                remove_if_there(&path)?;
                None
            }
            false => {
                say!(
                    "resuming: {} finished protocol and fraction pairs kept from an interrupted \
                     run of this evaluation ({})",
                    kept.len(),
                    path.display()
                );
                let text = [header.as_str()]
                    .into_iter()
                    .chain(lines)
                    .collect::<Vec<_>>();
                crate::eval::write_whole(&path, &(text.join("\n") + "\n"))?;
                Some(append_to(&path)?)
            }
        };
        let abort_after = std::env::var("ECGFM_FAULT_EVAL_ABORT_AFTER_UNITS")
            .ok()
            .and_then(|n| n.parse().ok());
        Ok(UnitFile {
            path,
            header,
            file,
            kept,
            written: 0,
            abort_after,
        })
    }

    /// Units the file holds: those read back and those kept since.
    fn finished_count(&self) -> usize {
        self.kept.len() + self.written
    }

    /// `err`, the evaluation's failure, saying how many units the file keeps for the run again.
    pub fn note_kept(&self, err: anyhow::Error) -> anyhow::Error {
        match self.finished_count() {
            0 => err,
            n => err.context(format!(
                "evaluating ({n} finished protocol and fraction pairs are kept in {}: the same \
                 command goes on from them)",
                self.path.display()
            )),
        }
    }

    /// Removes the file: the evaluation's result is written.
    pub fn remove(self) {
        if let Err(e) = remove_if_there(&self.path) {
            say_err!("warning: {e:#}");
        }
    }
}

impl UnitStore for UnitFile {
    fn finished(&self, protocol: Protocol, fraction: f64) -> Option<UnitOutcome> {
        self.kept.get(&(protocol, fraction.to_bits())).cloned()
    }

    fn keep(
        &mut self,
        protocol: Protocol,
        fraction: f64,
        unit: &UnitOutcome,
    ) -> Result<(), EvalError> {
        let path = self.path.display();
        let failed = |e: String| EvalError::Task(format!("keeping a finished unit in {path}: {e}"));
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                // Its folder again first: `--out`'s folder may have gone since the evaluation
                // made sure of it (another evaluation's, removed while empty when that one
                // failed), which must not cost the unit just finished.
                let dir = crate::out_folder::out_folder(&self.path);
                std::fs::create_dir_all(dir)
                    .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
                let mut file = append_to(&self.path).map_err(|e| failed(format!("{e:#}")))?;
                writeln!(file, "{}", self.header).map_err(|e| failed(e.to_string()))?;
                self.file.insert(file)
            }
        };
        let line = unit_to_line(protocol, fraction, unit) + "\n";
        // One write of the whole line: a process that dies leaves it whole or cut short.
        file.write_all(line.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
        self.written += 1;
        if self.abort_after == Some(self.written) {
            say_err!(
                "ECGFM_FAULT_EVAL_ABORT_AFTER_UNITS: aborting after {} units",
                self.written
            );
            std::process::abort();
        }
        Ok(())
    }
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn append_to(path: &Path) -> Result<std::fs::File> {
    (std::fs::OpenOptions::new().create(true).append(true))
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(probe: &str, train: &str) -> UnitKeys {
        UnitKeys {
            probe: probe.into(),
            train: train.into(),
        }
    }

    /// A probe's units outlive a change of what only trained protocols depend on (a lower
    /// `--lr` after a fine-tuning diverged); the fine-tuning's do not.
    #[test]
    fn each_kind_of_unit_is_kept_by_its_own_key() {
        let root = std::env::temp_dir().join(format!("ecgfm-units-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let out = root.join("e.json");
        let mut units = UnitFile::open(&out, keys("p", "t")).unwrap();
        units.keep(Protocol::Probe, 1.0, &unit(1.0)).unwrap();
        units.keep(Protocol::RandomProbe, 1.0, &unit(2.0)).unwrap();
        units.keep(Protocol::Finetune, 1.0, &unit(3.0)).unwrap();
        drop(units);
        let again = UnitFile::open(&out, keys("p", "lower lr")).unwrap();
        assert_eq!(again.finished(Protocol::Probe, 1.0), Some(unit(1.0)));
        assert_eq!(again.finished(Protocol::RandomProbe, 1.0), Some(unit(2.0)));
        assert_eq!(again.finished(Protocol::Finetune, 1.0), None);
        assert_eq!(again.finished_count(), 2);
        std::fs::remove_dir_all(root).unwrap();
    }

    fn unit(seconds: f64) -> UnitOutcome {
        UnitOutcome {
            val_scores: vec![0.25, 0.75],
            test_scores: vec![0.5],
            val_macro_auroc: Some(0.9),
            selected: BTreeMap::from([("l2".to_string(), 0.1)]),
            seconds,
        }
    }

    /// Kept units read back; a line cut short (the process died writing it) and any after it
    /// are dropped and the file written again without them; another evaluation's units, or a
    /// file of no unit, leave nothing.
    #[test]
    fn kept_units_read_back_and_a_cut_line_or_another_evaluation_is_dropped() {
        let root = std::env::temp_dir().join(format!("ecgfm-units-read-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let out = root.join("e.json");
        let file = root.join("e.json.units.jsonl");
        let mut units = UnitFile::open(&out, keys("key", "key")).unwrap();
        assert!(!file.exists(), "made before a unit was kept");
        units.keep(Protocol::Probe, 1.0, &unit(1.0)).unwrap();
        units.keep(Protocol::Finetune, 1.0, &unit(2.0)).unwrap();
        units.keep(Protocol::Probe, 0.5, &unit(3.0)).unwrap();
        drop(units);
        let text = std::fs::read_to_string(&file).unwrap();
        let cut = text.trim_end().len() - 5;
        std::fs::write(&file, &text[..cut]).unwrap();
        let again = UnitFile::open(&out, keys("key", "key")).unwrap();
        assert_eq!(again.finished(Protocol::Probe, 1.0), Some(unit(1.0)));
        assert_eq!(again.finished(Protocol::Finetune, 1.0), Some(unit(2.0)));
        assert_eq!(again.finished(Protocol::Probe, 0.5), None);
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
        let other = UnitFile::open(&out, keys("another", "another")).unwrap();
        assert_eq!(other.finished(Protocol::Probe, 1.0), None);
        assert!(!file.exists());
        std::fs::write(&file, "").unwrap();
        assert_eq!(
            UnitFile::open(&out, keys("key", "key")).unwrap().kept.len(),
            0
        );
        assert!(!file.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A unit finishing after `--out`'s folder went (another evaluation removed it, empty, as it
    /// failed) is kept all the same: the evaluation failed, losing the unit.
    #[test]
    fn a_unit_is_kept_though_the_out_folder_went_since_the_start() {
        let root = std::env::temp_dir().join(format!("ecgfm-units-gone-{}", std::process::id()));
        let dir = root.join("results");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("e.json");
        let mut units = UnitFile::open(&out, keys("key", "key")).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        units.keep(Protocol::Probe, 1.0, &unit(1.0)).unwrap();
        drop(units);
        let again = UnitFile::open(&out, keys("key", "key")).unwrap();
        assert_eq!(again.finished(Protocol::Probe, 1.0), Some(unit(1.0)));
        std::fs::remove_dir_all(root).unwrap();
    }
}
