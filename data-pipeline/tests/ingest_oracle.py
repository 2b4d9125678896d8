"""End-to-end oracle for `ecgfm data ingest`: recomputes the stored int16 windows of some records
from their raw WFDB files with an independent Python stack, and prints how far the shards differ.

The conversion, written from ecgfm's documented defaults (docs/dataset-format.md,
data-pipeline/preprocess/src/config.rs), not from its code paths:
- read the record with `wfdb.rdrecord` (physical values; uV and V converted to mV);
- map lead names to the standard order I, II, III, aVR, aVL, aVF, V1..V6 (case-insensitive; a
  record's single lead named `ECG` is lead I); other leads are left out;
- resample to 250 Hz with the numpy implementation of ecgfm's documented resampler that exported
  packages ship (python/ecgfm_preprocess.py; data-pipeline/preprocess/src/resample.rs, header): polyphase Kaiser-windowed sinc, ratio L/M
  in lowest terms, output sample k at input time k*M/L, cut-off 0.9 x the lower Nyquist
  frequency, 32 zero crossings of the lower rate each side, Kaiser beta 8, each phase normalised
  to unit DC gain, odd reflection beyond the ends, round(n*L/M) output samples. This keeps the
  comparison tight (scipy's resample_poly, a different filter with zero padding at the ends,
  differs on PTB-XL by up to 20 uV in the interior and hundreds of uV at record ends);
- band-pass with scipy: `butter(2, [0.67, 40], 'bandpass', fs=250, output='sos')` and
  `sosfiltfilt` (odd padding, default padlen);
- cut 2500-sample windows every 2500 samples; a record of at most one window gives one window
  of all its samples; after the last full window a trailing part of at least half a window gives
  one more, zero-padded (windows hold n_samples valid samples, the rest zero);
- store round(value / signal_scale) as int16 (manifest's signal_scale, 0.001 mV: 1 uV), absent
  leads all zero, lead-major (signal[l * 2500 + t]).

The shards are read with pyarrow. For every window (record, window_index) it prints, per
standard lead, the largest |stored - oracle| in uV over the whole window (padding included) and
over its interior (samples at least MARGIN_S = 1 s from either end of the record; null where the
window has none), how many samples differ at all, and the RMS of the oracle's lead in uV; per
window n_samples on both sides and the stored lead mask; per record the leads present and the
window indices on both sides.
Records with missing (NaN) samples are refused: ecgfm bridges gaps, which this oracle does not.

Usage: python3 ingest_oracle.py DATASET_DIR SOURCE_DIR RECORD_ID...
Prints JSON; exits with status 3 when numpy, scipy, wfdb or pyarrow is missing.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
try:
    import ecgfm_preprocess as prep
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import wfdb
    from scipy import signal
except ImportError:
    sys.exit(3)

STANDARD = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
RATE = 250
WINDOW = 2500
TRAILING_MIN_FRACTION = 0.5
BAND = (0.67, 40.0)
BAND_ORDER = 2
HALF_WIDTH_ZEROS = 32
ROLLOFF = 0.9
KAISER_BETA = 8.0
MARGIN_S = 1.0
TO_MV = {"uv": 1e-3, "mv": 1.0, "v": 1e3}


def standard_slots(names):
    """Standard slot of each of the record's leads (None: left out)."""
    upper = [s.upper() for s in STANDARD]
    if len(names) == 1 and names[0].upper() == "ECG":
        return [0]
    return [upper.index(n.upper()) if n.upper() in upper else None for n in names]


def resample(x, rate_in):
    """`x` (leads x n) at `rate_in` Hz resampled to RATE by ecgfm's documented Kaiser sinc, in the
    numpy implementation every exported package ships (python/ecgfm_preprocess.py)."""
    if rate_in != int(rate_in):
        raise SystemExit(f"ingest_oracle.py handles whole-number rates only, got {rate_in}")
    return prep.resample(x, rate_in, RATE, {"half_width_zeros": HALF_WIDTH_ZEROS,
                                             "kaiser_beta": KAISER_BETA, "rolloff": ROLLOFF})


def window_spans(n):
    """(start, n_valid) of each window of an n-sample record."""
    if n <= WINDOW:
        return [(0, n)]
    full = (n - WINDOW) // WINDOW + 1
    spans = [(i * WINDOW, WINDOW) for i in range(full)]
    rest = n - full * WINDOW
    if rest > 0 and rest >= TRAILING_MIN_FRACTION * WINDOW:
        spans.append((full * WINDOW, rest))
    return spans


def to_units(x_mv, scale):
    """round(x / scale) (half away from zero), saturating at the int16 range."""
    v = x_mv / scale
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -32768, 32767)


