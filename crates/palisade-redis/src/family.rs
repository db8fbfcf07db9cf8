//! Revoked refresh-token families in Redis.
//!
//! [`RedisFamilyStore`] implements [`FamilyStore`]: a script sets `<prefix>:family:<family
//! hex>` with `PXAT <until>` to revoke (keeping the later end when revoked twice; Redis 7's
//! `PEXPIRETIME`), `EXISTS` checks. A token's rotation is one `SET <prefix>:rotation:<family
//! hex><token hex> <ms> NX GET PXAT <until>` (Redis 7): it records the first rotation's time and
//! answers the earlier one when there was one, atomically. Redis forgets a revocation when its
//! family has expired, and a rotation record when its token has, so every key has a TTL.
//!
//! # Errors
//! [`StoreError::Unavailable`] when Redis is unreachable or slow: refuse the redemption (fail
//! closed).

use core::fmt::Write as _;
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::family::{FamilyStore, Rotation, TokenFamily};
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

    /// The Redis key of the rotation record of `token` in `family`.
    pub fn rotation_key(&self, family: &TokenFamily, token: &[u8; 16]) -> Vec<u8> {
        let mut name = family.to_string();
        for b in token {
            let _ = write!(name, "{b:02x}");
        }
        self.redis.plain_key("rotation", name.as_bytes())
    }
}

impl FamilyStore for RedisFamilyStore {
    async fn rotate(
        &self,
        family: &TokenFamily,
        token: &[u8; 16],
        at: UnixTime,
        until: UnixTime,
    ) -> Result<Rotation, StoreError> {
        // PXAT needs a time in the future; a record already past its end still gets a moment's
        // life so that a concurrent duplicate reads it.
        let earlier: Option<u64> = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(self.rotation_key(family, token))
                    .arg(at.as_millis())
                    .arg("NX")
                    .arg("GET")
                    .arg("PXAT")
                    .arg(until.as_millis().max(1)),
            )
            .await?;
        Ok(match earlier {
            None => Rotation::First,
            Some(ms) => Rotation::Again {
                first_at: UnixTime::from_millis(ms),
            },
        })
    }

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
