//! The CPU collective between threads over loopback: sums equal a serial rank-order sum bit for
//! bit, every rank gets every piece, and failures (a rank that never arrives, dies or hangs)
//! come back as errors naming that rank; ranks making different calls are told which.

use std::time::Duration;

use ecgfm_dist::{
    connect, on_threads, Collective, CpuCollective, DistError, JobEnv, Launcher, Shards, Timeouts,
};

use ecgfm_test_support::free_port;

fn job(rank: usize, world: usize, port: u16) -> JobEnv {
    JobEnv {
        launcher: Launcher::Ecgfm,
        rank,
        world_size: world,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
    }
}

fn timeouts(rendezvous_ms: u64, collective_ms: u64) -> Timeouts {
    Timeouts {
        rendezvous: Duration::from_millis(rendezvous_ms),
        collective: Duration::from_millis(collective_ms),
    }
}

/// Runs `f` on `world` connected ranks (threads) and returns their results in rank order.
fn on_ranks<T: Send>(world: usize, f: impl Fn(&mut CpuCollective) -> T + Sync) -> Vec<T> {
    on_threads(world, timeouts(20_000, 20_000), |mut c| f(&mut c))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Values whose sum depends on the order of addition in f32.
fn values(rank: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = ((i * 7919 + rank * 104_729) % 1000) as f32;
            (x - 500.0) * 10f32.powi((i % 9) as i32 - 4) + 1e-3 * rank as f32
        })
        .collect()
}

#[test]
fn reduce_scatter_and_all_gather_sum_in_rank_order() {
    for world in [1, 2, 3, 4] {
        let n = 40_000;
        let shards = Shards::new(n, world);
        let range = 1234..n - 777;
        let results = on_ranks(world, |c| {
            let rank = c.rank();
            let own = shards.range(rank);
            let mut acc: Vec<f32> = values(99, n)[own.clone()].to_vec();
            let src = values(rank, n);
            c.reduce_scatter(&src[range.clone()], range.clone(), &shards, &mut acc)
                .unwrap();
            let mut full = vec![0.0f32; n];
            full[own].copy_from_slice(&acc);
            c.all_gather(&mut full, range.clone(), &shards).unwrap();
            full
        });
        let mut expected = values(99, n);
        for rank in 0..world {
            let src = values(rank, n);
            for i in range.clone() {
                expected[i] += src[i];
            }
        }
        for (rank, full) in results.iter().enumerate() {
            let same = range
                .clone()
                .all(|i| full[i].to_bits() == expected[i].to_bits());
            assert!(same, "world {world}, rank {rank}: not the rank-order sum");
        }
    }
}

#[test]
fn all_reduce_broadcast_and_barrier() {
    let results = on_ranks(3, |c| {
        let rank = c.rank();
        let mut sum = values(rank, 1001);
        c.all_reduce(&mut sum).unwrap();
        let mut b = vec![rank as f32; 5];
        c.broadcast(&mut b, 2).unwrap();
        let mut bytes = if rank == 1 {
            b"runs/20260101-000000".to_vec()
        } else {
            Vec::new()
        };
        c.broadcast_bytes(&mut bytes, 1).unwrap();
        c.barrier().unwrap();
        (sum, b, bytes)
    });
    let expected: Vec<f32> = (0..1001)
        .map(|i| (values(0, 1001)[i] + values(1, 1001)[i]) + values(2, 1001)[i])
        .collect();
    for (sum, b, bytes) in results {
        assert_eq!(sum, expected);
        assert_eq!(b, vec![2.0; 5]);
        assert_eq!(bytes, b"runs/20260101-000000");
    }
}

#[test]
fn a_rank_that_never_arrives_is_named() {
    let port = free_port();
    let t = timeouts(1500, 5000);
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = [0, 1, 3]
            .into_iter()
            .map(|rank| s.spawn(move || connect(&job(rank, 4, port), t).err().unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().to_string())
            .collect()
    });
    for e in &errors {
        assert!(e.contains("rank(s) 2 never arrived"), "{e}");
    }
}

/// A connection that says nothing (a port scanner, a health check) or says something else
/// does not hold up the ranks that arrive after it.
///
/// Rank 0 waits for greetings until the rendezvous deadline and has no shorter wait per
/// connection (rendezvous.rs, `serve` and `next_hello`), and the silent connection here stays
/// open until every rank has returned. A rendezvous that waited on it would therefore end in a
/// timeout error (or never), not succeed late: success alone shows it did not stall, with no
/// clock. The timeouts are long so that a loaded machine cannot trip them.
#[test]
fn silent_and_foreign_connections_do_not_stall_the_rendezvous() {
    let port = free_port();
    let t = timeouts(60_000, 60_000);
    let results = std::thread::scope(|s| {
        let zero = s.spawn(move || connect(&job(0, 3, port), t).map(|_| ()));
        let silent = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut foreign = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut foreign, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let others: Vec<_> = [1, 2]
            .into_iter()
            .map(|rank| s.spawn(move || connect(&job(rank, 3, port), t).map(|_| ())))
            .collect();
        let mut results = vec![zero.join().unwrap()];
        results.extend(others.into_iter().map(|h| h.join().unwrap()));
        // Only now, after every rank has returned, do the two connections close.
        drop((silent, foreign));
        results
    });
    for r in results {
        r.unwrap();
    }
}

