//! Token packing: samples in one batch never see each other (attention stays within a sample),
//! the batch loss is the masked-patch-weighted mean of the per-sample losses, and a model reused
//! for a smaller batch than its maximum gives the same results as one sized for that batch.

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::{HostBatch, Mae, MaskSampler, ModelConfig};

/// Sample `b` of a batch: its own signal and lead set (sample 1 has 5 leads, sample 2 one lead).
fn fill_sample(cfg: &ModelConfig, hb: &mut HostBatch, slot: usize, sample: usize) {
    let (l, s) = (cfg.leads, cfg.samples);
    for lead in 0..l {
        let present = match sample {
            0 => true,
            1 => lead % 2 == 0 && lead < 10,
            _ => lead == 1,
        };
        hb.lead_mask[slot * l + lead] = present as u8;
        for t in 0..s {
            let time = t as f32 / 250.0;
            let f = 1.1 + 0.37 * sample as f32 + 0.13 * lead as f32;
            hb.x[(slot * l + lead) * s + t] = (std::f32::consts::TAU * f * time).sin()
                + 0.3 * (17.0 * time + lead as f32 * sample as f32).cos();
        }
    }
}

/// A batch of the given samples, each masked as it would be in slot 0 of its own batch, so the
/// same sample gets the same mask whatever batch it is in.
fn batch_of(cfg: &ModelConfig, samples: &[usize]) -> HostBatch {
    let mut hb = HostBatch::new(cfg, samples.len());
    let sampler = MaskSampler::new(cfg);
    let rows = cfg.leads * cfg.patches_per_lead();
    for (slot, &sample) in samples.iter().enumerate() {
        let mut single = HostBatch::new(cfg, 1);
        fill_sample(cfg, &mut single, 0, sample);
        sampler.fill(9, sample as u64, 0, &mut single);
        fill_sample(cfg, &mut hb, slot, sample);
        hb.patch_mask[slot * rows..(slot + 1) * rows].copy_from_slice(&single.patch_mask);
    }
    hb
}

fn model(cfg: &ModelConfig, max_batch: usize) -> Mae<CpuBackend> {
    let mut mae = Mae::new(CpuBackend::new(), cfg.clone(), max_batch).unwrap();
    mae.init_params(21);
    mae
}

#[test]
fn batch_loss_is_the_weighted_mean_of_per_sample_losses() {
    let cfg = ModelConfig::preset("nano").unwrap();
    let mut mae = model(&cfg, 3);
    let masked = cfg.masked_per_lead() as f64;
    let mut weighted = 0.0f64;
    let mut weights = 0.0f64;
    for sample in 0..3 {
        let hb = batch_of(&cfg, &[sample]);
        let loss = mae.forward_loss(&hb).unwrap() as f64;
        let w = masked * hb.present_leads(&cfg, 0) as f64;
        weighted += w * loss;
        weights += w;
    }
    let expected = weighted / weights;
    let together = mae.forward_loss(&batch_of(&cfg, &[0, 1, 2])).unwrap() as f64;
    let rel = (together - expected).abs() / expected;
    println!("batch loss {together:.7}, weighted per-sample mean {expected:.7}, rel {rel:.2e}");
    assert!(rel < 1e-5, "samples interact: rel error {rel:.2e}");
}

#[test]
fn a_reused_larger_model_matches_an_exactly_sized_one() {
    let cfg = ModelConfig::preset("nano").unwrap();
    let mut big = model(&cfg, 4);
    big.zero_grads();
    big.forward_backward(&batch_of(&cfg, &[0, 0, 1, 2]), 1.0)
        .unwrap();
    let small_batch = batch_of(&cfg, &[2, 1]);
    big.zero_grads();
    big.forward_backward(&small_batch, 1.0).unwrap();
    let loss_big = big.loss_sum();
    let mut exact = model(&cfg, 2);
    exact.zero_grads();
    exact.forward_backward(&small_batch, 1.0).unwrap();
    let loss_exact = exact.loss_sum();
    assert_eq!(loss_big.to_bits(), loss_exact.to_bits());
    assert_eq!(big.grads_to_host(), exact.grads_to_host());
}
