//! Hashing and verifying passwords: [`Hasher`].
//!
//! [`Hasher::hash`] makes an Argon2id PHC string with the configured [`Params`] and a fresh
//! 16-byte salt from a [`SecureRandom`]; [`Hasher::verify`] checks a password against a stored
//! string with the parameters recorded in it, and says whether the hash should be upgraded;
//! [`Hasher::verify_or_dummy`] does the same work when the account does not exist, so the
//! response time does not tell an attacker which user names are registered.
//!
//! # Errors
//! [`Error::MalformedHash`] / [`Error::UnsupportedAlgorithm`] for a stored string that cannot
//! be used, [`Error::CostTooHigh`] for one beyond the [`CostLimits`], [`Error::PasswordTooLong`]
//! beyond [`MAX_PASSWORD_BYTES`], [`Error::OutOfMemory`] when the
//! Argon2 memory cannot be allocated, [`Error::Random`] if the salt source fails. A wrong
//! password is not an error: it is [`Verification::Mismatch`].
//!
//! # Panics
//! None. Allocation of Argon2's memory is fallible (`try_reserve`), so even an absurd `m`
//! within the limits is an error, not an abort.
//!
//! # Security
//! - Passwords are taken as `&str` or `&Zeroizing<String>`; a normalised copy, if one is
//!   needed, is wiped on drop; Argon2's working memory (up to `m` KiB of password-derived data)
//!   is wiped before it is freed; no error or `Debug` output contains a password.
//! - The computed output is compared in constant time.
//! - Verification runs at the cost stored in the hash, then, when that is cheaper than the
//!   current parameters, does the missing work (Django's `harden_runtime`, after
//!   CVE-2016-2513): dummy Argon2 passes over the difference in memory x passes, so a dormant
//!   account with a legacy hash (m = 4 MiB, t = 1, say) does not answer faster than a current
//!   one or a missing one, and cannot be told apart by timing. The `password_verify` bench
//!   measures the three side by side. A hash *dearer* than the current parameters still
//!   answers slower; rehashing at login ([`Verified::needs_rehash`]) removes both over time.

use std::sync::{Arc, Mutex, PoisonError};

use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::secret::ct_eq;
use zeroize::Zeroize;

use crate::normalize::Normalized;
use crate::phc::Algorithm;
use crate::{CostLimits, Error, MAX_PASSWORD_BYTES, Normalization, Params, PasswordHash};

/// Output length in bytes (RFC 9106 recommends 256 bits).
pub(crate) const OUTPUT_LEN: usize = 32;
/// Salt length in bytes (RFC 9106 recommends 128 bits).
pub(crate) const SALT_LEN: usize = 16;
/// Salt of the dummy computation. Argon2's running time does not depend on the salt's value.
const DUMMY_SALT: [u8; SALT_LEN] = *b"palisade-dummy-s";

/// Hashes and verifies passwords with one set of Argon2id parameters.
///
/// Cheap to construct and `Send + Sync`; share one per service (for example in an `Arc` or
/// application state). Hashing is CPU-bound and takes tens of milliseconds: in async code,
/// run it on a blocking thread (`tokio::task::spawn_blocking`).
///
/// ```
/// use palisade_password::{Hasher, Params, Verification};
///
/// # let params = Params::new(64, 1, 1)?; // tiny, to keep the doctest fast; use a preset
/// let hasher = Hasher::new(params);
/// let stored = hasher.hash("correct horse battery staple")?;
///
/// match hasher.verify(stored.as_str(), "correct horse battery staple")? {
///     Verification::Match(verified) => assert!(!verified.needs_rehash()),
///     Verification::Mismatch => unreachable!(),
/// }
/// assert!(!hasher.verify(stored.as_str(), "wrong")?.is_match());
/// # Ok::<(), palisade_password::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Hasher<R = SystemRandom> {
    params: Params,
    limits: CostLimits,
    normalization: Normalization,
    pool: Arc<MemoryPool>,
    rng: R,
}

impl Hasher<SystemRandom> {
    /// A hasher with `params`, salts from [`SystemRandom`], the default [`CostLimits`] and
    /// NFKC normalisation.
    pub fn new(params: Params) -> Self {
        Self::with_rng(params, SystemRandom)
    }
}

