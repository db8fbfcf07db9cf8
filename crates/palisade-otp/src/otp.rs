//! HOTP (RFC 4226) and TOTP (RFC 6238): generating and verifying codes.
//!
//! [`Hotp`] and [`Totp`] hold the key schedule of one secret (see the `mac` notes: two
//! compressions per code, no allocation). [`Totp::verify`] is the login check: it computes the
//! code of every step in the window, compares all of them in constant time with no early exit,
//! and returns the newest matching step newer than the last one used, as a [`MatchedStep`] that
//! only this crate can construct. A wrong, malformed or replayed code is a [`Rejection`], a
//! value, not an error.
//!
//! # Errors
//! [`OtpError::InvalidPeriod`] (a period of 0), [`OtpError::InvalidDigits`] (not 6 to 8) and
//! [`OtpError::TimeOutOfRange`] (a time before T0) from the constructors and generators.
//!
//! # Panics
//! None: all time arithmetic is checked.
//!
//! # Security
//! - Replay: persist [`MatchedStep::step`] and pass it back as `last_used`; a code at or before
//!   it is [`Rejection::Replayed`]. For several service instances racing on one code, use
//!   [`Totp::verify_claimed`] with a shared one-time-use store.
//! - The window bounds how many codes an attacker may hit per guess: one step each side is the
//!   RFC 6238 recommendation; widen it only for known clock drift, and rate-limit guesses.
//! - [`Code`] is secret: zeroized, `***` in `Debug`.

use core::fmt;
use core::time::Duration;

use palisade_core::once::{Claim, OneTimeStore};
use palisade_core::time::UnixTime;
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::OtpError;
use crate::mac::KeyedMac;
use crate::secret::{Algorithm, OtpSecret};

/// The number of digits of a code: 6, 7 or 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, what every authenticator app shows by default.
    pub const SIX: Self = Self(6);
    /// Seven digits.
    pub const SEVEN: Self = Self(7);
    /// Eight digits (the RFC 6238 test vectors).
    pub const EIGHT: Self = Self(8);

    /// `digits` when it is 6, 7 or 8.
    ///
    /// # Errors
    /// [`OtpError::InvalidDigits`] otherwise.
    pub fn new(digits: u32) -> Result<Self, OtpError> {
        match digits {
            6 => Ok(Self::SIX),
            7 => Ok(Self::SEVEN),
            8 => Ok(Self::EIGHT),
            _ => Err(OtpError::InvalidDigits { digits }),
        }
    }

    /// The count as a number.
    pub const fn get(self) -> u8 {
        self.0
    }

    const fn modulus(self) -> u32 {
        match self.0 {
            6 => 1_000_000,
            7 => 10_000_000,
            _ => 100_000_000,
        }
    }
}

impl Default for Digits {
    fn default() -> Self {
        Self::SIX
    }
}

/// A one-time code: secret until used, so zeroized, redacted, and compared in constant time.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Code {
    digits: [u8; 8],
    len: u8,
}

impl Code {
    fn new(value: u32, digits: Digits) -> Self {
        let mut out = [b'0'; 8];
        let len = usize::from(digits.get());
        let mut v = value % digits.modulus();
        for slot in out.iter_mut().take(len).rev() {
            // `v % 10` is below 10, so the cast cannot truncate.
            *slot = b'0' + u8::try_from(v % 10).unwrap_or(0);
            v /= 10;
        }
        Self {
            digits: out,
            len: digits.get(),
        }
    }

    /// The code as ASCII digits, leading zeros kept.
    pub fn expose_secret(&self) -> &str {
        let digits = self.digits.get(..usize::from(self.len)).unwrap_or_default();
        core::str::from_utf8(digits).unwrap_or_default()
    }
}

impl PartialEq for Code {
    fn eq(&self, other: &Self) -> bool {
        self.digits.ct_eq(&other.digits).into() && self.len == other.len
    }
}

impl Eq for Code {}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(***)")
    }
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// The input is not a code of the configured length (spaces aside).
    Malformed,
    /// No step (or counter) in the window produces this code.
    Invalid,
    /// The code is right but for a step at or before the last one used: a replay.
    Replayed,
    /// `now` lies before T0, so no step exists: a clock or configuration fault.
    TimeOutOfRange,
}

impl Rejection {
    /// A short lower-case name for logs and audit metadata.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Invalid => "invalid",
            Self::Replayed => "replayed",
            Self::TimeOutOfRange => "time_out_of_range",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Proof that a TOTP code was verified: the step it matched. Only this crate constructs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "persist the step as the new last used step"]
