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

use std::collections::BTreeMap;

use crate::checkpoint::{self, CheckpointError, OptimizerShard, TrainingState};
use crate::config::{NonFinitePolicy, TrainConfig};
use crate::data::{BatchSource, SourceError};
use crate::data_parallel::DataParallel;
use crate::fault::FaultPlan;
use crate::mask::MaskSampler;
use crate::metrics::{MetricsWriter, StepRecord};
use crate::model::{FlopCounter, Mae, MaeMemory};
use crate::validation::{self, Validator};
use crate::{HostBatch, ModelError, OptimizerState};
use ecgfm_dist::DistError;
use ecgfm_kernels::Backend;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod agreement;
mod data_stop;
mod step;

use data_stop::{DataStop, FailedRead};
use step::Fetched;

/// Consecutive skipped (non-finite) steps that stop a run.
pub const MAX_NONFINITE_IN_A_ROW: u32 = 3;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The source's description (`BatchSource::describe`: the dataset's redacted URL) and its
    /// error, which names the shard.
    #[error("data source {0}: {1}")]
    Data(String, SourceError),
    /// A batch could not be read during the run: every rank stopped after the last step it
    /// finished (`finished`), and saved it (`checkpoint`, the one a resume starts from).
    #[error("{}", data_stop::stopped_message(.failure, *.finished, .checkpoint.as_deref()))]
    DataStopped {
        failure: String,
        finished: u64,
        checkpoint: Option<PathBuf>,
    },
    #[error("data-parallel training stopped")]
    Dist(#[from] DistError),
    #[error("run directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot resume {run_dir}: {reason}")]
    Resume { run_dir: PathBuf, reason: String },
    /// The ranks of a data-parallel job did not start alike (`train/agreement.rs`): other
    /// settings, other data, or other checkpoints resumed from.
    #[error("the ranks of this job differ before their first step: {0}")]
    RanksDiffer(String),
    /// A fresh start in a folder holding another run's checkpoints: a later resume would take
    /// the newest of them and continue the old weights under the new configuration.
    #[error(
        "{} already holds the checkpoints of a run (newest: {}): continue that run with \
         --resume, start this one in another folder (--out), or remove {} to start over here",
        .run_dir.display(),
        .newest.display(),
        .run_dir.join("checkpoints").display()
    )]
    CheckpointsExist { run_dir: PathBuf, newest: PathBuf },
    /// A non-finite loss or gradient stopped the run at step `step` (from 0; the message counts
    /// from 1, as the progress line does), the `in_a_row`-th such step in a row, at rate `lr`.
    /// Its record (null loss) is in metrics.jsonl.
    #[error(
        "non-finite loss {loss} / gradient norm {grad_norm}{} at step {}{}: {cause}",
        in_a_row_note(*.in_a_row),
        .step + 1,
        ranks_note(.ranks)
    )]
    NonFinite {
        step: u64,
        loss: f32,
        grad_norm: f32,
        lr: f32,
        in_a_row: u32,
        ranks: Vec<usize>,
        cause: NonFiniteCause,
    },
}

/// Where a non-finite loss or gradient came from, as far as the run can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum NonFiniteCause {
    /// The signals of a batch held a NaN or an infinity on these ranks: the data, not the
    /// optimisation.
    Input { ranks: Vec<usize> },
    /// The input was finite: the optimisation diverged at learning rate `lr`, with gradients
    /// clipped at `clip_norm` (`None`: not clipped).
    Diverged { lr: f32, clip_norm: Option<f32> },
}

impl std::fmt::Display for NonFiniteCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NonFiniteCause::Input { ranks } => write!(
                f,
                "a batch's signals held NaN or infinite values{}: the data is at fault, not the \
                 training (look for the damaged records in the dataset)",
                ranks_note_of("input", ranks)
            ),
            NonFiniteCause::Diverged {
                lr,
                clip_norm: Some(clip),
            } => write!(
                f,
                "training diverged at learning rate {lr:.2e} (lower optim.lr; gradients were \
                 already clipped at optim.clip_norm = {clip})"
            ),
            NonFiniteCause::Diverged {
                lr,
                clip_norm: None,
            } => write!(
                f,
                "training diverged at learning rate {lr:.2e} (lower optim.lr or enable \
                 optim.clip_norm)"
            ),
        }
    }
}

