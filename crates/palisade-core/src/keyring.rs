//! Keys and the keyring: one active key for new work, older keys found by id.
//!
//! Every keyed Palisade component (field encryption, recovery-code and API-key HMACs, JWT
//! signing) takes a [`Keyring`]. A key has a [`KeyId`] that travels with what it protects, and a
//! [`KeyState`]:
//!
//! | state | new work (encrypt, sign, hash) | old work (decrypt, verify) |
//! |---|---|---|
//! | [`KeyState::Active`] | yes (exactly one key) | yes |
//! | [`KeyState::DecryptOnly`] | no | yes |
//! | [`KeyState::Retired`] | no | no: a typed error |
//!
//! Rotation across several service instances is three phases: add the new key as
//! `decrypt-only` everywhere, then make it `active` (the old one becomes `decrypt-only`), and once
//! every value is rewrapped, retire the old one. At no point can one instance write what another
//! cannot read.
//!
//! # Text form
//! Keys load from an environment variable or a file as entries `id:state:base64`, separated by
//! commas or newlines; blank lines and lines starting with `#` are ignored. Base64 may be standard
//! or URL-safe, padded or not.
//!
//! ```text
//! # /etc/myapp/field-keys
//! 2026q4:active:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=
//! 2026q3:decrypt-only:ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=
//! ```
//!
//! # Errors
//! Loading fails with a [`KeyringError`] naming the entry and what is wrong with it, never the key
//! material. An application should refuse to start when loading fails.

use core::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::random::{RandomError, SecureRandom};
use crate::secret::SecretBytes;

/// The longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 32;

/// The name of a key: 1 to 32 ASCII letters, digits, `.`, `_` or `-`.
///
/// Key ids are not secret; they are written next to the data they protect.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(Box<str>);

impl KeyId {
    /// Checks and wraps a key id.
    ///
    /// # Errors
    /// [`KeyringError::InvalidKeyId`] when `id` is empty, longer than [`MAX_KEY_ID_LEN`], or has
    /// a character outside `[A-Za-z0-9._-]`.
    pub fn new(id: &str) -> Result<Self, KeyringError> {
        if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
            return Err(KeyringError::InvalidKeyId {
                reason: "must be 1 to 32 bytes long",
            });
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(KeyringError::InvalidKeyId {
                reason: "may hold only ASCII letters, digits, '.', '_' and '-'",
            });
        }
        Ok(Self(id.into()))
    }

    /// Reads a key id from bytes (for example a ciphertext header).
    ///
    /// # Errors
    /// As [`KeyId::new`], and when the bytes are not ASCII.
    pub fn from_bytes(id: &[u8]) -> Result<Self, KeyringError> {
        let s = core::str::from_utf8(id).map_err(|_| KeyringError::InvalidKeyId {
            reason: "must be ASCII",
        })?;
        Self::new(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyringError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.0.into()
    }
}

impl core::str::FromStr for KeyId {
    type Err = KeyringError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// What a key may be used for. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Used for new work; also reads old work.
    Active,
    /// Reads old work only: a key being rolled out, or one being rolled away from.
    DecryptOnly,
    /// Neither: data under it is refused with a typed error.
    Retired,
}

impl KeyState {
    /// The state's name in the text form: `active`, `decrypt-only` or `retired`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::DecryptOnly => "decrypt-only",
            Self::Retired => "retired",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for KeyState {
    type Err = KeyringError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "decrypt-only" | "decrypt_only" | "decryptonly" => Ok(Self::DecryptOnly),
            "retired" => Ok(Self::Retired),
            _ => Err(KeyringError::Malformed {
                entry: 0,
                reason: "state must be active, decrypt-only or retired",
            }),
        }
    }
}

/// A key: its id, its state and its secret material.
pub struct Key {
    id: KeyId,
    state: KeyState,
    material: SecretBytes,
}

impl Key {
    /// A key from its parts.
    pub fn new(id: KeyId, state: KeyState, material: SecretBytes) -> Self {
        Self {
            id,
            state,
            material,
        }
    }

