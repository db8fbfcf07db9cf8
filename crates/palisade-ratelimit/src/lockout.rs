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
//! [`Lockout::begin`] reserves the attempt *before* the password is verified: it counts it as a
//! failure in every window at once (each window's store operation is atomic under its limit),
//! and answers [`Begin::Locked`] when any window, or the doubling delay, refuses it. The
//! [`Attempt`] it returns otherwise is settled after verification: [`Attempt::succeeded`] takes
//! the reservation back and forgets the consecutive failures, [`Attempt::failed`] keeps it and
//! says what follows; an attempt dropped unsettled (a panic, a cancelled request, a forgotten
//! branch) stays counted as a failure. So N concurrent guesses reach the verifier at most as many
//! times as the tightest window allows: a check-then-record API lets all N through.
//! [`Lockout::check`] only reads, for display. [`Lockout::evaluate`] is the pure decision.
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
use palisade_core::time::{Clock, SystemClock, UnixTime};
use serde::{Deserialize, Serialize};

use crate::RateLimitError;
use crate::decision::log_decision;
use crate::quota::{Algorithm, MAX_LOG_LIMIT, Quota};

/// The thresholds of a [`Lockout`].
///
/// Serialisable: durations are whole seconds (`window = 900`), every field has its default, and
/// [`Lockout::new`] validates what was read.
///
/// ```
/// use palisade_ratelimit::LockoutPolicy;
///
/// let policy: LockoutPolicy = toml::from_str("max_per_account_ip = 3\nwindow = 600").unwrap();
/// assert_eq!(policy.max_per_account_ip, 3);
/// assert_eq!(policy.window.as_secs(), 600);
/// assert_eq!(policy.max_per_account, LockoutPolicy::default().max_per_account);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LockoutPolicy {
    /// The window of the per-pair, per-account and per-IP limits (default 15 minutes).
    #[serde(with = "secs")]
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
    #[serde(with = "secs")]
    pub base_delay: Duration,
    /// The longest delay (default 15 minutes).
    #[serde(with = "secs")]
    pub max_delay: Duration,
    /// Consecutive failures on one account before it locks until unlocked (default and at
    /// most 100).
    pub max_consecutive: u64,
    /// How long consecutive failures are remembered without a success (default one day).
    #[serde(with = "secs")]
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

/// Durations as whole seconds.
mod secs {
    use core::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
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

    /// How long to wait from `now` before the next attempt; `None` when not locked.
    pub fn retry_after(&self, now: UnixTime) -> Option<Duration> {
        self.locked_until
            .map(|until| until.saturating_duration_since(now))
    }
}

/// What [`Lockout::begin`] answers.
#[derive(Debug)]
#[must_use = "an attempt is settled with `succeeded` or `failed`"]
pub enum Begin<'a, S: RateStore> {
    /// Verify the password, then settle the attempt.
    Proceed(Attempt<'a, S>),
    /// Refused: do not verify the password. Answer exactly as for a wrong password.
    Locked(LockoutStatus),
}

/// A login attempt reserved by [`Lockout::begin`]: already counted as a failure. Only `begin`
/// makes one, so a login cannot reach the verifier without a reservation.
///
/// Dropped without [`succeeded`](Self::succeeded) or [`failed`](Self::failed), it stays a
/// failure (and is audited like one).
#[derive(Debug)]
#[must_use = "an attempt is settled with `succeeded` or `failed`; dropped, it counts as failed"]
pub struct Attempt<'a, S: RateStore> {
    lockout: &'a Lockout<S>,
    account: String,
    ip: IpAddr,
    /// The counts with this attempt's failure in them (boxed: five logs' worth of counts would
    /// make every [`Begin`] large).
    counts: Box<LockoutCounts>,
    settled: bool,
}

impl<S: RateStore> Attempt<'_, S> {
    /// The password was right: takes the reservation back from the account's and the address's
    /// windows, and forgets the pair's window and the consecutive failures of the pair and the
    /// account.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer; the attempt then stays
    /// counted as a failure (the safe side).
    pub async fn succeeded(mut self) -> Result<(), RateLimitError> {
        self.settled = true;
        let (account, ip) = (self.account.as_str(), self.ip);
        self.lockout
            .apply_all(account, ip, |scope| match scope {
                Scope::Account(_) | Scope::Ip(_) => RateOp::Refund(1),
                _ => RateOp::Clear,
            })
            .await
            .map(|_| ())
    }

    /// The password was wrong: the reservation stays a failure. Says what follows (audited when
    /// this failure locks a window).
    pub fn failed(mut self) -> LockoutStatus {
        self.settled = true;
        self.lockout
            .failure_status(&self.account, self.ip, &self.counts)
    }
}

impl<S: RateStore> Drop for Attempt<'_, S> {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self
                .lockout
                .failure_status(&self.account, self.ip, &self.counts);
        }
    }
}

/// The counts [`Lockout::evaluate`] decides on, as the store returned them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

impl From<[RateCounts; 5]> for LockoutCounts {
    fn from([pair, account, ip, pair_consecutive, account_consecutive]: [RateCounts; 5]) -> Self {
        Self {
            pair,
            account,
            ip,
            pair_consecutive,
            account_consecutive,
        }
    }
}

