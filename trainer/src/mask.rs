//! `MaskSampler`: draws the patch mask of a batch, seeded and deterministic. For every present
//! lead it chooses N - K masked patches uniformly at random, independently of every other lead
//! (`model.masking = "per-lead"`) or the same for every lead of a sample (`"aligned"`).

use crate::model::batch::HostBatch;
use crate::model::config::{Masking, ModelConfig};
use crate::model::rng::SplitMix64;

/// Draws patch masks for batches of one model configuration.
#[derive(Debug, Clone)]
pub struct MaskSampler {
    leads: usize,
    patches: usize,
    masked: usize,
    masking: Masking,
}

impl MaskSampler {
    /// A sampler for `cfg`'s N and K.
    pub fn new(cfg: &ModelConfig) -> Self {
        MaskSampler {
            leads: cfg.leads,
            patches: cfg.patches_per_lead(),
            masked: cfg.masked_per_lead(),
            masking: cfg.masking,
        }
    }

    /// Overwrites `batch.patch_mask` from `batch.lead_mask`. Sample `b` of the batch is sample
    /// `first + b` of the step's global batch; the mask of (sample, lead) depends only on
    /// (seed, step, that index, lead) (aligned: on (seed, step, that index), so every lead of
    /// the sample draws the same patches), so a sample gets the same mask whatever micro-batch,
    /// rank or batch size it is trained in.
    pub fn fill(&self, seed: u64, step: u64, first: u64, batch: &mut HostBatch) {
        let (l, n) = (self.leads, self.patches);
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for b in 0..batch.batch {
            for lead in 0..l {
                let row = &mut batch.patch_mask[(b * l + lead) * n..(b * l + lead + 1) * n];
                row.fill(0);
                if batch.lead_mask[b * l + lead] != 1 {
                    continue;
                }
                let index = first + b as u64;
                let mut rng = match self.masking {
                    Masking::PerLead => {
                        SplitMix64::from_words(&[seed, step, 0, index, lead as u64])
                    }
                    Masking::Aligned => SplitMix64::from_words(&[seed, step, 1, index]),
                };
                order.clear();
                order.extend(0..n);
                // Partial Fisher-Yates: the first `masked` positions are a uniform random subset.
                for i in 0..self.masked {
                    let j = i + rng.below((n - i) as u64) as usize;
                    order.swap(i, j);
                    row[order[i]] = 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cfg: &ModelConfig) -> HostBatch {
        let mut hb = HostBatch::new(cfg, 3);
        hb.lead_mask.fill(1);
        hb.lead_mask[12 + 4] = 0;
        hb.lead_mask[24..36].fill(0);
        hb.lead_mask[24 + 1] = 1;
        hb
    }

    #[test]
    fn masks_are_valid_deterministic_and_vary() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let sampler = MaskSampler::new(&cfg);
        let mut a = batch(&cfg);
        sampler.fill(11, 5, 0, &mut a);
        a.validate(&cfg).unwrap();
        let mut b = batch(&cfg);
        sampler.fill(11, 5, 0, &mut b);
        assert_eq!(a.patch_mask, b.patch_mask);
        sampler.fill(11, 6, 0, &mut b);
        assert_ne!(a.patch_mask, b.patch_mask);
        b.validate(&cfg).unwrap();
        let n = cfg.patches_per_lead();
        assert_ne!(a.patch_mask[0..n], a.patch_mask[n..2 * n]);
    }

    #[test]
    fn aligned_masks_hide_the_same_moments_in_every_present_lead() {
        let mut cfg = ModelConfig::preset("nano").unwrap();
        cfg.masking = Masking::Aligned;
        let (l, n) = (cfg.leads, cfg.patches_per_lead());
        let sampler = MaskSampler::new(&cfg);
        let mut a = batch(&cfg);
        sampler.fill(11, 5, 0, &mut a);
        a.validate(&cfg).unwrap();
        for b in 0..a.batch {
            let present: Vec<usize> = (0..l).filter(|&i| a.lead_mask[b * l + i] == 1).collect();
            let rows: Vec<&[u8]> = present
                .iter()
                .map(|&i| &a.patch_mask[(b * l + i) * n..(b * l + i + 1) * n])
                .collect();
            assert!(rows.iter().all(|r| *r == rows[0]), "sample {b}");
            let absent = (0..l).filter(|i| !present.contains(i));
            for i in absent {
                assert!(a.patch_mask[(b * l + i) * n..(b * l + i + 1) * n]
                    .iter()
                    .all(|&m| m == 0));
            }
        }
        // Samples differ, and a sample's mask does not depend on the batch it is in.
        assert_ne!(a.patch_mask[..n], a.patch_mask[l * n..(l + 1) * n]);
        let mut alone = HostBatch::new(&cfg, 1);
        alone.lead_mask.copy_from_slice(&a.lead_mask[2 * l..3 * l]);
        sampler.fill(11, 5, 2, &mut alone);
        assert_eq!(alone.patch_mask, a.patch_mask[2 * l * n..3 * l * n]);
    }

    /// Per lead, a sample's mask depends on its index in the step's global batch, not on its
    /// place in the micro-batch: the third sample alone (first = 2) gets the masks it got as
    /// the third of three.
    #[test]
    fn per_lead_masks_do_not_depend_on_the_micro_batch() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let (l, n) = (cfg.leads, cfg.patches_per_lead());
        let sampler = MaskSampler::new(&cfg);
        let mut a = batch(&cfg);
        a.lead_mask[2 * l..3 * l].fill(1);
        sampler.fill(11, 5, 0, &mut a);
        let mut alone = HostBatch::new(&cfg, 1);
        alone.lead_mask.fill(1);
        sampler.fill(11, 5, 2, &mut alone);
        assert_eq!(alone.patch_mask, a.patch_mask[2 * l * n..3 * l * n]);
        sampler.fill(11, 5, 0, &mut alone);
        assert_eq!(alone.patch_mask, a.patch_mask[..l * n]);
    }

    #[test]
    fn every_patch_is_masked_equally_often() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let sampler = MaskSampler::new(&cfg);
        let n = cfg.patches_per_lead();
        let mut hb = HostBatch::new(&cfg, 1);
        hb.lead_mask[0] = 1;
        let mut counts = vec![0usize; n];
        let draws = 4000;
        for step in 0..draws {
            sampler.fill(1, step, 0, &mut hb);
            for (c, &m) in counts.iter_mut().zip(&hb.patch_mask[..n]) {
                *c += m as usize;
            }
        }
        let expected = draws as f64 * cfg.masked_per_lead() as f64 / n as f64;
        for c in counts {
            assert!(
                (c as f64 - expected).abs() < 0.06 * expected,
                "{c} vs {expected}"
            );
        }
    }
}
