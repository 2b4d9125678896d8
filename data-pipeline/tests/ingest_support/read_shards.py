"""Reads an ecgfm dataset's Parquet shards with pyarrow, pandas and DuckDB and prints a JSON
summary, so the Rust ingest tests can check the shards open in the usual Python tools.

Usage: python3 read_shards.py DATASET_DIR
"""
import glob
import json
import os
import sys

import duckdb
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
                "duckdb_rows": int(duck_rows),
                "duckdb_splits": {k: int(v) for k, v in splits.items()},
                "duckdb_records": int(records),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
