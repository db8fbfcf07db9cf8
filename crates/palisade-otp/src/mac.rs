//! HMAC over an 8-byte counter with the key schedule done once.
//!
//! An OTP computes HMAC(K, counter) for a handful of counters under the same key. HMAC's first
//! step, compressing the key XOR ipad and the key XOR opad blocks, depends only on the key, so it
//! is done once in [`KeyedMac::new`]; each counter then costs exactly two compressions (one for
//! the inner hash of the single padded counter block, one for the outer hash of the padded inner
//! digest) and no allocation. The compression functions are RustCrypto's `sha1::compress`,
//! `sha2::compress256` and `sha2::compress512`, which use the SHA extensions when the CPU has
//! them.
//!
//! Why not `hmac::Hmac` cloned per counter: it does the same precomputation, but its state cannot
//! be wiped (hmac 0.12 has no `zeroize` support), and the state after the key blocks is as
//! sensitive as the key. Here the two chaining values are plain words, wiped on drop. The
//! construction is checked against the `hmac` crate for arbitrary keys and counters in the tests.
//!
//! The per-code temporaries (the padded blocks and the HMAC output) are not wiped: they reveal
//! at most that one code, which the user types anyway, and wiping them with volatile writes
//! cost about a third of the time of a code in the bench.

use sha1::Digest as _;
use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroize;

use crate::secret::Algorithm;

const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const SHA512_IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// The HMAC chaining values after the key blocks.
pub(crate) enum KeyedMac {
    Sha1 { inner: [u32; 5], outer: [u32; 5] },
    Sha256 { inner: [u32; 8], outer: [u32; 8] },
    Sha512 { inner: [u64; 8], outer: [u64; 8] },
}

impl KeyedMac {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        match algorithm {
            Algorithm::Sha1 => {
                let (mut ipad, mut opad) = pads::<64>(key, |k| sha1::Sha1::digest(k).to_vec());
                let (mut inner, mut outer) = (SHA1_IV, SHA1_IV);
                sha1::compress(&mut inner, &[GenericArray::from(ipad)]);
                sha1::compress(&mut outer, &[GenericArray::from(opad)]);
                ipad.zeroize();
                opad.zeroize();
                Self::Sha1 { inner, outer }
            }
            Algorithm::Sha256 => {
                let (mut ipad, mut opad) = pads::<64>(key, |k| sha2::Sha256::digest(k).to_vec());
                let (mut inner, mut outer) = (SHA256_IV, SHA256_IV);
                sha2::compress256(&mut inner, &[GenericArray::from(ipad)]);
                sha2::compress256(&mut outer, &[GenericArray::from(opad)]);
                ipad.zeroize();
                opad.zeroize();
                Self::Sha256 { inner, outer }
            }
            Algorithm::Sha512 => {
                let (mut ipad, mut opad) = pads::<128>(key, |k| sha2::Sha512::digest(k).to_vec());
                let (mut inner, mut outer) = (SHA512_IV, SHA512_IV);
                sha2::compress512(&mut inner, &[GenericArray::from(ipad)]);
                sha2::compress512(&mut outer, &[GenericArray::from(opad)]);
                ipad.zeroize();
                opad.zeroize();
                Self::Sha512 { inner, outer }
            }
        }
    }

    /// RFC 4226 dynamic truncation of HMAC(K, counter): a 31-bit value.
    #[inline]
    pub(crate) fn truncated(&self, counter: u64) -> u32 {
        match self {
            Self::Sha1 { inner, outer } => {
                let mut digest = [0u8; 20];
                sha1_mac(inner, outer, counter, &mut digest);
                truncate(&digest)
            }
            Self::Sha256 { inner, outer } => {
                let mut digest = [0u8; 32];
                sha256_mac(inner, outer, counter, &mut digest);
                truncate(&digest)
            }
            Self::Sha512 { inner, outer } => {
                let mut digest = [0u8; 64];
                sha512_mac(inner, outer, counter, &mut digest);
                truncate(&digest)
            }
        }
    }

    /// The full HMAC output (for tests against the `hmac` crate).
    #[cfg(test)]
    pub(crate) fn full(&self, counter: u64) -> Vec<u8> {
        match self {
            Self::Sha1 { inner, outer } => {
                let mut d = [0u8; 20];
                sha1_mac(inner, outer, counter, &mut d);
                d.to_vec()
            }
            Self::Sha256 { inner, outer } => {
                let mut d = [0u8; 32];
                sha256_mac(inner, outer, counter, &mut d);
                d.to_vec()
            }
            Self::Sha512 { inner, outer } => {
                let mut d = [0u8; 64];
                sha512_mac(inner, outer, counter, &mut d);
                d.to_vec()
            }
        }
    }
}

impl Drop for KeyedMac {
    fn drop(&mut self) {
        match self {
            Self::Sha1 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
            Self::Sha256 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
            Self::Sha512 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
        }
    }
}

