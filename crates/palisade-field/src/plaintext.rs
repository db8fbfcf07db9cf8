//! [`Plaintext`]: a decrypted value that is wiped when dropped and never printed.

use core::fmt;
use core::ops::Deref;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A decrypted value. It reads as a byte slice (`&*plaintext`, `plaintext.as_ref()`), prints
/// `***` in `Debug`, has no `Display` or `Serialize`, and is zeroized when dropped.
///
/// `zeroize::Zeroizing<Vec<u8>>` would do the wiping too, but it wipes a `Vec` one volatile
/// byte write at a time and its `Debug` prints the secret; this wipes the bytes and the spare
/// capacity with `zeroize`'s bulk fill.
///
/// ```
/// use palisade_core::keyring::Keyring;
/// use palisade_field::{Context, FieldCipher};
///
/// let cipher = FieldCipher::new(&Keyring::parse("k1:active:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")?)?;
/// let ctx = Context::new("users", "phone", 7);
/// let plaintext = cipher.decrypt(cipher.encrypt(b"+15551234567", &ctx)?, &ctx)?;
/// assert_eq!(&*plaintext, b"+15551234567");
/// assert_eq!(format!("{plaintext:?}"), "Plaintext(***)");
/// # Ok::<(), palisade_field::FieldError>(())
/// ```
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// For decrypting in place.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Keeps the first `len` bytes; the rest become spare capacity, which is wiped on drop too.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// The bytes as UTF-8 text, zeroizing on drop; bytes that are not UTF-8 are wiped.
    pub(crate) fn into_string(self) -> Option<Zeroizing<String>> {
        match String::from_utf8(self.into_vec()) {
            Ok(text) => Some(Zeroizing::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                None
            }
        }
    }

    /// The bytes as a plain `Vec`: from here on, wiping them is the caller's job.
    pub fn into_vec(mut self) -> Vec<u8> {
        core::mem::take(&mut self.0)
    }
}

impl Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(***)")
    }
}

impl Plaintext {
    /// Overwrites the bytes and the spare capacity with zeros; the length stays.
    fn wipe(&mut self) {
        self.0.as_mut_slice().zeroize();
        self.0.spare_capacity_mut().zeroize();
    }
}

impl Zeroize for Plaintext {
    fn zeroize(&mut self) {
        self.wipe();
        self.0.clear();
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Plaintext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_overwrites_every_byte_and_zeroize_empties() {
        let mut p = Plaintext::new(b"+15551234567".to_vec());
        p.wipe();
        assert_eq!(&*p, &[0u8; 12]);
        p.zeroize();
        assert!(p.is_empty());
    }

    #[test]
    fn debug_hides_the_bytes() {
        let p = Plaintext::new(b"hunter2".to_vec());
        assert_eq!(format!("{p:?}"), "Plaintext(***)");
        assert_eq!(p.into_vec(), b"hunter2");
    }
}
