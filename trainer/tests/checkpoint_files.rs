//! Checkpoint files: round trip, the completion marker, and partial checkpoints being ignored.

use ecgfm_trainer::checkpoint::{self, TrainingState};
use ecgfm_trainer::{ModelConfig, OptimizerState, ParamLayout};
use sha2::Digest;
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
        flops: Some(step as f64 * 3.5e9),
        elapsed_s: 1.5,
        data: serde_json::json!({ "kind": "synth", "consumed": step * 32 }),
        global_batch: None,
        validation_version: None,
        nonfinite_in_a_row: 0,
        precision: None,
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
    let config = "[model]\ndim = 64 # \"quoted\" and \u{e9}\n";
    let other = checkpoint::save(&run, &layout, config, &params, &opt, &state(13)).unwrap();
    assert_eq!(
        checkpoint::load_config_text(&dir).unwrap().as_deref(),
        Some("[model]\n")
    );
    assert_eq!(
        checkpoint::load_config_text(&other).unwrap().as_deref(),
        Some(config)
    );
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let sha = checkpoint::weights_sha256(&dir).unwrap();
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&weights)));
    assert_ne!(checkpoint::weights_sha256(&other).unwrap(), sha);
    assert_eq!(checkpoint::latest_complete(&run).unwrap(), Some(other));
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
    let wider = ParamLayout::new(&ModelConfig {
        dim: 128,
        ..nano.clone()
    });
    let err = checkpoint::load(&dir, &wider)
        .err()
        .expect("shape mismatch");
    let text = err.to_string();
    assert!(text.contains("model.safetensors"), "{text}");
    assert!(
        text.contains("written by another model: tensor patch_embed.weight is [64, 75], this configuration makes it [128, 75]")
            && text.contains("`ecgfm_config`"),
        "{text}"
    );
    // Resuming calls it neither corrupt nor skips it for an older checkpoint.
    let err = checkpoint::load_latest_intact(&run, &wider)
        .err()
        .expect("shape mismatch");
    let text = err.to_string();
    assert!(text.contains("written by another model"), "{text}");
    assert!(
        !text.contains("corrupt") && !text.contains("older"),
        "{text}"
    );
    // A deeper model finds tensors missing.
    let deeper = ParamLayout::new(&ModelConfig { depth: 3, ..nano });
    let text = checkpoint::load(&dir, &deeper).err().unwrap().to_string();
    assert!(
        text.contains("written by another model: it has no tensor"),
        "{text}"
    );
    std::fs::remove_dir_all(run).unwrap();
}

fn optimizer(layout: &ParamLayout, step: u64) -> OptimizerState {
    OptimizerState {
        step,
        m: ramp(layout.total, 0.13),
        v: ramp(layout.total, 0.07).iter().map(|x| x * x).collect(),
    }
}

#[test]
fn every_bit_flip_in_a_checkpoint_file_is_caught_and_named() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("flips");
    let dir = checkpoint::save(
        &run,
        &layout,
        "[model]\n",
        &ramp(layout.total, 0.3),
        &optimizer(&layout, 4),
        &state(4),
    )
    .unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for attempt in 0..30 {
        let name = ["model.safetensors", "optimizer.safetensors", "state.json"][attempt % 3];
        let path = dir.join(name);
        let original = std::fs::read(&path).unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut flipped = original.clone();
        let at = (rng % original.len() as u64) as usize;
        flipped[at] ^= 1 << (rng % 8);
        std::fs::write(&path, &flipped).unwrap();
        let err = checkpoint::load(&dir, &layout)
            .err()
            .expect("a flipped bit must be caught");
        let text = err.to_string();
        assert!(text.contains(name) && text.contains("corrupt"), "{text}");
        if name == "model.safetensors" {
            assert!(checkpoint::load_params(&dir, &layout).is_err());
        }
        std::fs::write(&path, &original).unwrap();
    }
    checkpoint::load(&dir, &layout).unwrap();
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_corrupt_newest_checkpoint_is_named_and_the_newest_intact_one_used() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("fallback");
    let params = ramp(layout.total, 0.3);
    for step in [3, 6, 9] {
        checkpoint::save(
            &run,
            &layout,
            "",
            &params,
            &optimizer(&layout, step),
            &state(step),
        )
        .unwrap();
    }
    let nine = checkpoint::checkpoint_dir(&run, 9).join("optimizer.safetensors");
    let mut bytes = std::fs::read(&nine).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x10;
    std::fs::write(&nine, bytes).unwrap();
    let (ckpt, warnings) = checkpoint::load_latest_intact(&run, &layout)
        .unwrap()
        .unwrap();
    assert_eq!(ckpt.state.step, 6);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("step_00000009") && warnings[0].contains("optimizer.safetensors"),
        "{}",
        warnings[0]
    );
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn zero_shards_reassemble_into_the_whole_optimizer_state() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("shards");
    let full = optimizer(&layout, 7);
    let writer = checkpoint::begin(&run, 7).unwrap();
    let params = ramp(layout.total, 0.3);
    writer.write_model(&layout, "", &params).unwrap();
    writer.write_state(&state(7)).unwrap();
    let shards = ecgfm_dist::Shards::new(layout.total, 3);
    for rank in 0..3 {
        let range = shards.range(rank);
        let part = OptimizerState {
            step: 7,
            m: full.m[range.clone()].to_vec(),
            v: full.v[range.clone()].to_vec(),
        };
        let shard = checkpoint::OptimizerShard {
            rank,
            world_size: 3,
            range,
            total: layout.total,
            state: &part,
        };
        checkpoint::write_optimizer_shard(&checkpoint::partial_dir(&run, 7), &shard).unwrap();
    }
    let dir = writer.finish().unwrap();
    let back = checkpoint::load(&dir, &layout).unwrap();
    assert_eq!(back.optimizer, full);
    assert_eq!(back.params, params);
    // A missing shard is not a complete state.
    let marker = std::fs::read_to_string(dir.join("COMPLETE")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&marker).unwrap();
    m["files"]
        .as_object_mut()
        .unwrap()
        .remove("optimizer.shard-00001-of-00003.safetensors");
    std::fs::write(dir.join("COMPLETE"), m.to_string()).unwrap();
    let err = checkpoint::load(&dir, &layout).err().unwrap().to_string();
    assert!(err.contains("cover"), "{err}");
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_checkpoint_from_before_checksums_still_loads_and_a_garbled_marker_does_not() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("legacy-marker");
    let params = ramp(layout.total, 0.21);
    let opt = optimizer(&layout, 3);
    let dir = checkpoint::save(&run, &layout, "[model]\n", &params, &opt, &state(3)).unwrap();
    // The marker older versions wrote: no checksums.
    std::fs::write(dir.join("COMPLETE"), b"ok\n").unwrap();
    let back = checkpoint::load(&dir, &layout).unwrap();
    assert_eq!(back.params, params);
    assert_eq!(back.optimizer, opt);
    std::fs::write(dir.join("COMPLETE"), b"ok?\n").unwrap();
    let err = checkpoint::load(&dir, &layout).err().unwrap().to_string();
    assert!(err.contains("COMPLETE"), "{err}");
    std::fs::remove_dir_all(run).unwrap();
}
