//! Login lockout after repeated failures (OWASP Authentication Cheat Sheet, NIST SP 800-63B
//! section 5.2.2).
//!
//! Failures are counted with exact windows (the log) in any [`RateStore`] (memory or Redis):
//! - per (account, IP): the first to trip (default 5 per 15 minutes), so an attacker at one
//!   address locks only themselves out of that account;
//! - per account across addresses (default 20 per 15 minutes): a distributed guess;
//! - per IP across accounts (default 100 per 15 minutes): password spraying;
//! - consecutive failures of (account, IP), remembered for a day and reset by a success: past
//!   `delay_after` (default 3), each further failure doubles a delay (1 s, 2 s, 4 s, ...) capped
//!   at `max_delay` (15 minutes);
//! - consecutive failures of the account, reset by a success: never more than 100 (NIST's
//!   bound); the 100th locks the account until [`Lockout::unlock`] or a day has passed. Because
//!   of the doubling delay, one address needs about a day of attempts to get there.
//!
//! [`Lockout::check`] before verifying the password says whether to try at all, with
//! `locked_until` and the attempts remaining; [`Lockout::record_failure`] and
//! [`Lockout::record_success`] after. [`Lockout::evaluate`] is the pure decision behind them.
//!
//! # Errors
//! [`RateLimitError::Unavailable`] when the store cannot answer: treat it as locked (its
//! fallback is a denial).
//!
//! # Security
//! Answer a locked account exactly like a wrong password (same message, same timing) so the
//! lock is not an oracle for valid account names. Account names appear in audit events.

use core::net::IpAddr;
use core::time::Duration;
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::audit::{Action, AuditEvent, AuditSink, NoopSink};
use palisade_core::rate::{RateCounts, RateOp, RateStore};
use palisade_core::time::UnixTime;

use crate::RateLimitError;
use crate::decision::log_decision;
use crate::quota::{Algorithm, MAX_LOG_LIMIT, Quota};

/// The thresholds of a [`Lockout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockoutPolicy {
    /// The window of the per-pair, per-account and per-IP limits (default 15 minutes).
    pub window: Duration,
    /// Failures per (account, IP) per window (default 5).
    pub max_per_account_ip: u64,
    /// Failures per account per window, from any address (default 20).
    pub max_per_account: u64,
    /// Failures per IP per window, on any account (default 100).
    pub max_per_ip: u64,
    /// Consecutive (account, IP) failures before delays begin (default 3).
    pub delay_after: u64,
    /// The first delay, doubled with each further failure (default 1 s).
    pub base_delay: Duration,
    /// The longest delay (default 15 minutes).
    pub max_delay: Duration,
    /// Consecutive failures on one account before it locks until unlocked (default and at
    /// most 100).
    pub max_consecutive: u64,
    /// How long consecutive failures are remembered without a success (default one day).
    pub consecutive_window: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            max_per_account_ip: 5,
            max_per_account: 20,
            max_per_ip: 100,
            delay_after: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            max_consecutive: 100,
            consecutive_window: Duration::from_secs(86_400),
        }
    }
}

impl LockoutPolicy {
    fn validate(&self) -> Result<(), RateLimitError> {
        let bad = RateLimitError::InvalidQuota;
        if self.max_per_account_ip == 0 || self.max_per_account_ip >= self.max_per_account {
            return Err(bad(
                "the (account, ip) limit must be positive and below the account's",
            ));
        }
        if self.max_consecutive == 0 || self.max_consecutive > 100 {
            return Err(bad("consecutive failures are limited to between 1 and 100"));
        }
        if [self.max_per_account, self.max_per_ip]
            .iter()
            .any(|&l| l > MAX_LOG_LIMIT)
        {
            return Err(bad("an exact log is limited to 10000 entries"));
        }
        self.quota(self.window, 1)?;
        self.quota(self.consecutive_window, 1)?;
        Ok(())
    }

