//! `palisade totp` and `palisade recovery-codes`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use palisade_core::random::SystemRandom;
use palisade_core::time::{Clock, SystemClock, UnixTime};
use palisade_otp::recovery::RecoveryCode;
use palisade_otp::uri::OtpauthUri;
use palisade_otp::{Algorithm, Digits, OtpSecret, Period, Totp, TotpParams};

/// `palisade totp` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// A new secret, its otpauth:// URI and a QR code to scan.
    New(NewArgs),
    /// Print the code for a secret at a time (default: now).
    Code(CodeArgs),
    /// Check a code: exit 0 when valid, 1 when not.
    Verify(VerifyArgs),
}

/// Parameters shared by every TOTP command.
#[derive(Debug, clap::Args)]
pub(crate) struct Params {
    /// The HMAC algorithm.
    #[arg(long, default_value = "SHA1", value_parser = parse_algorithm)]
    algorithm: Algorithm,
    /// The number of digits (6 to 8).
    #[arg(long, default_value_t = 6)]
    digits: u32,
    /// The time step in seconds.
    #[arg(long, default_value_t = 30)]
    period: u64,
}

impl Params {
    fn to_totp_params(&self) -> Result<TotpParams> {
        Ok(TotpParams::new()
            .algorithm(self.algorithm)
            .digits(Digits::new(self.digits)?)
            .period(Period::from_secs(self.period)?))
    }
}

/// `palisade totp new` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The service's name, shown in the authenticator app.
    #[arg(long)]
    issuer: String,
    /// The user's account name (an email address, say).
    #[arg(long)]
    account: String,
    /// Write the QR code to this file (.svg or .png) instead of printing it.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    qr: Option<PathBuf>,
    #[command(flatten)]
    params: Params,
}

/// `palisade totp code` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CodeArgs {
    /// The secret, in base32 (spaces, lower case and padding are fine). Visible in `ps`:
    /// prefer --secret-env or --secret-file.
    #[arg(long, allow_hyphen_values = true)]
    secret: Option<String>,
    /// An environment variable holding the secret.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// A file holding the secret; `-` reads it from standard input.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The time, in seconds since the Unix epoch (default: now).
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<u64>,
    #[command(flatten)]
    params: Params,
}

/// `palisade totp verify` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    code_args: CodeArgs,
    /// The code to check.
    #[arg(long, allow_hyphen_values = true)]
    code: String,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s)
        .ok_or_else(|| format!("unknown algorithm {s:?}: use SHA1, SHA256 or SHA512"))
}

/// Runs a `palisade totp` subcommand.
pub(crate) fn run(command: &Command) -> Result<ExitCode> {
    match command {
        Command::New(args) => new(args).map(|()| ExitCode::SUCCESS),
        Command::Code(args) => {
            let (totp, at) = schedule(args)?;
            let code = totp.generate(at)?;
            writeln!(std::io::stdout().lock(), "{}", code.expose_secret())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let (totp, at) = schedule(&args.code_args)?;
            match totp.verify(&args.code, at, None) {
                Ok(matched) => {
                    let drift = matched.drift();
                    writeln!(
                        std::io::stdout().lock(),
                        "valid (step {}, drift {drift:+})",
                        matched.step()
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(rejection) => {
                    writeln!(
                        std::io::stdout().lock(),
                        "not valid: {}",
                        rejection.as_str()
                    )?;
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

fn new(args: &NewArgs) -> Result<()> {
    let params = args.params.to_totp_params()?;
    let secret = OtpSecret::generate(args.params.algorithm, &SystemRandom)?;
    let base32 = secret.expose_base32();
    let uri = OtpauthUri::totp(secret, &params, Some(&args.issuer), &args.account)?;
    // Everything that can fail (the QR file above all) happens before the secret is printed,
    // so a failed command leaves no secret on the terminal for an enrollment that did not
    // happen.
    let terminal = match &args.qr {
        None => Some(palisade_otp::qr::to_terminal(&uri)?),
        Some(path) => {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            match ext.as_deref() {
                Some("svg") => {
                    let svg = palisade_otp::qr::to_svg(&uri, 256)?;
                    write_private(path, svg.as_bytes())?;
                }
                Some("png") => {
                    let png = palisade_otp::qr::to_png(&uri, 8)?;
                    write_private(path, &png)?;
                }
                _ => bail!("--qr takes a file ending in .svg or .png"),
            }
            None
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "secret: {}", base32.as_str())?;
    writeln!(out, "uri:    {}", uri.expose_uri().as_str())?;
    match (terminal, &args.qr) {
        (Some(text), _) => {
            writeln!(out)?;
            writeln!(out, "{}", text.as_str())?;
        }
        (None, Some(path)) => writeln!(out, "qr:     {}", path.display())?,
        (None, None) => {}
    }
    Ok(())
}

/// Writes a file that holds a secret: readable by its owner only, where the platform has modes.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

fn schedule(args: &CodeArgs) -> Result<(Totp, UnixTime)> {
    let params = args.params.to_totp_params()?;
    // Operators check existing secrets, some shorter than we would generate: accept them,
    // but say so.
    let text = crate::secret_input::read(
        "--secret",
        args.secret.as_deref(),
        args.secret_env.as_deref(),
        args.secret_file.as_deref(),
    )?;
    let (secret, strength) = OtpSecret::import_weak_base32(&text)?;
    if !strength.is_sufficient() {
        eprintln!(
            "warning: the secret has only {} bits; 128 or more is recommended",
            strength.bits()
        );
    }
    let at = match args.at {
        None => SystemClock.now(),
        // UnixTime counts nanoseconds in a u64: its last second falls in 2554.
        Some(secs) if UnixTime::from_secs(secs).as_secs() == secs => UnixTime::from_secs(secs),
        Some(_) => bail!(
            "--at is past the last time supported ({} seconds, in 2554)",
            UnixTime::from_nanos(u64::MAX).as_secs()
        ),
    };
    Ok((Totp::new(&secret, params), at))
}

/// `palisade recovery-codes` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RecoveryArgs {
    /// How many codes.
    #[arg(short = 'n', long = "count", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    count: u16,
}

/// Prints new recovery codes, one a line.
pub(crate) fn recovery_codes(args: &RecoveryArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for _ in 0..args.count {
        let code = RecoveryCode::generate(&SystemRandom)?;
        writeln!(out, "{}", code.expose_formatted().as_str())?;
    }
    Ok(())
}
