//! The `Collective` abstraction: the operations data-parallel training needs between ranks, over
//! some buffer type (`[f32]` in host memory for the CPU implementation, a device slice for NCCL).
//!
//! Sums are defined in RANK ORDER: every reduced element is `((x_0 + x_1) + x_2) + ...`, so a
//! reduction over R ranks gives the same bits as one process adding the same values in the same
//! order (the CPU implementation guarantees it; NCCL sums in its own ring order). Every call has
//! a timeout; errors name the rank that failed to answer.

use std::ops::Range;

use crate::{DistError, Shards};

/// Collective operations among the ranks of one job. Every rank must make the same calls in the
/// same order with the same ranges and partitions.
pub trait Collective<Buf: ?Sized> {
    /// This rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn world_size(&self) -> usize;

    /// Reduce-scatter with accumulation: for every rank q, q ADDS the values of the part of
    /// `range` it owns in `shards`, from every rank in rank order, into `acc`:
    /// `acc = ((acc + src_0) + src_1) + ...`. `src` holds this rank's values of `range`
    /// (`src[0]` is element `range.start`); `acc` is this rank's shard (`acc[0]` is element
    /// `shards.range(rank).start`).
    fn reduce_scatter(
        &mut self,
        src: &Buf,
        range: Range<usize>,
        shards: &Shards,
        acc: &mut Buf,
    ) -> Result<(), DistError>;

    /// All-gather: `buf` is the whole buffer; every rank receives, from each owner, the part of
    /// `range` the owner holds in `shards`.
    fn all_gather(
        &mut self,
        buf: &mut Buf,
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError>;

    /// All-reduce in place: every rank ends with the rank-ordered sum.
    fn all_reduce(&mut self, buf: &mut Buf) -> Result<(), DistError>;

    /// Every rank ends with `root`'s `buf`.
    fn broadcast(&mut self, buf: &mut Buf, root: usize) -> Result<(), DistError>;

    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<(), DistError>;
}
