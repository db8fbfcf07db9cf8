//! Alerts and summaries: threshold rules over a sliding window, an alert channel, and a daily
//! count of events by action and outcome.
//!
//! An [`AlertEngine`] is an [`AuditSink`]: put it in a [`FanOut`](crate::FanOut) beside the
//! trail. Each [`ThresholdRule`] counts matching events per key (user, IP, tenant, or all)
//! over a sliding window of event time; when the count reaches the threshold it raises an
//! [`Alert`] and starts counting afresh. Alerts below the engine's severity floor are dropped;
//! the rest go to the [`AlertChannel`].
//!
//! The window arithmetic is a pure function of event timestamps (no clock is read), so it is
//! tested with fixed times. State is bounded: each rule keeps at most `max_keys` keys, evicting
//! the key seen least recently.
//!
//! # Errors and panics
//! None. A channel must not block (queue and send elsewhere) and must not panic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use palisade_core::audit::{Action, AuditEvent, AuditSink, EventId, Outcome, Severity};
use palisade_core::time::UnixTime;
use serde::Serialize;

/// What a rule counts events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupBy {
    /// The user id (or the user name if there is no id); events without either are skipped.
    User,
    /// The client IP address; events without one are skipped.
    Ip,
    /// The tenant; events without one are skipped.
    Tenant,
    /// All matching events together.
    All,
}

/// Raises an alert when `threshold` matching events for one key fall within `window`.
#[derive(Debug, Clone)]
pub struct ThresholdRule {
    name: String,
    action: Action,
    outcome: Option<Outcome>,
    group_by: GroupBy,
    threshold: u32,
    window: Duration,
    severity: Severity,
}

impl ThresholdRule {
    /// `threshold` events of `action` for one user within `window`; alert severity `High`.
    pub fn new(name: &str, action: Action, threshold: u32, window: Duration) -> Self {
        Self {
            name: name.to_owned(),
            action,
            outcome: None,
            group_by: GroupBy::User,
            threshold: threshold.max(1),
            window,
            severity: Severity::High,
        }
    }

    /// Any single event of `action` (threshold 1), over all events; alert severity `Critical`.
    pub fn any(name: &str, action: Action) -> Self {
        Self::new(name, action, 1, Duration::ZERO)
            .group_by(GroupBy::All)
            .severity(Severity::Critical)
    }

    /// Counts only events with this outcome.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// What to count by.
    #[must_use]
    pub fn group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = group_by;
        self
    }

    /// The severity of the alerts raised.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    fn key(&self, e: &AuditEvent) -> Option<String> {
        if e.action != self.action || self.outcome.is_some_and(|o| o != e.outcome) {
            return None;
        }
        match self.group_by {
            GroupBy::User => e.user_id.clone().or_else(|| e.user_name.clone()),
            GroupBy::Ip => e.ip_address.map(|ip| ip.to_string()),
            GroupBy::Tenant => e.tenant.clone(),
            GroupBy::All => Some(String::new()),
        }
    }
}

/// A raised alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// The alert's severity.
    pub severity: Severity,
    /// The counted action.
    pub action: Action,
    /// The key counted by (a user id, an IP, a tenant; empty for all).
    pub key: String,
    /// How many events fell in the window.
    pub count: u32,
    /// The first counted event's time.
    pub first_seen: UnixTime,
    /// The event that crossed the threshold.
    pub last_seen: UnixTime,
    /// That event's id, to find it in the trail.
    pub event_id: EventId,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} alert {}: {} x {} for {:?} (event {})",
            self.severity, self.rule, self.count, self.action, self.key, self.event_id
        )
    }
}

/// Where alerts go: a pager, a webhook, an email gateway. Implementations must not block.
pub trait AlertChannel: fmt::Debug + Send + Sync {
    /// Delivers one alert.
    fn send(&self, alert: &Alert);
}

/// Logs alerts as `tracing` events (target `palisade_audit::alert`; WARN up to medium, ERROR
/// above).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogChannel;

