#!/usr/bin/env python3
"""One-minute OHLCV per symbol in one DuckDB batch query over a Parquet file of trades.

    python3 sql/tests/duckdb_ohlcv.py TRADES.parquet      # prints JSON lines

The file holds the rows a tickflow job's `trades` stream carried (symbol, ts_event, seq,
price, size); the test compares this answer with the continuous query's. Ties in event time
are broken by `seq`, the job's arrival order, in both.
"""
import json
import sys

import duckdb

NS_PER_MINUTE = 60_000_000_000

rows = duckdb.sql(f"""
    SELECT symbol,
           epoch_ns(ts_event) // {NS_PER_MINUTE} * {NS_PER_MINUTE} AS window_start,
           count(*) AS trades,
           first(price ORDER BY ts_event, seq) AS open,
           max(price) AS high,
           min(price) AS low,
           last(price ORDER BY ts_event, seq) AS close,
           sum(size) AS volume
    FROM read_parquet('{sys.argv[1]}')
    GROUP BY ALL
""").fetchall()
for r in rows:
    print(json.dumps({
        "symbol": r[0], "window_start": r[1], "trades": r[2], "open": float(r[3]),
        "high": float(r[4]), "low": float(r[5]), "close": float(r[6]), "volume": float(r[7]),
    }))
