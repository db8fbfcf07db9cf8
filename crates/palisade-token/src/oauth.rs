//! OAuth `state` and OpenID Connect `nonce` values bound to a session.
//!
//! A state value protects the redirect back from the authorization server against cross-site
//! request forgery (RFC 6749, section 10.12; RFC 9700, section 4.7): it must come back to the
//! same browser session that started the flow, soon, and only once. A nonce ties an ID token
//! to the session that asked for it (OpenID Connect Core, section 15.5.2).
//!
//! A value is `base64url(version, key id, expiry, 16 random bytes, tag)`, where the tag is
//! HMAC-SHA-256 under a [`Keyring`] key over the purpose, the session id and the rest. So:
//!
//! - a value altered, or presented with another session, fails the tag: no store lookup;
//! - past its expiry (default 10 minutes) it is refused;
//! - it is claimed once in a [`OneTimeStore`]: a second use is refused, atomically, even across
//!   instances sharing Redis;
//! - a state is never accepted as a nonce or the other way round (the purpose is in the tag).
//!
//! Every refusal records [`Action::OAuthStateRejected`] with the reason.
//!
//! # PKCE
//! [`OAuthStates::issue_pkce`] binds a PKCE code verifier (RFC 7636) to a state without
//! storing it: the verifier is HMAC-SHA-256, under the state's key, of the state's signed bytes
//! and the session id, as 43 base64url characters. It returns the state and the `S256`
//! challenge to send; [`OAuthStates::check_pkce`] claims the state once and only then returns
//! the verifier for the token request. Nobody without the key can compute a verifier from a
//! state (which travels in URLs); a replayed, altered, expired or foreign-session state yields
//! none.
//!
//! # Errors and panics
//! [`TokenError::Store`] when the store does not answer (refuse the callback),
//! [`TokenError::Random`], [`TokenError::Keyring`]. A bad value is a [`StateCheck`], not an
//! error. Nothing panics.
//!
//! # Security
//! The session id goes into the tag, not into the value: pass the id of the session the
//! callback arrived with. Use a session id that an attacker cannot set (a fixation-resistant
//! session cookie); without that, a state bound to it binds nothing.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade_core::audit::{Action, AuditEvent, AuditSink, NoopSink};
use palisade_core::keyring::Keyring;
use palisade_core::once::{Claim, OneTimeStore};
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::secret::ct_eq;
use palisade_core::time::UnixTime;

use crate::TokenError;
use crate::encoding::{Reader, hmac_sha256, push_short_str};
use crate::pkce::{PkceChallenge, PkceVerifier};

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
const PKCE_DOMAIN: &[u8] = b"palisade-oauth-pkce-v1\0";
/// Longest value [`OAuthStates::check`] decodes.
pub const MAX_STATE_LEN: usize = 256;

/// What a value is for. A value made for one purpose never passes as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// The OAuth `state` parameter.
    State,
    /// The OpenID Connect `nonce` parameter.
    Nonce,
}

impl Purpose {
    const fn domain(self) -> &'static [u8] {
        match self {
            Self::State => b"palisade-oauth-state-v1\0",
            Self::Nonce => b"palisade-oidc-nonce-v1\0",
        }
    }

    const fn scope(self) -> &'static str {
        match self {
            Self::State => "palisade:oauth-state",
            Self::Nonce => "palisade:oidc-nonce",
        }
    }

    /// `state` or `nonce`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Nonce => "nonce",
        }
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateRejection {
    /// Not a value of this format.
    Malformed,
    /// The tag does not match: altered, made for another session or purpose, or under an
    /// unknown or retired key.
    Tampered,
    /// Past its expiry.
    Expired,
    /// Already used.
    Replayed,
}

impl StateRejection {
    /// `malformed`, `tampered`, `expired` or `replayed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Tampered => "tampered",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
        }
    }
}

