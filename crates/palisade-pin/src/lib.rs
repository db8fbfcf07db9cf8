#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
pub mod file;
pub mod host;
pub mod pin;
pub mod policy;
pub mod report;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "rustls")]
pub mod verifier;

pub use error::PinError;
pub use file::{FINGERPRINTS_ENV, PinFile};
pub use host::{HostPattern, canonical_host};
pub use pin::{CertificatePins, Pin, PinKind, pins_from_bytes, pins_from_der, pins_from_pem};
pub use policy::{
    DEFAULT_EXPIRY_WARNING, PinPolicy, PinPolicyBuilder, PinSet, PinSetBuilder, PinStatus,
    PinVerified,
};
#[cfg(feature = "report")]
pub use report::{HttpReporter, ReporterStats};
pub use report::{Violation, ViolationReporter};
#[cfg(feature = "rustls")]
pub use verifier::{PinningVerifier, client_config, handshake_pin_error};
