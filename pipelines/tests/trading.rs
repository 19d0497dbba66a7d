//! The trading chain in the dataflow: every risk limit refuses the orders that would breach it
//! (and the position never passes it), the differential-dataflow PnL equals the PnL recomputed
//! from the fills and the final prices, and the results do not depend on the worker count.

mod common;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use tickflow_core::{
    ArrowRecord, Bar, Fill, FillStatus, PortfolioValue, Position, Price, Quantity, exact_notional,
    money_to_exact, round_money,
};
use tickflow_pipelines::Summary;

/// A two-hour synthetic market, 4 instruments, a strategy that trades every crossing of the
/// 20-bar SMA, and the given risk settings.
fn pipeline(risk: &str) -> String {
    pipeline_with(risk, "", "")
}

/// The same, with extra lines for the source and the exchange.
fn pipeline_with(risk: &str, source: &str, exchange: &str) -> String {
    format!(
        r#"
[pipeline]
name = "trading-test"

[[source]]
kind = "synthetic"
instruments = 4
seed = 11
start = "2024-01-02T14:30:00Z"
duration = "3h"
events_per_second = 200
{source}

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"

[[operator]]
name = "signals"
kind = "signals"
input = "indicators"
buy = "close crosses_above sma_20"
sell = "close crosses_below sma_20"

[[operator]]
name = "orders"
kind = "risk"
input = "signals"
prices = "bars"
fills = "fills"
{risk}

[[operator]]
name = "fills"
kind = "exchange"
input = "orders"
latency = "3ms"
slippage_bps = 2
fee_bps = 1
{exchange}

[[operator]]
name = "positions"
kind = "portfolio"
input = "fills"
prices = "bars"

[[sink]]
kind = "jsonl"
streams = ["orders", "risk_rejects", "fills", "positions", "portfolio", "signals"]

[[sink]]
kind = "parquet"
streams = ["bars", "fills", "positions", "portfolio"]
"#
    )
}

struct Outcome {
    summary: Summary,
    dir: tempfile::TempDir,
}

impl Outcome {
    fn jsonl(&self, stream: &str) -> Vec<Value> {
        common::lines(&self.dir.path().join(format!("{stream}.jsonl")))
    }
    fn parquet<T: ArrowRecord>(&self, stream: &str) -> Vec<T> {
        let file = std::fs::File::open(self.dir.path().join(format!("{stream}.parquet"))).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        reader
            .flat_map(|b| T::from_record_batch(&b.unwrap()).unwrap())
            .collect()
    }
    /// (instrument, ts in ns) of every accepted order.
    fn order_times(&self) -> Vec<(String, i64)> {
        self.jsonl("orders")
            .iter()
            .map(|o| {
                let ts = tickflow_core::Timestamp::parse_rfc3339(o["ts_event"].as_str().unwrap())
                    .unwrap();
                (o["instrument"].as_str().unwrap().to_owned(), ts.nanos())
            })
            .collect()
    }
    fn rejects_with(&self, reason: &str) -> Vec<Value> {
        self.jsonl("risk_rejects")
            .into_iter()
            .filter(|r| r["reject_reason"] == reason)
            .collect()
    }
}

fn run_with(risk: &str, workers: usize) -> Outcome {
    run_pipeline(&pipeline(risk), workers)
}

fn run_pipeline(text: &str, workers: usize) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let summary = common::run_text(text, workers, dir.path());
    assert!(summary.accounted());
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    Outcome { summary, dir }
}

/// Running position per instrument after every fill, from the fills file.
fn positions_over_time(o: &Outcome) -> Vec<(u32, i64)> {
    let mut pos: HashMap<u32, i64> = HashMap::new();
    o.parquet::<Fill>("fills")
        .iter()
        .map(|f| {
            let p = pos.entry(f.instrument.0).or_default();
            *p += f.signed_quantity();
            (f.instrument.0, *p)
        })
        .collect()
}

