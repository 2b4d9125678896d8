//! `KernelBackend<D>`: the [`Backend`] trait over any [`Device`] that runs the kernels of
//! kernels/cuda. This file only turns views into bounds-checked device addresses and calls the
//! launch code of each concern (one file each, beside its `.cu`).

use super::adamw::RunTable;
use super::device::Device;
use super::launch::{Operand, Workspace};
use super::{adamw, attention, elementwise, gelu, heads, layernorm, loss, matmul, tokens};
use crate::backend::{runs_len, AdamW, AttnDims, Backend, NormOut, ResidualIn, View, ViewMut};
use crate::precision::Precision;

/// The kernel backend: `CudaBackend` on a GPU, the host harness's backend in tests.
pub struct KernelBackend<D: Device> {
    pub(crate) dev: D,
    pub(crate) workspace: Workspace<D::Buf>,
    pub(crate) runs: RunTable<D::IdxBuf>,
    pub(crate) precision: Precision,
    /// Whether `alloc_operand` stores bf16 (a bf16 backend, unless `with_f32_operands`).
    bf16_operands: bool,
    /// Whether linear layers on bf16 storage add the bias in the GEMM's epilogue
    /// (`Device::gemm_epilogue`), unless `without_gemm_epilogues`.
    gemm_epilogues: bool,
}

impl<D: Device> KernelBackend<D> {
    /// An fp32 backend running on `dev`.
    pub fn with_device(dev: D) -> Self {
        Self {
            dev,
            workspace: Workspace::new(),
            runs: RunTable::new(),
            precision: Precision::Fp32,
            bf16_operands: false,
            gemm_epilogues: true,
        }
    }

    /// This backend with matrix products in `precision` (bf16: tensor-core GEMMs and attention,
    /// crate::precision; the operands a model saves are stored in bf16, `Backend::alloc_operand`).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self.bf16_operands = precision == Precision::Bf16;
        self
    }

    /// This backend with its matrix-product operands stored in f32 even in bf16 (each GEMM then
    /// first rounds them into bf16 workspace): the same results within bf16 tolerance (bitwise on the
    /// host harness; on a GPU unverified, gpu-check item 3c) with more memory, to measure what
    /// bf16 storage saves.
    pub fn with_f32_operands(mut self) -> Self {
        self.bf16_operands = false;
        self
    }

    /// This backend with every linear layer's bias added in a pass of its own after the GEMM,
    /// never in the GEMM's epilogue: the same results within bf16 tolerance (bitwise on the host
    /// harness; on a GPU cuBLASLt and cuBLAS may sum in other orders, unverified: gpu-check item
    /// 3c), to measure what the epilogue saves.
    pub fn without_gemm_epilogues(mut self) -> Self {
        self.gemm_epilogues = false;
        self
    }

    /// Whether linear layers on bf16 storage may add their bias in the GEMM's epilogue.
    pub fn gemm_epilogues(&self) -> bool {
        self.gemm_epilogues
    }

    /// The device (its stream, memory and name for the CUDA device).
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Address of n readable f32 elements of a view.
    fn r(&self, v: View<D::Buf>, n: usize) -> u64 {
        self.expect_f32(v.buf);
        self.dev.addr(v.buf, v.off, n)
    }

    /// Address of n writable f32 elements of a view.
    fn w(&self, v: ViewMut<D::Buf>, n: usize) -> u64 {
        self.expect_f32(v.buf);
        self.dev.addr_mut(v.buf, v.off, n)
    }

    fn expect_f32(&self, buf: &D::Buf) {
        assert!(
            !self.dev.is_bf16(buf),
            "bf16 operand storage (Backend::alloc_operand) passed to an op that takes f32"
        );
    }

    /// n readable elements of a matrix-product operand, f32 or bf16.
    fn r_operand(&self, v: View<D::Buf>, n: usize) -> Operand {
        let bf16 = self.dev.is_bf16(v.buf);
        Operand::new(self.dev.addr(v.buf, v.off, n), bf16)
    }

    /// n writable elements of a matrix-product operand, f32 or bf16.
    fn w_operand(&self, v: ViewMut<D::Buf>, n: usize) -> Operand {
        let bf16 = self.dev.is_bf16(v.buf);
        Operand::new(self.dev.addr_mut(v.buf, v.off, n), bf16)
    }

    /// Address of n elements of an index view.
    fn ri(&self, v: View<D::IdxBuf>, n: usize) -> u64 {
        self.dev.idx_addr(v.buf, v.off, n)
    }

    /// Addresses of two disjoint ranges (offset, len) of one writable buffer.
    fn two(&self, buf: &mut D::Buf, a: (usize, usize), b: (usize, usize)) -> (u64, u64) {
        assert!(
            a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0,
            "gradient ranges {a:?} and {b:?} (offset, len) overlap"
        );
        (
            self.dev.addr_mut(buf, a.0, a.1),
            self.dev.addr_mut(buf, b.0, b.1),
        )
    }
}

