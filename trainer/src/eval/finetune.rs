//! Fine-tuning (and training from scratch, the same recipe from a random encoder): encoder and
//! head trained end to end on the train split with AdamW (linear warmup, cosine decay,
//! global-norm clipping, optional layer-wise learning-rate decay), evaluated on validation after
//! every epoch; the epoch with the best validation macro AUROC is kept (early stop after
//! `patience` epochs without improvement).
//!
//! Mini-batches: each epoch visits the training rows in a seeded shuffle of (seed, epoch), in
//! batches of `batch_size` (the last one shorter). An epoch holds at least `min_epoch_windows`
//! windows: a small training set (a label fraction of 1%) is visited several times per epoch, in
//! fresh shuffles, so that every run gets enough steps between validations. Every window is its
//! deterministic centred crop.

use ecgfm_kernels::Backend;
use serde::Serialize;

use super::batches::{scores, BatchBuffers, WindowSource};
use super::progress::EvalProgress;
use super::scoring::Validation;
use super::EvalError;
use crate::model::encoder::layer_lr_scales;
use crate::model::rng::SplitMix64;
use crate::model::{Encoder, Recompute, Targets};
use crate::optim::AdamWConfig;
use crate::schedule::LrSchedule;

/// The fine-tuning recipe.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinetuneSettings {
    /// Most epochs over the training rows.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation macro AUROC.
    pub patience: usize,
    /// Peak learning rate (reached after the first epoch's warmup).
    pub lr: f64,
    /// Learning-rate scale per block away from the head (1: none), e.g. 0.75.
    pub layer_decay: f32,
    pub weight_decay: f32,
    /// Global gradient-norm clip (0: none).
    pub clip_norm: f32,
    /// Fewest windows per epoch (small training sets are repeated).
    pub min_epoch_windows: usize,
    /// Activations the encoder keeps for the backward pass (the rest is recomputed): the same
    /// results in less memory.
    pub recompute: Recompute,
}

impl Default for FinetuneSettings {
    fn default() -> Self {
        FinetuneSettings {
            epochs: 10,
            patience: 3,
            lr: 1e-3,
            layer_decay: 1.0,
            weight_decay: 0.05,
            clip_norm: 1.0,
            min_epoch_windows: 512,
            recompute: Recompute::None,
        }
    }
}

/// What a run ended with: the best epoch's scores on the rows asked for.
pub struct Finetuned<B: Backend> {
    pub encoder: Encoder<B>,
    /// Epochs run (1-based count).
    pub epochs_run: usize,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    pub best_val_macro_auroc: Option<f64>,
}

/// Trains `encoder` (already initialised: pretrained or random, head random) on the rows
/// `train` of `validation`'s task and keeps the weights of its best epoch on `validation`. `progress` receives one line per epoch
/// and the windows done of each epoch and validation pass.
pub fn finetune<B: Backend>(
    mut encoder: Encoder<B>,
    source: &dyn WindowSource,
    train: &[usize],
    validation: &Validation<'_>,
    settings: &FinetuneSettings,
    seed: u64,
    progress: &mut dyn EvalProgress,
) -> Result<Finetuned<B>, EvalError> {
    let task = validation.task();
    let batch_size = encoder.max_batch();
    let n = train.len();
    let repeats = settings.min_epoch_windows.div_ceil(n.max(1)).max(1);
    let steps_per_epoch = (n * repeats).div_ceil(batch_size) as u64;
    let schedule = LrSchedule {
        peak_lr: settings.lr,
        min_lr: settings.lr * 0.01,
        warmup_steps: steps_per_epoch,
        total_steps: steps_per_epoch * settings.epochs as u64,
    };
    let opt = AdamWConfig {
        weight_decay: settings.weight_decay,
        ..AdamWConfig::default()
    };
    let clip = (settings.clip_norm > 0.0).then_some(settings.clip_norm);
    let depth = encoder.config().depth;
    let scales = layer_lr_scales(encoder.layout(), depth, settings.layer_decay);
    let cfg = encoder.config().clone();
    let k = task.k();
    let mut buffers = BatchBuffers::new(cfg.leads, cfg.samples, batch_size);
    let val_windows: Vec<usize> = validation.rows().iter().map(|&r| task.windows[r]).collect();
    let (mut classes, mut targets) = (Vec::new(), Vec::new());
    let mut best: Option<(Vec<f32>, usize, Option<f64>)> = None;
    let mut epochs_run = 0;
    let mut step = 0u64;
    let mut since_best = 0;
    for epoch in 0..settings.epochs {
        let mut order = Vec::with_capacity(n * repeats);
        for repeat in 0..repeats {
            let mut pass = train.to_vec();
            let mut rng = SplitMix64::from_words(&[seed, 0xF1AE_7E2E, epoch as u64, repeat as u64]);
            for i in (1..pass.len()).rev() {
                pass.swap(i, rng.below(i as u64 + 1) as usize);
            }
            order.extend(pass);
        }
        let mut loss_sum = 0.0;
        let pass = format!("epoch {}/{}", epoch + 1, settings.epochs);
        let mut done = 0;
        for chunk in order.chunks(batch_size) {
            let windows: Vec<usize> = chunk.iter().map(|&r| task.windows[r]).collect();
            buffers.load(source, &windows);
            let batch_targets = if task.multi_label {
                targets.clear();
                targets.extend(
                    chunk
                        .iter()
                        .flat_map(|&r| task.targets[r * k..(r + 1) * k].iter().map(|&t| t as f32)),
                );
                Targets::MultiLabel(&targets)
            } else {
                classes.clear();
                classes.extend(chunk.iter().map(|&r| task.class_of[r]));
                Targets::Classes(&classes)
            };
            encoder.zero_grads();
            let loss = encoder.forward_backward(
                &buffers.x,
                &buffers.lead_mask,
                chunk.len(),
                batch_targets,
                1.0,
            )?;
            if !loss.is_finite() {
                return Err(EvalError::Diverged {
                    epoch: epoch + 1,
                    step,
                    loss,
                });
            }
            let lr = schedule.lr_at(step) as f32;
            encoder.optimizer_step(&opt, lr, clip, &scales);
            loss_sum += f64::from(loss) * chunk.len() as f64;
            step += 1;
            done += chunk.len();
            progress.windows(&pass, done, order.len());
        }
        let mean_loss = loss_sum / order.len().max(1) as f64;
        epochs_run += 1;
        let total = val_windows.len();
        let val_scores = scores(&mut encoder, source, &val_windows, &mut |done| {
            progress.windows("validation", done, total)
        })?;
        let val_auroc = validation.macro_auroc(&val_scores);
        progress.line(format!(
            "epoch {}/{}: train loss {mean_loss:.4}, val macro AUROC {}",
            epoch + 1,
            settings.epochs,
            val_auroc.map_or("undefined".into(), |a| format!("{a:.4}"))
        ));
        let better = match (&best, val_auroc) {
            (None, _) => true,
            (Some((_, _, Some(b))), Some(a)) => a > *b,
            (Some((_, _, None)), Some(_)) => true,
            (Some(_), None) => false,
        };
        if better {
            best = Some((encoder.params_to_host(), epoch + 1, val_auroc));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= settings.patience {
                break;
            }
        }
    }
    let (params, best_epoch, best_val) = best
        .ok_or_else(|| EvalError::Task("fine-tuning needs at least one epoch (--epochs)".into()))?;
    encoder.load_params(&params)?;
    Ok(Finetuned {
        encoder,
        epochs_run,
        best_epoch,
        best_val_macro_auroc: best_val,
    })
}
