//! What the commands do with a reader that stopped, an address without a dataset, sizes of
//! zero, and a file-size limit.

use std::process::Command;

use crate::common::{self, run_err, temp_dir};
use crate::{synth, ECGFM};

/// Output piped into a reader that has stopped (`ecgfm data inspect URL | head -1`) ends ecgfm
/// quietly, by SIGPIPE as other command-line tools end, not with a panic and its backtrace.
#[test]
fn a_reader_that_stopped_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = temp_dir("broken-pipe");
    let data = common::synth_dataset(&dir);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(ECGFM)
        .args(["data", "inspect", data.to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(13),
        "ended by SIGPIPE: {stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// An address with no dataset says so, for each command that reads one, and names what writes one.
#[test]
fn an_address_without_a_dataset_says_so() {
    let dir = temp_dir("no-dataset");
    let empty = dir.to_str().unwrap();
    for args in [
        vec!["data", "inspect", empty],
        vec![
            "pretrain", "--device", "cpu", "--steps", "1", "--data", empty,
        ],
    ] {
        let err = run_err(&args);
        // Named by its absolute path, as the user gave the folder.
        let missing = format!("{empty}/manifest.json not found: no dataset there (`ecgfm data");
        assert!(err.contains(&missing), "{args:?}: {err}");
    }
    // A missing shard of a local dataset, likewise.
    let data = synth(&dir, "ds", "1", "3");
    std::fs::remove_file(format!("{data}/shards/shard-00000.parquet")).unwrap();
    let err = run_err(&[
        "pretrain", "--device", "cpu", "--steps", "1", "--data", &data,
    ]);
    let missing = "shards/shard-00000.parquet: not found, though the manifest lists it";
    let damaged = format!("a shard of the dataset {data} is damaged");
    assert!(err.contains(missing) && err.contains(&damaged), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// An output folder given as a file is named as such (each said "File exists (os error 17)"
/// until 2026-12-06).
#[test]
fn an_output_that_is_a_file_is_named_as_a_file() {
    let dir = temp_dir("out-file");
    let file = dir.join("afile");
    std::fs::write(&file, "").unwrap();
    let out = file.to_str().unwrap();
    let inside = file.join("run");
    let inside = inside.to_str().unwrap();
    for (args, said) in [
        (
            vec!["data", "synth", "--out", out],
            "a file, where the output's folder must be",
        ),
        (
            vec!["pretrain", "--steps", "1", "--out", out],
            "is a file, where the run folder must be",
        ),
        (
            vec!["pretrain", "--steps", "1", "--out", inside],
            "is a file, where the run folder must be",
        ),
    ] {
        let err = run_err(&args);
        assert!(err.contains(out) && err.contains(said), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sizes of zero are refused up front, naming the flag.
#[test]
fn zero_sizes_are_refused_naming_the_flag() {
    let dir = temp_dir("zero-sizes");
    let out = dir.join("ds");
    let out = out.to_str().unwrap();
    let err = run_err(&[
        "data",
        "ingest",
        "/nonexistent",
        "--out",
        out,
        "--shard-mb",
        "0",
    ]);
    assert!(err.contains("--shard-mb must be a positive size"), "{err}");
    for bench in ["step", "attention"] {
        let err = run_err(&["bench", bench, "--batch-size", "0"]);
        assert!(
            err.contains("'--batch-size <BATCH_SIZE>': must be at least 1"),
            "{err}"
        );
    }
    let err = run_err(&["bench", "loader", "--data", out, "--batch-size", "0"]);
    assert!(err.contains("must be at least 1"), "{err}");
    // Counts that panicked or were silently changed, refused naming the flag.
    for (args, says) in [
        (
            &["bench", "step", "--steps", "0"][..],
            "'--steps <STEPS>': must be at least 1",
        ),
        (
            &["bench", "step", "--ranks", "0"],
            "'--ranks <N>': must be at least 1",
        ),
        (
            &["bench", "attention", "--steps", "0"],
            "'--steps <STEPS>': must be at least 1",
        ),
        (
            &["bench", "allreduce", "--ranks", "100000"],
            "'--ranks <RANKS>'",
        ),
        (
            &["bench", "allreduce", "--ranks", "1"],
            "1 ranks: give 2 to 1024 (an all-reduce is between ranks)",
        ),
        (
            &["bench", "allreduce", "--iters", "0"],
            "'--iters <ITERS>': must be at least 1",
        ),
        (
            &["bench", "allreduce", "--mb", "nan"],
            "--mb NaN x --ranks 2",
        ),
        (&["bench", "allreduce", "--mb", "1e12"], "at most 64 GiB"),
        (&["plan", "--zero", "7"], "'--zero <ZERO>'"),
        (
            &["plan", "--batch-size", "0"],
            "'--batch-size <BATCH_SIZE>': must be at least 1",
        ),
        (
            &["pretrain", "--collective-timeout", "nan"],
            "'--collective-timeout <S>': NaN s",
        ),
        (&["pretrain", "--rdzv-timeout", "1e300"], "at most a week"),
        (
            &["pretrain", "--steps", "18446744073709551615"],
            "must be at most 9223372036854775807 (2^63 - 1)",
        ),
        (
            &["pretrain", "--seed", "9223372036854775808"],
            "'--seed <S>': 9223372036854775808: must be at most",
        ),
        (
            &["pretrain", "--stop-after", "0"],
            "'--stop-after <N>': must be at least 1",
        ),
        (&["pretrain", "--threads", "100000"], "100000 threads on"),
        (
            &["pretrain", "--set", "train.accum_steps=100000000000"],
            "train.accum_steps is 100000000000: at most 65536",
        ),
        // Far past any machine's memory: refused naming the flag (the allocation aborted).
        (
            &[
                "pretrain",
                "--model",
                "nano",
                "--device",
                "cpu",
                "--steps",
                "1",
                "--batch-size",
                "1000000000",
                "--out",
                "/nonexistent/huge",
            ],
            "the training step at --batch-size 1000000000 needs about",
        ),
        (
            &["plan", "--batch-size", "100000000000"],
            "--batch-size 100000000000: counting its memory builds one input batch",
        ),
        (
            &["data", "synth", "--out", "x", "--records", "0"],
            "must be at least 1",
        ),
        (
            &[
                "launch",
                "--slurm-time",
                "abc",
                "--slurm-script",
                "--",
                "pretrain",
            ],
            "`abc` is not a SLURM time limit",
        ),
    ] {
        let err = run_err(args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A write past the file-size limit (`ulimit -f`) is a failed write naming the file, not a
/// silent death by SIGXFSZ (exit 153, no word, the output lock left behind), and the same
/// command, run again without the limit, finishes the dataset.
#[test]
fn a_file_size_limit_is_an_error_naming_the_file() {
    let dir = temp_dir("file-size-limit");
    let out = dir.join("ds");
    let args = [
        "data",
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--records",
        "40",
        "--shard-mb",
        "0.1",
        "--threads",
        "2",
    ];
    let stderr = common::run_past_file_size_limit(&args);
    assert!(stderr.contains(out.to_str().unwrap()), "{stderr}");
    assert!(!out.join("manifest.json").exists());
    common::run_ok(&args);
    assert!(out.join("manifest.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
