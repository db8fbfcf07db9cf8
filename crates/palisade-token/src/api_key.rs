//! API keys: issue, verify, rotate with a grace period, revoke.
//!
//! # Format
//! `<prefix>_<id>_<secret>_<checksum>`, for example
//! `pal_live_4Ffo0QnZ3WbM_nDv8yH2cS1kqR0aTgPzXe7LbJ9uW3fVm_1xUaQg`:
//!
//! | part | what | why |
//! |---|---|---|
//! | prefix | `[a-z0-9]` words joined by `_` (default `pal_live`) | readable: a person and a secret scanner both recognise a leaked key and where it belongs |
//! | id | 12 base62 characters (71 bits), public | the database lookup key; shown in dashboards and logs |
//! | secret | 32 base62 characters (190 bits) | the part that proves possession |
//! | checksum | CRC-32 of everything before it, 6 base62 characters | a typo or truncation is caught before any lookup, and a scanner can tell a real key from a look-alike without calling home |
//!
//! This follows GitHub's token format (prefix, base62, CRC-32), with the id split out so that
//! the stored record is found without hashing or scanning.
//!
//! # Storage
//! Only a hash of the whole key is stored in the [`ApiKeyRecord`]: SHA-256, or HMAC-SHA-256
//! under a key from a [`Keyring`] (a pepper: a stolen database alone then verifies nothing).
//! A key has 190 bits of entropy, so a fast hash is enough: no password hash is needed. The
//! record names the pepper's key id, so the pepper can rotate like any other key.
//!
//! # Lifecycle
//! | status | accepted | becomes |
//! |---|---|---|
//! | [`ApiKeyStatus::Active`] | yes | expiring (rotation, or its end is near), revoked |
//! | [`ApiKeyStatus::Expiring`] | yes, until its end | expired (time), revoked |
//! | [`ApiKeyStatus::Expired`] | no | revoked |
//! | [`ApiKeyStatus::Revoked`] | no | (final) |
//!
//! Keys expire after [`ApiKeyConfig::ttl`] (default 90 days). [`ApiKeys::rotate`] issues a
//! successor and keeps the predecessor valid for [`ApiKeyConfig::grace`] (default 24 hours), so
//! clients can switch over without an outage.
//!
//! # Errors and panics
//! Parsing fails with [`TokenError::MalformedApiKey`] or [`TokenError::ApiKeyChecksum`];
//! issuing fails only when the random source or the keyring does. A wrong, revoked or expired
//! key is an [`ApiKeyVerdict`], not an error. Nothing panics.
//!
//! # Security
//! The hash comparison runs in constant time ([`palisade_core::secret::ct_eq`]). A key's status
//! is revealed only after its secret matched, so probing with a known id learns nothing.
//! [`ApiKey`] zeroizes on drop and prints `***`. Audit events carry the public id, never the key.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use palisade_core::audit::{Action, AuditEvent, AuditSink, Outcome};
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::secret::ct_eq;
use palisade_core::time::UnixTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::TokenError;
use crate::encoding::{
    CRC_CHARS, base62_to_u32, crc32, hmac_sha256, is_base62, random_base62, u32_to_base62,
};

/// Length of the public id, in base62 characters.
pub const ID_LEN: usize = 12;
/// Length of the secret, in base62 characters.
pub const SECRET_LEN: usize = 32;
/// Longest accepted prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 32;
/// Longest string [`ParsedApiKey::parse`] looks at; longer input is malformed at once.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + ID_LEN + SECRET_LEN + CRC_CHARS + 3;

const SHA256_DOMAIN: &[u8] = b"palisade-api-key-v1\0";

/// The public id of an API key: 12 base62 characters. Not secret.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKeyId(Box<str>);

