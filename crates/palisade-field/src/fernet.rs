//! Fernet (and MultiFernet) compatibility: read what a Python service wrote with
//! `cryptography.fernet`, so it can be migrated to the Palisade format.
//!
//! A Fernet token is base64url of
//!
//! ```text
//! 0x80 | timestamp (u64 BE seconds) | IV (16) | AES-128-CBC ciphertext (PKCS#7) | HMAC-SHA256 (32)
//! ```
//!
//! and a key is base64url of 32 bytes: the HMAC signing key, then the AES encryption key.
//! [`Fernet::decrypt`] checks the HMAC in constant time **before** decrypting anything, then the
//! optional time-to-live with the specification's 60-second allowance for clock skew, then
//! decrypts. With several keys (MultiFernet), the first key encrypts and every key is tried to
//! decrypt.
//!
//! Encryption is provided for tests, benches and a gradual cut-over; new data belongs in the
//! Palisade format ([`crate::FieldCipher`]), which binds a context and names its key.
//!
//! # Errors
//! [`FieldError::Malformed`] (not base64url, wrong version, bad length or padding),
//! [`FieldError::Authentication`] (no key's HMAC matches: opaque), [`FieldError::Expired`].
//!
//! # Panics
//! None.

use core::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use palisade_core::random::SecureRandom;
use palisade_core::time::UnixTime;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::FieldError;
use crate::plaintext::Plaintext;

/// The version byte of every Fernet token.
pub const VERSION: u8 = 0x80;
/// The clock-skew allowance of the specification: tokens stamped up to 60 s in the future pass.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

const HEADER_LEN: usize = 1 + 8 + 16;
const MAC_LEN: usize = 32;
const MIN_LEN: usize = HEADER_LEN + 16 + MAC_LEN;

/// A Fernet key: 16 bytes of HMAC key, 16 bytes of AES key. Zeroized on drop; `***` in Debug.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl FernetKey {
    /// Reads a key in Python's form: base64url (padded or not) of 32 bytes.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when it is not base64url of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, FieldError> {
        let bytes = Zeroizing::new(decode_b64url(text.trim().as_bytes())?);
        let bytes: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| FieldError::malformed("a fernet key is 32 bytes"))?;
        let (signing, encryption) = bytes.split_at(16);
        Ok(Self {
            signing: signing.try_into().unwrap_or_default(),
            encryption: encryption.try_into().unwrap_or_default(),
        })
    }

    /// A new random key.
    ///
    /// # Errors
    /// [`FieldError::Random`].
    pub fn generate(rng: &(impl SecureRandom + ?Sized)) -> Result<Self, FieldError> {
        let mut key = Self {
            signing: [0; 16],
            encryption: [0; 16],
        };
        rng.fill(&mut key.signing)?;
        rng.fill(&mut key.encryption)?;
        Ok(key)
    }

    /// The key in Python's form (padded base64url). Exposes the secret.
    pub fn expose_base64(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        let (a, b) = bytes.split_at_mut(16);
        a.copy_from_slice(&self.signing);
        b.copy_from_slice(&self.encryption);
        Zeroizing::new(URL_SAFE.encode(*bytes))
    }

    fn mac(&self) -> Result<Hmac<Sha256>, FieldError> {
        Hmac::<Sha256>::new_from_slice(&self.signing)
            .map_err(|_| FieldError::malformed("bad fernet key"))
    }
}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FernetKey(***)")
    }
}

/// Fernet with one or more keys (MultiFernet). See the [module documentation](self).
///
/// ```
/// use palisade_core::random::SystemRandom;
/// use palisade_core::time::UnixTime;
/// use palisade_field::fernet::{Fernet, FernetKey};
///
/// let fernet = Fernet::from_keys("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")?;
/// let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
/// let now = UnixTime::from_secs(499_162_801);
/// assert_eq!(&*fernet.decrypt(token, Some(std::time::Duration::from_secs(60)), now)?, b"hello");
/// # Ok::<(), palisade_field::FieldError>(())
/// ```
#[derive(Debug)]
pub struct Fernet {
    keys: Vec<FernetKey>,
}

