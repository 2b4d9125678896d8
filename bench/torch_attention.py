"""PyTorch attention benchmark: the baseline `ecgfm bench attention` compares our packed attention with.

Times F.scaled_dot_product_attention forward + backward (out.backward(dout)) on the shapes ecgfm
passes: every sequence of a model's encoder or decoder has the same length, so a PyTorch user holds
them dense as (B, H, T, hd) tensors; on a GPU in bfloat16 (`--precision bf16`, the flash /
memory-efficient kernels PyTorch picks), tf32 or fp32, on the CPU in fp32. Each iteration is timed
to completion (device synchronised).

Usage:
    python3 bench/torch_attention.py --shapes encoder:32:84:768:12,decoder:32:360:384:6 --device cuda

Prints one line per shape, then ONE JSON line last:
    {"impl": "pytorch-sdpa", "device", "precision", "ms_median": {NAME: ms}, "torch_version"}
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def time_shape(seqs: int, length: int, width: int, heads: int, args: argparse.Namespace) -> float:
    """Median milliseconds of one forward + backward of SDPA on (seqs, heads, length, width/heads)."""
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    gen = torch.Generator(device="cpu").manual_seed(0)
    shape = (seqs, heads, length, width // heads)
    q, k, v, dout = (torch.randn(shape, generator=gen).mul(0.5).to(device, dtype) for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_(True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        out = F.scaled_dot_product_attention(q, k, v)
        out.backward(dout)
        sync()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
        q.grad = k.grad = v.grad = None
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description="Time PyTorch SDPA forward + backward.")
    parser.add_argument("--shapes", required=True, help="NAME:SEQS:LEN:WIDTH:HEADS,... ")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if args.device == "cpu" and args.precision != "fp32":
        parser.error("--precision bf16/tf32 is for --device cuda")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    results = {}
    for spec in args.shapes.split(","):
        name, *dims = spec.split(":")
        seqs, length, width, heads = (int(d) for d in dims)
        ms = time_shape(seqs, length, width, heads, args)
        print(f"{name}: {seqs} x {length} tokens, width {width}, {heads} heads: fwd+bwd {ms:.3f} ms")
        results[name] = round(ms, 4)
    print(json.dumps({"impl": "pytorch-sdpa", "device": args.device, "precision": args.precision,
                      "ms_median": results, "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
