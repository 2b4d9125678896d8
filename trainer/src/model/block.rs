//! One pre-LN transformer block, forward and backward side by side:
//! `mid = x + proj(attn(ln1(x)))`, `out = mid + fc2(gelu(fc1(ln2(mid))))`.
//! The block's saved activations live in `BlockActs`, allocated once for the maximum token count.

use ecgfm_kernels::{bf16_attention_head, AttnDims, Backend, View, ViewMut};

use super::error::ModelError;
use super::layout::ParamLayout;

/// Offsets of one block's tensors in the parameter (and gradient) buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockOffsets {
    ln1_w: usize,
    ln1_b: usize,
    qkv_w: usize,
    qkv_b: usize,
    proj_w: usize,
    proj_b: usize,
    ln2_w: usize,
    ln2_b: usize,
    fc1_w: usize,
    fc1_b: usize,
    fc2_w: usize,
    fc2_b: usize,
}

/// Offset of the tensor `name`, which the layout of a valid config always has.
pub(crate) fn offset_of(layout: &ParamLayout, name: &str) -> Result<usize, ModelError> {
    layout
        .get(name)
        .map(|e| e.offset)
        .ok_or_else(|| ModelError::InvalidConfig(format!("layout has no tensor `{name}`")))
}

impl BlockOffsets {
    /// The block's first element in the buffer (its tensors are contiguous, `ln1.weight` first).
    pub(crate) fn first(&self) -> usize {
        self.ln1_w
    }

    /// Resolves the tensors of block `prefix` (e.g. `enc.3`).
    pub(crate) fn resolve(layout: &ParamLayout, prefix: &str) -> Result<Self, ModelError> {
        let o = |suffix: &str| offset_of(layout, &format!("{prefix}.{suffix}"));
        Ok(BlockOffsets {
            ln1_w: o("ln1.weight")?,
            ln1_b: o("ln1.bias")?,
            qkv_w: o("attn.qkv.weight")?,
            qkv_b: o("attn.qkv.bias")?,
            proj_w: o("attn.proj.weight")?,
            proj_b: o("attn.proj.bias")?,
            ln2_w: o("ln2.weight")?,
            ln2_b: o("ln2.bias")?,
            fc1_w: o("mlp.fc1.weight")?,
            fc1_b: o("mlp.fc1.bias")?,
            fc2_w: o("mlp.fc2.weight")?,
            fc2_b: o("mlp.fc2.bias")?,
        })
    }
}

/// Widths of the blocks of one stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockDims {
    /// Model width C.
    pub width: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width.
    pub mlp: usize,
}

/// Activations one block saves for its backward pass, besides its input (the residual stream,
/// which the stack keeps) and its `Pointwise` activations.
pub(crate) struct BlockActs<B: Backend> {
    ln1_mean: B::Buf, // (T)
    ln1_rstd: B::Buf, // (T)
    qkv: B::Buf,      // (T, 3C), operand storage where attention rounds it (`attention_is_operand`)
    attn: B::Buf,     // (T, C), operand storage there too (bf16 attention rounds its output)
    lse: B::Buf,      // (T, H)
    mid: B::Buf,      // (T, C)
    ln2_mean: B::Buf, // (T)
    ln2_rstd: B::Buf, // (T)
    fc1: B::Buf,      // (T, M), the GELU's input: operand storage (bf16 rounds it)
}

/// Whether attention's qkv and output are bf16 values in a bf16 run (qkv read only by matrix
/// products that round it, the output rounded by bf16 attention): at the head sizes of the
/// tensor-core attention (`precision::bf16_attention_head`). Both are then stored as operands
/// (`Backend::alloc_operand`).
fn attention_is_operand(d: BlockDims) -> bool {
    bf16_attention_head(d.width / d.heads)
}

impl<B: Backend> BlockActs<B> {
    /// Bytes of one block's saved activations for `tokens` tokens, with operands of
    /// `operand_bytes` bytes per element.
    pub(crate) fn bytes(tokens: usize, d: BlockDims, operand_bytes: usize) -> usize {
        let attention_bytes = if attention_is_operand(d) {
            operand_bytes
        } else {
            4
        };
        4 * tokens * (d.width + d.heads + 4)
            + attention_bytes * tokens * 4 * d.width
            + operand_bytes * tokens * d.mlp
    }

