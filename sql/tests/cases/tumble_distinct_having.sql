-- Per symbol and minute, only busy minutes (HAVING): distinct price levels, the size range,
-- and the volume of sells (an aggregate FILTER).
-- tickflow
SELECT symbol, window_start, count(DISTINCT price) AS levels, max(size) - min(size) AS size_range,
       count(*) AS n, sum(size) FILTER (WHERE aggressor = 'sell') AS sold
FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
GROUP BY symbol, window_start
HAVING count(*) >= 40
-- duckdb
SELECT symbol, ts_event // 60000000000 * 60000000000 AS window_start,
       count(DISTINCT price) AS levels, max(size) - min(size) AS size_range, count(*) AS n,
       sum(size) FILTER (WHERE aggressor = 'sell') AS sold
FROM trades GROUP BY ALL HAVING count(*) >= 40
-- expected (written by make_cases.py from DuckDB 2.0.1)
{"levels": 10, "n": 41, "size_range": 999.0, "sold": 4542.0, "symbol": "CCC", "window_start": 1700000640000000000}
{"levels": 10, "n": 44, "size_range": 999.0, "sold": 4939.0, "symbol": "BBB", "window_start": 1700001120000000000}
{"levels": 10, "n": 58, "size_range": 999.0, "sold": 7652.0, "symbol": "BBB", "window_start": 1700001480000000000}
{"levels": 10, "n": 61, "size_range": 999.0, "sold": 7833.0, "symbol": "CCC", "window_start": 1700000940000000000}
{"levels": 11, "n": 51, "size_range": 999.0, "sold": 4789.0, "symbol": "BBB", "window_start": 1700001660000000000}
{"levels": 11, "n": 56, "size_range": 999.0, "sold": 7604.0, "symbol": "BBB", "window_start": 1700000700000000000}
{"levels": 11, "n": 61, "size_range": 999.0, "sold": 7450.0, "symbol": "CCC", "window_start": 1700001180000000000}
{"levels": 11, "n": 61, "size_range": 999.0, "sold": 7728.0, "symbol": "BBB", "window_start": 1700000640000000000}
{"levels": 12, "n": 43, "size_range": 999.0, "sold": 4391.0, "symbol": "BBB", "window_start": 1700001180000000000}
{"levels": 12, "n": 56, "size_range": 999.0, "sold": 4910.0, "symbol": "AAA", "window_start": 1700000760000000000}
{"levels": 12, "n": 57, "size_range": 999.0, "sold": 3690.0, "symbol": "CCC", "window_start": 1700000280000000000}
{"levels": 12, "n": 66, "size_range": 999.0, "sold": 6373.0, "symbol": "BBB", "window_start": 1700001720000000000}
{"levels": 13, "n": 45, "size_range": 999.0, "sold": 6530.0, "symbol": "AAA", "window_start": 1700000700000000000}
{"levels": 13, "n": 51, "size_range": 999.0, "sold": 3932.0, "symbol": "CCC", "window_start": 1700000100000000000}
{"levels": 13, "n": 52, "size_range": 999.0, "sold": 5398.0, "symbol": "AAA", "window_start": 1700000280000000000}
{"levels": 13, "n": 58, "size_range": 999.0, "sold": 7355.0, "symbol": "AAA", "window_start": 1700000400000000000}
{"levels": 13, "n": 59, "size_range": 999.0, "sold": 6041.0, "symbol": "CCC", "window_start": 1700000220000000000}
{"levels": 13, "n": 61, "size_range": 999.0, "sold": 5118.0, "symbol": "AAA", "window_start": 1700001180000000000}
{"levels": 14, "n": 60, "size_range": 999.0, "sold": 3124.0, "symbol": "AAA", "window_start": 1700001300000000000}
{"levels": 14, "n": 63, "size_range": 999.0, "sold": 7340.0, "symbol": "BBB", "window_start": 1700000580000000000}
{"levels": 14, "n": 64, "size_range": 999.0, "sold": 5811.0, "symbol": "BBB", "window_start": 1700001540000000000}
{"levels": 15, "n": 50, "size_range": 999.0, "sold": 2809.0, "symbol": "BBB", "window_start": 1700001300000000000}
{"levels": 15, "n": 59, "size_range": 999.0, "sold": 7244.0, "symbol": "BBB", "window_start": 1700001600000000000}
{"levels": 15, "n": 65, "size_range": 999.0, "sold": 5697.0, "symbol": "BBB", "window_start": 1700001060000000000}
{"levels": 15, "n": 68, "size_range": 999.0, "sold": 8102.0, "symbol": "AAA", "window_start": 1700000040000000000}
{"levels": 16, "n": 49, "size_range": 999.0, "sold": 4552.0, "symbol": "BBB", "window_start": 1700001420000000000}
{"levels": 16, "n": 52, "size_range": 999.0, "sold": 4500.0, "symbol": "AAA", "window_start": 1700001420000000000}
{"levels": 16, "n": 62, "size_range": 999.0, "sold": 3102.0, "symbol": "AAA", "window_start": 1700000820000000000}
{"levels": 17, "n": 42, "size_range": 999.0, "sold": 2013.0, "symbol": "BBB", "window_start": 1700000880000000000}
{"levels": 17, "n": 54, "size_range": 999.0, "sold": 3552.0, "symbol": "CCC", "window_start": 1700000040000000000}
{"levels": 17, "n": 56, "size_range": 999.0, "sold": 4344.0, "symbol": "AAA", "window_start": 1700001120000000000}
{"levels": 17, "n": 57, "size_range": 999.0, "sold": 7279.0, "symbol": "CCC", "window_start": 1700000520000000000}
{"levels": 17, "n": 59, "size_range": 999.0, "sold": 5873.0, "symbol": "BBB", "window_start": 1700000220000000000}
{"levels": 17, "n": 60, "size_range": 999.0, "sold": 5978.0, "symbol": "CCC", "window_start": 1700001060000000000}
{"levels": 18, "n": 54, "size_range": 999.0, "sold": 6038.0, "symbol": "BBB", "window_start": 1700001240000000000}
{"levels": 19, "n": 60, "size_range": 999.0, "sold": 6392.0, "symbol": "CCC", "window_start": 1700000340000000000}
{"levels": 19, "n": 63, "size_range": 999.0, "sold": 7491.0, "symbol": "AAA", "window_start": 1700000460000000000}
{"levels": 20, "n": 45, "size_range": 999.0, "sold": 1837.0, "symbol": "CCC", "window_start": 1700000700000000000}
{"levels": 20, "n": 58, "size_range": 999.0, "sold": 5219.0, "symbol": "BBB", "window_start": 1700000460000000000}
{"levels": 23, "n": 64, "size_range": 999.0, "sold": 7359.0, "symbol": "BBB", "window_start": 1700000340000000000}
{"levels": 6, "n": 45, "size_range": 999.0, "sold": 4377.0, "symbol": "BBB", "window_start": 1700001360000000000}
{"levels": 7, "n": 46, "size_range": 999.0, "sold": 3816.0, "symbol": "CCC", "window_start": 1700000820000000000}
{"levels": 7, "n": 47, "size_range": 999.0, "sold": 5952.0, "symbol": "BBB", "window_start": 1700000040000000000}
{"levels": 7, "n": 50, "size_range": 999.0, "sold": 4208.0, "symbol": "AAA", "window_start": 1700000580000000000}
{"levels": 9, "n": 44, "size_range": 999.0, "sold": 4914.0, "symbol": "BBB", "window_start": 1700000940000000000}
{"levels": 9, "n": 46, "size_range": 999.0, "sold": 5225.0, "symbol": "CCC", "window_start": 1700001420000000000}
{"levels": 9, "n": 53, "size_range": 999.0, "sold": 4475.0, "symbol": "CCC", "window_start": 1700001660000000000}
{"levels": 9, "n": 56, "size_range": 999.0, "sold": 12635.0, "symbol": "AAA", "window_start": 1700000520000000000}
{"levels": 9, "n": 56, "size_range": 999.0, "sold": 5182.0, "symbol": "BBB", "window_start": 1700000820000000000}
{"levels": 9, "n": 56, "size_range": 999.0, "sold": 8112.0, "symbol": "CCC", "window_start": 1700001720000000000}
