"""Self-checks of the PyTorch reference and of the committed parity fixture.

Run from the repository root (exit status 0 when every check passes):
    python3 tests/reference/self_check.py

Checks:
1. state_dict() names are exactly the documented parameter names (docs/model.md).
2. The fixture file recomputes: its stored loss and gradients, and the losses and final weights
   of its 10 AdamW steps, equal a fresh float64 run on its stored weights and inputs, and its
   config matches the nano preset at S = 750.
3. A float32 run reproduces the float64 loss within 1e-5 relative (gradients within 1e-3 of the
   global gradient norm).
4. torch.autograd.gradcheck (float64) of the full loss w.r.t. every parameter and the input signal,
   on a tiny configuration with samples that have different present leads.
5. torch.optim.AdamW with the two parameter groups equals the update formula written in the
   contract (decoupled decay on Linear weights only).
6. The fixed sin-cos embedding and the mask validation behave as documented.

Needs torch (1.13 or later) and numpy only: the fixture is read by the exported loader's reader
(python/ecgfm_encoder.py), not by the safetensors package, so Debian's python3-torch, which
`scripts/test.sh` installs, runs it (`tests/tests/reference_self_check.rs`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "python"))
from ecgfm_encoder import read_safetensors_file  # noqa: E402  (the exported loader's reader)
from mae_reference import (  # noqa: E402
    MaeReference,
    ModelConfig,
    adamw_param_groups,
    documented_param_names,
    is_decayed,
    sample_patch_mask,
    sincos_pos,
)
from make_fixture import DEFAULT_OUT, OPTIM, adamw_losses, fixture_config  # noqa: E402


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
    print(f"ok: {message}")


def load_fixture(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    metadata, tensors = read_safetensors_file(str(path), ("F32", "F64", "U8"))
    return json.loads(metadata["config"]), tensors


def check_names() -> None:
    for preset in ("nano", "tiny"):
        cfg = ModelConfig.preset(preset)
        model = MaeReference(cfg)
        names = documented_param_names(cfg)
        check(list(model.state_dict().keys()) == [n for n, _ in model.named_parameters()], f"{preset}: state_dict holds parameters only")
        check(sorted(model.state_dict().keys()) == sorted(names), f"{preset}: state_dict names are the documented names")


def check_fixture(path: Path) -> None:
    torch.set_num_threads(1)
    config, t = load_fixture(path)
    cfg = fixture_config()
    names = documented_param_names(cfg)
    mismatched = {k: config.get(k) for k, v in cfg.to_dict().items() if config.get(k) != v}
    check(not mismatched, f"fixture config is nano at S = 750, N = 10, K = 2 (mismatched: {mismatched})")
    check(config["param_order"] == names, "fixture param_order is the documented order")
    expected = {"input.x", "input.lead_mask", "input.patch_mask", "loss", "adamw.losses"}
    expected |= {f"{kind}.{n}" for kind in ("param", "grad", "adamw.param") for n in names}
    check(set(t) == expected, "fixture holds exactly the documented tensors")
    check(t["input.lead_mask"].dtype == torch.uint8 and t["input.patch_mask"].dtype == torch.uint8, "masks are U8")
    f64 = [f"grad.{n}" for n in names] + [f"adamw.param.{n}" for n in names] + ["loss", "adamw.losses"]
    check(all(t[k].dtype == torch.float64 for k in f64), "grads, AdamW weights and losses are F64")
    check(tuple(t["adamw.losses"].shape) == (OPTIM["steps"] + 1,), "adamw.losses has steps + 1 entries")

    model64 = MaeReference(cfg).double()
    model64.load_state_dict({n: t[f"param.{n}"].double() for n in names})
    inputs = (t["input.x"].double(), t["input.lead_mask"], t["input.patch_mask"])
    loss64, _ = model64(*inputs)
    loss64.backward()
    # float64 sums in an order of torch's choosing, which moved the last bit between 1.13 and 2.x.
    rel = abs(loss64.item() - t["loss"].item()) / t["loss"].item()
    check(rel < 1e-14, f"stored loss recomputes ({loss64.item():.17g}, relative difference {rel:.1e})")
    worst = max((model64.get_parameter(n).grad - t[f"grad.{n}"]).abs().max().item() for n in names)
    check(worst < 1e-13, f"stored gradients recompute (max abs difference {worst:.1e})")
    zero_grads = [n for n in names if t[f"grad.{n}"].abs().max().item() == 0.0]
    check(not zero_grads, f"every parameter gets a non-zero gradient (zero: {zero_grads})")

    stepped = MaeReference(cfg).double()
    stepped.load_state_dict({n: t[f"param.{n}"].double() for n in names})
    losses = adamw_losses(stepped, inputs)
    rel = max(abs(a - b) / b for a, b in zip(losses, t["adamw.losses"].tolist()))
    check(rel < 1e-12, f"stored AdamW losses recompute (relative difference {rel:.1e})")
    worst = max((stepped.get_parameter(n).detach() - t[f"adamw.param.{n}"]).abs().max().item() for n in names)
    check(worst < 1e-10, f"stored AdamW final weights recompute (max abs difference {worst:.1e})")

    model32 = MaeReference(cfg)
    model32.load_state_dict({n: t[f"param.{n}"] for n in names})
    loss32, _ = model32(t["input.x"], inputs[1], inputs[2])
    loss32.backward()
    rel = abs(loss32.item() - loss64.item()) / abs(loss64.item())
    check(rel < 1e-5, f"float32 loss within 1e-5 relative of float64 ({rel:.1e})")
    grad_norm = math.sqrt(sum((t[f"grad.{n}"] ** 2).sum().item() for n in names))
    grad_err = max((model32.get_parameter(n).grad.double() - t[f"grad.{n}"]).abs().max().item() for n in names)
    check(grad_err < 1e-3 * grad_norm, f"float32 gradients within 1e-3 of the gradient norm ({grad_err / grad_norm:.1e})")


try:
    from torch.func import functional_call
except ImportError:  # torch 1.13 (Debian's python3-torch)
    from torch.nn.utils.stateless import functional_call


def tiny_config() -> ModelConfig:
    return ModelConfig("gradcheck", embed_dim=8, depth=1, num_heads=2, dec_dim=6, dec_depth=1, dec_heads=2, seq_len=16, patch_len=4, mask_ratio=0.5)


def check_gradcheck() -> None:
    cfg = tiny_config()
    rng = np.random.default_rng(7)
    model = MaeReference(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.from_numpy(rng.standard_normal(tuple(p.shape))))
    lead_mask = np.zeros((3, cfg.n_leads), dtype=np.uint8)
    lead_mask[0, :] = 1
    lead_mask[1, [0, 1, 7]] = 1
    lead_mask[2, 5] = 1
    patch_mask = torch.from_numpy(sample_patch_mask(lead_mask, cfg, rng))
    lead_mask_t = torch.from_numpy(lead_mask)
    x = torch.from_numpy(rng.standard_normal((3, cfg.n_leads, cfg.seq_len))).requires_grad_(True)
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def loss_fn(x_in: torch.Tensor, *param_values: torch.Tensor) -> torch.Tensor:
        state = dict(zip(names, param_values))
        loss, _ = functional_call(model, state, (x_in, lead_mask_t, patch_mask))
        return loss

    passed = torch.autograd.gradcheck(loss_fn, (x, *params), eps=1e-6, atol=1e-7, rtol=1e-5)
    check(passed, f"gradcheck of the full loss w.r.t. x and all {len(names)} parameters (float64, tiny config, 3 lead sets)")


def check_adamw_formula() -> None:
    cfg = tiny_config()
    torch.manual_seed(3)
    model = MaeReference(cfg).double()
    lead_mask = np.ones((2, cfg.n_leads), dtype=np.uint8)
    lead_mask[1, 3:] = 0
    patch_mask = torch.from_numpy(sample_patch_mask(lead_mask, cfg, np.random.default_rng(1)))
    inputs = (torch.randn(2, cfg.n_leads, cfg.seq_len, dtype=torch.float64), torch.from_numpy(lead_mask), patch_mask)
    lr, (b1, b2), eps, wd = 3e-3, (0.9, 0.95), 1e-8, 0.05
    opt = torch.optim.AdamW(adamw_param_groups(model, wd), lr=lr, betas=(b1, b2), eps=eps, foreach=False)
    manual = {n: p.detach().clone() for n, p in model.named_parameters()}
    m = {n: torch.zeros_like(p) for n, p in manual.items()}
    v = {n: torch.zeros_like(p) for n, p in manual.items()}
    for step in range(1, 4):
        opt.zero_grad()
        model(*inputs)[0].backward()
        for n, p in model.named_parameters():
            g = p.grad
            if is_decayed(n):
                manual[n] = manual[n] - lr * wd * manual[n]
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            manual[n] = manual[n] - lr * (m[n] / (1 - b1**step)) / (torch.sqrt(v[n] / (1 - b2**step)) + eps)
        opt.step()
        worst = max((p.detach() - manual[n]).abs().max().item() for n, p in model.named_parameters())
        check(worst < 1e-12, f"AdamW step {step} equals the contract's formula (max difference {worst:.1e})")
    decayed = {n for n, _ in model.named_parameters() if is_decayed(n)}
    check(all(n.endswith("weight") and model.get_parameter(n).dim() == 2 for n in decayed), "only 2-D Linear weights are decayed")
    check(len(decayed) == 2 + 4 * (cfg.depth + cfg.dec_depth) + 1, "every Linear weight is decayed")


def check_sincos_and_masks() -> None:
    pos = sincos_pos(5, 8)
    check(torch.equal(pos[0], torch.tensor([0.0] * 4 + [1.0] * 4)), "pos(0) is [0..0, 1..1]")
    expected = np.float32(np.sin(3 * 1.0 / 10000.0 ** (1 / 4)))
    check(pos[3, 1].item() == expected, "pos(3, 8)[1] = sin(3 / 10000^(1/4)) rounded to f32")
    cfg = fixture_config()
    model = MaeReference(cfg)
    lead_mask = torch.ones(1, 12, dtype=torch.uint8)
    bad = torch.zeros(1, 12, cfg.num_patches, dtype=torch.uint8)
    try:
        model(torch.zeros(1, 12, cfg.seq_len), lead_mask, bad)
    except ValueError as err:
        check("exactly" in str(err), "a patch mask with the wrong masked count is rejected")
    else:
        raise AssertionError("a patch mask with no masked patches was accepted")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    check_names()
    check_fixture(path)
    check_gradcheck()
    check_adamw_formula()
    check_sincos_and_masks()
    print("all reference self-checks passed")


if __name__ == "__main__":
    main()
