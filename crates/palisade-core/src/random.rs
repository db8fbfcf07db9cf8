//! Randomness: the [`SecureRandom`] seam.
//!
//! Nonces, secrets, recovery codes and API keys all need a few bytes of secure randomness, often
//! on a hot path. A `getrandom` system call costs a few hundred nanoseconds, which is more than
//! sealing a short field; [`SystemRandom`] instead draws from a per-thread ChaCha12 generator
//! seeded from the operating system and reseeded from it every 64 KiB of output and after `fork`
//! (it is `rand`'s `ThreadRng`). [`OsRandom`] makes the system call every time, for those who
//! want no user-space state.
//!
//! # Errors
//! [`SecureRandom::fill`] returns [`RandomError`] when the source cannot produce bytes. The
//! default implementations only fail if the operating system's generator fails.

use core::fmt;

use rand::{RngCore, TryRngCore};

/// The randomness source could not produce bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the secure random source failed")]
#[non_exhaustive]
pub struct RandomError;

/// A cryptographically secure source of random bytes.
///
/// # Implementing
/// ```
/// use palisade_core::random::{RandomError, SecureRandom};
///
/// /// Draws from a hardware module (here: a counter, to keep the example short; never do this).
/// #[derive(Debug)]
/// struct Hsm;
///
/// impl SecureRandom for Hsm {
///     fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
///         dest.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
///         Ok(())
///     }
/// }
///
/// let nonce: [u8; 12] = palisade_core::random::array(&Hsm)?;
/// assert_eq!(nonce[11], 11);
/// # Ok::<(), RandomError>(())
/// ```
pub trait SecureRandom: fmt::Debug + Send + Sync {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    /// [`RandomError`] when the source fails; `dest` must then not be used.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

impl<R: SecureRandom + ?Sized> SecureRandom for &R {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(dest)
    }
}

impl<R: SecureRandom + ?Sized> SecureRandom for std::sync::Arc<R> {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(dest)
    }
}

impl<R: SecureRandom + ?Sized> SecureRandom for Box<R> {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(dest)
    }
}

/// `N` random bytes from `rng`.
///
/// # Errors
/// [`RandomError`] when the source fails.
pub fn array<const N: usize>(rng: &(impl SecureRandom + ?Sized)) -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    rng.fill(&mut out)?;
    Ok(out)
}

/// The default source: a per-thread ChaCha12 CSPRNG seeded and periodically reseeded from the OS.
///
/// Fast for small draws (see the `core` bench); safe across `fork` because the generator
/// reseeds in the child.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl SecureRandom for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        // ThreadRng panics only if the OS generator fails while reseeding, the one case where
        // no secure output is possible at all; `rand` documents this behaviour.
        rand::rng().fill_bytes(dest);
        Ok(())
    }
}

/// Asks the operating system for every draw (`getrandom(2)` on Linux).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        rand::rngs::OsRng
            .try_fill_bytes(dest)
            .map_err(|_| RandomError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct_draws(rng: &dyn SecureRandom) {
        let a: [u8; 32] = array(rng).unwrap();
        let b: [u8; 32] = array(rng).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn system_random_draws_differ() {
        distinct_draws(&SystemRandom);
    }

    #[test]
    fn os_random_draws_differ() {
        distinct_draws(&OsRandom);
    }

    #[test]
    fn bytes_look_uniform() {
        // 64 KiB crosses a reseed boundary; every byte value must show up.
        let mut buf = vec![0u8; 65_536 + 100];
        SystemRandom.fill(&mut buf).unwrap();
        let mut seen = [0u32; 256];
        for b in &buf {
            seen[usize::from(*b)] += 1;
        }
        // Expected 256.4 per value; 150 is more than six standard deviations below.
        assert!(seen.iter().all(|&n| n > 150), "skewed output: {seen:?}");
    }

    #[test]
    fn threads_get_different_streams() {
        let a = std::thread::spawn(|| array::<16>(&SystemRandom).unwrap())
            .join()
            .unwrap();
        let b = std::thread::spawn(|| array::<16>(&SystemRandom).unwrap())
            .join()
            .unwrap();
        assert_ne!(a, b);
    }
}
