//! The `Backend` trait: every numeric operation the ST-MEM model (docs/model.md) needs, over
//! opaque device buffers addressed by element offsets, so a CPU and a CUDA backend can share it.
//!
//! Conventions shared by every op:
//! - Matrices are row-major f32. Shapes are given in the doc comments, e.g. `(T, C)`.
//! - A [`View`] / [`ViewMut`] is a buffer plus an element offset: a parameter tensor is addressed
//!   inside the one contiguous parameter buffer, its gradient inside the gradient buffer.
//! - Forward ops OVERWRITE their outputs.
//! - Backward ops ACCUMULATE (`+=`) into every parameter gradient (gradient accumulation over
//!   micro-batches) and into the activation gradients a residual stream or a scatter sums
//!   ([`Backend::layernorm_backward`], [`Backend::add_lead_pos_backward`],
//!   [`Backend::mask_scatter_backward`], [`Backend::mean_pool_backward`]); the caller zeroes
//!   those when a new accumulation starts. The activation gradient that starts a branch is
//!   OVERWRITTEN, so no pass zeroes it first: the input gradient of
//!   [`Backend::matmul_backward`], [`Backend::gelu_backward`] and
//!   [`Backend::attention_backward`], and the losses' gradients
//!   ([`Backend::masked_mse_backward`], [`Backend::cross_entropy_backward`],
//!   [`Backend::bce_backward`]).
//! - Scalars (losses, the sum of squares behind the gradient norm) are written into a device
//!   buffer, never returned: a training step queues work without waiting for the device, and the
//!   host reads a scalar (`download`) only when it logs it.
//! - Every result is bitwise deterministic: identical run to run and whatever the thread count.
//! - Out-of-range views are programming errors and panic.

use crate::precision::Precision;

/// Read-only window into a buffer, starting at element `off`.
pub struct View<'a, T> {
    pub buf: &'a T,
    pub off: usize,
}

impl<'a, T> View<'a, T> {
    pub fn new(buf: &'a T, off: usize) -> Self {
        Self { buf, off }
    }
}

impl<T> Clone for View<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for View<'_, T> {}

impl<'a, T> From<&'a T> for View<'a, T> {
    fn from(buf: &'a T) -> Self {
        Self { buf, off: 0 }
    }
}

/// Writable window into a buffer, starting at element `off`.
pub struct ViewMut<'a, T> {
    pub buf: &'a mut T,
    pub off: usize,
}

impl<'a, T> ViewMut<'a, T> {
    pub fn new(buf: &'a mut T, off: usize) -> Self {
        Self { buf, off }
    }
}

impl<'a, T> From<&'a mut T> for ViewMut<'a, T> {
    fn from(buf: &'a mut T) -> Self {
        Self { buf, off: 0 }
    }
}

/// The outputs of a LayerNorm forward: out (T, C), mean (T), rstd (T).
pub type NormOut<'a, T> = (ViewMut<'a, T>, ViewMut<'a, T>, ViewMut<'a, T>);

/// The inputs of a residual add a + b: a, b, and the bias (C) of the linear layer that wrote b
/// when its `matmul_forward` left it out.
pub type ResidualIn<'a, T> = (View<'a, T>, View<'a, T>, Option<View<'a, T>>);

/// Marks a decoder row that takes the mask token in [`Backend::mask_scatter_forward`].
pub const MASKED_ROW: u32 = u32::MAX;

/// AdamW hyper-parameters of one update (torch.optim.AdamW semantics, docs/model.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Step number, counting from 1 (bias correction uses `beta^step`).
    pub step: u32,
}

/// Dimensions of a packed multi-head attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    /// Number of sequences (samples) B; `cu_seqlens` holds B + 1 offsets.
    pub seqs: usize,
    /// Total packed tokens T = `cu_seqlens[B]`.
    pub tokens: usize,
    /// Model width C (q, k and v are each C wide).
    pub width: usize,
    /// Number of heads H; head dim = C / H.
    pub heads: usize,
}

/// The compute backend. `Buf` is an f32 device buffer, `IdxBuf` a u32 device buffer.
pub trait Backend: Send + Sync {
    type Buf: Send;
    type IdxBuf: Send;

