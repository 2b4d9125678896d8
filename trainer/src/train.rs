//! The training loop: micro-batches, gradient accumulation, schedule, clipping, AdamW,
//! metrics and checkpoints, with exact resume, in one process or as one rank of a data-parallel
//! job (`data_parallel.rs`).
//!
//! One optimiser step `s` (counting from 0), on rank `r` of `R` with `A` micro-steps:
//! ```text
//! for a in 0..A:  source fills x, lead_mask (rank r's part of the global batch)
//!                 mask = sampler(seed, s, sample index in the global batch, j*B + b)
//!                 (global micro-batch j = a*R + r)
//!                 zero grads; forward_backward(scale = 1/(A*R)); loss_j kept on the device
//!                 acc += grads   (one process: on the device; ranks: reduced in rank order)
//! loss = (sum of loss_j in order j) / (A*R);  norm = global norm of acc
//!   (the host reads the losses and the norm in one copy, after staging the next batch)
//! non-finite loss or norm: skip the step on every rank (or stop), else clip, AdamW(schedule(s))
//! ```
//! One process with accumulation computes exactly what R ranks compute (see data_parallel.rs),
//! and everything a step depends on is either in the checkpoint (weights, AdamW moments,
//! data-source position) or a pure function of (seed, step), so resuming from step k reproduces
//! the bits of a run that never stopped.
//!
//! Here: the `Trainer` (set-up, fresh or resumed, and checkpoints). Beside it: `step.rs` (one
//! optimiser step), `run.rs` (the loop over steps), `error.rs` (what stops a run), `resume.rs`
//! (what a resume may change), `agreement.rs` (ranks agreeing on their settings) and
//! `data_stop.rs` (a batch that could not be read).

use crate::checkpoint::{self, LatestIntact, OptimizerShard, TrainingState};
use crate::config::{NonFinitePolicy, TrainConfig};
use crate::data::BatchSource;
use crate::data_parallel::DataParallel;
use crate::fault::FaultPlan;
use crate::mask::MaskSampler;
use crate::metrics::MetricsWriter;
use crate::model::{FlopCounter, Mae, MaeMemory};
use crate::validation::{self, Validator};
use crate::write_whole::write_whole;
use crate::{HostBatch, OptimizerState};
use ecgfm_kernels::Backend;
use std::path::{Path, PathBuf};

mod agreement;
mod data_stop;
mod error;
mod resume;
mod run;
mod step;

use data_stop::{DataStop, FailedRead};
pub use error::{NonFiniteCause, TrainError};
pub use resume::refuse_fresh_start_over_checkpoints;
use resume::{check_precision, check_resumable, schedule_moved};
pub use run::RunSummary;
use step::Fetched;

/// Consecutive skipped (non-finite) steps that stop a run.
pub const MAX_NONFINITE_IN_A_ROW: u32 = 3;

/// What one optimiser step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    pub step: u64,
    pub loss: f32,
    pub lr: f32,
    pub grad_norm: f32,
    /// The loss or gradient was not finite: no update was made (on any rank).
    pub skipped: bool,
    /// Ranks whose own loss was not finite (empty when only the gradient was).
    pub nonfinite_ranks: Vec<usize>,
    /// Ranks whose input held a NaN or an infinity this step.
    pub nonfinite_input_ranks: Vec<usize>,
    /// Its record was logged (metrics.jsonl, TensorBoard): the first step, every
    /// `train.log_every`, the last, one with a validation loss, and one skipped. Set by
    /// `Trainer::run`, which decides it; the progress lines follow it.
    pub logged: bool,
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
    /// Counts each batch's training FLOPs into `state.flops`.
    flops: FlopCounter,
    state: TrainingState,
    /// Rank 0 writes the metrics; other ranks have none.
    metrics: Option<MetricsWriter>,
    resumed_from: Option<PathBuf>,
    warnings: Vec<String>,
    dp: Option<DataParallel<B>>,
    /// One process accumulating micro-batches: the sum of their gradients, on the device.
    accumulator: Option<B::Buf>,
    /// The step's scalars on the device, read back together once per step: each
    /// micro-batch's loss, then (one process) the gradient's sum of squares.
    scalars: B::Buf,
    /// The micro-batch `batch` holds ahead of its pass (see `step.rs`).
    fetched: Option<Fetched>,
    /// This rank's read that failed, until its step's agreement (`data_stop.rs`).
    failed_read: Option<FailedRead>,
    /// Every rank agreed to stop for a failed read.
    data_stop: Option<DataStop>,
    faults: FaultPlan,
    /// Asked whether this process should stop (a signal); the ranks agree at every step.
    stop_requested: Option<Box<dyn Fn() -> bool + Send>>,
    /// The ranks asked to stop during the last step (none: go on).
    stopping: Vec<usize>,
    validator: Option<Validator>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the model of a run keeps in memory: the activations `train.recompute` keeps, and AdamW