impl<D: Device> Backend for KernelBackend<D> {
    type Buf = D::Buf;
    type IdxBuf = D::IdxBuf;

    fn precision(&self) -> Precision {
        self.precision
    }

    fn memory_in_use(&self) -> Option<u64> {
        self.dev.memory_in_use()
    }

    fn alloc(&self, n: usize) -> D::Buf {
        self.dev.alloc(n)
    }

    fn alloc_operand(&self, n: usize) -> D::Buf {
        match self.bf16_operands {
            true => self.dev.alloc_bf16(n),
            false => self.dev.alloc(n),
        }
    }

    fn alloc_weight_copy(&self, n: usize) -> Option<D::Buf> {
        self.bf16_operands.then(|| self.dev.alloc_bf16(n))
    }

    fn round_weights(&self, dst: ViewMut<D::Buf>, src: View<D::Buf>, n: usize) {
        let (dst, src) = (self.w_operand(dst, n), self.r(src, n));
        matmul::round_into(self, dst, src, n);
    }

    fn operand_bytes(&self) -> usize {
        if self.bf16_operands {
            2
        } else {
            4
        }
    }

    fn alloc_idx(&self, n: usize) -> D::IdxBuf {
        self.dev.alloc_idx(n)
    }

    fn upload(&self, src: &[f32], dst: ViewMut<D::Buf>) {
        self.dev.upload(src, dst.buf, dst.off);
    }

    fn upload_input(&self, src: &[f32], dst: ViewMut<D::Buf>) {
        self.expect_f32(dst.buf);
        self.dev.upload_input(src, dst.buf, dst.off);
    }

    fn release_input(&self, buf: &mut D::Buf) {
        self.dev.release_input(buf);
    }

    fn download(&self, src: View<D::Buf>, dst: &mut [f32]) {
        self.dev.download(src.buf, src.off, dst);
    }

    fn upload_idx(&self, src: &[u32], dst: ViewMut<D::IdxBuf>) {
        self.dev.upload_idx(src, dst.buf, dst.off);
    }

    fn download_idx(&self, src: View<D::IdxBuf>, dst: &mut [u32]) {
        self.dev.download_idx(src.buf, src.off, dst);
    }

    fn fill(&self, dst: ViewMut<D::Buf>, n: usize, value: f32) {
        elementwise::fill(self, self.w(dst, n), n, value);
    }

    fn copy(&self, src: View<D::Buf>, dst: ViewMut<D::Buf>, n: usize) {
        elementwise::copy(self, self.w(dst, n), self.r(src, n), n);
    }

    fn add(&self, out: ViewMut<D::Buf>, a: View<D::Buf>, b: View<D::Buf>, n: usize) {
        elementwise::add(self, self.w(out, n), self.r(a, n), self.r(b, n), n);
    }

