//! The in-memory rate store: a sharded, bounded table behind [`RateStore`].
//!
//! [`MemoryRateStore`] serves one process: 64 independently locked shards, counter keys in
//! 16-byte slots, a randomly seeded hasher, sweeping as shards grow, and a hard cap on keys
//! enforced by evicting expired, then least-recently-used keys (CLOCK). It
//! passes [`palisade_core::rate::conformance::rate_store`]; [`MemoryLimiter`](crate::MemoryLimiter)
//! reaches its counter fast path (`apply_counter_at`, internal to this crate) directly.
//!
//! # Errors
//! None: a full store makes room (as nginx's `limit_req` zone does) rather than refuse a
//! newcomer.
//!
//! # Security
//! Keys are attacker-influenced (IP addresses, user names): the store hashes them with a
//! randomly seeded hasher and caps the number of keys, so a flood of new keys can neither grow it
//! without bound nor degrade it to linear probing chains. What a flood gains is written on
//! [`MemoryRateStore`] (*Floods*).

use core::fmt;
use core::future::Future;
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;
use palisade_core::StoreError;
use palisade_core::rate::{
    RateCounts, RateOp, RateRequest, RateStore, WindowKind, weighted_previous,
};
use palisade_core::time::{Clock, SystemClock, UnixTime};

/// What a sliding-window counter saw after an operation: the fields of [`RateCounts`] a counter
/// decision reads, without the log (see [`MemoryRateStore::apply_counter_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CounterCounts {
    /// Whether the cost was added (`Acquire`), would be (`Peek`); always true otherwise.
    pub(crate) admitted: bool,
    /// The current fixed window's cost.
    pub(crate) current: u64,
    /// The previous fixed window's cost (unweighted).
    pub(crate) previous: u64,
    /// When the current fixed window began.
    pub(crate) window_start: UnixTime,
}

const SHARDS: usize = 64;
/// A shard sweeps its dead keys when it reaches this size, and again whenever it has doubled
/// since the last sweep, so sweeping costs O(1) amortised per insert.
const MIN_SWEEP: usize = 64;
/// The most cost a counter slot holds in one fixed window (its counts are `u32`).
const COUNT_MAX: u64 = u32::MAX as u64;

/// A counter key's full-width slot: 32 bytes, two to a cache line. Every counter operation
/// runs on this form; a key is stored in it when its state does not fit a [`CompactSlot`].
///
/// The key itself is not stored: `hash`, the store's keyed 64-bit hash of it, is its identity
/// (see [`MemoryRateStore`], *Identity*). Keeping the hash also lets the table grow without
/// hashing any key again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(32))]
struct CounterSlot {
    hash: u64,
    /// The period the windows were laid out with; another period starts afresh.
    period: u64,
    /// When the current fixed window began, in nanoseconds since the epoch.
    start: u64,
    /// The current window's cost: never above [`COUNT_MAX`], because an acquire that would
    /// take it there is refused (so the count is exact, never saturated).
    current: u32,
    /// The previous window's cost (a former `current`).
    previous: u32,
}

impl CounterSlot {
    const fn new(hash: u64, period: u64) -> Self {
        Self {
            hash,
            period,
            start: 0,
            current: 0,
            previous: 0,
        }
    }

    /// Whether the slot holds nothing that can still count at `now`.
    fn is_dead(&self, now: u64) -> bool {
        now >= self.start.saturating_add(self.period.saturating_mul(2))
    }

    /// Rolls the windows forward to `now` and applies `op` under `limit`.
    #[inline]
    fn apply(&mut self, op: RateOp, limit: u64, period: u64, now: u64) -> CounterCounts {
        let same = self.period == period && now >= self.start && now - self.start < period;
        if !same {
            let window = now - now % period;
            if self.period != period || window > self.start.saturating_add(period) {
                // A new quota's period, or more than one whole window passed.
                self.previous = 0;
                self.current = 0;
                self.start = window;
                self.period = period;
            } else if window == self.start.saturating_add(period) {
                self.previous = self.current;
                self.current = 0;
                self.start = window;
            }
        }
        // A stored window later than `now` (the clock stepped back) stays current.
        let current = u64::from(self.current);
        let previous = u64::from(self.previous);
        let elapsed = now.saturating_sub(self.start);
        let weighted = weighted_previous(previous, elapsed, period);
        let used = weighted.saturating_add(current);
        // The cost fits under the limit and in the slot's count. A limit above `COUNT_MAX` is
        // thus met at `COUNT_MAX` per fixed window: the store refuses what it cannot count
        // rather than saturate, because a saturated count would let it admit past the limit.
        let fits = |cost: u64| {
            used.saturating_add(cost) <= limit && current.saturating_add(cost) <= COUNT_MAX
        };
        let admitted = match op {
            RateOp::Acquire(cost) => {
                let ok = fits(cost);
                if ok {
                    // At most `COUNT_MAX`, checked by `fits`.
                    self.current = u32::try_from(current + cost).unwrap_or(u32::MAX);
                }
                ok
            }
            RateOp::Peek(cost) => fits(cost),
            RateOp::Refund(cost) => {
                // At most `current`, which is a `u32`.
                self.current = u32::try_from(current.saturating_sub(cost)).unwrap_or(0);
                true
            }
            RateOp::Clear => {
                self.current = 0;
                self.previous = 0;
                true
            }
        };
        CounterCounts {
            admitted,
            current: u64::from(self.current),
            previous: u64::from(self.previous),
            window_start: UnixTime::from_nanos(self.start),
        }
    }
}

/// A log key's slot: the key's hash (its identity, as for counters), its period and its
/// timestamps (one per admitted unit, oldest first).
#[derive(Debug)]
struct LogSlot {
    hash: u64,
    period: u64,
    entries: VecDeque<u64>,
}

impl LogSlot {
    /// Whether the log holds nothing that can still count at `now`.
    fn is_dead(&self, now: u64) -> bool {
        self.entries
            .back()
            .is_none_or(|&t| t.saturating_add(self.period) <= now)
    }

