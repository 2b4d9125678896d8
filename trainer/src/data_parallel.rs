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
//! shards' sum-of-squares partials, in order: on CPU ranks one f64 per `shards::ALIGN` chunk,
//! which is exactly the CPU backend's `sum_squares`. So 1, 2 or 4 CPU ranks, with or without
//! ZeRO-1, give the same bits. GPU ranks reduce with NCCL (its own summation order).
//!
//! Buckets: ranges of the gradient buffer taken from its end (the backward pass finishes the
//! tensors in reverse layout order). `Mae::forward_backward_staged` says when each part is
//! final; a complete bucket is handed to the exchange (`exchange.rs`) at once, which moves it in
//! the backend's own memory: host vectors with the CPU collective (`comm_wire.rs`), device
//! buffers with NCCL on its own stream (`nccl_rank.rs`).

use std::ops::Range;
use std::time::{Duration, Instant};

use ecgfm_dist::{Collective, DistError, Shards};
use ecgfm_kernels::{Backend, CpuBackend};

use crate::comm_wire::{CommWire, HostComm};
use crate::data::ReadFault;
use crate::exchange::{Exchange, GradExchange};
use crate::model::{Mae, ModelError};
use crate::rank_backend::RankBackend;

/// What every rank learns at the end of a step's micro-batches.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// The micro-batch losses added in global order `j = a * R + r`, starting from zero, as
    /// one process accumulating them would.
    pub loss_sum: f32,
    /// Ranks with a non-finite micro-batch loss.
    pub nonfinite_ranks: Vec<usize>,
    /// Ranks whose input (a batch's signals) held a NaN or an infinity.
    pub nonfinite_input_ranks: Vec<usize>,
    /// Ranks asked to stop (SIGTERM, preemption): when any was, all save and stop after this
    /// step.
    pub stop_ranks: Vec<usize>,
    /// Ranks that could not read a batch of this step: its update is dropped on every rank.
    pub read_failed: Vec<usize>,
    /// Ranks that could not read the next step's first batch (read ahead): this step's update
    /// stands, and the run stops after it.
    pub read_ahead_failed: Vec<usize>,
    /// Ranks of `read_failed` or `read_ahead_failed` whose data was damaged
    /// (`ReadFault::Damaged`).
    pub damaged_read: Vec<usize>,
    /// The step's samples over all ranks by their number of present leads (what its FLOPs are
    /// counted from: `model::FlopCounter::flops_of`).
    pub samples_by_leads: Vec<u64>,
}

/// How a rank's reads of the data source went during a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    Fine,
    /// A batch of this step could not be read.
    Failed(ReadFault),
    /// This step's batches were read, the next step's first batch (read ahead) could not be.
    AheadFailed(ReadFault),
}

impl Reads {
    /// Every value, in code order.
    const ALL: [Reads; 5] = [
        Reads::Fine,
        Reads::Failed(ReadFault::Other),
        Reads::AheadFailed(ReadFault::Other),
        Reads::Failed(ReadFault::Damaged),
        Reads::AheadFailed(ReadFault::Damaged),
    ];

    fn code(self) -> f32 {
        Reads::ALL.iter().position(|&r| r == self).expect("listed") as f32
    }

    /// The value of `code` (`Fine` for a code no rank sends).
    fn of_code(code: f32) -> Reads {
        Reads::ALL
            .get(code as usize)
            .copied()
            .unwrap_or(Reads::Fine)
    }

    /// The failed read's kind, if one failed.
    fn fault(self) -> Option<ReadFault> {
        match self {
            Reads::Fine => None,
            Reads::Failed(fault) | Reads::AheadFailed(fault) => Some(fault),
        }
    }
}

/// What every rank sends at the end of a step's micro-batches.
pub struct StepValues<'a> {
    /// Its micro-batch losses, in order.
    pub losses: &'a [f32],
    /// Its samples by their number of present leads (counts below 2^24, exact in f32).
    pub samples_by_leads: &'a [u64],
    pub reads: Reads,
    /// A batch it read held a NaN or an infinity.
    pub nonfinite_input: bool,
    /// It was asked to stop (a signal).
    pub stop: bool,
}