    /// The precision of this backend's matrix products (crate::precision): which operands of
    /// `matmul_*` and `attention_*` are rounded to bf16, and the GELU's input
    /// (`matmul_gelu_forward`'s `pre`). Every other op is f32 in both.
    fn precision(&self) -> Precision {
        Precision::Fp32
    }

    // ---- memory -------------------------------------------------------------------------

    /// Device memory in use in bytes, for the metrics (None: host memory, not reported).
    fn memory_in_use(&self) -> Option<u64> {
        None
    }

    /// A zero-filled f32 buffer of `n` elements.
    fn alloc(&self, n: usize) -> Self::Buf;
    /// A zero-filled buffer of `n` elements for a tensor whose readers, in bf16, take only its
    /// values rounded to bf16:
    /// - an input of [`Backend::matmul_forward`] and [`Backend::matmul_backward`] (the LayerNorm
    ///   and GELU outputs a block saves, written by [`Backend::layernorm_forward`],
    ///   [`Backend::add_layernorm_forward`], [`Backend::gelu_forward`] or
    ///   [`Backend::matmul_gelu_forward`]), and the encoder's patches (written by
    ///   [`Backend::gather_patches`], read by the patch embedding);
    /// - the `dout` of a [`Backend::matmul_backward`] without a bias gradient (the GELU's input
    ///   gradient, written by [`Backend::gelu_backward`], whose fused bias gradient sums the f32
    ///   values);
    /// - the `qkv` of the attention ops at head sizes where bf16 attention rounds q, k and v
    ///   ([`crate::bf16_attention_head`]; written by [`Backend::matmul_forward`]), and their
    ///   `out`, which bf16 attention rounds there (read by the next linear layer and by
    ///   [`Backend::attention_backward`]);
    /// - the GELU's input (`pre` of [`Backend::matmul_gelu_forward`], which rounds it in bf16;
    ///   read by [`Backend::gelu_forward`] and [`Backend::gelu_backward`]).
    ///
    /// A bf16 backend may store it in bf16: those values are bf16 numbers anyway, so its memory
    /// halves and results stay within bf16 tolerance of f32 storage (bitwise on the host
    /// harness, whose GEMM sums in one order; on a GPU the GEMMs reading bf16 storage may pick
    /// other cuBLAS kernels, unverified: scripts/gpu-check.sh item 3c reports it). `upload`
    /// rounds into it, `download` widens; every other op takes f32 buffers.
    fn alloc_operand(&self, n: usize) -> Self::Buf {
        self.alloc(n)
    }
    /// A buffer of `n` elements for a bf16 copy of a model's parameters that its matrix
    /// products read weights from ([`Backend::round_weights`] fills it once per pass, instead
    /// of each product rounding its weight again): `Some` on a backend that stores operands in
    /// bf16; None (the default) where products read the f32 parameters themselves.
    fn alloc_weight_copy(&self, _n: usize) -> Option<Self::Buf> {
        None
    }
    /// dst (n, of [`Backend::alloc_weight_copy`]) = src (n, f32) as that storage holds it
    /// (rounded to bf16).
    fn round_weights(&self, dst: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize) {
        self.copy(src, dst, n)
    }
    /// Bytes per element of [`Backend::alloc_operand`]'s storage (4, or 2 for bf16).
    fn operand_bytes(&self) -> usize {
        4
    }
    /// A zero-filled u32 buffer of `n` elements.
    fn alloc_idx(&self, n: usize) -> Self::IdxBuf;
    /// Copies host `src` into `dst[off .. off + src.len()]`.
    fn upload(&self, src: &[f32], dst: ViewMut<Self::Buf>);
    /// Copies `src[off .. off + dst.len()]` to host `dst`.
    fn download(&self, src: View<Self::Buf>, dst: &mut [f32]);
    /// [`Backend::upload`] for a batch's input, which a backend may copy while earlier work
    /// still runs: ops queued after this call see `src`; ops queued before it that read `dst`
    /// must all have been queued before a [`Backend::release_input`] of `dst`'s buffer (without
    /// one, the copy waits for everything queued before it). A GPU copies on a second stream, so
    /// the next batch arrives while the current step computes.
    fn upload_input(&self, src: &[f32], dst: ViewMut<Self::Buf>) {
        self.upload(src, dst)
    }
    /// Declares that no op queued after this call reads `buf` until the next
    /// [`Backend::upload_input`] into it: from here on its contents may be overwritten at any
    /// time (the host harness fills it with NaN at once, so a later read shows in the tests).
    fn release_input(&self, _buf: &mut Self::Buf) {}
    /// Index-buffer version of [`Backend::upload`].
    fn upload_idx(&self, src: &[u32], dst: ViewMut<Self::IdxBuf>);
    /// Index-buffer version of [`Backend::download`].
    fn download_idx(&self, src: View<Self::IdxBuf>, dst: &mut [u32]);

