//! `ProfiledBackend`: wraps any `Backend` and accumulates the wall time and call count of every
//! op, to see where a training step spends its time (`ecgfm bench step` can print the table).
//! Timings are exact for synchronous backends such as `CpuBackend`; wrap an asynchronous (GPU)
//! backend with `ProfiledBackend::with_sync`, which waits for the device around every op.

// The wrapper mirrors the trait's wide kernel signatures.
#![allow(clippy::too_many_arguments)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ecgfm_kernels::{AdamW, AttnDims, Backend, NormOut, Precision, ResidualIn, View, ViewMut};

/// Names of the timed ops, in trait order.
const OPS: [&str; 44] = [
    "alloc",
    "alloc_operand",
    "alloc_weight_copy",
    "round_weights",
    "alloc_idx",
    "upload",
    "download",
    "upload_input",
    "release_input",
    "upload_idx",
    "download_idx",
    "fill",
    "copy",
    "add",
    "add_assign",
    "scale",
    "sum_squares",
    "clip_grad_norm",
    "matmul_forward",
    "matmul_backward",
    "layernorm_forward",
    "add_layernorm_forward",
    "add_bias",
    "layernorm_backward",
    "gelu_forward",
    "matmul_gelu_forward",
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
    "mean_pool_forward",
    "mean_pool_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "bce_forward",
    "bce_backward",
    "adamw",
    "adamw_fused",
];

/// The index of op `name` in `OPS`, evaluated at compile time (a name not there does not compile).
const fn op(name: &str) -> usize {
    let mut i = 0;
    while i < OPS.len() {
        let (a, b) = (OPS[i].as_bytes(), name.as_bytes());
        let mut same = a.len() == b.len();
        let mut k = 0;
        while same && k < a.len() {
            same = a[k] == b[k];
            k += 1;
        }
        if same {
            return i;
        }
        i += 1;
    }
    panic!("not a timed op")
}

/// Waits until the device has finished the work queued on it.
pub type DeviceSync<B> = Box<dyn Fn(&B) + Send + Sync>;

