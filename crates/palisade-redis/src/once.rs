//! One-time claims in Redis: TOTP steps, OAuth `state`, refresh tokens.
//!
//! [`RedisOneTimeStore`] implements [`OneTimeStore`] with one `SET key 1 NX PXAT expires_at`
//! per claim: atomic across every instance that shares the server, and forgotten by Redis on
//! expiry (every key has a TTL). Keys are `<prefix>:once:<scope>:<hex token>`, with no hash tag,
//! so claims spread over a cluster's slots.
//!
//! # Errors
//! [`StoreError::Unavailable`] when Redis is unreachable or slow: refuse the token (fail
//! closed).

use core::fmt::Write as _;

use palisade_core::StoreError;
use palisade_core::once::{Claim, OneTimeStore};
use palisade_core::time::UnixTime;

use crate::Redis;

/// A [`OneTimeStore`] in Redis. Cloning is cheap and shares the connection.
#[derive(Debug, Clone)]
pub struct RedisOneTimeStore {
    redis: Redis,
}

impl RedisOneTimeStore {
    /// The store on `redis` (its prefix keeps applications apart).
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The Redis key of `token`'s claim in `scope`.
    pub fn redis_key(&self, scope: &str, token: &[u8]) -> Vec<u8> {
        let mut name = String::with_capacity(scope.len() + 2 * token.len() + 1);
        name.push_str(scope);
        name.push(':');
        for b in token {
            let _ = write!(name, "{b:02x}");
        }
        self.redis.plain_key("once", name.as_bytes())
    }
}

impl OneTimeStore for RedisOneTimeStore {
    async fn claim(
        &self,
        scope: &str,
        token: &[u8],
        expires_at: UnixTime,
    ) -> Result<Claim, StoreError> {
        // PXAT needs a time in the future; a claim that is already past its expiry still gets
        // a moment's life so that a concurrent duplicate is refused.
        let at_ms = expires_at.as_millis().max(1);
        let set: Option<String> = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(self.redis_key(scope, token))
                    .arg(1u8)
                    .arg("NX")
                    .arg("PXAT")
                    .arg(at_ms),
            )
            .await?;
        Ok(if set.is_some() {
            Claim::Claimed
        } else {
            Claim::AlreadyUsed
        })
    }
}
