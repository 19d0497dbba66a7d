-- Five-minute statistics of large buyer-initiated trades: a filter before the window.
-- tickflow
SELECT symbol, window_start, count(*) AS n, stddev(price) AS sd, var_pop(price) AS var_pop,
       min(ts_event) AS first_ts, max(ts_event) AS last_ts, sum(size) AS volume
FROM tumble('trades', 'ts_event', INTERVAL '5 minutes')
WHERE aggressor = 'buy' AND size >= 100
GROUP BY symbol, window_start
-- duckdb
SELECT symbol, ts_event // 300000000000 * 300000000000 AS window_start, count(*) AS n,
       stddev_samp(price) AS sd, var_pop(price) AS var_pop, min(ts_event) AS first_ts,
       max(ts_event) AS last_ts, sum(size) AS volume
FROM trades WHERE aggressor = 'buy' AND size >= 100 GROUP BY ALL
-- expected (written by make_cases.py from DuckDB 2.0.1)
{"first_ts": 1700000001077822572, "last_ts": 1700000084810402046, "n": 22, "sd": 0.031167748898959846, "symbol": "BBB", "var_pop": 0.0009272727272727666, "volume": 7500.0, "window_start": 1699999800000000000}
{"first_ts": 1700000001811131922, "last_ts": 1700000094489331933, "n": 21, "sd": 0.05911651127021897, "symbol": "CCC", "var_pop": 0.003328344671201835, "volume": 8500.0, "window_start": 1699999800000000000}
{"first_ts": 1700000004054760927, "last_ts": 1700000097131386609, "n": 32, "sd": 0.04605396553973843, "symbol": "AAA", "var_pop": 0.002054687499999933, "volume": 12700.0, "window_start": 1699999800000000000}
{"first_ts": 1700000103091107113, "last_ts": 1700000388914620352, "n": 76, "sd": 0.09571155496797067, "symbol": "CCC", "var_pop": 0.009040166204987043, "volume": 26800.0, "window_start": 1700000100000000000}
{"first_ts": 1700000108293204360, "last_ts": 1700000397110554479, "n": 33, "sd": 0.03982442527501738, "symbol": "AAA", "var_pop": 0.0015379247015616419, "volume": 13500.0, "window_start": 1700000100000000000}
{"first_ts": 1700000119012140851, "last_ts": 1700000398568832259, "n": 55, "sd": 0.10148991092813955, "symbol": "BBB", "var_pop": 0.010112925619834397, "volume": 23600.0, "window_start": 1700000100000000000}
{"first_ts": 1700000403300158197, "last_ts": 1700000682497843725, "n": 55, "sd": 0.06583419638865153, "symbol": "AAA", "var_pop": 0.004255338842973366, "volume": 20300.0, "window_start": 1700000400000000000}
{"first_ts": 1700000403563374077, "last_ts": 1700000697460222854, "n": 58, "sd": 0.1407343973551283, "symbol": "BBB", "var_pop": 0.019464684898929913, "volume": 21500.0, "window_start": 1700000400000000000}
{"first_ts": 1700000403801842173, "last_ts": 1700000688149589073, "n": 52, "sd": 0.08810387397471367, "symbol": "CCC", "var_pop": 0.007613017751480071, "volume": 20800.0, "window_start": 1700000400000000000}
{"first_ts": 1700000703393635092, "last_ts": 1700000996204377648, "n": 77, "sd": 0.0674739513293642, "symbol": "BBB", "var_pop": 0.004493607691010431, "volume": 33200.0, "window_start": 1700000700000000000}
{"first_ts": 1700000716053822660, "last_ts": 1700000982927578902, "n": 58, "sd": 0.07563884002138506, "symbol": "AAA", "var_pop": 0.005622592152198257, "volume": 18600.0, "window_start": 1700000700000000000}
{"first_ts": 1700000726805390267, "last_ts": 1700000994288118441, "n": 62, "sd": 0.08984680539662819, "symbol": "CCC", "var_pop": 0.007942247658689583, "volume": 21300.0, "window_start": 1700000700000000000}
{"first_ts": 1700001002855729253, "last_ts": 1700001281121432511, "n": 58, "sd": 0.05680253097978947, "symbol": "CCC", "var_pop": 0.0031708977407839084, "volume": 21200.0, "window_start": 1700001000000000000}
{"first_ts": 1700001012590192117, "last_ts": 1700001299605399843, "n": 60, "sd": 0.09487592254079723, "symbol": "AAA", "var_pop": 0.008851416666667899, "volume": 23700.0, "window_start": 1700001000000000000}
{"first_ts": 1700001017207083121, "last_ts": 1700001295799830023, "n": 56, "sd": 0.06563154729244129, "symbol": "BBB", "var_pop": 0.004230580357142815, "volume": 19200.0, "window_start": 1700001000000000000}
{"first_ts": 1700001301567390866, "last_ts": 1700001598795525735, "n": 62, "sd": 0.09960365665388753, "symbol": "AAA", "var_pop": 0.009760874089489618, "volume": 25800.0, "window_start": 1700001300000000000}
{"first_ts": 1700001308141423231, "last_ts": 1700001596136838759, "n": 79, "sd": 0.047244418226433715, "symbol": "BBB", "var_pop": 0.0022037814452813445, "volume": 29000.0, "window_start": 1700001300000000000}
{"first_ts": 1700001361798579545, "last_ts": 1700001599305535760, "n": 29, "sd": 0.04128180219077616, "symbol": "CCC", "var_pop": 0.0016454221165280824, "volume": 9500.0, "window_start": 1700001300000000000}
{"first_ts": 1700001600151523491, "last_ts": 1700001798047886779, "n": 28, "sd": 0.03384332091225977, "symbol": "AAA", "var_pop": 0.0011044642857141209, "volume": 10800.0, "window_start": 1700001600000000000}
{"first_ts": 1700001601710589849, "last_ts": 1700001800005831964, "n": 62, "sd": 0.043998040915951615, "symbol": "BBB", "var_pop": 0.00190460457856366, "volume": 25000.0, "window_start": 1700001600000000000}
{"first_ts": 1700001629681541418, "last_ts": 1700001832808908943, "n": 54, "sd": 0.024699451270838127, "symbol": "CCC", "var_pop": 0.0005987654320975347, "volume": 21400.0, "window_start": 1700001600000000000}