    // ---- elementwise helpers (n elements) ---------------------------------------------------

    /// dst = value.
    fn fill(&self, dst: ViewMut<Self::Buf>, n: usize, value: f32);
    /// dst = src (the two views must be in different buffers).
    fn copy(&self, src: View<Self::Buf>, dst: ViewMut<Self::Buf>, n: usize);
    /// out = a + b.
    fn add(&self, out: ViewMut<Self::Buf>, a: View<Self::Buf>, b: View<Self::Buf>, n: usize);
    /// dst += src (gradient and loss accumulation).
    fn add_assign(&self, dst: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize);
    /// dst *= factor.
    fn scale(&self, dst: ViewMut<Self::Buf>, n: usize, factor: f32);
    /// `out[0]` = sum(src^2), accumulated in f64 in a fixed order and rounded once to f32 (the
    /// global gradient norm is its square root). A device scalar: the host reads it only to log.
    fn sum_squares(&self, out: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize);
    /// Global-norm clipping as torch.nn.utils.clip_grad_norm_, on the device: with
    /// norm = sqrt(`sumsq[0]`) and factor = max_norm / (norm + 1e-6), grads (n) *= factor when
    /// factor < 1 (f32 arithmetic). `sumsq` is what `sum_squares` wrote.
    fn clip_grad_norm(
        &self,
        grads: ViewMut<Self::Buf>,
        n: usize,
        sumsq: View<Self::Buf>,
        max_norm: f32,
    );

    // ---- linear layer -------------------------------------------------------------------

    /// out (T, OC) = inp (T, C) @ weight^T + bias; weight (OC, C), bias (OC) optional.
    fn matmul_forward(
        &self,
        out: ViewMut<Self::Buf>,
        inp: View<Self::Buf>,
        weight: View<Self::Buf>,
        bias: Option<View<Self::Buf>>,
        t: usize,
        c: usize,
        oc: usize,
    );
    /// dinp (T, C) = dout @ weight (overwritten); dweight (OC, C) += dout^T @ inp;
    /// dbias (OC) += sum_rows dout. `dinp` is optional (the patch embedding needs no input
    /// gradient). The bias gradient, if
    /// any, lives in the SAME buffer as `dweight` (the one gradient buffer) at element offset
    /// `dbias_off`; the two ranges must not overlap.
    fn matmul_backward(
        &self,
        dinp: Option<ViewMut<Self::Buf>>,
        dweight: ViewMut<Self::Buf>,
        dbias_off: Option<usize>,
        dout: View<Self::Buf>,
        inp: View<Self::Buf>,
        weight: View<Self::Buf>,
        t: usize,
        c: usize,
        oc: usize,
    );

    // ---- layer norm (eps 1e-6, biased variance) -------------------------------------------