/// " (N steps in a row)" for a second or later non-finite step in a row, or nothing.
fn in_a_row_note(in_a_row: u32) -> String {
    match in_a_row {
        0 | 1 => String::new(),
        n => format!(" ({n} steps in a row)"),
    }
}

fn ranks_note(ranks: &[usize]) -> String {
    ranks_note_of("loss", ranks)
}

/// " (non-finite WHAT on rank 0, 2)", or nothing for no rank.
fn ranks_note_of(what: &str, ranks: &[usize]) -> String {
    match ranks {
        [] => String::new(),
        r => format!(
            " (non-finite {what} on rank {})",
            r.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

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
    /// Some rank asked to stop during the last step.
    stopping: bool,
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
    /// must then match `config` in everything but `train.steps` and the thread and prefetch
    /// counts (and the batch geometry, as long as the global batch stays the same). Without
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
                .map(|(c, _)| (c.state.step, c.dir.as_path()));
            agreement::agree_on_checkpoint(dp, resumed)?;
        }
        let (state, resumed_from, warnings) = match latest {
            Some((ckpt, warnings)) => {
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
                (state, Some(ckpt.dir), warnings)
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
                (state, None, Vec::new())
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
            std::fs::write(&config_path, &config_toml).map_err(io_err(&config_path))?;
            warnings.extend(checkpoint::remove_unfinished(run_dir)?);
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
            stopping: false,
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
    /// writes, and under ZeRO-1 each rank adds its optimizer shard). Returns the folder on rank 0.
    pub fn save_checkpoint(&mut self) -> Result<Option<PathBuf>, TrainError> {
        self.state.data = match (&self.data_stop, &self.fetched) {
            (Some(stop), _) => stop.source_before.clone(),
            (None, Some(ahead)) => ahead.source_before.clone(),
            (None, None) => self.source.state(),
        };
        let rank = self.rank_and_world().0;
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

    /// Trains to `train.steps` (or for at most `stop_after` more steps), logging metrics every
    /// `log_every` steps and checkpointing every `checkpoint_every` steps and where it stops.
    /// `on_step` sees every step (progress display). A batch that cannot be read ends it with
    /// `TrainError::DataStopped` after a checkpoint of the last finished step (`data_stop.rs`).
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
        let first = self.state.step;
        while self.state.step < session_end {
            let step = self.step();
            window_samples += self.global_batch() as u64;
            self.state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            let samples_per_s = window_samples as f64 / window_start.elapsed().as_secs_f64();
            let mut outcome = match step {
                Ok(outcome) => outcome,
                Err(_) if self.data_stop.is_some() => return Err(self.stop_for_data(first)),
                Err(err) => {
                    // The step that stops the run is logged as a skipped one is (null loss).
                    if let TrainError::NonFinite {
                        step,
                        loss,
                        lr,
                        grad_norm,
                        ..
                    } = &err
                    {
                        let record = self.step_record(*step, *loss, *lr, *grad_norm, samples_per_s);
                        self.write_metrics(&record)?;
                    }
                    return Err(err);
                }
            };
            let done = self.state.step;
            let mut record = self.step_record(
                outcome.step,
                outcome.loss,
                outcome.lr,
                outcome.grad_norm,
                samples_per_s,
            );
            if let Some(validator) = self.validator.as_ref().filter(|v| v.due(done, total)) {
                let losses = validator.losses(&mut self.model)?;
                record.val_loss = Some(losses.whole);
                record.val_loss_by_source = losses.by_source;
                val_loss = record.val_loss;
            }
            let log = done.is_multiple_of(log_every) || done == total || outcome.step == 0;
            // A skipped step is always logged: its loss (null) shows in the files, not only in
            // the warning.
            let log = log || record.val_loss.is_some() || outcome.skipped;
            outcome.logged = log;
            if log {
                self.write_metrics(&record)?;
                window_start = Instant::now();
                window_samples = 0;
            }
            on_step(&outcome, &record);
            if self.data_stop.is_some() {
                return Err(self.stop_for_data(first));
            }
            let stop = self.stopping;
            if (every > 0 && done.is_multiple_of(every)) || done == session_end || stop {
                self.save_checkpoint()?;
            }
            last = Some(outcome);
            if stop {
                break;
            }
        }
        Ok(RunSummary {
            steps: self.state.step,
            final_loss: last.map(|o| o.loss),
            elapsed_s: self.state.elapsed_s,
            samples_seen: self.state.samples_seen,
            val_loss,
            // A stop asked for during the last step still finished the run.
            stopped_early: self.stopping && self.state.step < total,
        })
    }
}

impl<B: Backend> Trainer<B> {
    /// The metrics record of step `step` (from 0) as the run stands after it, without a
    /// validation loss.
    fn step_record(
        &self,
        step: u64,
        loss: f32,
        lr: f32,
        grad_norm: f32,
        samples_per_s: f64,
    ) -> StepRecord {
        StepRecord {
            step,
            loss,
            lr,
            grad_norm,
            samples_per_s,
            elapsed_s: self.state.elapsed_s,
            samples_seen: self.state.samples_seen,
            flops: self.state.flops,
            val_loss: None,
            val_loss_by_source: BTreeMap::new(),
            gpu_mem_bytes: self.model.backend().memory_in_use(),
        }
    }

    /// Appends `record` to metrics.jsonl and the event file (rank 0; other ranks have none).
    fn write_metrics(&mut self, record: &StepRecord) -> Result<(), TrainError> {
        match self.metrics.as_mut() {
            Some(metrics) => metrics.write(record).map_err(io_err(metrics.path())),
            None => Ok(()),
        }
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
    /// A stop was requested (`stop_when`): the run saved a checkpoint and ended before its end.
    pub stopped_early: bool,
}

/// The warning for a resume at `step` that changed `train.steps`, unless every step already run
/// had the rate the new length gives it (a resume inside warmup, whose rate does not depend on
/// the length): then the run is, bit for bit, one of the new length from the start.
fn schedule_moved(saved: &TrainConfig, config: &TrainConfig, step: u64) -> Option<String> {
    let (was, now) = (saved.train.steps, config.train.steps);
    let (before, after) = (saved.schedule(), config.schedule());
    let moved = |s: u64| before.lr_at(s) != after.lr_at(s);
    (was != now && (0..step).any(moved)).then(|| {
        format!(
            "train.steps changed from {was} to {now}: after step {step} the learning rate follows \
             a {now}-step schedule, while the steps before it ran on a {was}-step one, so this run \
             matches neither a {was}-step nor a {now}-step run from the start"
        )
    })
}

/// The precision check of a resume from checkpoint `dir` (trained in `saved`, where it says)
/// by a run that computes in `now` under `setting` (`train.precision`): a named precision other
/// than the checkpoint's is refused, since the run would round otherwise from here on and match
/// neither a run all in one nor the other; under `auto`, which resolves per device (fp32 on the
/// CPU, bf16 on a GPU), a run moved between them is warned of. The warning, or why not.
fn check_precision(
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
/// `train.val_every`: after a preemption an operator may well want more checkpoints), and the
/// batch geometry (`train.batch_size`, `train.accum_steps`) as long as the global batch stays the
/// same (checked against the checkpoint). `train.precision` may not change from fp32 to bf16 or
/// back: bf16 rounds every matrix product otherwise than fp32, so the run would match neither;
/// to or from `auto`, which each device resolves, it may, and the precision the checkpoint
/// recorded is compared with the one this run resolved once both are known (`check_precision`).
/// Returns the saved config.
fn check_resumable(
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
                 train.checkpoint_every, train.log_every, train.val_every, the batch geometry at \
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
fn flat_settings(config: &TrainConfig) -> BTreeMap<String, String> {
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
