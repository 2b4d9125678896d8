"""ecgfm_encoder: load an ecgfm package (model.safetensors + config.json, written by
`ecgfm export`) in PyTorch and compute ECG embeddings, without ecgfm. Needs only torch.

    import ecgfm_encoder
    model = ecgfm_encoder.load("path/to/package")   # an nn.Module in eval mode
    embedding = model(x, lead_mask)                 # x (B, 12, S), lead_mask (B, 12) -> (B, D)
    per_lead = model(x, lead_mask, pool="leads")    # (B, 12 D): each lead's mean token
    tokens = model.tokens(x, lead_mask)             # (B, 12, N, D); zeros for absent leads

The model is the encoder of ecgfm's docs/model.md with every patch visible (no masking):
- each patch of P samples of each present lead becomes one token:
  patch_embed(patch) + lead_embed[lead] + pos(patch index), pos the fixed 1-D sin-cos table;
- pre-LN transformer blocks (multi-head attention, exact-erf GELU MLP, LayerNorm eps 1e-6)
  attend over all tokens of one ECG; absent leads take no part;
- a final LayerNorm (enc_norm); the embedding is the mean of the ECG's tokens (every patch of
  every present lead), which is what `ecgfm embed` writes.
Inputs must be prepared like the training data: config.json gives the sampling rate, the
length S, the units and the dataset's preprocessing, which `ecgfm_preprocess.py` (beside this
file; numpy and scipy) applies to a raw record. A stored window of n valid samples longer
than S is cropped at its centre, x[..., (n - S) // 2 : (n - S) // 2 + S], as `ecgfm embed`
does; a shorter one is taken from its start and zero-padded to S. Another crop (the first S
samples, say) gives other embeddings.
"""

from __future__ import annotations

import json
import math
import os
import struct

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6
MODEL_TYPE = "ecgfm-mae"


DTYPES = {"F32": torch.float32, "F64": torch.float64, "U8": torch.uint8}


def read_safetensors(path: str) -> dict:
    """Every tensor of a safetensors file (F32 only, as ecgfm writes them) by name."""
    return read_safetensors_file(path, ("F32",))[1]


def read_safetensors_file(path: str, dtypes: tuple = ("F32",)) -> tuple[dict, dict]:
    """The metadata (a dict of strings) and every tensor by name of a safetensors file whose
    tensors are all of `dtypes` (names of DTYPES)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header length {header_len} runs past the end of the file")
    header = json.loads(data[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in dtypes:
            wanted = " or ".join(dtypes)
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}, expected {wanted}")
        dtype = DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        shape = info["shape"]
        size = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
        if end - start != size or base + end > len(data):
            raise ValueError(f"{path}: tensor {name} has a bad extent for shape {shape}")
        raw = bytearray(data[base + start : base + end])
        flat = torch.frombuffer(raw, dtype=dtype) if size else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    return metadata, tensors


def sincos_pos(num_positions: int, width: int) -> torch.Tensor:
    """pos(n, W): [sin(n w_i) for i < W/2] + [cos(n w_i) for i < W/2], w_i = 1 / 10000^(i / (W/2)),
    computed in float64 and rounded to float32. Shape (num_positions, W)."""
    half = width // 2
    omega = 1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float64) / half)
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).to(torch.float32)


class Attention(nn.Module):
    """Multi-head self-attention; qkv output columns are [q | k | v], head j owns columns
    j*hd .. (j+1)*hd of each."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # h (B, T, W); keep (B, T) bool: tokens other tokens may attend to.
        b, t, w = h.shape
        hd = w // self.heads
        q, k, v = self.qkv(h).split(w, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)  # (B, H, T, T)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # (B, H, T, hd)
        return self.proj(out.transpose(1, 2).reshape(b, t, w))


class Mlp(nn.Module):
    """fc1 -> exact-erf GELU -> fc2."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(h)))


class Block(nn.Module):
    """Pre-LN block: h + attn(ln1(h)), then h + mlp(ln2(h))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=LN_EPS)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = Mlp(width, mlp_ratio * width)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), keep)
        return h + self.mlp(self.ln2(h))


