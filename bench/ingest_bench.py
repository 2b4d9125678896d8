"""Ingest throughput: `ecgfm data ingest` against the Python stack doing the same conversion.

Both sides convert the shared PTB-XL sample (500 records, 12 leads, 500 Hz, 10 s): read the WFDB
record, resample to 250 Hz, zero-phase Butterworth band-pass 0.67-40 Hz (order 2, sosfiltfilt),
cut 10 s windows, store int16 microvolts and write Parquet in ecgfm's encodings (the signal
DELTA_BINARY_PACKED and uncompressed, the rest zstd). The Python side uses the `wfdb`
package, scipy (resample_poly, butter, sosfiltfilt), numpy and pyarrow. Both get the same cores:
`--threads N` is ecgfm's `--threads` and the Python side's worker processes (a multiprocessing
pool over records, the usual way such a script is sped up; one process at 1, the default; 0: all
cores for both), and pyarrow's thread count. ecgfm also computes quality flags and labels/splits,
so the comparison is conservative. Prints records/s for both, their threads, and the ratio.

Usage: python3 bench/ingest_bench.py PATH/TO/ecgfm [--source DIR] [--repeats N] [--threads N]
"""
import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import wfdb
    from scipy import signal
except ImportError as missing:
    sys.exit(f"skipped: {sys.executable} lacks {missing.name}; "
             "pip install numpy pandas pyarrow wfdb scipy")

STANDARD = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
RATE = 250
WINDOW = 2500


def convert(source: str, names: list) -> list:
    """(record_id, window_index, int16 signal) of every window of the records `names`."""
    sos = signal.butter(2, [0.67, 40.0], btype="bandpass", fs=RATE, output="sos")
    rows = []
    for name in names:
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
            rows.append((os.path.basename(name), w, stored.reshape(-1)))
    return rows


def python_ingest(source: str, out: str, workers: int) -> int:
    """The reference conversion in `workers` processes; returns the number of records converted."""
    names = list(pd.read_csv(os.path.join(source, "ptbxl_database.csv"))["filename_hr"])
    if workers == 1:
        converted = [convert(source, names)]
    else:
        parts = [names[i::workers * 4] for i in range(workers * 4)]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            converted = pool.starmap(convert, [(source, part) for part in parts])
    rows = {"record_id": [], "window_index": [], "signal": []}
    for record_id, w, stored in sorted(r for part in converted for r in part):
        rows["record_id"].append(record_id)
        rows["window_index"].append(w)
        rows["signal"].append(stored)
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
    return len(names)


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
    parser.add_argument("--threads", type=int, default=1,
                        help="ecgfm's threads and the Python side's processes (0: all cores)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads < 0:
        parser.error("--threads must be 0 (all cores) or more")
    threads = args.threads or os.cpu_count()
    pa.set_cpu_count(threads)
    if not os.path.isdir(args.source):
        sys.exit(f"source folder {args.source} not found")
    work = tempfile.mkdtemp(prefix="ingest-bench-")
    try:
        rust_times, py_times = [], []
        for i in range(args.repeats):
            out = os.path.join(work, f"ecgfm-{i}")
            command = [args.ecgfm, "data", "ingest", args.source, "--out", out,
                       "--format", "ptbxl", "--threads", str(threads)]
            _, seconds = timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
            rust_times.append(seconds)
            records, seconds = timed(
                lambda: python_ingest(args.source, os.path.join(work, f"py-{i}"), threads))
            py_times.append(seconds)
        rust_best, py_best = min(rust_times), min(py_times)
        print(f"records: {records} (PTB-XL 500 Hz, 12 leads, 10 s) on a {os.cpu_count()}-core machine, "
              f"best of {args.repeats}")
        print(f"ecgfm data ingest : {records / rust_best:8.1f} records/s ({rust_best:.2f} s, "
              f"--threads {threads})")
        print(f"wfdb+scipy+pyarrow: {records / py_best:8.1f} records/s ({py_best:.2f} s, "
              f"{threads} process{'es' if threads > 1 else ''}, pyarrow {threads} threads)")
        print(f"speed-up (ecgfm {threads} threads vs Python {threads} processes): "
              f"{py_best / rust_best:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