    /// out (T, C) = (inp - mean) * rstd * weight + bias per row; saves mean (T) and rstd (T),
    /// rstd = 1 / sqrt(var + 1e-6) with var = mean((inp - mean)^2).
    fn layernorm_forward(
        &self,
        out: ViewMut<Self::Buf>,
        mean: ViewMut<Self::Buf>,
        rstd: ViewMut<Self::Buf>,
        inp: View<Self::Buf>,
        weight: View<Self::Buf>,
        bias: View<Self::Buf>,
        t: usize,
        c: usize,
    );
    /// The residual add and the LayerNorm after it in one pass: res (T, C) = a + (b + b_bias),
    /// then `layernorm_forward` of res. `b_bias` (C, on every row) is the bias of the linear
    /// layer that wrote b, when its `matmul_forward` left it out. Bitwise the unfused ops
    /// (`matmul_forward` with the bias, `add`, `layernorm_forward`), without reading res back.
    /// Its backward needs no op of its own: the residual gradient passes through, and
    /// `layernorm_backward` accumulates into it.
    fn add_layernorm_forward(
        &self,
        res: ViewMut<Self::Buf>,
        outs: NormOut<Self::Buf>,
        ins: ResidualIn<Self::Buf>,
        params: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        c: usize,
    );
    /// out (T, C) = a + (b + bias), bias (C) on every row: the residual add of a linear layer's
    /// output b whose bias its `matmul_forward` left out. Bitwise that `matmul_forward` with the
    /// bias, then `add`, in one pass.
    fn add_bias(
        &self,
        out: ViewMut<Self::Buf>,
        a: View<Self::Buf>,
        b_and_bias: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        c: usize,
    );
    /// With xhat = (inp - mean) * rstd and g = dout * weight:
    /// dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)); dweight += sum_rows dout * xhat;
    /// dbias += sum_rows dout. dbias (C) lives in the same buffer as `dweight`, at element offset
    /// `dbias_off` (ranges must not overlap).
    fn layernorm_backward(
        &self,
        dinp: ViewMut<Self::Buf>,
        dweight: ViewMut<Self::Buf>,
        dbias_off: usize,
        dout: View<Self::Buf>,
        inp: View<Self::Buf>,
        weight: View<Self::Buf>,
        mean: View<Self::Buf>,
        rstd: View<Self::Buf>,
        t: usize,
        c: usize,
    );

    // ---- GELU (exact erf) -----------------------------------------------------------------

    /// out = 0.5 x (1 + erf(x / sqrt 2)).
    fn gelu_forward(&self, out: ViewMut<Self::Buf>, inp: View<Self::Buf>, n: usize);
    /// pre (T, M) = inp (T, C) @ weight (M, C)^T + bias (M), then out = gelu(pre): the MLP's
    /// first layer and its GELU. In bf16 precision `pre` is rounded to bf16 before the GELU
    /// (as bf16 autocast stores a linear layer's output), so it can be kept in operand storage.
    /// Bitwise `matmul_forward`, that rounding, then `gelu_forward`; a backend fuses what it can
    /// (the CPU takes the GELU of each output tile while it is in cache, a kernel backend adds
    /// the bias and rounds in the GELU's pass). `pre` is what `gelu_backward` reads.
    fn matmul_gelu_forward(
        &self,
        pre_and_out: (ViewMut<Self::Buf>, ViewMut<Self::Buf>),
        inp: View<Self::Buf>,
        weight_and_bias: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        c: usize,
        m: usize,
    );
    /// dinp (T, M) = dout * (Phi(x) + x phi(x)) (overwritten), x = inp, Phi / phi the standard
    /// normal cdf / pdf. With `dbias` (M): dbias += the column sums of dinp, the bias gradient of
    /// the linear layer that wrote inp (whose `matmul_backward` then takes no `dbias_off`), in the
    /// same pass; bitwise the sums `matmul_backward` would make.
    fn gelu_backward(
        &self,
        dinp: ViewMut<Self::Buf>,
        dbias: Option<ViewMut<Self::Buf>>,
        inp_and_dout: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        m: usize,
    );

    // ---- packed variable-length attention -------------------------------------------------

