"""ecgfm's preprocessing in numpy and scipy: prepares a raw ECG record the way `ecgfm data ingest`
prepared the training data of an exported model (`config.json`'s `preprocessing`), so the encoder
sees the kind of input it was trained on. Shipped in every package beside `ecgfm_encoder.py`;
checked in ecgfm's CI against `ecgfm data ingest` on the same records (within one stored unit,
1 uV at the default `signal_scale`).

    import json, ecgfm_preprocess
    config = json.load(open("path/to/package/config.json"))
    signals, rate, names = ecgfm_preprocess.read_wfdb("path/to/record")   # or your own arrays
    w = ecgfm_preprocess.prepare(signals, rate, names, config)
    # w["signal"] (W, 12, window) float32, w["lead_mask"] (W, 12) bool, w["n_samples"] (W,)
    x, lead_mask = ecgfm_preprocess.model_inputs(w, config["samples"])  # the encoder's input

`model_inputs` crops each window to the model's `samples` with `centre_crop` (what `ecgfm embed`
does); `torch.from_numpy` turns both into what `ecgfm_encoder`'s model takes. The steps, in ingest's order (ecgfm's data-pipeline/preprocess):
1. Leads: each name maps to the standard order I, II, III, aVR, aVL, aVF, V1..V6 (`lead_slot`);
   the first lead of a slot wins, the rest are left out; a name with a leading minus (`-aVR`) is
   the negated lead and is negated back. A record's only lead with a generic name (`ECG`, `EKG2`,
   none) is lead I.
2. Resampling to the target rate: polyphase Kaiser-windowed sinc, ratio L/M in lowest terms,
   output sample k at input time k M / L (no delay), round(n L / M) samples, cut-off `rolloff` x
   the lower Nyquist frequency, `half_width_zeros` periods of the lower rate each side, each
   phase normalised to unit DC gain, odd reflection (2 x[0] - x[i]) beyond the ends.
3. Band-pass over the whole resampled record: Butterworth `butter(order, [low, high],
   'bandpass')` run forward and backward (`sosfiltfilt`, odd padding of the default length, at
   most n - 1), so zero-phase and of twice the order in effect.
4. Standardisation over the whole record (`none`, or `per_lead` / `per_record` z-scores: mean and
   population standard deviation, at least `min_std`).
5. Windows of `window_samples` every `stride_samples`; a record no longer than a window is one
   window of all its samples; the trailing part after the last full window is dropped, kept
   (`keep_if_at_least` a fraction of a window) or taken as the last `window_samples` samples
   (`align_end`). Samples past a window's `n_samples` are zero.
6. Rounding to the stored precision: round(v / signal_scale) x signal_scale, half away from
   zero, saturating at the int16 range (+-32.767 mV at 0.001 mV).
Not done here: ingest bridges missing (NaN) samples, which this refuses; and ingest drops a window
whose every lead fails its quality checks (flat, or more than half missing), which this keeps.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import signal as sps

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]

# ecgfm data ingest's defaults: used for a model pretrained on the synthetic generator (whose
# `preprocessing` is null), as ecgfm's own evaluations of such models prepare real ECGs.
INGEST_DEFAULTS = {
    "target_rate_hz": 250.0,
    "resampler": {"half_width_zeros": 32, "kaiser_beta": 8.0, "rolloff": 0.9},
    "band_pass": {"low_hz": 0.67, "high_hz": 40.0, "order": 2},
    "standardize": {"mode": "none", "min_std": 0.01},
    "window": {"window_samples": 2500, "stride_samples": None,
               "trailing": {"policy": "keep_if_at_least", "min_fraction": 0.5}},
}
MAX_PHASES = 4096
TO_MV = {"uv": 1e-3, "\u00b5v": 1e-3, "\u03bcv": 1e-3, "mv": 1.0, "v": 1e3}


def _key(name: str) -> str:
    """The name lower-cased without spaces, '_', '-', the minus sign and '.'."""
    return "".join(c for c in name if not c.isspace() and c not in "_-\u2212.").lower()


def lead_slot(name: str) -> int | None:
    """The standard slot (0 = I ... 11 = V6) of a lead name, or None: case and separators are
    ignored, `lead`/`ecg` prefixes accepted, `ML` marks modified limb leads (MLII: II), D1..D3 /
    DI..DIII are I..III and C1..C6 are V1..V6."""
    key = _key(name)
    for prefix in ("lead", "ecg"):
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix):]
            break
    limb = {"i": 0, "ii": 1, "iii": 2}
    if key in limb:
        return limb[key]
    if key.startswith("ml"):
        return limb.get(key[2:])
    if key.startswith("d"):
        rest = key[1:]
        return limb.get(rest, {"1": 0, "2": 1, "3": 2}.get(rest))
    if key in ("avr", "avl", "avf"):
        return 3 + ("avr", "avl", "avf").index(key)
    if key[:1] in ("v", "c") and key[1:] in ("1", "2", "3", "4", "5", "6"):
        return 5 + int(key[1:])
    return None


def is_negated(name: str) -> bool:
    """Whether a lead name names the lead's negation (`-aVR`)."""
    return name.lstrip().startswith(("-", "\u2212"))