    fn quota(&self, period: Duration, limit: u64) -> Result<Quota, RateLimitError> {
        Quota::new(limit, period)?.with_algorithm(Algorithm::ExactLog)
    }
}

/// Why a login is refused for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockReason {
    /// The doubling delay after consecutive failures from this address.
    Delay,
    /// Too many failures on this account from this address.
    AccountAndIp,
    /// Too many failures on this account from all addresses.
    Account,
    /// Too many failures from this address on all accounts.
    Ip,
    /// Too many consecutive failures on the account: locked until unlocked.
    Consecutive,
}

/// Whether a login may be attempted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct LockoutStatus {
    /// Until when attempts are refused; `None` when they are not.
    pub locked_until: Option<UnixTime>,
    /// Why, when locked.
    pub reason: Option<LockReason>,
    /// Failures left before the next lock of any kind (delays aside).
    pub attempts_remaining: u64,
}

impl LockoutStatus {
    /// Whether attempts are refused now.
    pub const fn is_locked(&self) -> bool {
        self.locked_until.is_some()
    }
}

/// The counts [`Lockout::evaluate`] decides on, as the store returned them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LockoutCounts {
    /// Failures of (account, IP) in the window.
    pub pair: RateCounts,
    /// Failures of the account in the window.
    pub account: RateCounts,
    /// Failures of the IP in the window.
    pub ip: RateCounts,
    /// Consecutive failures of (account, IP).
    pub pair_consecutive: RateCounts,
    /// Consecutive failures of the account.
    pub account_consecutive: RateCounts,
}

/// Login lockout over a [`RateStore`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use palisade_ratelimit::MemoryRateStore;
/// use palisade_ratelimit::{Lockout, LockoutPolicy};
///
/// let lockout = Lockout::new(MemoryRateStore::new(), LockoutPolicy::default()).unwrap();
/// let ip = "203.0.113.9".parse().unwrap();
/// assert!(!lockout.check("alice", ip).await.unwrap().is_locked());
/// for _ in 0..5 {
///     let _ = lockout.record_failure("alice", ip).await.unwrap();
/// }
/// assert!(lockout.check("alice", ip).await.unwrap().is_locked());
/// // Alice from her own address is not locked out by the attacker's failures.
/// let home = "198.51.100.7".parse().unwrap();
/// assert!(!lockout.check("alice", home).await.unwrap().is_locked());
/// # });
/// ```
#[derive(Debug)]
pub struct Lockout<S> {
    store: S,
    policy: LockoutPolicy,
    sink: Arc<dyn AuditSink>,
}

