//! `palisade pin`: the pins of a certificate file or of a live server's chain.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use palisade_pin::{CertificatePins, pins_from_bytes, pins_from_der};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// `palisade pin` arguments.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "connect"])))]
pub(crate) struct Args {
    /// A PEM or DER file holding one certificate or a chain.
    file: Option<PathBuf>,
    /// Connect to HOST:PORT over TLS and pin the chain the server presents.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// The name to send in SNI with --connect (default: HOST).
    #[arg(long)]
    server_name: Option<String>,
}

/// Prints the pins of every certificate.
pub(crate) fn run(args: &Args) -> Result<()> {
    let pins = match (&args.file, &args.connect) {
        (Some(file), _) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            pins_from_bytes(&bytes)?
        }
        (None, Some(addr)) => {
            let chain = fetch_chain(addr, args.server_name.as_deref())?;
            let mut pins = Vec::with_capacity(chain.len());
            for der in &chain {
                pins.extend(pins_from_der(der)?);
            }
            pins
        }
        (None, None) => bail!("give a certificate file or --connect HOST:PORT"),
    };
    print_pins(&pins)
}

fn print_pins(pins: &[CertificatePins]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for (i, p) in pins.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "certificate {i}")?;
        writeln!(out, "  subject:      {}", p.subject())?;
        writeln!(out, "  spki-pin:     {}", p.spki())?;
        writeln!(out, "  fingerprint:  {}", p.certificate())?;
    }
    Ok(())
}

/// Completes a TLS handshake with `addr` and returns the certificates the server presented.
///
/// The chain is recorded, not validated: this is the equivalent of `openssl s_client
/// -showcerts`, for an operator who wants to see what a server presents before pinning it.
fn fetch_chain(addr: &str, server_name: Option<&str>) -> Result<Vec<CertificateDer<'static>>> {
    let host = match server_name {
        Some(name) => name.to_owned(),
        None => addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(['[', ']'])
            .to_owned(),
    };
    let name = ServerName::try_from(host.clone())
        .with_context(|| format!("invalid server name {host}"))?;
    let recorder = Arc::new(Recorder::default());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut sock = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.set_write_timeout(Some(Duration::from_secs(10)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .with_context(|| format!("TLS handshake with {addr} failed"))?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let _ = sock.read(&mut [0u8; 0]);
    let chain = recorder
        .chain
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if chain.is_empty() {
        bail!("{addr} presented no certificate");
    }
    Ok(chain)
}

/// A verifier that accepts any chain and keeps a copy: used only to read a server's chain.
#[derive(Debug, Default)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self.chain.lock().unwrap_or_else(PoisonError::into_inner);
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
