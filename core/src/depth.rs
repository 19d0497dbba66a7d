//! Keeping a local order book from a venue's depth diffs, as Binance says one is kept.
//!
//! - **Continuity** ([`UpdateSequence`]): every diff carries the ids of the updates it holds
//!   ([`UpdateIds`]: Binance's `U` and `u`, and on the futures streams `pu`, the `u` of the diff
//!   before it). A diff follows the one before it when its `pu` is that diff's `u` (futures) or
//!   its `U` is that `u` plus one (spot); the first diff after a snapshot follows it when its
//!   `U` is at most the snapshot's `lastUpdateId` plus one. Anything else is a [`Gap`]: updates
//!   are missing, and the book built so far may hold levels that have since changed or gone.
//! - **Snapshot sync** ([`DepthSync`]): a REST snapshot is fetched after the diff stream
//!   starts and answers with a book a little older than the diffs already received, so the
//!   diffs whose `u` is above the snapshot's `lastUpdateId` are applied to its levels, and
//!   diffs after it that it already holds are dropped ([`Step::Held`]).
//!
//! Used by the replay of Binance captures and depth files and by the fast path's feed of them.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::{Duration, Price, Quantity, Side, Timestamp};

/// A price level: side, price and the level's size (zero: the level is removed).
pub type Level = (Side, Price, Quantity);

/// How long (receive time) a diff is kept for a snapshot recorded after it: a snapshot is
/// answered within seconds of the diffs it is to be synced with.
pub const SYNC_WINDOW: Duration = Duration::from_secs(60);

/// The ids of the updates a depth diff holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateIds {
    /// The first update in it (Binance `U`).
    pub first: u64,
    /// The last update in it (Binance `u`).
    pub last: u64,
    /// The last update of the diff before it (Binance futures `pu`; spot diffs have none).
    pub prev: Option<u64>,
}

/// What a diff is to follow: the diff before it, or a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The diff before it, which ended at this update.
    Diff(u64),
    /// A snapshot of this `lastUpdateId`.
    Snapshot(u64),
}

/// Updates missing between what the book holds and a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// What the diff should have followed.
    pub after: Anchor,
    /// The diff.
    pub ids: UpdateIds,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UpdateIds { first, last, prev } = self.ids;
        match self.after {
            Anchor::Diff(p) => write!(
                f,
                "updates are missing between the diff that ended at update {p} and the diff of \
                 updates {first} to {last}"
            )?,
            Anchor::Snapshot(s) => write!(
                f,
                "updates are missing between the snapshot at update {s} and the diff of updates \
                 {first} to {last}"
            )?,
        }
        match prev {
            Some(pu) => write!(f, " (which follows update {pu})"),
            None => Ok(()),
        }
    }
}

/// Where a diff stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It follows what came before it, or nothing came before it.
    Follows,
    /// Updates are missing before it; it is still a valid diff (its sizes are the levels'
    /// new sizes), but the levels it does not name may be stale.
    Gap(Gap),
    /// The snapshot before it, of this `lastUpdateId`, already holds it: it is to be dropped.
    Held(u64),
}

/// The continuity of one instrument's depth diffs.
#[derive(Clone, Debug, Default)]
pub struct UpdateSequence {
    after: Option<Anchor>,
    snapshot: Option<u64>,
}

impl UpdateSequence {
    /// A sequence that has seen nothing: its first diff follows.
    pub fn new() -> Self {
        Self::default()
    }

    /// A diff: where it stands. A diff that is not [`Step::Held`] is what the next one follows.
    pub fn diff(&mut self, ids: UpdateIds) -> Step {
        if let Some(s) = self.snapshot
            && ids.last <= s
        {
            return Step::Held(s);
        }
        let follows = |after| match after {
            Anchor::Snapshot(s) => ids.first <= s.saturating_add(1),
            Anchor::Diff(p) => match ids.prev {
                Some(pu) => pu == p,
                None => ids.first == p.saturating_add(1),
            },
        };
        let step = match self.after {
            Some(after) if !follows(after) => Step::Gap(Gap { after, ids }),
            _ => Step::Follows,
        };
        self.after = Some(Anchor::Diff(ids.last));
        step
    }

    /// A snapshot of `lastUpdateId` `id`: the next diff is to follow it.
    pub fn snapshot(&mut self, id: u64) {
        self.snapshot = Some(id);
        self.after = Some(Anchor::Snapshot(id));
    }
}