impl AlertChannel for LogChannel {
    fn send(&self, alert: &Alert) {
        if alert.severity >= Severity::High {
            tracing::error!(target: "palisade_audit::alert", rule = %alert.rule, key = %alert.key, count = alert.count, event_id = %alert.event_id, "{alert}");
        } else {
            tracing::warn!(target: "palisade_audit::alert", rule = %alert.rule, key = %alert.key, count = alert.count, event_id = %alert.event_id, "{alert}");
        }
    }
}

/// Calls a function with each alert.
pub struct CallbackChannel<F>(pub F);

impl<F> fmt::Debug for CallbackChannel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackChannel")
    }
}

impl<F: Fn(&Alert) + Send + Sync> AlertChannel for CallbackChannel<F> {
    fn send(&self, alert: &Alert) {
        (self.0)(alert);
    }
}

#[derive(Debug, Default)]
struct Window {
    times: VecDeque<UnixTime>,
    last_touch: u64,
}

/// One rule's windows by key, with the keys in the order of their last touch as of when they
/// were queued, so that a full table evicts the least recently touched key in amortised O(1):
/// a flood of new keys (a password spray from many addresses) must not make every event scan
/// the whole table under the engine's lock.
#[derive(Debug, Default)]
struct RuleWindows {
    map: HashMap<String, Window>,
    /// Every key of `map` once, with the tick it was queued at.
    order: VecDeque<(String, u64)>,
}

impl RuleWindows {
    /// Evicts the least recently touched key. A key touched since it was queued goes to the
    /// back with its new tick (each touch pays for at most one such move).
    fn evict_one(&mut self) {
        while let Some((key, queued)) = self.order.pop_front() {
            match self.map.get(&key) {
                Some(w) if w.last_touch > queued => {
                    let touched = w.last_touch;
                    self.order.push_back((key, touched));
                }
                Some(_) => {
                    self.map.remove(&key);
                    return;
                }
                None => {}
            }
        }
    }

    fn touch(&mut self, key: &str, tick: u64, max_keys: usize) -> &mut Window {
        if !self.map.contains_key(key) {
            if self.map.len() >= max_keys {
                self.evict_one();
            }
            self.order.push_back((key.to_owned(), tick));
        }
        let w = self.map.entry(key.to_owned()).or_default();
        w.last_touch = tick;
        w
    }
}

/// Evaluates threshold rules over the events it records and sends alerts to a channel.
#[derive(Debug)]
pub struct AlertEngine<C> {
    rules: Vec<ThresholdRule>,
    floor: Severity,
    channel: C,
    max_keys: usize,
    state: Mutex<(u64, Vec<RuleWindows>)>,
}

impl<C: AlertChannel> AlertEngine<C> {
    /// An engine with `rules`, sending alerts of at least `floor` to `channel`; at most 100 000
    /// keys per rule.
    pub fn new(rules: Vec<ThresholdRule>, floor: Severity, channel: C) -> Self {
        let n = rules.len();
        Self {
            rules,
            floor,
            channel,
            max_keys: 100_000,
            state: Mutex::new((0, (0..n).map(|_| RuleWindows::default()).collect())),
        }
    }

    /// Caps the keys tracked per rule.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// Counts `event` against every rule and returns the alerts it raises (all of them,
    /// whatever the floor). Does not send them.
    pub fn observe(&self, event: &AuditEvent) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tick, windows) = &mut *guard;
        *tick = tick.saturating_add(1);
        let now = event.timestamp;
        for (rule, table) in self.rules.iter().zip(windows.iter_mut()) {
            let Some(key) = rule.key(event) else { continue };
            let w = table.touch(&key, *tick, self.max_keys);
            let start = now.saturating_sub(rule.window);
            while w.times.front().is_some_and(|t| *t < start) {
                w.times.pop_front();
            }
            w.times.push_back(now);
            if w.times.len() >= rule.threshold as usize {
                let first_seen = w.times.front().copied().unwrap_or(now);
                alerts.push(Alert {
                    rule: rule.name.clone(),
                    severity: rule.severity,
                    action: rule.action.clone(),
                    key,
                    count: u32::try_from(w.times.len()).unwrap_or(u32::MAX),
                    first_seen,
                    last_seen: now,
                    event_id: event.id,
                });
                w.times.clear();
            }
        }
        alerts
    }
}

