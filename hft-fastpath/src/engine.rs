//! The loop: decode → book → strategy → risk → encode, fused on one pinned thread or split over
//! two pinned threads joined by SPSC rings, fed by a pacing load generator.
//!
//! Two halves, the same in both modes:
//! - [`MarketSide`]: decodes a feed frame, lets in-flight orders reach the venue, applies the
//!   event to the book, moves our resting orders ([`SimVenue`]) and captures the top of the book.
//! - [`DecisionSide`]: books the venue's reports into our state, runs the strategy, checks each
//!   intent against risk and encodes the orders that pass into [`OrderMsg`] frames.
//!
//! Fused, one thread does both for each message and hands the frames straight to the venue.
//! Split, the market thread pushes an [`Update`] (the top of the book, up to
//! [`Update::MAX_REPORTS`] reports, the timestamps) into one ring and drains order frames from
//! another; the decision thread does the reverse.
//!
//! Pacing (coordinated omission): message `i` is *due* at `start + i / rate`. Its latency is
//! measured from when it was due, not from when the loop got to it, so a loop that falls behind
//! is charged for the wait (the `queueing` stage) and the tail is not hidden. With `rate = 0`
//! messages are due when the loop is ready for them (service time only).
//!
//! After [`Engine::new`] and [`MarketSide::new`]/[`DecisionSide::new`], processing a message
//! allocates nothing, takes no lock and makes no system call (unless `Backoff::SpinThenYield`
//! is chosen): every buffer is fixed at start-up, and `tests/no_alloc.rs` proves it with a
//! counting allocator.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tickflow_core::{Price, Quantity, Side};

use crate::book::{BookCapacity, BookError, OrderBook};
use crate::clock::Clock;
use crate::latency::StageLatencies;
use crate::msg::{FeedMsg, OrderKind, OrderMsg};
use crate::ring::{Backoff, Consumer, Full, Producer, ring};
use crate::risk::{RiskConfig, RiskLimits, RiskReject};
use crate::strategy::{Intent, Intents, MarketView, OwnState, Strategy, StrategyKind, Working};
use crate::venue::{Report, ReportKind, SimVenue, VenueConfig};

/// Fused on one thread, or split over two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One thread does every stage.
    Fused,
    /// Market data and venue on one thread, strategy, risk and encoding on another.
    Split,
}

/// Everything a run needs besides the feed.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Fused or split.
    pub mode: Mode,
    /// Offered messages per second; 0 = as fast as the loop goes.
    pub rate: u64,
    /// Cores to pin to: the fused thread uses the first; split uses both (market, decision).
    pub pin: Option<[usize; 2]>,
    /// How threads wait on rings.
    pub backoff: Backoff,
    /// Strategy and its parameters.
    pub strategy: StrategyKind,
    /// Risk limits.
    pub risk: RiskConfig,
    /// Venue model.
    pub venue: VenueConfig,
    /// Book capacities.
    pub book: BookCapacity,
    /// Messages processed before latencies are recorded.
    pub warmup: usize,
    /// Orders and fills kept for the report (the journal never grows past this).
    pub journal: usize,
}

/// What the journal keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalKind {
    /// An order left the strategy.
    Order(OrderKind),
    /// A venue report came back.
    Report(ReportKind),
    /// Risk refused an intent.
    Rejected(RiskReject),
}

/// One line of the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// Feed time.
    pub ts_ns: u64,
    /// What happened.
    pub kind: JournalKind,
    /// Our order id.
    pub id: u64,
    /// Side.
    pub side: Side,
    /// Price (limit or fill).
    pub price: Price,
    /// Quantity (order or fill).
    pub qty: Quantity,
}

/// Counts kept by the market side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketCounts {
    /// Frames processed.
    pub messages: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// Events naming orders the book does not hold (for example orders that rested before a
    /// recording started).
    pub unknown_orders: u64,
    /// Adds reusing a resting id.
    pub duplicate_orders: u64,
    /// Events with a bad size or no side.
    pub bad_events: u64,
    /// Events refused because the book was at capacity.
    pub book_full: u64,
}

/// The market half: decode, book, venue.
pub struct MarketSide {
    /// The book.
    pub book: OrderBook,
    /// The simulated venue.
    pub venue: SimVenue,
    /// The top of the book after the last message.
    pub view: MarketView,
    /// Counts.
    pub counts: MarketCounts,
    /// Feed time of the last message.
    pub now_ns: u64,
    /// The last mid of a complete, uncrossed book (raw), for marking positions.
    pub last_mid: Option<i64>,
}

