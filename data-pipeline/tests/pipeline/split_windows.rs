//! The evaluation reader (`windows::read_split_windows`) on a test dataset whose every stored
//! value is known: the windows of one split in dataset order, their identity, labels and lead
//! masks, and every value of their centred crop (short windows from their start, zero-padded),
//! across a PLAIN + zstd shard and a delta-encoded one; shard by shard in a rolling buffer; held
//! in memory or in a mapped scratch file; a damaged shard refused.

use crate::common;

use common::dataset::{
    every_fifth_val, lead_present, stored_value, synth_source, valid_samples, write, Spec,
};
use ecgfm_data::error::DataError;
use ecgfm_data::schema::N_LEADS;
use ecgfm_data::store;
use ecgfm_data::windows::held::{read_held, HeldSignal, Hold};
use ecgfm_data::windows::{read_split_windows, ShardWindows, SplitWindows};

/// `shards` shards of `rows` windows of 100 samples, every fifth in `val`.
fn spec(shards: usize, rows: usize) -> Spec {
    Spec {
        shards,
        rows_per_shard: rows,
        row_group_rows: 8,
        window_samples: 100,
        split_of: every_fifth_val,
        source_of: synth_source,
    }
}

#[test]
fn reads_every_window_of_a_split_in_order_with_its_centred_crop() {
    let url = "memory://split-windows/ds";
    let spec = spec(2, 30);
    let manifest = write(&store::open_url(url).unwrap(), &spec);
    let crop = 80;
    for (split, expect_ids) in [
        (
            "val",
            (0..60u64).filter(|id| id % 5 == 4).collect::<Vec<_>>(),
        ),
        ("all", (0..60u64).collect()),
    ] {
        let windows = read_split_windows(url, &[], split, crop).unwrap();
        assert_eq!(windows.len(), expect_ids.len(), "{split}");
        let mut x = vec![0.0f32; N_LEADS * crop];
        for (i, &id) in expect_ids.iter().enumerate() {
            let info = &windows.windows[i];
            assert_eq!(info.record_id, format!("synth-{id:06}"));
            assert_eq!(info.window_id(), format!("synth-{id:06}#0"));
            assert_eq!(info.split, every_fifth_val(id));
            assert_eq!(info.labels, ["synth:normal"]);
            windows.fill(i, &mut x);
            let valid = valid_samples(id, spec.window_samples);
            let (offset, len) = SplitWindows::crop(valid, crop);
            assert_eq!(offset, if valid > crop { (valid - crop) / 2 } else { 0 });
            for lead in 0..N_LEADS {
                let present = lead_present(id, lead);
                assert_eq!(windows.lead_mask(i)[lead], u8::from(present));
                for t in 0..crop {
                    let want = match present && t < len {
                        true => {
                            f32::from(stored_value(id, lead, offset + t)) * manifest.signal_scale
                        }
                        false => 0.0,
                    };
                    assert_eq!(x[lead * crop + t], want, "id {id} lead {lead} t {t}");
                }
            }
        }
    }
    assert!(read_split_windows(url, &[], "test", crop)
        .unwrap()
        .is_empty());
    let err = read_split_windows("memory://split-windows/none", &[], "all", crop).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

/// A shard damaged after ingest (one byte of a label) fails the read as damaged, naming it.
#[test]
fn a_damaged_shard_is_refused_naming_it() {
    let url = "memory://split-windows/damaged";
    write(&store::open_url(url).unwrap(), &spec(2, 30));
    let (object_store, root) = store::open_url(url).unwrap();
    let path = store::join(&root, "shards/shard-00001.parquet");
    let mut bytes = store::block_on(store::get_bytes(object_store.as_ref(), &path))
        .unwrap()
        .to_vec();
    let at = bytes
        .windows(b"synth:normal".len())
        .position(|w| w == b"synth:normal")
        .expect("the labels are stored as plain text");
    bytes[at] = b'X';
    store::block_on(store::put_bytes(object_store.as_ref(), &path, bytes.into())).unwrap();
    let err = read_split_windows(url, &[], "all", 80).unwrap_err();
    assert!(matches!(err, DataError::Damaged { .. }), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("shards/shard-00001.parquet") && err.contains("SHA-256"),
        "{err}"
    );
}

/// Shard by shard, as `ecgfm embed` reads: a rolling buffer that takes in each shard and
/// forgets the windows it has used (an odd number each time, so the buffer straddles shards)
/// holds exactly the windows, values and masks of the whole read.
#[test]
fn shard_by_shard_with_a_rolling_buffer_gives_the_whole_read() {
    let url = "memory://split-windows/rolling";
    let spec = spec(3, 20);
    write(&store::open_url(url).unwrap(), &spec);
    let crop = 80;
    let whole = read_split_windows(url, &[], "all", crop).unwrap();
    let mut shards = ShardWindows::open(url, &[], "all", crop).unwrap();
    assert_eq!(shards.shards(), 3);
    let mut buffer = shards.empty();
    let mut seen = 0;
    let (mut a, mut b) = (vec![0.0f32; N_LEADS * crop], vec![0.0f32; N_LEADS * crop]);
    while shards.append_next(&mut buffer).unwrap() {
        while buffer.len() >= 7 {
            for i in 0..7 {
                assert_eq!(buffer.windows[i], whole.windows[seen + i]);
                assert_eq!(buffer.lead_mask(i), whole.lead_mask(seen + i));
                buffer.fill(i, &mut a);
                whole.fill(seen + i, &mut b);
                assert_eq!(a, b, "window {}", seen + i);
            }
            buffer.drop_front(7);
            seen += 7;
        }
    }
    assert_eq!(seen + buffer.len(), whole.len());
    for i in 0..buffer.len() {
        buffer.fill(i, &mut a);
        whole.fill(seen + i, &mut b);
        assert_eq!(a, b);
    }
}

/// Held in memory or in a mapped scratch file, the windows are those of the whole read; the
/// scratch file leaves nothing in its folder; the estimate bounds what memory would hold.
#[test]
fn held_on_disk_or_in_memory_gives_the_whole_read() {
    let url = "memory://split-windows/held";
    let spec = spec(3, 20);
    write(&store::open_url(url).unwrap(), &spec);
    let crop = 80;
    let scratch = tempfile::tempdir().unwrap();
    for split in ["all", "val"] {
        let whole = read_split_windows(url, &[], split, crop).unwrap();
        for hold in [Hold::Memory, Hold::Disk(scratch.path().join("windows"))] {
            let mut shards = ShardWindows::open(url, &[], split, crop).unwrap();
            let estimate = shards.signal_bytes();
            assert_eq!(estimate, (whole.len() * N_LEADS * crop * 2) as u64);
            let mut done = 0;
            let held = read_held(&mut shards, &hold, &mut || done += 1).unwrap();
            assert_eq!(done, 3, "{hold:?}");
            assert!(matches!(
                (&hold, held.signal()),
                (Hold::Memory, HeldSignal::Memory(_)) | (Hold::Disk(_), HeldSignal::Mapped(_))
            ));
            assert_eq!(held.windows, whole.windows);
            let (mut a, mut b) = (vec![0.0f32; N_LEADS * crop], vec![0.0f32; N_LEADS * crop]);
            for i in 0..whole.len() {
                assert_eq!(held.lead_mask(i), whole.lead_mask(i));
                held.fill(i, &mut a);
                whole.fill(i, &mut b);
                assert_eq!(a, b, "{split} {hold:?} window {i}");
            }
        }
    }
    let left = std::fs::read_dir(scratch.path().join("windows"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the scratch files are unlinked");
}