impl Default for Hasher<SystemRandom> {
    /// [`Params::default`] ([`Params::OWASP_19_MIB`]).
    fn default() -> Self {
        Self::new(Params::default())
    }
}

impl<R: SecureRandom> Hasher<R> {
    /// A hasher drawing salts from `rng`.
    pub fn with_rng(params: Params, rng: R) -> Self {
        let buffers = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            params,
            limits: CostLimits::default(),
            normalization: Normalization::default(),
            pool: Arc::new(MemoryPool::new(buffers)),
            rng,
        }
    }

    /// Keeps at most `buffers` Argon2 working areas (wiped) between hashes, for reuse.
    ///
    /// Allocating `m` KiB afresh costs a page fault per 4 KiB page on first touch: for `m`
    /// above glibc's 32 MiB mmap ceiling, every hash pays it, and the `password_hash` bench
    /// shows it adds up to half the time of a 46 or 64 MiB hash. Reused buffers skip it.
    /// The default keeps one buffer per available core, so the memory held between logins
    /// is at most `cores x m` (128 MiB for [`Params::RFC9106_64_MIB`] on 2 cores; more if
    /// older hashes with a larger `m` are verified, up to the [`CostLimits`]). `0` allocates
    /// and frees on every hash. Clones of a hasher share its buffers.
    #[must_use]
    pub fn with_memory_pool(mut self, buffers: usize) -> Self {
        self.pool = Arc::new(MemoryPool::new(buffers));
        self
    }

    /// Replaces the limits on what a stored hash may cost to verify.
    #[must_use]
    pub fn with_cost_limits(mut self, limits: CostLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the normalisation (NFKC by default). Every stored hash depends on it: see
    /// [`Normalization`].
    #[must_use]
    pub fn with_normalization(mut self, normalization: Normalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// The parameters new hashes get.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Hashes `password` with a fresh salt.
    ///
    /// Does not apply a [`Policy`](crate::Policy): check the policy when a password is chosen,
    /// not when an existing one is rehashed.
    ///
    /// # Errors
    /// [`Error::PasswordTooLong`], [`Error::Random`], [`Error::OutOfMemory`].
    pub fn hash<P: AsRef<str> + ?Sized>(&self, password: &P) -> Result<PasswordHash, Error> {
        let password = self.normalize(password.as_ref())?;
        let mut salt = [0u8; SALT_LEN];
        self.rng.fill(&mut salt)?;
        let mut output = [0u8; OUTPUT_LEN];
        let computed = compute(
            Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.params,
            password.as_str().as_bytes(),
            &salt,
            &mut output,
            &self.pool,
        );
        let result = computed.and_then(|()| PasswordHash::from_parts(self.params, &salt, &output));
        output.zeroize();
        result
    }

    /// Verifies `password` against a stored PHC string.
    ///
    /// # Errors
    /// [`Error::MalformedHash`], [`Error::UnsupportedAlgorithm`], [`Error::CostTooHigh`],
    /// [`Error::PasswordTooLong`], [`Error::OutOfMemory`]. A wrong password is
    /// `Ok(Verification::Mismatch)`.
    pub fn verify<P: AsRef<str> + ?Sized>(
        &self,
        stored: &str,
        password: &P,
    ) -> Result<Verification, Error> {
        self.verify_hash(&PasswordHash::parse(stored)?, password)
    }

    /// Verifies `password` against an already parsed hash.
    ///
    /// # Errors
    /// As [`Hasher::verify`], less the parse errors.
    pub fn verify_hash<P: AsRef<str> + ?Sized>(
        &self,
        stored: &PasswordHash,
        password: &P,
    ) -> Result<Verification, Error> {
        let password = self.normalize(password.as_ref())?;
        self.verify_normalized(stored, password.as_str())
    }

    /// Verifies `password` as given (already normalised, or deliberately not).
    fn verify_normalized(
        &self,
        stored: &PasswordHash,
        password: &str,
    ) -> Result<Verification, Error> {
        let params = stored.params();
        if !self.limits.allows(&params) {
            return Err(Error::CostTooHigh {
                m_kib: params.m_kib(),
                t: params.t(),
                p: params.p(),
            });
        }
        let expected = stored.output();
        let mut output = [0u8; 64];
        let out = output
            .get_mut(..expected.len())
            .ok_or(Error::MalformedHash {
                reason: "hash output too long",
            })?;
        compute(
            stored.algorithm(),
            stored.argon2_version(),
            params,
            password.as_bytes(),
            stored.salt(),
            out,
            &self.pool,
        )?;
        let matched = ct_eq(out, expected);
        output.zeroize();
        self.harden_runtime(params, password.as_bytes())?;
        Ok(if matched {
            Verification::Match(Verified {
                needs_rehash: !self.is_current(stored),
            })
        } else {
            Verification::Mismatch
        })
    }

    /// Verifies against `stored`, or, when the account does not exist (`None`), spends the
    /// same time hashing against a dummy with the current parameters and answers
    /// [`Verification::Mismatch`].
    ///
    /// Look the user up, then call this whatever the lookup found: the caller cannot tell
    /// from the time taken whether the account exists (as long as its hash uses the current
    /// parameters; see the module's security notes).
    ///
    /// ```
    /// use palisade_password::{Hasher, Params};
    ///
    /// # let hasher = Hasher::new(Params::new(64, 1, 1)?);
    /// # let db = std::collections::HashMap::from([("alice", hasher.hash("alice's long passphrase")?.into_string())]);
    /// let stored: Option<&str> = db.get("mallory").map(String::as_str);
    /// assert!(!hasher.verify_or_dummy(stored, "guess")?.is_match());
    /// # Ok::<(), palisade_password::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Hasher::verify`]. With `None`, only [`Error::PasswordTooLong`] and
    /// [`Error::OutOfMemory`].
    pub fn verify_or_dummy<P: AsRef<str> + ?Sized>(
        &self,
        stored: Option<&str>,
        password: &P,
    ) -> Result<Verification, Error> {
        if let Some(stored) = stored {
            return self.verify(stored, password);
        }
        let password = self.normalize(password.as_ref())?;
        let mut output = [0u8; OUTPUT_LEN];
        compute(
            Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.params,
            password.as_str().as_bytes(),
            &DUMMY_SALT,
            &mut output,
            &self.pool,
        )?;
        // The same constant-time comparison as a real verification; its result is ignored.
        let _ = core::hint::black_box(ct_eq(&output, &[0u8; OUTPUT_LEN]));
        output.zeroize();
        Ok(Verification::Mismatch)
    }

    /// Spends the Argon2 work a verification at `stored` parameters lacks to match one at the
    /// current parameters (see the module's security notes). Its output is discarded.
    fn harden_runtime(&self, stored: Params, password: &[u8]) -> Result<(), Error> {
        let mut output = [0u8; OUTPUT_LEN];
        for params in hardening(stored, self.params).into_iter().flatten() {
            compute(
                Algorithm::Argon2id,
                argon2::Version::V0x13,
                params,
                password,
                &DUMMY_SALT,
                &mut output,
                &self.pool,
            )?;
        }
        output.zeroize();
        Ok(())
    }

    /// Whether a stored hash differs from what [`Hasher::hash`] makes now (algorithm, version,
    /// parameters, salt or output length), so it should be replaced at the next login.
    ///
    /// # Errors
    /// [`Error::MalformedHash`], [`Error::UnsupportedAlgorithm`].
    pub fn needs_rehash(&self, stored: &str) -> Result<bool, Error> {
        Ok(!self.is_current(&PasswordHash::parse(stored)?))
    }

    /// Whether `stored` is exactly what this hasher would make now (salt aside).
    pub fn is_current(&self, stored: &PasswordHash) -> bool {
        stored.algorithm() == Algorithm::Argon2id
            && stored.version() == 0x13
            && stored.params() == self.params
            && stored.salt().len() >= SALT_LEN
            && stored.output().len() == OUTPUT_LEN
    }

    /// Verifies a hash that may have been made elsewhere (argon2-cffi, libsodium, PHP's
    /// `password_hash`, a previous system), which hash the password's bytes as given: first
    /// without normalisation, then, only if the password changes under this hasher's
    /// normalisation, with it. A match of the raw bytes whose normalised form differs is
    /// flagged [`Verified::needs_rehash`], so the next [`Hasher::hash`] stores a hash that
    /// [`Hasher::verify`] accepts.
    ///
    /// Use it during a migration, for the hashes imported from the other system; it costs a
    /// second verification for non-normalised (non-ASCII) input, which depends only on the
    /// input, not on the account.
    ///
    /// # Errors
    /// As [`Hasher::verify`].
    pub fn verify_interop<P: AsRef<str> + ?Sized>(
        &self,
        stored: &str,
        password: &P,
    ) -> Result<Verification, Error> {
        let stored = PasswordHash::parse(stored)?;
        let password = password.as_ref();
        let normalized = self.normalize(password)?;
        let changed = normalized.as_str() != password;
        let raw = self.verify_normalized(&stored, password)?;
        if let Verification::Match(verified) = raw {
            return Ok(Verification::Match(Verified {
                needs_rehash: verified.needs_rehash || changed,
            }));
        }
        if !changed {
            return Ok(raw);
        }
        self.verify_normalized(&stored, normalized.as_str())
    }

    fn normalize<'a>(&self, password: &'a str) -> Result<Normalized<'a>, Error> {
        let too_long = Error::PasswordTooLong {
            max_bytes: MAX_PASSWORD_BYTES,
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(too_long);
        }
        let normalized = self.normalization.apply(password);
        if normalized.as_str().len() > MAX_PASSWORD_BYTES {
            return Err(too_long);
        }
        Ok(normalized)
    }
}

