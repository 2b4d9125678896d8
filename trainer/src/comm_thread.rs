//! The communication thread of a data-parallel rank: it owns the `Collective` and runs the jobs
//! the training loop queues (bucket reductions while the backward pass goes on, then the
//! gathers), one after the other in queue order, so every rank issues the same calls in the
//! same order. The first error is kept and later collectives are skipped until it is collected.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use ecgfm_dist::{Collective, DistError};

/// What the jobs work on.
pub(crate) struct CommState {
    pub coll: Box<dyn Collective<[f32]> + Send>,
    /// This rank's shard of the gradient being accumulated over the step's micro-batches.
    pub acc: Vec<f32>,
    /// The whole reduced gradient (without ZeRO), filled by the buckets' all-gathers.
    pub full: Vec<f32>,
    /// The first error of a queued job, if any.
    pub error: Option<DistError>,
    /// Staging buffers go back to the training loop here, tagged with their bucket.
    pub returned: Sender<(usize, Vec<f32>)>,
}

type Job = Box<dyn FnOnce(&mut CommState) + Send>;

pub(crate) struct CommThread {
    jobs: Option<Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

fn stopped() -> DistError {
    DistError::Env("the communication thread stopped".into())
}

impl CommThread {
    pub(crate) fn spawn(mut state: CommState) -> CommThread {
        let (jobs, queue): (Sender<Job>, Receiver<Job>) = channel();
        let handle = std::thread::Builder::new()
            .name("ecgfm-comm".into())
            .spawn(move || {
                for job in queue {
                    job(&mut state);
                }
            })
            .expect("spawning the communication thread");
        CommThread {
            jobs: Some(jobs),
            handle: Some(handle),
        }
    }

    /// Queues `job` and returns at once.
    pub(crate) fn submit(&self, job: impl FnOnce(&mut CommState) + Send + 'static) {
        if let Some(jobs) = &self.jobs {
            // A send fails only if the thread is gone; `call` reports that.
            let _ = jobs.send(Box::new(job));
        }
    }

    /// Queues `job` behind everything queued before and waits for its result.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut CommState) -> T + Send + 'static,
    ) -> Result<T, DistError> {
        let (tx, rx) = channel();
        self.submit(move |state| {
            let _ = tx.send(job(state));
        });
        rx.recv().map_err(|_| stopped())
    }

    /// Runs a collective behind the queued jobs; the first error of those jobs comes first.
    pub(crate) fn collective<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Collective<[f32]>) -> Result<T, DistError> + Send + 'static,
    ) -> Result<T, DistError> {
        self.call(move |state| match state.error.take() {
            Some(err) => Err(err),
            None => job(state.coll.as_mut()),
        })?
    }
}

impl Drop for CommThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
