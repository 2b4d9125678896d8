//! `HostBatch`: one batch on the host (signals, lead mask, patch mask) and its validation against
//! the rules of docs/model.md.

use super::config::ModelConfig;
use super::error::ModelError;

/// A batch as the data loader and the mask sampler produce it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Number of samples B.
    pub batch: usize,
    /// Signals, (B, L, S) lead-major per sample.
    pub x: Vec<f32>,
    /// 1 where the lead is present, (B, L).
    pub lead_mask: Vec<u8>,
    /// 1 where the patch is masked (hidden from the encoder), (B, L, N).
    pub patch_mask: Vec<u8>,
}

impl HostBatch {
    /// A zeroed batch of `batch` samples with the sizes `cfg` needs.
    pub fn new(cfg: &ModelConfig, batch: usize) -> Self {
        HostBatch {
            batch,
            x: vec![0.0; batch * cfg.leads * cfg.samples],
            lead_mask: vec![0; batch * cfg.leads],
            patch_mask: vec![0; batch * cfg.leads * cfg.patches_per_lead()],
        }
    }

    /// The batch cut into consecutive batches of at most `size` samples (`size` > 0).
    pub fn split(self, size: usize) -> Vec<HostBatch> {
        if size >= self.batch {
            return vec![self];
        }
        let (l, s, n) = (
            self.lead_mask.len() / self.batch,
            self.x.len() / self.lead_mask.len(),
            self.patch_mask.len() / self.lead_mask.len(),
        );
        (0..self.batch)
            .step_by(size)
            .map(|first| {
                let rows = first..(first + size).min(self.batch);
                HostBatch {
                    batch: rows.len(),
                    x: self.x[rows.start * l * s..rows.end * l * s].to_vec(),
                    lead_mask: self.lead_mask[rows.start * l..rows.end * l].to_vec(),
                    patch_mask: self.patch_mask[rows.start * l * n..rows.end * l * n].to_vec(),
                }
            })
            .collect()
    }

    /// Checks sizes and masks: every sample has a present lead, every present lead has exactly
    /// N - K masked patches, absent leads have none, and masks hold only 0 or 1.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<(), ModelError> {
        let (l, n) = (cfg.leads, cfg.patches_per_lead());
        let check = |what: &'static str, expected: usize, got: usize| {
            if expected == got {
                Ok(())
            } else {
                Err(ModelError::LengthMismatch {
                    what,
                    expected,
                    got,
                })
            }
        };
        check("batch.x", self.batch * l * cfg.samples, self.x.len())?;
        check("batch.lead_mask", self.batch * l, self.lead_mask.len())?;
        check(
            "batch.patch_mask",
            self.batch * l * n,
            self.patch_mask.len(),
        )?;
        if self.batch == 0 {
            return Err(ModelError::InvalidBatch("batch has no samples".into()));
        }
        let masked = cfg.masked_per_lead();
        for b in 0..self.batch {
            let mut present = 0;
            for lead in 0..l {
                let flag = self.lead_mask[b * l + lead];
                let row = &self.patch_mask[(b * l + lead) * n..(b * l + lead + 1) * n];
                if flag > 1 || row.iter().any(|&m| m > 1) {
                    return Err(ModelError::InvalidBatch(format!(
                        "sample {b} lead {lead}: masks must hold only 0 or 1"
                    )));
                }
                let count = row.iter().filter(|&&m| m == 1).count();
                let want = if flag == 1 { masked } else { 0 };
                if count != want {
                    return Err(ModelError::InvalidBatch(format!(
                        "sample {b} lead {lead} ({}): {count} masked patches, expected {want}",
                        if flag == 1 { "present" } else { "absent" }
                    )));
                }
                present += flag as usize;
            }
            if present == 0 {
                return Err(ModelError::InvalidBatch(format!(
                    "sample {b} has no present lead"
                )));
            }
        }
        Ok(())
    }

    /// Number of present leads of sample `b`.
    pub fn present_leads(&self, cfg: &ModelConfig, b: usize) -> usize {
        self.lead_mask[b * cfg.leads..(b + 1) * cfg.leads]
            .iter()
            .filter(|&&m| m == 1)
            .count()
    }
}
