//! A bounded single-producer/single-consumer ring joining two pinned threads.
//!
//! The buffer is allocated once by [`ring`]; `push` and `pop` never allocate, lock or make a
//! system call. Elements are `Copy`, so a slot never needs dropping.
//!
//! Positions are free-running `usize` counters: `tail` (next slot to write) belongs to the
//! producer, `head` (next slot to read) to the consumer; `tail - head` is the fill level. Each
//! side keeps a private copy of the other's counter and reloads it only when the ring looks full
//! (producer) or empty (consumer), so in steady flow each operation touches one shared cache line.
//!
//! Memory ordering: the producer writes the slot, then publishes `tail` with `Release`; the
//! consumer loads `tail` with `Acquire`, so the slot's contents are visible before it reads them.
//! Symmetrically the consumer publishes `head` with `Release` after reading the slot, and the
//! producer loads it with `Acquire` before overwriting that slot. The two counters sit on
//! separate cache lines ([`CachePadded`]) so the threads do not false-share.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Pads and aligns a value to its own cache line pair (128 bytes: adjacent-line prefetch on
/// x86 pulls lines in pairs).
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

struct Shared<T> {
    buf: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: a slot is written only by the one producer while it is outside `head..tail`, and read
// only by the one consumer while it is inside; the Release/Acquire pairs on `head` and `tail`
// order those accesses (see the module documentation). `T: Send` because values cross threads.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the shared state owns only `Copy` values and atomics.
unsafe impl<T: Send> Send for Shared<T> {}

/// The writing end.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    head_cache: usize,
}

/// The reading end.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    tail_cache: usize,
}

/// The ring was full; the value is handed back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Full<T>(pub T);

/// A ring of at least `capacity` slots (rounded up to a power of two).
pub fn ring<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let slots = capacity.max(2).next_power_of_two();
    let buf: Box<[UnsafeCell<MaybeUninit<T>>]> = (0..slots)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        buf,
        mask: slots - 1,
        head: CachePadded(AtomicUsize::new(0)),
        tail: CachePadded(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            head_cache: 0,
        },
        Consumer {
            shared,
            head: 0,
            tail_cache: 0,
        },
    )
}

impl<T: Copy + Send> Producer<T> {
    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Writes `value`, or hands it back when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), Full<T>> {
        let cap = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.head_cache) == cap {
            // Acquire: the consumer's reads of the slots it released happen before we reuse them.
            self.head_cache = self.shared.head.0.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) == cap {
                return Err(Full(value));
            }
        }
        let slot = &self.shared.buf[self.tail & self.shared.mask];
        // SAFETY: `tail - head < cap`, so this slot is not between the consumer's `head` and our
        // `tail`: the consumer does not read it until we publish the new `tail` below, and we
        // are the only producer.
        unsafe { (*slot.get()).write(value) };
        self.tail = self.tail.wrapping_add(1);
        // Release: the slot write above is visible to a consumer that acquires this `tail`.
        self.shared.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Reads the oldest value, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_cache {
            // Acquire: pairs with the producer's Release store of `tail`.
            self.tail_cache = self.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return None;
            }
        }
        let slot = &self.shared.buf[self.head & self.shared.mask];
        // SAFETY: `head < tail` (as acquired), so the producer has written this slot and
        // published it, and will not write it again until we release it below.
        let value = unsafe { (*slot.get()).assume_init_read() };
        self.head = self.head.wrapping_add(1);
        // Release: our read of the slot happens before the producer may overwrite it.
        self.shared.head.0.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Values waiting (a snapshot).
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    /// Whether nothing is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a thread waits for a ring: spin, optionally yielding the core after a number of empty
/// polls (yielding is a system call, so the hot path default is to spin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Busy-poll with a CPU spin hint.
    Spin,
    /// Spin this many polls, then yield the thread on each further empty poll.
    SpinThenYield(u32),
}

impl Backoff {
    /// Waits once after `empty_polls` consecutive empty polls.
    #[inline]
    pub fn wait(self, empty_polls: u32) {
        match self {
            Backoff::Spin => std::hint::spin_loop(),
            Backoff::SpinThenYield(n) if empty_polls < n => std::hint::spin_loop(),
            Backoff::SpinThenYield(_) => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_empty() {
        let (mut p, mut c) = ring::<u32>(3);
        assert_eq!(p.capacity(), 4);
        assert_eq!(c.pop(), None);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(Full(9)));
        assert_eq!(c.len(), 4);
        assert_eq!(c.pop(), Some(0));
        p.push(4).unwrap();
        let got: Vec<u32> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        assert!(c.is_empty());
    }

    #[test]
    fn two_threads_see_every_value_once_in_order() {
        const N: u64 = 2_000_000;
        let (mut p, mut c) = ring::<[u64; 4]>(64);
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                let mut v = [i, i ^ 0xdead, i.wrapping_mul(3), !i];
                while let Err(Full(back)) = p.push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut expected = 0u64;
        while expected < N {
            if let Some(v) = c.pop() {
                assert_eq!(
                    v,
                    [
                        expected,
                        expected ^ 0xdead,
                        expected.wrapping_mul(3),
                        !expected
                    ]
                );
                expected += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        producer.join().unwrap();
        assert_eq!(c.pop(), None);
    }
}