/// The outcome of a verification. A mismatch is an expected answer, not an error.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password is correct.
    Match(Verified),
    /// The password is wrong, or the account does not exist.
    Mismatch,
}

impl Verification {
    /// Whether the password is correct.
    pub fn is_match(&self) -> bool {
        matches!(self, Verification::Match(_))
    }
}

/// Proof that a password matched; only this crate can make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    needs_rehash: bool,
}

impl Verified {
    /// Whether the stored hash is outdated: hash the password just verified again with
    /// [`Hasher::hash`] and store the result.
    pub fn needs_rehash(&self) -> bool {
        self.needs_rehash
    }
}

/// Runs Argon2 into `out` with working memory from `pool` (or allocated fallibly), wiped
/// before it is returned to the pool or freed.
/// The dummy computations that make up the difference between a verification at `stored` and
/// one at `current`, in KiB x passes (Argon2's cost is close to proportional to it): whole
/// passes over `current`'s memory, then one pass over the remainder. None when `stored` costs
/// as much or more; a remainder below Argon2's 8 KiB minimum is dropped.
fn hardening(stored: Params, current: Params) -> [Option<Params>; 2] {
    let cost = |p: Params| u64::from(p.m_kib()) * u64::from(p.t());
    let deficit = cost(current).saturating_sub(cost(stored));
    let m = u64::from(current.m_kib()).max(1);
    let passes = u32::try_from(deficit / m).unwrap_or(u32::MAX);
    let rest = u32::try_from(deficit % m).unwrap_or(0);
    [
        Params::new(current.m_kib(), passes, current.p()).ok(),
        Params::new(rest, 1, 1).ok(),
    ]
}

