//! The rustls integration (feature `rustls`): [`PinningVerifier`] and [`client_config`].
//!
//! [`PinningVerifier`] is a [`ServerCertVerifier`] that does what rustls's
//! `WebPkiServerVerifier` does (the chain must reach a trusted root through rustls-webpki with
//! the server-auth key usage, every certificate must be within its validity dates, the
//! end-entity certificate must be valid for the server name) and, on top, checks pins.
//!
//! # How pins are checked
//! Pins are matched against **verified paths only**. rustls-webpki's
//! [`EndEntityCert::verify_for_usage`] builds paths from the end-entity certificate to a trust
//! anchor and calls our `verify_path` callback with each path once its signatures, validity,
//! name constraints and key usage are verified. The callback accepts the path if it holds a
//! pinned key (or certificate); otherwise webpki keeps building other paths. So:
//! - the certificates a server appends to its `Certificate` message but that are not on a
//!   verified path are never looked at, which defeats OkHttp's CVE-2016-2402 (a man in the
//!   middle with a valid chain from another CA appends the public pinned certificate);
//! - a cross-signed hierarchy with several valid paths passes if *any* verified path holds a
//!   pin, whatever path webpki happened to try first.
//!
//! Validation is not done twice: one path search both validates and checks pins, and the pin
//! check only hashes the public keys of the candidate paths. On a validation failure the error
//! is the one rustls's own verifier functions return
//! ([`rustls::client::verify_server_cert_signed_by_trust_anchor`],
//! [`rustls::client::verify_server_name`]), so callers see the usual `CertificateError`s. A pin
//! failure is `Error::InvalidCertificate(CertificateError::Other(..))` holding a [`PinError`]
//! (downcast the `OtherError`'s `Arc<dyn Error>` to read it).
//!
//! TLS handshake signatures are verified with the *ring* provider's algorithms, like the
//! default verifier. Certificate revocation lists are not supported by this verifier.
//!
//! # Session resumption skips the verifier
//! A resumed TLS session (a TLS 1.3 PSK or a TLS 1.2 ticket or session id) does not present
//! certificates, so no verifier runs: the pins were checked on the full handshake that created
//! the session. Never share a [`rustls::client::Resumption`] store between configs with
//! different pin sets or roots (a session from a laxer config would be accepted by a stricter
//! one), and build a new `ClientConfig`, with a new store, when the policy changes.
//! [`client_config`] gives every config its own store.
//!
//! # Errors and panics
//! Construction fails with [`PinError::UnparseableCertificate`] for a root that is not a usable
//! trust anchor. Nothing here panics on any input.

use core::cell::RefCell;
use core::fmt;
use std::sync::Arc;

use palisade_core::time::UnixTime as PalisadeTime;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore, SignatureScheme,
};
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};

use crate::error::PinError;
use crate::pin::sha256;
use crate::policy::{CertDigests, PinPolicy};

