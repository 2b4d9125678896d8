//! Seeded parameter initialisation (docs/model.md): Linear weights Xavier-uniform, biases 0,
//! LayerNorm weights 1, lead embeddings and the mask token normal with std 0.02.

use super::layout::{ParamEntry, ParamLayout};
use super::rng::SplitMix64;

/// How one tensor is initialised, from its name and decay flag.
fn fill_entry(entry: &ParamEntry, rng: &mut SplitMix64, out: &mut [f32]) {
    let name = entry.name.as_str();
    if entry.decay {
        // Linear weight (out, in): U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
        let (fan_out, fan_in) = (entry.shape[0] as f64, entry.shape[1] as f64);
        let bound = (6.0 / (fan_in + fan_out)).sqrt();
        for v in out {
            *v = ((2.0 * rng.next_f64() - 1.0) * bound) as f32;
        }
    } else if matches!(name, "lead_embed" | "dec_lead_embed" | "mask_token") {
        for v in out {
            *v = (0.02 * rng.normal()) as f32;
        }
    } else if name.ends_with("norm.weight")
        || name.ends_with("ln1.weight")
        || name.ends_with("ln2.weight")
    {
        out.fill(1.0);
    } else {
        out.fill(0.0);
    }
}

/// A freshly initialised parameter buffer. Each tensor draws from its own stream
/// (seed, tensor index), so the result depends only on the seed and the layout.
pub(crate) fn init_params(layout: &ParamLayout, seed: u64) -> Vec<f32> {
    let mut params = vec![0.0f32; layout.total];
    for (index, entry) in layout.entries.iter().enumerate() {
        let mut rng = SplitMix64::from_words(&[seed, index as u64]);
        fill_entry(entry, &mut rng, &mut params[entry.offset..entry.end()]);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ModelConfig;

    #[test]
    fn follows_the_documented_rules() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let layout = ParamLayout::new(&cfg);
        let p = init_params(&layout, 5);
        let slice = |name: &str| {
            let e = layout.get(name).unwrap();
            &p[e.offset..e.end()]
        };
        assert!(slice("enc.0.ln1.weight").iter().all(|&v| v == 1.0));
        assert!(slice("dec_norm.weight").iter().all(|&v| v == 1.0));
        assert!(slice("enc.1.mlp.fc1.bias").iter().all(|&v| v == 0.0));
        let bound = (6.0f32 / (64.0 + 192.0)).sqrt();
        let qkv = slice("enc.0.attn.qkv.weight");
        assert!(qkv.iter().all(|v| v.abs() <= bound));
        assert!(qkv.iter().any(|v| v.abs() > 0.9 * bound));
        let lead = slice("lead_embed");
        let std = (lead.iter().map(|v| v * v).sum::<f32>() / lead.len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.004, "{std}");
        assert_eq!(p, init_params(&layout, 5));
        assert_ne!(p, init_params(&layout, 6));
    }

    /// Every tensor of the model, not just a sample of them: Linear weights uniform within
    /// their Xavier bound (RMS bound / sqrt 3), the lead embeddings and the mask token normal with
    /// std 0.02, every LayerNorm weight 1, every bias 0; tensors of one shape draw different
    /// values (each its own stream).
    #[test]
    fn every_tensor_follows_its_rule_from_a_stream_of_its_own() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let layout = ParamLayout::new(&cfg);
        let p = init_params(&layout, 11);
        let slice = |e: &ParamEntry| &p[e.offset..e.end()];
        for e in &layout.entries {
            let (name, values) = (e.name.as_str(), slice(e));
            let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
            if e.decay {
                let bound = (6.0 / (e.shape[0] + e.shape[1]) as f32).sqrt();
                assert!(values.iter().all(|v| v.abs() <= bound), "{name}");
                let expected = bound / 3f32.sqrt();
                assert!((rms - expected).abs() < 0.1 * expected, "{name}: rms {rms}");
            } else if ["lead_embed", "dec_lead_embed", "mask_token"].contains(&name) {
                assert!((0.015..0.025).contains(&rms), "{name}: std {rms}");
            } else if [".ln1.weight", ".ln2.weight", "_norm.weight"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                assert!(values.iter().all(|&v| v == 1.0), "{name}");
            } else {
                assert!(name.ends_with(".bias"), "{name}: no rule");
                assert!(values.iter().all(|&v| v == 0.0), "{name}");
            }
        }
        let get = |name: &str| slice(layout.get(name).unwrap());
        assert_ne!(get("enc.0.attn.qkv.weight"), get("enc.1.attn.qkv.weight"));
    }
}