    /// qkv (T, 3C) columns [q | k | v], head h in columns h*hd .. (h+1)*hd of each part.
    /// Sequence b owns tokens `cu_seqlens[b]` .. `cu_seqlens[b+1]` (cu_seqlens: B + 1 offsets).
    /// out (T, C) = softmax(q k^T / sqrt(hd)) v per sequence and head, heads concatenated
    /// (rounded to bf16 where bf16 attention runs: crate::precision).
    /// Saves lse (T, H): the log-sum-exp of each scaled score row, for the backward.
    /// Requires C % H == 0, non-decreasing cu_seqlens with `cu_seqlens[0]` = 0 and
    /// `cu_seqlens[B]` = T (empty sequences are allowed).
    fn attention_forward(
        &self,
        out: ViewMut<Self::Buf>,
        lse: ViewMut<Self::Buf>,
        qkv: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        dims: AttnDims,
    );
    /// dqkv (T, 3C) = gradient of the forward (overwritten), from dout (T, C) and the saved out
    /// and lse.
    /// With P = exp(S - lse), S = q k^T / sqrt(hd), Di = rowsum(dout * out):
    /// dv = P^T dout; dS = P * (dout v^T - Di); dq = dS k / sqrt(hd); dk = dS^T q / sqrt(hd).
    fn attention_backward(
        &self,
        dqkv: ViewMut<Self::Buf>,
        dout: View<Self::Buf>,
        qkv: View<Self::Buf>,
        out: View<Self::Buf>,
        lse: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        dims: AttnDims,
    );

    // ---- tokens: patches, embeddings, mask-token scatter ----------------------------------

    /// out (T, P): row t is the patch x[b, l, n*P .. (n+1)*P] of x (B, L, S), where
    /// tokens (T, 3) holds (b, l, n) per row. Builds the patch-embedding input and the loss
    /// targets (with the masked patches' triples). `out` may be operand storage
    /// ([`alloc_operand`](Backend::alloc_operand)), which the patch embedding's GEMM reads.
    fn gather_patches(
        &self,
        out: ViewMut<Self::Buf>,
        x: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        leads: usize,
        samples: usize,
        patch: usize,
    );
    /// h (T, D) += `lead_embed[l]` + `pos[n]` for each row, (b, l, n) from tokens (T, 3);
    /// lead_embed (L, D) is a parameter, pos (N, D) a fixed table.
    fn add_lead_pos_forward(
        &self,
        h: ViewMut<Self::Buf>,
        lead_embed: View<Self::Buf>,
        pos: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        d: usize,
    );
    /// dlead_embed (L, D) += sum of dh (T, D) rows by lead index (scatter-add); every lead of
    /// tokens is below L = `leads`.
    fn add_lead_pos_backward(
        &self,
        dlead_embed: ViewMut<Self::Buf>,
        dh: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        d: usize,
        leads: usize,
    );
    /// out (T_dec, D) row r = `z[src_rows[r]]` (z (T_enc, D)), or mask_token (D) when
    /// `src_rows[r]` == MASKED_ROW.
    fn mask_scatter_forward(
        &self,
        out: ViewMut<Self::Buf>,
        z: View<Self::Buf>,
        mask_token: View<Self::Buf>,
        src_rows: View<Self::IdxBuf>,
        t_dec: usize,
        d: usize,
    );
    /// `dz[src_rows[r]]` += `dout[r]` for visible rows; dmask_token (D) += sum of masked rows.
    /// Visible rows name distinct encoder rows (as the model's scatter does): the CUDA backend
    /// adds them in parallel.
    fn mask_scatter_backward(
        &self,
        dz: ViewMut<Self::Buf>,
        dmask_token: ViewMut<Self::Buf>,
        dout: View<Self::Buf>,
        src_rows: View<Self::IdxBuf>,
        t_dec: usize,
        d: usize,
    );

    // ---- loss -----------------------------------------------------------------------------

    /// Masked reconstruction loss (docs/model.md): target (M, P) holds the raw patches of the M
    /// masked tokens (from `gather_patches`), rows (M) their row in pred (T_dec, P).
    /// With norm_pix, each target is (p - mean) / sqrt(var_unbiased + 1e-6).
    /// `loss[0]` = (1 / M) sum_i (1 / P) sum_k (`pred[rows[i]][k]` - `target_i[k]`)^2 (f64 sums,
    /// rounded once to f32; a device scalar, like every loss below).
    fn masked_mse_forward(
        &self,
        loss: ViewMut<Self::Buf>,
        pred: View<Self::Buf>,
        target: View<Self::Buf>,
        rows: View<Self::IdxBuf>,
        m: usize,
        p: usize,
        norm_pix: bool,
    );
    /// OVERWRITES dpred (T_dec, P) with loss_scale * d loss / d pred (zero on unlisted rows):
    /// 2 loss_scale (pred - target) / (M P) on the listed rows, which must be distinct.
    fn masked_mse_backward(
        &self,
        dpred: ViewMut<Self::Buf>,
        pred: View<Self::Buf>,
        target: View<Self::Buf>,
        rows: View<Self::IdxBuf>,
        t_dec: usize,
        m: usize,
        p: usize,
        norm_pix: bool,
        loss_scale: f32,
    );

