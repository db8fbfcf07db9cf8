//! The bounded hand-off between `record()` and a sink's background writer.
//!
//! `record()` pushes under a mutex (no I/O); the writer takes everything queued as one batch,
//! writes it, then marks it done. `flush` waits until everything pushed before it is done.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::AuditError;
use crate::sink::{Overflow, SinkStats};

#[derive(Debug)]
struct State<T> {
    buf: VecDeque<T>,
    enqueued: u64,
    done: u64,
    dropped: u64,
    blocked: u64,
    closed: bool,
    failures: u64,
    last_error: Option<String>,
    flush_requested: u64,
    flush_acked: u64,
    /// The error of the latest flush whose settle or checkpoint failed, with the newest ticket
    /// it answered. Tickets only grow, so a waiter whose ticket is at most that one was
    /// answered by this failure or by an earlier one (at worst a later failure, which it then
    /// reports too: never an `Ok` for a failed flush).
    flush_failed: Option<(u64, AuditError)>,
    /// Events the writer gave up on (the trail stays unwritable); set once, then final.
    lost: Option<u64>,
    /// The writer refused the trail (it failed verification): every flush fails with this.
    refused: Option<AuditError>,
}

#[derive(Debug)]
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    progress: Condvar,
    capacity: usize,
    overflow: Overflow,
}

impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(capacity.min(1 << 16)),
                enqueued: 0,
                done: 0,
                dropped: 0,
                blocked: 0,
                closed: false,
                failures: 0,
                last_error: None,
                flush_requested: 0,
                flush_acked: 0,
                flush_failed: None,
                lost: None,
                refused: None,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            progress: Condvar::new(),
            capacity,
            overflow,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`; false if it was dropped (queue full under `Overflow::DropNewest`, or
    /// closed).
    pub(crate) fn push(&self, item: T) -> bool {
        let mut s = self.lock();
        if s.buf.len() >= self.capacity && !s.closed {
            match self.overflow {
                Overflow::DropNewest => {
                    s.dropped = s.dropped.saturating_add(1);
                    return false;
                }
                Overflow::Block => {
                    s.blocked = s.blocked.saturating_add(1);
                    while s.buf.len() >= self.capacity && !s.closed {
                        s = self
                            .not_full
                            .wait(s)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
        }
        if s.closed {
            s.dropped = s.dropped.saturating_add(1);
            return false;
        }
        let was_empty = s.buf.is_empty();
        s.buf.push_back(item);
        s.enqueued = s.enqueued.saturating_add(1);
        drop(s);
        if was_empty {
            self.not_empty.notify_one();
        }
        true
    }

    /// Moves up to `max` items into `out`, waiting up to `wait` for the first. Returns
    /// `false` once the queue is closed and empty, and the flush ticket to acknowledge (with
    /// [`Queue::ack_flush`]) once `out` is durable, if a flush is waiting and `out` empties the
    /// queue.
    pub(crate) fn take(&self, out: &mut Vec<T>, max: usize, wait: Duration) -> (bool, Option<u64>) {
        let mut s = self.lock();
        let deadline = Instant::now() + wait;
        while s.buf.is_empty() && !s.closed && s.flush_requested == s.flush_acked {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .not_empty
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let n = s.buf.len().min(max);
        out.extend(s.buf.drain(..n));
        let flush =
            (s.flush_requested > s.flush_acked && s.buf.is_empty()).then_some(s.flush_requested);
        let alive = !(s.closed && s.buf.is_empty() && out.is_empty());
        drop(s);
        if n > 0 {
            self.not_full.notify_all();
        }
        (alive, flush)
    }

    /// Marks `n` taken items as durable. The last error stays: a later batch may have failed
    /// meanwhile; [`Queue::recovered`] clears it once the failed items are written.
    pub(crate) fn complete(&self, n: usize) {
        let mut s = self.lock();
        s.done = s.done.saturating_add(n as u64);
        drop(s);
        self.progress.notify_all();
    }

    /// Clears the last error: what failed has been written since.
    pub(crate) fn recovered(&self) {
        self.lock().last_error = None;
    }

    /// Acknowledges a flush ticket from [`Queue::take`].
    pub(crate) fn ack_flush(&self, ticket: u64) {
        let mut s = self.lock();
        s.flush_acked = s.flush_acked.max(ticket);
        drop(s);
        self.progress.notify_all();
    }

    /// Answers a flush ticket from [`Queue::take`] with `error`: its settle or checkpoint
    /// failed.
    pub(crate) fn fail_flush(&self, ticket: u64, error: AuditError) {
        let mut s = self.lock();
        s.flush_acked = s.flush_acked.max(ticket);
        let upto = s
            .flush_failed
            .as_ref()
            .map_or(ticket, |(t, _)| ticket.max(*t));
        s.flush_failed = Some((upto, error));
        drop(s);
        self.progress.notify_all();
    }

    /// The writer gave up for good: closes the queue, drops what is still queued and fails
    /// every waiting and later flush. Returns how many accepted events were lost (taken and
    /// not acknowledged, or still queued).
    pub(crate) fn give_up(&self) -> u64 {
        let mut s = self.lock();
        s.closed = true;
        s.buf.clear();
        let lost = s.enqueued.saturating_sub(s.done);
        s.lost = Some(lost);
        drop(s);
        self.not_empty.notify_all();
        self.not_full.notify_all();
        self.progress.notify_all();
        lost
    }

    /// The writer refuses to write (the trail failed verification): like [`Queue::give_up`],
    /// and every waiting and later flush fails with `error`.
    pub(crate) fn refuse(&self, error: AuditError) {
        self.lock().refused = Some(error);
        self.give_up();
    }

    /// Records a failed write attempt (the batch stays with the writer and is retried).
    pub(crate) fn fail(&self, error: String) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        s.last_error = Some(error);
    }

    /// Whether the queue was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits until everything queued before this call is durable, or `timeout` passes.
    pub(crate) fn wait_durable(&self, timeout: Duration) -> Result<(), AuditError> {
        let mut s = self.lock();
        let target = s.enqueued;
        s.flush_requested = s.flush_requested.saturating_add(1);
        let ticket = s.flush_requested;
        self.not_empty.notify_one();
        let deadline = Instant::now() + timeout;
        while s.done < target || (s.flush_acked < ticket && !s.closed) {
            if let Some(error) = &s.refused {
                return Err(error.clone());
            }
            if let Some(lost) = s.lost {
                return Err(AuditError::Unwritable { lost });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AuditError::Pending {
                    pending: target.saturating_sub(s.done),
                });
            }
            s = self
                .progress
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if let Some(error) = &s.refused {
            return Err(error.clone());
        }
        match &s.flush_failed {
            Some((upto, error)) if ticket <= *upto => Err(error.clone()),
            _ => Ok(()),
        }
    }

    /// Stops accepting items; the writer drains what is queued and exits.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    pub(crate) fn stats(&self) -> SinkStats {
        let s = self.lock();
        SinkStats {
            enqueued: s.enqueued,
            written: s.done,
            pending: s
                .enqueued
                .saturating_sub(s.done)
                .saturating_sub(s.lost.unwrap_or(0)),
            lost: s.lost.unwrap_or(0),
            dropped: s.dropped,
            blocked: s.blocked,
            write_failures: s.failures,
            last_error: s.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_failure_stays_reported_until_it_is_written() {
        let q = Queue::<u8>::new(4, Overflow::Block);
        q.push(1);
        q.push(2);
        // The first item is acknowledged just after the second one's write failed.
        q.fail("disk full".into());
        q.complete(1);
        assert_eq!(q.stats().last_error.as_deref(), Some("disk full"));
        q.complete(1);
        q.recovered();
        assert_eq!(q.stats().last_error, None);
    }
}