impl MarketSide {
    /// A market side with all its memory allocated.
    pub fn new(book: BookCapacity, venue: VenueConfig) -> Self {
        Self {
            book: OrderBook::new(book),
            venue: SimVenue::new(venue),
            view: MarketView::default(),
            counts: MarketCounts::default(),
            now_ns: 0,
            last_mid: None,
        }
    }

    /// Decodes a frame.
    #[inline]
    pub fn decode(&mut self, frame: &[u8]) -> Option<FeedMsg> {
        self.counts.messages += 1;
        match FeedMsg::decode(frame) {
            Ok(m) => Some(m),
            Err(_) => {
                self.counts.decode_errors += 1;
                None
            }
        }
    }

    /// Applies a decoded message: venue arrivals, book, our resting orders, the view.
    #[inline]
    pub fn apply(&mut self, m: &FeedMsg) {
        self.now_ns = m.ts_ns;
        self.venue.advance(&self.book, m.ts_ns);
        match self.book.apply(m) {
            Ok(effect) => self.venue.on_effect(effect, m.ts_ns),
            Err(e) => match e {
                BookError::UnknownOrder(_) => self.counts.unknown_orders += 1,
                BookError::DuplicateOrder(_) => self.counts.duplicate_orders += 1,
                BookError::BadSize(_) | BookError::NoSide => self.counts.bad_events += 1,
                BookError::Full => self.counts.book_full += 1,
            },
        }
        self.view.capture(&self.book, m.ts_ns, m.is_last());
        if let Some(mid) = self.view.mid_raw() {
            self.last_mid = Some(mid);
        }
    }

    /// Hands an order frame to the venue.
    #[inline]
    pub fn submit(&mut self, frame: &[u8; OrderMsg::WIRE_LEN]) {
        self.venue.submit_frame(frame, &self.book, self.now_ns);
    }
}

/// Our trading results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TradingCounts {
    /// Orders sent (new orders).
    pub orders: u64,
    /// Cancels sent.
    pub cancels: u64,
    /// Fill reports.
    pub fills: u64,
    /// Quantity filled (raw).
    pub filled_qty: i128,
    /// Fills that took liquidity.
    pub taker_fills: u64,
    /// Orders the venue refused.
    pub venue_rejects: u64,
    /// Intents refused by risk, by [`RiskReject`] index.
    pub risk_rejects: [u64; 5],
    /// Signed position (raw quantity), as our state holds it.
    pub position: i64,
    /// Cash (raw price × raw quantity / 1e9: money at 1e-9).
    pub cash: i128,
}

impl TradingCounts {
    /// Profit and loss with the position marked at `mark` (money at 1e-9).
    pub fn pnl(&self, mark: Option<i64>) -> i128 {
        self.cash + self.position as i128 * mark.unwrap_or(0) as i128 / 1_000_000_000
    }
}

/// The decision half: our state, strategy, risk, encoder.
pub struct DecisionSide {
    strategy: Box<dyn Strategy>,
    /// Risk checks.
    pub risk: RiskLimits,
    /// Our position and working orders.
    pub own: OwnState,
    intents: Intents,
    next_id: u64,
    counts: TradingCounts,
    journal: Vec<JournalEntry>,
    /// Journal entries that did not fit.
    pub journal_dropped: u64,
}

/// Orders one update can produce at most.
pub const MAX_ORDERS: usize = Intents::CAP;

impl DecisionSide {
    /// A decision side with its memory allocated.
    pub fn new(
        strategy: Box<dyn Strategy>,
        risk: RiskConfig,
        kill: Arc<AtomicBool>,
        journal: usize,
    ) -> Self {
        Self {
            strategy,
            risk: RiskLimits::new(risk, kill),
            own: OwnState::default(),
            intents: Intents::default(),
            next_id: 1,
            counts: TradingCounts::default(),
            journal: Vec::with_capacity(journal),
            journal_dropped: 0,
        }
    }

    #[inline]
    fn log(&mut self, e: JournalEntry) {
        // Never grows: entries past the capacity fixed at start are counted, not kept.
        if self.journal.len() < self.journal.capacity() {
            self.journal.push(e);
        } else {
            self.journal_dropped += 1;
        }
    }

    /// Results so far (position from our state, risk rejects from the checks).
    pub fn counts(&self) -> TradingCounts {
        TradingCounts {
            position: self.own.position,
            risk_rejects: self.risk.rejects,
            ..self.counts
        }
    }

