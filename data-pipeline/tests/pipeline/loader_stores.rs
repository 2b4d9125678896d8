//! The same dataset read from memory://, a local folder, S3 (moto on localhost) and GCS (the
//! stand-in of `common::gcs`) gives identical batches; the store helpers round-trip on S3 and
//! GCS, and `ObjectSink` uploads in parts there; a bucket that does not exist is named as such;
//! with a real service account key every GCS request is signed with it, as the stand-in checks.

use crate::common;

use bytes::Bytes;
use common::dataset::{self, Spec};
use common::gcs::GcsStandIn;
use common::s3::MotoS3;
use ecgfm_data::loader::{Batch, Loader, LoaderConfig};
use ecgfm_data::object_sink::ObjectSink;
use ecgfm_data::store::{self, StoreRoot};
use std::io::Write;

fn spec() -> Spec {
    Spec {
        shards: 2,
        rows_per_shard: 70,
        row_group_rows: 16,
        window_samples: 300,
        split_of: dataset::every_fifth_val,
        source_of: dataset::synth_source,
    }
}

fn config() -> LoaderConfig {
    LoaderConfig {
        seed: 42,
        batch_size: 16,
        crop_samples: 250,
        mix_row_groups: 2,
        ..LoaderConfig::default()
    }
}

fn read_all((store, root): StoreRoot, steps: usize) -> Vec<Batch> {
    let mut loader = Loader::open_store(store, root, config()).unwrap();
    (0..steps)
        .map(|_| {
            let mut b = Batch::default();
            loader.next_batch(&mut b).unwrap();
            b
        })
        .collect()
}

#[test]
fn memory_local_s3_and_gcs_give_identical_batches() {
    let steps = 10; // 160 samples: more than the 112 of the train split.
    let memory = store::open_url("memory://loader-stores/ds").unwrap();
    dataset::write(&memory, &spec());
    let from_memory = read_all(memory, steps);
    assert_eq!(from_memory.len(), steps);

    let same_as_memory = |written: StoreRoot, name: &str| {
        dataset::write(&written, &spec());
        let batches = read_all(written, steps);
        assert_eq!(batches, from_memory, "{name} differs from memory://");
    };
    let dir = tempfile::tempdir().unwrap();
    same_as_memory(
        store::open_url(dir.path().join("ds").to_str().unwrap()).unwrap(),
        "local folder",
    );
    assert!(dir.path().join("ds/shards/shard-00001.parquet").is_file());
    let Some(s3) = MotoS3::start("ecgfm-loader") else {
        return;
    };
    same_as_memory(s3.open("datasets/ds"), "s3://");
    let Some(gcs) = GcsStandIn::start("ecgfm-loader") else {
        return;
    };
    same_as_memory(gcs.open("datasets/ds"), "gs://");
}

/// Put, get, ranged and suffix get, list and a missing object's error on `prefix` of a remote
/// store; `secret` is a credential the error must not show.
fn store_helpers_round_trip((store, root): StoreRoot, secret: &str) {
    let path = store::join(&root, "a/b.bin");
    let data = Bytes::from((0..=255u8).collect::<Vec<u8>>());
    store::block_on(store::put_bytes(store.as_ref(), &path, data.clone())).unwrap();
    let got = store::block_on(store::get_bytes(store.as_ref(), &path)).unwrap();
    assert_eq!(got, data);
    let range = store::block_on(store::get_range(store.as_ref(), &path, 10..20)).unwrap();
    assert_eq!(&range[..], &data[10..20]);
    let (tail, size) = store::block_on(store::get_suffix(store.as_ref(), &path, 6)).unwrap();
    assert_eq!((&tail[..], size), (&data[250..], 256));
    let listed = store::block_on(store::list(store.as_ref(), &root)).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|m| m.location.to_string())
            .collect::<Vec<_>>(),
        ["prefix/a/b.bin"]
    );
    let missing = store::block_on(store::get_bytes(
        store.as_ref(),
        &store::join(&root, "nope"),
    ));
    let text = missing.unwrap_err().to_string();
    assert!(
        text.contains("prefix/nope") && !text.contains(secret),
        "{text}"
    );
}

#[test]
fn s3_store_helpers_round_trip() {
    let Some(s3) = MotoS3::start("ecgfm-helpers") else {
        return;
    };
    store_helpers_round_trip(s3.open("prefix"), "testing");
}

