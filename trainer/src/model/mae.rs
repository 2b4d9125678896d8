//! `Mae`: the ST-MEM-style ViT masked autoencoder of docs/model.md over a `Backend`. It owns the
//! parameter, gradient and AdamW-moment buffers (one contiguous buffer each, `ParamLayout` order)
//! and every activation buffer, all allocated in `new` for a maximum batch size: a training step
//! allocates no backend buffer (host-side scratch, such as the mask's index lists, aside).

use std::ops::Range;

use ecgfm_kernels::{AdamW, Backend, View, ViewMut};

use super::batch::HostBatch;
use super::block::{offset_of, BlockDims, Params};
use super::config::ModelConfig;
use super::error::ModelError;
use super::init::init_params;
use super::layout::ParamLayout;
use super::pos::sincos_table;
use super::recompute::Recompute;
use super::stack::{Keep, Stack};
use super::tokens::TokenPlan;
use crate::optim::{AdamWConfig, OptimizerState};

mod pass;

/// Called during the backward pass as `ready(backend, grads, first)` each time the gradients from
/// element `first` to the end of the buffer are final for this pass (they finish in reverse
/// layout order): data-parallel training starts reducing a bucket as soon as it is complete.
pub type GradsReady<'a, B> = dyn FnMut(&B, &<B as Backend>::Buf, usize) + 'a;

/// Offsets of the tensors outside the transformer blocks.
struct EmbedOffsets {
    patch_w: usize,
    patch_b: usize,
    lead: usize,
    dec_embed_w: usize,
    dec_embed_b: usize,
    mask_token: usize,
    dec_lead: usize,
    pred_w: usize,
    pred_b: usize,
}

impl EmbedOffsets {
    fn resolve(layout: &ParamLayout) -> Result<Self, ModelError> {
        let o = |name: &str| offset_of(layout, name);
        Ok(EmbedOffsets {
            patch_w: o("patch_embed.weight")?,
            patch_b: o("patch_embed.bias")?,
            lead: o("lead_embed")?,
            dec_embed_w: o("dec_embed.weight")?,
            dec_embed_b: o("dec_embed.bias")?,
            mask_token: o("mask_token")?,
            dec_lead: o("dec_lead_embed")?,
            pred_w: o("dec_pred.weight")?,
            pred_b: o("dec_pred.bias")?,
        })
    }
}

/// Slots of the `stats` buffer. They stay on the device, so a training step never waits for it;
/// the host reads them (`loss_sum`, `last_grad_norm`) only when it logs.
const LOSS_SUM: usize = 0; // sum of the losses since `zero_grads`
const GRAD_SUMSQ: usize = 1; // sum of squared gradients at the last `optimizer_step`, before clipping
const PROBE_SUMSQ: usize = 2; // scratch for `grad_norm`
const STATS: usize = 3;

/// The parts of the `(start, end, decay)` runs inside `range`, relative to its start.
fn runs_within(runs: &[(usize, usize, bool)], range: &Range<usize>) -> Vec<(usize, usize, bool)> {
    runs.iter()
        .map(|&(start, end, decay)| (start.max(range.start), end.min(range.end), decay))
        .filter(|(start, end, _)| start < end)
        .map(|(start, end, decay)| (start - range.start, end - range.start, decay))
        .collect()
}

/// Device copies of a `TokenPlan`.
struct DeviceTokens<B: Backend> {
    enc_tokens: B::IdxBuf,
    dec_tokens: B::IdxBuf,
    dec_src: B::IdxBuf,
    masked_tokens: B::IdxBuf,
    masked_rows: B::IdxBuf,
    cu_enc: B::IdxBuf,
    cu_dec: B::IdxBuf,
}

