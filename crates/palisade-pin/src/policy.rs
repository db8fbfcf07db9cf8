//! Pin sets per host and the policy that checks verified chains against them.
//!
//! A [`PinSet`] holds the pins of one [`HostPattern`], an optional expiry date and a
//! report-only switch. Its builder enforces the backup-pin rule of RFC 7469 section 2.5 (as
//! TrustKit does): at least two distinct pins, and, when you hand it the chain the server
//! serves today, at least one pin that is *not* in that chain, so that losing or rotating the
//! current key does not lock every client out. A single pin needs an explicit
//! [`PinSetBuilder::allow_single_pin`].
//!
//! A [`PinPolicy`] holds the sets, a deny list of SPKI hashes, and the audit sink.
//! [`PinPolicy::check`] takes the host and a **verified** chain (end-entity first, as a
//! verifier built it from the trust anchors) and returns a [`PinVerified`] proof or an error.
//!
//! # Rules
//! - The most specific pattern that matches the host applies (exact, then longest suffix, then
//!   `*.` before `**.`), as in Android's network security config. OkHttp instead unions the
//!   pins of every matching pattern; that lets a broad `**.example.com` set widen what a
//!   specific host accepts, and makes expiry ambiguous, so we do not.
//! - A chain passes when any certificate on it (end-entity, intermediate or trust anchor)
//!   matches any pin of the set.
//! - A set past its expiry is not enforced (the chain still had to pass normal validation), and
//!   each use records [`Action::PinSetExpired`]. Within the warning window before expiry
//!   (default 30 days) a `tracing` warning is logged, at most once a day per set, and
//!   [`PinVerified::expires_soon`] says so.
//! - The deny list always applies, to every host, pinned or not, expired or not, report-only or
//!   not.
//! - A host without a pin set fails with [`PinError::NoPins`] unless the policy allows unpinned
//!   hosts: a client built to talk to pinned backends fails closed when pointed elsewhere.
//! - A mismatch records [`Action::PinMismatch`] (host, expected pins, the SPKI pins presented,
//!   enforcing or report-only). In report-only mode the chain passes with
//!   [`PinStatus::ReportedMismatch`].
//!
//! # Errors and panics
//! Builders return configuration errors; [`PinPolicy::check`] returns [`PinError::NoPins`],
//! [`PinError::Mismatch`], [`PinError::Denied`], [`PinError::UnparseableCertificate`] or
//! [`PinError::NoCertificate`]. Nothing panics.
//!
//! # Security
//! Only ever pass a chain that was verified from a trust anchor. The list of certificates a
//! TLS server sends is attacker-controlled: matching pins against it lets a man in the middle
//! append the public pinned certificate to his own valid chain (OkHttp's CVE-2016-2402). The
//! rustls verifier of this crate does this correctly for you.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_core::audit::{Action, AuditEvent, AuditSink, NoopSink, Outcome, Severity};
use palisade_core::time::UnixTime;

use crate::error::PinError;
use crate::host::{HostPattern, canonical_host};
use crate::pin::{Pin, PinKind, sha256, spki_of};
use crate::report::{Violation, ViolationReporter};

/// How many verified paths a mismatch error lists at most.
const MAX_PATHS_REPORTED: usize = 16;

/// The default warning window before a pin set expires.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The pins of one host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSet {
    pattern: HostPattern,
    pins: Vec<Pin>,
    expires_at: Option<UnixTime>,
    report_only: bool,
}

impl PinSet {
    /// Starts a pin set for `pattern`.
    pub fn builder(pattern: HostPattern) -> PinSetBuilder {
        PinSetBuilder {
            pattern,
            pins: Vec::new(),
            expires_at: None,
            report_only: false,
            allow_single_pin: false,
            served: None,
        }
    }

    /// The host pattern.
    pub fn pattern(&self) -> &HostPattern {
        &self.pattern
    }

    /// The distinct pins, in the order they were added.
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// When the set stops being enforced, if ever.
    pub fn expires_at(&self) -> Option<UnixTime> {
        self.expires_at
    }

    /// Whether a mismatch is only reported, not enforced.
    pub fn is_report_only(&self) -> bool {
        self.report_only
    }

