//! [`FieldCipher`]: encrypt and decrypt column values under a keyring.
//!
//! Built once from a [`Keyring`] (keys are expanded once, not per call), then shared (`Send +
//! Sync`; wrap it in an `Arc`). Every call takes a [`Context`] that is bound into the value.
//!
//! # Nonces and the AES-GCM bound
//! AES-256-GCM with random 96-bit nonces is safe for at most 2^32 encryptions per key (NIST SP
//! 800-38D, section 8.3): beyond that the chance of a repeated nonce, which breaks both
//! confidentiality and integrity, passes 2^-32. The cipher counts encryptions per key in this
//! process ([`FieldCipher::usage`]) and by default refuses to encrypt past
//! [`AES_GCM_RANDOM_NONCE_LIMIT`] with [`FieldError::LimitReached`]. The count is per process:
//! add up [`KeyUsage::encryptions`] across instances (and restarts) in your metrics, and rotate
//! well before the bound; quarterly rotation keeps ordinary services far below it. For higher
//! volumes use [`Algorithm::XChaCha20Poly1305`], whose 192-bit random nonces have no practical
//! bound.
//!
//! # Backends
//! [`Backend::Ring`] (default) uses ring's AES-256-GCM; [`Backend::RustCrypto`] uses the pure-Rust
//! `aes-gcm` crate (constant-time bitsliced AES when AES-NI is absent). Both produce identical
//! bytes and read each other's values. For XChaCha20-Poly1305, [`Backend::Ring`] derives the
//! per-nonce key with HChaCha20 (the `chacha20` crate) and seals with ring's ChaCha20-Poly1305,
//! as draft-irtf-cfrg-xchacha section 2.3 defines it; [`Backend::RustCrypto`] uses
//! `chacha20poly1305`. Both produce the same bytes (tested against the draft's vector), and
//! ring's assembly is several times faster on short values than the portable crate.
//!
//! # Errors
//! See [`FieldError`]. Decryption failures are opaque and recorded as
//! [`Action::DecryptionFailed`] audit events (resource `table.column`, record id, key id, reason:
//! never plaintext or key material).
//!
//! # Panics
//! None.
//!
//! # Security notes
//! ring's and RustCrypto's expanded key schedules do not all zeroize on drop; the raw key bytes
//! live in the [`Keyring`]'s zeroizing storage. Drop the keyring once the cipher is built if you
//! do not need it.

use core::fmt;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use hkdf::Hkdf;
use palisade_core::audit::{Action, AuditEvent, AuditSink, NoopSink};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::random::{OsRandom, SecureRandom, SystemRandom};
use palisade_core::time::{Clock, SystemClock};
use ring::aead as ra;
use sha2::Sha256;
use zeroize::{Zeroize as _, Zeroizing};

use crate::context::{ByteOut, Writer};
use crate::context::{Context, RowId};
use crate::counter::EncryptionCounter;
use crate::envelope::{
    self, Algorithm, BOUND_BLOCK, BoundHeader, Header, MAX_FIELD_KEY_ID_LEN, MAX_NONCE_LEN, TAG_LEN,
};
use crate::error::FieldError;
use crate::plaintext::Plaintext;

/// The NIST SP 800-38D bound on random-nonce AES-GCM encryptions under one key: 2^32.
pub const AES_GCM_RANDOM_NONCE_LIMIT: u64 = 1 << 32;

/// The key length every field key must have: 32 bytes.
pub const KEY_LEN: usize = 32;

const SUBKEY_INFO: &[u8] = b"palisade-field column key v1";

/// The AES-256-GCM implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// ring (assembly, AES-NI/CLMUL where present): the fast default.
    #[default]
    Ring,
    /// The pure-Rust `aes-gcm` crate, for builds that do not want ring.
    RustCrypto,
}

/// One key expanded for one AEAD.
// ring's key sits inline: it is the hot path, and boxing it would add a pointer chase per call.
#[allow(clippy::large_enum_variant)]
enum Prepared {
    Ring(ra::LessSafeKey),
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
    /// XChaCha20-Poly1305 over ring: the key, from which each nonce derives its own.
    RingXChaCha(Zeroizing<[u8; KEY_LEN]>),
    XChaCha(Box<XChaCha20Poly1305>),
}

