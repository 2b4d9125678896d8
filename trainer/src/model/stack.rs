//! A stack of transformer blocks followed by a LayerNorm (the encoder or the decoder body), with
//! all its activation and gradient buffers, allocated once for a maximum token count.
//!
//! Activation recomputation (`train.recompute`, model/recompute.rs) keeps fewer activations:
//! - `Blocks`: only each block's input and one block's activations; the backward pass reruns each
//!   block's forward just before its backward (memory falls from `depth` blocks of activations to
//!   one, at the cost of a second forward pass);
//! - `Pointwise`: every block's GEMM and attention outputs, but one set of LayerNorm and GELU
//!   outputs shared by all blocks, rewritten before each block's backward (elementwise work).
//!
//! The backend's ops are deterministic, so a rerun writes the same bits and the gradients are
//! bitwise those of the stored run.
//!
//! A stack built `Keep::ForwardOnly` (evaluation's probes and `ecgfm embed`) keeps no more than
//! the pass needs: two block inputs used in turn, one activation set and no gradient scratch.

use ecgfm_kernels::{Backend, ViewMut};

use super::block::{
    offset_of, BlockActs, BlockCall, BlockDims, BlockGrads, BlockOffsets, Pointwise, Weights,
};
use super::error::ModelError;
use super::layout::ParamLayout;
use super::mae::GradsReady;
use super::recompute::Recompute;

/// What a stack keeps for its backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The activations of a recomputation mode.
    Backward(Recompute),
    /// Nothing: two block inputs used in turn, one activation set, no gradient scratch; no
    /// backward pass.
    ForwardOnly,
}

/// Blocks `{prefix}.0 ..` and the norm `{prefix}_norm` over packed tokens.
pub(crate) struct Stack<B: Backend> {
    dims: BlockDims,
    offsets: Vec<BlockOffsets>,
    norm_w: usize,
    norm_b: usize,
    /// Each block's input (T, C): `inputs[0]` is the embedding's output. Forward-only: two,
    /// block i reading `inputs[i % 2]`.
    inputs: Vec<B::Buf>,
    /// Saved activations: one per block, or one shared by all (`Recompute::Blocks`).
    acts: Vec<BlockActs<B>>,
    /// LayerNorm and GELU outputs: one per block, or one shared by all (recomputation).
    pointwise: Vec<Pointwise<B>>,
    keep: Keep,
    max_tokens: usize,
    /// Bytes per element of the pointwise activations (`Backend::operand_bytes`).
    operand_bytes: usize,
    /// Output of the last block, (T, C).
    out: B::Buf,
    /// Output of the final LayerNorm, (T, C): the stack's result.
    pub norm_out: B::Buf,
    norm_mean: B::Buf,
    norm_rstd: B::Buf,
    tmp: B::Buf,
    /// Gradient scratch; `grads.dln` takes d loss / d `norm_out` before `backward`, and
    /// `grads.dres` holds d loss / d input after it (empty when forward-only).
    pub grads: BlockGrads<B>,
}

/// The packed sequence description of one call.
pub(crate) struct Packing<'a, B: Backend> {
    pub cu_seqlens: &'a B::IdxBuf,
    pub seqs: usize,
    pub tokens: usize,
}

impl<B: Backend> Clone for Packing<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Packing<'_, B> {}

fn block_call<'a, B: Backend>(
    be: &'a B,
    weights: Weights<'a, B>,
    offsets: &'a BlockOffsets,
    dims: BlockDims,
    pack: Packing<'a, B>,
) -> BlockCall<'a, B> {
    BlockCall {
        be,
        weights,
        offsets,
        dims,
        cu_seqlens: pack.cu_seqlens,
        seqs: pack.seqs,
        tokens: pack.tokens,
    }
}

