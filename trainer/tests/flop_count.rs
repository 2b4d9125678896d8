//! The training FLOPs a run reports (`flops` in metrics.jsonl): counted from the leads each
//! consumed batch's samples have, each batch once (not the one read ahead), carried across a
//! resume.

mod run_setup;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::metrics::read_records;
use ecgfm_trainer::model::{FlopCounter, ModelStats};
use ecgfm_trainer::train::Trainer;
use ecgfm_trainer::HostBatch;
use std::path::PathBuf;

const STEPS: u64 = 6;

fn config() -> TrainConfig {
    run_setup::config_from(&[
        format!("train.steps={STEPS}"),
        "train.batch_size=4".into(),
        "train.log_every=1".into(),
        "train.checkpoint_every=0".into(),
        "optim.warmup_steps=2".into(),
    ])
}

fn run_dir(name: &str) -> PathBuf {
    run_setup::run_dir("flops", name)
}

/// Runs the config with `single_lead` of the synthetic samples single-lead, stopping after
/// `stop_after` steps and resuming when asked; the `flops` of each metrics record.
fn flops_logged(name: &str, single_lead: f32, stop_after: Option<u64>) -> Vec<f64> {
    let cfg = config();
    let dir = run_dir(name);
    let source = || {
        Box::new(SyntheticSource::new(
            &cfg.model,
            cfg.train.seed,
            single_lead,
        ))
    };
    let mut trainer = Trainer::new(cfg.clone(), &dir, CpuBackend::new(), source(), false).unwrap();
    trainer.run(stop_after, |_, _| {}).unwrap();
    if stop_after.is_some() {
        let mut trainer =
            Trainer::new(cfg.clone(), &dir, CpuBackend::new(), source(), true).unwrap();
        trainer.run(None, |_, _| {}).unwrap();
    }
    let records = read_records(&dir.join("metrics.jsonl")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    records.iter().map(|r| r.flops.expect("flops")).collect()
}

/// The FLOPs of the first `STEPS` batches the source gives, summed batch by batch.
fn flops_of_batches(single_lead: f32) -> Vec<f64> {
    let cfg = config();
    let counter = FlopCounter::new(&cfg.model);
    let mut source = SyntheticSource::new(&cfg.model, cfg.train.seed, single_lead);
    let mut batch = HostBatch::new(&cfg.model, cfg.train.batch_size);
    let mut total = 0.0;
    (0..STEPS)
        .map(|_| {
            source.next_batch(&mut batch).unwrap();
            total += counter.batch_flops(&batch.lead_mask);
            total
        })
        .collect()
}

#[test]
fn full_twelve_lead_batches_cost_the_nominal_flops() {
    let cfg = config();
    let per_step = ModelStats::new(&cfg.model).train_flops * cfg.train.batch_size as f64;
    let logged = flops_logged("full", 0.0, None);
    let nominal: Vec<f64> = (1..=STEPS).map(|s| s as f64 * per_step).collect();
    assert_eq!(logged, nominal);
}

#[test]
fn single_lead_samples_are_counted_at_their_cost_and_survive_a_resume() {
    let logged = flops_logged("mixed", 0.5, None);
    let expected = flops_of_batches(0.5);
    assert_eq!(logged, expected);
    let nominal = config().train.batch_size as f64 * ModelStats::new(&config().model).train_flops;
    assert!(
        *logged.last().unwrap() < 0.9 * STEPS as f64 * nominal,
        "half the samples single-lead: {logged:?}"
    );
    assert_eq!(flops_logged("resumed", 0.5, Some(2)), expected);
}