impl Prepared {
    fn new(backend: Backend, algorithm: Algorithm, key: &[u8]) -> Result<Self, FieldError> {
        let bad = || FieldError::malformed("key must be 32 bytes");
        Ok(match (algorithm, backend) {
            (Algorithm::Aes256Gcm, Backend::Ring) => Self::Ring(ra::LessSafeKey::new(
                ra::UnboundKey::new(&ra::AES_256_GCM, key).map_err(|_| bad())?,
            )),
            (Algorithm::Aes256Gcm, Backend::RustCrypto) => Self::RustCrypto(Box::new(
                aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| bad())?,
            )),
            (Algorithm::XChaCha20Poly1305, Backend::Ring) => {
                Self::RingXChaCha(Zeroizing::new(key.try_into().map_err(|_| bad())?))
            }
            (Algorithm::XChaCha20Poly1305, Backend::RustCrypto) => Self::XChaCha(Box::new(
                XChaCha20Poly1305::new_from_slice(key).map_err(|_| bad())?,
            )),
        })
    }

    /// Seals `buf` in place and returns the tag.
    fn seal(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], FieldError> {
        let bad_nonce = || FieldError::malformed("bad nonce length");
        let tag = match self {
            Self::Ring(key) => {
                let nonce = ra::Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad_nonce())?;
                ring_seal(key, nonce, aad, buf)
            }
            Self::RingXChaCha(key) => {
                let (key, nonce) = xchacha_over_ring(key, nonce).ok_or_else(bad_nonce)?;
                ring_seal(&key, nonce, aad, buf)
            }
            Self::RustCrypto(key) => {
                let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad_nonce())?;
                rust_crypto_seal(&**key, &nonce.into(), aad, buf)
            }
            Self::XChaCha(key) => {
                let nonce: [u8; 24] = nonce.try_into().map_err(|_| bad_nonce())?;
                rust_crypto_seal(&**key, &nonce.into(), aad, buf)
            }
        };
        tag.ok_or_else(|| FieldError::malformed("value too long to seal"))
    }

    /// Opens `data` in place against `tag`.
    fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), FieldError> {
        // Every failure, a bad nonce included, is the same opaque error.
        let opened = match self {
            Self::Ring(key) => ra::Nonce::try_assume_unique_for_key(nonce)
                .ok()
                .and_then(|nonce| ring_open(key, nonce, aad, data, tag)),
            Self::RingXChaCha(key) => xchacha_over_ring(key, nonce)
                .and_then(|(key, nonce)| ring_open(&key, nonce, aad, data, tag)),
            Self::RustCrypto(key) => <[u8; 12]>::try_from(nonce)
                .ok()
                .and_then(|nonce| rust_crypto_open(&**key, &nonce.into(), aad, data, tag)),
            Self::XChaCha(key) => <[u8; 24]>::try_from(nonce)
                .ok()
                .and_then(|nonce| rust_crypto_open(&**key, &nonce.into(), aad, data, tag)),
        };
        opened.ok_or(FieldError::Authentication)
    }
}

#[inline]
fn ring_seal(
    key: &ra::LessSafeKey,
    nonce: ra::Nonce,
    aad: &[u8],
    buf: &mut [u8],
) -> Option<[u8; TAG_LEN]> {
    let tag = key
        .seal_in_place_separate_tag(nonce, ra::Aad::from(aad), buf)
        .ok()?;
    tag.as_ref().try_into().ok()
}

