//! The Redis rate store: the same atomic check-and-add, shared by every instance.
//!
//! [`RedisRateStore`] implements [`RateStore`] with one Lua script ([`BATCH_SCRIPT`] for a
//! batch, such as a login decision's five windows: one round trip on a single node), loaded once and called with
//! `EVALSHA` ([`redis::Script`] falls back to loading it after a server restart), so every
//! decision is one round trip and atomic on the server. The script:
//! - reads the time from the server (`TIME`), so instances with skewed clocks agree;
//! - touches exactly one key, `<prefix>:rate:{<key>}:c` (counter, a hash) or
//!   `<prefix>:rate:{<key>}:l` (log, a sorted set); the braces are a hash tag, so a key's
//!   windows share a Redis Cluster slot, with every other store's keys tagged by the same key
//!   (the batch script touches one such key per request, in several slots, so a cluster gets
//!   one script per request instead);
//! - sets a TTL on every write (counter: the end of the next window; log: one period after the
//!   newest entry), so Redis forgets idle keys by itself.
//!
//! The connection is the shared [`Redis`] handle: multiplexed, so concurrent decisions from many
//! tasks are pipelined, and reconnecting by itself after a failure. While the server is
//! unreachable, calls fail with [`StoreError::Unavailable`] within the handle's time-out; the
//! limiter's fail policy decides what to answer.
//!
//! # Errors
//! [`StoreError::Unavailable`] for connection loss, time-outs and unexpected replies.

use core::fmt;
use std::sync::Arc;

use palisade_core::StoreError;
use palisade_core::rate::{RateCounts, RateOp, RateRequest, RateStore, WindowKind};
use palisade_core::time::UnixTime;

use crate::Redis;

/// The window operation shared by both scripts, as a Lua function of one key and the server's
/// `now`. Times are microseconds (the precision of Redis `TIME`); Lua numbers are doubles, exact
/// for integers up to 2^53, so limits and costs are capped there and large values are written
/// with `%.0f`.
macro_rules! apply_fn {
    () => {
        r"
local function f(x) return string.format('%.0f', x) end
local function apply(key, kind, period, limit, op, cost, now)
  if op == 'x' then
    redis.call('DEL', key)
    return {1, now, 0, 0, 0}
  end
  if kind == 'c' then
    local start = now - (now % period)
    local s = redis.call('HMGET', key, 's', 'c', 'p', 'w')
    local ws, cur, prev = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
    local same = ws == start and tonumber(s[4]) == period
    local cur0, prev0 = cur, prev
    if ws == nil or tonumber(s[4]) ~= period then
      cur, prev = 0, 0
    elseif ws == start then
    elseif ws + period == start then
      prev, cur = cur, 0
    elseif ws < start then
      cur, prev = 0, 0
    else
      start = ws
    end
    local elapsed = now - start
    if elapsed < 0 then elapsed = 0 end
    local weighted = 0
    if prev > 0 and elapsed < period then
      weighted = math.ceil(prev * (period - elapsed) / period)
    end
    local admitted = 1
    if op == 'a' or op == 'p' then
      if weighted + cur + cost > limit then admitted = 0 end
      if op == 'a' and admitted == 1 then cur = cur + cost end
    elseif op == 'r' then
      cur = math.max(cur - cost, 0)
    end
    -- Written only when something changed: a denial in the same window writes nothing, and the
    -- key keeps the TTL of its last write (which depends only on the window start).
    if op ~= 'p' and not (same and cur == cur0 and prev == prev0) and (cur > 0 or prev > 0 or ws ~= nil) then
      redis.call('HSET', key, 's', f(start), 'c', f(cur), 'p', f(prev), 'w', f(period))
      redis.call('PEXPIRE', key, math.ceil((start + 2 * period - now) / 1000) + 1)
    end
    return {admitted, now, cur, prev, start}
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', f(now - period))
  local n = redis.call('ZCARD', key)
  local admitted = 1
  if op == 'a' or op == 'p' then
    if n + cost > limit then admitted = 0 end
    if op == 'a' and admitted == 1 and cost > 0 then
      local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
      local at = now
      if last[2] and tonumber(last[2]) > at then at = tonumber(last[2]) end
      local i = 0
      while i < cost do
        local args = {}
        local j = 0
        while j < 500 and i < cost do
          i = i + 1
          j = j + 1
          args[#args + 1] = f(at)
          args[#args + 1] = f(at) .. ':' .. (n + i)
        end
        redis.call('ZADD', key, unpack(args))
      end
      n = n + cost
      redis.call('PEXPIRE', key, math.ceil((at + period - now) / 1000) + 1)
    end
  elseif op == 'r' and cost > 0 and n > 0 then
    redis.call('ZPOPMAX', key, cost)
  end
  local out = {admitted, now, 0, 0, 0}
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for k = 2, #entries, 2 do out[#out + 1] = tonumber(entries[k]) end
  return out
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"
    };
}

/// The script of one request: `KEYS[1]`, and `ARGV` = kind, period, limit, op, cost.
pub const SCRIPT: &str = concat!(
    apply_fn!(),
    r"return apply(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), now)
"
);

/// The script of a batch ([`RateStore::apply_all`]): `KEYS[i]` with `ARGV[5i-4..5i]` as in
/// [`SCRIPT`]. Every acquisition is peeked first; they are added only if all fit, else they
/// answer as the peeks. The reply is each key's reply, each preceded by its length.
pub const BATCH_SCRIPT: &str = concat!(
    apply_fn!(),
    r"
local function run(i, op)
  local j = 5 * (i - 1)
  return apply(KEYS[i], ARGV[j + 1], tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]), op, tonumber(ARGV[j + 5]), now)
end
local peeks, fits = {}, true
for i = 1, #KEYS do
  if ARGV[5 * (i - 1) + 4] == 'a' then
    peeks[i] = run(i, 'p')
    if peeks[i][1] == 0 then fits = false end
  end
end
local out = {}
for i = 1, #KEYS do
  local r
  if peeks[i] and not fits then r = peeks[i] else r = run(i, ARGV[5 * (i - 1) + 4]) end
  out[#out + 1] = #r
  for k = 1, #r do out[#out + 1] = r[k] end
end
return out
"
);

/// Lua numbers are exact up to 2^53.
const LUA_MAX: u64 = 1 << 53;

/// A [`RateStore`] in Redis, shared by every instance that uses the same server and prefix.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisRateStore {
    redis: Redis,
    script: Arc<redis::Script>,
    batch: Arc<redis::Script>,
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisRateStore {
    /// The store on `redis` (its prefix keeps applications apart).
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: Arc::new(redis::Script::new(SCRIPT)),
            batch: Arc::new(redis::Script::new(BATCH_SCRIPT)),
        }
    }

    /// The Redis key that holds `key`'s window of `kind`: `<prefix>:rate:{<key>}:c` (counter)
    /// or `:l` (log), hash-tagged by `key`.
    pub fn redis_key(&self, key: &[u8], kind: WindowKind) -> Vec<u8> {
        let suffix = match kind {
            WindowKind::Log => ":l",
            WindowKind::Counter => ":c",
        };
        self.redis.tagged_key("rate", key, suffix)
    }
}