    /// Whether the set is past its expiry at `now`.
    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    pub(crate) fn has_certificate_pins(&self) -> bool {
        self.pins.iter().any(|p| p.kind() == PinKind::Certificate)
    }

    /// The first pin that matches a certificate of `path`.
    pub(crate) fn matching_pin(&self, path: &[CertDigests]) -> Option<Pin> {
        self.pins.iter().copied().find(|pin| pin_matches(pin, path))
    }
}

/// Builds a [`PinSet`]; see the [module docs](self) for the backup-pin rule.
///
/// ```
/// use palisade_pin::{HostPattern, Pin, PinError, PinSet};
///
/// let current = Pin::spki_sha256([1; 32]);
/// let backup = Pin::spki_sha256([2; 32]);
/// let pattern: HostPattern = "api.example.com".parse()?;
///
/// // One pin is refused: no backup.
/// let err = PinSet::builder(pattern.clone()).pin(current).build().unwrap_err();
/// assert!(matches!(err, PinError::TooFewPins { count: 1, .. }));
///
/// let set = PinSet::builder(pattern).pin(current).pin(backup).build()?;
/// assert_eq!(set.pins().len(), 2);
/// # Ok::<(), PinError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PinSetBuilder {
    pattern: HostPattern,
    pins: Vec<Pin>,
    expires_at: Option<UnixTime>,
    report_only: bool,
    allow_single_pin: bool,
    served: Option<Result<Vec<CertDigests>, PinError>>,
}

impl PinSetBuilder {
    /// Adds a pin (a repeated pin is kept once).
    pub fn pin(mut self, pin: Pin) -> Self {
        if !self.pins.contains(&pin) {
            self.pins.push(pin);
        }
        self
    }

    /// Adds several pins.
    pub fn pins(self, pins: impl IntoIterator<Item = Pin>) -> Self {
        pins.into_iter().fold(self, Self::pin)
    }

    /// Stops enforcing the set from `at` on (Android's `pin-set expiration`), so that a client
    /// nobody updates cannot lock itself out for ever.
    pub fn expires_at(mut self, at: UnixTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Lets mismatching chains through and only records them: for rolling out a new pin set.
    pub fn report_only(mut self) -> Self {
        self.report_only = true;
        self
    }

    /// Accepts a set with a single pin, or without a pin outside the served chain. Only for
    /// deployments that can update every client at once.
    pub fn allow_single_pin(mut self) -> Self {
        self.allow_single_pin = true;
        self
    }

    /// The chain the server serves today (DER certificates, in any order): [`build`] then also
    /// checks that at least one pin matches it and at least one (the backup) does not.
    ///
    /// [`build`]: Self::build
    pub fn served_chain(mut self, chain: &[impl AsRef<[u8]>]) -> Self {
        self.served = Some(digest_chain(chain, true));
        self
    }

    /// The pin set.
    ///
    /// # Errors
    /// [`PinError::TooFewPins`], [`PinError::NoBackupPin`],
    /// [`PinError::NoPinMatchesServedChain`], or the served chain's
    /// [`PinError::UnparseableCertificate`] / [`PinError::NoCertificate`].
    pub fn build(self) -> Result<PinSet, PinError> {
        let pattern = self.pattern.to_string();
        let minimum = if self.allow_single_pin { 1 } else { 2 };
        if self.pins.len() < minimum {
            return Err(PinError::TooFewPins {
                pattern,
                count: self.pins.len(),
            });
        }
        let set = PinSet {
            pattern: self.pattern,
            pins: self.pins,
            expires_at: self.expires_at,
            report_only: self.report_only,
        };
        if let Some(served) = self.served {
            let served = served?;
            if set.matching_pin(&served).is_none() {
                return Err(PinError::NoPinMatchesServedChain {
                    pattern,
                    served: served.iter().map(|c| Pin::spki_sha256(c.spki)).collect(),
                });
            }
            let has_backup = set.pins.iter().any(|pin| !pin_matches(pin, &served));
            if !has_backup && !self.allow_single_pin {
                return Err(PinError::NoBackupPin { pattern });
            }
        }
        Ok(set)
    }
}

/// Whether `pin` matches a certificate of `path`.
fn pin_matches(pin: &Pin, path: &[CertDigests]) -> bool {
    path.iter().any(|cert| match pin.kind() {
        PinKind::Spki => cert.spki == *pin.digest(),
        PinKind::Certificate => cert.certificate.as_ref() == Some(pin.digest()),
    })
}

/// What a policy knows of one certificate on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CertDigests {
    /// SHA-256 of the DER SubjectPublicKeyInfo.
    pub(crate) spki: [u8; 32],
    /// SHA-256 of the whole DER certificate, when known and needed.
    pub(crate) certificate: Option<[u8; 32]>,
}