    pub(crate) fn new(be: &B, tokens: usize, d: BlockDims) -> Self {
        let (t, c) = (tokens, d.width);
        let attention_buf = |n| match attention_is_operand(d) {
            true => be.alloc_operand(n),
            false => be.alloc(n),
        };
        BlockActs {
            ln1_mean: be.alloc(t),
            ln1_rstd: be.alloc(t),
            qkv: attention_buf(t * 3 * c),
            attn: attention_buf(t * c),
            lse: be.alloc(t * d.heads),
            mid: be.alloc(t * c),
            ln2_mean: be.alloc(t),
            ln2_rstd: be.alloc(t),
            fc1: be.alloc_operand(t * d.mlp),
        }
    }
}

/// The outputs of a block's LayerNorms and GELU: the inputs of its GEMMs, cheap to compute again
/// from the saved activations (`Recompute::Pointwise` keeps one set for all blocks). Read only by
/// the GEMMs, so stored as the backend's matrix-product operands (`Backend::alloc_operand`: bf16
/// on a bf16 GPU backend).
pub(crate) struct Pointwise<B: Backend> {
    ln1: B::Buf,  // (T, C)
    ln2: B::Buf,  // (T, C)
    gelu: B::Buf, // (T, M)
}

impl<B: Backend> Pointwise<B> {
    /// Bytes of one block's pointwise activations for `tokens` tokens, with operands of
    /// `operand_bytes` bytes per element.
    pub(crate) fn bytes(tokens: usize, d: BlockDims, operand_bytes: usize) -> usize {
        operand_bytes * tokens * (2 * d.width + d.mlp)
    }

    pub(crate) fn new(be: &B, tokens: usize, d: BlockDims) -> Self {
        Pointwise {
            ln1: be.alloc_operand(tokens * d.width),
            ln2: be.alloc_operand(tokens * d.width),
            gelu: be.alloc_operand(tokens * d.mlp),
        }
    }
}

/// Gradient scratch of one stack, shared by its blocks (the residual gradient `dres` runs
/// through all of them).
pub(crate) struct BlockGrads<B: Backend> {
    /// d loss / d residual stream at the current point of the backward pass, (T, C).
    pub dres: B::Buf,
    /// Gradient w.r.t. a LayerNorm output, (T, C).
    pub dln: B::Buf,
    dattn: B::Buf, // (T, C)
    dqkv: B::Buf,  // (T, 3C)
    dfc1: B::Buf,  // (T, M), read only by fc1's GEMMs: operand storage
    dgelu: B::Buf, // (T, M)
}

impl<B: Backend> BlockGrads<B> {
    pub(crate) fn new(be: &B, tokens: usize, d: BlockDims) -> Self {
        let (t, c) = (tokens, d.width);
        BlockGrads {
            dres: be.alloc(t * c),
            dln: be.alloc(t * c),
            dattn: be.alloc(t * c),
            dqkv: be.alloc(t * 3 * c),
            dfc1: be.alloc_operand(t * d.mlp),
            dgelu: be.alloc(t * d.mlp),
        }
    }
}

/// The parameter buffer, and the buffer matrix products read weights from: the backend's bf16
/// copy of the parameters where it keeps one (`Backend::alloc_weight_copy`), else the same.
pub(crate) struct Weights<'a, B: Backend> {
    pub params: &'a B::Buf,
    pub products: &'a B::Buf,
}

impl<B: Backend> Clone for Weights<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Weights<'_, B> {}

impl<'a, B: Backend> Weights<'a, B> {
    /// Products reading `copy` where there is one, else the parameters themselves.
    pub fn new(params: &'a B::Buf, copy: Option<&'a B::Buf>) -> Self {
        Self {
            params,
            products: copy.unwrap_or(params),
        }
    }

    /// Element `off` of the parameters.
    pub fn p(&self, off: usize) -> View<'a, B::Buf> {
        View::new(self.params, off)
    }

    /// Element `off` of the weights as matrix products read them.
    pub fn m(&self, off: usize) -> View<'a, B::Buf> {
        View::new(self.products, off)
    }
}

/// The parameters (one contiguous f32 buffer) with the backend's bf16 copy of them, where it
/// keeps one (`Backend::alloc_weight_copy`), for the matrix products to read their weights
/// from. Every write access marks the copy stale and `refresh` rounds it again only then: once
/// per training step, and once for a frozen model however many batches it runs.
pub(crate) struct Params<B: Backend> {
    buf: B::Buf,
    copy: Option<B::Buf>,
    total: usize,
    /// Whether `copy` holds the rounding of `buf` as it is now.
    copy_current: bool,
}

