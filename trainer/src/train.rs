//! The training loop: micro-batches, gradient accumulation, schedule, clipping, AdamW,
//! metrics and checkpoints, with exact resume.
//!
//! One optimiser step `s` (counting from 0):
//! ```text
//! zero grads
//! for micro in 0..accum:  source fills x, lead_mask;  mask = sampler(seed, s, micro)
//!                         loss += forward_backward(batch, scale = 1/accum) / accum
//! norm = clip(global norm);  AdamW(lr = schedule(s));  read loss and norm back (to log)
//! ```
//! Everything a step depends on is either in the checkpoint (weights, AdamW moments, data-source
//! position) or a pure function of (seed, step), so resuming from step k reproduces the bits of a
//! run that never stopped.

use crate::checkpoint::{self, CheckpointError, TrainingState};
use crate::config::TrainConfig;
use crate::data::{BatchSource, SourceError};
use crate::mask::MaskSampler;
use crate::metrics::{MetricsWriter, StepRecord};
use crate::model::Mae;
use crate::validation::Validator;
use crate::{HostBatch, ModelError};
use ecgfm_kernels::Backend;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("data source: {0}")]
    Data(SourceError),
    #[error("run directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot resume {run_dir}: {reason}")]
    Resume { run_dir: PathBuf, reason: String },
    #[error("loss became {loss} at step {step}: training diverged (lower optim.lr or enable optim.clip_norm)")]
    NonFinite { step: u64, loss: f32 },
}

/// What one optimiser step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    pub step: u64,
    pub loss: f32,
    pub lr: f32,
    pub grad_norm: f32,
}

/// A training run in a run directory.
pub struct Trainer<B: Backend> {
    config: TrainConfig,
    config_toml: String,
    run_dir: PathBuf,
    model: Mae<B>,
    source: Box<dyn BatchSource>,
    sampler: MaskSampler,
    batch: HostBatch,
    state: TrainingState,
    metrics: MetricsWriter,
    resumed_from: Option<PathBuf>,
    validator: Option<Validator>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl<B: Backend> Trainer<B> {
    /// Prepares a run in `run_dir`. With `resume`, continues from the newest complete checkpoint
    /// there (a fresh start when there is none); the directory's `config.toml` must then match
    /// `config` in everything but `train.steps` and the thread and prefetch counts.
    pub fn new(
        config: TrainConfig,
        run_dir: &Path,
        backend: B,
        mut source: Box<dyn BatchSource>,
        resume: bool,
    ) -> Result<Trainer<B>, TrainError> {
        std::fs::create_dir_all(run_dir).map_err(io_err(run_dir))?;
        let config_path = run_dir.join("config.toml");
        if resume && config_path.exists() {
            check_resumable(run_dir, &config_path, &config)?;
        }
        let config_toml = config.to_toml_string();
        std::fs::write(&config_path, &config_toml).map_err(io_err(&config_path))?;

        let mut model = Mae::new(backend, config.model.clone(), config.train.batch_size)?;
        let latest = if resume {
            checkpoint::latest_complete(run_dir)?
        } else {
            None
        };
        let state = match &latest {
            Some(dir) => {
                let ckpt = checkpoint::load(dir, model.layout())?;
                model.load_params(&ckpt.params)?;
                model.load_optimizer_state(&ckpt.optimizer)?;
                source.restore(&ckpt.state.data).map_err(TrainError::Data)?;
                ckpt.state
            }
            None => {
                model.init_params(config.train.seed);
                TrainingState {
                    step: 0,
                    samples_seen: 0,
                    elapsed_s: 0.0,
                    data: source.state(),
                }
            }
        };
        let metrics = MetricsWriter::open(run_dir, state.step).map_err(io_err(run_dir))?;
        let batch = HostBatch::new(&config.model, config.train.batch_size);
        Ok(Trainer {
            sampler: MaskSampler::new(&config.model),
            config,
            config_toml,
            run_dir: run_dir.to_path_buf(),
            model,
            source,
            batch,
            state,
            metrics,
            resumed_from: latest,
            validator: None,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn model(&self) -> &Mae<B> {
        &self.model
    }

    /// Optimiser steps completed so far.
    pub fn step_index(&self) -> u64 {
        self.state.step
    }

    /// The checkpoint this run resumed from, if any.
    pub fn resumed_from(&self) -> Option<&Path> {
        self.resumed_from.as_deref()
    }

    pub fn source_description(&self) -> String {
        self.source.describe()
    }

    /// Measures a validation loss as `validator` says (see `validation.rs`).
    pub fn set_validator(&mut self, validator: Validator) {
        self.validator = Some(validator);
    }

    /// Runs one optimiser step.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        let step = self.state.step;
        let accum = self.config.train.accum_steps;
        let scale = 1.0 / accum as f32;
        self.model.zero_grads();
        for micro in 0..accum {
            self.source
                .next_batch(&mut self.batch)
                .map_err(TrainError::Data)?;
            self.sampler
                .fill(self.config.train.seed, step, micro as u64, &mut self.batch);
            self.model.forward_backward(&self.batch, scale)?;
        }
        let lr = self.config.schedule().lr_at(step) as f32;
        self.model
            .optimizer_step(&self.config.adamw(), lr, self.config.clip_norm());
        // The step is queued; reading its loss and norm back is the one wait of the step.
        let loss = self.model.loss_sum() / accum as f32;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step, loss });
        }
        let grad_norm = self.model.last_grad_norm();
        self.state.step += 1;
        self.state.samples_seen += self.config.samples_per_step() as u64;
        Ok(StepOutcome {
            step,
            loss,
            lr,
            grad_norm,
        })
    }

