//! Every window of a split, in dataset order, with a deterministic crop and its labels: what
//! evaluation (`ecgfm eval`, `ecgfm embed`) reads, where the streaming loader (`loader`) shuffles
//! and crops at random.
//!
//! Order: shards in manifest order, rows in file order. Crop: a window with `n` valid samples
//! (`n_samples`) and crop length `S` keeps the centred samples `(n - S) / 2 .. (n - S) / 2 + S`
//! (integer division); a window shorter than the crop is copied from its start and zero-padded,
//! as the loader does. Only present leads are held in memory (int16, as stored), so a split of
//! single-lead windows takes a twelfth of the room of twelve-lead ones; [`ShardWindows`] reads
//! them a shard at a time, and [`held`] keeps a whole split in memory or in a mapped scratch file.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type};
use arrow_array::{Array, FixedSizeListArray, RecordBatch};
use bytes::Bytes;
use parquet::arrow::arrow_reader::RowSelection;

use crate::error::DataError;
use crate::ingest::shard_writer::sha256_hex;
use crate::loader::ALL_SPLITS;
use crate::manifest::{Manifest, ShardEntry};
use crate::schema::{col, N_LEADS};
use crate::shard_columns;
use crate::store;

pub mod held;

/// Who one window is: its record, its place in the record, its split and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowInfo {
    /// Source dataset (`ptbxl`, `cinc2017`, `synth`, ...).
    pub source: String,
    pub record_id: String,
    /// Index of the window within its record, from 0.
    pub window_index: i32,
    /// `train`, `val` or `test`.
    pub split: String,
    /// Every label of the row, `vocabulary:code`.
    pub labels: Vec<String>,
}

impl WindowInfo {
    /// `record_id#window_index`, unique within a source.
    pub fn window_id(&self) -> String {
        format!("{}#{}", self.record_id, self.window_index)
    }
}

/// The windows of one split, cropped to `samples` per lead: their stored values in `S` (a
/// vector in memory, or a mapped scratch file: see [`held`]).
#[derive(Clone, Debug, Default)]
pub struct SplitWindows<S = Vec<i16>> {
    /// Samples per lead after cropping (S).
    pub samples: usize,
    /// Physical value of one stored unit (the manifest's `signal_scale`).
    pub scale: f32,
    /// Sampling rate of the dataset in Hz.
    pub sampling_rate: f32,
    /// Samples per lead of the stored windows (the manifest's `window_samples`).
    pub window_samples: usize,
    /// One entry per window, in dataset order.
    pub windows: Vec<WindowInfo>,
    /// (windows, 12): 1 where the lead is present.
    lead_mask: Vec<u8>,
    /// Start of each window's present leads in `signal` (windows + 1 offsets).
    starts: Vec<usize>,
    /// The present leads of every window, S stored values each, in lead order.
    signal: S,
}

impl<S: AsRef<[i16]>> SplitWindows<S> {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when the split holds no window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The lead mask (12) of window `i`.
    pub fn lead_mask(&self, i: usize) -> &[u8] {
        &self.lead_mask[i * N_LEADS..(i + 1) * N_LEADS]
    }

    /// Writes window `i` into `x` (12 x S, lead-major) in physical units, absent leads zero.
    pub fn fill(&self, i: usize, x: &mut [f32]) {
        let s = self.samples;
        let signal = &self.signal.as_ref()[self.starts[i]..self.starts[i + 1]];
        let mut stored = signal.chunks_exact(s);
        for (lead, dst) in x[..N_LEADS * s].chunks_exact_mut(s).enumerate() {
            match self.lead_mask[i * N_LEADS + lead] {
                1 => {
                    let src = stored.next().expect("one stored lead per present lead");
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = f32::from(v) * self.scale;
                    }
                }
                _ => dst.fill(0.0),
            }
        }
    }
}

impl SplitWindows {
    /// Forgets the first `n` windows (those already used), keeping the rest in order.
    pub fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len());
        let shift = self.starts[n];
        self.windows.drain(..n);
        self.lead_mask.drain(..n * N_LEADS);
        self.signal.drain(..shift);
        self.starts.drain(..n);
        self.starts.iter_mut().for_each(|s| *s -= shift);
    }

    /// Start and length of the centred crop of `valid` samples (see the module documentation).
    pub fn crop(valid: usize, samples: usize) -> (usize, usize) {
        if valid <= samples {
            (0, valid)
        } else {
            ((valid - samples) / 2, samples)
        }
    }
}

