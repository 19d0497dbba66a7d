#!/usr/bin/env python3
"""Runs one statement on a Flight SQL server with the ADBC Flight SQL driver (a third-party
client) and prints the rows as JSON lines.

    python3 sql/tests/adbc_query.py HOST:PORT "SELECT ..."
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql

with flightsql.connect(f"grpc://{sys.argv[1]}") as conn:
    with conn.cursor() as cur:
        cur.execute(sys.argv[2])
        table = cur.fetch_arrow_table()
        for row in table.to_pylist():
            print(json.dumps(row, default=str, sort_keys=True))
