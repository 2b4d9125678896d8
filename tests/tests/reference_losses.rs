//! Today's CPU training reproduces the committed reference curves bit for bit:
//! `tests/reference/gpu_check_cpu_losses.json` (from `scripts/gpu-reference.sh`) holds the losses
//! of 300 CPU steps of nano and tiny, which `scripts/gpu-check.sh` holds the GPU runs to. A change
//! that moves the CPU's numbers, meant or not, fails here first, so the reference a GPU is checked
//! against never goes stale unnoticed; and the published sweeps' "same losses as the day they were
//! run" stays a tested claim.

use ecgfm_launch::cli::PretrainArgs;
use std::path::PathBuf;

/// The first steps of each reference run to train again: the whole schedule (its warmup and
/// decay depend on the run's 300 steps) stays the reference's, the run stops early.
const NANO_STEPS: u64 = 60;
const TINY_STEPS: u64 = 6;

fn reference() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/reference/gpu_check_cpu_losses.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Trains the reference's `model` run from its recorded configuration for `steps` steps and
/// returns the bits of each step's loss, and of the reference's.
fn losses_now_and_then(model: &str, steps: u64) -> (Vec<u32>, Vec<u32>) {
    let run = &reference()["runs"][model];
    let dir = std::env::temp_dir().join(format!(
        "ecgfm-reference-losses-{model}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, run["config"].as_str().unwrap()).unwrap();
    let out: PathBuf = dir.join("run");
    let args = PretrainArgs {
        config: Some(config),
        out: Some(out.clone()),
        threads: Some(2),
        stop_after: Some(steps),
        ..PretrainArgs::default()
    };
    ecgfm_launch::pretrain::run(&args).expect("the reference run trains");
    let now: Vec<u32> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter_map(|v| v["loss"].as_f64())
        .map(|loss| (loss as f32).to_bits())
        .collect();
    let then: Vec<u32> = run["losses"].as_array().unwrap()[..steps as usize]
        .iter()
        .map(|v| (v.as_f64().unwrap() as f32).to_bits())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    (now, then)
}

fn assert_same_curve(model: &str, steps: u64) {
    let (now, then) = losses_now_and_then(model, steps);
    assert_eq!(now.len(), then.len(), "{model}: one loss per step");
    if let Some(step) = (0..now.len()).find(|&i| now[i] != then[i]) {
        panic!(
            "{model}: the loss of step {} is {} where the committed reference has {}: the CPU's \
             numbers changed. If that is meant, regenerate the reference with `bash \
             scripts/gpu-reference.sh` and say why in the commit",
            step + 1,
            f32::from_bits(now[step]),
            f32::from_bits(then[step])
        );
    }
}

#[test]
fn nano_trains_to_the_reference_losses_bit_for_bit() {
    assert_same_curve("nano", NANO_STEPS);
}

#[test]
fn tiny_trains_to_the_reference_losses_bit_for_bit() {
    assert_same_curve("tiny", TINY_STEPS);
}