impl fmt::Display for StateRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to [`OAuthStates::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum StateCheck {
    /// Genuine, fresh, for this session, and now used up.
    Valid,
    /// Refused, and the refusal recorded.
    Rejected(StateRejection),
}

/// The answer to [`OAuthStates::check_pkce`].
#[derive(Debug)]
#[must_use]
pub enum PkceStateCheck {
    /// Genuine, fresh, for this session, now used up: send this verifier as `code_verifier`.
    Valid(PkceVerifier),
    /// Refused, and the refusal recorded; no verifier.
    Rejected(StateRejection),
}

/// Issues and checks OAuth states and OIDC nonces. See the [module documentation](self).
///
/// ```
/// use std::sync::Arc;
/// use palisade_core::keyring::{KeyId, Keyring};
/// use palisade_core::once::MemoryOneTimeStore;
/// use palisade_core::secret::SecretBytes;
/// use palisade_core::time::{Clock, SystemClock};
/// use palisade_token::oauth::{OAuthStates, Purpose, StateCheck, StateRejection};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let ring = Keyring::single(KeyId::new("s1")?, SecretBytes::new(vec![3; 32]));
/// let states = OAuthStates::new(Arc::new(ring), MemoryOneTimeStore::new())?;
/// let now = SystemClock.now();
///
/// let state = states.issue(Purpose::State, "session-abc", now)?;
/// // ... redirect with &state=..., and on the callback:
/// assert_eq!(states.check(Purpose::State, &state, "session-abc", now).await?, StateCheck::Valid);
/// assert_eq!(
///     states.check(Purpose::State, &state, "session-abc", now).await?,
///     StateCheck::Rejected(StateRejection::Replayed),
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OAuthStates<S> {
    keyring: Arc<Keyring>,
    store: S,
    ttl: Duration,
    rng: Arc<dyn SecureRandom>,
    audit: Arc<dyn AuditSink>,
}

impl<S: OneTimeStore> OAuthStates<S> {
    /// Values under `keyring` (keys of at least 32 bytes), claimed in `store`, valid for
    /// 10 minutes.
    ///
    /// # Errors
    /// [`TokenError::Keyring`] without an active key; [`TokenError::InvalidKey`] for a short key.
    pub fn new(keyring: Arc<Keyring>, store: S) -> Result<Self, TokenError> {
        keyring.active()?;
        if let Some(short) = keyring.keys().find(|k| k.material().len() < 32) {
            return Err(TokenError::InvalidKey {
                kid: short.id().to_string(),
                algorithm: "HMAC-SHA-256",
                reason: "shorter than 32 bytes",
            });
        }
        Ok(Self {
            keyring,
            store,
            ttl: Duration::from_secs(600),
            rng: Arc::new(SystemRandom),
            audit: Arc::new(NoopSink),
        })
    }

    /// Sets how long a value stays valid.
    ///
    /// # Errors
    /// [`TokenError::Config`] for zero.
    pub fn ttl(mut self, ttl: Duration) -> Result<Self, TokenError> {
        if ttl.is_zero() {
            return Err(TokenError::Config("state lifetime must not be zero"));
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// Records refusals to `sink`.
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

    /// A new value for `purpose`, bound to `session_id`, issued at `now`. URL-safe.
    ///
    /// # Errors
    /// [`TokenError::Random`], [`TokenError::Keyring`].
    pub fn issue(
        &self,
        purpose: Purpose,
        session_id: &str,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let key = self.keyring.active()?;
        let expires = now.saturating_add(self.ttl).as_secs();
        let random: [u8; 16] = palisade_core::random::array(&*self.rng)?;
        let mut raw = Vec::with_capacity(96);
        raw.push(VERSION);
        push_short_str(&mut raw, key.id().as_str()).ok_or(TokenError::Config("key id too long"))?;
        raw.extend_from_slice(&expires.to_be_bytes());
        raw.extend_from_slice(&random);
        let tag = tag(key.material().expose_secret(), purpose, session_id, &raw);
        raw.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(&raw))
    }

    /// Checks `presented` for `purpose` and `session_id` at `now`, and uses it up.
    ///
    /// # Errors
    /// [`TokenError::Store`] when the store does not answer: refuse the callback.
    pub async fn check(
        &self,
        purpose: Purpose,
        presented: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<StateCheck, TokenError> {
        Ok(
            match self
                .check_recorded(purpose, presented, session_id, now)
                .await?
            {
                Ok(_) => StateCheck::Valid,
                Err(reason) => StateCheck::Rejected(reason),
            },
        )
    }

    /// A new `state` bound to `session_id` with a PKCE verifier, and the `S256` challenge to
    /// send with it (`code_challenge=...&code_challenge_method=S256`). See
    /// [PKCE](self#pkce).
    ///
    /// # Errors
    /// As [`OAuthStates::issue`].
    pub fn issue_pkce(
        &self,
        session_id: &str,
        now: UnixTime,
    ) -> Result<(String, PkceChallenge), TokenError> {
        let state = self.issue(Purpose::State, session_id, now)?;
        // The value was made just now under the active key, so it decodes; the fallbacks keep
        // this free of panics.
        let raw = URL_SAFE_NO_PAD.decode(&state).unwrap_or_default();
        let signed = raw.get(..raw.len().saturating_sub(TAG_LEN)).unwrap_or(&[]);
        let key = self.keyring.active()?;
        let verifier = pkce_verifier(key.material().expose_secret(), session_id, signed);
        Ok((state, verifier.challenge()))
    }

    /// Checks a `state` made by [`OAuthStates::issue_pkce`] as [`OAuthStates::check`] does, and
    /// uses it up; only when valid, returns its PKCE verifier.
    ///
    /// # Errors
    /// [`TokenError::Store`] when the store does not answer: refuse the callback.
    pub async fn check_pkce(
        &self,
        presented: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<PkceStateCheck, TokenError> {
        Ok(
            match self
                .check_recorded(Purpose::State, presented, session_id, now)
                .await?
            {
                Ok(verifier) => PkceStateCheck::Valid(verifier),
                Err(reason) => PkceStateCheck::Rejected(reason),
            },
        )
    }

    async fn check_recorded(
        &self,
        purpose: Purpose,
        presented: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<Result<PkceVerifier, StateRejection>, TokenError> {
        let verdict = self
            .check_inner(purpose, presented, session_id, now)
            .await?;
        if let Err(reason) = verdict {
            self.audit.record(
                AuditEvent::new(Action::OAuthStateRejected, now)
                    .resource(purpose.as_str())
                    .meta("reason", reason.as_str()),
            );
        }
        Ok(verdict)
    }

    async fn check_inner(
        &self,
        purpose: Purpose,
        presented: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<Result<PkceVerifier, StateRejection>, TokenError> {
        use StateRejection::{Expired, Malformed, Replayed, Tampered};
        if presented.len() > MAX_STATE_LEN {
            return Ok(Err(Malformed));
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(presented) else {
            return Ok(Err(Malformed));
        };
        let Some(signed_len) = raw.len().checked_sub(TAG_LEN) else {
            return Ok(Err(Malformed));
        };
        let (signed, presented_tag) = raw.split_at(signed_len);
        let mut r = Reader(signed);
        let (Some(VERSION), Some(kid), Some(expires), Some(random), true) = (
            r.u8(),
            r.short_str(),
            r.u64(),
            r.array::<16>(),
            r.0.is_empty(),
        ) else {
            return Ok(Err(Malformed));
        };
        let Ok(key) = self.keyring.for_decrypt_bytes(kid.as_bytes()) else {
            return Ok(Err(Tampered));
        };
        let expected = tag(key.material().expose_secret(), purpose, session_id, signed);
        if !ct_eq(&expected, presented_tag) {
            return Ok(Err(Tampered));
        }
        let expires_at = UnixTime::from_secs(expires);
        if now >= expires_at {
            return Ok(Err(Expired));
        }
        Ok(
            match self
                .store
                .claim(purpose.scope(), &random, expires_at)
                .await?
            {
                Claim::Claimed => Ok(pkce_verifier(
                    key.material().expose_secret(),
                    session_id,
                    signed,
                )),
                Claim::AlreadyUsed => Err(Replayed),
            },
        )
    }
}

/// The PKCE verifier bound to a state: HMAC-SHA-256 under the state's key.
fn pkce_verifier(key: &[u8], session_id: &str, signed: &[u8]) -> PkceVerifier {
    let session_len = u64::try_from(session_id.len())
        .unwrap_or(u64::MAX)
        .to_be_bytes();
    let bytes = zeroize::Zeroizing::new(hmac_sha256(
        key,
        &[PKCE_DOMAIN, &session_len, session_id.as_bytes(), signed],
    ));
    PkceVerifier::from_bytes(&bytes)
}

fn tag(key: &[u8], purpose: Purpose, session_id: &str, signed: &[u8]) -> [u8; 32] {
    let session_len = u64::try_from(session_id.len())
        .unwrap_or(u64::MAX)
        .to_be_bytes();
    hmac_sha256(
        key,
        &[
            purpose.domain(),
            &session_len,
            session_id.as_bytes(),
            signed,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::keyring::KeyId;
    use palisade_core::once::MemoryOneTimeStore;
    use palisade_core::secret::SecretBytes;

    fn block_on<T>(f: impl core::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn states() -> OAuthStates<MemoryOneTimeStore> {
        let ring = Keyring::single(KeyId::new("s1").unwrap(), SecretBytes::new(vec![5; 32]));
        OAuthStates::new(Arc::new(ring), MemoryOneTimeStore::new()).unwrap()
    }

    const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

    #[test]
    fn every_flipped_byte_is_refused() {
        let s = states();
        let state = s.issue(Purpose::State, "sess", NOW).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&state).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x20;
            let v = block_on(s.check(Purpose::State, &URL_SAFE_NO_PAD.encode(&bad), "sess", NOW))
                .unwrap();
            assert!(
                matches!(v, StateCheck::Rejected(Tampered | Malformed)),
                "byte {i}: {v:?}"
            );
        }
        // The genuine value was never claimed by those attempts.
        assert_eq!(
            block_on(s.check(Purpose::State, &state, "sess", NOW)).unwrap(),
            StateCheck::Valid
        );
        use StateRejection::{Malformed, Tampered};
    }

    #[test]
    fn garbage_is_malformed() {
        let s = states();
        for bad in ["", "!", "AAAA", &"A".repeat(300)] {
            assert_eq!(
                block_on(s.check(Purpose::State, bad, "sess", NOW)).unwrap(),
                StateCheck::Rejected(StateRejection::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn zero_ttl_is_refused() {
        assert!(states().ttl(Duration::ZERO).is_err());
    }
}
