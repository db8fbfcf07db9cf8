//! [`Mfa`]: the enrollment, login and recovery flows with their audit events.
//!
//! Each method does one step of a flow and records what happened through an
//! [`AuditSink`]: enrollment started ([`Action::MfaEnrollmentStarted`]), confirmed
//! ([`Action::MfaEnrolled`]), removed ([`Action::MfaRemoved`]), a code accepted
//! ([`Action::MfaCodeAccepted`]), rejected ([`Action::MfaCodeRejected`], with the reason) or
//! replayed ([`Action::MfaCodeReplayed`]), a recovery code used ([`Action::RecoveryCodeUsed`],
//! with the remaining count) and recovery codes regenerated
//! ([`Action::RecoveryCodesRegenerated`]). Events carry the user id, the method, the matched step
//! and reasons: never a code, a recovery code or a secret.
//!
//! # Errors
//! As the underlying operations: [`OtpError`] for faults, [`Rejection`] and
//! [`RecoveryOutcome::Rejected`] for refused codes.

use palisade_core::audit::{Action, AuditEvent, AuditSink, NoopSink};
use palisade_core::keyring::Keyring;
use palisade_core::once::OneTimeStore;
use palisade_core::random::SecureRandom;
use palisade_core::time::UnixTime;

use crate::OtpError;
use crate::enroll::{Enrollment, PendingEnrollment, Unconfirmed};
use crate::otp::{MatchedStep, Rejection, TotpParams, Window};
use crate::recovery::{IssuedRecoveryCodes, RecoveryCodes, RecoveryOutcome, StoredRecoveryCodes};
use crate::secret::OtpSecret;

/// The MFA flows of one service: its issuer name, code parameters, window, recovery-code policy
/// and audit sink.
///
/// ```
/// use palisade_core::audit::{Action, MemorySink};
/// use palisade_core::random::SystemRandom;
/// use palisade_core::time::UnixTime;
/// use palisade_otp::{Mfa, Totp};
///
/// let sink = MemorySink::new();
/// let mfa = Mfa::new("ACME").audit(sink.clone());
/// let now = UnixTime::from_secs(1_800_000_000);
/// let pending = mfa.start_enrollment("user-42", "ann@example.com", now, &SystemRandom)?;
/// // The app scans pending.uri()?.expose_uri() and shows a code:
/// let code = Totp::new(pending.secret(), *pending.params()).generate(now)?;
/// let enrollment = mfa.confirm_enrollment("user-42", pending, code.expose_secret(), now).unwrap();
/// assert!(enrollment.last_used_step().is_some());
/// let actions: Vec<Action> = sink.take().into_iter().map(|e| e.action).collect();
/// assert_eq!(actions, [Action::MfaEnrollmentStarted, Action::MfaEnrolled]);
/// # Ok::<(), palisade_otp::OtpError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mfa<A = NoopSink> {
    issuer: String,
    params: TotpParams,
    window: Window,
    recovery: RecoveryCodes,
    sink: A,
}

impl Mfa<NoopSink> {
    /// Flows for the service named `issuer`, with the defaults (SHA-1, 6 digits, 30 s, one step
    /// each side, ten recovery codes) and no audit sink.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            params: TotpParams::default(),
            window: Window::default(),
            recovery: RecoveryCodes::default(),
            sink: NoopSink,
        }
    }
}

impl<A: AuditSink> Mfa<A> {
    /// Records events through `sink`.
    pub fn audit<B: AuditSink>(self, sink: B) -> Mfa<B> {
        Mfa {
            issuer: self.issuer,
            params: self.params,
            window: self.window,
            recovery: self.recovery,
            sink,
        }
    }

    /// Sets the parameters for new enrollments.
    #[must_use]
    pub fn params(mut self, params: TotpParams) -> Self {
        self.params = params;
        self
    }

    /// Sets the verification window.
    #[must_use]
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Sets the recovery-code policy.
    #[must_use]
    pub fn recovery_codes(mut self, policy: RecoveryCodes) -> Self {
        self.recovery = policy;
        self
    }

    fn record(&self, action: Action, user_id: &str, now: UnixTime, meta: &[(&str, String)]) {
        let mut event = AuditEvent::new(action, now)
            .user_id(user_id)
            .resource("mfa");
        for (k, v) in meta {
            event = event.meta(*k, v.clone());
        }
        self.sink.record(event);
    }