#[inline]
fn ring_open(
    key: &ra::LessSafeKey,
    nonce: ra::Nonce,
    aad: &[u8],
    data: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Option<()> {
    let tag = ra::Tag::from(*tag);
    key.open_in_place_separate_tag(nonce, ra::Aad::from(aad), tag, data, 0..)
        .ok()
        .map(|_| ())
}

fn rust_crypto_seal<A: AeadInPlace>(
    key: &A,
    nonce: &aes_gcm::aead::Nonce<A>,
    aad: &[u8],
    buf: &mut [u8],
) -> Option<[u8; TAG_LEN]> {
    let tag = key.encrypt_in_place_detached(nonce, aad, buf).ok()?;
    tag.as_slice().try_into().ok()
}

fn rust_crypto_open<A: AeadInPlace>(
    key: &A,
    nonce: &aes_gcm::aead::Nonce<A>,
    aad: &[u8],
    data: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Option<()> {
    let tag = aes_gcm::aead::Tag::<A>::from_exact_iter(tag.iter().copied())?;
    key.decrypt_in_place_detached(nonce, aad, data, &tag).ok()
}

/// XChaCha20-Poly1305 as ChaCha20-Poly1305 (draft-irtf-cfrg-xchacha section 2.3): HChaCha20 of
/// the key and the first 16 nonce bytes is this value's key, and the nonce is four zero bytes
/// and the last 8 nonce bytes. `None` for a nonce that is not 24 bytes.
fn xchacha_over_ring(key: &[u8; KEY_LEN], nonce: &[u8]) -> Option<(ra::LessSafeKey, ra::Nonce)> {
    let (prefix, suffix) = nonce.split_first_chunk::<16>()?;
    let suffix: &[u8; 8] = suffix.try_into().ok()?;
    let mut subkey = chacha20::hchacha::<chacha20::cipher::consts::U10>(key.into(), prefix.into());
    let unbound = ra::UnboundKey::new(&ra::CHACHA20_POLY1305, &subkey);
    subkey.zeroize();
    let mut nonce = [0u8; 12];
    let [_, _, _, _, tail @ ..] = &mut nonce;
    *tail = *suffix;
    Some((
        ra::LessSafeKey::new(unbound.ok()?),
        ra::Nonce::assume_unique_for_key(nonce),
    ))
}

/// Associated data up to this long is built on the stack when decrypting: the longest bound
/// header (19 bytes) and a context with 30-character names and a UUID row id fit.
const AAD_STACK: usize = 128;

/// At most this many per-column subkeys are kept expanded per key; past it, new columns derive
/// their subkey on each call (a table with more encrypted columns than this is unusual).
const MAX_CACHED_SUBKEYS: usize = 1024;

/// A keyring entry, expanded once.
struct CipherKey {
    id: KeyId,
    state: KeyState,
    aes: Prepared,
    xchacha: Prepared,
    kdf: Hkdf<Sha256>,
    /// Per-column subkeys, expanded once: keyed by algorithm id ‖ the HKDF info's table and
    /// column part.
    subkeys: RwLock<HashMap<Box<[u8]>, Arc<Prepared>>>,
    encryptions: EncryptionCounter,
    /// The bound header this cipher writes with this key.
    bound: BoundHeader,
}

impl CipherKey {
    fn new(
        key: &Key,
        backend: Backend,
        bound: BoundHeader,
        limit: Option<u64>,
    ) -> Result<Self, FieldError> {
        let material = key.material().expose_secret();
        Ok(Self {
            id: key.id().clone(),
            state: key.state(),
            aes: Prepared::new(backend, Algorithm::Aes256Gcm, material)?,
            xchacha: Prepared::new(backend, Algorithm::XChaCha20Poly1305, material)?,
            kdf: Hkdf::<Sha256>::new(None, material),
            subkeys: RwLock::new(HashMap::new()),
            encryptions: EncryptionCounter::new(limit),
            bound,
        })
    }

    #[inline]
    fn prepared(&self, algorithm: Algorithm) -> &Prepared {
        match algorithm {
            Algorithm::Aes256Gcm => &self.aes,
            Algorithm::XChaCha20Poly1305 => &self.xchacha,
        }
    }

    /// The key for this value: the key itself, or its per-column subkey.
    #[inline]
    fn for_value(
        &self,
        backend: Backend,
        algorithm: Algorithm,
        subkey: bool,
        ctx: &Context<'_>,
    ) -> Result<ValueKey<'_>, FieldError> {
        if subkey {
            self.subkey(backend, algorithm, ctx).map(ValueKey::Derived)
        } else {
            Ok(ValueKey::Borrowed(self.prepared(algorithm)))
        }
    }

    /// The per-column subkey for `ctx`'s table and column, from the cache or derived.
    fn subkey(
        &self,
        backend: Backend,
        algorithm: Algorithm,
        ctx: &Context<'_>,
    ) -> Result<Arc<Prepared>, FieldError> {
        let table = ctx.table_name().as_bytes();
        let column = ctx.column_name().as_bytes();
        let too_long = || FieldError::malformed("a context part is longer than 65535 bytes");
        let tlen = u16::try_from(table.len())
            .map_err(|_| too_long())?
            .to_be_bytes();
        let clen = u16::try_from(column.len())
            .map_err(|_| too_long())?
            .to_be_bytes();
        // The cache key, on the stack when it fits: a lookup allocates nothing.
        let mut stack = [0u8; AAD_STACK];
        let mut w = Writer::new(&mut stack);
        let mut heap = Vec::new();
        let parts: [&[u8]; 5] = [&[algorithm.id()], &tlen, table, &clen, column];
        parts.iter().for_each(|p| w.put(p));
        let cache_key = match w.written() {
            Some(key) => key,
            None => {
                parts.iter().for_each(|p| heap.put(p));
                &heap
            }
        };
        let cached = self
            .subkeys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cache_key)
            .cloned();
        if let Some(prepared) = cached {
            return Ok(prepared);
        }
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        self.kdf
            .expand_multi_info(&[SUBKEY_INFO, &tlen, table, &clen, column], &mut *okm)
            .map_err(|_| FieldError::malformed("subkey derivation failed"))?;
        let prepared = Arc::new(Prepared::new(backend, algorithm, &*okm)?);
        let mut cache = self.subkeys.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < MAX_CACHED_SUBKEYS {
            cache.insert(cache_key.into(), prepared.clone());
        }
        Ok(prepared)
    }
}

