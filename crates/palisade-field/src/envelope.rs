//! The ciphertext format: a small authenticated header, then the sealed data and tag.
//!
//! # Byte layout (version 1)
//!
//! ```text
//! offset  size        field
//! 0       1           version            0x01
//! 1       1           algorithm          low 7 bits: 0x01 AES-256-GCM (12-byte nonce)
//!                                                    0x02 XChaCha20-Poly1305 (24-byte nonce)
//!                                        high bit 0x80: key derived per column (HKDF-SHA256)
//! 2       1           key id length n    1..=32
//! 3       n           key id             ASCII [A-Za-z0-9._-]
//! 3+n     12 or 24    nonce              random, per value
//! ...     len         sealed data        same length as the plaintext
//! end-16  16          tag
//! ```
//!
//! The associated data of the AEAD is the header from the version through the key id, followed
//! by the encoded [`crate::Context`]. The nonce is not repeated there: it is the AEAD's own nonce
//! input, which the tag already authenticates. So changing any header byte, moving the value to
//! another row or column, or truncating it fails with [`crate::FieldError::Authentication`] (or a
//! typed [`crate::FieldError::Malformed`] / [`crate::FieldError::UnknownKey`] when the header no
//! longer parses or names another key).
//!
//! Overhead is `3 + n + nonce + 16` bytes: 31 + n for AES-256-GCM. [`crate::FieldCipher`] accepts
//! key ids up to [`MAX_FIELD_KEY_ID_LEN`] = 16 bytes, so the overhead is at most 47 bytes (a
//! 6-byte id such as `2026q4` gives 37).
//!
//! # Text form
//! For text columns: `pal1:` followed by the raw bytes in unpadded base64url. The prefix makes
//! "is this already encrypted?" one comparison ([`is_encrypted`]); raw values begin with 0x01,
//! never with `p`, so every function here and on [`crate::FieldCipher`] accepts either form.
//!
//! # Errors
//! [`crate::FieldError::Malformed`] for anything that does not parse.
//!
//! # Panics
//! None: every read is bounds-checked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::keyring::KeyId;

use crate::error::FieldError;

/// The format version this crate writes and reads.
pub const VERSION: u8 = 0x01;
/// The prefix of the text form.
pub const TEXT_PREFIX: &str = "pal1:";
/// The tag length of every supported AEAD.
pub const TAG_LEN: usize = 16;
/// The longest key id [`crate::FieldCipher`] accepts (the format itself allows 32), which keeps
/// the overhead of a value under 48 bytes.
pub const MAX_FIELD_KEY_ID_LEN: usize = 16;

const SUBKEY_FLAG: u8 = 0x80;

/// The AEAD that sealed a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// AES-256-GCM with a random 96-bit nonce: the fast default. NIST SP 800-38D bounds a key
    /// to 2^32 random-nonce encryptions; see [`crate::FieldCipher::usage`].
    #[default]
    Aes256Gcm,
    /// XChaCha20-Poly1305 with a random 192-bit nonce: for keys that will seal far more than
    /// 2^32 values (random nonces of this size never collide in practice).
    XChaCha20Poly1305,
}

impl Algorithm {
    /// The id byte (without the subkey flag).
    pub const fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 0x01,
            Self::XChaCha20Poly1305 => 0x02,
        }
    }

    /// The nonce length in bytes.
    pub const fn nonce_len(self) -> usize {
        match self {
            Self::Aes256Gcm => 12,
            Self::XChaCha20Poly1305 => 24,
        }
    }

    fn from_id(id: u8) -> Option<Self> {
        match id {
            0x01 => Some(Self::Aes256Gcm),
            0x02 => Some(Self::XChaCha20Poly1305),
            _ => None,
        }
    }
}

/// The parsed header of a raw ciphertext, borrowing from it. Reading it costs no cryptography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    algorithm: Algorithm,
    column_subkey: bool,
    key_id: &'a [u8],
    nonce: &'a [u8],
    header_len: usize,
}

impl<'a> Header<'a> {
    /// Parses the header of a raw ciphertext (not the text form: see [`decode_text`]), checking
    /// that a full tag follows it.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] for a wrong version, an unknown algorithm, a bad key id, or a
    /// value too short to hold a nonce and a tag.
    pub fn parse(raw: &'a [u8]) -> Result<Self, FieldError> {
        Self::parse_sealed(raw)?.with_valid_key_id()
    }

    /// Parses only the header, without requiring the sealed data after it.
    pub(crate) fn parse_prefix(raw: &'a [u8]) -> Result<Self, FieldError> {
        Self::parse_layout(raw)?.with_valid_key_id()
    }