/// Depth diffs kept for a snapshot recorded after them, and the continuity of the stream.
#[derive(Debug)]
pub struct DepthSync {
    window: Duration,
    recent: VecDeque<Diff>,
    sequence: UpdateSequence,
}

#[derive(Debug)]
struct Diff {
    recv: Timestamp,
    ids: UpdateIds,
    levels: Vec<Level>,
}

impl DepthSync {
    /// Keeps diffs for `window` of receive time.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            recent: VecDeque::new(),
            sequence: UpdateSequence::new(),
        }
    }

    /// A diff received at `recv`: where it stands. Unless it is [`Step::Held`] (to be
    /// dropped), it is kept for a later snapshot.
    pub fn diff(&mut self, recv: Timestamp, ids: UpdateIds, levels: &[Level]) -> Step {
        let step = self.sequence.diff(ids);
        if matches!(step, Step::Held(_)) {
            return step;
        }
        let horizon = recv.nanos().saturating_sub(self.window.nanos());
        while self
            .recent
            .front()
            .is_some_and(|d| d.recv.nanos() < horizon)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(Diff {
            recv,
            ids,
            levels: levels.to_vec(),
        });
        step
    }

    /// A snapshot of `lastUpdateId` `id`: its levels with the kept diffs newer than it applied
    /// in order (a level's size replaced, a new level added after the snapshot's), levels of
    /// size zero left out; and the first gap between the snapshot and those diffs, if updates
    /// are missing there (the levels are synced all the same: the snapshot is the newest full
    /// book there is). The kept diffs are dropped.
    pub fn snapshot(&mut self, id: u64, mut levels: Vec<Level>) -> (Vec<Level>, Option<Gap>) {
        let mut at: HashMap<(Side, Price), usize> = levels
            .iter()
            .enumerate()
            .map(|(i, &(side, price, _))| ((side, price), i))
            .collect();
        self.sequence = UpdateSequence::new();
        self.sequence.snapshot(id);
        let mut gap = None;
        for diff in self.recent.drain(..).filter(|d| d.ids.last > id) {
            if let Step::Gap(g) = self.sequence.diff(diff.ids) {
                gap.get_or_insert(g);
            }
            for (side, price, size) in diff.levels {
                match at.get(&(side, price)) {
                    Some(&i) => levels[i].2 = size,
                    None => {
                        at.insert((side, price), levels.len());
                        levels.push((side, price, size));
                    }
                }
            }
        }
        levels.retain(|l| !l.2.is_zero());
        (levels, gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(side: Side, price: i64, size: i64) -> Level {
        (
            side,
            Price::from_int(price).unwrap(),
            Quantity::from_int(size).unwrap(),
        )
    }

    /// A futures diff of updates `first..=last` following update `prev`.
    fn fut(first: u64, last: u64, prev: u64) -> UpdateIds {
        UpdateIds {
            first,
            last,
            prev: Some(prev),
        }
    }

    /// A spot diff (no `pu`).
    fn spot(first: u64, last: u64) -> UpdateIds {
        UpdateIds {
            first,
            last,
            prev: None,
        }
    }

    #[test]
    fn a_snapshot_takes_the_newer_diffs_and_holds_off_the_older_ones_after_it() {
        let mut sync = DepthSync::new(Duration::from_secs(60));
        let t = Timestamp(1_000_000_000_000);
        let f = |s: Step| assert_eq!(s, Step::Follows);
        f(sync.diff(t, spot(1, 10), &[level(Side::Buy, 100, 1)]));
        f(sync.diff(
            t,
            spot(11, 12),
            &[level(Side::Buy, 100, 5), level(Side::Buy, 99, 0)],
        ));
        f(sync.diff(t, spot(13, 13), &[level(Side::Sell, 102, 7)]));
        let (synced, gap) = sync.snapshot(
            11,
            vec![
                level(Side::Buy, 100, 3),
                level(Side::Buy, 99, 4),
                level(Side::Sell, 101, 1),
            ],
        );
        assert_eq!(
            synced,
            vec![
                level(Side::Buy, 100, 5),
                level(Side::Sell, 101, 1),
                level(Side::Sell, 102, 7)
            ]
        );
        assert_eq!(gap, None, "the diffs newer than the snapshot start at 12");
        assert_eq!(sync.diff(t, spot(11, 11), &[]), Step::Held(11));
        assert_eq!(sync.diff(t, spot(14, 14), &[]), Step::Follows);
    }

    #[test]
    fn diffs_older_than_the_window_are_not_kept() {
        let mut sync = DepthSync::new(Duration::from_secs(60));
        let t = Timestamp(1_000_000_000_000);
        sync.diff(t, spot(11, 20), &[level(Side::Buy, 100, 5)]);
        let later = Timestamp(t.nanos() + 61_000_000_000);
        sync.diff(later, spot(21, 21), &[level(Side::Sell, 101, 2)]);
        let (synced, gap) = sync.snapshot(10, vec![level(Side::Buy, 100, 3)]);
        assert_eq!(
            synced,
            vec![level(Side::Buy, 100, 3), level(Side::Sell, 101, 2)]
        );
        // Updates 11 to 20 were let go: the snapshot cannot be brought up to the diff of 21.
        assert_eq!(
            gap,
            Some(Gap {
                after: Anchor::Snapshot(10),
                ids: spot(21, 21)
            })
        );
    }

    #[test]
    fn spot_diffs_follow_on_the_next_update_id_and_futures_diffs_on_pu() {
        let mut spot_seq = UpdateSequence::new();
        assert_eq!(spot_seq.diff(spot(5, 9)), Step::Follows, "the first one");
        assert_eq!(spot_seq.diff(spot(10, 12)), Step::Follows);
        let gap = spot_seq.diff(spot(15, 16));
        assert_eq!(
            gap,
            Step::Gap(Gap {
                after: Anchor::Diff(12),
                ids: spot(15, 16)
            })
        );
        assert_eq!(
            spot_seq.diff(spot(17, 17)),
            Step::Follows,
            "on from the gap"
        );
        assert_eq!(
            spot_seq.diff(spot(17, 18)),
            Step::Gap(Gap {
                after: Anchor::Diff(17),
                ids: spot(17, 18)
            }),
            "update 17 again"
        );

        // Futures ids are not consecutive: `pu` names the diff before.
        let mut futures = UpdateSequence::new();
        assert_eq!(futures.diff(fut(100, 140, 90)), Step::Follows);
        assert_eq!(futures.diff(fut(150, 170, 140)), Step::Follows);
        let Step::Gap(gap) = futures.diff(fut(200, 230, 180)) else {
            panic!("pu 180 after 170")
        };
        assert_eq!(
            gap.to_string(),
            "updates are missing between the diff that ended at update 170 and the diff of \
             updates 200 to 230 (which follows update 180)"
        );
        assert_eq!(futures.diff(fut(240, 250, 230)), Step::Follows);
    }

    #[test]
    fn the_first_diff_after_a_snapshot_must_reach_back_to_it() {
        let mut seq = UpdateSequence::new();
        seq.snapshot(100);
        assert_eq!(seq.diff(spot(90, 100)), Step::Held(100));
        assert_eq!(seq.diff(spot(95, 105)), Step::Follows, "straddles 101");
        let mut seq = UpdateSequence::new();
        seq.snapshot(100);
        assert_eq!(seq.diff(spot(101, 101)), Step::Follows);
        let mut seq = UpdateSequence::new();
        seq.snapshot(100);
        let Step::Gap(gap) = seq.diff(spot(103, 104)) else {
            panic!("updates 101 and 102 are missing")
        };
        assert_eq!(
            gap.to_string(),
            "updates are missing between the snapshot at update 100 and the diff of updates \
             103 to 104"
        );
        assert_eq!(seq.diff(spot(105, 105)), Step::Follows);
        assert_eq!(seq.diff(spot(99, 99)), Step::Held(100), "held for good");
    }

    #[test]
    fn a_snapshot_names_the_first_gap_among_the_diffs_it_takes() {
        let mut sync = DepthSync::new(Duration::from_secs(60));
        let t = Timestamp(1_000_000_000_000);
        sync.diff(t, fut(50, 60, 40), &[]);
        sync.diff(t, fut(61, 70, 60), &[level(Side::Buy, 100, 1)]);
        // A gap at arrival, between 70 and the diff after 75.
        assert!(matches!(
            sync.diff(t, fut(80, 90, 75), &[level(Side::Buy, 101, 2)]),
            Step::Gap(_)
        ));
        let (synced, gap) = sync.snapshot(65, vec![]);
        assert_eq!(
            synced,
            vec![level(Side::Buy, 100, 1), level(Side::Buy, 101, 2)]
        );
        assert_eq!(
            gap,
            Some(Gap {
                after: Anchor::Diff(70),
                ids: fut(80, 90, 75)
            })
        );
        assert_eq!(sync.diff(t, fut(91, 95, 90), &[]), Step::Follows);
    }
}
