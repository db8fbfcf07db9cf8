#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod mac;
mod otp;
pub mod secret;

pub use crate::error::OtpError;
pub use crate::otp::{
    Code, Digits, Hotp, MatchedCounter, MatchedStep, Period, Rejection, Totp, TotpParams, Window,
};
pub use crate::secret::{Algorithm, OtpSecret, SecretStrength};
