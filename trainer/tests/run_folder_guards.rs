//! What a run folder is protected from (trainer/src/train.rs): a fresh start over another run's
//! checkpoints, a refused resume rewriting config.toml, a changed length that alters the rates
//! of steps already run or a changed precision going unnoticed, a stop during the last step
//! leaving a finished run "stopped", unfinished checkpoint folders staying for good, and a run
//! whose folder was removed under it ending "done".

mod run_setup;

use ecgfm_kernels::{CpuBackend, Precision};
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::SyntheticSource;
use ecgfm_trainer::train::{RunSummary, TrainError, Trainer};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn config(steps: u64, batch: usize, seed: u64) -> TrainConfig {
    run_setup::config_from(&[
        format!("train.seed={seed}"),
        format!("train.steps={steps}"),
        format!("train.batch_size={batch}"),
        "train.checkpoint_every=0".into(),
        "train.val_windows=0".into(),
        "optim.warmup_steps=40".into(),
    ])
}

fn trainer(cfg: &TrainConfig, dir: &Path, resume: bool) -> Result<Trainer<CpuBackend>, TrainError> {
    let source = Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
    Trainer::new(cfg.clone(), dir, CpuBackend::new(), source, resume)
}

/// Runs `cfg` in `dir` for at most `stop_after` steps (checkpointing where it stops).
fn run(cfg: &TrainConfig, dir: &Path, resume: bool, stop_after: Option<u64>) -> RunSummary {
    trainer(cfg, dir, resume)
        .unwrap()
        .run(stop_after, |_, _| {})
        .unwrap()
}

fn config_toml(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("config.toml")).unwrap()
}

