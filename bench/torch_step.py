"""PyTorch training-step benchmark: the baseline `ecgfm bench step` compares the Rust trainer with.

Times one full training step (forward + backward + AdamW; mask sampling and input generation are
done beforehand and excluded) of the docs/model.md model, for batches where every sample has all 12
leads. The model is the one of tests/reference/mae_reference.py (same parameters, same AdamW
groups); the step runs a padded batch-dense forward written as a PyTorch user would (gather the
visible patches, F.scaled_dot_product_attention, scatter into the decoder). Before timing, the
dense forward is checked against the per-sample reference on two samples (float32, on the CPU).

On the CPU it runs in float32. On a GPU (`--device cuda`) it runs as a PyTorch user tuning for
speed would: `--precision bf16` (autocast to bfloat16; float32 weights, gradients and optimizer
state), `tf32` (TF32 matrix products) or `fp32`, optionally `--compile` (torch.compile of the loss
function), and the fused CUDA AdamW. Steps are timed to completion (device synchronised).

Usage:
    python3 bench/torch_step.py --model nano --batch-size 32 --threads 2 --steps 20 --warmup 3
    python3 bench/torch_step.py --device cuda --precision bf16 --compile --model base --batch-size 256
    python3 bench/torch_step.py --model base --batch-size 16 --recompute   # activation checkpointing

Prints human-readable lines, then ONE JSON line last:
    {"impl": "pytorch", "model", "batch_size", "threads", "device", "precision", "compile", "recompute",
     "step_ms_median", "samples_per_s", "peak_mem_bytes" (GPU: torch.cuda.max_memory_allocated
     over the timed steps: tensors only; null on the CPU), "peak_reserved_bytes"
     (torch.cuda.max_memory_reserved: the caching allocator's reserve, still without the CUDA
     context), "gpu_name", "torch_version"}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
from mae_reference import PRESETS, Block, MaeReference, ModelConfig, adamw_param_groups, sample_patch_mask  # noqa: E402

INPUT_POOL = 4  # distinct input batches cycled through the timed steps


def dense_block(block: Block, h: torch.Tensor) -> torch.Tensor:
    """The pre-LN block on a dense (B, T, W) batch, attention through SDPA."""
    b, tokens, width = h.shape
    heads = block.attn.heads
    qkv = block.attn.qkv(block.ln1(h)).reshape(b, tokens, 3, heads, width // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, hd)
    attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, tokens, width)
    h = h + block.attn.proj(attn)
    return h + block.mlp(block.ln2(h))


def run_block(block: Block, h: torch.Tensor, recompute: bool) -> torch.Tensor:
    """`dense_block`, or with `recompute` its activation checkpoint (rerun in the backward pass)."""
    if recompute:
        return torch.utils.checkpoint.checkpoint(dense_block, block, h, use_reentrant=False)
    return dense_block(block, h)


def dense_loss(model: MaeReference, x: torch.Tensor, visible_idx: torch.Tensor, masked: torch.Tensor, recompute: bool = False) -> torch.Tensor:
    """Norm-pix MAE loss for x (B, 12, S) with every lead present. visible_idx (B, L, K) holds the
    visible patch indices in increasing order, masked (B, L, N) is 1.0 where a patch is masked.
    `recompute`: each block's activations are recomputed in the backward pass."""
    cfg = model.cfg
    b, L = x.shape[:2]
    n, p, k = cfg.num_patches, cfg.patch_len, cfg.num_keep
    d, dd = cfg.embed_dim, cfg.dec_dim
    patches = x.reshape(b, L, n, p)
    visible = torch.gather(patches, 2, visible_idx.unsqueeze(-1).expand(b, L, k, p))
    h = model.patch_embed(visible) + model.lead_embed[None, :, None, :] + model.pos_enc[visible_idx]
    h = h.reshape(b, L * k, d)
    for block in model.enc:
        h = run_block(block, h, recompute)
    z = model.dec_embed(model.enc_norm(h)).reshape(b, L, k, dd)
    # Under bf16 autocast z is bfloat16; scatter needs one dtype (a no-op in float32).
    mask_token = model.mask_token.to(z.dtype)
    g = torch.scatter(mask_token.expand(b, L, n, dd), 2, visible_idx.unsqueeze(-1).expand(b, L, k, dd), z)
    g = (g + model.dec_lead_embed[None, :, None, :] + model.pos_dec[None, None]).reshape(b, L * n, dd)
    for block in model.dec:
        g = run_block(block, g, recompute)
    pred = model.dec_pred(model.dec_norm(g)).reshape(b, L, n, p)
    err = ((pred - model.targets(patches)) ** 2).mean(dim=-1)
    return (err * masked).sum() / masked.sum()