impl StepValues<'_> {
    /// The values as `StepReport::of_ranks` reads them: the losses, the samples by present
    /// leads, the reads' code, the non-finite input flag, then the stop flag.
    pub fn to_vec(&self) -> Vec<f32> {
        debug_assert!(self.samples_by_leads.iter().all(|&n| n < 1 << 24));
        self.losses
            .iter()
            .copied()
            .chain(self.samples_by_leads.iter().map(|&n| n as f32))
            .chain([
                self.reads.code(),
                f32::from(u8::from(self.nonfinite_input)),
                f32::from(u8::from(self.stop)),
            ])
            .collect()
    }
}

impl StepReport {
    /// From each rank's values (`StepValues::to_vec`) with `micro` micro-batch losses.
    pub fn of_ranks(ranks: &[&[f32]], micro: usize) -> StepReport {
        let mut loss_sum = 0.0f32;
        for a in 0..micro {
            for values in ranks {
                loss_sum += values[a];
            }
        }
        let bins = ranks.first().map_or(0, |r| r.len() - micro - 3);
        let reads: Vec<Reads> = ranks
            .iter()
            .map(|values| Reads::of_code(values[micro + bins]))
            .collect();
        let with_reads = |wanted: fn(Reads) -> bool| {
            (0..ranks.len())
                .filter(|&r| wanted(reads[r]))
                .collect::<Vec<usize>>()
        };
        StepReport {
            loss_sum,
            nonfinite_ranks: (0..ranks.len())
                .filter(|&r| ranks[r][..micro].iter().any(|l| !l.is_finite()))
                .collect(),
            nonfinite_input_ranks: (0..ranks.len())
                .filter(|&r| ranks[r][micro + bins + 1] != 0.0)
                .collect(),
            stop_ranks: (0..ranks.len())
                .filter(|&r| ranks[r][ranks[r].len() - 1] != 0.0)
                .collect(),
            read_failed: with_reads(|r| matches!(r, Reads::Failed(_))),
            read_ahead_failed: with_reads(|r| matches!(r, Reads::AheadFailed(_))),
            damaged_read: with_reads(|r| r.fault() == Some(ReadFault::Damaged)),
            samples_by_leads: (0..bins)
                .map(|n| ranks.iter().map(|values| values[micro + n] as u64).sum())
                .collect(),
        }
    }
}

/// How a data-parallel rank communicates. None of it changes the results of CPU ranks; on GPU
/// ranks `zero` sums the gradient norm from one f32 partial per shard, so the norm and the
/// clipping may differ from an unsharded run's by rounding.
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
pub struct DataParallel<B: Backend> {
    rank: usize,
    world: usize,
    options: DpOptions,
    shards: Shards,
    /// Bucket ranges, in the order the backward pass completes them (from the buffer's end).
    buckets: Vec<Range<usize>>,
    next_bucket: usize,
    exchange: Box<dyn GradExchange<B>>,
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

impl DataParallel<CpuBackend> {
    /// A CPU rank of a job over `collective` (host memory), for a model of `total` parameters.
    pub fn over_cpu(
        collective: Box<dyn Collective<[f32]> + Send>,
        total: usize,
        options: DpOptions,
    ) -> Result<Self, DistError> {
        let (rank, world) = (collective.rank(), collective.world_size());
        let init = move || Ok(HostComm { coll: collective });
        DataParallel::new(&CpuBackend::new(), rank, world, total, options, init)
    }
}

impl<B: RankBackend + 'static> DataParallel<B>
where
    B::Buf: 'static,
{
    /// Rank `rank` of `world` for a model of `total` parameters on `be`, whose collectives
    /// `init` makes on the communication thread (`HostComm`, `NcclComm`).
    pub fn new<C>(
        be: &B,
        rank: usize,
        world: usize,
        total: usize,
        options: DpOptions,
        init: impl FnOnce() -> Result<C, DistError> + Send + 'static,
    ) -> Result<Self, DistError>
    where
        C: CommWire<Buf = B::Buf, Ready = B::Ready> + 'static,
    {
        let shards = Shards::new(total, world);
        let buckets = buckets(total, options.bucket_elems);
        let exchange = Exchange::spawn(
            be,
            rank,
            shards.clone(),
            buckets.clone(),
            options.zero,
            init,
        )?;
        Ok(DataParallel {
            rank,
            world,
            options,
            shards,
            buckets,
            next_bucket: 0,
            exchange: Box::new(exchange),
            last_wait: Duration::ZERO,
        })
    }
}

impl<B: Backend> DataParallel<B> {
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

