//! The evaluation encoder (`model::Encoder`): finite-difference gradients through the head,
//! pooling and the block stack for both poolings and both losses; its features do not depend
//! (beyond rounding) on which other samples share the batch; it loads a pretraining
//! checkpoint's encoder tensors by name, and a checkpoint of another shape is refused naming the
//! tensor; the forward-only encoder computes the same bits; gradients of passes add up.

mod common;

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::checkpoint::{self, TrainingState};
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling, Targets};
use ecgfm_trainer::{Mae, ModelConfig, OptimizerState, ParamLayout};

fn config() -> ModelConfig {
    ModelConfig {
        leads: 12,
        samples: 200,
        patch: 50,
        dim: 24,
        depth: 2,
        heads: 3,
        dec_dim: 16,
        dec_depth: 1,
        dec_heads: 2,
        mlp_ratio: 2,
        mask_ratio: 0.5,
        norm_pix: true,
        ..ModelConfig::default()
    }
}

/// Three samples with different lead sets: all 12, leads {1, 5, 9}, lead 1 only.
fn batch(cfg: &ModelConfig) -> (Vec<f32>, Vec<u8>) {
    let (l, s) = (cfg.leads, cfg.samples);
    let mut x = vec![0.0; 3 * l * s];
    let mut mask = vec![0u8; 3 * l];
    for b in 0..3 {
        for lead in 0..l {
            let present = b == 0 || (b == 1 && lead % 4 == 1) || (b == 2 && lead == 1);
            mask[b * l + lead] = u8::from(present);
            if present {
                for t in 0..s {
                    let v = t as f32 / 17.0 + lead as f32 * 0.9 + b as f32 * 0.4;
                    x[(b * l + lead) * s + t] = v.sin() + 0.3 * (3.1 * v).cos();
                }
            }
        }
    }
    (x, mask)
}

#[test]
fn gradients_match_central_differences() {
    let cfg = config();
    let (x, mask) = batch(&cfg);
    let classes = [2u32, 0, 1];
    let multi = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0];
    for (pooling, multi_label) in [(Pooling::Mean, false), (Pooling::Leads, true)] {
        let head = HeadSpec {
            pooling,
            classes: 3,
            multi_label,
        };
        let targets = match multi_label {
            true => Targets::MultiLabel(&multi),
            false => Targets::Classes(&classes),
        };
        let mut enc = Encoder::new(CpuBackend::new(), cfg.clone(), head, 3).unwrap();
        enc.init_params(9);
        let params = common::perturbed(&enc.params_to_host());
        enc.load_params(&params).unwrap();
        enc.zero_grads();
        enc.forward_backward(&x, &mask, 3, targets, 1.0).unwrap();
        let grads = enc.grads_to_host();
        let entries = enc.layout().entries.clone();
        let worst = common::worst_gradient_error(&entries, &params, &grads, |p| {
            enc.load_params(p).unwrap();
            enc.forward_loss(&x, &mask, 3, targets).unwrap() as f64
        });
        assert!(
            worst < 5e-3,
            "{pooling:?}: worst relative error {worst:.2e}"
        );
    }
}

/// Two passes add twice one pass's gradients, for both poolings: each pass starts its scratch
/// (the pooling's backward adds into it) from zero.
#[test]
fn gradients_of_two_passes_add_up() {
    let cfg = config();
    let (x, mask) = batch(&cfg);
    let targets = Targets::Classes(&[2, 0, 1]);
    for pooling in [Pooling::Mean, Pooling::Leads] {
        let head = HeadSpec {
            pooling,
            classes: 3,
            multi_label: false,
        };
        let mut enc = Encoder::new(CpuBackend::new(), cfg.clone(), head, 3).unwrap();
        enc.init_params(2);
        enc.zero_grads();
        enc.forward_backward(&x, &mask, 3, targets, 1.0).unwrap();
        let once = enc.grads_to_host();
        enc.zero_grads();
        for _ in 0..2 {
            enc.forward_backward(&x, &mask, 3, targets, 1.0).unwrap();
        }
        let max = once.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        for (twice, once) in enc.grads_to_host().iter().zip(&once) {
            assert!(
                (twice - 2.0 * once).abs() <= 1e-6 * max,
                "{pooling:?}: {twice} vs 2 x {once}"
            );
        }
    }
}