    /// Books a venue report into our state.
    #[inline]
    pub fn on_report(&mut self, r: &Report) {
        self.log(JournalEntry {
            ts_ns: r.ts_ns,
            kind: JournalKind::Report(r.kind),
            id: r.id,
            side: r.side,
            price: r.price,
            qty: r.qty,
        });
        match r.kind {
            ReportKind::Fill => {
                let q = r.qty.raw();
                let signed = if r.side == Side::Buy { q } else { -q };
                self.own.position += signed;
                self.counts.cash -= signed as i128 * r.price.raw() as i128 / 1_000_000_000;
                self.counts.fills += 1;
                self.counts.filled_qty += q as i128;
                self.counts.taker_fills += u64::from(r.taker);
                match self.own.get_mut(r.id) {
                    Some(w) if r.leaves.raw() > 0 => w.leaves = r.leaves,
                    Some(_) => self.own.remove(r.id),
                    None => {}
                }
            }
            ReportKind::Accepted => {
                if let Some(w) = self.own.get_mut(r.id) {
                    w.leaves = r.leaves;
                }
            }
            ReportKind::Canceled => self.own.remove(r.id),
            ReportKind::Rejected => {
                self.counts.venue_rejects += 1;
                // A refused cancel means the order is already done; a refused order never
                // worked. Either way it is no longer working.
                self.own.remove(r.id);
            }
        }
    }

    /// Runs the strategy on `view`.
    #[inline]
    pub fn strategize(&mut self, view: &MarketView) {
        self.intents.clear();
        self.strategy.on_update(view, &self.own, &mut self.intents);
    }

    /// Checks the intents and encodes the orders that pass into `out`; returns how many.
    #[inline]
    pub fn risk_and_encode(
        &mut self,
        view: &MarketView,
        out: &mut [[u8; OrderMsg::WIRE_LEN]; MAX_ORDERS],
    ) -> usize {
        let mut n = 0;
        let mid = view.mid_raw();
        let intents = self.intents;
        for &intent in intents.as_slice() {
            let msg = match intent {
                Intent::Cancel { id } => {
                    let Some(w) = self.own.get_mut(id) else {
                        continue;
                    };
                    if w.canceling {
                        continue;
                    }
                    w.canceling = true;
                    self.counts.cancels += 1;
                    OrderMsg {
                        id,
                        price: w.price,
                        qty: Quantity::ZERO,
                        ts_ns: view.ts_ns,
                        side: w.side,
                        kind: OrderKind::Cancel,
                    }
                }
                Intent::New {
                    side,
                    price,
                    qty,
                    kind,
                } => {
                    if let Err(why) = self
                        .risk
                        .check(side, price, qty, mid, &self.own, view.ts_ns)
                    {
                        self.log(JournalEntry {
                            ts_ns: view.ts_ns,
                            kind: JournalKind::Rejected(why),
                            id: 0,
                            side,
                            price,
                            qty,
                        });
                        continue;
                    }
                    let id = self.next_id;
                    if !self.own.add(Working {
                        id,
                        side,
                        price,
                        leaves: qty,
                        canceling: false,
                    }) {
                        continue;
                    }
                    self.next_id += 1;
                    self.counts.orders += 1;
                    OrderMsg {
                        id,
                        price,
                        qty,
                        ts_ns: view.ts_ns,
                        side,
                        kind,
                    }
                }
            };
            self.log(JournalEntry {
                ts_ns: view.ts_ns,
                kind: JournalKind::Order(msg.kind),
                id: msg.id,
                side: msg.side,
                price: msg.price,
                qty: msg.qty,
            });
            msg.encode(&mut out[n]);
            n += 1;
        }
        n
    }
}

/// What the market thread hands the decision thread in split mode.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    /// The top of the book.
    pub view: MarketView,
    /// Reports collected since the last update.
    pub reports: [Option<Report>; Update::MAX_REPORTS],
    /// When the message was due (clock ticks).
    pub due: u64,
    /// When the book and venue were done with it (clock ticks).
    pub booked: u64,
    /// Whether latencies of this message are recorded (past the warm-up).
    pub measured: bool,
    /// The feed is over: the decision thread stops.
    pub end: bool,
}

impl Update {
    /// Reports carried per update at most (the rest wait for the next one).
    pub const MAX_REPORTS: usize = 8;

