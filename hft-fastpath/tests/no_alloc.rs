//! The hot loop allocates nothing after warm-up: a counting global allocator watches the thread
//! that runs it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use tickflow_core::Quantity;
use tickflow_hft_fastpath::engine::EngineConfig;
use tickflow_hft_fastpath::feed::synthetic::{SyntheticConfig, generate};
use tickflow_hft_fastpath::msg::encode_all;
use tickflow_hft_fastpath::ring::{Backoff, ring};
use tickflow_hft_fastpath::risk::RiskConfig;
use tickflow_hft_fastpath::strategy::StrategyKind;
use tickflow_hft_fastpath::venue::VenueConfig;
use tickflow_hft_fastpath::{BookCapacity, Engine, FeedMsg, Mode};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; the counter is an atomic and the
// thread-local flag is a const-initialised `Cell`, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn watched<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    WATCHED.with(|w| w.set(true));
    let r = f();
    WATCHED.with(|w| w.set(false));
    (r, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

fn config(strategy: &str) -> EngineConfig {
    let feed_tick = tickflow_core::Price::from_raw(10_000_000);
    let qty = Quantity::from_int(5).unwrap();
    EngineConfig {
        mode: Mode::Fused,
        rate: 0,
        pin: None,
        backoff: Backoff::Spin,
        strategy: StrategyKind::by_name(strategy, feed_tick, qty).unwrap(),
        risk: RiskConfig::for_qty(qty),
        venue: VenueConfig { latency_ns: 5_000 },
        book: BookCapacity {
            orders: 1 << 16,
            levels: 1 << 12,
        },
        warmup: 0,
        journal: 100_000,
    }
}

#[test]
fn fused_loop_allocates_nothing_after_warm_up() {
    let feed = generate(&SyntheticConfig {
        messages: 300_000,
        ..SyntheticConfig::default()
    });
    let frames = encode_all(&feed.msgs);
    for strategy in ["market-maker", "imbalance"] {
        let engine = Engine::new(config(strategy));
        let clock = engine.clock();
        let mut lp = engine.fused_loop();
        let (warm, rest) = frames.split_at(50_000 * FeedMsg::WIRE_LEN);
        for f in warm.chunks_exact(FeedMsg::WIRE_LEN) {
            let t = clock.now();
            lp.step(f, t, t, true);
        }
        let orders_before = lp.decision.counts().orders;
        let ((), allocations) = watched(|| {
            for f in rest.chunks_exact(FeedMsg::WIRE_LEN) {
                let t = clock.now();
                lp.step(f, t, t, true);
            }
        });
        let c = lp.decision.counts();
        assert!(
            c.orders > orders_before + 100 && c.fills > 0,
            "{strategy}: the measured stretch trades ({} orders, {} fills)",
            c.orders - orders_before,
            c.fills
        );
        assert_eq!(
            allocations, 0,
            "{strategy}: {allocations} allocations in the hot loop"
        );
    }
}

#[test]
fn ring_push_and_pop_allocate_nothing() {
    let (mut tx, mut rx) = ring::<[u8; 40]>(64);
    let ((), allocations) = watched(|| {
        for i in 0..10_000u32 {
            tx.push([i as u8; 40]).unwrap();
            assert_eq!(rx.pop(), Some([i as u8; 40]));
        }
    });
    assert_eq!(allocations, 0);
}

#[test]
fn the_counter_sees_allocations() {
    let (v, allocations) = watched(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(allocations >= 1, "the test would notice an allocation");
}
