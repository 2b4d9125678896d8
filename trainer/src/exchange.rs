//! `Exchange`: how one rank's gradient buckets and parameters travel between ranks, in the
//! backend's own buffers (host vectors on CPU ranks, device memory on GPU ranks: no host copies).
//!
//! Training thread, for bucket `i` (complete for this micro-batch):
//!   `staging[i] = grads[range]` (the backend's copy, queued after the backward pass's work);
//!   ready = a mark of that work; queue the job to the communication thread.
//! Communication thread, in queue order:
//!   wait for `ready`; acc[own piece] += sum over ranks of staging (reduce-scatter, rank order
//!   on the CPU collective); on the last micro-batch (no ZeRO) copy the own piece into `full`
//!   and all-gather it; hand `staging[i]` back.
//! `finish` puts `full` (or, under ZeRO-1, this rank's `acc`) into the gradient buffer with the
//! backend's copy and gives the buffer back behind a mark, zeroed for the next step where needed.
//! On a GPU the marks are CUDA events and the collective runs on its own stream, so a bucket's
//! reduction overlaps with the rest of the backward pass on the device too.

use std::ops::Range;
use std::sync::mpsc::{channel, Receiver};

use ecgfm_dist::{Collective, DistError, Shards};
use ecgfm_kernels::{Backend, View, ViewMut};

use crate::comm_thread::{CommState, CommThread};
use crate::comm_wire::CommWire;
use crate::rank_backend::RankBackend;

/// A host-memory collective job (small exchanges: losses, flags, norm partials, barriers).
pub(crate) type HostJob =
    Box<dyn FnOnce(&mut dyn Collective<[f32]>) -> Result<Vec<f32>, DistError> + Send>;

/// One rank's gradient exchange over backend `B` (a trait object, so the training loop needs no
/// more than `B: Backend`).
pub(crate) trait GradExchange<B: Backend>: Send {
    /// Starts reducing bucket `i` of `grads` (complete for this micro-batch) into this rank's
    /// shard accumulator; with `gather`, every rank then also receives the whole reduced bucket.
    /// Returns without waiting for the reduction.
    fn start_bucket(&mut self, be: &B, grads: &B::Buf, i: usize, gather: bool);
    /// Waits for every bucket and writes the reduced gradient into `grads`: all of it, or with
    /// ZeRO-1 this rank's shard, whose sum-of-squares partials it then returns.
    fn finish(&mut self, be: &B, grads: &mut B::Buf) -> Result<Option<Vec<f64>>, DistError>;
    /// ZeRO-1, after each rank updated its shard: every rank gets all the new parameters.
    fn gather_params(&mut self, be: &B, params: &mut B::Buf) -> Result<(), DistError>;
    /// Runs a host-memory collective behind the queued work.
    fn host(&self, job: HostJob) -> Result<Vec<f32>, DistError>;
    /// How many sum-of-squares partials each rank's shard gives.
    fn partials_per_rank(&self) -> usize;
}

/// The exchange of a backend whose buffers the communication thread's wire reduces in place.
pub(crate) struct Exchange<B: RankBackend> {
    rank: usize,
    zero: bool,
    shards: Shards,
    buckets: Vec<Range<usize>>,
    staging: Vec<Option<B::Buf>>,
    returned: Receiver<(usize, B::Buf)>,
    scratch: B::Buf,
    comm: CommThread<CommState<B::Buf, B::Ready>>,
}

impl<B: RankBackend> Exchange<B>
where
    B::Buf: 'static,
{
    /// Starts the communication thread, whose wire `init` makes there.
    pub(crate) fn spawn<C>(
        be: &B,
        rank: usize,
        shards: Shards,
        buckets: Vec<Range<usize>>,
        zero: bool,
        init: impl FnOnce() -> Result<C, DistError> + Send + 'static,
    ) -> Result<Self, DistError>
    where
        C: CommWire<Buf = B::Buf, Ready = B::Ready> + 'static,
    {
        let (returned_tx, returned) = channel();
        let acc = be.alloc(shards.range(rank).len());
        let full = be.alloc(shards.total);
        let comm = CommThread::spawn(move || {
            Ok(CommState {
                wire: Box::new(init()?),
                acc: Some(acc),
                full: Some(full),
                error: None,
                returned: returned_tx,
            })
        })?;
        Ok(Exchange {
            rank,
            zero,
            staging: buckets.iter().map(|b| Some(be.alloc(b.len()))).collect(),
            buckets,
            shards,
            returned,
            scratch: be.alloc(1),
            comm,
        })
    }

    /// Queues `buf` back into the communication thread's state (as the accumulator with `acc`,
    /// else as the full buffer) once the backend's queued work is done, zeroed with `clear`.
    fn give_back(&self, be: &B, buf: B::Buf, acc: bool, clear: bool) {
        let ready = be.ready();
        self.comm.submit(move |st| {
            let mut buf = buf;
            let result = st.wire.wait_for(ready).and_then(|()| match clear {
                true => st.wire.zero(&mut buf),
                false => Ok(()),
            });
            if let Err(e) = result {
                st.error.get_or_insert(e);
            }
            *(if acc { &mut st.acc } else { &mut st.full }) = Some(buf);
        });
    }
}

