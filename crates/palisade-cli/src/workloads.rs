//! The hot paths `palisade size` measures, each set up the way a service would run it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use palisade_audit::{Action, AuditEvent, Chainer, Redactor};
use palisade_core::keyring::{KeyId, KeyState, Keyring};
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::secret::SecretBytes;
use palisade_core::time::{Clock, SystemClock, UnixTime};
use palisade_field::{Context, FieldCipher};
use palisade_otp::recovery::RecoveryCodes;
use palisade_otp::{Algorithm, OtpSecret, Totp, TotpParams};
use palisade_password::{Hasher, Params};
use palisade_pin::{PinPolicy, PinSet, pins_from_der};
use palisade_ratelimit::{MemoryLimiter, Quota};
use palisade_token::jwt::{JwtAlgorithm, JwtKeys, JwtValidation, StandardClaims, generate_key};
use palisade_token::{ApiKeyConfig, ApiKeyHasher, ApiKeys, ParsedApiKey};

use crate::size::{Workload, measure_threads};

/// What `palisade size` runs.
pub(crate) struct Plan {
    /// The workloads, in report order.
    pub(crate) workloads: Vec<Box<dyn Workload>>,
    /// What was left out and why (for example Redis when it is not configured).
    pub(crate) notes: Vec<String>,
}

/// Every workload this machine can run.
pub(crate) fn all() -> Result<Plan> {
    let mut notes = Vec::new();
    let mut workloads: Vec<Box<dyn Workload>> = vec![
        Box::new(RandomDraw),
        Box::new(Field::new(false)?),
        Box::new(Field::new(true)?),
        Box::new(TotpVerify::new()?),
        Box::new(RecoveryVerify::new()?),
        Box::new(MemoryLimit),
    ];
    match std::env::var("PALISADE_REDIS_URL") {
        Ok(url) if !url.is_empty() => workloads.push(Box::new(RedisLimit { url })),
        _ => notes.push(
            "Redis rate limiting was not measured: set PALISADE_REDIS_URL=redis://host:port to include it."
                .to_owned(),
        ),
    }
    workloads.push(Box::new(PinCheck::new()?));
    workloads.push(Box::new(AuditAppend));
    workloads.push(Box::new(Jwt::new(JwtAlgorithm::Hs256)?));
    workloads.push(Box::new(Jwt::new(JwtAlgorithm::EdDsa)?));
    workloads.push(Box::new(ApiKeyVerify));
    for (name, params) in [
        ("OWASP 19 MiB", Params::OWASP_19_MIB),
        ("OWASP 46 MiB", Params::OWASP_46_MIB),
        ("RFC 9106 64 MiB", Params::RFC9106_64_MIB),
    ] {
        workloads.push(Box::new(Argon2 { name, params }));
    }
    Ok(Plan { workloads, notes })
}

fn keyring(id: &str) -> Result<Keyring> {
    let mut material = SecretBytes::zeroed(32);
    SystemRandom.fill(material.expose_secret_mut())?;
    Ok(Keyring::single(KeyId::new(id)?, material))
}

/// How many cores a rate needs to serve `target` operations per second.
fn cores_for(target: f64, per_core: f64) -> f64 {
    (target / per_core.max(f64::MIN_POSITIVE)).ceil()
}

/// A 12-byte nonce draw from the default randomness source.
struct RandomDraw;

impl Workload for RandomDraw {
    fn name(&self) -> String {
        "random nonce (12 B)".into()
    }
    fn unit(&self) -> &'static str {
        "draws"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        measure_threads(threads, duration, || {
            let mut nonce = [0u8; 12];
            Ok(move || Ok(SystemRandom.fill(std::hint::black_box(&mut nonce))?))
        })
    }
}

/// Field encryption or decryption of a 32-byte value (an OAuth token, a phone number).
struct Field {
    cipher: FieldCipher,
    sealed: Vec<u8>,
    decrypt: bool,
}