#[test]
fn a_rank_that_dies_or_hangs_is_named() {
    let errors: Vec<Option<DistError>> = on_threads(3, timeouts(20_000, 1500), |mut c| {
        let mut buf = vec![1.0f32; 100];
        c.all_reduce(&mut buf).unwrap();
        match c.rank() {
            // Rank 2 hangs: it never joins the next call (the others time out).
            2 => {
                std::thread::sleep(Duration::from_secs(3));
                None
            }
            _ => c.all_reduce(&mut buf).err(),
        }
    })
    .unwrap()
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for e in errors.iter().take(2) {
        let text = e.as_ref().expect("the call must fail").to_string();
        assert!(text.contains("rank(s) 2"), "{text}");
        assert!(text.contains("timed out"), "{text}");
    }

    // A rank whose process is gone: its connections close and the others name it at once.
    let errors: Vec<Option<String>> = on_ranks(2, |c| {
        if c.rank() == 1 {
            return None;
        }
        let mut buf = vec![1.0f32; 100];
        c.all_reduce(&mut buf).err().map(|e| e.to_string())
    });
    let text = errors[0].as_ref().expect("rank 0's call must fail");
    assert!(text.contains("rank 1 closed its connection"), "{text}");
}

#[test]
fn ranks_making_different_calls_are_named_with_both_calls() {
    // Rank 0 waits at a barrier while rank 1 all-reduces (ranks whose settings differ).
    let errors: Vec<String> = on_ranks(2, |c| {
        let mut buf = vec![1.0f32; 4];
        let result = match c.rank() {
            0 => c.barrier(),
            _ => c.all_reduce(&mut buf),
        };
        result.expect_err("the calls differ").to_string()
    });
    assert_eq!(
        errors[0],
        "rank 1 is out of step: this rank's call #1 is barrier, expecting 0 bytes from it, but \
         rank 1 sent reduce_scatter with 8 bytes as its call #1 (the ranks made different calls: \
         do their commands or configurations differ?)"
    );
    assert!(
        errors[1].starts_with("rank 0 is out of step: this rank's call #1 is reduce_scatter")
            && errors[1].contains("rank 0 sent barrier with 0 bytes"),
        "{}",
        errors[1]
    );
}

#[test]
fn a_master_port_in_use_is_named_with_the_way_out() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = connect(&job(0, 2, port), timeouts(1000, 1000))
        .err()
        .expect("rank 0 cannot listen on a port in use")
        .to_string();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    assert!(error.contains("rank 0 cannot listen"), "{error}");
    assert!(error.contains("--master-port 0"), "{error}");
}

/// Rank 0 listening on a socket bound before any rank started: ranks that arrive before rank 0
/// accepts wait in its queue.
#[test]
fn rank_0_listens_on_the_socket_it_is_given() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
        let others: Vec<_> = (1..3)
            .map(|rank| {
                s.spawn(move || {
                    let mut c = connect(&job(rank, 3, port), timeouts(20_000, 20_000)).unwrap();
                    let mut buf = vec![rank as f32; 4];
                    c.all_reduce(&mut buf).unwrap();
                    buf
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut zero =
            ecgfm_dist::connect_with(&job(0, 3, port), Some(listener), timeouts(20_000, 20_000))
                .unwrap();
        let mut buf = vec![0.0f32; 4];
        zero.all_reduce(&mut buf).unwrap();
        let mut sums = vec![buf];
        sums.extend(others.into_iter().map(|h| h.join().unwrap()));
        sums
    });
    assert_eq!(sums, vec![vec![3.0f32; 4]; 3]);
}

/// Ranks making the same call with buffers of different lengths (a length computed from
/// settings that differ) are named with both lengths, instead of the shorter reading part of
/// the longer's message and going on with wrong values.
#[test]
fn ranks_sending_different_lengths_are_named_with_both() {
    let results: Vec<Result<Vec<f32>, String>> = on_ranks(2, |c| {
        let mut buf = vec![c.rank() as f32 + 1.0; 5 - c.rank()];
        c.broadcast(&mut buf, 0)
            .map(|()| buf)
            .map_err(|e| e.to_string())
    });
    let err = results[1]
        .as_ref()
        .expect_err("rank 1 expects 16 bytes, gets 20");
    assert!(
        err.contains("expecting 16 bytes") && err.contains("broadcast with 20 bytes"),
        "{err}"
    );
}