/// Reads every window of `split` (`train`, `val`, `test`, or `all`) of the dataset at `url`,
/// cropped to `samples` per lead. `options` are explicit object-store settings (see
/// `store::open_url_with`). Errors name the shard and what is wrong with it.
pub fn read_split_windows(
    url: &str,
    options: &[(&str, &str)],
    split: &str,
    samples: usize,
) -> Result<SplitWindows, DataError> {
    let mut shards = ShardWindows::open(url, options, split, samples)?;
    let mut out = shards.empty();
    while shards.append_next(&mut out)? {}
    Ok(out)
}

/// The windows of `split` read shard by shard, in dataset order: for passes over datasets
/// larger than memory (`ecgfm embed`), which forget the windows they have used.
pub struct ShardWindows {
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    root: object_store::path::Path,
    manifest: Manifest,
    split: String,
    samples: usize,
    next: usize,
}

impl ShardWindows {
    /// Opens the dataset at `url` (see [`read_split_windows`]).
    pub fn open(
        url: &str,
        options: &[(&str, &str)],
        split: &str,
        samples: usize,
    ) -> Result<Self, DataError> {
        if samples == 0 {
            return Err(DataError::Config("the crop length must be positive".into()));
        }
        let (store, root) = store::open_url_with(url, options)?;
        let manifest = Manifest::load(store.as_ref(), &root)?;
        Ok(ShardWindows {
            store,
            root,
            manifest,
            split: split.to_string(),
            samples,
            next: 0,
        })
    }

    /// No window yet, with the dataset's crop, scale and rates.
    pub fn empty(&self) -> SplitWindows {
        SplitWindows {
            samples: self.samples,
            scale: self.manifest.signal_scale,
            sampling_rate: self.manifest.sampling_rate,
            window_samples: self.manifest.window_samples,
            starts: vec![0],
            ..SplitWindows::default()
        }
    }

    /// Shards in the dataset.
    pub fn shards(&self) -> usize {
        self.manifest.shards.len()
    }

    /// Appends the next shard's windows of the split to `out` (made by [`ShardWindows::empty`],
    /// perhaps partly used: see [`SplitWindows::drop_front`]); false once every shard is read.
    pub fn append_next(&mut self, out: &mut SplitWindows) -> Result<bool, DataError> {
        let Some(shard) = self.manifest.shards.get(self.next) else {
            return Ok(false);
        };
        self.next += 1;
        let location = store::join(&self.root, &shard.path);
        let bytes = store::block_on(store::get_bytes(self.store.as_ref(), &location))?;
        let reader = ShardReader {
            bytes,
            // Relative to the dataset, which the caller's message names (a store location
            // lacks a local path's leading slash).
            path: shard.path.clone(),
            window: self.manifest.window_samples,
        };
        reader.check(shard)?;
        reader.append(&self.split, out)?;
        Ok(true)
    }
}

/// One shard's bytes, and what reading them needs.
struct ShardReader {
    bytes: Bytes,
    path: String,
    window: usize,
}

/// The columns read besides `split`.
const COLUMNS: [&str; 7] = [
    col::SOURCE,
    col::RECORD_ID,
    col::WINDOW_INDEX,
    col::N_SAMPLES,
    col::LEAD_MASK,
    col::SIGNAL,
    col::LABELS,
];

impl ShardReader {
    fn corrupt(&self, reason: String) -> DataError {
        shard_columns::corrupt(&self.path, reason)
    }

    /// Compares the shard's size and SHA-256 with its manifest entry: evaluation reads whole
    /// shards, so it checks every byte (a damaged label or record id would not fail a decode).
    fn check(&self, entry: &ShardEntry) -> Result<(), DataError> {
        match entry.mismatch(self.bytes.len() as u64, &sha256_hex(&self.bytes)) {
            None => Ok(()),
            Some(reason) => Err(DataError::Damaged {
                path: self.path.clone(),
                reason,
            }),
        }
    }

    /// Decodes `columns` of the rows `selection` picks (every row when `None`).
    fn decode(
        &self,
        columns: &[&str],
        selection: Option<RowSelection>,
    ) -> Result<Vec<RecordBatch>, DataError> {
        shard_columns::decode(self.bytes.clone(), &self.path, columns, selection, None)
    }