#[test]
fn a_fresh_start_over_checkpoints_is_refused_and_deletes_nothing() {
    let dir = run_setup::run_dir("guards", "fresh");
    let old = config(6, 2, 0);
    run(&old, &dir, false, Some(2));
    let saved = config_toml(&dir);
    let err = trainer(&config(6, 2, 7), &dir, false)
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, TrainError::CheckpointsExist { .. }), "{text}");
    for part in [
        dir.display().to_string(),
        "step_00000002".into(),
        "--resume".into(),
        "--out".into(),
        format!("remove {}", dir.join("checkpoints").display()),
    ] {
        assert!(text.contains(&part), "{part} not in: {text}");
    }
    assert!(dir.join("checkpoints/step_00000002").is_dir());
    assert_eq!(
        config_toml(&dir),
        saved,
        "the refused start rewrote config.toml"
    );
    // The old run still resumes; an empty folder (no checkpoint yet) may start afresh.
    assert_eq!(run(&old, &dir, true, None).steps, 6);
    std::fs::remove_dir_all(dir.join("checkpoints")).unwrap();
    assert_eq!(run(&config(3, 2, 7), &dir, false, None).steps, 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_refused_resume_leaves_config_toml_as_it_was() {
    let dir = run_setup::run_dir("guards", "refused");
    run(&config(6, 4, 0), &dir, false, Some(2));
    let saved = config_toml(&dir);
    // Another global batch, then a length below the step reached: both refused.
    for (cfg, says) in [
        (config(9, 2, 0), "samples per step"),
        (config(1, 4, 0), "past train.steps 1"),
    ] {
        let err = trainer(&cfg, &dir, true)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(says), "{err}");
        assert_eq!(
            config_toml(&dir),
            saved,
            "refused ({err}) yet rewrote config.toml"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn changing_train_steps_warns_only_when_a_step_already_run_had_another_rate() {
    // Resumed at step 2, inside the 40-step warmup, whose rate does not depend on the length:
    // the steps run had the rates an 80-step run gives them, so the run is one, bit for bit.
    let dir = run_setup::run_dir("guards", "warmup");
    run(&config(50, 2, 0), &dir, false, Some(2));
    let mut longer = trainer(&config(80, 2, 0), &dir, true).unwrap();
    assert!(longer.warnings().is_empty(), "{:?}", longer.warnings());
    let resumed = longer.run(Some(2), |_, _| {}).unwrap();
    let fresh_dir = run_setup::run_dir("guards", "warmup-fresh");
    let fresh = run(&config(80, 2, 0), &fresh_dir, false, Some(4));
    assert_eq!(
        resumed.final_loss.map(f32::to_bits),
        fresh.final_loss.map(f32::to_bits)
    );
    // Past a 1-step warmup, step 2 of a 4-step run decays faster than an 8-step run's: warned.
    let decaying = |steps: u64| {
        let mut cfg = config(steps, 2, 0);
        cfg.optim.warmup_steps = 1;
        cfg
    };
    let short_dir = run_setup::run_dir("guards", "decaying");
    run(&decaying(4), &short_dir, false, Some(3));
    let longer = trainer(&decaying(8), &short_dir, true).unwrap();
    let warned = longer.warnings().join("\n");
    assert!(
        warned.contains("train.steps changed from 4 to 8: after step 3")
            && warned.contains("matches neither a 4-step nor a 8-step run"),
        "{warned:?}"
    );
    drop(longer);
    // That resume made the run an 8-step one: resuming it at 8 steps changes nothing.
    let same = trainer(&decaying(8), &short_dir, true).unwrap();
    assert!(same.warnings().is_empty(), "{:?}", same.warnings());
    for dir in [dir, fresh_dir, short_dir] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_stop_asked_for_during_the_last_step_still_finishes_the_run() {
    let dir = run_setup::run_dir("guards", "last-step");
    let mut trainer = trainer(&config(3, 2, 0), &dir, false).unwrap();
    // The trainer asks once per step: the third question comes during the last step.
    let asked = Arc::new(AtomicU64::new(0));
    let counter = asked.clone();
    trainer.stop_when(move || counter.fetch_add(1, Ordering::SeqCst) + 1 >= 3);
    let summary = trainer.run(None, |_, _| {}).unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    assert_eq!(summary.steps, 3);
    assert!(!summary.stopped_early, "a finished run reported as stopped");
    assert!(dir.join("checkpoints/step_00000003").is_dir());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `train.precision = auto` resolves per device: a checkpoint trained in bf16 (as on a GPU)
/// resumed where auto means fp32 (the CPU) is warned of, and the new checkpoints record fp32.
/// A resume may name the precision instead of `auto`, but not swap fp32 for bf16, nor name
/// another precision than the checkpoint's.
#[test]
fn a_resume_in_another_precision_than_the_checkpoints_is_warned_of() {
    let dir = run_setup::run_dir("guards", "precision");
    let cfg = config(4, 2, 0);
    assert_eq!(cfg.train.precision, "auto");
    let bf16 = CpuBackend::with_precision(Precision::Bf16);
    let source = || Box::new(SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0));
    let mut first = Trainer::new(cfg.clone(), &dir, bf16, source(), false).unwrap();
    first.run(Some(2), |_, _| {}).unwrap();
    let recorded = |step: u64| {
        let dir = dir.join(format!("checkpoints/step_{step:08}"));
        ecgfm_trainer::checkpoint::load_state(&dir)
            .unwrap()
            .precision
    };
    assert_eq!(recorded(2).as_deref(), Some("bf16"));
    let resumed = trainer(&cfg, &dir, true).unwrap();
    let warned = resumed.warnings().join("\n");
    assert!(
        warned.contains("was trained in bf16, and this run computes in fp32"),
        "{warned}"
    );
    let named = |precision: &str| {
        let mut named = cfg.clone();
        named.train.precision = precision.into();
        named
    };
    // Named, but not the precision the checkpoint ran in: refused.
    let err = trainer(&named("fp32"), &dir, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("was trained in bf16; in fp32 the run would round otherwise"),
        "{err}"
    );
    // Named as the checkpoint ran: resumed, and recorded.
    let bf16 = CpuBackend::with_precision(Precision::Bf16);
    Trainer::new(named("bf16"), &dir, bf16, source(), true)
        .unwrap()
        .run(Some(1), |_, _| {})
        .unwrap();
    assert_eq!(recorded(3).as_deref(), Some("bf16"));
    // From one named precision to the other: refused as a changed setting.
    let err = trainer(&named("fp32"), &dir, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("train.precision: saved \"bf16\", now \"fp32\""),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A save interrupted at a step that is never saved again leaves its partial folder; the next
/// start of the run removes it and says so, and keeps every sealed checkpoint.
#[test]
fn unfinished_checkpoint_folders_are_removed_when_the_run_starts_again() {
    let dir = run_setup::run_dir("guards", "partial");
    let cfg = config(6, 2, 0);
    run(&cfg, &dir, false, Some(2));
    let partial = ecgfm_trainer::checkpoint::partial_dir(&dir, 3);
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), b"half a file").unwrap();
    let resumed = trainer(&cfg, &dir, true).unwrap();
    assert_eq!(resumed.step_index(), 2);
    assert!(!partial.exists());
    let said = resumed.warnings().join("\n");
    assert!(
        said.contains(".step_00000003.partial: a checkpoint left unfinished"),
        "{said}"
    );
    assert!(dir.join("checkpoints/step_00000002/COMPLETE").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_finished_run_resumed_leaves_its_logs_as_they_were() {
    let dir = run_setup::run_dir("guards", "finished");
    run(&config(3, 2, 0), &dir, false, None);
    let logs = |dir: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.file_name().unwrap() != "config.toml")
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = logs(&dir);
    assert!(before.iter().any(|(name, _)| name.contains("tfevents")));
    let summary = run(&config(3, 2, 0), &dir, true, None);
    assert_eq!(summary.final_loss, None, "nothing was left to run");
    assert!(
        logs(&dir) == before,
        "a new or changed metrics or event file"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run whose folder is removed while it trains (a scratch purge) stops at its next
/// checkpoint, naming the folder, where it trained on and ended "done" over a folder holding
/// only that checkpoint: no config.toml, no metrics, nothing to resume or export.
#[test]
fn a_run_whose_folder_is_removed_stops_at_its_next_checkpoint() {
    let dir = run_setup::run_dir("guards", "removed");
    let cfg = config(6, 2, 0);
    let removed = dir.clone();
    let err = trainer(&cfg, &dir, false)
        .unwrap()
        .run(None, |outcome, _| {
            if outcome.step == 2 {
                std::fs::remove_dir_all(&removed).unwrap();
            }
        })
        .expect_err("stopped");
    assert!(matches!(err, TrainError::RunFolderGone { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "{} lost its config.toml while this run trained in it",
            dir.display()
        )),
        "{err}"
    );
    assert!(!dir.join("checkpoints").exists(), "nothing written after");
    let _ = std::fs::remove_dir_all(dir);
}
