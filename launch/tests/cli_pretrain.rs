//! `ecgfm pretrain` end to end through the real binary: the loss falls, the run directory is
//! complete, and runs stopped or killed at any moment, or by a shard damaged mid-run, resume to
//! the bits of an uninterrupted run.

mod common;

use common::{
    checkpoint_tensor_bytes, path_str, pretrain_args, run_err, run_ok, run_ok_logs, set_flag,
    temp_dir, ECGFM,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn losses(run: &Path) -> Vec<(u64, u32)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let loss = v["loss"].as_f64().unwrap() as f32;
            (v["step"].as_u64().unwrap(), loss.to_bits())
        })
        .collect()
}

/// Asserts that runs `a` and `b` logged the same losses and ended with the same weights at
/// `step`, bit for bit, then deletes both.
fn assert_same_run_and_remove(a: PathBuf, b: PathBuf, step: u64) {
    assert_eq!(losses(&a), losses(&b));
    assert!(
        final_weights(&a, step) == final_weights(&b, step),
        "weights differ"
    );
    for dir in [a, b] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

fn final_weights(run: &Path, step: u64) -> Vec<u8> {
    let dir = run.join(format!("checkpoints/step_{step:08}"));
    assert!(
        dir.join("COMPLETE").is_file(),
        "{} incomplete",
        dir.display()
    );
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn default_style_run_trains_and_writes_the_run_directory() {
    let out = temp_dir("basic");
    let stdout = run_ok(&pretrain_args(&out, 40));
    assert!(stdout.contains("encoder"), "model table missing:\n{stdout}");
    assert!(
        stdout.contains("model preset: nano, with samples set over it"),
        "{stdout}"
    );
    assert!(out.join("config.toml").is_file());
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("samples = 750"));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 40);
    for key in [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "samples_per_s",
        "elapsed_s",
    ] {
        assert!(records[0].get(key).is_some(), "metrics lack {key}");
    }
    let mean = |r: &[serde_json::Value]| {
        r.iter().map(|v| v["loss"].as_f64().unwrap()).sum::<f64>() / r.len() as f64
    };
    let (first, last) = (mean(&records[..5]), mean(&records[35..]));
    assert!(last < 0.9 * first, "loss did not fall: {first} -> {last}");
    for step in [4, 8, 40] {
        assert!(out
            .join(format!("checkpoints/step_{step:08}/COMPLETE"))
            .is_file());
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn same_seed_gives_identical_runs() {
    let (a, b) = (temp_dir("seed-a"), temp_dir("seed-b"));
    run_ok(&pretrain_args(&a, 6));
    run_ok(&pretrain_args(&b, 6));
    assert_same_run_and_remove(a, b, 6);
}

/// Runs `steps` steps uninterrupted, and again stopped after `stop` and resumed with
/// `--threads resume_threads`; returns both run directories and the resume's stdout.
fn full_and_resumed(
    name: &str,
    steps: u64,
    stop: u64,
    resume_threads: &str,
) -> (PathBuf, PathBuf, String) {
    let (full, split) = (
        temp_dir(&format!("{name}-full")),
        temp_dir(&format!("{name}-split")),
    );
    run_ok(&pretrain_args(&full, steps));
    let mut first = pretrain_args(&split, steps);
    first.extend(["--stop-after".into(), stop.to_string()]);
    let stopped = run_ok(&first);
    assert!(
        stopped.contains("(1 rank x ")
            && stopped.contains(&format!("done: step {stop}/{steps} | "))
            && stopped.contains("| stopped by --stop-after: continue with --resume"),
        "{stopped}"
    );
    assert!(!split.join(format!("checkpoints/step_{steps:08}")).exists());
    let mut resume = pretrain_args(&split, steps);
    set_flag(&mut resume, "--threads", resume_threads);
    resume.push("--resume".into());
    let stdout = run_ok(&resume);
    (full, split, stdout)
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one() {
    let (full, split, stdout) = full_and_resumed("resume", 14, 6, "2");
    assert!(stdout.contains("resuming from"), "{stdout}");
    assert_same_run_and_remove(full, split, 14);
}

#[test]
fn the_last_step_is_logged_and_a_resume_without_a_checkpoint_says_so() {
    let out = temp_dir("last-line");
    let mut args = pretrain_args(&out, 5);
    args.extend(["--set".into(), "train.log_every=2".into()]);
    let stderr = run_ok_logs(&args);
    // Logged at step 1, every 2 steps, and at the last step, which 2 does not divide.
    let logged: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split(" INFO step ").nth(1))
        .filter_map(|l| l.split(" loss ").next())
        .filter(|step| step.contains('/'))
        .collect();
    assert_eq!(logged, ["1/5", "2/5", "4/5", "5/5"], "{stderr}");
    // A run killed before its first checkpoint: --resume starts it again, and says so.
    std::fs::remove_dir_all(out.join("checkpoints")).unwrap();
    args.push("--resume".into());
    let stdout = run_ok(&args);
    assert!(
        stdout.contains(&format!(
            "--resume: no complete checkpoint in {} yet, so the run starts at step 1",
            out.display()
        )),
        "{stdout}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn resume_on_another_thread_count_gives_the_same_losses() {
    let (full, split, _) = full_and_resumed("threads", 10, 4, "1");
    assert_eq!(losses(&full), losses(&split));
    let saved = std::fs::read_to_string(split.join("config.toml")).unwrap();
    assert!(saved.contains("threads = 1"), "{saved}");
    for dir in [full, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn recomputed_activations_give_the_same_run_and_may_change_on_resume() {
    let (full, split) = (temp_dir("recompute-full"), temp_dir("recompute-split"));
    let stdout = run_ok(&pretrain_args(&full, 8));
    assert!(stdout.contains("activations: "), "{stdout}");
    let mut first = pretrain_args(&split, 8);
    first.extend(["--stop-after", "4", "--set", "train.recompute=true"].map(String::from));
    let stdout = run_ok(&first);
    assert!(stdout.contains("blocks recomputed"), "{stdout}");
    let mut resume = pretrain_args(&split, 8);
    resume.extend(["--resume", "--set", "train.recompute=pointwise"].map(String::from));
    let stdout = run_ok(&resume);
    assert!(
        stdout.contains("LayerNorms and GELU recomputed"),
        "{stdout}"
    );
    assert_eq!(losses(&full), losses(&split));
    let bad_dir = temp_dir("recompute-bad");
    let mut bad = pretrain_args(&bad_dir, 8);
    bad.extend(["--set", "train.recompute=all"].map(String::from));
    let stderr = run_err(&bad);
    assert!(stderr.contains("none, pointwise or blocks"), "{stderr}");
    let _ = std::fs::remove_dir_all(bad_dir);
    // The header's metadata records each run's configuration; the tensors must agree bitwise.
    assert!(
        checkpoint_tensor_bytes(&full, 8) == checkpoint_tensor_bytes(&split, 8),
        "weights differ"
    );
    for dir in [full, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn precision_bf16_changes_the_rounding_not_the_run_and_bad_values_are_refused() {
    let (fp32, bf16) = (temp_dir("precision-fp32"), temp_dir("precision-bf16"));
    let stdout = run_ok(&pretrain_args(&fp32, 8));
    assert!(stdout.contains("fp32 matrix products"), "{stdout}");
    let mut args = pretrain_args(&bf16, 8);
    args.extend(["--precision", "bf16"].map(String::from));
    let stdout = run_ok(&args);
    assert!(
        stdout.contains("bf16 matrix products, emulated"),
        "{stdout}"
    );
    let config = std::fs::read_to_string(bf16.join("config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16\""), "{config}");
    let (a, b) = (losses(&fp32), losses(&bf16));
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "bf16 gave the fp32 losses bit for bit");
    for ((_, x), (_, y)) in a.iter().zip(&b) {
        let (x, y) = (f32::from_bits(*x), f32::from_bits(*y));
        assert!(((x - y) / x).abs() < 0.02, "fp32 {x}, bf16 {y}");
    }
    let mut args = pretrain_args(&bf16, 8);
    args.extend(["--precision", "fp16"].map(String::from));
    let stderr = run_err(&args);
    assert!(
        stderr.contains("train.precision must be fp32, bf16 or auto"),
        "{stderr}"
    );
    for dir in [fp32, bf16] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Steps logged so far in `run`'s `metrics.jsonl` (complete lines only).
fn logged_steps(run: &Path) -> u64 {
    std::fs::read(run.join("metrics.jsonl"))
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Kills the run at random moments, each after it logged a random step beyond the last one
/// seen (so the kills land mid-run however fast the machine is), then resumes it to the end.
#[test]
fn run_killed_at_random_moments_resumes_to_the_same_bits() {
    let steps = 40;
    let (full, killed) = (temp_dir("kill-full"), temp_dir("kill-victim"));
    run_ok(&pretrain_args(&full, steps));
    let (mut kills, mut seen) = (0, 0);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for attempt in 0..20 {
        if seen >= steps - 1 {
            break;
        }
        let target = (seen + 1 + next() % 6).min(steps - 1);
        let mut args = pretrain_args(&killed, steps);
        if attempt > 0 {
            args.push("--resume".into());
        }
        let mut child = Command::new(ECGFM)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let exited = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if logged_steps(&killed) >= target {
                break false;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        if exited {
            break;
        }
        std::thread::sleep(Duration::from_micros(next() % 3000));
        child.kill().unwrap();
        child.wait().unwrap();
        seen = target;
        kills += 1;
    }
    let mut resume = pretrain_args(&killed, steps);
    resume.push("--resume".into());
    run_ok(&resume);
    eprintln!("killed the run {kills} times");
    assert!(kills > 0, "the run was never interrupted");
    assert_same_run_and_remove(full, killed, steps);
}

/// A signal after the stop's checkpoint is saved (`srun --kill-on-bad-exit` signals the ranks
/// still running once the first exits 75) ends the run as a stop, 75, not as killed by it.
#[test]
fn a_signal_after_the_stop_checkpoint_is_saved_still_exits_as_a_stop() {
    let out = temp_dir("late-signal");
    let mut args = pretrain_args(&out, 100_000);
    set_flag(&mut args, "--checkpoint-every", "100000");
    let mut child = Command::new(ECGFM)
        .args(&args)
        .env("ECGFM_FAULT_HOLD_AFTER_STOP_MS", "20000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let term = || {
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.unwrap().success());
    };
    let waited = std::time::Instant::now();
    let mut wait_until = |done: &dyn Fn() -> bool| {
        while !done() {
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            assert!(waited.elapsed() < Duration::from_secs(120), "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_until(&|| logged_steps(&out) >= 2);
    term();
    // The only checkpoint is the stop's (the grid's first is at step 100,000).
    let saved = || {
        std::fs::read_dir(out.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("COMPLETE").exists())
    };
    wait_until(&saved);
    // Past the window in which a second signal is the same request.
    std::thread::sleep(Duration::from_millis(2500));
    term();
    assert_eq!(child.wait().unwrap().code(), Some(75));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn resume_refuses_a_changed_configuration() {
    let out = temp_dir("changed");
    run_ok(&pretrain_args(&out, 6));
    let mut args = pretrain_args(&out, 8);
    args.extend(["--resume".into(), "--set".into(), "optim.lr=0.5".into()]);
    let stderr = run_err(&args);
    assert!(
        stderr.contains("differs from the run's config.toml (optim.lr: saved 0.001, now 0.5)"),
        "{stderr}"
    );
    // A longer run may resume, told that its schedule moved: steps 4 and 5 decayed faster than
    // an 8-step run's would have.
    let mut longer = pretrain_args(&out, 8);
    longer.push("--resume".into());
    let stderr = run_ok_logs(&longer);
    assert!(
        stderr.contains("warning: train.steps changed from 6 to 8: after step 6"),
        "{stderr}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// The checkpoints of `run`, by folder name.
fn checkpoint_names(run: &Path) -> Vec<String> {
    ecgfm_test_support::sorted_names(&run.join("checkpoints"))
}

/// `--keep-checkpoints 2` leaves the newest two checkpoints, saying which it removed, and a run
/// stopped and resumed with it (or given another count on resume) ends with the bits of one
/// that kept every checkpoint.
#[test]
fn keep_checkpoints_removes_all_but_the_newest_and_the_run_is_unchanged() {
    let (all, kept) = (temp_dir("keep-all"), temp_dir("keep-two"));
    let args = |out: &Path, extra: &[&str]| {
        let mut args = pretrain_args(out, 12);
        set_flag(&mut args, "--checkpoint-every", "2");
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    run_ok(&args(&all, &[]));
    assert_eq!(checkpoint_names(&all).len(), 6);
    let logs = run_ok_logs(&args(
        &kept,
        &["--keep-checkpoints", "2", "--stop-after", "8"],
    ));
    assert_eq!(checkpoint_names(&kept), ["step_00000006", "step_00000008"]);
    assert!(
        logs.contains("step_00000004 (train.keep_checkpoints = 2)"),
        "{logs}"
    );
    run_ok(&args(&kept, &["--keep-checkpoints", "1", "--resume"]));
    assert_eq!(checkpoint_names(&kept), ["step_00000012"]);
    // The weights files' headers record each run's own configuration: compare the tensors.
    assert_eq!(losses(&all), losses(&kept));
    assert!(
        checkpoint_tensor_bytes(&all, 12) == checkpoint_tensor_bytes(&kept, 12),
        "weights differ"
    );
    for dir in [all, kept] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_resume_may_change_how_often_it_checkpoints_logs_and_validates_but_not_its_precision() {
    let (full, split) = (temp_dir("cadence-full"), temp_dir("cadence-split"));
    run_ok(&pretrain_args(&full, 8));
    let mut first = pretrain_args(&split, 8);
    first.extend(["--stop-after", "3"].map(String::from));
    run_ok(&first);
    let mut bf16 = pretrain_args(&split, 8);
    bf16.extend(["--resume", "--precision", "bf16"].map(String::from));
    let stderr = run_err(&bf16);
    assert!(
        stderr.contains("was trained in fp32; in bf16 the run would round otherwise"),
        "{stderr}"
    );
    let mut resume = pretrain_args(&split, 8);
    set_flag(&mut resume, "--checkpoint-every", "1");
    resume.extend(
        [
            "--resume",
            "--set",
            "train.log_every=2",
            "--set",
            "train.val_every=3",
        ]
        .map(String::from),
    );
    let stdout = run_ok(&resume);
    assert!(
        stdout.contains("step_00000003 in fp32 (train.precision auto)"),
        "{stdout}"
    );
    for step in 4..=8 {
        let dir = split.join(format!("checkpoints/step_{step:08}"));
        assert!(dir.join("COMPLETE").is_file(), "{}", dir.display());
    }
    assert!(
        checkpoint_tensor_bytes(&full, 8) == checkpoint_tensor_bytes(&split, 8),
        "weights differ"
    );
    for dir in [full, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = temp_dir("bad");
    let mut args = pretrain_args(&out, 4);
    args.extend(["--set".into(), "optim.learning_rate=1".into()]);
    let output = Command::new(ECGFM).args(&args).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in --set optim.learning_rate=1: unknown key `learning_rate` in [optim]"),
        "{stderr}"
    );
    // A file's typo names the file and the nearest key.
    let file = out.join("bad.toml");
    std::fs::write(&file, "[train]\nstep = 5\n").unwrap();
    let err = run_err(&[
        "pretrain",
        "--config",
        path_str(&file),
        "--out",
        path_str(&out.join("r")),
    ]);
    let said = format!(
        "in the config file {}: unknown key `step` in [train] (did you mean `steps`?)",
        file.display()
    );
    assert!(err.contains(&said), "{err}");
    std::fs::remove_dir_all(out).unwrap();
}

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
