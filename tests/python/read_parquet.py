"""Reads a Parquet file with pyarrow (not our code) and prints its schema and rows as JSON.

Usage: read_parquet.py FILE
Output: {"schema": {column: pyarrow type text}, "rows": [row, ...]} with timestamps in ISO 8601.
"""

import datetime
import json
import sys

import pyarrow.parquet as pq


def plain(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


table = pq.read_table(sys.argv[1])
print(
    json.dumps(
        {
            "schema": {f.name: str(f.type) for f in table.schema},
            "rows": [plain(r) for r in table.to_pylist()],
        }
    )
)
