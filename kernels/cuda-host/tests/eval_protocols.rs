//! The evaluation protocols (`run_protocols`: linear probe and fine-tuning, one after the other
//! on one backend that each protocol's encoder hands back) on the host-compiled CUDA kernels,
//! as `ecgfm eval --device cuda` runs them, against the same run on the CPU backend: the same
//! choices on validation (L2 strength, best epoch) and the same test metrics. Also: every pass
//! reports its windows to the progress reporter, to the last.

use ecgfm_cuda_host::host_backend;
use ecgfm_kernels::{Backend, CpuBackend};
use ecgfm_trainer::eval::{
    run_protocols, EvalInputs, EvalProgress, EvalSettings, FinetuneSettings, LabelledWindow,
    Protocol, ProtocolResult, Task, Vocabulary, WindowSource,
};
use ecgfm_trainer::model::rng::SplitMix64;
use ecgfm_trainer::{Mae, ModelConfig};
use std::collections::BTreeMap;

const WINDOWS: usize = 36;

/// nano at a 1.5-second input: 5 patches per lead (the host harness runs every GPU thread).
fn config() -> ModelConfig {
    ModelConfig {
        samples: 375,
        ..ModelConfig::preset("nano").unwrap()
    }
}

/// Window i is of class i mod 2: a sine of 3 cycles (class 0) or 3.4 (class 1) with a
/// window-dependent phase and amplitude, plus a window's own noise; every third window has only
/// leads 0 to 3.
struct Windows {
    leads: usize,
    samples: usize,
}

impl WindowSource for Windows {
    fn len(&self) -> usize {
        WINDOWS
    }

    fn fill(&self, i: usize, x: &mut [f32], lead_mask: &mut [u8]) {
        let cycles = if i.is_multiple_of(2) { 3.0 } else { 3.4 };
        let mut noise = SplitMix64::new(i as u64);
        let amplitude = 0.5 + (i % 7) as f32 * 0.1;
        for lead in 0..self.leads {
            let present = !i.is_multiple_of(3) || lead < 4;
            lead_mask[lead] = u8::from(present);
            for t in 0..self.samples {
                let phase = (t as f32 / self.samples as f32) * cycles + (i + lead) as f32 * 0.13;
                let value = amplitude * (std::f32::consts::TAU * phase).sin()
                    + 0.8 * (noise.next_f64() as f32 - 0.5);
                x[lead * self.samples + t] = if present { value } else { 0.0 };
            }
        }
    }
}

/// Records the last (done, total) of every pass.
#[derive(Default)]
struct Passes(BTreeMap<String, (usize, usize)>);

impl EvalProgress for Passes {
    fn line(&mut self, line: String) {
        println!("{line}");
    }

    fn windows(&mut self, what: &str, done: usize, total: usize) {
        self.0.insert(what.to_string(), (done, total));
    }
}

fn results<B: Backend>(backend: B, progress: &mut dyn EvalProgress) -> Vec<ProtocolResult> {
    let cfg = config();
    let classes = [
        vec!["synth:nsr".to_string()],
        vec!["synth:afib".to_string()],
    ];
    let splits = ["train", "train", "val", "test"];
    let records: Vec<String> = (0..WINDOWS).map(|i| format!("record {i}")).collect();
    let labelled: Vec<LabelledWindow<'_>> = (0..WINDOWS)
        .map(|i| LabelledWindow {
            split: splits[(i / 2) % splits.len()],
            labels: &classes[i % 2],
            record: ("synth", &records[i]),
            patient: &records[i],
        })
        .collect();
    let task = Task::build(Vocabulary::Synth, &labelled, 1).unwrap();
    let mut mae = Mae::new(CpuBackend::new(), cfg.clone(), 1).unwrap();
    mae.init_params(11);
    let encoder_params = mae.params_to_host()[..mae.layout().encoder_params()].to_vec();
    let source = Windows {
        leads: cfg.leads,
        samples: cfg.samples,
    };
    let inputs = EvalInputs {
        model: &cfg,
        encoder_params: &encoder_params,
        task: &task,
        source: &source,
    };
    let settings = EvalSettings {
        protocols: vec![Protocol::Probe, Protocol::Finetune],
        batch_size: 8,
        finetune: FinetuneSettings {
            epochs: 2,
            patience: 2,
            min_epoch_windows: 16,
            ..FinetuneSettings::default()
        },
        bootstrap: 200,
        ..EvalSettings::default()
    };
    run_protocols(backend, &inputs, &settings, progress).unwrap()
}

#[test]
fn probe_and_fine_tuning_on_the_kernels_match_the_cpu() {
    let mut passes = Passes::default();
    let kernels = results(host_backend(), &mut |line| println!("{line}"));
    let cpu = results(CpuBackend::new(), &mut passes);
    // 36 windows: 20 train (an epoch of at least 16 visits each once), 8 val, 8 test.
    let want = [
        ("features", (36, 36)),
        ("epoch 1/2", (20, 20)),
        ("epoch 2/2", (20, 20)),
        ("validation", (8, 8)),
        ("test", (8, 8)),
    ];
    let want: BTreeMap<String, (usize, usize)> =
        want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(passes.0, want);
    assert_eq!(kernels.len(), 2);
    for (k, c) in kernels.iter().zip(&cpu) {
        let name = k.protocol.name();
        assert_eq!(k.protocol, c.protocol);
        assert_eq!(
            k.selected, c.selected,
            "{name}: validation chose differently"
        );
        assert!(k.val_macro_auroc.is_some(), "{name}");
        assert_eq!(k.val_macro_auroc, c.val_macro_auroc, "{name}");
        assert!(k.test.macro_auroc.is_some(), "{name}");
        assert_eq!(k.test.macro_auroc, c.test.macro_auroc, "{name}");
        assert_eq!(k.test.per_class_auroc, c.test.per_class_auroc, "{name}");
        // The F1 thresholds are validation probabilities: the scores themselves agree.
        for (class, t) in &k.test.thresholds {
            let u = c.test.thresholds[class];
            assert!(
                (t - u).abs() <= 1e-4,
                "{name} {class}: threshold {t} vs {u}"
            );
        }
    }
}
