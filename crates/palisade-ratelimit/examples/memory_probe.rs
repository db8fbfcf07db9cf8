//! The loop of the `ratelimit_memory` bench, for counting instructions and cache misses:
//! `valgrind --tool=callgrind --cache-sim=yes target/release/examples/memory_probe palisade deny
//! 100000 1000000`. Arguments: `palisade` or `governor`, `allow` or `deny`, the number of keys,
//! the number of checks. Every key is checked once before the loop, as in the bench, so the
//! loop only finds keys.

use core::num::NonZeroU32;
use std::hint::black_box;

use palisade_ratelimit::{MemoryLimiter, Quota};

fn key_index(i: u64, keys: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9) % keys
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let governor = arg(1, "palisade") == "governor";
    let allow = arg(2, "allow") == "allow";
    let keys: u64 = arg(3, "100000").parse().unwrap_or(100_000).max(1);
    let checks: u64 = arg(4, "1000000").parse().unwrap_or(1_000_000);
    let mut ok = 0u64;
    if governor {
        let quota = if allow {
            governor::Quota::per_second(NonZeroU32::MAX)
        } else {
            governor::Quota::per_hour(NonZeroU32::MIN)
        };
        let gov = governor::RateLimiter::keyed(quota);
        for k in 0..keys {
            let _ = gov.check_key(&k);
        }
        for i in 1..=checks {
            ok += u64::from(black_box(gov.check_key(&key_index(i, keys)).is_ok()));
        }
    } else {
        let quota = if allow {
            Quota::per_hour(u64::MAX / 2)
        } else {
            Quota::per_hour(1)
        };
        let pal = MemoryLimiter::new(quota);
        for k in 0..keys {
            let _ = pal.check(&k.to_be_bytes());
        }
        for i in 1..=checks {
            let key = key_index(i, keys).to_be_bytes();
            ok += u64::from(black_box(pal.check(&key).is_ok_and(|d| d.is_allowed())));
        }
    }
    black_box(ok);
}
