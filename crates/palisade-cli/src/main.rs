//! `palisade`: the operator's tool for services that embed the Palisade crates.
//!
//! Every command has `--help`. Errors print one line to standard error and exit non-zero.
#![forbid(unsafe_code)]
// A command-line tool talks on stdout and stderr by design.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod audit;
mod field;
mod keygen;
mod pin;
mod secret_input;
mod size;
mod totp;
mod workloads;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Palisade's operator tool: keys, pins, TOTP, recovery codes, Fernet and field migration, audit
/// verification, and the sizing report.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a new key in the form the crates load.
    Keygen(keygen::Args),
    /// Print the SPKI pin and SHA-256 fingerprint of every certificate in a file or a live chain.
    Pin(pin::Args),
    /// TOTP secrets, codes and checks.
    #[command(subcommand)]
    Totp(totp::Command),
    /// Print new recovery codes, one a line.
    RecoveryCodes(totp::RecoveryArgs),
    /// Field encryption: encrypt, decrypt, migrate a column, report its status.
    #[command(subcommand)]
    Field(field::Command),
    /// Read Fernet tokens (to migrate a Python service's data).
    #[command(subcommand)]
    Fernet(field::FernetCommand),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Measure every hot path on 1..N threads and say what the rates mean for sizing.
    Size(SizeArgs),
}

#[derive(Debug, clap::Args)]
struct SizeArgs {
    /// The most threads to measure with (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Total measuring time in seconds, shared between all measurements.
    #[arg(long, default_value_t = 40.0)]
    seconds: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Measure only the operations whose name contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("palisade: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen(args) => keygen::run(&args)?,
        Command::Pin(args) => return pin::run(&args),
        Command::Totp(command) => return totp::run(&command),
        Command::RecoveryCodes(args) => totp::recovery_codes(&args)?,
        Command::Audit(command) => return audit::run(&command),
        Command::Field(command) => field::run(&command)?,
        Command::Fernet(command) => field::fernet(&command)?,
        Command::Size(args) => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let threads = args.threads.unwrap_or(cores).max(1);
            let mut plan = workloads::all()?;
            if let Some(only) = &args.only {
                let only = only.to_lowercase();
                plan.workloads
                    .retain(|w| w.name().to_lowercase().contains(&only));
                anyhow::ensure!(
                    !plan.workloads.is_empty(),
                    "no operation matches --only {only:?}"
                );
            }
            size::run(
                &plan.workloads,
                threads,
                args.seconds,
                args.json,
                &plan.notes,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
