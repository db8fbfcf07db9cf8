//! The memory store from the attacker's side: a flood of fresh keys. Alone in its binary, so
//! the resident set it measures is this test's.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use core::time::Duration;

use palisade_core::time::{FakeClock, UnixTime};
use palisade_ratelimit::{MemoryLimiter, Quota};

/// The resident set of this process, in bytes (Linux), if it can be read.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The bound documented on `MemoryRateStore` for a million counter keys, the test process
/// included (48 MiB measured).
const BOUND: u64 = 64 << 20;

#[test]
fn a_flood_of_two_million_keys_neither_refuses_newcomers_nor_grows_past_its_bound() {
    // The clock stands still: every flood key stays live for the whole test.
    let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
    let limiter = MemoryLimiter::with_clock(Quota::per_minute(5), clock.clone());
    // A client at its limit, which keeps trying through the flood.
    for _ in 0..5 {
        assert!(limiter.check(b"limited client").unwrap().is_allowed());
    }
    let (mut refused, mut limited_admitted) = (0u64, 0u64);
    for i in 0u64..2_000_000 {
        match limiter.check(&i.to_be_bytes()) {
            Ok(d) if d.is_allowed() => {}
            _ => refused += 1,
        }
        if i % 10_000 == 0 && limiter.check(b"limited client").unwrap().is_allowed() {
            limited_admitted += 1;
        }
    }
    let fresh = limiter.check(b"a fresh client");
    eprintln!(
        "{refused} of 2000000 flood keys refused; {} keys held; rss {:?} MiB",
        limiter.len(),
        rss().map(|b| b >> 20)
    );
    assert!(
        matches!(fresh, Ok(ref d) if d.is_allowed()),
        "a fresh client after the flood: {fresh:?}"
    );
    assert_eq!(refused, 0, "newcomers refused because the table was full");
    assert_eq!(
        limited_admitted, 0,
        "the flood evicted a client that kept using its key, resetting its count"
    );
    assert!(limiter.len() <= 1_000_000 + 64, "{} keys", limiter.len());
    if let Some(bytes) = rss() {
        assert!(bytes < BOUND, "rss {} MiB", bytes >> 20);
    }
    // Keys idle for a whole window are gone; the flood's keys no longer count.
    clock.advance(Duration::from_secs(120));
    assert!(limiter.check(&7u64.to_be_bytes()).unwrap().is_allowed());
}