/// Block `i`'s input among `inputs` (one per block, or two used in turn) and the buffer its
/// output goes to: the next block's input, or `out` after the `last` block.
fn block_io<'a, T>(
    inputs: &'a mut [T],
    out: &'a mut T,
    i: usize,
    last: bool,
) -> (&'a T, &'a mut T) {
    let k = inputs.len();
    let (from, to) = (i % k, (i + 1) % k);
    if last {
        return (&inputs[from], out);
    }
    if from < to {
        let (low, high) = inputs.split_at_mut(to);
        (&low[from], &mut high[0])
    } else {
        let (low, high) = inputs.split_at_mut(from);
        (&high[0], &mut low[to])
    }
}

/// How many block activation sets and pointwise sets a stack of `depth` blocks keeps under
/// `mode` (one shared set of a kind the backward pass recomputes).
fn kept_sets(mode: Recompute, depth: usize) -> (usize, usize) {
    match mode {
        Recompute::None => (depth, depth),
        Recompute::Pointwise => (depth, depth.min(1)),
        Recompute::Blocks => (depth.min(1), depth.min(1)),
    }
}

impl<B: Backend> Stack<B> {
    /// The stack of blocks `{prefix}.0 ..` and final LayerNorm `{prefix}_norm`, with buffers
    /// for `max_tokens` tokens and what `keep` keeps for the backward pass.
    pub(crate) fn new(
        be: &B,
        layout: &ParamLayout,
        prefix: &str,
        depth: usize,
        dims: BlockDims,
        max_tokens: usize,
        keep: Keep,
    ) -> Result<Self, ModelError> {
        let t = max_tokens;
        let offsets = (0..depth)
            .map(|i| BlockOffsets::resolve(layout, &format!("{prefix}.{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let (inputs, (acts, pointwise), grad_tokens) = match keep {
            Keep::Backward(mode) => (depth, kept_sets(mode, depth), t),
            Keep::ForwardOnly => (depth.min(2), kept_sets(Recompute::Blocks, depth), 0),
        };
        Ok(Stack {
            dims,
            norm_w: offset_of(layout, &format!("{prefix}_norm.weight"))?,
            norm_b: offset_of(layout, &format!("{prefix}_norm.bias"))?,
            inputs: (0..inputs).map(|_| be.alloc(t * dims.width)).collect(),
            acts: (0..acts).map(|_| BlockActs::new(be, t, dims)).collect(),
            pointwise: (0..pointwise)
                .map(|_| Pointwise::new(be, t, dims))
                .collect(),
            keep,
            max_tokens: t,
            operand_bytes: be.operand_bytes(),
            offsets,
            out: be.alloc(t * dims.width),
            norm_out: be.alloc(t * dims.width),
            norm_mean: be.alloc(t),
            norm_rstd: be.alloc(t),
            tmp: be.alloc(t * dims.width),
            grads: BlockGrads::new(be, grad_tokens, dims),
        })
    }

    /// Whether the stack was built for the backward pass too.
    pub(crate) fn trains(&self) -> bool {
        self.keep != Keep::ForwardOnly
    }

    /// The stack's input (T, C): the embedding writes here before `forward`.
    pub(crate) fn input_mut(&mut self) -> &mut B::Buf {
        &mut self.inputs[0]
    }

    /// Sets the activation recomputation (see the module comment); allocates or frees the
    /// activation sets it keeps.
    pub(crate) fn set_recompute(&mut self, be: &B, mode: Recompute) {
        assert!(
            self.trains(),
            "a forward-only stack has no recomputation mode"
        );
        let (acts, pointwise) = kept_sets(mode, self.offsets.len());
        let (t, dims) = (self.max_tokens, self.dims);
        self.acts.truncate(acts);
        while self.acts.len() < acts {
            self.acts.push(BlockActs::new(be, t, dims));
        }
        self.pointwise.truncate(pointwise);
        while self.pointwise.len() < pointwise {
            self.pointwise.push(Pointwise::new(be, t, dims));
        }
        self.keep = Keep::Backward(mode);
    }

    /// Bytes of the activations kept between the forward and the backward pass.
    pub(crate) fn activation_bytes(&self) -> u64 {
        let (t, c) = (self.max_tokens, self.dims.width);
        let ob = self.operand_bytes;
        let floats = self.inputs.len() * t * c + 2 * t * c + 2 * t;
        let acts = self.acts.len() * BlockActs::<B>::bytes(t, self.dims, ob);
        let pointwise = self.pointwise.len() * Pointwise::<B>::bytes(t, self.dims, ob);
        (4 * floats + acts + pointwise) as u64
    }

    /// The indices in `acts` and `pointwise` of block `i`'s activation sets (the shared ones
    /// when recomputing).
    fn sets(&self, i: usize) -> (usize, usize) {
        (i.min(self.acts.len() - 1), i.min(self.pointwise.len() - 1))
    }

    /// Block `i`'s forward: its input, its saved activations (shared with recomputation) and
    /// its output (the next block's input, or `out` after the last).
    fn block_forward(&mut self, be: &B, w: Weights<'_, B>, pack: Packing<'_, B>, i: usize) {
        let call = block_call(be, w, &self.offsets[i], self.dims, pack);
        let (a, p) = self.sets(i);
        let last = i + 1 == self.offsets.len();
        let (input, out) = block_io(&mut self.inputs, &mut self.out, i, last);
        let sets = (&mut self.acts[a], &mut self.pointwise[p]);
        call.forward(input, sets, out, &mut self.tmp);
    }

    /// Runs every block and the final norm; the result is in `norm_out`.
    pub(crate) fn forward(&mut self, be: &B, w: Weights<'_, B>, pack: Packing<'_, B>) {
        for i in 0..self.offsets.len() {
            self.block_forward(be, w, pack, i);
        }
        be.layernorm_forward(
            (&mut self.norm_out).into(),
            (&mut self.norm_mean).into(),
            (&mut self.norm_rstd).into(),
            (&self.out).into(),
            w.p(self.norm_w),
            w.p(self.norm_b),
            pack.tokens,
            self.dims.width,
        );
    }

    /// Backward of `forward`: expects d loss / d `norm_out` in `grads.dln`, leaves
    /// d loss / d input in `grads.dres`, and ADDS parameter gradients into `grads`. Calls
    /// `ready(first)` whenever the gradients from element `first` to the end of the stack's
    /// tensors are final (after the norm, then after each block).
    pub(crate) fn backward(
        &mut self,
        be: &B,
        w: Weights<'_, B>,
        grads: &mut B::Buf,
        pack: Packing<'_, B>,
        ready: &mut GradsReady<'_, B>,
    ) {
        let Keep::Backward(recompute) = self.keep else {
            panic!("backward through a forward-only stack");
        };
        let (t, c) = (pack.tokens, self.dims.width);
        be.fill((&mut self.grads.dres).into(), t * c, 0.0);
        be.layernorm_backward(
            (&mut self.grads.dres).into(),
            ViewMut::new(grads, self.norm_w),
            self.norm_b,
            (&self.grads.dln).into(),
            (&self.out).into(),
            w.p(self.norm_w),
            (&self.norm_mean).into(),
            (&self.norm_rstd).into(),
            t,
            c,
        );
        ready(be, grads, self.norm_w);
        for i in (0..self.offsets.len()).rev() {
            match recompute {
                Recompute::None => {}
                // Rewrites block i's activations and output with the bits they already held.
                Recompute::Blocks => self.block_forward(be, w, pack, i),
                Recompute::Pointwise => {
                    let call = block_call(be, w, &self.offsets[i], self.dims, pack);
                    let (a, p) = (&mut self.acts[i], &mut self.pointwise[0]);
                    call.recompute_pointwise(&self.inputs[i], a, p);
                }
            }
            let call = block_call(be, w, &self.offsets[i], self.dims, pack);
            let (a, p) = self.sets(i);
            let sets = (&self.acts[a], &self.pointwise[p]);
            call.backward(&self.inputs[i], sets, &mut self.grads, grads);
            ready(be, grads, self.offsets[i].first());
        }
    }
}
