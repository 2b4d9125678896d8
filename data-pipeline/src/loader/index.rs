//! Opening a dataset for loading: read `manifest.json`, every shard's footer, and find which rows
//! of each row group belong to the requested split (from column statistics when a row group holds
//! one split only, else by reading its `split` column). The result, `DatasetIndex`, is the list
//! of row groups ("units") the epoch planner shuffles, and how many times each shard's rows are
//! read per epoch (`repeat`: once, unless its source is weighted). A source's weight `w` reads
//! its rows `floor(w)` whole times per epoch, plus, for the fraction, a part of them: exactly
//! `round(fract(w) * rows)` of the source's rows, drawn anew each epoch (see `plan.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::DataError;
use crate::manifest::{Manifest, ShardEntry, MANIFEST_FILE};
use crate::store;

use super::shard::{size_differs, Shard};

/// The largest weight of a source (`data.repeat`): reads per epoch of each of its rows.
pub const MAX_WEIGHT: f64 = 10_000.0;

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
    /// For each shard, how many times an epoch reads all its rows (see `LoaderConfig::repeat`).
    pub shard_copies: Vec<u32>,
    /// For each shard, whether an epoch also reads part of its rows (its source's weight is not
    /// whole); that read is the shard's copy number `shard_copies[shard]`.
    pub shard_has_part: Vec<bool>,
    /// The sources read a fractional number of times.
    pub parts: Vec<PartRead>,
    /// What an epoch holds of each source, when sources are weighted (empty otherwise).
    pub composition: Vec<SourceShare>,
    /// `Manifest::data_digest` of the dataset: which data this is, wherever it is stored.
    pub data_digest: String,
    /// Samples of the split per epoch, repeats counted.
    pub samples: u64,
    pub window_samples: usize,
    pub signal_scale: f32,
}

/// One source's part of an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceShare {
    /// The rows' `source`.
    pub source: String,
    /// Rows of the split.
    pub rows: u64,
    /// Its weight: times its rows are read per epoch (0: left out; 0.5: half of them).
    pub repeat: f64,
    /// Rows read per epoch: `floor(repeat) * rows + round(fract(repeat) * rows)`.
    pub reads: u64,
}

/// The fractional part of a source's weight: each epoch reads `take` of its units' rows.
pub(crate) struct PartRead {
    /// The source's units (indices into `DatasetIndex::units`), in manifest order.
    pub units: Vec<u32>,
    /// Rows read per epoch, `round(fract(weight) * rows)`.
    pub take: u64,
}

