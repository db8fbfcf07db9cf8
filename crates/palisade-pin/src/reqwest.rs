//! `reqwest` integration (feature `reqwest`): a [`reqwest::ClientBuilder`] whose TLS is rustls
//! with the [`PinningVerifier`], and [`pin_error`] to read the typed [`PinError`] back out of
//! a failed request.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = palisade_pin::PinFile::from_path("pins.toml")?.into_policy()?;
//! let client = palisade_pin::reqwest::client_builder(policy)?.build()?;
//! let response = client.get("https://api.example.com/").send().await;
//! if let Err(e) = &response {
//!     if let Some(pin) = palisade_pin::reqwest::pin_error(e) {
//!         eprintln!("refused by pinning: {pin}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # hyper with hyper-rustls
//! The same verifier goes into any rustls-based connector through [`client_config`]:
//!
//! ```ignore
//! let config = palisade_pin::client_config(Arc::new(palisade_pin::PinningVerifier::with_root_store(
//!     rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
//!     policy,
//! )))?;
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_tls_config(config)
//!     .https_only()
//!     .enable_http1()
//!     .build();
//! let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build::<_, http_body_util::Empty<bytes::Bytes>>(https);
//! ```
//! With tokio-rustls directly: `tokio_rustls::TlsConnector::from(Arc::new(config))`.
//!
//! # Security
//! Build one client per policy and keep it: every client has its own TLS session store, so a
//! resumed session never skips a stricter policy (see [`crate::verifier`]).

use std::sync::Arc;

use rustls::RootCertStore;

use crate::error::PinError;
use crate::policy::PinPolicy;
use crate::verifier::{PinningVerifier, client_config, handshake_pin_error};

/// A client builder that validates servers against the webpki (Mozilla) roots, then `policy`.
///
/// # Errors
/// What rustls's config builder returns (not expected with the ring provider).
pub fn client_builder(
    policy: impl Into<Arc<PinPolicy>>,
) -> Result<reqwest::ClientBuilder, rustls::Error> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    client_builder_with_verifier(Arc::new(PinningVerifier::with_root_store(roots, policy)))
}

/// A client builder with `verifier` as its only server verifier; for a private CA, give it
/// `PinningVerifier::new(&roots, policy)?`.
///
/// # Errors
/// What rustls's config builder returns (not expected with the ring provider).
pub fn client_builder_with_verifier(
    verifier: Arc<PinningVerifier>,
) -> Result<reqwest::ClientBuilder, rustls::Error> {
    let config = client_config(verifier)?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true))
}

/// The [`PinError`] that made a request fail, if pinning refused it (not WebPKI validation, not
/// the network).
pub fn pin_error(error: &reqwest::Error) -> Option<&PinError> {
    handshake_pin_error(error)
}