    /// Writes a checkpoint of the current state.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf, TrainError> {
        self.state.data = self.source.state();
        let dir = checkpoint::save(
            &self.run_dir,
            self.model.layout(),
            &self.config_toml,
            &self.model.params_to_host(),
            &self.model.optimizer_state_to_host(),
            &self.state,
        )?;
        Ok(dir)
    }

    /// Trains to `train.steps` (or for at most `stop_after` more steps), logging metrics every
    /// `log_every` steps and checkpointing every `checkpoint_every` steps and where it stops.
    /// `on_step` sees every step (progress display).
    pub fn run(
        &mut self,
        stop_after: Option<u64>,
        mut on_step: impl FnMut(&StepOutcome, &StepRecord),
    ) -> Result<RunSummary, TrainError> {
        let total = self.config.train.steps;
        let session_end = stop_after.map_or(total, |n| (self.state.step + n).min(total));
        let every = self.config.train.checkpoint_every;
        let log_every = self.config.train.log_every;
        let started = Instant::now();
        let elapsed_before = self.state.elapsed_s;
        let mut window_start = Instant::now();
        let mut window_samples = 0u64;
        let mut last = None;
        let mut val_loss = None;
        while self.state.step < session_end {
            let outcome = self.step()?;
            window_samples += self.config.samples_per_step() as u64;
            let done = self.state.step;
            self.state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            let mut record = StepRecord {
                step: outcome.step,
                loss: outcome.loss,
                lr: outcome.lr,
                grad_norm: outcome.grad_norm,
                samples_per_s: window_samples as f64 / window_start.elapsed().as_secs_f64(),
                elapsed_s: self.state.elapsed_s,
                samples_seen: self.state.samples_seen,
                val_loss: None,
            };
            if let Some(validator) = self.validator.as_ref().filter(|v| v.due(done, total)) {
                record.val_loss = Some(validator.loss(&mut self.model)?);
                val_loss = record.val_loss;
            }
            let logged = done.is_multiple_of(log_every) || done == total || outcome.step == 0;
            if logged || record.val_loss.is_some() {
                self.metrics
                    .write(&record)
                    .map_err(io_err(self.metrics.path()))?;
                window_start = Instant::now();
                window_samples = 0;
            }
            on_step(&outcome, &record);
            if (every > 0 && done.is_multiple_of(every)) || done == session_end {
                self.save_checkpoint()?;
            }
            last = Some(outcome);
        }
        Ok(RunSummary {
            steps: self.state.step,
            final_loss: last.map(|o| o.loss),
            elapsed_s: self.state.elapsed_s,
            samples_seen: self.state.samples_seen,
            val_loss,
        })
    }
}

/// The end of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub steps: u64,
    /// Loss of the last step run in this session (`None` when nothing was left to do).
    pub final_loss: Option<f32>,
    pub elapsed_s: f64,
    pub samples_seen: u64,
    /// The last validation loss measured in this session.
    pub val_loss: Option<f32>,
}

/// A resumed run must use the configuration it started with. Only its length and the settings
/// that change how fast it runs, never its numbers, may change: `train.steps`, `train.threads`,
/// `data.decode_threads` and `data.prefetch_batches` (a run preempted onto another machine
/// resumes with that machine's core count and gives the same bits).
fn check_resumable(
    run_dir: &Path,
    config_path: &Path,
    config: &TrainConfig,
) -> Result<(), TrainError> {
    let saved = crate::config::read_toml_file(config_path)
        .and_then(TrainConfig::from_table)
        .map_err(|e| TrainError::Resume {
            run_dir: run_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut comparable = config.clone();
    comparable.train.steps = saved.train.steps;
    comparable.train.threads = saved.train.threads;
    comparable.data.decode_threads = saved.data.decode_threads;
    comparable.data.prefetch_batches = saved.data.prefetch_batches;
    if comparable != saved {
        return Err(TrainError::Resume {
            run_dir: run_dir.to_path_buf(),
            reason: format!(
                "the configuration differs from the run's config.toml; resume with the same \
                 settings (only --steps, --threads, data.decode_threads and \
                 data.prefetch_batches may change). Saved:\n{}",
                saved.to_toml_string()
            ),
        });
    }
    Ok(())
}
