//! `CpuBackend`: the multi-threaded (rayon) CPU implementation of [`Backend`] over `Vec<f32>`
//! buffers. Each op lives in its own file; this one only maps views to slices and delegates.

pub(crate) mod adamw;
mod attention;
mod elementwise;
mod fastmath;
mod gelu;
mod heads;
mod layernorm;
mod loss;
mod matmul;
mod par;
mod sgemm;
mod tokens;
mod weight_grad;

use crate::backend::{runs_len, AdamW, AttnDims, Backend, NormOut, ResidualIn, View, ViewMut};
use crate::precision::{bf16_attention_head, rounded_bf16, Precision};
use std::borrow::Cow;

/// The CPU backend. It runs on the current rayon thread pool: wrap calls in
/// `ThreadPool::install` to choose the thread count (results do not depend on it).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend {
    precision: Precision,
}

impl CpuBackend {
    /// The fp32 CPU backend (the reference).
    pub fn new() -> Self {
        Self::default()
    }

    /// A CPU backend whose matrix products use `precision` (bf16: emulated by rounding copies
    /// of the operands, see crate::precision; a numerics check, not a speed-up).
    pub fn with_precision(precision: Precision) -> Self {
        Self { precision }
    }

    /// `xs` as a matrix-product operand: itself in fp32, a bf16-rounded copy in bf16.
    fn operand<'a>(&self, xs: &'a [f32]) -> Cow<'a, [f32]> {
        match self.precision {
            Precision::Fp32 => Cow::Borrowed(xs),
            Precision::Bf16 => Cow::Owned(rounded_bf16(xs)),
        }
    }

    /// This backend for an attention call of `dims`: bf16 only at the head sizes the tensor-core
    /// kernels take (`precision::bf16_attention_head`), fp32 elsewhere.
    fn for_attention(&self, dims: AttnDims) -> CpuBackend {
        let bf16 =
            self.precision == Precision::Bf16 && bf16_attention_head(dims.width / dims.heads);
        CpuBackend {
            precision: if bf16 {
                Precision::Bf16
            } else {
                Precision::Fp32
            },
        }
    }
}

/// `n` elements of a view, starting at its offset.
fn s<'a, T>(v: View<'a, Vec<T>>, n: usize) -> &'a [T] {
    &v.buf[v.off..v.off + n]
}

/// `n` writable elements of a view, starting at its offset.
fn sm<'a, T>(v: ViewMut<'a, Vec<T>>, n: usize) -> &'a mut [T] {
    &mut v.buf[v.off..v.off + n]
}

