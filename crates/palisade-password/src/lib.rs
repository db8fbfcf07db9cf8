#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
pub mod hasher;
mod normalize;
pub mod params;
pub mod phc;
pub mod policy;

pub use error::Error;
pub use hasher::{Hasher, Verification, Verified};
pub use normalize::Normalization;
pub use params::{CostLimits, Params};
pub use phc::{Algorithm, PasswordHash};
pub use policy::{Policy, Verdict, Violation};
/// Re-exported so callers can hold passwords in a buffer that is wiped on drop.
pub use zeroize::Zeroizing;

/// The longest password, in bytes after normalisation, that [`Hasher`] accepts.
///
/// Policy limits are in characters and lie well below this; the ceiling only stops a request from
/// making the server hash megabytes. 4096 bytes holds 1024 characters of any script.
pub const MAX_PASSWORD_BYTES: usize = 4096;
