//! Ranks against one process: 2 and 4 ranks (with and without ZeRO-1, with small gradient
//! buckets) give bit for bit the run of one process accumulating the same global batch, and the
//! same count of FLOPs over mixed-lead batches, on the synthetic source and on a dataset; a run
//! moves from 4 ranks to 2, and a dataset run from 2 ranks to one process.

use super::common::{ecgfm_env, run_ok, temp_dir};
use super::{assert_same_run, launch_args, losses, pretrain, records};
use std::path::Path;

/// (step, training FLOPs so far) of every metrics record.
fn flops(run: &Path) -> Vec<(u64, f64)> {
    records(run)
        .iter()
        .map(|v| (v["step"].as_u64().unwrap(), v["flops"].as_f64().unwrap()))
        .collect()
}

#[test]
fn two_and_four_ranks_equal_one_process_accumulating_the_same_global_batch() {
    let dir = temp_dir("equal");
    let steps = 5;
    // Global batch 16: 1 x 4 x 4 accumulated, 2 ranks x 4 x 2, 4 ranks x 4 x 1; half the
    // samples single-lead, so each rank's batches cost different FLOPs.
    let mixed = ["--set", "data.synth_single_lead_fraction=0.5"].map(String::from);
    let one = dir.join("one");
    run_ok(&[pretrain(&one, steps, 4, 4), mixed.to_vec()].concat());
    let per_step: Vec<f64> = flops(&one).windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        per_step.iter().any(|&f| f != per_step[0]),
        "steps of mixed leads cost different FLOPs: {per_step:?}"
    );
    // Buckets of 0.1 MiB cut nano's gradients in five: most lie wholly on one rank's side.
    let runs: [(&str, usize, usize, &[&str]); 7] = [
        ("two", 2, 2, &[]),
        ("two-again", 2, 2, &[]),
        ("four", 4, 1, &[]),
        ("two-buckets", 2, 2, &["--bucket-mb", "0.1"]),
        ("four-buckets", 4, 1, &["--bucket-mb", "0.1"]),
        ("two-zero", 2, 2, &["--zero", "1"]),
        ("four-zero", 4, 1, &["--zero", "1"]),
    ];
    for (name, ranks, accum, extra) in runs {
        let out = dir.join(name);
        let mut command = pretrain(&out, steps, 4, accum);
        command.extend(extra.iter().map(|s| s.to_string()).chain(mixed.clone()));
        run_ok(&launch_args(ranks, &[], &command));
        assert_same_run(&one, &out, steps);
        assert_eq!(
            flops(&one),
            flops(&out),
            "{name}: FLOPs over every rank's batches"
        );
    }
    let zero_ckpt = dir.join("four-zero/checkpoints/step_00000005");
    let shards = std::fs::read_dir(&zero_ckpt)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("optimizer.shard-")
        })
        .count();
    assert_eq!(shards, 4, "each ZeRO-1 rank writes its optimizer shard");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_on_four_ranks_resumes_on_two() {
    let dir = temp_dir("regrid");
    let steps = 8;
    let four = dir.join("four");
    run_ok(&launch_args(4, &[], &pretrain(&four, steps, 4, 1)));
    // The same global batch of 16: 4 ranks x 4, then 2 ranks x 8.
    let moved = dir.join("moved");
    let mut first = pretrain(&moved, steps, 4, 1);
    first.extend(["--stop-after".into(), "4".into()]);
    run_ok(&launch_args(4, &[], &first));
    let mut rest = pretrain(&moved, steps, 8, 1);
    rest.push("--resume".into());
    let stdout = run_ok(&launch_args(2, &[], &rest));
    assert!(stdout.contains("resuming from"), "{stdout}");
    let (a, b) = (losses(&four), losses(&moved));
    assert_eq!(a.len(), b.len());
    for ((sa, la), (sb, lb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        let (la, lb) = (f32::from_bits(*la), f32::from_bits(*lb));
        assert!(
            (la - lb).abs() <= 1e-5 * la.abs(),
            "step {sa}: {la} vs {lb}"
        );
    }
    // The first four steps ran on 4 ranks in both: identical.
    assert_eq!(a[..4], b[..4]);
    let seen = |run: &Path| -> u64 {
        let last = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        v["samples_seen"].as_u64().unwrap()
    };
    assert_eq!(seen(&four), seen(&moved));
    // The validation set does not depend on the batch geometry: the same loss at the end, to
    // rounding.
    let val = |run: &Path| -> f64 {
        let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let last = text.lines().rfind(|l| l.contains("val_loss")).unwrap();
        let v: serde_json::Value = serde_json::from_str(last).unwrap();
        v["val_loss"].as_f64().unwrap()
    };
    let (va, vb) = (val(&four), val(&moved));
    assert!((va - vb).abs() <= 1e-5 * va, "val loss {va} vs {vb}");
    // A different global batch is refused, naming both.
    let mut wrong = pretrain(&moved, steps + 2, 4, 1);
    wrong.push("--resume".into());
    let out = ecgfm_env(&launch_args(2, &[], &wrong), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("16 samples per step") && stderr.contains("has 8"),
        "{stderr}"
    );
    // The launcher's own error says why the rank failed, not only that it did; a refused
    // resume is a refused configuration (78), which the launcher does not restart.
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: rank ")
            && last.contains("exited with status 78 (")
            && last.contains("has 8"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dataset_ranks_split_each_global_batch_and_resume_on_one_process() {
    let dir = temp_dir("dataset");
    let data = dir.join("data");
    run_ok(
        &[
            "data",
            "synth",
            "--out",
            data.to_str().unwrap(),
            "--records",
            "24",
        ]
        .map(String::from),
    );
    let with_data_accumulating = |out: &Path, batch: usize, accum: usize| {
        let mut args = pretrain(out, 6, batch, accum);
        args.extend(
            ["--data", data.to_str().unwrap(), "--set", "data.split=all"].map(String::from),
        );
        args
    };
    let with_data = |out: &Path, batch: usize| with_data_accumulating(out, batch, 1);
    let (a, b) = (dir.join("a"), dir.join("b"));
    run_ok(&launch_args(2, &[], &with_data(&a, 4)));
    run_ok(&launch_args(2, &[], &with_data(&b, 4)));
    assert_same_run(&a, &b, 6);
    // Stopped on 2 ranks x 4, resumed as one process x 8: the same global batches.
    let moved = dir.join("moved");
    let mut first = with_data(&moved, 4);
    first.extend(["--stop-after".into(), "3".into()]);
    run_ok(&launch_args(2, &[], &first));
    let mut rest = with_data(&moved, 8);
    rest.push("--resume".into());
    run_ok(&rest);
    let (la, lm) = (losses(&a), losses(&moved));
    assert_eq!(la[..3], lm[..3]);
    assert_eq!(la.len(), lm.len());
    for ((step, x), (_, y)) in la.iter().zip(&lm) {
        let (x, y) = (f32::from_bits(*x), f32::from_bits(*y));
        assert!((x - y).abs() <= 1e-5 * x.abs(), "step {step}: {x} vs {y}");
    }
    // One process accumulating 2 x 4 loads what 2 ranks x 4 load: the same run, bit for bit (it
    // loaded each micro-batch from its own 4 samples, so masked them otherwise, until
    // 2026-12-06); and a run stopped on 2 ranks resumes so, exactly.
    let accumulated = dir.join("accumulated");
    run_ok(&with_data_accumulating(&accumulated, 4, 2));
    assert_same_run(&a, &accumulated, 6);
    let moved = dir.join("moved-accumulating");
    let mut first = with_data(&moved, 4);
    first.extend(["--stop-after".into(), "3".into()]);
    run_ok(&launch_args(2, &[], &first));
    let mut rest = with_data_accumulating(&moved, 4, 2);
    rest.push("--resume".into());
    run_ok(&rest);
    assert_same_run(&a, &moved, 6);
    std::fs::remove_dir_all(dir).unwrap();
}

/// With ZeRO-1, `--keep-checkpoints 1` leaves the newest checkpoint whole (every rank's optimizer
/// shard in it, rank 0 pruning only after all have written), and the run resumed from it ends
/// with the bits of the run that kept every checkpoint.
#[test]
fn zero_one_keeps_the_newest_checkpoint_whole_and_resumes_from_it() {
    let dir = temp_dir("zero-keep");
    let steps = 9;
    let run = |out: &Path, extra: &[&str]| {
        let mut command = pretrain(out, steps, 4, 1);
        command.extend(["--zero", "1"].iter().chain(extra).map(|s| s.to_string()));
        run_ok(&launch_args(2, &[], &command));
    };
    let (all, kept) = (dir.join("all"), dir.join("kept"));
    run(&all, &[]);
    run(&kept, &["--keep-checkpoints", "1", "--stop-after", "6"]);
    let names = |run: &Path| ecgfm_test_support::sorted_names(&run.join("checkpoints"));
    assert_eq!(names(&kept), ["step_00000006"]);
    assert_eq!(
        ecgfm_test_support::sorted_names(&kept.join("checkpoints/step_00000006")),
        [
            "COMPLETE",
            "model.safetensors",
            "optimizer.shard-00000-of-00002.safetensors",
            "optimizer.shard-00001-of-00002.safetensors",
            "state.json"
        ]
    );
    run(&kept, &["--keep-checkpoints", "1", "--resume"]);
    assert_eq!(names(&kept), ["step_00000009"]);
    assert_eq!(names(&all).len(), 3);
    assert_same_run(&all, &kept, steps);
    std::fs::remove_dir_all(dir).unwrap();
}
