#!/usr/bin/env python3
"""Makes the input rows of the SQL case tests and their expected outputs.

    python3 sql/tests/make_cases.py            # needs `pip install duckdb`

1. Generates (seeded, so the files are reproducible) trades and quotes of three symbols over
   30 minutes, in *arrival* order: each row arrives up to 2 s after its event time, so event
   times are out of order by up to 2 s. Twelve trades arrive 10 minutes late (column `late` = 1),
   all before the stream ends: their windows have closed, so windowed queries must count them
   as late and leave them out.
2. For every case file `sql/tests/cases/*.sql`, runs its `-- duckdb` query in DuckDB over the
   same rows (without the late trades, unless the case says `-- mode: plain`) and writes the
   rows, sorted, as JSON lines under `-- expected`.

Times are integer nanoseconds since the epoch in the files and in the expected rows; the
DuckDB queries compute windows with integer arithmetic on them.
"""
import json
import pathlib
import random
from decimal import Decimal

import duckdb

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
CASES = HERE / "cases"
NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # 2023-11-14 22:13:20 UTC
SYMBOLS = [(1, "AAA", Decimal("101.25")), (2, "BBB", Decimal("47.10")), (3, "CCC", Decimal("250.00"))]


def generate():
    rng = random.Random(20261202)
    trades, quotes = [], []
    for iid, sym, start in SYMBOLS:
        price = start
        t = T0 + rng.randrange(0, NS)
        used = set()
        while t < T0 + 30 * 60 * NS:
            # Bursts and pauses, so session windows have something to find.
            t += rng.choice([rng.randrange(NS // 20, NS), rng.randrange(25 * NS, 40 * NS)]) if rng.random() < 0.03 else rng.randrange(NS // 20, 2 * NS)
            if t in used:
                continue
            used.add(t)
            price = max(Decimal("1.00"), price + Decimal(rng.choice([-2, -1, 0, 0, 1, 2])) / 100)
            size = rng.choice([1, 5, 10, 50, 100, 100, 200, 500, 1000])
            trades.append(dict(instrument_id=iid, symbol=sym, ts_event=t, price=price, size=size,
                               aggressor=rng.choice(["buy", "sell"]), late=0))
            if rng.random() < 0.9:
                q = t + rng.randrange(1, NS // 50)
                half = Decimal(rng.choice([1, 1, 2, 3])) / 100
                quotes.append(dict(instrument_id=iid, symbol=sym, ts_event=q, bid=price - half,
                                   bid_size=rng.choice([100, 200, 300]), ask=price + half,
                                   ask_size=rng.choice([100, 200, 300])))
    for r in trades + quotes:
        r["arrival"] = r["ts_event"] + rng.randrange(0, 2 * NS)
    # Late trades: arrive 10 minutes after their event time, never in the first 6 minutes, and
    # before the last on-time rows, so every window they belong to has closed when they come.
    window = [r for r in trades if T0 + 6 * 60 * NS < r["ts_event"] < T0 + 19 * 60 * NS]
    for r in rng.sample(window, 12):
        r["arrival"] = r["ts_event"] + 10 * 60 * NS
        r["late"] = 1
    trades.sort(key=lambda r: (r["arrival"], r["instrument_id"]))
    quotes.sort(key=lambda r: (r["arrival"], r["instrument_id"]))
    return trades, quotes


def write_csv(path, rows, cols):
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(str(r[c]) for c in cols) + "\n")


def value(v):
    if isinstance(v, Decimal):
        return float(v)
    if hasattr(v, "timestamp"):
        raise SystemExit("expected rows must carry times as integer nanoseconds")
    return v


def sections(text):
    out, name = {}, None
    for line in text.splitlines():
        key = line[3:].replace(":", " ").split(" ")[0] if line.startswith("-- ") else None
        if key in ("tickflow", "duckdb", "expected", "mode", "lateness"):
            if key in ("mode", "lateness"):
                out[key] = line.split(":", 1)[1].strip()
                name = None
            else:
                name = key
                out[name] = []
        elif name:
            out[name].append(line)
    return out


def main():
    DATA.mkdir(exist_ok=True)
    trades, quotes = generate()
    write_csv(DATA / "trades.csv", trades,
              ["arrival", "instrument_id", "symbol", "ts_event", "price", "size", "aggressor", "late"])
    write_csv(DATA / "quotes.csv", quotes,
              ["arrival", "instrument_id", "symbol", "ts_event", "bid", "bid_size", "ask", "ask_size"])
    con = duckdb.connect()
    con.execute(f"CREATE TABLE all_trades AS SELECT * FROM read_csv('{DATA / 'trades.csv'}', header=true, "
                "columns={'arrival':'BIGINT','instrument_id':'UINTEGER','symbol':'VARCHAR','ts_event':'BIGINT',"
                "'price':'DECIMAL(38,9)','size':'DECIMAL(38,9)','aggressor':'VARCHAR','late':'INTEGER'})")
    con.execute(f"CREATE TABLE quotes AS SELECT * FROM read_csv('{DATA / 'quotes.csv'}', header=true, "
                "columns={'arrival':'BIGINT','instrument_id':'UINTEGER','symbol':'VARCHAR','ts_event':'BIGINT',"
                "'bid':'DECIMAL(38,9)','bid_size':'DECIMAL(38,9)','ask':'DECIMAL(38,9)','ask_size':'DECIMAL(38,9)'})")
    for case in sorted(CASES.glob("*.sql")):
        s = sections(case.read_text())
        plain = s.get("mode") == "plain"
        con.execute("CREATE OR REPLACE VIEW trades AS SELECT * FROM all_trades" + ("" if plain else " WHERE late = 0"))
        cur = con.execute("\n".join(s["duckdb"]))
        cols = [d[0] for d in cur.description]
        rows = [json.dumps({c: value(v) for c, v in zip(cols, row)}, sort_keys=True) for row in cur.fetchall()]
        rows.sort()
        text = case.read_text()
        head = text[: text.index("-- expected")]
        case.write_text(head + "-- expected (written by make_cases.py from DuckDB " + duckdb.__version__ + ")\n" + "\n".join(rows) + "\n")
        print(f"{case.name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