impl<C: AlertChannel> AuditSink for AlertEngine<C> {
    fn record(&self, event: AuditEvent) {
        for alert in self.observe(&event) {
            if alert.severity >= self.floor {
                self.channel.send(&alert);
            }
        }
    }
}

/// Counts of events by action and outcome over one 24-hour period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DailySummary {
    /// The period's start (inclusive).
    pub from: UnixTime,
    /// The period's end (exclusive).
    pub to: UnixTime,
    /// Events per (action name, outcome).
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// All counted events.
    pub total: u64,
}

impl DailySummary {
    /// The summary of the `events` in the 24 hours before `now` (`now - 24h` inclusive, `now`
    /// exclusive).
    pub fn over<'a>(events: impl IntoIterator<Item = &'a AuditEvent>, now: UnixTime) -> Self {
        let from = now.saturating_sub(Duration::from_secs(86_400));
        let mut s = Self {
            from,
            to: now,
            ..Self::default()
        };
        for e in events {
            s.add(e);
        }
        s
    }

    /// Counts `event` if it falls in the period.
    pub fn add(&mut self, event: &AuditEvent) {
        if event.timestamp < self.from || event.timestamp >= self.to {
            return;
        }
        let outcome = match event.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        };
        let n = self
            .counts
            .entry(event.action.as_str().to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default();
        *n = n.saturating_add(1);
        self.total = self.total.saturating_add(1);
    }

    /// How many events of `action` with `outcome` were counted.
    pub fn count(&self, action: &Action, outcome: Outcome) -> u64 {
        let o = match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        };
        self.counts
            .get(action.as_str())
            .and_then(|m| m.get(o))
            .copied()
            .unwrap_or(0)
    }
}

/// Keeps per-UTC-day summaries of the events it records (the last 8 days).
#[derive(Debug, Default)]
pub struct SummarySink {
    days: Mutex<BTreeMap<u64, DailySummary>>,
}

impl SummarySink {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The summary of the UTC day containing `day` (empty if nothing was recorded).
    pub fn day(&self, day: UnixTime) -> DailySummary {
        let index = day.as_secs() / 86_400;
        let days = self.days.lock().unwrap_or_else(PoisonError::into_inner);
        days.get(&index)
            .cloned()
            .unwrap_or_else(|| day_summary(index))
    }
}

fn day_summary(index: u64) -> DailySummary {
    let from = UnixTime::from_secs(index.saturating_mul(86_400));
    DailySummary {
        from,
        to: from.saturating_add(Duration::from_secs(86_400)),
        ..DailySummary::default()
    }
}

impl AuditSink for SummarySink {
    fn record(&self, event: AuditEvent) {
        let index = event.timestamp.as_secs() / 86_400;
        let mut days = self.days.lock().unwrap_or_else(PoisonError::into_inner);
        days.entry(index)
            .or_insert_with(|| day_summary(index))
            .add(&event);
        while days.len() > 8 {
            days.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn failed(user: &str, secs: u64) -> AuditEvent {
        AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(secs)).user_id(user)
    }

    #[test]
    fn ten_failures_in_five_minutes() {
        let rule = ThresholdRule::new(
            "brute-force",
            Action::LoginFailed,
            10,
            Duration::from_secs(300),
        );
        let engine = AlertEngine::new(vec![rule], Severity::Low, LogChannel);
        // 9 failures spread over 10 minutes: never 10 in 5 minutes.
        for i in 0..9 {
            assert!(engine.observe(&failed("ann", 1000 + i * 70)).is_empty());
        }
        let engine = AlertEngine::new(
            vec![ThresholdRule::new(
                "brute-force",
                Action::LoginFailed,
                10,
                Duration::from_secs(300),
            )],
            Severity::Low,
            LogChannel,
        );
        for i in 0..9 {
            assert!(engine.observe(&failed("ann", 1000 + i * 30)).is_empty());
            assert!(engine.observe(&failed("bob", 1000 + i * 30)).is_empty());
        }
        let alerts = engine.observe(&failed("ann", 1000 + 9 * 30));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key, "ann");
        assert_eq!(alerts[0].count, 10);
        assert_eq!(alerts[0].first_seen, UnixTime::from_secs(1000));
        // Counting restarts after an alert.
        assert!(engine.observe(&failed("ann", 1300)).is_empty());
    }

