//! Recovery codes: single-use fallbacks for a lost authenticator.
//!
//! [`RecoveryCodes::generate`] draws N (default 10) codes of 80 bits each, shown to the user once
//! as `XXXX-XXXX-XXXX-XXXX` in Crockford base32 (no `I`, `L`, `O`, `U`), and returns only keyed
//! hashes to store: HMAC-SHA-256 under the keyring's active key, over a context label and the
//! code's 10 bytes. Storing hashes, not codes, means a database leak reveals no usable code; the
//! key (kept apart from the database) means the hashes cannot be brute-forced offline either.
//!
//! Two ways to store them:
//! - One row per code: store [`StoredRecoveryCode::digest`] in a unique column. At login, parse
//!   the input, compute [`recovery_digest`] (one hash) and consume it with one atomic
//!   compare-and-set (`UPDATE ... SET used_at = now() WHERE user_id = $1 AND digest = $2 AND
//!   used_at IS NULL`): concurrent requests cannot both use a code.
//! - One blob per user: keep [`StoredRecoveryCodes`] (serde) and call
//!   [`StoredRecoveryCodes::consume`], which does fixed work whatever the input: one hash and a
//!   constant-time comparison against every stored entry, used or not, with no early exit.
//!   Write the updated set back with the same compare-and-set care, or let
//!   [`StoredRecoveryCodes::consume_claimed`] make the use atomic: it claims the code's digest
//!   in a shared [`OneTimeStore`] before accepting it, so two copies of one set (two service
//!   instances that each loaded the row, a stale cache, a restored backup) accept a code once
//!   in total. Writing the set back then only keeps the remaining count; a lost write cannot
//!   resurrect a used code while its claim lasts ([`RECOVERY_CLAIM_LIFETIME`]).
//!
//! Regenerating replaces the set: codes of the old set no longer match anything.
//!
//! # Errors
//! [`OtpError::MalformedRecoveryCode`] from [`RecoveryCode::parse`];
//! [`OtpError::Keyring`] when the set's key is unknown or retired; [`OtpError::Random`];
//! [`OtpError::RecoveryCodeCount`]; [`OtpError::Store`] when the one-time store does not
//! answer (refuse the code: fail closed).
//!
//! # Security
//! [`RecoveryCode`] zeroizes and prints `***`; its text leaves only through
//! [`RecoveryCode::expose_formatted`].

use core::fmt;
use core::time::Duration;

use hmac::{Hmac, Mac};
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::once::{Claim, OneTimeStore};
use palisade_core::random::SecureRandom;
use palisade_core::time::UnixTime;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::OtpError;

/// Bits of randomness in each recovery code.
pub const RECOVERY_CODE_BITS: usize = 80;
/// The most codes one set may hold.
pub const MAX_RECOVERY_CODES: usize = 100;
const CODE_BYTES: usize = RECOVERY_CODE_BITS / 8;
const SYMBOLS: usize = RECOVERY_CODE_BITS / 5;
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CONTEXT: &[u8] = b"palisade-otp recovery code v1\0";
/// The [`OneTimeStore`] scope of recovery-code claims; the token claimed is the code's digest
/// (unique to the code, so one scope serves every user).
pub const CLAIM_SCOPE: &str = "palisade-otp:recovery";
/// How long a used code's claim is kept by [`StoredRecoveryCodes::consume_claimed`]: ten years
/// (a code has no expiry of its own; one small entry per used code).
pub const RECOVERY_CLAIM_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// One recovery code (compared in constant time).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RecoveryCode([u8; CODE_BYTES]);

