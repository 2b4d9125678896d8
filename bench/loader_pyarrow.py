#!/usr/bin/env python3
"""Baseline for the Rust streaming loader: pyarrow + numpy batching of the same ecgfm shards.

Reads every shard of a dataset folder (docs/dataset-format.md) row group by row group, decodes
`signal` (int16) to float32 with the manifest's signal_scale, takes a random crop per window
(zero-padded when shorter than the crop), stacks batches of (B, 12, S) and reports ECG windows
per second. The last line printed is one JSON object.

    python3 bench/loader_pyarrow.py --data DIR --batch-size 256 [--crop 2250] [--batches N]
"""
import argparse
import json
import os
import time

import numpy as np
import pyarrow.parquet as pq


def batches(data, manifest, batch_size, crop, rng):
    window = manifest["window_samples"]
    scale = np.float32(manifest["signal_scale"])
    pending_x, pending_m = [], []
    while True:
        for shard in manifest["shards"]:
            pf = pq.ParquetFile(os.path.join(data, shard["path"]))
            for rg in range(pf.num_row_groups):
                table = pf.read_row_group(rg, columns=["signal", "lead_mask", "n_samples"])
                n = table.num_rows
                sig = table.column("signal").combine_chunks().flatten().to_numpy()
                sig = sig.reshape(n, 12, window)
                mask = table.column("lead_mask").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                mask = mask.reshape(n, 12).astype(np.uint8)
                valid = table.column("n_samples").to_numpy()
                for i in rng.permutation(n):
                    v = min(int(valid[i]), window)
                    out = np.zeros((12, crop), dtype=np.float32)
                    if v > crop:
                        o = int(rng.integers(0, v - crop + 1))
                        out[:] = sig[i, :, o:o + crop].astype(np.float32) * scale
                    else:
                        out[:, :v] = sig[i, :, :v].astype(np.float32) * scale
                    pending_x.append(out)
                    pending_m.append(mask[i])
                    if len(pending_x) == batch_size:
                        yield np.stack(pending_x), np.stack(pending_m)
                        pending_x, pending_m = [], []


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder holding manifest.json")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=2250)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    rng = np.random.default_rng(args.seed)
    it = batches(args.data, manifest, args.batch_size, args.crop, rng)
    x, _ = next(it)  # warm-up, untimed
    assert x.shape == (args.batch_size, 12, args.crop), x.shape
    start = time.perf_counter()
    for _ in range(args.batches):
        x, m = next(it)
    seconds = time.perf_counter() - start
    rate = args.batches * args.batch_size / seconds
    print(f"pyarrow+numpy: {rate:.0f} ECGs/s ({args.batches} batches of {args.batch_size}, "
          f"crop {args.crop}, {seconds:.2f} s)")
    print(json.dumps({"loader": "pyarrow+numpy", "ecgs_per_s": rate, "batch_size": args.batch_size,
                      "batches": args.batches, "seconds": seconds, "crop_samples": args.crop,
                      "threads": 1}))


if __name__ == "__main__":
    main()
