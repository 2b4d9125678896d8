//! The FLOPs the trainer counts (`ModelStats`, `FlopCounter`: what `flops` in metrics.jsonl, MFU
//! and a sweep's compute budgets rest on) equal an independent count: PyTorch's dispatcher seeing
//! every matrix product of the reference model's forward and backward on one sample
//! (`tests/reference/count_flops.py`), for several presets, lead counts, mask ratios and patch
//! lengths. Runs with whichever python3 imports torch (1.13 or later).

use std::path::Path;
use std::process::Command;

use ecgfm_trainer::model::{FlopCounter, ModelConfig, ModelStats};

/// One model and sample: a preset with its mask ratio and patch length, and the leads present.
struct Case {
    preset: &'static str,
    mask_ratio: f64,
    patch: usize,
    leads: usize,
}

impl Case {
    fn rust_config(&self) -> ModelConfig {
        let mut cfg = ModelConfig::preset(self.preset).unwrap();
        cfg.mask_ratio = self.mask_ratio;
        cfg.patch = self.patch;
        cfg
    }

    fn python_case(&self) -> serde_json::Value {
        serde_json::json!({
            "preset": self.preset,
            "overrides": {"mask_ratio": self.mask_ratio, "patch_len": self.patch},
            "leads": self.leads,
        })
    }
}

#[test]
fn counted_flops_equal_the_products_pytorch_runs() {
    let Some(python) = ecgfm_test_support::torch_python() else {
        return;
    };
    let case = |preset, mask_ratio, patch, leads| Case {
        preset,
        mask_ratio,
        patch,
        leads,
    };
    let cases = [
        case("nano", 0.75, 75, 12),
        case("nano", 0.75, 75, 5),
        case("nano", 0.75, 75, 1),
        case("nano", 0.5, 50, 12),
        case("nano", 0.9, 90, 3),
        case("tiny", 0.75, 75, 12),
        case("tiny", 0.75, 75, 1),
        case("small", 0.6, 75, 7),
    ];
    let arg = serde_json::Value::Array(cases.iter().map(Case::python_case).collect());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference");
    let out = Command::new(&python)
        .arg("count_flops.py")
        .arg(arg.to_string())
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{python} count_flops.py: {stderr}");
    let counted: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counted.len(), cases.len());
    for (case, torch) in cases.iter().zip(&counted) {
        let what = format!(
            "{} (mask ratio {}, patch {}) with {} leads",
            case.preset, case.mask_ratio, case.patch, case.leads
        );
        assert_eq!(torch["uncounted"], serde_json::json!([]), "{what}");
        let cfg = case.rust_config();
        let mut lead_mask = vec![0u8; cfg.leads];
        lead_mask[..case.leads].fill(1);
        let train = FlopCounter::new(&cfg).batch_flops(&lead_mask);
        assert_eq!(
            train,
            torch["train"].as_f64().unwrap(),
            "training FLOPs of {what}"
        );
        if case.leads == cfg.leads {
            let forward = ModelStats::new(&cfg).forward_flops;
            assert_eq!(
                forward,
                torch["forward"].as_f64().unwrap(),
                "forward FLOPs of {what}"
            );
        }
    }
}