    fn add_assign(&self, dst: ViewMut<D::Buf>, src: View<D::Buf>, n: usize) {
        elementwise::add_assign(self, self.w(dst, n), self.r(src, n), n);
    }

    fn scale(&self, dst: ViewMut<D::Buf>, n: usize, factor: f32) {
        elementwise::scale(self, self.w(dst, n), n, factor);
    }

    fn sum_squares(&self, out: ViewMut<D::Buf>, src: View<D::Buf>, n: usize) {
        elementwise::sum_squares(self, self.w(out, 1), self.r(src, n), n);
    }

    fn clip_grad_norm(&self, grads: ViewMut<D::Buf>, n: usize, sumsq: View<D::Buf>, max_norm: f32) {
        elementwise::clip_grad_norm(self, self.w(grads, n), n, self.r(sumsq, 1), max_norm);
    }

    fn matmul_forward(
        &self,
        out: ViewMut<D::Buf>,
        inp: View<D::Buf>,
        weight: View<D::Buf>,
        bias: Option<View<D::Buf>>,
        t: usize,
        c: usize,
        oc: usize,
    ) {
        let bias = bias.map(|b| self.r(b, oc));
        let (inp, weight) = (self.r_operand(inp, t * c), self.r_operand(weight, oc * c));
        matmul::forward(
            self,
            self.w_operand(out, t * oc),
            inp,
            weight,
            bias,
            (t, c, oc),
        );
    }

    fn matmul_backward(
        &self,
        dinp: Option<ViewMut<D::Buf>>,
        dweight: ViewMut<D::Buf>,
        dbias_off: Option<usize>,
        dout: View<D::Buf>,
        inp: View<D::Buf>,
        weight: View<D::Buf>,
        t: usize,
        c: usize,
        oc: usize,
    ) {
        let (dw, db) = match dbias_off {
            Some(off) => {
                let (w, b) = self.two(dweight.buf, (dweight.off, oc * c), (off, oc));
                (w, Some(b))
            }
            None => (self.w(dweight, oc * c), None),
        };
        let dinp = dinp.map(|d| self.w(d, t * c));
        let dout = self.r_operand(dout, t * oc);
        assert!(
            !(dout.bf16 && db.is_some()),
            "a bias gradient sums f32 dout: its dout cannot be bf16 operand storage"
        );
        let ins = (
            dout,
            self.r_operand(inp, t * c),
            self.r_operand(weight, oc * c),
        );
        matmul::backward(self, dinp, dw, db, ins, (t, c, oc));
    }

    fn layernorm_forward(
        &self,
        out: ViewMut<D::Buf>,
        mean: ViewMut<D::Buf>,
        rstd: ViewMut<D::Buf>,
        inp: View<D::Buf>,
        weight: View<D::Buf>,
        bias: View<D::Buf>,
        t: usize,
        c: usize,
    ) {
        let outs = (self.w_operand(out, t * c), self.w(mean, t), self.w(rstd, t));
        let ins = (self.r(inp, t * c), self.r(weight, c), self.r(bias, c));
        layernorm::forward(self, outs, ins, t, c);
    }

    fn add_layernorm_forward(
        &self,
        res: ViewMut<D::Buf>,
        (out, mean, rstd): NormOut<D::Buf>,
        (a, b, b_bias): ResidualIn<D::Buf>,
        (weight, bias): (View<D::Buf>, View<D::Buf>),
        t: usize,
        c: usize,
    ) {
        let n = t * c;
        let outs = (self.w_operand(out, n), self.w(mean, t), self.w(rstd, t));
        let b_bias = b_bias.map_or(0, |v| self.r(v, c));
        let ins = (self.r(a, n), self.r(b, n), b_bias);
        let params = (self.r(weight, c), self.r(bias, c));
        layernorm::add_forward(self, self.w(res, n), outs, ins, params, (t, c));
    }