    /// A new key of `len` random bytes.
    ///
    /// # Errors
    /// [`RandomError`] when the random source fails.
    pub fn generate(
        id: KeyId,
        state: KeyState,
        len: usize,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<Self, RandomError> {
        let mut material = SecretBytes::zeroed(len);
        rng.fill(material.expose_secret_mut())?;
        Ok(Self::new(id, state, material))
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key's state.
    pub fn state(&self) -> KeyState {
        self.state
    }

    /// The key material.
    pub fn material(&self) -> &SecretBytes {
        &self.material
    }

    /// The key in the text form `id:state:base64`, as [`Keyring::parse`] reads it. This exposes
    /// the secret: it is what a key generator prints for an operator to store.
    pub fn expose_spec(&self) -> Zeroizing<String> {
        let b64 = Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(self.material.expose_secret()),
        );
        Zeroizing::new(format!("{}:{}:{}", self.id, self.state, b64.as_str()))
    }

    /// An explicit copy of the key, material included.
    pub fn duplicate(&self) -> Self {
        Self::new(self.id.clone(), self.state, self.material.duplicate())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("material", &"***")
            .finish()
    }
}

/// A set of keys with at most one [`KeyState::Active`] key.
///
/// ```
/// use palisade_core::keyring::{KeyId, KeyState, Keyring};
///
/// let ring = Keyring::parse(
///     "2026q4:active:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=,\
///      2026q3:decrypt-only:ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=",
/// )?;
/// assert_eq!(ring.active()?.id().as_str(), "2026q4");
/// let old = ring.for_decrypt(&KeyId::new("2026q3")?)?;
/// assert_eq!(old.state(), KeyState::DecryptOnly);
/// assert_eq!(format!("{old:?}"), r#"Key { id: KeyId(2026q3), state: DecryptOnly, material: "***" }"#);
/// # Ok::<(), palisade_core::keyring::KeyringError>(())
/// ```
#[derive(Debug, Default)]
pub struct Keyring {
    // Keyrings hold a handful of keys: a vector scanned in order beats a hash map.
    keys: Vec<Key>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A keyring holding one active key.
    pub fn single(id: KeyId, material: SecretBytes) -> Self {
        Self {
            keys: vec![Key::new(id, KeyState::Active, material)],
        }
    }

    /// Adds a key.
    ///
    /// # Errors
    /// [`KeyringError::DuplicateKeyId`] when the id is taken; [`KeyringError::SeveralActive`]
    /// when `key` is active and another key already is (use [`Keyring::set_state`] to rotate).
    pub fn insert(&mut self, key: Key) -> Result<(), KeyringError> {
        if self.get(key.id()).is_some() {
            return Err(KeyringError::DuplicateKeyId { id: key.id });
        }
        if key.state == KeyState::Active && self.keys.iter().any(|k| k.state == KeyState::Active) {
            return Err(KeyringError::SeveralActive);
        }
        self.keys.push(key);
        Ok(())
    }

    /// Changes the state of key `id`. Making a key active demotes the previous active key to
    /// [`KeyState::DecryptOnly`], so there is never more than one.
    ///
    /// # Errors
    /// [`KeyringError::UnknownKey`] when no key has that id.
    pub fn set_state(&mut self, id: &KeyId, state: KeyState) -> Result<(), KeyringError> {
        if self.get(id).is_none() {
            return Err(KeyringError::UnknownKey { id: id.clone() });
        }
        for key in &mut self.keys {
            if key.id == *id {
                key.state = state;
            } else if state == KeyState::Active && key.state == KeyState::Active {
                key.state = KeyState::DecryptOnly;
            }
        }
        Ok(())
    }

    /// The key for new work.
    ///
    /// # Errors
    /// [`KeyringError::NoActiveKey`] when no key is active.
    pub fn active(&self) -> Result<&Key, KeyringError> {
        self.keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .ok_or(KeyringError::NoActiveKey)
    }

    /// The key with id `id`, whatever its state.
    pub fn get(&self, id: &KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == *id)
    }

    /// The key with id `id`, when it may read old work.
    ///
    /// # Errors
    /// [`KeyringError::UnknownKey`] or [`KeyringError::KeyRetired`].
    pub fn for_decrypt(&self, id: &KeyId) -> Result<&Key, KeyringError> {
        match self.get(id) {
            None => Err(KeyringError::UnknownKey { id: id.clone() }),
            Some(k) if k.state == KeyState::Retired => {
                Err(KeyringError::KeyRetired { id: id.clone() })
            }
            Some(k) => Ok(k),
        }
    }

    /// [`Keyring::for_decrypt`] by the id's bytes, as read from a header; no allocation on the
    /// success path.
    ///
    /// # Errors
    /// As [`Keyring::for_decrypt`]; [`KeyringError::InvalidKeyId`] for bytes that are no key id.
    pub fn for_decrypt_bytes(&self, id: &[u8]) -> Result<&Key, KeyringError> {
        match self.keys.iter().find(|k| k.id.as_bytes() == id) {
            Some(k) if k.state != KeyState::Retired => Ok(k),
            Some(k) => Err(KeyringError::KeyRetired { id: k.id.clone() }),
            None => Err(KeyringError::UnknownKey {
                id: KeyId::from_bytes(id)?,
            }),
        }
    }