impl Field {
    fn new(decrypt: bool) -> Result<Self> {
        let cipher = FieldCipher::new(&keyring("size")?)?;
        let sealed = cipher.encrypt(&[7u8; 32], &Context::new("users", "oauth_token", 42))?;
        Ok(Self {
            cipher,
            sealed,
            decrypt,
        })
    }
}

impl Workload for Field {
    fn name(&self) -> String {
        format!(
            "field {} (32 B)",
            if self.decrypt { "decrypt" } else { "encrypt" }
        )
    }
    fn unit(&self) -> &'static str {
        if self.decrypt {
            "decryptions"
        } else {
            "encryptions"
        }
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let ctx = Context::new("users", "oauth_token", 42);
        measure_threads(threads, duration, || {
            Ok(|| {
                if self.decrypt {
                    std::hint::black_box(self.cipher.decrypt(&self.sealed, &ctx)?);
                } else {
                    std::hint::black_box(self.cipher.encrypt(&[7u8; 32], &ctx)?);
                }
                Ok(())
            })
        })
    }
    fn advice(&self, per_core: f64) -> Option<String> {
        if self.decrypt {
            return None;
        }
        let secs = 10_000_000.0 / per_core;
        Some(format!(
            "Field encryption: {} values/s/core: the crypto of migrating a 10M-row column takes {secs:.0} core-seconds; the database is the limit.",
            crate::size::human(per_core)
        ))
    }
}

/// A TOTP login: verify a 6-digit code with a window of one step each side.
struct TotpVerify {
    totp: Totp,
}

impl TotpVerify {
    fn new() -> Result<Self> {
        let secret = OtpSecret::generate(Algorithm::Sha1, &SystemRandom)?;
        Ok(Self {
            totp: Totp::new(&secret, TotpParams::new()),
        })
    }
}

impl Workload for TotpVerify {
    fn name(&self) -> String {
        "TOTP verify (SHA-1, +-1 step)".into()
    }
    fn unit(&self) -> &'static str {
        "verifications"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let now = SystemClock.now();
        let code = self.totp.generate(now)?;
        measure_threads(threads, duration, || {
            Ok(|| {
                let ok = self.totp.verify(code.expose_secret(), now, None).is_ok();
                anyhow::ensure!(ok, "a fresh code must verify");
                Ok(())
            })
        })
    }
}

/// A recovery-code check against a set of ten (a wrong code: the work is the same).
struct RecoveryVerify {
    keys: Keyring,
}

impl RecoveryVerify {
    fn new() -> Result<Self> {
        Ok(Self {
            keys: keyring("recovery")?,
        })
    }
}

impl Workload for RecoveryVerify {
    fn name(&self) -> String {
        "recovery code verify (set of 10)".into()
    }
    fn unit(&self) -> &'static str {
        "verifications"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        measure_threads(threads, duration, || {
            let (_, mut stored) = RecoveryCodes::new()
                .generate(&self.keys, &SystemRandom)?
                .into_parts();
            Ok(move || {
                let outcome = stored.consume(&self.keys, "AAAA-BBBB-CCCC-DDDD")?;
                let _ = std::hint::black_box(outcome);
                Ok(())
            })
        })
    }
}

/// An in-memory rate-limit decision over 10,000 keys (100 a minute each).
struct MemoryLimit;

impl Workload for MemoryLimit {
    fn name(&self) -> String {
        "rate limit, in memory (10k keys)".into()
    }
    fn unit(&self) -> &'static str {
        "decisions"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let limiter = MemoryLimiter::new(Quota::new(100, Duration::from_secs(60))?);
        let keys: Vec<[u8; 8]> = (0u64..10_000).map(u64::to_be_bytes).collect();
        measure_threads(threads, duration, || {
            // Each thread starts at its own random place among the keys.
            let start: [u8; 8] = palisade_core::random::array(&SystemRandom)?;
            let mut i = usize::try_from(u64::from_le_bytes(start) % 10_000).unwrap_or(0);
            let (keys, limiter) = (&keys, &limiter);
            Ok(move || {
                i = (i + 7_919) % keys.len();
                let key = keys.get(i).map_or(&[0u8; 8][..], |k| &k[..]);
                let decision = limiter.check(key)?;
                let _ = std::hint::black_box(decision);
                Ok(())
            })
        })
    }
}

