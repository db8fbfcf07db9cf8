//! Secret bytes and constant-time comparison: the one place both live.
//!
//! [`SecretBytes`] holds key material, seeds and codes. It zeroizes on drop, prints `***` in
//! `Debug`, and has no `Display`, `Serialize` or `Clone`: the bytes come out only through
//! [`SecretBytes::expose_secret`], a name that is easy to find in review.
//!
//! [`ct_eq`] compares byte strings in time that depends only on their lengths.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret bytes that are wiped from memory when dropped.
///
/// ```
/// use palisade_core::secret::SecretBytes;
///
/// let key = SecretBytes::new(vec![7u8; 32]);
/// assert_eq!(format!("{key:?}"), "SecretBytes(***)");
/// assert_eq!(key.expose_secret().len(), 32);
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Box<[u8]>);

impl SecretBytes {
    /// Takes ownership of `bytes`. The vector's buffer is moved, not copied, so no stray copy
    /// is left behind (a `Vec` with spare capacity is shrunk first, which may copy; build the
    /// vector with its final length to avoid that).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes.into_boxed_slice())
    }

    /// Copies `bytes` into a new secret. The caller remains responsible for wiping its copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }

    /// `len` zero bytes, to be filled in place (for example by a random source).
    pub fn zeroed(len: usize) -> Self {
        Self(vec![0u8; len].into_boxed_slice())
    }

    /// The secret bytes. Every call site is a place where a secret leaves its box.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Mutable access, for filling a secret in place.
    pub fn expose_secret_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The number of bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An explicit copy. Named, not `Clone`, so that every duplication of a secret is visible.
    pub fn duplicate(&self) -> Self {
        Self::from_slice(&self.0)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(***)")
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time in the contents.
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

/// Compares two byte strings in time that depends only on their lengths, never their contents.
///
/// ```
/// assert!(palisade_core::secret::ct_eq(b"abc", b"abc"));
/// assert!(!palisade_core::secret::ct_eq(b"abc", b"abd"));
/// assert!(!palisade_core::secret::ct_eq(b"abc", b"ab"));
/// ```
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::from_slice(b"hunter2");
        let shown = format!("{s:?} {:#?}", s);
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("104")); // 'h' as a number
        assert_eq!(shown, "SecretBytes(***) SecretBytes(***)");
    }

    #[test]
    fn equality_is_by_content() {
        assert_eq!(
            SecretBytes::from_slice(b"k1"),
            SecretBytes::new(b"k1".to_vec())
        );
        assert_ne!(
            SecretBytes::from_slice(b"k1"),
            SecretBytes::from_slice(b"k2")
        );
        assert_ne!(
            SecretBytes::from_slice(b"k1"),
            SecretBytes::from_slice(b"k1x")
        );
    }

    #[test]
    fn zeroize_wipes() {
        let mut s = SecretBytes::from_slice(&[9u8; 16]);
        s.zeroize();
        assert!(s.expose_secret().iter().all(|&b| b == 0));
    }

    #[test]
    fn duplicate_is_independent() {
        let mut a = SecretBytes::zeroed(4);
        let b = a.duplicate();
        a.expose_secret_mut()[0] = 1;
        assert_eq!(b.expose_secret(), &[0, 0, 0, 0]);
    }
}
