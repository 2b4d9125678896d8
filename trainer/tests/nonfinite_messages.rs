//! What a run stopped by a non-finite loss says: the step as the progress line counts it (from
//! 1), the data blamed when a batch's signals held a NaN, and clipping suggested only when it is
//! off; and a step skipped for one is logged, between logged steps too, as is the step that
//! stops the run; skipped steps stop a run only in a row; a run that skipped a step resumes
//! bitwise.

mod run_setup;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::{BatchSource, SourceError, SyntheticSource};
use ecgfm_trainer::train::{NonFiniteCause, TrainError, Trainer};
use ecgfm_trainer::HostBatch;
use std::path::Path;

/// The synthetic stream with a NaN in the first signal of the batches `poisoned` (counting from 0
/// as this source reads them).
struct Poisoned {
    inner: SyntheticSource,
    poisoned: Vec<u64>,
    read: u64,
}

impl Poisoned {
    fn new(cfg: &TrainConfig, poisoned: &[u64]) -> Box<Poisoned> {
        Box::new(Poisoned {
            inner: SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0),
            poisoned: poisoned.to_vec(),
            read: 0,
        })
    }
}

impl BatchSource for Poisoned {
    fn next_batch(&mut self, batch: &mut HostBatch) -> Result<(), SourceError> {
        self.inner.next_batch(batch)?;
        if self.poisoned.contains(&self.read) {
            batch.x[0] = f32::NAN;
        }
        self.read += 1;
        Ok(())
    }
    fn state(&self) -> serde_json::Value {
        self.inner.state()
    }
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), SourceError> {
        self.inner.restore(state)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The error that stops a `--on-nonfinite stop` run with `sets` over its defaults, whose
/// batch `poisoned` holds a NaN, and the run's metrics.jsonl records.
fn stopped(name: &str, sets: &[&str], poisoned: u64) -> (TrainError, Vec<serde_json::Value>) {
    let mut assignments: Vec<String> = [
        "train.steps=4",
        "train.batch_size=2",
        "train.on_nonfinite=\"stop\"",
        "train.checkpoint_every=0",
        "train.val_windows=0",
    ]
    .iter()
    .chain(sets)
    .map(|s| s.to_string())
    .collect();
    assignments.sort();
    let cfg = run_setup::config_from(&assignments);
    let dir = run_setup::run_dir("nonfinite", name);
    let source = Poisoned::new(&cfg, &[poisoned]);
    let mut trainer = Trainer::new(cfg, &dir, CpuBackend::new(), source, false).unwrap();
    let err = trainer.run(None, |_, _| {}).unwrap_err();
    let records = metrics_records(&dir);
    std::fs::remove_dir_all(dir).unwrap();
    (err, records)
}

/// Every record of the run's metrics.jsonl.
fn metrics_records(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_nan_in_the_input_blames_the_data_at_the_progress_lines_step() {
    // Batch 1 is step index 1: the progress line's step 2.
    let (err, records) = stopped("input", &[], 1);
    let text = err.to_string();
    // The stopping step is in metrics.jsonl too, after the first step, with a null loss.
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 1], "{records:?}");
    assert!(records[1]["loss"].is_null(), "{records:?}");
    assert!(records[0]["loss"].as_f64().unwrap() > 0.0, "{records:?}");
    assert!(
        matches!(&err, TrainError::NonFinite { step: 1, cause: NonFiniteCause::Input { ranks }, .. }
            if ranks == &[0]),
        "{text}"
    );
    assert!(
        text.contains("at step 2 (non-finite loss on rank 0)"),
        "{text}"
    );
    assert!(
        text.contains("signals held NaN or infinite values"),
        "{text}"
    );
    assert!(
        !text.contains("diverged") && !text.contains("clip_norm"),
        "{text}"
    );
}

#[test]
fn a_divergence_suggests_clipping_only_when_it_is_off() {
    let huge = ["optim.lr=1e30", "optim.warmup_steps=0"];
    let (clipped, records) = stopped("clipped", &huge, u64::MAX);
    // At lr 1e30 the first update diverges: step 1's loss is the first non-finite one, logged.
    let last = records.last().unwrap();
    assert_eq!(last["step"].as_u64(), Some(1), "{records:?}");
    assert!(last["loss"].is_null(), "{records:?}");
    let TrainError::NonFinite {
        cause: NonFiniteCause::Diverged { lr, .. },
        ..
    } = &clipped
    else {
        panic!("{clipped}")
    };
    assert_eq!(
        last["lr"].as_f64().map(|v| v as f32),
        Some(*lr),
        "{records:?}"
    );
    let clipped = clipped.to_string();
    assert!(
        clipped.contains("training diverged at learning rate"),
        "{clipped}"
    );
    assert!(
        clipped.contains("lower optim.lr; gradients were already clipped at optim.clip_norm = 1"),
        "{clipped}"
    );
    let (unclipped, _) = stopped(
        "unclipped",
        &[huge[0], huge[1], "optim.clip_norm=0"],
        u64::MAX,
    );
    let unclipped = unclipped.to_string();
    assert!(
        unclipped.contains("lower optim.lr or enable optim.clip_norm"),
        "{unclipped}"
    );
}

