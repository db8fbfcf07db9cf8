//! An issuer's JWKS, fetched and cached: the resource server's view of an identity provider
//! whose keys rotate.
//!
//! [`RemoteJwks`] holds the last good key set and fetches again when it is older than its
//! refresh interval (or the response's `Cache-Control: max-age`, kept within the interval and
//! the minimum gap), and when a token names a `kid` it does not know, because a provider
//! publishes a new key before signing with it. Fetches are at least
//! [`RemoteJwksConfig::min_refetch`] apart, so a flood of tokens with made-up `kid`s costs the
//! provider one request per gap, not one per token.
//!
//! The transport is the caller's ([`JwksSource`]): this crate has no HTTP client, so the
//! application's own (with its TLS settings, proxy and timeouts) does the request. A failed
//! refresh keeps the old keys (a provider outage does not sign everyone out); with no keys yet,
//! verification fails closed with [`RemoteJwksError::Fetch`]. Keys of the document that cannot
//! be used are reported ([`RemoteJwks::skipped`]), never silently dropped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use palisade_core::time::UnixTime;
use serde::de::DeserializeOwned;

use crate::jwt::{JwtKeys, JwtRejection, JwtValidation, SkippedJwk, Verified};

/// Largest JWKS document accepted (providers publish a few keys: a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// One fetched JWKS document.
#[derive(Debug, Clone)]
pub struct JwksResponse {
    /// The body, JSON.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age` of the response, if it had one ([`max_age`] reads it).
    pub max_age: Option<Duration>,
}

/// Why a fetch failed, as the transport tells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksFetchError {
    /// The server answered with a status other than 200.
    #[error("the JWKS endpoint answered HTTP {0}")]
    Status(u16),
    /// Connection, TLS or timeout failure.
    #[error("the JWKS endpoint could not be reached: {0}")]
    Transport(String),
}

/// Fetches an issuer's JWKS document (usually an HTTPS GET of its `jwks_uri`).
pub trait JwksSource: Send + Sync {
    /// Fetches the document once.
    ///
    /// # Errors
    /// [`JwksFetchError`] when there is no document to read.
    fn fetch(&self) -> Result<JwksResponse, JwksFetchError>;
}

/// Why [`RemoteJwks`] refused a token or could not refresh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteJwksError {
    /// No key set could be fetched yet.
    #[error("JWKS fetch failed: {0}")]
    Fetch(#[from] JwksFetchError),
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("the JWKS document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not a JWKS.
    #[error("the JWKS document is not a JWK set: {0}")]
    Parse(String),
    /// A fetch was wanted but the last one was less than `min_refetch` ago.
    #[error("JWKS refetch is rate-limited")]
    RateLimited,
    /// The token itself is refused.
    #[error("token rejected: {0}")]
    Rejected(JwtRejection),
}

/// How often [`RemoteJwks`] fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteJwksConfig {
    /// A key set older than this is fetched again before use (default one hour).
    pub refresh: Duration,
    /// Fetches are at least this far apart, on a `kid` miss too (default 30 seconds).
    pub min_refetch: Duration,
}

impl Default for RemoteJwksConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(3600),
            min_refetch: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    keys: Option<Arc<JwtKeys>>,
    skipped: Vec<SkippedJwk>,
    /// When the keys must be fetched again.
    stale_at: Option<UnixTime>,
    /// The last fetch attempt, successful or not (the rate limit counts both).
    last_attempt: Option<UnixTime>,
    fetches: u64,
}

/// A cached, self-refreshing JWKS of one issuer. See the [module docs](self).
#[derive(Debug)]
pub struct RemoteJwks<S> {
    source: S,
    config: RemoteJwksConfig,
    // One lock for the cache; it is held across a fetch so that concurrent misses make one
    // request, not one each. Verification itself runs on a cloned `Arc` outside the lock.
    cache: Mutex<Cache>,
}

