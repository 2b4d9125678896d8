//! The streaming training loader: opens a dataset (any store URL), plans each epoch's sample
//! order from (seed, epoch), and yields fixed-size batches of randomly cropped windows for one
//! rank of a data-parallel job, prefetching and decoding in the background.
//!
//! Guarantees:
//! - the sample stream is epoch 0's order, then epoch 1's, ... (see `plan.rs`); every sample of
//!   the split appears exactly once per epoch (`r` times, each with its own crop, when its source
//!   is repeated `r` times: `repeat`; a fractional weight reads a part of the source's rows, a
//!   new part each epoch); batches are always full and may straddle epochs;
//! - a step's global batch `G = batch_size * world_size * accum_steps`: the `G` samples at
//!   consecutive stream positions, ordered by (window, row group, row) and cut into runs of `B`;
//!   micro-batch `a` of rank `r` is run `a * world_size + r`, so ranks see disjoint samples,
//!   together all of them, the global sequence depends on neither `decode_threads` nor how `G`
//!   is split between ranks and accumulation, and a rank reads only a few of a window's row
//!   groups (set `mix_row_groups` >= `world_size * accum_steps`; see `plan::RankSlice`);
//! - `state()` / `restore()` resume exactly, also with another split of the same `G` (between
//!   steps: a step's batches are read whole);
//! - crops are drawn from (seed, epoch, sample id) (see `batch.rs`).
//!
//! The caller drives it from synchronous code (`next_batch` blocks); the async work runs on
//! `store::runtime()`. Look at `pipeline.rs` for the background task, `index.rs` for opening,
//! `shard.rs` for Parquet access and `bench.rs` for the throughput benchmark.

mod batch;
mod bench;
mod buffers;
mod index;
mod pipeline;
mod plan;
mod rng;
mod shard;
mod signal;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::DataError;
use crate::store;

pub use batch::Batch;
pub use bench::{bench_loader, LoaderBenchResult};
pub use index::{SourceShare, ALL_SPLITS, MAX_WEIGHT};
pub(crate) use shard::Shard;

use batch::CropSpec;
use buffers::BufferPool;
use index::DatasetIndex;
use pipeline::{BatchPool, Pipeline};
use plan::{Mixing, RankSlice};

/// How to load: which split, batch geometry, this rank's place, crop length, parallelism.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Seed of the epoch orders and crops.
    pub seed: u64,
    /// Windows per batch on this rank (B).
    pub batch_size: usize,
    /// This rank, `0..world_size`.
    pub rank: usize,
    /// Ranks in the job (R).
    pub world_size: usize,
    /// Batches each rank takes per optimiser step (A, gradient accumulation): a step's global
    /// batch is `batch_size * world_size * accum_steps`, and R ranks load what one process
    /// accumulating R batches loads (`plan::RankSlice`).
    #[serde(default = "one")]
    pub accum_steps: usize,
    /// Samples per lead after cropping (S), the model's input length.
    pub crop_samples: usize,
    /// Rows of which split to load (`train`, `val`, `test`, or `all`).
    pub split: String,
    /// Finished batches kept ready ahead of the caller (0 is taken as 1).
    pub prefetch_batches: usize,
    /// Threads decoding Parquet and assembling batches at once.
    pub decode_threads: usize,
    /// Row groups whose samples are shuffled together (the shuffle's reach). Memory grows with
    /// it: up to 3 windows of decoded rows are held, each `mix_row_groups * row_group_rows * 12 *
    /// window * 4` bytes (about 120 MB at the defaults of 4 and 256 with 10 s windows).
    pub mix_row_groups: usize,
    /// Shuffle the row groups of the whole dataset before cutting windows, so a window (and a
    /// batch) draws from anywhere, e.g. from several sources of a merged dataset; otherwise a
    /// window holds row groups of one shard (or two). Part of the sample order.
    pub mix_across_shards: bool,
    /// Each source's weight (the rows' `source`, e.g. `ptbxl`): times per epoch its rows are
    /// read. 4 reads each row four times, 0 leaves the source out, 0.5 reads half of its rows
    /// (another half each epoch), 1.5 all of them and half again; a source not named is read
    /// once. At most [`MAX_WEIGHT`]. Part of the sample order, so fixed for a run. Each shard
    /// must hold one source, as `ingest` and `merge` write them.
    pub repeat: BTreeMap<String, f64>,
}