/// The masked autoencoder with its optimiser state.
pub struct Mae<B: Backend> {
    be: B,
    cfg: ModelConfig,
    layout: ParamLayout,
    off: EmbedOffsets,
    max_batch: usize,
    params: Params<B>,
    grads: B::Buf,
    /// The part of the buffer this optimiser updates and keeps moments for (everything, or one
    /// rank's ZeRO-1 shard); `adam_m` / `adam_v` hold its elements only.
    opt_range: Range<usize>,
    /// The layout's `decay_runs` clipped to `opt_range`, relative to its start (the fused AdamW's
    /// runs).
    opt_runs: Vec<(usize, usize, bool)>,
    adam_m: B::Buf,
    adam_v: B::Buf,
    adam_step: u64,
    plan: TokenPlan,
    /// The device inputs (`idx`, `x`) hold a batch `stage` uploaded and no pass has used yet.
    staged: bool,
    idx: DeviceTokens<B>,
    x: B::Buf,       // (B, L, S)
    pos_enc: B::Buf, // (N, D)
    pos_dec: B::Buf, // (N, Dd)
    patches: B::Buf, // (T_enc, P), operand storage
    enc: Stack<B>,   // (T_enc, D)
    z: B::Buf,       // (T_enc, Dd)
    dec: Stack<B>,   // (T_dec, Dd)
    pred: B::Buf,    // (T_dec, P)
    target: B::Buf,  // (M, P)
    loss: B::Buf,    // (1): the loss of the last forward pass, on the device
    stats: B::Buf,   // (STATS): device-resident sums the host reads only to log
    dpred: B::Buf,   // (T_dec, P)
    dz: B::Buf,      // (T_enc, Dd)
}

/// What a model keeps in memory from the start: the activations `recompute` keeps (see
/// [`Mae::set_recompute`]) and AdamW state for `optimizer_shard` only (one rank's ZeRO-1 shard,
/// see [`Mae::optimizer_shard`]; None: every parameter). Set them when the model is built, not
/// after, so it never holds what it would free at once: a model that fits the device only
/// with recomputation or a ZeRO shard fits while it is built too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaeMemory {
    pub recompute: Recompute,
    pub optimizer_shard: Option<Range<usize>>,
}

/// An optimizer shard must be a range of the `total` parameters.
fn check_shard(range: &Range<usize>, total: usize) -> Result<(), ModelError> {
    match range.start <= range.end && range.end <= total {
        true => Ok(()),
        false => Err(ModelError::InvalidConfig(format!(
            "optimizer shard {range:?} is outside the {total} parameters"
        ))),
    }
}

impl<B: Backend> Mae<B> {
    /// Allocates every buffer for batches of up to `max_batch` samples, keeping every
    /// activation (no recomputation) and AdamW state for every parameter. Parameters start at
    /// zero: call `init_params` or `load_params`.
    pub fn new(backend: B, cfg: ModelConfig, max_batch: usize) -> Result<Self, ModelError> {
        Self::with_memory(backend, cfg, max_batch, MaeMemory::default())
    }