impl<B: Backend> Params<B> {
    /// `total` parameters at zero, and the backend's copy if it keeps one.
    pub fn new(be: &B, total: usize) -> Self {
        Self {
            buf: be.alloc(total),
            copy: be.alloc_weight_copy(total),
            total,
            copy_current: false,
        }
    }

    pub fn get(&self) -> &B::Buf {
        &self.buf
    }

    /// The parameters, to write: the copy is stale from here on.
    pub fn get_mut(&mut self) -> &mut B::Buf {
        self.copy_current = false;
        &mut self.buf
    }

    /// Rounds the parameters into the copy if they changed since it was last rounded.
    pub fn refresh(&mut self, be: &B) {
        if let Some(copy) = self.copy.as_mut().filter(|_| !self.copy_current) {
            be.round_weights(copy.into(), (&self.buf).into(), self.total);
        }
        self.copy_current = true;
    }

    /// The parameters and what the matrix products read.
    pub fn weights(&self) -> Weights<'_, B> {
        Weights::new(&self.buf, self.copy.as_ref())
    }
}

/// Everything a block call needs besides its buffers.
pub(crate) struct BlockCall<'a, B: Backend> {
    pub be: &'a B,
    pub weights: Weights<'a, B>,
    pub offsets: &'a BlockOffsets,
    pub dims: BlockDims,
    pub cu_seqlens: &'a B::IdxBuf,
    pub seqs: usize,
    pub tokens: usize,
}