#[test]
fn a_skipped_step_is_logged_with_a_null_loss_between_logged_steps() {
    let cfg = run_setup::config_from(&[
        "train.steps=6".into(),
        "train.batch_size=2".into(),
        "train.checkpoint_every=0".into(),
        "train.val_windows=0".into(),
        "train.log_every=5".into(),
    ]);
    let dir = run_setup::run_dir("nonfinite", "skipped");
    let source = Poisoned::new(&cfg, &[2]);
    let mut trainer = Trainer::new(cfg, &dir, CpuBackend::new(), source, false).unwrap();
    trainer.run(None, |_, _| {}).unwrap();
    let records = metrics_records(&dir);
    let text = format!("{records:?}");
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    // Logged: the first step, the skipped third (index 2), every fifth and the last.
    assert_eq!(steps, [0, 2, 4, 5], "{text}");
    assert!(records[1]["loss"].is_null(), "{text}");
    assert!(
        records.iter().filter(|r| r["loss"].is_null()).count() == 1,
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A `skip` run (the default) of `steps` steps in `dir` whose batches `poisoned` (counted from
/// this start) hold a NaN, resuming when asked and stopping after `stop_after` steps: each step's
/// loss bits as the run reported them (NaN for a skipped one), or the error that stopped it.
fn skipping(
    dir: &Path,
    steps: u64,
    poisoned: &[u64],
    resume: bool,
    stop_after: Option<u64>,
) -> Result<Vec<u32>, TrainError> {
    let cfg = run_setup::config_from(&[
        format!("train.steps={steps}"),
        "train.batch_size=2".into(),
        "train.checkpoint_every=0".into(),
        "train.val_windows=0".into(),
        "train.log_every=1".into(),
        "optim.warmup_steps=2".into(),
    ]);
    let source = Poisoned::new(&cfg, poisoned);
    let mut trainer = Trainer::new(cfg, dir, CpuBackend::new(), source, resume).unwrap();
    let mut losses = Vec::new();
    trainer.run(stop_after, |outcome, _| losses.push(outcome.loss.to_bits()))?;
    Ok(losses)
}

/// Three skipped steps stop a run only when they come in a row: skips at steps 2, 4 and 6 of 8,
/// each followed by a good step, let the run finish, with the three logged as null losses.
#[test]
fn skipped_steps_apart_do_not_stop_a_run() {
    let dir = run_setup::run_dir("nonfinite", "apart");
    let losses = skipping(&dir, 8, &[1, 3, 5], false, None)
        .unwrap_or_else(|e| panic!("three skips apart stopped the run: {e}"));
    assert_eq!(losses.len(), 8);
    let skipped: Vec<usize> = (0..8)
        .filter(|&i| f32::from_bits(losses[i]).is_nan())
        .collect();
    assert_eq!(skipped, [1, 3, 5]);
    let records = metrics_records(&dir);
    assert_eq!(records.iter().filter(|r| r["loss"].is_null()).count(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run that skipped a step, stopped and resumed from its checkpoint trains as one that never
/// stopped: AdamW's bias correction counts the updates made (not the steps), and the count comes
/// back with the checkpoint.
#[test]
fn a_run_with_a_skipped_step_resumes_bitwise() {
    let whole_dir = run_setup::run_dir("nonfinite", "whole");
    let whole = skipping(&whole_dir, 6, &[1], false, None).unwrap();
    std::fs::remove_dir_all(whole_dir).unwrap();
    let dir = run_setup::run_dir("nonfinite", "split");
    let mut split = skipping(&dir, 6, &[1], false, Some(3)).unwrap();
    assert_eq!(split.len(), 3);
    split.extend(skipping(&dir, 6, &[], true, None).unwrap());
    assert!(
        f32::from_bits(whole[1]).is_nan()
            && whole[2..].iter().all(|l| f32::from_bits(*l).is_finite())
    );
    assert_eq!(split, whole, "the resumed run trained otherwise");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The count of steps skipped in a row comes back with the checkpoint: a run stopped after two
/// skips in a row and resumed stops at the third, as the run that never stopped does.
#[test]
fn skips_in_a_row_are_counted_across_a_resume() {
    let whole_dir = run_setup::run_dir("nonfinite", "row-whole");
    let whole = skipping(&whole_dir, 6, &[1, 2, 3], false, None);
    assert!(whole.is_err(), "three skips in a row did not stop the run");
    std::fs::remove_dir_all(whole_dir).unwrap();
    let dir = run_setup::run_dir("nonfinite", "row-split");
    let split = skipping(&dir, 6, &[1, 2], false, Some(3)).unwrap();
    assert_eq!(split.len(), 3);
    match skipping(&dir, 6, &[0], true, None) {
        Ok(losses) => panic!("the resumed run forgot its two skips and went on: {losses:?}"),
        Err(e) => assert_eq!(e.to_string(), whole.unwrap_err().to_string()),
    }
    std::fs::remove_dir_all(dir).unwrap();
}
