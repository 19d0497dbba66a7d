//! Every replay reader against the recorded data in `$TICKFLOW_SAMPLE_DATA`, and a file of
//! garbage rows. Tests that need the recorded data say so and return when it is absent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tickflow_core::{BookAction, MarketEvent, RejectReason, SeqNo, Side};
use tickflow_sources::sample_data;
use tickflow_sources::{Merger, PartReader, ReplayFormat, SourceConfig, SourceItem, plan};

#[derive(Default, Debug)]
struct Counts {
    trades: u64,
    quotes: u64,
    book: BTreeMap<&'static str, u64>,
    bad: Vec<String>,
}

fn read_all(path: PathBuf, format: ReplayFormat) -> Counts {
    let plan = plan(&[SourceConfig::Replay {
        path,
        format,
        quote_size: None,
    }])
    .unwrap();
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
    // ~1.05 M quote rows, each setting one side: two rows make one quote.
    assert!(
        c.quotes > 500_000 && c.quotes < 550_000,
        "~526 k quotes, got {}",
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
    // The orderbook file beside it gives the quotes.
    assert!(c.quotes > 20_000, "{c:?}");
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

/// A new gzip file at `path`, to write into; `finish` completes it.
fn gzip_writer(path: &std::path::Path) -> flate2::write::GzEncoder<std::fs::File> {
    flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    )
}

/// A gzip copy of `file` in `dir`, named `name`.
fn gzip_copy(file: &std::path::Path, dir: &std::path::Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut gz = gzip_writer(&path);
    std::io::copy(&mut std::fs::File::open(file).unwrap(), &mut gz).unwrap();
    gz.finish().unwrap();
    path
}

#[test]
fn gzipped_tardis_and_lobster_csv_read_as_the_plain_files() {
    // Tardis ships its CSV gzipped (`*.csv.gz`); LOBSTER files are often kept so. A directory
    // of such files is found and read record for record as the plain ones.
    let Some(data) = sample_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tardis = data.join("tardis/tardis_binance-futures_trades_BTCUSDT.csv");
    let lobster = data.join("lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv");
    let copies = [
        (tardis, "tardis_binance-futures_trades_BTCUSDT.csv.gz"),
        (
            lobster,
            "AMZN_2012-06-21_34200000_57600000_message_1.csv.gz",
        ),
    ];
    // The orderbook file goes with its messages, gzipped as well.
    gzip_copy(
        &data.join("lobster/AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"),
        dir.path(),
        "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv.gz",
    );
    for (plain, name) in &copies {
        let (want, want_bad) = read_file(plain.clone());
        let (got, got_bad) = read_file(gzip_copy(plain, dir.path(), name));
        assert!(want.len() > 9_000, "{}", want.len());
        assert!(want_bad.is_empty() && got_bad.is_empty(), "{got_bad:?}");
        assert!(want == got, "{name} reads differently from its plain copy");
    }
    let plan = plan(&[SourceConfig::Replay {
        path: dir.path().to_path_buf(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap();
    assert_eq!(
        plan.parts.len(),
        2,
        "both gzip files found in the directory"
    );
}

#[test]
fn a_gzipped_tardis_file_that_breaks_off_part_way_says_so_after_its_good_rows() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let rows = 30_000;
    let path = dir.path().join("trades.csv.gz");
    let mut gz = gzip_writer(&path);
    writeln!(
        gz,
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
    )
    .unwrap();
    for i in 0..rows {
        writeln!(
            gz,
            "bitmex,XBTUSD,{},{},{i},{},{}.5,{}",
            1_582_329_602_000_000 + i * 1_000,
            1_582_329_602_000_400 + i * 1_000,
            if i % 2 == 0 { "buy" } else { "sell" },
            9_600 + (i * 7919) % 200,
            1 + i % 50
        )
        .unwrap();
    }
    gz.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (good, bad) = read_file(path);
    let n = good.len() as u64;
    assert!(n > rows / 4 && n < rows, "{n} rows read before the cut");
    let last = bad.last().expect("a reject says where the file broke off");
    assert!(
        last.detail.contains("the file cannot be read further"),
        "{bad:?}"
    );
    assert!(bad.len() <= 2, "{bad:?}");
}

#[test]
fn a_databento_file_that_breaks_off_part_way_says_so_after_its_good_records() {
    // The DBN decoder takes the early end of a file (compressed or not) for its clean end;
    // the reader tells the two apart.
    let Some(data) = sample_data() else { return };
    let zst = data.join("cme-mbo/esh4-glbx-mdp3-20231225.mbo.dbn.zst");
    let compressed = std::fs::read(&zst).unwrap();
    let plain = zstd::decode_all(&compressed[..]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let (all, bad) = read_file(write("whole.mbo.dbn", &plain));
    assert!(bad.is_empty(), "a whole file reads to its end: {bad:?}");
    assert_eq!(all, read_file(zst).0, "the same records compressed or not");
    let cases = [
        ("cut.mbo.dbn.zst", &compressed[..compressed.len() / 2]),
        // 56-byte records: this cut falls inside one.
        ("cut.mbo.dbn", &plain[..plain.len() / 2 + 17]),
    ];
    for (name, bytes) in cases {
        let (good, bad) = read_file(write(name, bytes));
        assert!(
            good.len() > all.len() / 4 && good.len() < all.len(),
            "{name}: {} of {} records before the cut",
            good.len(),
            all.len()
        );
        assert_eq!(
            good[..],
            all[..good.len()],
            "{name}: the records before the cut"
        );
        assert_eq!(bad.len(), 1, "{name}: {bad:?}");
        let why = if name.ends_with(".zst") {
            "the file cannot be read further: the compressed stream breaks off"
        } else {
            "the file cannot be read further: it ends inside a record"
        };
        assert!(bad[0].detail.starts_with(why), "{name}: {bad:?}");
    }
}

/// The bytes of a DBN MBO file of `n` adds of instrument 7, one a microsecond, and the offset
/// of its first record.
fn dbn_bytes(n: u64) -> (Vec<u8>, usize) {
    use dbn::encode::EncodeRecord;
    let metadata = dbn::Metadata::builder()
        .dataset("GLBX.MDP3")
        .schema(Some(dbn::Schema::Mbo))
        .start(1_703_462_400_000_000_000)
        .stype_in(Some(dbn::SType::RawSymbol))
        .stype_out(dbn::SType::InstrumentId)
        .build();
    let mut bytes = Vec::new();
    let mut encoder = dbn::encode::DbnEncoder::new(&mut bytes, &metadata).unwrap();
    for k in 0..n {
        let ts = 1_703_462_400_000_000_000 + k * 1_000;
        encoder
            .encode_record(&dbn::MboMsg {
                hd: dbn::RecordHeader::new::<dbn::MboMsg>(dbn::rtype::MBO, 1, 7, ts),
                order_id: 100 + k,
                price: 4_750_000_000_000 + k as i64 * 250_000_000,
                size: 1 + k as u32,
                flags: Default::default(),
                channel_id: 0,
                action: b'A' as std::ffi::c_char,
                side: b'B' as std::ffi::c_char,
                ts_recv: ts + 10,
                ts_in_delta: 0,
                sequence: k as u32,
            })
            .unwrap();
    }
    let header = 8 + u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), header + 56 * n as usize);
    (bytes, header)
}

#[test]
fn a_damaged_databento_file_says_what_is_damaged_and_gives_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, header) = dbn_bytes(10);
    let read = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (good, bad) = read_file(path);
        let orders: Vec<u64> = good
            .iter()
            .map(|e| match e {
                MarketEvent::Book(b) => b.order_id.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        let bad: Vec<(u64, String)> = bad.into_iter().map(|r| (r.line, r.detail)).collect();
        (orders, bad)
    };
    let (orders, bad) = read("whole.mbo.dbn", &whole);
    assert_eq!(orders, (100..110).collect::<Vec<_>>());
    assert!(bad.is_empty(), "{bad:?}");

    // A record of another type is left out; the records after it are read.
    let mut other = whole.clone();
    other[header + 3 * 56 + 1] = 0x01;
    let (orders, bad) = read("other.mbo.dbn", &other);
    assert_eq!(orders.len(), 9);
    assert!(!orders.contains(&103));
    assert_eq!(
        bad,
        [(
            4,
            "a record of type 0x01, not market-by-order (0xa0), is left out".to_string()
        )]
    );

    // A record whose length cannot hold its header hides where the next one starts: the file
    // stops there, after the records before it.
    let mut zero = whole.clone();
    zero[header + 5 * 56] = 0;
    let (orders, bad) = read("zero.mbo.dbn", &zero);
    assert_eq!(orders, (100..105).collect::<Vec<_>>());
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 6);
    assert!(
        bad[0].1.starts_with(
            "the file cannot be read further: a record of 0 bytes, shorter than its 16-byte header"
        ),
        "{bad:?}"
    );

    // A record framed shorter than the MBO layout is rejected as such.
    let mut short = whole.clone();
    short[header + 9 * 56] = 13;
    short.truncate(header + 9 * 56 + 52);
    let (orders, bad) = read("short.mbo.dbn", &short);
    assert_eq!(orders.len(), 9);
    assert_eq!(
        bad,
        [(
            10,
            "a market-by-order record of 52 bytes; its layout has 56".to_string()
        )]
    );

    // Files refused whole, with why.
    let refused = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let planned = plan(&[SourceConfig::Replay {
            path,
            format: ReplayFormat::Auto,
            quote_size: None,
        }]);
        match planned {
            Ok(_) => panic!("{name} was read"),
            Err(e) => e.to_string(),
        }
    };
    let mut v4 = whole.clone();
    v4[3] = 4;
    let e = refused("v4.mbo.dbn", &v4);
    assert!(
        e.contains("a DBN file of version 4; versions 1 to 3 are read"),
        "{e}"
    );
    let e = refused("head.mbo.dbn", &whole[..header - 10]);
    assert!(
        e.contains("not a DBN file: it ends inside its metadata"),
        "{e}"
    );
    let e = refused("text.mbo.dbn", b"timestamp,price\n");
    assert!(
        e.contains("not a DBN file: it does not start with \"DBN\""),
        "{e}"
    );
}

#[test]
fn a_databento_file_of_another_schema_is_refused_with_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glbx-20231225.trades.dbn");
    let metadata = dbn::Metadata::builder()
        .dataset("GLBX.MDP3")
        .schema(Some(dbn::Schema::Trades))
        .start(1_703_462_400_000_000_000)
        .stype_in(Some(dbn::SType::RawSymbol))
        .stype_out(dbn::SType::InstrumentId)
        .build();
    dbn::encode::DbnEncoder::new(std::fs::File::create(&path).unwrap(), &metadata).unwrap();
    let Err(err) = plan(&[SourceConfig::Replay {
        path,
        format: ReplayFormat::Auto,
        quote_size: None,
    }]) else {
        panic!("a trades file is refused");
    };
    let msg = err.to_string();
    assert!(msg.contains("glbx-20231225.trades.dbn"), "{msg}");
    assert!(msg.contains("schema trades"), "{msg}");
    assert!(msg.contains("only market-by-order (mbo)"), "{msg}");
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
    let (good, bad) = read_file(path);
    let bad: Vec<_> = bad
        .into_iter()
        .map(|r| (r.line, r.reason, r.detail))
        .collect();
    assert_eq!(
        good.iter()
            .map(|e| e.ts_event().nanos())
            .collect::<Vec<_>>(),
        vec![1_582_329_602_111_000_000, 1_582_329_602_118_000_000]
    );
    // Records are numbered by their lines, so a record refused later is reported at its line.
    let lines: Vec<u64> = good.iter().map(|e| e.seq().line()).collect();
    assert_eq!(lines, vec![2, 8]);
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
    lean_zip("trade", csv)
}