    /// The market's view and up to [`Update::MAX_REPORTS`] of the venue's waiting reports;
    /// also whether there was any report.
    #[inline]
    fn collect(market: &mut MarketSide, due: u64, measured: bool) -> (Self, bool) {
        let mut u = Update {
            view: market.view,
            reports: [None; Update::MAX_REPORTS],
            due,
            booked: 0,
            measured,
            end: false,
        };
        let mut any = false;
        for slot in u.reports.iter_mut() {
            match market.venue.next_report() {
                Some(r) => {
                    *slot = Some(r);
                    any = true;
                }
                None => break,
            }
        }
        (u, any)
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Fused or split.
    pub mode: Mode,
    /// Offered rate (0 = unpaced).
    pub rate: u64,
    /// Messages processed.
    pub messages: u64,
    /// Wall time from the first message due to the last processed.
    pub elapsed_ns: u64,
    /// How far behind schedule the last message finished (0 when keeping up).
    pub final_lag_ns: u64,
    /// Latency histograms (after the warm-up).
    pub latency: StageLatencies,
    /// Market-side counts.
    pub market: MarketCounts,
    /// Trading results.
    pub trading: TradingCounts,
    /// The last mid of a complete, uncrossed book (raw), for marking the position.
    pub last_mid: Option<i64>,
    /// Orders, reports and rejects, in order, up to the journal capacity.
    pub journal: Vec<JournalEntry>,
    /// Journal entries that did not fit.
    pub journal_dropped: u64,
    /// Reports lost to a full report queue (a sizing error; 0 expected).
    pub reports_dropped: u64,
}

impl RunReport {
    /// Messages per second over the run.
    pub fn throughput(&self) -> f64 {
        self.messages as f64 * 1e9 / self.elapsed_ns.max(1) as f64
    }

    /// Profit and loss, position marked at the last mid (money at 1e-9).
    pub fn pnl(&self) -> i128 {
        self.trading.pnl(self.last_mid)
    }
}

/// Feed frames with their pacing schedule.
pub struct Engine {
    cfg: EngineConfig,
    clock: Clock,
    kill: Arc<AtomicBool>,
}

/// Schedule of due times: `start + i * period`, in clock ticks with 32 fractional bits.
#[derive(Clone, Copy)]
struct Schedule {
    start: u64,
    period_q32: u128,
}

impl Schedule {
    fn new(clock: &Clock, rate: u64, start: u64) -> Option<Self> {
        (rate > 0).then(|| Self {
            start,
            period_q32: (u128::from(clock.from_ns(1_000_000_000)) << 32) / u128::from(rate),
        })
    }

