//! Datasets: a signed URL's query string never logged, shards damaged after ingest or mid-run,
//! the validation set's dependence on the dataset alone, `data synth` beside a folder named synth,
//! a split without rows refused.

use crate::common::{self, pretrain_args, run_err, run_ok, temp_dir, ECGFM};
use crate::{assert_same_run_and_remove, logged_steps};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_dataset_urls_query_string_never_reaches_the_output() {
    // A signed URL's query (an object store's access token) in --data: neither a run that
    // opens it nor one that fails to prints it.
    let dir = temp_dir("signed-url");
    let data = common::synth_dataset(&dir);
    for (url, ok) in [
        (format!("file://{}?sig=SECRET123", data.display()), true),
        (
            format!("file://{}/missing?sig=SECRET123", dir.display()),
            false,
        ),
    ] {
        let run = dir.join("run");
        let args = ["pretrain", "--data", &url, "--steps", "2", "--out"];
        let output = common::ecgfm_env(&[&args[..], &[run.to_str().unwrap()]].concat(), &[]);
        assert_eq!(output.status.success(), ok, "{url}");
        let printed = [output.stdout, output.stderr].concat();
        let printed = String::from_utf8_lossy(&printed);
        assert!(printed.contains("?***"), "{printed}");
        assert!(!printed.contains("SECRET123"), "{printed}");
        let _ = std::fs::remove_dir_all(&run);
    }
    // The same for the data commands that fail on such a URL.
    let missing = format!("file://{}/missing?sig=SECRET123", dir.display());
    let out = format!("file://{}/out?sig=SECRET123", dir.join("no-dir").display());
    for args in [
        vec!["data", "inspect", &missing],
        vec!["data", "merge", &missing, &missing, "--out", &out],
    ] {
        let err = run_err(&args);
        assert!(err.contains("?***"), "{err}");
        assert!(!err.contains("SECRET123"), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Overwrites the first half of every shard of `data` (the footer kept): the column chunks
/// there fail their checksums or their decoding.
fn damage_shards(data: &Path) {
    for entry in std::fs::read_dir(data.join("shards")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let half = bytes.len() / 2;
        bytes[4..half].fill(0xA5);
        std::fs::write(&path, bytes).unwrap();
    }
}

#[test]
fn a_shard_damaged_after_ingest_stops_the_run_naming_the_dataset_and_the_shard() {
    let dir = temp_dir("damaged-shard");
    let data = common::synth_dataset(&dir);
    let named = |err: &str| {
        err.contains(&format!("dataset {}", data.display()))
            && err.contains("shards/shard-")
            && err.contains(&format!(
                "is damaged (`ecgfm data inspect {}` checks every shard): ingest the dataset \
                 again, or restore the shard from a copy",
                data.display()
            ))
    };
    // Damaged while the run reads it: a later epoch fetches the damaged chunks.
    let run = dir.join("run");
    let mut args = pretrain_args(&run, 1_000_000);
    args.extend(["--data".to_string(), data.display().to_string()]);
    let mut child = Command::new(ECGFM)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while logged_steps(&run) < 1 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    damage_shards(&data);
    let waited = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if waited.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run went on over the damaged shards");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(65), "damaged data: {err}");
    assert!(named(&err) && err.contains("data source"), "{err}");
    // Damaged before: opening the dataset says the same.
    let err = run_err(&args);
    assert!(named(&err) && err.contains("opening the dataset"), "{err}");
    // As does a shard cut short, grown, or gone (each read as "not a Parquet file" or a store's
    // "not found", exit 1, until 2026-12-06), checked against the manifest's size first.
    let shard = data.join("shards/shard-00000.parquet");
    let bytes = std::fs::read(&shard).unwrap();
    let size = bytes.len();
    let cut = size - 1000;
    let grown = [bytes.clone(), vec![0; 10]].concat();
    for (damage, said) in [
        (
            Some(&bytes[..cut]),
            format!("has {cut} bytes, the manifest says {size}"),
        ),
        (
            Some(&grown[..]),
            format!("has {} bytes, the manifest says {size}", size + 10),
        ),
        (
            None,
            format!("not found, though the manifest lists it, of {size} bytes"),
        ),
    ] {
        match damage {
            Some(damaged) => std::fs::write(&shard, damaged).unwrap(),
            None => std::fs::remove_file(&shard).unwrap(),
        }
        let output = Command::new(ECGFM).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(65), "{said}: {err}");
        assert!(named(&err) && err.contains(&said), "{said}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_shard_damaged_mid_run_stops_it_with_a_checkpoint_and_the_repaired_data_resumes_it_exactly() {
    let dir = temp_dir("damaged-mid-run");
    let data = dir.join("ds");
    let path = data.display().to_string();
    run_ok(&[
        "data",
        "synth",
        "--out",
        &path,
        "--records",
        "40",
        "--window-s",
        "3",
        "--row-group-rows",
        "4",
        "--threads",
        "2",
    ]);
    let with_data = |out: &Path| {
        let mut args = pretrain_args(out, 12);
        args.extend(["--data".into(), path.clone()]);
        args
    };
    let full = dir.join("full");
    run_ok(&with_data(&full));
    // One flipped byte in the middle of the shard: a row group that step 4 reads fails its
    // checksum (the order is the seed's, so the step is always the same).
    let shard = data.join("shards/shard-00000.parquet");
    let intact = common::flip_middle_byte(&shard);
    let broken = dir.join("broken");
    let err = run_err(&with_data(&broken));
    assert!(
        err.contains("could not read the batch of step 4") && err.contains("CRC-32C"),
        "{err}"
    );
    assert!(
        err.contains("the run stopped after step 3 with a checkpoint there"),
        "{err}"
    );
    assert!(broken.join("checkpoints/step_00000003/COMPLETE").is_file());
    std::fs::write(&shard, &intact).unwrap();
    let mut resume = with_data(&broken);
    resume.push("--resume".into());
    run_ok(&resume);
    assert_same_run_and_remove(full, broken, 12);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The last metrics record of `run`.
fn last_record(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn the_validation_set_depends_on_the_dataset_and_its_size_alone() {
    let dir = temp_dir("val-set");
    let sources = [("alpha", "40", "1"), ("beta", "30", "2")];
    for (name, records, seed) in sources {
        let out = dir.join(name).display().to_string();
        run_ok(&[
            "data",
            "synth",
            "--out",
            &out,
            "--records",
            records,
            "--row-group-rows",
            "8",
            "--source-name",
            name,
            "--seed",
            seed,
            "--threads",
            "1",
        ]);
    }
    let merged = dir.join("merged").display().to_string();
    let (alpha, beta) = (dir.join("alpha"), dir.join("beta"));
    run_ok(&[
        "data",
        "merge",
        "--out",
        &merged,
        alpha.to_str().unwrap(),
        beta.to_str().unwrap(),
    ]);
    // One step at learning rate 0 (warmup): every run measures the initial weights.
    let measure = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args: Vec<String> = [
            "pretrain",
            "--data",
            &merged,
            "--steps",
            "1",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--set",
            "optim.warmup_steps=5",
            "--set",
            "data.decode_threads=1",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        let stdout = run_ok(&args);
        let record = last_record(&out);
        (
            record["val_loss"].clone(),
            record["val_loss_by_source"].clone(),
            stdout,
        )
    };
    let (whole, by_source, stdout) = measure("base", &[]);
    assert!(by_source.as_object().unwrap().len() == 2, "{by_source}");
    // The split is smaller than train.val_windows: measured whole, no window twice.
    assert!(stdout.contains("validation: all "), "{stdout}");
    // The run's own loader settings: the same set, the same bits.
    for (name, set) in [
        ("across", "data.mix_across_shards=true"),
        ("row-groups", "data.mix_row_groups=1"),
    ] {
        let measured = measure(name, &["--set", set]);
        assert_eq!((&measured.0, &measured.1), (&whole, &by_source), "{name}");
    }
    // Another micro-batch, alone or accumulated: the same set in other pieces, equal to
    // rounding.
    let close = |w: &serde_json::Value| {
        let (a, b) = (w.as_f64().unwrap(), whole.as_f64().unwrap());
        ((a - b) / b).abs() < 1e-5
    };
    for (name, sets) in [
        ("large-batch", &["train.batch_size=64"][..]),
        ("accum", &["train.batch_size=2", "train.accum_steps=2"][..]),
    ] {
        let extra: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        let (w, _, _) = measure(name, &extra);
        assert!(close(&w), "{name}: {w} vs {whole}");
    }
    // A set smaller than the split: its first windows in the fixed order, whatever the run mixes.
    let few = ["--set", "train.val_windows=3"];
    let (w, s, stdout) = measure("few", &few);
    assert!(stdout.contains("validation: the first 3 of "), "{stdout}");
    let (w2, s2, _) = measure(
        "few-across",
        &[few[0], few[1], "--set", "data.mix_across_shards=true"],
    );
    assert_eq!((w, s), (w2, s2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn data_synth_beside_a_synth_folder_warns_that_it_means_the_generator() {
    let dir = temp_dir("synth-folder");
    std::fs::create_dir_all(dir.join("synth")).unwrap();
    std::fs::write(dir.join("synth/manifest.json"), "{}").unwrap();
    let mut args = pretrain_args(&dir.join("run"), 1);
    args.extend([
        "--data".into(),
        "synth".into(),
        "--model".into(),
        "nano".into(),
    ]);
    let output = std::process::Command::new(ECGFM)
        .args(&args)
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("is ecgfm's synthetic generator, not the dataset in the folder ./synth"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Pretraining on a split the dataset has no rows of is a configuration refused (exit 78, which
/// `ecgfm launch` does not restart), naming the dataset's manifest and the split.
#[test]
fn a_split_without_rows_is_refused_for_good() {
    let dir = temp_dir("empty-split");
    let one = dir.join("one").display().to_string();
    run_ok(&["data", "synth", "--out", &one, "--records", "1"]);
    let mut args = pretrain_args(&dir.join("run"), 2);
    args.extend(["--data", &one, "--set", "data.split=test"].map(String::from));
    let err = common::run_refused(&args);
    let says = format!("{one}/manifest.json has no rows in split \"test\"");
    assert!(err.contains(&says), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
