//! Refresh-token rotation with reuse detection.
//!
//! Every redemption of a refresh token returns a new one in the same *family* and uses the old
//! one up. A token that is presented a second time has been copied: by an attacker, or by the
//! client from which the attacker copied it. We cannot tell which, so the whole family is
//! revoked (both copies stop working, the user signs in again) and
//! [`Action::TokenReuseDetected`] is recorded. This is the rotation scheme of the OAuth 2.0
//! Security Best Current Practice (RFC 9700, section 4.14.2).
//!
//! # Reuse interval
//! Two browser tabs, or a retry after a lost response, redeem one token at once: that is not an
//! attack, yet without care the second request revokes the family and signs the user out.
//! [`RefreshConfig::reuse_interval`] (Auth0's "rotation overlap period", OpenIddict's leeway;
//! default zero, off) accepts a second redemption of a token for that long after its first one
//! and answers it with the *same* successor: the successor's nonce is derived from its
//! parent's (HMAC under the parent's key) and its times from the first rotation's, so every
//! redemption inside the interval mints the identical token, and the family keeps one chain.
//! After the interval, a reuse revokes the family as before. The price: a thief who presents a
//! copy inside the interval gets the successor too, and is caught when either party rotates it
//! next. Keep the interval short (seconds).
//!
//! # State
//! A token is self-contained and authenticated: `palrt_` and base64url of its version, the
//! signing key's id, the family, the generation, the subject, its issue and expiry times, the
//! family's absolute expiry, a random nonce and an HMAC-SHA-256 tag under a [`Keyring`] key. A
//! forged or altered token is refused without touching any store. One [`FamilyStore`] holds
//! the rest: the first rotation of each token, with its time ([`FamilyStore::rotate`], one
//! atomic step), and the revoked families until their last token expires.
//!
//! The trait lives in `palisade-core`, with an in-memory implementation; `palisade-redis` has a
//! Redis one, with which several service instances agree: when two requests redeem one token
//! at once, exactly one rotates it first.
//!
//! # Lifetimes
//! A token lives [`RefreshConfig::ttl`] (default 14 days: the idle timeout, since every
//! rotation starts a new one), never past the family's end, [`RefreshConfig::family_lifetime`]
//! after sign-in (default 90 days: the absolute timeout).
//!
//! # Errors and panics
//! [`TokenError::Store`] when a store does not answer (refuse the request: fail closed),
//! [`TokenError::Random`] and [`TokenError::Keyring`]. Invalid, expired, revoked and reused
//! tokens are [`RefreshOutcome`]s. Nothing panics.
//!
//! # Security
//! The subject is readable by whoever holds the token (it is authenticated, not encrypted).
//! [`RefreshToken`] zeroizes on drop and prints `***`. Audit events name the family and the
//! subject, never the token.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::audit::{Action, AuditEvent, AuditSink, NoopSink};
pub use palisade_core::family::{FamilyStore, MemoryFamilyStore, Rotation, TokenFamily};
use palisade_core::keyring::Keyring;
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::secret::ct_eq;
use palisade_core::time::UnixTime;
use zeroize::Zeroizing;

use crate::TokenError;
use crate::encoding::{Reader, hmac_sha256, push_short_str};

const TEXT_PREFIX: &str = "palrt_";
const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"palisade-refresh-v1\0";
/// Domain of the successor-nonce derivation (distinct from the tag's).
const SUCCESSOR_DOMAIN: &[u8] = b"palisade-refresh-successor-v1\0";
const TAG_LEN: usize = 32;
/// Longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 255;
/// Longest token text accepted by [`RefreshTokens::redeem`].
pub const MAX_TOKEN_LEN: usize = 512;

/// A refresh token, to hand to the client. Zeroized on drop, `***` in `Debug`, no `Display`,
/// `Serialize` or `Clone`.
pub struct RefreshToken {
    text: Zeroizing<String>,
    family: TokenFamily,
    generation: u32,
    expires_at: UnixTime,
}

