//! A stack of transformer blocks followed by a LayerNorm (the encoder or the decoder body), with
//! all its activation and gradient buffers, allocated once for a maximum token count.

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
    acts: Vec<BlockActs<B>>,
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
            acts: (0..depth).map(|_| BlockActs::new(be, t, dims)).collect(),
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
        &mut self.acts[0].input
    }

    /// Runs every block and the final norm; the result is in `norm_out`.
    pub(crate) fn forward(&mut self, be: &B, params: &B::Buf, pack: Packing<'_, B>) {
        let depth = self.offsets.len();
        for i in 0..depth {
            let call = block_call(be, params, &self.offsets[i], self.dims, pack);
            let (head, tail) = self.acts.split_at_mut(i + 1);
            let out = match tail.first_mut() {
                Some(next) => &mut next.input,
                None => &mut self.out,
            };
            call.forward(&mut head[i], out, &mut self.tmp);
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
        for i in (0..self.offsets.len()).rev() {
            block_call(be, params, &self.offsets[i], self.dims, pack).backward(
                &self.acts[i],
                &mut self.grads,
                grads,
            );
            ready(be, grads, self.offsets[i].first());
        }
    }
}