fn digest_chain(
    chain: &[impl AsRef<[u8]>],
    with_certificates: bool,
) -> Result<Vec<CertDigests>, PinError> {
    if chain.is_empty() {
        return Err(PinError::NoCertificate);
    }
    chain
        .iter()
        .enumerate()
        .map(|(index, der)| {
            let der = der.as_ref();
            let (rest, spki) = spki_of(der, index)?;
            if !rest.is_empty() {
                return Err(PinError::UnparseableCertificate {
                    index,
                    reason: "trailing bytes after the certificate".to_owned(),
                });
            }
            Ok(CertDigests {
                spki: sha256(spki),
                certificate: with_certificates.then(|| sha256(der)),
            })
        })
        .collect()
}

/// The pin sets of every host, a deny list, and where events go.
///
/// ```
/// use palisade_core::audit::MemorySink;
/// use palisade_core::time::UnixTime;
/// use palisade_pin::{Pin, PinError, PinPolicy, PinSet, PinStatus};
/// use std::sync::Arc;
///
/// let chain = [std::fs::read("tests/data/fixed.der")?];
/// let served: Pin = "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=".parse()?;
/// let backup = Pin::spki_sha256([7; 32]);
/// let sink = Arc::new(MemorySink::new());
/// let policy = PinPolicy::builder()
///     .pin_set(PinSet::builder("**.palisade.test".parse()?).pin(served).pin(backup).build()?)
///     .audit_sink(sink.clone())
///     .build()?;
/// let now = UnixTime::from_secs(1_800_000_000);
///
/// let ok = policy.check("pin-fixture.palisade.test", &chain, now)?;
/// assert_eq!(ok.status(), &PinStatus::Matched(served));
///
/// // Another host: no pins, and the policy fails closed.
/// assert!(matches!(policy.check("example.org", &chain, now), Err(PinError::NoPins { .. })));
/// assert!(sink.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PinPolicy {
    sets: Vec<PinSet>,
    /// Per set: the last time (seconds) a "nearing expiry" warning was logged.
    last_warning: Vec<AtomicU64>,
    deny: Vec<[u8; 32]>,
    exempt: Vec<HostPattern>,
    allow_unpinned: bool,
    expiry_warning: Duration,
    sink: Arc<dyn AuditSink>,
    reporter: Option<Arc<dyn ViolationReporter>>,
}

impl PinPolicy {
    /// Starts a policy.
    pub fn builder() -> PinPolicyBuilder {
        PinPolicyBuilder {
            sets: Vec::new(),
            deny: Vec::new(),
            exempt: Vec::new(),
            allow_unpinned: false,
            expiry_warning: DEFAULT_EXPIRY_WARNING,
            sink: Arc::new(NoopSink),
            reporter: None,
        }
    }

    /// The pin sets.
    pub fn pin_sets(&self) -> &[PinSet] {
        &self.sets
    }

    /// The exempted host patterns.
    pub fn exemptions(&self) -> &[HostPattern] {
        &self.exempt
    }

    /// The pin set that applies to `host` (the most specific matching pattern), if any; `None`
    /// also when a more specific (or equally specific) exemption covers the host.
    ///
    /// # Errors
    /// [`PinError::InvalidHost`] when `host` cannot be canonicalised.
    pub fn pin_set_for(&self, host: &str) -> Result<Option<&PinSet>, PinError> {
        let host = canonical_host(host)?;
        if self.is_exempt(&host) {
            return Ok(None);
        }
        Ok(self.find(&host).map(|(_, set)| set))
    }

