//! Model statistics for the start-up table: parameter counts, tokens per sample and training
//! FLOPs per sample (forward + backward) for a full 12-lead sample; `FlopCounter`, the FLOPs a
//! batch really costs from the leads its samples have.

use std::collections::BTreeMap;

use super::config::ModelConfig;
use super::layout::ParamLayout;

/// Sizes and costs of one model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStats {
    /// Parameters of the encoder.
    pub encoder_params: usize,
    /// Parameters of the decoder.
    pub decoder_params: usize,
    /// Encoder tokens of a sample with every lead present (L * K).
    pub encoder_tokens: usize,
    /// Decoder tokens of a sample with every lead present (L * N).
    pub decoder_tokens: usize,
    /// Forward FLOPs of one full sample (matmuls and attention, 2 FLOPs per multiply-add).
    pub forward_flops: f64,
    /// Forward + backward FLOPs of one full sample.
    pub train_flops: f64,
}

/// Forward FLOPs of `depth` pre-LN blocks of width `w`, MLP width `m`, over one sequence of `t`
/// tokens: qkv, proj, fc1, fc2 matmuls plus the two attention products (q k^T and p v).
fn blocks_forward_flops(depth: usize, t: usize, w: usize, m: usize) -> f64 {
    let (t, w, m) = (t as f64, w as f64, m as f64);
    let matmuls = 2.0 * t * (3.0 * w * w + w * w + 2.0 * w * m);
    let attention = 4.0 * t * t * w;
    depth as f64 * (matmuls + attention)
}

impl ModelStats {
    /// Statistics of `cfg`.
    pub fn new(cfg: &ModelConfig) -> Self {
        let layout = ParamLayout::new(cfg);
        let (forward_flops, train_flops) = sample_flops(cfg, cfg.leads);
        ModelStats {
            encoder_params: layout.encoder_params(),
            decoder_params: layout.decoder_params(),
            encoder_tokens: cfg.leads * cfg.visible_per_lead(),
            decoder_tokens: cfg.leads * cfg.patches_per_lead(),
            forward_flops,
            train_flops,
        }
    }

    /// Total parameters.
    pub fn total_params(&self) -> usize {
        self.encoder_params + self.decoder_params
    }
}

/// Forward and training (forward + backward) FLOPs of one sample with `leads` leads present:
/// the model packs only present leads' tokens, and attention runs within each sample.
fn sample_flops(cfg: &ModelConfig, leads: usize) -> (f64, f64) {
    let te = leads * cfg.visible_per_lead();
    let td = leads * cfg.patches_per_lead();
    let (p, d, dd) = (cfg.patch as f64, cfg.dim as f64, cfg.dec_dim as f64);
    let patch_embed = 2.0 * te as f64 * p * d;
    let rest = blocks_forward_flops(cfg.depth, te, cfg.dim, cfg.mlp_dim())
        + 2.0 * te as f64 * d * dd
        + blocks_forward_flops(cfg.dec_depth, td, cfg.dec_dim, cfg.dec_mlp_dim())
        + 2.0 * td as f64 * dd * p;
    // Backward costs two forwards (input and weight gradients), except the patch embedding,
    // whose input (the signal) needs no gradient.
    (patch_embed + rest, 2.0 * patch_embed + 3.0 * rest)
}

/// Training FLOPs of a sample by its number of present leads, counted per batch: what a run
/// really computes when its data has fewer leads than the model (single-lead recordings).
#[derive(Debug, Clone, PartialEq)]
pub struct FlopCounter {
    /// Entry `n`: training FLOPs of a sample with `n` leads present.
    by_leads: Vec<f64>,
    leads: usize,
}

impl FlopCounter {
    pub fn new(cfg: &ModelConfig) -> Self {
        FlopCounter {
            by_leads: (0..=cfg.leads).map(|n| sample_flops(cfg, n).1).collect(),
            leads: cfg.leads,
        }
    }

    /// Mean training FLOPs of a sample when samples have `n` present leads with weight
    /// `mix[n]` (e.g. a dataset's rows by present leads); a full sample's for an empty mix.
    pub fn mean_sample_flops(&self, mix: &BTreeMap<u8, f64>) -> f64 {
        let total: f64 = mix.values().sum();
        if total <= 0.0 {
            return self.by_leads[self.leads];
        }
        mix.iter()
            .map(|(&n, w)| w * self.by_leads[usize::from(n).min(self.leads)])
            .sum::<f64>()
            / total
    }

    /// Entries of a count of samples by present leads (0 to all of the model's leads).
    pub fn lead_bins(&self) -> usize {
        self.by_leads.len()
    }

    /// Adds the samples of the batch whose lead mask (B, L) is `lead_mask` to `samples_by_leads`
    /// (entry `n`: samples with `n` leads present; `lead_bins()` entries).
    pub fn count_leads(&self, lead_mask: &[u8], samples_by_leads: &mut [u64]) {
        for sample in lead_mask.chunks_exact(self.leads) {
            samples_by_leads[sample.iter().filter(|&&m| m != 0).count()] += 1;
        }
    }

