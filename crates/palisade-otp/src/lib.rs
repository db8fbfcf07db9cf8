#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod enroll;
mod error;
mod mac;
mod mfa;
pub mod migration;
mod otp;
#[cfg(feature = "qr")]
pub mod qr;
pub mod recovery;
pub mod secret;
pub mod uri;

pub use crate::error::OtpError;
pub use crate::mfa::Mfa;
pub use crate::otp::{
    Code, Digits, Hotp, MatchedCounter, MatchedStep, Period, Rejection, Totp, TotpParams, Window,
};
pub use crate::secret::{Algorithm, OtpSecret, SecretStrength};