    /// Checks one **verified** chain (DER certificates, end-entity first, up to and including
    /// the trust anchor when you have it) for `host` at `now`.
    ///
    /// # Errors
    /// [`PinError::NoPins`], [`PinError::Mismatch`] (not in report-only mode),
    /// [`PinError::Denied`], [`PinError::InvalidHost`], [`PinError::NoCertificate`],
    /// [`PinError::UnparseableCertificate`].
    pub fn check(
        &self,
        host: &str,
        verified_chain: &[impl AsRef<[u8]>],
        now: UnixTime,
    ) -> Result<PinVerified, PinError> {
        let mut evaluation = self.begin(host, now)?;
        let digests = digest_chain(verified_chain, evaluation.needs_certificate_digests())?;
        evaluation.path(&digests);
        evaluation.finish()
    }

    /// Starts the evaluation of the verified paths of one connection to `host`.
    pub(crate) fn begin(&self, host: &str, now: UnixTime) -> Result<Evaluation<'_>, PinError> {
        let host = canonical_host(host)?;
        let exempted = self.is_exempt(&host);
        let found = if exempted { None } else { self.find(&host) };
        let (enforced, expired) = match found {
            None if self.allow_unpinned || exempted => (None, None),
            None => return Err(PinError::NoPins { host }),
            Some((_, set)) if set.is_expired(now) => {
                self.record_expired(&host, set, now);
                (None, Some(set))
            }
            Some((index, set)) => {
                self.warn_if_expiring(index, set, now);
                (Some(set), None)
            }
        };
        Ok(Evaluation {
            policy: self,
            host,
            enforced,
            expired,
            exempted,
            now,
            tried: Vec::new(),
            mismatched: 0,
            matched: None,
            denied: None,
            accepted: false,
        })
    }

    /// Whether an exemption at least as specific as every matching pin set covers `host`.
    fn is_exempt(&self, host: &str) -> bool {
        let Some(exemption) = self
            .exempt
            .iter()
            .filter(|p| p.matches(host))
            .map(HostPattern::specificity)
            .max()
        else {
            return false;
        };
        self.find(host)
            .is_none_or(|(_, set)| exemption >= set.pattern.specificity())
    }

    fn find(&self, host: &str) -> Option<(usize, &PinSet)> {
        self.sets
            .iter()
            .enumerate()
            .filter(|(_, set)| set.pattern.matches(host))
            .max_by_key(|(_, set)| set.pattern.specificity())
    }

    fn expires_soon(&self, set: &PinSet, now: UnixTime) -> bool {
        set.expires_at
            .is_some_and(|at| now < at && at.saturating_duration_since(now) <= self.expiry_warning)
    }

    fn warn_if_expiring(&self, index: usize, set: &PinSet, now: UnixTime) {
        if !self.expires_soon(set, now) {
            return;
        }
        let Some(last) = self.last_warning.get(index) else {
            return;
        };
        let now_secs = now.as_secs();
        let previous = last.load(Ordering::Relaxed);
        if previous != 0 && now_secs.saturating_sub(previous) < 24 * 3600 {
            return;
        }
        if last
            .compare_exchange(previous, now_secs, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let left = set
                .expires_at
                .map_or(0, |at| at.saturating_duration_since(now).as_secs() / 86_400);
            tracing::warn!(
                pattern = %set.pattern,
                days_left = left,
                "pin set expires soon; after that it is no longer enforced: ship new pins"
            );
        }
    }

    fn record_expired(&self, host: &str, set: &PinSet, now: UnixTime) {
        let expired_at = set.expires_at.map_or(0, UnixTime::as_secs);
        self.sink.record(
            AuditEvent::new(Action::PinSetExpired, now)
                .resource(host)
                .meta("pattern", set.pattern.to_string())
                .meta("expired_at", expired_at.to_string())
                .meta("expected", join(set.pins.iter())),
        );
    }
}