def _generic_ecg_name(name: str) -> bool:
    """A name that says "an ECG" without naming a lead: none, or ECG / EKG with at most a number."""
    key = _key(name)
    rest = key[3:] if key.startswith(("ecg", "ekg")) else None
    return key == "" or (rest is not None and (rest == "" or rest.isdigit()))


def map_leads(names: list[str]) -> list[tuple[int, int, bool]]:
    """(slot, index of the source lead, negated) of each lead that maps to a free slot."""
    taken, out = set(), []
    for i, name in enumerate(names):
        slot = lead_slot(name)
        if slot is None and len(names) == 1 and _generic_ecg_name(name):
            slot = 0
        if slot is not None and slot not in taken:
            taken.add(slot)
            out.append((slot, i, is_negated(name)))
    return out


def _ratio(rate_in: float, rate_out: float) -> tuple[int, int]:
    """out/in as L/M: exact for whole-number rates, else the last continued-fraction convergent
    with L <= MAX_PHASES."""
    whole = lambda r: abs(r - round(r)) < 1e-9 and round(r) < 1e12
    if whole(rate_in) and whole(rate_out):
        a, b = round(rate_out), round(rate_in)
        g = math.gcd(a, b)
        if a // g <= MAX_PHASES:
            return a // g, b // g
    ratio = rate_out / rate_in
    p0, q0, p1, q1 = 0, 1, 1, 0
    rest, best = ratio, (max(round(ratio), 1), 1)
    for _ in range(64):
        a = math.floor(rest)
        p2, q2 = a * p1 + p0, a * q1 + q0
        if p2 > MAX_PHASES:
            break
        if p2 > 0:
            best = (p2, q2)
            if abs((p2 / q2) / ratio - 1.0) < 1e-12:
                break
        frac = rest - a
        if frac < 1e-12:
            break
        p0, q0, p1, q1 = p1, q1, p2, q2
        rest = 1.0 / frac
    return best


def _odd_extend(x: np.ndarray, pad: int) -> np.ndarray:
    """x (leads, n) with `pad` samples of odd reflection, 2 x[0] - x[i], at each end."""
    n = x.shape[1]
    left = np.minimum(np.arange(pad, 0, -1), n - 1)
    right = np.maximum(n - 1 - np.arange(1, pad + 1), 0)
    return np.concatenate([2 * x[:, :1] - x[:, left], x, 2 * x[:, -1:] - x[:, right]], axis=1)


def resample(x: np.ndarray, rate_in: float, rate_out: float, resampler: dict) -> np.ndarray:
    """x (leads, n) at rate_in Hz resampled to rate_out Hz (step 2 of the module comment)."""
    up, down = _ratio(rate_in, rate_out)
    if up == down:
        return x.copy()
    narrow = min(up / down, 1.0)
    cutoff = resampler["rolloff"] * narrow
    reach = resampler["half_width_zeros"] / narrow
    half = math.ceil(reach)
    taps = np.arange(2 * half + 2)
    tau = (taps[None, :] - half) - np.arange(up)[:, None] / up
    r = np.clip(tau / reach, -1.0, 1.0)
    beta = resampler["kaiser_beta"]
    kaiser = np.i0(beta * np.sqrt(1.0 - r * r)) / np.i0(beta)
    table = np.where(np.abs(tau) < reach, cutoff * np.sinc(cutoff * tau) * kaiser, 0.0)
    table /= table.sum(axis=1, keepdims=True)
    n = x.shape[1]
    n_out = max((2 * n * up + down) // (2 * down), 1)
    base, phase = np.divmod(np.arange(n_out) * down, up)
    pad = half + 2
    index = base[:, None] - half + taps[None, :] + pad
    return np.einsum("lkt,kt->lk", _odd_extend(x, pad)[:, index], table[phase])


def band_pass(x: np.ndarray, rate: float, config: dict) -> np.ndarray:
    """x (leads, n) band-passed forward and backward (step 3)."""
    sos = sps.butter(config["order"], [config["low_hz"], config["high_hz"]], btype="bandpass",
                     fs=rate, output="sos")
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    padlen = min(3 * (2 * len(sos) + 1 - zeros), x.shape[1] - 1)
    return sps.sosfiltfilt(sos, x, axis=1, padtype="odd", padlen=padlen)


def standardize(x: np.ndarray, config: dict) -> np.ndarray:
    """x (leads, n) as z-scores per lead or per record, or unchanged (step 4)."""
    mode = config["mode"]
    if mode == "none":
        return x
    if mode == "per_lead":
        mean = x.mean(axis=1, keepdims=True)
        std = np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True))
    elif mode == "per_record":
        mean = x.mean()
        std = np.sqrt(((x - mean) ** 2).mean())
    else:
        raise ValueError(f"unknown standardize mode {mode!r}")
    return (x - mean) / np.maximum(std, config["min_std"])


