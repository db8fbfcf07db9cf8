//! Benches of palisade-core: the randomness source beside the OS call.
//!
//! Every nonce, secret and code draws 12 to 32 bytes; the peer is ring's `SystemRandom`, which
//! makes a `getrandom(2)` call per draw.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use palisade_core::random::{OsRandom, SecureRandom, SystemRandom};
use ring::rand::SecureRandom as _;

fn random(c: &mut Criterion) {
    let mut group = c.benchmark_group("random");
    let ring_os = ring::rand::SystemRandom::new();
    for len in [12usize, 24, 32] {
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0u8; len];
        group.bench_with_input(BenchmarkId::new("palisade_system", len), &len, |b, _| {
            b.iter(|| SystemRandom.fill(std::hint::black_box(&mut buf)))
        });
        group.bench_with_input(BenchmarkId::new("palisade_os", len), &len, |b, _| {
            b.iter(|| OsRandom.fill(std::hint::black_box(&mut buf)))
        });
        group.bench_with_input(BenchmarkId::new("ring_os", len), &len, |b, _| {
            b.iter(|| ring_os.fill(std::hint::black_box(&mut buf)))
        });
    }
    group.finish();
}

criterion_group!(benches, random);
criterion_main!(benches);