/// A Redis rate-limit decision (one EVALSHA round trip), 32 requests in flight per thread.
struct RedisLimit {
    url: String,
}

impl Workload for RedisLimit {
    fn name(&self) -> String {
        "rate limit, Redis (32 in flight/thread)".into()
    }
    fn unit(&self) -> &'static str {
        "decisions"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        use palisade_ratelimit::Limiter;
        use palisade_redis::{Redis, RedisRateStore};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let redis = Redis::open(&self.url)
                .context("PALISADE_REDIS_URL is not a Redis URL")?
                .with_prefix(&format!("palisade-size-{}", std::process::id()))?;
            redis
                .server_time_micros()
                .await
                .context("cannot reach Redis at PALISADE_REDIS_URL")?;
            let store = RedisRateStore::new(redis);
            let limiter = Arc::new(Limiter::new(
                store,
                Quota::new(1_000_000, Duration::from_secs(60))?,
            ));
            let start = Instant::now();
            let deadline = start + duration;
            let tasks: Vec<_> = (0..threads * 32)
                .map(|t| {
                    let limiter = limiter.clone();
                    tokio::spawn(async move {
                        let key = format!("k{}", t % 1_000);
                        let mut done = 0u64;
                        while Instant::now() < deadline {
                            let decision = limiter.check(key.as_bytes(), 1).await?;
                            let _ = std::hint::black_box(decision);
                            done += 1;
                        }
                        Ok::<_, anyhow::Error>(done)
                    })
                })
                .collect();
            let mut total = 0u64;
            for t in tasks {
                total += t.await??;
            }
            Ok((total, start.elapsed()))
        })
    }
    fn advice(&self, per_core: f64) -> Option<String> {
        Some(format!(
            "Redis limiter: {} decisions/s per client core; a shared limit for 10,000 requests/s needs {:.0} such cores.",
            crate::size::human(per_core),
            cores_for(10_000.0, per_core)
        ))
    }
}

/// A pin check of a verified three-certificate chain (leaf, intermediate, root).
struct PinCheck {
    policy: PinPolicy,
    chain: Vec<Vec<u8>>,
}

impl PinCheck {
    fn new() -> Result<Self> {
        let chain = three_certificate_chain()?;
        let root = chain.last().context("chain")?;
        let root_pin = pins_from_der(root)?.first().context("root pin")?.spki();
        let backup = palisade_pin::Pin::spki_sha256([9; 32]);
        let policy = PinPolicy::builder()
            .pin_set(
                PinSet::builder("api.palisade.test".parse()?)
                    .pin(root_pin)
                    .pin(backup)
                    .build()?,
            )
            .build()?;
        Ok(Self { policy, chain })
    }
}

fn three_certificate_chain() -> Result<Vec<Vec<u8>>> {
    let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    root_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Sizing Root");
    let root_key = rcgen::KeyPair::generate()?;
    let root = root_params.self_signed(&root_key)?;
    let mut mid_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    mid_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    mid_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Sizing Intermediate");
    let mid_key = rcgen::KeyPair::generate()?;
    let mid = mid_params.signed_by(
        &mid_key,
        &rcgen::Issuer::from_params(&root_params, &root_key),
    )?;
    let leaf_params = rcgen::CertificateParams::new(vec!["api.palisade.test".to_owned()])?;
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = leaf_params.signed_by(
        &leaf_key,
        &rcgen::Issuer::from_params(&mid_params, &mid_key),
    )?;
    Ok(vec![
        leaf.der().to_vec(),
        mid.der().to_vec(),
        root.der().to_vec(),
    ])
}

impl Workload for PinCheck {
    fn name(&self) -> String {
        "pin check (3-certificate chain)".into()
    }
    fn unit(&self) -> &'static str {
        "checks"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let now = SystemClock.now();
        measure_threads(threads, duration, || {
            Ok(|| {
                std::hint::black_box(self.policy.check("api.palisade.test", &self.chain, now)?);
                Ok(())
            })
        })
    }
}

