//! The metrics writer's TensorBoard events read back with the `tensorboard` Python package
//! (installed by scripts/test.sh): every logged step's scalars, with the same values as
//! `metrics.jsonl`, also after a resume that repeats steps; validation losses (also a source's)
//! where measured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ecgfm_test_support::python_stdout;
use ecgfm_trainer::metrics::{read_records, MetricsWriter, StepRecord};

const READ_EVENTS: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)]
                  for tag in acc.Tags()["scalars"]}))
"#;

fn temp_run(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-tb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn record(step: u64, attempt: u32) -> StepRecord {
    StepRecord {
        step,
        loss: 1.0 / (step as f32 + 1.5) + attempt as f32,
        lr: 1e-4 * step as f32,
        grad_norm: 0.25 + step as f32,
        samples_per_s: 1000.0 + step as f64,
        elapsed_s: step as f64,
        samples_seen: 32 * step,
        flops: Some(1e9 * step as f64),
        val_loss: step
            .is_multiple_of(10)
            .then_some(0.5 + attempt as f32 + 1.0 / (step as f32 + 2.0)),
        val_loss_by_source: match step.is_multiple_of(10) {
            true => BTreeMap::from([("ptbxl".to_string(), 0.75 + attempt as f32 + step as f32)]),
            false => BTreeMap::new(),
        },
        gpu_mem_bytes: None,
    }
}

#[test]
fn tensorboard_reads_the_logged_scalars_also_after_a_resume() {
    let run = temp_run("scalars");
    // A run logs steps 0..=25 and dies; it resumes from the checkpoint at step 20 (records of
    // steps < 20 kept) and logs 20..=29 again with other values. TensorBoard must show each
    // step once, with the resumed run's values from step 20 on, exactly like metrics.jsonl.
    {
        let mut writer = MetricsWriter::open(&run, 0).unwrap();
        for step in (0..=25).step_by(5) {
            writer.write(&record(step, 0)).unwrap();
        }
    }
    {
        let mut writer = MetricsWriter::open(&run, 20).unwrap();
        for step in [20, 25, 29] {
            writer.write(&record(step, 1)).unwrap();
        }
    }
    let steps = [0u64, 5, 10, 15, 20, 25, 29];
    let Some(stdout) = python_stdout(
        Command::new("python3").args(["-c", READ_EVENTS, run.to_str().unwrap()]),
        &["tensorboard"],
        "reading the events with tensorboard",
    ) else {
        return;
    };
    let scalars: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let jsonl = read_records(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(jsonl.iter().map(|r| r.step).collect::<Vec<_>>(), steps);
    assert_eq!(jsonl[4].loss, record(20, 1).loss);
    for (tag, of) in [
        (
            "train/loss",
            (|r: &StepRecord| r.loss) as fn(&StepRecord) -> f32,
        ),
        ("train/lr", |r| r.lr),
        ("train/grad_norm", |r| r.grad_norm),
        ("perf/samples_per_s", |r| r.samples_per_s as f32),
    ] {
        let events = scalars[tag]
            .as_array()
            .unwrap_or_else(|| panic!("{tag}: {scalars}"));
        assert_eq!(events.len(), jsonl.len(), "{tag}");
        for (event, want) in events.iter().zip(&jsonl) {
            assert_eq!(event[0].as_u64().unwrap(), want.step, "{tag}");
            assert_eq!(event[1].as_f64().unwrap() as f32, of(want), "{tag}");
        }
    }
    // Validation losses: only at the steps that measured one (0, 10, 20), resumed values kept.
    let validated: Vec<(u64, f32)> = jsonl
        .iter()
        .filter_map(|r| r.val_loss.map(|v| (r.step, v)))
        .collect();
    assert_eq!(validated.len(), 3);
    assert_eq!(validated[2], (20, record(20, 1).val_loss.unwrap()));
    let events = |tag: &str| -> Vec<(u64, f32)> {
        scalars[tag]
            .as_array()
            .unwrap_or_else(|| panic!("{tag}: {scalars}"))
            .iter()
            .map(|e| (e[0].as_u64().unwrap(), e[1].as_f64().unwrap() as f32))
            .collect()
    };
    assert_eq!(events("val/loss"), validated);
    let by_source: Vec<(u64, f32)> = jsonl
        .iter()
        .filter_map(|r| r.val_loss_by_source.get("ptbxl").map(|&v| (r.step, v)))
        .collect();
    assert_eq!(by_source.len(), 3);
    assert_eq!(events("val/loss/ptbxl"), by_source);
    std::fs::remove_dir_all(run).unwrap();
}
