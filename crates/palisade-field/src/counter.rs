//! Per-key encryption counts that do not make encrypting threads contend.
//!
//! Every encryption is counted (for [`crate::KeyUsage`]) and checked against the key's limit.
//! A single shared atomic would be written by every encrypting thread and bounce its cache line
//! between cores: with one, two threads sealed only 1.2 times what one thread did. Instead a
//! thread spends from a **lease**: it takes [`LEASE`] encryptions at a time from the key's
//! budget, and counts what it spends in a counter that only it writes (a plain store, no
//! read-modify-write). The key keeps the live leases' counters, and what finished leases spent,
//! under a lock taken once per lease, so a reading is exact. A lease's unused part goes back
//! to the budget when its thread moves to another key or exits. The budget never passes the
//! limit, so neither do encryptions; near the limit, encryptions leased to one thread are not
//! available to another until it gives them back.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Encryptions a thread takes from a key's budget at a time.
pub(crate) const LEASE: u64 = 4096;

/// One key's encryption count and limit.
#[derive(Debug)]
pub(crate) struct EncryptionCounter {
    shared: Arc<Shared>,
    limit: u64,
}

#[derive(Debug, Default)]
struct Shared {
    /// Encryptions leased out, spent or not.
    budget: AtomicU64,
    spent: Mutex<Spent>,
}

/// What the key's leases spent: the finished ones in total, the live ones each in its own
/// counter.
#[derive(Debug, Default)]
struct Spent {
    finished: u64,
    live: Vec<Arc<AtomicU64>>,
}

/// A thread's encryptions under one key: `next..end` of the budget are still to spend.
struct Lease {
    shared: Arc<Shared>,
    start: u64,
    next: u64,
    end: u64,
    /// `next - start`, published for readers; only this lease's thread writes it.
    spent: Arc<AtomicU64>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared
            .budget
            .fetch_sub(self.end - self.next, Ordering::Relaxed);
        let mut spent = self
            .shared
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        spent.finished = spent.finished.saturating_add(self.next - self.start);
        spent.live.retain(|c| !Arc::ptr_eq(c, &self.spent));
    }
}

thread_local! {
    static LEASE_HELD: RefCell<Option<Lease>> = const { RefCell::new(None) };
}

impl EncryptionCounter {
    /// A counter at zero that allows `limit` encryptions (`None`: any number).
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self {
            shared: Arc::default(),
            limit: limit.unwrap_or(u64::MAX),
        }
    }

    /// Encryptions counted so far.
    pub(crate) fn count(&self) -> u64 {
        let spent = self
            .shared
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        spent
            .live
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(spent.finished, u64::saturating_add)
    }

    /// Counts one encryption; `false` (and nothing counted) when the limit is reached.
    #[inline]
    pub(crate) fn take(&self) -> bool {
        LEASE_HELD
            .try_with(|held| {
                let Ok(mut held) = held.try_borrow_mut() else {
                    return self.take_unleased();
                };
                if let Some(lease) = held.as_mut()
                    && Arc::ptr_eq(&lease.shared, &self.shared)
                    && lease.next < lease.end
                {
                    lease.next += 1;
                    lease
                        .spent
                        .store(lease.next - lease.start, Ordering::Relaxed);
                    return true;
                }
                // Give back what is left of the old lease before taking a new one.
                *held = None;
                let Some(mut lease) = self.lease(LEASE) else {
                    return false;
                };
                lease.next += 1;
                lease.spent.store(1, Ordering::Relaxed);
                *held = Some(lease);
                true
            })
            // During thread teardown there is no lease to hold.
            .unwrap_or_else(|_| self.take_unleased())
    }

    /// Takes up to `want` encryptions from the budget; `None` when none are left.
    fn lease(&self, want: u64) -> Option<Lease> {
        let budget = &self.shared.budget;
        let start = budget.fetch_add(want, Ordering::Relaxed);
        let end = start.saturating_add(want).min(self.limit);
        let unused = start.saturating_add(want) - end.max(start);
        if unused > 0 {
            budget.fetch_sub(unused, Ordering::Relaxed);
        }
        if start >= end {
            return None;
        }
        let spent = Arc::new(AtomicU64::new(0));
        self.shared
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .push(Arc::clone(&spent));
        Some(Lease {
            shared: Arc::clone(&self.shared),
            start,
            next: start,
            end,
            spent,
        })
    }

    /// Counts one encryption through a lease of one, dropped at once.
    fn take_unleased(&self) -> bool {
        self.lease(1).is_some_and(|mut lease| {
            lease.next += 1;
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_across_threads() {
        let counter = EncryptionCounter::new(None);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_001 {
                        assert!(counter.take());
                    }
                });
            }
        });
        assert_eq!(counter.count(), 40_004);
    }

    #[test]
    fn the_limit_holds_in_one_thread() {
        let counter = EncryptionCounter::new(Some(LEASE + 3));
        let taken = (0..2 * LEASE).take_while(|_| counter.take()).count();
        assert_eq!(taken as u64, LEASE + 3);
        assert!(!counter.take());
        assert_eq!(counter.count(), LEASE + 3);
    }

    #[test]
    fn threads_never_pass_the_limit_and_leases_come_back() {
        let limit = 3 * LEASE + 17;
        let counter = EncryptionCounter::new(Some(limit));
        let taken: u64 = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|i| {
                    let counter = &counter;
                    // Uneven work: some threads stop with most of a lease unspent.
                    s.spawn(move || (0..(i + 1) * 1000).filter(|_| counter.take()).count() as u64)
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert!(taken <= limit);
        assert_eq!(counter.count(), taken);
        // The threads have exited and given their leases back: all the rest is available here.
        let rest = (0..2 * limit).take_while(|_| counter.take()).count() as u64;
        assert_eq!(taken + rest, limit);
        assert_eq!(counter.count(), limit);
    }

    #[test]
    fn moving_between_keys_gives_the_lease_back() {
        let a = EncryptionCounter::new(Some(LEASE + 1));
        let b = EncryptionCounter::new(Some(10));
        assert!(a.take());
        assert!(b.take());
        // `a`'s lease went back when this thread moved to `b`, so its whole limit is left.
        let rest = (0..2 * LEASE).take_while(|_| a.take()).count() as u64;
        assert_eq!(rest, LEASE);
        assert_eq!(a.count(), LEASE + 1);
        assert_eq!(b.count(), 1);
    }
}