/// A prepared key for one value: the key's own, or a per-column subkey.
enum ValueKey<'a> {
    Borrowed(&'a Prepared),
    Derived(Arc<Prepared>),
}

impl core::ops::Deref for ValueKey<'_> {
    type Target = Prepared;
    fn deref(&self) -> &Prepared {
        match self {
            Self::Borrowed(p) => p,
            Self::Derived(p) => p,
        }
    }
}

/// How many values a key sealed in this process. See the [module documentation](self) for the
/// bound it is measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// The key.
    pub id: KeyId,
    /// Its state.
    pub state: KeyState,
    /// Encryptions under it since this cipher was built.
    pub encryptions: u64,
}

/// Configures a [`FieldCipher`]; from [`FieldCipher::builder`].
pub struct FieldCipherBuilder<'a> {
    keyring: &'a Keyring,
    backend: Backend,
    algorithm: Algorithm,
    column_subkeys: bool,
    limit: Option<u64>,
    audit: Arc<dyn AuditSink>,
    rng: NonceSource,
}

impl FieldCipherBuilder<'_> {
    /// The AES-256-GCM implementation (default [`Backend::Ring`]).
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The AEAD for new values (default [`Algorithm::Aes256Gcm`]). Values under any algorithm
    /// are always readable.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        if algorithm == Algorithm::XChaCha20Poly1305
            && self.limit == Some(AES_GCM_RANDOM_NONCE_LIMIT)
        {
            self.limit = None;
        }
        self
    }

    /// Seal new values under a subkey derived per table and column with HKDF-SHA256 (recorded
    /// in the header, so old and new values stay readable). Each column's subkey is derived and
    /// expanded once and then kept (up to 1,024 columns per key; past that, derived per call at
    /// roughly a microsecond). It limits what one leaked column key exposes and splits the nonce
    /// budget per column.
    #[must_use]
    pub fn column_subkeys(mut self, on: bool) -> Self {
        self.column_subkeys = on;
        self
    }

    /// Refuse to encrypt under a key once this cipher sealed `limit` values with it (`None`: no
    /// limit). Default: [`AES_GCM_RANDOM_NONCE_LIMIT`] for AES-256-GCM, none for XChaCha.
    ///
    /// Threads spend the limit from leases of 4,096 encryptions, so that they do not contend on
    /// one counter; a lease's unused part goes back when its thread moves to another key or
    /// exits. The limit is never passed, but near it, encryptions leased to one thread are not
    /// available to another until they come back. Counts ([`FieldCipher::usage`]) stay exact.
    #[must_use]
    pub fn encryption_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }

    /// Where audit events go (default [`NoopSink`]).
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    /// The nonce source (default [`SystemRandom`]).
    #[must_use]
    pub fn random(mut self, rng: Arc<dyn SecureRandom>) -> Self {
        self.rng = NonceSource::Custom(rng);
        self
    }

    /// Expands every key once and builds the cipher.
    ///
    /// # Errors
    /// [`FieldError::Keyring`]: a key that is not 32 bytes ([`palisade_core::keyring::KeyringError::WrongLength`]),
    /// no active key; [`FieldError::Malformed`] for a key id longer than
    /// [`MAX_FIELD_KEY_ID_LEN`].
    pub fn build(self) -> Result<FieldCipher, FieldError> {
        self.keyring.require_len(KEY_LEN)?;
        let active_id = self.keyring.active()?.id().clone();
        let mut keys = Vec::new();
        let mut active = 0;
        for key in self.keyring.keys() {
            let bound = BoundHeader::new(self.algorithm, self.column_subkeys, key.id().as_bytes())
                .ok_or_else(|| {
                    FieldError::malformed("field key ids may be at most 16 bytes long")
                })?;
            if *key.id() == active_id {
                active = keys.len();
            }
            keys.push(CipherKey::new(key, self.backend, bound, self.limit)?);
        }
        Ok(FieldCipher {
            keys,
            active,
            backend: self.backend,
            algorithm: self.algorithm,
            column_subkeys: self.column_subkeys,
            audit: self.audit,
            rng: self.rng,
        })
    }
}

