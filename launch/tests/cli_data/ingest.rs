//! `ecgfm data ingest`: an output that holds a dataset refused, cohort and exclusion lists, the
//! dry run, the record ids of a split feeding those lists, a wrong `--format` explained, a
//! second ingest into a folder another ingest is writing refused, an ingest killed midway
//! resuming to the one-shot dataset, and a record file it may not read stopping it.

use std::path::{Path, PathBuf};

use crate::common::{
    ecgfm_env, ecgfm_unprivileged, run_err, run_err_in, run_ok, run_ok_in, run_refused, set_mode,
    temp_dir,
};

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
    // Refused for good (exit 78, which `ecgfm launch` does not restart).
    let err = run_refused(&ingest(&["--seed", "5", "--stop-after-shards", "1"]));
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

/// An interrupted ingest resumes, and a finished one does nothing, whatever the spelling of its
/// paths (`--out jr4`, `jr4/`, `./jr4`, the source with a trailing `/`) or `--format auto` for
/// the format it resolves to; another `--rate` is refused naming it.
#[test]
fn an_ingest_resumes_however_its_paths_are_spelled() {
    let Some(source) = ecgfm_test_support::shared_data("ptbxl-500") else {
        return;
    };
    let dir = temp_dir("ingest-respelled");
    let source = source.to_str().unwrap();
    fn ingest(source: &str, format: &str, out: &str, extra: &[&str]) -> Vec<String> {
        let args = [
            "--format",
            format,
            "--out",
            out,
            "--limit",
            "60",
            "--row-group-rows",
            "8",
            "--shard-mb",
            "1",
        ];
        ingest_args(Path::new(source), &[&args[..], extra].concat())
    }
    let first = run_ok_in(
        &dir,
        &ingest(source, "ptbxl", "jr4", &["--stop-after-shards", "1"]),
    );
    assert!(first.contains("stopped early after 1 shards"), "{first}");
    let with_slash = format!("{source}/");
    let resumed = run_ok_in(&dir, &ingest(&with_slash, "auto", "jr4/", &[]));
    assert!(
        resumed.contains("60 records planned") && resumed.contains(", 1 kept from an earlier run)"),
        "{resumed}"
    );
    let again = run_ok_in(&dir, &ingest(source, "ptbxl", "./jr4", &[]));
    assert!(again.contains("(0 written now, "), "{again}");
    let absolute = dir.join("jr4");
    let again = run_ok(&ingest(source, "auto", absolute.to_str().unwrap(), &[]));
    assert!(again.contains("(0 written now, "), "{again}");
    let err = run_err_in(&dir, &ingest(source, "ptbxl", "jr4", &["--rate", "500"]));
    assert!(
        err.contains(
            "jr4 already holds a dataset (manifest.json) ingested with other settings: --rate \
             250 then, 500 now; ingest writes a new one"
        ),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// An ingest killed (SIGKILL: no handler runs) after a few shards, then run again, finishes the
/// dataset a one-shot ingest writes: the same manifest and the same bytes in every shard,
/// whatever the kill interrupted (a shard being staged, a journal being saved).
#[test]
fn an_ingest_killed_midway_resumes_to_the_one_shot_dataset() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("ingest-killed");
    let args = |out: &Path| {
        let args = [
            "--format",
            "cinc2017",
            "--out",
            out.to_str().unwrap(),
            "--limit",
            "1500",
            "--threads",
            "1",
            "--shard-mb",
            "0.2",
            "--row-group-rows",
            "16",
        ];
        ingest_args(&source, &args)
    };
    let (one_shot, killed) = (dir.join("one-shot"), dir.join("killed"));
    run_ok(&args(&one_shot));
    let finished_shards = |out: &Path| {
        std::fs::read_dir(out.join("shards")).map_or(0, |entries| {
            let names = entries.map(|e| e.unwrap().file_name().into_string().unwrap());
            names.filter(|n| n.ends_with(".parquet")).count()
        })
    };
    let mut first = std::process::Command::new(crate::ECGFM)
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while finished_shards(&killed) < 3 {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the ingest ended before it was killed: the test proves nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    first.kill().unwrap();
    assert!(!first.wait().unwrap().success());
    assert!(!killed.join("manifest.json").exists());
    let resumed = run_ok(&args(&killed));
    assert!(resumed.contains("kept from an earlier run)"), "{resumed}");
    assert!(
        !resumed.contains(", 0 kept from an earlier run)"),
        "{resumed}"
    );
    let bytes = |path: PathBuf| std::fs::read(&path).unwrap();
    assert!(
        bytes(one_shot.join("manifest.json")) == bytes(killed.join("manifest.json")),
        "the manifests differ"
    );
    let shards = finished_shards(&one_shot);
    assert_eq!(finished_shards(&killed), shards);
    for i in 0..shards {
        let name = format!("shards/shard-{i:05}.parquet");
        assert!(
            bytes(one_shot.join(&name)) == bytes(killed.join(&name)),
            "{name} differs"
        );
    }
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
    // Settings the ingest refuses, the dry run refuses the same way (it passed them until
    // 2026-12-06): a row group too large to hold, none, a band-pass upside down.
    for settings in [
        &["--window-s", "60", "--rate", "500"][..],
        &["--row-group-rows", "0"],
        &["--bandpass", "50:10"],
    ] {
        let dry = run_refused(&ingest("two.txt", &[settings, &["--dry-run"]].concat()));
        let out = ["--out", &path("refused")];
        let real = run_refused(&ingest("two.txt", &[settings, &out[..]].concat()));
        assert_eq!(dry, real, "{settings:?}");
        assert!(!dir.join("refused").exists());
    }
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
        said.contains("an interrupted run of this ingest left a journal of 1 shards (")
            && said.contains(" of 300 records); the ingest goes on from there"),
        "{said}"
    );
    let err = run_refused(&ingest(
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
    let refused = ecgfm_env(
        &["data", "inspect", &path("first"), "--record-ids", "tests"],
        &[],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    let says =
        "--record-ids tests: `tests` is not a split; give one or more of train, val, test, all";
    assert!(err.contains(says), "{err}");
    assert_eq!(refused.status.code(), Some(78), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
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

/// A target `--rate` above the highest a record may have (100 kHz) is refused up front, naming
/// the flag, by `ingest` (it ran out of memory at 100 MHz) and `synth`, and nothing is written;
/// the highest one itself is not refused.
#[test]
fn an_absurd_rate_is_refused_naming_the_flag() {
    let dir = temp_dir("absurd-rate");
    let out = dir.join("bo");
    let out = out.to_str().unwrap();
    // Refused before the source is opened: it need not exist.
    let source = "/nonexistent-source";
    for rate in ["100000000", "100000.5", "nan", "-250"] {
        for command in [
            &["data", "ingest", source, "--limit", "1", "--out", out][..],
            &["data", "synth", "--records", "1", "--out", out],
        ] {
            let flag = format!("--rate={rate}");
            let err = run_err(&[command, &[flag.as_str()]].concat());
            assert!(
                err.contains("--rate must be a sampling rate in Hz above 0 and at most 100000"),
                "{err}"
            );
            assert!(err.contains(&format!("got {}", rate.parse::<f64>().unwrap())));
        }
    }
    assert!(!dir.join("bo").exists());
    let highest = run_ok(&[
        "data",
        "synth",
        "--records",
        "1",
        "--out",
        out,
        "--rate",
        "100000",
        "--window-s",
        "0.1",
    ]);
    assert!(highest.contains("1 synthetic records"), "{highest}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Windows too long for the row groups to fit in memory (a 100,000 s window was 153 GB a row
/// group) are refused before anything is read or written, naming the flags to change, with
/// exit 78 (a refused setting).
#[test]
fn row_groups_too_large_for_memory_are_refused_naming_the_flags() {
    let dir = temp_dir("row-group-bytes");
    let out = dir.join("rg");
    let out = out.to_str().unwrap();
    for (flags, says) in [
        (
            &["--window-s", "60", "--rate", "500"][..],
            "a row group of 256 windows of 30000 samples x 12 leads holds 176 MiB of signal, \
             more than the 64 MiB the writer and the loader (which decodes several at once) may hold \
             in memory: give --row-group-rows 93 or fewer, or shorter windows",
        ),
        (
            &["--window-s", "1000000", "--row-group-rows", "1"],
            "a row group of 1 windows of 250000000 samples x 12 leads holds 5722 MiB of \
             signal, more than the 64 MiB the writer and the loader (which decodes several at once) may \
             hold in memory: give shorter windows (--window-s, or a lower --rate)",
        ),
    ] {
        for command in [
            ingest_args(
                Path::new("/nonexistent-source"),
                &[&["--out", out], flags].concat(),
            ),
            [&["data", "synth", "--records", "1", "--out", out], flags]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ] {
            let output = ecgfm_env(&command, &[]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains(says), "{stderr}");
            assert_eq!(output.status.code(), Some(78), "{stderr}");
            assert!(!Path::new(out).exists(), "refused, yet {out} was made");
        }
    }
    let fits = [
        "--window-s",
        "60",
        "--rate",
        "500",
        "--row-group-rows",
        "93",
    ];
    let said = run_ok(
        &[
            &["data", "synth", "--records", "1", "--out", out][..],
            &fits,
        ]
        .concat(),
    );
    assert!(said.contains("1 synthetic records"), "{said}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A writer into a folder where a larger attempt was killed before its manifest (here a synth
/// whose manifest is removed) removes the shards that attempt left beyond its own and says how
/// many: `data synth` and `data ingest` alike.
#[test]
fn writers_say_how_many_left_over_shards_they_removed() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("left-over-shards");
    let out = dir.join("ds");
    let out_str = out.to_str().unwrap();
    let shard_files = || std::fs::read_dir(out.join("shards")).unwrap().count();
    let synth = |records: &str| {
        run_ok(&[
            "data",
            "synth",
            "--out",
            out_str,
            "--records",
            records,
            "--shard-mb",
            "0.04",
            "--row-group-rows",
            "2",
            "--threads",
            "2",
        ])
    };
    let killed_larger = || {
        synth("40");
        std::fs::remove_file(out.join("manifest.json")).unwrap();
        shard_files()
    };
    let said_removed = |said: &str, n: usize| {
        assert!(
            said.contains(&format!(
                "removed {n} shard files an earlier attempt had left in the folder beyond this \
                 dataset's"
            )),
            "{said}"
        );
    };
    let left = killed_larger();
    let said = synth("2");
    let own = shard_files();
    assert!(own < left, "{own} of {left}");
    said_removed(&said, left - own);
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let left = killed_larger();
    let said = run_ok(&ingest_args(
        &source,
        &["--format", "cinc2017", "--out", out_str, "--limit", "2"],
    ));
    let own = shard_files();
    assert!(own < left, "{own} of {left}");
    said_removed(&said, left - own);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A window or stride of no sample is named by its flag and the rate (not as
/// `stride_samples must be > 0`), and a file given as the source folder is named as a file.
#[test]
fn a_stride_under_one_sample_and_a_file_for_a_source_are_explained() {
    let dir = temp_dir("stride-under-a-sample");
    let out = dir.join("st");
    let out = out.to_str().unwrap();
    let source = "/nonexistent-source";
    for (flags, says) in [
        (
            &["--stride-s", "0.001"][..],
            "--stride-s 0.001 is under one sample at --rate 250 (a sample lasts 0.004 s)",
        ),
        (
            &["--window-s", "0.0009", "--rate", "500"],
            "--window-s 0.0009 is under one sample at --rate 500 (a sample lasts 0.002 s)",
        ),
        (
            &["--window-s", "0"],
            "--window-s must be a positive number of seconds, got 0",
        ),
        (
            &["--stride-s=-1"],
            "--stride-s must be a positive number of seconds, got -1",
        ),
    ] {
        let refused = ecgfm_env(
            &ingest_args(Path::new(source), &[&["--out", out], flags].concat()),
            &[],
        );
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("stride_samples"), "{err}");
        // A refused setting (EX_CONFIG), as the library's own refusals of these settings are.
        assert_eq!(refused.status.code(), Some(78), "{err}");
    }
    let file = dir.join("README.md");
    std::fs::write(&file, "not a source folder").unwrap();
    let err = run_err(&ingest_args(&file, &["--out", out]));
    assert!(
        err.contains(&format!(
            "{}: a file, not a folder: give the folder that holds the records",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("not found"), "{err}");
    assert!(!dir.join("st").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two `data ingest` processes into one folder at once (they both reported success over a
/// broken dataset): the second is refused at once, naming the folder and the first's pid, and so
/// is its `--dry-run`; the first, killed, leaves no lock behind: run again, it finishes, and the
/// dataset inspects clean.
#[test]
fn a_second_ingest_into_a_folder_being_written_is_refused() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("ingest-twice");
    let out = dir.join("cc");
    let out = out.to_str().unwrap();
    let lock = Path::new(out).join("_ingest.lock");
    let ingest = |extra: &[&str]| {
        let args = [
            "--format",
            "cinc2017",
            "--out",
            out,
            "--limit",
            "4000",
            "--threads",
            "1",
            "--shard-mb",
            "1",
            "--row-group-rows",
            "32",
        ];
        ingest_args(&source, &[&args[..], extra].concat())
    };
    let mut first = std::process::Command::new(crate::ECGFM)
        .args(ingest(&[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !lock.exists() {
        assert!(
            started.elapsed().as_secs() < 120 && first.try_wait().unwrap().is_none(),
            "the first ingest never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = first.id();
    let busy = format!(
        "{out} is being written by another ingest (pid {pid}), which holds {}",
        lock.display()
    );
    // Not refused for good: the same command may pass once the first ends (exit 1, not 78).
    let second = ecgfm_env(&ingest(&["--seed", "5"]), &[]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains(&busy), "{err}");
    assert!(err.contains("or choose another --out"), "{err}");
    let err = run_err(&ingest(&["--seed", "5", "--dry-run"]));
    assert!(
        err.contains(&format!("the ingest would be refused at {out}: {busy}")),
        "{err}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first ingest ended before the second was refused: the test proves nothing"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let stdout = run_ok(&ingest(&[]));
    assert!(stdout.contains("dataset written to"), "{stdout}");
    let inspected = run_ok(&["data", "inspect", out]);
    assert!(
        inspected.contains("match the manifest's SHA-256")
            && inspected.contains("the shards hold the manifest's counts"),
        "{inspected}"
    );
    assert!(!lock.exists(), "the finished ingest left its lock file");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A record file the ingest may not read (no permission: the machine's fault, not the record's)
/// stops the ingest naming it, where it was quarantined and stayed out of the dataset on every
/// rerun; once it is readable, the rerun ingests every record.
#[test]
fn a_file_without_read_permission_stops_the_ingest_and_the_rerun_takes_its_record() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2021-sample") else {
        return;
    };
    let dir = temp_dir("ingest-no-permission");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for record in ["E07500", "E07501", "E07502"] {
        for ext in ["hea", "mat"] {
            let name = format!("{record}.{ext}");
            std::fs::copy(source.join(&name), src.join(&name)).unwrap();
        }
    }
    set_mode(&dir, 0o777);
    let locked = src.join("E07501.mat");
    set_mode(&locked, 0o000);
    let out = dir.join("ds");
    let ingest = || {
        let mut command = ecgfm_unprivileged(&dir);
        command.args(ingest_args(&src, &["--out", out.to_str().unwrap()]));
        command.output().unwrap()
    };
    let output = ingest();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("E07501.mat: cannot read: Permission denied")
            && stderr.contains("not a fault of the record, so ingest stops"),
        "{stderr}"
    );
    assert!(!out.join("manifest.json").exists());

    set_mode(&locked, 0o644);
    let output = ingest();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("3 ingested"), "{stdout}");
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["quarantine"], serde_json::json!([]), "{manifest}");
    std::fs::remove_dir_all(dir).unwrap();
}