impl ApiKeyId {
    /// Checks and wraps an id.
    ///
    /// # Errors
    /// [`TokenError::MalformedApiKey`] unless `id` is exactly [`ID_LEN`] base62 characters.
    pub fn new(id: &str) -> Result<Self, TokenError> {
        if id.len() == ID_LEN && is_base62(id.as_bytes()) {
            Ok(Self(id.into()))
        } else {
            Err(TokenError::MalformedApiKey)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0)
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ApiKeyId {
    type Error = TokenError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<ApiKeyId> for String {
    fn from(id: ApiKeyId) -> Self {
        id.0.into()
    }
}

/// A freshly issued API key, secret included: show it to its owner once, then drop it.
///
/// Zeroized on drop; `Debug` prints `***`; no `Display`, `Serialize` or `Clone`.
pub struct ApiKey {
    id: ApiKeyId,
    text: Zeroizing<String>,
}

impl ApiKey {
    /// The public id.
    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// The whole key, to hand to its owner. Every call site is a place where the secret leaves.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

/// A presented key whose format and checksum are correct. Borrowed from the input.
///
/// Parsing is cheap and needs no key or store, so a request with a mistyped key is refused
/// before any database lookup.
#[derive(Clone, Copy)]
pub struct ParsedApiKey<'a> {
    text: &'a str,
    prefix: &'a str,
    id: &'a str,
}

impl<'a> ParsedApiKey<'a> {
    /// Parses `text` as `<prefix>_<id>_<secret>_<checksum>`.
    ///
    /// # Errors
    /// [`TokenError::MalformedApiKey`] when the shape is wrong, [`TokenError::ApiKeyChecksum`]
    /// when the shape is right but the checksum does not match (a typo).
    pub fn parse(text: &'a str) -> Result<Self, TokenError> {
        if text.len() > MAX_KEY_LEN {
            return Err(TokenError::MalformedApiKey);
        }
        let (signed, checksum) = text.rsplit_once('_').ok_or(TokenError::MalformedApiKey)?;
        let (rest, secret) = signed.rsplit_once('_').ok_or(TokenError::MalformedApiKey)?;
        let (prefix, id) = rest.rsplit_once('_').ok_or(TokenError::MalformedApiKey)?;
        if id.len() != ID_LEN
            || secret.len() != SECRET_LEN
            || !is_base62(id.as_bytes())
            || !is_base62(secret.as_bytes())
            || !valid_prefix(prefix)
        {
            return Err(TokenError::MalformedApiKey);
        }
        let expected = base62_to_u32(checksum.as_bytes()).ok_or(TokenError::MalformedApiKey)?;
        if crc32(signed.as_bytes()) != expected {
            return Err(TokenError::ApiKeyChecksum);
        }
        Ok(Self { text, prefix, id })
    }

    /// The prefix, for example `pal_live`.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// The public id: look the record up by this.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The public id as an [`ApiKeyId`].
    pub fn key_id(&self) -> ApiKeyId {
        ApiKeyId(self.id.into())
    }
}

impl fmt::Debug for ParsedApiKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedApiKey")
            .field("prefix", &self.prefix)
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

/// `[a-z0-9]+` words joined by single underscores, at most [`MAX_PREFIX_LEN`] bytes.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.split('_').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The stored hash of a key (32 bytes, hex in serialized form).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash from its bytes, as read from a database.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..)")
    }
}

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            for nibble in [b >> 4, b & 15] {
                hex.push(char::from(
                    HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                ));
            }
        }
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(serde::de::Error::custom("key hash must be 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (
                pair.first().and_then(|c| hex_value(*c)),
                pair.get(1).and_then(|c| hex_value(*c)),
            ) else {
                return Err(serde::de::Error::custom("key hash must be 64 hex digits"));
            };
            *slot = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Where a key stands at a given instant. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStatus {
    /// Accepted; not about to end.
    Active,
    /// Accepted, but ends soon: rotated and in its grace period, or near its expiry. Tell the
    /// client (for example in a `Sunset` or `Deprecation` response header).
    Expiring,
    /// Past its expiry or grace period.
    Expired,
    /// Revoked.
    Revoked,
}

impl ApiKeyStatus {
    /// `active`, `expiring`, `expired` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for ApiKeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the application stores for a key: everything but the key itself.
///
/// Plain data (`Serialize`, `Deserialize`): keep it in the application's database, keyed by
/// [`ApiKeyRecord::id`]. Change it only through [`ApiKeys`] and [`ApiKeyRecord::mark_used`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiKeyRecord {
    /// The public id.
    pub id: ApiKeyId,
    /// The prefix the key was issued with.
    pub prefix: String,
    /// Whom the key belongs to, as the application names it.
    pub owner: String,
    /// Hash of the whole key.
    pub hash: KeyHash,
    /// The pepper key the hash was made with; `None` for plain SHA-256.
    pub hash_key: Option<KeyId>,
    /// When it was issued.
    pub created_at: UnixTime,
    /// When it expires, whatever happens.
    pub expires_at: UnixTime,
    /// When it was last accepted (see [`ApiKeyRecord::mark_used`]).
    pub last_used_at: Option<UnixTime>,
    /// How many rotations lie behind this key (0 for a first key).
    pub rotation_count: u32,
    /// When it was rotated (replaced by [`ApiKeyRecord::successor`]).
    pub rotated_at: Option<UnixTime>,
    /// After rotation, the end of its grace period.
    pub grace_until: Option<UnixTime>,
    /// The key this one replaced.
    pub predecessor: Option<ApiKeyId>,
    /// The key that replaced this one.
    pub successor: Option<ApiKeyId>,
    /// When it was revoked.
    pub revoked_at: Option<UnixTime>,
}

impl ApiKeyRecord {
    /// When the key stops being accepted, revocation aside: its expiry, or the end of its
    /// grace period when that is earlier.
    pub fn ends_at(&self) -> UnixTime {
        match self.grace_until {
            Some(g) if g < self.expires_at => g,
            _ => self.expires_at,
        }
    }

    /// The status at `now`, calling the key [`ApiKeyStatus::Expiring`] within `expiring_window`
    /// of its end (and throughout a rotation's grace period).
    pub fn status(&self, now: UnixTime, expiring_window: Duration) -> ApiKeyStatus {
        if self.revoked_at.is_some() {
            return ApiKeyStatus::Revoked;
        }
        let end = self.ends_at();
        if now >= end {
            ApiKeyStatus::Expired
        } else if self.grace_until.is_some() || now.saturating_add(expiring_window) >= end {
            ApiKeyStatus::Expiring
        } else {
            ApiKeyStatus::Active
        }
    }

    /// Notes a use at `now`. Returns whether the stored value should be written back: only
    /// when the previous one is at least `granularity` old, so a busy key does not cost a
    /// database write per request.
    pub fn mark_used(&mut self, now: UnixTime, granularity: Duration) -> bool {
        let stale = self
            .last_used_at
            .is_none_or(|t| now.saturating_duration_since(t) >= granularity);
        if stale {
            self.last_used_at = Some(now);
        }
        stale
    }
}

/// How keys are hashed for storage.
#[derive(Debug, Clone)]
pub enum ApiKeyHasher {
    /// SHA-256 with a domain-separation prefix. Enough for keys of full entropy.
    Sha256,
    /// HMAC-SHA-256 under the keyring's active key (a pepper kept apart from the database);
    /// older keys still verify the records they hashed until they are retired.
    Hmac(Arc<Keyring>),
}

impl ApiKeyHasher {
    /// HMAC-SHA-256 under `keyring`, whose keys must be at least 32 bytes.
    ///
    /// # Errors
    /// [`TokenError::Keyring`] when no key is active; [`TokenError::InvalidKey`] for a short key.
    pub fn hmac(keyring: Arc<Keyring>) -> Result<Self, TokenError> {
        keyring.active()?;
        if let Some(short) = keyring.keys().find(|k| k.material().len() < 32) {
            return Err(TokenError::InvalidKey {
                kid: short.id().to_string(),
                algorithm: "HMAC-SHA-256",
                reason: "shorter than 32 bytes",
            });
        }
        Ok(Self::Hmac(keyring))
    }

    /// Hashes `text` for a new record.
    fn hash_new(&self, text: &str) -> Result<(KeyHash, Option<KeyId>), TokenError> {
        match self {
            Self::Sha256 => Ok((sha256_hash(text), None)),
            Self::Hmac(ring) => {
                let key = ring.active()?;
                Ok((
                    hmac_hash(key.material().expose_secret(), text),
                    Some(key.id().clone()),
                ))
            }
        }
    }

    /// Hashes `text` as `record` was hashed; `None` when that hash key is gone or retired,
    /// or the record's kind of hash does not match this hasher.
    fn hash_for(&self, record: &ApiKeyRecord, text: &str) -> Option<KeyHash> {
        match (self, &record.hash_key) {
            (Self::Sha256, None) => Some(sha256_hash(text)),
            (Self::Hmac(ring), Some(kid)) => ring
                .for_decrypt(kid)
                .ok()
                .map(|k| hmac_hash(k.material().expose_secret(), text)),
            _ => None,
        }
    }
}

fn sha256_hash(text: &str) -> KeyHash {
    let mut h = Sha256::new();
    h.update(SHA256_DOMAIN);
    h.update(text.as_bytes());
    KeyHash(h.finalize().into())
}

fn hmac_hash(key: &[u8], text: &str) -> KeyHash {
    KeyHash(hmac_sha256(key, &[text.as_bytes()]))
}

/// Settings for [`ApiKeys`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// The readable prefix (default `pal_live`): `[a-z0-9]` words joined by `_`.
    pub prefix: String,
    /// Lifetime of a new key (default 90 days).
    pub ttl: Duration,
    /// How long a rotated key stays valid beside its successor (default 24 hours).
    pub grace: Duration,
    /// How close to its end a key is reported [`ApiKeyStatus::Expiring`] (default 7 days).
    pub expiring_window: Duration,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        Self {
            prefix: "pal_live".into(),
            ttl: Duration::from_secs(90 * 24 * 3600),
            grace: Duration::from_secs(24 * 3600),
            expiring_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ApiKeyConfig {
    /// Sets the prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the lifetime of new keys.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the grace period after rotation.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the window in which keys are reported as expiring.
    #[must_use]
    pub fn expiring_window(mut self, window: Duration) -> Self {
        self.expiring_window = window;
        self
    }
}

/// Proof that a presented key matched its record and is accepted; only [`ApiKeys::verify`]
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApiKey {
    id: ApiKeyId,
    status: ApiKeyStatus,
    ends_at: UnixTime,
}

impl VerifiedApiKey {
    /// The key's id.
    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// [`ApiKeyStatus::Active`] or [`ApiKeyStatus::Expiring`].
    pub fn status(&self) -> ApiKeyStatus {
        self.status
    }

    /// When the key stops being accepted.
    pub fn ends_at(&self) -> UnixTime {
        self.ends_at
    }
}

/// The answer to [`ApiKeys::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ApiKeyVerdict {
    /// Accepted.
    Valid(VerifiedApiKey),
    /// The key does not match the record (wrong secret, or the record of another key).
    Mismatch,
    /// The key matched, but it was revoked.
    Revoked,
    /// The key matched, but it has expired (or its grace period after rotation ended).
    Expired,
}

impl ApiKeyVerdict {
    /// Whether the key is accepted.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid(_))
    }
}

