//! Enrollment and the MFA policy.
//!
//! A [`PendingEnrollment`] holds a fresh secret and what the authenticator app needs (its
//! `otpauth://` URI, for a QR code). It becomes an active [`Enrollment`] only through
//! [`PendingEnrollment::confirm`] with a valid code, which proves the app holds the secret and
//! records the code's step as the last used one, so that the confirming code cannot be replayed
//! at the first login.
//!
//! [`MfaPolicy`] answers "must this user enroll now?": MFA can be required for everyone or for
//! some roles, with a grace period in days counted from when the requirement began to apply to
//! the user.
//!
//! # Errors
//! [`OtpError::Random`] and [`OtpError::InvalidUri`] from [`PendingEnrollment::new`] and
//! [`PendingEnrollment::uri`]; confirmation and verification return [`Rejection`]s.
//!
//! # Security
//! Store the secret encrypted (palisade-field) and the last used step beside it; write the new
//! step back after every successful [`Enrollment::verify`], with a compare-and-set on the old
//! value when several instances serve the same user, or use [`Enrollment::verify_claimed`].

use core::fmt;
use core::time::Duration;
use std::collections::BTreeSet;

use palisade_core::once::OneTimeStore;
use palisade_core::random::SecureRandom;
use palisade_core::time::UnixTime;

use crate::OtpError;
use crate::otp::{MatchedStep, Rejection, Totp, TotpParams, Window};
use crate::secret::OtpSecret;
use crate::uri::OtpauthUri;

/// An enrollment waiting for its first code.
pub struct PendingEnrollment {
    secret: OtpSecret,
    params: TotpParams,
    issuer: Option<String>,
    account: String,
}

impl PendingEnrollment {
    /// Starts an enrollment with a fresh secret of the recommended length.
    ///
    /// # Errors
    /// [`OtpError::Random`]; [`OtpError::InvalidUri`] when the issuer or account cannot appear
    /// in a URI (empty account, a `:`).
    pub fn new(
        params: TotpParams,
        issuer: Option<&str>,
        account: &str,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<Self, OtpError> {
        let secret = OtpSecret::generate(params.algorithm, rng)?;
        let pending = Self::from_parts(secret, params, issuer, account);
        pending.uri()?;
        Ok(pending)
    }

    /// Rebuilds a pending enrollment from storage.
    pub fn from_parts(
        secret: OtpSecret,
        params: TotpParams,
        issuer: Option<&str>,
        account: &str,
    ) -> Self {
        Self {
            secret,
            params,
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
        }
    }

    /// The secret, to store (encrypted) until confirmation.
    pub fn secret(&self) -> &OtpSecret {
        &self.secret
    }

    /// The code parameters.
    pub fn params(&self) -> &TotpParams {
        &self.params
    }

    /// The `otpauth://` URI to show as a QR code.
    ///
    /// # Errors
    /// [`OtpError::InvalidUri`] as in [`OtpauthUri::totp`].
    pub fn uri(&self) -> Result<OtpauthUri, OtpError> {
        OtpauthUri::totp(
            self.secret.duplicate(),
            &self.params,
            self.issuer.as_deref(),
            &self.account,
        )
    }

    /// Activates the enrollment if `code` is valid at `now` within `window`.
    ///
    /// # Errors
    /// [`Unconfirmed`], which gives the pending enrollment back with the reason.
    pub fn confirm(
        self,
        code: &str,
        now: UnixTime,
        window: Window,
    ) -> Result<Enrollment, Unconfirmed> {
        let totp = Totp::new(&self.secret, self.params).window(window);
        match totp.verify(code, now, None) {
            Ok(matched) => Ok(Enrollment {
                secret: self.secret,
                totp,
                last_used_step: Some(matched.step()),
            }),
            Err(rejection) => Err(Unconfirmed {
                pending: self,
                rejection,
            }),
        }
    }
}

impl fmt::Debug for PendingEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingEnrollment")
            .field("secret", &"***")
            .field("params", &self.params)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

/// A confirmation that failed: the pending enrollment, unchanged, and why.
#[derive(Debug)]
pub struct Unconfirmed {
    pending: PendingEnrollment,
    rejection: Rejection,
}

impl Unconfirmed {
    /// Why the code was refused.
    pub fn rejection(&self) -> Rejection {
        self.rejection
    }