impl PartialEq for RecoveryCode {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for RecoveryCode {}

impl RecoveryCode {
    /// A fresh random code.
    ///
    /// # Errors
    /// [`OtpError::Random`].
    pub fn generate(rng: &(impl SecureRandom + ?Sized)) -> Result<Self, OtpError> {
        let mut bytes = [0u8; CODE_BYTES];
        rng.fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Reads a code typed by a person: case, dashes, spaces are ignored; `O` reads as `0`, `I`
    /// and `L` as `1`. The work depends only on the input's length.
    ///
    /// # Errors
    /// [`OtpError::MalformedRecoveryCode`] unless exactly 16 symbols remain.
    pub fn parse(text: &str) -> Result<Self, OtpError> {
        parse_symbols(text).ok_or(OtpError::MalformedRecoveryCode)
    }

    /// The code as people read it: `XXXX-XXXX-XXXX-XXXX`.
    pub fn expose_formatted(&self) -> Zeroizing<String> {
        let mut acc: u128 = 0;
        for b in self.0 {
            acc = acc << 8 | u128::from(b);
        }
        let mut out = Zeroizing::new(String::with_capacity(SYMBOLS + 3));
        for i in 0..SYMBOLS {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            let shift = 5 * (SYMBOLS - 1 - i);
            let index = usize::try_from((acc >> shift) & 0x1f).unwrap_or(0);
            out.push(char::from(CROCKFORD.get(index).copied().unwrap_or(b'0')));
        }
        acc.zeroize();
        out
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

/// Maps one character to its 5-bit value, or `None` (dashes and spaces are handled by the caller).
fn symbol_value(c: u8) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    let c = match c {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        _ => c,
    };
    CROCKFORD
        .iter()
        .position(|&s| s == c)
        .and_then(|p| u8::try_from(p).ok())
}

fn parse_symbols(text: &str) -> Option<RecoveryCode> {
    if text.len() > 64 {
        return None;
    }
    let mut acc: u128 = 0;
    let mut count = 0usize;
    let mut ok = true;
    for c in text.bytes() {
        if c == b'-' || c.is_ascii_whitespace() {
            continue;
        }
        let value = symbol_value(c);
        ok &= value.is_some();
        acc = acc << 5 | u128::from(value.unwrap_or(0));
        count = count.saturating_add(1);
    }
    let mut bytes = [0u8; CODE_BYTES];
    for (i, b) in bytes.iter_mut().enumerate() {
        let shift = 8 * (CODE_BYTES - 1 - i);
        *b = u8::try_from((acc >> shift) & 0xff).unwrap_or(0);
    }
    acc.zeroize();
    let code = RecoveryCode(bytes);
    bytes.zeroize();
    (ok && count == SYMBOLS).then_some(code)
}

/// The keyed hash of a recovery code (HMAC-SHA-256): what is stored instead of the code.
#[derive(Clone, Copy, Eq)]
pub struct RecoveryDigest([u8; 32]);

impl RecoveryDigest {
    /// The 32 bytes, for a database column.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a digest read from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl PartialEq for RecoveryDigest {
    /// Constant-time.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for RecoveryDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecoveryDigest({})",
            data_encoding::HEXLOWER.encode(&self.0)
        )
    }
}

impl Serialize for RecoveryDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for RecoveryDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a recovery digest is 32 bytes"))?;
        Ok(Self(bytes))
    }
}

/// HMAC-SHA-256 of `code` under the key `key_id` of `keyring` (active or decrypt-only).
///
/// # Errors
/// [`OtpError::Keyring`] when the key is unknown or retired.
pub fn recovery_digest(
    keyring: &Keyring,
    key_id: &KeyId,
    code: &RecoveryCode,
) -> Result<RecoveryDigest, OtpError> {
    let key = keyring.for_decrypt(key_id)?;
    Ok(digest_with(key.material().expose_secret(), &code.0))
}

fn digest_with(key: &[u8], code: &[u8; CODE_BYTES]) -> RecoveryDigest {
    // HMAC takes keys of any length, so this never fails; the fallback keeps it panic-free.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return RecoveryDigest([0; 32]);
    };
    mac.update(CONTEXT);
    mac.update(code);
    RecoveryDigest(mac.finalize().into_bytes().into())
}

/// One stored entry: the digest and whether it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecoveryCode {
    digest: RecoveryDigest,
    used: bool,
}

impl StoredRecoveryCode {
    /// The keyed hash.
    pub const fn digest(&self) -> &RecoveryDigest {
        &self.digest
    }

    /// Whether the code was used.
    pub const fn is_used(&self) -> bool {
        self.used
    }
}

/// A user's set of recovery codes as stored: digests, used flags, the key id, the low-balance
/// threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecoveryCodes {
    key_id: KeyId,
    low_balance: usize,
    entries: Vec<StoredRecoveryCode>,
}

/// The result of [`StoredRecoveryCodes::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum RecoveryOutcome {
    /// The code was valid and unused; it is now used.
    Accepted {
        /// Codes left.
        remaining: usize,
        /// Whether `remaining` is at or below the low-balance threshold: prompt the user to
        /// regenerate.
        low_balance: bool,
    },
    /// The code is malformed, unknown, or used before.
    Rejected,
}

