//! Writers kept apart on object stores (`out_lock`, `store_lease`) through each protocol's own
//! conditional writes: S3 (moto) and GCS (the stand-in of `common::gcs`, which maps GCS's
//! generation preconditions to S3's). A second writer is refused while the first holds the
//! lease, the lease is renewed through conditional updates, a replaced lease stops its holder,
//! and a synth into a held output writes nothing.

use crate::common;
use crate::ingest_support::hidden;

use std::sync::Arc;
use std::time::Duration;

use ecgfm_data::out_lock::{check_free, OutputLock, Writer, LOCK_FILE};
use ecgfm_data::store::{self, StoreRoot};
use ecgfm_data::store_lease::{LeaseOutcome, LeaseTiming, StoreLease};
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};
use object_store::{ObjectStore, ObjectStoreExt};

#[test]
fn writers_are_kept_apart_on_s3() {
    let Some(s3) = common::s3::MotoS3::start("lease-bucket") else {
        return;
    };
    writers_are_kept_apart(|p| s3.open(p), |p| s3.url(p), s3.store_options());
}

#[test]
fn writers_are_kept_apart_on_gcs() {
    let Some(gcs) = common::gcs::GcsStandIn::start("lease-bucket") else {
        return;
    };
    writers_are_kept_apart(|p| gcs.open(p), |p| gcs.url(p), gcs.store_options());
}

/// The lock object under `root`: its holder's JSON, or `None` when there is none.
fn holder(
    store: &Arc<dyn ObjectStore>,
    root: &object_store::path::Path,
) -> Option<serde_json::Value> {
    let path = store::join(root, LOCK_FILE);
    let bytes = store::block_on(store::get_bytes(store.as_ref(), &path)).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn writers_are_kept_apart(
    open: impl Fn(&str) -> StoreRoot,
    url: impl Fn(&str) -> String,
    store_options: Vec<(String, String)>,
) {
    let (object_store, root) = open("ds");
    let out = url("ds");
    let first = OutputLock::take(&object_store, &root, &out, Writer::Ingest).unwrap();
    assert_eq!(first.note(), None);
    let held = holder(&object_store, &root).expect("the lease object is there");
    assert_eq!(held["writer"], "ingest");
    assert_eq!(held["pid"], std::process::id());
    let err = OutputLock::take(&object_store, &root, &out, Writer::Merge)
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{out} is being written by another ingest (pid {} on ",
        std::process::id()
    );
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(
        check_free(object_store.as_ref(), &root, &out)
            .unwrap_err()
            .to_string(),
        err
    );

    // A synth into the held output is refused and writes nothing.
    let synth = SynthDatasetOptions {
        out: out.clone(),
        out_store_options: store_options.clone(),
        records: 8,
        ..SynthDatasetOptions::default()
    };
    let err = write_synth_dataset(&synth, &hidden())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&expected), "{err}");
    let listed = store::block_on(store::list(object_store.as_ref(), &root)).unwrap();
    assert_eq!(listed.len(), 1, "only the lock: {listed:?}");
    drop(first);
    assert_eq!(
        holder(&object_store, &root),
        None,
        "the lease object is removed"
    );
    let report = write_synth_dataset(&synth, &hidden()).unwrap();
    assert_eq!(
        (report.manifest.counts.records, report.lock_note),
        (8, None)
    );
    assert_eq!(
        holder(&object_store, &root),
        None,
        "the synth removed its lease"
    );

    // Renewals are conditional updates the protocol accepts; a replaced lease stops its holder.
    let (object_store, root) = open("renewed");
    let timing = LeaseTiming {
        renew: Duration::from_millis(100),
        stale: Duration::from_secs(60),
    };
    let LeaseOutcome::Held(lease) =
        StoreLease::take(&object_store, &root, &url("renewed"), Writer::Synth, timing).unwrap()
    else {
        panic!("the store creates objects conditionally");
    };
    std::thread::sleep(Duration::from_millis(700));
    lease.check().unwrap();
    let renewals = holder(&object_store, &root).unwrap()["renewals"]
        .as_u64()
        .unwrap();
    assert!(
        renewals >= 3,
        "{renewals} renewals in 700 ms at one per 100 ms"
    );
    let other = br#"{"writer":"merge","pid":7,"host":"elsewhere","renewals":0}"#;
    let path = store::join(&root, LOCK_FILE);
    store::block_on(object_store.put(&path, other.to_vec().into())).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let err = lease.check().unwrap_err().to_string();
    assert!(
        err.contains("it was replaced by another merge (pid 7 on elsewhere)"),
        "{err}"
    );
    drop(lease);
    assert_eq!(
        holder(&object_store, &root).unwrap()["pid"],
        7,
        "the other's lock stays"
    );
}
