//! `TokenPlan`: the host-side index arrays that pack a batch's tokens without padding
//! (docs/model.md, "Token packing"): encoder and decoder token triples, the decoder's source rows,
//! the masked patches that form the loss, and per-sample sequence offsets. Capacity is reserved
//! once for the maximum batch, so rebuilding a plan every step does not allocate.

use ecgfm_kernels::MASKED_ROW;

use super::batch::HostBatch;
use super::config::ModelConfig;

/// Index arrays of one batch (all u32, as the backend's index buffers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenPlan {
    /// (T_enc, 3): (b, l, n) of each visible patch, lead-major per sample.
    pub enc_tokens: Vec<u32>,
    /// (T_dec, 3): (b, l, n) of every patch of every present lead.
    pub dec_tokens: Vec<u32>,
    /// (T_dec): encoder row feeding each decoder row, or `MASKED_ROW` for the mask token.
    pub dec_src: Vec<u32>,
    /// (M, 3): (b, l, n) of each masked patch (the loss targets).
    pub masked_tokens: Vec<u32>,
    /// (M): decoder row of each masked patch.
    pub masked_rows: Vec<u32>,
    /// (B + 1): encoder sequence offsets.
    pub cu_enc: Vec<u32>,
    /// (B + 1): decoder sequence offsets.
    pub cu_dec: Vec<u32>,
}

impl TokenPlan {
    /// An empty plan with room for `max_batch` full samples.
    pub(crate) fn with_capacity(cfg: &ModelConfig, max_batch: usize) -> Self {
        let t_enc = max_batch * cfg.leads * cfg.visible_per_lead();
        let t_dec = max_batch * cfg.leads * cfg.patches_per_lead();
        let masked = max_batch * cfg.leads * cfg.masked_per_lead();
        TokenPlan {
            enc_tokens: Vec::with_capacity(3 * t_enc),
            dec_tokens: Vec::with_capacity(3 * t_dec),
            dec_src: Vec::with_capacity(t_dec),
            masked_tokens: Vec::with_capacity(3 * masked),
            masked_rows: Vec::with_capacity(masked),
            cu_enc: Vec::with_capacity(max_batch + 1),
            cu_dec: Vec::with_capacity(max_batch + 1),
        }
    }

    /// Rebuilds the plan for `batch` (which must already be validated).
    pub(crate) fn build(&mut self, cfg: &ModelConfig, batch: &HostBatch) {
        let (l, n) = (cfg.leads, cfg.patches_per_lead());
        self.enc_tokens.clear();
        self.dec_tokens.clear();
        self.dec_src.clear();
        self.masked_tokens.clear();
        self.masked_rows.clear();
        self.cu_enc.clear();
        self.cu_dec.clear();
        self.cu_enc.push(0);
        self.cu_dec.push(0);
        for b in 0..batch.batch {
            for lead in 0..l {
                if batch.lead_mask[b * l + lead] != 1 {
                    continue;
                }
                for p in 0..n {
                    let triple = [b as u32, lead as u32, p as u32];
                    let dec_row = self.dec_src.len() as u32;
                    self.dec_tokens.extend_from_slice(&triple);
                    if batch.patch_mask[(b * l + lead) * n + p] == 1 {
                        self.dec_src.push(MASKED_ROW);
                        self.masked_tokens.extend_from_slice(&triple);
                        self.masked_rows.push(dec_row);
                    } else {
                        self.dec_src.push(self.enc_tokens.len() as u32 / 3);
                        self.enc_tokens.extend_from_slice(&triple);
                    }
                }
            }
            self.cu_enc.push(self.t_enc() as u32);
            self.cu_dec.push(self.t_dec() as u32);
        }
    }

    /// Encoder tokens T_enc.
    pub(crate) fn t_enc(&self) -> usize {
        self.enc_tokens.len() / 3
    }

    /// Decoder tokens T_dec.
    pub(crate) fn t_dec(&self) -> usize {
        self.dec_src.len()
    }

    /// Masked patches M (the loss terms).
    pub(crate) fn masked(&self) -> usize {
        self.masked_rows.len()
    }

    /// Samples B.
    pub(crate) fn seqs(&self) -> usize {
        self.cu_enc.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_present_leads_only_and_links_rows() {
        let mut cfg = ModelConfig::preset("nano").unwrap();
        cfg.samples = 300; // N = 4, K = 1
        let mut hb = HostBatch::new(&cfg, 2);
        hb.lead_mask[0] = 1;
        hb.lead_mask[5] = 1;
        hb.lead_mask[12 + 11] = 1;
        let n = 4;
        hb.patch_mask[..n].copy_from_slice(&[1, 0, 1, 1]);
        hb.patch_mask[5 * n..6 * n].copy_from_slice(&[1, 1, 0, 1]);
        hb.patch_mask[23 * n..24 * n].copy_from_slice(&[0, 1, 1, 1]);
        hb.validate(&cfg).unwrap();
        let mut plan = TokenPlan::with_capacity(&cfg, 2);
        let caps = (plan.enc_tokens.capacity(), plan.dec_tokens.capacity());
        plan.build(&cfg, &hb);
        assert_eq!(plan.enc_tokens, vec![0, 0, 1, 0, 5, 2, 1, 11, 0]);
        assert_eq!(plan.cu_enc, vec![0, 2, 3]);
        assert_eq!(plan.cu_dec, vec![0, 8, 12]);
        let m = MASKED_ROW;
        assert_eq!(plan.dec_src, vec![m, 0, m, m, m, m, 1, m, 2, m, m, m]);
        assert_eq!(plan.masked_rows, vec![0, 2, 3, 4, 5, 7, 9, 10, 11]);
        assert_eq!(&plan.masked_tokens[..6], &[0, 0, 0, 0, 0, 2]);
        assert_eq!((plan.t_enc(), plan.t_dec(), plan.masked()), (3, 12, 9));
        assert_eq!(
            caps,
            (plan.enc_tokens.capacity(), plan.dec_tokens.capacity())
        );
    }
}
