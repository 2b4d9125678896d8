//! Data-parallel training over a `Collective`: gradient buckets reduced while the backward pass
//! runs, and optionally ZeRO-1 (each rank keeps and updates only its shard of the AdamW state).
//!
//! Exactness: micro-batch `a` of rank `r` is global micro-batch `j = a * R + r` (its samples and
//! its mask are those of micro-batch `j` of one process accumulating `R * A` micro-batches).
//! Each micro-batch's gradient is computed into a zeroed buffer, and the buckets are
//! reduce-scattered into each owner's accumulator, adding the ranks' values in rank order; over
//! the `A` micro-steps this adds the `R * A` gradients in order `j = 0, 1, ...`, exactly as the
//! one-process accumulation does (`train.rs`). The last micro-step also all-gathers each bucket
//! (the whole gradient on every rank) unless ZeRO-1 is on; then each rank updates its shard and
//! the parameters are all-gathered. Under ZeRO-1 the global gradient norm is combined from the
//! shards' per-chunk partial sums (shards are whole chunks of `Shards::ALIGN`), in order, which
//! is exactly the CPU backend's `sum_squares`. So 1, 2 or 4 ranks, with or without ZeRO-1, give
//! the same bits.
//!
//! Buckets: ranges of the gradient buffer taken from its end (the backward pass finishes the
//! tensors in reverse layout order). `Mae::forward_backward_hooked` says when each part is
//! final; a complete bucket is copied out and handed to the communication thread at once.

use std::ops::Range;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use ecgfm_dist::shards::ALIGN;
use ecgfm_dist::{Collective, DistError, Shards};
use ecgfm_kernels::{Backend, View};

use crate::comm_thread::{CommState, CommThread};
use crate::model::{HostBatch, Mae, ModelError};

/// What every rank learns at the end of a step's micro-batches.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// The micro-batch losses added in global order `j = a * R + r`, starting from zero, as
    /// one process accumulating them would.
    pub loss_sum: f32,
    /// Ranks with a non-finite micro-batch loss.
    pub nonfinite_ranks: Vec<usize>,
    /// Some rank was asked to stop (SIGTERM, preemption): all save and stop after this step.
    pub stop: bool,
}

impl StepReport {
    /// From each rank's values: its micro-batch losses in order, then its stop flag.
    pub fn of_ranks(ranks: &[&[f32]]) -> StepReport {
        let per = ranks.first().map_or(1, |r| r.len()) - 1;
        let mut loss_sum = 0.0f32;
        for a in 0..per {
            for values in ranks {
                loss_sum += values[a];
            }
        }
        StepReport {
            loss_sum,
            nonfinite_ranks: (0..ranks.len())
                .filter(|&r| ranks[r][..per].iter().any(|l| !l.is_finite()))
                .collect(),
            stop: ranks.iter().any(|values| values[per] != 0.0),
        }
    }
}

/// How a data-parallel rank communicates. None of it changes the results.
#[derive(Clone, Copy, Debug)]
pub struct DpOptions {
    /// ZeRO-1: shard the AdamW state; reduce-scatter gradients, all-gather parameters.
    pub zero: bool,
    /// Gradient elements per bucket.
    pub bucket_elems: usize,
    /// Reduce buckets while the backward pass runs (off: all after it, for measurements).
    pub overlap: bool,
}

impl Default for DpOptions {
    fn default() -> Self {
        DpOptions {
            zero: false,
            bucket_elems: 1 << 20,
            overlap: true,
        }
    }
}

/// The data-parallel side of one rank.
pub struct DataParallel {
    rank: usize,
    world: usize,
    options: DpOptions,
    shards: Shards,
    /// Bucket ranges, in the order the backward pass completes them (from the buffer's end).
    buckets: Vec<Range<usize>>,
    staging: Vec<Option<Vec<f32>>>,
    returned: Receiver<(usize, Vec<f32>)>,
    next_bucket: usize,
    comm: CommThread,
    last_wait: Duration,
}

/// Bucket ranges of `total` elements, from the end of the buffer.
fn buckets(total: usize, elems: usize) -> Vec<Range<usize>> {
    let elems = elems.max(1);
    let mut out = Vec::new();
    let mut end = total;
    while end > 0 {
        let start = end.saturating_sub(elems);
        out.push(start..end);
        end = start;
    }
    out
}