fn one() -> usize {
    1
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            seed: 0,
            batch_size: 64,
            rank: 0,
            world_size: 1,
            accum_steps: 1,
            crop_samples: 2250,
            split: "train".into(),
            prefetch_batches: 4,
            decode_threads: 2,
            mix_row_groups: 4,
            mix_across_shards: false,
            repeat: BTreeMap::new(),
        }
    }
}

impl LoaderConfig {
    /// Whether the ranks fetch many of the same row groups: a mixing window of fewer row
    /// groups than a step has micro-batches (`world_size * accum_steps`) is cut into runs
    /// narrower than a row group (`plan::RankSlice`). In `plan.rs`'s test, 8 ranks at batch 64
    /// fetch 3.5 times the window's row groups in all from windows of 4, 1.9 times from 16.
    /// Accumulation alone shares nothing (one process fetches a row group once).
    pub fn ranks_share_row_groups(&self) -> bool {
        self.world_size > 1 && self.mix_row_groups < self.world_size * self.accum_steps
    }
}

/// Where the loader is in its sample stream, for checkpoints. Same on every rank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Epoch of the next sample to load.
    pub epoch: u64,
    /// Samples of that epoch already consumed by all ranks together.
    pub samples_consumed: u64,
}

/// The streaming loader of one rank. See the module documentation.
pub struct Loader {
    store: Arc<dyn ObjectStore>,
    index: Arc<DatasetIndex>,
    config: LoaderConfig,
    /// Global stream position of the next global batch.
    position: u64,
    running: Option<Running>,
    pool: BatchPool,
    workers: Arc<rayon::ThreadPool>,
}

