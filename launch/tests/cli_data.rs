//! `ecgfm data merge` (two datasets inspected and trained on as one; mismatches refused; two
//! sources repeated per epoch and validated one by one, on the same windows whatever the run's
//! mixing), and
//! `ecgfm data read` against the `wfdb` Python package on every record of the shared
//! `wfdb-formats` folder: the CSV carries the same signal names, sample count and per-signal sums
//! (digital exactly, physical within float tolerance; missing samples left out of both) as
//! `wfdb.rdrecord`, and a record the package cannot read either fails with the file named; and
//! `data ingest` refusing an `--out` that already holds a dataset, and sizes of zero refused
//! naming the flag (`bench`'s comparisons are in cli_bench.rs).

use std::path::Path;
use std::process::Command;

use ecgfm_test_support::python_stdout;

mod common;
use common::{pretrain_args, run_err, run_ok, temp_dir};

const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

const ORACLE: &str = r#"
import sys, json, wfdb, numpy as np
out = {}
for rec in sys.argv[1:]:
    try:
        d = wfdb.rdrecord(rec, physical=False)
        p = wfdb.rdrecord(rec)
    except Exception as e:
        out[rec] = {"error": str(e)}
        continue
    present = ~np.isnan(p.p_signal)
    out[rec] = {"names": d.sig_name, "rows": int(d.d_signal.shape[0]),
        "digital": [int(x) for x in np.where(present, d.d_signal, 0).astype(np.int64).sum(axis=0)],
        "physical": [float(x) for x in np.nansum(p.p_signal, axis=0)]}
print(json.dumps(out))
"#;

/// The fields of a CSV header line, unquoting `"..."` fields (`""` inside is a quote).
fn header_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Column sums and row count of a CSV written by `ecgfm data read`.
fn csv_sums(text: &str) -> (Vec<String>, usize, Vec<f64>) {
    let mut lines = text.lines();
    let names = header_fields(lines.next().unwrap());
    let mut sums = vec![0.0f64; names.len()];
    let mut rows = 0;
    for line in lines {
        for (sum, field) in sums.iter_mut().zip(line.split(',')) {
            *sum += field.parse::<f64>().unwrap_or(0.0);
        }
        rows += 1;
    }
    (names, rows, sums)
}

