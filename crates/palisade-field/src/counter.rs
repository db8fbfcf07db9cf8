//! Per-key encryption counts that do not make encrypting threads contend.
//!
//! Every encryption is counted (for [`crate::KeyUsage`]) and checked against the key's limit.
//! A single shared atomic would be written by every encrypting thread and bounce its cache line
//! between cores: with one, two threads sealed only 1.2 times what one thread did. Instead:
//! - **Counts** go to one of [`STRIPES`] counters, each on its own cache line; a thread picks
//!   its stripe once. Reading sums the stripes, so the count is exact.
//! - **The limit** is spent from leases: a thread takes [`LEASE`] encryptions at a time from the
//!   key's budget and spends them without touching shared memory. A lease's unused part goes
//!   back when its thread moves to another key or exits. The budget never passes the limit, so
//!   neither do encryptions; near the limit, encryptions leased to one thread are not available
//!   to another until it gives them back.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters per key; more than the cores of most machines, so threads rarely share one.
pub(crate) const STRIPES: usize = 16;

/// Encryptions a thread takes from a key's budget at a time.
pub(crate) const LEASE: u64 = 4096;

/// An atomic alone on its cache line (two lines: adjacent-line prefetch pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicU64);

/// One key's encryption count and limit.
#[derive(Debug)]
pub(crate) struct EncryptionCounter {
    stripes: Box<[Line; STRIPES]>,
    budget: Arc<Line>,
    limit: Option<u64>,
}

/// A thread's unspent encryptions under one key's budget.
struct Lease {
    budget: Arc<Line>,
    next: u64,
    end: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget
            .0
            .fetch_sub(self.end - self.next, Ordering::Relaxed);
    }
}

thread_local! {
    static LEASE_HELD: RefCell<Option<Lease>> = const { RefCell::new(None) };
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl EncryptionCounter {
    /// A counter at zero that allows `limit` encryptions (`None`: any number).
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self {
            stripes: Box::default(),
            budget: Arc::default(),
            limit,
        }
    }

    /// Encryptions counted so far.
    pub(crate) fn count(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Counts one encryption; `false` (and nothing counted) when the limit is reached.
    #[inline]
    pub(crate) fn take(&self) -> bool {
        if let Some(limit) = self.limit
            && !self.spend(limit)
        {
            return false;
        }
        let stripe = STRIPE.try_with(|s| *s).unwrap_or(0);
        if let Some(line) = self.stripes.get(stripe) {
            line.0.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Spends one encryption from this thread's lease on this key, leasing more if needed.
    #[inline]
    fn spend(&self, limit: u64) -> bool {
        let held = LEASE_HELD.try_with(|held| {
            let Ok(mut held) = held.try_borrow_mut() else {
                return self.spend_unleased(limit);
            };
            if let Some(lease) = held.as_mut()
                && Arc::ptr_eq(&lease.budget, &self.budget)
                && lease.next < lease.end
            {
                lease.next += 1;
                return true;
            }
            // Give back what is left of the old lease before taking a new one.
            *held = None;
            match self.lease(limit) {
                Some(mut lease) => {
                    lease.next += 1;
                    *held = Some(lease);
                    true
                }
                None => false,
            }
        });
        // During thread teardown there is no lease to hold: spend directly.
        held.unwrap_or_else(|_| self.spend_unleased(limit))
    }

    /// Takes up to [`LEASE`] encryptions from the budget; `None` when none are left.
    fn lease(&self, limit: u64) -> Option<Lease> {
        let start = self.budget.0.fetch_add(LEASE, Ordering::Relaxed);
        let end = start.saturating_add(LEASE).min(limit);
        let unused = start.saturating_add(LEASE) - end.max(start);
        if unused > 0 {
            self.budget.0.fetch_sub(unused, Ordering::Relaxed);
        }
        (start < end).then(|| Lease {
            budget: Arc::clone(&self.budget),
            next: start,
            end,
        })
    }

    /// Takes one encryption straight from the budget.
    fn spend_unleased(&self, limit: u64) -> bool {
        let n = self.budget.0.fetch_add(1, Ordering::Relaxed);
        if n >= limit {
            self.budget.0.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
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
