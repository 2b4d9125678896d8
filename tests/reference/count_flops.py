"""Counts the FLOPs of the reference model's training step independently of the Rust formula.

The trainer's FLOP count (trainer/src/model/stats.rs) is a formula: what `flops` in metrics.jsonl,
MFU and a sweep's compute budgets rest on. This script measures the same quantity another way:
it runs the PyTorch reference (mae_reference.py) forward and backward on one sample under a
TorchDispatchMode that sees every ATen operator PyTorch executes, backward included, and adds
2 * m * k * n for each matrix product (mm, addmm, bmm, baddbmm). Any other operator whose name
says it multiplies matrices or vectors is reported as uncounted, naming it.

Usage: python3 count_flops.py CASES_JSON
where CASES_JSON is a list of {"preset": NAME, "overrides": {field: value}, "leads": n}. Prints a
JSON list, one entry per case: {"forward": F, "train": T, "uncounted": [op names]}.
"""

import json
import sys

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mae_reference import MaeReference, ModelConfig, sample_patch_mask

aten = torch.ops.aten

# Any other operator whose name says it multiplies matrices or vectors (addmv, addbmm, vdot, a
# convolution, a fused attention) is reported, not counted: the comparison with the Rust count
# would fail on it anyway, this names the cause. (The reference's step runs only mm, addmm and
# bmm among products; every other operator it runs, elementwise, reductions, views, indexing,
# softmax, LayerNorm, multiplies no matrices.)
PRODUCT_WORDS = ("mm", "mv", "dot", "conv", "attention", "matmul", "linear", "einsum")


def product_flops(func, args):
    """2 * multiply-adds of a matrix product, or None for any other operator."""
    if func is aten.mm.default:
        a, b = args
        return 2 * a.shape[0] * a.shape[1] * b.shape[1]
    if func is aten.addmm.default:
        _, a, b = args[:3]
        return 2 * a.shape[0] * a.shape[1] * b.shape[1]
    if func is aten.bmm.default:
        a, b = args
        return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    if func is aten.baddbmm.default:
        _, a, b = args[:3]
        return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return None


class CountProducts(TorchDispatchMode):
    """Adds up the FLOPs of the matrix products run while it is active."""

    def __init__(self):
        super().__init__()
        self.flops = 0
        self.uncounted = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flops = product_flops(func, args)
        if flops is not None:
            self.flops += flops
        elif any(word in str(func.name()) for word in PRODUCT_WORDS):
            self.uncounted.add(str(func.name()))
        return func(*args, **(kwargs or {}))


def count(case):
    cfg = ModelConfig.preset(case["preset"], **case.get("overrides", {}))
    torch.manual_seed(0)
    model = MaeReference(cfg)
    model.init_weights(torch.Generator().manual_seed(0))
    lead_mask = np.zeros((1, cfg.n_leads), dtype=np.uint8)
    lead_mask[0, : case["leads"]] = 1
    patch_mask = sample_patch_mask(lead_mask, cfg, np.random.default_rng(0))
    x = torch.randn(1, cfg.n_leads, cfg.seq_len)
    with CountProducts() as forward:
        loss, _ = model(x, torch.from_numpy(lead_mask), torch.from_numpy(patch_mask))
    with CountProducts() as backward:
        loss.backward()
    return {
        "forward": forward.flops,
        "train": forward.flops + backward.flops,
        "uncounted": sorted(forward.uncounted | backward.uncounted),
    }


def main():
    torch.set_num_threads(1)
    cases = json.loads(sys.argv[1])
    print(json.dumps([count(case) for case in cases]))


if __name__ == "__main__":
    main()
