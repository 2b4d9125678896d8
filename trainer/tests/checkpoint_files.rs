//! Checkpoint files: round trip, the completion marker, and partial checkpoints being ignored.

use ecgfm_trainer::checkpoint::{self, TrainingState};
use ecgfm_trainer::{ModelConfig, OptimizerState, ParamLayout};
use std::path::PathBuf;

fn temp_run(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * scale).sin()).collect()
}

fn state(step: u64) -> TrainingState {
    TrainingState {
        step,
        samples_seen: step * 32,
        elapsed_s: 1.5,
        data: serde_json::json!({ "kind": "synth", "consumed": step * 32 }),
        global_batch: None,
    }
}

#[test]
fn save_then_load_round_trips_bitwise() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("roundtrip");
    let params = ramp(layout.total, 0.37);
    let opt = OptimizerState {
        step: 12,
        m: ramp(layout.total, 0.11),
        v: ramp(layout.total, 0.05).iter().map(|x| x * x).collect(),
    };
    let dir = checkpoint::save(&run, &layout, "[model]\n", &params, &opt, &state(12)).unwrap();
    assert!(dir.ends_with("checkpoints/step_00000012"));
    assert!(dir.join("COMPLETE").is_file());
    let back = checkpoint::load(&dir, &layout).unwrap();
    assert_eq!(back.params, params);
    assert_eq!(back.optimizer, opt);
    assert_eq!(back.state, state(12));
    assert_eq!(checkpoint::latest_complete(&run).unwrap(), Some(dir));
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn latest_complete_ignores_partial_and_unmarked_checkpoints() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("partial");
    let params = ramp(layout.total, 0.2);
    let opt = OptimizerState {
        step: 5,
        m: vec![0.0; layout.total],
        v: vec![0.0; layout.total],
    };
    let five = checkpoint::save(&run, &layout, "", &params, &opt, &state(5)).unwrap();
    // A later checkpoint killed before its marker: a renamed folder without COMPLETE ...
    let unmarked = checkpoint::checkpoint_dir(&run, 10);
    std::fs::create_dir_all(&unmarked).unwrap();
    std::fs::write(unmarked.join("model.safetensors"), b"torn").unwrap();
    // ... and one killed while still in its partial folder.
    let partial = run.join("checkpoints").join(".step_00000015.partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("COMPLETE"), b"ok").unwrap();
    assert_eq!(checkpoint::latest_complete(&run).unwrap(), Some(five));
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn wrong_shapes_are_reported_with_the_file() {
    let nano = ModelConfig::preset("nano").unwrap();
    let layout = ParamLayout::new(&nano);
    let run = temp_run("shapes");
    let opt = OptimizerState {
        step: 1,
        m: vec![0.0; layout.total],
        v: vec![0.0; layout.total],
    };
    let dir =
        checkpoint::save(&run, &layout, "", &vec![0.5; layout.total], &opt, &state(1)).unwrap();
    let wider = ParamLayout::new(&ModelConfig { dim: 128, ..nano });
    let err = checkpoint::load(&dir, &wider)
        .err()
        .expect("shape mismatch");
    let text = err.to_string();
    assert!(text.contains("model.safetensors"), "{text}");
    assert!(text.contains("patch_embed.weight"), "{text}");
    std::fs::remove_dir_all(run).unwrap();
}
