//! NCCL through the real library on one GPU (one rank): all-reduce, reduce-scatter with
//! accumulation, all-gather, broadcast and barrier on device buffers. Needs a GPU and NCCL, so it
//! is ignored by `cargo test`; scripts/gpu-check-dist.sh runs it with `--ignored`.

use std::time::Duration;

use cudarc::driver::CudaContext;
use ecgfm_dist::nccl::NcclCollective;
use ecgfm_dist::{connect, Collective, JobEnv, Launcher, Shards, Timeouts};

#[test]
#[ignore = "needs a GPU and NCCL: scripts/gpu-check-dist.sh runs it"]
fn one_rank_nccl_collectives_on_the_gpu() {
    let env = JobEnv {
        launcher: Launcher::Single,
        rank: 0,
        world_size: 1,
        local_rank: 0,
        master_addr: "127.0.0.1".into(),
        master_port: 0,
    };
    let timeouts = Timeouts {
        rendezvous: Duration::from_secs(10),
        collective: Duration::from_secs(30),
    };
    let mut cpu = connect(&env, timeouts).unwrap();
    let ctx = CudaContext::new(0).unwrap();
    let stream = ctx.default_stream();
    let mut nccl = NcclCollective::new(&mut cpu, stream.clone()).unwrap();
    assert_eq!((nccl.rank(), nccl.world_size()), (0, 1));

    let host: Vec<f32> = (0..100_000).map(|i| (i as f32).sin()).collect();
    let mut buf = stream.clone_htod(&host).unwrap();
    nccl.all_reduce(&mut buf).unwrap();
    assert_eq!(
        stream.clone_dtoh(&buf).unwrap(),
        host,
        "1-rank all-reduce is the identity"
    );

    let shards = Shards::new(host.len(), 1);
    let range = 1000..90_000;
    let src = stream.clone_htod(&host[range.clone()]).unwrap();
    let mut acc = stream.clone_htod(&vec![1.0f32; host.len()]).unwrap();
    nccl.reduce_scatter(&src, range.clone(), &shards, &mut acc)
        .unwrap();
    let acc = stream.clone_dtoh(&acc).unwrap();
    for i in 0..host.len() {
        let expected = if range.contains(&i) {
            1.0 + host[i]
        } else {
            1.0
        };
        assert_eq!(acc[i], expected, "element {i}");
    }
    nccl.all_gather(&mut buf, range, &shards).unwrap();
    nccl.broadcast(&mut buf, 0).unwrap();
    nccl.barrier().unwrap();
    assert_eq!(stream.clone_dtoh(&buf).unwrap(), host);
}