    /// How long the last `finish_gradients` waited for communication still in flight (and put
    /// the result in place): the part of the reduction the backward pass did not hide.
    pub fn last_wait(&self) -> Duration {
        self.last_wait
    }

    /// Forward and backward of the micro-batch staged in the model (`Mae::stage`) into its
    /// (zeroed) gradient buffer, with
    /// each bucket's reduction started as soon as the bucket is complete. `last`: the step's
    /// final micro-batch (the buckets are then also all-gathered, unless ZeRO-1).
    pub fn forward_backward(
        &mut self,
        model: &mut Mae<B>,
        loss_scale: f32,
        last: bool,
    ) -> Result<(), ModelError> {
        self.next_bucket = 0;
        let overlap = self.options.overlap;
        model.forward_backward_staged(loss_scale, &mut |be, grads, ready| {
            if overlap {
                self.send_ready(be, grads, ready, last);
            }
        })?;
        self.send_ready(model.backend(), model.grads(), 0, last);
        Ok(())
    }

    /// Hands every bucket that lies wholly at or after element `ready` to the exchange.
    fn send_ready(&mut self, be: &B, grads: &B::Buf, ready: usize, last: bool) {
        let gather = last && !self.options.zero;
        while self.next_bucket < self.buckets.len() && self.buckets[self.next_bucket].start >= ready
        {
            self.exchange
                .start_bucket(be, grads, self.next_bucket, gather);
            self.next_bucket += 1;
        }
    }

    /// Ends the step's reductions. Without ZeRO-1 the model's gradient buffer receives the whole
    /// reduced gradient and `None` is returned; with ZeRO-1 it receives this rank's shard, and
    /// the global gradient's sum of squares (combined from every shard) is returned.
    pub fn finish_gradients(&mut self, model: &mut Mae<B>) -> Result<Option<f32>, DistError> {
        let started = Instant::now();
        let (be, grads) = model.backend_and_grads_mut();
        let partials = self.exchange.finish(be, grads)?;
        self.last_wait = started.elapsed();
        match partials {
            Some(partials) => Ok(Some(self.combine_partials(&partials)?)),
            None => Ok(None),
        }
    }

    /// Sums every rank's sum-of-squares partials in rank and chunk order (ZeRO-1's global
    /// gradient norm). Each rank sends the same number of f64 slots (two f32 each); a shorter
    /// last shard leaves zeros, which add nothing.
    fn combine_partials(&self, mine: &[f64]) -> Result<f32, DistError> {
        let per = 2 * self.exchange.partials_per_rank();
        let slots = Shards::even(per * self.world, self.world);
        let mut all = vec![0.0f32; per * self.world];
        for (slot, p) in all[slots.range(self.rank)].chunks_exact_mut(2).zip(mine) {
            let bits = p.to_bits();
            slot[0] = f32::from_bits(bits as u32);
            slot[1] = f32::from_bits((bits >> 32) as u32);
        }
        let len = all.len();
        let all = self.exchange.host(Box::new(move |c| {
            c.all_gather(&mut all, 0..len, &slots)?;
            Ok(all)
        }))?;
        let total: f64 = all
            .chunks_exact(2)
            .map(|p| f64::from_bits(p[0].to_bits() as u64 | ((p[1].to_bits() as u64) << 32)))
            .sum();
        Ok(total as f32)
    }

    /// ZeRO-1, after each rank updated its shard: every rank gets all the new parameters.
    pub fn gather_params(&mut self, model: &mut Mae<B>) -> Result<(), DistError> {
        let (be, params) = model.backend_and_params_mut();
        self.exchange.gather_params(be, params)
    }