enum Scope<'a> {
    Pair(&'a str, IpAddr),
    Account(&'a str),
    Ip(IpAddr),
    PairConsecutive(&'a str, IpAddr),
    AccountConsecutive(&'a str),
}

fn key(scope: &Scope<'_>) -> Vec<u8> {
    let (tag, account, ip) = match *scope {
        Scope::Pair(a, ip) => ("p", Some(a), Some(ip)),
        Scope::Account(a) => ("a", Some(a), None),
        Scope::Ip(ip) => ("i", None, Some(ip)),
        Scope::PairConsecutive(a, ip) => ("pc", Some(a), Some(ip)),
        Scope::AccountConsecutive(a) => ("ac", Some(a), None),
    };
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(b"lockout:");
    k.extend_from_slice(tag.as_bytes());
    k.push(b':');
    if let Some(a) = account {
        // The length first, so no account name can run into the address.
        k.extend_from_slice(&u32::try_from(a.len()).unwrap_or(u32::MAX).to_be_bytes());
        k.extend_from_slice(a.as_bytes());
    }
    if let Some(ip) = ip {
        k.extend_from_slice(ip.to_string().as_bytes());
    }
    k
}

impl<S: RateStore> Lockout<S> {
    /// A lockout keeping its counts in `store`.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidQuota`] when the (account, IP) limit is not below the account's,
    /// or the consecutive limit is not between 1 and 100.
    pub fn new(store: S, policy: LockoutPolicy) -> Result<Self, RateLimitError> {
        policy.validate()?;
        Ok(Self {
            store,
            policy,
            sink: Arc::new(NoopSink),
        })
    }

    /// Records locks and unlocks in `sink`.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    fn scopes<'a>(account: &'a str, ip: IpAddr) -> [(Scope<'a>, bool); 5] {
        [
            (Scope::Pair(account, ip), false),
            (Scope::Account(account), false),
            (Scope::Ip(ip), false),
            (Scope::PairConsecutive(account, ip), true),
            (Scope::AccountConsecutive(account), true),
        ]
    }

    fn quota_of(&self, scope: &Scope<'_>) -> Result<Quota, RateLimitError> {
        let p = &self.policy;
        match scope {
            Scope::Pair(..) => p.quota(p.window, p.max_per_account_ip),
            Scope::Account(_) => p.quota(p.window, p.max_per_account),
            Scope::Ip(_) => p.quota(p.window, p.max_per_ip),
            Scope::PairConsecutive(..) | Scope::AccountConsecutive(_) => {
                p.quota(p.consecutive_window, p.max_consecutive)
            }
        }
    }

    async fn apply_all(
        &self,
        account: &str,
        ip: IpAddr,
        op: RateOp,
    ) -> Result<LockoutCounts, RateLimitError> {
        let mut out: [RateCounts; 5] = Default::default();
        for ((scope, _), slot) in Self::scopes(account, ip).iter().zip(out.iter_mut()) {
            let quota = self.quota_of(scope)?;
            *slot = self
                .store
                .apply(&key(scope), quota.request(op))
                .await
                .map_err(unavailable)?;
        }
        let [pair, account, ip, pair_consecutive, account_consecutive] = out;
        Ok(LockoutCounts {
            pair,
            account,
            ip,
            pair_consecutive,
            account_consecutive,
        })
    }

    /// Whether `account` may attempt a login from `ip` now. Changes nothing.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer (treat as locked).
    pub async fn check(&self, account: &str, ip: IpAddr) -> Result<LockoutStatus, RateLimitError> {
        let counts = self.apply_all(account, ip, RateOp::Peek(1)).await?;
        let now = counts.pair.now;
        Ok(self.evaluate(&counts, now))
    }

    /// Records a failed login of `account` from `ip`, and says what follows.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer.
    pub async fn record_failure(
        &self,
        account: &str,
        ip: IpAddr,
    ) -> Result<LockoutStatus, RateLimitError> {
        let counts = self.apply_all(account, ip, RateOp::Acquire(1)).await?;
        let now = counts.pair.now;
        let status = self.evaluate(&counts, now);
        let filled = [
            &counts.pair,
            &counts.account,
            &counts.ip,
            &counts.account_consecutive,
        ]
        .iter()
        .zip([
            self.policy.max_per_account_ip,
            self.policy.max_per_account,
            self.policy.max_per_ip,
            self.policy.max_consecutive,
        ])
        .any(|(c, limit)| c.admitted && c.current == limit);
        if filled && let (Some(until), Some(reason)) = (status.locked_until, status.reason) {
            self.sink.record(
                AuditEvent::new(Action::AccountLocked, now)
                    .user_name(account)
                    .ip(ip)
                    .meta("reason", format!("{reason:?}"))
                    .meta("locked_until_ms", until.as_millis().to_string()),
            );
        }
        Ok(status)
    }

    /// Records a successful login: forgets the consecutive failures of the account and of the
    /// pair, and the pair's window. The account's and the address's windows keep counting other
    /// addresses' and accounts' failures.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer.
    pub async fn record_success(&self, account: &str, ip: IpAddr) -> Result<(), RateLimitError> {
        for scope in [
            Scope::Pair(account, ip),
            Scope::PairConsecutive(account, ip),
            Scope::AccountConsecutive(account),
        ] {
            self.clear(&scope).await?;
        }
        Ok(())
    }

    /// Unlocks `account` (an administrator's or a recovery flow's decision): forgets its window
    /// and consecutive failures, and those of (account, `ip`) when given.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer.
    pub async fn unlock(&self, account: &str, ip: Option<IpAddr>) -> Result<(), RateLimitError> {
        self.clear(&Scope::Account(account)).await?;
        self.clear(&Scope::AccountConsecutive(account)).await?;
        if let Some(ip) = ip {
            self.clear(&Scope::Pair(account, ip)).await?;
            self.clear(&Scope::PairConsecutive(account, ip)).await?;
        }
        let mut event = AuditEvent::new(
            Action::AccountUnlocked,
            palisade_core::time::Clock::now(&palisade_core::time::SystemClock),
        )
        .user_name(account);
        if let Some(ip) = ip {
            event = event.ip(ip);
        }
        self.sink.record(event);
        Ok(())
    }

    async fn clear(&self, scope: &Scope<'_>) -> Result<(), RateLimitError> {
        let quota = self.quota_of(scope)?;
        self.store
            .apply(&key(scope), quota.request(RateOp::Clear))
            .await
            .map_err(unavailable)
            .map(|_| ())
    }

    /// The pure decision: whether and until when attempts are refused at `now`, from the
    /// counts.
    pub fn evaluate(&self, counts: &LockoutCounts, now: UnixTime) -> LockoutStatus {
        let p = &self.policy;
        let mut until: Option<(UnixTime, LockReason)> = None;
        let mut consider = |t: UnixTime, reason: LockReason| {
            if t > now && until.is_none_or(|(u, _)| t > u) {
                until = Some((t, reason));
            }
        };
        let windows = [
            (
                &counts.pair,
                p.max_per_account_ip,
                p.window,
                LockReason::AccountAndIp,
            ),
            (
                &counts.account,
                p.max_per_account,
                p.window,
                LockReason::Account,
            ),
            (&counts.ip, p.max_per_ip, p.window, LockReason::Ip),
            (
                &counts.account_consecutive,
                p.max_consecutive,
                p.consecutive_window,
                LockReason::Consecutive,
            ),
        ];
        let mut remaining = u64::MAX;
        for (c, limit, period, reason) in windows {
            let n = u64::try_from(c.log.len()).unwrap_or(u64::MAX);
            remaining = remaining.min(limit.saturating_sub(n));
            if n >= limit
                && let Ok(quota) = p.quota(period, limit)
            {
                let full = RateCounts::log(now, false, c.log.clone());
                let d = log_decision(&quota, 1, &full);
                consider(
                    now.saturating_add(d.retry_after().unwrap_or(period)),
                    reason,
                );
            }
        }
        let consecutive = u64::try_from(counts.pair_consecutive.log.len()).unwrap_or(u64::MAX);
        if consecutive >= p.delay_after
            && let Some(&last) = counts.pair_consecutive.log.last()
        {
            let doublings = u32::try_from(consecutive - p.delay_after).unwrap_or(u32::MAX);
            let delay = 2u32
                .checked_pow(doublings)
                .and_then(|f| p.base_delay.checked_mul(f))
                .unwrap_or(p.max_delay)
                .min(p.max_delay);
            consider(last.saturating_add(delay), LockReason::Delay);
        }
        LockoutStatus {
            locked_until: until.map(|(u, _)| u),
            reason: until.map(|(_, r)| r),
            attempts_remaining: remaining,
        }
    }
}

fn unavailable(source: StoreError) -> RateLimitError {
    RateLimitError::Unavailable {
        source,
        fallback: crate::Decision::denied(0, Duration::ZERO, Duration::from_secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryRateStore;
    use palisade_core::audit::MemorySink;
    use palisade_core::time::{Clock, FakeClock};

    fn block_on<F: core::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delays_double_then_the_pair_locks() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let store = MemoryRateStore::with_clock(clock.clone());
        let lockout = Lockout::new(store, LockoutPolicy::default()).unwrap();
        let a = ip("203.0.113.9");
        block_on(async {
            for n in 1..=2 {
                let s = lockout.record_failure("bob", a).await.unwrap();
                assert!(!s.is_locked(), "failure {n}");
                assert_eq!(s.attempts_remaining, 5 - n);
            }
            let s = lockout.record_failure("bob", a).await.unwrap();
            assert_eq!(s.reason, Some(LockReason::Delay));
            assert_eq!(
                s.locked_until,
                Some(clock.now().saturating_add(Duration::from_secs(1)))
            );
            clock.advance(Duration::from_secs(1));
            let s = lockout.record_failure("bob", a).await.unwrap();
            assert_eq!(
                s.locked_until,
                Some(clock.now().saturating_add(Duration::from_secs(2)))
            );
            clock.advance(Duration::from_secs(2));
            let s = lockout.record_failure("bob", a).await.unwrap();
            assert_eq!(s.reason, Some(LockReason::AccountAndIp));
            assert_eq!(s.attempts_remaining, 0);
            assert!(lockout.check("bob", a).await.unwrap().is_locked());
            assert!(
                !lockout
                    .check("bob", ip("198.51.100.1"))
                    .await
                    .unwrap()
                    .is_locked()
            );
            lockout
                .record_success("bob", ip("198.51.100.1"))
                .await
                .unwrap();
            lockout.unlock("bob", Some(a)).await.unwrap();
            assert!(!lockout.check("bob", a).await.unwrap().is_locked());
        });
    }

    #[test]
    fn the_account_locks_across_addresses_and_is_audited() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let sink = Arc::new(MemorySink::new());
        let policy = LockoutPolicy {
            delay_after: 100,
            ..LockoutPolicy::default()
        };
        let lockout = Lockout::new(MemoryRateStore::with_clock(clock), policy)
            .unwrap()
            .audit(sink.clone());
        block_on(async {
            for i in 0..20u8 {
                let _ = lockout
                    .record_failure("carol", ip(&format!("192.0.2.{i}")))
                    .await
                    .unwrap();
            }
            let s = lockout.check("carol", ip("198.51.100.7")).await.unwrap();
            assert_eq!(s.reason, Some(LockReason::Account));
            lockout.unlock("carol", None).await.unwrap();
            assert!(
                !lockout
                    .check("carol", ip("198.51.100.7"))
                    .await
                    .unwrap()
                    .is_locked()
            );
        });
        let actions: Vec<_> = sink.events().into_iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            vec![Action::AccountLocked, Action::AccountUnlocked]
        );
    }

    #[test]
    fn never_more_than_100_consecutive_failures() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let lockout = Lockout::new(
            MemoryRateStore::with_clock(clock.clone()),
            LockoutPolicy::default(),
        )
        .unwrap();
        block_on(async {
            let mut failures = 0;
            // An attacker rotating addresses, waiting out every lock but the last.
            for i in 0..400u32 {
                let a = ip(&format!("10.{}.{}.1", i / 250, i % 250));
                let s = lockout.check("dave", a).await.unwrap();
                if let Some(until) = s.locked_until {
                    if s.reason == Some(LockReason::Consecutive) {
                        break;
                    }
                    clock.set(until);
                }
                let _ = lockout.record_failure("dave", a).await.unwrap();
                failures += 1;
            }
            assert_eq!(failures, 100);
            let s = lockout.check("dave", ip("10.9.9.9")).await.unwrap();
            assert_eq!(s.reason, Some(LockReason::Consecutive));
        });
    }

    #[test]
    fn the_pair_limit_must_trip_first() {
        let policy = LockoutPolicy {
            max_per_account_ip: 20,
            ..LockoutPolicy::default()
        };
        assert!(Lockout::new(MemoryRateStore::new(), policy).is_err());
        let policy = LockoutPolicy {
            max_consecutive: 101,
            ..LockoutPolicy::default()
        };
        assert!(Lockout::new(MemoryRateStore::new(), policy).is_err());
    }
}
