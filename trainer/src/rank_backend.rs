//! `RankBackend`: what data-parallel training needs from a backend beyond [`Backend`]: marks of
//! the work queued so far (so the communication thread starts a reduction only once the backward
//! pass has written its bucket) and the gradient shard's sum-of-squares partials under ZeRO-1.
//! The CPU backend computes synchronously (no marks) and gives one exact f64 partial per
//! `ALIGN` chunk, so a sharded norm equals its own `sum_squares` bit for bit; the CUDA backend
//! (`nccl_rank.rs`) records CUDA events and gives one partial per rank.

use ecgfm_dist::shards::ALIGN;
use ecgfm_dist::Shards;
use ecgfm_kernels::{Backend, CpuBackend, View};

/// A backend whose buffers a data-parallel rank reduces in place (no host copies).
pub trait RankBackend: Backend {
    /// A mark of the ops queued so far.
    type Ready: Send + 'static;
    /// Marks every op queued so far.
    fn ready(&self) -> Self::Ready;
    /// How many partials `sumsq_partials` gives for one shard of `shards` (the same on every
    /// rank; a shorter last shard pads with zeros, which add nothing).
    fn partials_per_rank(shards: &Shards) -> usize;
    /// Sum-of-squares partials of the `n` gradient elements at `grads` (a shard, starting on an
    /// `ALIGN` boundary), in order; `scratch` is a one-element buffer. Waits for the device.
    fn sumsq_partials(&self, grads: View<Self::Buf>, n: usize, scratch: &mut Self::Buf)
        -> Vec<f64>;
}

/// Per-chunk sums of squares (f64) of a shard whose start is a multiple of `ALIGN`: the partials
/// the CPU backend's `sum_squares` adds in order.
fn chunk_partials(shard: &[f32]) -> Vec<f64> {
    shard
        .chunks(ALIGN)
        .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
        .collect()
}

impl RankBackend for CpuBackend {
    type Ready = ();

    fn ready(&self) {}

    fn partials_per_rank(shards: &Shards) -> usize {
        shards.shard_len / ALIGN
    }

    fn sumsq_partials(&self, grads: View<Vec<f32>>, n: usize, _scratch: &mut Vec<f32>) -> Vec<f64> {
        chunk_partials(&grads.buf[grads.off..grads.off + n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgfm_kernels::ViewMut;

    /// The CPU backend's partials are exact f64 squares summed per `ALIGN` chunk, in order (one
    /// per chunk, a short last chunk included), and add up to the backend's own `sum_squares`:
    /// a value whose square rounds in f32 (1 + 2^-23) keeps its f64 square.
    #[test]
    fn cpu_partials_are_f64_squares_per_align_chunk_adding_to_sum_squares() {
        let v = 1.0f32 + f32::EPSILON;
        assert_ne!(
            (v * v) as f64,
            v as f64 * v as f64,
            "the square rounds in f32"
        );
        let n = 2 * ALIGN + 7;
        let grads: Vec<f32> = (0..n).map(|i| v * (1 + i % 3) as f32).collect();
        let be = CpuBackend::new();
        let partials = be.sumsq_partials(View::new(&grads, 0), n, &mut vec![0.0]);
        assert_eq!(partials.len(), 3);
        for (k, p) in partials.iter().enumerate() {
            let chunk = &grads[k * ALIGN..((k + 1) * ALIGN).min(n)];
            let exact: f64 = chunk.iter().map(|&g| g as f64 * g as f64).sum();
            assert_eq!(*p, exact, "chunk {k}");
        }
        let one = be.sumsq_partials(View::new(&vec![v], 0), 1, &mut vec![0.0]);
        assert_eq!(one, vec![v as f64 * v as f64]);
        let mut out = vec![0.0f32];
        be.sum_squares(ViewMut::new(&mut out, 0), View::new(&grads, 0), n);
        assert_eq!(out[0], partials.iter().sum::<f64>() as f32);
    }
}