impl StoredRecoveryCodes {
    /// Rebuilds a stored set.
    pub fn from_parts(key_id: KeyId, low_balance: usize, entries: Vec<StoredRecoveryCode>) -> Self {
        Self {
            key_id,
            low_balance,
            entries,
        }
    }

    /// The key the digests are under.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The entries, used ones included.
    pub fn entries(&self) -> &[StoredRecoveryCode] {
        &self.entries
    }

    /// Codes not used yet.
    pub fn remaining(&self) -> usize {
        self.entries.iter().filter(|e| !e.used).count()
    }

    /// Whether the remaining count is at or below the low-balance threshold.
    pub fn is_low(&self) -> bool {
        self.remaining() <= self.low_balance
    }

    /// Checks `input` against every entry and marks the matching unused one as used.
    ///
    /// Fixed work whatever the input: a malformed input is hashed as a dummy code, and every
    /// entry is compared in constant time, with no early exit. This copy of the set is the only
    /// record of the use: see [`StoredRecoveryCodes::consume_claimed`] when several copies may
    /// be in use at once.
    ///
    /// # Errors
    /// [`OtpError::Keyring`] when the set's key is unknown or retired.
    pub fn consume(&mut self, keyring: &Keyring, input: &str) -> Result<RecoveryOutcome, OtpError> {
        Ok(match self.find(keyring, input)? {
            Some((index, _)) => self.mark_used(index),
            None => RecoveryOutcome::Rejected,
        })
    }

    /// [`StoredRecoveryCodes::consume`], made atomic across every copy of the set: a matching
    /// code is accepted only if this call is the first to claim its digest in `store` (scope
    /// [`CLAIM_SCOPE`], kept [`RECOVERY_CLAIM_LIFETIME`] from `now`). A code already claimed
    /// through another copy is marked used here too and rejected.
    ///
    /// The comparison does the same fixed work as `consume`; the store is asked only about a
    /// code that matches an unused entry, so guesses never reach it.
    ///
    /// # Errors
    /// [`OtpError::Keyring`] when the set's key is unknown or retired; [`OtpError::Store`] when
    /// the store cannot answer (the code is then neither accepted nor marked).
    pub async fn consume_claimed<S: OneTimeStore + ?Sized>(
        &mut self,
        keyring: &Keyring,
        store: &S,
        input: &str,
        now: UnixTime,
    ) -> Result<RecoveryOutcome, OtpError> {
        let Some((index, digest)) = self.find(keyring, input)? else {
            return Ok(RecoveryOutcome::Rejected);
        };
        let until = now.saturating_add(RECOVERY_CLAIM_LIFETIME);
        match store.claim(CLAIM_SCOPE, digest.as_bytes(), until).await? {
            Claim::Claimed => Ok(self.mark_used(index)),
            Claim::AlreadyUsed => {
                let _ = self.mark_used(index);
                Ok(RecoveryOutcome::Rejected)
            }
        }
    }

    /// The index and digest of the unused entry `input` matches, in fixed work.
    fn find(
        &self,
        keyring: &Keyring,
        input: &str,
    ) -> Result<Option<(usize, RecoveryDigest)>, OtpError> {
        let key = keyring.for_decrypt(&self.key_id)?;
        let parsed = parse_symbols(input);
        let dummy = RecoveryCode([0; CODE_BYTES]);
        let code = parsed.as_ref().unwrap_or(&dummy);
        let digest = digest_with(key.material().expose_secret(), &code.0);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            let hit = entry.digest.0.ct_eq(&digest.0) & !subtle::Choice::from(u8::from(entry.used));
            index.conditional_assign(&u64::try_from(i).unwrap_or(u64::MAX), hit);
            found |= hit;
        }
        if parsed.is_none() || !bool::from(found) {
            return Ok(None);
        }
        Ok(usize::try_from(index)
            .ok()
            .filter(|&i| i < self.entries.len())
            .map(|i| (i, digest)))
    }

    fn mark_used(&mut self, index: usize) -> RecoveryOutcome {
        match self.entries.get_mut(index) {
            Some(entry) => entry.used = true,
            None => return RecoveryOutcome::Rejected,
        }
        let remaining = self.remaining();
        RecoveryOutcome::Accepted {
            remaining,
            low_balance: remaining <= self.low_balance,
        }
    }
}

