//! `palisade audit verify`: check a hash-chained audit file, and its signed checkpoint.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use palisade_audit::{ChainRecord, CheckpointVerifier, Verdict, Verifier};

/// `palisade audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Verify a JSON-lines audit file: exit 0 when the chain is intact, 1 at the first bad record.
    Verify(VerifyArgs),
}

/// `palisade audit verify` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The audit file (`<prefix>-<20 digits>.jsonl`, as the JSON-lines sink writes it).
    file: PathBuf,
    /// The checkpoint signer's public key (`name+keyid+base64`, from `CheckpointVerifier::to_vkey`).
    /// With it, the signed checkpoint is checked and a truncated or rewritten trail is caught.
    #[arg(long, value_name = "K")]
    public_key: Option<String>,
    /// The signed checkpoint note (default: `<prefix>.checkpoint` beside the file).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The checkpoint's origin line to require (default: the one in the note).
    #[arg(long)]
    origin: Option<String>,
}

/// Runs a `palisade audit` subcommand.
pub(crate) fn run(command: &Command) -> Result<ExitCode> {
    match command {
        Command::Verify(args) => verify(args),
    }
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let trail = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    // A rotated file continues an earlier one: start from its first record's position.
    let first = trail.split(|b| *b == b'\n').next().unwrap_or_default();
    let (start, mut verifier) = match ChainRecord::from_line(first) {
        Ok(record) if record.seq > 0 => (record.seq, Verifier::resume(record.seq, record.prev)),
        _ => (0, Verifier::new()),
    };

    let mut attested_by = None;
    if let Some(vkey) = &args.public_key {
        let key = CheckpointVerifier::from_vkey(vkey).context("the public key is malformed")?;
        let note_path = match &args.checkpoint {
            Some(p) => p.clone(),
            None => default_checkpoint_path(&args.file)?,
        };
        let note = std::fs::read_to_string(&note_path)
            .with_context(|| format!("cannot read checkpoint {}", note_path.display()))?;
        let origin = match &args.origin {
            Some(o) => o.clone(),
            None => note.lines().next().unwrap_or_default().to_owned(),
        };
        let checkpoint = key
            .verify(&note, &origin)
            .with_context(|| format!("checkpoint {} does not verify", note_path.display()))?;
        verifier.add_checkpoint(&checkpoint);
        attested_by = Some(note_path);
    }

    let verdict = verifier.verify_lines(&trail);
    let mut out = std::io::stdout().lock();
    match verdict {
        Verdict::Intact {
            records,
            head,
            attested,
        } => {
            let count = records.saturating_sub(start);
            writeln!(
                out,
                "intact: {count} records (sequence {start}..{records}), head {}",
                head.to_hex()
            )?;
            match attested_by {
                Some(path) => writeln!(
                    out,
                    "attested: {attested} records by the signed checkpoint {}",
                    path.display()
                )?,
                None => writeln!(
                    out,
                    "not attested: give --public-key to check the signed checkpoint (truncation and rewrites)"
                )?,
            }
            if start > 0 {
                writeln!(
                    out,
                    "note: the file continues an earlier one; verify the whole trail to check the link"
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Broken { index, reason } => {
            let line = index.saturating_add(1);
            writeln!(
                out,
                "broken: line {line} of {}: {reason:?}",
                args.file.display()
            )?;
            Ok(ExitCode::from(1))
        }
    }
}

/// `dir/audit-00000000000000000000.jsonl` -> `dir/audit.checkpoint`.
fn default_checkpoint_path(file: &Path) -> Result<PathBuf> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some((prefix, _)) = name.rsplit_once('-') else {
        bail!("cannot tell the trail's prefix from {name}: give --checkpoint");
    };
    Ok(file.with_file_name(format!("{prefix}.checkpoint")))
}
