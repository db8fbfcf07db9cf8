//! One-time claims in Redis: TOTP steps, OAuth `state`, refresh tokens.
//!
//! [`RedisOneTimeStore`] implements [`OneTimeStore`] with one `SET key 1 NX PX ttl` per claim,
//! the time-to-live measured on this host's clock (the clock that computed `expires_at`): atomic across every instance that shares the server, and forgotten by Redis on
//! expiry (every key has a TTL). Keys are `<prefix>:once:<scope>:<hex token>`, with no hash tag,
//! so claims spread over a cluster's slots.
//!
//! # Errors
//! [`StoreError::Unavailable`] when Redis is unreachable or slow: refuse the token (fail
//! closed).

use core::fmt::Write as _;

use palisade_core::StoreError;
use palisade_core::once::{Claim, OneTimeStore};
use palisade_core::time::{Clock, SystemClock, UnixTime};

use crate::Redis;

/// The shortest life of a stored claim, in milliseconds.
const MIN_CLAIM_TTL_MS: u64 = 1_000;

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
        // A relative time-to-live, not PXAT: `expires_at` is on this host's clock, and with PXAT a
        // Redis clock running ahead would store every claim already expired (Redis answers OK and
        // deletes the key), so a code could be used twice. A claim at or past its expiry is still
        // kept for a second so that a concurrent or late duplicate is refused.
        let ttl_ms = expires_at
            .as_millis()
            .saturating_sub(SystemClock.now().as_millis())
            .max(MIN_CLAIM_TTL_MS);
        let set: Option<String> = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(self.redis_key(scope, token))
                    .arg(1u8)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        Ok(if set.is_some() {
            Claim::Claimed
        } else {
            Claim::AlreadyUsed
        })
    }
}
