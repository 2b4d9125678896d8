//! `ecgfm embed`: the embeddings file holds the encoder's features of every window, whatever the
//! batch size, and a split without windows writes no file.

use std::process::Command;

use crate::common::{path_str, run_err, run_ok, run_refused, temp_dir};
use crate::fixture;
use ecgfm_data::windows::read_split_windows;
use ecgfm_kernels::CpuBackend;
use ecgfm_test_support::python_stdout;
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::model::{Encoder, HeadSpec, Pooling};
use ecgfm_trainer::{ModelConfig, ParamLayout};

#[test]
fn embed_writes_the_encoder_features_of_every_window() {
    let (data, run) = fixture();
    let out = std::env::temp_dir().join(format!("ecgfm-embed-{}.parquet", std::process::id()));
    let (run_s, data_s, out_s) = (
        run.to_str().unwrap(),
        data.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let embed = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["embed", "--run", run_s, "--data", data_s];
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect()
    };
    let stdout = run_ok(&embed(&[
        "--split",
        "test",
        "--batch-size",
        "8",
        "--threads",
        "2",
        "--out",
        out_s,
    ]));
    assert!(stdout.contains("64-dimensional"), "{stdout}");
    let folder = run_err(&embed(&["--out", "/tmp"]));
    assert!(folder.contains("--out /tmp is a folder"), "{folder}");
    // A file where --out's folder must be is named, before any work.
    let file = std::env::temp_dir().join(format!("ecgfm-embed-file-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let in_file = file.join("e.parquet");
    let err = run_err(&embed(&["--out", in_file.to_str().unwrap()]));
    let said = format!("{} is a file, not a folder", file.display());
    assert!(
        err.contains(&format!(
            "--out {} cannot be written: {said}",
            in_file.display()
        )),
        "{err}"
    );
    std::fs::remove_file(&file).unwrap();
    let unknown = run_refused(&embed(&["--split", "foo", "--out", out_s]));
    assert!(
        unknown.contains("unknown split foo (train, val, test or all)"),
        "{unknown}"
    );
    let pooling = run_refused(&embed(&["--pool", "max", "--out", out_s]));
    assert!(
        pooling.contains("unknown pooling `max` (expected mean or leads)"),
        "{pooling}"
    );
    assert!(!pooling.contains("model config"), "{pooling}");
    // Another format's name is refused: embed writes Parquet, whatever the name says.
    let csv = std::env::temp_dir().join(format!("ecgfm-embed-{}.csv", std::process::id()));
    let other = run_refused(&embed(&["--out", csv.to_str().unwrap()]));
    assert!(
        other.contains("embed writes Parquet, not .csv; name the file .parquet"),
        "{other}"
    );
    assert!(!csv.exists());
    // A batch far past the machine's memory is refused naming the flag (the allocation aborted).
    let huge = run_err(&embed(&[
        "--device",
        "cpu",
        "--batch-size",
        "1000000000",
        "--out",
        out_s,
    ]));
    assert!(
        huge.contains("the encoder at --batch-size 1000000000 needs about"),
        "{huge}"
    );
    // The folders made for --out go again when the command fails (an empty one was left).
    let fresh = std::env::temp_dir().join(format!("ecgfm-embed-made-{}", std::process::id()));
    let deep = fresh.join("a/b/e.parquet");
    let missing = ["embed", "--run", run_s, "--data", "/nowhere"];
    let err = run_err(&[&missing[..], &["--out", deep.to_str().unwrap()]].concat());
    assert!(err.contains("/nowhere/manifest.json not found"), "{err}");
    assert!(!fresh.exists());
    // Parquet's extension in capitals is Parquet's: on to the dataset, which is missing.
    let upper = std::env::temp_dir().join(format!("ecgfm-embed-{}.PARQUET", std::process::id()));
    let err = run_err(&[&missing[..], &["--out", upper.to_str().unwrap()]].concat());
    assert!(err.contains("/nowhere/manifest.json not found"), "{err}");
    let manifest = std::fs::read_to_string(data.join("manifest.json")).unwrap();
    let shards: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert!(
        shards["shards"].as_array().unwrap().len() > 2,
        "one shard only"
    );
    assert!(stdout.contains("device: cpu"), "{stdout}");
    // The same forward pass through the library, on the same windows in the same batches.
    let config = ModelConfig {
        samples: 750,
        ..ModelConfig::preset("nano").unwrap()
    };
    let windows = read_split_windows(data.to_str().unwrap(), &[], "test", 750).unwrap();
    // Every window in the batch after the last full one: a batch larger than the split.
    let larger = (windows.len() + 1).to_string();
    let all_at_once = run_ok(&embed(&[
        "--split",
        "test",
        "--batch-size",
        &larger,
        "--out",
        out_s,
    ]));
    let said = format!("{} windows -> 64-dimensional", windows.len());
    assert!(all_at_once.contains(&said), "{all_at_once}");
    let ckpt = checkpoint::latest_complete(run).unwrap().unwrap();
    let encoder_params = checkpoint::load_params(&ckpt, &ParamLayout::encoder(&config)).unwrap();
    let head = HeadSpec {
        pooling: Pooling::Mean,
        classes: 1,
        multi_label: false,
    };
    let mut encoder = Encoder::new(CpuBackend::new(), config, head, 8).unwrap();
    encoder.load_encoder(&encoder_params).unwrap();
    let mut expected = Vec::new();
    let (mut x, mut mask) = (vec![0.0; 8 * 12 * 750], vec![0u8; 8 * 12]);
    for start in (0..windows.len()).step_by(8) {
        let n = (windows.len() - start).min(8);
        for b in 0..n {
            windows.fill(start + b, &mut x[b * 12 * 750..(b + 1) * 12 * 750]);
            mask[b * 12..(b + 1) * 12].copy_from_slice(windows.lead_mask(start + b));
        }
        expected.extend(
            encoder
                .embed(&x[..n * 12 * 750], &mask[..n * 12], n)
                .unwrap(),
        );
    }
    let script = "import sys, json, pyarrow.parquet as pq\n\
        f = pq.read_table(sys.argv[1])\n\
        t = f.to_pydict()\n\
        meta = {k.decode(): v.decode() for k, v in pq.read_metadata(sys.argv[1]).metadata.items()}\n\
        arrow = {k.decode(): v.decode() for k, v in (f.schema.metadata or {}).items()}\n\
        print(json.dumps({'ids': t['window_id'], 'split': t['split'], 'emb': t['embedding'], \
        'meta': meta, 'arrow_meta': arrow}))";
    let mut python = Command::new("python3");
    python.args(["-c", script, out.to_str().unwrap()]);
    let Some(stdout) = python_stdout(&mut python, &["pyarrow"], "pyarrow reader") else {
        return;
    };
    let table: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    // The metadata names the weights (as `ecgfm eval` does) and the dataset embedded.
    let meta = &table["meta"];
    let sha = checkpoint::weights_sha256(&ckpt).unwrap();
    assert_eq!(meta["ecgfm_weights_sha256"].as_str(), Some(sha.as_str()));
    assert_eq!(meta["ecgfm_data"].as_str(), data.to_str());
    assert_eq!(meta["ecgfm_split"], "test");
    assert_eq!(meta["ecgfm_pooling"], "mean");
    let step = ckpt.file_name().unwrap().to_str().unwrap();
    let step: u64 = step.trim_start_matches("step_").parse().unwrap();
    assert_eq!(meta["ecgfm_step"], step.to_string());
    // And where a pyarrow or pandas user looks first: the table's schema.
    let arrow = &table["arrow_meta"];
    for key in ["ecgfm_weights_sha256", "ecgfm_data", "ecgfm_split"] {
        assert_eq!(arrow[key], meta[key], "{key}: {arrow}");
    }
    let ids = table["ids"].as_array().unwrap();
    assert_eq!(ids.len(), windows.len());
    assert_eq!(ids[0].as_str().unwrap(), windows.windows[0].window_id());
    assert!(table["split"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s == "test"));
    let got: Vec<f32> = table["emb"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(got, expected);
    std::fs::remove_file(out).unwrap();
}

#[test]
fn a_split_without_windows_writes_no_file() {
    let (_, run) = fixture();
    let dir = temp_dir("embed-empty-split");
    // One record: one split holds it, the test split nothing.
    let data = dir.join("one");
    run_ok(&[
        "data",
        "synth",
        "--records",
        "1",
        "--threads",
        "1",
        "--out",
        path_str(&data),
    ]);
    let out = dir.join("e.parquet");
    let err = run_err(&[
        "embed",
        "--run",
        path_str(run),
        "--data",
        path_str(&data),
        "--split",
        "test",
        "--out",
        path_str(&out),
    ]);
    assert!(err.contains("has no window in split \"test\""), "{err}");
    assert!(!out.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// An `--out` that cannot be written is refused before any work (here before the run, which
/// does not exist, is even looked at): it failed after every embedding had been computed.
#[test]
fn an_out_that_cannot_be_written_is_refused_before_any_work() {
    let err = run_err(&[
        "embed",
        "--run",
        "/nonexistent-ecgfm-run",
        "--data",
        "/nonexistent-ecgfm-data",
        "--out",
        "/proc/ecgfm-embeddings.parquet",
    ]);
    assert!(
        err.contains("--out /proc/ecgfm-embeddings.parquet cannot be written"),
        "{err}"
    );
    assert!(!err.contains("nonexistent"), "{err}");
}
