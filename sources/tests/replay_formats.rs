//! Every replay reader against the recorded data in `$TICKFLOW_SAMPLE_DATA`, and a file of
//! garbage rows. Tests that need the recorded data say so and return when it is absent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tickflow_core::{BookAction, MarketEvent, RejectReason};
use tickflow_sources::sample_data;
use tickflow_sources::{Merger, ReplayFormat, SourceConfig, SourceItem, plan};

#[derive(Default, Debug)]
struct Counts {
    trades: u64,
    quotes: u64,
    book: BTreeMap<&'static str, u64>,
    bad: Vec<String>,
}

fn read_all(path: PathBuf, format: ReplayFormat) -> Counts {
    let plan = plan(&[SourceConfig::Replay { path, format }]).unwrap();
    let readers = plan
        .parts
        .iter()
        .map(|p| p.open(&plan.registry).unwrap())
        .collect();
    let mut merger = Merger::new(readers);
    let mut c = Counts::default();
    let mut last = tickflow_core::Timestamp::MIN;
    let mut out_of_order = 0;
    while let Some(item) = merger.next_item() {
        match item {
            SourceItem::Event(e) => {
                if e.ts_event() < last {
                    out_of_order += 1;
                }
                last = last.max(e.ts_event());
                match e {
                    MarketEvent::Trade(_) => c.trades += 1,
                    MarketEvent::Quote(_) => c.quotes += 1,
                    MarketEvent::Book(b) => *c.book.entry(b.action.as_str()).or_default() += 1,
                }
            }
            SourceItem::Bad(r) => c.bad.push(r.to_string()),
        }
    }
    eprintln!(
        "trades {} quotes {} book {:?} bad {} (first: {:?}), out of order: {out_of_order}",
        c.trades,
        c.quotes,
        c.book,
        c.bad.len(),
        c.bad.first()
    );
    c
}

#[test]
fn reads_lean_ticks_of_all_symbols() {
    let Some(data) = sample_data() else { return };
    let c = read_all(data.join("us-equities/tick"), ReplayFormat::Auto);
    assert!(
        c.trades > 1_100_000 && c.trades < 1_250_000,
        "~1.16 M trades, got {}",
        c.trades
    );
    assert!(
        c.quotes > 1_000_000 && c.quotes < 1_100_000,
        "~1.05 M quotes, got {}",
        c.quotes
    );
    assert!(c.bad.len() < 100, "{:?}", &c.bad[..c.bad.len().min(5)]);
}

#[test]
fn reads_binance_captures() {
    let Some(data) = sample_data() else { return };
    let c = read_all(data.join("binance-ws"), ReplayFormat::Auto);
    assert_eq!(c.trades, 39_462);
    assert_eq!(c.quotes, 137_342);
    assert!(
        c.book.values().sum::<u64>() > 40_283,
        "depth diffs hold several levels each"
    );
    assert!(c.bad.is_empty(), "{:?}", &c.bad[..c.bad.len().min(5)]);
}

#[test]
fn reads_tardis_trades_and_quotes() {
    let Some(data) = sample_data() else { return };
    let c = read_all(data.join("tardis"), ReplayFormat::Auto);
    assert_eq!(c.trades, 9_999 + 10);
    assert_eq!(c.quotes, 10);
    assert!(c.bad.is_empty(), "{:?}", c.bad);
}

#[test]
fn reads_lobster_messages() {
    let Some(data) = sample_data() else { return };
    let c = read_all(data.join("lobster"), ReplayFormat::Auto);
    let book: u64 = c.book.values().sum();
    assert!(book + c.trades >= 57_514 - 10, "{c:?}");
    assert!(c.book["add"] > 20_000);
    assert!(c.bad.is_empty(), "{:?}", c.bad);
}

#[test]
fn reads_databento_mbo() {
    let Some(data) = sample_data() else { return };
    let c = read_all(data.join("cme-mbo"), ReplayFormat::Auto);
    let total = c.book.values().sum::<u64>() + c.trades;
    assert!(total > 60_000 && total <= 68_792, "{c:?}");
    assert!(c.book.contains_key(BookAction::Add.as_str()));
    assert!(c.bad.is_empty(), "{:?}", c.bad);
}

