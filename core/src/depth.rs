//! Syncing a depth snapshot with the depth diffs of a stream, as Binance says a local order
//! book is kept: the snapshot is fetched after the diff stream starts and answers with a book
//! a little older than the diffs already received, so the diffs whose last update id is above
//! the snapshot's `lastUpdateId` are applied to its levels, and diffs that come after it but
//! that it already holds are dropped. Used by the replay of Binance captures and by the fast
//! path's feed of them.

use std::collections::{HashMap, VecDeque};

use crate::{Duration, Price, Quantity, Side, Timestamp};

/// A price level: side, price and the level's size (zero: the level is removed).
pub type Level = (Side, Price, Quantity);

/// How long (receive time) a diff is kept for a snapshot recorded after it: a snapshot is
/// answered within seconds of the diffs it is to be synced with.
pub const SYNC_WINDOW: Duration = Duration::from_secs(60);

/// Depth diffs kept for a snapshot recorded after them.
#[derive(Debug)]
pub struct DepthSync {
    window: Duration,
    recent: VecDeque<Diff>,
    synced_to: Option<u64>,
}

#[derive(Debug)]
struct Diff {
    recv: Timestamp,
    last: u64,
    levels: Vec<Level>,
}

impl DepthSync {
    /// Keeps diffs for `window` of receive time.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            recent: VecDeque::new(),
            synced_to: None,
        }
    }

    /// A diff received at `recv` whose last update id is `last`: kept for a later snapshot, or
    /// `Err(lastUpdateId)` when the snapshot before it already holds it (it is to be dropped).
    pub fn diff(&mut self, recv: Timestamp, last: u64, levels: &[Level]) -> Result<(), u64> {
        if let Some(snapshot) = self.synced_to
            && last <= snapshot
        {
            return Err(snapshot);
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
            last,
            levels: levels.to_vec(),
        });
        Ok(())
    }

    /// A snapshot of last update id `id`: its levels with the kept diffs newer than it applied
    /// in order (a level's size replaced, a new level added after the snapshot's), levels of
    /// size zero left out. The kept diffs are dropped.
    pub fn snapshot(&mut self, id: u64, mut levels: Vec<Level>) -> Vec<Level> {
        let mut at: HashMap<(Side, Price), usize> = levels
            .iter()
            .enumerate()
            .map(|(i, &(side, price, _))| ((side, price), i))
            .collect();
        for diff in self.recent.drain(..).filter(|d| d.last > id) {
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
        self.synced_to = Some(id);
        levels
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

    #[test]
    fn a_snapshot_takes_the_newer_diffs_and_holds_off_the_older_ones_after_it() {
        let mut sync = DepthSync::new(Duration::from_secs(60));
        let t = Timestamp(1_000_000_000_000);
        sync.diff(t, 10, &[level(Side::Buy, 100, 1)]).unwrap();
        sync.diff(t, 12, &[level(Side::Buy, 100, 5), level(Side::Buy, 99, 0)])
            .unwrap();
        sync.diff(t, 13, &[level(Side::Sell, 102, 7)]).unwrap();
        let synced = sync.snapshot(
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
        assert_eq!(sync.diff(t, 11, &[]), Err(11), "already in the snapshot");
        assert_eq!(sync.diff(t, 14, &[]), Ok(()));
    }

    #[test]
    fn diffs_older_than_the_window_are_not_kept() {
        let mut sync = DepthSync::new(Duration::from_secs(60));
        let t = Timestamp(1_000_000_000_000);
        sync.diff(t, 20, &[level(Side::Buy, 100, 5)]).unwrap();
        let later = Timestamp(t.nanos() + 61_000_000_000);
        sync.diff(later, 21, &[level(Side::Sell, 101, 2)]).unwrap();
        assert_eq!(
            sync.snapshot(10, vec![level(Side::Buy, 100, 3)]),
            vec![level(Side::Buy, 100, 3), level(Side::Sell, 101, 2)]
        );
    }
}