fn qty(s: &str) -> i64 {
    Quantity::parse(s).unwrap().raw()
}

#[test]
fn max_position_refuses_orders_that_would_exceed_it() {
    let o = run_with(
        "position_size = 300\nallow_short = true\nmax_position = 200",
        1,
    );
    let rejects = o.rejects_with("max_position");
    assert!(!rejects.is_empty(), "a 300 target breaches a 200 limit");
    assert!(rejects[0]["detail"].as_str().unwrap().contains("> max 200"));
    assert!(
        positions_over_time(&o)
            .iter()
            .all(|(_, p)| p.abs() <= qty("200"))
    );
    // The same strategy within the limit trades.
    let ok = run_with(
        "position_size = 200\nallow_short = true\nmax_position = 200",
        1,
    );
    assert!(ok.rejects_with("max_position").is_empty());
    let pos = positions_over_time(&ok);
    assert!(pos.iter().any(|(_, p)| p.abs() == qty("200")));
    assert!(pos.iter().all(|(_, p)| p.abs() <= qty("200")));
}

#[test]
fn max_order_size_refuses_large_orders() {
    // Long 100 then short 100 is an order of 200.
    let o = run_with(
        "position_size = 100\nallow_short = true\nmax_order_size = 150",
        1,
    );
    assert!(!o.rejects_with("max_order_size").is_empty());
    let orders = o.jsonl("orders");
    assert!(!orders.is_empty());
    assert!(
        orders
            .iter()
            .all(|r| r["quantity"].as_f64().unwrap() <= 150.0)
    );
}

#[test]
fn notional_limits_refuse_exposure_beyond_them() {
    // Four instruments of 100 units each are worth more than 20,000 together.
    let o = run_with(
        "position_size = 100\nmax_gross_notional = 20000\nmax_net_notional = 1000000",
        1,
    );
    let rejects = o.rejects_with("max_gross_notional");
    assert!(!rejects.is_empty());
    // Exposure is checked at the last trade when the order is sent; prices move afterwards,
    // so the valuation may drift above the limit by the move since, not by another position.
    for v in o.parquet::<PortfolioValue>("portfolio") {
        assert!(v.gross_exposure.to_f64() <= 20000.0 * 1.05, "{v:?}");
    }
    let net = run_with(
        "position_size = 100\nallow_short = true\nmax_net_notional = 15000",
        1,
    );
    assert!(!net.rejects_with("max_net_notional").is_empty());
    for v in net.parquet::<PortfolioValue>("portfolio") {
        assert!(v.net_exposure.to_f64().abs() <= 15000.0 * 1.05, "{v:?}");
    }
}

#[test]
fn order_rate_is_limited_per_instrument() {
    let o = run_with(
        "position_size = 100\nmax_orders = 1\nrate_window = \"30m\"",
        1,
    );
    assert!(!o.rejects_with("max_order_rate").is_empty());
    let mut last: HashMap<String, i64> = HashMap::new();
    for order in o.order_times() {
        if let Some(prev) = last.insert(order.0.clone(), order.1) {
            assert!(order.1 - prev >= 30 * 60 * 1_000_000_000, "{order:?}");
        }
    }
}

#[test]
fn limit_prices_outside_the_band_are_refused() {
    let o = run_with(
        "order_type = \"limit\"\nlimit_offset_bps = 600\nprice_band = 0.05",
        1,
    );
    assert!(!o.rejects_with("price_band").is_empty());
    assert!(o.jsonl("orders").is_empty());
    assert!(o.jsonl("fills").is_empty());
    // 10 bps through the last trade is inside the band, and marketable limit orders fill.
    let ok = run_with(
        "order_type = \"limit\"\nlimit_offset_bps = 10\nprice_band = 0.05",
        1,
    );
    assert!(ok.rejects_with("price_band").is_empty());
    assert!(!ok.jsonl("fills").is_empty());
}