pub struct MatchedStep {
    step: u64,
    current: u64,
}

impl MatchedStep {
    /// The matched time step: store it and pass it back as `last_used` next time.
    pub const fn step(&self) -> u64 {
        self.step
    }

    /// How many steps the code's clock is ahead of ours (negative: behind).
    pub fn drift(&self) -> i64 {
        let (hi, lo, sign) = if self.step >= self.current {
            (self.step, self.current, 1)
        } else {
            (self.current, self.step, -1)
        };
        i64::try_from(hi - lo).unwrap_or(i64::MAX) * sign
    }
}

/// Proof that an HOTP code was verified: the counter it matched. Only this crate constructs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "persist the counter after this one as the next expected counter"]
pub struct MatchedCounter(u64);

impl MatchedCounter {
    /// The matched counter; the next expected counter is one past it.
    pub const fn counter(&self) -> u64 {
        self.0
    }
}

/// Parses `input` (ASCII digits, spaces and tabs ignored) into a number, or `None`.
///
/// The work depends on the input's length only, not on which digits it holds.
fn parse_code(input: &str, digits: Digits) -> Option<u32> {
    let mut value: u32 = 0;
    let mut count: usize = 0;
    let mut ok = true;
    if input.len() > 32 {
        return None;
    }
    for b in input.bytes() {
        if b == b' ' || b == b'\t' {
            continue;
        }
        ok &= b.is_ascii_digit();
        value = value
            .wrapping_mul(10)
            .wrapping_add(u32::from(b.wrapping_sub(b'0')));
        count = count.saturating_add(1);
    }
    (ok && count == usize::from(digits.get())).then_some(value)
}

/// An HOTP key: HMAC-based one-time codes over a counter (RFC 4226).
pub struct Hotp {
    mac: KeyedMac,
    digits: Digits,
}

impl Hotp {
    /// Schedules `secret` for `algorithm`, producing `digits`-digit codes.
    pub fn new(secret: &OtpSecret, algorithm: Algorithm, digits: Digits) -> Self {
        Self {
            mac: KeyedMac::new(algorithm, secret.expose_secret()),
            digits,
        }
    }

    /// The code for `counter`.
    pub fn generate(&self, counter: u64) -> Code {
        Code::new(self.mac.truncated(counter), self.digits)
    }

    /// Verifies `code` against counters `next ..= next + look_ahead`, in constant time over
    /// all of them; on a match returns the lowest matching counter (store `counter() + 1`).
    ///
    /// # Errors
    /// [`Rejection::Malformed`] or [`Rejection::Invalid`].
    pub fn verify(
        &self,
        code: &str,
        next: u64,
        look_ahead: u8,
    ) -> Result<MatchedCounter, Rejection> {
        let parsed = parse_code(code, self.digits);
        let input = parsed.unwrap_or(u32::MAX);
        let last = next.saturating_add(u64::from(look_ahead));
        let mut found = subtle::Choice::from(0);
        let mut chosen = 0u64;
        for counter in (next..=last).rev() {
            let value = self.mac.truncated(counter) % self.digits.modulus();
            let hit = value.ct_eq(&input);
            chosen.conditional_assign(&counter, hit);
            found |= hit;
        }
        match parsed {
            None => Err(Rejection::Malformed),
            Some(_) if bool::from(found) => Ok(MatchedCounter(chosen)),
            Some(_) => Err(Rejection::Invalid),
        }
    }
}

impl fmt::Debug for Hotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hotp")
            .field("key", &"***")
            .field("digits", &self.digits)
            .finish()
    }
}

/// The TOTP period: a positive number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period(u64);

impl Period {
    /// 30 seconds, the RFC 6238 default.
    pub const THIRTY_SECONDS: Self = Self(30);

    /// A period of `secs` seconds.
    ///
    /// # Errors
    /// [`OtpError::InvalidPeriod`] for zero.
    pub const fn from_secs(secs: u64) -> Result<Self, OtpError> {
        if secs == 0 {
            Err(OtpError::InvalidPeriod)
        } else {
            Ok(Self(secs))
        }
    }

    /// The period in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }
}

impl Default for Period {
    fn default() -> Self {
        Self::THIRTY_SECONDS
    }
}

/// What a TOTP code is computed from, besides the secret: the parameters an authenticator app
/// is told in the `otpauth://` URI, and T0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TotpParams {
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: Digits,
    /// Step length.
    pub period: Period,
    /// T0, in seconds since the Unix epoch (0 in practice).
    pub t0: u64,
}