/// Issues, verifies, rotates and revokes API keys.
///
/// ```
/// use palisade_core::time::UnixTime;
/// use palisade_token::{ApiKeys, ApiKeyConfig, ApiKeyHasher, ApiKeyVerdict, ParsedApiKey};
///
/// let keys = ApiKeys::new(ApiKeyConfig::default(), ApiKeyHasher::Sha256)?;
/// let now = UnixTime::from_secs(1_700_000_000);
/// let (key, record) = keys.issue("acct-42", now)?;
/// // Store `record`; show `key.expose_secret()` to its owner once.
///
/// let presented = ParsedApiKey::parse(key.expose_secret())?;
/// assert_eq!(presented.id(), record.id.as_str()); // look the record up by id
/// assert!(keys.verify(&presented, &record, now).is_valid());
/// # Ok::<(), palisade_token::TokenError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ApiKeys {
    config: ApiKeyConfig,
    hasher: ApiKeyHasher,
    rng: Arc<dyn SecureRandom>,
    /// `None` until a sink is set: then no event is even built (an event per verification
    /// costs about a microsecond, half the verification).
    audit: Option<Arc<dyn AuditSink>>,
}

impl ApiKeys {
    /// A key manager with the system random source and no audit sink.
    ///
    /// # Errors
    /// [`TokenError::Config`] for a prefix that breaks the format rules or a zero lifetime.
    pub fn new(config: ApiKeyConfig, hasher: ApiKeyHasher) -> Result<Self, TokenError> {
        if !valid_prefix(&config.prefix) {
            return Err(TokenError::Config(
                "api key prefix must be [a-z0-9] words joined by '_', at most 32 bytes",
            ));
        }
        if config.ttl.is_zero() {
            return Err(TokenError::Config("api key lifetime must not be zero"));
        }
        Ok(Self {
            config,
            hasher,
            rng: Arc::new(SystemRandom),
            audit: None,
        })
    }

