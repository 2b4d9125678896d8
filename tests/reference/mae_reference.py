"""The PyTorch reference of the ecgfm model: a plain, readable implementation of docs/model.md.

It is the oracle the Rust model (trainer/ over kernels/) is checked against, through the fixture
that make_fixture.py writes. Clarity wins over speed here: samples are processed one at a time
(each sample's tokens form one attention group, exactly the "packed, no padding" semantics of the
contract), attention is written out by hand, and the module works in float32 or float64.

Contents:
- ModelConfig and PRESETS: the dimensions of docs/model.md ("Presets" table).
- sincos_pos: the fixed 1-D sin-cos position embedding (computed in f64, rounded to f32).
- Block / Attention / Mlp: one pre-LN transformer block.
- MaeReference: the masked autoencoder; forward(x, lead_mask, patch_mask) -> (loss, pred).
- documented_param_names, is_decayed, adamw_param_groups: the parameter layout and the optimiser
  groups of docs/model.md.
- sample_patch_mask: a seeded patch-mask sampler (lives apart from the model, as in the contract).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6
NORM_PIX_EPS = 1e-6
N_LEADS = 12
LEAD_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class ModelConfig:
    """Every dimension of docs/model.md. Derived sizes are properties."""

    name: str
    embed_dim: int  # D
    depth: int
    num_heads: int  # H
    dec_dim: int = 256  # Dd
    dec_depth: int = 4  # depth_d
    dec_heads: int = 4  # Hd
    seq_len: int = 2250  # S
    patch_len: int = 75  # P
    n_leads: int = N_LEADS  # L
    mask_ratio: float = 0.75  # r
    norm_pix: bool = True
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        if self.seq_len % self.patch_len != 0:
            raise ValueError(f"seq_len {self.seq_len} is not a multiple of patch_len {self.patch_len}")
        for width, heads, what in ((self.embed_dim, self.num_heads, "encoder"), (self.dec_dim, self.dec_heads, "decoder")):
            if width % heads != 0:
                raise ValueError(f"{what} width {width} is not divisible by its {heads} heads")
            if width % 2 != 0:
                raise ValueError(f"{what} width {width} must be even for the sin-cos embedding")

    @property
    def num_patches(self) -> int:
        """N = S / P."""
        return self.seq_len // self.patch_len

    @property
    def num_keep(self) -> int:
        """K = max(1, floor(N * (1 - r))): visible patches per present lead."""
        return max(1, math.floor(self.num_patches * (1.0 - self.mask_ratio)))

    @property
    def num_masked(self) -> int:
        return self.num_patches - self.num_keep

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(num_patches=self.num_patches, num_keep=self.num_keep)
        return d

    @staticmethod
    def preset(name: str, **overrides) -> "ModelConfig":
        """A preset of the table in docs/model.md, with optional field overrides (e.g. seq_len)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS = {
    "nano": ModelConfig("nano", 64, 2, 2, 32, 1, 2),
    "tiny": ModelConfig("tiny", 192, 12, 3),
    "small": ModelConfig("small", 384, 12, 6),
    "base": ModelConfig("base", 768, 12, 12),
    "large": ModelConfig("large", 1024, 24, 16),
    "huge": ModelConfig("huge", 1280, 32, 16),
}


def sincos_pos(num_positions: int, width: int) -> torch.Tensor:
    """pos(n, W) for n in 0..num_positions as a float32 (num_positions, W) tensor.

    omega_i = 1 / 10000^(i / (W/2)); first half sin(n omega_i), second half cos(n omega_i).
    Computed in float64 and rounded to float32, as the contract says.
    """
    half = width // 2
    omega = 1.0 / 10000.0 ** (np.arange(half, dtype=np.float64) / half)
    angles = np.arange(num_positions, dtype=np.float64)[:, None] * omega[None, :]
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return torch.from_numpy(table.astype(np.float32))


class Attention(nn.Module):
    """Multi-head self-attention over one sample's tokens (T, W): qkv columns are [q | k | v]."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        tokens, width = h.shape
        head_dim = width // self.heads
        q, k, v = self.qkv(h).split(width, dim=-1)
        # (T, W) -> (H, T, hd): head j owns columns j*hd .. (j+1)*hd.
        q, k, v = (t.reshape(tokens, self.heads, head_dim).transpose(0, 1) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(0, 1).reshape(tokens, width))


class Mlp(nn.Module):
    """fc1 -> exact-erf GELU -> fc2."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(h), approximate="none"))


