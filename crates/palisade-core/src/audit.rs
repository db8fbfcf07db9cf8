//! The audit seam: the [`AuditEvent`] every crate emits and the [`AuditSink`] that takes it.
//!
//! The event type lives here, not in `palisade-audit`, so that a domain crate can record events
//! without compiling any sink, serializer or database client. `palisade-audit` adds redaction,
//! the hash chain, file and PostgreSQL sinks, SIEM mappings and alerts on top of these types.
//!
//! # Security
//! Components never put secrets (keys, seeds, codes, passwords, tokens) into an event: not in a
//! field, not in metadata. Sinks in `palisade-audit` also mask metadata under sensitive key names,
//! as a second line of defence.

use core::fmt;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::random::{SecureRandom, SystemRandom};
use crate::time::UnixTime;

/// The version of the [`AuditEvent`] layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u16 = 1;

/// What happened. The standard vocabulary, with [`Action::Custom`] for an application's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed.
    LoginFailed,
    /// An account was locked after repeated failures.
    AccountLocked,
    /// An account was unlocked.
    AccountUnlocked,
    /// An MFA enrollment was started (not yet confirmed).
    MfaEnrollmentStarted,
    /// MFA was enrolled (confirmed by a first valid code).
    MfaEnrolled,
    /// MFA was removed.
    MfaRemoved,
    /// An MFA code was accepted.
    MfaCodeAccepted,
    /// An MFA code was rejected.
    MfaCodeRejected,
    /// An MFA code was presented again after it had been used.
    MfaCodeReplayed,
    /// A recovery code was used.
    RecoveryCodeUsed,
    /// The recovery codes were regenerated.
    RecoveryCodesRegenerated,
    /// A rate limit was exceeded.
    RateLimitExceeded,
    /// A key was created.
    KeyCreated,
    /// A key was rotated (a new key became active).
    KeyRotated,
    /// A key was retired.
    KeyRetired,
    /// A decryption failed.
    DecryptionFailed,
    /// A certificate chain did not match its pins.
    PinMismatch,
    /// A pin set past its expiry was used (and not enforced).
    PinSetExpired,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was rotated.
    ApiKeyRotated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// An API key was used.
    ApiKeyUsed,
    /// A refresh token was presented again after it had been used.
    TokenReuseDetected,
    /// An OAuth state or nonce was rejected (expired, reused or tampered with).
    OAuthStateRejected,
    /// An application-defined action, named in `snake_case` by convention.
    Custom(String),
}

impl Action {
    /// Every standard action, for mappings and tests.
    pub const STANDARD: [Self; 25] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::AccountUnlocked,
        Self::MfaEnrollmentStarted,
        Self::MfaEnrolled,
        Self::MfaRemoved,
        Self::MfaCodeAccepted,
        Self::MfaCodeRejected,
        Self::MfaCodeReplayed,
        Self::RecoveryCodeUsed,
        Self::RecoveryCodesRegenerated,
        Self::RateLimitExceeded,
        Self::KeyCreated,
        Self::KeyRotated,
        Self::KeyRetired,
        Self::DecryptionFailed,
        Self::PinMismatch,
        Self::PinSetExpired,
        Self::ApiKeyCreated,
        Self::ApiKeyRotated,
        Self::ApiKeyRevoked,
        Self::ApiKeyUsed,
        Self::TokenReuseDetected,
        Self::OAuthStateRejected,
    ];

    /// The action's stable name, as serialized: `login_failed`, `mfa_code_replayed`, ...
    pub fn as_str(&self) -> &str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::AccountUnlocked => "account_unlocked",
            Self::MfaEnrollmentStarted => "mfa_enrollment_started",
            Self::MfaEnrolled => "mfa_enrolled",
            Self::MfaRemoved => "mfa_removed",
            Self::MfaCodeAccepted => "mfa_code_accepted",
            Self::MfaCodeRejected => "mfa_code_rejected",
            Self::MfaCodeReplayed => "mfa_code_replayed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RateLimitExceeded => "rate_limit_exceeded",
            Self::KeyCreated => "key_created",
            Self::KeyRotated => "key_rotated",
            Self::KeyRetired => "key_retired",
            Self::DecryptionFailed => "decryption_failed",
            Self::PinMismatch => "pin_mismatch",
            Self::PinSetExpired => "pin_set_expired",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRotated => "api_key_rotated",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::ApiKeyUsed => "api_key_used",
            Self::TokenReuseDetected => "token_reuse_detected",
            Self::OAuthStateRejected => "oauth_state_rejected",
            Self::Custom(name) => name,
        }
    }

    /// Reads a name written by [`Action::as_str`]; an unknown name is a [`Action::Custom`].
    pub fn from_name(name: &str) -> Self {
        Self::STANDARD
            .iter()
            .find(|a| a.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Self::Custom(name.to_owned()))
    }

    /// The severity an event of this action gets unless the emitter says otherwise.
    pub fn default_severity(&self) -> Severity {
        match self {
            Self::LoginSucceeded
            | Self::MfaCodeAccepted
            | Self::ApiKeyUsed
            | Self::MfaEnrollmentStarted
            | Self::Custom(_) => Severity::Informational,
            Self::LoginFailed
            | Self::MfaCodeRejected
            | Self::RateLimitExceeded
            | Self::OAuthStateRejected
            | Self::AccountUnlocked
            | Self::MfaEnrolled
            | Self::KeyCreated
            | Self::KeyRotated
            | Self::KeyRetired
            | Self::ApiKeyCreated
            | Self::ApiKeyRotated
            | Self::ApiKeyRevoked => Severity::Low,
            Self::AccountLocked
            | Self::RecoveryCodeUsed
            | Self::RecoveryCodesRegenerated
            | Self::MfaRemoved
            | Self::PinSetExpired => Severity::Medium,
            Self::MfaCodeReplayed | Self::DecryptionFailed => Severity::High,
            Self::PinMismatch | Self::TokenReuseDetected => Severity::Critical,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

/// How much an event matters, in the five levels SIEMs share (OCSF severity 1 to 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Routine.
    Informational,
    /// Worth keeping.
    Low,
    /// Worth a look.
    Medium,
    /// Worth a look soon.
    High,
    /// Worth waking someone.
    Critical,
}

/// Whether the action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed or was refused.
    Failure,
    /// Not known, or not applicable.
    Unknown,
}