    /// Gathers every rank's micro-batch losses (`losses[a]` of micro-step `a`), its samples by
    /// present leads, how its reads went and whether it was asked to stop (a signal), so that
    /// all ranks decide and count alike.
    pub fn gather_step(&mut self, values: &StepValues<'_>) -> Result<StepReport, DistError> {
        let local = values.to_vec();
        let (world, rank, per) = (self.world, self.rank, local.len());
        let shards = Shards::even(world * per, world);
        let mut all = vec![0.0f32; world * per];
        all[rank * per..(rank + 1) * per].copy_from_slice(&local);
        let all = self.exchange.host(Box::new(move |c| {
            c.all_gather(&mut all, 0..world * per, &shards)?;
            Ok(all)
        }))?;
        let ranks: Vec<&[f32]> = all.chunks_exact(per).collect();
        Ok(StepReport::of_ranks(&ranks, values.losses.len()))
    }

    /// Every rank's `mine` (of any length, below 2^24 bytes), in rank order: what the ranks
    /// compare before their first step (`train/agreement.rs`). The bytes travel one per f32
    /// (exact), after the lengths, so any collective of the backend carries them.
    pub fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, DistError> {
        assert!(
            mine.len() < 1 << 24,
            "all_gather_bytes: {} bytes",
            mine.len()
        );
        let (world, rank) = (self.world, self.rank);
        let mut lens = vec![0.0f32; world];
        lens[rank] = mine.len() as f32;
        let mine: Vec<f32> = mine.iter().map(|&b| f32::from(b)).collect();
        let gathered = self.exchange.host(Box::new(move |c| {
            c.all_gather(&mut lens, 0..world, &Shards::even(world, world))?;
            let per = lens.iter().fold(1.0f32, |a, &b| a.max(b)) as usize;
            let mut all = vec![0.0f32; world * per];
            all[rank * per..rank * per + mine.len()].copy_from_slice(&mine);
            c.all_gather(&mut all, 0..world * per, &Shards::even(world * per, world))?;
            lens.extend(all);
            Ok(lens)
        }))?;
        let (lens, all) = gathered.split_at(world);
        let per = all.len() / world;
        Ok(lens
            .iter()
            .enumerate()
            .map(|(r, &len)| {
                let bytes = &all[r * per..r * per + len as usize];
                bytes.iter().map(|&b| b as u8).collect()
            })
            .collect())
    }

    /// Waits until every rank gets here.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        self.exchange
            .host(Box::new(|c| c.barrier().map(|()| Vec::new())))?;
        Ok(())
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

    /// Each rank's reads, and the kind of a failed one, reach every rank through the values.
    #[test]
    fn a_step_report_tells_which_ranks_failed_to_read_and_which_found_damage() {
        let reads = [
            Reads::Fine,
            Reads::Failed(ReadFault::Other),
            Reads::AheadFailed(ReadFault::Damaged),
            Reads::Failed(ReadFault::Damaged),
            Reads::AheadFailed(ReadFault::Other),
        ];
        let values: Vec<Vec<f32>> = reads
            .iter()
            .map(|&reads| {
                StepValues {
                    losses: &[1.0, 2.0],
                    samples_by_leads: &[3, 0],
                    reads,
                    nonfinite_input: false,
                    stop: false,
                }
                .to_vec()
            })
            .collect();
        let ranks: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
        let report = StepReport::of_ranks(&ranks, 2);
        assert_eq!(report.read_failed, [1, 3]);
        assert_eq!(report.read_ahead_failed, [2, 4]);
        assert_eq!(report.damaged_read, [2, 3]);
        assert_eq!(report.samples_by_leads, [15, 0]);
        assert_eq!(report.loss_sum, 15.0);
    }

    /// Which ranks read a non-finite input and which were asked to stop reach every rank, each
    /// from its own flag.
    #[test]
    fn a_step_report_tells_which_ranks_read_nonfinite_input_and_which_stop() {
        let flags = [(false, false), (true, false), (false, true), (true, true)];
        let values: Vec<Vec<f32>> = flags
            .iter()
            .map(|&(nonfinite_input, stop)| {
                StepValues {
                    losses: &[1.0],
                    samples_by_leads: &[1, 2, 3],
                    reads: Reads::Fine,
                    nonfinite_input,
                    stop,
                }
                .to_vec()
            })
            .collect();
        let ranks: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
        let report = StepReport::of_ranks(&ranks, 1);
        assert_eq!(report.nonfinite_input_ranks, [1, 3]);
        assert_eq!(report.stop_ranks, [2, 3]);
        assert!(report.nonfinite_ranks.is_empty() && report.read_failed.is_empty());
    }
}