/// Reduces one staged bucket into the accumulator and, with `gather`, all-gathers it.
fn reduce_bucket<Buf, Ready>(
    st: &mut CommState<Buf, Ready>,
    ready: Ready,
    data: &Buf,
    range: Range<usize>,
    shards: &Shards,
    rank: usize,
    gather: bool,
) -> Result<(), DistError> {
    let acc = st
        .acc
        .as_mut()
        .expect("the accumulator is home during the backward pass");
    st.wire.wait_for(ready)?;
    st.wire.reduce_scatter(data, range.clone(), shards, acc)?;
    if gather {
        let own = shards.range(rank);
        let piece = shards.piece(rank, &range);
        let full = st.full.as_mut().expect("the full gradient is home");
        let at = piece.start - own.start;
        st.wire.copy(acc, at, full, piece.start, piece.len())?;
        st.wire.all_gather(full, range, shards)?;
    }
    Ok(())
}

impl<B: RankBackend> GradExchange<B> for Exchange<B>
where
    B::Buf: 'static,
{
    fn start_bucket(&mut self, be: &B, grads: &B::Buf, i: usize, gather: bool) {
        while self.staging[i].is_none() {
            match self.returned.recv() {
                Ok((j, buf)) => self.staging[j] = Some(buf),
                Err(_) => return, // the comm thread is gone; finish reports it
            }
        }
        let range = self.buckets[i].clone();
        let mut data = self.staging[i].take().expect("staging buffer present");
        be.copy(
            View::new(grads, range.start),
            (&mut data).into(),
            range.len(),
        );
        let ready = be.ready();
        let (shards, rank) = (self.shards.clone(), self.rank);
        self.comm.submit(move |st| {
            if st.error.is_none() {
                st.error = reduce_bucket(st, ready, &data, range, &shards, rank, gather).err();
            }
            let _ = st.returned.send((i, data));
        });
    }

    fn finish(&mut self, be: &B, grads: &mut B::Buf) -> Result<Option<Vec<f64>>, DistError> {
        let zero = self.zero;
        let (error, buf) = self.comm.call(move |st| {
            let mut error = st.error.take();
            let buf = match zero {
                true => st.acc.take(),
                false => {
                    let acc = st.acc.as_mut().expect("the accumulator is home");
                    if let Err(e) = st.wire.zero(acc) {
                        error.get_or_insert(e);
                    }
                    st.full.take()
                }
            };
            (error, buf)
        })?;
        let buf = buf.expect("the reduced gradient is home between steps");
        if let Some(err) = error {
            self.give_back(be, buf, zero, zero);
            return Err(err);
        }
        let part = match zero {
            true => self.shards.range(self.rank),
            false => 0..self.shards.total,
        };
        be.copy((&buf).into(), ViewMut::new(grads, part.start), part.len());
        let partials = zero.then(|| {
            be.sumsq_partials(View::new(grads, part.start), part.len(), &mut self.scratch)
        });
        self.give_back(be, buf, zero, zero);
        Ok(partials)
    }

    fn gather_params(&mut self, be: &B, params: &mut B::Buf) -> Result<(), DistError> {
        let mut full = self
            .comm
            .call(|st| st.full.take())?
            .expect("the parameter buffer is home");
        let own = self.shards.range(self.rank);
        be.copy(
            View::new(params, own.start),
            ViewMut::new(&mut full, own.start),
            own.len(),
        );
        let ready = be.ready();
        let shards = self.shards.clone();
        let (result, full) = self.comm.call(move |st| {
            let result = match st.error.take() {
                Some(e) => Err(e),
                None => st
                    .wire
                    .wait_for(ready)
                    .and_then(|()| st.wire.all_gather(&mut full, 0..shards.total, &shards)),
            };
            (result, full)
        })?;
        if result.is_ok() {
            be.copy((&full).into(), params.into(), self.shards.total);
        }
        self.give_back(be, full, false, false);
        result
    }

    fn host(&self, job: HostJob) -> Result<Vec<f32>, DistError> {
        self.comm.collective(job)
    }

    fn partials_per_rank(&self) -> usize {
        B::partials_per_rank(&self.shards)
    }
}

#[cfg(test)]
mod tests;
