//! Checkpoint files: round trip, the completion marker, partial checkpoints being ignored, old
//! ones removed beyond the newest few, and bit flips being caught.

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

/// `remove_older` keeps the newest `keep` complete checkpoints (0: all), leaves partial folders
/// to `remove_unfinished`, and a removal cut short after its rename (`.removing`) is never taken
/// for a checkpoint and is finished when the run starts again.
#[test]
fn only_the_newest_checkpoints_are_kept_and_an_interrupted_removal_is_finished() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("keep");
    let params = ramp(layout.total, 0.3);
    let opt = OptimizerState {
        step: 1,
        m: vec![0.0; layout.total],
        v: vec![0.0; layout.total],
    };
    for step in [2, 4, 6, 8] {
        checkpoint::save(&run, &layout, "", &params, &opt, &state(step)).unwrap();
    }
    let partial = checkpoint::partial_dir(&run, 10);
    std::fs::create_dir_all(&partial).unwrap();
    let names = || ecgfm_test_support::sorted_names(&run.join("checkpoints"));
    assert!(checkpoint::remove_older(&run, 0).unwrap().is_empty());
    assert!(checkpoint::remove_older(&run, 4).unwrap().is_empty());
    assert_eq!(names().len(), 5);
    let removed = checkpoint::remove_older(&run, 2).unwrap();
    let removed: Vec<_> = removed.iter().map(|d| d.file_name().unwrap()).collect();
    assert_eq!(removed, ["step_00000002", "step_00000004"]);
    assert_eq!(
        names(),
        [".step_00000010.partial", "step_00000006", "step_00000008"]
    );
    // A removal killed between its rename and the end of its delete.
    let removing = run.join("checkpoints/.step_00000006.removing");
    std::fs::rename(checkpoint::checkpoint_dir(&run, 6), &removing).unwrap();
    std::fs::remove_file(removing.join("model.safetensors")).unwrap();
    let eight = checkpoint::checkpoint_dir(&run, 8);
    assert_eq!(checkpoint::latest_complete(&run).unwrap(), Some(eight));
    let lines = checkpoint::remove_unfinished(&run).unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("an old checkpoint whose removal was interrupted"));
    assert!(lines[1].contains("left unfinished by an interrupted save"));
    assert_eq!(names(), ["step_00000008"]);
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

/// The files of a single-file checkpoint, as `checkpoint::save` writes them.
const CHECKPOINT_FILES: [&str; 4] = [
    "model.safetensors",
    "optimizer.safetensors",
    "state.json",
    "COMPLETE",
];

/// The file whose entry in the `COMPLETE` marker's text holds byte `at` (from its name's opening
/// quote to its closing brace), if any.
fn marker_entry_at(marker: &str, at: usize) -> Option<&'static str> {
    CHECKPOINT_FILES[..3].iter().copied().find(|name| {
        let start = marker
            .find(&format!("\"{name}\""))
            .unwrap_or_else(|| panic!("COMPLETE lists {name}: {marker}"));
        let end = start + marker[start..].find('}').expect("an entry ends");
        (start..=end).contains(&at)
    })
}

/// The bit positions flipped in `name` (`bytes` long): every bit of `state.json`, `COMPLETE` and
/// a safetensors file's 8-byte length and JSON header (tensor names, dtypes, shapes, offsets,
/// metadata: the bytes a flip could make parse into something else), plus `DATA_FLIPS` seeded
/// bits of a safetensors file's tensor data.
fn flip_positions(name: &str, bytes: &[u8], rng: &mut u64) -> Vec<(usize, u8)> {
    const DATA_FLIPS: usize = 300;
    let every_bit =
        |range: std::ops::Range<usize>| range.flat_map(|at| (0..8).map(move |b| (at, b)));
    if !name.ends_with(".safetensors") {
        return every_bit(0..bytes.len()).collect();
    }
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = bytes.len() - header;
    assert!(
        data > 0 && header > 8,
        "{name}: header {header}, data {data}"
    );
    let mut positions: Vec<(usize, u8)> = every_bit(0..header).collect();
    for _ in 0..DATA_FLIPS {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        positions.push((
            header + (*rng % data as u64) as usize,
            (*rng >> 32) as u8 % 8,
        ));
    }
    positions
}

