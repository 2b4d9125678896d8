"""Ingest throughput: `ecgfm data ingest` against the Python stack doing the same conversion.

Both sides convert the shared PTB-XL sample (500 records, 12 leads, 500 Hz, 10 s): read the WFDB
record, resample to 250 Hz, zero-phase Butterworth band-pass 0.67-40 Hz (order 2, sosfiltfilt),
cut 10 s windows, store int16 microvolts and write Parquet in ecgfm's encodings (the signal
DELTA_BINARY_PACKED and uncompressed, the rest zstd). The Python side uses the `wfdb`
package, scipy (resample_poly, butter, sosfiltfilt), numpy and pyarrow, in one process (the
usual way such scripts are written). ecgfm also computes quality flags and labels/splits, so the
comparison is conservative. Prints records/s for both and the ratio.

Usage: python3 bench/ingest_bench.py PATH/TO/ecgfm [--source DIR] [--repeats N] [--threads N]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import wfdb
from scipy import signal

STANDARD = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
RATE = 250
WINDOW = 2500


def python_ingest(source: str, out: str) -> int:
    """The reference conversion; returns the number of records converted."""
    db = pd.read_csv(os.path.join(source, "ptbxl_database.csv"))
    sos = signal.butter(2, [0.67, 40.0], btype="bandpass", fs=RATE, output="sos")
    rows = {"record_id": [], "window_index": [], "signal": []}
    for name in db["filename_hr"]:
        record = wfdb.rdrecord(os.path.join(source, name))
        x = np.nan_to_num(record.p_signal.T.astype(np.float64))
        g = np.gcd(int(record.fs), RATE)
        x = signal.resample_poly(x, RATE // g, int(record.fs) // g, axis=1)
        x = signal.sosfiltfilt(sos, x, axis=1)
        full = np.zeros((12, x.shape[1]))
        for i, lead in enumerate(record.sig_name):
            if lead.upper() in STANDARD:
                full[STANDARD.index(lead.upper())] = x[i]
        for w, start in enumerate(range(0, max(full.shape[1] - WINDOW, 0) + 1, WINDOW)):
            chunk = np.zeros((12, WINDOW))
            part = full[:, start:start + WINDOW]
            chunk[:, :part.shape[1]] = part
            stored = np.clip(np.round(chunk * 1000.0), -32768, 32767).astype(np.int16)
            rows["record_id"].append(os.path.basename(name))
            rows["window_index"].append(w)
            rows["signal"].append(stored.reshape(-1))
    table = pa.table({
        "record_id": rows["record_id"],
        "window_index": pa.array(rows["window_index"], pa.int32()),
        "signal": pa.FixedSizeListArray.from_arrays(
            pa.array(np.concatenate(rows["signal"]), pa.int16()), 12 * WINDOW),
    })
    os.makedirs(out, exist_ok=True)
    pq.write_table(table, os.path.join(out, "shard-00000.parquet"), row_group_size=256,
                   compression={"record_id": "zstd", "window_index": "zstd",
                                "signal.list.element": "none"},
                   use_dictionary=["record_id", "window_index"],
                   column_encoding={"signal.list.element": "DELTA_BINARY_PACKED"})
    return len(db)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    default_source = os.path.normpath(os.path.join(here, "..", "..", "shared", "data", "ptbxl-500"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ecgfm", help="path to the ecgfm binary (cargo build --release -p ecgfm-launch)")
    parser.add_argument("--source", default=os.environ.get("ECGFM_PTBXL", default_source))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="ecgfm worker threads (0: all cores)")
    args = parser.parse_args()
    if not os.path.isdir(args.source):
        sys.exit(f"source folder {args.source} not found")
    work = tempfile.mkdtemp(prefix="ingest-bench-")
    try:
        rust_times, py_times = [], []
        for i in range(args.repeats):
            out = os.path.join(work, f"ecgfm-{i}")
            command = [args.ecgfm, "data", "ingest", args.source, "--out", out,
                       "--format", "ptbxl", "--threads", str(args.threads)]
            _, seconds = timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
            rust_times.append(seconds)
            records, seconds = timed(lambda: python_ingest(args.source, os.path.join(work, f"py-{i}")))
            py_times.append(seconds)
        records = 500 if records is None else records
        rust_best, py_best = min(rust_times), min(py_times)
        print(f"records: {records} (PTB-XL 500 Hz, 12 leads, 10 s) on {os.cpu_count()} cores, best of {args.repeats}")
        print(f"ecgfm data ingest : {records / rust_best:8.1f} records/s ({rust_best:.2f} s)")
        print(f"wfdb+scipy+pyarrow: {records / py_best:8.1f} records/s ({py_best:.2f} s)")
        print(f"speed-up          : {py_best / rust_best:8.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
