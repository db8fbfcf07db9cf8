//! The crate's one error type.

use palisade_core::StoreError;

use crate::decision::Decision;

/// What went wrong. Denials are not errors: they are [`Decision`]s.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The counter store could not answer (Redis down, memory store full). `fallback` is the
    /// decision the configured [`FailPolicy`](crate::FailPolicy) gives: allowed when failing
    /// open, denied when failing closed.
    #[error("the rate-limit store is unavailable")]
    Unavailable {
        /// The store's error.
        #[source]
        source: StoreError,
        /// What the fail policy decides.
        fallback: Decision,
    },
    /// A quota that cannot be enforced (zero period, a log too long to keep).
    #[error("invalid quota: {0}")]
    InvalidQuota(&'static str),
    /// A configuration that does not parse or validate.
    #[error("invalid rate-limit configuration: {0}")]
    Config(String),
}

impl RateLimitError {
    /// The decision to act on: the fail policy's for an unavailable store, a denial otherwise.
    pub fn fallback(&self) -> Decision {
        match self {
            Self::Unavailable { fallback, .. } => *fallback,
            _ => Decision::denied(
                0,
                core::time::Duration::ZERO,
                core::time::Duration::from_secs(1),
            ),
        }
    }
}
