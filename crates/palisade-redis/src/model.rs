//! A paper model: one million rate-limit decisions per second across 50 service instances.
//!
//! This module holds no code; it sizes a deployment from the figures measured in the README
//! (`cargo bench -p palisade-benches --bench redis`, `scripts/redis-benchmark.sh`).
//!
//! # Per shard
//! A Redis shard (a cluster master) runs scripts on one core. The rate-limit script measured
//! here, pipelined, at 31 000 to 44 000 `EVALSHA`/s on one node (`redis-benchmark -c 50 -P 16`:
//! 30 700 allow, 44 200 deny; Palisade's pipelined handle: 31 100 and 39 400), with client and
//! server sharing a loaded 2-core machine. Take **30 000 EVALSHA/s per shard** as the planning
//! figure (the allow path, which writes; a denial in an unchanged window writes nothing and
//! costs less).
//!
//! # Shards needed
//! 1 000 000 decisions/s ÷ 30 000 = 34 shards at 100%; at a 60% target utilisation (headroom
//! for failover, when a promoted replica takes a dead master's slots, and for bursts),
//! **56 masters**, plus one replica each. Keys spread over the 16 384 slots by their hash tag,
//! so the load is even unless one key is hot: a single key is served by one shard, so no
//! single key can take more than one shard's ~30 000 decisions/s.
//!
//! # What the local deny cache saves
//! A denied key is remembered in each instance until its retry-after, and further requests for
//! it are denied without a round trip (0.38 µs in process). If a fraction `d` of decisions are
//! repeat denials answered by the cache, Redis sees `(1 - d)` × 1M operations/s:
//!
//! | repeat denials `d` | EVALSHA/s | masters at 60% of 30 000 |
//! |---|---|---|
//! | 0% | 1 000 000 | 56 |
//! | 30% (normal abuse) | 700 000 | 39 |
//! | 90% (a flood from few keys) | 100 000 | 6 |
//!
//! A flood from many distinct keys (each denied once) is not helped by the cache: each first
//! denial is one round trip. Limit such floods earlier (per network, at the edge).
//!
//! # Round trips per decision
//! - one key (an API limit): **one** `EVALSHA`, one round trip; the script reads `TIME`, so no
//!   clock round trip; the script is sent once per node (`NOSCRIPT` reloads it);
//! - a repeat denial in the deny cache: **zero**;
//! - several keys in one decision (a login checking an account key and an IP key): one script
//!   per hash slot, issued concurrently: one round trip of latency, one operation per slot.
//!
//! # Per instance
//! 1M/s ÷ 50 instances = 20 000 decisions/s each. One [`Redis`](crate::Redis) handle per
//! instance multiplexes all tasks over one connection per master and pipelines them; one
//! handle reached 26 000 to 51 000 decisions/s on the cluster here (50 concurrent tasks), so
//! one handle per instance suffices and no connection pool is needed. At 20 000/s and a
//! 0.2 ms network round trip, about 4 decisions are in flight per instance on average
//! (Little's law), far below the 50 measured.
