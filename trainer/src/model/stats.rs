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

    /// A FLOP count written out by hand: the forward pass's terms, the patch embedding first,
    /// and the forward and training totals.
    struct HandCount {
        terms: [(&'static str, u64); 5],
        forward: u64,
        train: u64,
    }

    fn assert_hand_count(cfg: &ModelConfig, count: &HandCount) {
        let sum: u64 = count.terms.iter().map(|(_, flops)| flops).sum();
        assert_eq!(sum, count.forward, "the hand count's terms add up");
        let patch_embed = count.terms[0].1;
        assert_eq!(
            count.train,
            count.forward + patch_embed + 2 * (count.forward - patch_embed),
            "the hand count's backward"
        );
        let s = ModelStats::new(cfg);
        assert_eq!(s.forward_flops, count.forward as f64, "{:?}", count.terms);
        assert_eq!(s.train_flops, count.train as f64, "{:?}", count.terms);
    }

    // The counts below follow docs/model.md ("Forward") and the GEMMs of mae/pass.rs and
    // block.rs. A Linear(in -> out) over T tokens costs 2 T in out FLOPs (a multiply-add is 2).
    // Attention runs within one sample's T tokens: q k^T and p v each cost 2 T^2 hd per head,
    // 2 T^2 W over the H heads of width W. Elementwise work (LayerNorm, GELU, softmax, the
    // embeddings' additions, the loss) is not counted. Per sample with every lead present:
    // T_enc = L K = 12 x 7 = 84 visible tokens, T_dec = L N = 12 x 30 = 360 decoder tokens
    // (every patch, masked or not; dec_pred runs over all of them), P = 75, mlp_ratio 4.
    // The backward costs two forwards (input and weight gradients) of every term but the patch
    // embedding, whose input (the signal) needs no gradient: one forward of it (weights only).
    // So train = forward + patch_embed + 2 (forward - patch_embed).

    #[test]
    fn nano_flops_match_a_count_by_hand() {
        // nano: D 64, depth 2, M 256; Dd 32, depth_d 1, Md 128.
        let nano = ModelConfig::preset("nano").unwrap();
        let twelve = HandCount {
            terms: [
                // Linear(75 -> 64) over 84 tokens: 2 x 84 x 75 x 64.
                ("patch_embed", 806_400),
                // Per block over 84 tokens: qkv 2 x 84 x 64 x 192 = 2,064,384; proj
                // 2 x 84 x 64 x 64 = 688,128; fc1 and fc2 2 x 84 x 64 x 256 = 2,752,512 each;
                // q k^T and p v 2 x 84^2 x 64 = 903,168 each: 10,063,872, times 2 blocks.
                ("encoder blocks", 20_127_744),
                // Linear(64 -> 32) over the 84 encoder tokens: 2 x 84 x 64 x 32.
                ("dec_embed", 344_064),
                // One block over 360 tokens: qkv 2 x 360 x 32 x 96 = 2,211,840; proj
                // 2 x 360 x 32 x 32 = 737,280; fc1 and fc2 2 x 360 x 32 x 128 = 2,949,120 each;
                // q k^T and p v 2 x 360^2 x 32 = 8,294,400 each.
                ("decoder blocks", 25_436_160),
                // Linear(32 -> 75) over 360 tokens: 2 x 360 x 32 x 75.
                ("dec_pred", 1_728_000),
            ],
            forward: 48_442_368,
            // 48,442,368 + 806,400 + 2 x 47,635,968.
            train: 144_520_704,
        };
        assert_hand_count(&nano, &twelve);

        // One lead: T_enc = 7, T_dec = 30.
        let one = HandCount {
            terms: [
                // 2 x 7 x 75 x 64.
                ("patch_embed", 67_200),
                // Per block: qkv 2 x 7 x 64 x 192 = 172,032; proj 2 x 7 x 64 x 64 = 57,344;
                // fc1 and fc2 2 x 7 x 64 x 256 = 229,376 each; q k^T and p v 2 x 7^2 x 64 =
                // 6,272 each: 700,672, times 2 blocks.
                ("encoder blocks", 1_401_344),
                // 2 x 7 x 64 x 32.
                ("dec_embed", 28_672),
                // qkv 2 x 30 x 32 x 96 = 184,320; proj 2 x 30 x 32 x 32 = 61,440; fc1 and fc2
                // 2 x 30 x 32 x 128 = 245,760 each; q k^T and p v 2 x 30^2 x 32 = 57,600 each.
                ("decoder blocks", 852_480),
                // 2 x 30 x 32 x 75.
                ("dec_pred", 144_000),
            ],
            forward: 2_493_696,
            // 2,493,696 + 67,200 + 2 x 2,426,496.
            train: 7_413_888,
        };
        let one_lead = ModelConfig {
            leads: 1,
            ..nano.clone()
        };
        assert_hand_count(&one_lead, &one);
        // A single-lead sample in the 12-lead model costs the same (what a run counts).
        let mut mask = [0u8; 12];
        mask[6] = 1;
        assert_eq!(FlopCounter::new(&nano).batch_flops(&mask), one.train as f64);
    }

    #[test]
    fn tiny_flops_match_a_count_by_hand() {
        // tiny: D 192, depth 12, M 768; Dd 256, depth_d 4, Md 1024.
        let tiny = ModelConfig::preset("tiny").unwrap();
        let twelve = HandCount {
            terms: [
                // 2 x 84 x 75 x 192.
                ("patch_embed", 2_419_200),
                // Per block over 84 tokens: qkv 2 x 84 x 192 x 576 = 18,579,456; proj
                // 2 x 84 x 192 x 192 = 6,193,152; fc1 and fc2 2 x 84 x 192 x 768 = 24,772,608
                // each; q k^T and p v 2 x 84^2 x 192 = 2,709,504 each: 79,736,832, times 12.
                ("encoder blocks", 956_841_984),
                // 2 x 84 x 192 x 256.
                ("dec_embed", 8_257_536),
                // Per block over 360 tokens: qkv 2 x 360 x 256 x 768 = 141,557,760; proj
                // 2 x 360 x 256 x 256 = 47,185,920; fc1 and fc2 2 x 360 x 256 x 1024 =
                // 188,743,680 each; q k^T and p v 2 x 360^2 x 256 = 66,355,200 each:
                // 698,941,440, times 4.
                ("decoder blocks", 2_795_765_760),
                // 2 x 360 x 256 x 75.
                ("dec_pred", 13_824_000),
            ],
            forward: 3_777_108_480,
            // 3,777,108,480 + 2,419,200 + 2 x 3,774,689,280.
            train: 11_328_906_240,
        };
        assert_hand_count(&tiny, &twelve);

        // One lead: T_enc = 7, T_dec = 30.
        let one = HandCount {
            terms: [
                // 2 x 7 x 75 x 192.
                ("patch_embed", 201_600),
                // Per block: qkv 2 x 7 x 192 x 576 = 1,548,288; proj 2 x 7 x 192 x 192 =
                // 516,096; fc1 and fc2 2 x 7 x 192 x 768 = 2,064,384 each; q k^T and p v
                // 2 x 7^2 x 192 = 18,816 each: 6,230,784, times 12.
                ("encoder blocks", 74_769_408),
                // 2 x 7 x 192 x 256.
                ("dec_embed", 688_128),
                // Per block: qkv 2 x 30 x 256 x 768 = 11,796,480; proj 2 x 30 x 256 x 256 =
                // 3,932,160; fc1 and fc2 2 x 30 x 256 x 1024 = 15,728,640 each; q k^T and p v
                // 2 x 30^2 x 256 = 460,800 each: 48,107,520, times 4.
                ("decoder blocks", 192_430_080),
                // 2 x 30 x 256 x 75.
                ("dec_pred", 1_152_000),
            ],
            forward: 269_241_216,
            // 269,241,216 + 201,600 + 2 x 269,039,616.
            train: 807_522_048,
        };
        let one_lead = ModelConfig {
            leads: 1,
            ..tiny.clone()
        };
        assert_hand_count(&one_lead, &one);
        let mut mask = [0u8; 12];
        mask[1] = 1;
        assert_eq!(FlopCounter::new(&tiny).batch_flops(&mask), one.train as f64);
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
