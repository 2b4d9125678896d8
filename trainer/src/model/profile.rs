//! `ProfiledBackend`: wraps any `Backend` and accumulates the wall time and call count of every
//! op, to see where a training step spends its time (`ecgfm bench step` can print the table).
//! Timings are exact for synchronous backends such as `CpuBackend`; an asynchronous (GPU)
//! backend would need a synchronisation inside each op for them to mean anything.

// The wrapper mirrors the trait's wide kernel signatures.
#![allow(clippy::too_many_arguments)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ecgfm_kernels::{AdamW, AttnDims, Backend, View, ViewMut};

/// Names of the timed ops, in trait order.
const OPS: [&str; 28] = [
    "alloc",
    "alloc_idx",
    "upload",
    "download",
    "upload_idx",
    "download_idx",
    "fill",
    "copy",
    "add",
    "add_assign",
    "scale",
    "sum_squares",
    "matmul_forward",
    "matmul_backward",
    "layernorm_forward",
    "layernorm_backward",
    "gelu_forward",
    "gelu_backward",
    "attention_forward",
    "attention_backward",
    "gather_patches",
    "add_lead_pos_forward",
    "add_lead_pos_backward",
    "mask_scatter_forward",
    "mask_scatter_backward",
    "masked_mse_forward",
    "masked_mse_backward",
    "adamw",
];

/// A backend that times every op of the wrapped backend `B`.
pub struct ProfiledBackend<B: Backend> {
    inner: B,
    nanos: [AtomicU64; OPS.len()],
    calls: [AtomicU64; OPS.len()],
}

/// Accumulated time of one op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTiming {
    /// The trait method's name.
    pub op: &'static str,
    /// Number of calls.
    pub calls: u64,
    /// Total wall time in milliseconds.
    pub total_ms: f64,
}