/// A rustls server-certificate verifier that validates the chain, then checks pins on the
/// verified path (see the [module docs](self)).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use palisade_pin::{Pin, PinPolicy, PinSet, PinningVerifier, client_config};
/// use rustls::pki_types::CertificateDer;
///
/// let root = CertificateDer::from(std::fs::read("tests/data/fixed.der")?);
/// let policy = PinPolicy::builder()
///     .pin_set(
///         PinSet::builder("pin-fixture.palisade.test".parse()?)
///             .pin("sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=".parse()?)
///             .pin(Pin::spki_sha256([0; 32])) // the backup key, kept offline
///             .build()?,
///     )
///     .build()?;
/// let verifier = Arc::new(PinningVerifier::new(&[root], policy)?);
/// let config = client_config(verifier)?;
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
pub struct PinningVerifier {
    roots: RootCertStore,
    /// Per trust anchor (same index as `roots.roots`): its SPKI digest and, when it was given as
    /// a certificate, the digest of that certificate.
    anchors: Vec<CertDigests>,
    policy: Arc<PinPolicy>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinningVerifier {
    /// A verifier trusting the root certificates `roots`, enforcing `policy`.
    ///
    /// Whole-certificate pins match a root only when it is given here as a certificate.
    ///
    /// # Errors
    /// [`PinError::UnparseableCertificate`] when a root is not a usable trust anchor;
    /// [`PinError::NoCertificate`] when `roots` is empty.
    pub fn new(
        roots: &[CertificateDer<'_>],
        policy: impl Into<Arc<PinPolicy>>,
    ) -> Result<Self, PinError> {
        if roots.is_empty() {
            return Err(PinError::NoCertificate);
        }
        let mut store = RootCertStore::empty();
        let mut anchors = Vec::with_capacity(roots.len());
        for (index, der) in roots.iter().enumerate() {
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| PinError::UnparseableCertificate {
                    index,
                    reason: format!("not a usable trust anchor: {e}"),
                })?
                .to_owned();
            anchors.push(CertDigests {
                spki: sha256(webpki::spki_for_anchor(&anchor).as_ref()),
                certificate: Some(sha256(der.as_ref())),
            });
            store.roots.push(anchor);
        }
        Ok(Self::from_parts(store, anchors, policy.into()))
    }

    /// A verifier trusting the anchors of `roots` (for example `webpki-roots`), enforcing
    /// `policy`. Roots known only as anchors match SPKI pins, not certificate fingerprints.
    pub fn with_root_store(roots: RootCertStore, policy: impl Into<Arc<PinPolicy>>) -> Self {
        let anchors = roots
            .roots
            .iter()
            .map(|anchor| CertDigests {
                spki: sha256(webpki::spki_for_anchor(anchor).as_ref()),
                certificate: None,
            })
            .collect();
        Self::from_parts(roots, anchors, policy.into())
    }

    fn from_parts(roots: RootCertStore, anchors: Vec<CertDigests>, policy: Arc<PinPolicy>) -> Self {
        Self {
            roots,
            anchors,
            policy,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    /// The policy enforced.
    pub fn policy(&self) -> &PinPolicy {
        &self.policy
    }

    /// The digests of one certificate of a verified path.
    fn digests(cert: &webpki::Cert<'_>, with_certificate: bool) -> CertDigests {
        CertDigests {
            spki: sha256(cert.subject_public_key_info().as_ref()),
            certificate: with_certificate.then(|| sha256(cert.der().as_ref())),
        }
    }

    fn anchor_digests(&self, path: &VerifiedPath<'_>) -> CertDigests {
        let anchor = path.anchor();
        self.roots
            .roots
            .iter()
            .position(|a| core::ptr::eq(a, anchor))
            .and_then(|i| self.anchors.get(i).copied())
            .unwrap_or_else(|| CertDigests {
                spki: sha256(webpki::spki_for_anchor(anchor).as_ref()),
                certificate: None,
            })
    }

    /// rustls's own error for a chain that did not validate.
    fn validation_error(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Error {
        match ParsedCertificate::try_from(end_entity) {
            Err(e) => e,
            Ok(parsed) => match verify_server_cert_signed_by_trust_anchor(
                &parsed,
                &self.roots,
                intermediates,
                now,
                self.algorithms.all,
            ) {
                Err(e) => e,
                Ok(()) => CertificateError::UnknownIssuer.into(),
            },
        }
    }
}

impl fmt::Debug for PinningVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinningVerifier")
            .field("roots", &self.roots.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let host = match server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => return Err(CertificateError::NotValidForName.into()),
        };
        let evaluation = self
            .policy
            .begin(&host, PalisadeTime::from_secs(now.as_secs()))
            .map_err(pin_error)?;
        let Ok(cert) = EndEntityCert::try_from(end_entity) else {
            return Err(self.validation_error(end_entity, intermediates, now));
        };

        let with_certificates = evaluation.needs_certificate_digests();
        let needs_paths = evaluation.needs_paths();
        let evaluation = RefCell::new(evaluation);
        let check_path = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let mut certs = Vec::with_capacity(4);
            certs.push(Self::digests(path.end_entity(), with_certificates));
            certs.extend(
                path.intermediate_certificates()
                    .map(|c| Self::digests(c, with_certificates)),
            );
            certs.push(self.anchor_digests(path));
            if evaluation.borrow_mut().path(&certs) {
                Ok(())
            } else {
                // Any error: webpki keeps it only as the default if no other path succeeds.
                Err(webpki::Error::UnknownIssuer)
            }
        };
        let callback: Option<&PathCallback<'_>> =
            if needs_paths { Some(&check_path) } else { None };

        let built = cert.verify_for_usage(
            self.algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            KeyUsage::server_auth(),
            None,
            callback,
        );
        let mut evaluation = evaluation.into_inner();
        match built {
            Ok(_) => evaluation.validated_without_paths(),
            // No path validated at all: an ordinary validation failure.
            Err(_) if evaluation.rejected_paths() == 0 => {
                return Err(self.validation_error(end_entity, intermediates, now));
            }
            // Every validated path was rejected by the pins or the deny list.
            Err(_) => {}
        }
        if cert.verify_is_valid_for_subject_name(server_name).is_err() {
            return Err(match ParsedCertificate::try_from(end_entity) {
                Ok(parsed) => verify_server_name(&parsed, server_name)
                    .err()
                    .unwrap_or_else(|| CertificateError::NotValidForName.into()),
                Err(e) => e,
            });
        }
        evaluation.finish().map_err(pin_error)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The `verify_path` callback type of rustls-webpki.
type PathCallback<'a> = dyn Fn(&VerifiedPath<'_>) -> Result<(), webpki::Error> + 'a;

fn pin_error(error: PinError) -> Error {
    CertificateError::Other(OtherError(Arc::new(error))).into()
}

/// The [`PinError`] behind a failed handshake, if pinning refused it: looks through
/// `io::Error`s (what blocking and async TLS streams return) to the rustls error they wrap.
pub fn handshake_pin_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a PinError> {
    let mut source = Some(error);
    while let Some(e) = source {
        // `io::Error::source` skips the error it wraps; step into it instead.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            source = io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static));
            continue;
        }
        if let Some(Error::InvalidCertificate(CertificateError::Other(other))) =
            e.downcast_ref::<Error>()
        {
            return other.0.downcast_ref::<PinError>();
        }
        if let Some(pin) = e.downcast_ref::<PinError>() {
            return Some(pin);
        }
        source = e.source();
    }
    None
}

/// A [`ClientConfig`] (ring provider, safe default protocol versions, no client certificate)
/// that verifies servers with `verifier`, and has a session store of its own.
///
/// # Errors
/// What rustls's config builder returns (not expected with the ring provider).
pub fn client_config(verifier: Arc<PinningVerifier>) -> Result<ClientConfig, Error> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
}
