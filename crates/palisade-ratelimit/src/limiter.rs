//! The limiter over any [`RateStore`]: the same decisions in memory or in Redis, with a fail
//! policy, shadow mode, a local deny cache and audit events.
//!
//! [`Limiter::check`] makes one store call (one round trip to Redis) per decision, unless the
//! key is in the local deny cache: a key the store denied stays denied locally until its
//! retry-after, so a client hammering past its limit costs no round trips (Envoy's answer to the
//! loopback round trip). The cache can only deny what the store denied, until the store said
//! the denial ends, so it never admits more.
//!
//! # Errors
//! [`RateLimitError::Unavailable`] when the store cannot answer: the error carries the
//! [`FailPolicy`]'s decision ([`RateLimitError::fallback`]).
//!
//! # Security
//! Fail closed (the default) for authentication and abuse limits; fail open only where
//! availability matters more than the limit. Keys appear in audit events as given: use ids or
//! addresses, never secrets, as keys.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::audit::{Action, AuditEvent, AuditSink};
use palisade_core::rate::{RateOp, RateStore};
use palisade_core::time::{Clock, SystemClock, UnixTime};

use crate::RateLimitError;
use crate::decision::{Decision, decide};
use crate::deny_cache::DenyCache;
use crate::quota::{Quota, QuotaResolver, SharedQuota};

/// What to decide when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailPolicy {
    /// Deny, asking the client to retry after a second.
    #[default]
    Closed,
    /// Allow.
    Open,
}

impl FailPolicy {
    pub(crate) fn error(self, limit: u64, source: StoreError) -> RateLimitError {
        let fallback = match self {
            Self::Open => Decision::allowed(limit, limit, Duration::ZERO),
            Self::Closed => Decision::denied(limit, Duration::ZERO, Duration::from_secs(1)),
        };
        RateLimitError::Unavailable { source, fallback }
    }
}

/// Sends rate-limit audit events.
#[derive(Clone)]
pub(crate) struct Reporter {
    /// `None` when no sink is configured: the event is then not even built.
    sink: Option<Arc<dyn AuditSink>>,
    policy: Arc<str>,
}

impl Reporter {
    pub(crate) fn new(sink: Arc<dyn AuditSink>, policy: &str) -> Self {
        Self {
            sink: Some(sink),
            policy: policy.into(),
        }
    }

    pub(crate) fn none() -> Self {
        Self {
            sink: None,
            policy: "".into(),
        }
    }

    /// Records a denial, if a sink is configured (checked inline, so a limiter without one
    /// pays a branch).
    #[inline]
    pub(crate) fn exceeded(&self, key: &[u8], decision: &Decision, now: UnixTime) {
        if let Some(sink) = &self.sink {
            self.record(sink.as_ref(), key, decision, now);
        }
    }

