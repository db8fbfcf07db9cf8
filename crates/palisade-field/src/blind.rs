//! Blind indexes: equality search over an encrypted column.
//!
//! Encrypted values are randomized, so `WHERE phone = $1` cannot match them. Store beside each
//! value a blind index, HMAC-SHA256 under a key of its own (never the encryption key) over the
//! column name and the normalized plaintext, truncated to `len` bytes, and search on that.
//!
//! # Choosing the length
//! The index is deterministic: equal plaintexts give equal indexes, which is the point, and
//! also what it leaks (which rows share a value, and how often). Truncation trades false
//! positives for less leakage:
//!
//! - With `len` bytes and `n` distinct values, a given lookup matches an unrelated row with
//!   probability about `n / 2^(8 len)`. Always decrypt the candidate rows and compare, so a
//!   collision costs only an extra decryption.
//! - Long indexes (16-32 bytes) are unique in practice; they leak exactly the equality pattern.
//! - Short indexes (2-4 bytes for small tables) deliberately collide, so an index value no longer
//!   pins a single plaintext; for low-entropy columns (a birth year, a country) that helps
//!   against frequency analysis, at the price of more candidate rows per lookup.
//! - For low-entropy values, no index length prevents a holder of the index key from testing
//!   guesses: keep that key as secret as the encryption key.
//!
//! Normalize before indexing (case, whitespace, E.164 for phone numbers): the index matches
//! bytes, not meanings.
//!
//! # Errors
//! [`FieldError::Malformed`] for a length outside 1..=32 or a key under 32 bytes.
//!
//! # Panics
//! None.

use core::fmt;

use hmac::{Hmac, Mac};
use palisade_core::secret::SecretBytes;
use sha2::Sha256;

use crate::error::FieldError;

/// Computes blind indexes for one column. See the [module documentation](self).
///
/// ```
/// use palisade_core::secret::SecretBytes;
/// use palisade_field::blind::BlindIndex;
///
/// let index = BlindIndex::new(&SecretBytes::new(vec![7u8; 32]), "users.email", 16)?;
/// assert_eq!(index.compute(b"ann@example.com"), index.compute(b"ann@example.com"));
/// assert_ne!(index.compute(b"ann@example.com"), index.compute(b"bob@example.com"));
/// assert_eq!(index.compute(b"x").len(), 16);
/// # Ok::<(), palisade_field::FieldError>(())
/// ```
#[derive(Clone)]
pub struct BlindIndex {
    mac: Hmac<Sha256>,
    len: usize,
}

impl BlindIndex {
    /// An index for the column named `domain` (for example `users.email`), `len` bytes long.
    /// The domain keeps two columns' indexes apart under one key.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] for `len` outside 1..=32, a key under 32 bytes, or a domain
    /// over 65 535 bytes.
    pub fn new(key: &SecretBytes, domain: &str, len: usize) -> Result<Self, FieldError> {
        if !(1..=32).contains(&len) {
            return Err(FieldError::malformed(
                "blind index length must be 1 to 32 bytes",
            ));
        }
        if key.len() < 32 {
            return Err(FieldError::malformed(
                "blind index key must be at least 32 bytes",
            ));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret())
            .map_err(|_| FieldError::malformed("bad blind index key"))?;
        let dlen = u16::try_from(domain.len())
            .map_err(|_| FieldError::malformed("blind index domain too long"))?;
        mac.update(b"palisade-field blind index v1");
        mac.update(&dlen.to_be_bytes());
        mac.update(domain.as_bytes());
        Ok(Self { mac, len })
    }

    /// The index of `value`: `len` bytes.
    pub fn compute(&self, value: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(value);
        let mut out = mac.finalize().into_bytes().to_vec();
        out.truncate(self.len);
        out
    }

    /// The index as lower-case hex, for text columns.
    pub fn compute_hex(&self, value: &[u8]) -> String {
        use core::fmt::Write as _;
        self.compute(value)
            .iter()
            .fold(String::with_capacity(self.len * 2), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// The index length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an index is at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndex")
            .field("key", &"***")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_keys_separate() {
        let k1 = SecretBytes::new(vec![1u8; 32]);
        let k2 = SecretBytes::new(vec![2u8; 32]);
        let a = BlindIndex::new(&k1, "users.email", 32).unwrap();
        let b = BlindIndex::new(&k1, "users.phone", 32).unwrap();
        let c = BlindIndex::new(&k2, "users.email", 32).unwrap();
        assert_ne!(a.compute(b"v"), b.compute(b"v"));
        assert_ne!(a.compute(b"v"), c.compute(b"v"));
        let short = BlindIndex::new(&k1, "users.email", 4).unwrap();
        assert_eq!(short.compute(b"v"), a.compute(b"v")[..4]);
        assert_eq!(short.compute_hex(b"v").len(), 8);
        assert!(!format!("{a:?}").contains("1, 1"));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let k = SecretBytes::new(vec![1u8; 32]);
        assert!(BlindIndex::new(&k, "d", 0).is_err());
        assert!(BlindIndex::new(&k, "d", 33).is_err());
        assert!(BlindIndex::new(&SecretBytes::new(vec![1u8; 16]), "d", 8).is_err());
    }
}