fn compute(
    algorithm: Algorithm,
    version: argon2::Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    pool: &MemoryPool,
) -> Result<(), Error> {
    let argon2_params =
        argon2::Params::new(params.m_kib(), params.t(), params.p(), Some(out.len()))
            .map_err(Error::Argon2)?;
    let blocks = argon2_params.block_count();
    let context = argon2::Argon2::new(algorithm.to_argon2(), version, argon2_params);
    let mut memory = pool.take();
    if memory.len() < blocks {
        let missing = blocks - memory.len();
        if memory.try_reserve_exact(missing).is_err() {
            pool.give(memory);
            return Err(Error::OutOfMemory {
                kib: params.m_kib(),
            });
        }
        memory.resize(blocks, argon2::Block::default());
    }
    let area = memory.get_mut(..blocks).unwrap_or_default();
    let result = context.hash_password_into_with_memory(password, salt, out, &mut *area);
    // Wiped in place (volatile writes), so the buffer goes back to the pool all zeros.
    area.iter_mut().for_each(Zeroize::zeroize);
    pool.give(memory);
    result.map_err(Error::Argon2)
}

/// Wiped Argon2 working areas kept for reuse; see [`Hasher::with_memory_pool`].
struct MemoryPool {
    buffers: Mutex<Vec<Vec<argon2::Block>>>,
    max: usize,
}

impl core::fmt::Debug for MemoryPool {
    /// Counts only: the buffers are megabytes of zeros.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kept = self.buffers.lock().map_or(0, |buffers| buffers.len());
        f.debug_struct("MemoryPool")
            .field("kept", &kept)
            .field("max", &self.max)
            .finish()
    }
}