    #[test]
    fn window_slides() {
        let engine = AlertEngine::new(
            vec![ThresholdRule::new(
                "r",
                Action::LoginFailed,
                3,
                Duration::from_secs(60),
            )],
            Severity::Low,
            LogChannel,
        );
        assert!(engine.observe(&failed("u", 0)).is_empty());
        assert!(engine.observe(&failed("u", 50)).is_empty());
        assert!(engine.observe(&failed("u", 100)).is_empty()); // t=0 fell out
        assert_eq!(engine.observe(&failed("u", 105)).len(), 1);
    }

    #[test]
    fn any_pin_mismatch_and_floor() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        let engine = AlertEngine::new(
            vec![
                ThresholdRule::any("pin", Action::PinMismatch),
                ThresholdRule::new("low", Action::LoginFailed, 1, Duration::from_secs(1))
                    .severity(Severity::Low),
            ],
            Severity::High,
            CallbackChannel(move |a: &Alert| g.lock().unwrap().push(a.clone())),
        );
        engine.record(AuditEvent::new(Action::PinMismatch, UnixTime::from_secs(5)));
        engine.record(failed("u", 5));
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rule, "pin");
        assert_eq!(got[0].severity, Severity::Critical);
    }

    /// Failed logins per user, `threshold` in a minute, at most two keys.
    fn capped_engine(threshold: u32) -> AlertEngine<LogChannel> {
        let rule = ThresholdRule::new("r", Action::LoginFailed, threshold, Duration::from_secs(60));
        AlertEngine::new(vec![rule], Severity::Low, LogChannel).max_keys(2)
    }

    #[test]
    fn keys_are_bounded() {
        let engine = capped_engine(2);
        assert!(engine.observe(&failed("a", 1)).is_empty());
        assert!(engine.observe(&failed("b", 1)).is_empty());
        assert!(engine.observe(&failed("c", 1)).is_empty()); // evicts a
        assert!(engine.observe(&failed("a", 2)).is_empty());
        assert_eq!(engine.observe(&failed("c", 2)).len(), 1);
    }

    #[test]
    fn eviction_spares_recently_touched_keys() {
        let engine = capped_engine(3);
        assert!(engine.observe(&failed("a", 1)).is_empty());
        assert!(engine.observe(&failed("b", 1)).is_empty());
        assert!(engine.observe(&failed("a", 2)).is_empty()); // a is now the most recent
        assert!(engine.observe(&failed("c", 2)).is_empty()); // evicts b, keeps a
        assert_eq!(engine.observe(&failed("a", 3)).len(), 1);
        assert!(engine.observe(&failed("b", 3)).is_empty()); // b starts again from one
        assert!(engine.observe(&failed("b", 4)).is_empty());
        // A flood of distinct keys keeps the table at its cap.
        for i in 0..1_000 {
            let _ = engine.observe(&failed(&format!("spray-{i}"), 5));
        }
        let guard = engine.state.lock().unwrap();
        assert_eq!(guard.1[0].map.len(), 2);
        assert_eq!(guard.1[0].order.len(), 2);
    }

    #[test]
    fn daily_summary_counts_last_24h() {
        let now = UnixTime::from_secs(200_000);
        let events = [
            failed("a", 200_000 - 10),
            failed("a", 200_000 - 90_000), // too old
            AuditEvent::new(Action::LoginSucceeded, UnixTime::from_secs(199_000)),
            AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(199_500))
                .outcome(Outcome::Unknown),
        ];
        let s = DailySummary::over(&events, now);
        assert_eq!(s.total, 3);
        assert_eq!(s.count(&Action::LoginFailed, Outcome::Failure), 1);
        assert_eq!(s.count(&Action::LoginFailed, Outcome::Unknown), 1);
        assert_eq!(s.count(&Action::LoginSucceeded, Outcome::Success), 1);
        let sink = SummarySink::new();
        for e in events {
            sink.record(e);
        }
        assert_eq!(sink.day(UnixTime::from_secs(172_800)).total, 3);
        assert_eq!(sink.day(UnixTime::from_secs(0)).total, 0);
    }
}