    fn apply(&mut self, req: &RateRequest, period: u64, now: u64) -> RateCounts {
        self.period = period;
        let entries = &mut self.entries;
        while entries
            .front()
            .is_some_and(|&t| t.saturating_add(period) <= now)
        {
            entries.pop_front();
        }
        let len = u64::try_from(entries.len()).unwrap_or(u64::MAX);
        let admitted = match req.op {
            RateOp::Acquire(cost) => {
                let ok = len.saturating_add(cost) <= req.limit;
                if ok {
                    // Keep the log sorted even if the clock stepped back.
                    let t = entries.back().map_or(now, |&last| last.max(now));
                    for _ in 0..cost {
                        entries.push_back(t);
                    }
                }
                ok
            }
            RateOp::Peek(cost) => len.saturating_add(cost) <= req.limit,
            RateOp::Refund(cost) => {
                let keep = len.saturating_sub(cost);
                entries.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
                true
            }
            RateOp::Clear => {
                entries.clear();
                true
            }
        };
        RateCounts::log(
            UnixTime::from_nanos(now),
            admitted,
            entries.iter().map(|&t| UnixTime::from_nanos(t)).collect(),
        )
    }
}

/// A counter key's slot in the table of its period: 16 bytes, four to a cache line, so a
/// hundred thousand keys take 2 MiB of table. It holds what a [`CounterSlot`] holds when that
/// fits: the period is the table's, the window is its index (`start / period`, below 2^32)
/// and the two counts are below 2^16. A key whose state stops fitting moves to the shard's
/// [`CounterSlot`]s for good (see [`ShardInner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
struct CompactSlot {
    hash: u64,
    window: u32,
    current: u16,
    previous: u16,
}

impl CompactSlot {
    /// The same state as a [`CounterSlot`] of `period`.
    #[inline]
    fn widen(self, period: u64) -> CounterSlot {
        CounterSlot {
            hash: self.hash,
            period,
            // At most the `start` it was made from (see `narrow`): no overflow.
            start: u64::from(self.window).saturating_mul(period),
            current: u32::from(self.current),
            previous: u32::from(self.previous),
        }
    }

    /// `wide`'s state, if it fits, given the slot it was widened from (if any), whose window
    /// index is reused while the window is the same (no division on the hot path).
    #[inline]
    fn narrow(wide: &CounterSlot, before: Option<(u64, u32)>) -> Option<Self> {
        let window = match before {
            Some((start, window)) if start == wide.start => window,
            // `start` is a multiple of the period (`CounterSlot::apply` keeps it one).
            _ => u32::try_from(wide.start / wide.period.max(1)).ok()?,
        };
        Some(Self {
            hash: wide.hash,
            window,
            current: u16::try_from(wide.current).ok()?,
            previous: u16::try_from(wide.previous).ok()?,
        })
    }

    /// Whether the slot holds nothing that can still count at `now`, under `period`.
    fn is_dead(&self, period: u64, now: u64) -> bool {
        now >= u64::from(self.window)
            .saturating_add(2)
            .saturating_mul(period)
    }
}

/// The compact counter slots of one period, in one shard.
#[derive(Debug)]
struct PeriodTable {
    /// Zero for a table not in use (a period is at least a microsecond).
    period: u64,
    slots: HashTable<CompactSlot>,
}

impl PeriodTable {
    const fn unused() -> Self {
        Self {
            period: 0,
            slots: HashTable::new(),
        }
    }
}

/// The most periods a shard keeps compact tables for; keys of further periods take
/// [`CounterSlot`]s. A table is dropped once its keys are swept, so this bounds the periods in
/// use at once, not over the store's life.
const MAX_PERIODS: usize = 4;

/// The bytes of one full-width counter slot, as documented on [`MemoryRateStore`].
#[cfg(test)]
const SLOT_BYTES: usize = 32;

#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    inner: Mutex<ShardInner>,
}

/// One shard's keys. A counter key is in exactly one place: in the compact table of its
/// period while its state fits a [`CompactSlot`], in `counters` once it does not (or when the
/// shard already has [`MAX_PERIODS`] compact tables). A key whose quota changes period starts
/// afresh in the new period's place; its old state stays until swept.
#[derive(Debug)]
struct ShardInner {
    /// Counter keys in 16-byte slots, one table per period: where nearly every key lives.
    /// Inline, so the hot path finds its table without following a pointer.
    compact: [PeriodTable; MAX_PERIODS],
    /// Counter keys whose state does not fit a compact slot, found by their hash.
    counters: HashTable<CounterSlot>,
    /// Log keys, apart so that the counters' slots stay small.
    logs: HashTable<LogSlot>,
    /// Every key's id in the order it was inserted: the CLOCK hand is at the front. Ids of
    /// keys since swept are skipped when the hand reaches them, and dropped at each sweep.
    order: VecDeque<u64>,
    sweep_at: usize,
    /// Keys inserted since the last sweep: a full shard sweeps again once it has taken as many
    /// new keys as it holds, so that expired keys go first at O(1) amortised.
    inserted: usize,
}

impl ShardInner {
    fn len(&self) -> usize {
        let compact: usize = self.compact.iter().map(|t| t.slots.len()).sum();
        compact + self.counters.len() + self.logs.len()
    }

    /// Makes room for one more key, O(1) amortised, and never refuses it: sweeps expired keys
    /// when the shard has doubled since its last sweep, or when full and it has taken as many
    /// new keys as it holds since; then, if still full, evicts one key by CLOCK (see
    /// [`evict_one`](Self::evict_one)). Records `id` as the newest key.
    fn make_room(&mut self, id: u64, now: u64, max: usize) {
        let len = self.len();
        if len >= self.sweep_at || (len >= max && self.inserted >= len) {
            self.sweep(now);
        }
        if self.len() >= max {
            self.evict_one(now);
        }
        self.inserted = self.inserted.saturating_add(1);
        self.order.push_back(id);
    }

