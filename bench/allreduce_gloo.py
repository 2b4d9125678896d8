"""torch.distributed (gloo) all-reduce on CPU: the baseline `ecgfm bench allreduce` compares the
ecgfm CPU collective with. N processes on this machine, connected over loopback by gloo, all-reduce
a float32 tensor of the given size; the median over the timed iterations is reported, with the bus
bandwidth 2(N-1)/N x bytes / time (the figure NCCL's tests print).

Usage:
    python3 bench/allreduce_gloo.py --ranks 2 --mb 64 --iters 10

Prints ONE JSON line last:
    {"impl": "gloo", "ranks", "mb", "allreduce_ms_median", "bus_gb_per_s", "torch_version"}
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, ranks: int, port: int, elems: int, iters: int, out) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=ranks
    )
    x = torch.ones(elems, dtype=torch.float32)
    for _ in range(2):
        dist.all_reduce(x)
    times = []
    for _ in range(iters):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - start)
    if rank == 0:
        out.put(statistics.median(times))
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--mb", type=float, default=64)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    elems = int(args.mb * 1024 * 1024 / 4)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=worker, args=(r, args.ranks, port, elems, args.iters, out))
        for r in range(args.ranks)
    ]
    for p in procs:
        p.start()
    median = out.get()
    for p in procs:
        p.join()
    n = args.ranks
    bus = 2 * (n - 1) / n * elems * 4 / median / 1e9
    print(f"gloo all-reduce {args.mb} MB over {n} ranks: {median * 1e3:.2f} ms, bus {bus:.2f} GB/s")
    print(
        json.dumps(
            {
                "impl": "gloo",
                "ranks": n,
                "mb": args.mb,
                "allreduce_ms_median": median * 1e3,
                "bus_gb_per_s": bus,
                "torch_version": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
