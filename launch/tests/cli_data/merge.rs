//! `ecgfm data merge`: two datasets inspected and trained on as one, mismatches refused; two
//! sources repeated per epoch and validated one by one, on the same windows whatever the run's
//! mixing; a damaged input shard (exit 65, as `pretrain` drawing its validation set from one).

use std::path::Path;

use crate::common::{
    ecgfm_env, flip_middle_byte, pretrain_args, run_err, run_ok, run_refused, temp_dir,
};
use crate::{synth, synth_with};

#[test]
fn merged_datasets_inspect_and_train_as_one_and_mismatches_are_refused() {
    let dir = temp_dir("data-merge");
    let (a, b) = (synth(&dir, "a", "1", "3"), synth(&dir, "b", "2", "3"));
    let merged = dir.join("merged").display().to_string();
    let said = run_ok(&["data", "merge", &a, &b, "--out", &merged]);
    assert!(
        said.contains("2 datasets -> 36 rows of 12 records"),
        "{said}"
    );
    assert!(
        said.contains("sources: a (6 records seen), b (6 records seen)"),
        "{said}"
    );
    // On one disk the shards are hard-linked; --stream-copy copies their bytes.
    assert!(
        said.contains("(0 copied through here, 2 by the store, 0 kept"),
        "{said}"
    );
    let streamed = dir.join("streamed").display().to_string();
    let said = run_ok(&[
        "data",
        "merge",
        &a,
        &b,
        "--out",
        &streamed,
        "--stream-copy",
        "--jobs",
        "1",
    ]);
    assert!(
        said.contains("(2 copied through here, 0 by the store, 0 kept"),
        "{said}"
    );
    let summary = run_ok(&["data", "inspect", &merged]);
    assert!(
        summary.contains("36 rows from 12 records in 2 shards"),
        "{summary}"
    );
    let seen = "6 records seen (synth, ecgfm-synth seed";
    assert_eq!(summary.matches(seen).count(), 2, "{summary}");
    // Each source's rows by split: together the dataset's 36.
    let per_source: u64 = summary
        .lines()
        .filter_map(|l| l.split_once("; rows: "))
        .flat_map(|(_, rows)| rows.split(", ").map(|r| r.split(' ').nth(1).unwrap()))
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(per_source, 36, "{summary}");

    let run = dir.join("run");
    let mut args = pretrain_args(&run, 2);
    args.extend(["--data".to_string(), merged.clone()]);
    run_ok(&args);
    assert!(run.join("metrics.jsonl").exists());

    // Each refusal below is for good (exit 78: `ecgfm launch` does not try it again).
    let err = run_refused(&["data", "merge", &a, &b, "--out", &merged]);
    assert!(err.contains("already holds a dataset"), "{err}");
    // Two sources of one name: their record and patient ids would collide.
    let namesake = synth_with(&dir, "namesake", "4", "3", &["--source-name", "a"]);
    let out = dir.join("y").display().to_string();
    let err = run_refused(&["data", "merge", &a, &namesake, "--out", &out]);
    assert!(
        err.contains("both hold a source named a") && err.contains("--source-name"),
        "{err}"
    );
    let long = synth(&dir, "long", "3", "4");
    let err = run_refused(&[
        "data",
        "merge",
        &a,
        &long,
        "--out",
        &dir.join("x").display().to_string(),
    ]);
    assert!(
        err.contains(&long) && err.contains("window length (samples) is 1000, not 750"),
        "{err}"
    );
    let err = run_err(&["data", "merge", "--out", "x"]);
    assert!(err.contains("<INPUTS>"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The last record of a run's metrics.jsonl.
fn last_metrics(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn sources_of_a_merge_are_repeated_and_validated_one_by_one() {
    let dir = temp_dir("data-sources");
    // 100 records of 3 windows in row groups of 16 rows: a shard holds several row groups, so
    // mixing within and across shards differ.
    let of = |source| {
        [
            "--records",
            "100",
            "--row-group-rows",
            "16",
            "--source-name",
            source,
        ]
    };
    let a = synth_with(&dir, "a", "1", "3", &of("alpha"));
    let b = synth_with(&dir, "b", "2", "3", &of("beta"));
    let merged = dir.join("merged").display().to_string();
    run_ok(&["data", "merge", &a, &b, "--out", &merged]);
    let inspect = run_ok(&["data", "inspect", &merged]);
    assert!(
        inspect.contains("alpha    100 records seen") && inspect.contains("; rows: "),
        "{inspect}"
    );

    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = pretrain_args(&out, 2);
        args.extend(["--data", &merged, "--set", "train.val_every=1"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        (run_ok(&args), out)
    };
    let (said, out) = run("repeat", &["--set", "data.repeat.beta=3"]);
    assert!(
        said.contains("x1, beta ") && said.contains(" x3)"),
        "{said}"
    );
    let by_source = &last_metrics(&out)["val_loss_by_source"];
    let names: Vec<&String> = by_source.as_object().unwrap().keys().collect();
    assert_eq!(names, ["alpha", "beta"], "{by_source}");
    // A source the dataset lacks is a refused configuration (exit 78: `launch` does not retry it).
    let mut unknown = pretrain_args(&dir.join("unknown"), 2);
    unknown.extend(["--data", &merged, "--set", "data.repeat.gamma=2"].map(String::from));
    let refused = ecgfm_env(&unknown, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("data.repeat names source \"gamma\", which the dataset does not hold"),
        "{stderr}"
    );
    assert_eq!(refused.status.code(), Some(78), "{stderr}");
    let (said, _) = run("fraction", &["--set", "data.repeat.alpha=0.25"]);
    // "...: alpha 240 x0.25 (60 per epoch), beta 240 x1)"
    let alpha = said
        .split(": alpha ")
        .nth(1)
        .and_then(|rest| rest.split(" per epoch)").next())
        .unwrap_or_else(|| panic!("{said}"));
    let words: Vec<&str> = alpha.split_whitespace().collect();
    let rows: f64 = words[0].parse().unwrap();
    assert_eq!(words[1], "x0.25", "{said}");
    let reads: f64 = words[2].trim_start_matches('(').parse().unwrap();
    assert_eq!(reads, (rows * 0.25).round(), "{said}");

    // With a learning rate too small to move a weight, the losses tell the windows apart: the
    // validation sets, whole and each source's, are the same whether or not the run mixes
    // across shards. 8 windows: fewer than a source's validation windows, so the order picks
    // them, and it is the validation reader's own.
    let frozen = [
        "--set",
        "optim.lr=1e-30",
        "--set",
        "optim.min_lr=0",
        "--set",
        "train.val_windows=8",
    ];
    let within = last_metrics(&run("within", &frozen).1);
    let across = [&frozen[..], &["--set", "data.mix_across_shards=true"]].concat();
    let across = last_metrics(&run("across", &across).1);
    assert_eq!(within["val_loss_by_source"], across["val_loss_by_source"]);
    assert_eq!(within["val_loss"], across["val_loss"], "{within} {across}");
    let off = last_metrics(&run("off", &["--set", "train.val_by_source=false"]).1);
    assert!(off.get("val_loss_by_source").is_none(), "{off}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The exit status and standard error of `ecgfm args`, which must fail.
fn exit_and_error(args: &[String]) -> (Option<i32>, String) {
    let output = ecgfm_env(args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success(),
        "ecgfm {args:?} should have failed"
    );
    (output.status.code(), stderr)
}

/// A dataset of 360 rows in 3 shards of row groups of 32 rows (the middle of a shard is in a row
/// group's signal column chunk) at `dir/ds`, and its shards' paths.
fn three_shards(dir: &Path) -> (String, Vec<std::path::PathBuf>) {
    let ds = synth_with(
        dir,
        "ds",
        "1",
        "3",
        &[
            "--records",
            "120",
            "--shard-mb",
            "1",
            "--row-group-rows",
            "32",
        ],
    );
    let shards: Vec<_> = (0..4)
        .map(|i| Path::new(&ds).join(format!("shards/shard-{i:05}.parquet")))
        .collect();
    assert!(shards[2].exists() && !shards[3].exists());
    (ds, shards[..3].to_vec())
}

/// What names a damaged dataset `ds` and its repair (`damaged_data::name_damaged_dataset`).
fn names_damaged(ds: &str) -> String {
    format!("a shard of the dataset {ds} is damaged (`ecgfm data inspect {ds}` checks every shard)")
}

/// A run drawing its validation set (before its first step) from a shard damaged after it was
/// written exits 65 (sysexits' EX_DATAERR, as every command exits for it; it gave 1) and names
/// the dataset with its repair, as a shard damaged mid-run does.
#[test]
fn a_damaged_shard_in_the_validation_set_exits_65() {
    let dir = temp_dir("data-damaged-validation");
    let (ds, shards) = three_shards(&dir);
    for shard in &shards {
        flip_middle_byte(shard);
    }
    let mut pretrain = pretrain_args(&dir.join("run"), 4);
    pretrain.extend(["--data".to_string(), ds.clone()]);
    let (code, err) = exit_and_error(&pretrain);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains(&names_damaged(&ds))
            && err.contains("drawing the validation set: shards/shard-0000"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A merge of a shard damaged after it was written exits 65 (it gave 1), naming the dataset and
/// the shard; the shards copied before it stay, and the same merge, run again once the shard is
/// repaired, keeps them and finishes.
#[test]
fn a_damaged_input_shard_exits_65_and_the_merge_goes_on_once_it_is_repaired() {
    let dir = temp_dir("data-merge-damaged");
    let (ds, shards) = three_shards(&dir);
    let out = dir.join("copy").display().to_string();
    let merge: Vec<String> = ["data", "merge", &ds, "--out", &out, "--jobs", "1"]
        .map(String::from)
        .to_vec();
    for stream in [false, true] {
        let intact = flip_middle_byte(&shards[1]);
        let mut args = merge.clone();
        if stream {
            args.push("--stream-copy".into());
        }
        let (code, err) = exit_and_error(&args);
        assert_eq!(code, Some(65), "{err}");
        assert!(
            err.contains(&names_damaged(&ds))
                && err.contains(&format!("{ds}/shards/shard-00001.parquet"))
                && err.contains("run the merge again once the input is repaired"),
            "{err}"
        );
        // One shard at a time: the first was copied, the damaged one left out, no manifest.
        let copied = Path::new(&out).join("shards");
        assert!(copied.join("shard-00000.parquet").exists());
        assert!(!copied.join("shard-00001.parquet").exists());
        assert!(!Path::new(&out).join("manifest.json").exists());
        std::fs::write(&shards[1], &intact).unwrap();
        let said = run_ok(&args);
        assert!(said.contains("1 kept from an earlier run"), "{said}");
        let summary = run_ok(&["data", "inspect", &out]);
        assert!(summary.contains("360 rows"), "{summary}");
        std::fs::remove_dir_all(&out).unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
}
