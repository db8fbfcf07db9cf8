#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod blind;
pub mod cipher;
pub mod context;
mod counter;
pub mod encrypted;
pub mod envelope;
mod error;
pub mod fernet;
pub mod migrate;
mod plaintext;

pub use cipher::{
    AES_GCM_RANDOM_NONCE_LIMIT, Backend, FieldCipher, FieldCipherBuilder, KEY_LEN, KeyUsage,
    generate_key,
};
pub use context::{Context, RowId};
pub use encrypted::{Encrypted, FieldValue};
pub use envelope::{Algorithm, is_encrypted};
pub use error::FieldError;
pub use plaintext::Plaintext;