/// A Lean tick zip of one day, of `kind` (`trade` or `quote`), holding `csv`, in a new
/// directory.
fn lean_zip(kind: &str, csv: &[u8]) -> (tempfile::TempDir, PathBuf) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("xyz_20131007_{kind}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let inner = if kind == "trade" { "Trade" } else { "Quote" };
    zip.start_file(
        format!("20131007_xyz_{inner}_Tick.csv"),
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(csv).unwrap();
    zip.finish().unwrap();
    (dir, path)
}

/// One file opened as a job opens it: planned alone, its only part opened.
/// Opens a file as the only source; quotes recorded without sizes (TrueFX) are given
/// [`QUOTE_SIZE`].
fn open_file(path: PathBuf) -> tickflow_sources::Result<Box<dyn PartReader>> {
    let plan = plan(&[SourceConfig::Replay {
        path,
        format: ReplayFormat::Auto,
        quote_size: Some(QUOTE_SIZE),
    }])
    .unwrap();
    plan.parts[0].open(&plan.registry)
}

/// Every item of one file: its records, and its rejects.
fn read_file(path: PathBuf) -> (Vec<MarketEvent>, Vec<tickflow_core::Reject>) {
    let mut reader = open_file(path).unwrap();
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

/// A Binance spot capture of BTCUSDT holding `rows` trades (ids 1, 2, ...), gzipped, in a new
/// directory.
fn binance_trade_capture(rows: u64) -> (tempfile::TempDir, PathBuf) {
    binance_trades_of_ids(1..=rows)
}

/// A Binance spot capture of BTCUSDT holding one trade of each id, in that order.
fn binance_trades_of_ids(ids: impl IntoIterator<Item = u64>) -> (tempfile::TempDir, PathBuf) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot_btcusdt_20240808.gz");
    let mut gz = gzip_writer(&path);
    for id in ids {
        let ms = 1_723_075_200_000 + id * 3;
        writeln!(
            gz,
            "{} {{\"stream\":\"btcusdt@trade\",\"data\":{{\"e\":\"trade\",\"E\":{ms},\
             \"s\":\"BTCUSDT\",\"t\":{id},\"p\":\"{}.{:02}\",\"q\":\"0.{:05}\",\"T\":{ms},\"m\":{}}}}}",
            ms * 1_000_000 + 250_000,
            56_000 + (id * 7919) % 900,
            id % 100,
            1 + id % 9_000,
            id % 3 == 0
        )
        .unwrap();
    }
    gz.finish().unwrap();
    (dir, path)
}

/// The trade ids of a capture's records.
fn trade_ids(records: &[MarketEvent]) -> Vec<u64> {
    records
        .iter()
        .map(|e| match e {
            MarketEvent::Trade(t) => t.trade_id.unwrap(),
            other => panic!("not a trade: {other:?}"),
        })
        .collect()
}

#[test]
fn a_binance_capture_reports_the_trade_ids_missing_between_its_trades() {
    let (_dir, path) = binance_trades_of_ids([1, 2, 3, 5, 6, 9, 9, 7, 10, 1_000]);
    let (good, bad) = read_file(path);
    assert_eq!(
        trade_ids(&good),
        [1, 2, 3, 5, 6, 9, 9, 7, 10, 1_000],
        "every trade is read; repeats are normalize's to drop"
    );
    let gaps: Vec<(u64, RejectReason, &str)> = bad
        .iter()
        .map(|r| (r.line, r.reason, r.detail.as_str()))
        .collect();
    assert_eq!(
        gaps,
        vec![
            (
                4,
                RejectReason::Gap,
                "trade gap: trade 4 is missing (the highest id before it is 3)"
            ),
            (
                6,
                RejectReason::Gap,
                "trade gap: 2 trades, ids 7 to 8, are missing (the highest id before it is 6)"
            ),
            // 7 came late, after 9: not a gap; 10 follows 9.
            (
                10,
                RejectReason::Gap,
                "trade gap: 989 trades, ids 11 to 999, are missing (the highest id before it is 10)"
            ),
        ]
    );
    let gap = &bad[0];
    assert!(
        gap.instrument.is_some() && gap.ts_event.is_some(),
        "{gap:?}"
    );
}

#[test]
fn a_binance_capture_that_breaks_off_part_way_says_so_after_its_good_rows() {
    // A recorder stopped mid-write leaves a gzip file without its end: the lines before the
    // cut are read, in order and whole, and the file says where it broke off.
    let rows = 40_000;
    let (_dir, path) = binance_trade_capture(rows);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let (good, bad) = read_file(path);
    let ids = trade_ids(&good);
    let n = ids.len() as u64;
    assert!(n > rows / 4 && n < rows, "{n} rows read before the cut");
    assert_eq!(
        ids,
        (1..=n).collect::<Vec<_>>(),
        "every line before the cut"
    );
    let last = bad.last().expect("a reject says where the file broke off");
    assert!(
        last.detail.contains("the file cannot be read further"),
        "{bad:?}"
    );
    // At most the line cut in half is rejected besides.
    assert!(bad.len() <= 2, "{bad:?}");
    assert!(last.line > n, "{last:?}");
}

#[test]
fn a_binance_line_of_many_records_numbers_them_within_its_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot_btcusdt_20240808.gz");
    let mut gz = gzip_writer(&path);
    for line in [
        r#"1723075200000250000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723075200000,"s":"BTCUSDT","t":1,"p":"56000.10","q":"0.5","T":1723075200000,"m":true}}"#,
        r#"1723075200100250000 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723075200100,"s":"BTCUSDT","U":10,"u":12,"b":[["56000.00","1.5"],["55999.00","0"]],"a":[["56001.00","2"]]}}"#,
        "",
        r#"1723075200200250000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723075200200,"s":"BTCUSDT","t":2,"p":"56000.20","q":"0.25","T":1723075200200,"m":false}}"#,
    ] {
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
    let (good, bad) = read_file(path);
    assert!(bad.is_empty(), "{bad:?}");
    let at: Vec<(u64, u64)> = good
        .iter()
        .map(|e| {
            let seq = e.seq();
            (
                seq.line(),
                seq.ordinal() - (seq.line() << SeqNo::LINE_SHIFT),
            )
        })
        .collect();
    assert_eq!(at, vec![(1, 0), (2, 0), (2, 1), (2, 2), (4, 0)]);
    let seqs: Vec<SeqNo> = good.iter().map(MarketEvent::seq).collect();
    assert!(seqs.is_sorted(), "in the order they were read: {seqs:?}");
}

#[test]
fn a_binance_capture_with_a_wrong_checksum_gives_its_rows_then_says_so() {
    let rows = 1_000;
    let (_dir, path) = binance_trade_capture(rows);
    let mut bytes = std::fs::read(&path).unwrap();
    // The trailer is the CRC-32 of the data, then its length.
    let crc = bytes.len() - 8;
    bytes[crc] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (good, bad) = read_file(path);
    assert_eq!(trade_ids(&good), (1..=rows).collect::<Vec<_>>());
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].detail.contains("the file cannot be read further"),
        "{bad:?}"
    );
    assert_eq!(bad[0].line, rows + 1);
}

#[test]
fn a_binance_capture_that_is_not_gzip_is_refused_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot_btcusdt_20240808.gz");
    std::fs::write(
        &path,
        "1723075200000250000 {\"stream\":\"btcusdt@trade\"}\n",
    )
    .unwrap();
    let Err(err) = open_file(path) else {
        panic!("a capture that is not gzip is refused");
    };
    let msg = err.to_string();
    assert!(msg.contains("spot_btcusdt_20240808.gz"), "{msg}");
    assert!(msg.contains("not a gzip file"), "{msg}");
}

#[test]
fn lean_garbage_is_reported_with_line_and_reason() {
    let (_dir, path) = lean_trade_zip(b"34200000,1815200,100,P,0,0\n34200001,18152x0,100,P,0,0\n\x00\xff\xfe\n34200002,1815200\n34200003,1815300,50,P,0,1\n34200004,1815300,50,P,0,0\n3420");
    let (good, bad) = read_file(path);
    let good: Vec<u64> = good.iter().map(|e| e.seq().line()).collect();
    let bad: Vec<u64> = bad.iter().map(|r| r.line).collect();
    assert_eq!(
        good,
        vec![1, 5, 6],
        "the suspicious row (line 5) is read; normalize rejects it at its line"
    );
    assert_eq!(bad, vec![2, 3, 4, 7]);
}

