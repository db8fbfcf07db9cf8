//! Benches of palisade-field beside their peers.
//!
//! - `field_seal` / `field_open`: raw ring AES-256-GCM (the limit: a `LessSafeKey` built once,
//!   the nonce drawn from the same `SystemRandom`, output in a fresh `Vec`), the same with the
//!   associated data Palisade binds for the bench's context (`ring_raw_aad`: what binding costs
//!   ring itself, so the gap to `palisade` is Palisade's own work), against
//!   `FieldCipher::encrypt` / `decrypt` (header, context binding, key lookup, counter) at 32 B,
//!   256 B and 4 KiB; plus the RustCrypto backend, XChaCha20-Poly1305 (over ring and through
//!   `chacha20poly1305`), the text form and per-column subkeys at 32 B.
//! - `field_fernet`: Fernet encrypt/decrypt of 32 B (Python's `cryptography` takes about 16 us
//!   to encrypt 32 B on the reference machine).
//! - `field_migrate`: rows per second through the migration engine, in memory, and against
//!   PostgreSQL when `PALISADE_DATABASE_URL` is set.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use palisade_core::keyring::Keyring;
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::time::UnixTime;
use palisade_field::fernet::{Fernet, FernetKey};
use palisade_field::migrate::{Encoding, MemoryStore, Migrator};
use palisade_field::{Algorithm, Backend, Context, FieldCipher};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const KEY_BYTES: [u8; 32] = [
    0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90,
    0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90,
];

fn keyring() -> Keyring {
    Keyring::parse(&format!("2026q4:active:{KEY}")).expect("keyring")
}

fn raw_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY_BYTES).expect("key"))
}

/// The limit: nonce from SystemRandom, seal into a fresh Vec (nonce ‖ data ‖ tag).
fn raw_seal(key: &LessSafeKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    SystemRandom.fill(&mut nonce).expect("random");
    let mut out = Vec::with_capacity(12 + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[12..],
        )
        .expect("seal");
    out.extend_from_slice(tag.as_ref());
    out
}

/// The limit: copy the sealed value into a fresh Vec and open it in place.
fn raw_open(key: &LessSafeKey, sealed: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = sealed[..12].try_into().expect("nonce");
    let mut buf = sealed[12..].to_vec();
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .expect("open")
        .len();
    buf.truncate(len);
    buf
}

/// The associated data Palisade binds for `ctx` under key `2026q4` (see the envelope docs):
/// version, algorithm, key id length and key id, then the encoded context.
fn bound_aad(ctx: &Context<'_>) -> Vec<u8> {
    let mut aad = vec![0x01, 0x01, 6];
    aad.extend_from_slice(b"2026q4");
    aad.extend_from_slice(&ctx.to_bytes().expect("context"));
    aad
}

