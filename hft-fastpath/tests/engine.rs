//! The whole loop on the synthetic feed, fused and split: it trades, its PnL follows from its
//! fills, risk holds, and the kill switch stops new orders.

use std::sync::atomic::Ordering;

use tickflow_core::{Price, Quantity, Side};
use tickflow_hft_fastpath::engine::{EngineConfig, JournalKind, RunReport};
use tickflow_hft_fastpath::feed::synthetic::{SyntheticConfig, generate};
use tickflow_hft_fastpath::msg::encode_all;
use tickflow_hft_fastpath::ring::Backoff;
use tickflow_hft_fastpath::risk::{RiskConfig, RiskReject};
use tickflow_hft_fastpath::strategy::StrategyKind;
use tickflow_hft_fastpath::venue::{ReportKind, VenueConfig};
use tickflow_hft_fastpath::{BookCapacity, Engine, Mode};

fn qty() -> Quantity {
    Quantity::from_int(5).unwrap()
}

fn config(mode: Mode, strategy: &str) -> EngineConfig {
    EngineConfig {
        mode,
        rate: 0,
        pin: None,
        backoff: Backoff::Spin,
        strategy: StrategyKind::by_name(strategy, Price::from_raw(10_000_000), qty()).unwrap(),
        risk: RiskConfig::for_qty(qty()),
        venue: VenueConfig { latency_ns: 5_000 },
        book: BookCapacity {
            orders: 1 << 16,
            levels: 1 << 12,
        },
        warmup: 1_000,
        journal: 1_000_000,
    }
}

fn frames(n: usize) -> Vec<u8> {
    encode_all(
        &generate(&SyntheticConfig {
            messages: n,
            ..SyntheticConfig::default()
        })
        .msgs,
    )
}

/// Cash and position recomputed from the journal's fills.
fn from_fills(r: &RunReport) -> (i128, i64) {
    let mut cash = 0i128;
    let mut pos = 0i64;
    for e in &r.journal {
        if e.kind == JournalKind::Report(ReportKind::Fill) {
            let q = if e.side == Side::Buy {
                e.qty.raw()
            } else {
                -e.qty.raw()
            };
            pos += q;
            cash -= q as i128 * e.price.raw() as i128 / 1_000_000_000;
        }
    }
    (cash, pos)
}

#[test]
fn both_strategies_trade_fused_and_split_and_pnl_follows_from_fills() {
    let f = frames(200_000);
    for strategy in ["market-maker", "imbalance"] {
        for mode in [Mode::Fused, Mode::Split] {
            let r = Engine::new(config(mode, strategy)).run(&f);
            let t = r.trading;
            eprintln!(
                "{strategy} {mode:?}: {} msgs, {} orders, {} cancels, {} fills, pos {}, pnl {}, rejects {:?}, venue rejects {}, market {:?}",
                r.messages,
                t.orders,
                t.cancels,
                t.fills,
                t.position,
                r.pnl(),
                t.risk_rejects,
                t.venue_rejects,
                r.market
            );
            assert_eq!(r.messages, 200_000);
            assert!(t.orders > 100, "{strategy} {mode:?}: {} orders", t.orders);
            assert!(t.fills > 10, "{strategy} {mode:?}: {} fills", t.fills);
            assert_eq!(r.journal_dropped, 0);
            assert_eq!(r.reports_dropped, 0);
            assert_eq!(from_fills(&r), (t.cash, t.position), "{strategy} {mode:?}");
            let limit = RiskConfig::for_qty(qty()).max_position.raw();
            assert!(
                t.position.abs() <= limit,
                "position {} within {limit}",
                t.position
            );
            assert_eq!(r.market.unknown_orders + r.market.decode_errors, 0);
            assert!(r.latency.tick_to_decision.summary().count > 100_000);
        }
    }
}

#[test]
fn kill_switch_stops_new_orders() {
    let f = frames(50_000);
    let engine = Engine::new(config(Mode::Fused, "imbalance"));
    engine.kill_switch().store(true, Ordering::Relaxed);
    let r = engine.run(&f);
    assert_eq!(r.trading.orders, 0);
    assert!(r.trading.risk_rejects[RiskReject::KillSwitch as usize] > 0);
}

#[test]
fn a_paced_run_keeps_its_schedule_and_charges_waiting() {
    let f = frames(100_000);
    let mut cfg = config(Mode::Fused, "market-maker");
    cfg.rate = 200_000;
    let r = Engine::new(cfg).run(&f);
    // 100,000 messages at 200,000/s take at least half a second of wall time.
    assert!(r.elapsed_ns >= 490_000_000, "{} ns", r.elapsed_ns);
    let s = r.latency.tick_to_decision.summary();
    assert!(s.count > 90_000 && s.p50 > 0, "{s:?}");
}

#[test]
fn corrupt_frames_are_counted_and_the_loop_goes_on() {
    let mut f = frames(10_000);
    f[36 + 40 * 500] = 0xEE; // an unknown action byte in message 500
    let r = Engine::new(config(Mode::Fused, "market-maker")).run(&f);
    assert_eq!(r.market.decode_errors, 1);
    assert_eq!(r.messages, 10_000);
}
