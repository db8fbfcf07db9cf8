//! `palisade pin`: the pins of a certificate file or of a live server's chain, as text or as a
//! ready configuration (TOML pin file, `CERT_PINNING_FINGERPRINTS`, JSON); `palisade pin check`
//! connects and says whether the live chain passes a pin file.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use palisade_core::time::UnixTime;
use palisade_pin::{
    CertificatePins, FINGERPRINTS_ENV, HostPattern, PinFile, PinSet, PinningVerifier,
    pins_from_bytes, pins_from_der,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime as TlsTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// `palisade pin` arguments.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["file", "connect"])),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// A PEM or DER file holding one certificate or a chain.
    file: Option<PathBuf>,
    /// Connect to HOST:PORT over TLS and pin the chain the server presents.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// The name to send in SNI with --connect (default: HOST).
    #[arg(long)]
    server_name: Option<String>,
    /// What to print: the pins (`text`), or a configuration to paste (`toml`, `env`, `json`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The host pattern the configuration pins (default: the server name).
    #[arg(long)]
    pattern: Option<String>,
    /// Days until the printed pin set expires (and enforcement stops).
    #[arg(long, default_value_t = 90)]
    expires_days: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Toml,
    Env,
    Json,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Connect to HOST:PORT and say whether the live chain passes WebPKI validation and the pins.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The server, HOST:PORT.
    #[arg(value_name = "HOST:PORT")]
    addr: String,
    /// The pin file (default: the `CERT_PINNING_FINGERPRINTS` variable, pinning HOST).
    #[arg(long)]
    config: Option<PathBuf>,
    /// PEM roots to validate against (default: the webpki / Mozilla roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The name to send in SNI and check the certificate for (default: HOST).
    #[arg(long)]
    server_name: Option<String>,
}

/// Prints the pins of every certificate, or a configuration pinning them.
pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    if let Some(Command::Check(check)) = &args.command {
        return run_check(check);
    }
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
    if args.format == Format::Text {
        print_pins(&pins)?;
        return Ok(ExitCode::SUCCESS);
    }
    let pattern = match (&args.pattern, &args.server_name, &args.connect) {
        (Some(p), _, _) | (None, Some(p), _) => p.clone(),
        (None, None, Some(addr)) => host_of(addr).to_owned(),
        (None, None, None) => bail!("give --pattern for a configuration from a file"),
    };
    let expires = UnixTime::from(SystemTime::now()).saturating_add(Duration::from_secs(
        args.expires_days.saturating_mul(86_400),
    ));
    print_config(args.format, &pattern, &pins, expires)?;
    warn_on_config(&pins, expires);
    Ok(ExitCode::SUCCESS)
}

/// The backup-pin reminder and a warning for each certificate that expires before the set.
fn warn_on_config(pins: &[CertificatePins], expires: UnixTime) {
    eprintln!(
        "palisade: add a backup pin before deploying: the SPKI pin of a spare key kept offline \
         (`palisade pin spare.pem`), so a key change does not lock clients out"
    );
    for (i, p) in pins.iter().enumerate() {
        if p.not_after() < expires {
            eprintln!(
                "palisade: warning: certificate {i} ({}) expires {}, before the pin set ({}): \
                 pin its successor's key too, or shorten --expires-days",
                p.subject(),
                date(p.not_after()),
                date(expires),
            );
        }
    }
}

/// `YYYY-MM-DD` (UTC).
fn date(at: UnixTime) -> String {
    let full = palisade_audit::siem::rfc3339(at.as_nanos());
    full.get(..10).unwrap_or(&full).to_owned()
}

fn print_config(
    format: Format,
    pattern: &str,
    pins: &[CertificatePins],
    expires: UnixTime,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Text => print_pins(pins)?,
        Format::Toml => {
            let mut set = PinSet::builder(HostPattern::parse(pattern)?)
                .pins(pins.iter().map(CertificatePins::spki))
                .expires_at(expires);
            if pins.len() < 2 {
                set = set.allow_single_pin();
            }
            let file = PinFile::from_pin_sets(vec![set.build()?]);
            writeln!(
                out,
                "# Pins of the chain served now, leaf first. Add a backup pin (a spare key kept \
                 offline)."
            )?;
            write!(out, "{}", file.to_toml())?;
        }
        Format::Env => {
            let fingerprints: Vec<String> =
                pins.iter().map(|p| p.certificate().to_string()).collect();
            writeln!(out, "{FINGERPRINTS_ENV}={}", fingerprints.join(","))?;
        }
        Format::Json => {
            let certificates: Vec<serde_json::Value> = pins
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "subject": p.subject(),
                        "spki": p.spki().to_string(),
                        "fingerprint": p.certificate().to_string(),
                        "not_after": date(p.not_after()),
                        "expires_before_pin_set": p.not_after() < expires,
                    })
                })
                .collect();
            let value = serde_json::json!({
                "pattern": pattern,
                "pins": pins.iter().map(|p| p.spki().to_string()).collect::<Vec<_>>(),
                "expires": date(expires),
                "certificates": certificates,
                "backup_pin_needed": true,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
    }
    Ok(())
}

/// `palisade pin check`: exit 0 when the live chain passes, 1 when it is refused.
fn run_check(args: &CheckArgs) -> Result<ExitCode> {
    let host = args
        .server_name
        .clone()
        .unwrap_or_else(|| host_of(&args.addr).to_owned());
    let file = match &args.config {
        Some(path) => PinFile::from_path(path)?,
        None => PinFile::from_env(&host)?,
    };
    let policy = file.into_policy()?;
    let verifier = match &args.ca {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let roots =
                <CertificateDer<'static> as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                    &pem,
                )
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("bad PEM in {}", path.display()))?;
            PinningVerifier::new(&roots, policy)?
        }
        None => PinningVerifier::with_root_store(
            rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            policy,
        ),
    };
    let config = palisade_pin::client_config(Arc::new(verifier))?;
    match handshake(&args.addr, &host, config) {
        Ok(()) => {
            println!("ok: {} ({host}) passes validation and pins", args.addr);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let refused = e
                .chain()
                .find_map(|cause| palisade_pin::handshake_pin_error(cause));
            match refused {
                Some(pin) => println!("refused by pinning: {pin}"),
                None => println!("refused: {e:#}"),
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// HOST of HOST:PORT (without IPv6 brackets).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(['[', ']'])
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
        writeln!(out, "  not-after:    {}", date(p.not_after()))?;
    }
    Ok(())
}

/// Completes a TLS handshake with `addr` and returns the certificates the server presented.
///
/// The chain is recorded, not validated: this is the equivalent of `openssl s_client
/// -showcerts`, for an operator who wants to see what a server presents before pinning it.
fn fetch_chain(addr: &str, server_name: Option<&str>) -> Result<Vec<CertificateDer<'static>>> {
    let host = server_name.unwrap_or_else(|| host_of(addr));
    let recorder = Arc::new(Recorder::default());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    handshake(addr, host, config)?;
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

/// One TLS handshake with `addr` as `host`, then a clean close.
fn handshake(addr: &str, host: &str, config: rustls::ClientConfig) -> Result<()> {
    let name = ServerName::try_from(host.to_owned())
        .with_context(|| format!("invalid server name {host}"))?;
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
    Ok(())
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
        _now: TlsTime,
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
