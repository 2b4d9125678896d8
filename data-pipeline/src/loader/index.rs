//! Opening a dataset for loading: read `manifest.json`, every shard's footer, and find which rows
//! of each row group belong to the requested split (from column statistics when a row group holds
//! one split only, else by reading its `split` column). The result, `DatasetIndex`, is the list
//! of row groups ("units") the epoch planner shuffles.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::DataError;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::store;

use super::shard::Shard;

/// Shard footers fetched concurrently while opening.
const OPEN_CONCURRENCY: usize = 16;

/// The split name that selects every row.
pub const ALL_SPLITS: &str = "all";

/// One row group holding at least one row of the split.
pub(crate) struct Unit {
    /// Index into `DatasetIndex::shards`.
    pub shard: u32,
    /// Row group within the shard.
    pub row_group: u32,
    /// Rows of the split within the row group, ascending.
    pub rows: Vec<u32>,
    /// Global sample id of the row group's first row (rows counted over all shards in manifest
    /// order, whatever their split).
    pub first_id: u64,
}

/// Everything the loader knows about a dataset once opened.
pub(crate) struct DatasetIndex {
    pub shards: Vec<Arc<Shard>>,
    /// Units in manifest order (shard, then row group).
    pub units: Vec<Unit>,
    /// For each shard, its units (indices into `units`) in row-group order.
    pub shard_units: Vec<Vec<u32>>,
    /// Samples of the split.
    pub samples: u64,
    pub window_samples: usize,
    pub signal_scale: f32,
}

impl DatasetIndex {
    /// Reads the manifest under `root` and indexes the rows of `split` (or every row for
    /// [`ALL_SPLITS`]).
    pub async fn open(
        store: &Arc<dyn ObjectStore>,
        root: &Path,
        split: &str,
    ) -> Result<Self, DataError> {
        let manifest_path = store::join(root, MANIFEST_FILE);
        let bytes = store::get_bytes(store.as_ref(), &manifest_path).await?;
        let manifest = Manifest::from_json(&bytes, manifest_path.as_ref())?;
        let shards: Vec<Arc<Shard>> = futures::stream::iter(manifest.shards.iter())
            .map(|entry| {
                let store = store.clone();
                let path = store::join(root, &entry.path);
                async move {
                    Shard::open(
                        store.as_ref(),
                        path,
                        entry.path.clone(),
                        entry.signal_crc32c.clone(),
                    )
                    .await
                    .map(Arc::new)
                }
            })
            .buffered(OPEN_CONCURRENCY)
            .try_collect()
            .await?;
        let mut units = Vec::new();
        let mut shard_units = Vec::with_capacity(shards.len());
        let mut first_id = 0u64;
        for (s, (shard, entry)) in shards.iter().zip(&manifest.shards).enumerate() {
            if shard.size != entry.bytes {
                return Err(DataError::Corrupt {
                    path: entry.path.clone(),
                    reason: format!(
                        "the file has {} bytes, the manifest says {}: the shard was changed \
                         or truncated after the manifest was written",
                        shard.size, entry.bytes
                    ),
                });
            }
            let row_groups = shard.row_group_rows();
            if row_groups != entry.row_groups {
                return Err(DataError::Corrupt {
                    path: entry.path.clone(),
                    reason: format!(
                        "row groups {:?} in the file differ from {:?} in the manifest",
                        row_groups, entry.row_groups
                    ),
                });
            }
            let mut mine = Vec::new();
            for (g, &n) in row_groups.iter().enumerate() {
                let rows = select_rows(store.as_ref(), shard, g, n, split).await?;
                if !rows.is_empty() {
                    mine.push(units.len() as u32);
                    units.push(Unit {
                        shard: s as u32,
                        row_group: g as u32,
                        rows,
                        first_id,
                    });
                }
                first_id += n;
            }
            shard_units.push(mine);
        }
        let samples = units.iter().map(|u| u.rows.len() as u64).sum();
        if samples == 0 {
            return Err(DataError::Config(format!(
                "{} has no rows in split {split:?}",
                manifest_path
            )));
        }
        Ok(DatasetIndex {
            shards,
            units,
            shard_units,
            samples,
            window_samples: manifest.window_samples,
            signal_scale: manifest.signal_scale,
        })
    }
}

async fn select_rows(
    store: &dyn ObjectStore,
    shard: &Shard,
    rg: usize,
    rows: u64,
    split: &str,
) -> Result<Vec<u32>, DataError> {
    let all = || (0..rows as u32).collect();
    if split == ALL_SPLITS {
        return Ok(all());
    }
    match shard.uniform_split(rg) {
        Some(only) if only == split => Ok(all()),
        Some(_) => Ok(Vec::new()),
        None => Ok(shard
            .read_splits(store, rg)
            .await?
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_str() == split)
            .map(|(i, _)| i as u32)
            .collect()),
    }
}