    fn with_valid_key_id(self) -> Result<Self, FieldError> {
        if !self
            .key_id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(FieldError::malformed("bad key id"));
        }
        Ok(self)
    }

    /// Parses the fields and lengths of a header, and that a full tag follows it, without
    /// checking the key id's characters: for decryption, which looks the id up among valid
    /// ones and reports an invalid one then.
    pub(crate) fn parse_sealed(raw: &'a [u8]) -> Result<Self, FieldError> {
        let header = Self::parse_layout(raw)?;
        if raw.len() < header.header_len + TAG_LEN {
            return Err(FieldError::malformed("truncated ciphertext"));
        }
        Ok(header)
    }

    fn parse_layout(raw: &'a [u8]) -> Result<Self, FieldError> {
        let [version, alg, id_len, rest @ ..] = raw else {
            return Err(FieldError::malformed("truncated header"));
        };
        if *version != VERSION {
            return Err(FieldError::malformed("unsupported ciphertext version"));
        }
        let algorithm = Algorithm::from_id(alg & !SUBKEY_FLAG)
            .ok_or_else(|| FieldError::malformed("unknown algorithm"))?;
        let id_len = usize::from(*id_len);
        if id_len == 0 || id_len > palisade_core::keyring::MAX_KEY_ID_LEN {
            return Err(FieldError::malformed("bad key id length"));
        }
        let (key_id, rest) = rest
            .split_at_checked(id_len)
            .ok_or_else(|| FieldError::malformed("truncated header"))?;
        let (nonce, _) = rest
            .split_at_checked(algorithm.nonce_len())
            .ok_or_else(|| FieldError::malformed("truncated header"))?;
        Ok(Self {
            algorithm,
            column_subkey: alg & SUBKEY_FLAG != 0,
            key_id,
            nonce,
            header_len: 3 + id_len + algorithm.nonce_len(),
        })
    }

    /// The AEAD.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether the value was sealed under a per-column subkey.
    pub fn column_subkey(&self) -> bool {
        self.column_subkey
    }

    /// The key id's bytes, as stored.
    pub fn key_id_bytes(&self) -> &'a [u8] {
        self.key_id
    }

    /// The key id.
    ///
    /// # Errors
    /// Never for a parsed header (the bytes were checked); typed for completeness.
    pub fn key_id(&self) -> Result<KeyId, FieldError> {
        KeyId::from_bytes(self.key_id).map_err(|_| FieldError::malformed("bad key id"))
    }

    /// The nonce.
    pub fn nonce(&self) -> &'a [u8] {
        self.nonce
    }

    /// The length of the part bound as associated data: version, algorithm and key id.
    pub(crate) fn bound_len(&self) -> usize {
        3 + self.key_id.len()
    }

    /// The header's length in bytes: where the sealed data starts.
    pub fn len(&self) -> usize {
        self.header_len
    }

    /// Always false: a header holds at least a version, algorithm, key id and nonce.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The longest nonce of any algorithm (XChaCha20-Poly1305's).
pub(crate) const MAX_NONCE_LEN: usize = 24;

/// Room for the longest bound header (3 bytes and a 16-byte key id), rounded up so that the hot
/// paths copy it as one fixed-size block and then cut it to length, instead of a variable-length
/// copy. Every sealed value is at least this long (header, 12-byte nonce, 16-byte tag).
pub(crate) const BOUND_BLOCK: usize = 32;

/// The part of a header bound as associated data (version, algorithm, key id) for one key and
/// one cipher setting, built once; the nonce follows it.
pub(crate) struct BoundHeader {
    bytes: [u8; BOUND_BLOCK],
    len: usize,
}

