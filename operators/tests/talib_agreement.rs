//! Every indicator TA-Lib has agrees with TA-Lib to 1e-9 (relative, or absolute below 1) on
//! the synthetic bars and on Lean daily and minute bars; definedness matches too (no value
//! before TA-Lib has one, and none missing after). The reference values were made by
//! `tests/fixtures/make_talib_fixtures.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tickflow_operators::indicators::{IndicatorPeriods, IndicatorSet, Ohlcv};
use tickflow_sources::sample_data;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Columns of a TA-Lib fixture: name → value per row (`None` where TA-Lib has none).
fn reference(name: &str) -> BTreeMap<String, Vec<Option<f64>>> {
    let text = std::fs::read_to_string(fixtures().join(format!("talib_{name}.csv"))).unwrap();
    let mut lines = text.lines();
    let names: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut cols: BTreeMap<String, Vec<Option<f64>>> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for line in lines {
        for (n, v) in names.iter().zip(line.split(',')) {
            cols.get_mut(n)
                .unwrap()
                .push((!v.is_empty()).then(|| v.parse().unwrap()));
        }
    }
    cols
}

/// Runs the standard set over independent series, concatenating the outputs by column.
fn ours(series: &[Vec<Ohlcv>]) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut cols: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut row = Vec::new();
    for bars in series {
        let mut set = IndicatorSet::new(&IndicatorPeriods::default());
        for bar in bars {
            set.update(bar, &mut row);
            for (name, v) in IndicatorPeriods::default().columns().iter().zip(&row) {
                cols.entry(name.clone()).or_default().push(*v);
            }
        }
    }
    cols
}

fn compare(dataset: &str, series: &[Vec<Ohlcv>]) {
    let expected = reference(dataset);
    let got = ours(series);
    let mut checked = 0;
    for (name, want) in &expected {
        let have = got
            .get(name)
            .unwrap_or_else(|| panic!("{dataset}: no indicator {name}"));
        assert_eq!(have.len(), want.len(), "{dataset} {name}: row count");
        for (i, (h, w)) in have.iter().zip(want).enumerate() {
            match (h, w) {
                (None, None) => {}
                (Some(h), Some(w)) => {
                    let tol = 1e-9 * w.abs().max(1.0);
                    assert!(
                        (h - w).abs() <= tol,
                        "{dataset} {name} row {i}: ours {h}, TA-Lib {w} (diff {:e})",
                        (h - w).abs()
                    );
                    checked += 1;
                }
                _ => panic!(
                    "{dataset} {name} row {i}: ours {h:?}, TA-Lib {w:?} (definedness differs)"
                ),
            }
        }
    }
    eprintln!(
        "{dataset}: {checked} values agree with TA-Lib across {} indicators",
        expected.len()
    );
    assert!(checked > 1000);
}

#[test]
fn agrees_with_talib_on_synthetic_bars() {
    let text = std::fs::read_to_string(fixtures().join("synthetic_bars.csv")).unwrap();
    let bars: Vec<Ohlcv> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            Ohlcv {
                time: f[0] as i64,
                open: f[1],
                high: f[2],
                low: f[3],
                close: f[4],
                volume: f[5],
                vwap: f[6],
            }
        })
        .collect();
    let half = bars.len() / 2;
    compare("synthetic", &[bars[..half].to_vec(), bars[half..].to_vec()]);
}

/// Lean trade bars (`time, open, high, low, close, volume`, prices × 10,000), as the fixture
/// script reads them.
fn lean_bars(path: &Path, first_day: Option<&str>) -> Vec<Ohlcv> {
    let (_, data) = tickflow_sources::replay::lean::read_zip(path).unwrap();
    String::from_utf8(data)
        .unwrap()
        .lines()
        .filter(|l| first_day.is_none_or(|d| &l[..8] >= d))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let p = |i: usize| f[i].parse::<i64>().unwrap() as f64 / 1e4;
            Ohlcv {
                time: 0,
                open: p(1),
                high: p(2),
                low: p(3),
                close: p(4),
                volume: f[5].parse().unwrap(),
                vwap: p(4),
            }
        })
        .collect()
}

#[test]
fn agrees_with_talib_on_lean_daily_bars() {
    let Some(data) = sample_data() else { return };
    compare(
        "spy_daily",
        &[lean_bars(
            &data.join("us-equities/daily/spy.zip"),
            Some("20150102"),
        )],
    );
}

#[test]
fn agrees_with_talib_on_lean_minute_bars() {
    let Some(data) = sample_data() else { return };
    compare(
        "ibm_minute",
        &[lean_bars(
            &data.join("us-equities/minute/ibm_20131007_trade.zip"),
            None,
        )],
    );
}