/// Encrypts and decrypts field values. See the [module documentation](self) and the crate
/// documentation for the format.
pub struct FieldCipher {
    keys: Vec<CipherKey>,
    active: usize,
    backend: Backend,
    algorithm: Algorithm,
    column_subkeys: bool,
    audit: Arc<dyn AuditSink>,
    rng: NonceSource,
}

impl FieldCipher {
    /// A builder with the defaults: ring, AES-256-GCM, no subkeys, no audit, [`SystemRandom`].
    pub fn builder(keyring: &Keyring) -> FieldCipherBuilder<'_> {
        FieldCipherBuilder {
            keyring,
            backend: Backend::Ring,
            algorithm: Algorithm::Aes256Gcm,
            column_subkeys: false,
            limit: Some(AES_GCM_RANDOM_NONCE_LIMIT),
            audit: Arc::new(NoopSink),
            rng: NonceSource::System,
        }
    }

    /// A cipher with the defaults.
    ///
    /// # Errors
    /// As [`FieldCipherBuilder::build`].
    pub fn new(keyring: &Keyring) -> Result<Self, FieldError> {
        Self::builder(keyring).build()
    }

    /// A cipher with the defaults over the keyring in environment variable `name` (text form
    /// `id:state:base64`, see [`palisade_core::keyring`]). Fails fast, naming what is wrong,
    /// when the variable is unset or malformed: call it at start-up and refuse to start on error.
    ///
    /// # Errors
    /// [`FieldError::Keyring`], then as [`FieldCipherBuilder::build`].
    pub fn from_env(name: &str) -> Result<Self, FieldError> {
        Self::new(&Keyring::from_env(name)?)
    }

    /// The id of the key that seals new values.
    pub fn active_key_id(&self) -> &KeyId {
        &self.active_key().id
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Encryptions per key since the cipher was built.
    pub fn usage(&self) -> Vec<KeyUsage> {
        self.keys
            .iter()
            .map(|k| KeyUsage {
                id: k.id.clone(),
                state: k.state,
                encryptions: k.encryptions.count(),
            })
            .collect()
    }

    #[allow(clippy::indexing_slicing)] // `active` is an index into `keys` set by the builder.
    fn active_key(&self) -> &CipherKey {
        &self.keys[self.active]
    }

    /// Encrypts `plaintext` for `ctx` under the active key; returns the raw form (for `bytea`).
    ///
    /// # Errors
    /// [`FieldError::LimitReached`], [`FieldError::Random`], [`FieldError::Malformed`] for a
    /// context part over 65 535 bytes.
    pub fn encrypt(&self, plaintext: &[u8], ctx: &Context<'_>) -> Result<Vec<u8>, FieldError> {
        ctx.check()?;
        let key = self.active_key();
        let algorithm = self.algorithm;
        let prepared = key.for_value(self.backend, algorithm, self.column_subkeys, ctx)?;
        if !key.encryptions.take() {
            return Err(FieldError::LimitReached { id: key.id.clone() });
        }
        let bound_len = key.bound.len();
        let nonce_len = algorithm.nonce_len();
        let header_len = bound_len + nonce_len;
        let sealed_len = header_len + plaintext.len() + TAG_LEN;
        let mut nonce = [0u8; MAX_NONCE_LEN];
        self.rng
            .fill(nonce.get_mut(..nonce_len).unwrap_or_default())?;
        // The associated data is built in the output's spare room past the tag and cut off at
        // the end: no second buffer. Fixed-size blocks are appended and then cut to length
        // (`append_block`), which is cheaper than a variable-length copy; the capacity has
        // room for the slack of the second block.
        let aad_room = BOUND_BLOCK.max(bound_len + ctx.encoded_len());
        let mut out = Vec::with_capacity(sealed_len + aad_room);
        key.bound.append_to(&mut out);
        envelope::append_block(&mut out, &nonce, nonce_len);
        out.extend_from_slice(plaintext);
        out.extend_from_slice(&[0u8; TAG_LEN]);
        key.bound.append_to(&mut out);
        ctx.append_to(&mut out);
        let malformed = || FieldError::malformed("bad header");
        let (header, rest) = out.split_at_mut_checked(header_len).ok_or_else(malformed)?;
        let (sealed, aad) = rest
            .split_at_mut_checked(plaintext.len() + TAG_LEN)
            .ok_or_else(malformed)?;
        let (body, tag) = sealed.split_at_mut(plaintext.len());
        let nonce = header.get(bound_len..).unwrap_or_default();
        tag.copy_from_slice(&prepared.seal(nonce, aad, body)?);
        out.truncate(sealed_len);
        Ok(out)
    }

    /// Encrypts and returns the text form (`pal1:...`, for text columns).
    ///
    /// # Errors
    /// As [`FieldCipher::encrypt`].
    pub fn encrypt_text(&self, plaintext: &[u8], ctx: &Context<'_>) -> Result<String, FieldError> {
        self.encrypt(plaintext, ctx)
            .map(|raw| envelope::encode_text(&raw))
    }

    /// Decrypts a stored value in either form (raw or `pal1:` text).
    ///
    /// # Errors
    /// [`FieldError::Malformed`], [`FieldError::UnknownKey`], [`FieldError::KeyRetired`],
    /// [`FieldError::Authentication`] (wrong key, context or bytes). Each failure is recorded as
    /// an [`Action::DecryptionFailed`] audit event.
    pub fn decrypt(
        &self,
        stored: impl AsRef<[u8]>,
        ctx: &Context<'_>,
    ) -> Result<Plaintext, FieldError> {
        let stored = stored.as_ref();
        self.open(stored, ctx)
            .inspect_err(|e| self.record_failure(e, stored, ctx))
    }

    /// Decrypts a value that holds UTF-8 text.
    ///
    /// # Errors
    /// As [`FieldCipher::decrypt`]; [`FieldError::Malformed`] when the plaintext is not UTF-8.
    pub fn decrypt_string(
        &self,
        stored: impl AsRef<[u8]>,
        ctx: &Context<'_>,
    ) -> Result<Zeroizing<String>, FieldError> {
        self.decrypt(stored, ctx)?
            .into_string()
            .ok_or_else(|| FieldError::malformed("plaintext is not utf-8"))
    }

    fn open(&self, stored: &[u8], ctx: &Context<'_>) -> Result<Plaintext, FieldError> {
        ctx.check()?;
        let raw = envelope::to_raw(stored)?;
        let header = Header::parse_sealed(&raw)?;
        let key = self.key_for(header.key_id_bytes())?;
        let prepared = key.for_value(
            self.backend,
            header.algorithm(),
            header.column_subkey(),
            ctx,
        )?;
        let (_, body) = raw
            .split_at_checked(header.len())
            .ok_or_else(|| FieldError::malformed("truncated ciphertext"))?;
        let (data, tag) = body
            .split_last_chunk::<TAG_LEN>()
            .ok_or_else(|| FieldError::malformed("truncated ciphertext"))?;
        // A sealed value is never shorter than `BOUND_BLOCK`.
        let bound = raw
            .first_chunk::<BOUND_BLOCK>()
            .ok_or_else(|| FieldError::malformed("truncated ciphertext"))?;
        // The plaintext buffer holds just the sealed data, not the tag, so that zeroizing it on
        // drop costs no more than it must; the associated data is built on the stack when it
        // fits.
        let mut buf = Plaintext::new(data.to_vec());
        let mut stack = [0u8; AAD_STACK];
        let bound = bound.get(..header.bound_len()).unwrap_or_default();
        let mut w = Writer::new(&mut stack);
        write_aad(&mut w, bound, ctx);
        match w.written() {
            Some(aad) => prepared.open(header.nonce(), aad, buf.as_mut_slice(), tag)?,
            None => {
                let mut aad = Vec::with_capacity(bound.len() + ctx.encoded_len());
                write_aad(&mut aad, bound, ctx);
                prepared.open(header.nonce(), &aad, buf.as_mut_slice(), tag)?;
            }
        }
        Ok(buf)
    }

    fn key_for(&self, id: &[u8]) -> Result<&CipherKey, FieldError> {
        match self.keys.iter().find(|k| k.id.as_bytes() == id) {
            Some(k) if k.state == KeyState::Retired => {
                Err(FieldError::KeyRetired { id: k.id.clone() })
            }
            Some(k) => Ok(k),
            None => Err(FieldError::UnknownKey {
                id: KeyId::from_bytes(id).map_err(|_| FieldError::malformed("bad key id"))?,
            }),
        }
    }

    /// Whether a stored value (either form) should be rewrapped: it was not sealed by the active
    /// key with this cipher's algorithm and subkey setting. Reads only the header (for the text
    /// form, only the first 80 characters are decoded); verifies nothing.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when the header does not parse.
    pub fn needs_rotation(&self, stored: impl AsRef<[u8]>) -> Result<bool, FieldError> {
        let stored = stored.as_ref();
        let prefix = header_prefix(stored)?;
        let header = Header::parse_prefix(&prefix)?;
        Ok(header.key_id_bytes() != self.active_key().id.as_bytes()
            || header.algorithm() != self.algorithm
            || header.column_subkey() != self.column_subkeys)
    }

    /// Decrypts a stored value and seals it again under the active key for the same context, in
    /// the same form (raw stays raw, text stays text).
    ///
    /// # Errors
    /// As [`FieldCipher::decrypt`] and [`FieldCipher::encrypt`].
    pub fn rewrap(
        &self,
        stored: impl AsRef<[u8]>,
        ctx: &Context<'_>,
    ) -> Result<Vec<u8>, FieldError> {
        let stored = stored.as_ref();
        let plaintext = self.decrypt(stored, ctx)?;
        if envelope::is_text(stored) {
            self.encrypt_text(&plaintext, ctx).map(String::into_bytes)
        } else {
            self.encrypt(&plaintext, ctx)
        }
    }

    /// [`FieldCipher::rewrap`] for a text-form value.
    ///
    /// # Errors
    /// As [`FieldCipher::rewrap`].
    pub fn rewrap_text(&self, stored: &str, ctx: &Context<'_>) -> Result<String, FieldError> {
        let plaintext = self.decrypt(stored, ctx)?;
        self.encrypt_text(&plaintext, ctx)
    }

    pub(crate) fn audit_sink(&self) -> &dyn AuditSink {
        &*self.audit
    }

    fn record_failure(&self, err: &FieldError, stored: &[u8], ctx: &Context<'_>) {
        let reason = match err {
            FieldError::Authentication => "authentication",
            FieldError::UnknownKey { .. } => "unknown_key",
            FieldError::KeyRetired { .. } => "key_retired",
            _ => "malformed",
        };
        let mut event = AuditEvent::new(Action::DecryptionFailed, SystemClock.now())
            .resource(format!("{}.{}", ctx.table_name(), ctx.column_name()))
            .record_id(row_label(ctx.row_id()))
            .meta("reason", reason);
        if let Ok(prefix) = header_prefix(stored)
            && let Ok(h) = Header::parse_prefix(&prefix)
            && let Ok(id) = h.key_id()
        {
            event = event.meta("key_id", id.as_str());
        }
        if let Some(t) = ctx.tenant_name() {
            event = event.tenant(t);
        }
        self.audit.record(event);
    }
}