impl DatasetIndex {
    /// Reads the manifest under `root` and indexes the rows of `split` (or every row for
    /// [`ALL_SPLITS`]), each source's rows read `repeat[source]` times per epoch (once when not
    /// named).
    pub async fn open(
        store: &Arc<dyn ObjectStore>,
        root: &Path,
        split: &str,
        repeat: &BTreeMap<String, f64>,
    ) -> Result<Self, DataError> {
        let manifest = Manifest::read(store.as_ref(), root).await?;
        let manifest_path = store::shown(store.as_ref(), &store::join(root, MANIFEST_FILE));
        let shards: Vec<Arc<Shard>> = futures::stream::iter(manifest.shards.iter())
            .map(|entry| {
                let store = store.clone();
                let path = store::join(root, &entry.path);
                async move { Shard::open(store.as_ref(), path, entry).await.map(Arc::new) }
            })
            .buffered(store::REQUESTS_IN_FLIGHT)
            .try_collect()
            .await?;
        // Each shard's check against its manifest entry, then each of its row groups' rows of
        // the split, in that order; the row groups' splits (one request each where a row group
        // holds several) are read `store::REQUESTS_IN_FLIGHT` at a time, not one after another,
        // and the first failure in this order is the one returned.
        let mut steps = Vec::new();
        for (s, (shard, entry)) in shards.iter().zip(&manifest.shards).enumerate() {
            steps.push(OpenStep::Check(s));
            let row_groups = shard.row_group_rows();
            if row_groups == entry.row_groups {
                steps
                    .extend((row_groups.iter().enumerate()).map(|(g, &n)| OpenStep::Rows(s, g, n)));
            }
        }
        let selected: Vec<Option<Selected>> = futures::stream::iter(steps)
            .map(|step| {
                let (shards, entries) = (&shards, &manifest.shards);
                async move {
                    match step {
                        OpenStep::Check(s) => check_shard(&shards[s], &entries[s]).map(|()| None),
                        OpenStep::Rows(s, g, n) => {
                            let rows = select_rows(store.as_ref(), &shards[s], g, n, split).await?;
                            Ok(Some(Selected { s, g, n, rows }))
                        }
                    }
                }
            })
            .buffered(store::REQUESTS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut units = Vec::new();
        let mut shard_units = vec![Vec::new(); shards.len()];
        let mut first_id = 0u64;
        for Selected { s, g, n, rows } in selected.into_iter().flatten() {
            if !rows.is_empty() {
                shard_units[s].push(units.len() as u32);
                units.push(Unit {
                    shard: s as u32,
                    row_group: g as u32,
                    rows,
                    first_id,
                });
            }
            first_id += n;
        }
        let shard_rows: Vec<u64> = shard_units
            .iter()
            .map(|mine| {
                mine.iter()
                    .map(|&u| units[u as usize].rows.len() as u64)
                    .sum()
            })
            .collect();
        if shard_rows.iter().sum::<u64>() == 0 {
            return Err(DataError::Refused(format!(
                "{} has no rows in split {split:?}",
                manifest_path
            )));
        }
        let weights = if repeat.is_empty() {
            Weights::plain(shards.len())
        } else {
            weigh_shards(store.as_ref(), &shards, &shard_rows, &shard_units, repeat).await?
        };
        let whole: u64 = shard_rows
            .iter()
            .zip(&weights.copies)
            .map(|(&n, &c)| n * u64::from(c))
            .sum();
        let samples = whole + weights.parts.iter().map(|p| p.take).sum::<u64>();
        if samples == 0 {
            return Err(DataError::Config(format!(
                "data.repeat leaves no rows of {} in split {split:?} (every source weighted 0, \
                 or too little of each to read one row)",
                manifest_path
            )));
        }
        Ok(DatasetIndex {
            shards,
            units,
            shard_units,
            shard_copies: weights.copies,
            shard_has_part: weights.shard_has_part,
            parts: weights.parts,
            composition: weights.composition,
            data_digest: manifest.data_digest(),
            samples,
            window_samples: manifest.window_samples,
            signal_scale: manifest.signal_scale,
        })
    }
}

/// How an epoch reads each shard: the parts of `DatasetIndex` that `repeat` sets.
struct Weights {
    copies: Vec<u32>,
    shard_has_part: Vec<bool>,
    parts: Vec<PartRead>,
    composition: Vec<SourceShare>,
}

impl Weights {
    /// Every row read once.
    fn plain(shards: usize) -> Self {
        Weights {
            copies: vec![1; shards],
            shard_has_part: vec![false; shards],
            parts: Vec::new(),
            composition: Vec::new(),
        }
    }
}

/// Each shard's whole and partial reads per epoch under `repeat` (source name -> weight), and
/// the epoch's composition by source. A shard must hold one source (as `ingest` and `merge`
/// write them).
async fn weigh_shards(
    store: &dyn ObjectStore,
    shards: &[Arc<Shard>],
    shard_rows: &[u64],
    shard_units: &[Vec<u32>],
    repeat: &BTreeMap<String, f64>,
) -> Result<Weights, DataError> {
    if let Some((name, w)) = repeat
        .iter()
        .find(|(_, w)| !(0.0..=MAX_WEIGHT).contains(*w))
    {
        return Err(DataError::Config(format!(
            "data.repeat.{name} = {w}: a source's weight must be a number from 0 to {MAX_WEIGHT}"
        )));
    }
    let mut source_of = Vec::with_capacity(shards.len());
    for shard in shards {
        let names: BTreeSet<String> = shard.sources(store).await?;
        if names.len() != 1 {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(DataError::Config(format!(
                "{}: data.repeat needs one source per shard, this one holds [{}]",
                shard.name,
                names.join(", ")
            )));
        }
        source_of.push(names.into_iter().next().expect("one source"));
    }
    let mut rows_of: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, &rows) in source_of.iter().zip(shard_rows) {
        *rows_of.entry(name).or_default() += rows;
    }
    if let Some(unknown) = repeat
        .keys()
        .find(|name| !rows_of.contains_key(name.as_str()))
    {
        let known: Vec<&str> = rows_of.keys().copied().collect();
        return Err(DataError::Config(format!(
            "data.repeat names source {unknown:?}, which the dataset does not hold (its sources: {})",
            known.join(", ")
        )));
    }
    let weight = |name: &str| repeat.get(name).copied().unwrap_or(1.0);
    let mut weights = Weights::plain(0);
    let mut part_of: BTreeMap<&str, u32> = BTreeMap::new();
    for (&name, &rows) in &rows_of {
        let w = weight(name);
        let take = (w.fract() * rows as f64).round() as u64;
        weights.composition.push(SourceShare {
            source: name.to_string(),
            rows,
            repeat: w,
            reads: w.trunc() as u64 * rows + take,
        });
        if w.fract() > 0.0 {
            part_of.insert(name, weights.parts.len() as u32);
            weights.parts.push(PartRead {
                units: Vec::new(),
                take,
            });
        }
    }
    for (name, units) in source_of.iter().zip(shard_units) {
        let part = part_of.get(name.as_str()).copied();
        if let Some(p) = part {
            weights.parts[p as usize].units.extend(units);
        }
        weights.copies.push(weight(name).trunc() as u32);
        weights.shard_has_part.push(part.is_some());
    }
    Ok(weights)
}

