//! Nanoseconds per update of every tickflow indicator, side by side with the `yata` crate for
//! the indicators both have (`x_vs_yata`), over the same seeded random-walk bars in one run.
//!
//! `cargo run --release -p tickflow-benches --bin indicators_vs_yata [-- --updates N]`

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result};
use tickflow_benches::machine;
use tickflow_operators::indicators::*;
use yata::core::{Candle, Method};

/// A seeded random walk of bars (xorshift; no dependency).
fn bars(n: usize) -> Vec<Ohlcv> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut price = 100.0;
    (0..n)
        .map(|i| {
            let open = price;
            price *= 1.0 + (next() - 0.5) * 0.01;
            let (hi, lo) = (
                open.max(price) * (1.0 + next() * 0.002),
                open.min(price) * (1.0 - next() * 0.002),
            );
            Ohlcv {
                time: i as i64 * 60_000_000_000,
                open,
                high: hi,
                low: lo,
                close: price,
                volume: 1000.0 + next() * 5000.0,
                vwap: (hi + lo + price) / 3.0,
            }
        })
        .collect()
}

/// Best of 3 passes over the bars, in ns per update.
fn time(bars: &[Ohlcv], mut run: impl FnMut(&[Ohlcv])) -> f64 {
    (0..3)
        .map(|_| {
            let t0 = Instant::now();
            run(bars);
            t0.elapsed().as_nanos() as f64 / bars.len() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<()> {
    let mut n = 2_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--updates" => n = args.next().context("--updates N")?.parse()?,
            other => anyhow::bail!("unknown argument {other} (expected --updates N)"),
        }
    }
    let bars = bars(n);
    let first = &bars[0];
    let candle = |b: &Ohlcv| Candle {
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    };
    println!(
        "machine: {}; {n} updates per indicator, best of 3",
        machine()
    );
    println!("| indicator | tickflow ns/update | yata ns/update | tickflow / yata |");
    println!("|---|---|---|---|");
    let row = |name: &str, ours: f64, yata: Option<f64>| match yata {
        Some(y) => println!("| {name}_vs_yata | {ours:.2} | {y:.2} | {:.2} |", ours / y),
        None => println!("| {name} | {ours:.2} | — | — |"),
    };

    macro_rules! close_only {
        ($name:literal, $ours:expr, $yata:expr) => {{
            let ours = time(&bars, |bs| {
                let mut i = $ours;
                for b in bs {
                    black_box(i.update(black_box(b.close)));
                }
            });
            let yata = time(&bars, |bs| {
                let mut y = $yata;
                for b in bs {
                    black_box(y.next(&black_box(b.close)));
                }
            });
            row($name, ours, Some(yata));
        }};
    }
    close_only!(
        "sma_20",
        Sma::new(20),
        yata::methods::SMA::new(20, &first.close).expect("valid period")
    );
    close_only!(
        "ema_20",
        Ema::new(20),
        yata::methods::EMA::new(20, &first.close).expect("valid period")
    );
    close_only!(
        "wma_20",
        Wma::new(20),
        yata::methods::WMA::new(20, &first.close).expect("valid period")
    );
    close_only!(
        "dema_20",
        Dema::new(20),
        yata::methods::DEMA::new(20, &first.close).expect("valid period")
    );
    close_only!(
        "tema_20",
        Tema::new(20),
        yata::methods::TEMA::new(20, &first.close).expect("valid period")
    );
    close_only!(
        "roc_10",
        Roc::new(10),
        yata::methods::RateOfChange::new(10, &first.close).expect("valid period")
    );
    close_only!(
        "stddev_20",
        StdDev::new(20, 1.0),
        yata::methods::StDev::new(20, &first.close).expect("valid period")
    );

    let tp = |b: &Ohlcv| (b.high + b.low + b.close) / 3.0;
    let ours = time(&bars, |bs| {
        let mut i = Cci::new(20);
        bs.iter().for_each(|b| {
            black_box(i.update(black_box(b)));
        });
    });
    let yata = time(&bars, |bs| {
        let mut y = yata::methods::CCI::new(20, &tp(first)).expect("period > 0");
        bs.iter().for_each(|b| {
            black_box(y.next(&black_box(tp(b))));
        });
    });
    row("cci_20", ours, Some(yata));
    let ours = time(&bars, |bs| {
        let mut i = TrueRange::new();
        bs.iter().for_each(|b| {
            black_box(i.update(black_box(b)));
        });
    });
    let yata = time(&bars, |bs| {
        let mut y = <yata::methods::TR as Method>::new((), &candle(first)).expect("no parameters");
        bs.iter().for_each(|b| {
            black_box(y.next(&black_box(candle(b))));
        });
    });
    row("trange", ours, Some(yata));

    macro_rules! ours_only {
        ($name:literal, $ours:expr, $input:ident => $arg:expr) => {{
            let t = time(&bars, |bs| {
                let mut i = $ours;
                for $input in bs {
                    black_box(i.update(black_box($arg)));
                }
            });
            row($name, t, None);
        }};
    }
    ours_only!("rsi_14", Rsi::new(14), b => b.close);
    ours_only!("macd_12_26_9", Macd::new(12, 26, 9), b => b.close);
    ours_only!("bbands_20", BollingerBands::new(20, 2.0, 2.0), b => b.close);
    ours_only!("zscore_20", ZScore::new(20), b => b.close);
    ours_only!("atr_14", Atr::new(14), b => b);
    ours_only!("stoch_14_3_3", Stoch::new(14, 3, 3), b => b);
    ours_only!("willr_14", WillR::new(14), b => b);
    ours_only!("adx_14", Adx::new(14), b => b);
    ours_only!("obv", Obv::new(), b => b);
    ours_only!("mfi_14", Mfi::new(14), b => b);
    ours_only!("session_vwap", SessionVwap::new(0), b => b);
    let set = time(&bars, |bs| {
        let mut s = IndicatorSet::new(&IndicatorPeriods::default());
        let mut row = Vec::new();
        for b in bs {
            s.update(black_box(b), &mut row);
            black_box(&row);
        }
    });
    row("all 27 values (IndicatorSet)", set, None);
    Ok(())
}