struct Running {
    batches: mpsc::Receiver<Result<Batch, DataError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Loader {
    /// Opens the dataset at `url` (see `store::open_url`), at the start of epoch 0.
    pub fn open(url: &str, config: LoaderConfig) -> Result<Self, DataError> {
        let (store, root) = store::open_url(url)?;
        Self::open_store(store, root, config)
    }

    /// Opens the dataset under `root` in an already configured store.
    pub fn open_store(
        store: Arc<dyn ObjectStore>,
        root: Path,
        config: LoaderConfig,
    ) -> Result<Self, DataError> {
        validate(&config)?;
        let index = store::block_on(DatasetIndex::open(
            &store,
            &root,
            &config.split,
            &config.repeat,
        ))?;
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(config.decode_threads)
            .thread_name(|i| format!("ecgfm-decode-{i}"))
            .build()
            .map_err(|e| DataError::Internal(format!("cannot start decode threads: {e}")))?;
        Ok(Loader {
            workers: Arc::new(workers),
            store,
            index: Arc::new(index),
            config,
            position: 0,
            running: None,
            pool: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Samples of the split, i.e. per epoch (repeats counted).
    pub fn samples_per_epoch(&self) -> u64 {
        self.index.samples
    }

    /// Which data this is, wherever it is stored (`Manifest::data_digest`): a checkpoint keeps
    /// it so a resume can tell the same dataset at a new address from other data.
    pub fn data_digest(&self) -> &str {
        &self.index.data_digest
    }

    /// Each source's rows and repeat, when `repeat` names any (empty otherwise).
    pub fn composition(&self) -> &[SourceShare] {
        &self.index.composition
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Samples per lead of the stored windows (the manifest's `window_samples`).
    pub fn window_samples(&self) -> usize {
        self.index.window_samples
    }

    /// Fills `out` with this rank's next batch, (batch_size, 12, crop_samples). `out`'s buffers
    /// are swapped with a prepared batch and recycled, so passing the same `Batch` every step
    /// allocates nothing. Blocks until the batch is ready; do not call it from async code.
    pub fn next_batch(&mut self, out: &mut Batch) -> Result<(), DataError> {
        let running = match &mut self.running {
            Some(running) => running,
            None => self.running.insert(self.start()),
        };
        let Some(received) = running.batches.blocking_recv() else {
            self.running = None;
            return Err(DataError::Internal(
                "the loader's background task stopped".into(),
            ));
        };
        let mut batch = match received {
            Ok(batch) => batch,
            Err(error) => {
                self.running = None;
                return Err(error);
            }
        };
        std::mem::swap(out, &mut batch);
        self.pool.lock().unwrap().push(batch);
        self.position += (self.config.batch_size * self.config.world_size) as u64;
        Ok(())
    }

    /// Where the stream stands after the batches returned so far (identical on every rank).
    pub fn state(&self) -> LoaderState {
        LoaderState {
            epoch: self.position / self.index.samples,
            samples_consumed: self.position % self.index.samples,
        }
    }

    /// Continues from `state`: the following batches are those an uninterrupted run (with the
    /// same seed, split and global batch size) would have produced after reaching `state`.
    pub fn restore(&mut self, state: &LoaderState) -> Result<(), DataError> {
        if state.samples_consumed >= self.index.samples {
            return Err(DataError::Config(format!(
                "loader state has {} samples consumed in an epoch of {}",
                state.samples_consumed, self.index.samples
            )));
        }
        self.running = None;
        self.position = state.epoch * self.index.samples + state.samples_consumed;
        Ok(())
    }

    fn start(&self) -> Running {
        let config = &self.config;
        let pipeline = Pipeline {
            store: self.store.clone(),
            index: self.index.clone(),
            slice: RankSlice {
                origin: self.position,
                batch_size: config.batch_size as u64,
                rank: config.rank as u64,
                world_size: config.world_size as u64,
                accum: config.accum_steps as u64,
            },
            spec: CropSpec {
                seed: config.seed,
                window: self.index.window_samples,
                crop: config.crop_samples,
                scale: self.index.signal_scale,
            },
            mixing: Mixing {
                row_groups: config.mix_row_groups,
                across_shards: config.mix_across_shards,
            },
            decode_threads: config.decode_threads,
            workers: self.workers.clone(),
            pool: self.pool.clone(),
            buffers: BufferPool::default(),
        };
        let (batches, task) = pipeline.spawn(config.prefetch_batches);
        Running { batches, task }
    }
}

fn validate(config: &LoaderConfig) -> Result<(), DataError> {
    let fail = |what: &str| Err(DataError::Config(format!("loader: {what}")));
    if config.batch_size == 0 {
        return fail("batch_size must be at least 1");
    }
    if config.accum_steps == 0 {
        return fail("accum_steps must be at least 1");
    }
    if config.world_size == 0 || config.rank >= config.world_size {
        return fail(&format!(
            "rank {} is not in 0..world_size {}",
            config.rank, config.world_size
        ));
    }
    if config.crop_samples == 0 {
        return fail("crop_samples must be at least 1");
    }
    if config.decode_threads == 0 {
        return fail("decode_threads must be at least 1");
    }
    if config.mix_row_groups == 0 {
        return fail("mix_row_groups must be at least 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to the default configuration.
    type Edit = fn(&mut LoaderConfig);

    #[test]
    fn configs_without_a_batch_a_rank_or_a_thread_are_refused() {
        let with = |edit: Edit| {
            let mut config = LoaderConfig::default();
            edit(&mut config);
            validate(&config).map_err(|e| e.to_string())
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|c| (c.rank, c.world_size) = (3, 4)).is_ok());
        let refusals: [(&str, Edit); 7] = [
            ("batch_size must be at least 1", |c| c.batch_size = 0),
            ("accum_steps must be at least 1", |c| c.accum_steps = 0),
            ("rank 0 is not in 0..world_size 0", |c| c.world_size = 0),
            ("rank 4 is not in 0..world_size 4", |c| {
                (c.rank, c.world_size) = (4, 4)
            }),
            ("crop_samples must be at least 1", |c| c.crop_samples = 0),
            ("decode_threads must be at least 1", |c| {
                c.decode_threads = 0
            }),
            ("mix_row_groups must be at least 1", |c| {
                c.mix_row_groups = 0
            }),
        ];
        for (said, edit) in refusals {
            let error = with(edit).unwrap_err();
            assert!(error.contains(said), "{error}");
        }
    }
}