def make_batch(cfg: ModelConfig, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """(B, 12, S) float32: sums of sinusoids plus noise, amplitude ~1."""
    t = np.arange(cfg.seq_len, dtype=np.float32) / 250.0
    shape = (batch, cfg.n_leads, 3, 1)
    freqs, amps, phases = rng.uniform(0.8, 25.0, shape), rng.uniform(0.2, 0.6, shape), rng.uniform(0, 6.3, shape)
    wave = (amps * np.sin(2 * np.pi * freqs * t + phases)).sum(axis=2)
    return torch.from_numpy((wave + rng.normal(0.0, 0.05, wave.shape)).astype(np.float32))


def make_mask(cfg: ModelConfig, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """patch_mask (B, L, N) u8, visible_idx (B, L, K) int64 and masked (B, L, N) float32."""
    patch_mask = torch.from_numpy(sample_patch_mask(np.ones((batch, cfg.n_leads), dtype=np.uint8), cfg, rng))
    visible_idx = torch.argsort(patch_mask, dim=-1, stable=True)[..., : cfg.num_keep].contiguous()
    return patch_mask, visible_idx, patch_mask.float()


def check_dense_matches_reference(model: MaeReference, rng: np.random.Generator) -> float:
    """Relative loss difference between the dense path and the per-sample reference on 2 samples;
    raises if the loss or the gradients disagree beyond float32 rounding."""
    cfg = model.cfg
    x = make_batch(cfg, 2, rng)
    patch_mask, visible_idx, masked = make_mask(cfg, 2, rng)
    model.zero_grad()
    ref_loss, _ = model(x, torch.ones(2, cfg.n_leads, dtype=torch.uint8), patch_mask)
    ref_loss.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss = dense_loss(model, x, visible_idx, masked)
    loss.backward()
    rel = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    grad_norm = torch.sqrt(sum((g**2).sum() for g in ref_grads)).item()
    grad_err = max((p.grad - g).abs().max().item() for p, g in zip(model.parameters(), ref_grads))
    model.zero_grad(set_to_none=True)
    if rel > 1e-4 or grad_err > 1e-3 * grad_norm:
        raise RuntimeError(f"dense path disagrees with the reference: loss rel {rel:.1e}, grad {grad_err / grad_norm:.1e}")
    return rel


def main() -> None:
    parser = argparse.ArgumentParser(description="Time a PyTorch training step of the ecgfm model.")
    parser.add_argument("--model", default="nano", choices=sorted(PRESETS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--seq-len", type=int, default=2250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the loss function")
    parser.add_argument("--recompute", action="store_true", help="activation checkpointing: each block rerun in the backward pass")
    parser.add_argument("--skip-check", action="store_true", help="skip the dense-vs-reference check")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.threads < 1:
        parser.error("--steps, --batch-size and --threads must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if not on_gpu and (args.precision != "fp32" or args.compile):
        parser.error("--precision bf16/tf32 and --compile are for --device cuda")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = ModelConfig.preset(args.model, seq_len=args.seq_len)
    model = MaeReference(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    where = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.precision}{' + compile' if args.compile else ''}, {where}")
    print(f"model {cfg.name}: D={cfg.embed_dim} depth={cfg.depth} H={cfg.num_heads} Dd={cfg.dec_dim} depth_d={cfg.dec_depth} Hd={cfg.dec_heads}, {n_params} parameters")
    print(f"input: B={args.batch_size} L={cfg.n_leads} S={cfg.seq_len} P={cfg.patch_len} N={cfg.num_patches} K={cfg.num_keep}")
    if not args.skip_check:
        rel = check_dense_matches_reference(model, rng)
        print(f"dense path matches the per-sample reference (loss relative difference {rel:.1e})")

    model.to(device)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    fused = {"fused": True} if on_gpu else {}  # the fused CUDA AdamW
    opt = torch.optim.AdamW(adamw_param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, **fused)
    inputs = [make_batch(cfg, args.batch_size, rng).to(device) for _ in range(INPUT_POOL)]
    masks = [tuple(t.to(device) for t in make_mask(cfg, args.batch_size, rng)[1:]) for _ in range(args.warmup + args.steps)]
    loss_fn = torch.compile(dense_loss) if args.compile else dense_loss
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    times_ms, losses = [], []
    for step in range(args.warmup + args.steps):
        if on_gpu and step == args.warmup:
            torch.cuda.reset_peak_memory_stats(device)
        x = inputs[step % INPUT_POOL]
        visible_idx, masked = masks[step]
        sync()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model, x, visible_idx, masked, args.recompute)
        loss.backward()
        opt.step()
        sync()
        elapsed_ms = (time.perf_counter() - start) * 1e3
        losses.append(loss.item())
        if step >= args.warmup:
            times_ms.append(elapsed_ms)

    median = statistics.median(times_ms)
    samples_per_s = args.batch_size / (median / 1e3)
    peak_mem = torch.cuda.max_memory_allocated(device) if on_gpu else None
    peak_reserved = torch.cuda.max_memory_reserved(device) if on_gpu else None
    print(f"steps: {args.warmup} warmup + {args.steps} timed; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"step time ms: median {median:.2f}, min {min(times_ms):.2f}, max {max(times_ms):.2f}")
    print(f"throughput: {samples_per_s:.1f} samples/s")
    if peak_mem is not None:
        print(f"peak GPU memory allocated: {peak_mem / 2**30:.2f} GiB, reserved "
              f"{peak_reserved / 2**30:.2f} GiB")
    result = {
        "impl": "pytorch",
        "model": cfg.name,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "device": args.device,
        "precision": args.precision,
        "compile": args.compile,
        "recompute": args.recompute,
        "step_ms_median": round(median, 3),
        "samples_per_s": round(samples_per_s, 3),
        "peak_mem_bytes": peak_mem,
        "peak_reserved_bytes": peak_reserved,
        "gpu_name": where if on_gpu else None,
        "torch_version": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