impl<S: JwksSource> RemoteJwks<S> {
    /// A cache over `source`; nothing is fetched until the first use.
    pub fn new(source: S, config: RemoteJwksConfig) -> Self {
        Self {
            source,
            config,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Verifies `token` with the issuer's current keys, fetching them when stale or when the
    /// token's `kid` is unknown (within the rate limit).
    ///
    /// # Errors
    /// [`RemoteJwksError::Rejected`] for a refused token; a fetch or parse error only while no
    /// key set was ever loaded.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        rules: &JwtValidation,
        now: UnixTime,
    ) -> Result<Verified<C>, RemoteJwksError> {
        let keys = self.keys(now)?;
        match keys.verify(token, rules, now) {
            Err(JwtRejection::UnknownKey) => {
                // Perhaps a key published since the last fetch; ask again unless asked lately.
                let Ok(fresher) = self.refresh(now) else {
                    return Err(RemoteJwksError::Rejected(JwtRejection::UnknownKey));
                };
                fresher
                    .verify(token, rules, now)
                    .map_err(RemoteJwksError::Rejected)
            }
            other => other.map_err(RemoteJwksError::Rejected),
        }
    }

    /// The key set to use at `now`: the cached one, fetched again first when stale.
    ///
    /// # Errors
    /// The fetch's error when there is no cached set to fall back on.
    pub fn keys(&self, now: UnixTime) -> Result<Arc<JwtKeys>, RemoteJwksError> {
        let cached = {
            let cache = self.lock();
            match (&cache.keys, cache.stale_at) {
                (Some(keys), Some(stale_at)) if now < stale_at => return Ok(Arc::clone(keys)),
                (keys, _) => keys.clone(),
            }
        };
        match (self.refresh(now), cached) {
            (Ok(keys), _) => Ok(keys),
            // A stale set beats none: the provider may be down for a moment.
            (Err(_), Some(keys)) => Ok(keys),
            (Err(e), None) => Err(e),
        }
    }

    /// Fetches now, unless the last attempt was less than `min_refetch` ago.
    ///
    /// # Errors
    /// [`RemoteJwksError::RateLimited`], or why the fetch or its document failed (the cached
    /// set is kept).
    pub fn refresh(&self, now: UnixTime) -> Result<Arc<JwtKeys>, RemoteJwksError> {
        let mut cache = self.lock();
        if let Some(last) = cache.last_attempt
            && now.saturating_duration_since(last) < self.config.min_refetch
            && now >= last
        {
            return Err(RemoteJwksError::RateLimited);
        }
        cache.last_attempt = Some(now);
        cache.fetches = cache.fetches.saturating_add(1);
        let response = self.source.fetch()?;
        if response.body.len() > MAX_JWKS_BYTES {
            return Err(RemoteJwksError::TooLarge);
        }
        let jwks: JwkSet = serde_json::from_slice(&response.body)
            .map_err(|e| RemoteJwksError::Parse(e.to_string()))?;
        let (keys, skipped) = JwtKeys::from_jwks_lenient(&jwks);
        let keys = Arc::new(keys);
        let ttl = response
            .max_age
            .unwrap_or(self.config.refresh)
            .clamp(self.config.min_refetch, self.config.refresh);
        cache.keys = Some(Arc::clone(&keys));
        cache.skipped = skipped;
        cache.stale_at = Some(now.saturating_add(ttl));
        Ok(keys)
    }

    /// The keys of the last fetched document that could not be used, and why (log them).
    pub fn skipped(&self) -> Vec<SkippedJwk> {
        self.lock().skipped.clone()
    }

    /// How many fetches were attempted (for metrics).
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break halfway.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `max-age` of a `Cache-Control` header value (`no-cache`/`no-store` give zero), for a
/// [`JwksSource`] to put in [`JwksResponse::max_age`].
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            age = value
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("MAX-AGE=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store, max-age=300"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=-1"), None);
        assert_eq!(max_age("public"), None);
    }
}