def window_spans(n: int, config: dict) -> list[tuple[int, int]]:
    """(start, n_samples) of each window of an n-sample record (step 5)."""
    w = config["window_samples"]
    stride = config.get("stride_samples") or w
    if n == 0:
        return []
    if n <= w:
        return [(0, n)]
    full = (n - w) // stride + 1
    spans = [(i * stride, w) for i in range(full)]
    if (full - 1) * stride + w < n:
        trailing = config["trailing"]
        nxt = full * stride
        if trailing["policy"] == "keep_if_at_least":
            rest = max(n - nxt, 0)
            if rest > 0 and rest >= trailing["min_fraction"] * w:
                spans.append((nxt, rest))
        elif trailing["policy"] == "align_end":
            spans.append((n - w, w))
    return spans


def quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """round(x / scale) x scale, half away from zero, saturating at the int16 range (step 6)."""
    units = np.clip(np.sign(x / scale) * np.floor(np.abs(x / scale) + 0.5), -32768, 32767)
    return (units.astype(np.float32) * np.float32(scale)).astype(np.float32)


def prepare(signals, rate: float, lead_names: list[str], config: dict) -> dict:
    """The windows ingest would store for a record: `signals` (leads, n) in mV (NaN: missing),
    sampled at `rate` Hz, its leads named `lead_names`; `config` is the package's config.json
    (its `preprocessing` and `signal_scale`). Returns {"signal": (W, 12, window) float32,
    "lead_mask": (W, 12) bool, "n_samples": (W,) int, "start": (W,) int} (starts at the target
    rate)."""
    pre = config.get("preprocessing") or INGEST_DEFAULTS
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(lead_names):
        raise ValueError(f"signals has shape {x.shape}; expected ({len(lead_names)}, n): one row "
                         "per lead name")
    mapped = map_leads(list(lead_names))
    if not mapped:
        raise ValueError(f"no standard ECG lead among {list(lead_names)}")
    rows = np.stack([-x[i] if negated else x[i] for _, i, negated in mapped])
    if np.isnan(rows).any():
        raise ValueError("the record has missing (NaN) samples: ecgfm data ingest bridges them; "
                         "this preprocessing does not (ingest the record and read its shards)")
    target = pre["target_rate_hz"]
    y = resample(rows, float(rate), target, pre["resampler"])
    if pre.get("band_pass"):
        y = band_pass(y, target, pre["band_pass"])
    y = standardize(y, pre["standardize"])
    scale = config.get("signal_scale", 0.001)
    spans = window_spans(y.shape[1], pre["window"])
    width = pre["window"]["window_samples"]
    out = np.zeros((len(spans), len(STANDARD_LEADS), width), dtype=np.float32)
    mask = np.zeros((len(spans), len(STANDARD_LEADS)), dtype=bool)
    for w, (start, n) in enumerate(spans):
        for row, (slot, _, _) in enumerate(mapped):
            out[w, slot, :n] = quantize(y[row, start:start + n], scale)
            mask[w, slot] = True
    return {"signal": out, "lead_mask": mask, "n_samples": np.array([n for _, n in spans]),
            "start": np.array([s for s, _ in spans])}


def centre_crop(window: np.ndarray, n_samples: int, samples: int) -> np.ndarray:
    """The model's input from one window (12, window): its centred `samples` of its `n_samples`
    valid ones, as `ecgfm embed` crops; a shorter window from its start, zero-padded."""
    start = max((n_samples - samples) // 2, 0)
    out = np.zeros((window.shape[0], samples), dtype=window.dtype)
    part = window[:, start:start + samples]
    out[:, :part.shape[1]] = part
    return out


def model_inputs(windows: dict, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's inputs from `prepare`'s windows: x (W, 12, samples) float32, each window
    cropped by `centre_crop`, and its lead mask (W, 12) bool (`torch.from_numpy` takes both)."""
    x = np.stack([centre_crop(s, int(n), samples)
                  for s, n in zip(windows["signal"], windows["n_samples"])])
    return x.astype(np.float32), windows["lead_mask"].copy()


def read_wfdb(path: str) -> tuple[np.ndarray, float, list[str]]:
    """A WFDB record (`path` without extension) as (signals (leads, n) in mV, rate, names), with
    the `wfdb` package: signals in uV or V converted, those in no voltage unit (a pleth, a
    respiration) left out, as ingest leaves them out."""
    import wfdb

    record = wfdb.rdrecord(path)
    keep = [i for i, u in enumerate(record.units) if u.strip().lower() in TO_MV]
    if not keep:
        raise ValueError(f"{path}: no signal in a voltage unit ({record.units})")
    to_mv = np.array([TO_MV[record.units[i].strip().lower()] for i in keep])
    x = record.p_signal[:, keep].T * to_mv[:, None]
    return x, float(record.fs), [record.sig_name[i] for i in keep]