    fn add_bias(
        &self,
        out: ViewMut<D::Buf>,
        a: View<D::Buf>,
        (b, bias): (View<D::Buf>, View<D::Buf>),
        t: usize,
        c: usize,
    ) {
        let n = t * c;
        let ins = (self.r(a, n), self.r(b, n), self.r(bias, c));
        elementwise::add_bias(self, self.w(out, n), ins, (t, c));
    }

    fn layernorm_backward(
        &self,
        dinp: ViewMut<D::Buf>,
        dweight: ViewMut<D::Buf>,
        dbias_off: usize,
        dout: View<D::Buf>,
        inp: View<D::Buf>,
        weight: View<D::Buf>,
        mean: View<D::Buf>,
        rstd: View<D::Buf>,
        t: usize,
        c: usize,
    ) {
        let (dw, db) = self.two(dweight.buf, (dweight.off, c), (dbias_off, c));
        let ins = (
            self.r(dout, t * c),
            self.r(inp, t * c),
            self.r(weight, c),
            self.r(mean, t),
            self.r(rstd, t),
        );
        layernorm::backward(self, (self.w(dinp, t * c), dw, db), ins, t, c);
    }

    fn gelu_forward(&self, out: ViewMut<D::Buf>, inp: View<D::Buf>, n: usize) {
        gelu::forward(self, self.w_operand(out, n), self.r_operand(inp, n), n);
    }

    fn matmul_gelu_forward(
        &self,
        (pre, out): (ViewMut<D::Buf>, ViewMut<D::Buf>),
        inp: View<D::Buf>,
        (weight, bias): (View<D::Buf>, View<D::Buf>),
        t: usize,
        c: usize,
        m: usize,
    ) {
        let (inp, weight) = (self.r_operand(inp, t * c), self.r_operand(weight, m * c));
        let (pre, out) = (self.w_operand(pre, t * m), self.w_operand(out, t * m));
        let (bias, round_pre) = (self.r(bias, m), self.precision == Precision::Bf16);
        // pre in bf16 storage is rounded as it is written: the GEMM's epilogue may write it.
        if pre.bf16 && matmul::fused(self, pre, inp, weight, Some(bias), (t, c, m)) {
            return gelu::forward(self, out, pre, t * m);
        }
        matmul::product_then(
            self,
            (pre.addr, pre.bf16),
            inp,
            weight,
            (t, c, m),
            |product| gelu::bias_forward(self, (product, pre, round_pre), (out, bias), (t, m)),
        );
    }

    fn gelu_backward(
        &self,
        dinp: ViewMut<D::Buf>,
        dbias: Option<ViewMut<D::Buf>>,
        (inp, dout): (View<D::Buf>, View<D::Buf>),
        t: usize,
        m: usize,
    ) {
        let n = t * m;
        let (dinp, ins) = (
            self.w_operand(dinp, n),
            (self.r_operand(inp, n), self.r(dout, n)),
        );
        match dbias {
            Some(dbias) => gelu::backward_bias(self, (dinp, self.w(dbias, m)), ins, (t, m)),
            None => gelu::backward(self, dinp, ins, n),
        }
    }

    fn attention_forward(
        &self,
        out: ViewMut<D::Buf>,
        lse: ViewMut<D::Buf>,
        qkv: View<D::Buf>,
        cu_seqlens: View<D::IdxBuf>,
        dims: AttnDims,
    ) {
        let t = dims.tokens;
        let outs = (
            self.w_operand(out, t * dims.width),
            self.w(lse, t * dims.heads),
        );
        let qkv = self.r_operand(qkv, t * 3 * dims.width);
        attention::forward(self, outs, qkv, self.ri(cu_seqlens, dims.seqs + 1), dims);
    }

