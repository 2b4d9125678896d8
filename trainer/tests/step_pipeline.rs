//! How a training step talks to its device (trainer/src/train/step.rs): the host reads back once
//! per step, stages the next batch before that read, and a pass in between (validation) that
//! drops the staged batch changes nothing about the run; each step trains at the schedule's
//! learning rate for its own index.

mod run_setup;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::SyntheticSource;
use ecgfm_trainer::model::ProfiledBackend;
use ecgfm_trainer::train::Trainer;
use ecgfm_trainer::validation::{synthetic_held_out, Validator};
use std::path::{Path, PathBuf};

fn config(accum: usize, val_every: u64) -> TrainConfig {
    run_setup::config_from(&[
        "train.seed=5".to_string(),
        "train.steps=6".into(),
        "train.batch_size=2".into(),
        format!("train.accum_steps={accum}"),
        format!("train.val_every={val_every}"),
        "train.val_windows=2".into(),
        "train.checkpoint_every=0".into(),
        "optim.warmup_steps=2".into(),
    ])
}

fn run_dir(name: &str) -> PathBuf {
    run_setup::run_dir("pipe", name)
}

fn calls(backend: &ProfiledBackend<CpuBackend>, op: &str) -> u64 {
    backend
        .timings()
        .iter()
        .find(|t| t.op == op)
        .map_or(0, |t| t.calls)
}

#[test]
fn a_step_reads_the_device_once_and_uploads_each_micro_batch_once() {
    let cfg = config(3, 0);
    let dir = run_dir("reads");
    let source = Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
    let backend = ProfiledBackend::new(CpuBackend::new());
    let mut trainer = Trainer::new(cfg, &dir, backend, source, false).unwrap();
    trainer.step().unwrap();
    for _ in 0..2 {
        trainer.model().backend().reset();
        let outcome = trainer.step().unwrap();
        assert!(outcome.loss.is_finite() && !outcome.skipped);
        let be = trainer.model().backend();
        assert_eq!(
            calls(be, "download") + calls(be, "download_idx"),
            1,
            "the losses and the gradient norm come back in one read"
        );
        // Micro-batches 1 and 2 of this step and micro-batch 0 of the next (read ahead), each
        // copied while earlier work may still run: after the release of the input buffer by
        // each of this step's three forward passes.
        assert_eq!(
            calls(be, "upload_input"),
            3,
            "one signal upload per micro-batch"
        );
        assert_eq!(calls(be, "upload"), 0, "no other upload");
        assert_eq!(
            calls(be, "release_input"),
            3,
            "one release per forward pass"
        );
        assert!(
            trainer.model().is_staged(),
            "the next step's batch is staged"
        );
    }
    while trainer.step_index() < 6 {
        trainer.step().unwrap();
    }
    assert!(
        !trainer.model().is_staged(),
        "the last step reads no batch ahead"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The (loss, grad_norm) of the steps of a 6-step run in `dir`, with the given validation
/// schedule, resuming when asked and stopping after `stop_after` steps.
fn run(
    dir: &Path,
    accum: usize,
    val_every: u64,
    resume: bool,
    stop_after: Option<u64>,
) -> Vec<(f32, f32)> {
    let cfg = config(accum, val_every);
    let source = Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
    let mut trainer = Trainer::new(cfg.clone(), dir, CpuBackend::new(), source, resume).unwrap();
    if val_every > 0 {
        let held_out = synthetic_held_out(&cfg).unwrap();
        trainer.set_validator(Validator::new(&cfg, Box::new(held_out)).unwrap());
    }
    let mut seen = Vec::new();
    trainer
        .run(stop_after, |outcome, _| {
            seen.push((outcome.loss, outcome.grad_norm))
        })
        .unwrap();
    seen
}

fn losses(name: &str, accum: usize, val_every: u64) -> Vec<(f32, f32)> {
    let dir = run_dir(name);
    let seen = run(&dir, accum, val_every, false, None);
    std::fs::remove_dir_all(dir).unwrap();
    seen
}

#[test]
fn a_run_stopped_with_a_batch_read_ahead_resumes_bitwise() {
    let whole = losses("whole", 2, 0);
    let dir = run_dir("split");
    let mut split = run(&dir, 2, 0, false, Some(3));
    assert_eq!(split.len(), 3);
    split.extend(run(&dir, 2, 0, true, None));
    assert_eq!(split, whole, "the resumed run read other batches");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_validation_pass_between_steps_leaves_the_read_ahead_batch_intact() {
    for accum in [1, 2] {
        let plain = losses(&format!("plain{accum}"), accum, 0);
        let validated = losses(&format!("val{accum}"), accum, 2);
        assert_eq!(plain.len(), 6);
        assert_eq!(
            plain, validated,
            "validation every 2 steps changed the training (accum {accum})"
        );
        assert!(plain.windows(2).all(|w| w[0] != w[1]));
    }
}

/// Step i (from 0) trains at the schedule's rate for step i, as metrics.jsonl logs it: through the
/// warmup (0, then half the peak, at warmup 2), its peak and the cosine decay to the last step.
#[test]
fn each_step_trains_at_the_schedules_rate_for_its_index() {
    let mut cfg = config(1, 0);
    cfg.train.log_every = 1;
    let dir = run_dir("lr");
    let source = Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
    let mut trainer = Trainer::new(cfg.clone(), &dir, CpuBackend::new(), source, false).unwrap();
    trainer.run(None, |_, _| {}).unwrap();
    let logged = ecgfm_trainer::metrics::read_records(&dir.join("metrics.jsonl")).unwrap();
    let schedule = cfg.schedule();
    let steps: Vec<u64> = logged.iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5]);
    for record in &logged {
        assert_eq!(
            record.lr,
            schedule.lr_at(record.step) as f32,
            "step {}",
            record.step
        );
    }
    assert_eq!(logged[0].lr, 0.0);
    assert_eq!(logged[1].lr as f64, schedule.peak_lr as f32 as f64 / 2.0);
    std::fs::remove_dir_all(dir).unwrap();
}