#[test]
fn garbage_rows_are_reported_and_good_rows_kept() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "\
exchange,symbol,timestamp,local_timestamp,id,side,price,amount
binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132
binance-futures,BTCUSDT,1582329602116000
complete garbage here
binance-futures,BTCUSDT,1582329602116000,1582329602418420,2,buy,NaN,0.4
binance-futures,BTCUSDT,notatime,1582329602418420,3,buy,9682,0.4
binance-futures,BTCUSDT,1582329602117000,1582329602418420,4,sell,9681.5,0.25,extra
binance-futures,BTCUSDT,1582329602118000,1582329602418420,5,sell,9681.5,0.25
binance-futures,BTCUSDT,15823296021";
    let path = dir.path().join("trades.csv");
    std::fs::write(&path, csv).unwrap();
    let plan = plan(&[SourceConfig::Replay {
        path: path.clone(),
        format: ReplayFormat::Auto,
    }])
    .unwrap();
    let mut reader = plan.parts[0].open(&plan.registry).unwrap();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    while let Some(item) = reader.next_item() {
        match item {
            SourceItem::Event(e) => good.push(e.ts_event().nanos()),
            SourceItem::Bad(r) => bad.push((r.line, r.reason, r.detail)),
        }
    }
    assert_eq!(
        good,
        vec![1_582_329_602_111_000_000, 1_582_329_602_118_000_000]
    );
    let lines: Vec<u64> = bad.iter().map(|b| b.0).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7, 9]);
    assert_eq!(bad[2].1, RejectReason::NonFinitePrice);
    assert!(
        bad[0].2.contains("expected 8 columns, found 3"),
        "{:?}",
        bad[0]
    );
    assert!(bad[3].2.contains("timestamp"), "{:?}", bad[3]);
}

/// A Lean trade zip of one day holding `csv`, in a new directory.
fn lean_trade_zip(csv: &[u8]) -> (tempfile::TempDir, PathBuf) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xyz_20131007_trade.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file(
        "20131007_xyz_Trade_Tick.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(csv).unwrap();
    zip.finish().unwrap();
    (dir, path)
}

/// Every item of one file: its records, and its rejects.
fn read_file(path: PathBuf) -> (Vec<MarketEvent>, Vec<tickflow_core::Reject>) {
    let plan = plan(&[SourceConfig::Replay {
        path,
        format: ReplayFormat::Auto,
    }])
    .unwrap();
    let mut reader = plan.parts[0].open(&plan.registry).unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    while let Some(item) = reader.next_item() {
        match item {
            SourceItem::Event(e) => good.push(e),
            SourceItem::Bad(r) => bad.push(r),
        }
    }
    (good, bad)
}

#[test]
fn a_lean_zip_that_breaks_off_part_way_says_so_after_its_good_rows() {
    let rows = 50_000;
    let csv: String = (0..rows)
        .map(|i| {
            format!(
                "{},{},{},P,0,0\n",
                34_200_000 + i,
                1_815_200 + (i * 7919) % 5000,
                1 + i % 300
            )
        })
        .collect();
    let (_dir, path) = lean_trade_zip(csv.as_bytes());
    // Damage the compressed data past its first half: the rows before it are read as they
    // come, and the file says where it broke off instead of ending quietly.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() * 3 / 4;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (good, bad) = read_file(path);
    let good = good.len();
    assert!(
        good > rows / 4 && good < rows,
        "{good} rows read before the damage"
    );
    assert!(
        bad.last()
            .is_some_and(|r| r.detail.contains("the file cannot be read further")),
        "{bad:?}"
    );
}

#[test]
fn lean_garbage_is_reported_with_line_and_reason() {
    let (_dir, path) = lean_trade_zip(b"34200000,1815200,100,P,0,0\n34200001,18152x0,100,P,0,0\n\x00\xff\xfe\n34200002,1815200\n34200003,1815300,50,P,0,1\n34200004,1815300,50,P,0,0\n3420");
    let (good, bad) = read_file(path);
    let good = good.len();
    let bad: Vec<u64> = bad.iter().map(|r| r.line).collect();
    assert_eq!(good, 3, "the suspicious row is read; normalize rejects it");
    assert_eq!(bad, vec![2, 3, 4, 7]);
}

#[test]
fn lean_days_opened_lazily_merge_in_the_same_order() {
    let Some(data) = sample_data() else { return };
    let plan = plan(&[SourceConfig::Replay {
        path: data.join("us-equities/tick"),
        format: ReplayFormat::Auto,
    }])
    .unwrap();
    let mut eager = Merger::new(
        plan.parts
            .iter()
            .map(|p| p.open(&plan.registry).unwrap())
            .collect(),
    );
    let registry = std::sync::Arc::new(plan.registry.clone());
    for p in &plan.parts {
        assert!(p.earliest().is_some(), "{} has a day", p.name());
    }
    let mut lazy = Merger::lazy(plan.parts.iter().enumerate(), &registry);
    let mut n = 0u64;
    loop {
        let (a, b) = (eager.next_item(), lazy.next_item());
        assert_eq!(a, b, "item {n}");
        if a.is_none() {
            break;
        }
        n += 1;
    }
    assert!(n > 2_000_000, "{n} items");
}