    fn attention_backward(
        &self,
        dqkv: ViewMut<D::Buf>,
        dout: View<D::Buf>,
        qkv: View<D::Buf>,
        out: View<D::Buf>,
        lse: View<D::Buf>,
        cu_seqlens: View<D::IdxBuf>,
        dims: AttnDims,
    ) {
        let (t, c) = (dims.tokens, dims.width);
        let ins = (
            self.r(dout, t * c),
            self.r_operand(qkv, t * 3 * c),
            self.r_operand(out, t * c),
            self.r(lse, t * dims.heads),
        );
        let cu = self.ri(cu_seqlens, dims.seqs + 1);
        attention::backward(self, self.w(dqkv, t * 3 * c), ins, cu, dims);
    }

    fn gather_patches(
        &self,
        out: ViewMut<D::Buf>,
        x: View<D::Buf>,
        tokens: View<D::IdxBuf>,
        t: usize,
        leads: usize,
        samples: usize,
        patch: usize,
    ) {
        let bufs = (
            self.w_operand(out, t * patch),
            self.r(x, 0),
            self.ri(tokens, 3 * t),
        );
        tokens::gather_patches(self, bufs, (t, leads, samples, patch));
    }

    fn add_lead_pos_forward(
        &self,
        h: ViewMut<D::Buf>,
        lead_embed: View<D::Buf>,
        pos: View<D::Buf>,
        tokens: View<D::IdxBuf>,
        t: usize,
        d: usize,
    ) {
        let bufs = (
            self.w(h, t * d),
            self.r(lead_embed, 0),
            self.r(pos, 0),
            self.ri(tokens, 3 * t),
        );
        tokens::add_lead_pos_forward(self, bufs, t, d);
    }

    fn add_lead_pos_backward(
        &self,
        dlead_embed: ViewMut<D::Buf>,
        dh: View<D::Buf>,
        tokens: View<D::IdxBuf>,
        t: usize,
        d: usize,
        leads: usize,
    ) {
        let bufs = (
            self.w(dlead_embed, leads * d),
            self.r(dh, t * d),
            self.ri(tokens, 3 * t),
        );
        tokens::add_lead_pos_backward(self, bufs, (t, d, leads));
    }

    fn mask_scatter_forward(
        &self,
        out: ViewMut<D::Buf>,
        z: View<D::Buf>,
        mask_token: View<D::Buf>,
        src_rows: View<D::IdxBuf>,
        t_dec: usize,
        d: usize,
    ) {
        let bufs = (
            self.w(out, t_dec * d),
            self.r(z, 0),
            self.r(mask_token, d),
            self.ri(src_rows, t_dec),
        );
        tokens::mask_scatter_forward(self, bufs, t_dec, d);
    }

    fn mask_scatter_backward(
        &self,
        dz: ViewMut<D::Buf>,
        dmask_token: ViewMut<D::Buf>,
        dout: View<D::Buf>,
        src_rows: View<D::IdxBuf>,
        t_dec: usize,
        d: usize,
    ) {
        let bufs = (
            self.w(dz, 0),
            self.w(dmask_token, d),
            self.r(dout, t_dec * d),
            self.ri(src_rows, t_dec),
        );
        tokens::mask_scatter_backward(self, bufs, t_dec, d);
    }

    fn masked_mse_forward(
        &self,
        loss: ViewMut<D::Buf>,
        pred: View<D::Buf>,
        target: View<D::Buf>,
        rows: View<D::IdxBuf>,
        m: usize,
        p: usize,
        norm_pix: bool,
    ) {
        let bufs = (
            self.w(loss, 1),
            self.r(pred, 0),
            self.r(target, m * p),
            self.ri(rows, m),
        );
        loss::forward(self, bufs, m, p, norm_pix);
    }

    fn masked_mse_backward(
        &self,
        dpred: ViewMut<D::Buf>,
        pred: View<D::Buf>,
        target: View<D::Buf>,
        rows: View<D::IdxBuf>,
        t_dec: usize,
        m: usize,
        p: usize,
        norm_pix: bool,
        loss_scale: f32,
    ) {
        let bufs = (
            self.w(dpred, t_dec * p),
            self.r(pred, t_dec * p),
            self.r(target, m * p),
            self.ri(rows, m),
        );
        loss::backward(self, bufs, (t_dec, m, p), norm_pix, loss_scale);
    }

