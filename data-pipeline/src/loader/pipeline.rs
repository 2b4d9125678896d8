//! The background half of the loader, a tokio task on `store::runtime()`: walk the mixing
//! windows of the sample stream from a start position, fetch (ranged gets) the row groups of the
//! rows this rank owns, decode them and crop them into batches on a pool of `decode_threads`
//! worker threads (never on the async threads), and hand finished batches, in stream order, to
//! the caller through a bounded channel.
//!
//! Memory stays bounded: at most `WINDOWS_IN_FLIGHT` + 1 windows of decoded rows (the one being
//! batched and those fetched ahead), `decode_threads`
//! batches being assembled and `prefetch_batches` finished batches wait at any time. CPU work is
//! queued on the worker pool rather than gated by permits held across stages, so a stage that is
//! not being polled can never hold up another.

use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use tokio::sync::{mpsc, oneshot};

use crate::error::DataError;

use super::batch::{assemble, Batch, CropSpec, ReadySample};
use super::buffers::BufferPool;
use super::index::DatasetIndex;
use super::plan::{EpochPlan, Mixing, RankSlice, Slot};

/// Mixing windows fetched and decoded ahead of the one being batched.
const WINDOWS_IN_FLIGHT: usize = 2;

/// Reusable batch buffers handed back by the caller.
pub(crate) type BatchPool = Arc<Mutex<Vec<Batch>>>;

/// Everything the producer task needs.
pub(crate) struct Pipeline {
    pub store: Arc<dyn ObjectStore>,
    pub index: Arc<DatasetIndex>,
    pub slice: RankSlice,
    pub spec: CropSpec,
    pub mixing: Mixing,
    pub decode_threads: usize,
    pub workers: Arc<rayon::ThreadPool>,
    pub pool: BatchPool,
    /// Decoded-signal buffers, reused across row groups.
    pub buffers: BufferPool,
}

/// One mixing window to load.
struct WindowJob {
    plan: Arc<EpochPlan>,
    window: usize,
}

impl Pipeline {
    /// Starts producing this rank's batches from `slice.origin`; returns their channel and the
    /// task's handle (abort it to stop).
    pub fn spawn(
        self,
        prefetch_batches: usize,
    ) -> (
        mpsc::Receiver<Result<Batch, DataError>>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel(prefetch_batches.max(1));
        let handle = crate::store::runtime().spawn(async move {
            if let Err(error) = Arc::new(self).run(&tx).await {
                let _ = tx.send(Err(error)).await;
            }
        });
        (rx, handle)
    }

    async fn run(
        self: Arc<Self>,
        tx: &mpsc::Sender<Result<Batch, DataError>>,
    ) -> Result<(), DataError> {
        let jobs = self.window_jobs();
        let this = self.clone();
        let samples = futures::stream::iter(jobs)
            .map(move |job| this.clone().load_window(job))
            .buffered(WINDOWS_IN_FLIGHT)
            .map_ok(|samples| futures::stream::iter(samples.into_iter().map(Ok)))
            .try_flatten();
        let batch_size = self.slice.batch_size as usize;
        let mut batches = samples
            .try_chunks(batch_size)
            .map_err(|e: futures::stream::TryChunksError<ReadySample, DataError>| e.1)
            .map(|chunk| {
                let this = self.clone();
                async move {
                    let chunk = chunk?;
                    let mut out = this.pool.lock().unwrap().pop().unwrap_or_default();
                    let spec = this.spec;
                    this.on_workers(move || {
                        assemble(&chunk, spec, &mut out);
                        Ok(out)
                    })
                    .await
                }
            })
            .buffered(self.decode_threads.max(1));
        while let Some(batch) = batches.next().await {
            if tx.send(Ok(batch?)).await.is_err() {
                return Ok(()); // The loader was dropped or restarted.
            }
        }
        Ok(())
    }

    /// Runs CPU-bound `work` on the worker pool and awaits its result.
    async fn on_workers<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, DataError> + Send + 'static,
    ) -> Result<T, DataError> {
        let (tx, rx) = oneshot::channel();
        self.workers.spawn(move || {
            let _ = tx.send(work());
        });
        rx.await
            .map_err(|_| DataError::Internal("a loader worker thread panicked".into()))?
    }

    /// The mixing windows from the one holding `slice.origin` on, across epochs, forever.
    fn window_jobs(&self) -> impl Iterator<Item = WindowJob> + Send + 'static {
        let index = self.index.clone();
        let (seed, mix) = (self.spec.seed, self.mixing);
        let n = index.samples;
        let first_epoch = self.slice.origin / n;
        let first_window =
            EpochPlan::new(&index, seed, first_epoch, mix).window_at(self.slice.origin % n);
        (first_epoch..).flat_map(move |epoch| {
            let plan = Arc::new(EpochPlan::new(&index, seed, epoch, mix));
            let skip = if epoch == first_epoch {
                first_window
            } else {
                0
            };
            (skip..plan.windows.len()).map(move |window| WindowJob {
                plan: plan.clone(),
                window,
            })
        })
    }

    /// This rank's samples of one window, in stream order, with their rows decoded.
    async fn load_window(self: Arc<Self>, job: WindowJob) -> Result<Vec<ReadySample>, DataError> {
        let index = &self.index;
        let window = &job.plan.windows[job.window];
        let base = job.plan.epoch * index.samples + window.start;
        let order = job.plan.window_order(index, job.window);
        let owned = self.slice.take(base, &order);
        if owned.is_empty() {
            return Ok(Vec::new());
        }
        // For each row-group read of the window, the selected-row numbers this rank needs,
        // ascending.
        let mut needed: Vec<Vec<u32>> = vec![Vec::new(); window.slots.len()];
        let slot_of = |slot: Slot| {
            window
                .slots
                .iter()
                .position(|&s| s == slot)
                .expect("slot of window")
        };
        for s in &owned {
            needed[slot_of(s.slot)].push(s.k);
        }
        for ks in &mut needed {
            ks.sort_unstable();
        }
        let decoded =
            futures::future::try_join_all(window.slots.iter().zip(&needed).map(|(slot, ks)| {
                let this = self.clone();
                let ks = ks.clone();
                async move {
                    if ks.is_empty() {
                        return Ok(None);
                    }
                    let u = &this.index.units[slot.unit as usize];
                    let shard = this.index.shards[u.shard as usize].clone();
                    let rg = u.row_group as usize;
                    let file = shard.fetch_rows(this.store.as_ref(), rg).await?;
                    let rows: Vec<u32> = ks.iter().map(|&k| u.rows[k as usize]).collect();
                    let window_samples = this.index.window_samples;
                    let buffers = this.buffers.clone();
                    let decoded = this
                        .on_workers(move || {
                            shard.decode_rows(file, rg, &rows, window_samples, &buffers)
                        })
                        .await?;
                    Ok::<_, DataError>(Some(Arc::new(decoded)))
                }
            }))
            .await?;
        Ok(owned
            .iter()
            .map(|s| {
                let slot = slot_of(s.slot);
                let row = needed[slot].binary_search(&s.k).expect("needed row") as u32;
                let u = &index.units[s.slot.unit as usize];
                ReadySample {
                    rows: decoded[slot].clone().expect("decoded unit"),
                    row,
                    id: u.first_id + u64::from(u.rows[s.k as usize]),
                    epoch: job.plan.epoch,
                    copy: s.slot.copy,
                }
            })
            .collect())
    }
}