    /// Every key, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    /// Checks that every key is `len` bytes long, for components with a fixed key size.
    ///
    /// # Errors
    /// [`KeyringError::WrongLength`] naming the first key of another length.
    pub fn require_len(&self, len: usize) -> Result<(), KeyringError> {
        match self.keys.iter().find(|k| k.material.len() != len) {
            Some(k) => Err(KeyringError::WrongLength {
                id: k.id.clone(),
                actual: k.material.len(),
                expected: len,
            }),
            None => Ok(()),
        }
    }

    /// Parses the text form (see the [module documentation](self)). The result has exactly one
    /// active key.
    ///
    /// # Errors
    /// [`KeyringError::Malformed`] naming the 1-based entry, [`KeyringError::InvalidKeyId`],
    /// [`KeyringError::DuplicateKeyId`], [`KeyringError::SeveralActive`],
    /// [`KeyringError::NoActiveKey`]. No message contains key material.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut ring = Self::new();
        let entries = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'));
        for (i, entry) in entries.enumerate() {
            let index = i.saturating_add(1);
            let malformed = |reason| KeyringError::Malformed {
                entry: index,
                reason,
            };
            let mut parts = entry.splitn(3, ':');
            let (Some(id), Some(state), Some(b64)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed("expected id:state:base64"));
            };
            let id = KeyId::new(id.trim())?;
            let state = state
                .parse::<KeyState>()
                .map_err(|_| malformed("state must be active, decrypt-only or retired"))?;
            let material = decode_base64(b64.trim())
                .ok_or_else(|| malformed("key material is not valid base64"))?;
            if material.is_empty() {
                return Err(malformed("key material is empty"));
            }
            ring.insert(Key::new(id, state, material))?;
        }
        ring.active()?;
        Ok(ring)
    }

    /// Parses the environment variable `name`.
    ///
    /// # Errors
    /// [`KeyringError::MissingEnv`] when it is unset, empty or not Unicode; then as
    /// [`Keyring::parse`].
    pub fn from_env(name: &str) -> Result<Self, KeyringError> {
        let value = Zeroizing::new(std::env::var(name).unwrap_or_default());
        if value.trim().is_empty() {
            return Err(KeyringError::MissingEnv { name: name.into() });
        }
        Self::parse(&value)
    }

    /// Parses the file at `path`.
    ///
    /// # Errors
    /// [`KeyringError::Io`] when it cannot be read; then as [`Keyring::parse`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyringError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| KeyringError::Io {
            path: path.to_path_buf(),
            source: Arc::new(e),
        })?;
        Self::parse(&Zeroizing::new(text))
    }
}

/// Decodes standard or URL-safe base64, padded or not.
fn decode_base64(s: &str) -> Option<SecretBytes> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = s.trim_end_matches('=');
    let decoded = if trimmed.contains(['-', '_']) {
        URL_SAFE_NO_PAD.decode(trimmed)
    } else {
        STANDARD_NO_PAD.decode(trimmed)
    };
    decoded.ok().map(SecretBytes::new)
}