impl<B: Backend> BlockCall<'_, B> {
    fn p(&self, off: usize) -> View<'_, B::Buf> {
        self.weights.p(off)
    }

    fn m(&self, off: usize) -> View<'_, B::Buf> {
        self.weights.m(off)
    }

    fn attn_dims(&self) -> AttnDims {
        AttnDims {
            seqs: self.seqs,
            tokens: self.tokens,
            width: self.dims.width,
            heads: self.dims.heads,
        }
    }

    /// Forward: reads `input` (T, C), saves the activations in `a` and `pw`, writes the block
    /// output to `out` (T, C). `tmp` (T, C) is scratch for the branch outputs.
    pub(crate) fn forward(
        &self,
        input: &B::Buf,
        (a, pw): (&mut BlockActs<B>, &mut Pointwise<B>),
        out: &mut B::Buf,
        tmp: &mut B::Buf,
    ) {
        let (be, o, t) = (self.be, self.offsets, self.tokens);
        let (c, m) = (self.dims.width, self.dims.mlp);
        // Attention branch: mid = x + proj(attn(ln1(x))).
        self.ln1_forward(input, a, pw);
        be.matmul_forward(
            (&mut a.qkv).into(),
            (&pw.ln1).into(),
            self.m(o.qkv_w),
            Some(self.p(o.qkv_b)),
            t,
            c,
            3 * c,
        );
        be.attention_forward(
            (&mut a.attn).into(),
            (&mut a.lse).into(),
            (&a.qkv).into(),
            self.cu_seqlens.into(),
            self.attn_dims(),
        );
        // proj's bias joins the residual add below (fused with ln2) and fc2's the block's last
        // residual add: the same bits, a pass fewer each on a GPU.
        be.matmul_forward(
            tmp.into(),
            (&a.attn).into(),
            self.m(o.proj_w),
            None,
            t,
            c,
            c,
        );
        // MLP branch: out = mid + fc2(gelu(fc1(ln2(mid)))).
        be.add_layernorm_forward(
            (&mut a.mid).into(),
            (
                (&mut pw.ln2).into(),
                (&mut a.ln2_mean).into(),
                (&mut a.ln2_rstd).into(),
            ),
            (input.into(), (&*tmp).into(), Some(self.p(o.proj_b))),
            (self.p(o.ln2_w), self.p(o.ln2_b)),
            t,
            c,
        );
        be.matmul_gelu_forward(
            ((&mut a.fc1).into(), (&mut pw.gelu).into()),
            (&pw.ln2).into(),
            (self.m(o.fc1_w), self.p(o.fc1_b)),
            t,
            c,
            m,
        );
        be.matmul_forward(
            tmp.into(),
            (&pw.gelu).into(),
            self.m(o.fc2_w),
            None,
            t,
            m,
            c,
        );
        be.add_bias(
            out.into(),
            (&a.mid).into(),
            ((&*tmp).into(), self.p(o.fc2_b)),
            t,
            c,
        );
    }

    /// ln1 of the block's input into `pw.ln1`, its statistics into `a`.
    fn ln1_forward(&self, input: &B::Buf, a: &mut BlockActs<B>, pw: &mut Pointwise<B>) {
        let o = self.offsets;
        self.be.layernorm_forward(
            (&mut pw.ln1).into(),
            (&mut a.ln1_mean).into(),
            (&mut a.ln1_rstd).into(),
            input.into(),
            self.p(o.ln1_w),
            self.p(o.ln1_b),
            self.tokens,
            self.dims.width,
        );
    }

    /// Writes `pw` again from `input` and `a` (`Recompute::Pointwise`, just before `backward`):
    /// ln1(x), ln2(mid) and gelu(fc1), the same bits as the forward wrote. The statistics in `a`
    /// are rewritten with the bits they hold.
    pub(crate) fn recompute_pointwise(
        &self,
        input: &B::Buf,
        a: &mut BlockActs<B>,
        pw: &mut Pointwise<B>,
    ) {
        let (be, o, t) = (self.be, self.offsets, self.tokens);
        self.ln1_forward(input, a, pw);
        be.layernorm_forward(
            (&mut pw.ln2).into(),
            (&mut a.ln2_mean).into(),
            (&mut a.ln2_rstd).into(),
            (&a.mid).into(),
            self.p(o.ln2_w),
            self.p(o.ln2_b),
            t,
            self.dims.width,
        );
        be.gelu_forward((&mut pw.gelu).into(), (&a.fc1).into(), t * self.dims.mlp);
    }

    /// Backward: `input`, `a` and `pw` as `forward` left them; on entry `g.dres` holds
    /// d loss / d (block output); on exit it holds d loss / d (block input). Parameter gradients
    /// are ADDED into `grads`.
    pub(crate) fn backward(
        &self,
        input: &B::Buf,
        (a, pw): (&BlockActs<B>, &Pointwise<B>),
        g: &mut BlockGrads<B>,
        grads: &mut B::Buf,
    ) {
        let (be, o, t) = (self.be, self.offsets, self.tokens);
        let (c, m) = (self.dims.width, self.dims.mlp);
        // MLP branch; the residual passes dres through unchanged.
        be.matmul_backward(
            Some((&mut g.dgelu).into()),
            ViewMut::new(grads, o.fc2_w),
            Some(o.fc2_b),
            (&g.dres).into(),
            (&pw.gelu).into(),
            self.m(o.fc2_w),
            t,
            m,
            c,
        );
        // fc1's bias gradient comes with the GELU's backward, in the same pass.
        be.gelu_backward(
            (&mut g.dfc1).into(),
            Some(ViewMut::new(grads, o.fc1_b)),
            ((&a.fc1).into(), (&g.dgelu).into()),
            t,
            m,
        );
        be.matmul_backward(
            Some((&mut g.dln).into()),
            ViewMut::new(grads, o.fc1_w),
            None,
            (&g.dfc1).into(),
            (&pw.ln2).into(),
            self.m(o.fc1_w),
            t,
            c,
            m,
        );
        be.layernorm_backward(
            (&mut g.dres).into(),
            ViewMut::new(grads, o.ln2_w),
            o.ln2_b,
            (&g.dln).into(),
            (&a.mid).into(),
            self.p(o.ln2_w),
            (&a.ln2_mean).into(),
            (&a.ln2_rstd).into(),
            t,
            c,
        );
        // Attention branch; dres now holds d loss / d mid.
        be.matmul_backward(
            Some((&mut g.dattn).into()),
            ViewMut::new(grads, o.proj_w),
            Some(o.proj_b),
            (&g.dres).into(),
            (&a.attn).into(),
            self.m(o.proj_w),
            t,
            c,
            c,
        );
        be.attention_backward(
            (&mut g.dqkv).into(),
            (&g.dattn).into(),
            (&a.qkv).into(),
            (&a.attn).into(),
            (&a.lse).into(),
            self.cu_seqlens.into(),
            self.attn_dims(),
        );
        be.matmul_backward(
            Some((&mut g.dln).into()),
            ViewMut::new(grads, o.qkv_w),
            Some(o.qkv_b),
            (&g.dqkv).into(),
            (&pw.ln1).into(),
            self.m(o.qkv_w),
            t,
            c,
            3 * c,
        );
        be.layernorm_backward(
            (&mut g.dres).into(),
            ViewMut::new(grads, o.ln1_w),
            o.ln1_b,
            (&g.dln).into(),
            input.into(),
            self.p(o.ln1_w),
            (&a.ln1_mean).into(),
            (&a.ln1_rstd).into(),
            t,
            c,
        );
    }
}