/// Redact, hash-chain and serialize one login event, as the audit file sink's writer does.
struct AuditAppend;

impl Workload for AuditAppend {
    fn name(&self) -> String {
        "audit append (redact+chain+JSON)".into()
    }
    fn unit(&self) -> &'static str {
        "events"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let event = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000))
            .user_id("u-42")
            .ip("203.0.113.9".parse()?)
            .user_agent("Mozilla/5.0")
            .meta("reason", "bad password")
            .meta("password", "hunter2");
        measure_threads(threads, duration, || {
            let redactor = Redactor::new();
            let mut chain = Chainer::new();
            let mut out = Vec::with_capacity(1 << 20);
            let event = &event;
            Ok(move || {
                let clean = redactor.redacted(event);
                chain.push_line(&clean, &mut out)?;
                if out.len() > 1 << 20 {
                    out.clear();
                }
                Ok(())
            })
        })
    }
}

/// JWT verification through the keyring (signature, kid lookup, standard claims).
struct Jwt {
    algorithm: JwtAlgorithm,
    keys: JwtKeys,
    token: String,
}

impl Jwt {
    fn new(algorithm: JwtAlgorithm) -> Result<Self> {
        let mut ring = Keyring::new();
        ring.insert(generate_key(
            &KeyId::new("size")?,
            algorithm,
            KeyState::Active,
            &SystemRandom,
        )?)?;
        let keys = JwtKeys::from_keyring(algorithm, &ring)?;
        let claims = StandardClaims::new("user-42", SystemClock.now(), Duration::from_secs(3_600))
            .issuer("https://id.palisade.test");
        let token = keys.sign(&claims)?;
        Ok(Self {
            algorithm,
            keys,
            token,
        })
    }
}

impl Workload for Jwt {
    fn name(&self) -> String {
        format!("JWT verify ({:?})", self.algorithm)
    }
    fn unit(&self) -> &'static str {
        "verifications"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let validation = JwtValidation::new().issuer("https://id.palisade.test");
        let now = SystemClock.now();
        measure_threads(threads, duration, || {
            Ok(|| {
                let verified = self
                    .keys
                    .verify::<StandardClaims>(&self.token, &validation, now);
                anyhow::ensure!(verified.is_ok(), "a fresh token must verify");
                Ok(())
            })
        })
    }
}

/// An API key check: parse (checksum), then a constant-time hash comparison.
struct ApiKeyVerify;

impl Workload for ApiKeyVerify {
    fn name(&self) -> String {
        "API key verify".into()
    }
    fn unit(&self) -> &'static str {
        "verifications"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let keys = ApiKeys::new(ApiKeyConfig::default(), ApiKeyHasher::Sha256)?;
        let now = SystemClock.now();
        let (key, record) = keys.issue("acct-42", now)?;
        measure_threads(threads, duration, || {
            Ok(|| {
                let parsed = ParsedApiKey::parse(key.expose_secret())?;
                anyhow::ensure!(
                    keys.verify(&parsed, &record, now).is_valid(),
                    "the key must verify"
                );
                Ok(())
            })
        })
    }
}

/// Argon2id password hashing at one preset.
struct Argon2 {
    name: &'static str,
    params: Params,
}

impl Workload for Argon2 {
    fn name(&self) -> String {
        format!("Argon2id {}", self.name)
    }
    fn unit(&self) -> &'static str {
        "hashes"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        let hasher = Hasher::new(self.params);
        // Slow operations: run whole hashes past the deadline rather than stop mid-way.
        measure_threads(threads, duration, || {
            Ok(|| {
                std::hint::black_box(hasher.hash("correct horse battery staple")?);
                Ok(())
            })
        })
    }
    fn advice(&self, per_core: f64) -> Option<String> {
        Some(format!(
            "Argon2id {}: {} hashes/s/core: a login burst of 1,000/s needs {:.0} cores.",
            self.name,
            crate::size::human(per_core),
            cores_for(1_000.0, per_core)
        ))
    }
}
