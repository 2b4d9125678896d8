"""Oracle for the ecgfm-wfdb tests: reads records and annotations with the Python `wfdb`
package and prints only derived values (never samples), one tab-separated line each.

    python3 wfdb_oracle.py signals DIR/RECORD[@CH,CH,...] ...
        -> RECORD  SIGNAL  COUNT  DIGITAL_SUM  SHA256(int32 LE digital)  PHYSICAL_NANSUM  NAN_COUNT
    python3 wfdb_oracle.py annotations DIR/RECORD EXT
        -> RECORD  COUNT  SAMPLE_SUM  SYMBOL=N;SYMBOL=N;...  AUX=N;AUX=N;...
    python3 wfdb_oracle.py ptbxl DATABASE_CSV SCP_STATEMENTS_CSV   (pandas, PTB-XL benchmark code)
        -> ECG_ID  PATIENT_ID  STRAT_FOLD  SEX  AGE  SCP;CODES  SUPER;CLASSES  FILENAME_HR
    python3 wfdb_oracle.py cinc2017 REFERENCE_CSV
        -> LABEL  COUNT
    python3 wfdb_oracle.py dx DIR/RECORD ...   (header comments read by wfdb.rdheader)
        -> RECORD  DX;CODES  AGE  SEX
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


def ptbxl(database_csv, statements_csv):
    import ast

    import pandas as pd

    db = pd.read_csv(database_csv, index_col="ecg_id")
    db.scp_codes = db.scp_codes.apply(ast.literal_eval)
    agg = pd.read_csv(statements_csv, index_col=0)
    agg = agg[agg.diagnostic == 1]
    for ecg_id, row in db.iterrows():
        classes = sorted({agg.loc[k].diagnostic_class for k in row.scp_codes if k in agg.index})
        age = "" if pd.isna(row.age) else repr(float(row.age))
        sex = "" if pd.isna(row.sex) else str(int(row.sex))
        print(
            f"{ecg_id}\t{int(row.patient_id)}\t{row.strat_fold}\t{sex}\t{age}\t"
            f"{';'.join(row.scp_codes)}\t{';'.join(classes)}\t{row.filename_hr}"
        )


def cinc2017(reference_csv):
    import pandas as pd

    ref = pd.read_csv(reference_csv, header=None, names=["record", "label"])
    ref = ref[ref.record != "record"]
    for label, count in sorted(ref.label.value_counts().items()):
        print(f"{label}\t{count}")


def dx(path):
    fields = {}
    for comment in wfdb.rdheader(path).comments:
        key, _, value = comment.partition(":")
        fields[key.strip().lower()] = value.strip()
    codes = ";".join(c.strip() for c in fields.get("dx", "").split(",") if c.strip())
    try:
        age = repr(float(fields.get("age", "")))
        age = "" if age == "nan" else age
    except ValueError:
        age = ""
    sex = {"male": "M", "m": "M", "female": "F", "f": "F"}.get(fields.get("sex", "").lower(), "")
    print(f"{path}\t{codes}\t{age}\t{sex}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "signals":
        for spec in args:
            signals(spec)
    elif mode == "annotations":
        annotations(args[0], args[1])
    elif mode == "ptbxl":
        ptbxl(args[0], args[1])
    elif mode == "cinc2017":
        cinc2017(args[0])
    elif mode == "dx":
        for path in args:
            dx(path)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