/// Builds a [`PinPolicy`].
#[derive(Debug)]
#[must_use]
pub struct PinPolicyBuilder {
    sets: Vec<PinSet>,
    deny: Vec<Pin>,
    exempt: Vec<HostPattern>,
    allow_unpinned: bool,
    expiry_warning: Duration,
    sink: Arc<dyn AuditSink>,
    reporter: Option<Arc<dyn ViolationReporter>>,
}

impl PinPolicyBuilder {
    /// Adds a pin set.
    pub fn pin_set(mut self, set: PinSet) -> Self {
        self.sets.push(set);
        self
    }

    /// Denies a key everywhere: any verified path that contains it fails. Takes `sha256/` SPKI
    /// pins only.
    pub fn deny(mut self, spki: Pin) -> Self {
        self.deny.push(spki);
        self
    }

    /// Exempts the hosts of `pattern` from pinning (normal validation and the deny list still
    /// apply), even when a wildcard pin set covers them: `status.example.com` under a
    /// `**.example.com` set, say. An exemption wins over a pin set of the same or a less
    /// specific pattern, and loses to a more specific one.
    pub fn exempt(mut self, pattern: HostPattern) -> Self {
        self.exempt.push(pattern);
        self
    }

    /// Where pin violations are reported besides the audit sink (default: nowhere). The
    /// reporter is called synchronously on the handshake path and must not block.
    pub fn violation_reporter(mut self, reporter: Arc<dyn ViolationReporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Lets hosts without a pin set through (with normal validation only) instead of failing
    /// with [`PinError::NoPins`].
    pub fn allow_unpinned_hosts(mut self) -> Self {
        self.allow_unpinned = true;
        self
    }

    /// How long before a set's expiry to start warning (default 30 days).
    pub fn expiry_warning(mut self, before: Duration) -> Self {
        self.expiry_warning = before;
        self
    }

    /// Where mismatch and expiry events go (default: nowhere).
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The policy.
    ///
    /// # Errors
    /// [`PinError::DuplicatePattern`] when two sets share a pattern;
    /// [`PinError::DenyListNotSpki`] for a certificate fingerprint on the deny list.
    pub fn build(self) -> Result<PinPolicy, PinError> {
        for (i, set) in self.sets.iter().enumerate() {
            if self
                .sets
                .iter()
                .skip(i + 1)
                .any(|s| s.pattern == set.pattern)
            {
                return Err(PinError::DuplicatePattern {
                    pattern: set.pattern.to_string(),
                });
            }
        }
        let mut deny = Vec::with_capacity(self.deny.len());
        for pin in self.deny {
            if !pin.is_spki() {
                return Err(PinError::DenyListNotSpki { pin });
            }
            deny.push(*pin.digest());
        }
        Ok(PinPolicy {
            last_warning: self.sets.iter().map(|_| AtomicU64::new(0)).collect(),
            sets: self.sets,
            deny,
            exempt: self.exempt,
            allow_unpinned: self.allow_unpinned,
            expiry_warning: self.expiry_warning,
            sink: self.sink,
            reporter: self.reporter,
        })
    }
}

/// Proof that a chain passed a [`PinPolicy`]; only this crate builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinVerified {
    host: String,
    status: PinStatus,
    expires_soon: bool,
}

impl PinVerified {
    /// The canonical host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Why the chain passed.
    pub fn status(&self) -> &PinStatus {
        &self.status
    }

    /// Whether the host's pin set expires within the policy's warning window.
    pub fn expires_soon(&self) -> bool {
        self.expires_soon
    }
}

/// Why a chain passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinStatus {
    /// A pin of the host's set matched this certificate pin.
    Matched(Pin),
    /// The host has no pin set and the policy allows that.
    NotPinned,
    /// The host's pin set expired at this time and was not enforced.
    Expired {
        /// The set's expiry.
        expired_at: UnixTime,
    },
    /// No pin matched, but the set is report-only: the mismatch was recorded.
    ReportedMismatch,
    /// The host is exempted from pinning by the policy.
    Exempted,
}

/// The pin evaluation of the verified paths of one connection.
pub(crate) struct Evaluation<'p> {
    policy: &'p PinPolicy,
    host: String,
    enforced: Option<&'p PinSet>,
    expired: Option<&'p PinSet>,
    exempted: bool,
    now: UnixTime,
    /// SPKI pins of each path that did not match (for the error), bounded.
    tried: Vec<Vec<Pin>>,
    mismatched: usize,
    matched: Option<Pin>,
    denied: Option<Pin>,
    accepted: bool,
}

