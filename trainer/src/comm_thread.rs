//! The communication thread of a data-parallel rank: it owns the collectives (`CommWire`) and
//! runs the jobs the training loop queues (bucket reductions while the backward pass goes on,
//! then the gathers), one after the other in queue order, so every rank issues the same calls in
//! the same order. The first error is kept and later collectives are skipped until it is
//! collected.
//!
//! The thread builds its own state (`spawn` takes a constructor): an NCCL communicator is made
//! and used on this one thread, so it never has to move between threads.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use ecgfm_dist::{Collective, DistError};

use crate::comm_wire::CommWire;

/// What the jobs work on: the collectives and the buffers they reduce into.
pub(crate) struct CommState<Buf, Ready> {
    pub wire: Box<dyn CommWire<Buf = Buf, Ready = Ready>>,
    /// This rank's shard of the gradient being accumulated over the step's micro-batches.
    pub acc: Option<Buf>,
    /// The whole reduced gradient (without ZeRO), filled by the buckets' all-gathers; under
    /// ZeRO-1 the parameters' all-gather.
    pub full: Option<Buf>,
    /// The first error of a queued job, if any.
    pub error: Option<DistError>,
    /// Staging buffers go back to the training loop here, tagged with their bucket.
    pub returned: Sender<(usize, Buf)>,
}

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

pub(crate) struct CommThread<S> {
    jobs: Option<Sender<Job<S>>>,
    handle: Option<JoinHandle<()>>,
}

fn stopped() -> DistError {
    DistError::Env("the communication thread stopped".into())
}

impl<S: 'static> CommThread<S> {
    /// Starts the thread and builds its state there with `init`; returns `init`'s error.
    pub(crate) fn spawn(
        init: impl FnOnce() -> Result<S, DistError> + Send + 'static,
    ) -> Result<CommThread<S>, DistError> {
        let (jobs, queue): (Sender<Job<S>>, Receiver<Job<S>>) = channel();
        let (started_tx, started) = channel();
        let handle = std::thread::Builder::new()
            .name("ecgfm-comm".into())
            .spawn(move || {
                let mut state = match init() {
                    Ok(state) => {
                        let _ = started_tx.send(Ok(()));
                        state
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut state);
                }
            })
            .map_err(|e| DistError::Env(format!("spawning the communication thread: {e}")))?;
        started.recv().map_err(|_| stopped())??;
        Ok(CommThread {
            jobs: Some(jobs),
            handle: Some(handle),
        })
    }

    /// Queues `job` and returns at once.
    pub(crate) fn submit(&self, job: impl FnOnce(&mut S) + Send + 'static) {
        if let Some(jobs) = &self.jobs {
            // A send fails only if the thread is gone; `call` reports that.
            let _ = jobs.send(Box::new(job));
        }
    }

    /// Queues `job` behind everything queued before and waits for its result.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, DistError> {
        let (tx, rx) = channel();
        self.submit(move |state| {
            let _ = tx.send(job(state));
        });
        rx.recv().map_err(|_| stopped())
    }
}

impl<Buf: 'static, Ready: 'static> CommThread<CommState<Buf, Ready>> {
    /// Runs a host-memory collective behind the queued jobs; the first error of those jobs
    /// comes first.
    pub(crate) fn collective<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Collective<[f32]>) -> Result<T, DistError> + Send + 'static,
    ) -> Result<T, DistError> {
        self.call(move |state| match state.error.take() {
            Some(err) => Err(err),
            None => job(state.wire.host()),
        })?
    }
}

impl<S> Drop for CommThread<S> {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constructor's error comes out of `spawn` itself (a communicator that could not be
    /// made is named at once, not as a stopped thread on the first call).
    #[test]
    fn spawn_returns_the_constructors_error() {
        let err = CommThread::<u32>::spawn(|| Err(DistError::Env("no communicator".into())))
            .err()
            .expect("the constructor failed");
        assert!(err.to_string().contains("no communicator"), "{err}");
    }

    /// Jobs run one after the other in queue order on the state the constructor built; `call`
    /// waits for its job's result, behind everything submitted before it.
    #[test]
    fn jobs_run_in_queue_order_and_call_waits_behind_them() {
        let thread = CommThread::spawn(|| Ok(Vec::<u32>::new())).unwrap();
        for i in 0..5 {
            thread.submit(move |v| v.push(i));
        }
        assert_eq!(thread.call(|v| v.clone()).unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