    fn mean_pool_forward(
        &self,
        out: ViewMut<D::Buf>,
        inp: View<D::Buf>,
        cu_seqlens: View<D::IdxBuf>,
        seqs: usize,
        c: usize,
    ) {
        let bufs = (
            self.w(out, seqs * c),
            self.r(inp, 0),
            self.ri(cu_seqlens, seqs + 1),
        );
        heads::mean_pool_forward(self, bufs, seqs, c);
    }

    fn mean_pool_backward(
        &self,
        dinp: ViewMut<D::Buf>,
        dout: View<D::Buf>,
        cu_seqlens: View<D::IdxBuf>,
        seqs: usize,
        tokens: usize,
        c: usize,
    ) {
        let bufs = (
            self.w(dinp, tokens * c),
            self.r(dout, seqs * c),
            self.ri(cu_seqlens, seqs + 1),
        );
        heads::mean_pool_backward(self, bufs, (seqs, tokens, c));
    }

    fn cross_entropy_forward(
        &self,
        loss: ViewMut<D::Buf>,
        logits: View<D::Buf>,
        labels: View<D::IdxBuf>,
        n: usize,
        k: usize,
    ) {
        let bufs = (self.w(loss, 1), self.r(logits, n * k), self.ri(labels, n));
        heads::cross_entropy_forward(self, bufs, n, k);
    }

    fn cross_entropy_backward(
        &self,
        dlogits: ViewMut<D::Buf>,
        logits: View<D::Buf>,
        labels: View<D::IdxBuf>,
        n: usize,
        k: usize,
        loss_scale: f32,
    ) {
        let bufs = (
            self.w(dlogits, n * k),
            self.r(logits, n * k),
            self.ri(labels, n),
        );
        heads::cross_entropy_backward(self, bufs, (n, k), loss_scale);
    }

    fn bce_forward(
        &self,
        loss: ViewMut<D::Buf>,
        logits: View<D::Buf>,
        targets: View<D::Buf>,
        n: usize,
        k: usize,
    ) {
        let bufs = (
            self.w(loss, 1),
            self.r(logits, n * k),
            self.r(targets, n * k),
        );
        heads::bce_forward(self, bufs, n, k);
    }

    fn bce_backward(
        &self,
        dlogits: ViewMut<D::Buf>,
        logits: View<D::Buf>,
        targets: View<D::Buf>,
        n: usize,
        k: usize,
        loss_scale: f32,
    ) {
        let bufs = (
            self.w(dlogits, n * k),
            self.r(logits, n * k),
            self.r(targets, n * k),
        );
        heads::bce_backward(self, bufs, (n, k), loss_scale);
    }

    fn adamw(
        &self,
        param: ViewMut<D::Buf>,
        grad: View<D::Buf>,
        m: ViewMut<D::Buf>,
        v: ViewMut<D::Buf>,
        n: usize,
        hp: &AdamW,
        decay: bool,
    ) {
        let bufs = (
            self.w(param, n),
            self.r(grad, n),
            self.w(m, n),
            self.w(v, n),
        );
        adamw::step(self, bufs, n, hp, decay);
    }

    fn adamw_fused(
        &self,
        param: ViewMut<D::Buf>,
        grad: View<D::Buf>,
        m: ViewMut<D::Buf>,
        v: ViewMut<D::Buf>,
        runs: &[(usize, usize, bool)],
        hp: &AdamW,
        clip: Option<(View<D::Buf>, f32)>,
    ) {
        let n = runs_len(runs);
        let bufs = (
            self.w(param, n),
            self.r(grad, n),
            self.w(m, n),
            self.w(v, n),
        );
        let clip = clip.map(|(sumsq, max_norm)| (self.r(sumsq, 1), max_norm));
        adamw::fused(self, bufs, runs, hp, clip);
    }
}