impl fmt::Debug for Evaluation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluation")
            .field("host", &self.host)
            .field("enforced", &self.enforced.map(|s| s.pattern.to_string()))
            .field("tried", &self.tried.len())
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl Evaluation<'_> {
    /// Whether paths must be looked at at all (pins to enforce, or keys to deny).
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    pub(crate) fn needs_paths(&self) -> bool {
        self.enforced.is_some() || !self.policy.deny.is_empty()
    }

    /// Whether whole-certificate digests are needed (the set has fingerprint pins).
    pub(crate) fn needs_certificate_digests(&self) -> bool {
        self.enforced.is_some_and(PinSet::has_certificate_pins)
    }

    /// How many verified paths were rejected so far.
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    pub(crate) fn rejected_paths(&self) -> usize {
        self.mismatched + usize::from(self.denied.is_some())
    }

    /// Records that the chain validated when no path had to be looked at (no pins to enforce,
    /// nothing denied). Does nothing otherwise.
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    pub(crate) fn validated_without_paths(&mut self) {
        if !self.needs_paths() {
            self.accepted = true;
        }
    }

    /// Looks at one verified path; `true` accepts it (and ends path building).
    pub(crate) fn path(&mut self, certs: &[CertDigests]) -> bool {
        if let Some(bad) = certs.iter().find(|c| self.policy.deny.contains(&c.spki)) {
            self.denied.get_or_insert(Pin::spki_sha256(bad.spki));
            return false;
        }
        let Some(set) = self.enforced else {
            self.accepted = true;
            return true;
        };
        if let Some(pin) = set.matching_pin(certs) {
            self.matched = Some(pin);
            self.accepted = true;
            return true;
        }
        self.mismatched += 1;
        if self.tried.len() < MAX_PATHS_REPORTED {
            let pins: Vec<Pin> = certs.iter().map(|c| Pin::spki_sha256(c.spki)).collect();
            if !self.tried.contains(&pins) {
                self.tried.push(pins);
            }
        }
        false
    }

    /// The verdict, once path building is over; records audit events.
    pub(crate) fn finish(self) -> Result<PinVerified, PinError> {
        let expires_soon = self
            .enforced
            .is_some_and(|set| self.policy.expires_soon(set, self.now));
        let verified = |status| PinVerified {
            host: self.host.clone(),
            status,
            expires_soon,
        };
        if self.accepted {
            let status = match (self.matched, self.expired) {
                (Some(pin), _) => PinStatus::Matched(pin),
                (None, Some(set)) => PinStatus::Expired {
                    expired_at: set.expires_at.unwrap_or(UnixTime::EPOCH),
                },
                (None, None) if self.exempted => PinStatus::Exempted,
                (None, None) => PinStatus::NotPinned,
            };
            return Ok(verified(status));
        }
        let expected: Vec<Pin> = self.enforced.map(|s| s.pins.clone()).unwrap_or_default();
        match (self.mismatched, self.denied) {
            (0, Some(pin)) => {
                self.policy.sink.record(
                    AuditEvent::new(Action::PinMismatch, self.now)
                        .resource(self.host.as_str())
                        .meta("denied", pin.to_string())
                        .meta("expected", join(expected.iter()))
                        .meta("mode", "enforcing"),
                );
                self.report(&expected, Some(pin), false);
                Err(PinError::Denied {
                    host: self.host,
                    pin,
                })
            }
            _ => {
                let report_only = self.enforced.is_some_and(PinSet::is_report_only);
                let presented = self
                    .tried
                    .iter()
                    .map(|path| join(path.iter()))
                    .collect::<Vec<_>>()
                    .join(" | ");
                let mut event = AuditEvent::new(Action::PinMismatch, self.now)
                    .resource(self.host.as_str())
                    .meta("expected", join(expected.iter()))
                    .meta("presented", presented)
                    .meta(
                        "mode",
                        if report_only {
                            "report_only"
                        } else {
                            "enforcing"
                        },
                    );
                if let Some(pin) = self.denied {
                    event = event.meta("denied", pin.to_string());
                }
                if report_only {
                    // The connection went through: the refusal did not happen.
                    event = event.severity(Severity::High).outcome(Outcome::Success);
                }
                self.policy.sink.record(event);
                self.report(&expected, self.denied, report_only);
                if report_only {
                    Ok(verified(PinStatus::ReportedMismatch))
                } else {
                    Err(PinError::Mismatch {
                        host: self.host,
                        expected,
                        presented: self.tried,
                    })
                }
            }
        }
    }
}