#[test]
fn the_daily_loss_limit_switches_to_reduce_only() {
    // Fees and slippage make the first round trips lose more than 1.
    let o = run_with("position_size = 100\ndaily_loss_limit = 1", 1);
    let rejects = o.rejects_with("daily_loss_limit");
    assert!(!rejects.is_empty());
    let first = rejects[0]["ts_event"].as_str().unwrap().to_owned();
    // After the first refusal, every accepted order reduces a position (sells to flat).
    for order in o.jsonl("orders") {
        if order["ts_event"].as_str().unwrap() > first.as_str() {
            assert_eq!(order["side"], "sell", "{order}");
        }
    }
}

#[test]
fn the_kill_switch_refuses_everything_after_it_engages() {
    let o = run_with("position_size = 100\nkill_at = \"2024-01-02T16:00:00Z\"", 1);
    let rejects = o.rejects_with("kill_switch");
    assert!(!rejects.is_empty());
    assert!(
        o.jsonl("orders")
            .iter()
            .all(|r| r["ts_event"].as_str().unwrap() < "2024-01-02T16:00:00")
    );
    let all = run_with("kill_switch = true", 1);
    assert!(all.jsonl("orders").is_empty());
    assert_eq!(
        all.summary
            .trading
            .as_ref()
            .unwrap()
            .risk_rejects
            .values()
            .sum::<u64>(),
        all.jsonl("risk_rejects").len() as u64
    );
}

#[test]
fn pnl_equals_the_pnl_recomputed_from_fills_and_final_prices() {
    let o = run_with(
        "position_size = 100\nallow_short = true\nmax_position = 1000",
        2,
    );
    let fills = o.parquet::<Fill>("fills");
    assert!(fills.len() > 10, "the strategy trades");
    let mut qty: BTreeMap<u32, i64> = BTreeMap::new();
    let mut cash = 0i128;
    let mut fees = 0i128;
    for f in fills.iter().filter(|f| f.status != FillStatus::Canceled) {
        *qty.entry(f.instrument.0).or_default() += f.signed_quantity();
        cash -= exact_notional(f.price, Quantity::from_raw(f.signed_quantity()));
        fees += money_to_exact(f.fee);
    }
    let mut last_close: BTreeMap<u32, Price> = BTreeMap::new();
    for b in o.parquet::<Bar>("bars") {
        last_close.insert(b.instrument.0, b.close);
    }
    let value: i128 = qty
        .iter()
        .map(|(i, q)| exact_notional(last_close[i], Quantity::from_raw(*q)))
        .sum();
    let expected = round_money(cash + value - fees);
    let values = o.parquet::<PortfolioValue>("portfolio");
    let last = values.last().unwrap();
    assert_eq!(last.total_pnl, expected, "{last:?}");
    assert_eq!(last.fees, round_money(fees));
    // And per instrument: the last position of each matches the fills.
    let mut final_pos: BTreeMap<u32, Position> = BTreeMap::new();
    for p in o.parquet::<Position>("positions") {
        final_pos.insert(p.instrument.0, p);
    }
    for (i, q) in &qty {
        assert_eq!(final_pos[i].quantity.raw(), *q);
        assert_eq!(final_pos[i].mark, last_close[i]);
    }
    let report = o.summary.trading.as_ref().unwrap();
    assert_eq!(report.final_value.as_ref().unwrap().total_pnl, expected);
    let canceled = fills
        .iter()
        .filter(|f| f.status == FillStatus::Canceled)
        .count();
    assert_eq!(report.executions as usize, fills.len() - canceled);
    assert_eq!(report.canceled as usize, canceled);
}

