//! [`Encrypted<T>`]: the stored representation of an encrypted value, for serde.
//!
//! Holds the text form (`pal1:...`) and remembers the plaintext type. It serializes as that
//! string, and deserializing checks that the string is a well-formed ciphertext header, so a
//! plaintext that slipped into the column is caught at load time. Opening it needs the cipher
//! and the context, as everywhere in this crate.
//!
//! ```
//! use palisade_core::keyring::Keyring;
//! use palisade_field::{Context, Encrypted, FieldCipher};
//!
//! let ring = Keyring::parse("k1:active:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")?;
//! let cipher = FieldCipher::new(&ring)?;
//! let ctx = Context::new("users", "phone", 7);
//! let phone: Encrypted<String> = Encrypted::seal(&cipher, &"+15551234567".to_string(), &ctx)?;
//! assert!(phone.as_str().starts_with("pal1:"));
//! assert_eq!(phone.open(&cipher, &ctx)?, "+15551234567");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//! As [`FieldCipher::encrypt`] and [`FieldCipher::decrypt`]; [`FieldError::Malformed`] for a
//! stored string that is no ciphertext.
//!
//! # Panics
//! None.

use core::fmt;
use core::marker::PhantomData;
use std::borrow::Cow;

use palisade_core::secret::SecretBytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cipher::FieldCipher;
use crate::context::Context;
use crate::envelope::{self, Header};
use crate::error::FieldError;
use crate::plaintext::Plaintext;

/// A plaintext type that [`Encrypted`] can hold.
pub trait FieldValue: Sized {
    /// The bytes to seal.
    fn to_plaintext(&self) -> Cow<'_, [u8]>;
    /// The value back from its bytes.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when the bytes are not a valid value of this type.
    fn from_plaintext(bytes: Plaintext) -> Result<Self, FieldError>;
}

impl FieldValue for Vec<u8> {
    fn to_plaintext(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
    fn from_plaintext(bytes: Plaintext) -> Result<Self, FieldError> {
        Ok(bytes.into_vec())
    }
}

impl FieldValue for String {
    fn to_plaintext(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
    fn from_plaintext(bytes: Plaintext) -> Result<Self, FieldError> {
        let mut text = bytes
            .into_string()
            .ok_or_else(|| FieldError::malformed("plaintext is not utf-8"))?;
        Ok(core::mem::take(&mut *text))
    }
}

impl FieldValue for SecretBytes {
    fn to_plaintext(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.expose_secret())
    }
    fn from_plaintext(bytes: Plaintext) -> Result<Self, FieldError> {
        Ok(SecretBytes::new(bytes.into_vec()))
    }
}

/// An encrypted `T` in its stored text form. See the [module documentation](self).
pub struct Encrypted<T> {
    text: String,
    _value: PhantomData<fn() -> T>,
}

impl<T: FieldValue> Encrypted<T> {
    /// Encrypts `value` for `ctx`.
    ///
    /// # Errors
    /// As [`FieldCipher::encrypt`].
    pub fn seal(cipher: &FieldCipher, value: &T, ctx: &Context<'_>) -> Result<Self, FieldError> {
        Ok(Self {
            text: cipher.encrypt_text(&value.to_plaintext(), ctx)?,
            _value: PhantomData,
        })
    }

    /// Decrypts for `ctx`.
    ///
    /// # Errors
    /// As [`FieldCipher::decrypt`] and [`FieldValue::from_plaintext`].
    pub fn open(&self, cipher: &FieldCipher, ctx: &Context<'_>) -> Result<T, FieldError> {
        T::from_plaintext(cipher.decrypt(&self.text, ctx)?)
    }

    /// Whether it should be rewrapped (see [`FieldCipher::needs_rotation`]).
    ///
    /// # Errors
    /// As [`FieldCipher::needs_rotation`].
    pub fn needs_rotation(&self, cipher: &FieldCipher) -> Result<bool, FieldError> {
        cipher.needs_rotation(&self.text)
    }

    /// Re-encrypts under the active key, keeping the context.
    ///
    /// # Errors
    /// As [`FieldCipher::rewrap`].
    pub fn rewrap(&self, cipher: &FieldCipher, ctx: &Context<'_>) -> Result<Self, FieldError> {
        Ok(Self {
            text: cipher.rewrap_text(&self.text, ctx)?,
            _value: PhantomData,
        })
    }
}

impl<T> Encrypted<T> {
    /// Wraps a stored text-form value, checking its header.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when it is not a text-form ciphertext.
    pub fn from_stored(text: String) -> Result<Self, FieldError> {
        let raw = envelope::decode_text(&text)?;
        Header::parse(&raw)?;
        Ok(Self {
            text,
            _value: PhantomData,
        })
    }

    /// The stored text form.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The stored text form, owned.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl<T> Clone for Encrypted<T> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> PartialEq for Encrypted<T> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<T> Eq for Encrypted<T> {}

impl<T> fmt::Debug for Encrypted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Encrypted").field(&self.text).finish()
    }
}

impl<T> Serialize for Encrypted<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, T> Deserialize<'de> for Encrypted<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_stored(text).map_err(serde::de::Error::custom)
    }
}