impl Fernet {
    /// Fernet with one key.
    pub fn new(key: FernetKey) -> Self {
        Self { keys: vec![key] }
    }

    /// MultiFernet: the first key encrypts, all keys decrypt (in order).
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when `keys` is empty.
    pub fn multi(keys: Vec<FernetKey>) -> Result<Self, FieldError> {
        if keys.is_empty() {
            return Err(FieldError::malformed("multifernet needs at least one key"));
        }
        Ok(Self { keys })
    }

    /// Keys separated by commas or whitespace, as a Python service often keeps them in one
    /// variable (for example `TOKEN_ENCRYPTION_KEY`).
    ///
    /// # Errors
    /// As [`FernetKey::from_base64`] and [`Fernet::multi`].
    pub fn from_keys(text: &str) -> Result<Self, FieldError> {
        let keys = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(FernetKey::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Self::multi(keys)
    }

    /// Verifies and decrypts a token. With `ttl`, the token must be at most `ttl` old at `now`
    /// and stamped at most [`MAX_CLOCK_SKEW`] after `now` (as in Python, neither is checked
    /// without a ttl).
    ///
    /// # Errors
    /// See the [module documentation](self).
    pub fn decrypt(
        &self,
        token: impl AsRef<[u8]>,
        ttl: Option<Duration>,
        now: UnixTime,
    ) -> Result<Plaintext, FieldError> {
        let raw = decode_token(token.as_ref())?;
        let (signed, tag) = raw
            .split_at_checked(raw.len() - MAC_LEN)
            .ok_or_else(|| FieldError::malformed("fernet token too short"))?;
        let mut verified = None;
        for key in &self.keys {
            let mut mac = key.mac()?;
            mac.update(signed);
            if mac.verify_slice(tag).is_ok() {
                verified = Some(key);
                break;
            }
        }
        let key = verified.ok_or(FieldError::Authentication)?;
        let (header, body) = signed
            .split_at_checked(HEADER_LEN)
            .ok_or_else(|| FieldError::malformed("fernet token too short"))?;
        let (ts, iv) = header
            .get(1..)
            .and_then(|h| h.split_at_checked(8))
            .ok_or_else(|| FieldError::malformed("fernet token too short"))?;
        let ts = u64::from_be_bytes(ts.try_into().unwrap_or_default());
        if let Some(ttl) = ttl {
            let now = now.as_secs();
            if ts.saturating_add(ttl.as_secs()) < now
                || now.saturating_add(MAX_CLOCK_SKEW.as_secs()) < ts
            {
                return Err(FieldError::Expired);
            }
        }
        let iv: [u8; 16] = iv
            .try_into()
            .map_err(|_| FieldError::malformed("fernet token too short"))?;
        let mut buf = Plaintext::new(body.to_vec());
        let len = cbc::Decryptor::<aes::Aes128>::new(&key.encryption.into(), &iv.into())
            .decrypt_padded_mut::<Pkcs7>(buf.as_mut_slice())
            .map_err(|_| FieldError::malformed("fernet padding is invalid"))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Encrypts under the first key with a random IV, stamped `now`; returns the token in
    /// Python's form (padded base64url).
    ///
    /// # Errors
    /// [`FieldError::Random`].
    pub fn encrypt(
        &self,
        plaintext: &[u8],
        now: UnixTime,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<String, FieldError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| FieldError::malformed("multifernet needs at least one key"))?;
        let iv: [u8; 16] = palisade_core::random::array(rng)?;
        let padded = (plaintext.len() / 16 + 1) * 16;
        let mut raw = Vec::with_capacity(HEADER_LEN + padded + MAC_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&now.as_secs().to_be_bytes());
        raw.extend_from_slice(&iv);
        raw.extend_from_slice(plaintext);
        raw.resize(HEADER_LEN + padded, 0);
        let body = raw
            .get_mut(HEADER_LEN..)
            .ok_or_else(|| FieldError::malformed("fernet buffer"))?;
        cbc::Encryptor::<aes::Aes128>::new(&key.encryption.into(), &iv.into())
            .encrypt_padded_mut::<Pkcs7>(body, plaintext.len())
            .map_err(|_| FieldError::malformed("fernet buffer"))?;
        let mut mac = key.mac()?;
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        Ok(URL_SAFE.encode(&raw))
    }

    /// The timestamp of a token, unverified (for reporting only).
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when it is not structurally a Fernet token.
    pub fn timestamp(token: impl AsRef<[u8]>) -> Result<UnixTime, FieldError> {
        let raw = decode_token(token.as_ref())?;
        let ts = raw
            .get(1..9)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .ok_or_else(|| FieldError::malformed("fernet token too short"))?;
        Ok(UnixTime::from_secs(u64::from_be_bytes(ts)))
    }

    /// Whether `value` is structurally a Fernet token (base64url, version 0x80, whole blocks):
    /// a cheap test, no key involved.
    pub fn looks_like_token(value: &[u8]) -> bool {
        value.starts_with(b"gAAAAA") && decode_token(value).is_ok()
    }
}

fn decode_b64url(text: &[u8]) -> Result<Vec<u8>, FieldError> {
    let mut end = text.len();
    while end > 0 && text.get(end - 1) == Some(&b'=') {
        end -= 1;
    }
    let body = text.get(..end).unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| FieldError::malformed("not base64url"))
}

