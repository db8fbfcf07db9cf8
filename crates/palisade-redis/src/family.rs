//! Revoked refresh-token families in Redis.
//!
//! [`RedisFamilyStore`] implements [`FamilyStore`]: a script sets `<prefix>:family:<family
//! hex>` with `PXAT <until>` to revoke (keeping the later end when revoked twice; Redis 7's
//! `PEXPIRETIME`), `EXISTS` checks. Redis
//! forgets a revocation when its family has expired, so every key has a TTL.
//!
//! # Errors
//! [`StoreError::Unavailable`] when Redis is unreachable or slow: refuse the redemption (fail
//! closed).

use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::family::{FamilyStore, TokenFamily};
use palisade_core::time::UnixTime;

use crate::Redis;

/// A [`FamilyStore`] in Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisFamilyStore {
    redis: Redis,
    script: Arc<redis::Script>,
}

/// Revokes `KEYS[1]` until `ARGV[1]` (ms since the epoch), never shortening an earlier
/// revocation (`PEXPIRETIME`: -2 for no key).
const REVOKE: &str = r"
local at = tonumber(ARGV[1])
if redis.call('PEXPIRETIME', KEYS[1]) < at then
  redis.call('SET', KEYS[1], 1, 'PXAT', at)
end
";

impl core::fmt::Debug for RedisFamilyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisFamilyStore")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisFamilyStore {
    /// The store on `redis` (its prefix keeps applications apart).
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: Arc::new(redis::Script::new(REVOKE)),
        }
    }

    /// The Redis key of `family`'s revocation.
    pub fn redis_key(&self, family: &TokenFamily) -> Vec<u8> {
        self.redis
            .plain_key("family", family.to_string().as_bytes())
    }
}

impl FamilyStore for RedisFamilyStore {
    async fn revoke(&self, family: &TokenFamily, until: UnixTime) -> Result<(), StoreError> {
        let mut invocation = self.script.key(self.redis_key(family));
        invocation.arg(until.as_millis().max(1));
        self.redis.invoke::<()>(&invocation).await
    }

    async fn is_revoked(&self, family: &TokenFamily) -> Result<bool, StoreError> {
        let n: u32 = self
            .redis
            .query(redis::cmd("EXISTS").arg(self.redis_key(family)))
            .await?;
        Ok(n > 0)
    }
}