    #[inline]
    fn due(&self, i: usize) -> u64 {
        self.start + ((i as u128 * self.period_q32) >> 32) as u64
    }
}

/// When message `i` is due, and when processing it begins: after waiting for its due time on a
/// schedule, at once (and due at once) without one.
#[inline]
fn pace(schedule: Option<&Schedule>, clock: &Clock, i: usize) -> (u64, u64) {
    match schedule {
        Some(s) => {
            let due = s.due(i);
            (due, wait_until(clock, due))
        }
        None => {
            let now = clock.now();
            (now, now)
        }
    }
}

/// Waits until `due`; returns the time it started processing.
#[inline]
fn wait_until(clock: &Clock, due: u64) -> u64 {
    loop {
        let now = clock.now();
        if now >= due {
            return now;
        }
        std::hint::spin_loop();
    }
}

impl Engine {
    /// An engine; calibrates the clock.
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            clock: Clock::calibrate(20),
            kill: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The kill switch read by risk on every order.
    pub fn kill_switch(&self) -> Arc<AtomicBool> {
        self.kill.clone()
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn decision(&self) -> DecisionSide {
        DecisionSide::new(
            self.cfg.strategy.build(),
            self.cfg.risk,
            self.kill.clone(),
            self.cfg.journal,
        )
    }

    /// Runs the loop over `frames` (concatenated [`FeedMsg`] frames).
    pub fn run(&self, frames: &[u8]) -> RunReport {
        match self.cfg.mode {
            Mode::Fused => self.run_fused(frames),
            Mode::Split => self.run_split(frames),
        }
    }

    /// The fused loop: state built here, then [`FusedLoop::step`] per frame.
    pub fn fused_loop(&self) -> FusedLoop {
        FusedLoop {
            clock: self.clock,
            market: MarketSide::new(self.cfg.book, self.cfg.venue),
            decision: self.decision(),
            latency: StageLatencies::default(),
            orders: [[0; OrderMsg::WIRE_LEN]; MAX_ORDERS],
        }
    }

    fn run_fused(&self, frames: &[u8]) -> RunReport {
        if let Some([core, _]) = self.cfg.pin {
            // Pinning is best effort: a container may forbid it; the run still measures.
            let _ = crate::pin::pin_to_core(core);
        }
        let mut lp = self.fused_loop();
        let clock = self.clock;
        let start = clock.now();
        let schedule = Schedule::new(&clock, self.cfg.rate, start);
        let mut last_done = start;
        let mut last_due = start;
        for (i, frame) in frames.chunks_exact(FeedMsg::WIRE_LEN).enumerate() {
            let (due, began) = pace(schedule.as_ref(), &clock, i);
            last_done = lp.step(frame, due, began, i >= self.cfg.warmup);
            last_due = due;
        }
        while let Some(r) = lp.market.venue.next_report() {
            lp.decision.on_report(&r);
        }
        self.report(
            lp.market,
            lp.decision,
            lp.latency,
            [start, last_done, last_due],
        )
    }

    fn run_split(&self, frames: &[u8]) -> RunReport {
        let (mut up_tx, mut up_rx) = ring::<Update>(1024);
        let (mut ord_tx, mut ord_rx) = ring::<[u8; OrderMsg::WIRE_LEN]>(1024);
        let clock = self.clock;
        let backoff = self.cfg.backoff;
        let pin = self.cfg.pin;
        let mut decision = self.decision();
        let decision_thread = std::thread::spawn(move || {
            if let Some([_, core]) = pin {
                let _ = crate::pin::pin_to_core(core);
            }
            let mut latency = StageLatencies::default();
            let mut out = [[0u8; OrderMsg::WIRE_LEN]; MAX_ORDERS];
            let mut empty = 0u32;
            loop {
                let Some(u) = up_rx.pop() else {
                    empty = empty.saturating_add(1);
                    backoff.wait(empty);
                    continue;
                };
                empty = 0;
                let got = clock.now();
                for r in u.reports.iter().flatten() {
                    decision.on_report(r);
                }
                if u.end {
                    break;
                }
                decision.strategize(&u.view);
                let t_strategy = clock.now();
                let n = decision.risk_and_encode(&u.view, &mut out);
                let t_done = clock.now();
                for frame in &out[..n] {
                    let mut f = *frame;
                    while let Err(Full(back)) = ord_tx.push(f) {
                        f = back;
                        std::hint::spin_loop();
                    }
                }
                if u.measured {
                    latency
                        .hop
                        .record(clock.to_ns(got.saturating_sub(u.booked)));
                    latency
                        .strategy
                        .record(clock.to_ns(t_strategy.saturating_sub(got)));
                    latency
                        .risk_encode
                        .record(clock.to_ns(t_done.saturating_sub(t_strategy)));
                    latency
                        .tick_to_decision
                        .record(clock.to_ns(t_done.saturating_sub(u.due)));
                    if n > 0 {
                        latency
                            .tick_to_order
                            .record(clock.to_ns(t_done.saturating_sub(u.due)));
                    }
                }
            }
            (decision, latency)
        });

        if let Some([core, _]) = pin {
            let _ = crate::pin::pin_to_core(core);
        }
        let mut market = MarketSide::new(self.cfg.book, self.cfg.venue);
        let mut latency = StageLatencies::default();
        let start = clock.now();
        let schedule = Schedule::new(&clock, self.cfg.rate, start);
        let mut last_done = start;
        let mut last_due = start;
        for (i, frame) in frames.chunks_exact(FeedMsg::WIRE_LEN).enumerate() {
            drain_orders(&mut ord_rx, &mut market);
            let (due, began) = pace(schedule.as_ref(), &clock, i);
            let measured = i >= self.cfg.warmup;
            let Some(m) = market.decode(frame) else {
                continue;
            };
            let decoded = clock.now();
            market.apply(&m);
            let (mut u, _) = Update::collect(&mut market, due, measured);
            let booked = clock.now();
            u.booked = booked;
            if measured {
                latency.queueing.record(clock.to_ns(began - due.min(began)));
                latency.decode.record(clock.to_ns(decoded - began));
                latency.book.record(clock.to_ns(booked - decoded));
            }
            push_update(&mut up_tx, u, &mut ord_rx, &mut market);
            last_done = booked;
            last_due = due;
        }
        // Orders already sent reach the venue; orders the decision thread makes after this
        // point would arrive after the feed ended and are not sent. Then every remaining report
        // is handed over, the last update marked as the end.
        drain_orders(&mut ord_rx, &mut market);
        loop {
            let (mut u, any) = Update::collect(&mut market, 0, false);
            u.end = !any;
            push_update(&mut up_tx, u, &mut ord_rx, &mut market);
            if !any {
                break;
            }
        }
        let (decision, dlat) = decision_thread.join().expect("decision thread");
        latency.merge(&dlat);
        self.report(market, decision, latency, [start, last_done, last_due])
    }

    /// The report of a finished run; `times` are the start, when the last message was done
    /// and when it was due (clock ticks).
    fn report(
        &self,
        market: MarketSide,
        decision: DecisionSide,
        latency: StageLatencies,
        [start, last_done, last_due]: [u64; 3],
    ) -> RunReport {
        RunReport {
            mode: self.cfg.mode,
            rate: self.cfg.rate,
            messages: market.counts.messages,
            elapsed_ns: self.clock.to_ns(last_done.saturating_sub(start)),
            final_lag_ns: self.clock.to_ns(last_done.saturating_sub(last_due)),
            latency,
            market: market.counts,
            trading: decision.counts(),
            last_mid: market.last_mid,
            journal: decision.journal,
            journal_dropped: decision.journal_dropped,
            reports_dropped: market.venue.reports_dropped,
        }
    }
}

/// Pushes an update, waiting while the ring is full. While it waits it keeps taking order
/// frames: the decision thread may itself be waiting for room in the order ring, and each
/// thread waiting on the other's full ring would never end.
#[inline]
fn push_update(
    tx: &mut Producer<Update>,
    mut u: Update,
    orders: &mut Consumer<[u8; OrderMsg::WIRE_LEN]>,
    market: &mut MarketSide,
) {
    while let Err(Full(back)) = tx.push(u) {
        u = back;
        drain_orders(orders, market);
        std::hint::spin_loop();
    }
}

#[inline]
fn drain_orders(rx: &mut Consumer<[u8; OrderMsg::WIRE_LEN]>, market: &mut MarketSide) {
    while let Some(frame) = rx.pop() {
        market.submit(&frame);
    }
}

/// The fused loop's state, stepped one frame at a time.
pub struct FusedLoop {
    clock: Clock,
    /// Market half.
    pub market: MarketSide,
    /// Decision half.
    pub decision: DecisionSide,
    /// Latencies recorded so far.
    pub latency: StageLatencies,
    orders: [[u8; OrderMsg::WIRE_LEN]; MAX_ORDERS],
}

impl FusedLoop {
    /// Processes one frame that was due at `due` and picked up at `began` (clock ticks);
    /// returns when it was done.
    #[inline]
    pub fn step(&mut self, frame: &[u8], due: u64, began: u64, measured: bool) -> u64 {
        let clock = self.clock;
        let Some(m) = self.market.decode(frame) else {
            return clock.now();
        };
        let decoded = clock.now();
        self.market.apply(&m);
        while let Some(r) = self.market.venue.next_report() {
            self.decision.on_report(&r);
        }
        let booked = clock.now();
        self.decision.strategize(&self.market.view);
        let strategized = clock.now();
        let n = self
            .decision
            .risk_and_encode(&self.market.view, &mut self.orders);
        let done = clock.now();
        for k in 0..n {
            let frame = self.orders[k];
            self.market.submit(&frame);
        }
        if measured {
            let l = &mut self.latency;
            l.queueing.record(clock.to_ns(began - due.min(began)));
            l.decode.record(clock.to_ns(decoded - began));
            l.book.record(clock.to_ns(booked - decoded));
            l.strategy.record(clock.to_ns(strategized - booked));
            l.risk_encode.record(clock.to_ns(done - strategized));
            l.tick_to_decision.record(clock.to_ns(done - due.min(done)));
            if n > 0 {
                l.tick_to_order.record(clock.to_ns(done - due.min(done)));
            }
        }
        done
    }
}

/// Formats money at 1e-9 as a decimal with two places (rounded toward zero).
pub fn format_money(raw: i128) -> String {
    let sign = if raw < 0 { "-" } else { "" };
    let a = raw.unsigned_abs();
    format!(
        "{sign}{}.{:02}",
        a / 1_000_000_000,
        (a % 1_000_000_000) / 10_000_000
    )
}
