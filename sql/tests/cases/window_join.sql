-- Two streams joined within the same one-minute window: trade count beside quote statistics.
-- tickflow
SELECT t.symbol, t.window_start, t.trades, q.quotes, q.mean_spread, q.max_ask
FROM (SELECT symbol, window_start, count(*) AS trades
      FROM tumble('trades', 'ts_event', INTERVAL '1 minute') GROUP BY symbol, window_start) t
JOIN (SELECT symbol, window_start, count(*) AS quotes,
             avg(CAST(ask - bid AS DOUBLE)) AS mean_spread, max(ask) AS max_ask
      FROM tumble('quotes', 'ts_event', INTERVAL '1 minute') GROUP BY symbol, window_start) q
  ON t.symbol = q.symbol AND t.window_start = q.window_start
-- duckdb
SELECT t.symbol, t.window_start, t.trades, q.quotes, q.mean_spread, q.max_ask
FROM (SELECT symbol, ts_event // 60000000000 * 60000000000 AS window_start, count(*) AS trades
      FROM trades GROUP BY ALL) t
JOIN (SELECT symbol, ts_event // 60000000000 * 60000000000 AS window_start, count(*) AS quotes,
             avg(CAST(ask - bid AS DOUBLE)) AS mean_spread, max(ask) AS max_ask
      FROM quotes GROUP BY ALL) q
  ON t.symbol = q.symbol AND t.window_start = q.window_start