/// A UUIDv7 event id: time-ordered, unique without coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(uuid::Uuid);

impl EventId {
    /// A new id for an event at `at`, its random part drawn from `rng`.
    pub fn new(at: UnixTime, rng: &(impl SecureRandom + ?Sized)) -> Self {
        let mut random = [0u8; 10];
        // A failed draw leaves zeros: the millisecond timestamp still orders the id, and the
        // chain and sequence number, not the id, are what make an audit trail trustworthy.
        let _ = rng.fill(&mut random);
        Self(uuid::Builder::from_unix_timestamp_millis(at.as_millis(), &random).into_uuid())
    }

    /// The id as a [`uuid::Uuid`].
    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// One security event.
///
/// Build one with [`AuditEvent::new`] and the chained setters:
///
/// ```
/// use palisade_core::audit::{Action, AuditEvent, AuditSink, MemorySink, Outcome, Severity};
/// use palisade_core::time::UnixTime;
///
/// let sink = MemorySink::new();
/// sink.record(
///     AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000))
///         .user_id("u-42")
///         .ip("203.0.113.9".parse().unwrap())
///         .meta("reason", "bad password"),
/// );
/// let events = sink.events();
/// assert_eq!(events[0].outcome, Outcome::Failure);
/// assert_eq!(events[0].severity, Severity::Low);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// [`SCHEMA_VERSION`] when written.
    pub schema_version: u16,
    /// Unique, time-ordered id.
    pub id: EventId,
    /// When it happened.
    pub timestamp: UnixTime,
    /// What happened.
    pub action: Action,
    /// How much it matters.
    pub severity: Severity,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// What was acted on (a table, a host, a limit's name).
    pub resource: Option<String>,
    /// The user's name, as the application knows it.
    pub user_name: Option<String>,
    /// The user's stable id.
    pub user_id: Option<String>,
    /// The record acted on.
    pub record_id: Option<String>,
    /// The client's address.
    pub ip_address: Option<IpAddr>,
    /// The client device's fingerprint.
    pub device_fingerprint: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Ties the events of one request or flow together.
    pub correlation_id: Option<String>,
    /// The tenant, in a multi-tenant service.
    pub tenant: Option<String>,
    /// Anything else, as text. Never a secret.
    pub metadata: BTreeMap<String, String>,
}

