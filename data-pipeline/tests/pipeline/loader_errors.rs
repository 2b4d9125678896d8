//! Broken datasets give clear errors naming the file: a missing manifest, a missing shard, a
//! shard that is not Parquet, a shard whose size disagrees with the manifest, a shard whose
//! data pages are damaged, one bit flipped in an uncompressed signal chunk, a lead mask chunk, a
//! split chunk or a statistic of the footer, and bytes damaged at random (a fixed seed) in the footer or anywhere: errors naming
//! the shard, never a panic, and never other batches without an error.

use crate::common;

use bytes::Bytes;
use common::dataset::{self, Spec};
use ecgfm_data::loader::{Batch, Loader, LoaderConfig};
use ecgfm_data::store;
use ecgfm_test_support::Draws;

fn write(name: &str) -> String {
    write_split(name, dataset::all_train)
}

/// A dataset whose rows are in the splits `split_of` gives them.
fn write_split(name: &str, split_of: fn(u64) -> &'static str) -> String {
    let url = format!("memory://loader-errors/{name}");
    let spec = Spec {
        shards: 3,
        rows_per_shard: 40,
        row_group_rows: 20,
        window_samples: 250,
        split_of,
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
        err.to_string()
            .contains("nothing-here/manifest.json not found: no dataset there"),
        "{err}"
    );
}

#[test]
fn missing_shard_names_it() {
    let url = write("missing");
    replace(&url, "shards/shard-00001.parquet", None);
    let text = Loader::open(&url, config()).err().unwrap().to_string();
    assert!(
        text.contains("shard-00001.parquet")
            && text.contains("not found, though the manifest lists it"),
        "{text}"
    );
}