class EcgfmEncoder(nn.Module):
    """The encoder of an ecgfm package; parameter names are those of model.safetensors."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        if config.get("model_type") != MODEL_TYPE:
            raise ValueError(f"config.json model_type is {config.get('model_type')!r}, expected {MODEL_TYPE!r}")
        self.config = config
        d, leads, patch = config["dim"], config["leads"], config["patch"]
        if config["samples"] % patch != 0:
            raise ValueError(f"config.json: samples {config['samples']} is not a multiple of patch {patch}")
        self.patch_embed = nn.Linear(patch, d)
        self.lead_embed = nn.Parameter(torch.zeros(leads, d))
        self.enc = nn.ModuleList(Block(d, config["heads"], config["mlp_ratio"]) for _ in range(config["depth"]))
        self.enc_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.register_buffer("pos", sincos_pos(config["samples"] // patch, d), persistent=False)

    def tokens(self, x: torch.Tensor, lead_mask: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, L, N, D) for x (B, L, S) and lead_mask (B, L) (true where the lead
        is present); rows of absent leads are zero. Every ECG needs at least one present lead."""
        c = self.config
        leads, samples, patch = c["leads"], c["samples"], c["patch"]
        if x.dim() != 3 or x.shape[1:] != (leads, samples):
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, {leads}, {samples})")
        present = lead_mask.to(torch.bool)
        if present.shape != (x.shape[0], leads):
            raise ValueError(f"lead_mask has shape {tuple(lead_mask.shape)}, expected ({x.shape[0]}, {leads})")
        if not bool(present.any(dim=1).all()):
            raise ValueError("every ECG needs at least one present lead")
        b, n = x.shape[0], samples // patch
        dtype = self.patch_embed.weight.dtype
        # Absent leads may hold anything (even NaN): zero them before they meet a weight.
        x = torch.where(present[:, :, None], x.to(dtype), torch.zeros((), dtype=dtype))
        h = self.patch_embed(x.reshape(b, leads, n, patch))  # (B, L, N, D)
        h = h + self.lead_embed[None, :, None, :] + self.pos[None, None, :, :].to(dtype)
        keep = present[:, :, None].expand(b, leads, n).reshape(b, leads * n)  # (B, L*N)
        h = h.reshape(b, leads * n, -1)
        for block in self.enc:
            h = block(h, keep)
        h = self.enc_norm(h).reshape(b, leads, n, -1)
        return h * present[:, :, None, None].to(dtype)

    def forward(self, x: torch.Tensor, lead_mask: torch.Tensor, pool: str = "mean") -> torch.Tensor:
        """Embeddings, as `ecgfm embed --pool POOL` writes them: with pool="mean", (B, D), the
        mean of each ECG's tokens over its present leads' patches; with pool="leads", (B, L*D),
        the mean of each lead's tokens, the leads concatenated in standard order (zeros for
        absent leads)."""
        tokens = self.tokens(x, lead_mask)
        if pool == "leads":
            return tokens.to(torch.float64).mean(dim=2).flatten(1).to(tokens.dtype)
        if pool != "mean":
            raise ValueError(f"pool is {pool!r}: 'mean' or 'leads'")
        count = lead_mask.to(torch.bool).sum(dim=1).to(torch.float64) * tokens.shape[2]  # (B)
        sums = tokens.to(torch.float64).sum(dim=(1, 2))  # (B, D)
        return (sums / count[:, None]).to(tokens.dtype)


def load(package: str, dtype: torch.dtype = torch.float32) -> EcgfmEncoder:
    """The encoder of the package folder `package`, in eval mode, in `dtype`."""
    with open(os.path.join(package, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    model = EcgfmEncoder(config)
    weights = read_safetensors(os.path.join(package, "model.safetensors"))
    expected = model.state_dict()
    missing = [name for name in expected if name not in weights]
    if missing:
        raise ValueError(f"{package}/model.safetensors lacks {len(missing)} encoder tensors, e.g. {missing[0]}")
    for name, value in expected.items():
        if weights[name].shape != value.shape:
            raise ValueError(f"{package}/model.safetensors: {name} is {tuple(weights[name].shape)}, config.json implies {tuple(value.shape)}")
    model.load_state_dict({name: weights[name] for name in expected})
    return model.to(dtype).eval()