impl TotpParams {
    /// SHA-1, 6 digits, 30 seconds, T0 = 0: what every authenticator app supports.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the hash.
    #[must_use]
    pub const fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the code length.
    #[must_use]
    pub const fn digits(mut self, digits: Digits) -> Self {
        self.digits = digits;
        self
    }

    /// Sets the step length.
    #[must_use]
    pub const fn period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }

    /// Sets T0 (whole seconds count; a fraction is dropped).
    #[must_use]
    pub const fn t0(mut self, t0: UnixTime) -> Self {
        self.t0 = t0.as_secs();
        self
    }

    /// The time step containing `secs` seconds after the epoch.
    ///
    /// # Errors
    /// [`OtpError::TimeOutOfRange`] before T0.
    pub const fn step_at_secs(&self, secs: u64) -> Result<u64, OtpError> {
        match secs.checked_sub(self.t0) {
            Some(since) => Ok(since / self.period.0),
            None => Err(OtpError::TimeOutOfRange),
        }
    }

    /// The time step containing `now`.
    ///
    /// # Errors
    /// [`OtpError::TimeOutOfRange`] before T0.
    pub const fn step_at(&self, now: UnixTime) -> Result<u64, OtpError> {
        self.step_at_secs(now.as_secs())
    }

    /// When `step` starts, saturating at the largest instant.
    pub fn step_start(&self, step: u64) -> UnixTime {
        let secs = step
            .checked_mul(self.period.0)
            .and_then(|s| s.checked_add(self.t0))
            .unwrap_or(u64::MAX);
        UnixTime::from_secs(secs)
    }
}

/// How many steps before and after the current one a code may be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Steps before the current one (a code typed just before the step changed).
    pub past: u8,
    /// Steps after the current one (an authenticator whose clock runs ahead).
    pub future: u8,
}

impl Default for Window {
    /// One step each side (RFC 6238 section 5.2).
    fn default() -> Self {
        Self { past: 1, future: 1 }
    }
}

/// A TOTP key with its parameters and verification window.
///
/// ```
/// use palisade_core::time::UnixTime;
/// use palisade_otp::{OtpSecret, Rejection, Totp, TotpParams};
///
/// let secret = OtpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
/// let totp = Totp::new(&secret, TotpParams::new());
/// let now = UnixTime::from_secs(1_111_111_111);
/// let code = totp.generate(now)?;
///
/// let matched = totp.verify(code.expose_secret(), now, None).unwrap();
/// // The same code again, with the step now recorded as used:
/// assert_eq!(
///     totp.verify(code.expose_secret(), now, Some(matched.step())),
///     Err(Rejection::Replayed)
/// );
/// # Ok::<(), palisade_otp::OtpError>(())
/// ```
pub struct Totp {
    hotp: Hotp,
    params: TotpParams,
    window: Window,
}

impl Totp {
    /// Schedules `secret` under `params`, with the default window (one step each side).
    pub fn new(secret: &OtpSecret, params: TotpParams) -> Self {
        Self {
            hotp: Hotp::new(secret, params.algorithm, params.digits),
            params,
            window: Window::default(),
        }
    }

    /// Sets the verification window.
    #[must_use]
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The parameters.
    pub fn params(&self) -> &TotpParams {
        &self.params
    }

    /// The code for the step containing `now`.
    ///
    /// # Errors
    /// [`OtpError::TimeOutOfRange`] before T0.
    pub fn generate(&self, now: UnixTime) -> Result<Code, OtpError> {
        Ok(self.hotp.generate(self.params.step_at(now)?))
    }

    /// The code for `secs` seconds after the epoch (for times a [`UnixTime`] cannot hold, such as
    /// the year-2603 RFC 6238 vector).
    ///
    /// # Errors
    /// [`OtpError::TimeOutOfRange`] before T0.
    pub fn generate_at_secs(&self, secs: u64) -> Result<Code, OtpError> {
        Ok(self.hotp.generate(self.params.step_at_secs(secs)?))
    }

    /// The code for time step `step`.
    pub fn generate_step(&self, step: u64) -> Code {
        self.hotp.generate(step)
    }