/// The key XOR ipad and key XOR opad blocks (keys longer than a block are hashed first).
fn pads<const B: usize>(key: &[u8], hash: impl Fn(&[u8]) -> Vec<u8>) -> ([u8; B], [u8; B]) {
    let mut hashed = zeroize::Zeroizing::new(Vec::new());
    let key = if key.len() > B {
        *hashed = hash(key);
        hashed.as_slice()
    } else {
        key
    };
    let mut ipad = [0x36u8; B];
    let mut opad = [0x5cu8; B];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key) {
        *i ^= k;
        *o ^= k;
    }
    (ipad, opad)
}

/// One 64-byte block holding `data` (at most 55 bytes) with SHA-1/SHA-256 padding for a message
/// of one key block plus `data`.
#[inline]
fn block64(data: &[u8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    let n = data.len().min(55);
    if let (Some(head), Some(data)) = (block.get_mut(..n), data.get(..n)) {
        head.copy_from_slice(data);
    }
    if let Some(b) = block.get_mut(n) {
        *b = 0x80;
    }
    let bits = (64u64 + n as u64) * 8;
    if let Some(tail) = block.get_mut(56..) {
        tail.copy_from_slice(&bits.to_be_bytes());
    }
    block
}

/// One 128-byte block holding `data` (at most 111 bytes) with SHA-512 padding.
#[inline]
fn block128(data: &[u8]) -> [u8; 128] {
    let mut block = [0u8; 128];
    let n = data.len().min(111);
    if let (Some(head), Some(data)) = (block.get_mut(..n), data.get(..n)) {
        head.copy_from_slice(data);
    }
    if let Some(b) = block.get_mut(n) {
        *b = 0x80;
    }
    let bits = (128u128 + n as u128) * 8;
    if let Some(tail) = block.get_mut(112..) {
        tail.copy_from_slice(&bits.to_be_bytes());
    }
    block
}

fn words32_to_bytes(words: &[u32], out: &mut [u8]) {
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
}

fn words64_to_bytes(words: &[u64], out: &mut [u8]) {
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
}

#[inline]
fn sha1_mac(inner: &[u32; 5], outer: &[u32; 5], counter: u64, out: &mut [u8; 20]) {
    let mut state = *inner;
    sha1::compress(
        &mut state,
        &[GenericArray::from(block64(&counter.to_be_bytes()))],
    );
    words32_to_bytes(&state, out);
    let block = block64(out);
    state = *outer;
    sha1::compress(&mut state, &[GenericArray::from(block)]);
    words32_to_bytes(&state, out);
}

#[inline]
fn sha256_mac(inner: &[u32; 8], outer: &[u32; 8], counter: u64, out: &mut [u8; 32]) {
    let mut state = *inner;
    sha2::compress256(
        &mut state,
        &[GenericArray::from(block64(&counter.to_be_bytes()))],
    );
    words32_to_bytes(&state, out);
    let block = block64(out);
    state = *outer;
    sha2::compress256(&mut state, &[GenericArray::from(block)]);
    words32_to_bytes(&state, out);
}

#[inline]
fn sha512_mac(inner: &[u64; 8], outer: &[u64; 8], counter: u64, out: &mut [u8; 64]) {
    let mut state = *inner;
    sha2::compress512(
        &mut state,
        &[GenericArray::from(block128(&counter.to_be_bytes()))],
    );
    words64_to_bytes(&state, out);
    let block = block128(out);
    state = *outer;
    sha2::compress512(&mut state, &[GenericArray::from(block)]);
    words64_to_bytes(&state, out);
}

/// RFC 4226 section 5.3: the low nibble of the last byte picks four bytes; drop the top bit.
#[inline]
fn truncate(digest: &[u8]) -> u32 {
    let offset = usize::from(digest.last().copied().unwrap_or(0) & 0x0f);
    let mut four = [0u8; 4];
    if let Some(bytes) = digest.get(offset..offset + 4) {
        four.copy_from_slice(bytes);
    }
    u32::from_be_bytes(four) & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;

    fn reference(algorithm: Algorithm, key: &[u8], counter: u64) -> Vec<u8> {
        let msg = counter.to_be_bytes();
        match algorithm {
            Algorithm::Sha1 => {
                let mut m = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
                m.update(&msg);
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha256 => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                m.update(&msg);
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha512 => {
                let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
                m.update(&msg);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn algorithm() -> impl Strategy<Value = Algorithm> {
        prop_oneof![
            Just(Algorithm::Sha1),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha512)
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_hmac_crate(
            algorithm in algorithm(),
            key in proptest::collection::vec(any::<u8>(), 0..300),
            counter in any::<u64>(),
        ) {
            let mac = KeyedMac::new(algorithm, &key);
            prop_assert_eq!(mac.full(counter), reference(algorithm, &key, counter));
        }
    }

    #[test]
    fn block_boundary_keys() {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for len in [0, 1, 63, 64, 65, 127, 128, 129] {
                let key = vec![0xa5u8; len];
                let mac = KeyedMac::new(algorithm, &key);
                assert_eq!(
                    mac.full(7),
                    reference(algorithm, &key, 7),
                    "{algorithm} {len}"
                );
            }
        }
    }
}