/// state for this rank's ZeRO-1 shard (for every parameter without ZeRO).
pub fn model_memory<B: Backend>(config: &TrainConfig, dp: Option<&DataParallel<B>>) -> MaeMemory {
    MaeMemory {
        recompute: config.train.recompute,
        optimizer_shard: dp.filter(|d| d.options().zero).map(|d| d.shard()),
    }
}

impl<B: Backend> Trainer<B> {
    /// Prepares a single-process run in `run_dir`. With `resume`, continues from the newest
    /// intact checkpoint there (a fresh start when there is none); the directory's `config.toml`
    /// must then match `config` but for what `resume::check_resumable` lets a resume change
    /// (`train.steps`, thread counts, device, cadences, the batch geometry as long as the
    /// global batch stays the same, ...). Without
    /// it, a `run_dir` that holds checkpoints is refused (`TrainError::CheckpointsExist`).
    /// `config.toml` is written only once every check has passed.
    pub fn new(
        config: TrainConfig,
        run_dir: &Path,
        backend: B,
        source: Box<dyn BatchSource>,
        resume: bool,
    ) -> Result<Trainer<B>, TrainError> {
        Trainer::with_data_parallel(config, run_dir, backend, source, resume, None)
    }

    /// `new` for one rank of a data-parallel job (`dp`; `source` must give this rank's part of
    /// each global batch). Every rank reads the same run directory; rank 0 writes it.
    pub fn with_data_parallel(
        config: TrainConfig,
        run_dir: &Path,
        backend: B,
        mut source: Box<dyn BatchSource>,
        resume: bool,
        mut dp: Option<DataParallel<B>>,
    ) -> Result<Trainer<B>, TrainError> {
        let (rank, world) = dp.as_ref().map_or((0, 1), |d| (d.rank(), d.world_size()));
        if let Some(dp) = dp.as_mut() {
            let state = source.state();
            agreement::agree_on_config(dp, &config, state["data_digest"].as_str())?;
        }
        let config_path = run_dir.join("config.toml");
        let saved_config = match resume && config_path.exists() {
            true => Some(check_resumable(run_dir, &config_path, &config)?),
            false => None,
        };
        if !resume {
            refuse_fresh_start_over_checkpoints(run_dir)?;
        }
        let (cfg, batch) = (config.model.clone(), config.train.batch_size);
        let memory = model_memory(&config, dp.as_ref());
        let mut model = Mae::with_memory(backend, cfg, batch, memory)?;
        let global_batch = (config.samples_per_step() * world) as u64;
        let latest = match resume {
            true => checkpoint::load_latest_intact(run_dir, model.layout())?,
            false => None,
        };
        if let Some(dp) = dp.as_mut() {
            let resumed = latest
                .as_ref()
                .map(|l| (l.checkpoint.state.step, l.checkpoint.dir.as_path()));
            agreement::agree_on_checkpoint(dp, resumed)?;
        }
        let (state, resumed_from, warnings, corrupt) = match latest {
            Some(LatestIntact {
                checkpoint: ckpt,
                warnings,
                corrupt,
            }) => {
                let saved_samples = saved_config.as_ref().map(|c| c.samples_per_step() as u64);
                let saved = ckpt.state.global_batch.or(saved_samples);
                if saved.is_some_and(|g| g != global_batch) {
                    return Err(TrainError::Resume {
                        run_dir: run_dir.to_path_buf(),
                        reason: format!(
                            "{} was written with {} samples per step (ranks x batch size x \
                             accumulation); this run has {global_batch}: choose --batch-size \
                             or train.accum_steps to keep the global batch",
                            ckpt.dir.display(),
                            saved.unwrap_or_default()
                        ),
                    });
                }
                model.load_params(&ckpt.params)?;
                let shard = model.optimizer_shard();
                model.load_optimizer_state(&OptimizerState {
                    step: ckpt.optimizer.step,
                    m: ckpt.optimizer.m[shard.clone()].to_vec(),
                    v: ckpt.optimizer.v[shard].to_vec(),
                })?;
                source
                    .restore(&ckpt.state.data)
                    .map_err(|e| TrainError::Data(source.describe(), e))?;
                if ckpt.state.step > config.train.steps {
                    return Err(TrainError::Resume {
                        run_dir: run_dir.to_path_buf(),
                        reason: format!(
                            "{} is at step {}, past train.steps {}: a run cannot be shortened \
                             below the step it reached; give --steps {} or more",
                            ckpt.dir.display(),
                            ckpt.state.step,
                            config.train.steps,
                            ckpt.state.step
                        ),
                    });
                }
                let mut state = ckpt.state;
                state.global_batch = Some(global_batch);
                let mut warnings = warnings;
                let saved = saved_config.as_ref();
                warnings.extend(saved.and_then(|c| schedule_moved(c, &config, state.step)));
                let version = state.validation_version;
                warnings.extend(validation::version_moved(version, &config, state.step));
                state.validation_version = Some(validation::VALIDATION_VERSION);
                let precision = model.backend().precision().name();
                let saved_precision = state.precision.as_deref();
                let setting = config.train.precision.as_str();
                let checked = check_precision(saved_precision, precision, setting, &ckpt.dir);
                warnings.extend(checked.map_err(|reason| TrainError::Resume {
                    run_dir: run_dir.to_path_buf(),
                    reason,
                })?);
                state.precision = Some(precision.to_string());
                (state, Some(ckpt.dir), warnings, corrupt)
            }
            None => {
                model.init_params(config.train.seed);
                let state = TrainingState {
                    step: 0,
                    samples_seen: 0,
                    flops: Some(0.0),
                    elapsed_s: 0.0,
                    data: source.state(),
                    global_batch: Some(global_batch),
                    validation_version: Some(validation::VALIDATION_VERSION),
                    nonfinite_in_a_row: 0,
                    precision: Some(model.backend().precision().name().to_string()),
                };
                (state, None, Vec::new(), Vec::new())
            }
        };
        // config.toml is rewritten only once every rank has read the saved one and passed every
        // check: a refused resume must leave it as it was, or the next resume would take the
        // rejected settings as the run's own.
        if let Some(dp) = dp.as_mut() {
            dp.barrier()?;
        }
        let config_toml = config.to_toml_string();
        let mut warnings = warnings;
        if rank == 0 {
            std::fs::create_dir_all(run_dir).map_err(io_err(run_dir))?;
            write_whole(&config_path, config_toml.as_bytes()).map_err(io_err(&config_path))?;
            warnings.extend(checkpoint::remove_unfinished(run_dir)?);
            warnings.extend(checkpoint::set_aside_corrupt(&corrupt)?);
        }
        // Rank 0 logs, when a step is left to run (a finished run resumed writes no event file).
        let metrics = match rank == 0 && state.step < config.train.steps {
            true => Some(MetricsWriter::open(run_dir, state.step).map_err(io_err(run_dir))?),
            false => None,
        };
        let accumulator = (dp.is_none() && config.train.accum_steps > 1)
            .then(|| model.backend().alloc(model.layout().total));
        let batch = HostBatch::new(&config.model, config.train.batch_size);
        let scalars = model.backend().alloc(config.train.accum_steps + 1);
        Ok(Trainer {
            sampler: MaskSampler::new(&config.model),
            flops: FlopCounter::new(&config.model),
            config,
            config_toml,
            run_dir: run_dir.to_path_buf(),
            model,
            source,
            batch,
            state,
            metrics,
            resumed_from,
            warnings,
            dp,
            accumulator,
            scalars,
            fetched: None,
            failed_read: None,
            data_stop: None,
            faults: FaultPlan::from_env(rank),
            stop_requested: None,
            stopping: Vec::new(),
            validator: None,
        })
    }