impl<B: Backend> ProfiledBackend<B> {
    /// Wraps `inner`, with every counter at zero.
    pub fn new(inner: B) -> Self {
        ProfiledBackend {
            inner,
            nanos: std::array::from_fn(|_| AtomicU64::new(0)),
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Sets every counter back to zero (e.g. after warm-up steps).
    pub fn reset(&self) {
        for counter in self.nanos.iter().chain(&self.calls) {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The ops called so far, slowest first.
    pub fn timings(&self) -> Vec<OpTiming> {
        let mut rows: Vec<OpTiming> = OPS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.calls[*i].load(Ordering::Relaxed) > 0)
            .map(|(i, op)| OpTiming {
                op,
                calls: self.calls[i].load(Ordering::Relaxed),
                total_ms: self.nanos[i].load(Ordering::Relaxed) as f64 / 1e6,
            })
            .collect();
        rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        rows
    }

    /// The timings as a table: op, calls, total ms and share of the total.
    pub fn render(&self) -> String {
        let rows = self.timings();
        let total: f64 = rows.iter().map(|r| r.total_ms).sum();
        let mut out = format!(
            "{:<22} {:>8} {:>12} {:>7}\n",
            "op", "calls", "total ms", "share"
        );
        for r in &rows {
            let share = if total > 0.0 {
                100.0 * r.total_ms / total
            } else {
                0.0
            };
            out.push_str(&format!(
                "{:<22} {:>8} {:>12.2} {:>6.1}%\n",
                r.op, r.calls, r.total_ms, share
            ));
        }
        out.push_str(&format!("{:<22} {:>8} {:>12.2}\n", "total", "", total));
        out
    }

    fn record(&self, op: usize, start: Instant) {
        let nanos = start.elapsed().as_nanos() as u64;
        self.nanos[op].fetch_add(nanos, Ordering::Relaxed);
        self.calls[op].fetch_add(1, Ordering::Relaxed);
    }
}

// Each op records under its index in OPS.
impl<B: Backend> Backend for ProfiledBackend<B> {
    type Buf = B::Buf;
    type IdxBuf = B::IdxBuf;

    fn alloc(&self, n: usize) -> Self::Buf {
        let start = Instant::now();
        let result = self.inner.alloc(n);
        self.record(0, start);
        result
    }

    fn alloc_idx(&self, n: usize) -> Self::IdxBuf {
        let start = Instant::now();
        let result = self.inner.alloc_idx(n);
        self.record(1, start);
        result
    }

    fn upload(&self, src: &[f32], dst: ViewMut<Self::Buf>) {
        let start = Instant::now();
        self.inner.upload(src, dst);
        self.record(2, start);
    }

    fn download(&self, src: View<Self::Buf>, dst: &mut [f32]) {
        let start = Instant::now();
        self.inner.download(src, dst);
        self.record(3, start);
    }

    fn upload_idx(&self, src: &[u32], dst: ViewMut<Self::IdxBuf>) {
        let start = Instant::now();
        self.inner.upload_idx(src, dst);
        self.record(4, start);
    }

    fn download_idx(&self, src: View<Self::IdxBuf>, dst: &mut [u32]) {
        let start = Instant::now();
        self.inner.download_idx(src, dst);
        self.record(5, start);
    }

    fn fill(&self, dst: ViewMut<Self::Buf>, n: usize, value: f32) {
        let start = Instant::now();
        self.inner.fill(dst, n, value);
        self.record(6, start);
    }

    fn copy(&self, src: View<Self::Buf>, dst: ViewMut<Self::Buf>, n: usize) {
        let start = Instant::now();
        self.inner.copy(src, dst, n);
        self.record(7, start);
    }

    fn add(&self, out: ViewMut<Self::Buf>, a: View<Self::Buf>, b: View<Self::Buf>, n: usize) {
        let start = Instant::now();
        self.inner.add(out, a, b, n);
        self.record(8, start);
    }

    fn add_assign(&self, dst: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize) {
        let start = Instant::now();
        self.inner.add_assign(dst, src, n);
        self.record(9, start);
    }

    fn scale(&self, dst: ViewMut<Self::Buf>, n: usize, factor: f32) {
        let start = Instant::now();
        self.inner.scale(dst, n, factor);
        self.record(10, start);
    }

    fn sum_squares(&self, src: View<Self::Buf>, n: usize) -> f64 {
        let start = Instant::now();
        let result = self.inner.sum_squares(src, n);
        self.record(11, start);
        result
    }

    fn matmul_forward(
        &self,
        out: ViewMut<Self::Buf>,
        inp: View<Self::Buf>,
        weight: View<Self::Buf>,
        bias: Option<View<Self::Buf>>,
        t: usize,
        c: usize,
        oc: usize,
    ) {
        let start = Instant::now();
        self.inner.matmul_forward(out, inp, weight, bias, t, c, oc);
        self.record(12, start);
    }

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
    ) {
        let start = Instant::now();
        self.inner
            .matmul_backward(dinp, dweight, dbias_off, dout, inp, weight, t, c, oc);
        self.record(13, start);
    }

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
    ) {
        let start = Instant::now();
        self.inner
            .layernorm_forward(out, mean, rstd, inp, weight, bias, t, c);
        self.record(14, start);
    }

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
    ) {
        let start = Instant::now();
        self.inner.layernorm_backward(
            dinp, dweight, dbias_off, dout, inp, weight, mean, rstd, t, c,
        );
        self.record(15, start);
    }

    fn gelu_forward(&self, out: ViewMut<Self::Buf>, inp: View<Self::Buf>, n: usize) {
        let start = Instant::now();
        self.inner.gelu_forward(out, inp, n);
        self.record(16, start);
    }

    fn gelu_backward(
        &self,
        dinp: ViewMut<Self::Buf>,
        inp: View<Self::Buf>,
        dout: View<Self::Buf>,
        n: usize,
    ) {
        let start = Instant::now();
        self.inner.gelu_backward(dinp, inp, dout, n);
        self.record(17, start);
    }

    fn attention_forward(
        &self,
        out: ViewMut<Self::Buf>,
        lse: ViewMut<Self::Buf>,
        qkv: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        dims: AttnDims,
    ) {
        let start = Instant::now();
        self.inner
            .attention_forward(out, lse, qkv, cu_seqlens, dims);
        self.record(18, start);
    }

    fn attention_backward(
        &self,
        dqkv: ViewMut<Self::Buf>,
        dout: View<Self::Buf>,
        qkv: View<Self::Buf>,
        out: View<Self::Buf>,
        lse: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        dims: AttnDims,
    ) {
        let start = Instant::now();
        self.inner
            .attention_backward(dqkv, dout, qkv, out, lse, cu_seqlens, dims);
        self.record(19, start);
    }

    fn gather_patches(
        &self,
        out: ViewMut<Self::Buf>,
        x: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        leads: usize,
        samples: usize,
        patch: usize,
    ) {
        let start = Instant::now();
        self.inner
            .gather_patches(out, x, tokens, t, leads, samples, patch);
        self.record(20, start);
    }