impl RefreshToken {
    /// The token text. Every call site is a place where the secret leaves.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// Its family.
    pub fn family(&self) -> TokenFamily {
        self.family
    }

    /// 0 for the token issued at sign-in, then one more per rotation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// When it expires.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("family", &self.family)
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("text", &"***")
            .finish()
    }
}

/// The answer to [`RefreshTokens::redeem`].
#[derive(Debug)]
#[must_use]
pub enum RefreshOutcome {
    /// Accepted and used up; here is its successor. Issue an access token for `subject`.
    Rotated {
        /// The new refresh token.
        token: RefreshToken,
        /// Whom the family belongs to.
        subject: String,
    },
    /// Not a token we issued (malformed, altered, or under an unknown or retired key).
    Invalid,
    /// Past its expiry.
    Expired,
    /// Its family was revoked (by reuse detection or at sign-out).
    Revoked,
    /// It had been used before: the family is now revoked and the event recorded.
    ReuseDetected {
        /// The revoked family.
        family: TokenFamily,
    },
}

/// Settings for [`RefreshTokens`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshConfig {
    /// Lifetime of each token (default 14 days).
    pub ttl: Duration,
    /// Lifetime of a family from sign-in (default 90 days).
    pub family_lifetime: Duration,
    /// How long after a token's first redemption a second one still gets the same successor
    /// instead of revoking the family (default zero: never). See the
    /// [module documentation](self#reuse-interval).
    pub reuse_interval: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(14 * 24 * 3600),
            family_lifetime: Duration::from_secs(90 * 24 * 3600),
            reuse_interval: Duration::ZERO,
        }
    }
}

impl RefreshConfig {
    /// Sets the lifetime of each token.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the lifetime of a family.
    #[must_use]
    pub fn family_lifetime(mut self, lifetime: Duration) -> Self {
        self.family_lifetime = lifetime;
        self
    }

    /// Sets the reuse interval (a few seconds covers concurrent tabs and retries).
    #[must_use]
    pub fn reuse_interval(mut self, interval: Duration) -> Self {
        self.reuse_interval = interval;
        self
    }
}

/// The decoded contents of a token.
struct Body<'a> {
    kid: &'a str,
    family: TokenFamily,
    generation: u32,
    subject: &'a str,
    expires_at: UnixTime,
    family_expires_at: UnixTime,
    nonce: [u8; 16],
}

/// Issues and redeems refresh tokens. See the [module documentation](self).
///
/// ```
/// use std::sync::Arc;
/// use palisade_core::keyring::{KeyId, Keyring};
/// use palisade_core::secret::SecretBytes;
/// use palisade_core::time::{Clock, SystemClock};
/// use palisade_token::refresh::{MemoryFamilyStore, RefreshConfig, RefreshOutcome, RefreshTokens};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let ring = Keyring::single(KeyId::new("r1")?, SecretBytes::new(vec![7; 32]));
/// let tokens = RefreshTokens::new(
///     Arc::new(ring), MemoryFamilyStore::new(), RefreshConfig::default(),
/// )?;
/// let now = SystemClock.now();
/// let first = tokens.issue("user-42", now)?;
///
/// let RefreshOutcome::Rotated { token: second, subject } = tokens.redeem(first.expose_secret(), now).await? else {
///     panic!("a fresh token rotates");
/// };
/// assert_eq!(subject, "user-42");
/// // The first token again: a copy is in use somewhere, so the whole family ends.
/// assert!(matches!(tokens.redeem(first.expose_secret(), now).await?, RefreshOutcome::ReuseDetected { .. }));
/// assert!(matches!(tokens.redeem(second.expose_secret(), now).await?, RefreshOutcome::Revoked));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RefreshTokens<F> {
    keyring: Arc<Keyring>,
    families: F,
    config: RefreshConfig,
    rng: Arc<dyn SecureRandom>,
    audit: Arc<dyn AuditSink>,
}

