"""Reference for the Rust filter tests: scipy Butterworth SOS filtering of raw f64 files.

usage: scipy_filter.py JOBS   where each line of the JOBS file is one of
    bandpass ORDER LOW HIGH FS IN OUT   (butter + sosfiltfilt, padtype 'odd', default padlen)
    highpass ORDER CUT FS IN OUT        (butter + sosfilt starting from sosfilt_zi * x[0])
IN and OUT hold little-endian f64 samples. Exits with status 3 when numpy or scipy is missing.
"""
import sys

try:
    import numpy as np
    from scipy import signal
except ImportError:
    sys.exit(3)


def run(job):
    mode, *args = job.split()
    if mode == "bandpass":
        order, low, high, fs, src, dst = args
        sos = signal.butter(int(order), [float(low), float(high)], btype="bandpass", fs=float(fs), output="sos")
        x = np.fromfile(src, dtype="<f8")
        y = signal.sosfiltfilt(sos, x)
    elif mode == "highpass":
        order, cut, fs, src, dst = args
        sos = signal.butter(int(order), float(cut), btype="highpass", fs=float(fs), output="sos")
        x = np.fromfile(src, dtype="<f8")
        y, _ = signal.sosfilt(sos, x, zi=signal.sosfilt_zi(sos) * x[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
    np.asarray(y, dtype="<f8").tofile(dst)


if __name__ == "__main__":
    with open(sys.argv[1]) as jobs:
        for line in jobs:
            if line.strip():
                run(line)