/// One step of opening: a shard checked against its manifest entry, or the rows of the split
/// in one of its row groups (shard, row group, rows in it).
enum OpenStep {
    Check(usize),
    Rows(usize, usize, u64),
}

/// The rows of the split in row group `g` (of `n` rows) of shard `s`.
struct Selected {
    s: usize,
    g: usize,
    n: u64,
    rows: Vec<u32>,
}

/// Refuses a shard whose size or row groups differ from its manifest entry.
fn check_shard(shard: &Shard, entry: &ShardEntry) -> Result<(), DataError> {
    if shard.size != entry.bytes {
        return Err(DataError::Damaged {
            path: entry.path.clone(),
            reason: size_differs(shard.size, entry.bytes),
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth_dataset::{write_synth_dataset, SynthDatasetOptions};

    #[test]
    fn the_split_read_concurrently_is_the_split_read_row_group_by_row_group() {
        // Several shards of row groups of 8 rows, most holding rows of two or three splits.
        let url = "memory://index-tests/concurrent";
        let options = SynthDatasetOptions {
            out: url.to_string(),
            records: 120,
            row_group_rows: 8,
            shard_target_bytes: 400_000,
            threads: 1,
            ..SynthDatasetOptions::default()
        };
        write_synth_dataset(&options, &indicatif::ProgressBar::hidden()).unwrap();
        let (store, root) = store::open_url(url).unwrap();
        let manifest = Manifest::load(store.as_ref(), &root).unwrap();
        assert!(
            manifest.shards.len() >= 3,
            "{} shards",
            manifest.shards.len()
        );
        for split in ["train", "val", "test", ALL_SPLITS] {
            let index = store::block_on(DatasetIndex::open(&store, &root, split, &BTreeMap::new()))
                .unwrap();
            // The units as one shard and row group after another give them.
            let mut expected = Vec::new();
            let mut first_id = 0u64;
            for (s, shard) in index.shards.iter().enumerate() {
                for (g, n) in shard.row_group_rows().into_iter().enumerate() {
                    let rows: Vec<u32> = match split {
                        ALL_SPLITS => (0..n as u32).collect(),
                        _ => store::block_on(shard.read_splits(store.as_ref(), g))
                            .unwrap()
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.as_str() == split)
                            .map(|(i, _)| i as u32)
                            .collect(),
                    };
                    if !rows.is_empty() {
                        expected.push((s as u32, g as u32, rows, first_id));
                    }
                    first_id += n;
                }
            }
            let units: Vec<(u32, u32, Vec<u32>, u64)> = (index.units.iter())
                .map(|u| (u.shard, u.row_group, u.rows.clone(), u.first_id))
                .collect();
            assert_eq!(units, expected, "split {split}");
            // Some row groups hold other splits too: their rows were read from the file.
            let partial = (index.units.iter())
                .filter(|u| {
                    (u.rows.len() as u64)
                        < manifest.shards[u.shard as usize].row_groups[u.row_group as usize]
                })
                .count();
            assert_eq!(partial > 0, split != ALL_SPLITS, "split {split}");
            for (s, mine) in index.shard_units.iter().enumerate() {
                assert!(mine
                    .iter()
                    .all(|&u| index.units[u as usize].shard == s as u32));
                assert!(mine.windows(2).all(|w| w[0] < w[1]));
            }
            let listed: usize = index.shard_units.iter().map(Vec::len).sum();
            assert_eq!(listed, index.units.len());
        }
    }
}
