"""Reference reader for the real-data tests: dumps WFDB records as raw f64 with the `wfdb` package.

usage: wfdb_dump.py OUT_DIR RECORD_PATH...   (record paths without extension)
Writes OUT_DIR/index.tsv (one line per record: rate, samples, comma-separated lead names) and
OUT_DIR/N.f64 (the physical signal, lead-major, little-endian f64, NaN where missing).
Exits with status 3 when numpy or wfdb is missing.
"""
import os
import sys

try:
    import numpy as np
    import wfdb
except ImportError:
    sys.exit(3)


def main(out_dir, paths):
    with open(os.path.join(out_dir, "index.tsv"), "w") as index:
        for i, path in enumerate(paths):
            record = wfdb.rdrecord(path)
            signal = np.asarray(record.p_signal, dtype="<f8").T
            index.write(f"{record.fs}\t{signal.shape[1]}\t{','.join(record.sig_name)}\n")
            signal.tofile(os.path.join(out_dir, f"{i}.f64"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