/// Freshly generated codes: show [`IssuedRecoveryCodes::codes`] once, store
/// [`IssuedRecoveryCodes::stored`].
#[derive(Debug)]
pub struct IssuedRecoveryCodes {
    codes: Vec<RecoveryCode>,
    stored: StoredRecoveryCodes,
}

impl IssuedRecoveryCodes {
    /// The codes to show the user, once.
    pub fn codes(&self) -> &[RecoveryCode] {
        &self.codes
    }

    /// What to store.
    pub fn stored(&self) -> &StoredRecoveryCodes {
        &self.stored
    }

    /// Splits into codes and what to store.
    pub fn into_parts(self) -> (Vec<RecoveryCode>, StoredRecoveryCodes) {
        (self.codes, self.stored)
    }
}

/// The recovery-code policy: how many codes, and when the balance is low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoveryCodes {
    count: usize,
    low_balance: usize,
}

impl Default for RecoveryCodes {
    /// Ten codes; low at three or fewer.
    fn default() -> Self {
        Self {
            count: 10,
            low_balance: 3,
        }
    }
}

impl RecoveryCodes {
    /// Ten codes; low at three or fewer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of codes per set.
    ///
    /// # Errors
    /// [`OtpError::RecoveryCodeCount`] for 0 or more than [`MAX_RECOVERY_CODES`].
    pub fn count(mut self, count: usize) -> Result<Self, OtpError> {
        if count == 0 || count > MAX_RECOVERY_CODES {
            return Err(OtpError::RecoveryCodeCount {
                max: MAX_RECOVERY_CODES,
            });
        }
        self.count = count;
        Ok(self)
    }

    /// Sets the low-balance threshold.
    #[must_use]
    pub const fn low_balance(mut self, remaining: usize) -> Self {
        self.low_balance = remaining;
        self
    }