    /// As [`Mae::new`], keeping only what `memory` says.
    pub fn with_memory(
        backend: B,
        cfg: ModelConfig,
        max_batch: usize,
        memory: MaeMemory,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        if max_batch == 0 {
            return Err(ModelError::InvalidConfig(
                "max_batch must be positive".into(),
            ));
        }
        let be = backend;
        let layout = ParamLayout::new(&cfg);
        let opt_range = memory.optimizer_shard.unwrap_or(0..layout.total);
        check_shard(&opt_range, layout.total)?;
        let (l, n, k, p) = (
            cfg.leads,
            cfg.patches_per_lead(),
            cfg.visible_per_lead(),
            cfg.patch,
        );
        let t_enc = max_batch * l * k;
        let t_dec = max_batch * l * n;
        let masked = max_batch * l * (n - k);
        let enc_dims = BlockDims {
            width: cfg.dim,
            heads: cfg.heads,
            mlp: cfg.mlp_dim(),
        };
        let dec_dims = BlockDims {
            width: cfg.dec_dim,
            heads: cfg.dec_heads,
            mlp: cfg.dec_mlp_dim(),
        };
        let (depth, dec_depth) = (cfg.depth, cfg.dec_depth);
        let keep = Keep::Backward(memory.recompute);
        let enc = Stack::new(&be, &layout, "enc", depth, enc_dims, t_enc, keep)?;
        let dec = Stack::new(&be, &layout, "dec", dec_depth, dec_dims, t_dec, keep)?;
        let mut pos_enc = be.alloc(n * cfg.dim);
        be.upload(&sincos_table(n, cfg.dim), (&mut pos_enc).into());
        let mut pos_dec = be.alloc(n * cfg.dec_dim);
        be.upload(&sincos_table(n, cfg.dec_dim), (&mut pos_dec).into());
        let idx = DeviceTokens {
            enc_tokens: be.alloc_idx(3 * t_enc),
            dec_tokens: be.alloc_idx(3 * t_dec),
            dec_src: be.alloc_idx(t_dec),
            masked_tokens: be.alloc_idx(3 * masked),
            masked_rows: be.alloc_idx(masked),
            cu_enc: be.alloc_idx(max_batch + 1),
            cu_dec: be.alloc_idx(max_batch + 1),
        };
        Ok(Mae {
            off: EmbedOffsets::resolve(&layout)?,
            params: Params::new(&be, layout.total),
            grads: be.alloc(layout.total),
            opt_runs: runs_within(&layout.decay_runs(), &opt_range),
            adam_m: be.alloc(opt_range.len()),
            adam_v: be.alloc(opt_range.len()),
            opt_range,
            adam_step: 0,
            plan: TokenPlan::with_capacity(&cfg, max_batch),
            staged: false,
            idx,
            x: be.alloc(max_batch * l * cfg.samples),
            pos_enc,
            pos_dec,
            patches: be.alloc_operand(t_enc * p),
            enc,
            z: be.alloc(t_enc * cfg.dec_dim),
            dec,
            pred: be.alloc(t_dec * p),
            target: be.alloc(masked * p),
            loss: be.alloc(1),
            stats: be.alloc(STATS),
            dpred: be.alloc(t_dec * p),
            dz: be.alloc(t_enc * cfg.dec_dim),
            max_batch,
            layout,
            cfg,
            be,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Where each parameter tensor lives in the parameter, gradient and moment buffers.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The largest batch `forward_loss` / `forward_backward` accept.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The backend the model runs on.
    pub fn backend(&self) -> &B {
        &self.be
    }

    /// Activation recomputation (`train.recompute`, model/recompute.rs): which activations the
    /// stacks rerun in the backward pass instead of keeping them. Same gradients, bit for bit;
    /// less memory (`activation_bytes`), more work.
    pub fn set_recompute(&mut self, mode: Recompute) {
        self.enc.set_recompute(&self.be, mode);
        self.dec.set_recompute(&self.be, mode);
    }

    /// Bytes of activations a step at `max_batch` keeps from its forward pass to its backward
    /// pass: the stacks' (see `set_recompute`) and the patches, latents, predictions and targets,
    /// with the input batch `x` (held from its upload to the gathers that read it).
    pub fn activation_bytes(&self) -> u64 {
        let cfg = &self.cfg;
        let (b, l, p) = (self.max_batch, cfg.leads, cfg.patch);
        let t_enc = b * l * cfg.visible_per_lead();
        let t_dec = b * l * cfg.patches_per_lead();
        let masked = t_dec - t_enc;
        let floats = b * l * cfg.samples + t_enc * cfg.dec_dim + (t_dec + masked) * p;
        let patches = self.be.operand_bytes() * t_enc * p;
        self.enc.activation_bytes() + self.dec.activation_bytes() + (4 * floats + patches) as u64
    }

    /// Initialises the parameters as docs/model.md says (deterministic in `seed`) and resets the
    /// optimiser state (moments zero, step 0).
    pub fn init_params(&mut self, seed: u64) {
        let host = init_params(&self.layout, seed);
        self.be.upload(&host, self.params.get_mut().into());
        let n = self.opt_range.len();
        self.be.fill((&mut self.adam_m).into(), n, 0.0);
        self.be.fill((&mut self.adam_v).into(), n, 0.0);
        self.adam_step = 0;
    }

    /// A host copy of the parameter buffer (layout order).
    pub fn params_to_host(&self) -> Vec<f32> {
        self.download(self.params.get())
    }

    /// Replaces the parameters with `host` (layout order, `layout().total` values).
    pub fn load_params(&mut self, host: &[f32]) -> Result<(), ModelError> {
        self.check_len("params", host.len())?;
        self.be.upload(host, self.params.get_mut().into());
        Ok(())
    }

    /// A host copy of the gradient buffer (layout order).
    pub fn grads_to_host(&self) -> Vec<f32> {
        self.download(&self.grads)
    }

    /// Starts a gradient accumulation: every gradient and the loss sum to zero.
    pub fn zero_grads(&mut self) {
        self.be
            .fill((&mut self.grads).into(), self.layout.total, 0.0);
        self.be
            .fill(ViewMut::new(&mut self.stats, LOSS_SUM), 1, 0.0);
    }

    /// The loss of `batch` at the current parameters, without gradients (reads it back).
    pub fn forward_loss(&mut self, batch: &HostBatch) -> Result<f32, ModelError> {
        self.prepare(batch)?;
        self.forward();
        let mut host = [0.0f32];
        self.be.download((&self.loss).into(), &mut host);
        Ok(host[0])
    }

    /// Forward and backward pass: ADDS `loss_scale * d loss / d params` into the gradient buffer
    /// and the (unscaled) loss into the loss sum (`loss_sum`). Nothing is read back.
    pub fn forward_backward(
        &mut self,
        batch: &HostBatch,
        loss_scale: f32,
    ) -> Result<(), ModelError> {
        self.stage(batch)?;
        self.forward_backward_staged(loss_scale, &mut |_, _, _| {})
    }

    /// Validates `batch` and uploads it for the next `forward_backward_staged`. The copies queue
    /// behind the work already queued (they never wait for it on a GPU), so a trainer stages the
    /// next batch while the device still runs this one, and only then reads the step's loss.
    pub fn stage(&mut self, batch: &HostBatch) -> Result<(), ModelError> {
        self.prepare(batch)?;
        self.staged = true;
        Ok(())
    }

    /// A staged batch is waiting (`stage`); any other pass (`forward_loss`) drops it.
    pub fn is_staged(&self) -> bool {
        self.staged
    }

    /// `forward_backward` of the batch `stage` uploaded, calling `ready` as the gradients
    /// become final (see [`GradsReady`]).
    pub fn forward_backward_staged(
        &mut self,
        loss_scale: f32,
        ready: &mut GradsReady<'_, B>,
    ) -> Result<(), ModelError> {
        if !std::mem::take(&mut self.staged) {
            return Err(ModelError::InvalidBatch(
                "no batch is staged: call `stage` first".into(),
            ));
        }
        self.forward();
        self.be.add_assign(
            ViewMut::new(&mut self.stats, LOSS_SUM),
            (&self.loss).into(),
            1,
        );
        self.backward(loss_scale, ready);
        Ok(())
    }

    /// The gradient buffer (layout order).
    pub fn grads(&self) -> &B::Buf {
        &self.grads
    }

    /// `acc += gradients` (one process accumulating micro-batches, each computed into zeroed
    /// gradients, in the order data-parallel ranks add them).
    pub fn add_grads_to(&self, acc: &mut B::Buf) {
        self.be
            .add_assign(acc.into(), (&self.grads).into(), self.layout.total);
    }

    /// Replaces the gradients with `src` (a device buffer of the layout's length).
    pub fn copy_grads_from(&mut self, src: &B::Buf) {
        self.be
            .copy(src.into(), (&mut self.grads).into(), self.layout.total);
    }

    /// The backend with the gradient buffer, writable (data-parallel training puts the reduced
    /// gradient there with the backend's own copy).
    pub fn backend_and_grads_mut(&mut self) -> (&B, &mut B::Buf) {
        (&self.be, &mut self.grads)
    }

    /// The backend with the parameter buffer, writable (ZeRO-1 gathers the parameters there).
    pub fn backend_and_params_mut(&mut self) -> (&B, &mut B::Buf) {
        (&self.be, self.params.get_mut())
    }

    /// The sum of the losses of the `forward_backward` calls since `zero_grads` (reads it back).
    pub fn loss_sum(&self) -> f32 {
        self.read_scalar(LOSS_SUM)
    }

    /// Copies the loss sum into `dst` on the device (a trainer gathers a step's scalars in one
    /// buffer and reads them back together).
    pub fn loss_sum_into(&self, dst: ViewMut<B::Buf>) {
        self.be.copy(View::new(&self.stats, LOSS_SUM), dst, 1);
    }

    /// Global L2 norm of the gradient buffer as it is now (reads it back).
    pub fn grad_norm(&mut self) -> f32 {
        let total = self.layout.total;
        self.be.sum_squares(
            ViewMut::new(&mut self.stats, PROBE_SUMSQ),
            (&self.grads).into(),
            total,
        );
        self.read_scalar(PROBE_SUMSQ).sqrt()
    }

    /// The global gradient norm the last `optimizer_step` saw, before clipping (reads it back).
    pub fn last_grad_norm(&self) -> f32 {
        self.read_scalar(GRAD_SUMSQ).sqrt()
    }

    /// One optimiser step, queued without reading anything back: clips the gradients to global
    /// norm `clip_norm` when given (as torch.nn.utils.clip_grad_norm_: factor
    /// `clip / (norm + 1e-6)` when below 1), then AdamW with learning rate `lr` (weight decay on
    /// Linear weights only), then step += 1. `last_grad_norm` gives the norm before clipping.
    /// Clipping and AdamW run as one fused pass: the gradients are left as they were (unclipped);
    /// call `zero_grads` before the next accumulation.
    pub fn optimizer_step(&mut self, opt: &AdamWConfig, lr: f32, clip_norm: Option<f32>) {
        self.queue_grad_sumsq();
        self.apply_update(opt, lr, clip_norm);
    }

    /// The sum of squares of the whole gradient buffer, kept for the next `apply_update` and read
    /// back (a training step checks it is finite before updating).
    pub fn grad_sumsq(&mut self) -> f32 {
        self.queue_grad_sumsq();
        self.read_scalar(GRAD_SUMSQ)
    }

    /// `grad_sumsq` without the read: also copies the sum into `dst` on the device.
    pub fn grad_sumsq_into(&mut self, dst: ViewMut<B::Buf>) {
        self.queue_grad_sumsq();
        self.be.copy(View::new(&self.stats, GRAD_SUMSQ), dst, 1);
    }

    /// Sets the gradient's sum of squares `apply_update` uses, when it was computed elsewhere
    /// (ZeRO-1: combined from every rank's shard).
    pub fn set_grad_sumsq(&mut self, sumsq: f32) {
        self.be
            .upload(&[sumsq], ViewMut::new(&mut self.stats, GRAD_SUMSQ));
    }

    fn queue_grad_sumsq(&mut self) {
        let total = self.layout.total;
        self.be.sum_squares(
            ViewMut::new(&mut self.stats, GRAD_SUMSQ),
            (&self.grads).into(),
            total,
        );
    }

    /// The update of `optimizer_step` with the sum of squares already in place (`grad_sumsq` or
    /// `set_grad_sumsq`): clipping and AdamW over the optimiser's range only, in one fused pass
    /// (the gradients are left unclipped).
    pub fn apply_update(&mut self, opt: &AdamWConfig, lr: f32, clip_norm: Option<f32>) {
        self.adam_step += 1;
        let hp = AdamW {
            lr,
            beta1: opt.beta1,
            beta2: opt.beta2,
            eps: opt.eps,
            weight_decay: opt.weight_decay,
            step: u32::try_from(self.adam_step).unwrap_or(u32::MAX),
        };
        let start = self.opt_range.start;
        self.be.adamw_fused(
            ViewMut::new(self.params.get_mut(), start),
            View::new(&self.grads, start),
            (&mut self.adam_m).into(),
            (&mut self.adam_v).into(),
            &self.opt_runs,
            &hp,
            clip_norm.map(|max_norm| (View::new(&self.stats, GRAD_SUMSQ), max_norm)),
        );
    }

    /// The elements the optimiser updates (all of them unless sharded).
    pub fn optimizer_shard(&self) -> Range<usize> {
        self.opt_range.clone()
    }

    /// A host copy of the AdamW state (of the optimiser's shard when sharded).
    pub fn optimizer_state_to_host(&self) -> OptimizerState {
        let n = self.opt_range.len();
        let mut m = vec![0.0; n];
        let mut v = vec![0.0; n];
        self.be.download((&self.adam_m).into(), &mut m);
        self.be.download((&self.adam_v).into(), &mut v);
        OptimizerState {
            step: self.adam_step,
            m,
            v,
        }
    }

    /// Restores the AdamW state saved by `optimizer_state_to_host` (of the same shard).
    pub fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), ModelError> {
        let n = self.opt_range.len();
        for (what, got) in [
            ("optimizer m", state.m.len()),
            ("optimizer v", state.v.len()),
        ] {
            if got != n {
                return Err(ModelError::LengthMismatch {
                    what,
                    expected: n,
                    got,
                });
            }
        }
        self.be.upload(&state.m, (&mut self.adam_m).into());
        self.be.upload(&state.v, (&mut self.adam_v).into());
        self.adam_step = state.step;
        Ok(())
    }

    fn check_len(&self, what: &'static str, got: usize) -> Result<(), ModelError> {
        if got == self.layout.total {
            Ok(())
        } else {
            Err(ModelError::LengthMismatch {
                what,
                expected: self.layout.total,
                got,
            })
        }
    }

    fn read_scalar(&self, slot: usize) -> f32 {
        let mut host = [0.0f32];
        self.be.download(View::new(&self.stats, slot), &mut host);
        host[0]
    }

    fn download(&self, buf: &B::Buf) -> Vec<f32> {
        let mut host = vec![0.0; self.layout.total];
        self.be.download(buf.into(), &mut host);
        host
    }
}