    /// Drops every key that can no longer count at `now`, and the order's ids of keys gone.
    fn sweep(&mut self, now: u64) {
        for table in &mut self.compact {
            let period = table.period;
            table.slots.retain(|s| !s.is_dead(period, now));
            if table.slots.is_empty() {
                // Frees its memory and makes room for another period.
                *table = PeriodTable::unused();
            }
        }
        self.counters.retain(|s| !s.is_dead(now));
        self.logs.retain(|s| !s.is_dead(now));
        let mut order = core::mem::take(&mut self.order);
        order.retain(|&id| self.holds(id));
        order.shrink_to(order.len().saturating_mul(2));
        self.order = order;
        self.sweep_at = self.len().saturating_mul(2).max(MIN_SWEEP);
        self.inserted = 0;
    }

    /// Whether a key of id `id` is held.
    fn holds(&self, id: u64) -> bool {
        self.compact
            .iter()
            .any(|t| t.slots.find(id, |s| s.hash & !REFERENCED == id).is_some())
            || self
                .counters
                .find(id, |s| s.hash & !REFERENCED == id)
                .is_some()
            || self.logs.find(id, |s| s.hash & !REFERENCED == id).is_some()
    }

    /// Evicts one key by CLOCK (second chance), the approximation of least-recently-used that
    /// needs one bit per key: the hand takes the oldest id; a key gone is skipped, an expired
    /// key or one not used since the hand last passed is evicted, a used one loses its mark and
    /// goes to the back. Each id is passed over at most twice per insertion: O(1) amortised.
    fn evict_one(&mut self, now: u64) {
        while let Some(id) = self.order.pop_front() {
            let (spared, evicted) = self.take_if_cold(id, now);
            if spared {
                // A state of the id was used since the hand last passed: back of the queue.
                self.order.push_back(id);
            }
            if evicted {
                return;
            }
        }
    }

    /// The CLOCK hand's step on `id`: evicts its states that are expired or unmarked, clears
    /// the mark of the others.
    ///
    /// Returns whether a state was spared and whether one was evicted.
    fn take_if_cold(&mut self, id: u64, now: u64) -> (bool, bool) {
        let mut evicted = false;
        let mut spared = false;
        let mut step = |hash: &mut u64, dead: bool| -> bool {
            if dead || *hash & REFERENCED == 0 {
                evicted = true;
                return false;
            }
            *hash &= !REFERENCED;
            spared = true;
            true
        };
        let eq = |h: u64| h & !REFERENCED == id;
        for table in &mut self.compact {
            let period = table.period;
            if let Ok(entry) = table.slots.find_entry(id, |s| eq(s.hash)) {
                let slot = entry.get();
                let dead = slot.is_dead(period, now);
                let mut hash = slot.hash;
                if step(&mut hash, dead) {
                    entry.into_mut().hash = hash;
                } else {
                    entry.remove();
                }
            }
        }
        if let Ok(entry) = self.counters.find_entry(id, |s| eq(s.hash)) {
            let slot = entry.get();
            let dead = slot.is_dead(now);
            let mut hash = slot.hash;
            if step(&mut hash, dead) {
                entry.into_mut().hash = hash;
            } else {
                entry.remove();
            }
        }
        if let Ok(entry) = self.logs.find_entry(id, |s| eq(s.hash)) {
            let slot = entry.get();
            let dead = slot.is_dead(now);
            let mut hash = slot.hash;
            if step(&mut hash, dead) {
                entry.into_mut().hash = hash;
            } else {
                entry.remove();
            }
        }
        (spared, evicted)
    }
}

/// The bit of a slot's `hash` that marks it used since the CLOCK hand last passed; a key's id
/// is its hash with this bit clear (63 bits of identity).
const REFERENCED: u64 = 1;

/// An in-process [`RateStore`]: 64 independently locked shards, so callers on different keys
/// rarely meet, and no lock is global.
///
/// # Memory
/// Bounded by construction: at most `max_keys` keys (default one million, rounded up to a
/// multiple of 64). A shard sweeps keys whose windows have passed whenever it doubles in size
/// since its last sweep, and, once full, whenever it has taken as many new keys as it holds
/// (both amortised O(1), no cleanup task to schedule). Between those sweeps a full shard makes
/// room for each new key by evicting one with CLOCK (second chance), the one-bit approximation
/// of least-recently-used: the hand walks the keys in insertion order, evicts the first that
/// is expired or unused since the hand last passed, and unmarks the used ones it passes. Each
/// key is passed at most twice per insertion, so an insert at the cap costs O(1) amortised and
/// is never refused. The order costs 8 to 16 bytes per key beside the table; a million counter
/// keys measured 48 MiB of resident memory in all (`tests/flood.rs`, which holds it under
/// 64 MiB).
///
/// # Floods
/// A flood of new keys (2 million against the default cap, in `tests/flood.rs`) cannot refuse a
/// newcomer, grow memory past the cap, or slow an insert past O(1) amortised. What it can do is
/// evict idle keys: a key not used while `max_keys` new keys arrived loses its count and starts
/// afresh. A client held at its limit that keeps trying marks its key each time and keeps its
/// count; to reset its own count an attacker must stay silent on that key while sending a whole
/// table's worth (a million by default) of requests on new keys, which a limit per address (or
/// per /64) in front makes slow. Size `max_keys` above the keys live in one window.
///
/// A counter key takes one 16-byte slot (its hash, its window's index, and the current and
/// previous windows' costs as `u16`) in its shard's table for its period, plus one control
/// byte, at a load between 44% and 87.5%: 20 to 39 bytes of table, whatever the key's length.
/// Four slots share a cache line, and a lookup reads one control group and one slot. A key
/// moves for good to a 32-byte slot (38 to 75 bytes of table: its hash, its period, its
/// window's start and the costs as `u32`) when a window's cost passes 65 535, when its window
/// index passes 2^32 (periods under about 0.4 s today), or when its shard already has tables
/// for four other periods. A key whose quota changes period starts afresh under the new one;
/// the old period's state is kept, and counted against the cap, until swept (two old periods
/// at most). A log key takes a 48-byte slot in a table of its own (so counters do not pay for
/// it), 55 to 110 bytes of table, plus 8 bytes per entry (at most `limit` entries).
///
/// # Counts
/// A counter holds at most 2^32 − 1 of cost per fixed window: an acquire that would go past it
/// is refused, as if the limit were 2^32 − 1. The counts therefore never saturate, and the
/// admission rule is the same as with 64-bit counts for every limit up to 2^32 − 1 (above it,
/// the store admits less, never more).
///
/// # Identity
/// The store does not keep the keys: a key is known by its 64-bit hash under the store's
/// randomly seeded hasher (which also picks its shard and bucket). Two keys share a state only
/// if their 64-bit hashes are equal: for a key not yet stored, a chance of at most
/// `keys held / 2^64` (under 6 × 10^-14 at a million keys), against a hasher whose seed the
/// attacker does not know. Were it to happen, the two keys would count each other's cost; each
/// is still admitted only while the shared count is under its own limit, so a collision can
/// deny a request it should have admitted, never admit one past a limit. A key used with both
/// kinds keeps one state per kind.
///
/// # Hasher
/// `S` hashes keys; the default is the standard library's SipHash with a random seed. Any
/// randomly seeded `BuildHasher` (for example `foldhash::fast::RandomState`) keeps the table
/// safe from chosen-collision floods.
#[derive(Debug)]
pub struct MemoryRateStore<C = SystemClock, S = RandomState> {
    shards: Box<[Shard]>,
    hasher: S,
    clock: C,
    max_per_shard: usize,
}

