//! `Encoder`: the pretrained ViT encoder of docs/model.md as evaluation uses it, over a `Backend`:
//! every patch visible (no masking), the same embedding and block stack as `Mae` (`Stack`), then
//! pooling and a linear classification head (docs/model.md, "Evaluation").
//!
//! ```text
//! tokens     every patch (b, l, n) of every present lead, lead-major per sample   // (T, P)
//! h          = patch_embed(p) + lead_embed[l] + pos(n, D); blocks; enc_norm         // (T, D)
//! features   Mean:  mean of the sample's T_b rows                                  // (B, D)
//!            Leads: mean of each lead's N rows, 12 leads concatenated (absent: 0)  // (B, 12 D)
//! logits     = head.weight @ features + head.bias                                   // (B, K)
//! loss       softmax cross-entropy (single-label) or binary cross-entropy (multi-label)
//! ```
//! Parameters (`ParamLayout::encoder_with_head`), gradients and AdamW moments are one contiguous
//! buffer each; activations are allocated in `new` for a maximum batch. An encoder built
//! `forward_only` (probes, `ecgfm embed`) has no gradients, no AdamW moments and keeps only
//! what the forward pass needs (`Keep::ForwardOnly`).

use ecgfm_kernels::Backend;

use super::block::{offset_of, BlockDims, Params};
use super::config::ModelConfig;
use super::error::ModelError;
use super::init::init_params;
use super::layout::ParamLayout;
use super::pos::sincos_table;
use super::recompute::Recompute;
use super::stack::{Keep, Stack};

mod optim;
mod pass;

pub use optim::layer_lr_scales;

/// How the token rows of a sample become its features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean of all the sample's tokens (as ST-MEM, which has no CLS token): D features.
    Mean,
    /// The mean of each lead's tokens, the 12 leads concatenated in standard order (absent
    /// leads give zeros): 12 D features.
    Leads,
}

impl Pooling {
    /// `mean` or `leads`.
    pub fn parse(text: &str) -> Result<Pooling, ModelError> {
        match text {
            "mean" => Ok(Pooling::Mean),
            "leads" => Ok(Pooling::Leads),
            other => Err(ModelError::UnknownPooling(other.to_string())),
        }
    }

    /// Features per sample of an encoder of `cfg`: D, or 12 D.
    pub fn features(self, cfg: &ModelConfig) -> usize {
        match self {
            Pooling::Mean => cfg.dim,
            Pooling::Leads => cfg.leads * cfg.dim,
        }
    }
}

/// The head on top of the pooled features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadSpec {
    pub pooling: Pooling,
    /// Classes K.
    pub classes: usize,
    /// Independent sigmoid outputs with binary cross-entropy; otherwise one softmax.
    pub multi_label: bool,
}

