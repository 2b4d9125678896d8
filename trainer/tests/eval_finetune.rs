//! Fine-tuning's early stopping (`eval::finetune`): with a validation curve that never improves
//! after the first epoch, the run stops `patience` epochs after its best one and hands back the
//! best epoch's weights, not the last epoch's.

use ecgfm_kernels::CpuBackend;
use ecgfm_trainer::eval::finetune::{finetune, FinetuneSettings, Finetuned};
use ecgfm_trainer::eval::scoring::Validation;
use ecgfm_trainer::eval::{Part, ScoreBy, Task, Vocabulary, WindowSource};
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling, Recompute};
use ecgfm_trainer::ModelConfig;

const SAMPLES: usize = 100;

fn config() -> ModelConfig {
    ModelConfig {
        leads: 12,
        samples: SAMPLES,
        patch: 50,
        dim: 8,
        depth: 1,
        heads: 2,
        mlp_ratio: 2,
        ..ModelConfig::default()
    }
}

/// Window i: every lead a sine of amplitude `amplitude[i]`.
struct Sines {
    amplitude: Vec<f32>,
}

impl WindowSource for Sines {
    fn len(&self) -> usize {
        self.amplitude.len()
    }

    fn fill(&self, i: usize, x: &mut [f32], lead_mask: &mut [u8]) {
        for (t, v) in x.iter_mut().enumerate() {
            *v = self.amplitude[i] * (t as f32 / 9.0).sin();
        }
        lead_mask.fill(1);
    }
}

/// Eight training windows whose amplitude gives their class (0 or 1), and four validation
/// windows, two of each class, all the same window: an encoder scoring one window at a time
/// scores them alike, so the validation macro AUROC is 0.5 at every epoch and the first epoch
/// stays the best.
fn task_and_source() -> (Task, Sines) {
    let n = 12;
    let class_of: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    let amplitude = (0..n)
        .map(|i| {
            if i >= 8 {
                1.0
            } else {
                0.5 + class_of[i] as f32
            }
        })
        .collect();
    let classes = vec!["a".into(), "b".into()];
    let mut task = Task::without_windows(Vocabulary::Own("own".into()), classes, false);
    task.windows = (0..n).collect();
    task.parts = (0..n)
        .map(|i| if i < 8 { Part::Train } else { Part::Val })
        .collect();
    task.targets = (class_of.iter())
        .flat_map(|&c| [f64::from(u8::from(c == 0)), f64::from(u8::from(c == 1))])
        .collect();
    task.class_of = class_of;
    task.records = (0..n as u32).collect();
    task.patients = (0..n as u32).collect();
    (task, Sines { amplitude })
}

/// Fine-tunes a fresh encoder (init seed 5, batches of one window) for at most `epochs` epochs
/// with `patience`.
fn run(epochs: usize, patience: usize) -> Finetuned<CpuBackend> {
    let (task, source) = task_and_source();
    let head = HeadSpec {
        pooling: Pooling::Mean,
        classes: 2,
        multi_label: false,
    };
    let mut encoder = Encoder::new(CpuBackend::new(), config(), head, 1).unwrap();
    encoder.init_params(5);
    let validation = Validation::new(&task, (8..12).collect(), ScoreBy::Window);
    let settings = FinetuneSettings {
        epochs,
        patience,
        lr: 1e-2,
        layer_decay: 1.0,
        weight_decay: 0.0,
        clip_norm: 1.0,
        min_epoch_windows: 8,
        recompute: Recompute::None,
    };
    let train: Vec<usize> = (0..8).collect();
    let mut lines = |_: String| {};
    finetune(
        encoder,
        &source,
        &train,
        &validation,
        &settings,
        3,
        &mut lines,
    )
    .unwrap()
}

/// Patience p means stopping after p epochs without a better validation AUROC: best epoch 1
/// (the curve is flat), so 1 + p epochs run of the 10 allowed.
#[test]
fn training_stops_patience_epochs_after_the_best() {
    let patience = 2;
    let done = run(10, patience);
    assert_eq!(done.best_val_macro_auroc, Some(0.5));
    assert_eq!(done.best_epoch, 1);
    assert_eq!(done.epochs_run, done.best_epoch + patience);
}

/// The encoder handed back has the best epoch's weights: those of a run of that one epoch
/// (epoch 1 is all warmup, whose learning rates do not depend on the epoch count), not the
/// weights trained on for the two epochs after it.
#[test]
fn the_best_epochs_weights_are_kept() {
    let done = run(10, 2);
    assert_eq!((done.best_epoch, done.epochs_run), (1, 3));
    let one_epoch = run(1, 2);
    let (kept, first) = (
        done.encoder.params_to_host(),
        one_epoch.encoder.params_to_host(),
    );
    let worst = kept
        .iter()
        .zip(&first)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst < 1e-6,
        "kept weights differ from epoch 1's by {worst}"
    );
}