impl MemoryPool {
    fn new(max: usize) -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
            max,
        }
    }

    /// A buffer (the largest kept, else an empty one). Every kept buffer is all zeros.
    fn take(&self) -> Vec<argon2::Block> {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        buffers.pop().unwrap_or_default()
    }

    /// Keeps `buffer` (already wiped) if there is room, largest last; frees it otherwise.
    fn give(&self, buffer: Vec<argon2::Block>) {
        if buffer.is_empty() {
            return;
        }
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if buffers.len() < self.max {
            buffers.push(buffer);
            buffers.sort_by_key(Vec::len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Hasher {
        Hasher::new(Params::new(64, 1, 1).unwrap())
    }

    /// From the Argon2 reference implementation's tests (phc-winner-argon2 `src/test.c`,
    /// password "password", salt "somesalt", m=256, t=2, p=2, version 0x13); more vectors in
    /// `tests/data/`.
    #[test]
    fn known_answer_from_reference_phc_string() {
        let phc = "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$\
                   bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc";
        let hasher = Hasher::new(Params::new(256, 2, 2).unwrap());
        assert!(hasher.verify(phc, "password").unwrap().is_match());
        assert!(!hasher.verify(phc, "passwore").unwrap().is_match());
    }

    #[test]
    fn independent_argon2_accepts_our_hash() {
        use argon2::{PasswordVerifier, password_hash};
        let stored = tiny().hash("hunter2 hunter2").unwrap();
        let parsed = password_hash::PasswordHash::new(stored.as_str()).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"hunter2 hunter2", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn pooled_buffers_are_reused_wiped_and_give_the_same_results() {
        let pooled = Hasher::new(Params::new(256, 2, 1).unwrap()).with_memory_pool(1);
        let unpooled = Hasher::new(Params::new(256, 2, 1).unwrap()).with_memory_pool(0);
        // A larger hash first leaves a larger buffer in the pool; the smaller ones reuse it.
        let big = Hasher::new(Params::new(1024, 1, 1).unwrap())
            .hash("x")
            .unwrap();
        assert!(pooled.verify(big.as_str(), "x").unwrap().is_match());
        {
            let kept = pooled.pool.buffers.lock().unwrap();
            assert_eq!(kept.len(), 1);
            assert_eq!(kept[0].len(), 1024);
            assert!(
                kept[0]
                    .iter()
                    .all(|b| AsRef::<[u64]>::as_ref(b).iter().all(|&w| w == 0))
            );
        }
        let phc = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$\
                   nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
        for h in [&pooled, &unpooled] {
            assert!(h.verify(phc, "password").unwrap().is_match());
            assert!(!h.verify(phc, "passwore").unwrap().is_match());
        }
        let kept = pooled.pool.buffers.lock().unwrap();
        assert!(
            kept[0]
                .iter()
                .all(|b| AsRef::<[u64]>::as_ref(b).iter().all(|&w| w == 0))
        );
        assert!(unpooled.pool.buffers.lock().unwrap().is_empty());
    }

    #[test]
    fn debug_is_short_and_has_no_password_material() {
        let h = tiny();
        let _ = h.hash("warm the pool").unwrap();
        let shown = format!("{h:?}");
        assert!(shown.len() < 400, "{shown}");
        assert!(shown.contains("MemoryPool { kept: 1"));
    }

    #[test]
    fn salts_differ() {
        let h = tiny();
        let a = h.hash("same").unwrap();
        let b = h.hash("same").unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.salt().len(), SALT_LEN);
    }

    #[test]
    fn dummy_never_matches() {
        let h = tiny();
        assert_eq!(h.verify_or_dummy(None, "").unwrap(), Verification::Mismatch);
        let stored = h.hash("pw").unwrap();
        assert!(
            h.verify_or_dummy(Some(stored.as_str()), "pw")
                .unwrap()
                .is_match()
        );
    }

    #[test]
    fn cost_limits_stop_expensive_hashes_before_hashing() {
        let h = tiny().with_cost_limits(CostLimits::new(1024, 1, 1).unwrap());
        let huge = "$argon2id$v=19$m=4294967295,t=4294967295,p=1$c29tZXNhbHQ$\
                    CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(matches!(
            h.verify(huge, "password"),
            Err(Error::CostTooHigh {
                m_kib: 4_294_967_295,
                ..
            })
        ));
        assert!(matches!(
            tiny().verify_or_dummy(Some(huge), "password"),
            Err(Error::CostTooHigh { .. })
        ));
    }

    #[test]
    fn overlong_passwords_are_refused() {
        let h = tiny();
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(h.hash(&long), Err(Error::PasswordTooLong { .. })));
        let stored = h.hash("x").unwrap();
        assert!(matches!(
            h.verify(stored.as_str(), &long),
            Err(Error::PasswordTooLong { .. })
        ));
        // Normalisation can grow a password: U+FDFA becomes 18 characters.
        let grows = "\u{fdfa}".repeat(MAX_PASSWORD_BYTES / 3);
        assert!(grows.len() <= MAX_PASSWORD_BYTES);
        assert!(matches!(h.hash(&grows), Err(Error::PasswordTooLong { .. })));
        assert!(h.hash(&"a".repeat(MAX_PASSWORD_BYTES)).is_ok());
    }

    #[test]
    fn normalisation_makes_forms_equal_and_none_does_not() {
        let h = tiny();
        let stored = h.hash("caf\u{e9} au lait").unwrap();
        assert!(
            h.verify(stored.as_str(), "cafe\u{301} au lait")
                .unwrap()
                .is_match()
        );
        let raw = tiny().with_normalization(Normalization::None);
        let stored = raw.hash("caf\u{e9} au lait").unwrap();
        assert!(
            !raw.verify(stored.as_str(), "cafe\u{301} au lait")
                .unwrap()
                .is_match()
        );
    }

    #[test]
    fn errors_never_contain_the_password() {
        let h = tiny();
        let secret = "SuperSecret-Passw0rd-do-not-log";
        let long = secret.repeat(200);
        let e = h.hash(&long).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("SuperSecret"));
        let e = h.verify("$argon2id$garbage", secret).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("SuperSecret"));
    }

    #[test]
    fn zeroizing_input_is_accepted() {
        let h = tiny();
        let pw = zeroize::Zeroizing::new(String::from("in a wiped buffer"));
        let stored = h.hash(&pw).unwrap();
        assert!(h.verify(stored.as_str(), &pw).unwrap().is_match());
    }

    #[test]
    fn other_variants_verify_and_need_rehash() {
        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        for (alg, version) in [
            (argon2::Algorithm::Argon2i, argon2::Version::V0x13),
            (argon2::Algorithm::Argon2d, argon2::Version::V0x13),
            (argon2::Algorithm::Argon2id, argon2::Version::V0x10),
        ] {
            let phc = argon2::Argon2::new(alg, version, params.clone())
                .hash_password(b"legacy", &salt)
                .unwrap()
                .to_string();
            match tiny().verify(&phc, "legacy").unwrap() {
                Verification::Match(v) => assert!(v.needs_rehash(), "{phc}"),
                Verification::Mismatch => panic!("{phc} did not verify"),
            }
        }
    }

    #[test]
    fn hardening_makes_up_the_missing_work() {
        let cost = |p: Params| u64::from(p.m_kib()) * u64::from(p.t());
        let current = Params::OWASP_19_MIB;
        let legacy = Params::new(4096, 1, 1).unwrap();
        let extra: u64 = hardening(legacy, current)
            .into_iter()
            .flatten()
            .map(cost)
            .sum();
        assert_eq!(extra + cost(legacy), cost(current));
        // Every cheaper stored cost is brought to within Argon2's 8 KiB minimum of the current.
        for (m, t) in [
            (8, 1),
            (19 * 1024 - 1, 2),
            (1000, 3),
            (19 * 1024, 1),
            (37 * 1024, 1),
        ] {
            let stored = Params::new(m, t, 1).unwrap();
            let extra: u64 = hardening(stored, current)
                .into_iter()
                .flatten()
                .map(cost)
                .sum();
            let gap = cost(current) - (extra + cost(stored));
            assert!(gap < 8, "m={m} t={t}: {gap} KiB-passes short");
        }
        // Current or dearer hashes get nothing.
        assert_eq!(hardening(current, current), [None, None]);
        assert_eq!(hardening(Params::RFC9106_64_MIB, current), [None, None]);
    }
}
