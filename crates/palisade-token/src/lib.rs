#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod api_key;
mod encoding;
pub mod jwt;
pub mod oauth;
pub mod pkce;
pub mod refresh;
pub mod remote_jwks;

use palisade_core::StoreError;
use palisade_core::keyring::KeyringError;
use palisade_core::random::RandomError;

pub use api_key::{
    ApiKey, ApiKeyConfig, ApiKeyHasher, ApiKeyId, ApiKeyRecord, ApiKeyStatus, ApiKeyVerdict,
    ApiKeys, ParsedApiKey, VerifiedApiKey,
};
pub use jwt::{JwtAlgorithm, JwtKeys, JwtRejection, JwtValidation, StandardClaims, Verified};
pub use oauth::{OAuthStates, PkceStateCheck, Purpose, StateCheck, StateRejection};
pub use pkce::{PkceChallenge, PkceCheck, PkceError, PkceMethod, PkcePolicy, PkceVerifier};
pub use refresh::{
    FamilyStore, MemoryFamilyStore, RefreshConfig, RefreshOutcome, RefreshToken, RefreshTokens,
    TokenFamily,
};
pub use remote_jwks::{
    JwksFetchError, JwksResponse, JwksSource, RemoteJwks, RemoteJwksConfig, RemoteJwksError,
};

/// Why a token operation could not be carried out.
///
/// Expected negatives (a wrong key, an expired state, a reused refresh token) are not errors:
/// they are the values [`ApiKeyVerdict`], [`JwtRejection`], [`StateCheck`] and
/// [`RefreshOutcome`]. An error here means the operation itself could not run: no usable key,
/// a failed random source, a store that did not answer. No message carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The keyring has no usable key, or a key is unsuitable (see the source).
    #[error("keyring error")]
    Keyring(#[from] KeyringError),
    /// A key's material is not a valid key for its algorithm.
    #[error("key {kid} is not a valid {algorithm} key: {reason}")]
    InvalidKey {
        /// The key's id.
        kid: String,
        /// The algorithm it was loaded for.
        algorithm: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The random source failed.
    #[error("the random source failed")]
    Random(#[from] RandomError),
    /// A store (one-time claims, family revocations) did not answer; fail closed.
    #[error("token store error")]
    Store(#[from] StoreError),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// An API key cannot be rotated or revoked in its current state.
    #[error("api key {id} cannot be {action}: it is {status}")]
    InvalidTransition {
        /// The key's public id.
        id: String,
        /// What was attempted (`rotated`, `revoked`).
        action: &'static str,
        /// Its status.
        status: ApiKeyStatus,
    },
    /// A presented API key does not have the API key format.
    #[error("malformed api key")]
    MalformedApiKey,
    /// A presented API key has the right format but a wrong checksum: a typo or a truncation.
    #[error("api key checksum mismatch")]
    ApiKeyChecksum,
    /// Claims could not be serialized into a token.
    #[error("claims cannot be encoded: {0}")]
    Encode(String),
}