impl MemoryRateStore<SystemClock, RandomState> {
    /// A store on the system clock with the standard randomly seeded hasher.
    pub fn new() -> Self {
        Self::with_clock_and_hasher(SystemClock, RandomState::new())
    }
}

impl Default for MemoryRateStore<SystemClock, RandomState> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryRateStore<C, RandomState> {
    /// A store that reads `clock`.
    pub fn with_clock(clock: C) -> Self {
        Self::with_clock_and_hasher(clock, RandomState::new())
    }
}

impl<C: Clock, S: BuildHasher + Clone> MemoryRateStore<C, S> {
    /// A store that reads `clock` and hashes keys with `hasher` (which should be randomly
    /// seeded).
    pub fn with_clock_and_hasher(clock: C, hasher: S) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    inner: Mutex::new(ShardInner {
                        compact: [const { PeriodTable::unused() }; MAX_PERIODS],
                        counters: HashTable::new(),
                        logs: HashTable::new(),
                        order: VecDeque::new(),
                        sweep_at: MIN_SWEEP,
                        inserted: 0,
                    }),
                })
                .collect(),
            hasher,
            clock,
            max_per_shard: 1_000_000 / SHARDS,
        }
    }

    /// Caps the number of keys (rounded up to a multiple of 64).
    #[must_use]
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_per_shard = max.div_ceil(SHARDS).max(1);
        self
    }

    /// The store's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// [`RateStore::apply`] at the store's clock, synchronously.
    ///
    /// # Errors
    /// [`StoreError::Full`] when a new key finds its shard full.
    pub fn apply_now(&self, key: &[u8], req: RateRequest) -> Result<RateCounts, StoreError> {
        self.apply_at(key, req, self.clock.now())
    }

    /// [`RateStore::apply`] at `now`, synchronously: the hot path of an in-process limiter.
    ///
    /// # Errors
    /// [`StoreError::Full`] when a new key finds its shard full.
    #[inline]
    pub fn apply_at(
        &self,
        key: &[u8],
        req: RateRequest,
        now: UnixTime,
    ) -> Result<RateCounts, StoreError> {
        match req.kind {
            WindowKind::Counter => {
                let seen =
                    self.apply_counter_at(key, req.op, req.limit, req.period_nanos(), now)?;
                Ok(RateCounts::counter(
                    now,
                    seen.admitted,
                    seen.current,
                    seen.previous,
                    seen.window_start,
                ))
            }
            WindowKind::Log => self.apply_log(key, &req, now.as_nanos()),
        }
    }

    /// [`apply_at`](Self::apply_at) for a [`WindowKind::Counter`] request of `op` under `limit`
    /// per `period_nanos` (raised to a microsecond), at `now`, returning only what a counter
    /// decision needs: the in-process limiter's hot path. Same state, same answers:
    /// `apply_at` returns the same `admitted`, `current`, `previous` and `window_start`.
    ///
    /// # Errors
    /// [`StoreError::Full`] when a new key finds its shard full.
    #[inline]
    pub(crate) fn apply_counter_at(
        &self,
        key: &[u8],
        op: RateOp,
        limit: u64,
        period_nanos: u64,
        now: UnixTime,
    ) -> Result<CounterCounts, StoreError> {
        let period = period_nanos.max(1_000);
        let now = now.as_nanos();
        let (hash, mut guard) = self.lock(key)?;
        let inner = &mut *guard;
        if let Some(table) = inner.compact.iter_mut().find(|t| t.period == period)
            && let Ok(entry) = table
                .slots
                .find_entry(hash, |s| s.hash & !REFERENCED == hash)
        {
            let compact = *entry.get();
            let mut slot = compact.widen(period);
            // Used: the CLOCK hand spares it once (written only when the mark is new).
            slot.hash |= REFERENCED;
            let before = (slot.start, compact.window);
            let seen = slot.apply(op, limit, period, now);
            match CompactSlot::narrow(&slot, Some(before)) {
                // A denial in the same window changes nothing: leave the line clean, so that
                // a table larger than the cache is not written back for reads.
                Some(narrow) if narrow == compact => {}
                Some(narrow) => *entry.into_mut() = narrow,
                None => {
                    // Moves, so the number of keys is unchanged: no room to make.
                    entry.remove();
                    inner
                        .counters
                        .insert_unique(hash, slot, |s| s.hash & !REFERENCED);
                }
            }
            return Ok(seen);
        }
        if let Some(slot) = inner
            .counters
            .find_mut(hash, |s| s.hash & !REFERENCED == hash)
        {
            slot.hash |= REFERENCED;
            return Ok(slot.apply(op, limit, period, now));
        }
        let mut slot = CounterSlot::new(hash, period);
        let seen = slot.apply(op, limit, period, now);
        if slot.current == 0 && slot.previous == 0 {
            // Nothing to remember (a peek, refund or clear of an absent key, a zero cost): a
            // fresh slot would answer the same next time.
            return Ok(seen);
        }
        inner.make_room(hash, now, self.max_per_shard);
        if let Some(narrow) = CompactSlot::narrow(&slot, None) {
            // After `make_room`, which may have freed tables.
            let table = match inner.compact.iter().position(|t| t.period == period) {
                Some(i) => Some(i),
                None => inner.compact.iter().position(|t| t.period == 0),
            };
            if let Some(table) = table.and_then(|i| inner.compact.get_mut(i)) {
                table.period = period;
                table
                    .slots
                    .insert_unique(hash, narrow, |s| s.hash & !REFERENCED);
                return Ok(seen);
            }
        }
        inner
            .counters
            .insert_unique(hash, slot, |s| s.hash & !REFERENCED);
        Ok(seen)
    }

    /// [`apply_at`](Self::apply_at) for a [`WindowKind::Log`] request.
    fn apply_log(&self, key: &[u8], req: &RateRequest, now: u64) -> Result<RateCounts, StoreError> {
        let period = req.period_nanos();
        let (hash, mut inner) = self.lock(key)?;
        if let Some(slot) = inner.logs.find_mut(hash, |s| s.hash & !REFERENCED == hash) {
            slot.hash |= REFERENCED;
            return Ok(slot.apply(req, period, now));
        }
        let mut slot = LogSlot {
            hash,
            period,
            entries: VecDeque::new(),
        };
        let counts = slot.apply(req, period, now);
        if slot.is_dead(now) {
            // Nothing to remember (a peek, refund or clear of an absent key, a zero cost).
            return Ok(counts);
        }
        inner.make_room(hash, now, self.max_per_shard);
        inner
            .logs
            .insert_unique(hash, slot, |s| s.hash & !REFERENCED);
        Ok(counts)
    }

    /// Hashes `key` and locks its shard. Bits 48..54 of the hash choose the shard: the table
    /// inside uses the low bits (bucket) and the top seven (control byte), so keys of one shard
    /// still spread over its table.
    #[inline]
    fn lock(&self, key: &[u8]) -> Result<(u64, MutexGuard<'_, ShardInner>), StoreError> {
        // The key's id: its hash without the CLOCK mark's bit.
        let hash = self.hasher.hash_one(key) & !REFERENCED;
        let index = usize::try_from((hash >> 48) % SHARDS as u64).unwrap_or(0);
        // Never `Err`: there are `SHARDS` shards.
        let shard = self.shards.get(index).ok_or(StoreError::Full)?;
        let inner = shard.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok((hash, inner))
    }

    /// The number of keys held, dead ones not yet swept included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.inner.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<C: Clock, S: BuildHasher + Clone + fmt::Debug + Send + Sync> RateStore
    for MemoryRateStore<C, S>
{
    fn apply(
        &self,
        key: &[u8],
        request: RateRequest,
    ) -> impl Future<Output = Result<RateCounts, StoreError>> + Send {
        core::future::ready(self.apply_now(key, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use palisade_core::rate::conformance;
    use palisade_core::time::FakeClock;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn memory_store_passes_conformance() {
        block_on(conformance::rate_store(&MemoryRateStore::new()));
        let frozen = MemoryRateStore::with_clock(FakeClock::new(UnixTime::from_secs(1_000)));
        block_on(conformance::rate_store(&frozen));
    }

    #[test]
    fn documented_slot_size() {
        assert_eq!(core::mem::size_of::<CompactSlot>(), 16);
        assert_eq!(core::mem::size_of::<CounterSlot>(), SLOT_BYTES);
        // Four and two slots to a cache line, none across two.
        assert_eq!(core::mem::align_of::<CompactSlot>(), 16);
        assert_eq!(core::mem::align_of::<CounterSlot>(), SLOT_BYTES);
        assert_eq!(core::mem::size_of::<LogSlot>(), 48);
    }

    #[test]
    fn weighted_previous_rounds_up() {
        assert_eq!(weighted_previous(10, 0, 100), 10);
        assert_eq!(weighted_previous(10, 50, 100), 5);
        assert_eq!(weighted_previous(10, 51, 100), 5);
        assert_eq!(weighted_previous(10, 59, 100), 5);
        assert_eq!(weighted_previous(10, 61, 100), 4);
        assert_eq!(weighted_previous(10, 100, 100), 0);
        assert_eq!(weighted_previous(u64::MAX, 1, 2), u64::MAX / 2 + 1);
    }

    #[test]
    fn counter_rolls_windows() {
        let s = MemoryRateStore::new();
        let req = |op| RateRequest::new(WindowKind::Counter, MIN, 10, op);
        let t0 = UnixTime::from_secs(6_000); // a window boundary
        let c = s.apply_at(b"k", req(RateOp::Acquire(10)), t0).unwrap();
        assert!(c.admitted);
        // Half-way through the next window, half of the previous one still counts.
        let t1 = UnixTime::from_secs(6_090);
        let c = s.apply_at(b"k", req(RateOp::Acquire(5)), t1).unwrap();
        assert!(c.admitted, "{c:?}");
        assert_eq!((c.current, c.previous), (5, 10));
        assert!(
            !s.apply_at(b"k", req(RateOp::Acquire(1)), t1)
                .unwrap()
                .admitted
        );
        // Two windows later everything is gone.
        let t2 = UnixTime::from_secs(6_240);
        let c = s.apply_at(b"k", req(RateOp::Peek(10)), t2).unwrap();
        assert!(c.admitted);
        assert_eq!((c.current, c.previous), (0, 0));
        // A clock that steps back keeps the later window.
        let c = s.apply_at(b"k", req(RateOp::Acquire(1)), t0).unwrap();
        assert_eq!(c.window_start, UnixTime::from_secs(6_240));
    }

    #[test]
    fn log_expires_entries_exactly() {
        let s = MemoryRateStore::new();
        let req = |op| RateRequest::new(WindowKind::Log, MIN, 2, op);
        let t = UnixTime::from_secs(100);
        assert!(
            s.apply_at(b"k", req(RateOp::Acquire(1)), t)
                .unwrap()
                .admitted
        );
        let t1 = t.saturating_add(Duration::from_secs(30));
        assert!(
            s.apply_at(b"k", req(RateOp::Acquire(1)), t1)
                .unwrap()
                .admitted
        );
        let almost = t
            .saturating_add(MIN)
            .saturating_sub(Duration::from_nanos(1));
        assert!(
            !s.apply_at(b"k", req(RateOp::Acquire(1)), almost)
                .unwrap()
                .admitted
        );
        let c = s
            .apply_at(b"k", req(RateOp::Acquire(1)), t.saturating_add(MIN))
            .unwrap();
        assert!(c.admitted);
        assert_eq!(c.log, vec![t1, t.saturating_add(MIN)]);
    }

    #[test]
    fn memory_is_bounded_and_a_full_store_still_takes_newcomers() {
        let clock = FakeClock::new(UnixTime::from_secs(0));
        let s = MemoryRateStore::with_clock(clock.clone()).max_keys(SHARDS * 4);
        let req = RateRequest::new(WindowKind::Counter, MIN, 5, RateOp::Acquire(1));
        for i in 0u32..10_000 {
            assert!(s.apply_now(&i.to_be_bytes(), req).unwrap().admitted);
            assert!(s.len() <= SHARDS * 4);
        }
        for inner in s.shards.iter().map(|s| s.inner.lock().unwrap()) {
            assert!(
                inner.order.len() <= 2 * 4 + MIN_SWEEP,
                "{}",
                inner.order.len()
            );
        }
        // Once their windows pass, the old keys go first.
        clock.advance(MIN * 2);
        for i in 20_000u32..20_100 {
            assert!(s.apply_now(&i.to_be_bytes(), req).unwrap().admitted);
        }
        assert!(s.len() <= SHARDS * 4);
    }

    #[test]
    fn the_clock_hand_spares_a_key_in_use_and_evicts_an_idle_one() {
        let clock = FakeClock::new(UnixTime::from_secs(0));
        // One shard's worth: four keys per shard.
        let s = MemoryRateStore::with_clock(clock).max_keys(SHARDS * 4);
        let limited = RateRequest::new(WindowKind::Counter, MIN, 1, RateOp::Acquire(1));
        let log = RateRequest::new(WindowKind::Log, MIN, 1, RateOp::Acquire(1));
        assert!(s.apply_now(b"busy", limited).unwrap().admitted);
        assert!(s.apply_now(b"busy log", log).unwrap().admitted);
        assert!(s.apply_now(b"idle", limited).unwrap().admitted);
        let fresh = RateRequest::new(WindowKind::Counter, MIN, 5, RateOp::Acquire(1));
        let (mut busy, mut busy_log) = (0, 0);
        for i in 0u32..20_000 {
            assert!(s.apply_now(&i.to_be_bytes(), fresh).unwrap().admitted);
            if i % 16 == 0 {
                busy += usize::from(s.apply_now(b"busy", limited).unwrap().admitted);
                busy_log += usize::from(s.apply_now(b"busy log", log).unwrap().admitted);
            }
        }
        assert_eq!((busy, busy_log), (0, 0), "keys in use kept their counts");
        assert!(
            s.apply_now(b"idle", limited).unwrap().admitted,
            "the idle key was evicted: it starts afresh"
        );
    }

    #[test]
    fn inline_and_heap_keys_are_distinct_and_found_again() {
        let s = MemoryRateStore::new();
        let req = RateRequest::new(WindowKind::Counter, MIN, 1, RateOp::Acquire(1));
        let inline = [9u8; 22];
        let heap = [9u8; 23];
        let keys: [&[u8]; 6] = [b"", b"ip", b"ip\0", &inline, &heap, &[9u8; 200]];
        for key in keys {
            assert!(s.apply_now(key, req).unwrap().admitted, "{key:?} is new");
        }
        for key in keys {
            assert!(!s.apply_now(key, req).unwrap().admitted, "{key:?} is found");
        }
        assert_eq!(s.len(), keys.len());
    }

    #[test]
    fn peeks_of_absent_keys_store_nothing() {
        let s = MemoryRateStore::new();
        let req = RateRequest::new(WindowKind::Log, MIN, 5, RateOp::Peek(1));
        for i in 0u32..1_000 {
            assert!(s.apply_now(&i.to_be_bytes(), req).unwrap().admitted);
        }
        assert!(s.is_empty());
    }

    #[test]
    fn a_counter_refuses_what_its_slot_cannot_count() {
        let s = MemoryRateStore::new();
        let req = |op| RateRequest::new(WindowKind::Counter, MIN, u64::MAX, op);
        let t0 = UnixTime::from_secs(6_000);
        let c = s
            .apply_at(b"k", req(RateOp::Acquire(COUNT_MAX)), t0)
            .unwrap();
        assert!(c.admitted && c.current == COUNT_MAX);
        // Under the limit, but past what a `u32` holds: refused, and nothing saturates.
        assert!(!s.apply_at(b"k", req(RateOp::Peek(1)), t0).unwrap().admitted);
        let c = s.apply_at(b"k", req(RateOp::Acquire(1)), t0).unwrap();
        assert!(!c.admitted && c.current == COUNT_MAX);
        let c = s
            .apply_at(b"k", req(RateOp::Acquire(u64::MAX)), t0)
            .unwrap();
        assert!(!c.admitted && c.current == COUNT_MAX);
        let c = s.apply_at(b"k", req(RateOp::Refund(2)), t0).unwrap();
        assert_eq!(c.current, COUNT_MAX - 2);
        let c = s.apply_at(b"k", req(RateOp::Acquire(2)), t0).unwrap();
        assert!(c.admitted && c.current == COUNT_MAX);
        // The next window starts empty and carries the full count as its previous one.
        let t1 = UnixTime::from_secs(6_060);
        let c = s.apply_at(b"k", req(RateOp::Acquire(1)), t1).unwrap();
        assert!(c.admitted);
        assert_eq!((c.current, c.previous), (1, COUNT_MAX));
        // A fresh key cannot take more than a slot holds in one go either.
        let c = s
            .apply_at(b"big", req(RateOp::Acquire(COUNT_MAX + 1)), t0)
            .unwrap();
        assert!(!c.admitted && c.current == 0);
    }

    #[test]
    fn a_new_period_starts_afresh_and_kinds_are_apart() {
        let s = MemoryRateStore::new();
        let t0 = UnixTime::from_secs(6_000);
        let admits = |period, kind, op| {
            let req = RateRequest::new(kind, period, 1, op);
            s.apply_at(b"k", req, t0).unwrap().admitted
        };
        let (counter, log) = (WindowKind::Counter, WindowKind::Log);
        assert!(admits(MIN, counter, RateOp::Acquire(1)));
        assert!(!admits(MIN, counter, RateOp::Acquire(1)));
        // The quota's period changed at run time: the windows are laid out again.
        let hour = Duration::from_secs(3_600);
        let req = RateRequest::new(counter, hour, 1, RateOp::Acquire(1));
        let c = s.apply_at(b"k", req, t0).unwrap();
        assert!(c.admitted, "{c:?}");
        assert_eq!(c.window_start, UnixTime::from_secs(3_600));
        assert!(!admits(hour, counter, RateOp::Acquire(1)));
        // Back to the first period within its window: its count is still there.
        assert!(!admits(MIN, counter, RateOp::Peek(1)));
        // A log on the same key is a state of its own, and neither touches the other.
        assert!(admits(hour, log, RateOp::Acquire(1)));
        assert!(!admits(hour, log, RateOp::Acquire(1)));
        assert!(!admits(hour, counter, RateOp::Peek(1)));
        assert_eq!(s.len(), 3);
    }

    /// Keys hash to distinct values, all in shard 0: a shard with many periods.
    #[derive(Debug, Clone, Default)]
    struct OneShard;

    impl BuildHasher for OneShard {
        type Hasher = OneShardHasher;
        fn build_hasher(&self) -> OneShardHasher {
            OneShardHasher(0xcbf2_9ce4_8422_2325)
        }
    }

    struct OneShardHasher(u64);

    impl std::hash::Hasher for OneShardHasher {
        fn finish(&self) -> u64 {
            self.0 & !(0x3f << 48)
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    /// Periods of the trace below: more than `MAX_PERIODS`, and a sub-second one whose window
    /// index does not fit a compact slot.
    const PERIODS_MS: [u64; 7] = [1_000, 60_000, 3_600_000, 2_000, 5_000, 7_000, 250];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// The compact slots, the moves out of them and the period tables answer exactly as
        /// one full-width counter per key: each key keeps one period, costs up to 70 000 take
        /// counts past 2^16, limits go up to `u64::MAX`.
        #[test]
        fn compact_slots_answer_as_full_width_counters(
            steps in proptest::collection::vec(
                (0u64..3_000_000, proptest::bool::weighted(0.05), 0u8..7, 0u8..4,
                 proptest::prop_oneof![0u64..4, 60_000u64..70_000], 0usize..4),
                1..200,
            )
        ) {
            let s = MemoryRateStore::with_clock_and_hasher(SystemClock, OneShard);
            let mut reference: std::collections::HashMap<u8, CounterSlot> =
                std::collections::HashMap::new();
            let mut now = 1_700_000_000_000_000_000u64;
            let limits = [3, 100_000, 1 << 40, u64::MAX];
            for (gap_us, back, key, op, cost, limit) in steps {
                now = if back { now - gap_us * 1_000 } else { now + gap_us * 1_000 };
                let period = PERIODS_MS[usize::from(key)] * 1_000_000;
                let op = match op {
                    0 => RateOp::Peek(cost),
                    1 => RateOp::Refund(cost),
                    2 if cost == 0 => RateOp::Clear,
                    _ => RateOp::Acquire(cost),
                };
                let limit = limits[limit];
                let got = s
                    .apply_counter_at(&[key], op, limit, period, UnixTime::from_nanos(now))
                    .unwrap();
                // Like the store, remember a new key only if it holds something.
                let want = match reference.get_mut(&key) {
                    Some(slot) => slot.apply(op, limit, period, now),
                    None => {
                        let mut slot = CounterSlot::new(0, period);
                        let want = slot.apply(op, limit, period, now);
                        if slot.current != 0 || slot.previous != 0 {
                            reference.insert(key, slot);
                        }
                        want
                    }
                };
                proptest::prop_assert_eq!(got, want, "key {} {:?} at {}", key, op, now);
            }
        }
    }

    #[test]
    fn a_shard_takes_four_periods_compact_and_frees_them_when_swept() {
        let clock = FakeClock::new(UnixTime::from_secs(6_000));
        let s =
            MemoryRateStore::with_clock_and_hasher(clock.clone(), OneShard).max_keys(SHARDS * 8);
        let acquire = |key: &[u8], secs| {
            let req = RateRequest::new(
                WindowKind::Counter,
                Duration::from_secs(secs),
                5,
                RateOp::Acquire(1),
            );
            s.apply_now(key, req).unwrap()
        };
        let places = || {
            let (_, inner) = s.lock(b"any").unwrap();
            let periods: Vec<u64> = inner
                .compact
                .iter()
                .map(|t| t.period / 1_000_000_000)
                .collect();
            (periods, inner.counters.len())
        };
        for (i, secs) in (0u8..).zip([60, 120, 180, 240, 300, 360]) {
            assert!(acquire(&[b'a', i], secs).admitted);
        }
        assert_eq!(
            places(),
            (vec![60, 120, 180, 240], 2),
            "two periods too many"
        );
        // Every window has passed. Until the shard sweeps, a fifth period still finds no table.
        clock.advance(Duration::from_secs(720));
        assert!(acquire(b"b0", 300).admitted);
        assert!(acquire(b"b1", 300).admitted);
        assert_eq!(places(), (vec![60, 120, 180, 240], 4));
        // Full at 8 keys, the shard sweeps: the dead keys go and the emptied tables are freed,
        // so the next key of that period is compact again.
        assert!(acquire(b"b2", 300).admitted);
        assert_eq!(
            places(),
            (vec![300, 0, 0, 0], 2),
            "b0 and b1 stay where they are"
        );
        assert_eq!(s.len(), 3);
        let c = acquire(b"b0", 300);
        assert!(
            c.admitted && c.current == 2,
            "b0 is found where it stayed: {c:?}"
        );
    }

    #[test]
    fn counts_past_a_compact_slot_move_it_whole() {
        let s = MemoryRateStore::with_clock_and_hasher(SystemClock, OneShard);
        let t0 = UnixTime::from_secs(6_000);
        let req = |op| RateRequest::new(WindowKind::Counter, MIN, 1 << 20, op);
        let c = s.apply_at(b"k", req(RateOp::Acquire(65_535)), t0).unwrap();
        assert_eq!(c.current, 65_535);
        let lock = |s: &MemoryRateStore<SystemClock, OneShard>| {
            let (_, inner) = s.lock(b"k").unwrap();
            let used = inner.compact.iter().filter(|t| t.period != 0).count();
            (used, inner.counters.len())
        };
        assert_eq!(lock(&s), (1, 0), "a compact slot");
        let c = s.apply_at(b"k", req(RateOp::Acquire(1)), t0).unwrap();
        assert_eq!(c.current, 65_536);
        assert_eq!(lock(&s), (1, 1), "moved; the empty table stays until swept");
        let (_, inner) = s.lock(b"k").unwrap();
        assert_eq!(inner.compact.first().map(|t| t.slots.len()), Some(0));
        assert_eq!(
            inner.compact.first().map(|t| t.period),
            Some(60_000_000_000)
        );
        assert_eq!(inner.counters.len(), 1, "moved to a full-width slot");
        drop(inner);
        // One key still, found where it moved, and counted on.
        let t1 = UnixTime::from_secs(6_090);
        let c = s.apply_at(b"k", req(RateOp::Acquire(1)), t1).unwrap();
        assert_eq!((c.current, c.previous), (1, 65_536));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn peeks_of_absent_counter_keys_store_nothing() {
        let s = MemoryRateStore::new();
        let t = UnixTime::from_secs(6_000);
        for op in [
            RateOp::Peek(1),
            RateOp::Refund(1),
            RateOp::Clear,
            RateOp::Acquire(0),
        ] {
            let req = RateRequest::new(WindowKind::Counter, MIN, 5, op);
            for i in 0u32..100 {
                assert!(s.apply_at(&i.to_be_bytes(), req, t).unwrap().admitted);
            }
        }
        assert!(s.is_empty());
    }

    /// Every key hashes to the same value: what two colliding keys would see.
    #[derive(Debug, Clone, Default)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = ConstantHasher;
        fn build_hasher(&self) -> ConstantHasher {
            ConstantHasher
        }
    }

    struct ConstantHasher;

    impl std::hash::Hasher for ConstantHasher {
        fn finish(&self) -> u64 {
            0x0123_4567_89ab_cdef
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn colliding_keys_share_a_count_and_never_pass_their_limits() {
        let s = MemoryRateStore::with_clock_and_hasher(SystemClock, Colliding);
        let t = UnixTime::from_secs(6_000);
        let req = |limit, op| RateRequest::new(WindowKind::Counter, MIN, limit, op);
        // `a` (limit 2) and `b` (limit 3) are one state: each is held to its own limit
        // against the shared count, so together they are admitted 3 times, not 5.
        let steps: [(&[u8], u64, bool); 5] = [
            (b"a", 2, true),
            (b"b", 3, true),
            (b"a", 2, false),
            (b"b", 3, true),
            (b"b", 3, false),
        ];
        for (key, limit, admitted) in steps {
            let c = s.apply_at(key, req(limit, RateOp::Acquire(1)), t).unwrap();
            assert_eq!(c.admitted, admitted, "{key:?} at {}", c.current);
        }
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn logs_and_counters_share_the_cap() {
        let clock = FakeClock::new(UnixTime::from_secs(0));
        let s = MemoryRateStore::with_clock(clock.clone()).max_keys(SHARDS);
        let mut held = 0;
        for i in 0u32..2_000 {
            let kind = if i % 2 == 0 {
                WindowKind::Log
            } else {
                WindowKind::Counter
            };
            let req = RateRequest::new(kind, MIN, 5, RateOp::Acquire(1));
            assert!(s.apply_now(&i.to_be_bytes(), req).unwrap().admitted);
            held += 1;
        }
        assert_eq!(held, 2_000, "newcomers are never refused");
        assert!(s.len() <= SHARDS, "{}", s.len());
        // Both kinds are swept once their windows pass.
        clock.advance(MIN * 2);
        let req = RateRequest::new(WindowKind::Log, MIN, 5, RateOp::Acquire(1));
        let mut accepted = 0;
        for i in 5_000u32..5_200 {
            if s.apply_now(&i.to_be_bytes(), req).is_ok() {
                accepted += 1;
            }
        }
        assert!(
            accepted >= SHARDS / 2,
            "swept shards take new keys ({accepted})"
        );
        assert!(s.len() <= SHARDS);
    }

    #[test]
    fn concurrent_acquires_admit_exactly_the_limit() {
        for kind in [WindowKind::Counter, WindowKind::Log] {
            let s = Arc::new(MemoryRateStore::with_clock(FakeClock::new(
                UnixTime::from_secs(60_000),
            )));
            let admitted = Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (s, admitted) = (s.clone(), admitted.clone());
                    std::thread::spawn(move || {
                        let req = RateRequest::new(kind, MIN, 1_000, RateOp::Acquire(1));
                        for _ in 0..1_000 {
                            if s.apply_now(b"hot", req).unwrap().admitted {
                                admitted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(admitted.load(Ordering::Relaxed), 1_000, "{kind:?}");
        }
    }
}