fn seal_open(c: &mut Criterion) {
    let ring_key = raw_key();
    let cipher = FieldCipher::new(&keyring()).expect("cipher");
    let ctx = Context::new("users", "phone", 1_234_567_i64);
    let aad = bound_aad(&ctx);
    // The peer binds exactly what Palisade binds: ring opens a Palisade value with it.
    let value = cipher.encrypt(b"check", &ctx).expect("encrypt");
    let nonce: [u8; 12] = value[9..21].try_into().expect("nonce");
    let mut body = value[21..].to_vec();
    ring_key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut body,
        )
        .expect("the peer's associated data matches Palisade's");
    let mut seal = c.benchmark_group("field_seal");
    for len in [32usize, 256, 4096] {
        let plaintext = vec![0x5a; len];
        seal.throughput(Throughput::Bytes(len as u64));
        seal.bench_with_input(BenchmarkId::new("ring_raw", len), &len, |b, _| {
            b.iter(|| raw_seal(&ring_key, black_box(&plaintext), &[]))
        });
        seal.bench_with_input(BenchmarkId::new("ring_raw_aad", len), &len, |b, _| {
            b.iter(|| raw_seal(&ring_key, black_box(&plaintext), black_box(&aad)))
        });
        seal.bench_with_input(BenchmarkId::new("palisade", len), &len, |b, _| {
            b.iter(|| cipher.encrypt(black_box(&plaintext), black_box(&ctx)))
        });
    }
    let plaintext = [0x5a; 32];
    seal.throughput(Throughput::Bytes(32));
    let variants = [
        (
            "palisade_rustcrypto",
            Backend::RustCrypto,
            Algorithm::Aes256Gcm,
            false,
        ),
        (
            "palisade_xchacha",
            Backend::Ring,
            Algorithm::XChaCha20Poly1305,
            false,
        ),
        (
            "palisade_xchacha_rustcrypto",
            Backend::RustCrypto,
            Algorithm::XChaCha20Poly1305,
            false,
        ),
        (
            "palisade_subkeys",
            Backend::Ring,
            Algorithm::Aes256Gcm,
            true,
        ),
    ];
    for (name, backend, algorithm, subkeys) in variants {
        let c = FieldCipher::builder(&keyring())
            .backend(backend)
            .algorithm(algorithm)
            .column_subkeys(subkeys)
            .build()
            .expect("cipher");
        seal.bench_function(BenchmarkId::new(name, 32), |b| {
            b.iter(|| c.encrypt(black_box(&plaintext), black_box(&ctx)))
        });
    }
    seal.bench_function(BenchmarkId::new("palisade_text", 32), |b| {
        b.iter(|| cipher.encrypt_text(black_box(&plaintext), black_box(&ctx)))
    });
    seal.finish();

    let mut open = c.benchmark_group("field_open");
    for len in [32usize, 256, 4096] {
        let plaintext = vec![0x5a; len];
        let raw_sealed = raw_seal(&ring_key, &plaintext, &[]);
        let raw_sealed_aad = raw_seal(&ring_key, &plaintext, &aad);
        let sealed = cipher.encrypt(&plaintext, &ctx).expect("encrypt");
        open.throughput(Throughput::Bytes(len as u64));
        open.bench_with_input(BenchmarkId::new("ring_raw", len), &len, |b, _| {
            b.iter(|| raw_open(&ring_key, black_box(&raw_sealed), &[]))
        });
        open.bench_with_input(BenchmarkId::new("ring_raw_aad", len), &len, |b, _| {
            b.iter(|| raw_open(&ring_key, black_box(&raw_sealed_aad), black_box(&aad)))
        });
        open.bench_with_input(BenchmarkId::new("palisade", len), &len, |b, _| {
            b.iter(|| cipher.decrypt(black_box(&sealed), black_box(&ctx)))
        });
    }
    open.throughput(Throughput::Bytes(32));
    let rc = FieldCipher::builder(&keyring())
        .backend(Backend::RustCrypto)
        .build()
        .expect("cipher");
    let sealed = cipher.encrypt(&plaintext, &ctx).expect("encrypt");
    open.bench_function(BenchmarkId::new("palisade_rustcrypto", 32), |b| {
        b.iter(|| rc.decrypt(black_box(&sealed), black_box(&ctx)))
    });
    let text = cipher.encrypt_text(&plaintext, &ctx).expect("encrypt");
    open.bench_function(BenchmarkId::new("palisade_text", 32), |b| {
        b.iter(|| cipher.decrypt(black_box(&text), black_box(&ctx)))
    });
    open.finish();
}

fn fernet(c: &mut Criterion) {
    let f = Fernet::new(
        FernetKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").expect("key"),
    );
    let now = UnixTime::from_secs(1_700_000_000);
    let plaintext = [0x5a; 32];
    let token = f.encrypt(&plaintext, now, &SystemRandom).expect("encrypt");
    let mut group = c.benchmark_group("field_fernet");
    group.throughput(Throughput::Bytes(32));
    group.bench_function("encrypt/32", |b| {
        b.iter(|| f.encrypt(black_box(&plaintext), now, &SystemRandom))
    });
    group.bench_function("decrypt/32", |b| {
        b.iter(|| f.decrypt(black_box(&token), Some(Duration::from_secs(3600)), now))
    });
    group.finish();
}

fn migrate(c: &mut Criterion) {
    const ROWS: i64 = 10_000;
    let cipher = FieldCipher::new(&keyring()).expect("cipher");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut fresh = MemoryStore::in_place(Encoding::Text);
    for id in 1..=ROWS {
        fresh.insert(id, Some(format!("+1555{id:07}").into_bytes()));
    }
    let mut group = c.benchmark_group("field_migrate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("memory_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut store = fresh.clone();
                let m = Migrator::new(&cipher, "users", "phone");
                let start = Instant::now();
                rt.block_on(m.run(&mut store)).expect("run");
                total += start.elapsed();
            }
            total
        })
    });
    if let Ok(url) = std::env::var("PALISADE_DATABASE_URL") {
        use palisade_field::migrate::postgres::{PgStore, tokio_postgres};
        let table = format!("pf_bench_{}", std::process::id());
        let mut client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute(&format!(
                    "CREATE TABLE {table} (id bigint PRIMARY KEY, phone text)"
                ))
                .await
                .expect("create");
            client
        });
        group.bench_function("postgres_rows", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    rt.block_on(client.batch_execute(&format!(
                        "TRUNCATE {table}; INSERT INTO {table} \
                         SELECT g, '+1555' || lpad(g::text, 7, '0') FROM generate_series(1, {ROWS}) g"
                    )))
                    .expect("fill");
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut store =
                            PgStore::new(&mut client, &table, "id", "phone", "phone").expect("store");
                        store.prepare().await.expect("prepare");
                        Migrator::new(&cipher, "users", "phone")
                            .run(&mut store)
                            .await
                            .expect("run")
                    });
                    total += start.elapsed();
                }
                total
            })
        });
        rt.block_on(client.batch_execute(&format!("DROP TABLE {table}")))
            .expect("drop");
    }
    group.finish();
}

criterion_group!(benches, seal_open, fernet, migrate);
criterion_main!(benches);