impl LockoutCounts {
    /// Whether the batch that returned these counts was admitted.
    fn all_admitted(&self) -> bool {
        [
            &self.pair,
            &self.account,
            &self.ip,
            &self.pair_consecutive,
            &self.account_consecutive,
        ]
        .iter()
        .all(|c| c.admitted)
    }

    /// The counts without each log's newest entry: the state a reservation found.
    fn without_newest(&self) -> Self {
        let drop_newest = |c: &RateCounts| {
            let kept = c.log.len().saturating_sub(1);
            RateCounts::log(c.now, true, c.log.iter().take(kept).copied().collect())
        };
        Self {
            pair: drop_newest(&self.pair),
            account: drop_newest(&self.account),
            ip: drop_newest(&self.ip),
            pair_consecutive: drop_newest(&self.pair_consecutive),
            account_consecutive: drop_newest(&self.account_consecutive),
        }
    }
}

/// Login lockout over a [`RateStore`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use palisade_ratelimit::MemoryRateStore;
/// use palisade_ratelimit::{Lockout, LockoutPolicy};
///
/// use palisade_ratelimit::lockout::Begin;
///
/// // No doubling delay in this example: the window's 5 failures lock.
/// let policy: LockoutPolicy = toml::from_str("delay_after = 10").unwrap();
/// let lockout = Lockout::new(MemoryRateStore::new(), policy).unwrap();
/// let ip = "203.0.113.9".parse().unwrap();
/// for _ in 0..5 {
///     let Begin::Proceed(attempt) = lockout.begin("alice", ip).await.unwrap() else {
///         panic!("not locked yet");
///     };
///     // ... the password is verified here, and is wrong:
///     let _ = attempt.failed();
/// }
/// // The sixth guess does not reach the verifier.
/// assert!(matches!(lockout.begin("alice", ip).await.unwrap(), Begin::Locked(_)));
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
    clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads `clock` where the store gives no time (the audit event of an unlock). Decisions
    /// use the store's time, which a memory store reads from its own clock and Redis from the
    /// server's.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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

    /// Applies `op` to every window of (`account`, `ip`) in one batch of the store
    /// ([`RateStore::apply_all`]: one round trip on one Redis node).
    async fn apply_all(
        &self,
        account: &str,
        ip: IpAddr,
        op: impl Fn(&Scope<'_>) -> RateOp,
    ) -> Result<LockoutCounts, RateLimitError> {
        let scopes = Self::scopes(account, ip);
        let keys = scopes.each_ref().map(|(scope, _)| key(scope));
        let mut batch = Vec::with_capacity(scopes.len());
        for ((scope, _), key) in scopes.iter().zip(&keys) {
            batch.push((key.as_slice(), self.quota_of(scope)?.request(op(scope))));
        }
        let out = self.store.apply_all(&batch).await.map_err(unavailable)?;
        let out: [RateCounts; 5] = out
            .try_into()
            .map_err(|_| unavailable(StoreError::unavailable(ShortBatch)))?;
        Ok(LockoutCounts::from(out))
    }

    /// Reserves a login attempt of `account` from `ip`, before its password is verified: counts
    /// it as a failure in every window at once, only if each has room, and refuses it
    /// ([`Begin::Locked`], nothing counted) when a window is full or the doubling delay has not
    /// passed. Verify the password only on [`Begin::Proceed`], then settle the [`Attempt`].
    ///
    /// One batch of the store: one round trip on one Redis node, with a second (the refund)
    /// only when the doubling delay refuses an attempt the windows had room for.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer (treat as locked).
    pub async fn begin(&self, account: &str, ip: IpAddr) -> Result<Begin<'_, S>, RateLimitError> {
        let counts = self.apply_all(account, ip, |_| RateOp::Acquire(1)).await?;
        let now = counts.pair.now;
        if !counts.all_admitted() {
            // Refused as a whole, so the counts are what the windows hold, without this one.
            return Ok(Begin::Locked(self.evaluate(&counts, now)));
        }
        // Every window had room; the delay is judged on the failures before this one.
        let before = self.evaluate(&counts.without_newest(), now);
        if before.is_locked() {
            // A failed refund leaves a failure counted: the safe side, not worth an error.
            let _ = self.apply_all(account, ip, |_| RateOp::Refund(1)).await;
            return Ok(Begin::Locked(before));
        }
        Ok(Begin::Proceed(Attempt {
            lockout: self,
            account: account.to_owned(),
            ip,
            counts: Box::new(counts),
            settled: false,
        }))
    }

    /// Whether `account` may attempt a login from `ip` now, for display (a form that shows the
    /// attempts left). Changes nothing, and reserves nothing: guard the verifier with
    /// [`begin`](Self::begin).
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the store cannot answer (treat as locked).
    pub async fn check(&self, account: &str, ip: IpAddr) -> Result<LockoutStatus, RateLimitError> {
        let counts = self.apply_all(account, ip, |_| RateOp::Peek(1)).await?;
        let now = counts.pair.now;
        Ok(self.evaluate(&counts, now))
    }

    /// The status after a failure already counted in `counts`; audits the lock it causes.
    fn failure_status(&self, account: &str, ip: IpAddr, counts: &LockoutCounts) -> LockoutStatus {
        let now = counts.pair.now;
        let status = self.evaluate(counts, now);
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
        status
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
        let mut event =
            AuditEvent::new(Action::AccountUnlocked, self.clock.now()).user_name(account);
        if let Some(ip) = ip {
            event = event.ip(ip);
        }
        self.sink.record(event);
        Ok(())
    }

    async fn clear(&self, scope: &Scope<'_>) -> Result<(), RateLimitError> {
        self.settle(scope, RateOp::Clear).await
    }

    async fn settle(&self, scope: &Scope<'_>, op: RateOp) -> Result<(), RateLimitError> {
        let quota = self.quota_of(scope)?;
        self.store
            .apply(&key(scope), quota.request(op))
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

/// A store answered a batch with fewer answers than requests.
#[derive(Debug, thiserror::Error)]
#[error("the store answered a batch short")]
struct ShortBatch;

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

    /// A guess that reaches the verifier and is wrong.
    async fn fail<S: RateStore>(l: &Lockout<S>, account: &str, ip: IpAddr) -> LockoutStatus {
        match l.begin(account, ip).await.unwrap() {
            Begin::Proceed(attempt) => attempt.failed(),
            Begin::Locked(s) => panic!("locked: {s:?}"),
        }
    }

    #[test]
    fn delays_double_then_the_pair_locks() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let store = MemoryRateStore::with_clock(clock.clone());
        let lockout = Lockout::new(store, LockoutPolicy::default()).unwrap();
        let a = ip("203.0.113.9");
        block_on(async {
            for n in 1..=2 {
                let s = fail(&lockout, "bob", a).await;
                assert!(!s.is_locked(), "failure {n}");
                assert_eq!(s.attempts_remaining, 5 - n);
            }
            let s = fail(&lockout, "bob", a).await;
            assert_eq!(s.reason, Some(LockReason::Delay));
            assert_eq!(
                s.locked_until,
                Some(clock.now().saturating_add(Duration::from_secs(1)))
            );
            clock.advance(Duration::from_secs(1));
            let s = fail(&lockout, "bob", a).await;
            assert_eq!(
                s.locked_until,
                Some(clock.now().saturating_add(Duration::from_secs(2)))
            );
            clock.advance(Duration::from_secs(2));
            let s = fail(&lockout, "bob", a).await;
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
            let Begin::Proceed(attempt) = lockout.begin("bob", ip("198.51.100.1")).await.unwrap()
            else {
                panic!("another address is not locked out");
            };
            attempt.succeeded().await.unwrap();
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
                let _ = fail(&lockout, "carol", ip(&format!("192.0.2.{i}"))).await;
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
                let _ = fail(&lockout, "dave", a).await;
                failures += 1;
            }
            assert_eq!(failures, 100);
            let s = lockout.check("dave", ip("10.9.9.9")).await.unwrap();
            assert_eq!(s.reason, Some(LockReason::Consecutive));
        });
    }

    #[test]
    fn a_success_gives_its_reservation_back_and_a_dropped_attempt_counts() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let lockout = Lockout::new(
            MemoryRateStore::with_clock(clock.clone()),
            LockoutPolicy::default(),
        )
        .unwrap();
        let a = ip("203.0.113.9");
        block_on(async {
            for _ in 0..30 {
                let Begin::Proceed(attempt) = lockout.begin("erin", a).await.unwrap() else {
                    panic!("successes never lock");
                };
                attempt.succeeded().await.unwrap();
            }
            assert_eq!(
                lockout.check("erin", a).await.unwrap().attempts_remaining,
                5
            );
            for _ in 0..2 {
                let Begin::Proceed(attempt) = lockout.begin("erin", a).await.unwrap() else {
                    panic!("not locked yet");
                };
                drop(attempt);
            }
            let s = lockout.check("erin", a).await.unwrap();
            assert_eq!(s.attempts_remaining, 3, "2 dropped attempts are 2 failures");
            let s = fail(&lockout, "erin", a).await;
            assert_eq!(s.reason, Some(LockReason::Delay));
            assert_eq!(s.retry_after(clock.now()), Some(Duration::from_secs(1)));
            // Within the delay, the next guess is refused without reaching the verifier.
            let Begin::Locked(s) = lockout.begin("erin", a).await.unwrap() else {
                panic!("the delay holds");
            };
            assert_eq!(s.reason, Some(LockReason::Delay));
            assert_eq!(
                lockout.check("erin", a).await.unwrap().attempts_remaining,
                2
            );
        });
    }

    #[test]
    fn the_policy_round_trips_through_toml() {
        let policy = LockoutPolicy {
            max_per_account_ip: 3,
            window: Duration::from_secs(600),
            ..LockoutPolicy::default()
        };
        let text = toml::to_string(&policy).unwrap();
        assert_eq!(toml::from_str::<LockoutPolicy>(&text).unwrap(), policy);
        assert!(toml::from_str::<LockoutPolicy>("max_per_acount_ip = 3").is_err());
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