    /// Verifies `code` at `now`: the newest step in the window newer than `last_used` whose code
    /// matches, compared in constant time over the whole window.
    ///
    /// # Errors
    /// A [`Rejection`]: [`Malformed`](Rejection::Malformed), [`Invalid`](Rejection::Invalid),
    /// [`Replayed`](Rejection::Replayed) (the code matches only steps at or before `last_used`),
    /// or [`TimeOutOfRange`](Rejection::TimeOutOfRange) (`now` before T0).
    pub fn verify(
        &self,
        code: &str,
        now: UnixTime,
        last_used: Option<u64>,
    ) -> Result<MatchedStep, Rejection> {
        let current = self
            .params
            .step_at(now)
            .map_err(|_| Rejection::TimeOutOfRange)?;
        let parsed = parse_code(code, self.params.digits);
        // A malformed input still goes through the whole window: the work is the same.
        let input = parsed.unwrap_or(u32::MAX);
        let first = current.saturating_sub(u64::from(self.window.past));
        let last = current.saturating_add(u64::from(self.window.future));
        let modulus = self.params.digits.modulus();
        let mut accepted = subtle::Choice::from(0);
        let mut replayed = subtle::Choice::from(0);
        let mut chosen = 0u64;
        for step in first..=last {
            let value = self.hotp.mac.truncated(step) % modulus;
            let hit = value.ct_eq(&input);
            let newer = match last_used {
                Some(used) => step.ct_gt(&used),
                None => subtle::Choice::from(1),
            };
            let fresh = hit & newer;
            // Ascending order: a later fresh hit overwrites, so the newest one wins.
            chosen.conditional_assign(&step, fresh);
            accepted |= fresh;
            replayed |= hit & !newer;
        }
        if parsed.is_none() {
            Err(Rejection::Malformed)
        } else if bool::from(accepted) {
            Ok(MatchedStep {
                step: chosen,
                current,
            })
        } else if bool::from(replayed) {
            Err(Rejection::Replayed)
        } else {
            Err(Rejection::Invalid)
        }
    }

