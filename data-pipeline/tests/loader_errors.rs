//! Broken datasets give clear errors naming the file: a missing manifest, a missing shard, a
//! shard that is not Parquet, a shard whose size disagrees with the manifest, a shard whose
//! data pages are damaged, and one bit flipped in an uncompressed signal chunk.

mod common;

use bytes::Bytes;
use common::dataset::{self, Spec};
use ecgfm_data::loader::{Batch, Loader, LoaderConfig};
use ecgfm_data::store;

fn write(name: &str) -> String {
    let url = format!("memory://loader-errors/{name}");
    let spec = Spec {
        shards: 3,
        rows_per_shard: 40,
        row_group_rows: 20,
        window_samples: 250,
        split_of: dataset::all_train,
        source_of: dataset::synth_source,
    };
    dataset::write(&store::open_url(&url).unwrap(), &spec);
    url
}

fn config() -> LoaderConfig {
    LoaderConfig {
        batch_size: 8,
        crop_samples: 200,
        ..LoaderConfig::default()
    }
}

fn replace(url: &str, relative: &str, bytes: Option<Vec<u8>>) {
    let (store, root) = store::open_url(url).unwrap();
    let path = store::join(&root, relative);
    match bytes {
        Some(bytes) => {
            store::block_on(store::put_bytes(store.as_ref(), &path, Bytes::from(bytes))).unwrap()
        }
        None => store::block_on(async {
            object_store::ObjectStoreExt::delete(store.as_ref(), &path).await
        })
        .unwrap(),
    }
}

fn read(url: &str, relative: &str) -> Vec<u8> {
    let (store, root) = store::open_url(url).unwrap();
    store::block_on(store::get_bytes(
        store.as_ref(),
        &store::join(&root, relative),
    ))
    .unwrap()
    .to_vec()
}

#[test]
fn missing_manifest_names_it() {
    let err = Loader::open("memory://loader-errors/nothing-here", config())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("nothing-here/manifest.json"),
        "{err}"
    );
}

#[test]
fn missing_shard_names_it() {
    let url = write("missing");
    replace(&url, "shards/shard-00001.parquet", None);
    let err = Loader::open(&url, config()).err().unwrap();
    assert!(err.to_string().contains("shard-00001.parquet"), "{err}");
}

#[test]
fn non_parquet_shard_names_it() {
    let url = write("garbage");
    replace(
        &url,
        "shards/shard-00002.parquet",
        Some(b"this is not a parquet file at all".to_vec()),
    );
    let err = Loader::open(&url, config()).err().unwrap();
    let text = err.to_string();
    assert!(
        text.contains("shards/shard-00002.parquet") && text.contains("Parquet"),
        "{text}"
    );
}

#[test]
fn shard_size_must_match_the_manifest() {
    let url = write("resized");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&read(&url, "manifest.json")).unwrap();
    let bytes = manifest["shards"][1]["bytes"].as_u64().unwrap();
    manifest["shards"][1]["bytes"] = (bytes + 1).into();
    replace(
        &url,
        "manifest.json",
        Some(serde_json::to_vec(&manifest).unwrap()),
    );
    let text = Loader::open(&url, config()).err().unwrap().to_string();
    assert!(
        text.contains("shard-00001.parquet") && text.contains(&format!("{bytes} bytes")),
        "{text}"
    );
}

#[test]
fn a_flipped_bit_in_the_signal_fails_its_checksum() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let url = write("bitflip");
    // Shard 1 stores the signal DELTA_BINARY_PACKED and uncompressed: a flipped bit there would
    // decode to wrong values silently, were it not for the manifest's CRC-32C.
    let mut bytes = read(&url, "shards/shard-00001.parquet");
    let reader = SerializedFileReader::new(Bytes::from(bytes.clone())).unwrap();
    let (start, len) = reader.metadata().row_group(1).column(8).byte_range();
    bytes[(start + len / 2) as usize] ^= 0x10;
    replace(&url, "shards/shard-00001.parquet", Some(bytes));
    let text = first_batch_error(&url, "the flipped bit");
    assert!(
        text.contains("shard-00001.parquet")
            && text.contains("row group 1")
            && text.contains("CRC-32C"),
        "{text}"
    );
}

#[test]
fn damaged_pages_fail_the_batch_naming_the_shard() {
    let url = write("damaged");
    let mut bytes = read(&url, "shards/shard-00000.parquet");
    // Overwrite the start of the data (the first column chunks) and keep the footer intact.
    let end = bytes.len() / 2;
    for b in &mut bytes[4..end] {
        *b = 0xA5;
    }
    replace(&url, "shards/shard-00000.parquet", Some(bytes));
    let text = first_batch_error(&url, "the damage");
    assert!(text.contains("shard-00000.parquet"), "{text}");
}

/// The first error of the loader's first 30 batches over `url`; `what` was damaged.
fn first_batch_error(url: &str, what: &str) -> String {
    let mut loader = Loader::open(url, config()).unwrap();
    let mut batch = Batch::default();
    (0..30)
        .find_map(|_| loader.next_batch(&mut batch).err())
        .unwrap_or_else(|| panic!("{what} went unnoticed"))
        .to_string()
}
