//! A batch that cannot be read mid-run (trainer/src/train/data_stop.rs): the run stops with a
//! checkpoint of the last finished step, a failed read ahead does not cancel the step that read
//! it, and once the data is repaired a resume gives the run that never failed.

mod run_setup;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::config::TrainConfig;
use ecgfm_trainer::data::{BatchSource, ReadFault, SourceError, SyntheticSource};
use ecgfm_trainer::metrics::read_records;
use ecgfm_trainer::train::{TrainError, Trainer};
use ecgfm_trainer::HostBatch;
use std::path::Path;

const STEPS: u64 = 8;

fn config(accum: usize) -> TrainConfig {
    run_setup::config_from(&[
        "train.seed=2".into(),
        format!("train.steps={STEPS}"),
        "train.batch_size=2".into(),
        format!("train.accum_steps={accum}"),
        "train.log_every=1".into(),
        "train.checkpoint_every=0".into(),
        "train.val_windows=0".into(),
        "optim.warmup_steps=2".into(),
    ])
}

/// The synthetic stream with damaged batches: a read starting at one of the `damaged` sample
/// positions fails and leaves the position where it was, as the dataset loader does.
struct Damaged {
    inner: SyntheticSource,
    damaged: Vec<u64>,
}

impl BatchSource for Damaged {
    fn next_batch(&mut self, batch: &mut HostBatch) -> Result<(), SourceError> {
        let at = self.inner.state()["consumed"].as_u64().unwrap();
        if self.damaged.contains(&at) {
            return Err(format!("the batch at sample {at} is damaged").into());
        }
        self.inner.next_batch(batch)
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
    fn fault(&self, _error: &SourceError) -> ReadFault {
        ReadFault::Damaged
    }
}

/// Trains `cfg` in `dir` on the stream with `damaged` positions.
fn train(cfg: &TrainConfig, dir: &Path, resume: bool, damaged: &[u64]) -> Result<(), TrainError> {
    let source = Box::new(Damaged {
        inner: SyntheticSource::new(&cfg.model, cfg.train.seed, 0.0),
        damaged: damaged.to_vec(),
    });
    let mut trainer = Trainer::new(cfg.clone(), dir, CpuBackend::new(), source, resume)?;
    trainer.run(None, |_, _| {}).map(|_| ())
}

/// (step, loss bits, gradient-norm bits, lr, samples seen, FLOPs) of every metrics record: a
/// resume counts the samples and compute of the step it stopped in once, as a run that never
/// stopped does.
type Record = (u64, u32, u32, f32, u64, Option<f64>);

fn records(dir: &Path) -> Vec<Record> {
    read_records(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| {
            let bits = (r.loss.to_bits(), r.grad_norm.to_bits());
            (r.step, bits.0, bits.1, r.lr, r.samples_seen, r.flops)
        })
        .collect()
}

fn final_params(dir: &Path) -> Vec<u8> {
    let file = checkpoint::checkpoint_dir(dir, STEPS).join("model.safetensors");
    std::fs::read(file).unwrap()
}

/// A run stopped by the read of `damaged` stops after step `finished` with its checkpoint, and
/// its resume on the repaired data matches an uninterrupted run.
fn stops_with_a_checkpoint_and_resumes_exactly(name: &str, accum: usize, damaged: u64) {
    let cfg = config(accum);
    let finished = damaged / cfg.samples_per_step() as u64;
    let full = run_setup::run_dir("read-fail", &format!("{name}-full"));
    train(&cfg, &full, false, &[]).unwrap();

    let dir = run_setup::run_dir("read-fail", name);
    let err = train(&cfg, &dir, false, &[damaged]).unwrap_err();
    let text = err.to_string();
    let saved = checkpoint::checkpoint_dir(&dir, finished);
    match &err {
        TrainError::DataStopped {
            finished: f,
            checkpoint: Some(c),
            damaged,
            ..
        } => assert_eq!((*f, c, *damaged), (finished, &saved, true), "{text}"),
        other => panic!("not a stop for data with a checkpoint: {other}"),
    }
    assert!(checkpoint::is_complete(&saved), "{text}");
    assert!(text.contains("is damaged"), "{text}");
    assert!(
        text.contains(&format!(
            "could not read the batch of step {}",
            finished + 1
        )),
        "{text}"
    );
    assert!(
        text.contains("--resume continues from that checkpoint"),
        "{text}"
    );
    let logged: Vec<u64> = records(&dir).iter().map(|r| r.0).collect();
    assert_eq!(logged, (0..finished).collect::<Vec<_>>());

    // Still damaged: the resume stops at once, pointing at the checkpoint it resumed from.
    let before = std::fs::read(saved.join("state.json")).unwrap();
    let again = train(&cfg, &dir, true, &[damaged]).unwrap_err();
    assert!(
        matches!(&again, TrainError::DataStopped { finished: f, checkpoint: Some(c), .. }
            if *f == finished && c == &saved),
        "{again}"
    );
    assert_eq!(std::fs::read(saved.join("state.json")).unwrap(), before);

    // Repaired: the same run as one that never failed.
    train(&cfg, &dir, true, &[]).unwrap();
    assert_eq!(records(&dir), records(&full));
    assert_eq!(final_params(&dir), final_params(&full));
    for d in [full, dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_failed_read_ahead_keeps_the_step_that_read_it() {
    // Step 5's batch (samples 10..12) is read ahead during step 4: step 4 stands.
    stops_with_a_checkpoint_and_resumes_exactly("ahead", 1, 10);
}

#[test]
fn a_failed_read_inside_a_step_drops_that_step() {
    // Micro-batch 1 of step 5 (samples 22..24), read during step 5: its update is dropped.
    stops_with_a_checkpoint_and_resumes_exactly("inside", 2, 22);
}

#[test]
fn a_first_read_that_fails_saves_nothing() {
    let cfg = config(1);
    let dir = run_setup::run_dir("read-fail", "first");
    let err = train(&cfg, &dir, false, &[0]).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::DataStopped {
                finished: 0,
                checkpoint: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("before its first step finished"),
        "{err}"
    );
    assert!(checkpoint::latest_complete(&dir).unwrap().is_none());
    std::fs::remove_dir_all(dir).unwrap();
}