impl AuditEvent {
    /// An event of `action` at `timestamp`, with the action's default severity and an outcome
    /// guessed from the action (a failure for failures, rejections and detections).
    pub fn new(action: Action, timestamp: UnixTime) -> Self {
        let outcome = match action {
            Action::LoginFailed
            | Action::MfaCodeRejected
            | Action::MfaCodeReplayed
            | Action::RateLimitExceeded
            | Action::DecryptionFailed
            | Action::PinMismatch
            | Action::TokenReuseDetected
            | Action::OAuthStateRejected
            | Action::AccountLocked => Outcome::Failure,
            Action::Custom(_) | Action::PinSetExpired => Outcome::Unknown,
            _ => Outcome::Success,
        };
        Self {
            schema_version: SCHEMA_VERSION,
            id: EventId::new(timestamp, &SystemRandom),
            timestamp,
            severity: action.default_severity(),
            action,
            outcome,
            resource: None,
            user_name: None,
            user_id: None,
            record_id: None,
            ip_address: None,
            device_fingerprint: None,
            user_agent: None,
            correlation_id: None,
            tenant: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Whether the outcome is [`Outcome::Success`].
    pub fn success(&self) -> bool {
        self.outcome == Outcome::Success
    }

    /// Sets the severity.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the outcome.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the resource.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Sets the user name.
    #[must_use]
    pub fn user_name(mut self, name: impl Into<String>) -> Self {
        self.user_name = Some(name.into());
        self
    }

    /// Sets the user id.
    #[must_use]
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Sets the record id.
    #[must_use]
    pub fn record_id(mut self, id: impl Into<String>) -> Self {
        self.record_id = Some(id.into());
        self
    }

    /// Sets the client address.
    #[must_use]
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip_address = Some(ip);
        self
    }

    /// Sets the device fingerprint.
    #[must_use]
    pub fn device_fingerprint(mut self, fp: impl Into<String>) -> Self {
        self.device_fingerprint = Some(fp.into());
        self
    }

    /// Sets the user agent.
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Adds a metadata entry (replacing one of the same key). Never pass a secret.
    #[must_use]
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Where audit events go.
///
/// `record` is called on hot paths (every login, every rate-limit denial), so it must not block
/// on I/O: a sink that writes to a file or a database hands the event to a buffer and writes it
/// from elsewhere.
///
/// # Implementing
/// ```
/// use palisade_core::audit::{Action, AuditEvent, AuditSink};
/// use palisade_core::time::UnixTime;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Counts failed logins, for a metrics endpoint.
/// #[derive(Debug, Default)]
/// struct FailedLogins(AtomicU64);
///
/// impl AuditSink for FailedLogins {
///     fn record(&self, event: AuditEvent) {
///         if event.action == Action::LoginFailed {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let sink = FailedLogins::default();
/// sink.record(AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(0)));
/// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
/// ```
pub trait AuditSink: fmt::Debug + Send + Sync {
    /// Takes one event. Must not block on I/O and must not panic.
    fn record(&self, event: AuditEvent);
}

impl<S: AuditSink + ?Sized> AuditSink for &S {
    fn record(&self, event: AuditEvent) {
        (**self).record(event);
    }
}

impl<S: AuditSink + ?Sized> AuditSink for Arc<S> {
    fn record(&self, event: AuditEvent) {
        (**self).record(event);
    }
}

impl<S: AuditSink + ?Sized> AuditSink for Box<S> {
    fn record(&self, event: AuditEvent) {
        (**self).record(event);
    }
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl AuditSink for NoopSink {
    fn record(&self, _event: AuditEvent) {}
}

/// Keeps every event in memory, for tests and small tools. Clones share the same events.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes and returns the events recorded so far.
    pub fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many events were recorded.
    pub fn len(&self) -> usize {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_and_are_unique() {
        let mut names = std::collections::HashSet::new();
        for action in Action::STANDARD {
            assert!(
                names.insert(action.as_str().to_owned()),
                "duplicate {action}"
            );
            assert_eq!(Action::from_name(action.as_str()), action);
        }
        assert_eq!(
            Action::from_name("door_opened"),
            Action::Custom("door_opened".into())
        );
    }

    #[test]
    fn event_serializes_with_stable_names() {
        let e = AuditEvent::new(Action::MfaCodeReplayed, UnixTime::from_secs(1_700_000_000))
            .user_id("u1")
            .meta("step", "56666666");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["action"], "mfa_code_replayed");
        assert_eq!(json["severity"], "high");
        assert_eq!(json["outcome"], "failure");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["timestamp"], 1_700_000_000_000_000_000u64);
        let back: AuditEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn event_ids_are_v7_and_time_ordered() {
        let a = AuditEvent::new(Action::LoginSucceeded, UnixTime::from_secs(100));
        let b = AuditEvent::new(Action::LoginSucceeded, UnixTime::from_secs(101));
        assert_eq!(a.id.as_uuid().get_version_num(), 7);
        assert!(a.id < b.id);
        assert_ne!(
            a.id,
            AuditEvent::new(Action::LoginSucceeded, UnixTime::from_secs(100)).id
        );
    }

    #[test]
    fn memory_sink_shares_and_takes() {
        let sink = MemorySink::new();
        let clone = sink.clone();
        let shared: Arc<dyn AuditSink> = Arc::new(clone);
        shared.record(AuditEvent::new(Action::KeyRotated, UnixTime::EPOCH));
        NoopSink.record(AuditEvent::new(Action::KeyRotated, UnixTime::EPOCH));
        assert_eq!(sink.len(), 1);
        assert_eq!(sink.take().len(), 1);
        assert!(sink.is_empty());
    }

    #[test]
    fn every_action_has_a_severity_and_failures_fail() {
        for action in Action::STANDARD {
            let e = AuditEvent::new(action.clone(), UnixTime::EPOCH);
            assert_eq!(e.severity, action.default_severity());
        }
        assert!(!AuditEvent::new(Action::LoginFailed, UnixTime::EPOCH).success());
        assert!(AuditEvent::new(Action::LoginSucceeded, UnixTime::EPOCH).success());
    }
}
