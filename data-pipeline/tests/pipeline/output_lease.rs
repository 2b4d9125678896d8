//! Writers kept apart on object stores (`out_lock`, `store_lease`) through each protocol's own
//! conditional writes: S3 (moto) and GCS (the stand-in of `common::gcs`, which maps GCS's
//! generation preconditions to S3's). A second writer is refused while the first holds the
//! lease, the lease is renewed through conditional updates, a replaced lease stops its holder,
//! and a synth into a held output writes nothing.

use crate::common;
use crate::common::lease::{ageless, holder};
use crate::ingest_support::hidden;

use ecgfm_data::out_lock::{check_free, OutputLock, Writer};
use ecgfm_data::store::{self, StoreRoot};
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};

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
        ageless(
            &check_free(object_store.as_ref(), &root, &out)
                .unwrap_err()
                .to_string()
        ),
        ageless(&err)
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
    common::lease::renewed_then_lost_when_replaced(&object_store, &root, &url("renewed"));
}
