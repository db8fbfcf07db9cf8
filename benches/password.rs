//! Benches of palisade-password beside their peer, the `argon2` crate used directly.
//!
//! `password_hash/*`: one Argon2id hash at each preset. Criterion's throughput figure
//! (elements per second) is hashes per second on one core: the figure for sizing login servers
//! (cores needed = logins per second / that figure). The peer computes the same hash with
//! `argon2::Argon2::hash_password`; the difference is our fallible allocation, the wiping of
//! Argon2's memory, and building the PHC string.
//!
//! `password_verify/*`: verification of a stored hash and the dummy path for a missing user
//! (whose times should match), at the default preset.
//!
//! `password_policy/*`: a policy check (length, NFKC, the common-password list, context words).
//!
//! Run: `cargo bench -p palisade-benches --bench password -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use argon2::PasswordHasher as _;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use palisade_password::{Hasher, Params, Policy};

const PASSWORD: &str = "correct horse battery staple";

fn presets() -> [(&'static str, Params); 3] {
    [
        ("owasp_19mib_t2_p1", Params::OWASP_19_MIB),
        ("owasp_46mib_t1_p1", Params::OWASP_46_MIB),
        ("rfc9106_64mib_t3_p4", Params::RFC9106_64_MIB),
    ]
}

fn hash(c: &mut Criterion) {
    let mut group = c.benchmark_group("password_hash");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let salt = argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef")
        .unwrap_or_else(|e| unreachable!("16-byte salt: {e}"));
    for (name, params) in presets() {
        let hasher = Hasher::new(params);
        group.bench_with_input(BenchmarkId::new("palisade", name), &hasher, |b, h| {
            b.iter(|| h.hash(black_box(PASSWORD)))
        });
        let raw = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(params.m_kib(), params.t(), params.p(), Some(32))
                .unwrap_or_else(|e| unreachable!("preset parameters: {e}")),
        );
        group.bench_with_input(BenchmarkId::new("argon2_crate", name), &raw, |b, a| {
            b.iter(|| {
                a.hash_password(black_box(PASSWORD.as_bytes()), &salt)
                    .map(|h| h.to_string())
            })
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("password_verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let hasher = Hasher::default();
    let stored = hasher
        .hash(PASSWORD)
        .unwrap_or_else(|e| unreachable!("hashing: {e}"))
        .into_string();
    group.bench_function("palisade_existing_user", |b| {
        b.iter(|| hasher.verify_or_dummy(Some(black_box(&stored)), black_box("wrong guess")))
    });
    group.bench_function("palisade_missing_user", |b| {
        b.iter(|| hasher.verify_or_dummy(black_box(None), black_box("wrong guess")))
    });
    // A dormant account whose hash predates the current preset (m = 4 MiB, t = 1): it must not
    // answer faster than the others.
    let legacy = Hasher::new(Params::new(4096, 1, 1).unwrap_or_else(|e| unreachable!("{e}")))
        .hash(PASSWORD)
        .unwrap_or_else(|e| unreachable!("hashing: {e}"))
        .into_string();
    group.bench_function("palisade_legacy_user", |b| {
        b.iter(|| hasher.verify_or_dummy(Some(black_box(&legacy)), black_box("wrong guess")))
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("password_policy");
    let policy = Policy::default();
    group.bench_function("check_accept", |b| {
        b.iter(|| policy.check_with_context(black_box(PASSWORD), &["alice", "example.com"]))
    });
    group.bench_function("check_non_ascii", |b| {
        b.iter(|| policy.check(black_box("cafe\u{301} au lait, s'il vous pla\u{ee}t")))
    });
    group.finish();
}

criterion_group!(benches, hash, verify, policy);
criterion_main!(benches);