#[test]
fn gcs_store_helpers_round_trip() {
    let Some(gcs) = GcsStandIn::start("ecgfm-helpers") else {
        return;
    };
    store_helpers_round_trip(gcs.open("prefix"), common::gcs::PRIVATE_KEY);
}

/// `ObjectSink` on a remote store: 12 MB in 64 KiB writes go up as a multipart upload (three
/// parts of 5 MiB or less), invisible until `finish`, then whole.
fn object_sink_uploads_in_parts_and_publishes_whole((store, root): StoreRoot) {
    let path = store::join(&root, "big.bin");
    let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut sink = ObjectSink::create(store.as_ref(), &path).unwrap();
    for chunk in data.chunks(1 << 16) {
        sink.write_all(chunk).unwrap();
    }
    assert!(store::block_on(store::get_bytes(store.as_ref(), &path)).is_err());
    sink.finish().unwrap();
    let got = store::block_on(store::get_bytes(store.as_ref(), &path)).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..] == data[..]);
}

#[test]
fn s3_object_sink_uploads_in_parts_and_publishes_whole() {
    let Some(s3) = MotoS3::start("ecgfm-sink") else {
        return;
    };
    object_sink_uploads_in_parts_and_publishes_whole(s3.open("prefix"));
}

#[test]
fn gcs_object_sink_uploads_in_parts_and_publishes_whole() {
    let Some(gcs) = GcsStandIn::start("ecgfm-sink") else {
        return;
    };
    object_sink_uploads_in_parts_and_publishes_whole(gcs.open("prefix"));
}

/// A dataset address in a bucket that does not exist: reading it says so instead of "no dataset
/// there", and writing to it says so ahead of the server's error.
fn a_missing_bucket_is_named((store, root): StoreRoot) {
    let read = ecgfm_data::manifest::Manifest::load(store.as_ref(), &root).unwrap_err();
    assert!(
        matches!(read, ecgfm_data::error::DataError::NoBucket { .. }),
        "{read:?}"
    );
    assert!(
        read.to_string()
            .contains(ecgfm_data::store_hint::MISSING_BUCKET),
        "{read}"
    );
    let path = store::join(&root, "a.bin");
    let written = store::block_on(store::put_bytes(store.as_ref(), &path, Bytes::from("x")));
    let text = written.unwrap_err().to_string();
    assert!(
        text.contains(ecgfm_data::store_hint::MISSING_BUCKET),
        "{text}"
    );
    assert!(text.contains("ds/a.bin"), "{text}");
}

#[test]
fn s3_names_a_missing_bucket() {
    let Some(s3) = MotoS3::start("ecgfm-exists") else {
        return;
    };
    a_missing_bucket_is_named(
        store::open_url_with("s3://ecgfm-missing/ds", &s3.options()).unwrap(),
    );
}

#[test]
fn gcs_names_a_missing_bucket() {
    let Some(gcs) = GcsStandIn::start("ecgfm-exists") else {
        return;
    };
    a_missing_bucket_is_named(
        store::open_url_with("gs://ecgfm-missing/ds", &gcs.options()).unwrap(),
    );
}

/// With a real service account key and OAuth on, every request carries a JWT signed with the
/// key (object_store's RS256, through ring), which the stand-in verifies as Google would; a key
/// file with another key is refused, so the check is live.
#[test]
fn gcs_requests_are_signed_with_the_service_accounts_key() {
    let Some(gcs) = GcsStandIn::start_signed("ecgfm-signed") else {
        return;
    };
    let secret = gcs
        .private_key()
        .lines()
        .nth(5)
        .expect("a PEM key has many lines");
    store_helpers_round_trip(gcs.open("prefix"), secret);
    object_sink_uploads_in_parts_and_publishes_whole(gcs.open("sink"));

    let other = gcs.other_key_file();
    let options = [("google_service_account", other.to_str().unwrap())];
    let (store, root) = store::open_url_with(&gcs.url("prefix"), &options).unwrap();
    let refused = store::block_on(store::get_bytes(
        store.as_ref(),
        &store::join(&root, "a/b.bin"),
    ));
    let text = refused.unwrap_err().to_string();
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(
        text.contains("does not match the service account's key"),
        "{text}"
    );
}