/// Every bit of `state.json`, of `COMPLETE` and of each safetensors file's header, and 300
/// seeded bits of each one's tensor data, flipped one at a time: each makes `load` fail with a
/// `Corrupt` error naming the flipped file. A data file's flip is caught by its SHA-256 in
/// `COMPLETE`, checked before any of its bytes is parsed; the marker itself has no checksum,
/// and a flip there either breaks its JSON (the error names `COMPLETE`) or changes a file's
/// recorded name, size or checksum (the error names that file: `COMPLETE` lists no intact
/// file under the name, size and SHA-256 found). The model is nano's tensors (the same 49
/// names, so the same header layout) at width 4 and patch 4, so that its files are small and
/// the 101,176 reloads take seconds (7 to 11 s on 2 cores at load average 3 to 4).
#[test]
fn every_bit_flip_outside_tensor_data_and_300_within_are_caught_and_named() {
    use std::os::unix::fs::FileExt;
    let started = std::time::Instant::now();
    let small = ModelConfig {
        samples: 8,
        patch: 4,
        dim: 4,
        heads: 1,
        dec_dim: 4,
        dec_heads: 1,
        ..ModelConfig::preset("nano").unwrap()
    };
    let layout = ParamLayout::new(&small);
    let nano = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let names = |l: &ParamLayout| l.entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&layout), names(&nano));
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
    let marker = std::fs::read_to_string(dir.join("COMPLETE")).unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut flips = 0;
    // COMPLETE's flips by the file their error names.
    let mut marker_blames = std::collections::BTreeMap::<&str, usize>::new();
    for name in CHECKPOINT_FILES {
        let path = dir.join(name);
        let original = std::fs::read(&path).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for (at, bit) in flip_positions(name, &original, &mut rng) {
            file.write_all_at(&[original[at] ^ (1 << bit)], at as u64)
                .unwrap();
            let err = checkpoint::load(&dir, &layout)
                .err()
                .unwrap_or_else(|| panic!("{name}: flipping bit {bit} of byte {at} went unseen"));
            let text = err.to_string();
            let blamed = if name == "COMPLETE" {
                match marker_entry_at(&marker, at) {
                    Some(listed) if !text.contains(name) => listed,
                    _ => name,
                }
            } else {
                name
            };
            assert!(
                matches!(err, checkpoint::CheckpointError::Corrupt { .. }) && text.contains(blamed),
                "{name}: bit {bit} of byte {at}: {text}"
            );
            match name {
                "model.safetensors" => assert!(checkpoint::load_params(&dir, &layout).is_err()),
                "state.json" => assert!(checkpoint::load_state(&dir).is_err()),
                "COMPLETE" => *marker_blames.entry(blamed).or_default() += 1,
                _ => {}
            }
            file.write_all_at(&original[at..at + 1], at as u64).unwrap();
            flips += 1;
        }
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
    println!(
        "{flips} flips caught in {:.1} s; those of COMPLETE by the file named: {marker_blames:?}",
        started.elapsed().as_secs_f64()
    );
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
    let latest = checkpoint::load_latest_intact(&run, &layout)
        .unwrap()
        .unwrap();
    let warnings = &latest.warnings;
    assert_eq!(latest.checkpoint.state.step, 6);
    assert_eq!(latest.corrupt, [checkpoint::checkpoint_dir(&run, 9)]);
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

/// ZeRO-1 shards written at different optimizer steps (ranks that saved out of step) are not one
/// state: reading them is refused rather than mixing the moments of two steps.
#[test]
fn zero_shards_of_different_steps_are_refused() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("shard-steps");
    let full = optimizer(&layout, 7);
    let writer = checkpoint::begin(&run, 7).unwrap();
    writer
        .write_model(&layout, "", &ramp(layout.total, 0.3))
        .unwrap();
    writer.write_state(&state(7)).unwrap();
    let shards = ecgfm_dist::Shards::new(layout.total, 2);
    for rank in 0..2 {
        let range = shards.range(rank);
        let part = OptimizerState {
            step: 7 + rank as u64,
            m: full.m[range.clone()].to_vec(),
            v: full.v[range.clone()].to_vec(),
        };
        let shard = checkpoint::OptimizerShard {
            rank,
            world_size: 2,
            range,
            total: layout.total,
            state: &part,
        };
        checkpoint::write_optimizer_shard(&checkpoint::partial_dir(&run, 7), &shard).unwrap();
    }
    let dir = writer.finish().unwrap();
    let err = checkpoint::load(&dir, &layout).err().unwrap().to_string();
    assert!(err.contains("different optimizer steps"), "{err}");
    std::fs::remove_dir_all(run).unwrap();
}

/// Saving a checkpoint of a step whose folder is already there (an unmarked leftover, a step
/// written again) replaces it: the new weights are the ones that load.
#[test]
fn a_checkpoint_saved_again_at_its_step_replaces_the_old_one() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("again");
    let opt = optimizer(&layout, 5);
    let first = ramp(layout.total, 0.21);
    checkpoint::save(&run, &layout, "", &first, &opt, &state(5)).unwrap();
    let second = ramp(layout.total, 0.23);
    let dir = checkpoint::save(&run, &layout, "", &second, &opt, &state(5)).unwrap();
    assert_eq!(checkpoint::load(&dir, &layout).unwrap().params, second);
    std::fs::remove_dir_all(run).unwrap();
}

/// A weights file whose header claims more bytes than follow it (a torn copy) is reported as
/// malformed when its configuration is read, naming the claim, not as a bare I/O error.
#[test]
fn a_header_longer_than_the_weights_file_is_malformed() {
    let run = temp_run("torn-header");
    let dir = run.join("step");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = 20u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"__metadata__\"");
    assert_eq!(bytes.len(), 23);
    std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
    let err = checkpoint::load_config_text(&dir).unwrap_err();
    assert!(
        matches!(err, checkpoint::CheckpointError::Malformed { .. })
            && err.to_string().contains("claims 20 bytes, the file has 23"),
        "{err}"
    );
    std::fs::remove_dir_all(run).unwrap();
}

/// A save at a step whose partial folder an interrupted save left behind starts from an empty
/// folder: nothing of the interrupted save ends up in the checkpoint or its marker.
#[test]
fn a_stale_partial_folder_is_not_carried_into_the_checkpoint() {
    let layout = ParamLayout::new(&ModelConfig::preset("nano").unwrap());
    let run = temp_run("stale-partial");
    let stale = checkpoint::partial_dir(&run, 4);
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(
        stale.join("optimizer.shard-00002-of-00003.safetensors"),
        b"old",
    )
    .unwrap();
    let params = ramp(layout.total, 0.29);
    let dir = checkpoint::save(
        &run,
        &layout,
        "",
        &params,
        &optimizer(&layout, 4),
        &state(4),
    )
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = CHECKPOINT_FILES;
    expected.sort();
    assert_eq!(names, expected);
    let marker = std::fs::read_to_string(dir.join("COMPLETE")).unwrap();
    assert!(!marker.contains("shard"), "{marker}");
    std::fs::remove_dir_all(run).unwrap();
}
