//! A stack of transformer blocks followed by a LayerNorm (the encoder or the decoder body), with
//! all its activation and gradient buffers, allocated once for a maximum token count.
//!
//! With activation recomputation (`train.recompute`) the stack keeps only each block's input and
//! one block's saved activations: the backward pass reruns each block's forward just before its
//! backward. The backend's ops are deterministic, so the rerun writes the same bits and the
//! gradients are bitwise those of the stored run; memory falls from `depth` blocks of
//! activations to one, at the cost of a second forward pass.

use ecgfm_kernels::{Backend, View, ViewMut};

use super::block::{offset_of, BlockActs, BlockCall, BlockDims, BlockGrads, BlockOffsets};
use super::error::ModelError;
use super::layout::ParamLayout;
use super::mae::GradsReady;

/// Blocks `{prefix}.0 ..` and the norm `{norm}` over packed tokens.
pub(crate) struct Stack<B: Backend> {
    dims: BlockDims,
    offsets: Vec<BlockOffsets>,
    norm_w: usize,
    norm_b: usize,
    /// Each block's input (T, C): `inputs[0]` is the embedding's output.
    inputs: Vec<B::Buf>,
    /// Saved activations: one per block, or one shared by all with recomputation.
    acts: Vec<BlockActs<B>>,
    max_tokens: usize,
    /// Output of the last block, (T, C).
    out: B::Buf,
    /// Output of the final LayerNorm, (T, C): the stack's result.
    pub norm_out: B::Buf,
    norm_mean: B::Buf,
    norm_rstd: B::Buf,
    tmp: B::Buf,
    /// Gradient scratch; `grads.dln` takes d loss / d `norm_out` before `backward`, and
    /// `grads.dres` holds d loss / d input after it.
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
    params: &'a B::Buf,
    offsets: &'a BlockOffsets,
    dims: BlockDims,
    pack: Packing<'a, B>,
) -> BlockCall<'a, B> {
    BlockCall {
        be,
        params,
        offsets,
        dims,
        cu_seqlens: pack.cu_seqlens,
        seqs: pack.seqs,
        tokens: pack.tokens,
    }
}

impl<B: Backend> Stack<B> {
    pub(crate) fn new(
        be: &B,
        layout: &ParamLayout,
        prefix: &str,
        depth: usize,
        norm: &str,
        dims: BlockDims,
        max_tokens: usize,
    ) -> Result<Self, ModelError> {
        let offsets = (0..depth)
            .map(|i| BlockOffsets::resolve(layout, &format!("{prefix}.{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let t = max_tokens;
        Ok(Stack {
            dims,
            norm_w: offset_of(layout, &format!("{norm}.weight"))?,
            norm_b: offset_of(layout, &format!("{norm}.bias"))?,
            inputs: (0..depth).map(|_| be.alloc(t * dims.width)).collect(),
            acts: (0..depth).map(|_| BlockActs::new(be, t, dims)).collect(),
            max_tokens: t,
            offsets,
            out: be.alloc(t * dims.width),
            norm_out: be.alloc(t * dims.width),
            norm_mean: be.alloc(t),
            norm_rstd: be.alloc(t),
            tmp: be.alloc(t * dims.width),
            grads: BlockGrads::new(be, t, dims),
        })
    }

    /// The stack's input (T, C): the embedding writes here before `forward`.
    pub(crate) fn input_mut(&mut self) -> &mut B::Buf {
        &mut self.inputs[0]
    }

    /// Switches activation recomputation on or off (see the module comment); allocates or frees
    /// the saved activations of all blocks but one.
    pub(crate) fn set_recompute(&mut self, be: &B, on: bool) {
        let depth = self.offsets.len();
        let keep = if on { depth.min(1) } else { depth };
        self.acts.truncate(keep);
        while self.acts.len() < keep {
            self.acts
                .push(BlockActs::new(be, self.max_tokens, self.dims));
        }
    }

    fn recomputes(&self) -> bool {
        self.acts.len() < self.offsets.len()
    }

    /// Bytes of the activations kept between the forward and the backward pass.
    pub(crate) fn activation_bytes(&self) -> u64 {
        let (t, c) = (self.max_tokens, self.dims.width);
        let floats = self.inputs.len() * t * c
            + self.acts.len() * BlockActs::<B>::floats(t, self.dims)
            + 2 * t * c
            + 2 * t;
        4 * floats as u64
    }

    /// Block `i`'s forward: its input, its saved activations (shared with recomputation) and
    /// its output (the next block's input, or `out` after the last).
    fn block_forward(&mut self, be: &B, params: &B::Buf, pack: Packing<'_, B>, i: usize) {
        let call = block_call(be, params, &self.offsets[i], self.dims, pack);
        let (head, tail) = self.inputs.split_at_mut(i + 1);
        let out = match tail.first_mut() {
            Some(next) => next,
            None => &mut self.out,
        };
        let last = self.acts.len() - 1;
        let acts = &mut self.acts[i.min(last)];
        call.forward(&head[i], acts, out, &mut self.tmp);
    }

    /// Runs every block and the final norm; the result is in `norm_out`.
    pub(crate) fn forward(&mut self, be: &B, params: &B::Buf, pack: Packing<'_, B>) {
        for i in 0..self.offsets.len() {
            self.block_forward(be, params, pack, i);
        }
        be.layernorm_forward(
            (&mut self.norm_out).into(),
            (&mut self.norm_mean).into(),
            (&mut self.norm_rstd).into(),
            (&self.out).into(),
            View::new(params, self.norm_w),
            View::new(params, self.norm_b),
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
        params: &B::Buf,
        grads: &mut B::Buf,
        pack: Packing<'_, B>,
        ready: &mut GradsReady<'_, B>,
    ) {
        let (t, c) = (pack.tokens, self.dims.width);
        be.fill((&mut self.grads.dres).into(), t * c, 0.0);
        be.layernorm_backward(
            (&mut self.grads.dres).into(),
            ViewMut::new(grads, self.norm_w),
            self.norm_b,
            (&self.grads.dln).into(),
            (&self.out).into(),
            View::new(params, self.norm_w),
            (&self.norm_mean).into(),
            (&self.norm_rstd).into(),
            t,
            c,
        );
        ready(be, grads, self.norm_w);
        let recompute = self.recomputes();
        for i in (0..self.offsets.len()).rev() {
            if recompute {
                // Rewrites block i's output with the bits it already holds.
                self.block_forward(be, params, pack, i);
            }
            block_call(be, params, &self.offsets[i], self.dims, pack).backward(
                &self.inputs[i],
                &self.acts[i.min(self.acts.len() - 1)],
                &mut self.grads,
                grads,
            );
            ready(be, grads, self.offsets[i].first());
        }
    }
}