    /// Records events (created, rotated, revoked, used) to `sink`.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    fn emit(&self, event: impl FnOnce() -> AuditEvent) {
        if let Some(sink) = &self.audit {
            sink.record(event());
        }
    }

    /// Draws randomness from `rng`.
    #[must_use]
    pub fn rng(mut self, rng: Arc<dyn SecureRandom>) -> Self {
        self.rng = rng;
        self
    }

    /// The settings.
    pub fn config(&self) -> &ApiKeyConfig {
        &self.config
    }

    /// Issues a key for `owner` at `now`. Store the record; hand the key to its owner.
    ///
    /// # Errors
    /// [`TokenError::Random`] or [`TokenError::Keyring`].
    pub fn issue(&self, owner: &str, now: UnixTime) -> Result<(ApiKey, ApiKeyRecord), TokenError> {
        let (key, record) = self.mint(owner, now, 0, None)?;
        self.emit(|| {
            AuditEvent::new(Action::ApiKeyCreated, now)
                .user_id(owner)
                .record_id(record.id.as_str())
                .meta("expires_at", record.expires_at.as_secs().to_string())
        });
        Ok((key, record))
    }

    fn mint(
        &self,
        owner: &str,
        now: UnixTime,
        rotation_count: u32,
        predecessor: Option<ApiKeyId>,
    ) -> Result<(ApiKey, ApiKeyRecord), TokenError> {
        let prefix = &self.config.prefix;
        let mut body = Zeroizing::new([0u8; ID_LEN + SECRET_LEN]);
        random_base62(&*self.rng, &mut body[..])?;
        let (id, secret) = body.split_at(ID_LEN);
        let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_LEN));
        text.push_str(prefix);
        text.push('_');
        // Base62 bytes are ASCII.
        text.extend(id.iter().map(|&b| char::from(b)));
        text.push('_');
        text.extend(secret.iter().map(|&b| char::from(b)));
        let crc = crc32(text.as_bytes());
        text.push('_');
        text.extend(u32_to_base62(crc).iter().map(|&b| char::from(b)));

        let id = ApiKeyId(id.iter().map(|&b| char::from(b)).collect::<String>().into());
        let (hash, hash_key) = self.hasher.hash_new(&text)?;
        let record = ApiKeyRecord {
            id: id.clone(),
            prefix: prefix.clone(),
            owner: owner.to_owned(),
            hash,
            hash_key,
            created_at: now,
            expires_at: now.saturating_add(self.config.ttl),
            last_used_at: None,
            rotation_count,
            rotated_at: None,
            grace_until: None,
            predecessor,
            successor: None,
            revoked_at: None,
        };
        Ok((ApiKey { id, text }, record))
    }

    /// The status of `record` at `now` under this manager's expiring window.
    pub fn status(&self, record: &ApiKeyRecord, now: UnixTime) -> ApiKeyStatus {
        record.status(now, self.config.expiring_window)
    }

    /// Checks `presented` against `record` at `now`, in constant time in the secret.
    ///
    /// Call [`ApiKeyRecord::mark_used`] after a [`ApiKeyVerdict::Valid`] answer to keep the
    /// last-used time.
    pub fn verify(
        &self,
        presented: &ParsedApiKey<'_>,
        record: &ApiKeyRecord,
        now: UnixTime,
    ) -> ApiKeyVerdict {
        let matches = presented.id == record.id.as_str()
            && self
                .hasher
                .hash_for(record, presented.text)
                .is_some_and(|h| ct_eq(h.as_bytes(), record.hash.as_bytes()));
        let verdict = if !matches {
            ApiKeyVerdict::Mismatch
        } else {
            match self.status(record, now) {
                ApiKeyStatus::Revoked => ApiKeyVerdict::Revoked,
                ApiKeyStatus::Expired => ApiKeyVerdict::Expired,
                status @ (ApiKeyStatus::Active | ApiKeyStatus::Expiring) => {
                    ApiKeyVerdict::Valid(VerifiedApiKey {
                        id: record.id.clone(),
                        status,
                        ends_at: record.ends_at(),
                    })
                }
            }
        };
        let (outcome, result) = match &verdict {
            ApiKeyVerdict::Valid(v) => (Outcome::Success, v.status.as_str()),
            ApiKeyVerdict::Mismatch => (Outcome::Failure, "mismatch"),
            ApiKeyVerdict::Revoked => (Outcome::Failure, "revoked"),
            ApiKeyVerdict::Expired => (Outcome::Failure, "expired"),
        };
        self.emit(|| {
            AuditEvent::new(Action::ApiKeyUsed, now)
                .outcome(outcome)
                .user_id(record.owner.as_str())
                .record_id(record.id.as_str())
                .meta("result", result)
        });
        verdict
    }

    /// Rotates `old` at `now`: issues a successor and keeps `old` valid for the grace period
    /// (never past its own expiry). Store both records.
    ///
    /// # Errors
    /// [`TokenError::InvalidTransition`] when `old` is revoked, expired or already rotated;
    /// [`TokenError::Random`] or [`TokenError::Keyring`].
    pub fn rotate(
        &self,
        old: &mut ApiKeyRecord,
        now: UnixTime,
    ) -> Result<(ApiKey, ApiKeyRecord), TokenError> {
        let status = self.status(old, now);
        if old.successor.is_some()
            || matches!(status, ApiKeyStatus::Revoked | ApiKeyStatus::Expired)
        {
            return Err(TokenError::InvalidTransition {
                id: old.id.to_string(),
                action: "rotated",
                status,
            });
        }
        let (key, record) = self.mint(
            &old.owner,
            now,
            old.rotation_count.saturating_add(1),
            Some(old.id.clone()),
        )?;
        let grace_end = now.saturating_add(self.config.grace).min(old.expires_at);
        old.rotated_at = Some(now);
        old.grace_until = Some(grace_end);
        old.successor = Some(record.id.clone());
        self.emit(|| {
            AuditEvent::new(Action::ApiKeyRotated, now)
                .user_id(old.owner.as_str())
                .record_id(old.id.as_str())
                .meta("successor", record.id.as_str())
                .meta("grace_until", grace_end.as_secs().to_string())
        });
        Ok((key, record))
    }

    /// Revokes `record` at `now`. Returns `false` when it was already revoked (nothing changes).
    pub fn revoke(&self, record: &mut ApiKeyRecord, now: UnixTime) -> bool {
        if record.revoked_at.is_some() {
            return false;
        }
        record.revoked_at = Some(now);
        self.emit(|| {
            AuditEvent::new(Action::ApiKeyRevoked, now)
                .user_id(record.owner.as_str())
                .record_id(record.id.as_str())
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::audit::MemorySink;
    use proptest::prelude::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(ApiKeyConfig::default(), ApiKeyHasher::Sha256).unwrap()
    }

    #[test]
    fn issued_key_has_the_documented_shape() {
        let (key, record) = keys().issue("u", UnixTime::from_secs(100)).unwrap();
        let text = key.expose_secret();
        assert!(text.starts_with("pal_live_"));
        assert_eq!(
            text.len(),
            "pal_live".len() + ID_LEN + SECRET_LEN + CRC_CHARS + 3
        );
        let parsed = ParsedApiKey::parse(text).unwrap();
        assert_eq!(parsed.prefix(), "pal_live");
        assert_eq!(parsed.id(), record.id.as_str());
        assert_eq!(record.hash_key, None);
        assert_eq!(record.expires_at, UnixTime::from_secs(100 + 90 * 24 * 3600));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let (key, _) = keys().issue("u", UnixTime::EPOCH).unwrap();
        let text = key.expose_secret().to_owned();
        let secret = text.split('_').nth(3).unwrap();
        let shown = format!("{key:?} {:?}", ParsedApiKey::parse(&text).unwrap());
        assert!(!shown.contains(secret));
        assert!(shown.contains("***"));
    }

    #[test]
    fn every_single_character_typo_fails_the_checksum_or_the_shape() {
        let (key, _) = keys().issue("u", UnixTime::EPOCH).unwrap();
        let text = key.expose_secret().as_bytes().to_vec();
        for i in 0..text.len() {
            let mut typo = text.clone();
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).unwrap();
            assert!(ParsedApiKey::parse(&typo).is_err(), "typo at {i} accepted");
        }
    }

    #[test]
    fn parse_rejects_malformed_input() {
        for bad in [
            "",
            "pal_live",
            "pal_live_abc_def_ghi",
            "_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_000000",
            "Pal_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_000000",
            "pal__x_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_000000",
        ] {
            assert!(
                matches!(ParsedApiKey::parse(bad), Err(TokenError::MalformedApiKey)),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_KEY_LEN + 1);
        assert!(ParsedApiKey::parse(&long).is_err());
    }

    #[test]
    fn record_serializes_without_the_secret() {
        let (key, record) = keys().issue("u", UnixTime::EPOCH).unwrap();
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains(key.expose_secret()));
        let back: ApiKeyRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn hmac_hasher_binds_the_pepper_and_rotates_it() {
        use palisade_core::keyring::{Key, KeyState};
        use palisade_core::secret::SecretBytes;
        let mut ring = Keyring::new();
        ring.insert(Key::new(
            KeyId::new("p1").unwrap(),
            KeyState::Active,
            SecretBytes::from_slice(&[1; 32]),
        ))
        .unwrap();
        let old = ApiKeys::new(
            ApiKeyConfig::default(),
            ApiKeyHasher::hmac(Arc::new(ring.duplicate_for_test())).unwrap(),
        )
        .unwrap();
        let (key, record) = old.issue("u", UnixTime::EPOCH).unwrap();
        assert_eq!(record.hash_key.as_ref().unwrap().as_str(), "p1");
        let parsed = ParsedApiKey::parse(key.expose_secret()).unwrap();
        assert!(old.verify(&parsed, &record, UnixTime::EPOCH).is_valid());
        // SHA-256 records and HMAC records do not verify under each other's hasher.
        assert_eq!(
            keys().verify(&parsed, &record, UnixTime::EPOCH),
            ApiKeyVerdict::Mismatch
        );
        // A new active pepper: the old record still verifies while p1 is decrypt-only...
        ring.insert(Key::new(
            KeyId::new("p2").unwrap(),
            KeyState::DecryptOnly,
            SecretBytes::from_slice(&[2; 32]),
        ))
        .unwrap();
        ring.set_state(&KeyId::new("p2").unwrap(), KeyState::Active)
            .unwrap();
        let new = ApiKeys::new(
            ApiKeyConfig::default(),
            ApiKeyHasher::hmac(Arc::new(ring.duplicate_for_test())).unwrap(),
        )
        .unwrap();
        assert!(new.verify(&parsed, &record, UnixTime::EPOCH).is_valid());
        // ...and not once it is retired.
        ring.set_state(&KeyId::new("p1").unwrap(), KeyState::Retired)
            .unwrap();
        let retired = ApiKeys::new(
            ApiKeyConfig::default(),
            ApiKeyHasher::hmac(Arc::new(ring)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            retired.verify(&parsed, &record, UnixTime::EPOCH),
            ApiKeyVerdict::Mismatch
        );
    }

    trait DuplicateForTest {
        fn duplicate_for_test(&self) -> Keyring;
    }

    impl DuplicateForTest for Keyring {
        fn duplicate_for_test(&self) -> Keyring {
            let mut out = Keyring::new();
            for k in self.keys() {
                out.insert(k.duplicate()).unwrap();
            }
            out
        }
    }

    #[test]
    fn short_pepper_is_refused() {
        let ring = Keyring::single(
            KeyId::new("p").unwrap(),
            palisade_core::secret::SecretBytes::from_slice(&[0; 16]),
        );
        assert!(matches!(
            ApiKeyHasher::hmac(Arc::new(ring)),
            Err(TokenError::InvalidKey { .. })
        ));
    }

    #[test]
    fn bad_prefix_is_refused() {
        for p in ["", "Live", "a__b", "_a", "a_", "x".repeat(33).as_str()] {
            assert!(
                ApiKeys::new(ApiKeyConfig::default().prefix(p), ApiKeyHasher::Sha256).is_err(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn verify_audits_without_the_secret() {
        let sink = Arc::new(MemorySink::new());
        let keys = keys().audit(sink.clone());
        let (key, record) = keys.issue("acct", UnixTime::EPOCH).unwrap();
        let parsed = ParsedApiKey::parse(key.expose_secret()).unwrap();
        let _ = keys.verify(&parsed, &record, UnixTime::EPOCH);
        let events = sink.events();
        assert_eq!(events[0].action, Action::ApiKeyCreated);
        assert_eq!(events[1].action, Action::ApiKeyUsed);
        assert_eq!(events[1].record_id.as_deref(), Some(record.id.as_str()));
        let json = serde_json::to_string(&events).unwrap();
        assert!(!json.contains(key.expose_secret()));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,120}") {
            let _ = ParsedApiKey::parse(&s);
        }

        #[test]
        fn any_valid_prefix_round_trips(prefix in "[a-z0-9]{1,8}(_[a-z0-9]{1,8}){0,2}") {
            let keys = ApiKeys::new(ApiKeyConfig::default().prefix(prefix.clone()), ApiKeyHasher::Sha256).unwrap();
            let (key, record) = keys.issue("u", UnixTime::EPOCH).unwrap();
            let parsed = ParsedApiKey::parse(key.expose_secret()).unwrap();
            prop_assert_eq!(parsed.prefix(), prefix.as_str());
            prop_assert!(keys.verify(&parsed, &record, UnixTime::EPOCH).is_valid());
        }
    }
}