def convert(path):
    """The record at `path` (no extension): its rate, input length, present standard leads and
    its band-passed 12 x n signal at RATE in mV (absent leads zero)."""
    record = wfdb.rdrecord(path)
    slots = standard_slots(record.sig_name)
    keep = [i for i, s in enumerate(slots) if s is not None]
    x = np.stack([record.p_signal[:, i] * TO_MV[record.units[i].lower()] for i in keep])
    if np.isnan(x).any():
        raise SystemExit(f"{path}: missing samples; ingest_oracle.py does not bridge gaps")
    sos = signal.butter(BAND_ORDER, BAND, btype="bandpass", fs=RATE, output="sos")
    y = signal.sosfiltfilt(sos, resample(x, record.fs), axis=1)
    full = np.zeros((len(STANDARD), y.shape[1]))
    for row, i in enumerate(keep):
        full[slots[i]] = y[row]
    present = [STANDARD[slots[i]] for i in keep]
    return record.fs, x.shape[1], present, full


def stored_windows(root, records):
    """{record_id: {window_index: (n_samples, lead mask, 12 x WINDOW int16)}} from the shards."""
    out = {r: {} for r in records}
    for path in sorted(glob.glob(os.path.join(root, "shards", "*.parquet"))):
        table = pq.read_table(
            path, columns=["record_id", "window_index", "n_samples", "lead_mask", "signal"])
        table = table.filter(pc.is_in(table["record_id"], value_set=pa.array(records, pa.string())))
        signals = table.column("signal").combine_chunks().flatten().to_numpy()
        signals = signals.reshape(table.num_rows, len(STANDARD), -1)
        for i, (record, w, n, mask) in enumerate(zip(
                table.column("record_id").to_pylist(), table.column("window_index").to_pylist(),
                table.column("n_samples").to_pylist(), table.column("lead_mask").to_pylist())):
            out[record][w] = (n, mask, signals[i])
    return out


def compare(record_id, path, stored, scale):
    """The comparison figures of one record."""
    rate, n_in, present, expected = convert(path)
    n = expected.shape[1]
    margin = round(MARGIN_S * RATE)
    uv = scale * 1000.0
    windows = []
    for w, (start, n_valid) in enumerate(window_spans(n)):
        oracle = np.zeros((len(STANDARD), WINDOW))
        oracle[:, :n_valid] = to_units(expected[:, start:start + n_valid], scale)
        t = start + np.arange(n_valid)
        interior = np.flatnonzero((t >= margin) & (t < n - margin))
        entry = {"window_index": w, "start": start, "n_samples": n_valid}
        if w in stored:
            n_stored, mask, got = stored[w]
            diff = np.abs(got.astype(np.float64) - oracle) * uv
            entry["stored_n_samples"] = n_stored
            entry["stored_leads_present"] = [STANDARD[l] for l, m in enumerate(mask) if m]
            entry["leads"] = {
                STANDARD[l]: {
                    "max_abs_diff_uv": float(diff[l].max()),
                    "differing_samples": int(np.count_nonzero(diff[l])),
                    "interior_max_abs_diff_uv":
                        float(diff[l, interior].max()) if interior.size else None,
                    "rms_uv": float(np.sqrt(np.mean(oracle[l, :n_valid] ** 2)) * uv),
                }
                for l in range(len(STANDARD))
            }
        windows.append(entry)
    return {
        "record": record_id,
        "rate": rate,
        "input_samples": n_in,
        "resampled_samples": n,
        "leads_present": present,
        "window_indices": [w["window_index"] for w in windows],
        "stored_window_indices": sorted(stored),
        "windows": windows,
    }


def main(root, source, records):
    with open(os.path.join(root, "manifest.json")) as f:
        manifest = json.load(f)
    if (manifest["sampling_rate"], manifest["window_samples"]) != (RATE, WINDOW):
        raise SystemExit(
            f"ingest_oracle.py converts to {RATE} Hz, {WINDOW}-sample windows (ecgfm's "
            f"defaults); the dataset has {manifest['sampling_rate']} Hz, "
            f"{manifest['window_samples']}")
    headers = {}
    for folder, _, files in os.walk(source):
        for name in files:
            if name.endswith(".hea"):
                headers[name[:-4]] = os.path.join(folder, name[:-4])
    stored = stored_windows(root, records)
    scale = manifest["signal_scale"]
    print(json.dumps({
        "margin_s": MARGIN_S,
        "signal_scale": scale,
        "records": [compare(r, headers[r], stored[r], scale) for r in records],
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
