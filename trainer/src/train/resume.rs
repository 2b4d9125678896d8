//! What a resumed run checks against the run it continues: the settings that may change and
//! those that may not, the learning-rate schedule a changed length moves, the precision; and what
//! a fresh start refuses (another run's checkpoints in its folder).

use super::TrainError;
use crate::checkpoint;
use crate::config::TrainConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// The warning for a resume at `step` that changed `train.steps`, unless every step already run
/// had the rate the new length gives it (a resume inside warmup, whose rate does not depend on
/// the length): then the run is, bit for bit, one of the new length from the start.
pub(super) fn schedule_moved(
    saved: &TrainConfig,
    config: &TrainConfig,
    step: u64,
) -> Option<String> {
    let (was, now) = (saved.train.steps, config.train.steps);
    let (before, after) = (saved.schedule(), config.schedule());
    let moved = |s: u64| before.lr_at(s) != after.lr_at(s);
    (was != now && (0..step).any(moved)).then(|| {
        format!(
            "train.steps changed from {was} to {now}: after step {step} the learning rate follows \
             a {now}-step schedule, while the steps before it ran on a {was}-step one (and on the \
             lengths of any earlier resume before that), so this run matches neither a {was}-step \
             nor a {now}-step run from the start"
        )
    })
}

/// The precision check of a resume from checkpoint `dir` (trained in `saved`, where it says)
/// by a run that computes in `now` under `setting` (`train.precision`): a named precision other
/// than the checkpoint's is refused, since the run would round otherwise from here on and match
/// neither a run all in one nor the other; under `auto`, which resolves per device (fp32 on the
/// CPU, bf16 on a GPU), a run moved between them is warned of. The warning, or why not.
pub(super) fn check_precision(
    saved: Option<&str>,
    now: &str,
    setting: &str,
    dir: &Path,
) -> Result<Option<String>, String> {
    let Some(saved) = saved.filter(|&p| p != now) else {
        return Ok(None);
    };
    let dir = dir.display();
    if setting != "auto" {
        return Err(format!(
            "{dir} was trained in {saved}; in {now} the run would round otherwise from here on \
             and match neither: resume with --precision {saved}"
        ));
    }
    Ok(Some(format!(
        "{dir} was trained in {saved}, and this run computes in {now} (train.precision auto \
         resolves per device): from here on it rounds otherwise, so it matches neither a run all \
         in {saved} nor one all in {now}; --precision {saved} keeps the run's precision"
    )))
}

/// A fresh start must not share `run_dir` with another run's checkpoints: a resume takes the
/// newest checkpoint whichever run wrote it. Nothing is deleted; the caller chooses.
pub fn refuse_fresh_start_over_checkpoints(run_dir: &Path) -> Result<(), TrainError> {
    match checkpoint::latest_complete(run_dir)? {
        Some(newest) => Err(TrainError::CheckpointsExist {
            run_dir: run_dir.to_path_buf(),
            newest,
        }),
        None => Ok(()),
    }
}

/// A resumed run must use the configuration it started with. Only its length and the settings
/// that change how fast it runs or what it reports, never its numbers, may change: `train.steps`
/// (the learning-rate schedule then spans the new length, so the steps after the resume follow
/// it: `schedule_moved` warns), `train.threads`, `data.decode_threads`, `data.prefetch_batches`,
/// `train.on_nonfinite`, `train.recompute` and `train.device` (a run preempted onto another
/// machine resumes with that machine's core count and gives the same bits; a checkpoint has one
/// layout on every device, and CPU and GPU agree up to rounding), how often it checkpoints, logs
/// and measures the validation loss (`train.checkpoint_every`, `train.log_every`,
/// `train.val_every`: after a preemption an operator may well want more checkpoints), how many
/// checkpoints it keeps (`train.keep_checkpoints`), and the
/// batch geometry (`train.batch_size`, `train.accum_steps`) as long as the global batch stays the
/// same (checked against the checkpoint). `train.precision` may not change from fp32 to bf16 or
/// back: bf16 rounds every matrix product otherwise than fp32, so the run would match neither;
/// to or from `auto`, which each device resolves, it may, and the precision the checkpoint
/// recorded is compared with the one this run resolved once both are known (`check_precision`).
/// Returns the saved config.
pub(super) fn check_resumable(
    run_dir: &Path,
    config_path: &Path,
    config: &TrainConfig,
) -> Result<TrainConfig, TrainError> {
    let saved = crate::config::read_toml_file(config_path)
        .and_then(TrainConfig::from_table)
        .map_err(|e| TrainError::Resume {
            run_dir: run_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut comparable = config.clone();
    comparable.train.steps = saved.train.steps;
    comparable.train.threads = saved.train.threads;
    comparable.train.device = saved.train.device.clone();
    comparable.train.batch_size = saved.train.batch_size;
    comparable.train.accum_steps = saved.train.accum_steps;
    comparable.train.on_nonfinite = saved.train.on_nonfinite;
    comparable.train.recompute = saved.train.recompute;
    comparable.train.checkpoint_every = saved.train.checkpoint_every;
    comparable.train.keep_checkpoints = saved.train.keep_checkpoints;
    comparable.train.log_every = saved.train.log_every;
    comparable.train.val_every = saved.train.val_every;
    comparable.data.decode_threads = saved.data.decode_threads;
    comparable.data.prefetch_batches = saved.data.prefetch_batches;
    if config.train.precision == "auto" || saved.train.precision == "auto" {
        // `auto` is whatever the device resolves; the precision the checkpoint ran in is
        // compared with this run's once both are known (`check_precision`).
        comparable.train.precision = saved.train.precision.clone();
    }
    if config.data.source != "synth" && saved.data.source != "synth" {
        // A dataset may move: the source's `restore` checks that it holds the same data.
        comparable.data.source = saved.data.source.clone();
    }
    if comparable != saved {
        return Err(TrainError::Resume {
            run_dir: run_dir.to_path_buf(),
            reason: format!(
                "the configuration differs from the run's config.toml ({}); resume with the \
                 same settings (only --steps, --threads, --device, data.decode_threads, \
                 data.prefetch_batches, train.on_nonfinite, train.recompute, \
                 train.checkpoint_every, train.keep_checkpoints, train.log_every, \
                 train.val_every, the batch geometry at \
                 the same global batch, and the address of the same dataset may change)",
                changed_settings(&saved, &comparable).join("; ")
            ),
        });
    }
    Ok(saved)
}

/// Each setting whose value differs between the `saved` config and `now`, as `key: saved X,
/// now Y` with dotted keys.
fn changed_settings(saved: &TrainConfig, now: &TrainConfig) -> Vec<String> {
    let (a, b) = (flat_settings(saved), flat_settings(now));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let unset = "unset".to_string();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&unset), b.get(k).unwrap_or(&unset));
            format!("{k}: saved {x}, now {y}")
        })
        .collect()
}

/// Every setting of `config` by its dotted key (`train.seed`), its value as TOML writes it.
pub(super) fn flat_settings(config: &TrainConfig) -> BTreeMap<String, String> {
    fn flatten(at: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, v) in table {
                    let key = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    flatten(&key, v, out);
                }
            }
            v => {
                out.insert(at.to_string(), v.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(table) = config.to_toml_string().parse::<toml::Table>() {
        flatten("", &toml::Value::Table(table), &mut out);
    }
    out
}
