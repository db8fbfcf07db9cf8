//! The crate's one error type.

use palisade_core::random::RandomError;

/// What can go wrong when hashing or verifying passwords, or building parameters and policies.
///
/// No variant carries the password or any part of it. A wrong password is not an error: it is
/// [`Verification::Mismatch`](crate::Verification::Mismatch); a password that breaks the policy
/// is [`Verdict::Reject`](crate::Verdict::Reject).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stored string is not a well-formed Argon2 PHC string.
    #[error("malformed password hash: {reason}")]
    MalformedHash {
        /// What is wrong with it (never contains the password; may name a field).
        reason: &'static str,
    },
    /// The stored string is a PHC string of an algorithm other than Argon2 (for example scrypt).
    #[error("unsupported password hash algorithm")]
    UnsupportedAlgorithm,
    /// The stored hash asks for more work than [`CostLimits`](crate::CostLimits) allow; it was
    /// not computed. A corrupted or planted hash could otherwise exhaust memory or CPU.
    #[error("password hash cost exceeds the limits (m={m_kib} KiB, t={t}, p={p})")]
    CostTooHigh {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
    },
    /// Argon2 parameters out of range (see [`Params::new`](crate::Params::new)).
    #[error("invalid argon2 parameters: {reason}")]
    InvalidParams {
        /// Which bound was broken.
        reason: &'static str,
    },
    /// Policy bounds out of range (see [`Policy::new`](crate::Policy::new)).
    #[error("invalid password policy: {reason}")]
    InvalidPolicy {
        /// Which bound was broken.
        reason: &'static str,
    },
    /// The password is longer than [`MAX_PASSWORD_BYTES`](crate::MAX_PASSWORD_BYTES).
    #[error("password longer than {max_bytes} bytes")]
    PasswordTooLong {
        /// The ceiling.
        max_bytes: usize,
    },
    /// The Argon2 working memory could not be allocated.
    #[error("cannot allocate {kib} KiB of argon2 memory")]
    OutOfMemory {
        /// The amount asked for.
        kib: u32,
    },
    /// The random source failed while drawing a salt.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Argon2 itself refused its inputs (not expected once parameters are validated).
    #[error("argon2 failed")]
    Argon2(#[source] argon2::Error),
}
