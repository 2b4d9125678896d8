//! What a run stopped by a non-finite loss says: the step as the progress line counts it (from
//! 1), the data blamed when a batch's signals held a NaN, and clipping suggested only when it is
//! off; and a step skipped for one is logged, between logged steps too, as is the step that
//! stops the run.

mod run_setup;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::data::{BatchSource, SourceError, SyntheticSource};
use ecgfm_trainer::train::{NonFiniteCause, TrainError, Trainer};
use ecgfm_trainer::HostBatch;

/// The synthetic stream with a NaN in the first signal of batch `poisoned` (counting from 0).
struct Poisoned {
    inner: SyntheticSource,
    poisoned: u64,
    read: u64,
}

impl BatchSource for Poisoned {
    fn next_batch(&mut self, batch: &mut HostBatch) -> Result<(), SourceError> {
        self.inner.next_batch(batch)?;
        if self.read == self.poisoned {
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
    let source = Box::new(Poisoned {
        inner: SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0),
        poisoned,
        read: 0,
    });
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
    let source = Box::new(Poisoned {
        inner: SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0),
        poisoned: 2,
        read: 0,
    });
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