#[test]
fn features_ignore_the_rest_of_the_batch() {
    let cfg = config();
    let (x, mask) = batch(&cfg);
    let (l, s) = (cfg.leads, cfg.samples);
    for pooling in [Pooling::Mean, Pooling::Leads] {
        let head = HeadSpec {
            pooling,
            classes: 2,
            multi_label: false,
        };
        let mut enc = Encoder::new(CpuBackend::new(), cfg.clone(), head, 3).unwrap();
        enc.init_params(1);
        let all = enc.embed(&x, &mask, 3).unwrap();
        let f = enc.features();
        assert_eq!(all.len(), 3 * f);
        for b in 0..3 {
            let alone = enc
                .embed(&x[b * l * s..(b + 1) * l * s], &mask[b * l..(b + 1) * l], 1)
                .unwrap();
            // Equal up to rounding: the matmul tiles rows by the batch's token count.
            for (a, w) in alone.iter().zip(&all[b * f..(b + 1) * f]) {
                assert!(
                    (a - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "sample {b}: {a} vs {w}"
                );
            }
        }
        if pooling == Pooling::Leads {
            // Sample 2 has lead II only: every other lead's block of features is zero.
            let sample2 = &all[2 * f..3 * f];
            for lead in (0..l).filter(|&lead| lead != 1) {
                assert!(sample2[lead * cfg.dim..(lead + 1) * cfg.dim]
                    .iter()
                    .all(|&v| v == 0.0));
            }
        }
    }
    let mut bad = mask.clone();
    bad[2 * l + 1] = 0;
    let mut enc = Encoder::new(
        CpuBackend::new(),
        cfg.clone(),
        HeadSpec {
            pooling: Pooling::Mean,
            classes: 2,
            multi_label: false,
        },
        3,
    )
    .unwrap();
    let err = enc.embed(&x, &bad, 3).unwrap_err().to_string();
    assert!(err.contains("sample 2"), "{err}");
    let mut two = mask.clone();
    two[3] = 2;
    let err = enc.embed(&x, &two, 3).unwrap_err().to_string();
    assert!(err.contains("sample 0"), "{err}");
}

/// The forward-only encoder (two block inputs used in turn, no gradients) gives bit for bit the
/// training encoder's features, logits and loss at every depth, odd and even; it refuses to
/// train.
#[test]
fn the_forward_only_encoder_gives_the_same_bits() {
    for depth in [1, 2, 3] {
        let cfg = ModelConfig { depth, ..config() };
        let (x, mask) = batch(&cfg);
        let head = HeadSpec {
            pooling: Pooling::Leads,
            classes: 3,
            multi_label: false,
        };
        let mut train = Encoder::new(CpuBackend::new(), cfg.clone(), head, 3).unwrap();
        let mut forward = Encoder::forward_only(CpuBackend::new(), cfg.clone(), head, 3).unwrap();
        train.init_params(4);
        forward.init_params(4);
        let params = common::perturbed(&train.params_to_host());
        train.load_params(&params).unwrap();
        forward.load_params(&params).unwrap();
        let classes = Targets::Classes(&[2, 0, 1]);
        assert_eq!(
            train.embed(&x, &mask, 3).unwrap(),
            forward.embed(&x, &mask, 3).unwrap(),
            "depth {depth}"
        );
        assert_eq!(
            train
                .logits(&x[..cfg.leads * cfg.samples], &mask[..cfg.leads], 1)
                .unwrap(),
            forward
                .logits(&x[..cfg.leads * cfg.samples], &mask[..cfg.leads], 1)
                .unwrap(),
            "depth {depth}"
        );
        let loss = train.forward_loss(&x, &mask, 3, classes).unwrap();
        assert_eq!(loss, forward.forward_loss(&x, &mask, 3, classes).unwrap());
        let err = forward
            .forward_backward(&x, &mask, 3, classes, 1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("forward_only"), "{err}");
    }
}

#[test]
fn loads_the_encoder_tensors_of_a_checkpoint_by_name() {
    let cfg = config();
    let dir = std::env::temp_dir().join(format!("ecgfm-eval-encoder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut mae = Mae::new(CpuBackend::new(), cfg.clone(), 1).unwrap();
    mae.init_params(3);
    let layout = mae.layout().clone();
    let full = mae.params_to_host();
    let zeros = vec![0.0; layout.total];
    let optimizer = OptimizerState {
        step: 0,
        m: zeros.clone(),
        v: zeros,
    };
    let state = TrainingState {
        step: 7,
        samples_seen: 0,
        flops: None,
        elapsed_s: 0.0,
        data: serde_json::Value::Null,
        global_batch: None,
        validation_version: None,
        nonfinite_in_a_row: 0,
        precision: None,
    };
    let ckpt = checkpoint::save(&dir, &layout, "", &full, &optimizer, &state).unwrap();
    let encoder_layout = ParamLayout::encoder(&cfg);
    let encoder = checkpoint::load_params(&ckpt, &encoder_layout).unwrap();
    assert_eq!(encoder[..], full[..layout.encoder_params()]);
    let head = HeadSpec {
        pooling: Pooling::Mean,
        classes: 4,
        multi_label: true,
    };
    let mut enc = Encoder::new(CpuBackend::new(), cfg.clone(), head, 2).unwrap();
    enc.init_params(5);
    let head_before = enc.params_to_host()[encoder.len()..].to_vec();
    enc.load_encoder(&encoder).unwrap();
    let loaded = enc.params_to_host();
    assert_eq!(loaded[..encoder.len()], encoder[..]);
    assert_eq!(loaded[encoder.len()..], head_before[..]);
    // A model of another width does not fit this checkpoint.
    let mut wider = cfg.clone();
    wider.dim = 30;
    let err = checkpoint::load_params(&ckpt, &ParamLayout::encoder(&wider))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("patch_embed.weight") && err.contains("[24, 50]"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