-- expected (written by make_cases.py from DuckDB 2.0.1)
{"max_ask": 100.74, "mean_spread": 0.031111111111111114, "quotes": 18, "symbol": "AAA", "trades": 22, "window_start": 1700001540000000000}
{"max_ask": 100.77, "mean_spread": 0.032500000000000015, "quotes": 32, "symbol": "AAA", "trades": 37, "window_start": 1700001720000000000}
{"max_ask": 100.8, "mean_spread": 0.03500000000000001, "quotes": 20, "symbol": "AAA", "trades": 21, "window_start": 1700001600000000000}
{"max_ask": 100.81, "mean_spread": 0.03461538461538463, "quotes": 26, "symbol": "AAA", "trades": 31, "window_start": 1700001480000000000}
{"max_ask": 100.81, "mean_spread": 0.03500000000000001, "quotes": 20, "symbol": "AAA", "trades": 21, "window_start": 1700001660000000000}
{"max_ask": 100.84, "mean_spread": 0.03764705882352942, "quotes": 17, "symbol": "AAA", "trades": 19, "window_start": 1700001780000000000}
{"max_ask": 100.92, "mean_spread": 0.04044444444444446, "quotes": 45, "symbol": "AAA", "trades": 52, "window_start": 1700001420000000000}
{"max_ask": 100.99, "mean_spread": 0.030000000000000006, "quotes": 20, "symbol": "AAA", "trades": 21, "window_start": 1700001240000000000}
{"max_ask": 101.0, "mean_spread": 0.038490566037735874, "quotes": 53, "symbol": "AAA", "trades": 61, "window_start": 1700001180000000000}
{"max_ask": 101.02, "mean_spread": 0.03916666666666668, "quotes": 24, "symbol": "AAA", "trades": 26, "window_start": 1700001360000000000}
{"max_ask": 101.03, "mean_spread": 0.03791666666666669, "quotes": 48, "symbol": "AAA", "trades": 56, "window_start": 1700001120000000000}
{"max_ask": 101.04, "mean_spread": 0.036153846153846175, "quotes": 52, "symbol": "AAA", "trades": 60, "window_start": 1700001300000000000}
{"max_ask": 101.14, "mean_spread": 0.037777777777777785, "quotes": 18, "symbol": "AAA", "trades": 23, "window_start": 1700001060000000000}
{"max_ask": 101.19, "mean_spread": 0.032000000000000015, "quotes": 20, "symbol": "AAA", "trades": 20, "window_start": 1700001000000000000}
{"max_ask": 101.28, "mean_spread": 0.03423728813559324, "quotes": 59, "symbol": "AAA", "trades": 68, "window_start": 1700000040000000000}
{"max_ask": 101.32, "mean_spread": 0.032727272727272744, "quotes": 33, "symbol": "AAA", "trades": 39, "window_start": 1699999980000000000}
{"max_ask": 101.33, "mean_spread": 0.036842105263157905, "quotes": 19, "symbol": "AAA", "trades": 20, "window_start": 1700000220000000000}
{"max_ask": 101.33, "mean_spread": 0.03783783783783786, "quotes": 37, "symbol": "AAA", "trades": 37, "window_start": 1700000940000000000}
{"max_ask": 101.34, "mean_spread": 0.0347169811320755, "quotes": 53, "symbol": "AAA", "trades": 58, "window_start": 1700000400000000000}
{"max_ask": 101.34, "mean_spread": 0.036969696969696986, "quotes": 33, "symbol": "AAA", "trades": 37, "window_start": 1700000100000000000}
{"max_ask": 101.35, "mean_spread": 0.03857142857142859, "quotes": 28, "symbol": "AAA", "trades": 33, "window_start": 1700000160000000000}
{"max_ask": 101.4, "mean_spread": 0.037500000000000026, "quotes": 48, "symbol": "AAA", "trades": 52, "window_start": 1700000280000000000}
{"max_ask": 101.42, "mean_spread": 0.03789473684210527, "quotes": 19, "symbol": "AAA", "trades": 21, "window_start": 1700000340000000000}
{"max_ask": 101.45, "mean_spread": 0.03640000000000002, "quotes": 50, "symbol": "AAA", "trades": 56, "window_start": 1700000520000000000}
{"max_ask": 101.45, "mean_spread": 0.03750000000000001, "quotes": 24, "symbol": "AAA", "trades": 27, "window_start": 1700000880000000000}
{"max_ask": 101.45, "mean_spread": 0.03762711864406782, "quotes": 59, "symbol": "AAA", "trades": 63, "window_start": 1700000460000000000}
{"max_ask": 101.46, "mean_spread": 0.032916666666666684, "quotes": 48, "symbol": "AAA", "trades": 50, "window_start": 1700000580000000000}
{"max_ask": 101.47, "mean_spread": 0.03590909090909093, "quotes": 44, "symbol": "AAA", "trades": 45, "window_start": 1700000700000000000}
{"max_ask": 101.47, "mean_spread": 0.03653846153846156, "quotes": 52, "symbol": "AAA", "trades": 56, "window_start": 1700000760000000000}
{"max_ask": 101.53, "mean_spread": 0.03200000000000001, "quotes": 25, "symbol": "AAA", "trades": 27, "window_start": 1700000640000000000}
{"max_ask": 101.53, "mean_spread": 0.03368421052631581, "quotes": 57, "symbol": "AAA", "trades": 62, "window_start": 1700000820000000000}
{"max_ask": 249.33, "mean_spread": 0.03534883720930234, "quotes": 43, "symbol": "CCC", "trades": 46, "window_start": 1700000820000000000}
{"max_ask": 249.44, "mean_spread": 0.03729729729729732, "quotes": 37, "symbol": "CCC", "trades": 39, "window_start": 1700000760000000000}
{"max_ask": 249.46, "mean_spread": 0.035757575757575766, "quotes": 33, "symbol": "CCC", "trades": 36, "window_start": 1700000880000000000}
{"max_ask": 249.51, "mean_spread": 0.03785714285714288, "quotes": 56, "symbol": "CCC", "trades": 61, "window_start": 1700000940000000000}
{"max_ask": 249.6, "mean_spread": 0.03636363636363638, "quotes": 44, "symbol": "CCC", "trades": 45, "window_start": 1700000700000000000}
{"max_ask": 249.63, "mean_spread": 0.03272727272727274, "quotes": 22, "symbol": "CCC", "trades": 25, "window_start": 1700001000000000000}
{"max_ask": 249.69, "mean_spread": 0.030344827586206907, "quotes": 29, "symbol": "CCC", "trades": 32, "window_start": 1700001480000000000}
{"max_ask": 249.69, "mean_spread": 0.03611111111111113, "quotes": 36, "symbol": "CCC", "trades": 41, "window_start": 1700000640000000000}
{"max_ask": 249.72, "mean_spread": 0.037142857142857144, "quotes": 14, "symbol": "CCC", "trades": 19, "window_start": 1700001780000000000}
{"max_ask": 249.75, "mean_spread": 0.03463414634146343, "quotes": 41, "symbol": "CCC", "trades": 53, "window_start": 1700001660000000000}
{"max_ask": 249.75, "mean_spread": 0.03520000000000002, "quotes": 50, "symbol": "CCC", "trades": 56, "window_start": 1700001720000000000}
{"max_ask": 249.77, "mean_spread": 0.034000000000000016, "quotes": 30, "symbol": "CCC", "trades": 36, "window_start": 1700001600000000000}
{"max_ask": 249.77, "mean_spread": 0.034400000000000014, "quotes": 25, "symbol": "CCC", "trades": 28, "window_start": 1700001540000000000}
{"max_ask": 249.77, "mean_spread": 0.035813953488372116, "quotes": 43, "symbol": "CCC", "trades": 46, "window_start": 1700001420000000000}
{"max_ask": 249.77, "mean_spread": 0.03680000000000001, "quotes": 25, "symbol": "CCC", "trades": 25, "window_start": 1700001120000000000}
{"max_ask": 249.8, "mean_spread": 0.02888888888888889, "quotes": 9, "symbol": "CCC", "trades": 9, "window_start": 1700001360000000000}
{"max_ask": 249.8, "mean_spread": 0.03358490566037738, "quotes": 53, "symbol": "CCC", "trades": 60, "window_start": 1700001060000000000}
{"max_ask": 249.8, "mean_spread": 0.03642857142857144, "quotes": 56, "symbol": "CCC", "trades": 61, "window_start": 1700001180000000000}
{"max_ask": 249.81, "mean_spread": 0.03666666666666669, "quotes": 30, "symbol": "CCC", "trades": 33, "window_start": 1700001240000000000}
{"max_ask": 249.81, "mean_spread": 0.04, "quotes": 3, "symbol": "CCC", "trades": 3, "window_start": 1700001300000000000}
{"max_ask": 249.83, "mean_spread": 0.031428571428571424, "quotes": 14, "symbol": "CCC", "trades": 14, "window_start": 1700000580000000000}
{"max_ask": 249.88, "mean_spread": 0.033750000000000016, "quotes": 48, "symbol": "CCC", "trades": 57, "window_start": 1700000520000000000}
{"max_ask": 249.9, "mean_spread": 0.034838709677419366, "quotes": 31, "symbol": "CCC", "trades": 37, "window_start": 1700000400000000000}
{"max_ask": 249.92, "mean_spread": 0.032258064516129045, "quotes": 31, "symbol": "CCC", "trades": 34, "window_start": 1700000460000000000}
{"max_ask": 250.04, "mean_spread": 0.03655172413793105, "quotes": 58, "symbol": "CCC", "trades": 60, "window_start": 1700000340000000000}
{"max_ask": 250.05, "mean_spread": 0.030000000000000006, "quotes": 22, "symbol": "CCC", "trades": 24, "window_start": 1699999980000000000}
{"max_ask": 250.12, "mean_spread": 0.037647058823529436, "quotes": 51, "symbol": "CCC", "trades": 57, "window_start": 1700000280000000000}
{"max_ask": 250.19, "mean_spread": 0.03607843137254904, "quotes": 51, "symbol": "CCC", "trades": 54, "window_start": 1700000040000000000}
{"max_ask": 250.21, "mean_spread": 0.035555555555555576, "quotes": 54, "symbol": "CCC", "trades": 59, "window_start": 1700000220000000000}
{"max_ask": 250.22, "mean_spread": 0.027000000000000003, "quotes": 20, "symbol": "CCC", "trades": 24, "window_start": 1700000160000000000}
{"max_ask": 250.25, "mean_spread": 0.037142857142857165, "quotes": 49, "symbol": "CCC", "trades": 51, "window_start": 1700000100000000000}
{"max_ask": 46.83, "mean_spread": 0.03307692307692309, "quotes": 26, "symbol": "BBB", "trades": 32, "window_start": 1700000400000000000}
{"max_ask": 46.9, "mean_spread": 0.03853658536585368, "quotes": 41, "symbol": "BBB", "trades": 44, "window_start": 1700001120000000000}
{"max_ask": 46.93, "mean_spread": 0.03896551724137934, "quotes": 58, "symbol": "BBB", "trades": 58, "window_start": 1700000460000000000}
{"max_ask": 46.93, "mean_spread": 0.042857142857142864, "quotes": 14, "symbol": "BBB", "trades": 21, "window_start": 1700001780000000000}
{"max_ask": 46.96, "mean_spread": 0.03571428571428574, "quotes": 56, "symbol": "BBB", "trades": 66, "window_start": 1700001720000000000}
{"max_ask": 46.98, "mean_spread": 0.03483870967741938, "quotes": 62, "symbol": "BBB", "trades": 65, "window_start": 1700001060000000000}
{"max_ask": 46.98, "mean_spread": 0.04480000000000001, "quotes": 25, "symbol": "BBB", "trades": 25, "window_start": 1700000520000000000}
{"max_ask": 47.0, "mean_spread": 0.033000000000000015, "quotes": 40, "symbol": "BBB", "trades": 44, "window_start": 1700000940000000000}
{"max_ask": 47.01, "mean_spread": 0.03243243243243245, "quotes": 37, "symbol": "BBB", "trades": 43, "window_start": 1700001180000000000}
{"max_ask": 47.02, "mean_spread": 0.034347826086956544, "quotes": 46, "symbol": "BBB", "trades": 54, "window_start": 1700001240000000000}
{"max_ask": 47.03, "mean_spread": 0.034468085106383, "quotes": 47, "symbol": "BBB", "trades": 51, "window_start": 1700001660000000000}
{"max_ask": 47.03, "mean_spread": 0.03567567567567569, "quotes": 37, "symbol": "BBB", "trades": 45, "window_start": 1700001360000000000}
{"max_ask": 47.03, "mean_spread": 0.040000000000000015, "quotes": 23, "symbol": "BBB", "trades": 27, "window_start": 1700001000000000000}
{"max_ask": 47.04, "mean_spread": 0.030357142857142878, "quotes": 56, "symbol": "BBB", "trades": 59, "window_start": 1700001600000000000}
{"max_ask": 47.05, "mean_spread": 0.034782608695652195, "quotes": 46, "symbol": "BBB", "trades": 50, "window_start": 1700001300000000000}
{"max_ask": 47.05, "mean_spread": 0.03636363636363638, "quotes": 55, "symbol": "BBB", "trades": 56, "window_start": 1700000700000000000}
{"max_ask": 47.09, "mean_spread": 0.03636363636363638, "quotes": 33, "symbol": "BBB", "trades": 37, "window_start": 1700000760000000000}
{"max_ask": 47.1, "mean_spread": 0.03689655172413796, "quotes": 58, "symbol": "BBB", "trades": 64, "window_start": 1700000340000000000}
{"max_ask": 47.12, "mean_spread": 0.03103448275862071, "quotes": 58, "symbol": "BBB", "trades": 63, "window_start": 1700000580000000000}
{"max_ask": 47.12, "mean_spread": 0.032777777777777795, "quotes": 36, "symbol": "BBB", "trades": 42, "window_start": 1700000880000000000}
{"max_ask": 47.12, "mean_spread": 0.036000000000000025, "quotes": 45, "symbol": "BBB", "trades": 49, "window_start": 1700001420000000000}
{"max_ask": 47.12, "mean_spread": 0.040000000000000015, "quotes": 23, "symbol": "BBB", "trades": 23, "window_start": 1700000280000000000}
{"max_ask": 47.13, "mean_spread": 0.034117647058823544, "quotes": 34, "symbol": "BBB", "trades": 36, "window_start": 1700000100000000000}
{"max_ask": 47.13, "mean_spread": 0.034509803921568646, "quotes": 51, "symbol": "BBB", "trades": 58, "window_start": 1700001480000000000}
{"max_ask": 47.13, "mean_spread": 0.03481481481481484, "quotes": 54, "symbol": "BBB", "trades": 61, "window_start": 1700000640000000000}
{"max_ask": 47.14, "mean_spread": 0.03571428571428573, "quotes": 42, "symbol": "BBB", "trades": 47, "window_start": 1700000040000000000}
{"max_ask": 47.14, "mean_spread": 0.03607843137254904, "quotes": 51, "symbol": "BBB", "trades": 56, "window_start": 1700000820000000000}
{"max_ask": 47.15, "mean_spread": 0.032758620689655196, "quotes": 58, "symbol": "BBB", "trades": 64, "window_start": 1700001540000000000}
{"max_ask": 47.18, "mean_spread": 0.032000000000000015, "quotes": 30, "symbol": "BBB", "trades": 33, "window_start": 1699999980000000000}
{"max_ask": 47.21, "mean_spread": 0.03379310344827589, "quotes": 58, "symbol": "BBB", "trades": 59, "window_start": 1700000220000000000}
{"max_ask": 47.23, "mean_spread": 0.025454545454545455, "quotes": 11, "symbol": "BBB", "trades": 11, "window_start": 1700000160000000000}