/// A backend that times every op of the wrapped backend `B`.
pub struct ProfiledBackend<B: Backend> {
    inner: B,
    /// A device that queues work (a GPU) is waited for around every op, so each op's time is
    /// its own execution, not its launch.
    sync: Option<DeviceSync<B>>,
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
            sync: None,
            nanos: std::array::from_fn(|_| AtomicU64::new(0)),
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Wraps `inner`, a device that queues its work: `sync` waits for it before and after every
    /// op (the profile then shows each op's execution; the step itself runs slower).
    pub fn with_sync(inner: B, sync: DeviceSync<B>) -> Self {
        ProfiledBackend {
            sync: Some(sync),
            ..ProfiledBackend::new(inner)
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

    /// Runs `f`, adding its wall time and one call to op `op` (an index into `OPS`).
    fn timed<T>(&self, op: usize, f: impl FnOnce() -> T) -> T {
        if let Some(sync) = &self.sync {
            sync(&self.inner);
        }
        let start = Instant::now();
        let result = f();
        if let Some(sync) = &self.sync {
            sync(&self.inner);
        }
        let nanos = start.elapsed().as_nanos() as u64;
        self.nanos[op].fetch_add(nanos, Ordering::Relaxed);
        self.calls[op].fetch_add(1, Ordering::Relaxed);
        result
    }
}

// Each op records under its own name in OPS.
impl<B: Backend> Backend for ProfiledBackend<B> {
    type Buf = B::Buf;
    type IdxBuf = B::IdxBuf;

    fn precision(&self) -> Precision {
        self.inner.precision()
    }

    fn alloc(&self, n: usize) -> Self::Buf {
        self.timed(const { op("alloc") }, || self.inner.alloc(n))
    }

    fn alloc_operand(&self, n: usize) -> Self::Buf {
        self.timed(const { op("alloc_operand") }, || {
            self.inner.alloc_operand(n)
        })
    }

    fn alloc_weight_copy(&self, n: usize) -> Option<Self::Buf> {
        self.timed(const { op("alloc_weight_copy") }, || {
            self.inner.alloc_weight_copy(n)
        })
    }

    fn round_weights(&self, dst: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize) {
        self.timed(const { op("round_weights") }, || {
            self.inner.round_weights(dst, src, n)
        });
    }

    fn operand_bytes(&self) -> usize {
        self.inner.operand_bytes()
    }

    fn alloc_idx(&self, n: usize) -> Self::IdxBuf {
        self.timed(const { op("alloc_idx") }, || self.inner.alloc_idx(n))
    }

    fn upload(&self, src: &[f32], dst: ViewMut<Self::Buf>) {
        self.timed(const { op("upload") }, || self.inner.upload(src, dst));
    }

    fn download(&self, src: View<Self::Buf>, dst: &mut [f32]) {
        self.timed(const { op("download") }, || self.inner.download(src, dst));
    }

    fn upload_input(&self, src: &[f32], dst: ViewMut<Self::Buf>) {
        self.timed(const { op("upload_input") }, || {
            self.inner.upload_input(src, dst)
        });
    }

    fn release_input(&self, buf: &mut Self::Buf) {
        self.timed(const { op("release_input") }, || {
            self.inner.release_input(buf)
        });
    }

    fn upload_idx(&self, src: &[u32], dst: ViewMut<Self::IdxBuf>) {
        self.timed(const { op("upload_idx") }, || {
            self.inner.upload_idx(src, dst)
        });
    }

    fn download_idx(&self, src: View<Self::IdxBuf>, dst: &mut [u32]) {
        self.timed(const { op("download_idx") }, || {
            self.inner.download_idx(src, dst)
        });
    }

    fn fill(&self, dst: ViewMut<Self::Buf>, n: usize, value: f32) {
        self.timed(const { op("fill") }, || self.inner.fill(dst, n, value));
    }

    fn copy(&self, src: View<Self::Buf>, dst: ViewMut<Self::Buf>, n: usize) {
        self.timed(const { op("copy") }, || self.inner.copy(src, dst, n));
    }

    fn add(&self, out: ViewMut<Self::Buf>, a: View<Self::Buf>, b: View<Self::Buf>, n: usize) {
        self.timed(const { op("add") }, || self.inner.add(out, a, b, n));
    }

    fn add_assign(&self, dst: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize) {
        self.timed(const { op("add_assign") }, || {
            self.inner.add_assign(dst, src, n)
        });
    }

    fn scale(&self, dst: ViewMut<Self::Buf>, n: usize, factor: f32) {
        self.timed(const { op("scale") }, || self.inner.scale(dst, n, factor));
    }

    fn sum_squares(&self, out: ViewMut<Self::Buf>, src: View<Self::Buf>, n: usize) {
        self.timed(const { op("sum_squares") }, || {
            self.inner.sum_squares(out, src, n)
        });
    }

    fn clip_grad_norm(
        &self,
        grads: ViewMut<Self::Buf>,
        n: usize,
        sumsq: View<Self::Buf>,
        max_norm: f32,
    ) {
        self.timed(const { op("clip_grad_norm") }, || {
            self.inner.clip_grad_norm(grads, n, sumsq, max_norm)
        });
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
        self.timed(const { op("matmul_forward") }, || {
            self.inner.matmul_forward(out, inp, weight, bias, t, c, oc)
        });
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
        self.timed(const { op("matmul_backward") }, || {
            self.inner
                .matmul_backward(dinp, dweight, dbias_off, dout, inp, weight, t, c, oc)
        });
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
        self.timed(const { op("layernorm_forward") }, || {
            self.inner
                .layernorm_forward(out, mean, rstd, inp, weight, bias, t, c)
        });
    }

    fn add_layernorm_forward(
        &self,
        res: ViewMut<Self::Buf>,
        outs: NormOut<Self::Buf>,
        ins: ResidualIn<Self::Buf>,
        params: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        c: usize,
    ) {
        self.timed(const { op("add_layernorm_forward") }, || {
            self.inner
                .add_layernorm_forward(res, outs, ins, params, t, c)
        });
    }

    fn add_bias(
        &self,
        out: ViewMut<Self::Buf>,
        a: View<Self::Buf>,
        b_and_bias: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        c: usize,
    ) {
        self.timed(const { op("add_bias") }, || {
            self.inner.add_bias(out, a, b_and_bias, t, c)
        });
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
        self.timed(const { op("layernorm_backward") }, || {
            self.inner.layernorm_backward(
                dinp, dweight, dbias_off, dout, inp, weight, mean, rstd, t, c,
            )
        });
    }

    fn gelu_forward(&self, out: ViewMut<Self::Buf>, inp: View<Self::Buf>, n: usize) {
        self.timed(const { op("gelu_forward") }, || {
            self.inner.gelu_forward(out, inp, n)
        });
    }

    fn matmul_gelu_forward(
        &self,
        pre_and_out: (ViewMut<Self::Buf>, ViewMut<Self::Buf>),
        inp: View<Self::Buf>,
        weight_and_bias: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        c: usize,
        m: usize,
    ) {
        self.timed(const { op("matmul_gelu_forward") }, || {
            self.inner
                .matmul_gelu_forward(pre_and_out, inp, weight_and_bias, t, c, m)
        });
    }

    fn gelu_backward(
        &self,
        dinp: ViewMut<Self::Buf>,
        dbias: Option<ViewMut<Self::Buf>>,
        ins: (View<Self::Buf>, View<Self::Buf>),
        t: usize,
        m: usize,
    ) {
        self.timed(const { op("gelu_backward") }, || {
            self.inner.gelu_backward(dinp, dbias, ins, t, m)
        });
    }

    fn attention_forward(
        &self,
        out: ViewMut<Self::Buf>,
        lse: ViewMut<Self::Buf>,
        qkv: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        dims: AttnDims,
    ) {
        self.timed(const { op("attention_forward") }, || {
            self.inner
                .attention_forward(out, lse, qkv, cu_seqlens, dims)
        });
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
        self.timed(const { op("attention_backward") }, || {
            self.inner
                .attention_backward(dqkv, dout, qkv, out, lse, cu_seqlens, dims)
        });
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
        self.timed(const { op("gather_patches") }, || {
            self.inner
                .gather_patches(out, x, tokens, t, leads, samples, patch)
        });
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
        self.timed(const { op("add_lead_pos_forward") }, || {
            self.inner
                .add_lead_pos_forward(h, lead_embed, pos, tokens, t, d)
        });
    }

    fn add_lead_pos_backward(
        &self,
        dlead_embed: ViewMut<Self::Buf>,
        dh: View<Self::Buf>,
        tokens: View<Self::IdxBuf>,
        t: usize,
        d: usize,
        leads: usize,
    ) {
        self.timed(const { op("add_lead_pos_backward") }, || {
            self.inner
                .add_lead_pos_backward(dlead_embed, dh, tokens, t, d, leads)
        });
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
        self.timed(const { op("mask_scatter_forward") }, || {
            self.inner
                .mask_scatter_forward(out, z, mask_token, src_rows, t_dec, d)
        });
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
        self.timed(const { op("mask_scatter_backward") }, || {
            self.inner
                .mask_scatter_backward(dz, dmask_token, dout, src_rows, t_dec, d)
        });
    }

    fn masked_mse_forward(
        &self,
        loss: ViewMut<Self::Buf>,
        pred: View<Self::Buf>,
        target: View<Self::Buf>,
        rows: View<Self::IdxBuf>,
        m: usize,
        p: usize,
        norm_pix: bool,
    ) {
        self.timed(const { op("masked_mse_forward") }, || {
            self.inner
                .masked_mse_forward(loss, pred, target, rows, m, p, norm_pix)
        });
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
        self.timed(const { op("masked_mse_backward") }, || {
            self.inner
                .masked_mse_backward(dpred, pred, target, rows, t_dec, m, p, norm_pix, loss_scale)
        });
    }

    fn mean_pool_forward(
        &self,
        out: ViewMut<Self::Buf>,
        inp: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        seqs: usize,
        c: usize,
    ) {
        self.timed(const { op("mean_pool_forward") }, || {
            self.inner.mean_pool_forward(out, inp, cu_seqlens, seqs, c)
        });
    }

    fn mean_pool_backward(
        &self,
        dinp: ViewMut<Self::Buf>,
        dout: View<Self::Buf>,
        cu_seqlens: View<Self::IdxBuf>,
        seqs: usize,
        tokens: usize,
        c: usize,
    ) {
        self.timed(const { op("mean_pool_backward") }, || {
            self.inner
                .mean_pool_backward(dinp, dout, cu_seqlens, seqs, tokens, c)
        });
    }

    fn cross_entropy_forward(
        &self,
        loss: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        labels: View<Self::IdxBuf>,
        n: usize,
        k: usize,
    ) {
        self.timed(const { op("cross_entropy_forward") }, || {
            self.inner.cross_entropy_forward(loss, logits, labels, n, k)
        });
    }

    fn cross_entropy_backward(
        &self,
        dlogits: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        labels: View<Self::IdxBuf>,
        n: usize,
        k: usize,
        loss_scale: f32,
    ) {
        self.timed(const { op("cross_entropy_backward") }, || {
            self.inner
                .cross_entropy_backward(dlogits, logits, labels, n, k, loss_scale)
        });
    }

    fn bce_forward(
        &self,
        loss: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        targets: View<Self::Buf>,
        n: usize,
        k: usize,
    ) {
        self.timed(const { op("bce_forward") }, || {
            self.inner.bce_forward(loss, logits, targets, n, k)
        });
    }

    fn bce_backward(
        &self,
        dlogits: ViewMut<Self::Buf>,
        logits: View<Self::Buf>,
        targets: View<Self::Buf>,
        n: usize,
        k: usize,
        loss_scale: f32,
    ) {
        self.timed(const { op("bce_backward") }, || {
            self.inner
                .bce_backward(dlogits, logits, targets, n, k, loss_scale)
        });
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
        self.timed(const { op("adamw") }, || {
            self.inner.adamw(param, grad, m, v, n, hp, decay)
        });
    }

    fn adamw_fused(
        &self,
        param: ViewMut<Self::Buf>,
        grad: View<Self::Buf>,
        m: ViewMut<Self::Buf>,
        v: ViewMut<Self::Buf>,
        runs: &[(usize, usize, bool)],
        hp: &AdamW,
        clip: Option<(View<Self::Buf>, f32)>,
    ) {
        self.timed(const { op("adamw_fused") }, || {
            self.inner.adamw_fused(param, grad, m, v, runs, hp, clip)
        });
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
        // Patch embedding, dec_embed and dec_pred, plus qkv, proj and fc2 per block; fc1 runs
        // with its GELU in matmul_gelu_forward.
        assert_eq!(calls("matmul_forward"), 3 + 3 * blocks);
        assert_eq!(calls("matmul_gelu_forward"), blocks);
        assert_eq!(calls("add_bias"), blocks);
        assert_eq!(calls("gelu_forward"), 0);
        assert_eq!(calls("matmul_backward"), 3 + 4 * blocks);
        assert_eq!(calls("attention_forward"), blocks);
        assert_eq!(calls("attention_backward"), blocks);
        assert_eq!(calls("layernorm_backward"), 2 * blocks + 2);
        assert_eq!(calls("masked_mse_forward"), 1);
        assert_eq!(calls("alloc"), 0);
        assert!(mae.backend().render().contains("attention_backward"));
    }

    #[test]
    fn a_queueing_device_is_waited_for_before_and_after_every_op() {
        let waits = std::sync::Arc::new(AtomicU64::new(0));
        let counter = waits.clone();
        let be = ProfiledBackend::with_sync(
            CpuBackend::new(),
            Box::new(move |_: &CpuBackend| {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        );
        let mut buf = be.alloc(8);
        be.fill((&mut buf).into(), 8, 1.0);
        be.scale((&mut buf).into(), 8, 2.0);
        assert_eq!(
            waits.load(Ordering::Relaxed),
            6,
            "alloc, fill, scale: two waits each"
        );
        assert_eq!(buf, vec![2.0; 8]);
    }
}