#[test]
fn lean_quote_rows_make_quotes_of_the_whole_top_of_book() {
    // Each row sets one side; the two rows of one instant are one change of the top of book.
    let csv = "\
34200000,1815000,100,0,0,P,1,0
34200010,1815100,200,0,0,P,1,0
34200010,0,0,1815300,300,N,1,0
34200020,0,0,1815200,100,Q,1,0
34200030,1815150,0,0,0,P,1,0
34200040,1815150,50,0,0,P,1,1
34200050,0,0,1815250,100,P,1,0
34200060,18151x0,50,0,0,P,1,0
34200070,1815200,100,0,0,P,1,0
34200070,1815210,100,0,0,P,1,0
34200080,0,0,1815300,400,P,1,0
34200080,1815250,300,0,0,P,1,0
";
    let (_dir, path) = lean_zip("quote", csv.as_bytes());
    let (good, bad) = read_file(path);
    let px = |s: &str| Some(tickflow_core::Price::parse(s).unwrap());
    let qty = |n: i64| tickflow_core::Quantity::from_int(n).unwrap();
    let got: Vec<_> = good
        .iter()
        .map(|e| match e {
            MarketEvent::Quote(q) => (
                e.seq().line(),
                q.bid,
                q.bid_size,
                q.ask,
                q.ask_size,
                q.suspicious,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let want = vec![
        // A side never set yet is absent.
        (1, px("181.50"), qty(100), None, qty(0), false),
        // The bid row and the ask row of one instant: one quote.
        (2, px("181.51"), qty(200), px("181.53"), qty(300), false),
        // An ask alone keeps the bid last set.
        (4, px("181.51"), qty(200), px("181.52"), qty(100), false),
        // Rows normalization refuses (a zero size, a suspicious flag) pass as read and set
        // nothing.
        (5, px("181.515"), qty(0), None, qty(0), false),
        (6, px("181.515"), qty(50), None, qty(0), true),
        // The bid is still the one of line 2; the ask alone is given out before the bad row
        // that follows it.
        (7, px("181.51"), qty(200), px("181.525"), qty(100), false),
        // Two bids of one instant are two changes.
        (9, px("181.52"), qty(100), px("181.525"), qty(100), false),
        (10, px("181.521"), qty(100), px("181.525"), qty(100), false),
        // An ask row, then the bid row of its instant: one quote, numbered by its first row,
        // and the last row of the file is not lost.
        (11, px("181.525"), qty(300), px("181.53"), qty(400), false),
    ];
    assert_eq!(got, want);
    let bad: Vec<u64> = bad.iter().map(|r| r.line).collect();
    assert_eq!(bad, vec![8]);
}

#[test]
fn lean_quotes_of_a_recorded_day_have_both_sides() {
    let Some(data) = sample_data() else { return };
    let (good, bad) = read_file(data.join("us-equities/tick/ibm_20131008_quote.zip"));
    assert!(bad.is_empty(), "{bad:?}");
    // 125,750 rows, each of one side, in pairs of one instant: 62,875 changes of the top of
    // book. The last row is flagged suspicious, so the bid row before it is a quote alone and
    // the flagged row is passed on as read, for normalization to refuse.
    assert_eq!(good.len(), 62_876);
    let one_sided: Vec<_> = good
        .iter()
        .filter_map(|e| match e {
            MarketEvent::Quote(q) if q.bid.is_none() || q.ask.is_none() => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(one_sided.len(), 1, "{one_sided:?}");
    assert!(one_sided[0].suspicious && one_sided[0].seq.line() == 125_750);
    let mut last = tickflow_core::Timestamp::MIN;
    for e in &good {
        assert!(e.ts_event() >= last, "{e:?} after {last}");
        last = e.ts_event();
    }
}

/// Writes a LOBSTER message file and, when given, its orderbook file into a new directory;
/// the path of the message file.
fn lobster_files(messages: &str, orderbook: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("AMZN_2012-06-21_34200000_57600000_message_1.csv");
    std::fs::write(&path, messages).unwrap();
    if let Some(book) = orderbook {
        let book_path = dir
            .path()
            .join("AMZN_2012-06-21_34200000_57600000_orderbook_1.csv");
        std::fs::write(book_path, book).unwrap();
    }
    (dir, path)
}

/// `(line, bid, bid size, ask, ask size)` of each quote.
type QuoteRow = (
    u64,
    Option<tickflow_core::Price>,
    tickflow_core::Quantity,
    Option<tickflow_core::Price>,
    tickflow_core::Quantity,
);

fn quote_rows(records: &[MarketEvent]) -> Vec<QuoteRow> {
    records
        .iter()
        .filter_map(|e| match e {
            MarketEvent::Quote(q) => Some((e.seq().line(), q.bid, q.bid_size, q.ask, q.ask_size)),
            _ => None,
        })
        .collect()
}

const LOBSTER_MESSAGES: &str = "\
Time,Type,OrderId,Size,Price,Direction
34200.1,1,11,100,2238100,1
34200.2,1,12,50,2239500,-1
34200.3,5,0,10,2238800,-1
34200.4,4,11,40,2238100,1
34200.5,3,11,60,2238100,1
34200.6,1,13,20,2238200,1
";

#[test]
fn lobster_quotes_come_from_the_orderbook_file_where_the_top_of_book_changes() {
    let book = "\
BestAsk,BestAskVolume,BestBid,BestBidVolume
9999999999,0,2238100,100
2239500,50,2238100,100
2239500,50,2238100,100
2239500,50,2238100,60
2239500,50,-9999999999,0
2239500,50,2238200,20
";
    let (_dir, path) = lobster_files(LOBSTER_MESSAGES, Some(book));
    let (good, bad) = read_file(path.clone());
    assert!(bad.is_empty(), "{bad:?}");
    let px = |s: &str| Some(tickflow_core::Price::parse(s).unwrap());
    let qty = |n: i64| tickflow_core::Quantity::from_int(n).unwrap();
    assert_eq!(
        quote_rows(&good),
        vec![
            // An empty side (LOBSTER's dummy price, size 0) is absent.
            (2, px("223.81"), qty(100), None, qty(0)),
            (3, px("223.81"), qty(100), px("223.95"), qty(50)),
            // The hidden execution of line 4 leaves the top of book as it was: no quote.
            (5, px("223.81"), qty(60), px("223.95"), qty(50)),
            (6, None, qty(0), px("223.95"), qty(50)),
            (7, px("223.82"), qty(20), px("223.95"), qty(50)),
        ]
    );
    // Each quote follows the records of its message, at its time.
    let kinds: Vec<&str> = good
        .iter()
        .map(|e| match e {
            MarketEvent::Trade(_) => "trade",
            MarketEvent::Quote(_) => "quote",
            MarketEvent::Book(_) => "book",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "book", "quote", "book", "quote", "trade", "book", "trade", "quote", "book", "quote",
            "book", "quote"
        ]
    );
    for pair in good.windows(2) {
        assert!(pair[0].seq() < pair[1].seq(), "{pair:?}");
        if let MarketEvent::Quote(q) = &pair[1] {
            assert_eq!(q.ts_event, pair[0].ts_event());
        }
    }
    // Gzipped, and without a header, the orderbook file gives the same quotes.
    let dir = path.parent().unwrap();
    let plain = dir.join("AMZN_2012-06-21_34200000_57600000_orderbook_1.csv");
    std::fs::remove_file(&plain).unwrap();
    let mut gz = gzip_writer(&plain.with_extension("csv.gz"));
    std::io::Write::write_all(&mut gz, book.split_once('\n').unwrap().1.as_bytes()).unwrap();
    gz.finish().unwrap();
    let (again, bad) = read_file(path.clone());
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(again, good);
    // Without an orderbook file, the messages alone give no quotes.
    std::fs::remove_file(plain.with_extension("csv.gz")).unwrap();
    let (alone, bad) = read_file(path);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(quote_rows(&alone), vec![]);
    assert_eq!(alone.len(), good.len() - 5);
}

#[test]
fn a_bad_orderbook_row_is_refused_at_its_own_line_and_the_messages_read_on() {
    let book = "\
2239500,50,2238100,100
2239500,50,2238100,100
2239500,50,2238100,1x0
2239500,50,2238100,60
9999999999,7,2238100,60
2239500,50,2238200,20,2239600,10
";
    let (_dir, path) = lobster_files(LOBSTER_MESSAGES, Some(book));
    let (good, bad) = read_file(path);
    let bad: Vec<String> = bad.iter().map(|r| r.to_string()).collect();
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(
        bad[0].ends_with("_orderbook_1.csv:3: malformed: best bid size is not an integer: \"1x0\""),
        "{bad:?}"
    );
    assert!(bad[1].contains("_orderbook_1.csv:5: malformed: the best ask is LOBSTER's empty level (9999999999) with size 7"), "{bad:?}");
    assert!(
        bad[2].contains(
            "_orderbook_1.csv:6: malformed: an orderbook row has 4 columns per level, found 6"
        ),
        "{bad:?}"
    );
    // Every message is still read; the quotes are those of the good rows.
    assert_eq!(good.len() - quote_rows(&good).len(), 7);
    let lines: Vec<u64> = quote_rows(&good).iter().map(|q| q.0).collect();
    assert_eq!(lines, [2, 5]);
}

#[test]
fn an_orderbook_file_of_other_length_than_its_messages_says_so_once() {
    // Shorter: the quotes stop where its rows do, with one reject.
    let short = "2239500,50,2238100,100\n2239500,50,2238100,90\n";
    let (_dir, path) = lobster_files(LOBSTER_MESSAGES, Some(short));
    let (good, bad) = read_file(path);
    assert_eq!(quote_rows(&good).len(), 2);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].line, 3);
    assert!(
        bad[0]
            .detail
            .contains("ends before the message file (it has no row for message line 4)"),
        "{}",
        bad[0]
    );
    assert_eq!(good.len() - 2, 7, "every message is read");
    // Longer: one reject after the last message.
    let long = "2239500,50,2238100,100\n".repeat(8);
    let (_dir, path) = lobster_files(LOBSTER_MESSAGES, Some(&long));
    let (good, bad) = read_file(path);
    assert_eq!(quote_rows(&good).len(), 1);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].line, 7);
    assert!(
        bad[0].detail.contains("rows after the message file's last"),
        "{}",
        bad[0]
    );
    assert!(bad[0].seq > good.last().unwrap().seq());
}

#[test]
fn an_empty_line_in_either_lobster_file_ends_the_quotes_once_and_the_messages_read_on() {
    let book = "\
2239500,50,2238100,100
2239500,40,2238100,100
2239600,50,2238100,100
2239500,50,2238200,70
2239400,30,2238100,60
2239500,50,2238300,20
";
    let messages: Vec<&str> = LOBSTER_MESSAGES.lines().collect();
    let non_quotes = |good: &[MarketEvent]| good.len() - quote_rows(good).len();
    // An empty line among the messages (a lost message, or a line put in: which, the files do
    // not say): the quotes end there, with one reject at that line, not paired one row off.
    let with_gap = [&messages[..3], &[""], &messages[3..]].concat().join("\n") + "\n";
    let (_dir, path) = lobster_files(&with_gap, Some(book));
    let (good, bad) = read_file(path);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].line, 4);
    assert!(
        bad[0].to_string().contains(
            "_message_1.csv:4: malformed: an empty line among the messages: the rows of "
        ) && bad[0].detail.contains(
            "_orderbook_1.csv after it cannot be paired with their messages; no quotes from here on"
        ),
        "{}",
        bad[0]
    );
    let lines: Vec<u64> = quote_rows(&good).iter().map(|q| q.0).collect();
    assert_eq!(lines, [2, 3]);
    assert_eq!(non_quotes(&good), 7, "every message is read");
    let seqs: Vec<_> = good
        .iter()
        .map(MarketEvent::seq)
        .chain([bad[0].seq])
        .collect();
    assert!(
        bad[0].seq > good[3].seq() && bad[0].seq < good[4].seq(),
        "{seqs:?}"
    );
    // An empty orderbook line: the same, at the orderbook file's line.
    let book_gap = book.replacen("2239600,50,2238100,100\n", "\n", 1);
    let (_dir, path) = lobster_files(LOBSTER_MESSAGES, Some(&book_gap));
    let (good, bad) = read_file(path);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].to_string().contains(
            "_orderbook_1.csv:3: malformed: an empty line where the row of message line 4 should be"
        ),
        "{}",
        bad[0]
    );
    let lines: Vec<u64> = quote_rows(&good).iter().map(|q| q.0).collect();
    assert_eq!(lines, [2, 3]);
    assert_eq!(non_quotes(&good), 7);
    // A first row damaged into words is a row that does not read, not a header: skipped as
    // one, it would pair every later row with the message before its own.
    for first in ["a,50,2238100,100", "Ask"] {
        let damaged = book.replacen("2239500,50,2238100,100", first, 1);
        let (_dir, path) = lobster_files(LOBSTER_MESSAGES, Some(&damaged));
        let (good, bad) = read_file(path);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].to_string().contains("_orderbook_1.csv:1: malformed"),
            "{}",
            bad[0]
        );
        let lines: Vec<u64> = quote_rows(&good).iter().map(|q| q.0).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7], "{first}");
    }
    // Empty lines at the end of either file are nothing.
    let (_dir, path) = lobster_files(
        &(LOBSTER_MESSAGES.to_owned() + "\n\n"),
        Some(&(book.to_owned() + "\n \n")),
    );
    let (good, bad) = read_file(path);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(quote_rows(&good).len(), 6);
}

#[test]
fn lobster_quotes_of_the_recorded_day_are_its_orderbook_rows() {
    let Some(data) = sample_data() else { return };
    let dir = data.join("lobster");
    let (good, bad) = read_file(dir.join("AMZN_2012-06-21_34200000_57600000_message_1.csv"));
    assert!(bad.is_empty(), "{bad:?}");
    let book =
        std::fs::read_to_string(dir.join("AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"))
            .unwrap();
    // The orderbook file's rows by line, as (bid, bid size, ask, ask size) of raw integers.
    let rows: Vec<[i64; 4]> = book
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<i64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            [f[2], f[3], f[0], f[1]]
        })
        .collect();
    let raw = |p: Option<tickflow_core::Price>| p.map_or(0, |p| p.raw() / 100_000);
    let quotes = quote_rows(&good);
    // One quote for each row whose top of book differs from the row before it.
    let changes = 1 + rows.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(quotes.len(), changes);
    assert!(quotes.len() > 20_000, "{}", quotes.len());
    for (line, bid, bid_size, ask, ask_size) in &quotes {
        let row = rows[*line as usize - 2];
        assert_eq!(
            [
                raw(*bid),
                bid_size.raw() / 1_000_000_000,
                raw(*ask),
                ask_size.raw() / 1_000_000_000
            ],
            row,
            "line {line}"
        );
        assert!(bid.is_some() && ask.is_some() && bid < ask, "line {line}");
    }
}