impl BoundHeader {
    /// `None` when `key_id` is longer than [`MAX_FIELD_KEY_ID_LEN`].
    pub(crate) fn new(algorithm: Algorithm, column_subkey: bool, key_id: &[u8]) -> Option<Self> {
        let alg = if column_subkey {
            algorithm.id() | SUBKEY_FLAG
        } else {
            algorithm.id()
        };
        if key_id.len() > MAX_FIELD_KEY_ID_LEN {
            return None;
        }
        let id_len = u8::try_from(key_id.len()).ok()?;
        let mut bytes = [0u8; BOUND_BLOCK];
        let [version, algorithm, length, id @ ..] = &mut bytes;
        (*version, *algorithm, *length) = (VERSION, alg, id_len);
        id.get_mut(..key_id.len())?.copy_from_slice(key_id);
        Some(Self {
            bytes,
            len: 3 + key_id.len(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends the header to `out`.
    #[inline]
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        append_block(out, &self.bytes, self.len);
    }
}

/// Appends the first `len` bytes of `block` to `out`: a fixed-size copy, then a cut.
#[inline]
pub(crate) fn append_block<const N: usize>(out: &mut Vec<u8>, block: &[u8; N], len: usize) {
    let end = out.len() + len.min(N);
    out.extend_from_slice(block);
    out.truncate(end);
}

/// Whether `value` is in the text form (starts with [`TEXT_PREFIX`]). One comparison; it does
/// not check that the rest decodes.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with(TEXT_PREFIX)
}

/// The text form of a raw ciphertext.
pub fn encode_text(raw: &[u8]) -> String {
    let mut out = String::with_capacity(TEXT_PREFIX.len() + raw.len().div_ceil(3) * 4);
    out.push_str(TEXT_PREFIX);
    URL_SAFE_NO_PAD.encode_string(raw, &mut out);
    out
}

/// The raw bytes of a text-form ciphertext.
///
/// # Errors
/// [`FieldError::Malformed`] when the prefix is missing or the rest is not unpadded base64url.
pub fn decode_text(text: &str) -> Result<Vec<u8>, FieldError> {
    let body = text
        .strip_prefix(TEXT_PREFIX)
        .ok_or_else(|| FieldError::malformed("missing pal1: prefix"))?;
    URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| FieldError::malformed("text form is not base64url"))
}

/// A stored value in either form, raw bytes or `pal1:` text, as raw bytes (borrowed when it
/// already is raw).
pub(crate) fn to_raw(stored: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, FieldError> {
    match stored.strip_prefix(TEXT_PREFIX.as_bytes()) {
        Some(body) => URL_SAFE_NO_PAD
            .decode(body)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| FieldError::malformed("text form is not base64url")),
        None => Ok(std::borrow::Cow::Borrowed(stored)),
    }
}

/// Whether a stored value (either form) is text form.
pub(crate) fn is_text(stored: &[u8]) -> bool {
    stored.starts_with(TEXT_PREFIX.as_bytes())
}

/// What a stored value's header says, without decrypting it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// The key that sealed it.
    pub key_id: KeyId,
    /// The AEAD.
    pub algorithm: Algorithm,
    /// Whether a per-column subkey sealed it.
    pub column_subkey: bool,
    /// The plaintext length.
    pub plaintext_len: usize,
}

/// Reads the header of a stored value in either form.
///
/// # Errors
/// [`FieldError::Malformed`] when it is not a well-formed ciphertext.
pub fn inspect(stored: &[u8]) -> Result<Inspection, FieldError> {
    let raw = to_raw(stored)?;
    let header = Header::parse(&raw)?;
    Ok(Inspection {
        key_id: header.key_id()?,
        algorithm: header.algorithm(),
        column_subkey: header.column_subkey(),
        plaintext_len: raw.len().saturating_sub(header.len() + TAG_LEN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        BoundHeader::new(Algorithm::Aes256Gcm, false, b"k1")
            .unwrap()
            .append_to(&mut v);
        v.extend_from_slice(&[7u8; 12]);
        v.extend_from_slice(&[0u8; 20]);
        v
    }

    #[test]
    fn header_round_trip() {
        let v = sample();
        let h = Header::parse(&v).unwrap();
        assert_eq!(h.key_id_bytes(), b"k1");
        assert_eq!(h.nonce(), &[7u8; 12]);
        assert_eq!(h.len(), 17);
        assert_eq!(h.algorithm(), Algorithm::Aes256Gcm);
        assert!(!h.column_subkey());
        let i = inspect(encode_text(&v).as_bytes()).unwrap();
        assert_eq!(i.plaintext_len, 4);
    }

    #[test]
    fn every_truncation_is_malformed() {
        let v = sample();
        for n in 0..(17 + TAG_LEN) {
            assert!(matches!(
                Header::parse(&v[..n]),
                Err(FieldError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn bad_header_fields_are_malformed() {
        let v = sample();
        for (i, b) in [(0, 2u8), (1, 9), (2, 0), (2, 33), (3, b':')] {
            let mut w = v.clone();
            w[i] = b;
            assert!(Header::parse(&w).is_err(), "byte {i} = {b}");
        }
    }

    #[test]
    fn text_form() {
        let v = sample();
        let t = encode_text(&v);
        assert!(is_encrypted(&t));
        assert!(!is_encrypted("+15551234567"));
        assert_eq!(decode_text(&t).unwrap(), v);
        assert!(decode_text("pal1:!!").is_err());
        assert!(decode_text("nope").is_err());
    }
}