/// Per-chunk sums of squares (f64) of a shard whose start is a multiple of `ALIGN`: the partials
/// the CPU backend's `sum_squares` adds in order.
fn chunk_partials(shard: &[f32]) -> Vec<f64> {
    shard
        .chunks(ALIGN)
        .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
        .collect()
}

impl DataParallel {
    /// A rank of a job over `collective`, for a model of `total` parameters.
    pub fn new(
        collective: Box<dyn Collective<[f32]> + Send>,
        total: usize,
        options: DpOptions,
    ) -> DataParallel {
        let (rank, world) = (collective.rank(), collective.world_size());
        let shards = Shards::new(total, world);
        let buckets = buckets(total, options.bucket_elems);
        let (returned_tx, returned) = channel();
        let comm = CommThread::spawn(CommState {
            coll: collective,
            acc: vec![0.0; shards.range(rank).len()],
            full: vec![0.0; total],
            error: None,
            returned: returned_tx,
        });
        DataParallel {
            rank,
            world,
            options,
            staging: buckets.iter().map(|b| Some(vec![0.0; b.len()])).collect(),
            buckets,
            shards,
            returned,
            next_bucket: 0,
            comm,
            last_wait: Duration::ZERO,
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world
    }

    pub fn options(&self) -> DpOptions {
        self.options
    }

    /// The part of the parameter buffer this rank's optimiser owns under ZeRO-1.
    pub fn shard(&self) -> Range<usize> {
        self.shards.range(self.rank)
    }

    /// How long the last `finish_gradients` waited for communication still in flight: the part
    /// of the reduction the backward pass did not hide.
    pub fn last_wait(&self) -> Duration {
        self.last_wait
    }

    /// Forward and backward of one micro-batch into the model's (zeroed) gradient buffer, with
    /// each bucket's reduction started as soon as the bucket is complete. `last`: the step's
    /// final micro-batch (the buckets are then also all-gathered, unless ZeRO-1).
    pub fn forward_backward<B: Backend>(
        &mut self,
        model: &mut Mae<B>,
        batch: &HostBatch,
        loss_scale: f32,
        last: bool,
    ) -> Result<(), ModelError> {
        self.next_bucket = 0;
        let overlap = self.options.overlap;
        model.forward_backward_hooked(batch, loss_scale, &mut |be, grads, ready| {
            if overlap {
                self.send_ready(be, grads, ready, last);
            }
        })?;
        self.send_ready(model.backend(), model.grads(), 0, last);
        Ok(())
    }

    /// Hands every bucket that lies wholly at or after element `ready` to the comm thread.
    fn send_ready<B: Backend>(&mut self, be: &B, grads: &B::Buf, ready: usize, last: bool) {
        while self.next_bucket < self.buckets.len() && self.buckets[self.next_bucket].start >= ready
        {
            let i = self.next_bucket;
            self.next_bucket += 1;
            let range = self.buckets[i].clone();
            while self.staging[i].is_none() {
                match self.returned.recv() {
                    Ok((j, buf)) => self.staging[j] = Some(buf),
                    Err(_) => return, // the comm thread is gone; finish_gradients reports it
                }
            }
            let mut data = self.staging[i].take().expect("staging buffer present");
            be.download(View::new(grads, range.start), &mut data);
            let shards = self.shards.clone();
            let gather = last && !self.options.zero;
            let rank = self.rank;
            self.comm.submit(move |st| {
                if st.error.is_none() {
                    let mut result =
                        st.coll
                            .reduce_scatter(&data, range.clone(), &shards, &mut st.acc);
                    if result.is_ok() && gather {
                        let own = shards.range(rank);
                        let piece = shards.piece(rank, &range);
                        st.full[piece.clone()].copy_from_slice(
                            &st.acc[piece.start - own.start..piece.end - own.start],
                        );
                        result = st.coll.all_gather(&mut st.full, range, &shards);
                    }
                    st.error = result.err();
                }
                let _ = st.returned.send((i, data));
            });
        }
    }

    /// Ends the step's reductions. Without ZeRO-1 the model's gradient buffer receives the whole
    /// reduced gradient and `None` is returned; with ZeRO-1 it receives this rank's shard, and
    /// the global gradient's sum of squares (combined from every shard) is returned.
    pub fn finish_gradients<B: Backend>(
        &mut self,
        model: &mut Mae<B>,
    ) -> Result<Option<f32>, DistError> {
        let started = Instant::now();
        let zero = self.options.zero;
        let (error, buf) = self.comm.call(move |st| {
            let error = st.error.take();
            let buf = if zero {
                std::mem::take(&mut st.acc)
            } else {
                st.acc.fill(0.0);
                std::mem::take(&mut st.full)
            };
            (error, buf)
        })?;
        self.last_wait = started.elapsed();
        if let Some(err) = error {
            return Err(err);
        }
        let offset = if zero { self.shard().start } else { 0 };
        model.upload_grads(&buf, offset);
        if !zero {
            self.comm.submit(move |st| st.full = buf);
            return Ok(None);
        }
        let partials = chunk_partials(&buf);
        let mut acc = buf;
        acc.fill(0.0);
        self.comm.submit(move |st| st.acc = acc);
        Ok(Some(self.combine_partials(&partials)?))
    }

    /// Sums every rank's per-chunk partials in chunk order (ZeRO-1's global gradient norm).
    fn combine_partials(&self, mine: &[f64]) -> Result<f32, DistError> {
        let chunks = self.shards.total.div_ceil(ALIGN);
        let pairs = Shards {
            total: 2 * chunks,
            ranks: self.world,
            shard_len: 2 * self.shards.shard_len / ALIGN,
        };
        let mut all = vec![0.0f32; 2 * chunks];
        let own = pairs.range(self.rank);
        for (slot, p) in all[own].chunks_exact_mut(2).zip(mine) {
            let bits = p.to_bits();
            slot[0] = f32::from_bits(bits as u32);
            slot[1] = f32::from_bits((bits >> 32) as u32);
        }
        let all = self.comm.collective(move |c| {
            c.all_gather(&mut all, 0..2 * chunks, &pairs)?;
            Ok(all)
        })?;
        let total: f64 = all
            .chunks_exact(2)
            .map(|p| f64::from_bits(p[0].to_bits() as u64 | ((p[1].to_bits() as u64) << 32)))
            .sum();
        Ok(total as f32)
    }

    /// ZeRO-1, after each rank updated its shard: every rank gets all the new parameters.
    pub fn gather_params<B: Backend>(&mut self, model: &mut Mae<B>) -> Result<(), DistError> {
        let mut host = model.params_to_host();
        let shards = self.shards.clone();
        let total = host.len();
        let host = self.comm.collective(move |c| {
            c.all_gather(&mut host, 0..total, &shards)?;
            Ok(host)
        })?;
        model
            .load_params(&host)
            .map_err(|e| DistError::Env(format!("gathered parameters: {e}")))
    }

    /// Gathers every rank's micro-batch losses (`local[a]` of micro-step `a`) and whether it
    /// was asked to stop (a signal), so that all ranks decide alike.
    pub fn gather_step(&mut self, local: &[f32], stop: bool) -> Result<StepReport, DistError> {
        let (world, rank, per) = (self.world, self.rank, local.len() + 1);
        let shards = Shards::even(world * per, world);
        let mut all = vec![0.0f32; world * per];
        all[rank * per..(rank + 1) * per - 1].copy_from_slice(local);
        all[(rank + 1) * per - 1] = f32::from(u8::from(stop));
        let all = self.comm.collective(move |c| {
            c.all_gather(&mut all, 0..world * per, &shards)?;
            Ok(all)
        })?;
        let ranks: Vec<&[f32]> = all.chunks_exact(per).collect();
        Ok(StepReport::of_ranks(&ranks))
    }

    /// Waits until every rank gets here.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        self.comm.collective(|c| c.barrier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_buffer_from_its_end() {
        let b = buckets(10, 4);
        assert_eq!(b, vec![6..10, 2..6, 0..2]);
        assert_eq!(buckets(3, 100), vec![0..3]);
    }
}