    #[cold]
    fn record(&self, sink: &dyn AuditSink, key: &[u8], decision: &Decision, now: UnixTime) {
        let retry = decision.retry_after().unwrap_or_default();
        let mut event = AuditEvent::new(Action::RateLimitExceeded, now)
            .resource(&*self.policy)
            .meta("key", String::from_utf8_lossy(key))
            .meta("retry_after_ms", retry.as_millis().to_string());
        if decision.is_shadow_denied() {
            event = event.meta("shadow", "true");
        }
        sink.record(event);
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A rate limiter over any [`RateStore`] (memory, Redis, your own).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use palisade_ratelimit::MemoryRateStore;
/// use palisade_ratelimit::{Limiter, Quota};
///
/// let limiter = Limiter::new(MemoryRateStore::new(), Quota::per_minute(1));
/// assert!(limiter.check(b"user-42", 1).await.unwrap().is_allowed());
/// let denied = limiter.check(b"user-42", 1).await.unwrap();
/// assert!(!denied.is_allowed());
/// # });
/// ```
pub struct Limiter<S> {
    store: S,
    resolver: Arc<dyn QuotaResolver>,
    shared: Option<Arc<SharedQuota>>,
    fail: FailPolicy,
    shadow: bool,
    cache: Option<DenyCache>,
    clock: Arc<dyn Clock>,
    reporter: Reporter,
}

impl<S: RateStore> Limiter<S> {
    /// A limiter applying `quota` to every key, keeping counts in `store`.
    pub fn new(store: S, quota: Quota) -> Self {
        let shared = Arc::new(SharedQuota::new(quota));
        let mut limiter = Self::with_resolver(store, shared.clone());
        limiter.shared = Some(shared);
        limiter
    }

    /// A limiter asking `resolver` for each key's quota.
    pub fn with_resolver(store: S, resolver: impl QuotaResolver + 'static) -> Self {
        Self {
            store,
            resolver: Arc::new(resolver),
            shared: None,
            fail: FailPolicy::Closed,
            shadow: false,
            cache: None,
            clock: Arc::new(SystemClock),
            reporter: Reporter::none(),
        }
    }

    /// What to decide when the store cannot answer (default [`FailPolicy::Closed`]).
    #[must_use]
    pub fn fail_policy(mut self, fail: FailPolicy) -> Self {
        self.fail = fail;
        self
    }

    /// Shadow mode: decide, count and record denials, but let every request through (the
    /// decision says [`Decision::is_shadow_denied`]). For trying a new limit in production.
    #[must_use]
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Keeps up to `max_keys` denied keys locally until their retry-after, answering them
    /// without a store call. Worth it in front of a remote store.
    #[must_use]
    pub fn deny_cache(mut self, max_keys: usize) -> Self {
        self.cache = Some(DenyCache::new(max_keys));
        self
    }

    /// The local clock the deny cache reads (default the system clock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Records each denial as [`Action::RateLimitExceeded`] in `sink`, naming the policy.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>, policy: &str) -> Self {
        self.reporter = Reporter::new(sink, policy);
        self
    }

    /// Replaces the quota of a limiter built with one quota (false for one with a resolver).
    pub fn set_quota(&self, quota: Quota) -> bool {
        self.shared.as_ref().map(|s| s.set(quota)).is_some()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Spends `cost` for `key`.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer; act on its
    /// [`fallback`](RateLimitError::fallback).
    pub async fn check(&self, key: &[u8], cost: u64) -> Result<Decision, RateLimitError> {
        let Some(quota) = self.resolver.quota(key) else {
            return Ok(Decision::unlimited());
        };
        if let Some(cache) = &self.cache {
            let now = self.clock.now();
            if let Some((until, limit)) = cache.denied_until(key, now)
                && limit == quota.limit()
            {
                let wait = until.saturating_duration_since(now);
                return Ok(self.finish(Decision::denied(limit, wait, wait), key, now, false));
            }
        }
        let decision = self.apply(key, &quota, RateOp::Acquire(cost), cost).await?;
        if decision.is_allowed() {
            return Ok(decision);
        }
        // Only a denial reads the local clock (for the deny cache and the audit event).
        let now = self.clock.now();
        Ok(self.finish(decision, key, now, true))
    }

    fn finish(&self, decision: Decision, key: &[u8], now: UnixTime, fresh: bool) -> Decision {
        if decision.is_allowed() {
            return decision;
        }
        if fresh && let (Some(cache), Some(retry)) = (&self.cache, decision.retry_after()) {
            cache.insert(key, now.saturating_add(retry), decision.limit(), now);
        }
        let decision = if self.shadow {
            decision.into_shadow()
        } else {
            decision
        };
        if fresh {
            self.reporter.exceeded(key, &decision, now);
        }
        decision
    }

    /// Whether `cost` would be admitted for `key`, spending nothing.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer.
    pub async fn peek(&self, key: &[u8], cost: u64) -> Result<Decision, RateLimitError> {
        let Some(quota) = self.resolver.quota(key) else {
            return Ok(Decision::unlimited());
        };
        self.apply(key, &quota, RateOp::Peek(cost), cost).await
    }

    /// Gives back `cost` spent in the current window.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer.
    pub async fn refund(&self, key: &[u8], cost: u64) -> Result<Decision, RateLimitError> {
        let Some(quota) = self.resolver.quota(key) else {
            return Ok(Decision::unlimited());
        };
        if let Some(cache) = &self.cache {
            cache.remove(key);
        }
        self.apply(key, &quota, RateOp::Refund(cost), 0).await
    }

    /// Forgets `key`'s usage.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer.
    pub async fn reset(&self, key: &[u8]) -> Result<(), RateLimitError> {
        let Some(quota) = self.resolver.quota(key) else {
            return Ok(());
        };
        if let Some(cache) = &self.cache {
            cache.remove(key);
        }
        self.apply(key, &quota, RateOp::Clear, 0).await.map(|_| ())
    }

    async fn apply(
        &self,
        key: &[u8],
        quota: &Quota,
        op: RateOp,
        cost: u64,
    ) -> Result<Decision, RateLimitError> {
        match self.store.apply(key, quota.request(op)).await {
            Ok(counts) => Ok(decide(quota, cost, &counts)),
            Err(source) => Err(self.fail.error(quota.limit(), source)),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Limiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("store", &self.store)
            .field("fail", &self.fail)
            .field("shadow", &self.shadow)
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryRateStore;
    use palisade_core::audit::MemorySink;
    use palisade_core::time::FakeClock;

    fn block_on<F: core::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn shadow_mode_records_but_never_denies() {
        let sink = Arc::new(MemorySink::new());
        let limiter = Limiter::new(MemoryRateStore::new(), Quota::per_minute(1))
            .shadow(true)
            .audit(sink.clone(), "api");
        block_on(async {
            assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
            let d = limiter.check(b"k", 1).await.unwrap();
            assert!(d.is_allowed() && d.is_shadow_denied());
        });
        let events = sink.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, Action::RateLimitExceeded);
        assert_eq!(events[0].resource.as_deref(), Some("api"));
        assert_eq!(
            events[0].metadata.get("shadow").map(String::as_str),
            Some("true")
        );
        assert_eq!(events[0].metadata.get("key").map(String::as_str), Some("k"));
    }

    #[test]
    fn deny_cache_answers_until_retry_after() {
        let clock = FakeClock::new(UnixTime::from_secs(6_000));
        let store = Arc::new(MemoryRateStore::with_clock(clock.clone()));
        let limiter = Limiter::new(store.clone(), Quota::per_minute(1))
            .deny_cache(100)
            .clock(clock.clone());
        block_on(async {
            assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
            let d = limiter.check(b"k", 1).await.unwrap();
            assert!(!d.is_allowed());
            // Clear the store behind the limiter's back: the cache still denies.
            let q = Quota::per_minute(1);
            store.apply_now(b"k", q.request(RateOp::Clear)).unwrap();
            assert!(!limiter.check(b"k", 1).await.unwrap().is_allowed());
            clock.advance(d.retry_after().unwrap());
            assert!(limiter.check(b"k", 1).await.unwrap().is_allowed());
        });
    }

    #[test]
    fn fail_policies_give_their_fallbacks() {
        #[derive(Debug)]
        struct Down;
        impl RateStore for Down {
            async fn apply(
                &self,
                _key: &[u8],
                _request: palisade_core::rate::RateRequest,
            ) -> Result<palisade_core::rate::RateCounts, StoreError> {
                Err(StoreError::Full)
            }
        }
        block_on(async {
            let closed = Limiter::new(Down, Quota::per_minute(5));
            let err = closed.check(b"k", 1).await.unwrap_err();
            assert!(matches!(err, RateLimitError::Unavailable { .. }));
            assert!(!err.fallback().is_allowed());
            let open = Limiter::new(Down, Quota::per_minute(5)).fail_policy(FailPolicy::Open);
            let err = open.check(b"k", 1).await.unwrap_err();
            assert!(err.fallback().is_allowed());
        });
    }
}
