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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeadSpec, ModelConfig, Pooling, Targets};
    use ecgfm_kernels::CpuBackend;

    fn config(depth: usize) -> ModelConfig {
        ModelConfig {
            leads: 12,
            samples: 100,
            patch: 50,
            dim: 8,
            depth,
            heads: 2,
            mlp_ratio: 2,
            ..ModelConfig::default()
        }
    }

    /// The documented rule at depth 2, decay 0.5: the embeddings (layer 0) get 0.5^3, block 0
    /// 0.5^2, block 1 0.5^1, and the final norm and the head 1.
    #[test]
    fn layer_lr_scales_follow_the_documented_layers() {
        let cfg = config(2);
        let layout = ParamLayout::encoder_with_head(&cfg, cfg.dim, 3);
        let scales = layer_lr_scales(&layout, 2, 0.5);
        assert_eq!(scales.len(), layout.entries.len());
        for (e, &scale) in layout.entries.iter().zip(&scales) {
            let want = match e.name.as_str() {
                n if n.starts_with("patch_embed.") || n == "lead_embed" => 0.125,
                n if n.starts_with("enc.0.") => 0.25,
                n if n.starts_with("enc.1.") => 0.5,
                n if n.starts_with("enc_norm.") || n.starts_with("head.") => 1.0,
                n => panic!("unexpected tensor {n}"),
            };
            assert_eq!(scale, want, "{}", e.name);
        }
        assert!(layer_lr_scales(&layout, 2, 1.0).iter().all(|&s| s == 1.0));
    }

    /// An encoder (init seed 3) with the gradients of one batch scaled by `loss_scale`.
    fn with_grads(loss_scale: f32) -> Encoder<CpuBackend> {
        let cfg = config(1);
        let head = HeadSpec {
            pooling: Pooling::Mean,
            classes: 2,
            multi_label: false,
        };
        let mut enc = Encoder::new(CpuBackend::new(), cfg.clone(), head, 2).unwrap();
        enc.init_params(3);
        let n = cfg.leads * cfg.samples;
        let x: Vec<f32> = (0..2 * n).map(|i| (i as f32 / 7.0).sin()).collect();
        enc.zero_grads();
        let targets = Targets::Classes(&[1, 0]);
        enc.forward_backward(&x, &[1; 24], 2, targets, loss_scale)
            .unwrap();
        enc
    }

    /// Clipping to a global norm a quarter of the gradients' makes the step the one taken with
    /// the gradients scaled by that quarter beforehand (AdamW with eps 1, so that the step
    /// depends on the gradients' scale) and not the step with the gradients as they are.
    #[test]
    fn a_clipped_step_is_the_step_on_gradients_scaled_to_the_clip_norm() {
        let opt = AdamWConfig {
            eps: 1.0,
            weight_decay: 0.0,
            ..AdamWConfig::default()
        };
        let mut clipped = with_grads(1.0);
        let grads = clipped.grads_to_host();
        let norm = grads
            .iter()
            .map(|&g| f64::from(g).powi(2))
            .sum::<f64>()
            .sqrt();
        let max_norm = (norm / 4.0) as f32;
        let reported = clipped.optimizer_step(&opt, 0.1, Some(max_norm), &[]);
        assert!(
            (f64::from(reported) / norm - 1.0).abs() < 1e-4,
            "{reported} vs {norm}"
        );
        // The CPU kernel clips by max_norm / (norm + 1e-6): 1/4 up to a relative 1e-6 / norm.
        let mut prescaled = with_grads(0.25);
        prescaled.optimizer_step(&opt, 0.1, None, &[]);
        let mut unclipped = with_grads(1.0);
        unclipped.optimizer_step(&opt, 0.1, None, &[]);
        let (a, b, c) = (
            clipped.params_to_host(),
            prescaled.params_to_host(),
            unclipped.params_to_host(),
        );
        let diff = |p: &[f32], q: &[f32]| {
            p.iter()
                .zip(q)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        assert!(
            diff(&a, &b) < 1e-6,
            "clipped vs pre-scaled: {}",
            diff(&a, &b)
        );
        assert!(
            diff(&a, &c) > 1e-4,
            "clipping changed nothing: {}",
            diff(&a, &c)
        );
    }
}
