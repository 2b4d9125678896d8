#!/usr/bin/env python3
"""Baseline for the Rust streaming loader: pyarrow + numpy batching of the same ecgfm shards.

Reads every shard of a dataset folder (docs/dataset-format.md) row group by row group, decodes
`signal` (int16) to float32 with the manifest's signal_scale, takes a random crop per window
(zero-padded when shorter than the crop), stacks batches of (B, 12, S) and reports ECG windows
per second. `--workers N` decodes row groups in N processes, as a
`torch.utils.data.DataLoader(num_workers=N)` user would, with pyarrow on one thread in each
(`pa.set_cpu_count(1)`), so that N matches ecgfm's decode threads; with 1 (the default) the main
process decodes. The last line printed is one JSON object.

    python3 bench/loader_pyarrow.py --data DIR --batch-size 256 [--crop 2250] [--batches N] [--workers N]
"""
import argparse
import json
import multiprocessing
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def decode(task):
    """The windows of one row group, shuffled and cropped: (x (n, 12, crop), mask (n, 12))."""
    path, rg, window, scale, crop, seed = task
    rng = np.random.default_rng(seed)
    table = pq.ParquetFile(path).read_row_group(rg, columns=["signal", "lead_mask", "n_samples"])
    n = table.num_rows
    sig = table.column("signal").combine_chunks().flatten().to_numpy().reshape(n, 12, window)
    mask = table.column("lead_mask").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    mask = mask.reshape(n, 12).astype(np.uint8)
    valid = table.column("n_samples").to_numpy()
    order = rng.permutation(n)
    out = np.zeros((n, 12, crop), dtype=np.float32)
    for j, i in enumerate(order):
        v = min(int(valid[i]), window)
        if v > crop:
            o = int(rng.integers(0, v - crop + 1))
            out[j] = sig[i, :, o:o + crop].astype(np.float32) * scale
        else:
            out[j, :, :v] = sig[i, :, :v].astype(np.float32) * scale
    return out, mask[order]


def tasks(data, manifest, crop, windows, seed):
    """Row groups in shard order, epoch after epoch, until they hold `windows` windows."""
    groups = []
    for shard in manifest["shards"]:
        path = os.path.join(data, shard["path"])
        meta = pq.ParquetFile(path).metadata
        groups += [(path, rg, meta.row_group(rg).num_rows) for rg in range(meta.num_row_groups)]
    out, total = [], 0
    while total < windows:
        for path, rg, rows in groups:
            out.append((path, rg, manifest["window_samples"], np.float32(manifest["signal_scale"]),
                        crop, seed + len(out)))
            total += rows
            if total >= windows:
                break
    return out


def batches(decoded, batch_size):
    """Batches of (B, 12, crop) and (B, 12) from the decoded row groups."""
    pending_x, pending_m, held = [], [], 0
    for x, m in decoded:
        pending_x.append(x)
        pending_m.append(m)
        held += len(x)
        while held >= batch_size:
            xs, ms = np.concatenate(pending_x), np.concatenate(pending_m)
            yield xs[:batch_size], ms[:batch_size]
            pending_x, pending_m, held = [xs[batch_size:]], [ms[batch_size:]], held - batch_size


def one_thread():
    pa.set_cpu_count(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder holding manifest.json")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=2250)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", type=int, default=1, help="decoding processes (ecgfm's --threads)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.workers < 1 or args.batch_size < 1:
        ap.error("--workers and --batch-size must be at least 1")
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    todo = tasks(args.data, manifest, args.crop, (args.batches + 1) * args.batch_size, args.seed)
    one_thread()
    pool = None
    if args.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(args.workers, initializer=one_thread)
        decoded = pool.imap(decode, todo)
    else:
        decoded = map(decode, todo)
    it = batches(decoded, args.batch_size)
    x, _ = next(it)  # warm-up, untimed
    assert x.shape == (args.batch_size, 12, args.crop), x.shape
    start = time.perf_counter()
    for _ in range(args.batches):
        x, m = next(it)
    seconds = time.perf_counter() - start
    if pool is not None:
        pool.terminate()
    rate = args.batches * args.batch_size / seconds
    print(f"pyarrow+numpy: {rate:.0f} ECGs/s ({args.batches} batches of {args.batch_size}, "
          f"crop {args.crop}, {args.workers} decoding processes, {seconds:.2f} s)")
    print(json.dumps({"loader": "pyarrow+numpy", "ecgs_per_s": rate, "batch_size": args.batch_size,
                      "batches": args.batches, "seconds": seconds, "crop_samples": args.crop,
                      "processes": args.workers, "threads_per_process": 1}))


if __name__ == "__main__":
    main()