fn decode_token(token: &[u8]) -> Result<Vec<u8>, FieldError> {
    let raw = decode_b64url(token)?;
    if raw.first() != Some(&VERSION) {
        return Err(FieldError::malformed("not a fernet token"));
    }
    if raw.len() < MIN_LEN || !(raw.len() - HEADER_LEN - MAC_LEN).is_multiple_of(16) {
        return Err(FieldError::malformed("fernet token has a bad length"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::random::SystemRandom;

    #[test]
    fn round_trip_and_multi() {
        let a = FernetKey::generate(&SystemRandom).unwrap();
        let b = FernetKey::generate(&SystemRandom).unwrap();
        let a2 = FernetKey::from_base64(&a.expose_base64()).unwrap();
        let now = UnixTime::from_secs(1_700_000_000);
        let old = Fernet::new(a)
            .encrypt(b"secret", now, &SystemRandom)
            .unwrap();
        assert!(Fernet::looks_like_token(old.as_bytes()));
        let multi = Fernet::multi(vec![b, a2]).unwrap();
        assert_eq!(&*multi.decrypt(&old, None, now).unwrap(), b"secret");
        let ttl = Some(Duration::from_secs(10));
        assert!(multi.decrypt(&old, ttl, now).is_ok());
        assert!(matches!(
            multi.decrypt(&old, ttl, UnixTime::from_secs(1_700_000_011)),
            Err(FieldError::Expired)
        ));
        assert!(matches!(
            multi.decrypt(&old, ttl, UnixTime::from_secs(1_700_000_000 - 61)),
            Err(FieldError::Expired)
        ));
        assert!(
            multi
                .decrypt(&old, ttl, UnixTime::from_secs(1_700_000_000 - 60))
                .is_ok()
        );
        assert_eq!(Fernet::timestamp(&old).unwrap(), now);
        assert_eq!(
            format!("{multi:?}"),
            "Fernet { keys: [FernetKey(***), FernetKey(***)] }"
        );
    }

    #[test]
    fn every_length_encrypts() {
        let f = Fernet::new(FernetKey::generate(&SystemRandom).unwrap());
        for n in 0..50 {
            let msg = vec![b'x'; n];
            let t = f
                .encrypt(&msg, UnixTime::from_secs(1), &SystemRandom)
                .unwrap();
            assert_eq!(&*f.decrypt(&t, None, UnixTime::from_secs(1)).unwrap(), &msg);
        }
    }
}
