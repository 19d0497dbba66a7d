-- Bursts of trading per symbol: session windows closing after 20 seconds without a trade.
-- tickflow
SELECT symbol, window_start, window_end, count(*) AS trades, min(price) AS low, max(price) AS high,
       sum(size) AS volume
FROM session('trades', 'ts_event', INTERVAL '20 seconds', 'symbol')
GROUP BY symbol, window_start, window_end
-- duckdb
WITH t AS (
  SELECT *, CASE WHEN ts_event - lag(ts_event) OVER (PARTITION BY symbol ORDER BY ts_event) < 20000000000
                 THEN 0 ELSE 1 END AS new_session
  FROM trades
), s AS (
  SELECT *, sum(new_session) OVER (PARTITION BY symbol ORDER BY ts_event) AS sid FROM t
)
SELECT symbol, min(ts_event) AS window_start, max(ts_event) + 20000000000 AS window_end,
       count(*) AS trades, min(price) AS low, max(price) AS high, sum(size) AS volume
FROM s GROUP BY symbol, sid
-- expected (written by make_cases.py from DuckDB 2.0.1)
{"high": 100.69, "low": 100.67, "symbol": "AAA", "trades": 6, "volume": 216.0, "window_end": 1700001569267681478, "window_start": 1700001544180734066}
{"high": 100.76, "low": 100.68, "symbol": "AAA", "trades": 33, "volume": 9967.0, "window_end": 1700001636219733844, "window_start": 1700001580656983629}
{"high": 100.79, "low": 100.7, "symbol": "AAA", "trades": 19, "volume": 2678.0, "window_end": 1700001728411091493, "window_start": 1700001692038823445}
{"high": 100.79, "low": 100.77, "symbol": "AAA", "trades": 6, "volume": 226.0, "window_end": 1700001682239671427, "window_start": 1700001655530684150}
{"high": 100.82, "low": 100.68, "symbol": "AAA", "trades": 56, "volume": 12747.0, "window_end": 1700001820030554572, "window_start": 1700001740403766200}
{"high": 100.89, "low": 100.69, "symbol": "AAA", "trades": 87, "volume": 17462.0, "window_end": 1700001526299524560, "window_start": 1700001415333309025}
{"high": 101.03, "low": 100.83, "symbol": "AAA", "trades": 99, "volume": 21960.0, "window_end": 1700001400799217391, "window_start": 1700001281004147302}
{"high": 101.06, "low": 100.8, "symbol": "AAA", "trades": 137, "volume": 28696.0, "window_end": 1700001263573694795, "window_start": 1700001097465355216}
{"high": 101.11, "low": 101.06, "symbol": "AAA", "trades": 7, "volume": 2211.0, "window_end": 1700001088631131081, "window_start": 1700001060657614168}
{"high": 101.18, "low": 101.11, "symbol": "AAA", "trades": 20, "volume": 4078.0, "window_end": 1700001051608061198, "window_start": 1700001012335716106}
{"high": 101.29, "low": 101.27, "symbol": "AAA", "trades": 4, "volume": 1061.0, "window_end": 1700000249595120115, "window_start": 1700000226908478044}
{"high": 101.3, "low": 101.12, "symbol": "AAA", "trades": 132, "volume": 28818.0, "window_end": 1700000143823014608, "window_start": 1700000000255091289}
{"high": 101.31, "low": 101.15, "symbol": "AAA", "trades": 37, "volume": 9347.0, "window_end": 1700001002927578902, "window_start": 1700000941105449321}
{"high": 101.32, "low": 101.25, "symbol": "AAA", "trades": 45, "volume": 10793.0, "window_end": 1700000212135392992, "window_start": 1700000150210649602}
{"high": 101.4, "low": 101.26, "symbol": "AAA", "trades": 83, "volume": 18252.0, "window_end": 1700000372959162160, "window_start": 1700000263377417385}
{"high": 101.43, "low": 101.19, "symbol": "AAA", "trades": 233, "volume": 50243.0, "window_end": 1700000648816835003, "window_start": 1700000392683120740}
{"high": 101.5, "low": 101.38, "symbol": "AAA", "trades": 27, "volume": 7966.0, "window_end": 1700000707069517683, "window_start": 1700000663280995501}
{"high": 101.51, "low": 101.26, "symbol": "AAA", "trades": 190, "volume": 32660.0, "window_end": 1700000926907393597, "window_start": 1700000716053822660}
{"high": 249.3, "low": 249.22, "symbol": "CCC", "trades": 50, "volume": 8296.0, "window_end": 1700000885967263785, "window_start": 1700000814830542312}
{"high": 249.58, "low": 249.21, "symbol": "CCC", "trades": 80, "volume": 16445.0, "window_end": 1700000807585882027, "window_start": 1700000724438179683}
{"high": 249.61, "low": 249.27, "symbol": "CCC", "trades": 119, "volume": 22981.0, "window_end": 1700001042333458318, "window_start": 1700000904301193360}
{"high": 249.63, "low": 249.63, "symbol": "CCC", "trades": 1, "volume": 100.0, "window_end": 1700001852808908943, "window_start": 1700001832808908943}
{"high": 249.67, "low": 249.58, "symbol": "CCC", "trades": 22, "volume": 1163.0, "window_end": 1700001568379787670, "window_start": 1700001526955458395}
{"high": 249.67, "low": 249.58, "symbol": "CCC", "trades": 41, "volume": 10169.0, "window_end": 1700000709419456805, "window_start": 1700000653958491227}
{"high": 249.72, "low": 249.72, "symbol": "CCC", "trades": 1, "volume": 100.0, "window_end": 1700001415017185386, "window_start": 1700001395017185386}
{"high": 249.74, "low": 249.6, "symbol": "CCC", "trades": 65, "volume": 14552.0, "window_end": 1700001519260754155, "window_start": 1700001433747113201}
{"high": 249.74, "low": 249.62, "symbol": "CCC", "trades": 163, "volume": 39990.0, "window_end": 1700001819572133128, "window_start": 1700001628842285626}
{"high": 249.76, "low": 249.66, "symbol": "CCC", "trades": 19, "volume": 2513.0, "window_end": 1700001619305535760, "window_start": 1700001579096905418}
{"high": 249.78, "low": 249.6, "symbol": "CCC", "trades": 78, "volume": 16322.0, "window_end": 1700001158050652894, "window_start": 1700001057113684885}
{"high": 249.78, "low": 249.65, "symbol": "CCC", "trades": 11, "volume": 2231.0, "window_end": 1700000638954586769, "window_start": 1700000609110167090}
{"high": 249.78, "low": 249.67, "symbol": "CCC", "trades": 104, "volume": 25392.0, "window_end": 1700001301121432511, "window_start": 1700001171831348998}
{"high": 249.78, "low": 249.77, "symbol": "CCC", "trades": 3, "volume": 1051.0, "window_end": 1700001340821161670, "window_start": 1700001318604684510}
{"high": 249.79, "low": 249.71, "symbol": "CCC", "trades": 8, "volume": 436.0, "window_end": 1700001386690309502, "window_start": 1700001360518609086}
{"high": 249.87, "low": 249.7, "symbol": "CCC", "trades": 60, "volume": 17831.0, "window_end": 1700000601364019046, "window_start": 1700000528407801521}
{"high": 249.9, "low": 249.78, "symbol": "CCC", "trades": 34, "volume": 7200.0, "window_end": 1700000517870813260, "window_start": 1700000466610398246}
{"high": 250.03, "low": 249.97, "symbol": "CCC", "trades": 24, "volume": 6790.0, "window_end": 1700000040117113827, "window_start": 1700000001811131922}
{"high": 250.21, "low": 249.8, "symbol": "CCC", "trades": 237, "volume": 44819.0, "window_end": 1700000455720364282, "window_start": 1700000192568422825}
{"high": 250.23, "low": 249.98, "symbol": "CCC", "trades": 105, "volume": 21781.0, "window_end": 1700000179833697551, "window_start": 1700000052990941270}
{"high": 46.95, "low": 46.67, "symbol": "BBB", "trades": 97, "volume": 19321.0, "window_end": 1700000564733237272, "window_start": 1700000438468903364}
{"high": 46.99, "low": 46.77, "symbol": "BBB", "trades": 120, "volume": 23600.0, "window_end": 1700001185099945363, "window_start": 1700001047655698951}
{"high": 47.0, "low": 46.89, "symbol": "BBB", "trades": 60, "volume": 16853.0, "window_end": 1700001037207083121, "window_start": 1700000955563823013}
{"high": 47.03, "low": 46.81, "symbol": "BBB", "trades": 192, "volume": 35128.0, "window_end": 1700001419811110049, "window_start": 1700001197390424740}
{"high": 47.09, "low": 46.77, "symbol": "BBB", "trades": 88, "volume": 16214.0, "window_end": 1700000432384164399, "window_start": 1700000328302567061}
{"high": 47.11, "low": 46.92, "symbol": "BBB", "trades": 223, "volume": 50611.0, "window_end": 1700000817517301295, "window_start": 1700000575538824976}
{"high": 47.11, "low": 46.98, "symbol": "BBB", "trades": 36, "volume": 8969.0, "window_end": 1700000170168933055, "window_start": 1700000117026133844}
{"high": 47.13, "low": 46.92, "symbol": "BBB", "trades": 98, "volume": 20554.0, "window_end": 1700000936094233527, "window_start": 1700000831745880635}
{"high": 47.14, "low": 46.84, "symbol": "BBB", "trades": 368, "volume": 82963.0, "window_end": 1700001820005831964, "window_start": 1700001430312915736}
{"high": 47.16, "low": 47.05, "symbol": "BBB", "trades": 80, "volume": 16163.0, "window_end": 1700000106449476109, "window_start": 1700000001077822572}
{"high": 47.18, "low": 47.0, "symbol": "BBB", "trades": 70, "volume": 16099.0, "window_end": 1700000312467785843, "window_start": 1700000220727277437}
{"high": 47.21, "low": 47.13, "symbol": "BBB", "trades": 11, "volume": 4500.0, "window_end": 1700000213662189414, "window_start": 1700000183882693772}