    /// Training FLOPs (forward + backward) of samples counted by present leads.
    pub fn flops_of(&self, samples_by_leads: &[u64]) -> f64 {
        samples_by_leads
            .iter()
            .zip(&self.by_leads)
            .map(|(&n, flops)| n as f64 * flops)
            .sum()
    }

    /// Training FLOPs (forward + backward) of the batch whose lead mask (B, L) is `lead_mask`.
    pub fn batch_flops(&self, lead_mask: &[u8]) -> f64 {
        let mut samples_by_leads = vec![0; self.lead_bins()];
        self.count_leads(lead_mask, &mut samples_by_leads);
        self.flops_of(&samples_by_leads)
    }
}

fn human(value: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, unit) in UNITS {
        if value >= scale {
            return format!("{:.2}{unit}", value / scale);
        }
    }
    format!("{value:.0}")
}

/// The start-up table printed before training: configuration and the statistics above.
pub fn render_table(cfg: &ModelConfig) -> String {
    let s = ModelStats::new(cfg);
    let rows = [
        (
            "encoder".to_string(),
            format!(
                "D={} depth={} heads={} mlp={}",
                cfg.dim,
                cfg.depth,
                cfg.heads,
                cfg.mlp_dim()
            ),
        ),
        (
            "decoder".to_string(),
            format!(
                "Dd={} depth={} heads={} mlp={}",
                cfg.dec_dim,
                cfg.dec_depth,
                cfg.dec_heads,
                cfg.dec_mlp_dim()
            ),
        ),
        (
            "input".to_string(),
            format!(
                "L={} S={} P={} N={} K={} mask_ratio={} norm_pix={}",
                cfg.leads,
                cfg.samples,
                cfg.patch,
                cfg.patches_per_lead(),
                cfg.visible_per_lead(),
                cfg.mask_ratio,
                cfg.norm_pix
            ),
        ),
        (
            "params".to_string(),
            format!(
                "{} total ({} encoder, {} decoder)",
                human(s.total_params() as f64),
                human(s.encoder_params as f64),
                human(s.decoder_params as f64)
            ),
        ),
        (
            "tokens/sample".to_string(),
            format!("{} encoder, {} decoder", s.encoder_tokens, s.decoder_tokens),
        ),
        (
            "FLOPs/sample".to_string(),
            format!(
                "{} forward, {} train (fwd+bwd)",
                human(s.forward_flops),
                human(s.train_flops)
            ),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_encoder_size_and_flops_are_plausible() {
        let cfg = ModelConfig::preset("base").unwrap();
        let s = ModelStats::new(&cfg);
        // ViT-B encoder: 12 blocks of 7.09M parameters plus embeddings.
        assert!(s.encoder_params > 85_000_000 && s.encoder_params < 86_000_000);
        assert_eq!(s.encoder_tokens, 84);
        assert_eq!(s.decoder_tokens, 360);
        // Dominated by 24 * T * D^2 per block: 12 * 24 * 84 * 768^2 ~ 14.3 GFLOP forward.
        assert!(s.forward_flops > 14.0e9 && s.forward_flops < 20.0e9);
        assert!(s.train_flops > 2.9 * s.forward_flops && s.train_flops < 3.0 * s.forward_flops);
    }

    #[test]
    fn a_batch_counts_the_flops_of_its_present_leads() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let full = ModelStats::new(&cfg).train_flops;
        let counter = FlopCounter::new(&cfg);
        let (all, none) = (vec![1u8; 12], vec![0u8; 12]);
        let mut one = none.clone();
        one[1] = 1;
        assert_eq!(
            counter.batch_flops(&[all.clone(), all].concat()),
            2.0 * full
        );
        let single = counter.batch_flops(&one);
        // A sample with one lead costs what the same model built for one lead costs per sample:
        // a twelfth of the matmuls, a 144th of the attention.
        let one_lead = ModelConfig { leads: 1, ..cfg };
        assert_eq!(single, ModelStats::new(&one_lead).train_flops);
        assert!(
            single < full / 12.0 && single > full / 144.0,
            "{single} vs {full}"
        );
        assert_eq!(counter.batch_flops(&[one, none].concat()), single);
        let mix = BTreeMap::from([(12, 3.0), (1, 1.0)]);
        assert_eq!(counter.mean_sample_flops(&mix), (3.0 * full + single) / 4.0);
        assert_eq!(counter.mean_sample_flops(&BTreeMap::new()), full);
    }

    #[test]
    fn table_mentions_every_figure() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let table = render_table(&cfg);
        assert!(table.contains("params"));
        assert!(table.contains("84 encoder, 360 decoder"));
        assert!(table.contains("D=64 depth=2 heads=2"));
    }
}