#[test]
fn non_parquet_shard_names_it() {
    let url = write("garbage");
    let shard = "shards/shard-00002.parquet";
    let size = read(&url, shard).len();
    // Of another size than the manifest's: the size is what is named, as damage after ingest.
    replace(
        &url,
        shard,
        Some(b"this is not a parquet file at all".to_vec()),
    );
    let text = Loader::open(&url, config()).err().unwrap().to_string();
    let said = format!("the file has 33 bytes, the manifest says {size} (the file was damaged");
    assert!(text.contains(shard) && text.contains(&said), "{text}");
    // Of the manifest's size: the file is named as no Parquet file.
    replace(&url, shard, Some(vec![b'x'; size]));
    let text = Loader::open(&url, config()).err().unwrap().to_string();
    assert!(
        text.contains(shard) && text.contains("not a Parquet file"),
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

/// The loader's first error after bits `mask` of one byte of shard 1's chunk of leaf column
/// `leaf` (path `column`) in row group `rg` are flipped: the byte `at(chunk length)` into it.
fn damaged_chunk_error(
    url: String,
    rg: usize,
    leaf: usize,
    column: &str,
    at: fn(u64) -> u64,
    mask: u8,
) -> String {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut bytes = read(&url, "shards/shard-00001.parquet");
    let reader = SerializedFileReader::new(Bytes::from(bytes.clone())).unwrap();
    let chunk = reader.metadata().row_group(rg).column(leaf);
    assert_eq!(chunk.column_path().string(), column);
    let (start, len) = chunk.byte_range();
    bytes[(start + at(len)) as usize] ^= mask;
    replace(&url, "shards/shard-00001.parquet", Some(bytes));
    first_batch_error(&url, &format!("the damaged {column}"))
}

#[test]
fn a_flipped_bit_in_the_signal_fails_its_checksum() {
    // Shard 1 stores the signal DELTA_BINARY_PACKED and uncompressed: a flipped bit there would
    // decode to wrong values silently, were it not for the manifest's CRC-32C.
    let url = write("bitflip");
    let text = damaged_chunk_error(url, 1, 8, "signal.list.item", |len| len / 2, 0x10);
    assert!(
        text.contains("shard-00001.parquet")
            && text.contains("row group 1")
            && text.contains("CRC-32C"),
        "{text}"
    );
}

#[test]
fn a_damaged_lead_mask_chunk_fails_its_checksum() {
    let url = write("maskflip");
    let text = damaged_chunk_error(url, 0, 7, "lead_mask.list.item", |len| len - 1, 0x01);
    assert!(
        text.contains("shard-00001.parquet")
            && text.contains("row group 0")
            && text.contains("lead_mask and n_samples column chunks have CRC-32C"),
        "{text}"
    );
}

#[test]
fn a_damaged_split_chunk_fails_its_checksum() {
    // With rows of two splits in a row group the loader reads each row's split from its chunk
    // (zstd): a flipped bit inside could decode to other splits without an error, moving
    // validation rows into training.
    let url = write_split("splitflip", dataset::every_fifth_val);
    let text = damaged_chunk_error(url, 1, 14, "split", |len| len / 2, 0x01);
    assert!(
        text.contains("shard-00001.parquet")
            && text.contains("row group 1")
            && text.contains("split and source column chunks have CRC-32C"),
        "{text}"
    );
}

#[test]
fn of_several_damaged_shards_the_first_in_manifest_order_is_named() {
    // The row groups' splits are read many at a time while opening: the error is still that of
    // the first shard, in manifest order, that fails, whichever request fails first.
    let damage_split_of_shard_1 = |url: String| {
        damaged_chunk_error(url, 1, 14, "split", |len| len / 2, 0x01);
    };
    let resize_in_manifest = |url: &str, shard: usize| {
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&read(url, "manifest.json")).unwrap();
        let bytes = manifest["shards"][shard]["bytes"].as_u64().unwrap();
        manifest["shards"][shard]["bytes"] = (bytes + 1).into();
        replace(
            url,
            "manifest.json",
            Some(serde_json::to_vec(&manifest).unwrap()),
        );
    };
    // A damaged split chunk in shard 1 before a size that differs in shard 2.
    let url = write_split("first-of-two-a", dataset::every_fifth_val);
    damage_split_of_shard_1(url.clone());
    resize_in_manifest(&url, 2);
    let text = Loader::open(&url, config()).err().unwrap().to_string();
    assert!(
        text.contains("shard-00001.parquet") && text.contains("row group 1"),
        "{text}"
    );
    // A size that differs in shard 0 before it.
    let url = write_split("first-of-two-b", dataset::every_fifth_val);
    damage_split_of_shard_1(url.clone());
    resize_in_manifest(&url, 0);
    let text = Loader::open(&url, config()).err().unwrap().to_string();
    assert!(
        text.contains("shard-00000.parquet") && text.contains("bytes"),
        "{text}"
    );
}

#[test]
fn a_damaged_statistic_in_the_footer_fails_its_checksum() {
    // Every row is in `train`, so the loader reads each row group's split from the footer's
    // statistics (min = max); one changed letter there would drop the row group from the epoch.
    let url = write("statflip");
    let mut bytes = read(&url, "shards/shard-00001.parquet");
    let tail = bytes.len() - 2000;
    let at = tail
        + bytes[tail..]
            .windows(5)
            .rposition(|w| w == b"train")
            .expect("the split's statistics in the footer");
    bytes[at + 2] ^= 0x01;
    replace(&url, "shards/shard-00001.parquet", Some(bytes));
    let err = Loader::open(&url, config())
        .err()
        .expect("the damage went unnoticed");
    let text = err.to_string();
    assert!(
        text.contains("shard-00001.parquet") && text.contains("the footer has CRC-32C"),
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

/// The loader's error on opening `url` or else the first of its first 30 batches; `what` was
/// damaged.
fn first_batch_error(url: &str, what: &str) -> String {
    let mut loader = match Loader::open(url, config()) {
        Ok(loader) => loader,
        Err(e) => return e.to_string(),
    };
    let mut batch = Batch::default();
    (0..30)
        .find_map(|_| loader.next_batch(&mut batch).err())
        .unwrap_or_else(|| panic!("{what} went unnoticed"))
        .to_string()
}

#[test]
fn randomly_damaged_shards_give_errors_naming_them_never_panics() {
    let url = write("random-damage");
    let original = read(&url, "shards/shard-00001.parquet");
    let mut draws = Draws::new(7);
    let (mut read_whole, mut refused) = (0, 0);
    type Batches = Vec<(Vec<f32>, Vec<u8>, Vec<u64>)>;
    let batches = |url: &str| -> Result<Batches, ecgfm_data::error::DataError> {
        let mut loader = Loader::open(url, config())?;
        let mut batch = Batch::default();
        let mut out = Vec::new();
        for _ in 0..16 {
            loader.next_batch(&mut batch)?;
            out.push((batch.x.clone(), batch.lead_mask.clone(), batch.ids.clone()));
        }
        Ok(out)
    };
    let clean = batches(&url).unwrap();
    for trial in 0..2000 {
        let mut bytes = original.clone();
        // Half the trials hit the footer (the Parquet metadata and its length), half anywhere.
        let region = if trial % 2 == 0 { bytes.len() - 600 } else { 0 };
        for _ in 0..1 + draws.below(4) {
            let at = region + draws.below(bytes.len() - region);
            bytes[at] = draws.next_u64() as u8;
        }
        replace(&url, "shards/shard-00001.parquet", Some(bytes));
        let outcome = std::panic::catch_unwind(|| batches(&url));
        match outcome {
            Err(_) => panic!("trial {trial}: the loader panicked"),
            Ok(Ok(got)) => {
                read_whole += 1;
                assert!(
                    got == clean,
                    "trial {trial}: the damage changed the batches silently"
                );
            }
            Ok(Err(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains("shard-00001.parquet"),
                    "trial {trial}: {text}"
                );
                refused += 1;
            }
        }
    }
    println!(
        "{read_whole} damaged shards read the same batches, {refused} refused naming the shard"
    );
    assert!(refused > 0);
}