impl<F: FamilyStore> RefreshTokens<F> {
    /// Tokens authenticated under `keyring` (keys of at least 32 bytes), whose rotations and
    /// revocations `families` records.
    ///
    /// # Errors
    /// [`TokenError::Keyring`] without an active key; [`TokenError::InvalidKey`] for a short
    /// key; [`TokenError::Config`] for a zero lifetime.
    pub fn new(
        keyring: Arc<Keyring>,
        families: F,
        config: RefreshConfig,
    ) -> Result<Self, TokenError> {
        keyring.active()?;
        if let Some(short) = keyring.keys().find(|k| k.material().len() < 32) {
            return Err(TokenError::InvalidKey {
                kid: short.id().to_string(),
                algorithm: "HMAC-SHA-256",
                reason: "shorter than 32 bytes",
            });
        }
        if config.ttl.is_zero() || config.family_lifetime.is_zero() {
            return Err(TokenError::Config(
                "refresh token lifetimes must not be zero",
            ));
        }
        Ok(Self {
            keyring,
            families,
            config,
            rng: Arc::new(SystemRandom),
            audit: Arc::new(NoopSink),
        })
    }

    /// Records reuse detections to `sink`.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    /// Draws randomness from `rng`.
    #[must_use]
    pub fn rng(mut self, rng: Arc<dyn SecureRandom>) -> Self {
        self.rng = rng;
        self
    }

    /// Starts a new family for `subject` at sign-in and returns its first token.
    ///
    /// # Errors
    /// [`TokenError::Config`] for a subject longer than [`MAX_SUBJECT_LEN`];
    /// [`TokenError::Random`]; [`TokenError::Keyring`].
    pub fn issue(&self, subject: &str, now: UnixTime) -> Result<RefreshToken, TokenError> {
        let family = TokenFamily::from_bytes(palisade_core::random::array(&*self.rng)?);
        let family_end = now.saturating_add(self.config.family_lifetime);
        let nonce = palisade_core::random::array(&*self.rng)?;
        self.mint(family, 0, subject, now, family_end, &nonce)
    }

