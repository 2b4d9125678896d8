//! The gradient exchange on loopback ranks: whole and sharded (ZeRO-1) reductions, each step
//! starting from zero, a failed bucket's error coming out of the next host collective, and a
//! failed ZeRO-1 step leaving nothing in the next.

use super::*;
use crate::comm_wire::HostComm;
use crate::loopback_ranks::on_loopback_ranks;
use ecgfm_kernels::CpuBackend;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The CPU wire, whose `fail_at`-th reduce-scatter (counting from 1) fails without
/// reducing anything.
struct Faulty {
    inner: HostComm,
    calls: usize,
    fail_at: Option<usize>,
}

impl CommWire for Faulty {
    type Buf = Vec<f32>;
    type Ready = ();

    fn host(&mut self) -> &mut dyn Collective<[f32]> {
        self.inner.host()
    }

    fn wait_for(&mut self, ready: ()) -> Result<(), DistError> {
        self.inner.wait_for(ready)
    }

    fn reduce_scatter(
        &mut self,
        src: &Vec<f32>,
        range: Range<usize>,
        shards: &Shards,
        acc: &mut Vec<f32>,
    ) -> Result<(), DistError> {
        self.calls += 1;
        if Some(self.calls) == self.fail_at {
            return Err(DistError::Env("injected reduce-scatter failure".into()));
        }
        self.inner.reduce_scatter(src, range, shards, acc)
    }

    fn all_gather(
        &mut self,
        buf: &mut Vec<f32>,
        range: Range<usize>,
        shards: &Shards,
    ) -> Result<(), DistError> {
        self.inner.all_gather(buf, range, shards)
    }

    fn copy(
        &mut self,
        src: &Vec<f32>,
        src_off: usize,
        dst: &mut Vec<f32>,
        dst_off: usize,
        n: usize,
    ) -> Result<(), DistError> {
        self.inner.copy(src, src_off, dst, dst_off, n)
    }

    fn zero(&mut self, buf: &mut Vec<f32>) -> Result<(), DistError> {
        self.inner.zero(buf)
    }
}

const TOTAL: usize = 2 * ecgfm_dist::shards::ALIGN + 100;

/// Buckets of `TOTAL` from its end, one of them across the two ranks' shard boundary.
fn buckets() -> Vec<Range<usize>> {
    let cut = ecgfm_dist::shards::ALIGN;
    vec![TOTAL - 50..TOTAL, cut + 10..TOTAL - 50, 0..cut + 10]
}

/// Small integers (sums of them are exact in f32, whatever the order of addition).
fn grads(rank: usize, micro: usize, step: usize) -> Vec<f32> {
    (0..TOTAL)
        .map(|i| ((i * 7 + rank * 3 + micro * 5 + step * 11) % 17) as f32 - 8.0)
        .collect()
}

/// What every rank's gradient sums to over `world` ranks and `micros` micro-batches.
fn reduced(world: usize, micros: usize, step: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; TOTAL];
    for micro in 0..micros {
        for rank in 0..world {
            for (s, g) in sum.iter_mut().zip(grads(rank, micro, step)) {
                *s += g;
            }
        }
    }
    sum
}

fn exchange(
    coll: Box<dyn Collective<[f32]> + Send>,
    zero: bool,
    fail_at: Option<usize>,
) -> Exchange<CpuBackend> {
    let (rank, world) = (coll.rank(), coll.world_size());
    let init = move || {
        Ok(Faulty {
            inner: HostComm { coll },
            calls: 0,
            fail_at,
        })
    };
    let shards = Shards::new(TOTAL, world);
    Exchange::spawn(&CpuBackend::new(), rank, shards, buckets(), zero, init).unwrap()
}

/// One step of `micros` micro-batches: every bucket of each, gathered on the last.
fn step(
    ex: &mut Exchange<CpuBackend>,
    rank: usize,
    micros: usize,
    step: usize,
) -> (Vec<f32>, Result<Option<Vec<f64>>, DistError>) {
    let be = CpuBackend::new();
    for micro in 0..micros {
        let g = grads(rank, micro, step);
        for i in 0..buckets().len() {
            ex.start_bucket(&be, &g, i, micro + 1 == micros);
        }
    }
    let mut out = vec![f32::NAN; TOTAL];
    let result = ex.finish(&be, &mut out);
    (out, result)
}

