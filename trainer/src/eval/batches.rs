//! Feeding windows to the `Encoder`: the `WindowSource` seam (the dataset reader of the `ecgfm`
//! binary implements it), batches of chosen windows, and the two forward-only uses: features
//! (the probe, `ecgfm embed`) and class scores (fine-tuning's validation and test).

use ecgfm_kernels::Backend;

use crate::model::{Encoder, ModelError};

/// Labelled windows held in memory, each (12, S) as the encoder takes them.
pub trait WindowSource: Sync {
    /// Number of windows.
    fn len(&self) -> usize;
    /// Whether there is no window.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes window `i` into `x` (12 x S, lead-major, physical units, absent leads zero) and
    /// its presence flags into `lead_mask` (12).
    fn fill(&self, i: usize, x: &mut [f32], lead_mask: &mut [u8]);
}

/// Host buffers of one batch, reused.
pub struct BatchBuffers {
    pub x: Vec<f32>,
    pub lead_mask: Vec<u8>,
    per_window: usize,
    leads: usize,
}

impl BatchBuffers {
    pub fn new(leads: usize, samples: usize, max_batch: usize) -> Self {
        BatchBuffers {
            x: Vec::with_capacity(max_batch * leads * samples),
            lead_mask: Vec::with_capacity(max_batch * leads),
            per_window: leads * samples,
            leads,
        }
    }

    /// Fills the buffers with `windows` (indices into `source`) in order.
    pub fn load(&mut self, source: &dyn WindowSource, windows: &[usize]) {
        self.x.resize(windows.len() * self.per_window, 0.0);
        self.lead_mask.resize(windows.len() * self.leads, 0);
        for (b, &w) in windows.iter().enumerate() {
            source.fill(
                w,
                &mut self.x[b * self.per_window..(b + 1) * self.per_window],
                &mut self.lead_mask[b * self.leads..(b + 1) * self.leads],
            );
        }
    }
}

/// The pooled features (n, F) of `windows`, in order, `max_batch` at a time; `progress` is
/// told how many windows are done after each batch.
pub fn features<B: Backend>(
    encoder: &mut Encoder<B>,
    source: &dyn WindowSource,
    windows: &[usize],
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>, ModelError> {
    let cfg = encoder.config().clone();
    let mut buffers = BatchBuffers::new(cfg.leads, cfg.samples, encoder.max_batch());
    let mut out = Vec::with_capacity(windows.len() * encoder.features());
    for chunk in windows.chunks(encoder.max_batch()) {
        buffers.load(source, chunk);
        out.extend(encoder.embed(&buffers.x, &buffers.lead_mask, chunk.len())?);
        progress(out.len() / encoder.features());
    }
    Ok(out)
}

/// Class probabilities (n, K) of `windows`: softmax of the logits (single-label) or a sigmoid
/// per class (multi-label), in f64; `progress` is told how many windows are done after each
/// batch.
pub fn scores<B: Backend>(
    encoder: &mut Encoder<B>,
    source: &dyn WindowSource,
    windows: &[usize],
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f64>, ModelError> {
    let cfg = encoder.config().clone();
    let head = encoder.head();
    let mut buffers = BatchBuffers::new(cfg.leads, cfg.samples, encoder.max_batch());
    let mut out = Vec::with_capacity(windows.len() * head.classes);
    for chunk in windows.chunks(encoder.max_batch()) {
        buffers.load(source, chunk);
        let logits = encoder.logits(&buffers.x, &buffers.lead_mask, chunk.len())?;
        for row in logits.chunks(head.classes) {
            if head.multi_label {
                out.extend(row.iter().map(|&z| 1.0 / (1.0 + (-f64::from(z)).exp())));
            } else {
                let max = row
                    .iter()
                    .fold(f64::NEG_INFINITY, |m, &z| m.max(f64::from(z)));
                let sum: f64 = row.iter().map(|&z| (f64::from(z) - max).exp()).sum();
                out.extend(row.iter().map(|&z| (f64::from(z) - max).exp() / sum));
            }
        }
        progress(out.len() / head.classes);
    }
    Ok(out)
}
