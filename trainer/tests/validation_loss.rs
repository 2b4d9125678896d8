//! The validation loss of pretraining: measured every `val_every` steps and at the end, on a
//! held-out synthetic set that is the same for every run seed and differs from the training
//! stream; a resumed run measures the same bits as an uninterrupted one, and a resume of a run
//! measured on an older definition of the set says once that its losses do not compare.

mod run_setup;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::{BatchSource, SyntheticSource};
use ecgfm_trainer::metrics::read_records;
use ecgfm_trainer::train::Trainer;
use ecgfm_trainer::validation::{synthetic_held_out, Validator};
use ecgfm_trainer::{HostBatch, ParamLayout};
use std::path::{Path, PathBuf};

fn config(seed: u64, steps: u64) -> TrainConfig {
    run_setup::config_from(&[
        format!("train.seed={seed}"),
        format!("train.steps={steps}"),
        "train.batch_size=4".into(),
        "train.val_every=4".into(),
        "train.val_windows=8".into(),
        "train.log_every=3".into(),
        "train.checkpoint_every=0".into(),
        "optim.warmup_steps=2".into(),
    ])
}

fn run_dir(name: &str) -> PathBuf {
    run_setup::run_dir("val", name)
}

fn first_batch(config: &TrainConfig, mut source: impl BatchSource) -> HostBatch {
    let mut batch = HostBatch::new(&config.model, config.train.batch_size);
    source.next_batch(&mut batch).unwrap();
    batch
}

#[test]
fn held_out_set_is_seed_independent_and_not_the_training_stream() {
    let (a, b) = (config(0, 10), config(1, 10));
    let held_a = first_batch(&a, synthetic_held_out(&a).unwrap());
    let held_b = first_batch(&b, synthetic_held_out(&b).unwrap());
    assert_eq!(
        held_a.x, held_b.x,
        "the held-out ECGs depend on the run seed"
    );
    for cfg in [&a, &b] {
        let train = first_batch(cfg, SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
        assert_ne!(train.x, held_a.x);
    }
}

/// Trains `steps` steps in `dir` (resuming when asked, stopping after `stop_after` steps) and
/// returns the (step, val_loss) records of metrics.jsonl.
fn train(dir: &Path, steps: u64, resume: bool, stop_after: Option<u64>) -> Vec<(u64, f32)> {
    let cfg = config(3, steps);
    let source = Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
    let mut trainer = Trainer::new(cfg.clone(), dir, CpuBackend::new(), source, resume).unwrap();
    let validator = Validator::new(&cfg, Box::new(synthetic_held_out(&cfg).unwrap())).unwrap();
    trainer.set_validator(validator);
    let summary = trainer.run(stop_after, |_, _| {}).unwrap();
    let records = read_records(&dir.join("metrics.jsonl")).unwrap();
    let measured: Vec<(u64, f32)> = records
        .iter()
        .filter_map(|r| r.val_loss.map(|v| (r.step, v)))
        .collect();
    assert_eq!(summary.val_loss, measured.last().map(|m| m.1));
    measured
}

#[test]
fn validation_loss_is_logged_on_schedule_and_resumes_bitwise() {
    let whole = run_dir("whole");
    let measured = train(&whole, 10, false, None);
    // Records are 0-based: after steps 4 and 8 (every 4) and at the end (10).
    let steps: Vec<u64> = measured.iter().map(|m| m.0).collect();
    assert_eq!(steps, [3, 7, 9]);
    for (_, v) in &measured {
        assert!(v.is_finite() && *v > 0.0 && *v < 10.0, "{measured:?}");
    }
    assert_ne!(
        measured[0].1, measured[2].1,
        "training did not change the val loss"
    );

    let split = run_dir("split");
    let first = train(&split, 10, false, Some(6));
    assert_eq!(first, measured[..1]);
    let resumed = train(&split, 10, true, None);
    assert_eq!(
        resumed, measured,
        "a resumed run measured other validation losses"
    );
    for dir in [whole, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_resume_of_a_run_measured_on_an_older_validation_set_warns_once() {
    let dir = run_dir("version");
    train(&dir, 10, false, Some(6));
    // The checkpoint as an ecgfm before validation versions wrote it.
    let cfg = config(3, 10);
    let layout = ParamLayout::new(&cfg.model);
    let mut old = checkpoint::load_latest_intact(&dir, &layout)
        .unwrap()
        .unwrap()
        .checkpoint;
    assert_eq!(old.state.validation_version, Some(2));
    old.state.validation_version = None;
    let toml = cfg.to_toml_string();
    checkpoint::save(
        &dir,
        &layout,
        &toml,
        &old.params,
        &old.optimizer,
        &old.state,
    )
    .unwrap();
    let warnings = |dir: &Path| {
        let source = Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
        let trainer = Trainer::new(cfg.clone(), dir, CpuBackend::new(), source, true).unwrap();
        trainer.warnings().to_vec()
    };
    let said = warnings(&dir);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("up to step 6") && said[0].contains("do not compare validation losses"),
        "{said:?}"
    );
    // Resumed once, its next checkpoint records today's set: no second warning.
    train(&dir, 10, true, None);
    assert_eq!(warnings(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(dir).unwrap();
}