/// Two ranks, two micro-batches, two steps: without ZeRO every rank gets the whole sum of
/// every rank's and micro-batch's gradients, and the next step starts from zero (the
/// accumulator is cleared between steps).
#[test]
fn every_rank_gets_the_whole_reduced_gradient_of_each_step() {
    let results = on_loopback_ranks(2, |coll| {
        let rank = coll.rank();
        let mut ex = exchange(coll, false, None);
        let first = step(&mut ex, rank, 2, 0);
        let second = step(&mut ex, rank, 2, 1);
        (first.0, first.1.unwrap(), second.0, second.1.unwrap())
    });
    for (rank, (first, p1, second, p2)) in results.into_iter().enumerate() {
        assert!(p1.is_none() && p2.is_none(), "no partials without ZeRO");
        assert!(first == reduced(2, 2, 0), "rank {rank}: step 0");
        assert!(second == reduced(2, 2, 1), "rank {rank}: step 1");
    }
}

/// Under ZeRO-1 each rank gets its own shard of the sum (the rest of its buffer untouched),
/// with that shard's per-`ALIGN` sum-of-squares partials; the next step starts from zero;
/// `gather_params` gives every rank every rank's shard of the parameters.
#[test]
fn a_zero_one_rank_gets_its_shard_and_then_every_shard_of_the_parameters() {
    let shards = Shards::new(TOTAL, 2);
    let results = on_loopback_ranks(2, |coll| {
        let rank = coll.rank();
        let mut ex = exchange(coll, true, None);
        let first = step(&mut ex, rank, 2, 0);
        let second = step(&mut ex, rank, 1, 1);
        let own = shards.range(rank);
        let mut params = vec![-1.0f32; TOTAL];
        params[own].fill(rank as f32 + 10.0);
        ex.gather_params(&CpuBackend::new(), &mut params).unwrap();
        (
            first.0,
            first.1.unwrap(),
            second.0,
            second.1.unwrap(),
            params,
        )
    });
    for (rank, (first, p1, second, p2, params)) in results.into_iter().enumerate() {
        let own = shards.range(rank);
        for (got, step, micros, partials) in [(first, 0, 2, p1), (second, 1, 1, p2)] {
            let want = reduced(2, micros, step);
            assert!(
                got[own.clone()] == want[own.clone()],
                "rank {rank}, step {step}"
            );
            let mut outside = (0..TOTAL).filter(|i| !own.contains(i));
            assert!(outside.all(|i| got[i].is_nan()), "rank {rank}");
            let partials = partials.unwrap();
            let expected: Vec<f64> = want[own.clone()]
                .chunks(ecgfm_dist::shards::ALIGN)
                .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum())
                .collect();
            assert_eq!(partials, expected, "rank {rank}, step {step}");
        }
        for r in 0..2 {
            let want = r as f32 + 10.0;
            assert!(
                params[shards.range(r)].iter().all(|&p| p == want),
                "rank {rank}"
            );
        }
    }
}

/// A failed bucket's error is kept over the buckets reduced after it and comes out of the
/// next host collective, before that collective runs.
#[test]
fn a_failed_bucket_comes_out_of_the_next_host_collective() {
    let results = on_loopback_ranks(1, |coll| {
        // Bucket 1 fails, bucket 2 reduces after it.
        let mut ex = exchange(coll, false, Some(2));
        let be = CpuBackend::new();
        let g = grads(0, 0, 0);
        for i in 0..buckets().len() {
            ex.start_bucket(&be, &g, i, true);
        }
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let host = ex.host(Box::new(move |c| {
            flag.store(true, Ordering::SeqCst);
            let mut v = vec![1.0f32];
            c.all_reduce(&mut v)?;
            Ok(v)
        }));
        (host.map_err(|e| e.to_string()), ran.load(Ordering::SeqCst))
    });
    let (host, ran) = results.into_iter().next().unwrap();
    let err = host.expect_err("the bucket's error comes first");
    assert!(err.contains("injected reduce-scatter failure"), "{err}");
    assert!(!ran, "the host collective ran behind an error");
}

/// Under ZeRO-1 a step whose bucket failed reports the error from `finish` and leaves the
/// accumulator cleared: the next step's gradient holds nothing of the failed one.
#[test]
fn a_failed_zero_one_step_leaves_nothing_in_the_next() {
    let results = on_loopback_ranks(1, |coll| {
        let mut ex = exchange(coll, true, Some(2));
        let failed = step(&mut ex, 0, 1, 0)
            .1
            .map(|_| ())
            .map_err(|e| e.to_string());
        let next = step(&mut ex, 0, 1, 1);
        (failed, next.0, next.1.unwrap())
    });
    let (failed, next, _) = results.into_iter().next().unwrap();
    let err = failed.expect_err("the failed bucket is reported");
    assert!(err.contains("injected reduce-scatter failure"), "{err}");
    assert!(
        next == reduced(1, 1, 1),
        "the failed step's buckets leaked into the next"
    );
}
