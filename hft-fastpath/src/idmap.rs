//! A fixed-capacity map from venue order ids (`u64`) to slots (`u32`): open addressing with
//! linear probing and backward-shift deletion, so there are no tombstones and the table never
//! needs rebuilding. All memory is allocated in [`IdMap::with_capacity`]; `insert`, `get` and
//! `remove` never allocate. The table is kept at most half full, so probes stay short. Key and
//! value share a 16-byte slot, so a lookup touches one cache line.

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    val: u32,
}

/// Order id → slot.
pub struct IdMap {
    slots: Box<[Entry]>,
    mask: usize,
    len: usize,
    max_len: usize,
}

/// The map is at its capacity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapFull;

#[inline]
fn hash(key: u64) -> u64 {
    // Fibonacci hashing, then fold the high bits down: ids from venues are often sequential.
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

impl IdMap {
    /// A map holding up to `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        let slots = (capacity.max(8) * 2).next_power_of_two();
        Self {
            // Every slot is written here, so the pages are in memory before the loop runs.
            slots: vec![Entry { key: 0, val: EMPTY }; slots].into_boxed_slice(),
            mask: slots - 1,
            len: 0,
            max_len: capacity.max(8),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where `key` sits, or the empty position that ends its probe run.
    #[inline]
    fn probe(&self, key: u64) -> Result<usize, usize> {
        let mut i = hash(key) as usize & self.mask;
        loop {
            let e = self.slots[i];
            if e.val == EMPTY {
                return Err(i);
            }
            if e.key == key {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The slot of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        self.probe(key).ok().map(|i| self.slots[i].val)
    }

    /// Inserts or replaces; returns the previous value.
    #[inline]
    pub fn insert(&mut self, key: u64, val: u32) -> Result<Option<u32>, MapFull> {
        debug_assert!(val != EMPTY);
        match self.probe(key) {
            Ok(i) => Ok(Some(std::mem::replace(&mut self.slots[i].val, val))),
            Err(_) if self.len >= self.max_len => Err(MapFull),
            Err(i) => {
                self.slots[i] = Entry { key, val };
                self.len += 1;
                Ok(None)
            }
        }
    }

    /// Removes `key`; returns its value.
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<u32> {
        let i = self.probe(key).ok()?;
        let removed = self.slots[i].val;
        // Backward-shift: move later entries of the probe run into the hole when their home
        // slot does not lie (cyclically) between the hole and their position.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            if self.slots[j].val == EMPTY {
                break;
            }
            let home = hash(self.slots[j].key) as usize & self.mask;
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole].val = EMPTY;
        self.len -= 1;
        Some(removed)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        for e in self.slots.iter_mut() {
            e.val = EMPTY;
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec((0u8..3, 0u64..64, 0u32..1000), 0..400)) {
            let mut m = IdMap::with_capacity(64);
            let mut reference = HashMap::new();
            for (op, k, v) in ops {
                // Spread keys so that probe runs wrap around the table.
                let key = k.wrapping_mul(0x1_0000_0001);
                match op {
                    0 => { prop_assert_eq!(m.insert(key, v).unwrap(), reference.insert(key, v)); }
                    1 => { prop_assert_eq!(m.remove(key), reference.remove(&key)); }
                    _ => { prop_assert_eq!(m.get(key), reference.get(&key).copied()); }
                }
                prop_assert_eq!(m.len(), reference.len());
            }
            for (k, v) in &reference {
                prop_assert_eq!(m.get(*k), Some(*v));
            }
        }
    }

    #[test]
    fn refuses_past_capacity() {
        let mut m = IdMap::with_capacity(8);
        for k in 0..8 {
            m.insert(k, 1).unwrap();
        }
        assert_eq!(m.insert(100, 1), Err(MapFull));
        assert_eq!(m.insert(3, 2), Ok(Some(1)), "replacing is not growing");
        m.remove(0);
        assert_eq!(m.insert(100, 1), Ok(None));
    }
}