#[test]
fn trading_results_are_identical_for_1_and_4_workers() {
    let risk = "position_size = 100\nallow_short = true\nmax_position = 150\nmax_orders = 3\nrate_window = \"20m\"";
    let one = run_with(risk, 1);
    let four = run_with(risk, 4);
    for stream in [
        "orders",
        "risk_rejects",
        "fills",
        "positions",
        "portfolio",
        "signals",
    ] {
        let a = std::fs::read(one.dir.path().join(format!("{stream}.jsonl"))).unwrap();
        let b = std::fs::read(four.dir.path().join(format!("{stream}.jsonl"))).unwrap();
        assert!(a == b, "{stream}.jsonl differs between 1 and 4 workers");
    }
    assert!(!one.jsonl("fills").is_empty());
    assert_eq!(one.summary.trading, four.summary.trading);
}

#[test]
fn trade_only_data_fills_on_trades_only_when_asked() {
    let trades_only = "quote_ratio = 0.0";
    let cancel = run_pipeline(&pipeline_with("position_size = 100", trades_only, ""), 1);
    let reports = cancel.parquet::<Fill>("fills");
    assert!(!reports.is_empty());
    assert!(
        reports.iter().all(|f| f.status == FillStatus::Canceled),
        "no quotes, no liquidity"
    );
    let filled = run_pipeline(
        &pipeline_with(
            "position_size = 100",
            trades_only,
            "no_quote = \"last_trade\"",
        ),
        1,
    );
    let fills = filled.parquet::<Fill>("fills");
    assert!(fills.iter().any(|f| f.status == FillStatus::Filled));
    assert!(!filled.parquet::<PortfolioValue>("portfolio").is_empty());
}

/// Trades SMA crossings (long and short) on recorded `files` (paths under the recorded data)
/// and checks that most orders of each side execute, each near its reference price.
fn recorded_quotes_fill_sells_as_well_as_buys(files: &[&str]) {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let day = tempfile::tempdir().unwrap();
    for f in files {
        let name = std::path::Path::new(f).file_name().unwrap();
        std::fs::copy(data.join(f), day.path().join(name)).unwrap();
    }
    let source = format!("kind = \"replay\"\npath = {:?}\n", day.path());
    let text = pipeline_with("position_size = 100\nallow_short = true", "", "");
    let (start, end) = (
        text.find("kind = \"synthetic\"").unwrap(),
        text.find("events_per_second = 200").unwrap() + "events_per_second = 200".len(),
    );
    let text = format!("{}{source}{}", &text[..start], &text[end..]);
    let o = run_pipeline(&text, 1);
    let orders = o.jsonl("orders");
    let fills = o.parquet::<Fill>("fills");
    for side in ["buy", "sell"] {
        let sent = orders.iter().filter(|r| r["side"] == side).count();
        // Orders that executed, in whole or in part (the ask or bid shows 100 where a
        // reversal asks for 200).
        let executed: std::collections::BTreeSet<u64> = fills
            .iter()
            .filter(|f| f.quantity.is_positive() && f.side.as_str() == side)
            .map(|f| f.order_id)
            .collect();
        assert!(sent >= 20, "{side}: {sent} orders");
        assert!(
            executed.len() * 10 >= sent * 9,
            "{side}: {} of {sent} orders executed",
            executed.len()
        );
    }
    // Every execution is at the quote that stood when the order arrived: near the last trade.
    let reference: HashMap<u64, f64> = orders
        .iter()
        .map(|r| {
            (
                r["order_id"].as_u64().unwrap(),
                r["reference_price"].as_f64().unwrap(),
            )
        })
        .collect();
    for f in fills.iter().filter(|f| f.quantity.is_positive()) {
        let r = reference[&f.order_id];
        assert!(
            (f.price.to_f64() / r - 1.0).abs() < 0.005,
            "{f:?}: reference {r}"
        );
    }
}

#[test]
fn recorded_equity_quotes_fill_sells_as_well_as_buys() {
    // A recorded Lean day: each quote row sets one side of the top of book. Read as quotes of
    // one side each, the book the exchange saw after every ask row had no bid, so no sell ever
    // filled and a position once long stayed long.
    recorded_quotes_fill_sells_as_well_as_buys(&[
        "us-equities/tick/ibm_20131008_trade.zip",
        "us-equities/tick/ibm_20131008_quote.zip",
    ]);
}