    /// The pending enrollment, to try again.
    pub fn into_pending(self) -> PendingEnrollment {
        self.pending
    }
}

/// An active TOTP enrollment: the secret, its parameters and the last used step.
pub struct Enrollment {
    secret: OtpSecret,
    totp: Totp,
    last_used_step: Option<u64>,
}

impl Enrollment {
    /// Rebuilds an active enrollment from storage (the default window: one step each side).
    pub fn from_parts(secret: OtpSecret, params: TotpParams, last_used_step: Option<u64>) -> Self {
        let totp = Totp::new(&secret, params);
        Self {
            secret,
            totp,
            last_used_step,
        }
    }

    /// Sets the verification window.
    #[must_use]
    pub fn window(mut self, window: Window) -> Self {
        self.totp = self.totp.window(window);
        self
    }

    /// The secret, to store (encrypted).
    pub fn secret(&self) -> &OtpSecret {
        &self.secret
    }

    /// The code parameters.
    pub fn params(&self) -> &TotpParams {
        self.totp.params()
    }

    /// The last step a code was accepted for (set by confirmation): store it.
    pub fn last_used_step(&self) -> Option<u64> {
        self.last_used_step
    }

    /// Verifies `code` at `now`; on success records the step as used.
    ///
    /// # Errors
    /// A [`Rejection`], [`Rejection::Replayed`] for a code at or before the last used step.
    pub fn verify(&mut self, code: &str, now: UnixTime) -> Result<MatchedStep, Rejection> {
        let matched = self.totp.verify(code, now, self.last_used_step)?;
        self.last_used_step = Some(matched.step());
        Ok(matched)
    }

    /// [`Enrollment::verify`] with the step also claimed in a shared one-time-use store under
    /// `scope` (the user id), so concurrent requests with one code cannot both pass.
    ///
    /// # Errors
    /// Outer: [`OtpError::Store`] (refuse the login). Inner: the verdict.
    pub async fn verify_claimed<S: OneTimeStore + ?Sized>(
        &mut self,
        store: &S,
        scope: &str,
        code: &str,
        now: UnixTime,
    ) -> Result<Result<MatchedStep, Rejection>, OtpError> {
        let verdict = self
            .totp
            .verify_claimed(store, scope, code, now, self.last_used_step)
            .await?;
        if let Ok(matched) = verdict {
            self.last_used_step = Some(matched.step());
        }
        Ok(verdict)
    }
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("secret", &"***")
            .field("totp", &self.totp)
            .field("last_used_step", &self.last_used_step)
            .finish()
    }
}

/// Whether a user must have MFA, and by when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Requirement {
    /// The policy does not require MFA for this user.
    NotRequired,
    /// Required, and the user is enrolled.
    Satisfied,
    /// Required, not enrolled, still within the grace period: remind, do not block.
    GracePeriod {
        /// When the grace period ends.
        until: UnixTime,
    },
    /// Required, not enrolled, grace period over: the user must enroll before going on.
    EnrollNow,
}

/// Who must use MFA, with a grace period for enrolling.
///
/// ```
/// use palisade_core::time::UnixTime;
/// use palisade_otp::enroll::{MfaPolicy, Requirement};
///
/// let policy = MfaPolicy::new().require_role("admin").grace_period_days(7);
/// let since = UnixTime::from_secs(1_700_000_000);
/// let day = 86_400;
/// assert!(!policy.must_enroll_now(["admin"], false, since, UnixTime::from_secs(1_700_000_000 + 6 * day)));
/// assert!(policy.must_enroll_now(["admin"], false, since, UnixTime::from_secs(1_700_000_000 + 7 * day)));
/// assert_eq!(policy.requirement(["viewer"], false, since, since), Requirement::NotRequired);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MfaPolicy {
    everyone: bool,
    roles: BTreeSet<String>,
    grace_days: u32,
}

impl MfaPolicy {
    /// Requires nobody (add roles or everyone), with no grace period.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires MFA of every user.
    #[must_use]
    pub fn require_everyone(mut self) -> Self {
        self.everyone = true;
        self
    }

