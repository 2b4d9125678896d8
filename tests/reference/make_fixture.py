"""Builds tests/reference/fixture_nano.safetensors, the parity fixture of docs/model.md.

Regenerate (from the repository root):
    pip install torch safetensors numpy
    python3 tests/reference/make_fixture.py

What it does: nano preset with S = 750 (N = 10, K = 2), B = 3 (sample 0: all 12 leads; sample 1:
I, II, V1..V6; sample 2: II only). Inputs, patch mask and weights are drawn from a seeded numpy
generator as float32 values; every parameter is perturbed away from its usual initialisation so
every gradient path is exercised. The math then runs in float64 (on those float32-representable
values) with the reference model of mae_reference.py: the loss, the gradient of every parameter and
the losses of 10 AdamW steps and the weights they end at. Output is deterministic (single-threaded, fixed seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mae_reference import (  # noqa: E402
    LN_EPS,
    NORM_PIX_EPS,
    LEAD_NAMES,
    MaeReference,
    ModelConfig,
    adamw_param_groups,
    documented_param_names,
    sample_patch_mask,
)

SEED = 20240601
SAMPLE_RATE_HZ = 250.0
LEAD_SETS = (
    list(range(12)),
    [LEAD_NAMES.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")],
    [LEAD_NAMES.index("II")],
)
OPTIM = {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.05, "steps": 10}
DEFAULT_OUT = Path(__file__).resolve().parent / "fixture_nano.safetensors"


def fixture_config() -> ModelConfig:
    return ModelConfig.preset("nano", seq_len=750)


def make_signals(cfg: ModelConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (B, L, S) float32, lead_mask (B, L) uint8: sums of three sinusoids plus noise, amplitude ~1,
    zeros on absent leads."""
    b = len(LEAD_SETS)
    t = np.arange(cfg.seq_len) / SAMPLE_RATE_HZ
    x = np.zeros((b, cfg.n_leads, cfg.seq_len), dtype=np.float32)
    lead_mask = np.zeros((b, cfg.n_leads), dtype=np.uint8)
    for i, leads in enumerate(LEAD_SETS):
        for l in leads:
            lead_mask[i, l] = 1
            freqs = rng.uniform(0.8, 25.0, size=3)
            amps = rng.uniform(0.2, 0.6, size=3)
            phases = rng.uniform(0.0, 2 * np.pi, size=3)
            wave = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(0)
            x[i, l] = (wave + rng.normal(0.0, 0.05, size=cfg.seq_len) + rng.normal(0.0, 0.2)).astype(np.float32)
    return x, lead_mask


def perturbed_params(model: MaeReference, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """float32 values for every parameter: random weights, non-zero biases, LayerNorm weights around
    1 and biases around 0, embeddings and mask token of std 0.1."""
    params = {}
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.endswith(".weight") and len(shape) == 2:
            bound = np.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-bound, bound, size=shape)
        elif name.endswith(".weight"):  # LayerNorm weight
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            value = 0.05 * rng.standard_normal(shape)
        else:  # lead_embed, dec_lead_embed, mask_token
            value = 0.1 * rng.standard_normal(shape)
        params[name] = torch.from_numpy(value.astype(np.float32))
    return params


def adamw_losses(model: MaeReference, inputs: tuple[torch.Tensor, ...]) -> list[float]:
    """The loss before the first step and after each AdamW step (same input and mask each step);
    `model` is left holding the weights after the last step."""
    opt = torch.optim.AdamW(
        adamw_param_groups(model, OPTIM["weight_decay"]),
        lr=OPTIM["lr"],
        betas=tuple(OPTIM["betas"]),
        eps=OPTIM["eps"],
        foreach=False,
    )
    losses = []
    for step in range(OPTIM["steps"] + 1):
        opt.zero_grad()
        loss, _ = model(*inputs)
        losses.append(loss.item())
        if step < OPTIM["steps"]:
            loss.backward()
            opt.step()
    return losses


def build(out: Path) -> None:
    torch.set_num_threads(1)
    cfg = fixture_config()
    rng = np.random.default_rng(SEED)
    x, lead_mask = make_signals(cfg, rng)
    patch_mask = sample_patch_mask(lead_mask, cfg, rng)
    model = MaeReference(cfg)
    params32 = perturbed_params(model, rng)

    model64 = MaeReference(cfg).double()
    model64.load_state_dict({k: v.double() for k, v in params32.items()})
    inputs64 = (torch.from_numpy(x).double(), torch.from_numpy(lead_mask), torch.from_numpy(patch_mask))
    loss64, pred64 = model64(*inputs64)
    loss64.backward()
    grads = {name: p.grad.detach().clone() for name, p in model64.named_parameters()}

    model.load_state_dict(params32)
    with torch.no_grad():
        loss32, _ = model(torch.from_numpy(x), inputs64[1], inputs64[2])
    rel32 = abs(loss32.item() - loss64.item()) / abs(loss64.item())

    model64.zero_grad()
    losses = adamw_losses(model64, inputs64)
    if losses[0] != loss64.item():
        raise RuntimeError(f"AdamW run's first loss {losses[0]} differs from the fixture loss {loss64.item()}")

    tensors = {
        "input.x": torch.from_numpy(x),
        "input.lead_mask": torch.from_numpy(lead_mask),
        "input.patch_mask": torch.from_numpy(patch_mask),
        "loss": loss64.detach().reshape(1),
        "adamw.losses": torch.tensor(losses, dtype=torch.float64),
    }
    names = documented_param_names(cfg)
    stepped = dict(model64.named_parameters())
    for name in names:
        tensors[f"param.{name}"] = params32[name].contiguous()
        tensors[f"grad.{name}"] = grads[name].contiguous()
        tensors[f"adamw.param.{name}"] = stepped[name].detach().contiguous()
    config = cfg.to_dict() | OPTIM | {
        "batch_size": len(LEAD_SETS),
        "ln_eps": LN_EPS,
        "norm_pix_eps": NORM_PIX_EPS,
        "seed": SEED,
        "param_order": names,
    }
    from safetensors.torch import save_file  # here: the self-check imports this file without it

    save_file(tensors, str(out), metadata={"config": json.dumps(config)})

    n_params = sum(p.numel() for p in params32.values())
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    print(f"config: {json.dumps({k: v for k, v in config.items() if k != 'param_order'})}")
    print(f"present leads per sample: {[len(s) for s in LEAD_SETS]}, masked patches: {int(patch_mask.sum())}")
    print(f"parameters: {len(names)} tensors, {n_params} values; T_dec = {pred64.shape[0]}")
    print(f"loss (f64): {loss64.item():.17g}")
    print(f"loss (f32 run): {loss32.item():.9g}  relative difference {rel32:.2e}")
    print(f"grad global L2 norm: {torch.sqrt(sum((g**2).sum() for g in grads.values())).item():.6g}")
    print("adamw.losses: " + ", ".join(f"{v:.8f}" for v in losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output safetensors path")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