    /// Generates a new set under the keyring's active key. Storing it replaces (and so
    /// invalidates) any previous set.
    ///
    /// # Errors
    /// [`OtpError::Keyring`] without an active key; [`OtpError::Random`].
    pub fn generate(
        &self,
        keyring: &Keyring,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<IssuedRecoveryCodes, OtpError> {
        let key = keyring.active()?;
        let mut codes = Vec::with_capacity(self.count);
        let mut entries = Vec::with_capacity(self.count);
        while codes.len() < self.count {
            let code = RecoveryCode::generate(rng)?;
            let digest = digest_with(key.material().expose_secret(), &code.0);
            // A repeat of 80 random bits is all but impossible; skipping it keeps codes distinct.
            if entries
                .iter()
                .any(|e: &StoredRecoveryCode| e.digest == digest)
            {
                continue;
            }
            entries.push(StoredRecoveryCode {
                digest,
                used: false,
            });
            codes.push(code);
        }
        Ok(IssuedRecoveryCodes {
            codes,
            stored: StoredRecoveryCodes {
                key_id: key.id().clone(),
                low_balance: self.low_balance,
                entries,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::keyring::{Key, KeyState};
    use palisade_core::random::SystemRandom;
    use palisade_core::secret::SecretBytes;

    fn keyring() -> Keyring {
        Keyring::single(
            KeyId::new("rc1").unwrap(),
            SecretBytes::from_slice(&[7u8; 32]),
        )
    }

    #[test]
    fn format_and_parse_round_trip_with_confusables() {
        let code = RecoveryCode([0xff; 10]);
        assert_eq!(code.expose_formatted().as_str(), "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        let zero = RecoveryCode([0; 10]);
        assert_eq!(zero.expose_formatted().as_str(), "0000-0000-0000-0000");
        assert_eq!(RecoveryCode::parse("oooo OOOO-0000 oOo0").unwrap(), zero);
        let one = RecoveryCode::parse("0000-0000-0000-0001").unwrap();
        assert_eq!(RecoveryCode::parse("0000-0000-0000-000i").unwrap(), one);
        assert_eq!(RecoveryCode::parse("0000-0000-0000-000L").unwrap(), one);
        for bad in [
            "",
            "0000-0000-0000-000",
            "0000-0000-0000-00000",
            "0000-0000-0000-000U",
            "0000-0000-0000-000é",
        ] {
            assert!(RecoveryCode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{zero:?}"), "RecoveryCode(***)");
    }

    #[test]
    fn single_use_with_remaining_count_and_low_balance() {
        let ring = keyring();
        let issued = RecoveryCodes::new()
            .count(5)
            .unwrap()
            .low_balance(2)
            .generate(&ring, &SystemRandom)
            .unwrap();
        let (codes, mut stored) = issued.into_parts();
        assert_eq!(codes.len(), 5);
        assert_eq!(stored.remaining(), 5);
        let first = codes[0].expose_formatted();
        assert_eq!(
            stored.consume(&ring, &first.to_lowercase()).unwrap(),
            RecoveryOutcome::Accepted {
                remaining: 4,
                low_balance: false
            }
        );
        assert_eq!(
            stored.consume(&ring, &first).unwrap(),
            RecoveryOutcome::Rejected
        );
        assert_eq!(
            stored.consume(&ring, "not a code").unwrap(),
            RecoveryOutcome::Rejected
        );
        assert!(matches!(
            stored.consume(&ring, &codes[1].expose_formatted()).unwrap(),
            RecoveryOutcome::Accepted { remaining: 3, .. }
        ));
        assert_eq!(
            stored.consume(&ring, &codes[2].expose_formatted()).unwrap(),
            RecoveryOutcome::Accepted {
                remaining: 2,
                low_balance: true
            }
        );
        assert!(stored.is_low());
    }

    #[test]
    fn regeneration_invalidates_and_keys_rotate() {
        let mut ring = keyring();
        let old = RecoveryCodes::new().generate(&ring, &SystemRandom).unwrap();
        let mut new = RecoveryCodes::new()
            .generate(&ring, &SystemRandom)
            .unwrap()
            .stored()
            .clone();
        assert_eq!(
            new.consume(&ring, &old.codes()[0].expose_formatted())
                .unwrap(),
            RecoveryOutcome::Rejected
        );
        // Rotating the keyring leaves existing sets usable while their key is decrypt-only.
        ring.insert(
            Key::generate(
                KeyId::new("rc2").unwrap(),
                KeyState::DecryptOnly,
                32,
                &SystemRandom,
            )
            .unwrap(),
        )
        .unwrap();
        ring.set_state(&KeyId::new("rc2").unwrap(), KeyState::Active)
            .unwrap();
        let mut kept = old.stored().clone();
        assert!(matches!(
            kept.consume(&ring, &old.codes()[3].expose_formatted())
                .unwrap(),
            RecoveryOutcome::Accepted { .. }
        ));
        ring.set_state(&KeyId::new("rc1").unwrap(), KeyState::Retired)
            .unwrap();
        assert!(matches!(
            kept.consume(&ring, &old.codes()[4].expose_formatted()),
            Err(OtpError::Keyring(_))
        ));
        let fresh = RecoveryCodes::new().generate(&ring, &SystemRandom).unwrap();
        assert_eq!(fresh.stored().key_id().as_str(), "rc2");
    }

    #[test]
    fn row_per_code_lookup_matches_the_stored_digest() {
        let ring = keyring();
        let issued = RecoveryCodes::new().generate(&ring, &SystemRandom).unwrap();
        let typed =
            RecoveryCode::parse(&issued.codes()[7].expose_formatted().replace('-', " ")).unwrap();
        let digest = recovery_digest(&ring, issued.stored().key_id(), &typed).unwrap();
        assert_eq!(&digest, issued.stored().entries()[7].digest());
        assert_eq!(RecoveryDigest::from_bytes(*digest.as_bytes()), digest);
    }

    #[test]
    fn stored_set_serializes_without_codes() {
        let ring = keyring();
        let issued = RecoveryCodes::new()
            .count(2)
            .unwrap()
            .generate(&ring, &SystemRandom)
            .unwrap();
        let json = serde_json::to_string(issued.stored()).unwrap();
        let back: StoredRecoveryCodes = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, issued.stored());
        for code in issued.codes() {
            assert!(!json.contains(code.expose_formatted().replace('-', "").as_str()));
        }
        assert!(RecoveryCodes::new().count(0).is_err());
        assert!(RecoveryCodes::new().count(MAX_RECOVERY_CODES + 1).is_err());
    }
}
