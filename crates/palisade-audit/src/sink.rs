//! Composable sinks: fan-out, severity and predicate filters, and the `tracing` sink.
//!
//! The I/O sinks live in [`file`](crate::file) and (feature `postgres`) `postgres`; the
//! in-memory sink is core's [`MemorySink`](crate::MemorySink). All of them implement
//! [`AuditSink`], so they nest: a [`FanOut`] of a [`SeverityFilter`] over a
//! [`JsonlSink`](crate::file::JsonlSink) and a [`TracingSink`], say.
//!
//! # Errors and panics
//! `record` never fails and never panics; I/O sinks report trouble through their
//! [`SinkStats`].

use std::sync::Arc;

use palisade_core::audit::{AuditEvent, AuditSink, Severity};

use crate::redact::Redactor;

/// What a buffered sink does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// `record` waits for room (backpressure): no event is lost, but a caller can stall while
    /// the backend is down and the queue is full. The default: an audit trail must be complete.
    #[default]
    Block,
    /// `record` drops the event and counts it in [`SinkStats::dropped`]: the caller never
    /// stalls, at the price of gaps.
    DropNewest,
}

/// Counters of a buffered sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Events accepted by `record`.
    pub enqueued: u64,
    /// Events durably written.
    pub written: u64,
    /// Events accepted but not yet written.
    pub pending: u64,
    /// Events accepted and never to be written: the sink gave up on an unwritable trail at
    /// shutdown.
    pub lost: u64,
    /// Events dropped (queue full under [`Overflow::DropNewest`], or sink shut down).
    pub dropped: u64,
    /// Times `record` had to wait for room.
    pub blocked: u64,
    /// Failed write attempts (each is retried).
    pub write_failures: u64,
    /// The last write error, cleared once what failed has been written.
    pub last_error: Option<String>,
}

/// Sends every event to several sinks.
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl FanOut {
    /// No sinks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds a shared sink.
    #[must_use]
    pub fn with_shared(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sinks.push(sink);
        self
    }
}

impl AuditSink for FanOut {
    fn record(&self, event: AuditEvent) {
        if let Some((last, rest)) = self.sinks.split_last() {
            for s in rest {
                s.record(event.clone());
            }
            last.record(event);
        }
    }
}

/// Passes on events of at least a given severity.
#[derive(Debug, Clone)]
pub struct SeverityFilter<S> {
    min: Severity,
    inner: S,
}

impl<S: AuditSink> SeverityFilter<S> {
    /// Passes events of severity `min` or higher to `inner`.
    pub fn new(min: Severity, inner: S) -> Self {
        Self { min, inner }
    }
}

impl<S: AuditSink> AuditSink for SeverityFilter<S> {
    fn record(&self, event: AuditEvent) {
        if event.severity >= self.min {
            self.inner.record(event);
        }
    }
}

/// Passes on events for which a predicate holds.
pub struct Filter<S, F> {
    predicate: F,
    inner: S,
}

impl<S: std::fmt::Debug, F> std::fmt::Debug for Filter<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: AuditSink, F: Fn(&AuditEvent) -> bool + Send + Sync> Filter<S, F> {
    /// Passes events for which `predicate` returns true to `inner`.
    pub fn new(predicate: F, inner: S) -> Self {
        Self { predicate, inner }
    }
}

impl<S: AuditSink, F: Fn(&AuditEvent) -> bool + Send + Sync> AuditSink for Filter<S, F> {
    fn record(&self, event: AuditEvent) {
        if (self.predicate)(&event) {
            self.inner.record(event);
        }
    }
}

/// Emits each event as a structured `tracing` event (target `palisade_audit`, message
/// `audit event`), after redaction.
///
/// Levels: informational and low at INFO, medium at WARN, high and critical at ERROR. Fields:
/// `event_id`, `action`, `severity`, `outcome`, `user_id`, `user_name`, `ip`, `resource`,
/// `record_id`, `user_agent`, `device_fingerprint`, `correlation_id`, `tenant`, and `metadata`
/// as a JSON object string. The subscriber decides where it goes; nothing here blocks unless
/// the subscriber does.
#[derive(Debug, Clone, Default)]
pub struct TracingSink {
    redactor: Redactor,
}

impl TracingSink {
    /// A tracing sink with the default [`Redactor`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracing sink with `redactor`.
    pub fn with_redactor(redactor: Redactor) -> Self {
        Self { redactor }
    }
}

macro_rules! emit {
    ($level:expr, $e:ident, $ip:ident, $meta:ident) => {
        tracing::event!(
            target: "palisade_audit",
            $level,
            event_id = %$e.id,
            action = $e.action.as_str(),
            severity = ?$e.severity,
            outcome = ?$e.outcome,
            user_id = $e.user_id.as_deref(),
            user_name = $e.user_name.as_deref(),
            ip = $ip.as_deref(),
            resource = $e.resource.as_deref(),
            record_id = $e.record_id.as_deref(),
            user_agent = $e.user_agent.as_deref(),
            device_fingerprint = $e.device_fingerprint.as_deref(),
            correlation_id = $e.correlation_id.as_deref(),
            tenant = $e.tenant.as_deref(),
            metadata = $meta.as_str(),
            "audit event"
        )
    };
}

impl AuditSink for TracingSink {
    fn record(&self, mut event: AuditEvent) {
        self.redactor.redact(&mut event);
        let e = &event;
        let ip = e.ip_address.map(|ip| ip.to_string());
        let meta = serde_json::to_string(&e.metadata).unwrap_or_default();
        match e.severity {
            Severity::Informational | Severity::Low => emit!(tracing::Level::INFO, e, ip, meta),
            Severity::Medium => emit!(tracing::Level::WARN, e, ip, meta),
            Severity::High | Severity::Critical => emit!(tracing::Level::ERROR, e, ip, meta),
        }
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::audit::{Action, MemorySink};
    use palisade_core::time::UnixTime;

    use super::*;

    #[test]
    fn fan_out_and_filters() {
        let all = MemorySink::new();
        let high = MemorySink::new();
        let logins = MemorySink::new();
        let fan = FanOut::new()
            .with(all.clone())
            .with(SeverityFilter::new(Severity::High, high.clone()))
            .with(Filter::new(
                |e: &AuditEvent| e.action == Action::LoginFailed,
                logins.clone(),
            ));
        fan.record(AuditEvent::new(Action::LoginFailed, UnixTime::EPOCH));
        fan.record(AuditEvent::new(Action::PinMismatch, UnixTime::EPOCH));
        assert_eq!(all.len(), 2);
        assert_eq!(high.len(), 1);
        assert_eq!(high.events()[0].action, Action::PinMismatch);
        assert_eq!(logins.len(), 1);
        FanOut::new().record(AuditEvent::new(Action::LoginFailed, UnixTime::EPOCH));
    }
}