impl Evaluation<'_> {
    fn report(&self, expected: &[Pin], denied: Option<Pin>, report_only: bool) {
        let Some(reporter) = &self.policy.reporter else {
            return;
        };
        let set = self.enforced;
        reporter.report(&Violation {
            host: self.host.clone(),
            pattern: set.map(|s| s.pattern.to_string()),
            include_subdomains: set.is_some_and(|s| !s.pattern.is_exact()),
            expires_at: set.and_then(PinSet::expires_at),
            expected: expected.to_vec(),
            presented: self.tried.clone(),
            denied,
            report_only,
            at: self.now,
        });
    }
}

fn join<'a>(pins: impl Iterator<Item = &'a Pin>) -> String {
    pins.map(Pin::to_string).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::audit::MemorySink;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_chains_get_typed_outcomes(
            chain in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4)
        ) {
            let policy = PinPolicy::builder()
                .pin_set(set("h.test", &[Pin::spki_sha256([1; 32]), Pin::certificate_sha256([2; 32])]).build().unwrap())
                .build()
                .unwrap();
            match policy.check("h.test", &chain, NOW) {
                Err(PinError::NoCertificate) => prop_assert!(chain.is_empty()),
                Err(PinError::UnparseableCertificate { index, .. }) => prop_assert!(index < chain.len()),
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }

    fn digests(spki: u8) -> CertDigests {
        CertDigests {
            spki: [spki; 32],
            certificate: Some([spki.wrapping_add(100); 32]),
        }
    }

    fn set(pattern: &str, pins: &[Pin]) -> PinSetBuilder {
        PinSet::builder(pattern.parse().unwrap()).pins(pins.iter().copied())
    }

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    #[test]
    fn most_specific_set_wins() {
        let a = Pin::spki_sha256([1; 32]);
        let b = Pin::spki_sha256([2; 32]);
        let c = Pin::spki_sha256([3; 32]);
        let policy = PinPolicy::builder()
            .pin_set(set("**.example.com", &[a, b]).build().unwrap())
            .pin_set(set("*.example.com", &[b, c]).build().unwrap())
            .pin_set(set("api.example.com", &[c, a]).build().unwrap())
            .build()
            .unwrap();
        let pattern = |h: &str| {
            policy
                .pin_set_for(h)
                .unwrap()
                .unwrap()
                .pattern()
                .to_string()
        };
        assert_eq!(pattern("API.example.com."), "api.example.com");
        assert_eq!(pattern("www.example.com"), "*.example.com");
        assert_eq!(pattern("a.b.example.com"), "**.example.com");
        assert_eq!(pattern("example.com"), "**.example.com");
        assert!(policy.pin_set_for("example.org").unwrap().is_none());
    }

    #[test]
    fn evaluation_accepts_any_certificate_of_the_path() {
        let policy = PinPolicy::builder()
            .pin_set(
                set(
                    "h.test",
                    &[
                        Pin::spki_sha256([3; 32]),
                        Pin::certificate_sha256([109; 32]),
                    ],
                )
                .build()
                .unwrap(),
            )
            .build()
            .unwrap();
        for (path, expected) in [
            (vec![digests(1), digests(2), digests(3)], true),
            (vec![digests(9), digests(2)], true), // certificate digest [109; 32]
            (vec![digests(1), digests(2)], false),
        ] {
            let mut e = policy.begin("h.test", NOW).unwrap();
            assert!(e.needs_certificate_digests());
            assert_eq!(e.path(&path), expected);
            assert_eq!(e.finish().is_ok(), expected);
        }
    }

    #[test]
    fn deny_list_applies_even_to_unpinned_and_report_only() {
        let sink = Arc::new(MemorySink::new());
        let policy = PinPolicy::builder()
            .pin_set(
                set(
                    "r.test",
                    &[Pin::spki_sha256([1; 32]), Pin::spki_sha256([2; 32])],
                )
                .report_only()
                .build()
                .unwrap(),
            )
            .deny(Pin::spki_sha256([6; 32]))
            .allow_unpinned_hosts()
            .audit_sink(sink.clone())
            .build()
            .unwrap();
        for host in ["other.test", "r.test"] {
            let mut e = policy.begin(host, NOW).unwrap();
            assert!(e.needs_paths());
            assert!(!e.path(&[digests(1), digests(6)]));
            assert_eq!(e.rejected_paths(), 1);
            let err = e.finish().unwrap_err();
            assert!(matches!(err, PinError::Denied { ref pin, .. } if pin.digest() == &[6; 32]));
        }
        assert_eq!(sink.len(), 2);
        let mut e = policy.begin("other.test", NOW).unwrap();
        assert!(e.path(&[digests(5)]));
        assert_eq!(e.finish().unwrap().status(), &PinStatus::NotPinned);
    }

    #[test]
    fn builder_enforces_the_backup_rule() {
        let a = Pin::spki_sha256([1; 32]);
        assert!(matches!(
            set("h.test", &[a, a]).build(),
            Err(PinError::TooFewPins { count: 1, .. })
        ));
        assert!(set("h.test", &[a]).allow_single_pin().build().is_ok());
        assert!(matches!(
            set("h.test", &[]).allow_single_pin().build(),
            Err(PinError::TooFewPins { count: 0, .. })
        ));
        assert!(matches!(
            set("h.test", &[a])
                .served_chain(&[b"junk"])
                .allow_single_pin()
                .build(),
            Err(PinError::UnparseableCertificate { index: 0, .. })
        ));
    }

    #[test]
    fn policy_builder_refuses_duplicates_and_fingerprint_denials() {
        let a = Pin::spki_sha256([1; 32]);
        let b = Pin::spki_sha256([2; 32]);
        let dup = PinPolicy::builder()
            .pin_set(set("h.test", &[a, b]).build().unwrap())
            .pin_set(set("H.test.", &[a, b]).build().unwrap())
            .build();
        assert!(matches!(dup, Err(PinError::DuplicatePattern { .. })));
        let deny = PinPolicy::builder()
            .deny(Pin::certificate_sha256([1; 32]))
            .build();
        assert!(matches!(deny, Err(PinError::DenyListNotSpki { .. })));
    }

    #[test]
    fn expiry_stops_enforcement_and_warns_before() {
        let sink = Arc::new(MemorySink::new());
        let at = NOW.saturating_add(Duration::from_secs(10 * 86_400));
        let policy = PinPolicy::builder()
            .pin_set(
                set(
                    "h.test",
                    &[Pin::spki_sha256([1; 32]), Pin::spki_sha256([2; 32])],
                )
                .expires_at(at)
                .build()
                .unwrap(),
            )
            .audit_sink(sink.clone())
            .build()
            .unwrap();
        // Ten days before: enforced, with a warning.
        let mut e = policy.begin("h.test", NOW).unwrap();
        assert!(e.path(&[digests(1)]));
        assert!(e.finish().unwrap().expires_soon());
        let mut e = policy.begin("h.test", NOW).unwrap();
        assert!(!e.path(&[digests(9)]));
        assert!(matches!(e.finish(), Err(PinError::Mismatch { .. })));
        assert_eq!(sink.take()[0].action, Action::PinMismatch);
        // After expiry: not enforced, recorded.
        let mut e = policy.begin("h.test", at).unwrap();
        assert!(!e.needs_paths());
        assert!(e.path(&[digests(9)]));
        assert_eq!(
            e.finish().unwrap().status(),
            &PinStatus::Expired { expired_at: at }
        );
        let events = sink.take();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, Action::PinSetExpired);
        assert_eq!(events[0].resource.as_deref(), Some("h.test"));
    }
}
