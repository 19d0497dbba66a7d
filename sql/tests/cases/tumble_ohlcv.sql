-- One-minute OHLCV bars per symbol from trades.
-- tickflow
SELECT symbol, window_start, window_end, count(*) AS trades,
       first_value(price ORDER BY ts_event) AS open, max(price) AS high, min(price) AS low,
       last_value(price ORDER BY ts_event) AS close, sum(size) AS volume, avg(price) AS mean_price
FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
GROUP BY symbol, window_start, window_end
-- duckdb
SELECT symbol, ts_event // 60000000000 * 60000000000 AS window_start,
       ts_event // 60000000000 * 60000000000 + 60000000000 AS window_end, count(*) AS trades,
       arg_min(price, ts_event) AS open, max(price) AS high, min(price) AS low,
       arg_max(price, ts_event) AS close, sum(size) AS volume, avg(price) AS mean_price
FROM trades GROUP BY ALL
-- expected (written by make_cases.py from DuckDB 2.0.1)
{"close": 100.7, "high": 100.75, "low": 100.68, "mean_price": 100.71351351351352, "open": 100.72, "symbol": "AAA", "trades": 37, "volume": 8954.0, "window_end": 1700001780000000000, "window_start": 1700001720000000000}
{"close": 100.7, "high": 100.8, "low": 100.69, "mean_price": 100.74290322580646, "open": 100.8, "symbol": "AAA", "trades": 31, "volume": 5506.0, "window_end": 1700001540000000000, "window_start": 1700001480000000000}
{"close": 100.71, "high": 100.73, "low": 100.67, "mean_price": 100.69590909090908, "open": 100.68, "symbol": "AAA", "trades": 22, "volume": 6487.0, "window_end": 1700001600000000000, "window_start": 1700001540000000000}
{"close": 100.71, "high": 100.79, "low": 100.7, "mean_price": 100.73761904761903, "open": 100.78, "symbol": "AAA", "trades": 21, "volume": 2788.0, "window_end": 1700001720000000000, "window_start": 1700001660000000000}
{"close": 100.79, "high": 100.79, "low": 100.69, "mean_price": 100.73619047619047, "open": 100.69, "symbol": "AAA", "trades": 21, "volume": 3812.0, "window_end": 1700001660000000000, "window_start": 1700001600000000000}
{"close": 100.8, "high": 100.82, "low": 100.69, "mean_price": 100.75631578947367, "open": 100.71, "symbol": "AAA", "trades": 19, "volume": 3793.0, "window_end": 1700001840000000000, "window_start": 1700001780000000000}
{"close": 100.81, "high": 100.89, "low": 100.73, "mean_price": 100.80749999999999, "open": 100.85, "symbol": "AAA", "trades": 52, "volume": 9855.0, "window_end": 1700001480000000000, "window_start": 1700001420000000000}
{"close": 100.83, "high": 100.99, "low": 100.81, "mean_price": 100.89923076923077, "open": 100.96, "symbol": "AAA", "trades": 26, "volume": 6433.0, "window_end": 1700001420000000000, "window_start": 1700001360000000000}
{"close": 100.87, "high": 101.02, "low": 100.8, "mean_price": 100.87285714285714, "open": 101.02, "symbol": "AAA", "trades": 56, "volume": 11325.0, "window_end": 1700001180000000000, "window_start": 1700001120000000000}
{"close": 100.94, "high": 100.98, "low": 100.91, "mean_price": 100.94142857142857, "open": 100.95, "symbol": "AAA", "trades": 21, "volume": 5005.0, "window_end": 1700001300000000000, "window_start": 1700001240000000000}
{"close": 100.94, "high": 100.99, "low": 100.87, "mean_price": 100.92245901639345, "open": 100.88, "symbol": "AAA", "trades": 61, "volume": 10840.0, "window_end": 1700001240000000000, "window_start": 1700001180000000000}
{"close": 100.96, "high": 101.03, "low": 100.89, "mean_price": 100.9435, "open": 100.94, "symbol": "AAA", "trades": 60, "volume": 13688.0, "window_end": 1700001360000000000, "window_start": 1700001300000000000}
{"close": 101.03, "high": 101.11, "low": 101.03, "mean_price": 101.05826086956522, "open": 101.11, "symbol": "AAA", "trades": 23, "volume": 7677.0, "window_end": 1700001120000000000, "window_start": 1700001060000000000}
{"close": 101.11, "high": 101.18, "low": 101.11, "mean_price": 101.14099999999999, "open": 101.17, "symbol": "AAA", "trades": 20, "volume": 4078.0, "window_end": 1700001060000000000, "window_start": 1700001000000000000}
{"close": 101.16, "high": 101.26, "low": 101.12, "mean_price": 101.20808823529411, "open": 101.24, "symbol": "AAA", "trades": 68, "volume": 15969.0, "window_end": 1700000100000000000, "window_start": 1700000040000000000}
{"close": 101.19, "high": 101.31, "low": 101.15, "mean_price": 101.24351351351352, "open": 101.29, "symbol": "AAA", "trades": 37, "volume": 9347.0, "window_end": 1700001000000000000, "window_start": 1700000940000000000}
{"close": 101.22, "high": 101.32, "low": 101.19, "mean_price": 101.25793103448277, "open": 101.32, "symbol": "AAA", "trades": 58, "volume": 12762.0, "window_end": 1700000460000000000, "window_start": 1700000400000000000}
{"close": 101.23, "high": 101.3, "low": 101.14, "mean_price": 101.22179487179487, "open": 101.27, "symbol": "AAA", "trades": 39, "volume": 8124.0, "window_end": 1700000040000000000, "window_start": 1699999980000000000}
{"close": 101.28, "high": 101.32, "low": 101.26, "mean_price": 101.29757575757576, "open": 101.3, "symbol": "AAA", "trades": 33, "volume": 9163.0, "window_end": 1700000220000000000, "window_start": 1700000160000000000}
{"close": 101.29, "high": 101.31, "low": 101.16, "mean_price": 101.24513513513514, "open": 101.16, "symbol": "AAA", "trades": 37, "volume": 6355.0, "window_end": 1700000160000000000, "window_start": 1700000100000000000}
{"close": 101.29, "high": 101.42, "low": 101.26, "mean_price": 101.33666666666667, "open": 101.39, "symbol": "AAA", "trades": 27, "volume": 3140.0, "window_end": 1700000940000000000, "window_start": 1700000880000000000}
{"close": 101.31, "high": 101.31, "low": 101.26, "mean_price": 101.28, "open": 101.28, "symbol": "AAA", "trades": 20, "volume": 6577.0, "window_end": 1700000280000000000, "window_start": 1700000220000000000}
{"close": 101.34, "high": 101.4, "low": 101.31, "mean_price": 101.34761904761906, "open": 101.38, "symbol": "AAA", "trades": 21, "volume": 4368.0, "window_end": 1700000400000000000, "window_start": 1700000340000000000}
{"close": 101.37, "high": 101.42, "low": 101.21, "mean_price": 101.35000000000001, "open": 101.21, "symbol": "AAA", "trades": 63, "volume": 11345.0, "window_end": 1700000520000000000, "window_start": 1700000460000000000}
{"close": 101.38, "high": 101.39, "low": 101.27, "mean_price": 101.33057692307692, "open": 101.31, "symbol": "AAA", "trades": 52, "volume": 9529.0, "window_end": 1700000340000000000, "window_start": 1700000280000000000}
{"close": 101.39, "high": 101.51, "low": 101.35, "mean_price": 101.42790322580645, "open": 101.4, "symbol": "AAA", "trades": 62, "volume": 8783.0, "window_end": 1700000880000000000, "window_start": 1700000820000000000}
{"close": 101.41, "high": 101.43, "low": 101.34, "mean_price": 101.37267857142857, "open": 101.37, "symbol": "AAA", "trades": 56, "volume": 15071.0, "window_end": 1700000580000000000, "window_start": 1700000520000000000}
{"close": 101.41, "high": 101.45, "low": 101.34, "mean_price": 101.40196428571429, "open": 101.44, "symbol": "AAA", "trades": 56, "volume": 7946.0, "window_end": 1700000820000000000, "window_start": 1700000760000000000}
{"close": 101.42, "high": 101.43, "low": 101.37, "mean_price": 101.3916, "open": 101.41, "symbol": "AAA", "trades": 50, "volume": 9904.0, "window_end": 1700000640000000000, "window_start": 1700000580000000000}
{"close": 101.44, "high": 101.46, "low": 101.34, "mean_price": 101.39066666666666, "open": 101.46, "symbol": "AAA", "trades": 45, "volume": 12791.0, "window_end": 1700000760000000000, "window_start": 1700000700000000000}
{"close": 101.48, "high": 101.5, "low": 101.38, "mean_price": 101.44037037037036, "open": 101.4, "symbol": "AAA", "trades": 27, "volume": 7966.0, "window_end": 1700000700000000000, "window_start": 1700000640000000000}
{"close": 249.25, "high": 249.42, "low": 249.21, "mean_price": 249.32666666666665, "open": 249.39, "symbol": "CCC", "trades": 39, "volume": 8140.0, "window_end": 1700000820000000000, "window_start": 1700000760000000000}
{"close": 249.29, "high": 249.3, "low": 249.24, "mean_price": 249.26978260869564, "open": 249.25, "symbol": "CCC", "trades": 46, "volume": 8036.0, "window_end": 1700000880000000000, "window_start": 1700000820000000000}
{"close": 249.37, "high": 249.58, "low": 249.35, "mean_price": 249.47311111111114, "open": 249.57, "symbol": "CCC", "trades": 45, "volume": 8565.0, "window_end": 1700000760000000000, "window_start": 1700000700000000000}
{"close": 249.43, "high": 249.44, "low": 249.27, "mean_price": 249.35333333333332, "open": 249.29, "symbol": "CCC", "trades": 36, "volume": 5570.0, "window_end": 1700000940000000000, "window_start": 1700000880000000000}
{"close": 249.45, "high": 249.48, "low": 249.39, "mean_price": 249.44245901639343, "open": 249.43, "symbol": "CCC", "trades": 61, "volume": 14304.0, "window_end": 1700001000000000000, "window_start": 1700000940000000000}
{"close": 249.59, "high": 249.67, "low": 249.58, "mean_price": 249.62829268292683, "open": 249.63, "symbol": "CCC", "trades": 41, "volume": 10169.0, "window_end": 1700000700000000000, "window_start": 1700000640000000000}
{"close": 249.61, "high": 249.61, "low": 249.46, "mean_price": 249.53439999999998, "open": 249.46, "symbol": "CCC", "trades": 25, "volume": 3262.0, "window_end": 1700001060000000000, "window_start": 1700001000000000000}
{"close": 249.63, "high": 249.66, "low": 249.58, "mean_price": 249.61375, "open": 249.65, "symbol": "CCC", "trades": 32, "volume": 4899.0, "window_end": 1700001540000000000, "window_start": 1700001480000000000}
{"close": 249.63, "high": 249.69, "low": 249.62, "mean_price": 249.65894736842108, "open": 249.65, "symbol": "CCC", "trades": 19, "volume": 4832.0, "window_end": 1700001840000000000, "window_start": 1700001780000000000}
{"close": 249.65, "high": 249.8, "low": 249.65, "mean_price": 249.7292857142857, "open": 249.8, "symbol": "CCC", "trades": 14, "volume": 3381.0, "window_end": 1700000640000000000, "window_start": 1700000580000000000}
{"close": 249.66, "high": 249.72, "low": 249.63, "mean_price": 249.6705357142857, "open": 249.72, "symbol": "CCC", "trades": 56, "volume": 15205.0, "window_end": 1700001780000000000, "window_start": 1700001720000000000}
{"close": 249.67, "high": 249.74, "low": 249.66, "mean_price": 249.6991304347826, "open": 249.74, "symbol": "CCC", "trades": 46, "volume": 10206.0, "window_end": 1700001480000000000, "window_start": 1700001420000000000}
{"close": 249.67, "high": 249.75, "low": 249.67, "mean_price": 249.6956, "open": 249.75, "symbol": "CCC", "trades": 25, "volume": 5913.0, "window_end": 1700001180000000000, "window_start": 1700001120000000000}
{"close": 249.72, "high": 249.73, "low": 249.64, "mean_price": 249.6924528301887, "open": 249.71, "symbol": "CCC", "trades": 53, "volume": 9952.0, "window_end": 1700001720000000000, "window_start": 1700001660000000000}
{"close": 249.72, "high": 249.79, "low": 249.71, "mean_price": 249.7388888888889, "open": 249.79, "symbol": "CCC", "trades": 9, "volume": 536.0, "window_end": 1700001420000000000, "window_start": 1700001360000000000}
{"close": 249.73, "high": 249.74, "low": 249.68, "mean_price": 249.715, "open": 249.74, "symbol": "CCC", "trades": 36, "volume": 10101.0, "window_end": 1700001660000000000, "window_start": 1700001600000000000}
{"close": 249.74, "high": 249.76, "low": 249.6, "mean_price": 249.6867857142857, "open": 249.61, "symbol": "CCC", "trades": 28, "volume": 3123.0, "window_end": 1700001600000000000, "window_start": 1700001540000000000}
{"close": 249.74, "high": 249.78, "low": 249.61, "mean_price": 249.71366666666665, "open": 249.63, "symbol": "CCC", "trades": 60, "volume": 12039.0, "window_end": 1700001120000000000, "window_start": 1700001060000000000}
{"close": 249.78, "high": 249.78, "low": 249.67, "mean_price": 249.70934426229508, "open": 249.68, "symbol": "CCC", "trades": 61, "volume": 13579.0, "window_end": 1700001240000000000, "window_start": 1700001180000000000}
{"close": 249.78, "high": 249.78, "low": 249.69, "mean_price": 249.72515151515154, "open": 249.76, "symbol": "CCC", "trades": 33, "volume": 10028.0, "window_end": 1700001300000000000, "window_start": 1700001240000000000}
{"close": 249.78, "high": 249.78, "low": 249.77, "mean_price": 249.77666666666667, "open": 249.78, "symbol": "CCC", "trades": 3, "volume": 1051.0, "window_end": 1700001360000000000, "window_start": 1700001300000000000}
{"close": 249.78, "high": 249.87, "low": 249.7, "mean_price": 249.80315789473684, "open": 249.77, "symbol": "CCC", "trades": 57, "volume": 16681.0, "window_end": 1700000580000000000, "window_start": 1700000520000000000}
{"close": 249.78, "high": 249.9, "low": 249.78, "mean_price": 249.8367647058824, "open": 249.87, "symbol": "CCC", "trades": 34, "volume": 7200.0, "window_end": 1700000520000000000, "window_start": 1700000460000000000}
{"close": 249.82, "high": 250.02, "low": 249.8, "mean_price": 249.92783333333333, "open": 249.99, "symbol": "CCC", "trades": 60, "volume": 12233.0, "window_end": 1700000400000000000, "window_start": 1700000340000000000}
{"close": 249.85, "high": 249.89, "low": 249.82, "mean_price": 249.8459459459459, "open": 249.84, "symbol": "CCC", "trades": 37, "volume": 6403.0, "window_end": 1700000460000000000, "window_start": 1700000400000000000}
{"close": 249.98, "high": 250.03, "low": 249.97, "mean_price": 250.00208333333333, "open": 250.0, "symbol": "CCC", "trades": 24, "volume": 6790.0, "window_end": 1700000040000000000, "window_start": 1699999980000000000}
{"close": 250.0, "high": 250.09, "low": 249.97, "mean_price": 250.0459649122807, "open": 250.08, "symbol": "CCC", "trades": 57, "volume": 13742.0, "window_end": 1700000340000000000, "window_start": 1700000280000000000}
{"close": 250.07, "high": 250.19, "low": 250.05, "mean_price": 250.10474576271187, "open": 250.16, "symbol": "CCC", "trades": 59, "volume": 7739.0, "window_end": 1700000280000000000, "window_start": 1700000220000000000}
{"close": 250.12, "high": 250.23, "low": 250.1, "mean_price": 250.16392156862747, "open": 250.16, "symbol": "CCC", "trades": 51, "volume": 12301.0, "window_end": 1700000160000000000, "window_start": 1700000100000000000}
{"close": 250.15, "high": 250.21, "low": 250.12, "mean_price": 250.15541666666664, "open": 250.12, "symbol": "CCC", "trades": 24, "volume": 4702.0, "window_end": 1700000220000000000, "window_start": 1700000160000000000}
{"close": 250.17, "high": 250.17, "low": 249.98, "mean_price": 250.0716666666667, "open": 249.98, "symbol": "CCC", "trades": 54, "volume": 9480.0, "window_end": 1700000100000000000, "window_start": 1700000040000000000}
{"close": 46.71, "high": 46.8, "low": 46.69, "mean_price": 46.7453125, "open": 46.79, "symbol": "BBB", "trades": 32, "volume": 6361.0, "window_end": 1700000460000000000, "window_start": 1700000400000000000}
{"close": 46.8, "high": 47.08, "low": 46.79, "mean_price": 46.93796875, "open": 47.06, "symbol": "BBB", "trades": 64, "volume": 12508.0, "window_end": 1700000400000000000, "window_start": 1700000340000000000}
{"close": 46.82, "high": 46.96, "low": 46.82, "mean_price": 46.881846153846155, "open": 46.96, "symbol": "BBB", "trades": 65, "volume": 11742.0, "window_end": 1700001120000000000, "window_start": 1700001060000000000}
{"close": 46.85, "high": 47.01, "low": 46.81, "mean_price": 46.93018518518519, "open": 46.94, "symbol": "BBB", "trades": 54, "volume": 11119.0, "window_end": 1700001300000000000, "window_start": 1700001240000000000}
{"close": 46.87, "high": 46.89, "low": 46.77, "mean_price": 46.813181818181825, "open": 46.82, "symbol": "BBB", "trades": 44, "volume": 9891.0, "window_end": 1700001180000000000, "window_start": 1700001120000000000}
{"close": 46.88, "high": 46.9, "low": 46.67, "mean_price": 46.79551724137931, "open": 46.69, "symbol": "BBB", "trades": 58, "volume": 10209.0, "window_end": 1700000520000000000, "window_start": 1700000460000000000}
{"close": 46.88, "high": 46.95, "low": 46.84, "mean_price": 46.8960606060606, "open": 46.93, "symbol": "BBB", "trades": 66, "volume": 14652.0, "window_end": 1700001780000000000, "window_start": 1700001720000000000}
{"close": 46.9, "high": 46.91, "low": 46.85, "mean_price": 46.88619047619048, "open": 46.86, "symbol": "BBB", "trades": 21, "volume": 4619.0, "window_end": 1700001840000000000, "window_start": 1700001780000000000}
{"close": 46.92, "high": 46.95, "low": 46.88, "mean_price": 46.9084, "open": 46.88, "symbol": "BBB", "trades": 25, "volume": 7407.0, "window_end": 1700000580000000000, "window_start": 1700000520000000000}
{"close": 46.94, "high": 46.99, "low": 46.88, "mean_price": 46.947906976744186, "open": 46.88, "symbol": "BBB", "trades": 43, "volume": 7175.0, "window_end": 1700001240000000000, "window_start": 1700001180000000000}
{"close": 46.94, "high": 47.0, "low": 46.9, "mean_price": 46.96098039215687, "open": 46.96, "symbol": "BBB", "trades": 51, "volume": 12896.0, "window_end": 1700001720000000000, "window_start": 1700001660000000000}
{"close": 46.94, "high": 47.02, "low": 46.88, "mean_price": 46.94457627118644, "open": 47.02, "symbol": "BBB", "trades": 59, "volume": 12674.0, "window_end": 1700001660000000000, "window_start": 1700001600000000000}
{"close": 46.94, "high": 47.1, "low": 46.92, "mean_price": 47.00047619047619, "open": 47.09, "symbol": "BBB", "trades": 42, "volume": 4790.0, "window_end": 1700000940000000000, "window_start": 1700000880000000000}
{"close": 46.95, "high": 46.97, "low": 46.89, "mean_price": 46.933181818181815, "open": 46.93, "symbol": "BBB", "trades": 44, "volume": 13975.0, "window_end": 1700001000000000000, "window_start": 1700000940000000000}
{"close": 46.96, "high": 47.0, "low": 46.96, "mean_price": 46.9837037037037, "open": 46.96, "symbol": "BBB", "trades": 27, "volume": 4845.0, "window_end": 1700001060000000000, "window_start": 1700001000000000000}
{"close": 46.96, "high": 47.03, "low": 46.93, "mean_price": 46.980535714285715, "open": 47.0, "symbol": "BBB", "trades": 56, "volume": 14609.0, "window_end": 1700000760000000000, "window_start": 1700000700000000000}
{"close": 46.98, "high": 47.01, "low": 46.96, "mean_price": 46.98666666666667, "open": 47.01, "symbol": "BBB", "trades": 45, "volume": 9223.0, "window_end": 1700001420000000000, "window_start": 1700001360000000000}
{"close": 46.99, "high": 47.03, "low": 46.85, "mean_price": 46.9566, "open": 46.87, "symbol": "BBB", "trades": 50, "volume": 7611.0, "window_end": 1700001360000000000, "window_start": 1700001300000000000}
{"close": 47.0, "high": 47.11, "low": 47.0, "mean_price": 47.06622950819672, "open": 47.06, "symbol": "BBB", "trades": 61, "volume": 11572.0, "window_end": 1700000700000000000, "window_start": 1700000640000000000}
{"close": 47.02, "high": 47.14, "low": 47.0, "mean_price": 47.05078125, "open": 47.11, "symbol": "BBB", "trades": 64, "volume": 14545.0, "window_end": 1700001600000000000, "window_start": 1700001540000000000}
{"close": 47.04, "high": 47.1, "low": 46.94, "mean_price": 47.00918367346939, "open": 46.98, "symbol": "BBB", "trades": 49, "volume": 10010.0, "window_end": 1700001480000000000, "window_start": 1700001420000000000}
{"close": 47.04, "high": 47.11, "low": 46.94, "mean_price": 47.043015873015875, "open": 46.94, "symbol": "BBB", "trades": 63, "volume": 12498.0, "window_end": 1700000640000000000, "window_start": 1700000580000000000}
{"close": 47.05, "high": 47.07, "low": 46.96, "mean_price": 47.00648648648649, "open": 46.98, "symbol": "BBB", "trades": 37, "volume": 9212.0, "window_end": 1700000820000000000, "window_start": 1700000760000000000}
{"close": 47.05, "high": 47.18, "low": 47.0, "mean_price": 47.10372881355932, "open": 47.16, "symbol": "BBB", "trades": 59, "volume": 14671.0, "window_end": 1700000280000000000, "window_start": 1700000220000000000}
{"close": 47.06, "high": 47.09, "low": 47.04, "mean_price": 47.065652173913044, "open": 47.05, "symbol": "BBB", "trades": 23, "volume": 3198.0, "window_end": 1700000340000000000, "window_start": 1700000280000000000}
{"close": 47.07, "high": 47.16, "low": 47.07, "mean_price": 47.122727272727275, "open": 47.1, "symbol": "BBB", "trades": 33, "volume": 5323.0, "window_end": 1700000040000000000, "window_start": 1699999980000000000}
{"close": 47.08, "high": 47.11, "low": 47.05, "mean_price": 47.07425531914893, "open": 47.08, "symbol": "BBB", "trades": 47, "volume": 10840.0, "window_end": 1700000100000000000, "window_start": 1700000040000000000}
{"close": 47.09, "high": 47.11, "low": 47.02, "mean_price": 47.05982758620689, "open": 47.06, "symbol": "BBB", "trades": 58, "volume": 13567.0, "window_end": 1700001540000000000, "window_start": 1700001480000000000}
{"close": 47.09, "high": 47.13, "low": 47.04, "mean_price": 47.08410714285714, "open": 47.04, "symbol": "BBB", "trades": 56, "volume": 15764.0, "window_end": 1700000880000000000, "window_start": 1700000820000000000}
{"close": 47.11, "high": 47.11, "low": 46.98, "mean_price": 47.03583333333333, "open": 47.08, "symbol": "BBB", "trades": 36, "volume": 8969.0, "window_end": 1700000160000000000, "window_start": 1700000100000000000}
{"close": 47.18, "high": 47.21, "low": 47.13, "mean_price": 47.17909090909091, "open": 47.13, "symbol": "BBB", "trades": 11, "volume": 4500.0, "window_end": 1700000220000000000, "window_start": 1700000160000000000}
