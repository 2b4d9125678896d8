//! Datasets and packages on Google Cloud Storage end to end, against the GCS stand-in of the
//! data tests (moto behind a translation of the XML API's two Google names, see
//! `data-pipeline/tests/pipeline/common/gcs_stand_in.py`), with the credentials where a user
//! puts them: `GOOGLE_SERVICE_ACCOUNT`, a service account's key file. `data synth` to `gs://`
//! stores the bytes it writes to a local folder, `data inspect` reads them, a run trains on them
//! to the bits of a run on the local copy, and `publish` uploads an exported package. The key
//! file's private key reaches no output and no file of a run.

mod common;
#[allow(dead_code)]
#[path = "../../data-pipeline/tests/pipeline/common/gcs.rs"]
mod gcs;
#[allow(dead_code)]
#[path = "../../data-pipeline/tests/pipeline/common/s3.rs"]
mod s3;

use common::{
    ecgfm_env, logged_losses, path_str, pretrain_args, succeeded, temp_dir, PACKAGE_FILES,
};
use ecgfm_data::store;
use std::path::Path;

/// Runs `ecgfm args` with the stand-in's key file as the credentials; asserts success and that
/// the private key is in neither output; returns standard output and error together.
fn ok_with_key(gcs: &gcs::GcsStandIn, args: &[&str]) -> String {
    let key_file = gcs.key_file();
    let output = ecgfm_env(args, &[("GOOGLE_SERVICE_ACCOUNT", path_str(&key_file))]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let stdout = succeeded(args, output);
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(gcs::PRIVATE_KEY),
            "the private key was printed"
        );
    }
    stdout + &stderr
}

/// Every file under `dir` equals the object of the same name under `prefix` of the bucket, and
/// nothing else is there.
fn assert_stored(gcs: &gcs::GcsStandIn, dir: &Path, prefix: &str) {
    let (object_store, root) = gcs.open(prefix);
    let listed = store::block_on(store::list(object_store.as_ref(), &root)).unwrap();
    let files = ecgfm_test_support::files_below(dir);
    assert_eq!(listed.len(), files.len(), "{prefix}: {listed:?}");
    for file in files {
        let name = file.strip_prefix(dir).unwrap().to_str().unwrap();
        let path = store::join(&root, name);
        let stored = store::block_on(store::get_bytes(object_store.as_ref(), &path)).unwrap();
        assert!(stored == std::fs::read(&file).unwrap(), "{prefix}{name}");
    }
}

#[test]
fn a_dataset_on_gcs_holds_the_local_bytes_and_trains_the_same_and_a_package_publishes_there() {
    let Some(gcs) = gcs::GcsStandIn::start("ecgfm-gcs") else {
        return;
    };
    let dir = temp_dir("gcs-dataset");
    let local = dir.join("ds");
    let synth = |out: &str| {
        let args = ["data", "synth", "--out", out, "--records", "40"];
        ok_with_key(
            &gcs,
            &[&args[..], &["--window-s", "3", "--seed", "5"]].concat(),
        );
    };
    synth(path_str(&local));
    synth(&gcs.url("datasets/ds"));
    assert_stored(&gcs, &local, "datasets/ds");
    let inspected = ok_with_key(&gcs, &["data", "inspect", &gcs.url("datasets/ds")]);
    assert!(
        inspected.contains("120 rows from 40 records"),
        "{inspected}"
    );

    let train = |out: &Path, data: &str| {
        let mut args = pretrain_args(out, 4);
        args.extend(["--data".to_string(), data.to_string()]);
        ok_with_key(&gcs, &args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let (on_disk, on_gcs) = (dir.join("run-disk"), dir.join("run-gcs"));
    train(&on_disk, path_str(&local));
    train(&on_gcs, &gcs.url("datasets/ds"));
    assert_eq!(logged_losses(&on_gcs), logged_losses(&on_disk));
    assert_eq!(logged_losses(&on_disk).len(), 4);
    let secret = gcs::PRIVATE_KEY.as_bytes();
    for file in ecgfm_test_support::files_below(&on_gcs) {
        let bytes = std::fs::read(&file).unwrap();
        let holds_key = bytes.windows(secret.len()).any(|w| w == secret);
        assert!(!holds_key, "{} holds the private key", file.display());
    }

    let pkg = dir.join("pkg");
    let export = [
        "export",
        "--run",
        path_str(&on_disk),
        "--out",
        path_str(&pkg),
    ];
    ok_with_key(&gcs, &export);
    let to = gcs.url("models/nano");
    let published = ok_with_key(&gcs, &["publish", path_str(&pkg), "--to", &to]);
    let uploaded_all = format!("uploaded {} files", PACKAGE_FILES.len());
    assert!(published.contains(&uploaded_all), "{published}");
    assert_stored(&gcs, &pkg, "models/nano");
    let again = ok_with_key(&gcs, &["publish", path_str(&pkg), "--to", &to]);
    assert!(again.contains("already holds this package"), "{again}");
    std::fs::remove_dir_all(dir).unwrap();
}
