//! The crate's one error type.
//!
//! Variants name only what a caller can act on. Authentication failures are opaque on purpose:
//! [`FieldError::Authentication`] says neither which byte was wrong nor whether the key, the
//! context or the data did not match, so the error channel is no oracle. No variant carries key
//! material or plaintext.

use std::sync::Arc;

use palisade_core::keyring::{KeyId, KeyringError};
use palisade_core::random::RandomError;

/// Why an encryption, decryption, key operation or migration step failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The value names a key that the keyring does not hold.
    #[error("unknown key id {id}")]
    UnknownKey {
        /// The id read from the value's header.
        id: KeyId,
    },
    /// The value names a key that is retired: it may no longer be read.
    #[error("key {id} is retired")]
    KeyRetired {
        /// The id read from the value's header.
        id: KeyId,
    },
    /// The value did not authenticate: wrong key, wrong context, or changed bytes. Deliberately
    /// without detail.
    #[error("authentication failed")]
    Authentication,
    /// The value is not a well-formed ciphertext (or Fernet token, or key).
    #[error("malformed input: {reason}")]
    Malformed {
        /// What is wrong, in general terms.
        reason: &'static str,
    },
    /// A Fernet token is older than the time-to-live the caller allowed, or stamped too far in
    /// the future.
    #[error("token expired or not yet valid")]
    Expired,
    /// The key that would encrypt reached the per-process encryption limit set with
    /// [`crate::FieldCipherBuilder::encryption_limit`]: rotate to a fresh key.
    #[error("key {id} reached its encryption limit; rotate to a new key")]
    LimitReached {
        /// The active key.
        id: KeyId,
    },
    /// The keyring could not be loaded or does not suit field encryption.
    #[error("keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// The random source failed.
    #[error("the random source failed")]
    Random(#[from] RandomError),
    /// The storage behind a migration failed. Keeps the backend's error.
    #[error("migration storage failed")]
    Storage {
        /// The backend's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl FieldError {
    /// Wraps a storage backend's error.
    pub fn storage(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Storage {
            source: Arc::new(source),
        }
    }

    pub(crate) const fn malformed(reason: &'static str) -> Self {
        Self::Malformed { reason }
    }
}
