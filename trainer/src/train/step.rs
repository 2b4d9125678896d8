//! One optimiser step of `Trainer` (the loop in train.rs's header), queued so the device never
//! waits for the host inside it:
//! - each micro-batch's loss is copied into a device slot, never read back on its own;
//! - the next micro-batch is read, masked and uploaded while the device runs this one (on a GPU
//!   its signals go from page-locked staging over a second stream, once this one's forward pass
//!   has gathered its own: `Backend::upload_input`);
//! - after the last micro-batch the next STEP's first batch is staged the same way, and only then
//!   does the host read the step's scalars (the losses and the gradient's sum of squares, one
//!   copy) to decide whether to update.
//!
//! Reading a batch ahead moves the data source on before the step that uses it has run, so
//! `Fetched` keeps the source's position from before that read: a checkpoint saves it, and a
//! resumed run reads the same batch again.
//!
//! A read that fails is kept (`FailedRead`) until the step that needs its batch: the next
//! step's read ahead failing leaves this step's update standing. The pass goes on with a blank
//! batch so every rank runs the same collectives; the ranks learn of the failure in the step's
//! agreement (`gather_step`, beside a stop request, with its kind: `data::ReadFault`), and all
//! stop at the same step (`data_stop.rs`).

use super::data_stop::{DataStop, FailedRead};
use super::{
    NonFiniteCause, NonFinitePolicy, StepOutcome, TrainError, Trainer, MAX_NONFINITE_IN_A_ROW,
};
use crate::data_parallel::{Reads, StepReport, StepValues};
use ecgfm_kernels::{Backend, View, ViewMut};

/// The micro-batch `Trainer::batch` holds ahead of its pass, and where the data source stood
/// before reading it.
pub(crate) struct Fetched {
    step: u64,
    micro: usize,
    pub(crate) source_before: serde_json::Value,
    /// Its signals hold a NaN or an infinity (what a non-finite loss is then blamed on).
    nonfinite_input: bool,
}

impl<B: Backend> Trainer<B> {
    /// Makes micro-batch `micro` of step `step` the model's staged batch: reads and masks it
    /// unless `batch` already holds it, and uploads it unless the model still has it staged
    /// (a validation pass in between drops the staged batch, not the host copy).
    fn stage_micro(&mut self, step: u64, micro: usize) -> Result<(), TrainError> {
        let held = self
            .fetched
            .as_ref()
            .is_some_and(|f| f.step == step && f.micro == micro);
        if !held {
            let source_before = self.source.state();
            // After a failed read the source is not read again: the run stops at this step.
            if self.failed_read.is_none() {
                let read = match self.faults.read_error(step, micro) {
                    Some(error) => Err(error),
                    None => self.source.next_batch(&mut self.batch),
                };
                if let Err(error) = read {
                    let fault = self.source.fault(&error);
                    let error = TrainError::Data(self.source.describe(), error);
                    self.failed_read = Some(FailedRead { step, error, fault });
                }
            }
            if self.failed_read.is_some() {
                // Flat lines on every lead: a valid batch for a pass whose update is dropped.
                self.batch.x.fill(0.0);
                self.batch.lead_mask.fill(1);
            }
            let (rank, world) = self.rank_and_world();
            let first = ((micro * world + rank) * self.batch.batch) as u64;
            self.sampler
                .fill(self.config.train.seed, step, first, &mut self.batch);
            self.faults.apply(step, micro, &mut self.batch);
            self.fetched = Some(Fetched {
                step,
                micro,
                source_before,
                nonfinite_input: !all_finite(&self.batch.x),
            });
            self.model.stage(&self.batch)?;
        } else if !self.model.is_staged() {
            self.model.stage(&self.batch)?;
        }
        Ok(())
    }