    /// [`Totp::verify`], then claims the matched step in `store` under `scope` (one scope per
    /// user and secret, for example the user id), so that of several requests carrying the same
    /// code, on one instance or many, exactly one is accepted.
    ///
    /// The claim lasts until the step has left every instance's window (plus one period for
    /// clock differences between instances).
    ///
    /// # Errors
    /// The outer error is [`OtpError::Store`] when the store cannot answer: refuse the login
    /// (fail closed). The inner result is the verdict: a step claimed before is
    /// [`Rejection::Replayed`].
    pub async fn verify_claimed<S: OneTimeStore + ?Sized>(
        &self,
        store: &S,
        scope: &str,
        code: &str,
        now: UnixTime,
        last_used: Option<u64>,
    ) -> Result<Result<MatchedStep, Rejection>, OtpError> {
        let matched = match self.verify(code, now, last_used) {
            Ok(matched) => matched,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let keep = u64::from(self.window.past).saturating_add(2);
        let expires_at = self
            .params
            .step_start(matched.step.saturating_add(keep))
            .saturating_add(Duration::from_secs(1));
        let scope = format!("palisade-otp:totp:{scope}");
        match store
            .claim(&scope, &matched.step.to_be_bytes(), expires_at)
            .await?
        {
            Claim::Claimed => Ok(Ok(matched)),
            Claim::AlreadyUsed => Ok(Err(Rejection::Replayed)),
        }
    }
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("key", &"***")
            .field("params", &self.params)
            .field("window", &self.window)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::secret::SecretBytes;

    fn rfc_secret() -> OtpSecret {
        OtpSecret::from_bytes(SecretBytes::from_slice(b"12345678901234567890")).unwrap()
    }

    #[test]
    fn digits_and_period_are_validated() {
        assert!(matches!(
            Digits::new(5),
            Err(OtpError::InvalidDigits { digits: 5 })
        ));
        assert!(matches!(
            Digits::new(9),
            Err(OtpError::InvalidDigits { .. })
        ));
        assert_eq!(Digits::new(7).unwrap(), Digits::SEVEN);
        assert!(matches!(Period::from_secs(0), Err(OtpError::InvalidPeriod)));
        assert_eq!(Period::from_secs(1).unwrap().as_secs(), 1);
    }

    #[test]
    fn codes_keep_leading_zeros_and_hide_in_debug() {
        let code = Code::new(7_081_804, Digits::EIGHT);
        assert_eq!(code.expose_secret(), "07081804");
        assert_eq!(format!("{code:?}"), "Code(***)");
        assert_eq!(Code::new(123, Digits::SIX).expose_secret(), "000123");
    }

    #[test]
    fn parse_code_rules() {
        assert_eq!(parse_code("123456", Digits::SIX), Some(123_456));
        assert_eq!(parse_code(" 123 456 ", Digits::SIX), Some(123_456));
        assert_eq!(parse_code("012345", Digits::SIX), Some(12_345));
        assert_eq!(parse_code("12345", Digits::SIX), None);
        assert_eq!(parse_code("1234567", Digits::SIX), None);
        assert_eq!(parse_code("12345a", Digits::SIX), None);
        assert_eq!(parse_code("１２３４５６", Digits::SIX), None);
        assert_eq!(parse_code("", Digits::SIX), None);
    }

    #[test]
    fn time_before_t0_is_typed() {
        let params = TotpParams::new().t0(UnixTime::from_secs(1_000));
        assert!(matches!(
            params.step_at_secs(999),
            Err(OtpError::TimeOutOfRange)
        ));
        assert_eq!(params.step_at_secs(1_000).unwrap(), 0);
        let totp = Totp::new(&rfc_secret(), params);
        assert!(matches!(
            totp.generate(UnixTime::from_secs(5)),
            Err(OtpError::TimeOutOfRange)
        ));
        assert_eq!(
            totp.verify("123456", UnixTime::from_secs(5), None),
            Err(Rejection::TimeOutOfRange)
        );
    }

    #[test]
    fn window_edges_at_step_zero_and_the_end_of_time() {
        let totp = Totp::new(
            &rfc_secret(),
            TotpParams::new().period(Period::from_secs(1).unwrap()),
        );
        // Step 0: there is no step -1; the window is {0, 1}.
        let code = totp.generate_step(0);
        assert_eq!(
            totp.verify(code.expose_secret(), UnixTime::EPOCH, None)
                .unwrap()
                .step(),
            0
        );
        // The largest instant: steps past it saturate, no overflow.
        let end = UnixTime::from_nanos(u64::MAX);
        let code = totp.generate(end).unwrap();
        let matched = totp.verify(code.expose_secret(), end, None).unwrap();
        assert_eq!(matched.step(), end.as_secs());
        assert_eq!(matched.drift(), 0);
        let huge = Totp::new(
            &rfc_secret(),
            TotpParams::new().period(Period::from_secs(u64::MAX).unwrap()),
        );
        assert_eq!(huge.generate(end).unwrap(), huge.generate_step(0));
    }

    #[test]
    fn newest_step_wins_and_drift_is_reported() {
        let totp =
            Totp::new(&rfc_secret(), TotpParams::new()).window(Window { past: 2, future: 2 });
        let now = UnixTime::from_secs(30 * 1_000);
        for (step, drift) in [(998, -2), (999, -1), (1_000, 0), (1_001, 1), (1_002, 2)] {
            let code = totp.generate_step(step);
            let m = totp.verify(code.expose_secret(), now, None).unwrap();
            assert_eq!((m.step(), m.drift()), (step, drift));
        }
        assert_eq!(
            totp.verify(totp.generate_step(997).expose_secret(), now, None),
            Err(Rejection::Invalid)
        );
        assert_eq!(
            totp.verify(totp.generate_step(1_003).expose_secret(), now, None),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn replays_and_older_steps_are_refused() {
        let totp = Totp::new(&rfc_secret(), TotpParams::new());
        let now = UnixTime::from_secs(30 * 5_000 + 10);
        let code = totp.generate(now).unwrap();
        let m = totp.verify(code.expose_secret(), now, Some(4_998)).unwrap();
        assert_eq!(m.step(), 5_000);
        assert_eq!(
            totp.verify(code.expose_secret(), now, Some(m.step())),
            Err(Rejection::Replayed)
        );
        // A code of an earlier step after a later one was used: also a replay.
        let previous = totp.generate_step(4_999);
        assert_eq!(
            totp.verify(previous.expose_secret(), now, Some(5_000)),
            Err(Rejection::Replayed)
        );
        // A future step is still fine after the current one was used.
        let next = totp.generate_step(5_001);
        assert_eq!(
            totp.verify(next.expose_secret(), now, Some(5_000))
                .unwrap()
                .step(),
            5_001
        );
        assert_eq!(totp.verify("12 34", now, None), Err(Rejection::Malformed));
    }

    #[test]
    fn hotp_look_ahead_takes_the_lowest_match() {
        let hotp = Hotp::new(&rfc_secret(), Algorithm::Sha1, Digits::SIX);
        // RFC 4226 Appendix D: counter 3 is 969429.
        assert_eq!(hotp.verify("969429", 0, 5).unwrap().counter(), 3);
        assert_eq!(hotp.verify("969429", 4, 5), Err(Rejection::Invalid));
        assert_eq!(hotp.verify("96942", 0, 5), Err(Rejection::Malformed));
        assert_eq!(hotp.verify("755224", u64::MAX, 10), Err(Rejection::Invalid));
    }
}