    fn add_lead_pos_forward(
        &self,
        h: ViewMut<Self::Buf>,
        lead_embed: View<Self::Buf>,
        pos: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        d: usize,
    ) {
        let start = Instant::now();
        self.inner
            .add_lead_pos_forward(h, lead_embed, pos, tokens, t, d);
        self.record(21, start);
    }

    fn add_lead_pos_backward(
        &self,
        dlead_embed: ViewMut<Self::Buf>,
        dh: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        d: usize,
    ) {
        let start = Instant::now();
        self.inner
            .add_lead_pos_backward(dlead_embed, dh, tokens, t, d);
        self.record(22, start);
    }

    fn mask_scatter_forward(
        &self,
        out: ViewMut<Self::Buf>,
        z: View<Self::Buf>,
        mask_token: View<Self::Buf>,
        src_rows: View<Self::IdxBuf>,
        t_dec: usize,
        d: usize,
    ) {
        let start = Instant::now();
        self.inner
            .mask_scatter_forward(out, z, mask_token, src_rows, t_dec, d);
        self.record(23, start);
    }

    fn mask_scatter_backward(
        &self,
        dz: ViewMut<Self::Buf>,
        dmask_token: ViewMut<Self::Buf>,
        dout: View<Self::Buf>,
        src_rows: View<Self::IdxBuf>,
        t_dec: usize,
        d: usize,
    ) {
        let start = Instant::now();
        self.inner
            .mask_scatter_backward(dz, dmask_token, dout, src_rows, t_dec, d);
        self.record(24, start);
    }

    fn masked_mse_forward(
        &self,
        pred: View<Self::Buf>,
        target: View<Self::Buf>,
        rows: View<Self::IdxBuf>,
        m: usize,
        p: usize,
        norm_pix: bool,
    ) -> f64 {
        let start = Instant::now();
        let result = self
            .inner
            .masked_mse_forward(pred, target, rows, m, p, norm_pix);
        self.record(25, start);
        result
    }

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
    ) {
        let start = Instant::now();
        self.inner
            .masked_mse_backward(dpred, pred, target, rows, t_dec, m, p, norm_pix, loss_scale);
        self.record(26, start);
    }

    fn adamw(
        &self,
        param: ViewMut<Self::Buf>,
        grad: View<Self::Buf>,
        m: ViewMut<Self::Buf>,
        v: ViewMut<Self::Buf>,
        n: usize,
        hp: &AdamW,
        decay: bool,
    ) {
        let start = Instant::now();
        self.inner.adamw(param, grad, m, v, n, hp, decay);
        self.record(27, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostBatch, Mae, ModelConfig};
    use crate::MaskSampler;
    use ecgfm_kernels::CpuBackend;

    #[test]
    fn counts_each_op_of_a_training_step_under_its_name() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let mut hb = HostBatch::new(&cfg, 2);
        hb.lead_mask.fill(1);
        for (i, v) in hb.x.iter_mut().enumerate() {
            *v = (i as f32 * 0.05).sin();
        }
        MaskSampler::new(&cfg).fill(0, 0, 0, &mut hb);
        let mut mae = Mae::new(ProfiledBackend::new(CpuBackend::new()), cfg.clone(), 2).unwrap();
        mae.init_params(0);
        mae.backend().reset();
        mae.forward_backward(&hb, 1.0).unwrap();
        let calls = |op: &str| {
            mae.backend()
                .timings()
                .iter()
                .find(|t| t.op == op)
                .map_or(0, |t| t.calls)
        };
        let blocks = (cfg.depth + cfg.dec_depth) as u64;
        // Patch embedding, dec_embed and dec_pred, plus qkv, proj, fc1 and fc2 per block.
        assert_eq!(calls("matmul_forward"), 3 + 4 * blocks);
        assert_eq!(calls("matmul_backward"), 3 + 4 * blocks);
        assert_eq!(calls("attention_forward"), blocks);
        assert_eq!(calls("attention_backward"), blocks);
        assert_eq!(calls("layernorm_backward"), 2 * blocks + 2);
        assert_eq!(calls("masked_mse_forward"), 1);
        assert_eq!(calls("alloc"), 0);
        assert!(mae.backend().render().contains("attention_backward"));
    }
}
