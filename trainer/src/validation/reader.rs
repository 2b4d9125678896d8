//! A validation set read a piece at a time: `SetReader` gives the set's windows (the first
//! `windows` of the source) in pieces of at most the model's batch, each with its fixed masks,
//! and `LossMean` sums the masked reconstruction loss over them. Pretraining's `Validator` keeps
//! every piece (it measures the same set again and again); `ecgfm validate` measures a set as it
//! reads it, in the memory of one piece, to the same bits.

use crate::config::TrainConfig;
use crate::data::{BatchSource, SourceError};
use crate::mask::MaskSampler;
use crate::model::Mae;
use crate::{HostBatch, ModelError};
use ecgfm_kernels::Backend;

use super::{MASK_SEED, READ_BATCH};

/// The windows of a set drawn from `source`: `train.val_windows`, or all of its epoch when that
/// is shorter (`BatchSource::samples_per_epoch`).
pub fn set_size(config: &TrainConfig, source: &dyn BatchSource) -> usize {
    let wanted = config.train.val_windows;
    source.samples_per_epoch().map_or(wanted, |n| {
        wanted.min(usize::try_from(n).unwrap_or(usize::MAX))
    })
}

/// The first `windows` windows of a source (which gives batches of `READ_BATCH`), in pieces of
/// at most `train.batch_size`; window i of the set masked as sample i of a step.
pub struct SetReader {
    source: Box<dyn BatchSource>,
    sampler: MaskSampler,
    windows: usize,
    piece: usize,
    /// A window's signal values, lead-mask entries and patch-mask entries.
    sizes: (usize, usize, usize),
    /// Windows given in pieces so far.
    given: usize,
    /// Windows read from the source and not yet given (their patch masks not yet drawn).
    pending: HostBatch,
    read: HostBatch,
}

impl SetReader {
    /// The set `config` defines on `source`.
    pub fn new(config: &TrainConfig, source: Box<dyn BatchSource>) -> SetReader {
        let windows = set_size(config, source.as_ref());
        let m = &config.model;
        SetReader {
            sampler: MaskSampler::new(m),
            windows,
            piece: config.train.batch_size.max(1),
            sizes: (m.leads * m.samples, m.leads, m.leads * m.patches_per_lead()),
            given: 0,
            pending: HostBatch::new(&config.model, 0),
            read: HostBatch::new(&config.model, READ_BATCH),
            source,
        }
    }

    /// The set's windows.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// What the set is, for logs: its windows, of how many, of what, in pieces of how many.
    pub fn describe(&self) -> String {
        let windows = self.windows;
        let whole = match self.source.samples_per_epoch() {
            Some(n) if n as usize == windows => format!("all {windows} windows"),
            Some(n) => format!("the first {windows} of {n} windows, in a fixed order,"),
            None => format!("{windows} windows"),
        };
        let by = match self.piece {
            piece if piece < windows => format!(" (measured {piece} at a time)"),
            _ => String::new(),
        };
        format!("{whole} of {}{by}", self.source.describe())
    }

    /// The next piece, its masks drawn; `None` after the set's last window.
    pub fn next_piece(&mut self) -> Result<Option<HostBatch>, SourceError> {
        let size = (self.windows - self.given).min(self.piece);
        if size == 0 {
            return Ok(None);
        }
        let (x, m, patches) = self.sizes;
        while self.pending.batch < size {
            self.source.next_batch(&mut self.read)?;
            let unread = self.windows - self.given - self.pending.batch;
            let keep = unread.min(READ_BATCH);
            let pending = &mut self.pending;
            pending.x.extend_from_slice(&self.read.x[..keep * x]);
            pending
                .lead_mask
                .extend_from_slice(&self.read.lead_mask[..keep * m]);
            pending.batch += keep;
        }
        let mut piece = HostBatch {
            batch: size,
            x: self.pending.x.drain(..size * x).collect(),
            lead_mask: self.pending.lead_mask.drain(..size * m).collect(),
            patch_mask: vec![0; size * patches],
        };
        self.pending.batch -= size;
        self.sampler
            .fill(MASK_SEED, u64::MAX, self.given as u64, &mut piece);
        self.given += size;
        Ok(Some(piece))
    }
}

/// The masked reconstruction loss over every masked patch of the pieces added: each piece's
/// mean weighted by its count of masked patches.
#[derive(Default)]
pub struct LossMean {
    sum: f64,
    masked: u64,
}

impl LossMean {
    /// Adds `piece`'s loss at the model's current weights.
    pub fn add<B: Backend>(
        &mut self,
        piece: &HostBatch,
        model: &mut Mae<B>,
    ) -> Result<(), ModelError> {
        let count = piece.patch_mask.iter().filter(|&&m| m == 1).count() as u64;
        self.sum += model.forward_loss(piece)? as f64 * count as f64;
        self.masked += count;
        Ok(())
    }

    /// The mean so far (0 before any masked patch).
    pub fn value(&self) -> f32 {
        (self.sum / self.masked.max(1) as f64) as f32
    }
}
