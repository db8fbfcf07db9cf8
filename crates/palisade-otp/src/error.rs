//! The crate's error type: faults a caller can act on.
//!
//! Expected negatives are not errors: a wrong or replayed code is a
//! [`Rejection`](crate::Rejection), a spent recovery code a
//! [`RecoveryOutcome::Rejected`](crate::recovery::RecoveryOutcome). No variant ever carries a
//! secret, a code or a recovery code.

use palisade_core::StoreError;
use palisade_core::keyring::KeyringError;
use palisade_core::random::RandomError;

/// What went wrong in palisade-otp.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OtpError {
    /// A TOTP period of zero seconds.
    #[error("the period must be at least one second")]
    InvalidPeriod,
    /// A code length other than 6, 7 or 8 digits.
    #[error("codes have 6 to 8 digits, not {digits}")]
    InvalidDigits {
        /// The rejected length.
        digits: u32,
    },
    /// The time lies before T0 (or past the last representable step): no time step exists.
    #[error("the time is outside the range of time steps")]
    TimeOutOfRange,
    /// A secret shorter than 128 bits offered to a path that requires full strength.
    #[error("the secret has {bits} bits; at least 128 are required")]
    WeakSecret {
        /// The secret's length in bits.
        bits: usize,
    },
    /// An empty secret, or one longer than the supported maximum.
    #[error("the secret length is unsupported")]
    SecretLength,
    /// The text is not base32 (RFC 4648).
    #[error("the secret is not valid base32")]
    InvalidBase32,
    /// An `otpauth://` URI that cannot be read.
    #[error("malformed otpauth uri: {reason}")]
    InvalidUri {
        /// What is wrong (never the secret).
        reason: &'static str,
    },
    /// The issuer in the label differs from the `issuer` parameter and the policy rejects that.
    #[error("the issuer in the label differs from the issuer parameter")]
    IssuerMismatch,
    /// The text is not a recovery code.
    #[error("malformed recovery code")]
    MalformedRecoveryCode,
    /// A recovery-code count of zero or above the maximum.
    #[error("the number of recovery codes must be between 1 and {max}")]
    RecoveryCodeCount {
        /// The largest count accepted.
        max: usize,
    },
    /// The secure random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The keyring has no usable key for recovery codes.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The one-time-use store could not answer: refuse the code (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The QR encoder failed (the data is too long for a QR code).
    #[cfg(feature = "qr")]
    #[error("cannot render the qr code: {reason}")]
    Qr {
        /// The encoder's reason.
        reason: String,
    },
}
