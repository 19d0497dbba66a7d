//! Order book update cost: nanoseconds per applied event, and updates per second on one core,
//! on the synthetic L3 feed and (with `TICKFLOW_SAMPLE_DATA`) on the recorded CME ESH4 MBO and
//! LOBSTER AMZN files. Each row is the best of at least 7 passes (10 million events in all) over the whole feed into a cleared book
//! sized for the feed ([`BookCapacity::for_feed`]); "decode + apply" also decodes each 40-byte
//! frame first, as the loop does.
//!
//! `cargo bench -p tickflow-hft-fastpath --bench book`

use std::hint::black_box;
use std::time::Instant;

use tickflow_hft_fastpath::feed::synthetic::{SyntheticConfig, generate};
use tickflow_hft_fastpath::msg::encode_all;
use tickflow_hft_fastpath::{BookCapacity, FeedMsg, OrderBook};

fn best_of<F: FnMut() -> u64>(passes: usize, mut f: F) -> f64 {
    (0..passes)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_nanos() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn row(name: &str, msgs: &[FeedMsg]) {
    let frames = encode_all(msgs);
    let mut book = OrderBook::new(BookCapacity::for_feed(msgs));
    // Small feeds get more passes, so every row processes at least 10 million events.
    let passes = (10_000_000 / msgs.len().max(1)).max(7);
    let apply = best_of(passes, || {
        book.clear();
        let mut errors = 0u64;
        for m in msgs {
            errors += u64::from(book.apply(black_box(m)).is_err());
        }
        errors
    });
    let decode_apply = best_of(passes, || {
        book.clear();
        let mut errors = 0u64;
        for f in frames.chunks_exact(FeedMsg::WIRE_LEN) {
            match FeedMsg::decode(black_box(f)) {
                Ok(m) => errors += u64::from(book.apply(&m).is_err()),
                Err(_) => errors += 1,
            }
        }
        errors
    });
    let n = msgs.len() as f64;
    println!(
        "| {name} | {} | {:.1} | {:.2} M | {:.1} | {:.2} M |",
        msgs.len(),
        apply / n,
        n / apply * 1e3,
        decode_apply / n,
        n / decode_apply * 1e3
    );
}

fn main() {
    println!(
        "| feed | events | apply ns/event | apply events/s | decode + apply ns/event | decode + apply events/s |"
    );
    println!("|---|---|---|---|---|---|");
    let synth = generate(&SyntheticConfig {
        messages: 2_000_000,
        ..SyntheticConfig::default()
    });
    row("synthetic L3 (400 resting orders)", &synth.msgs);
    let deep = generate(&SyntheticConfig {
        messages: 2_000_000,
        depth_orders: 20_000,
        seed: 11,
        ..SyntheticConfig::default()
    });
    row("synthetic L3 (20,000 resting orders)", &deep.msgs);
    if let Ok(dir) = std::env::var("TICKFLOW_SAMPLE_DATA") {
        let dir = std::path::Path::new(&dir);
        for (name, path) in [
            (
                "CME ESH4 MBO",
                dir.join("cme-mbo/esh4-glbx-mdp3-20231225.mbo.dbn.zst"),
            ),
            (
                "LOBSTER AMZN",
                dir.join("lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv"),
            ),
        ] {
            match tickflow_hft_fastpath::feed::load(&path) {
                Ok(feed) => row(name, &feed.msgs),
                Err(e) => eprintln!("{name}: {e}"),
            }
        }
    } else {
        eprintln!("TICKFLOW_SAMPLE_DATA is not set: recorded feeds skipped");
    }
}
