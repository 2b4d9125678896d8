//! The training loop over steps (`Trainer::run`): metrics records, validation, checkpoints,
//! the progress callback, and how a session ends (its length, a stop request, a batch that
//! could not be read, a non-finite loss).

use super::{io_err, StepOutcome, TrainError, Trainer};
use crate::metrics::StepRecord;
use ecgfm_kernels::Backend;
use std::collections::BTreeMap;
use std::time::Instant;

impl<B: Backend> Trainer<B> {
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
            let result = self.step();
            window_samples += self.global_batch() as u64;
            self.state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            let samples_per_s = window_samples as f64 / window_start.elapsed().as_secs_f64();
            let mut outcome = match result {
                Ok(outcome) => outcome,
                Err(_) if self.data_stop.is_some() => return Err(self.stop_for_data(first)),
                Err(err) => {
                    // The step that stops the run is logged as a skipped one is (null loss).
                    if let TrainError::NonFinite {
                        step,
                        loss,
                        grad_norm,
                        ..
                    } = err
                    {
                        let lr = self.config.schedule().lr_at(step) as f32;
                        let record = self.step_record(step, loss, lr, grad_norm, samples_per_s);
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
            let stop = !self.stopping.is_empty();
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
            stopped_early: !self.stopping.is_empty() && self.state.step < total,
            stop_asked_by: std::mem::take(&mut self.stopping),
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
    /// The ranks whose processes were asked to stop (`stop_when`), when one was.
    pub stop_asked_by: Vec<usize>,
}
