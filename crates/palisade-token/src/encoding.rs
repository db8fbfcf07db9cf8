//! Small text encodings shared by the token formats: base62 and CRC-32.
//!
//! CRC-32 is written out here (a 1 KiB table computed at compile time) rather than pulled in as
//! a dependency: it is twenty lines, it is not cryptographic, and its check value is tested.

use palisade_core::random::{RandomError, SecureRandom};

/// The base62 alphabet, digits then upper then lower case (the order GitHub's tokens use).
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Number of base62 characters that hold any `u32`: 62^6 > 2^32.
pub(crate) const CRC_CHARS: usize = 6;

/// Fills `out` with uniformly random base62 characters (rejection sampling: bytes at or above
/// 248 = 4 * 62 are drawn again, so every character has probability exactly 1/62).
pub(crate) fn random_base62(
    rng: &(impl SecureRandom + ?Sized),
    out: &mut [u8],
) -> Result<(), RandomError> {
    let mut buf = [0u8; 64];
    let mut filled = 0;
    while filled < out.len() {
        rng.fill(&mut buf)?;
        for &b in &buf {
            if b >= 248 {
                continue;
            }
            let Some(slot) = out.get_mut(filled) else {
                break;
            };
            *slot = BASE62.get(usize::from(b % 62)).copied().unwrap_or(b'0');
            filled += 1;
        }
    }
    buf.fill(0);
    Ok(())
}

/// Whether every byte is a base62 character.
pub(crate) fn is_base62(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_alphanumeric)
}

fn base62_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 36),
        _ => None,
    }
}

/// `v` as exactly [`CRC_CHARS`] base62 characters, most significant first.
pub(crate) fn u32_to_base62(mut v: u32) -> [u8; CRC_CHARS] {
    let mut out = [b'0'; CRC_CHARS];
    for slot in out.iter_mut().rev() {
        *slot = BASE62.get((v % 62) as usize).copied().unwrap_or(b'0');
        v /= 62;
    }
    out
}

/// The inverse of [`u32_to_base62`]; `None` for a wrong length, a non-base62 character or a
/// value above `u32::MAX`.
pub(crate) fn base62_to_u32(s: &[u8]) -> Option<u32> {
    if s.len() != CRC_CHARS {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        v = v * 62 + u64::from(base62_value(c)?);
    }
    u32::try_from(v).ok()
}

/// HMAC-SHA-256 of the concatenation of `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length, so this never falls back; the fallback keeps the code
    // free of panics.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<sha2::Sha256> as Mac>::new(&Default::default()));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A cursor over untrusted bytes: every read is checked.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A string of at most 255 bytes, length first.
    pub(crate) fn short_str(&mut self) -> Option<&'a str> {
        let len = self.u8()?;
        core::str::from_utf8(self.take(usize::from(len))?).ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends a string of at most 255 bytes, length first; `None` when it is longer.
pub(crate) fn push_short_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.push(u8::try_from(s.len()).ok()?);
    out.extend_from_slice(s.as_bytes());
    Some(())
}

// Const evaluation: an out-of-range index or a truncation here fails the build, not a run.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, the zlib and PNG one).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = u32::MAX;
    for &b in data {
        let index = usize::from(c.to_le_bytes()[0] ^ b);
        c = CRC_TABLE.get(index).copied().unwrap_or(0) ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::random::SystemRandom;
    use proptest::prelude::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC (the catalogue of parametrised CRC
        // algorithms, reveng.sourceforge.io): CRC of "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn random_base62_is_base62_and_varies() {
        let mut a = [0u8; 40];
        let mut b = [0u8; 40];
        random_base62(&SystemRandom, &mut a).unwrap();
        random_base62(&SystemRandom, &mut b).unwrap();
        assert!(is_base62(&a) && is_base62(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn base62_covers_every_character() {
        let mut buf = vec![0u8; 62 * 100];
        random_base62(&SystemRandom, &mut buf).unwrap();
        for c in BASE62 {
            assert!(buf.contains(c), "{} never drawn", *c as char);
        }
    }

    #[test]
    fn base62_u32_edges() {
        assert_eq!(&u32_to_base62(0), b"000000");
        assert_eq!(base62_to_u32(&u32_to_base62(u32::MAX)), Some(u32::MAX));
        assert_eq!(base62_to_u32(b"zzzzzz"), None); // 62^6 - 1 > u32::MAX
        assert_eq!(base62_to_u32(b"00000"), None);
        assert_eq!(base62_to_u32(b"00000_"), None);
    }

    proptest! {
        #[test]
        fn base62_u32_round_trips(v: u32) {
            let s = u32_to_base62(v);
            prop_assert!(is_base62(&s));
            prop_assert_eq!(base62_to_u32(&s), Some(v));
        }
    }
}