    fn mint(
        &self,
        family: TokenFamily,
        generation: u32,
        subject: &str,
        now: UnixTime,
        family_expires_at: UnixTime,
        nonce: &[u8; 16],
    ) -> Result<RefreshToken, TokenError> {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(TokenError::Config("subject longer than 255 bytes"));
        }
        let key = self.keyring.active()?;
        let expires_at = now.saturating_add(self.config.ttl).min(family_expires_at);
        let mut raw = Zeroizing::new(Vec::with_capacity(160));
        raw.push(VERSION);
        push_short_str(&mut raw, key.id().as_str()).ok_or(TokenError::Config("key id too long"))?;
        raw.extend_from_slice(family.as_bytes());
        raw.extend_from_slice(&generation.to_be_bytes());
        push_short_str(&mut raw, subject).ok_or(TokenError::Config("subject too long"))?;
        raw.extend_from_slice(&expires_at.as_secs().to_be_bytes());
        raw.extend_from_slice(&family_expires_at.as_secs().to_be_bytes());
        raw.extend_from_slice(nonce);
        let tag = hmac_sha256(key.material().expose_secret(), &[DOMAIN, &raw]);
        raw.extend_from_slice(&tag);
        let mut text = Zeroizing::new(String::with_capacity(
            TEXT_PREFIX.len() + raw.len() * 4 / 3 + 4,
        ));
        text.push_str(TEXT_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&*raw, &mut text);
        Ok(RefreshToken {
            text,
            family,
            generation,
            expires_at: UnixTime::from_secs(expires_at.as_secs()),
        })
    }

    /// Decodes and authenticates `text`; `None` for anything we did not issue.
    fn open<'a>(&self, raw: &'a [u8]) -> Option<Body<'a>> {
        let signed_len = raw.len().checked_sub(TAG_LEN)?;
        let (signed, tag) = raw.split_at(signed_len);
        let mut r = Reader(signed);
        if r.u8()? != VERSION {
            return None;
        }
        let kid = r.short_str()?;
        let key = self.keyring.for_decrypt_bytes(kid.as_bytes()).ok()?;
        let expected = hmac_sha256(key.material().expose_secret(), &[DOMAIN, signed]);
        if !ct_eq(&expected, tag) {
            return None;
        }
        let family = TokenFamily::from_bytes(r.array()?);
        let generation = r.u32()?;
        let subject = r.short_str()?;
        let expires_at = UnixTime::from_secs(r.u64()?);
        let family_expires_at = UnixTime::from_secs(r.u64()?);
        let nonce = r.array()?;
        if !r.is_empty() {
            return None;
        }
        Some(Body {
            kid,
            family,
            generation,
            subject,
            expires_at,
            family_expires_at,
            nonce,
        })
    }

    /// Redeems `presented` at `now`: uses it up and returns its successor, or says why not.
    ///
    /// # Errors
    /// [`TokenError::Store`] when a store does not answer (refuse the request), and as
    /// [`RefreshTokens::issue`] for the successor.
    pub async fn redeem(
        &self,
        presented: &str,
        now: UnixTime,
    ) -> Result<RefreshOutcome, TokenError> {
        let Some(b64) = presented
            .strip_prefix(TEXT_PREFIX)
            .filter(|_| presented.len() <= MAX_TOKEN_LEN)
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        let Ok(raw) = URL_SAFE_NO_PAD.decode(b64).map(Zeroizing::new) else {
            return Ok(RefreshOutcome::Invalid);
        };
        let Some(body) = self.open(&raw) else {
            return Ok(RefreshOutcome::Invalid);
        };
        if now >= body.expires_at {
            return Ok(RefreshOutcome::Expired);
        }
        // Revoked families are refused first, so that exactly one of several concurrent
        // redemptions of a token gets its successor: the one whose claim wins. (Checking after
        // the claim would let a concurrent loser's reuse detection revoke the winner's answer
        // as well, leaving no winner.) A family revoked in between is caught at the next use.
        if self.families.is_revoked(&body.family).await? {
            return Ok(RefreshOutcome::Revoked);
        }
        let rotation = self
            .families
            .rotate(&body.family, &body.nonce, now, body.expires_at)
            .await?;
        let rotated_at = match rotation {
            Rotation::First => now,
            Rotation::Again { first_at }
                if now.saturating_duration_since(first_at) < self.config.reuse_interval =>
            {
                first_at
            }
            Rotation::Again { .. } => {
                self.families
                    .revoke(&body.family, body.family_expires_at)
                    .await?;
                self.audit.record(
                    AuditEvent::new(Action::TokenReuseDetected, now)
                        .user_id(body.subject)
                        .resource("refresh_token")
                        .meta("family", body.family.to_string())
                        .meta("generation", body.generation.to_string()),
                );
                return Ok(RefreshOutcome::ReuseDetected {
                    family: body.family,
                });
            }
        };
        let nonce = self.successor_nonce(&body)?;
        let token = self.mint(
            body.family,
            body.generation.saturating_add(1),
            body.subject,
            rotated_at,
            body.family_expires_at,
            &nonce,
        )?;
        Ok(RefreshOutcome::Rotated {
            token,
            subject: body.subject.to_owned(),
        })
    }

    /// The nonce of `parent`'s successor: HMAC-SHA-256 under the parent's key over its family,
    /// generation and nonce, truncated to 16 bytes. Unpredictable without the key, and the same
    /// for every redemption of one parent, so a benign race mints one successor.
    fn successor_nonce(&self, parent: &Body<'_>) -> Result<[u8; 16], TokenError> {
        let key = self.keyring.for_decrypt_bytes(parent.kid.as_bytes())?;
        let mac = hmac_sha256(
            key.material().expose_secret(),
            &[
                SUCCESSOR_DOMAIN,
                parent.family.as_bytes(),
                &parent.generation.to_be_bytes(),
                &parent.nonce,
            ],
        );
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(mac.get(..16).unwrap_or(&[0; 16]));
        Ok(nonce)
    }

    /// Revokes `family` (at sign-out, or when an account is disabled) until `until`, which
    /// should be at least the family's end ([`RefreshConfig::family_lifetime`] after sign-in).
    ///
    /// # Errors
    /// [`TokenError::Store`].
    pub async fn revoke_family(
        &self,
        family: &TokenFamily,
        until: UnixTime,
    ) -> Result<(), TokenError> {
        self.families.revoke(family, until).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::keyring::KeyId;
    use palisade_core::secret::SecretBytes;
    use palisade_core::time::{Clock, FakeClock};

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    type Tokens = RefreshTokens<MemoryFamilyStore<FakeClock>>;

    fn tokens(clock: &FakeClock) -> Tokens {
        let ring = Keyring::single(KeyId::new("r1").unwrap(), SecretBytes::new(vec![9; 32]));
        RefreshTokens::new(
            Arc::new(ring),
            MemoryFamilyStore::with_clock(clock.clone()),
            RefreshConfig::default()
                .ttl(Duration::from_secs(3600))
                .family_lifetime(Duration::from_secs(3 * 3600)),
        )
        .unwrap()
    }

    #[test]
    fn every_altered_byte_is_invalid() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let t = tokens(&clock);
        let token = t.issue("alice", clock.now()).unwrap();
        let raw = URL_SAFE_NO_PAD
            .decode(token.expose_secret().strip_prefix(TEXT_PREFIX).unwrap())
            .unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 1;
            let text = format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bad));
            assert!(
                matches!(
                    block_on(t.redeem(&text, clock.now())).unwrap(),
                    RefreshOutcome::Invalid
                ),
                "byte {i}"
            );
        }
        for bad in ["", "palrt_", "palrt_!!", "x", &"palrt_A".repeat(100)] {
            assert!(matches!(
                block_on(t.redeem(bad, clock.now())).unwrap(),
                RefreshOutcome::Invalid
            ));
        }
    }

    #[test]
    fn lifetimes_are_capped_by_the_family() {
        let clock = FakeClock::new(UnixTime::from_secs(1_000_000));
        let t = tokens(&clock);
        let mut token = t.issue("alice", clock.now()).unwrap();
        assert_eq!(token.expires_at(), UnixTime::from_secs(1_003_600));
        for generation in 1..=3 {
            clock.advance(Duration::from_secs(3000));
            let RefreshOutcome::Rotated { token: next, .. } =
                block_on(t.redeem(token.expose_secret(), clock.now())).unwrap()
            else {
                panic!("generation {generation} did not rotate")
            };
            assert_eq!(next.generation(), generation);
            assert!(next.expires_at() <= UnixTime::from_secs(1_000_000 + 3 * 3600));
            token = next;
        }
        // 9000 s in; the family ends at 10800 s; the last token ends there, not at 12600 s.
        assert_eq!(token.expires_at(), UnixTime::from_secs(1_010_800));
        clock.advance(Duration::from_secs(1800));
        assert!(matches!(
            block_on(t.redeem(token.expose_secret(), clock.now())).unwrap(),
            RefreshOutcome::Expired
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let clock = FakeClock::new(UnixTime::from_secs(1));
        let token = tokens(&clock).issue("alice", clock.now()).unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(token.expose_secret()));
        assert!(shown.contains("***"));
    }

    #[test]
    fn long_subject_is_refused() {
        let clock = FakeClock::new(UnixTime::from_secs(1));
        assert!(tokens(&clock).issue(&"x".repeat(256), clock.now()).is_err());
        assert!(tokens(&clock).issue(&"x".repeat(255), clock.now()).is_ok());
    }
}