/// Why a keyring could not be loaded, changed or used. No variant carries key material.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The environment variable that should hold the keys is unset or empty.
    #[error("environment variable {name} holds no keys")]
    MissingEnv {
        /// The variable's name.
        name: String,
    },
    /// The key file could not be read.
    #[error("cannot read key file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An entry of the text form is malformed.
    #[error("key entry {entry} is malformed: {reason}")]
    Malformed {
        /// The 1-based entry number.
        entry: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key id breaks the rules of [`KeyId`].
    #[error("invalid key id: {reason}")]
    InvalidKeyId {
        /// What is wrong.
        reason: &'static str,
    },
    /// Two keys share an id.
    #[error("duplicate key id {id}")]
    DuplicateKeyId {
        /// The id.
        id: KeyId,
    },
    /// More than one key is active.
    #[error("more than one key is active")]
    SeveralActive,
    /// No key is active, so there is nothing to encrypt or sign with.
    #[error("no key is active")]
    NoActiveKey,
    /// No key has this id.
    #[error("unknown key id {id}")]
    UnknownKey {
        /// The id.
        id: KeyId,
    },
    /// The key exists but is retired.
    #[error("key {id} is retired")]
    KeyRetired {
        /// The id.
        id: KeyId,
    },
    /// A key has the wrong length for the component using it.
    #[error("key {id} is {actual} bytes long, expected {expected}")]
    WrongLength {
        /// The id.
        id: KeyId,
        /// Its length.
        actual: usize,
        /// The required length.
        expected: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SystemRandom;

    const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    const K2: &str = "ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8";

    #[test]
    fn key_id_rules() {
        assert!(KeyId::new("2026-q4_v1.a").is_ok());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new(&"a".repeat(33)).is_err());
        assert!(KeyId::new(&"a".repeat(32)).is_ok());
        assert!(KeyId::new("a:b").is_err());
        assert!(KeyId::new("é").is_err());
        assert!(KeyId::from_bytes(&[0xff]).is_err());
    }

    #[test]
    fn parse_reads_entries_comments_and_both_alphabets() {
        let text =
            format!("# keys\n\nnew:active:{K1}\n old : decrypt-only : {K2} ,gone:retired:{K2}\n");
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.keys().count(), 3);
        assert_eq!(ring.active().unwrap().id().as_str(), "new");
        assert_eq!(ring.active().unwrap().material().len(), 32);
        ring.require_len(32).unwrap();
        let gone = KeyId::new("gone").unwrap();
        assert!(matches!(
            ring.for_decrypt(&gone),
            Err(KeyringError::KeyRetired { .. })
        ));
        assert!(matches!(
            ring.for_decrypt_bytes(b"gone"),
            Err(KeyringError::KeyRetired { .. })
        ));
        assert!(matches!(
            ring.for_decrypt_bytes(b"nope"),
            Err(KeyringError::UnknownKey { .. })
        ));
        assert!(ring.for_decrypt_bytes(b"old").is_ok());
        let url_safe = Keyring::parse("a:active:-_-_").unwrap();
        assert_eq!(
            url_safe.active().unwrap().material().expose_secret(),
            &[0xfb, 0xff, 0xbf]
        );
    }

    #[test]
    fn parse_errors_name_the_entry_and_hide_material() {
        let cases = [
            (format!("a:active:{K1},b:{K2}"), "entry 2"),
            ("a:active:!!!notbase64".to_string(), "base64"),
            ("a:sleeping:AAAA".to_string(), "state"),
            ("a:active:".to_string(), "empty"),
            (format!("a:decrypt-only:{K1}"), "no key is active"),
            (format!("a:active:{K1},b:active:{K2}"), "more than one"),
            (format!("a:active:{K1},a:retired:{K2}"), "duplicate"),
        ];
        for (text, expected) in cases {
            let err = Keyring::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
            assert!(!err.contains(K1) && !err.contains(K2));
        }
    }

    #[test]
    fn missing_env_is_an_error() {
        let err = Keyring::from_env("PALISADE_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(matches!(err, KeyringError::MissingEnv { .. }));
    }

    #[test]
    fn from_file_reads_and_reports_io() {
        let dir = std::env::temp_dir().join(format!("palisade-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, format!("k:active:{K1}\n")).unwrap();
        assert_eq!(
            Keyring::from_file(&path)
                .unwrap()
                .active()
                .unwrap()
                .id()
                .as_str(),
            "k"
        );
        let err = Keyring::from_file(dir.join("absent")).unwrap_err();
        assert!(matches!(err, KeyringError::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_one_active_key() {
        let rng = SystemRandom;
        let a = KeyId::new("a").unwrap();
        let b = KeyId::new("b").unwrap();
        let mut ring = Keyring::new();
        ring.insert(Key::generate(a.clone(), KeyState::Active, 32, &rng).unwrap())
            .unwrap();
        // Phase 1: the new key is rolled out decrypt-only.
        ring.insert(Key::generate(b.clone(), KeyState::DecryptOnly, 32, &rng).unwrap())
            .unwrap();
        assert!(
            ring.insert(
                Key::generate(KeyId::new("c").unwrap(), KeyState::Active, 32, &rng).unwrap()
            )
            .is_err()
        );
        // Phase 2: it becomes active, the old one decrypt-only.
        ring.set_state(&b, KeyState::Active).unwrap();
        assert_eq!(ring.active().unwrap().id(), &b);
        assert_eq!(ring.get(&a).unwrap().state(), KeyState::DecryptOnly);
        // Phase 3: the old one retires.
        ring.set_state(&a, KeyState::Retired).unwrap();
        assert!(ring.for_decrypt(&a).is_err());
        assert!(
            ring.set_state(&KeyId::new("zz").unwrap(), KeyState::Retired)
                .is_err()
        );
        assert_eq!(
            ring.keys()
                .filter(|k| k.state() == KeyState::Active)
                .count(),
            1
        );
    }

    #[test]
    fn spec_round_trips() {
        let key = Key::generate(
            KeyId::new("gen").unwrap(),
            KeyState::Active,
            32,
            &SystemRandom,
        )
        .unwrap();
        let ring = Keyring::parse(&key.expose_spec()).unwrap();
        assert_eq!(ring.active().unwrap().material(), key.material());
        assert_eq!(
            format!("{key:?}"),
            r#"Key { id: KeyId(gen), state: Active, material: "***" }"#
        );
    }
}