impl RedisRateStore {
    /// Adds `request`'s key and arguments to `invocation`.
    fn push(&self, invocation: &mut redis::ScriptInvocation<'_>, key: &[u8], request: RateRequest) {
        let (op, cost) = match request.op {
            RateOp::Acquire(c) => ("a", c),
            RateOp::Peek(c) => ("p", c),
            RateOp::Refund(c) => ("r", c),
            RateOp::Clear => ("x", 0),
        };
        let kind = request.kind;
        let period_us = (request.period_nanos() / 1_000).clamp(1, LUA_MAX);
        invocation
            .key(self.redis_key(key, kind))
            .arg(if kind == WindowKind::Log { "l" } else { "c" })
            .arg(period_us)
            .arg(request.limit.min(LUA_MAX))
            .arg(op)
            .arg(cost.min(LUA_MAX));
    }
}

impl RateStore for RedisRateStore {
    async fn apply(&self, key: &[u8], request: RateRequest) -> Result<RateCounts, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        self.push(&mut invocation, key, request);
        let reply: Vec<i64> = self.redis.invoke(&invocation).await?;
        parse_reply(request.kind, &reply)
    }

    /// One `EVALSHA` of [`BATCH_SCRIPT`] on a single node. On a Redis Cluster the keys of a
    /// batch fall in different slots, so the requests go one script each, in order.
    async fn apply_all(
        &self,
        batch: &[(&[u8], RateRequest)],
    ) -> Result<Vec<RateCounts>, StoreError> {
        if self.redis.is_cluster() {
            return palisade_core::rate::apply_in_order(self, batch).await;
        }
        let mut invocation = self.batch.prepare_invoke();
        for &(key, request) in batch {
            self.push(&mut invocation, key, request);
        }
        let reply: Vec<i64> = self.redis.invoke(&invocation).await?;
        let mut rest = reply.as_slice();
        let mut out = Vec::with_capacity(batch.len());
        for &(_, request) in batch {
            let (len, tail) = rest
                .split_first()
                .ok_or_else(|| StoreError::unavailable(BadReply))?;
            let len = usize::try_from(*len).map_err(|_| StoreError::unavailable(BadReply))?;
            if tail.len() < len {
                return Err(StoreError::unavailable(BadReply));
            }
            let (one, tail) = tail.split_at(len);
            out.push(parse_reply(request.kind, one)?);
            rest = tail;
        }
        Ok(out)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from the rate-limit script")]
struct BadReply;

fn parse_reply(kind: WindowKind, reply: &[i64]) -> Result<RateCounts, StoreError> {
    let us = |v: i64| UnixTime::from_nanos(u64::try_from(v).unwrap_or(0).saturating_mul(1_000));
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let [admitted, now, current, previous, start, log @ ..] = reply else {
        return Err(StoreError::unavailable(BadReply));
    };
    let admitted = *admitted == 1;
    Ok(match kind {
        WindowKind::Log => {
            RateCounts::log(us(*now), admitted, log.iter().map(|&t| us(t)).collect())
        }
        WindowKind::Counter => RateCounts::counter(
            us(*now),
            admitted,
            count(*current),
            count(*previous),
            us(*start),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_or_fail_typed() {
        assert!(parse_reply(WindowKind::Counter, &[1, 2]).is_err());
        let c = parse_reply(WindowKind::Counter, &[1, 5_000_000, 3, 2, 4_000_000]).unwrap();
        assert!(c.admitted);
        assert_eq!((c.current, c.previous), (3, 2));
        assert_eq!(c.now, UnixTime::from_secs(5));
        let l = parse_reply(
            WindowKind::Log,
            &[0, 5_000_000, 0, 0, 0, 1_000_000, 2_000_000],
        )
        .unwrap();
        assert_eq!(l.current, 2);
        assert_eq!(l.log, vec![UnixTime::from_secs(1), UnixTime::from_secs(2)]);
    }
}