/// Runs `ecgfm data read RECORD --out OUT [--digital]`; its stderr when it fails.
fn read_csv(record: &str, out: &Path, digital: bool) -> Result<String, String> {
    let mut args = vec!["data", "read", record, "--out", out.to_str().unwrap()];
    if digital {
        args.push("--digital");
    }
    let output = Command::new(ECGFM).args(&args).output().unwrap();
    if output.status.success() {
        Ok(std::fs::read_to_string(out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn csv_of_every_wfdb_formats_record_matches_wfdb() {
    let Some(folder) = ecgfm_test_support::shared_data("wfdb-formats") else {
        return;
    };
    let mut records: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "hea").then(|| path.with_extension("").display().to_string())
        })
        .collect();
    records.sort();
    assert!(records.len() >= 9, "{records:?}");
    let Some(oracle) = python_stdout(
        Command::new("python3").arg("-c").arg(ORACLE).args(&records),
        &["wfdb", "numpy"],
        "the wfdb oracle",
    ) else {
        return;
    };
    let expected: serde_json::Value = serde_json::from_slice(&oracle).unwrap();
    let out = std::env::temp_dir().join(format!("ecgfm-read-{}.csv", std::process::id()));
    let mut compared = 0;
    for record in &records {
        let want = &expected[record.as_str()];
        for digital in [true, false] {
            let csv = read_csv(record, &out, digital);
            if let Some(error) = want.get("error") {
                let message = csv.expect_err("wfdb cannot read it, ecgfm did");
                println!("{record}: wfdb: {error}; ecgfm: {}", message.trim());
                assert!(message.contains(record.as_str()), "{message}");
                continue;
            }
            let csv = csv.unwrap_or_else(|e| panic!("{record}: {e}"));
            let (names, rows, sums) = csv_sums(&csv);
            let want_names: Vec<String> = serde_json::from_value(want["names"].clone()).unwrap();
            assert_eq!(names, want_names, "{record}");
            assert_eq!(rows as u64, want["rows"].as_u64().unwrap(), "{record}");
            let key = if digital { "digital" } else { "physical" };
            for (got, want) in sums.iter().zip(want[key].as_array().unwrap()) {
                let want = want.as_f64().unwrap();
                let tolerance = if digital { 0.0 } else { 1e-6 * rows as f64 };
                assert!(
                    (got - want).abs() <= tolerance,
                    "{record}: {key} sum {got} != wfdb's {want}"
                );
            }
            compared += 1;
        }
    }
    std::fs::remove_file(out).ok();
    assert!(compared >= 16, "only {compared} CSVs compared");
}

/// `ecgfm data synth` with `seed` and windows of `window_s` seconds at `dir/name`, and the
/// flags `extra` (`--records N` among them).
fn synth_with(dir: &Path, name: &str, seed: &str, window_s: &str, extra: &[&str]) -> String {
    let out = dir.join(name).display().to_string();
    let args = [
        "data",
        "synth",
        "--out",
        &out,
        "--seed",
        seed,
        "--window-s",
        window_s,
    ];
    run_ok(&[&args[..], extra, &["--threads", "2"]].concat());
    out
}

/// `ecgfm data synth` of 6 records with `seed` and windows of `window_s` seconds at `dir/name`,
/// its source named `name` (two sources merge only under different names).
fn synth(dir: &Path, name: &str, seed: &str, window_s: &str) -> String {
    synth_with(
        dir,
        name,
        seed,
        window_s,
        &["--records", "6", "--source-name", name],
    )
}

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

    let err = run_err(&["data", "merge", &a, &b, "--out", &merged]);
    assert!(err.contains("already holds a dataset"), "{err}");
    // Two sources of one name: their record and patient ids would collide.
    let namesake = synth_with(&dir, "namesake", "4", "3", &["--source-name", "a"]);
    let out = dir.join("y").display().to_string();
    let err = run_err(&["data", "merge", &a, &namesake, "--out", &out]);
    assert!(
        err.contains("both hold a source named a") && err.contains("--source-name"),
        "{err}"
    );
    let long = synth(&dir, "long", "3", "4");
    let err = run_err(&[
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
    let missing = format!("object store error on {data}/shards/shard-00000.parquet: ");
    assert!(err.contains(&missing), "{err}");
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

/// `data ingest` into a folder that holds a dataset (here with another seed, stopping after one
/// shard) is refused, naming the folder and the way out, and the dataset still inspects clean.
#[test]
fn ingest_into_a_dataset_is_refused_and_the_dataset_kept() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("ingest-onto");
    let out = dir.join("full");
    let out = out.to_str().unwrap();
    let ingest = |extra: &[&str]| {
        let args = [
            "--format",
            "cinc2017",
            "--out",
            out,
            "--limit",
            "60",
            "--shard-mb",
            "0.2",
            "--row-group-rows",
            "16",
        ];
        ingest_args(&source, &[&args[..], extra].concat())
    };
    run_ok(&ingest(&[]));
    let err = run_err(&ingest(&["--seed", "5", "--stop-after-shards", "1"]));
    assert!(
        err.contains(&format!("{out} already holds a dataset (manifest.json)")),
        "{err}"
    );
    assert!(
        err.contains("choose another --out or remove the folder"),
        "{err}"
    );
    let summary = run_ok(&["data", "inspect", out]);
    assert!(!summary.contains("DIFFER"), "{summary}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `ecgfm data ingest SOURCE` with `args` after it.
fn ingest_args(source: &Path, args: &[&str]) -> Vec<String> {
    ["data", "ingest", source.to_str().unwrap()]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect()
}

/// `data ingest --records FILE` ingests the records the file lists and says how many it planned;
/// a listed record the source lacks fails naming the file and the record. `--exclude FILE`
/// leaves the records it lists out, warning of those the source lacks.
#[test]
fn ingest_records_takes_a_cohort_list() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("ingest-records");
    let list = dir.join("cohort.txt");
    let ingest = |flag: &str, list_text: &str, out: &str, extra: &[&str]| {
        std::fs::write(&list, list_text).unwrap();
        let out = dir.join(out);
        let flags = [flag, list.to_str().unwrap(), "--out", out.to_str().unwrap()];
        ingest_args(&source, &[&flags[..], extra].concat())
    };
    let summary = run_ok(&ingest("--records", "A00007\nA00002\n", "two", &[]));
    assert!(
        summary.contains("2 records planned, 2 ingested"),
        "{summary}"
    );
    let err = run_err(&ingest("--records", "A00002\nA0002\n", "typo", &[]));
    assert!(
        err.contains("cohort.txt")
            && err.contains("1 of its 2 records are not in")
            && err.contains("A0002"),
        "{err}"
    );
    let excluded = ingest(
        "--exclude",
        "A00001\nZ00009\n",
        "excluded",
        &["--limit", "2"],
    );
    let summary = run_ok(&excluded);
    assert!(
        summary.contains("2 records planned, 2 ingested")
            && summary.contains("warning: exclusion list")
            && summary.contains("1 of its 2 records are not in")
            && summary.contains("Z00009"),
        "{summary}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `data ingest --dry-run` prints the plan, needs no --out, and with one says what the output
/// holds (nothing yet, this ingest finished or interrupted, or something it would refuse) and
/// writes nothing there; lists that leave no record are refused.
#[test]
fn ingest_dry_run_prints_the_plan_and_what_the_output_holds() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("ingest-dry-run");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    std::fs::write(path("two.txt"), "A00007\nA00002\n").unwrap();
    std::fs::write(path("one.txt"), "A00007\n").unwrap();
    let ingest = |list: &str, extra: &[&str]| {
        ingest_args(&source, &[&["--records", &path(list)], extra].concat())
    };
    let plan = run_ok(&ingest("two.txt", &["--dry-run", "--out", &path("dry")]));
    assert!(
        plan.contains("cinc2017: 2 records to ingest from")
            && plan.contains("nothing written (--dry-run)")
            && plan.contains("records: A00002, A00007\n")
            && plan.contains("labels: 2 from label tables, 0 to be read from their headers")
            && plan.contains("dry: nothing of this ingest there yet"),
        "{plan}"
    );
    assert!(!dir.join("dry").exists());
    let bare = run_ok(&ingest("two.txt", &["--dry-run"]));
    assert!(
        plan.starts_with(&bare) && !bare.contains("output"),
        "{bare}"
    );
    run_ok(&ingest("two.txt", &["--out", &path("two")]));
    let said = run_ok(&ingest("two.txt", &["--dry-run", "--out", &path("two")]));
    assert!(
        said.contains("two: this ingest finished there (1 shards); running it again does nothing"),
        "{said}"
    );
    let err = run_err(&ingest("one.txt", &["--dry-run", "--out", &path("two")]));
    assert!(
        err.contains("the ingest would be refused at") && err.contains("with other settings"),
        "{err}"
    );
    // An interrupted ingest: the dry run says how far it got.
    let partial = [
        "--limit",
        "300",
        "--shard-mb",
        "0.2",
        "--out",
        &path("partial"),
    ];
    run_ok(&ingest_args(
        &source,
        &[&partial[..], &["--stop-after-shards", "1"]].concat(),
    ));
    let said = run_ok(&ingest_args(
        &source,
        &[&partial[..], &["--dry-run"]].concat(),
    ));
    assert!(
        said.contains("an interrupted run of this ingest stored 1 shards (")
            && said.contains(" of 300 records); the ingest goes on from there"),
        "{said}"
    );
    let err = run_err(&ingest(
        "two.txt",
        &["--dry-run", "--exclude", &path("two.txt")],
    ));
    assert!(
        err.contains("--records, --exclude and --limit leave no cinc2017 record of"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `data inspect --record-ids SPLIT` lists a split's records, one per line, and such lists feed
/// `data ingest --records` and `--exclude`: a second ingest of the same records without the first
/// one's test records holds exactly the others.
#[test]
fn record_ids_of_a_split_feed_an_ingests_lists() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("record-ids");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    run_ok(&ingest_args(
        &source,
        &["--limit", "40", "--out", &path("first")],
    ));
    let ids = |dataset: &str, split: &str| -> Vec<String> {
        let out = run_ok(&["data", "inspect", &path(dataset), "--record-ids", split]);
        out.lines().map(String::from).collect()
    };
    let (all, test) = (ids("first", "all"), ids("first", "test"));
    let held_out = ids("first", "val,test");
    assert!(
        test.iter().all(|id| held_out.contains(id)) && held_out.len() > test.len(),
        "{held_out:?}"
    );
    assert_eq!(all.len(), 40);
    assert!(
        !test.is_empty() && test.iter().all(|id| all.contains(id)),
        "{test:?}"
    );
    let train = ids("first", "train");
    assert!(
        train.iter().all(|id| !test.contains(id)),
        "patient-level splits"
    );
    std::fs::write(path("all.txt"), all.join("\n")).unwrap();
    std::fs::write(path("test.txt"), test.join("\n")).unwrap();
    let lists = [
        "--records",
        &path("all.txt"),
        "--exclude",
        &path("test.txt"),
    ];
    run_ok(&ingest_args(
        &source,
        &[&lists[..], &["--out", &path("second")]].concat(),
    ));
    let kept: Vec<String> = all
        .iter()
        .filter(|id| !test.contains(id))
        .cloned()
        .collect();
    assert_eq!(ids("second", "all"), kept);
    let err = run_err(&["data", "inspect", &path("first"), "--record-ids", "tests"]);
    let says =
        "--record-ids tests: `tests` is not a split; give one or more of train, val, test, all";
    assert!(err.contains(says), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stale_header_checksum_points_at_ignore_checksums() {
    let Some(cinc) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    // CinC 2017's headers give every checksum as 0.
    let record = cinc.join("A00001").display().to_string();
    let err = run_err(&["data", "read", &record]);
    assert!(
        err.contains("checksum mismatch") && err.contains("--ignore-checksums reads it anyway"),
        "{err}"
    );
    let csv = run_ok(&["data", "read", &record, "--ignore-checksums"]);
    assert!(csv.lines().count() > 1000, "{}", &csv[..200.min(csv.len())]);
}

/// `data ingest` with another source's `--format` names the file that format reads, what the
/// folder looks like, and the `--format` that reads it.
#[test]
fn a_wrong_format_says_what_the_folder_looks_like() {
    let (Some(cinc), Some(ptbxl)) = (
        ecgfm_test_support::shared_data("cinc2017"),
        ecgfm_test_support::shared_data("ptbxl-500"),
    ) else {
        return;
    };
    let dir = temp_dir("wrong-format");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (source, format, said) in [
        (
            &cinc,
            "ptbxl",
            "ptbxl_database.csv: not found: --format ptbxl reads it; this folder looks like \
             cinc2017 (it has REFERENCE.csv): use --format cinc2017 or --format auto",
        ),
        (
            &ptbxl,
            "cinc2017",
            "REFERENCE.csv: not found: --format cinc2017 reads it; this folder looks like ptbxl \
             (it has ptbxl_database.csv): use --format ptbxl or --format auto",
        ),
        (
            &empty,
            "ptbxl",
            "the folder holds no WFDB record (.hea) either",
        ),
    ] {
        let out = dir.join("out");
        let args = ["--format", format, "--out", out.to_str().unwrap()];
        let err = run_err(&ingest_args(source, &args));
        assert!(err.contains(said), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
