"""Reads an ecgfm dataset's Parquet shards with pyarrow, pandas and DuckDB and prints a JSON
summary, so the Rust ingest tests can check the shards open in the usual Python tools and
decode to the values ecgfm's own reader sees: each window's sum of |stored value| per lead
(pyarrow + numpy) and the whole dataset's (DuckDB).

Usage: python3 read_shards.py DATASET_DIR
"""
import glob
import json
import os
import sys

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def main(root: str) -> None:
    shards = sorted(glob.glob(os.path.join(root, "shards", "*.parquet")))
    tables = [pq.read_table(path) for path in shards]
    pyarrow_rows = sum(t.num_rows for t in tables)
    columns = tables[0].schema.names if tables else []
    signal_len = tables[0].schema.field("signal").type.list_size if tables else 0
    frame = pd.concat([pd.read_parquet(path) for path in shards], ignore_index=True)
    pattern = os.path.join(root, "shards", "*.parquet")
    con = duckdb.connect()
    duck_rows = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0]
    splits = dict(
        con.execute(
            f"SELECT split, count(*) FROM read_parquet('{pattern}') GROUP BY split"
        ).fetchall()
    )
    records = con.execute(
        f"SELECT count(DISTINCT record_id) FROM read_parquet('{pattern}')"
    ).fetchone()[0]
    first_signal_sum = int(sum(int(v) for v in frame["signal"].iloc[0])) if len(frame) else 0
    lead_abs_sums = {}
    for table in tables:
        signal = table.column("signal").combine_chunks()
        values = signal.flatten().to_numpy().astype(np.int64)
        by_lead = np.abs(values.reshape(table.num_rows, 12, -1)).sum(axis=2)
        ids = table.column("record_id").to_pylist()
        windows = table.column("window_index").to_pylist()
        for record, window, sums in zip(ids, windows, by_lead.tolist()):
            lead_abs_sums[f"{record}#{window}"] = sums
    duckdb_abs_sum = con.execute(
        f"SELECT sum(abs(v::BIGINT)) FROM (SELECT unnest(signal) AS v "
        f"FROM read_parquet('{pattern}'))"
    ).fetchone()[0]
    print(
        json.dumps(
            {
                "shards": len(shards),
                "pyarrow_rows": pyarrow_rows,
                "columns": columns,
                "signal_len": signal_len,
                "pandas_rows": len(frame),
                "pandas_first_record": str(frame["record_id"].iloc[0]) if len(frame) else "",
                "first_signal_sum": first_signal_sum,
                "lead_abs_sums": lead_abs_sums,
                "duckdb_abs_sum": int(duckdb_abs_sum or 0),
                "duckdb_rows": int(duck_rows),
                "duckdb_splits": {k: int(v) for k, v in splits.items()},
                "duckdb_records": int(records),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