impl fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldCipher")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (k.id.as_str(), k.state))
                    .collect::<Vec<_>>(),
            )
            .field("active", &self.active_key().id)
            .field("backend", &self.backend)
            .field("algorithm", &self.algorithm)
            .field("column_subkeys", &self.column_subkeys)
            .finish_non_exhaustive()
    }
}

/// A row id as text for audit events.
pub(crate) fn row_label(row: RowId<'_>) -> String {
    match row {
        RowId::Int(i) => i.to_string(),
        RowId::Bytes(b) => match core::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => b.iter().map(|x| format!("{x:02x}")).collect(),
        },
    }
}

/// The first bytes of a stored value's raw form: enough for any header.
fn header_prefix(stored: &[u8]) -> Result<Cow<'_, [u8]>, FieldError> {
    use base64::Engine as _;
    match stored.strip_prefix(envelope::TEXT_PREFIX.as_bytes()) {
        // 80 base64 characters decode to 60 bytes, more than the longest header (59).
        Some(body) => {
            let take = body.len().min(80) & !3;
            let chunk = body.get(..take).unwrap_or_default();
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(chunk)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body))
                .map(Cow::Owned)
                .map_err(|_| FieldError::malformed("text form is not base64url"))
        }
        None => Ok(Cow::Borrowed(stored)),
    }
}