/// What the loss compares the logits with.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// (B): the class of each sample (single-label).
    Classes(&'a [u32]),
    /// (B, K): 0 or 1 per class (multi-label).
    MultiLabel(&'a [f32]),
}

/// Device copies of the token plan of one batch.
struct DeviceTokens<B: Backend> {
    tokens: B::IdxBuf,  // (T, 3)
    cu_seqs: B::IdxBuf, // (B + 1): token rows of each sample
    cu_pool: B::IdxBuf, // (B Q + 1): token rows of each pooled group
    labels: B::IdxBuf,  // (B)
}

/// Host side of the token plan: every patch of every present lead.
#[derive(Default)]
struct HostTokens {
    tokens: Vec<u32>,
    cu_seqs: Vec<u32>,
    cu_pool: Vec<u32>,
}

/// The encoder with a classification head and its optimiser state.
pub struct Encoder<B: Backend> {
    be: B,
    cfg: ModelConfig,
    head: HeadSpec,
    layout: ParamLayout,
    max_batch: usize,
    off: [usize; 5], // patch_embed.weight, .bias, lead_embed, head.weight, head.bias
    params: Params<B>,
    grads: B::Buf,
    adam_m: B::Buf,
    adam_v: B::Buf,
    adam_step: u64,
    host: HostTokens,
    idx: DeviceTokens<B>,
    batch: usize,
    x: B::Buf,       // (B, L, S)
    pos: B::Buf,     // (N, D)
    patches: B::Buf, // (T, P), operand storage
    stack: Stack<B>, // (T, D)
    pooled: B::Buf,  // (B, F)
    logits: B::Buf,  // (B, K)
    targets: B::Buf, // (B, K)
    loss: B::Buf,    // (1)
    sumsq: B::Buf,   // (1)
    dlogits: B::Buf, // (B, K)
    dpooled: B::Buf, // (B, F)
}

const PATCH_W: usize = 0;
const PATCH_B: usize = 1;
const LEAD: usize = 2;
const HEAD_W: usize = 3;
const HEAD_B: usize = 4;

impl<B: Backend> Encoder<B> {
    /// Allocates everything for training on batches of up to `max_batch` samples. Parameters
    /// start at zero: call `init_params`, `load_encoder` or `load_params`.
    pub fn new(
        backend: B,
        cfg: ModelConfig,
        head: HeadSpec,
        max_batch: usize,
    ) -> Result<Self, ModelError> {
        Self::with_recompute(backend, cfg, head, max_batch, Recompute::None)
    }

    /// `new`, keeping only the activations `recompute` keeps (model/recompute.rs): the same
    /// bits in less memory, the backward pass rerunning the rest.
    pub fn with_recompute(
        backend: B,
        cfg: ModelConfig,
        head: HeadSpec,
        max_batch: usize,
        recompute: Recompute,
    ) -> Result<Self, ModelError> {
        Self::build(backend, cfg, head, max_batch, Keep::Backward(recompute))
    }

    /// The encoder for the forward pass alone (`embed`, `logits`, `forward_loss`): the same
    /// results, without gradients, AdamW moments or the activations the backward pass reads.
    pub fn forward_only(
        backend: B,
        cfg: ModelConfig,
        head: HeadSpec,
        max_batch: usize,
    ) -> Result<Self, ModelError> {
        Self::build(backend, cfg, head, max_batch, Keep::ForwardOnly)
    }

    /// The encoder keeping what `keep` says for the backward pass (nothing, no gradients and no
    /// AdamW moments when forward-only).
    fn build(
        backend: B,
        cfg: ModelConfig,
        head: HeadSpec,
        max_batch: usize,
        keep: Keep,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        if max_batch == 0 || head.classes == 0 {
            return Err(ModelError::InvalidConfig(
                "the encoder needs a positive max_batch and at least one class".into(),
            ));
        }
        let be = backend;
        let (l, n, d) = (cfg.leads, cfg.patches_per_lead(), cfg.dim);
        let features = head.pooling.features(&cfg);
        let layout = ParamLayout::encoder_with_head(&cfg, features, head.classes);
        let o = |name: &str| offset_of(&layout, name);
        let off = [
            o("patch_embed.weight")?,
            o("patch_embed.bias")?,
            o("lead_embed")?,
            o("head.weight")?,
            o("head.bias")?,
        ];
        let t = max_batch * l * n;
        let dims = BlockDims {
            width: d,
            heads: cfg.heads,
            mlp: cfg.mlp_dim(),
        };
        let stack = Stack::new(&be, &layout, "enc", cfg.depth, dims, t, keep)?;
        let state = if stack.trains() { layout.total } else { 0 };
        let mut pos = be.alloc(n * d);
        be.upload(&sincos_table(n, d), (&mut pos).into());
        let k = head.classes;
        let idx = DeviceTokens {
            tokens: be.alloc_idx(3 * t),
            cu_seqs: be.alloc_idx(max_batch + 1),
            cu_pool: be.alloc_idx(max_batch * l + 1),
            labels: be.alloc_idx(max_batch),
        };
        Ok(Encoder {
            params: Params::new(&be, layout.total),
            grads: be.alloc(state),
            adam_m: be.alloc(state),
            adam_v: be.alloc(state),
            adam_step: 0,
            host: HostTokens::default(),
            idx,
            batch: 0,
            x: be.alloc(max_batch * l * cfg.samples),
            pos,
            patches: be.alloc_operand(t * cfg.patch),
            stack,
            pooled: be.alloc(max_batch * features),
            logits: be.alloc(max_batch * k),
            targets: be.alloc(max_batch * k),
            loss: be.alloc(1),
            sumsq: be.alloc(1),
            dlogits: be.alloc(max_batch * k),
            dpooled: be.alloc(max_batch * features),
            off,
            max_batch,
            layout,
            head,
            cfg,
            be,
        })
    }

    /// Features per sample F.
    pub fn features(&self) -> usize {
        self.head.pooling.features(&self.cfg)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn head(&self) -> HeadSpec {
        self.head
    }

    /// Where each tensor lives in the parameter, gradient and moment buffers.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The backend the encoder runs on.
    pub fn backend(&self) -> &B {
        &self.be
    }

    /// The backend back, every buffer of the encoder freed: the next model built on it reuses
    /// its device, kernels and workspaces.
    pub fn into_backend(self) -> B {
        self.be
    }

    /// Initialises every parameter as docs/model.md says (the encoder tensors get exactly the
    /// values `Mae::init_params(seed)` gives them; the head is a Linear: Xavier-uniform weight,
    /// zero bias) and resets the optimiser.
    pub fn init_params(&mut self, seed: u64) {
        let host = init_params(&self.layout, seed);
        self.be.upload(&host, self.params.get_mut().into());
        self.reset_optimizer();
    }

    /// Replaces the encoder tensors with `encoder` (`ParamLayout::encoder` order, as
    /// `checkpoint::load_params` reads them); the head keeps its values. Resets the optimiser.
    pub fn load_encoder(&mut self, encoder: &[f32]) -> Result<(), ModelError> {
        let want = self.layout.encoder_params();
        if encoder.len() != want {
            return Err(ModelError::LengthMismatch {
                what: "encoder params",
                expected: want,
                got: encoder.len(),
            });
        }
        self.be.upload(encoder, self.params.get_mut().into());
        self.reset_optimizer();
        Ok(())
    }

    /// A host copy of the parameters (layout order).
    pub fn params_to_host(&self) -> Vec<f32> {
        self.download(self.params.get(), self.layout.total)
    }

    /// Replaces every parameter (layout order).
    pub fn load_params(&mut self, host: &[f32]) -> Result<(), ModelError> {
        if host.len() != self.layout.total {
            return Err(ModelError::LengthMismatch {
                what: "params",
                expected: self.layout.total,
                got: host.len(),
            });
        }
        self.be.upload(host, self.params.get_mut().into());
        Ok(())
    }

    /// The pooled features of `n` samples, (n, F): x (n, L, S), lead_mask (n, L).
    pub fn embed(&mut self, x: &[f32], lead_mask: &[u8], n: usize) -> Result<Vec<f32>, ModelError> {
        self.prepare(x, lead_mask, n)?;
        self.forward_features();
        Ok(self.download(&self.pooled, n * self.features()))
    }

    /// The logits of `n` samples, (n, K).
    pub fn logits(
        &mut self,
        x: &[f32],
        lead_mask: &[u8],
        n: usize,
    ) -> Result<Vec<f32>, ModelError> {
        self.prepare(x, lead_mask, n)?;
        self.forward_features();
        self.forward_head();
        Ok(self.download(&self.logits, n * self.head.classes))
    }

    /// The loss of `n` samples against `targets`, without gradients.
    pub fn forward_loss(
        &mut self,
        x: &[f32],
        lead_mask: &[u8],
        n: usize,
        targets: Targets<'_>,
    ) -> Result<f32, ModelError> {
        self.forward_to_loss(x, lead_mask, n, targets)?;
        Ok(self.read(&self.loss))
    }

    /// Forward and backward: ADDS `loss_scale * d loss / d params` to the gradients and returns
    /// the loss (read back).
    pub fn forward_backward(
        &mut self,
        x: &[f32],
        lead_mask: &[u8],
        n: usize,
        targets: Targets<'_>,
        loss_scale: f32,
    ) -> Result<f32, ModelError> {
        if !self.stack.trains() {
            return Err(ModelError::InvalidConfig(
                "forward_backward on an encoder built forward_only (build it with Encoder::new \
                 to train)"
                    .into(),
            ));
        }
        self.forward_to_loss(x, lead_mask, n, targets)?;
        self.backward(loss_scale);
        Ok(self.read(&self.loss))
    }

    /// The whole forward pass of a batch, the loss left in `self.loss`.
    fn forward_to_loss(
        &mut self,
        x: &[f32],
        lead_mask: &[u8],
        n: usize,
        targets: Targets<'_>,
    ) -> Result<(), ModelError> {
        self.prepare(x, lead_mask, n)?;
        self.upload_targets(targets)?;
        self.forward_features();
        self.forward_head();
        self.forward_loss_only();
        Ok(())
    }

    fn read(&self, scalar: &B::Buf) -> f32 {
        let mut host = [0.0f32];
        self.be.download(scalar.into(), &mut host);
        host[0]
    }

    fn download(&self, buf: &B::Buf, n: usize) -> Vec<f32> {
        let mut host = vec![0.0; n];
        self.be.download(buf.into(), &mut host);
        host
    }
}