#[test]
fn lean_days_opened_lazily_merge_in_the_same_order() {
    let Some(data) = sample_data() else { return };
    let plan = plan(&[SourceConfig::Replay {
        path: data.join("us-equities/tick"),
        format: ReplayFormat::Auto,
        quote_size: None,
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
    assert!(n > 1_600_000, "{n} items");
}

/// Writes `batches` to a Parquet file at `path`, with key-value `metadata`.
fn write_parquet(
    path: &std::path::Path,
    batches: &[arrow_array::RecordBatch],
    metadata: Option<(&str, String)>,
) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(
            metadata.map(|(k, v)| vec![parquet::file::metadata::KeyValue::new(k.to_owned(), v)]),
        )
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// Five trades of instrument id 7 (`ABC`), a millisecond apart.
fn parquet_trades() -> (tickflow_core::InstrumentRegistry, arrow_array::RecordBatch) {
    use tickflow_core::{
        ArrowRecord, InstrumentId, InstrumentRegistry, InstrumentSpec, Price, Quantity, Side,
        Timestamp, Trade,
    };
    let mut reg = InstrumentRegistry::new();
    for s in [
        "PAD0", "PAD1", "PAD2", "PAD3", "PAD4", "PAD5", "PAD6", "ABC",
    ] {
        reg.register(InstrumentSpec {
            symbol: s.into(),
            venue: "XNAS".into(),
            tick_size: Price::from_raw(10_000_000),
            lot_size: Quantity::from_raw(1_000_000_000),
            currency: "USD".into(),
        });
    }
    let trades: Vec<Trade> = (0..5)
        .map(|i| Trade {
            instrument: InstrumentId(7),
            ts_event: Timestamp(1_700_000_000_000_000_000 + i * 1_000_000),
            ts_recv: Timestamp(1_700_000_000_000_000_000 + i * 1_000_000),
            price: Price::from_raw(100_000_000_000 + i),
            size: Quantity::from_raw(1_000_000_000),
            aggressor: Side::Buy,
            trade_id: Some(i as u64 + 1),
            suspicious: false,
            seq: SeqNo::new(3, i as u64),
        })
        .collect();
    let batch = Trade::to_record_batch(&trades, &reg).unwrap();
    (reg, batch)
}

#[test]
fn parquet_trades_replay_with_their_instruments_and_bad_rows_are_rejected_at_their_row() {
    use arrow_array::{ArrayRef, StringArray};
    use std::sync::Arc;
    let (reg, batch) = parquet_trades();
    // Row 2: an aggressor no one knows; the others read as they were written.
    let schema = batch.schema();
    let col = schema.index_of("aggressor").unwrap();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[col] = Arc::new(StringArray::from(vec![
        "buy", "sideways", "buy", "buy", "buy",
    ]));
    let bad_batch = arrow_array::RecordBatch::try_new(schema, columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let table: Vec<_> = reg.iter().collect();
    write_parquet(
        &dir.path().join("trades.parquet"),
        &[bad_batch],
        Some((
            tickflow_core::INSTRUMENTS_KEY,
            serde_json::to_string(&table).unwrap(),
        )),
    );
    // A file of other records in the same directory is left out.
    let bars =
        <tickflow_core::Bar as tickflow_core::ArrowRecord>::to_record_batch(&[], &reg).unwrap();
    write_parquet(&dir.path().join("bars.parquet"), &[bars], None);
    let plan = plan(&[SourceConfig::Replay {
        path: dir.path().to_path_buf(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap();
    assert_eq!(plan.parts.len(), 1, "{:?}", plan.parts);
    let abc = plan
        .registry
        .lookup("XNAS", "ABC")
        .expect("named by the metadata");
    assert_eq!(plan.registry.len(), 1, "only the instruments of the rows");
    let mut reader = plan.parts[0].open(&plan.registry).unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    while let Some(item) = reader.next_item() {
        match item {
            SourceItem::Event(e) => good.push(e),
            SourceItem::Bad(r) => bad.push(r),
        }
    }
    let rows: Vec<u64> = good.iter().map(|e| e.seq().line()).collect();
    assert_eq!(rows, vec![1, 3, 4, 5]);
    assert!(good.iter().all(|e| e.instrument() == abc));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].line, 2);
    assert!(bad[0].detail.contains("sideways"), "{:?}", bad[0]);

    // Named directly, a file of other records is refused with what it holds.
    let e = plan_err(dir.path().join("bars.parquet"));
    assert!(e.contains("not trades, quotes or book events"), "{e}");
}

fn plan_err(path: PathBuf) -> String {
    plan(&[SourceConfig::Replay {
        path,
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .map(|_| ())
    .unwrap_err()
    .to_string()
}

#[test]
fn a_parquet_file_without_instrument_metadata_names_them_by_symbol() {
    let (_reg, batch) = parquet_trades();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recorded.parquet");
    write_parquet(&path, &[batch], None);
    let plan = plan(&[SourceConfig::Replay {
        path: path.clone(),
        format: ReplayFormat::Parquet,
        quote_size: None,
    }])
    .unwrap();
    assert!(plan.registry.lookup("parquet", "ABC").is_some());
    let (good, bad) = read_file(path);
    assert_eq!((good.len(), bad.len()), (5, 0));
}

#[test]
fn a_damaged_parquet_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trades.parquet");
    std::fs::write(&path, b"PAR1 this is not a parquet file").unwrap();
    let e = plan_err(path);
    assert!(
        e.contains("trades.parquet: cannot replay an unreadable Parquet file (")
            && !e.contains("trades.parquet: cannot replay /"),
        "{e}"
    );
}

#[test]
fn reads_order_book_csv_of_binance_and_tardis() {
    // depth/: a Binance futures depth snapshot (one snapshot of 100 bid levels) and 100
    // updates, a Tardis book_snapshot_25 of 10 rows, and a Tardis incremental_book_L2 of 15
    // snapshot rows. Expected counts worked out from the files with Python's csv module: a
    // clear for each snapshot (1 + 10 + 1), a level update for every level given, a cancel for
    // each level of size 0.
    let Some(data) = sample_data() else { return };
    let c = read_all(data.join("depth"), ReplayFormat::Auto);
    assert!(c.bad.is_empty(), "{:?}", c.bad);
    assert_eq!((c.trades, c.quotes), (0, 0));
    let book: Vec<(&str, u64)> = c.book.into_iter().collect();
    assert_eq!(book, vec![("cancel", 21), ("clear", 12), ("modify", 694)]);
}

/// The book events of one file, as `(line, action, side, price, size)`, and its rejects as
/// `(line, detail)`.
type BookRows = Vec<(u64, &'static str, Side, String, String)>;

fn book_rows(
    dir: &std::path::Path,
    name: &str,
    text: &str,
) -> (BookRows, Vec<(u64, RejectReason, String)>) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let (good, bad) = read_file(path);
    let rows = good
        .iter()
        .map(|e| match e {
            MarketEvent::Book(b) => (
                b.seq.line(),
                b.action.as_str(),
                b.side,
                b.price.to_string(),
                b.size.to_string(),
            ),
            other => panic!("not a book event: {other:?}"),
        })
        .collect();
    let bad = bad.into_iter().map(|r| (r.line, r.reason, r.detail));
    (rows, bad.collect())
}

#[test]
fn tardis_incremental_l2_clears_the_book_when_a_snapshot_follows_updates() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, bad) = book_rows(
        dir.path(),
        "deribit_l2.csv",
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n\
         deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,true,ask,6421.5,18640\n\
         deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,true,bid,6421,100\n\
         deribit,BTC-PERPETUAL,1585699200300000,1585699200400000,false,bid,6421,0\n\
         deribit,BTC-PERPETUAL,1585699200300000,1585699200400000,false,buy,6420,5\n\
         deribit,BTC-PERPETUAL,1585699200300000,1585699200400000,maybe,bid,6420,5\n\
         deribit,BTC-PERPETUAL,1585699200400000,1585699200500000,true,ask,6422,10\n\
         deribit,BTC-PERPETUAL,1585699200400000,1585699200500000,true,bid,NaN,10\n",
    );
    use Side::{Buy, Sell};
    let s = |v: &str| v.to_string();
    assert_eq!(
        rows,
        vec![
            (2, "clear", Side::None, s("0"), s("0")),
            (2, "modify", Sell, s("6421.5"), s("18640")),
            (3, "modify", Buy, s("6421"), s("100")),
            (4, "cancel", Buy, s("6421"), s("0")),
            // A snapshot after updates starts the book again.
            (7, "clear", Side::None, s("0"), s("0")),
            (7, "modify", Sell, s("6422"), s("10")),
        ]
    );
    let lines: Vec<u64> = bad.iter().map(|(l, _, _)| *l).collect();
    assert_eq!(lines, vec![5, 6, 8], "{bad:?}");
    assert!(
        bad[0].2.contains("side is \"buy\", not bid or ask"),
        "{bad:?}"
    );
    assert!(bad[1].2.contains("is_snapshot is \"maybe\""), "{bad:?}");
    assert!(bad[2].2.starts_with("price: "), "{bad:?}");
}

#[test]
fn a_tardis_book_snapshot_row_replaces_the_book_and_a_bad_level_refuses_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let header = "exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,\
                  bids[0].price,bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,\
                  bids[1].amount";
    let text = format!(
        "{header}\n\
         binance-futures,BTCUSDT,1598918403696000,1598918403810979,11657.08,1.714,11657.07,10.896,11657.54,5.4,,\n\
         binance-futures,BTCUSDT,1598918403815000,1598918403819763,11657.08,1.5,11657.07,x,11657.54,5.4,11656.9,1\n\
         binance-futures,BTCUSDT,1598918403888000,1598918403894256,11657.08,1.476,11657.07,10.896,11657.54,,11656.97,0.2\n\
         binance-futures,BTCUSDT,1598918403930000,1598918403935479,11657.09,2,11657.07,10.896,11657.54,5.4,11656.97,0.2\n"
    );
    let (rows, bad) = book_rows(dir.path(), "book_snapshot_2.csv", &text);
    use Side::{Buy, Sell};
    let s = |v: &str| v.to_string();
    assert_eq!(
        rows,
        vec![
            // The second bid level is empty: the book had one.
            (2, "clear", Side::None, s("0"), s("0")),
            (2, "modify", Buy, s("11657.07"), s("10.896")),
            (2, "modify", Sell, s("11657.08"), s("1.714")),
            (2, "modify", Sell, s("11657.54"), s("5.4")),
            (5, "clear", Side::None, s("0"), s("0")),
            (5, "modify", Buy, s("11657.07"), s("10.896")),
            (5, "modify", Buy, s("11656.97"), s("0.2")),
            (5, "modify", Sell, s("11657.09"), s("2")),
            (5, "modify", Sell, s("11657.54"), s("5.4")),
        ]
    );
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(bad[0].0, 3);
    assert!(bad[0].2.starts_with("bids[0].amount: "), "{bad:?}");
    assert_eq!(bad[1].0, 4);
    assert!(
        bad[1]
            .2
            .contains("asks[1].price and asks[1].amount must both be given"),
        "{bad:?}"
    );
}

#[test]
fn binance_depth_csv_clears_the_book_at_each_snapshot_and_names_coin_m_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let header = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu";
    let text = format!(
        "{header}\n\
         BTCUSD_PERP,1667346579146,20,20,b,snap,20377.0,17,-1\n\
         BTCUSD_PERP,1667346579146,20,20,a,snap,20377.1,3,-1\n\
         BTCUSD_PERP,1667346579200,21,22,a,set,20377.1,0,20\n\
         BTCUSD_PERP,1667346579300,23,23,a,sett,20377.2,1,22\n\
         BTCUSD_PERP,1667346579400,24,24,x,set,20377.2,1,23\n\
         BTCUSD_PERP,1667346579500,30,30,b,snap,20376.0,4,-1\n\
         BTCUSD_PERP,1667346579500,30,30,b,snap,20375.9,-1,-1\n"
    );
    let path = dir.path().join("depth.csv");
    std::fs::write(&path, &text).unwrap();
    let plan = plan(&[SourceConfig::Replay {
        path: path.clone(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap();
    assert_eq!(
        plan.parts[0].name(),
        path.display().to_string(),
        "one file, one part"
    );
    let id = plan.registry.lookup("BINANCE-COINM", "BTCUSD_PERP");
    assert!(id.is_some(), "a symbol with _ is a COIN-M contract");
    let (rows, bad) = book_rows(dir.path(), "depth.csv", &text);
    use Side::{Buy, Sell};
    let s = |v: &str| v.to_string();
    assert_eq!(
        rows,
        vec![
            (2, "clear", Side::None, s("0"), s("0")),
            (2, "modify", Buy, s("20377"), s("17")),
            (3, "modify", Sell, s("20377.1"), s("3")),
            (4, "cancel", Sell, s("20377.1"), s("0")),
            (7, "clear", Side::None, s("0"), s("0")),
            (7, "modify", Buy, s("20376"), s("4")),
            // A negative size is normalize's to reject, with its reason.
            (8, "modify", Buy, s("20375.9"), s("-1")),
        ]
    );
    let lines: Vec<u64> = bad.iter().map(|(l, _, _)| *l).collect();
    assert_eq!(lines, vec![5, 6], "{bad:?}");
    assert!(bad[0].2.contains("update_type is \"sett\""), "{bad:?}");
    assert!(bad[1].2.contains("side is \"x\", not b or a"), "{bad:?}");
}

#[test]
fn binance_depth_csv_reports_gaps_in_the_update_ids_and_clears_the_book_there() {
    let dir = tempfile::tempdir().unwrap();
    let header = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu";
    let text = format!(
        "{header}\n\
         BTCUSDT,1667346579146,20,20,b,snap,100,1,-1\n\
         BTCUSDT,1667346579146,20,20,a,snap,101,2,-1\n\
         BTCUSDT,1667346579150,19,20,b,set,100,9,18\n\
         BTCUSDT,1667346579200,21,22,a,set,101,0,20\n\
         BTCUSDT,1667346579300,23,25,b,set,100,3,22\n\
         BTCUSDT,1667346579300,23,25,a,set,102,1,22\n\
         BTCUSDT,1667346579400,30,31,b,set,99,5,28\n\
         BTCUSDT,1667346579400,30,31,a,set,103,1,28\n\
         BTCUSDT,1667346579500,32,32,b,set,98,1,31\n\
         BTCUSDT,1667346579600,40,40,b,snap,97,1,-1\n\
         BTCUSDT,1667346579700,45,46,a,set,104,1,44\n"
    );
    let (rows, bad) = book_rows(dir.path(), "depth.csv", &text);
    let (_, rejects) = read_file(dir.path().join("depth.csv"));
    let gaps: Vec<_> = rejects
        .iter()
        .filter(|r| r.reason == RejectReason::Gap)
        .collect();
    assert_eq!(gaps.len(), 2);
    assert!(
        gaps.iter()
            .all(|r| r.instrument.is_some() && r.ts_event.is_some()),
        "a gap names its instrument and time: {gaps:?}"
    );
    use Side::{Buy, Sell};
    let s = |v: &str| v.to_string();
    assert_eq!(
        rows,
        vec![
            (2, "clear", Side::None, s("0"), s("0")),
            (2, "modify", Buy, s("100"), s("1")),
            (3, "modify", Sell, s("101"), s("2")),
            // Line 4 is in the snapshot already.
            (5, "cancel", Sell, s("101"), s("0")),
            (6, "modify", Buy, s("100"), s("3")),
            (7, "modify", Sell, s("102"), s("1")),
            // Updates 26 to 28 are missing: the book starts again from this update.
            (8, "clear", Side::None, s("0"), s("0")),
            (8, "modify", Buy, s("99"), s("5")),
            (9, "modify", Sell, s("103"), s("1")),
            (10, "modify", Buy, s("98"), s("1")),
            (11, "clear", Side::None, s("0"), s("0")),
            (11, "modify", Buy, s("97"), s("1")),
            // Updates 41 to 44 are missing after the snapshot.
            (12, "clear", Side::None, s("0"), s("0")),
            (12, "modify", Sell, s("104"), s("1")),
        ]
    );
    let bad: Vec<(u64, RejectReason, &str)> = bad
        .iter()
        .map(|(line, reason, detail)| (*line, *reason, detail.as_str()))
        .collect();
    assert_eq!(
        bad,
        vec![
            (
                4,
                RejectReason::Duplicate,
                "depth update 20 is already in the depth snapshot before it (lastUpdateId 20)"
            ),
            (
                8,
                RejectReason::Gap,
                "depth gap: updates are missing between the diff that ended at update 25 and \
                 the diff of updates 30 to 31 (which follows update 28); the book is cleared \
                 and holds the levels updated from here on"
            ),
            (
                12,
                RejectReason::Gap,
                "depth gap: updates are missing between the snapshot at update 40 and the \
                 diff of updates 45 to 46 (which follows update 44); the book is cleared and \
                 holds the levels updated from here on"
            ),
        ]
    );
}

/// The plan of a directory read as `format`.
fn plan_dir(dir: &std::path::Path, format: ReplayFormat) -> tickflow_sources::Plan {
    plan(&[SourceConfig::Replay {
        path: dir.to_path_buf(),
        format,
        quote_size: None,
    }])
    .unwrap()
}

/// `(file name, why)` of each file a plan leaves out.
fn left(p: &tickflow_sources::Plan) -> Vec<(String, String)> {
    p.left_out
        .iter()
        .map(|l| {
            let name = l.path.file_name().unwrap().to_string_lossy().into_owned();
            (name, l.why.clone())
        })
        .collect()
}

#[test]
fn files_of_a_directory_not_read_are_left_out_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "trades.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         bitmex,XBTUSD,1582329602000000,1582329602000400,1,buy,9600.5,10\n",
    );
    write(
        "depth.csv",
        "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n\
         BTCUSDT,1667346579146,20,20,b,snap,20377.0,17,-1\n",
    );
    write("README.md", "# notes\n");
    write("notes.csv", "a,b\n1,2\n");
    write(
        "usdjpy-ticks.csv",
        "timestamp,bid,ask\n2013-01-01 22:00:00.295000+00:00,86.655,86.728\n",
    );
    let planned = |format| plan_dir(dir.path(), format);
    let all = planned(ReplayFormat::Auto);
    assert_eq!(all.parts.len(), 2);
    assert_eq!(
        left(&all),
        [
            (
                "README.md".into(),
                "not a supported market-data file".into()
            ),
            (
                "notes.csv".into(),
                "a CSV file in no supported layout (its first line: `a,b`)".into()
            ),
            (
                "usdjpy-ticks.csv".into(),
                "TrueFX quotes, which record no sizes: give the source a quote_size \
                 (--quote-size on the command line) to read them"
                    .into()
            ),
        ]
    );
    // A source of one format leaves out the files of the others, saying what they are.
    let tardis = planned(ReplayFormat::Tardis);
    assert_eq!(tardis.parts.len(), 1);
    assert_eq!(
        left(&tardis)[1],
        (
            "depth.csv".into(),
            "binance-depth data, not tardis as the source asks".into()
        )
    );
    assert_eq!(left(&tardis).len(), 4);

    // A directory of nothing readable says what it looked at, and why each was left out.
    for f in ["trades.csv", "depth.csv", "usdjpy-ticks.csv"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    write("empty.csv", "");
    write("more-notes.csv", "a,b\n3,4\n");
    let e = plan_err(dir.path().to_path_buf());
    for want in [
        "no market-data files found here",
        "README.md: not a supported market-data file",
        "empty.csv: a CSV file in no supported layout (its first line is empty)",
        "more-notes.csv and 1 more: a CSV file in no supported layout (its first line: `a,b`)",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    let empty = tempfile::tempdir().unwrap();
    let e = plan_err(empty.path().to_path_buf());
    assert!(e.ends_with("it holds no files"), "{e}");
}

#[test]
fn a_lobster_orderbook_file_is_left_out_only_when_its_messages_are_not_read() {
    let (dir, _) = lobster_files(LOBSTER_MESSAGES, Some("2239500,50,2238100,100\n"));
    let orphan = "MSFT_2012-06-21_34200000_57600000_orderbook_1.csv";
    std::fs::write(dir.path().join(orphan), "2239500,50,2238100,100\n").unwrap();
    std::fs::write(
        dir.path().join("trades.csv"),
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         bitmex,XBTUSD,1582329602000000,1582329602000400,1,buy,9600.5,10\n",
    )
    .unwrap();
    let planned = |format| plan_dir(dir.path(), format);
    let why = "a LOBSTER orderbook file whose _message_ file is not read here (it gives that \
               file's quotes)";
    let all = planned(ReplayFormat::Auto);
    assert_eq!(all.parts.len(), 2);
    assert_eq!(left(&all), [(orphan.to_string(), why.to_string())]);
    // Where the messages are not read, neither is their orderbook file.
    let tardis = planned(ReplayFormat::Tardis);
    let names: Vec<String> = left(&tardis).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "AMZN_2012-06-21_34200000_57600000_message_1.csv",
            "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv",
            orphan
        ]
    );
}

/// The file name, header and twelve good rows of each CSV layout fuzzed: the three order-book
/// layouts, Tardis trades and quotes, TrueFX quotes in both layouts, and Lean trades (zipped,
/// no header).
fn csv_layout(layout: usize) -> (&'static str, Option<String>, Vec<String>) {
    let rows = |row: &dyn Fn(i64) -> String| (0..12i64).map(row).collect::<Vec<_>>();
    match layout {
        0 => (
            "l2.csv",
            Some("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount".into()),
            rows(&|i| {
                format!(
                    "deribit,BTC-PERPETUAL,{},{},{},{},{}.5,{}",
                    1_585_699_200_245_000 + i * 1000,
                    1_585_699_200_355_684 + i * 1000,
                    i < 4 || i == 9,
                    if i % 2 == 0 { "bid" } else { "ask" },
                    6_400 + i,
                    (i % 3) * 100
                )
            }),
        ),
        1 => (
            "snapshot.csv",
            Some(
                "exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,\
                 bids[0].price,bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,\
                 bids[1].amount"
                    .into(),
            ),
            rows(&|i| {
                format!(
                    "binance-futures,BTCUSDT,{},{},1165{i}.5,1.2,1165{i}.4,3,1165{i}.6,0.5,1165{i}.3,4",
                    1_598_918_403_696_000 + i * 1000,
                    1_598_918_403_810_979 + i * 1000
                )
            }),
        ),
        2 => (
            "depth.csv",
            Some(
                "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"
                    .into(),
            ),
            rows(&|i| {
                format!(
                    "BTCUSDT,{},{},{},{},{},2037{i}.1,{}.5,{}",
                    1_667_346_579_146 + i,
                    // Updates of one id each, the first reaching back to the snapshot's 100.
                    if i < 3 { 100 } else { 98 + i },
                    if i < 3 { 100 } else { 98 + i },
                    if i % 2 == 0 { "b" } else { "a" },
                    if i < 3 { "snap" } else { "set" },
                    i % 4,
                    if i < 3 { -1 } else { 97 + i }
                )
            }),
        ),
        3 => (
            "trades.csv",
            Some("exchange,symbol,timestamp,local_timestamp,id,side,price,amount".into()),
            rows(&|i| {
                format!(
                    "bitmex,XBTUSD,{},{},{i},{},96{i}.5,{}",
                    1_582_329_602_000_000 + i * 1000,
                    1_582_329_602_000_400 + i * 1000,
                    if i % 2 == 0 { "buy" } else { "sell" },
                    1 + i
                )
            }),
        ),
        4 => (
            "quotes.csv",
            Some(
                "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,\
                 bid_amount"
                    .into(),
            ),
            rows(&|i| {
                let (ask, bid) = if i == 5 {
                    ("", "")
                } else {
                    ("9601.5", "9600.5")
                };
                format!(
                    "huobi-dm-swap,BTC-USD,{},{},{},{ask},{bid},{}",
                    1_582_329_602_000_000 + i * 1000,
                    1_582_329_602_000_400 + i * 1000,
                    10 + i,
                    20 + i
                )
            }),
        ),
        5 => (
            "EURUSD-2013-01.csv",
            None,
            rows(&|i| {
                format!(
                    "{},201301{:02} 22:0{}:00.{:03},1.3{i}581,1.3{i}593",
                    if i % 4 == 3 { "USD/JPY" } else { "EUR/USD" },
                    1 + i / 6,
                    i % 6,
                    i * 37
                )
            }),
        ),
        6 => (
            "usdjpy-ticks.csv",
            Some("timestamp,bid,ask".into()),
            rows(&|i| {
                format!(
                    "2013-01-01 22:0{}:00.{:03}000+00:00,86.{i}55,86.{i}72",
                    i % 10,
                    i * 7
                )
            }),
        ),
        _ => (
            "xyz_20131007_trade.zip",
            None,
            rows(&|i| {
                format!(
                    "{},18152{i:02},{},P,0,{}",
                    34_200_000 + i,
                    100 + i,
                    i % 5 / 4
                )
            }),
        ),
    }
}

/// A CSV row with its field `field` (modulo the row's width) replaced by `text`, or, with
/// `cut`, the row cut short before that field.
fn edit_row(row: &mut String, field: usize, text: &str, cut: bool) {
    let mut fields: Vec<&str> = row.split(',').collect();
    if cut {
        fields.truncate(field % fields.len());
    } else {
        let at = field % fields.len();
        fields[at] = text;
    }
    *row = fields.join(",");
}

mod csv_fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Rows with fields replaced by arbitrary text (any printable characters, ASCII or not),
        /// or cut short: reading never fails, each line gives its records or one reject (never
        /// both, never neither), and a row left alone still gives its records. The one
        /// exception is a row of depth updates whose ids do not follow those before it (an
        /// edited id, there or before it): it gives its records and one `gap` reject, which
        /// says where updates are missing.
        #[test]
        fn each_csv_row_gives_its_records_or_one_reject(
            layout in 0usize..8,
            edits in prop::collection::vec((0usize..12, 0usize..12, "\\PC{0,8}", any::<bool>()), 0..10),
        ) {
            let (name, header, mut rows) = csv_layout(layout);
            let first = if header.is_some() { 2 } else { 1 };
            let mut edited = BTreeSet::new();
            for (row, field, text, cut) in &edits {
                edit_row(&mut rows[*row], *field, text, *cut);
                edited.insert(*row as u64 + first);
            }
            let text = header.map_or(String::new(), |h| h + "\n") + &rows.join("\n") + "\n";
            let (_dir, path) = if name.ends_with(".zip") {
                lean_trade_zip(text.as_bytes())
            } else {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                (dir, path)
            };
            let mut reader = open_file(path).unwrap();
            let mut records: BTreeMap<u64, usize> = BTreeMap::new();
            let mut rejects: BTreeMap<u64, usize> = BTreeMap::new();
            let mut duplicates = BTreeSet::new();
            let mut gaps: BTreeMap<u64, usize> = BTreeMap::new();
            while let Some(item) = reader.next_item() {
                match item {
                    SourceItem::Event(e) => *records.entry(e.seq().line()).or_default() += 1,
                    SourceItem::Bad(r) if r.reason == RejectReason::Gap => {
                        prop_assert_eq!(layout, 2, "{}", r);
                        *gaps.entry(r.line).or_default() += 1
                    }
                    SourceItem::Bad(r) => {
                        if r.reason == RejectReason::Duplicate {
                            duplicates.insert(r.line);
                        }
                        *rejects.entry(r.line).or_default() += 1
                    }
                }
            }
            for (line, n) in &gaps {
                prop_assert!(*n == 1 && records.contains_key(line), "line {}: {} gaps", line, n);
            }
            for (i, row) in rows.iter().enumerate() {
                let line = i as u64 + first;
                if row.trim().is_empty() {
                    continue;
                }
                let (got, bad) = (records.contains_key(&line), rejects.get(&line).copied());
                prop_assert!(got != bad.is_some(), "line {line} {row:?}: records {got}, rejects {bad:?}");
                prop_assert!(bad.is_none_or(|n| n == 1), "line {line}: {bad:?} rejects");
                // An edited snapshot id above the updates' makes them duplicates.
                let held = duplicates.contains(&line) && edited.iter().any(|e| *e < line);
                if !edited.contains(&line) && !held {
                    prop_assert!(got, "line {line} was left alone but gave no records: {row:?}");
                }
            }
            let lines = first..first + rows.len() as u64;
            prop_assert!(records.keys().chain(rejects.keys()).all(|l| lines.contains(l)));
            if layout == 2 && edits.is_empty() {
                prop_assert!(gaps.is_empty(), "{:?}", gaps);
            }
        }
    }
}

/// The size [`open_file`] gives quotes recorded without sizes.
const QUOTE_SIZE: tickflow_core::Quantity =
    tickflow_core::Quantity::from_raw(1_000_000_000_000_000);

#[test]
fn reads_truefx_quotes_with_the_quote_size_given_and_refuses_them_without() {
    let Some(data) = sample_data() else { return };
    let dir = data.join("truefx");
    let err = plan(&[SourceConfig::Replay {
        path: dir.clone(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("TrueFX quotes, which record no sizes"),
        "{err}"
    );
    let (good, bad) = read_file(dir.join("usdjpy-ticks.csv"));
    assert!(bad.is_empty(), "{bad:?}");
    // 1,000 quotes (data README); the first row is 2013-01-01 22:00:00.295000+00:00,86.655,86.728.
    assert_eq!(good.len(), 1_000);
    let MarketEvent::Quote(q) = &good[0] else {
        panic!("{:?}", good[0])
    };
    assert_eq!(q.ts_event.to_string(), "2013-01-01T22:00:00.295Z");
    assert_eq!(
        (q.bid.unwrap().to_string(), q.ask.unwrap().to_string()),
        ("86.655".into(), "86.728".into())
    );
    assert_eq!((q.bid_size, q.ask_size), (QUOTE_SIZE, QUOTE_SIZE));
    let plan = plan(&[SourceConfig::Replay {
        path: dir,
        format: ReplayFormat::Auto,
        quote_size: Some(QUOTE_SIZE),
    }])
    .unwrap();
    let spec = &plan.registry.get(q.instrument).unwrap().spec;
    assert_eq!(
        (
            spec.venue.as_str(),
            spec.symbol.as_str(),
            spec.currency.as_str()
        ),
        ("TRUEFX", "USDJPY", "JPY")
    );
    assert_eq!(spec.tick_size.to_string(), "0.001");
}

#[test]
fn truefx_files_name_their_pairs_and_bad_rows_are_rejected_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("EURUSD-2013-01.csv");
    std::fs::write(
        &path,
        "EUR/USD,20130101 21:59:59.011,1.31958,1.31993\n\
         USD/JPY,20130101 22:00:00.295,86.655,86.728\n\
         EUR/USD,2013-01-01 22:00,1.31958,1.31993\n\
         EUR/USD,20130101 22:00:01.000,NaN,1.31993\n\
         EURUSD,20130101 22:00:02.000,1.31958,1.31993\n\
         EUR/USD,20130101 22:00:03.000,1.31960\n\
         EUR/USD,20130101 22:00:04.000,1.31961,1.31990\n",
    )
    .unwrap();
    let plan_of = |quote_size| {
        plan(&[SourceConfig::Replay {
            path: path.clone(),
            format: ReplayFormat::Auto,
            quote_size,
        }])
    };
    let err = plan_of(None).unwrap_err().to_string();
    assert!(err.contains("record no sizes"), "{err}");
    let p = plan_of(Some(QUOTE_SIZE)).unwrap();
    let mut specs: Vec<(String, String, String)> = p
        .registry
        .iter()
        .map(|i| &i.spec)
        .map(|s| {
            (
                s.symbol.clone(),
                s.currency.clone(),
                s.tick_size.to_string(),
            )
        })
        .collect();
    specs.sort();
    let s = |v: &str| v.to_string();
    assert_eq!(
        specs,
        vec![
            (s("EURUSD"), s("USD"), s("0.00001")),
            (s("USDJPY"), s("JPY"), s("0.001"))
        ]
    );
    let (good, bad) = read_file(path);
    let quotes: Vec<(u64, String, String, String)> = good
        .iter()
        .map(|e| match e {
            MarketEvent::Quote(q) => (
                q.seq.line(),
                q.ts_event.to_string(),
                q.bid.unwrap().to_string(),
                q.ask.unwrap().to_string(),
            ),
            other => panic!("not a quote: {other:?}"),
        })
        .collect();
    assert_eq!(
        quotes,
        vec![
            (1, s("2013-01-01T21:59:59.011Z"), s("1.31958"), s("1.31993")),
            (2, s("2013-01-01T22:00:00.295Z"), s("86.655"), s("86.728")),
            (7, s("2013-01-01T22:00:04Z"), s("1.31961"), s("1.3199")),
        ]
    );
    let bad: Vec<(u64, RejectReason, String)> = bad
        .into_iter()
        .map(|r| (r.line, r.reason, r.detail))
        .collect();
    assert_eq!(
        bad,
        vec![
            (
                3,
                RejectReason::Malformed,
                s("time is \"2013-01-01 22:00\", not yyyymmdd HH:MM:SS.mmm")
            ),
            (
                4,
                RejectReason::NonFinitePrice,
                s("bid: \"NaN\" is not a finite number")
            ),
            (
                5,
                RejectReason::Malformed,
                s("pair is \"EURUSD\", not like USD/JPY")
            ),
            (6, RejectReason::Malformed, s("expected 4 columns, found 3")),
        ]
    );
}

#[test]
fn a_truefx_time_that_does_not_parse_is_rejected_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usdjpy-ticks.csv");
    std::fs::write(
        &path,
        "timestamp,bid,ask\n\
         2013-01-01 22:00:00.295000+00:00,86.655,86.728\n\
         2013-01-01 22:00:01.5+0é:0,86.655,86.728\n\
         2013-01-01 22:00:02,86.656,86.728\n\
         2013-01-01 22:00:03-01:00,86.657,86.728\n",
    )
    .unwrap();
    let (good, bad) = read_file(path);
    let times: Vec<String> = good.iter().map(|e| e.ts_event().to_string()).collect();
    // Without an offset, UTC.
    assert_eq!(
        times,
        [
            "2013-01-01T22:00:00.295Z",
            "2013-01-01T22:00:02Z",
            "2013-01-01T23:00:03Z"
        ]
    );
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!((bad[0].line, bad[0].reason), (3, RejectReason::Malformed));
    assert!(bad[0].detail.contains("not ASCII"), "{bad:?}");
}

#[test]
fn a_directory_without_a_quote_size_leaves_its_truefx_files_out_and_reads_the_rest() {
    let Some(data) = sample_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "truefx/usdjpy-ticks.csv",
        "tardis/tardis_bitmex_trades_XBTUSD.csv",
    ] {
        let from = data.join(file);
        std::fs::copy(&from, dir.path().join(from.file_name().unwrap())).unwrap();
    }
    // A timestamp,bid,ask file must be named for its pair: left out, or refused alone.
    std::fs::write(dir.path().join("ticks.csv"), "timestamp,bid,ask\n").unwrap();
    let p = plan(&[SourceConfig::Replay {
        path: dir.path().to_path_buf(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap();
    assert_eq!(p.parts.len(), 1, "the Tardis file");
    let left: Vec<(String, String)> = p
        .left_out
        .iter()
        .map(|l| {
            (
                l.path.file_name().unwrap().to_string_lossy().into_owned(),
                l.why.clone(),
            )
        })
        .collect();
    assert!(
        left.iter().any(|(f, why)| f == "usdjpy-ticks.csv"
            && why.contains("TrueFX quotes, which record no sizes")),
        "{left:?}"
    );
    assert!(
        left.iter().any(|(f, why)| f == "ticks.csv"
            && why.starts_with("a timestamp,bid,ask file not named for its currency pair")),
        "{left:?}"
    );
    let sized = plan(&[SourceConfig::Replay {
        path: dir.path().to_path_buf(),
        format: ReplayFormat::Auto,
        quote_size: Some(QUOTE_SIZE),
    }])
    .unwrap();
    assert_eq!(sized.parts.len(), 2, "the Tardis and the TrueFX file");
    let named = plan(&[SourceConfig::Replay {
        path: dir.path().join("ticks.csv"),
        format: ReplayFormat::Auto,
        quote_size: Some(QUOTE_SIZE),
    }])
    .unwrap_err()
    .to_string();
    assert!(named.contains("named for its currency pair"), "{named}");
}

/// A price-level book built from level updates: `(side, price)` → size.
type LevelBook = BTreeMap<(Side, i64), i64>;

fn apply_levels(book: &mut LevelBook, events: &[MarketEvent]) {
    for e in events {
        if let MarketEvent::Book(b) = e {
            match b.action {
                BookAction::Clear => book.clear(),
                BookAction::Cancel => {
                    book.remove(&(b.side, b.price.raw()));
                }
                _ => {
                    book.insert((b.side, b.price.raw()), b.size.raw());
                }
            }
        }
    }
}

#[test]
fn a_binance_snapshot_takes_the_newer_diffs_recorded_before_it_and_drops_older_ones_after() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usdm_btcusdt_20240808.gz");
    let diff = |recv: u64, first: u64, last: u64, bids: &str, asks: &str| {
        format!(
            r#"{recv} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{},"T":{},"s":"BTCUSDT","U":{first},"u":{last},"pu":{},"b":[{bids}],"a":[{asks}]}}}}"#,
            recv / 1_000_000,
            recv / 1_000_000,
            first - 1
        )
    };
    let t = 1_723_161_255_000_000_000u64;
    let mut gz = gzip_writer(&path);
    for line in [
        diff(t, 1, 10, r#"["100.0","1"]"#, r#"["101.0","2"]"#),
        // Newer than the snapshot below (lastUpdateId 11): its levels are applied to it.
        diff(
            t + 1_000_000,
            11,
            12,
            r#"["100.0","5"],["99.0","0"]"#,
            r#"["102.0","7"]"#,
        ),
        format!(
            r#"{} {{"lastUpdateId":11,"E":{},"T":{},"bids":[["100.0","3"],["99.0","4"]],"asks":[["101.0","1"]]}}"#,
            t + 2_000_000,
            (t + 2_000_000) / 1_000_000,
            (t + 2_000_000) / 1_000_000
        ),
        // Already in the snapshot.
        diff(t + 3_000_000, 11, 11, r#"["100.0","9"]"#, ""),
        diff(t + 4_000_000, 13, 14, "", r#"["101.0","0"]"#),
    ] {
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
    let (good, bad) = read_file(path);
    let at_line = |line: u64| -> Vec<(&'static str, Side, String, String)> {
        good.iter()
            .filter_map(|e| match e {
                MarketEvent::Book(b) if b.seq.line() == line => Some((
                    b.action.as_str(),
                    b.side,
                    b.price.to_string(),
                    b.size.to_string(),
                )),
                _ => None,
            })
            .collect()
    };
    let s = |v: &str| v.to_string();
    assert_eq!(
        at_line(3),
        vec![
            ("clear", Side::None, s("0"), s("0")),
            // 100 at 5 and 99 removed by the diff of line 2; 102 added by it.
            ("modify", Side::Buy, s("100"), s("5")),
            ("modify", Side::Sell, s("101"), s("1")),
            ("modify", Side::Sell, s("102"), s("7")),
        ]
    );
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[0].line, bad[0].reason),
        (4, RejectReason::Duplicate),
        "{bad:?}"
    );
    assert!(
        bad[0]
            .detail
            .contains("depth update 11 is already in the depth snapshot"),
        "{bad:?}"
    );
    let mut book = LevelBook::new();
    apply_levels(&mut book, &good);
    let p = |v: i64| tickflow_core::Price::from_int(v).unwrap().raw();
    assert_eq!(
        book.into_iter().collect::<Vec<_>>(),
        vec![
            (
                (Side::Buy, p(100)),
                tickflow_core::Quantity::from_int(5).unwrap().raw()
            ),
            (
                (Side::Sell, p(102)),
                tickflow_core::Quantity::from_int(7).unwrap().raw()
            ),
        ]
    );
}

/// A spot capture (no `pu`) with updates missing: between two diffs (line 3), between a
/// snapshot and the diff after it (line 6), and between a snapshot and the diffs recorded
/// before it that are newer than it (line 9).
fn write_binance_capture_with_gaps(dir: &std::path::Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("spot_btcusdt_20240808.gz");
    let t = 1_723_161_255_000_000_000u64;
    let diff = |n: u64, first: u64, last: u64, bids: &str, asks: &str| {
        let recv = t + n * 1_000_000;
        format!(
            r#"{recv} {{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{},"s":"BTCUSDT","U":{first},"u":{last},"b":[{bids}],"a":[{asks}]}}}}"#,
            recv / 1_000_000
        )
    };
    let snapshot = |n: u64, id: u64, bids: &str, asks: &str| {
        format!(
            r#"{} {{"lastUpdateId":{id},"bids":[{bids}],"asks":[{asks}]}}"#,
            t + n * 1_000_000
        )
    };
    let mut gz = gzip_writer(&path);
    for line in [
        diff(1, 1, 10, r#"["100.0","1"]"#, ""),
        diff(2, 11, 12, "", r#"["101.0","2"]"#),
        diff(3, 15, 16, r#"["99.0","3"]"#, ""),
        diff(4, 17, 17, "", r#"["102.0","1"]"#),
        snapshot(5, 20, r#"["98.0","1"]"#, r#"["103.0","1"]"#),
        diff(6, 25, 26, r#"["97.0","1"]"#, ""),
        diff(7, 27, 28, "", r#"["104.0","2"]"#),
        diff(8, 31, 32, r#"["96.0","1"]"#, ""),
        snapshot(9, 29, r#"["95.0","1"]"#, r#"["104.0","3"]"#),
        diff(10, 33, 33, "", r#"["105.0","1"]"#),
    ] {
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
    path
}

#[test]
fn a_binance_capture_reports_its_depth_gaps_and_clears_the_book_at_each() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = read_file(write_binance_capture_with_gaps(dir.path()));
    let gaps: Vec<(u64, RejectReason, &str)> = bad
        .iter()
        .map(|r| (r.line, r.reason, r.detail.as_str()))
        .collect();
    assert_eq!(
        gaps,
        vec![
            (
                3,
                RejectReason::Gap,
                "depth gap: updates are missing between the diff that ended at update 12 and \
                 the diff of updates 15 to 16; the book is cleared and holds the levels updated \
                 from here on"
            ),
            (
                6,
                RejectReason::Gap,
                "depth gap: updates are missing between the snapshot at update 20 and the diff \
                 of updates 25 to 26; the book is cleared and holds the levels updated from \
                 here on"
            ),
            (
                8,
                RejectReason::Gap,
                "depth gap: updates are missing between the diff that ended at update 28 and \
                 the diff of updates 31 to 32; the book is cleared and holds the levels updated \
                 from here on"
            ),
            (
                9,
                RejectReason::Gap,
                "depth snapshot 29 cannot be brought up to the diffs recorded before it: \
                 updates are missing between the snapshot at update 29 and the diff of updates \
                 31 to 32; its levels are set with those diffs applied"
            ),
        ]
    );
    assert!(
        bad.iter()
            .all(|r| r.instrument.is_some() && r.ts_event.is_some())
    );
    // Each gap's reject comes before the clear of its line.
    let clears: Vec<u64> = good
        .iter()
        .filter_map(|e| match e {
            MarketEvent::Book(b) if b.action == BookAction::Clear => Some(b.seq.line()),
            _ => None,
        })
        .collect();
    assert_eq!(clears, vec![3, 5, 6, 8, 9]);
    let mut book = LevelBook::new();
    apply_levels(&mut book, &good);
    let p = |v: i64| tickflow_core::Price::from_int(v).unwrap().raw();
    let q = |v: i64| tickflow_core::Quantity::from_int(v).unwrap().raw();
    // The snapshot of line 9 with the diff of line 8 (newer than it) applied, then line 10.
    assert_eq!(
        book.into_iter().collect::<Vec<_>>(),
        vec![
            ((Side::Buy, p(95)), q(1)),
            ((Side::Buy, p(96)), q(1)),
            ((Side::Sell, p(104)), q(3)),
            ((Side::Sell, p(105)), q(1)),
        ]
    );
}

/// The book of a Binance capture as Binance says a local book is kept: diffs are buffered
/// until the depth snapshot, the snapshot is applied, then the buffered diffs whose `u` is
/// above its `lastUpdateId`, then every later diff whose `u` is above it. `(side, price
/// text, size text)` with zero sizes removed.
fn binance_reference_book(path: &std::path::Path) -> BTreeMap<(Side, String), String> {
    use std::io::BufRead;
    let text = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut book: BTreeMap<(Side, String), String> = BTreeMap::new();
    let mut buffered: Vec<serde_json::Value> = Vec::new();
    let mut synced: Option<u64> = None;
    let apply = |book: &mut BTreeMap<(Side, String), String>, levels: &serde_json::Value| {
        for (key, side) in [
            ("b", Side::Buy),
            ("a", Side::Sell),
            ("bids", Side::Buy),
            ("asks", Side::Sell),
        ] {
            for l in levels
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let price = tickflow_core::Price::parse(l[0].as_str().unwrap())
                    .unwrap()
                    .to_string();
                let size = tickflow_core::Quantity::parse(l[1].as_str().unwrap()).unwrap();
                if size.is_zero() {
                    book.remove(&(side, price));
                } else {
                    book.insert((side, price), size.to_string());
                }
            }
        }
    };
    for line in std::io::BufReader::new(text).lines() {
        let line = line.unwrap();
        let msg: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        if let Some(id) = msg.get("lastUpdateId").and_then(|v| v.as_u64()) {
            book.clear();
            apply(&mut book, &msg);
            for d in buffered.drain(..).filter(|d| d["u"].as_u64().unwrap() > id) {
                apply(&mut book, &d);
            }
            synced = Some(id);
        } else if msg["stream"].as_str().unwrap().contains("@depth") {
            let data = &msg["data"];
            match synced {
                None => buffered.push(data.clone()),
                Some(id) if data["u"].as_u64().unwrap() > id => apply(&mut book, data),
                Some(_) => {}
            }
        }
    }
    book
}

#[test]
fn binance_captures_replay_the_book_binance_says_a_local_book_holds() {
    // In three of the four captures, diffs recorded before the depth snapshot carry updates
    // newer than it (2, 1 and 2 diffs; 8, 16 and 69 levels): applied before the snapshot's
    // clear they would be lost until their levels changed again (in the spot BTCUSDT capture,
    // the book at the end still differed from the venue's).
    let Some(data) = sample_data() else { return };
    for name in [
        "cm_btcusd_perp_20240808.gz",
        "spot_btcusdt_20240808.gz",
        "spot_ethusdt_20240808.gz",
        "usdm_btcusdt_20240808.gz",
    ] {
        let path = data.join("binance-ws").join(name);
        let want = binance_reference_book(&path);
        let (good, bad) = read_file(path);
        assert!(bad.is_empty(), "{name}: {bad:?}");
        let mut book = LevelBook::new();
        apply_levels(&mut book, &good);
        let got: BTreeMap<(Side, String), String> = book
            .into_iter()
            .map(|((side, p), q)| {
                (
                    (side, tickflow_core::Price::from_raw(p).to_string()),
                    tickflow_core::Quantity::from_raw(q).to_string(),
                )
            })
            .collect();
        assert!(want.len() > 100, "{name}: {} levels", want.len());
        assert!(
            got == want,
            "{name}: the replayed book differs from Binance's"
        );
    }
}

mod lobster_fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// One orderbook row per message of [`LOBSTER_MESSAGES`], each top of book unlike every
    /// other, so a quote paired with another message's row shows.
    const BOOK: [&str; 6] = [
        "2239500,50,2238100,100",
        "2239500,40,2238100,100",
        "2239600,50,2238100,100",
        "2239500,50,2238200,70",
        "2239400,30,2238100,60",
        "2239500,50,2238300,20",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Messages and orderbook rows with fields replaced by arbitrary text or cut short
        /// (down to an empty line): reading never fails; a rejected line is one that was
        /// edited, and is refused once; a message line gives its records or one reject (an
        /// empty one gives no records); a quote is never paired with a row other than its
        /// message's (it carries that row's values wherever the row was left alone); and where
        /// a message and its row were both left alone, before any empty line in either file,
        /// the quote is there.
        #[test]
        fn lobster_rows_stay_paired_with_their_messages(
            edits in prop::collection::vec((any::<bool>(), 0usize..6, 0usize..6, "\\PC{0,8}", any::<bool>()), 0..8),
        ) {
            let mut messages: Vec<String> = LOBSTER_MESSAGES.lines().skip(1).map(str::to_owned).collect();
            let mut book: Vec<String> = BOOK.map(str::to_owned).to_vec();
            let (mut edited_messages, mut edited_rows) = (BTreeSet::new(), BTreeSet::new());
            for (in_book, row, field, text, cut) in &edits {
                let (rows, edited) = if *in_book {
                    (&mut book, &mut edited_rows)
                } else {
                    (&mut messages, &mut edited_messages)
                };
                edit_row(&mut rows[*row], *field, text, *cut);
                edited.insert(*row);
            }
            let header = LOBSTER_MESSAGES.lines().next().unwrap();
            let text = format!("{header}\n{}\n", messages.join("\n"));
            let (_dir, path) = lobster_files(&text, Some(&(book.join("\n") + "\n")));
            let (good, bad) = read_file(path);

            // Message k is on line k + 2 of its file (after the header), its row on line k + 1.
            let mut refused = BTreeSet::new();
            for r in &bad {
                let in_book = r.origin.ends_with("_orderbook_1.csv");
                let k = if in_book { r.line.checked_sub(1) } else { r.line.checked_sub(2) };
                let k = k.map(|k| k as usize);
                let edited = if in_book { &edited_rows } else { &edited_messages };
                // The last message emptied leaves its row after the last message read.
                let after_last = in_book
                    && messages[5].trim().is_empty()
                    && r.detail.contains("rows after the message file's last");
                prop_assert!(after_last || k.is_some_and(|k| edited.contains(&k)), "{} (edits {:?})", r, edits);
                prop_assert!(refused.insert((in_book, r.line)), "refused twice: {}", r);
            }
            let mut records: BTreeMap<u64, usize> = BTreeMap::new();
            let mut quotes: BTreeMap<u64, QuoteRow> = BTreeMap::new();
            for e in &good {
                match e {
                    MarketEvent::Quote(_) => {
                        let q = quote_rows(std::slice::from_ref(e))[0];
                        prop_assert!(quotes.insert(q.0, q).is_none(), "two quotes at line {}", q.0);
                    }
                    _ => *records.entry(e.seq().line()).or_default() += 1,
                }
            }
            for pair in good.windows(2) {
                prop_assert!(pair[0].seq() < pair[1].seq(), "{:?}", pair);
            }
            // LOBSTER prices are in units of 1/10,000.
            let px = |raw: &str| Some(tickflow_core::Price::from_raw(raw.parse::<i64>().unwrap() * 100_000));
            let qty = |n: &str| tickflow_core::Quantity::from_int(n.parse().unwrap()).unwrap();
            let empty = |rows: &[String], k: usize| rows[k].trim().is_empty();
            let first_empty = (0..6).find(|&k| empty(&messages, k) || empty(&book, k)).unwrap_or(6);
            for (k, original) in BOOK.iter().enumerate() {
                let line = k as u64 + 2;
                let has_records = records.contains_key(&line);
                let is_refused = refused.contains(&(false, line));
                if empty(&messages, k) {
                    prop_assert!(!has_records, "empty message line {} gave records", line);
                } else {
                    prop_assert!(has_records != is_refused, "message line {}: records {} refused {}", line, has_records, is_refused);
                }
                if !edited_messages.contains(&k) {
                    prop_assert!(has_records, "message line {} was left alone", line);
                }
                let f: Vec<&str> = original.split(',').collect();
                let row = (line, px(f[2]), qty(f[3]), px(f[0]), qty(f[1]));
                match quotes.get(&line) {
                    // A row left alone gives its own values, never another's.
                    Some(q) if !edited_rows.contains(&k) => prop_assert_eq!(*q, row),
                    Some(_) => {}
                    // Every row is unlike every other row left alone, so a message and its row
                    // both left alone give a quote, unless an edit made another row this one.
                    None => prop_assert!(
                        edited_messages.contains(&k)
                            || edited_rows.contains(&k)
                            || k >= first_empty
                            || book.iter().enumerate().any(|(j, b)| j != k && b == original),
                        "no quote at line {} (edits {:?})", line, edits
                    ),
                }
            }
        }
    }
}

mod binary_fuzz {
    use super::*;
    use proptest::prelude::*;

    /// What a damaged file gives: the number of its items, or the error that refused it whole.
    fn try_read(path: PathBuf) -> Result<usize, String> {
        let plan = plan(&[SourceConfig::Replay {
            path,
            format: ReplayFormat::Auto,
            quote_size: Some(QUOTE_SIZE),
        }])
        .map_err(|e| e.to_string())?;
        let Some(part) = plan.parts.first() else {
            return Err(format!("left out: {:?}", plan.left_out));
        };
        let mut reader = part.open(&plan.registry).map_err(|e| e.to_string())?;
        let mut n = 0;
        while reader.next_item().is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Files of the binary formats, by name, with the offset of the end of each one's header:
    /// - the start of the sample DBN file, decompressed (its metadata with symbol mappings,
    ///   and a few hundred records); without the sample, a file of 700 records written here;
    /// - a Parquet file of trades with its instrument metadata, as a `parquet` sink writes;
    /// - a Lean trade zip;
    /// - a gzipped Binance capture.
    fn originals() -> &'static [(&'static str, Vec<u8>, usize)] {
        static FILES: std::sync::OnceLock<Vec<(&'static str, Vec<u8>, usize)>> =
            std::sync::OnceLock::new();
        FILES.get_or_init(|| {
            let dbn = match sample_data() {
                Some(data) => {
                    let zst = data.join("cme-mbo/esh4-glbx-mdp3-20231225.mbo.dbn.zst");
                    let mut plain = zstd::decode_all(&std::fs::read(zst).unwrap()[..]).unwrap();
                    plain.truncate(40_000);
                    plain
                }
                None => dbn_bytes(700).0,
            };
            let dbn_header = 8 + u32::from_le_bytes(dbn[4..8].try_into().unwrap()) as usize;
            let (reg, batch) = parquet_trades();
            let dir = tempfile::tempdir().unwrap();
            let parquet = dir.path().join("trades.parquet");
            let table: Vec<_> = reg.iter().collect();
            write_parquet(
                &parquet,
                &[batch],
                Some((
                    tickflow_core::INSTRUMENTS_KEY,
                    serde_json::to_string(&table).unwrap(),
                )),
            );
            let csv: String = (0..300)
                .map(|i| format!("{},{},{},P,0,0\n", 34_200_000 + i * 7, 1_815_200 + i, 1 + i))
                .collect();
            let (_lean_dir, lean) = lean_trade_zip(csv.as_bytes());
            let (_binance_dir, binance) = binance_trade_capture(300);
            let binance_name: &'static str = binance
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
                .leak();
            vec![
                ("esh4.mbo.dbn", dbn, dbn_header),
                ("trades.parquet", std::fs::read(parquet).unwrap(), 64),
                ("xyz_20131007_trade.zip", std::fs::read(lean).unwrap(), 64),
                (binance_name, std::fs::read(binance).unwrap(), 32),
            ]
        })
    }

    #[test]
    fn the_files_read_whole_before_they_are_damaged() {
        for (name, bytes, _) in originals() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let (good, bad) = read_file(path);
            // The DBN file is cut inside a record when it comes from the sample.
            assert!(
                good.len() >= 5 && bad.len() <= 1,
                "{name}: {} {bad:?}",
                good.len()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A file of a binary format (DBN, Parquet, zip, gzip) with bytes overwritten anywhere
        /// (half the edits in its header: DBN metadata, a zip's local header, the gzip header)
        /// or cut short is read or refused, never a panic.
        #[test]
        fn a_damaged_binary_file_is_read_or_refused(
            file in 0usize..4,
            edits in proptest::collection::vec((any::<bool>(), any::<proptest::sample::Index>(), proptest::collection::vec(any::<u8>(), 1..9)), 1..6),
            cut in proptest::option::of(any::<proptest::sample::Index>()),
        ) {
            let (name, original, header) = &originals()[file];
            let mut bytes = original.clone();
            for (in_header, at, with) in edits {
                let at = at.index(if in_header { *header } else { bytes.len() }).min(bytes.len());
                let end = (at + with.len()).min(bytes.len());
                bytes.splice(at..end, with);
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let _ = try_read(path);
        }
    }
}