/// Where nonces come from: the default [`SystemRandom`] is called directly, so the hot path
/// makes no virtual call for it; any other source goes through the trait.
#[derive(Debug)]
enum NonceSource {
    System,
    Custom(Arc<dyn SecureRandom>),
}

impl NonceSource {
    #[inline]
    fn fill(&self, dest: &mut [u8]) -> Result<(), palisade_core::random::RandomError> {
        match self {
            Self::System => SystemRandom.fill(dest),
            Self::Custom(rng) => rng.fill(dest),
        }
    }
}

/// Writes the associated data: `bound` (the header up to the key id), then the encoded context.
#[inline]
fn write_aad(out: &mut impl ByteOut, bound: &[u8], ctx: &Context<'_>) {
    out.put(bound);
    ctx.append_to(out);
}

/// A new random 32-byte field key in the keyring text form `id:state:base64`, drawn from the
/// operating system. Phase one of a rotation adds it as [`KeyState::DecryptOnly`].
///
/// ```
/// use palisade_core::keyring::KeyState;
/// let spec = palisade_field::generate_key("2027q1", KeyState::DecryptOnly)?;
/// assert!(spec.starts_with("2027q1:decrypt-only:"));
/// # Ok::<(), palisade_field::FieldError>(())
/// ```
///
/// # Errors
/// [`FieldError::Keyring`] for a bad id or one over 16 bytes; [`FieldError::Random`].
pub fn generate_key(id: &str, state: KeyState) -> Result<Zeroizing<String>, FieldError> {
    if id.len() > MAX_FIELD_KEY_ID_LEN {
        return Err(FieldError::malformed(
            "field key ids may be at most 16 bytes long",
        ));
    }
    let key = Key::generate(KeyId::new(id)?, state, KEY_LEN, &OsRandom)?;
    Ok(key.expose_spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1 (also in the `chacha20poly1305` crate's
    /// tests): both backends must produce and open exactly these bytes.
    #[test]
    fn xchacha_backends_match_the_draft_vector() {
        let key: Vec<u8> = (0x80..=0x9f).collect();
        let nonce: Vec<u8> = (0x40..=0x57).collect();
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plaintext: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
            only one tip for the future, sunscreen would be it.";
        let ciphertext = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b\
            0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb\
            9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e";
        let tag = "c0875924c1c7987947deafd8780acf49";
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        for backend in [Backend::Ring, Backend::RustCrypto] {
            let prepared = Prepared::new(backend, Algorithm::XChaCha20Poly1305, &key).unwrap();
            let mut buf = plaintext.to_vec();
            let sealed_tag = prepared.seal(&nonce, &aad, &mut buf).unwrap();
            assert_eq!(hex(&buf), ciphertext, "{backend:?}");
            assert_eq!(hex(&sealed_tag), tag, "{backend:?}");
            prepared.open(&nonce, &aad, &mut buf, &sealed_tag).unwrap();
            assert_eq!(buf, plaintext, "{backend:?}");
            let mut bad_tag = sealed_tag;
            bad_tag[0] ^= 1;
            assert!(matches!(
                prepared.open(&nonce, &aad, &mut buf, &bad_tag),
                Err(FieldError::Authentication)
            ));
            assert!(
                prepared
                    .open(&nonce[..12], &aad, &mut buf, &sealed_tag)
                    .is_err()
            );
        }
    }
}