    /// The rows of `split` in this shard as a row selection, and their count.
    fn select(&self, split: &str) -> Result<(RowSelection, usize), DataError> {
        let mut keep = Vec::new();
        let mut total = 0usize;
        for batch in self.decode(&[col::SPLIT], None)? {
            let splits = batch
                .column(0)
                .as_string_opt::<i32>()
                .ok_or_else(|| self.corrupt("`split` is not a Utf8 column".into()))?;
            for (i, s) in splits.iter().enumerate() {
                if split == ALL_SPLITS || s == Some(split) {
                    keep.push(total + i);
                }
            }
            total += batch.num_rows();
        }
        let count = keep.len();
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        for row in keep {
            match runs.last_mut() {
                Some(last) if last.end == row => last.end += 1,
                _ => runs.push(row..row + 1),
            }
        }
        Ok((
            RowSelection::from_consecutive_ranges(runs.into_iter(), total),
            count,
        ))
    }

    /// Appends this shard's windows of `split` to `out`.
    fn append(&self, split: &str, out: &mut SplitWindows) -> Result<(), DataError> {
        let (selection, count) = self.select(split)?;
        if count == 0 {
            return Ok(());
        }
        let mut columns: Vec<&str> = COLUMNS.to_vec();
        columns.push(col::SPLIT);
        for batch in self.decode(&columns, Some(selection))? {
            self.append_batch(&batch, out)?;
        }
        Ok(())
    }

    fn append_batch(&self, batch: &RecordBatch, out: &mut SplitWindows) -> Result<(), DataError> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| self.corrupt(format!("column `{name}` missing after decode")))
        };
        let utf8 = |name: &str| {
            column(name)?
                .as_string_opt::<i32>()
                .cloned()
                .ok_or_else(|| self.corrupt(format!("`{name}` is not a Utf8 column")))
        };
        let int32 = |name: &str| {
            column(name)?
                .as_primitive_opt::<Int32Type>()
                .cloned()
                .ok_or_else(|| self.corrupt(format!("`{name}` is not an Int32 column")))
        };
        let (sources, records, splits) =
            (utf8(col::SOURCE)?, utf8(col::RECORD_ID)?, utf8(col::SPLIT)?);
        let (indices, lengths) = (int32(col::WINDOW_INDEX)?, int32(col::N_SAMPLES)?);
        let labels = column(col::LABELS)?
            .as_list_opt::<i32>()
            .cloned()
            .ok_or_else(|| self.corrupt("`labels` is not a List<Utf8> column".into()))?;
        let mask = column(col::LEAD_MASK)?
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .filter(|a| a.value_length() as usize == N_LEADS)
            .cloned()
            .ok_or_else(|| self.corrupt("`lead_mask` is not FixedSizeList<Boolean, 12>".into()))?;
        let mask_values = mask
            .values()
            .as_boolean_opt()
            .cloned()
            .ok_or_else(|| self.corrupt("`lead_mask` items are not Boolean".into()))?;
        let row_len = N_LEADS * self.window;
        let signal = column(col::SIGNAL)?
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .filter(|a| a.value_length() as usize == row_len)
            .cloned()
            .ok_or_else(|| {
                self.corrupt(format!("`signal` is not FixedSizeList<Int16, {row_len}>"))
            })?;
        let signal_values = signal
            .values()
            .as_primitive_opt::<Int16Type>()
            .cloned()
            .ok_or_else(|| self.corrupt("`signal` items are not Int16".into()))?;
        let s = out.samples;
        for row in 0..batch.num_rows() {
            let row_labels = labels.value(row);
            let row_labels = row_labels
                .as_string_opt::<i32>()
                .ok_or_else(|| self.corrupt("`labels` items are not Utf8".into()))?;
            out.windows.push(WindowInfo {
                source: sources.value(row).to_string(),
                record_id: records.value(row).to_string(),
                window_index: indices.value(row),
                split: splits.value(row).to_string(),
                labels: row_labels.iter().flatten().map(str::to_string).collect(),
            });
            let valid = (lengths.value(row).max(0) as usize).min(self.window);
            let (offset, len) = SplitWindows::crop(valid, s);
            let base = (signal.offset() + row) * row_len;
            for lead in 0..N_LEADS {
                let present = mask_values.value((mask.offset() + row) * N_LEADS + lead);
                out.lead_mask.push(u8::from(present));
                if present {
                    let start = base + lead * self.window + offset;
                    let values = &signal_values.values()[start..start + len];
                    out.signal.extend_from_slice(values);
                    out.signal.extend(std::iter::repeat_n(0, s - len));
                }
            }
            out.starts.push(out.signal.len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_centred_and_short_windows_start_at_zero() {
        assert_eq!(SplitWindows::crop(2500, 2250), (125, 2250));
        assert_eq!(SplitWindows::crop(2501, 2250), (125, 2250));
        assert_eq!(SplitWindows::crop(2250, 2250), (0, 2250));
        assert_eq!(SplitWindows::crop(1000, 2250), (0, 1000));
    }
}