    /// `run` asks `requested` after every step whether to stop early (SIGTERM, preemption);
    /// when any rank says yes, every rank checkpoints that step and `run` returns.
    pub fn stop_when(&mut self, requested: impl Fn() -> bool + Send + 'static) {
        self.stop_requested = Some(Box::new(requested));
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

    /// What the resume should tell: newer checkpoints it skipped because they were corrupt, a
    /// changed schedule, a validation set defined otherwise before; one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The data-parallel side of this rank, if any.
    pub fn data_parallel(&self) -> Option<&DataParallel<B>> {
        self.dp.as_ref()
    }

    /// `(rank, ranks)`: `(0, 1)` for one process.
    pub fn rank_and_world(&self) -> (usize, usize) {
        self.dp
            .as_ref()
            .map_or((0, 1), |d| (d.rank(), d.world_size()))
    }

    /// Samples per optimiser step over all ranks.
    pub fn global_batch(&self) -> usize {
        self.config.samples_per_step() * self.rank_and_world().1
    }

    pub fn source_description(&self) -> String {
        self.source.describe()
    }

    /// Measures a validation loss as `validator` says (see `validation.rs`).
    pub fn set_validator(&mut self, validator: Validator) {
        self.validator = Some(validator);
    }

    /// Writes a checkpoint of the current state (every rank of a job calls it together; rank 0
    /// writes, and under ZeRO-1 each rank adds its optimizer shard), then, on rank 0, removes the
    /// checkpoints beyond the newest `train.keep_checkpoints` (one log line each). Returns the
    /// folder on rank 0. The removal comes after the ranks' last barrier: a rank 0 killed while
    /// removing leaves at worst a `.removing` folder, which the next start finishes.
    pub fn save_checkpoint(&mut self) -> Result<Option<PathBuf>, TrainError> {
        let saved = self.write_checkpoint()?;
        if saved.is_some() {
            let keep = self.config.train.keep_checkpoints;
            for dir in checkpoint::remove_older(&self.run_dir, keep)? {
                tracing::info!(
                    "removed checkpoint {} (train.keep_checkpoints = {keep})",
                    dir.display()
                );
            }
        }
        Ok(saved)
    }

    /// `save_checkpoint`'s writing: every rank, the folder on rank 0.
    fn write_checkpoint(&mut self) -> Result<Option<PathBuf>, TrainError> {
        self.state.data = match (&self.data_stop, &self.fetched) {
            (Some(stop), _) => stop.source_before.clone(),
            (None, Some(ahead)) => ahead.source_before.clone(),
            (None, None) => self.source.state(),
        };
        let rank = self.rank_and_world().0;
        // Rank 0 looks; every rank of a job learns what it saw, so all of them stop with its
        // reason instead of the others failing on rank 0's closed connection.
        let mut gone = rank == 0 && !self.run_dir.join("config.toml").is_file();
        if let Some(dp) = self.dp.as_mut() {
            gone = dp.all_gather_bytes(&[u8::from(gone)])?[0] == [1];
        }
        if gone {
            return Err(TrainError::RunFolderGone {
                run_dir: self.run_dir.clone(),
            });
        }
        let layout = self.model.layout();
        let Some(dp) = self.dp.as_mut().filter(|d| d.options().zero) else {
            let saved = match rank {
                0 => checkpoint::save(
                    &self.run_dir,
                    layout,
                    &self.config_toml,
                    &self.model.params_to_host(),
                    &self.model.optimizer_state_to_host(),
                    &self.state,
                )
                .map(Some),
                _ => Ok(None),
            };
            // No rank returns before rank 0 has written: after a stop signal the others would
            // exit, and a scheduler ending the job on their exit (srun --kill-on-bad-exit)
            // would kill rank 0 mid-write.
            if let Some(dp) = self.dp.as_mut() {
                dp.barrier()?;
            }
            return Ok(saved?);
        };
        let step = self.state.step;
        let writer = match rank {
            0 => Some(checkpoint::begin(&self.run_dir, step)?),
            _ => None,
        };
        dp.barrier()?; // the partial folder exists
        checkpoint::write_optimizer_shard(
            &checkpoint::partial_dir(&self.run_dir, step),
            &OptimizerShard {
                rank,
                world_size: dp.world_size(),
                range: dp.shard(),
                total: layout.total,
                state: &self.model.optimizer_state_to_host(),
            },
        )?;
        if let Some(writer) = &writer {
            writer.write_model(layout, &self.config_toml, &self.model.params_to_host())?;
            writer.write_state(&self.state)?;
        }
        dp.barrier()?; // every shard is in
        let sealed = writer.map(|writer| writer.finish()).transpose();
        // As above: no rank returns (and exits, after a stop signal) before rank 0 has sealed
        // the checkpoint, or srun --kill-on-bad-exit would kill rank 0 mid-seal.
        dp.barrier()?;
        Ok(sealed?)
    }
}