    /// Requires MFA of users with `role`.
    #[must_use]
    pub fn require_role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }

    /// Gives users `days` days to enroll once the requirement applies to them.
    #[must_use]
    pub fn grace_period_days(mut self, days: u32) -> Self {
        self.grace_days = days;
        self
    }

    /// Whether a user with `roles` falls under the policy.
    pub fn applies_to<'r>(&self, roles: impl IntoIterator<Item = &'r str>) -> bool {
        self.everyone || roles.into_iter().any(|r| self.roles.contains(r))
    }

    /// The user's requirement at `now`. `required_since` is when the requirement began to apply
    /// to this user: the later of the account's creation, the grant of the role, and the
    /// policy's rollout.
    pub fn requirement<'r>(
        &self,
        roles: impl IntoIterator<Item = &'r str>,
        enrolled: bool,
        required_since: UnixTime,
        now: UnixTime,
    ) -> Requirement {
        if !self.applies_to(roles) {
            return Requirement::NotRequired;
        }
        if enrolled {
            return Requirement::Satisfied;
        }
        let grace = Duration::from_secs(u64::from(self.grace_days).saturating_mul(86_400));
        let until = required_since.saturating_add(grace);
        if now < until {
            Requirement::GracePeriod { until }
        } else {
            Requirement::EnrollNow
        }
    }

    /// "Must this user enroll now?": true only for [`Requirement::EnrollNow`].
    pub fn must_enroll_now<'r>(
        &self,
        roles: impl IntoIterator<Item = &'r str>,
        enrolled: bool,
        required_since: UnixTime,
        now: UnixTime,
    ) -> bool {
        self.requirement(roles, enrolled, required_since, now) == Requirement::EnrollNow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::random::SystemRandom;

    #[test]
    fn pending_becomes_active_only_with_a_valid_code() {
        let pending =
            PendingEnrollment::new(TotpParams::new(), Some("ACME"), "ann", &SystemRandom).unwrap();
        let now = UnixTime::from_secs(1_800_000_000);
        let code = Totp::new(pending.secret(), *pending.params())
            .generate(now)
            .unwrap();
        let err = pending
            .confirm("000000x", now, Window::default())
            .unwrap_err();
        assert_eq!(err.rejection(), Rejection::Malformed);
        let pending = err.into_pending();
        let mut active = pending
            .confirm(code.expose_secret(), now, Window::default())
            .unwrap();
        assert_eq!(active.last_used_step(), Some(1_800_000_000 / 30));
        // The confirming code cannot be used again to log in.
        assert_eq!(
            active.verify(code.expose_secret(), now),
            Err(Rejection::Replayed)
        );
        let later = UnixTime::from_secs(1_800_000_030);
        let next = Totp::new(active.secret(), *active.params())
            .generate(later)
            .unwrap();
        assert!(active.verify(next.expose_secret(), later).is_ok());
        assert_eq!(active.last_used_step(), Some(1_800_000_030 / 30));
        assert!(format!("{active:?}").contains("***"));
    }

    #[test]
    fn pending_rejects_unusable_names() {
        assert!(
            PendingEnrollment::new(TotpParams::new(), Some("a:b"), "ann", &SystemRandom).is_err()
        );
        assert!(PendingEnrollment::new(TotpParams::new(), None, "", &SystemRandom).is_err());
    }

    #[test]
    fn policy_roles_everyone_and_grace() {
        let since = UnixTime::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        let admins = MfaPolicy::new().require_role("admin").grace_period_days(3);
        assert_eq!(
            admins.requirement(["user", "admin"], false, since, since),
            Requirement::GracePeriod {
                until: since.saturating_add(day * 3)
            }
        );
        assert_eq!(
            admins.requirement(["admin"], false, since, since.saturating_add(day * 3)),
            Requirement::EnrollNow
        );
        assert_eq!(
            admins.requirement(["admin"], true, since, since.saturating_add(day * 30)),
            Requirement::Satisfied
        );
        assert_eq!(
            admins.requirement(["user"], false, since, since),
            Requirement::NotRequired
        );
        let all = MfaPolicy::new().require_everyone();
        assert!(all.must_enroll_now(std::iter::empty(), false, since, since));
        assert!(!MfaPolicy::new().must_enroll_now(["admin"], false, since, since));
        let forever = MfaPolicy::new()
            .require_everyone()
            .grace_period_days(u32::MAX);
        assert!(!forever.must_enroll_now(
            [],
            false,
            UnixTime::from_nanos(u64::MAX - 1),
            UnixTime::from_nanos(u64::MAX - 1)
        ));
    }
}
