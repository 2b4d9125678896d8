"""Oracle for the ecgfm-wfdb tests: reads records and annotations with the Python `wfdb`
package and prints only derived values (never samples), one tab-separated line each.

    python3 wfdb_oracle.py signals DIR/RECORD[@CH,CH,...] ...
        -> RECORD  SIGNAL  COUNT  DIGITAL_SUM  SHA256(int32 LE digital)  PHYSICAL_NANSUM  NAN_COUNT
    python3 wfdb_oracle.py annotations DIR/RECORD EXT
        -> RECORD  COUNT  SAMPLE_SUM  SYMBOL=N;SYMBOL=N;...  AUX=N;AUX=N;...
"""

import hashlib
import sys
from collections import Counter

import numpy as np
import wfdb


def signals(spec):
    path, _, chans = spec.partition("@")
    channels = [int(c) for c in chans.split(",")] if chans else None
    # One sample per frame: read the plain arrays (wfdb 4.x fails to convert expanded
    # frames of mixed integer widths); otherwise every sample at each signal's own rate.
    multi = any(s > 1 for s in wfdb.rdheader(path).samps_per_frame)
    dig = wfdb.rdrecord(path, channels=channels, physical=False, smooth_frames=not multi)
    phys = wfdb.rdrecord(path, channels=channels, physical=True, smooth_frames=not multi)
    if multi:
        pairs = zip(dig.e_d_signal, phys.e_p_signal)
    else:
        pairs = zip(dig.d_signal.T, phys.p_signal.T)
    for i, (d, p) in enumerate(pairs):
        d = np.asarray(d, dtype=np.int64)
        p = np.asarray(p, dtype=np.float64)
        digest = hashlib.sha256(d.astype("<i4").tobytes()).hexdigest()
        print(
            f"{spec}\t{i}\t{d.size}\t{int(d.sum())}\t{digest}\t{float(np.nansum(p))!r}\t{int(np.isnan(p).sum())}"
        )


def annotations(path, ext):
    ann = wfdb.rdann(path, ext)
    symbols = Counter(ann.symbol)
    # wfdb keeps the NUL terminator that MIT files store after aux text; the WFDB C library
    # (and ecgfm-wfdb) drop it.
    aux = Counter(a.rstrip("\x00") for a in ann.aux_note if a)
    fmt = lambda c: ";".join(f"{k}={v}" for k, v in sorted(c.items()))
    print(f"{path}\t{len(ann.sample)}\t{int(np.sum(ann.sample))}\t{fmt(symbols)}\t{fmt(aux)}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "signals":
        for spec in args:
            signals(spec)
    elif mode == "annotations":
        annotations(args[0], args[1])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