#[test]
fn recorded_lobster_messages_trade_against_the_quotes_of_their_orderbook_file() {
    // LOBSTER's messages are book events and trades; the top of book comes from the orderbook
    // file beside them. Without those quotes the exchange had no liquidity and canceled every
    // order.
    recorded_quotes_fill_sells_as_well_as_buys(&[
        "lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv",
        "lobster/AMZN_2012-06-21_34200000_57600000_orderbook_1.csv",
    ]);
}

#[test]
fn gtc_orders_still_working_at_the_end_are_reported() {
    let o = run_with(
        "position_size = 100\norder_type = \"limit\"\ntime_in_force = \"gtc\"\nlimit_offset_bps = -300",
        1,
    );
    let report = o.summary.trading.as_ref().expect("a trading report");
    assert!(
        !report.open_orders.is_empty(),
        "orders 3 % away stay working"
    );
    let orders = o.jsonl("orders");
    let fills = o.parquet::<Fill>("fills");
    for (id, left) in &report.open_orders {
        let order = orders
            .iter()
            .find(|x| x["order_id"].as_u64() == Some(*id))
            .unwrap_or_else(|| panic!("open order #{id} is an order"));
        assert_eq!(order["tif"], "gtc");
        let filled: i64 = fills
            .iter()
            .filter(|f| f.order_id == *id)
            .map(|f| f.quantity.raw())
            .sum();
        assert!(
            fills
                .iter()
                .all(|f| f.order_id != *id
                    || (f.status != FillStatus::Canceled && !f.leaves.is_zero())),
            "#{id} has no final report"
        );
        assert_eq!(
            filled + left.raw(),
            qty(order["quantity"].to_string().trim_matches('"')),
            "#{id}: filled plus left is the order's quantity"
        );
    }
    assert!(o.summary.to_string().contains("open at end"));
    // IOC orders never stay open.
    let ioc = run_with("position_size = 100", 1);
    assert!(ioc.summary.trading.as_ref().unwrap().open_orders.is_empty());
}

#[test]
fn the_kill_switch_cancels_resting_gtc_orders() {
    let gtc = "position_size = 100\norder_type = \"limit\"\ntime_in_force = \"gtc\"\nlimit_offset_bps = -300";
    let kill = "2024-01-02T16:00:00Z";
    let o = run_with(&format!("{gtc}\nkill_at = \"{kill}\""), 1);
    let kill_ns = tickflow_core::Timestamp::parse_rfc3339(kill)
        .unwrap()
        .nanos();
    let orders: Vec<u64> = o
        .jsonl("orders")
        .iter()
        .map(|x| x["order_id"].as_u64().unwrap())
        .collect();
    assert!(!orders.is_empty());
    let fills = o.parquet::<Fill>("fills");
    // Every order ends: filled, or canceled, and no cancel comes before the kill.
    for id in &orders {
        let last = fills
            .iter()
            .rfind(|f| f.order_id == *id)
            .unwrap_or_else(|| panic!("order #{id} has a final report"));
        assert!(last.leaves.is_zero(), "#{id} ends with nothing working");
        if last.status == FillStatus::Canceled {
            assert!(
                last.ts_event.nanos() >= kill_ns,
                "#{id} canceled by the kill"
            );
        }
    }
    assert!(
        o.summary.trading.as_ref().unwrap().open_orders.is_empty(),
        "nothing works after the kill switch"
    );
    assert!(
        fills
            .iter()
            .any(|f| f.status == FillStatus::Canceled && f.ts_event.nanos() >= kill_ns),
        "the kill canceled resting orders"
    );
    let four = run_with(&format!("{gtc}\nkill_at = \"{kill}\""), 4);
    assert_eq!(
        four.jsonl("fills"),
        o.jsonl("fills"),
        "the same cancels for 1 and 4 workers"
    );
}