/// Everything from the view's offset to the end of its buffer.
fn rest<T>(v: View<'_, Vec<T>>) -> &[T] {
    &v.buf[v.off..]
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type IdxBuf = Vec<u32>;

    fn precision(&self) -> Precision {
        self.precision
    }

    fn alloc(&self, n: usize) -> Vec<f32> {
        vec![0.0; n]
    }

    fn alloc_idx(&self, n: usize) -> Vec<u32> {
        vec![0; n]
    }

    fn upload(&self, src: &[f32], dst: ViewMut<Vec<f32>>) {
        sm(dst, src.len()).copy_from_slice(src);
    }

    fn download(&self, src: View<Vec<f32>>, dst: &mut [f32]) {
        dst.copy_from_slice(s(src, dst.len()));
    }

    fn upload_idx(&self, src: &[u32], dst: ViewMut<Vec<u32>>) {
        sm(dst, src.len()).copy_from_slice(src);
    }

    fn download_idx(&self, src: View<Vec<u32>>, dst: &mut [u32]) {
        dst.copy_from_slice(s(src, dst.len()));
    }

    fn fill(&self, dst: ViewMut<Vec<f32>>, n: usize, value: f32) {
        elementwise::fill(sm(dst, n), value);
    }

    fn copy(&self, src: View<Vec<f32>>, dst: ViewMut<Vec<f32>>, n: usize) {
        elementwise::copy(sm(dst, n), s(src, n));
    }

    fn add(&self, out: ViewMut<Vec<f32>>, a: View<Vec<f32>>, b: View<Vec<f32>>, n: usize) {
        elementwise::add(sm(out, n), s(a, n), s(b, n));
    }

    fn add_assign(&self, dst: ViewMut<Vec<f32>>, src: View<Vec<f32>>, n: usize) {
        elementwise::add_assign(sm(dst, n), s(src, n));
    }

    fn scale(&self, dst: ViewMut<Vec<f32>>, n: usize, factor: f32) {
        elementwise::scale(sm(dst, n), factor);
    }

    fn sum_squares(&self, out: ViewMut<Vec<f32>>, src: View<Vec<f32>>, n: usize) {
        sm(out, 1)[0] = elementwise::sum_squares(s(src, n)) as f32;
    }

    fn clip_grad_norm(
        &self,
        grads: ViewMut<Vec<f32>>,
        n: usize,
        sumsq: View<Vec<f32>>,
        max_norm: f32,
    ) {
        let factor = adamw::clip_factor(s(sumsq, 1)[0], max_norm);
        if factor < 1.0 {
            elementwise::scale(sm(grads, n), factor);
        }
    }

    fn matmul_forward(
        &self,
        out: ViewMut<Vec<f32>>,
        inp: View<Vec<f32>>,
        weight: View<Vec<f32>>,
        bias: Option<View<Vec<f32>>>,
        t: usize,
        c: usize,
        oc: usize,
    ) {
        matmul::forward(
            (sm(out, t * oc), None),
            &self.operand(s(inp, t * c)),
            (&self.operand(s(weight, oc * c)), bias.map(|b| s(b, oc))),
            t,
            c,
            oc,
        );
    }

    fn matmul_backward(
        &self,
        dinp: Option<ViewMut<Vec<f32>>>,
        dweight: ViewMut<Vec<f32>>,
        dbias_off: Option<usize>,
        dout: View<Vec<f32>>,
        inp: View<Vec<f32>>,
        weight: View<Vec<f32>>,
        t: usize,
        c: usize,
        oc: usize,
    ) {
        let (dweight, dbias) = match dbias_off {
            Some(off) => {
                let (w, b) = two_mut(dweight.buf, (dweight.off, oc * c), (off, oc));
                (w, Some(b))
            }
            None => (sm(dweight, oc * c), None),
        };
        let dout = s(dout, t * oc);
        matmul::backward(
            dinp.map(|d| sm(d, t * c)),
            (dweight, dbias),
            dout,
            (
                &self.operand(dout),
                &self.operand(s(inp, t * c)),
                &self.operand(s(weight, oc * c)),
            ),
            t,
            c,
            oc,
        );
    }

    fn add_layernorm_forward(
        &self,
        res: ViewMut<Vec<f32>>,
        (out, mean, rstd): NormOut<Vec<f32>>,
        (a, b, b_bias): ResidualIn<Vec<f32>>,
        (weight, bias): (View<Vec<f32>>, View<Vec<f32>>),
        t: usize,
        c: usize,
    ) {
        layernorm::add_forward(
            sm(res, t * c),
            (sm(out, t * c), sm(mean, t), sm(rstd, t)),
            (s(a, t * c), s(b, t * c), b_bias.map(|v| s(v, c))),
            (s(weight, c), s(bias, c)),
            t,
            c,
        );
    }

    fn add_bias(
        &self,
        out: ViewMut<Vec<f32>>,
        a: View<Vec<f32>>,
        (b, bias): (View<Vec<f32>>, View<Vec<f32>>),
        t: usize,
        c: usize,
    ) {
        if t * c > 0 {
            let n = t * c;
            elementwise::add_bias(sm(out, n), s(a, n), s(b, n), s(bias, c), c);
        }
    }

    fn layernorm_forward(
        &self,
        out: ViewMut<Vec<f32>>,
        mean: ViewMut<Vec<f32>>,
        rstd: ViewMut<Vec<f32>>,
        inp: View<Vec<f32>>,
        weight: View<Vec<f32>>,
        bias: View<Vec<f32>>,
        t: usize,
        c: usize,
    ) {
        layernorm::forward(
            sm(out, t * c),
            sm(mean, t),
            sm(rstd, t),
            s(inp, t * c),
            s(weight, c),
            s(bias, c),
            t,
            c,
        );
    }

    fn layernorm_backward(
        &self,
        dinp: ViewMut<Vec<f32>>,
        dweight: ViewMut<Vec<f32>>,
        dbias_off: usize,
        dout: View<Vec<f32>>,
        inp: View<Vec<f32>>,
        weight: View<Vec<f32>>,
        mean: View<Vec<f32>>,
        rstd: View<Vec<f32>>,
        t: usize,
        c: usize,
    ) {
        let (dweight, dbias) = two_mut(dweight.buf, (dweight.off, c), (dbias_off, c));
        layernorm::backward(
            sm(dinp, t * c),
            dweight,
            dbias,
            s(dout, t * c),
            s(inp, t * c),
            s(weight, c),
            s(mean, t),
            s(rstd, t),
            t,
            c,
        );
    }

    fn gelu_forward(&self, out: ViewMut<Vec<f32>>, inp: View<Vec<f32>>, n: usize) {
        gelu::forward(sm(out, n), s(inp, n), n);
    }

    fn matmul_gelu_forward(
        &self,
        (pre, out): (ViewMut<Vec<f32>>, ViewMut<Vec<f32>>),
        inp: View<Vec<f32>>,
        (weight, bias): (View<Vec<f32>>, View<Vec<f32>>),
        t: usize,
        c: usize,
        m: usize,
    ) {
        matmul::forward(
            (
                sm(pre, t * m),
                Some((sm(out, t * m), self.precision == Precision::Bf16)),
            ),
            &self.operand(s(inp, t * c)),
            (&self.operand(s(weight, m * c)), Some(s(bias, m))),
            t,
            c,
            m,
        );
    }

    fn gelu_backward(
        &self,
        dinp: ViewMut<Vec<f32>>,
        dbias: Option<ViewMut<Vec<f32>>>,
        (inp, dout): (View<Vec<f32>>, View<Vec<f32>>),
        t: usize,
        m: usize,
    ) {
        let n = t * m;
        let dinp = sm(dinp, n);
        gelu::backward(dinp, s(inp, n), s(dout, n), n);
        if let Some(dbias) = dbias {
            weight_grad::bias_grad(sm(dbias, m), dinp, t, m);
        }
    }

    fn attention_forward(
        &self,
        out: ViewMut<Vec<f32>>,
        lse: ViewMut<Vec<f32>>,
        qkv: View<Vec<f32>>,
        cu_seqlens: View<Vec<u32>>,
        dims: AttnDims,
    ) {
        let t = dims.tokens;
        let be = self.for_attention(dims);
        attention::forward(
            sm(out, t * dims.width),
            sm(lse, t * dims.heads),
            &be.operand(s(qkv, t * 3 * dims.width)),
            s(cu_seqlens, dims.seqs + 1),
            dims,
            be.precision == Precision::Bf16,
        );
    }

    fn attention_backward(
        &self,
        dqkv: ViewMut<Vec<f32>>,
        dout: View<Vec<f32>>,
        qkv: View<Vec<f32>>,
        out: View<Vec<f32>>,
        lse: View<Vec<f32>>,
        cu_seqlens: View<Vec<u32>>,
        dims: AttnDims,
    ) {
        let (t, c) = (dims.tokens, dims.width);
        let dout = s(dout, t * c);
        let be = self.for_attention(dims);
        attention::backward(
            sm(dqkv, t * 3 * c),
            (dout, &be.operand(dout)),
            &be.operand(s(qkv, t * 3 * c)),
            s(out, t * c),
            s(lse, t * dims.heads),
            s(cu_seqlens, dims.seqs + 1),
            dims,
            be.precision == Precision::Bf16,
        );
    }

    fn gather_patches(
        &self,
        out: ViewMut<Vec<f32>>,
        x: View<Vec<f32>>,
        tokens: View<Vec<u32>>,
        t: usize,
        leads: usize,
        samples: usize,
        patch: usize,
    ) {
        let (out, tokens) = (sm(out, t * patch), s(tokens, 3 * t));
        tokens::gather_patches(out, rest(x), tokens, t, leads, samples, patch);
    }

    fn add_lead_pos_forward(
        &self,
        h: ViewMut<Vec<f32>>,
        lead_embed: View<Vec<f32>>,
        pos: View<Vec<f32>>,
        tokens: View<Vec<u32>>,
        t: usize,
        d: usize,
    ) {
        let (h, tokens) = (sm(h, t * d), s(tokens, 3 * t));
        tokens::add_lead_pos_forward(h, rest(lead_embed), rest(pos), tokens, t, d);
    }

    fn add_lead_pos_backward(
        &self,
        dlead_embed: ViewMut<Vec<f32>>,
        dh: View<Vec<f32>>,
        tokens: View<Vec<u32>>,
        t: usize,
        d: usize,
        leads: usize,
    ) {
        tokens::add_lead_pos_backward(
            sm(dlead_embed, leads * d),
            s(dh, t * d),
            s(tokens, 3 * t),
            t,
            d,
        );
    }

    fn mask_scatter_forward(
        &self,
        out: ViewMut<Vec<f32>>,
        z: View<Vec<f32>>,
        mask_token: View<Vec<f32>>,
        src_rows: View<Vec<u32>>,
        t_dec: usize,
        d: usize,
    ) {
        let (out, src_rows) = (sm(out, t_dec * d), s(src_rows, t_dec));
        tokens::mask_scatter_forward(out, rest(z), s(mask_token, d), src_rows, t_dec, d);
    }

    fn mask_scatter_backward(
        &self,
        dz: ViewMut<Vec<f32>>,
        dmask_token: ViewMut<Vec<f32>>,
        dout: View<Vec<f32>>,
        src_rows: View<Vec<u32>>,
        t_dec: usize,
        d: usize,
    ) {
        let src_rows = s(src_rows, t_dec);
        let t_enc = visible_rows_bound(src_rows);
        tokens::mask_scatter_backward(
            sm(dz, t_enc * d),
            sm(dmask_token, d),
            s(dout, t_dec * d),
            src_rows,
            t_dec,
            d,
        );
    }

    fn masked_mse_forward(
        &self,
        loss: ViewMut<Vec<f32>>,
        pred: View<Vec<f32>>,
        target: View<Vec<f32>>,
        rows: View<Vec<u32>>,
        m: usize,
        p: usize,
        norm_pix: bool,
    ) {
        sm(loss, 1)[0] =
            loss::forward(rest(pred), s(target, m * p), s(rows, m), m, p, norm_pix) as f32;
    }

    fn masked_mse_backward(
        &self,
        dpred: ViewMut<Vec<f32>>,
        pred: View<Vec<f32>>,
        target: View<Vec<f32>>,
        rows: View<Vec<u32>>,
        t_dec: usize,
        m: usize,
        p: usize,
        norm_pix: bool,
        loss_scale: f32,
    ) {
        loss::backward(
            sm(dpred, t_dec * p),
            s(pred, t_dec * p),
            s(target, m * p),
            s(rows, m),
            t_dec,
            m,
            p,
            norm_pix,
            loss_scale,
        );
    }

    fn mean_pool_forward(
        &self,
        out: ViewMut<Vec<f32>>,
        inp: View<Vec<f32>>,
        cu_seqlens: View<Vec<u32>>,
        seqs: usize,
        c: usize,
    ) {
        let cu = s(cu_seqlens, seqs + 1);
        let t = cu[seqs] as usize;
        heads::mean_pool_forward(sm(out, seqs * c), s(inp, t * c), cu, seqs, c);
    }

    fn mean_pool_backward(
        &self,
        dinp: ViewMut<Vec<f32>>,
        dout: View<Vec<f32>>,
        cu_seqlens: View<Vec<u32>>,
        seqs: usize,
        tokens: usize,
        c: usize,
    ) {
        let cu = s(cu_seqlens, seqs + 1);
        assert_eq!(
            cu[seqs] as usize, tokens,
            "cu_seqlens must end at the token count"
        );
        heads::mean_pool_backward(sm(dinp, tokens * c), s(dout, seqs * c), cu, seqs, c);
    }

    fn cross_entropy_forward(
        &self,
        loss: ViewMut<Vec<f32>>,
        logits: View<Vec<f32>>,
        labels: View<Vec<u32>>,
        n: usize,
        k: usize,
    ) {
        sm(loss, 1)[0] = heads::cross_entropy_forward(s(logits, n * k), s(labels, n), n, k) as f32;
    }

    fn cross_entropy_backward(
        &self,
        dlogits: ViewMut<Vec<f32>>,
        logits: View<Vec<f32>>,
        labels: View<Vec<u32>>,
        n: usize,
        k: usize,
        loss_scale: f32,
    ) {
        heads::cross_entropy_backward(
            sm(dlogits, n * k),
            s(logits, n * k),
            s(labels, n),
            n,
            k,
            loss_scale,
        );
    }

    fn bce_forward(
        &self,
        loss: ViewMut<Vec<f32>>,
        logits: View<Vec<f32>>,
        targets: View<Vec<f32>>,
        n: usize,
        k: usize,
    ) {
        sm(loss, 1)[0] = heads::bce_forward(s(logits, n * k), s(targets, n * k), n, k) as f32;
    }

    fn bce_backward(
        &self,
        dlogits: ViewMut<Vec<f32>>,
        logits: View<Vec<f32>>,
        targets: View<Vec<f32>>,
        n: usize,
        k: usize,
        loss_scale: f32,
    ) {
        heads::bce_backward(
            sm(dlogits, n * k),
            s(logits, n * k),
            s(targets, n * k),
            n,
            k,
            loss_scale,
        );
    }

    fn adamw(
        &self,
        param: ViewMut<Vec<f32>>,
        grad: View<Vec<f32>>,
        m: ViewMut<Vec<f32>>,
        v: ViewMut<Vec<f32>>,
        n: usize,
        hp: &AdamW,
        decay: bool,
    ) {
        adamw::step(sm(param, n), s(grad, n), sm(m, n), sm(v, n), hp, decay, 1.0);
    }

    fn adamw_fused(
        &self,
        param: ViewMut<Vec<f32>>,
        grad: View<Vec<f32>>,
        m: ViewMut<Vec<f32>>,
        v: ViewMut<Vec<f32>>,
        runs: &[(usize, usize, bool)],
        hp: &AdamW,
        clip: Option<(View<Vec<f32>>, f32)>,
    ) {
        let n = runs_len(runs);
        let clip = clip.map_or(1.0, |(sumsq, max_norm)| {
            adamw::clip_factor(s(sumsq, 1)[0], max_norm)
        });
        let (param, grad, m, v) = (sm(param, n), s(grad, n), sm(m, n), sm(v, n));
        for &(start, end, decay) in runs {
            let r = start..end;
            let (p, g) = (&mut param[r.clone()], &grad[r.clone()]);
            adamw::step(p, g, &mut m[r.clone()], &mut v[r], hp, decay, clip);
        }
    }
}

/// Two disjoint writable ranges (offset, len) of one buffer; panics if they overlap.
fn two_mut<T>(buf: &mut [T], a: (usize, usize), b: (usize, usize)) -> (&mut [T], &mut [T]) {
    assert!(
        a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0,
        "gradient ranges {a:?} and {b:?} (offset, len) overlap"
    );
    if a.0 + a.1 <= b.0 {
        let (lo, hi) = buf.split_at_mut(b.0);
        (&mut lo[a.0..a.0 + a.1], &mut hi[..b.1])
    } else {
        let (lo, hi) = buf.split_at_mut(a.0);
        (&mut hi[..a.1], &mut lo[b.0..b.0 + b.1])
    }
}

/// One more than the largest encoder row referenced by visible decoder rows.
fn visible_rows_bound(src_rows: &[u32]) -> usize {
    src_rows
        .iter()
        .filter(|&&r| r != crate::backend::MASKED_ROW)
        .map(|&r| r as usize + 1)
        .max()
        .unwrap_or(0)
}