class Block(nn.Module):
    """Pre-LN transformer block: h + attn(ln1(h)), then h + mlp(ln2(h))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=LN_EPS)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = Mlp(width, mlp_ratio * width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class MaeReference(nn.Module):
    """The ST-MEM-style masked autoencoder of docs/model.md; state_dict() names are the documented
    parameter names (use documented_param_names for the documented buffer order)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, dd, L = cfg.embed_dim, cfg.dec_dim, cfg.n_leads
        self.patch_embed = nn.Linear(cfg.patch_len, d)
        self.lead_embed = nn.Parameter(torch.zeros(L, d))
        self.enc = nn.ModuleList(Block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.enc_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.dec_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(dd))
        self.dec_lead_embed = nn.Parameter(torch.zeros(L, dd))
        self.dec = nn.ModuleList(Block(dd, cfg.dec_heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth))
        self.dec_norm = nn.LayerNorm(dd, eps=LN_EPS)
        self.dec_pred = nn.Linear(dd, cfg.patch_len)
        # Fixed embeddings: not parameters, not in the state_dict.
        self.register_buffer("pos_enc", sincos_pos(cfg.num_patches, d), persistent=False)
        self.register_buffer("pos_dec", sincos_pos(cfg.num_patches, dd), persistent=False)
        self.init_weights()

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """ecgfm's initialisation: Xavier-uniform Linear weights, zero biases, unit/zero LayerNorms,
        normal(0, 0.02) lead embeddings and mask token."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                fan_out, fan_in = module.weight.shape
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                with torch.no_grad():
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            for p in (self.lead_embed, self.dec_lead_embed, self.mask_token):
                p.normal_(0.0, 0.02, generator=generator)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, S) -> (B, L, N, P)."""
        b, L, _ = x.shape
        return x.reshape(b, L, self.cfg.num_patches, self.cfg.patch_len)

    def targets(self, patches: torch.Tensor) -> torch.Tensor:
        """Loss targets of patches (..., P): raw, or normalised with the unbiased variance."""
        if not self.cfg.norm_pix:
            return patches
        mean = patches.mean(dim=-1, keepdim=True)
        var = patches.var(dim=-1, keepdim=True, unbiased=True)
        return (patches - mean) / torch.sqrt(var + NORM_PIX_EPS)

    def encode_sample(self, patches: torch.Tensor, leads: list[int], visible: list[list[int]]) -> torch.Tensor:
        """Encoder over one sample: tokens (lead-major, visible patches in increasing order)."""
        lead_idx = torch.tensor([l for l in leads for _ in visible[l]], dtype=torch.long)
        patch_idx = torch.tensor([n for l in leads for n in visible[l]], dtype=torch.long)
        h = self.patch_embed(patches[lead_idx, patch_idx])
        h = h + self.lead_embed[lead_idx] + self.pos_enc[patch_idx].to(h.dtype)
        for block in self.enc:
            h = block(h)
        return self.enc_norm(h)

    def decode_sample(self, z: torch.Tensor, leads: list[int], visible: list[list[int]]) -> torch.Tensor:
        """Decoder over one sample: every patch of every present lead; visible ones take their
        encoder token (projected), masked ones the mask token. Returns (present * N, P)."""
        n_patches = self.cfg.num_patches
        rows = []
        enc_token = 0
        for l in leads:
            for n in range(n_patches):
                if n in visible[l]:
                    rows.append(z[enc_token])
                    enc_token += 1
                else:
                    rows.append(self.mask_token)
        g = torch.stack(rows)
        lead_idx = torch.tensor([l for l in leads for _ in range(n_patches)], dtype=torch.long)
        patch_idx = torch.arange(n_patches).repeat(len(leads))
        g = g + self.dec_lead_embed[lead_idx] + self.pos_dec[patch_idx].to(g.dtype)
        for block in self.dec:
            g = block(g)
        return self.dec_pred(self.dec_norm(g))

    def forward(self, x: torch.Tensor, lead_mask: torch.Tensor, patch_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (scalar) and packed predictions (T_dec, P) for x (B, L, S), lead_mask (B, L) and
        patch_mask (B, L, N) (1 = masked). Validates the masks against the contract."""
        cfg = self.cfg
        if x.shape != (x.shape[0], cfg.n_leads, cfg.seq_len):
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, {cfg.n_leads}, {cfg.seq_len})")
        check_masks(cfg, lead_mask, patch_mask)
        all_patches = self.patches(x)
        preds, sq_err_sum, n_masked = [], x.new_zeros(()), 0
        for b in range(x.shape[0]):
            leads = [l for l in range(cfg.n_leads) if lead_mask[b, l]]
            visible = [[n for n in range(cfg.num_patches) if not patch_mask[b, l, n]] for l in range(cfg.n_leads)]
            z = self.dec_embed(self.encode_sample(all_patches[b], leads, visible))
            pred = self.decode_sample(z, leads, visible)
            preds.append(pred)
            target = self.targets(all_patches[b, leads].reshape(-1, cfg.patch_len))
            masked = patch_mask[b, leads].reshape(-1).bool()
            sq_err_sum = sq_err_sum + ((pred[masked] - target[masked]) ** 2).mean(dim=-1).sum()
            n_masked += int(masked.sum())
        return sq_err_sum / n_masked, torch.cat(preds)


def check_masks(cfg: ModelConfig, lead_mask: torch.Tensor, patch_mask: torch.Tensor) -> None:
    """Raise ValueError unless the masks follow the contract (shapes, N - K masked per present lead,
    nothing masked on absent leads, at least one lead per sample)."""
    b = lead_mask.shape[0]
    if lead_mask.shape != (b, cfg.n_leads) or patch_mask.shape != (b, cfg.n_leads, cfg.num_patches):
        raise ValueError(f"mask shapes {tuple(lead_mask.shape)}, {tuple(patch_mask.shape)} do not fit the config")
    present = lead_mask.bool()
    if not present.any(dim=1).all():
        raise ValueError("every sample needs at least one present lead")
    per_lead = patch_mask.long().sum(dim=2)
    expected = torch.where(present, cfg.num_masked, 0)
    if not torch.equal(per_lead, expected):
        raise ValueError(f"patch_mask must mask exactly {cfg.num_masked} patches per present lead and none elsewhere")


def documented_param_names(cfg: ModelConfig) -> list[str]:
    """Parameter names in the order of the contiguous parameter buffer of docs/model.md."""

    def block(prefix: str) -> list[str]:
        parts = ["ln1", "attn.qkv", "attn.proj", "ln2", "mlp.fc1", "mlp.fc2"]
        return [f"{prefix}.{p}.{kind}" for p in parts for kind in ("weight", "bias")]

    names = ["patch_embed.weight", "patch_embed.bias", "lead_embed"]
    for i in range(cfg.depth):
        names += block(f"enc.{i}")
    names += ["enc_norm.weight", "enc_norm.bias", "dec_embed.weight", "dec_embed.bias", "mask_token", "dec_lead_embed"]
    for i in range(cfg.dec_depth):
        names += block(f"dec.{i}")
    names += ["dec_norm.weight", "dec_norm.bias", "dec_pred.weight", "dec_pred.bias"]
    return names


DECAYED_SUFFIXES = (".qkv.weight", ".proj.weight", ".fc1.weight", ".fc2.weight")
DECAYED_NAMES = ("patch_embed.weight", "dec_embed.weight", "dec_pred.weight")


def is_decayed(name: str) -> bool:
    """Weight decay applies to the Linear weights only."""
    return name in DECAYED_NAMES or name.endswith(DECAYED_SUFFIXES)


def adamw_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two torch.optim.AdamW groups: decayed Linear weights, and everything else with no decay."""
    named = dict(model.named_parameters())
    decay = [p for n, p in named.items() if is_decayed(n)]
    no_decay = [p for n, p in named.items() if not is_decayed(n)]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def sample_patch_mask(lead_mask: np.ndarray, cfg: ModelConfig, rng: np.random.Generator) -> np.ndarray:
    """(B, L, N) uint8: for every present lead, N - K distinct patches drawn uniformly are masked."""
    b, L = lead_mask.shape
    mask = np.zeros((b, L, cfg.num_patches), dtype=np.uint8)
    for i in range(b):
        for l in range(L):
            if lead_mask[i, l]:
                mask[i, l, rng.permutation(cfg.num_patches)[: cfg.num_masked]] = 1
    return mask