    // ---- classification heads (evaluation: probe and fine-tune) ----------------------------

    /// out (B, C) row b = mean of the inp (T, C) rows `cu_seqlens[b]` .. `cu_seqlens[b+1]` (f64
    /// sums); an empty sequence gives a zero row. cu_seqlens holds B + 1 offsets.
    fn mean_pool_forward(
        &self,
        out: ViewMut<Self::Buf>,
        inp: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        seqs: usize,
        c: usize,
    );
    /// dinp (T, C) += `dout[b]` / len_b on every row of sequence b.
    fn mean_pool_backward(
        &self,
        dinp: ViewMut<Self::Buf>,
        dout: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        seqs: usize,
        tokens: usize,
        c: usize,
    );
    /// Softmax cross-entropy of logits (N, K) against class indices labels (N), each < K:
    /// `loss[0]` = (1 / N) sum_i (logsumexp(logits_i) - `logits_i[labels_i]`) (f64 sums).
    fn cross_entropy_forward(
        &self,
        loss: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        labels: View<Self::IdxBuf>,
        n: usize,
        k: usize,
    );
    /// OVERWRITES dlogits (N, K) with loss_scale * (softmax(logits_i) - onehot(labels_i)) / N.
    fn cross_entropy_backward(
        &self,
        dlogits: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        labels: View<Self::IdxBuf>,
        n: usize,
        k: usize,
        loss_scale: f32,
    );
    /// Multi-label binary cross-entropy with logits x (N, K) and targets y (N, K) in [0, 1]:
    /// `loss[0]` = (1 / (N K)) sum (max(x, 0) - x y + log(1 + exp(-|x|))) (f64 sums; torch's
    /// `binary_cross_entropy_with_logits`, mean reduction).
    fn bce_forward(
        &self,
        loss: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        targets: View<Self::Buf>,
        n: usize,
        k: usize,
    );
    /// OVERWRITES dlogits (N, K) with loss_scale * (sigmoid(x) - y) / (N K).
    fn bce_backward(
        &self,
        dlogits: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        targets: View<Self::Buf>,
        n: usize,
        k: usize,
        loss_scale: f32,
    );

    // ---- optimiser ------------------------------------------------------------------------

    /// One AdamW update of n parameters (param, m and v in place, grad read), exactly as
    /// torch.optim.AdamW; weight decay is applied only when `decay` is true.
    fn adamw(
        &self,
        param: ViewMut<Self::Buf>,
        grad: View<Self::Buf>,
        m: ViewMut<Self::Buf>,
        v: ViewMut<Self::Buf>,
        n: usize,
        hp: &AdamW,
        decay: bool,
    );
    /// The optimiser step of a whole buffer in one pass: AdamW over the contiguous `runs`
    /// (`(start, end, decay)` element ranges relative to the views' offsets, in order, covering
    /// `0..n` for n = the last end), with global-norm clipping fused in when `clip` is
    /// `Some((sumsq, max_norm))`. The result is bitwise that of `clip_grad_norm` over the n
    /// gradients followed by `adamw` on every run, but the gradients are left unclipped.
    fn adamw_fused(
        &self,
        param: ViewMut<Self::Buf>,
        grad: View<Self::Buf>,
        m: ViewMut<Self::Buf>,
        v: ViewMut<Self::Buf>,
        runs: &[(usize, usize, bool)],
        hp: &AdamW,
        clip: Option<(View<Self::Buf>, f32)>,
    );
}

/// The element count of contiguous `(start, end, decay)` runs from 0, checked.
pub fn runs_len(runs: &[(usize, usize, bool)]) -> usize {
    let mut next = 0;
    for &(start, end, _) in runs {
        assert!(
            start == next && end >= start,
            "optimizer runs {runs:?} are not contiguous from 0"
        );
        next = end;
    }
    next
}