    /// Runs one optimiser step (every rank of a job calls it together). A batch that could not
    /// be read stops every rank (`TrainError::DataStopped`): at this step when it was one of its
    /// own (no update), or at the next call when it was the next step's.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        if let Some(stop) = &self.data_stop {
            return Err(stop.error(self.state.step, None));
        }
        let step = self.state.step;
        let accum = self.config.train.accum_steps;
        let world = self.rank_and_world().1;
        let micro_batches = accum * world;
        let scale = 1.0 / micro_batches as f32;
        if let Some(acc) = self.accumulator.as_mut() {
            let total = self.model.layout().total;
            self.model.backend().fill(acc.into(), total, 0.0);
        }
        let mut samples_by_leads = vec![0; self.flops.lead_bins()];
        let mut step_source_before = serde_json::Value::Null;
        let mut nonfinite_input = false;
        for micro in 0..accum {
            self.stage_micro(step, micro)?;
            let fetched = self.fetched.take().expect("stage_micro holds the batch");
            nonfinite_input |= fetched.nonfinite_input;
            if micro == 0 {
                step_source_before = fetched.source_before;
            }
            self.flops
                .count_leads(&self.batch.lead_mask, &mut samples_by_leads);
            self.model.zero_grads();
            match (self.dp.as_mut(), self.accumulator.as_mut()) {
                (Some(dp), _) => dp.forward_backward(&mut self.model, scale, micro + 1 == accum)?,
                (None, acc) => {
                    self.model
                        .forward_backward_staged(scale, &mut |_, _, _| {})?;
                    if let Some(acc) = acc {
                        self.model.add_grads_to(acc);
                    }
                }
            }
            self.model
                .loss_sum_into(ViewMut::new(&mut self.scalars, micro));
        }
        // One process: the gradient is final, its sum of squares joins the losses.
        let single = self.dp.is_none();
        if single {
            if let Some(acc) = self.accumulator.as_ref() {
                self.model.copy_grads_from(acc);
            }
            self.model
                .grad_sumsq_into(ViewMut::new(&mut self.scalars, accum));
        }
        if step + 1 < self.config.train.steps && self.failed_read.is_none() {
            self.stage_micro(step + 1, 0)?;
        }
        let mut scalars = vec![0.0f32; accum + usize::from(single)];
        self.model
            .backend()
            .download(View::new(&self.scalars, 0), &mut scalars);
        let values = StepValues {
            losses: &scalars[..accum],
            samples_by_leads: &samples_by_leads,
            reads: match &self.failed_read {
                None => Reads::Fine,
                Some(failed) if failed.step == step => Reads::Failed(failed.fault),
                Some(failed) => Reads::AheadFailed(failed.fault),
            },
            nonfinite_input,
            stop: self.stop_requested.as_ref().is_some_and(|f| f()),
        };
        let report = match self.dp.as_mut() {
            Some(dp) => dp.gather_step(&values)?,
            None => StepReport::of_ranks(&[&values.to_vec()], accum),
        };
        self.stopping = report.stop_ranks;
        let (loss_sum, nonfinite_ranks) = (report.loss_sum, report.nonfinite_ranks);
        let loss = loss_sum / micro_batches as f32;
        let sumsq = match self.dp.as_mut() {
            None => scalars[accum],
            Some(dp) => match dp.finish_gradients(&mut self.model)? {
                Some(sharded) => {
                    self.model.set_grad_sumsq(sharded);
                    sharded
                }
                None => self.model.grad_sumsq(),
            },
        };
        if !report.read_failed.is_empty() {
            let stop = DataStop::new(
                step,
                report.read_failed,
                !report.damaged_read.is_empty(),
                self.failed_read.take(),
                step_source_before,
                self.rank_and_world(),
            );
            return Err(self.data_stop.insert(stop).error(step, None));
        }
        let grad_norm = sumsq.sqrt();
        let lr = self.config.schedule().lr_at(step) as f32;
        let skipped = !(loss.is_finite() && grad_norm.is_finite());
        if skipped {
            self.state.nonfinite_in_a_row += 1;
            let stop = self.config.train.on_nonfinite == NonFinitePolicy::Stop
                || self.state.nonfinite_in_a_row >= MAX_NONFINITE_IN_A_ROW;
            if stop {
                let cause = match report.nonfinite_input_ranks.is_empty() {
                    false => NonFiniteCause::Input {
                        ranks: report.nonfinite_input_ranks,
                    },
                    true => NonFiniteCause::Diverged {
                        lr,
                        clip_norm: self.config.clip_norm(),
                    },
                };
                return Err(TrainError::NonFinite {
                    step,
                    loss,
                    grad_norm,
                    in_a_row: self.state.nonfinite_in_a_row,
                    ranks: nonfinite_ranks,
                    cause,
                });
            }
        } else {
            self.state.nonfinite_in_a_row = 0;
            self.model
                .apply_update(&self.config.adamw(), lr, self.config.clip_norm());
            if let Some(dp) = self.dp.as_mut().filter(|d| d.options().zero) {
                dp.gather_params(&mut self.model)?;
            }
        }
        // A finished step (updated or skipped) counts its samples and compute; one that stopped
        // the run counts neither: its resume computes it again.
        self.state.step += 1;
        self.state.samples_seen += self.global_batch() as u64;
        if let Some(flops) = self.state.flops.as_mut() {
            *flops += self.flops.flops_of(&report.samples_by_leads);
        }
        if !report.read_ahead_failed.is_empty() {
            // Every rank holds the next step's first batch (or its blank), read from here.
            let ahead = self
                .fetched
                .as_ref()
                .expect("the next step's batch is staged");
            self.data_stop = Some(DataStop::new(
                step + 1,
                report.read_ahead_failed,
                !report.damaged_read.is_empty(),
                self.failed_read.take(),
                ahead.source_before.clone(),
                self.rank_and_world(),
            ));
        }
        Ok(StepOutcome {
            step,
            loss,
            lr,
            grad_norm,
            skipped,
            nonfinite_ranks,
            nonfinite_input_ranks: report.nonfinite_input_ranks,
            logged: false,
        })
    }
}

/// Whether every value of `x` is finite. `v * 0` is 0 for a finite `v` and NaN for a NaN or an
/// infinity, and NaN stays NaN through a sum: summed in 16 lanes this vectorises, 6.5x faster
/// than `iter().all(is_finite)` (0.06 ms against 0.41 for a nano batch of 32 x 12 x 2250 on the
/// development machine, 2026-12-04), which runs on the host before every micro-batch.
fn all_finite(x: &[f32]) -> bool {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v * 0.0;
        }
    }
    lanes.iter().chain(rest).all(|v| v * 0.0 == 0.0)
}

#[cfg(test)]
mod tests {
    use super::all_finite;

    #[test]
    fn all_finite_finds_any_nan_or_infinity_anywhere() {
        for n in [0, 1, 15, 16, 17, 100] {
            let x: Vec<f32> = (0..n).map(|i| i as f32 * 1e36 - 3.0).collect();
            assert!(all_finite(&x), "{n} finite values");
            for at in 0..n {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut y = x.clone();
                    y[at] = bad;
                    assert!(!all_finite(&y), "{bad} at {at} of {n}");
                }
            }
        }
        assert!(all_finite(&[f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0]));
    }
}
