//! Finite-difference check of the whole model on an odd configuration the parity fixture does not
//! cover: raw targets (norm_pix = false), 3 heads, patch 50, mask ratio 0.5, MLP ratio 2, and
//! samples with different lead sets. For every parameter tensor, its largest gradient entry is
//! compared with a central difference of the loss.

mod common;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::{HostBatch, Mae, MaskSampler, ModelConfig};

fn config() -> ModelConfig {
    ModelConfig {
        leads: 12,
        samples: 300,
        patch: 50,
        dim: 24,
        depth: 1,
        heads: 3,
        dec_dim: 16,
        dec_depth: 1,
        dec_heads: 2,
        mlp_ratio: 2,
        mask_ratio: 0.5,
        norm_pix: false,
        ..ModelConfig::default()
    }
}

fn batch(cfg: &ModelConfig) -> HostBatch {
    let mut hb = HostBatch::new(cfg, 2);
    let (l, s) = (cfg.leads, cfg.samples);
    for b in 0..2 {
        for lead in 0..l {
            hb.lead_mask[b * l + lead] = (b == 0 || lead % 4 == 2) as u8;
            for t in 0..s {
                let x = t as f32 / 40.0 + lead as f32 * 0.7 + b as f32;
                hb.x[(b * l + lead) * s + t] = x.sin() + 0.5 * (2.3 * x).cos();
            }
        }
    }
    MaskSampler::new(cfg).fill(3, 0, 0, &mut hb);
    hb
}

#[test]
fn gradients_match_central_differences() {
    let cfg = config();
    let hb = batch(&cfg);
    let mut mae = Mae::new(CpuBackend::new(), cfg, 2).unwrap();
    mae.init_params(4);
    let params = common::perturbed(&mae.params_to_host());
    mae.load_params(&params).unwrap();
    mae.zero_grads();
    mae.forward_backward(&hb, 1.0).unwrap();
    let grads = mae.grads_to_host();
    let entries = mae.layout().entries.clone();
    let worst = common::worst_gradient_error(&entries, &params, &grads, |p| {
        mae.load_params(p).unwrap();
        mae.forward_loss(&hb).unwrap() as f64
    });
    assert!(worst < 5e-3, "worst relative error {worst:.2e}");
}
