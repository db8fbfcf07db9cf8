//! Benches of palisade-otp beside totp-rs (and ring's HMAC-SHA-1), in one run.
//!
//! - `otp_generate`: one code for a time.
//! - `otp_verify`: a ±1-step window. Palisade always computes and compares all three steps;
//!   totp-rs's `check` stops at the first match, so it is measured with a code of the current
//!   step (two steps computed, its best realistic case) and with a wrong code (three steps).
//!   `palisade_cold` includes scheduling the key (`Totp::new`), as when a server loads the
//!   secret per request; `palisade` reuses a scheduled key.
//! - `otp_hmac_sha1_x3`: three HMAC-SHA-1 over an 8-byte counter with a precomputed key:
//!   Palisade's key schedule against ring's `hmac::Key`.
//! - `otp_recovery`: consuming a recovery code against a set of ten.

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::UnixTime;
use palisade_otp::recovery::RecoveryCodes;
use palisade_otp::{OtpSecret, Totp, TotpParams};
use std::hint::black_box;

const SECRET: &[u8; 20] = b"12345678901234567890";
const NOW: u64 = 1_700_000_015;

fn fixtures() -> (OtpSecret, Totp, totp_rs::TOTP) {
    let secret =
        OtpSecret::from_bytes(SecretBytes::from_slice(SECRET)).unwrap_or_else(|_| unreachable!());
    let totp = Totp::new(&secret, TotpParams::new());
    let peer = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, SECRET.to_vec());
    (secret, totp, peer)
}

fn generate(c: &mut Criterion) {
    let (_, totp, peer) = fixtures();
    let now = UnixTime::from_secs(NOW);
    let mut group = c.benchmark_group("otp_generate");
    group.bench_function("palisade", |b| b.iter(|| totp.generate(black_box(now))));
    group.bench_function("totp_rs", |b| b.iter(|| peer.generate(black_box(NOW))));
    group.finish();
}

fn verify(c: &mut Criterion) {
    let (secret, totp, peer) = fixtures();
    let now = UnixTime::from_secs(NOW);
    let current = peer.generate(NOW);
    let step = NOW / 30;
    let window: Vec<String> = (step - 1..=step + 1)
        .map(|s| peer.generate(s * 30))
        .collect();
    let wrong = (0..10u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap_or_default();
    assert!(totp.verify(&current, now, None).is_ok() && peer.check(&current, NOW));
    assert!(totp.verify(&wrong, now, None).is_err() && !peer.check(&wrong, NOW));

    let mut group = c.benchmark_group("otp_verify");
    for (label, code) in [("valid", &current), ("wrong", &wrong)] {
        group.bench_function(format!("palisade/{label}"), |b| {
            b.iter(|| totp.verify(black_box(code), black_box(now), black_box(None)))
        });
        group.bench_function(format!("palisade_cold/{label}"), |b| {
            b.iter(|| {
                Totp::new(black_box(&secret), TotpParams::new()).verify(
                    black_box(code),
                    black_box(now),
                    None,
                )
            })
        });
        group.bench_function(format!("totp_rs/{label}"), |b| {
            b.iter(|| peer.check(black_box(code), black_box(NOW)))
        });
    }
    group.finish();
}

fn hmac_sha1(c: &mut Criterion) {
    let (_, totp, _) = fixtures();
    let ring_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET);
    let step = NOW / 30;
    let mut group = c.benchmark_group("otp_hmac_sha1_x3");
    group.bench_function("palisade", |b| {
        b.iter(|| {
            for s in step - 1..=step + 1 {
                black_box(totp.generate_step(black_box(s)));
            }
        })
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            for s in step - 1..=step + 1 {
                black_box(ring::hmac::sign(&ring_key, &black_box(s).to_be_bytes()));
            }
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let keyring = Keyring::single(
        KeyId::new("bench").unwrap_or_else(|_| unreachable!()),
        SecretBytes::from_slice(&[9u8; 32]),
    );
    let issued = RecoveryCodes::new()
        .generate(&keyring, &SystemRandom)
        .unwrap_or_else(|_| unreachable!());
    let stored = issued.stored().clone();
    let mut group = c.benchmark_group("otp_recovery");
    group.bench_function("palisade_consume_wrong_of_10", |b| {
        b.iter(|| {
            let mut set = stored.clone();
            set.consume(&keyring, black_box("0000-0000-0000-0000"))
        })
    });
    group.finish();
}

criterion_group!(benches, generate, verify, hmac_sha1, recovery);
criterion_main!(benches);