    /// Starts an enrollment for `account` (the name the app shows).
    ///
    /// # Errors
    /// As [`PendingEnrollment::new`].
    pub fn start_enrollment(
        &self,
        user_id: &str,
        account: &str,
        now: UnixTime,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<PendingEnrollment, OtpError> {
        let pending = PendingEnrollment::new(self.params, Some(&self.issuer), account, rng)?;
        self.record(
            Action::MfaEnrollmentStarted,
            user_id,
            now,
            &[("method", "totp".into())],
        );
        Ok(pending)
    }

    /// Confirms `pending` with its first code.
    ///
    /// # Errors
    /// [`Unconfirmed`] (recorded as a rejected code).
    pub fn confirm_enrollment(
        &self,
        user_id: &str,
        pending: PendingEnrollment,
        code: &str,
        now: UnixTime,
    ) -> Result<Enrollment, Unconfirmed> {
        match pending.confirm(code, now, self.window) {
            Ok(active) => {
                self.record(
                    Action::MfaEnrolled,
                    user_id,
                    now,
                    &[("method", "totp".into())],
                );
                Ok(active)
            }
            Err(unconfirmed) => {
                self.record_rejection(user_id, now, unconfirmed.rejection(), "enrollment");
                Err(unconfirmed)
            }
        }
    }

    /// Rebuilds an active enrollment from storage with this service's window.
    pub fn load_enrollment(
        &self,
        secret: OtpSecret,
        params: TotpParams,
        last_used_step: Option<u64>,
    ) -> Enrollment {
        Enrollment::from_parts(secret, params, last_used_step).window(self.window)
    }

    fn record_rejection(&self, user_id: &str, now: UnixTime, rejection: Rejection, during: &str) {
        let action = if rejection == Rejection::Replayed {
            Action::MfaCodeReplayed
        } else {
            Action::MfaCodeRejected
        };
        self.record(
            action,
            user_id,
            now,
            &[
                ("method", "totp".into()),
                ("reason", rejection.as_str().into()),
                ("during", during.into()),
            ],
        );
    }

    fn record_verdict(
        &self,
        user_id: &str,
        now: UnixTime,
        verdict: Result<MatchedStep, Rejection>,
    ) {
        match verdict {
            Ok(matched) => self.record(
                Action::MfaCodeAccepted,
                user_id,
                now,
                &[
                    ("method", "totp".into()),
                    ("step", matched.step().to_string()),
                    ("drift", matched.drift().to_string()),
                ],
            ),
            Err(rejection) => self.record_rejection(user_id, now, rejection, "login"),
        }
    }

    /// Verifies a login code and records the outcome.
    ///
    /// # Errors
    /// A [`Rejection`].
    pub fn verify(
        &self,
        user_id: &str,
        enrollment: &mut Enrollment,
        code: &str,
        now: UnixTime,
    ) -> Result<MatchedStep, Rejection> {
        let verdict = enrollment.verify(code, now);
        self.record_verdict(user_id, now, verdict);
        verdict
    }

    /// Verifies a login code, claims its step in `store` under the user id, and records the
    /// outcome.
    ///
    /// # Errors
    /// Outer: [`OtpError::Store`] (refuse the login; nothing is recorded as accepted). Inner:
    /// the verdict.
    pub async fn verify_claimed<S: OneTimeStore + ?Sized>(
        &self,
        store: &S,
        user_id: &str,
        enrollment: &mut Enrollment,
        code: &str,
        now: UnixTime,
    ) -> Result<Result<MatchedStep, Rejection>, OtpError> {
        let verdict = enrollment.verify_claimed(store, user_id, code, now).await?;
        self.record_verdict(user_id, now, verdict);
        Ok(verdict)
    }

    /// Removes an enrollment (the caller deletes its stored secret) and records it.
    pub fn remove(&self, user_id: &str, enrollment: Enrollment, now: UnixTime) {
        drop(enrollment);
        self.record(
            Action::MfaRemoved,
            user_id,
            now,
            &[("method", "totp".into())],
        );
    }

    /// Generates a new set of recovery codes, replacing any previous set, and records it.
    ///
    /// # Errors
    /// As [`RecoveryCodes::generate`].
    pub fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        keyring: &Keyring,
        now: UnixTime,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<IssuedRecoveryCodes, OtpError> {
        let issued = self.recovery.generate(keyring, rng)?;
        self.record(
            Action::RecoveryCodesRegenerated,
            user_id,
            now,
            &[("count", issued.codes().len().to_string())],
        );
        Ok(issued)
    }

    /// Uses a recovery code and records the outcome (with the remaining count on success).
    ///
    /// # Errors
    /// As [`StoredRecoveryCodes::consume`].
    pub fn use_recovery_code(
        &self,
        user_id: &str,
        stored: &mut StoredRecoveryCodes,
        keyring: &Keyring,
        input: &str,
        now: UnixTime,
    ) -> Result<RecoveryOutcome, OtpError> {
        let outcome = stored.consume(keyring, input)?;
        match outcome {
            RecoveryOutcome::Accepted {
                remaining,
                low_balance,
            } => self.record(
                Action::RecoveryCodeUsed,
                user_id,
                now,
                &[
                    ("remaining", remaining.to_string()),
                    ("low_balance", low_balance.to_string()),
                ],
            ),
            RecoveryOutcome::Rejected => self.record(
                Action::MfaCodeRejected,
                user_id,
                now,
                &[
                    ("method", "recovery_code".into()),
                    ("reason", "invalid".into()),
                ],
            ),
        }
        Ok(outcome)
    }
}
