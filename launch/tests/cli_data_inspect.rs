//! `ecgfm data inspect` on a dataset with a truncated and a changed shard: both are named (the
//! unreadable one with its absolute path), the summary is printed and the exit status is 65
//! (damaged data, as for every command); a shard this user may not read is no verdict on the
//! data (exit 1, not 65); an out-of-range `--plot-records` is refused before any dataset is read,
//! and a plot makes the folders it goes into. An ingest that quarantines records or keeps some
//! in part says so and points to `data inspect --quarantine`, which lists each with its reason as
//! CSV.

mod common;
use common::{
    ecgfm_env, ecgfm_unprivileged, path_str, run_err, run_ok, set_mode, synth_dataset_with,
    temp_dir,
};

#[test]
fn damaged_shards_are_named_after_the_whole_summary() {
    let dir = temp_dir("inspect-damaged");
    // Shards of a few row groups each, so the dataset has several.
    let ds = synth_dataset_with(&dir, "ds", &["--shard-mb", "0.02", "--row-group-rows", "4"]);
    let clean = run_ok(&["data", "inspect", path_str(&ds)]);
    assert!(!clean.contains("DIFFER"), "{clean}");

    let shard = |i: usize| ds.join(format!("shards/shard-{i:05}.parquet"));
    let bytes = std::fs::read(shard(0)).unwrap();
    std::fs::write(shard(0), &bytes[..bytes.len() - 100]).unwrap();
    let mut bytes = std::fs::read(shard(1)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 4;
    std::fs::write(shard(1), bytes).unwrap();

    let output = ecgfm_env(&["data", "inspect", path_str(&ds)], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(65), "{stdout}\n{stderr}");
    for said in [
        "rows from 40 records in ",
        "quality score (rows per bin; not counted: the ",
        "shards/shard-00000.parquet: ",
        &format!("cannot be read: shard {}: ", shard(0).display()),
        "shards/shard-00001.parquet: ",
        "quarantine: 0 records",
    ] {
        assert!(stdout.contains(said), "{said}\n{stdout}");
    }
    assert!(stdout.contains("shards: 2 of "), "{stdout}");
    assert!(
        stderr.contains("fails its checks: 2 shard(s) differ from the manifest or cannot be read"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plot_records_out_of_range_is_refused_before_reading() {
    let dir = temp_dir("inspect-plot-records");
    let nowhere = dir.join("nowhere");
    let png = dir.join("p.png");
    for records in ["0", "33"] {
        let err = run_err(&[
            "data",
            "inspect",
            path_str(&nowhere),
            "--plot",
            path_str(&png),
            "--plot-records",
            records,
        ]);
        assert!(
            err.contains(&format!("invalid value '{records}' for '--plot-records"))
                && err.contains("1..=32"),
            "{err}"
        );
    }
    let help = run_ok(&["data", "inspect", "--help"]);
    assert!(help.contains("1 to 32"), "{help}");
    // A plot into folders that do not exist yet makes them (it failed with plotters' debug text
    // until 2026-12-06).
    let ds = synth_dataset_with(&dir, "ds", &[]);
    let png = dir.join("plots/new/p.png");
    let said = run_ok(&["data", "inspect", path_str(&ds), "--plot", path_str(&png)]);
    assert!(said.contains("plot written to") && png.is_file(), "{said}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A shard the user may not read is named as not checked, with the reason, and the exit status
/// is 1, not 65: it said the shard "DIFFER"ed from the manifest, damaged after ingest.
#[test]
fn a_shard_without_read_permission_is_not_called_damaged() {
    let dir = temp_dir("inspect-no-permission");
    let ds = synth_dataset_with(&dir, "ds", &["--shard-mb", "0.02", "--row-group-rows", "4"]);
    set_mode(&ds.join("shards/shard-00001.parquet"), 0o000);
    let mut command = ecgfm_unprivileged(&dir);
    command.args(["data", "inspect", path_str(&ds)]);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("shards: 1 could not be read here, so they were not checked:")
            && stdout.contains("shards/shard-00001.parquet")
            && !stdout.contains("DIFFER"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 shard(s) cannot be read here") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_ingest_points_to_inspect_for_its_quarantined_and_partial_records() {
    let Some(source) = ecgfm_test_support::shared_data("wfdb-formats") else {
        return;
    };
    let dir = temp_dir("inspect-quarantine");
    let ds = dir.join("ds");
    let said = run_ok(&["data", "ingest", path_str(&source), "--out", path_str(&ds)]);
    for line in [
        "  quarantined     4: no standard ECG lead",
        "  kept in part    4: without their non-ECG leads",
        &format!(
            "with its reason: `ecgfm data inspect {} --quarantine`",
            ds.display()
        ),
    ] {
        assert!(said.contains(line), "{line}\n{said}");
    }
    let listed = run_ok(&["data", "inspect", path_str(&ds), "--quarantine"]);
    let mut rows = csv::Reader::from_reader(listed.as_bytes());
    let rows: Vec<Vec<String>> = (rows.records())
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let (quarantined, partial): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r[2] == "quarantined");
    let names = |rows: &[&Vec<String>]| rows.iter().map(|r| r[1].clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&quarantined),
        ["03700181", "binformats", "p10143", "test01_00s"]
    );
    assert_eq!(
        names(&partial),
        ["3000003_0003", "a103l", "s0010_re", "v102s"]
    );
    assert!(rows.iter().all(|r| r[0] == "wfdb"), "{listed}");
    let binformats = &quarantined[1][3];
    assert!(
        binformats.contains(r#"no standard lead among ["sig 0, fmt 8", "sig 1, fmt 16""#),
        "a reason holding commas and quotes is one field: {binformats}"
    );
    assert_eq!(
        partial[1][3],
        "V (not a standard ECG lead); PLETH (not a standard ECG lead)"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
