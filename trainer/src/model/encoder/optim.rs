//! The training side of `Encoder`: gradients to zero and back to the host, the AdamW step with
//! global-norm clipping and per-tensor learning rates (layer-wise decay), and the check that
//! keeps a forward-only encoder from training.

use ecgfm_kernels::{AdamW, Backend, View, ViewMut};

use super::Encoder;
use crate::model::layout::ParamLayout;
use crate::optim::AdamWConfig;

impl<B: Backend> Encoder<B> {
    /// A host copy of the gradients (layout order).
    pub fn grads_to_host(&self) -> Vec<f32> {
        self.expect_training("grads_to_host");
        self.download(&self.grads, self.layout.total)
    }

    /// Panics naming `what` on an encoder built `forward_only`.
    fn expect_training(&self, what: &str) {
        assert!(
            self.stack.trains(),
            "Encoder::{what} on an encoder built forward_only (build it with Encoder::new to train)"
        );
    }

    /// AdamW moments and step count to zero (nothing to do on a forward-only encoder).
    pub(super) fn reset_optimizer(&mut self) {
        if !self.stack.trains() {
            return;
        }
        let total = self.layout.total;
        self.be.fill((&mut self.adam_m).into(), total, 0.0);
        self.be.fill((&mut self.adam_v).into(), total, 0.0);
        self.adam_step = 0;
    }

    /// Every gradient to zero (before an accumulation).
    pub fn zero_grads(&mut self) {
        self.expect_training("zero_grads");
        self.be
            .fill((&mut self.grads).into(), self.layout.total, 0.0);
    }

    /// One optimiser step: global-norm clipping when `clip_norm` is given, then AdamW with
    /// learning rate `lr * lr_scale[i]` for tensor i of the layout (`lr_scales` empty: 1 for
    /// every tensor; see `layer_lr_scales`), weight decay on Linear weights only. Returns the
    /// gradient norm before clipping.
    pub fn optimizer_step(
        &mut self,
        opt: &AdamWConfig,
        lr: f32,
        clip_norm: Option<f32>,
        lr_scales: &[f32],
    ) -> f32 {
        self.expect_training("optimizer_step");
        let total = self.layout.total;
        self.be
            .sum_squares((&mut self.sumsq).into(), (&self.grads).into(), total);
        if let Some(max_norm) = clip_norm {
            self.be.clip_grad_norm(
                (&mut self.grads).into(),
                total,
                (&self.sumsq).into(),
                max_norm,
            );
        }
        self.adam_step += 1;
        for (i, e) in self.layout.entries.iter().enumerate() {
            let hp = AdamW {
                lr: lr * lr_scales.get(i).copied().unwrap_or(1.0),
                beta1: opt.beta1,
                beta2: opt.beta2,
                eps: opt.eps,
                weight_decay: opt.weight_decay,
                step: u32::try_from(self.adam_step).unwrap_or(u32::MAX),
            };
            self.be.adamw(
                ViewMut::new(self.params.get_mut(), e.offset),
                View::new(&self.grads, e.offset),
                ViewMut::new(&mut self.adam_m, e.offset),
                ViewMut::new(&mut self.adam_v, e.offset),
                e.len(),
                &hp,
                e.decay,
            );
        }
        self.read(&self.sumsq).sqrt()
    }
}

/// Layer-wise learning-rate decay: the scale of each tensor of `layout` (an encoder of `depth`
/// blocks with its head) is `decay^(depth + 1 - layer)`, where the embeddings are layer 0,
/// `enc.i` layer i + 1, and `enc_norm` and the head layer depth + 1 (scale 1).
pub fn layer_lr_scales(layout: &ParamLayout, depth: usize, decay: f32) -> Vec<f32> {
    layout
        .entries
        .iter()
        .map(|e| {
            let layer = if e.name.starts_with("patch_embed") || e.name == "lead_embed" {
                0
            } else if let Some(rest) = e.name.strip_prefix("enc.") {
                rest.split('.')
                    .next()
                    .and_then(|i| i.parse::<usize>().ok())
                    .map_or(depth + 1, |i| i + 1)
            } else {
                depth + 1
            };
            decay.powi((depth + 1 - layer) as i32)
        })
        .collect()
}
