//! `palisade audit`: verify a whole trail (rotated JSON-lines files or a PostgreSQL table)
//! against its signed checkpoints, print consistency proofs, and run a witness that cosigns.
//!
//! Exit codes of `verify`: 0 verified, 1 tampered or unattested, 2 usage or I/O error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use palisade_audit::checkpoint::check_extends;
use palisade_audit::file::{Quarantine, checkpoint_log_path, leaf_hashes, read_checkpoint_log};
use palisade_audit::merkle::{TreeHash, consistency_proof};
use palisade_audit::{
    Checkpoint, CheckpointVerifier, Verdict, WitnessKey, WitnessVerifier, file::verify_trail,
};
use palisade_core::time::{Clock, SystemClock};

/// `palisade audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Verify a whole trail against its signed checkpoints: exit 0 verified, 1 tampered or
    /// unattested, 2 usage or I/O error.
    Verify(VerifyArgs),
    /// Print the consistency proof (base64 hashes, one a line) between two tree sizes of a
    /// JSON-lines trail, for a witness.
    Prove(ProveArgs),
    /// Cosign a checkpoint as a witness (C2SP cosignature/v1), after checking that it extends
    /// the last one this witness cosigned: refuses a fork or a rollback (exit 1).
    Witness(WitnessArgs),
}

/// `palisade audit verify` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The directory of the JSON-lines trail (`<prefix>-<20 digits>.jsonl` files).
    #[arg(required_unless_present = "table")]
    dir: Option<PathBuf>,
    /// The trail's file prefix.
    #[arg(long, default_value = "audit")]
    prefix: String,
    /// The PostgreSQL database of the table (or `PALISADE_DATABASE_URL`).
    #[arg(long, env = "PALISADE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The audit table to verify (instead of a directory).
    #[arg(long, conflicts_with = "dir")]
    table: Option<String>,
    /// A file holding the checkpoint signer's public key (`name+keyid+base64`); or set
    /// `PALISADE_AUDIT_PUBLIC_KEY` to the key itself.
    #[arg(long, value_name = "FILE")]
    public_key_file: Option<PathBuf>,
    /// More checkpoints to check (a checkpoint log, or one signed note), e.g. copies shipped
    /// off the host. The trail's own log is always read.
    #[arg(long = "checkpoints", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// A file holding a witness's public key: some checkpoint must carry its valid
    /// cosignature, and none an invalid one.
    #[arg(long = "witness-key-file", value_name = "FILE")]
    witness_key_files: Vec<PathBuf>,
    /// Accept records not covered by a signed checkpoint (and quarantines of only such).
    #[arg(long)]
    allow_unattested: bool,
    /// The origin line to require (default: the one the checkpoints name).
    #[arg(long)]
    origin: Option<String>,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
}

/// `palisade audit prove` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The directory of the JSON-lines trail.
    dir: PathBuf,
    /// The trail's file prefix.
    #[arg(long, default_value = "audit")]
    prefix: String,
    /// The earlier tree size.
    #[arg(long)]
    from: u64,
    /// The later tree size.
    #[arg(long)]
    to: u64,
}

/// `palisade audit witness` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct WitnessArgs {
    /// The checkpoint note to cosign.
    note: PathBuf,
    /// The witness's own key (`PRIVATE+KEY+name+id+base64`, type 0x04) in a file; or set
    /// `PALISADE_WITNESS_KEY`.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// A file holding the log's public key.
    #[arg(long, value_name = "FILE")]
    log_key_file: PathBuf,
    /// The log's origin line.
    #[arg(long)]
    origin: String,
    /// Where the witness keeps the last checkpoint it cosigned (created on first use).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// The consistency proof from the last cosigned size (as `palisade audit prove` prints).
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
}

/// Runs a `palisade audit` subcommand.
pub(crate) fn run(command: &Command) -> Result<ExitCode> {
    match command {
        Command::Verify(args) => verify(args),
        Command::Prove(args) => prove(args),
        Command::Witness(args) => witness(args),
    }
}

/// The first line of a key file that is not empty or a `#` comment.
fn read_key(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .with_context(|| format!("no key in {}", path.display()))
}

fn key_from(file: Option<&Path>, env: &str) -> Result<String> {
    match file {
        Some(f) => read_key(f),
        None => std::env::var(env)
            .map(|k| k.trim().to_owned())
            .with_context(|| format!("give the key file, or set {env}")),
    }
}

/// Notes from a checkpoint log or a single note.
fn notes_in(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read checkpoints {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let entries = read_checkpoint_log(path)
            .with_context(|| format!("malformed checkpoint log {}", path.display()))?;
        Ok(entries.into_iter().map(|e| e.note).collect())
    } else {
        Ok(vec![text])
    }
}

/// What `verify` found.
struct Finding {
    /// `tampered` or `unattested`.
    kind: &'static str,
    seq: Option<u64>,
    location: String,
    reason: String,
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let vkey = key_from(args.public_key_file.as_deref(), "PALISADE_AUDIT_PUBLIC_KEY")?;
    let key = CheckpointVerifier::from_vkey(&vkey).context("the public key is malformed")?;
    let witnesses = args
        .witness_key_files
        .iter()
        .map(|f| {
            WitnessVerifier::from_vkey(&read_key(f)?)
                .with_context(|| format!("the witness key in {} is malformed", f.display()))
        })
        .collect::<Result<Vec<_>>>()?;

    // The notes: the trail's own log (or table) first, then the ones given.
    let mut sources: Vec<(String, String)> = Vec::new();
    let trail_name;
    if let Some(table) = &args.table {
        let Some(url) = &args.database_url else {
            bail!("--table needs --database-url or PALISADE_DATABASE_URL");
        };
        trail_name = format!("table {table}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let notes = rt
            .block_on(palisade_audit::postgres::checkpoint_notes(url, table))
            .context("cannot read the checkpoints table")?;
        sources.extend(
            notes
                .into_iter()
                .map(|n| (format!("{table}_checkpoints"), n)),
        );
    } else {
        let dir = args.dir.as_deref().unwrap_or(Path::new("."));
        trail_name = dir.display().to_string();
        let log = checkpoint_log_path(dir, &args.prefix);
        if log.exists() {
            let label = log.display().to_string();
            sources.extend(notes_in(&log)?.into_iter().map(|n| (label.clone(), n)));
        }
    }
    for f in &args.checkpoints {
        let label = f.display().to_string();
        sources.extend(notes_in(f)?.into_iter().map(|n| (label.clone(), n)));
    }

    let origin = match &args.origin {
        Some(o) => o.clone(),
        None => sources
            .first()
            .and_then(|(_, n)| n.lines().next())
            .unwrap_or_default()
            .to_owned(),
    };
    let mut findings = Vec::new();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let mut cosigned = vec![0usize; witnesses.len()];
    for (i, (label, note)) in sources.iter().enumerate() {
        match key.verify(note, &origin) {
            Ok(cp) => checkpoints.push(cp),
            Err(e) => findings.push(Finding {
                kind: "tampered",
                seq: None,
                location: format!("checkpoint {} in {label}", i + 1),
                reason: format!("does not verify: {e}"),
            }),
        }
        for (w, count) in witnesses.iter().zip(cosigned.iter_mut()) {
            match w.verify(note) {
                Ok(_) => *count += 1,
                Err(e) if note.contains(&format!("\u{2014} {} ", w.name())) => {
                    findings.push(Finding {
                        kind: "tampered",
                        seq: None,
                        location: format!("checkpoint {} in {label}", i + 1),
                        reason: format!("cosignature by {}: {e}", w.name()),
                    });
                }
                Err(_) => {}
            }
        }
    }
    for (w, count) in witnesses.iter().zip(&cosigned) {
        if *count == 0 {
            findings.push(Finding {
                kind: "tampered",
                seq: None,
                location: "checkpoints".into(),
                reason: format!("no checkpoint is cosigned by witness {}", w.name()),
            });
        }
    }

    let (verdict, locate, quarantines, files): (Verdict, Box<dyn Fn(u64) -> String>, _, usize) =
        if let Some(table) = &args.table {
            let url = args.database_url.clone().unwrap_or_default();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = rt
                .block_on(palisade_audit::postgres::verify_table(
                    &url,
                    table,
                    &checkpoints,
                ))
                .context("cannot read the audit table")?;
            let t = table.clone();
            (
                report.verdict,
                Box::new(move |seq| format!("table {t} sequence {seq}")),
                report.quarantines,
                0,
            )
        } else {
            let dir = args.dir.as_deref().unwrap_or(Path::new("."));
            let report = verify_trail(dir, &args.prefix, &checkpoints)
                .with_context(|| format!("cannot read the trail in {}", dir.display()))?;
            let files = report.files.len();
            let quarantines = report.quarantines.clone();
            (
                report.verdict.clone(),
                Box::new(move |seq| match report.locate(seq) {
                    Some((path, line)) => format!("{} line {line}", path.display()),
                    None => format!("record {seq}"),
                }),
                quarantines,
                files,
            )
        };

    let (records, attested) = match &verdict {
        Verdict::Broken { index, reason } => {
            findings.push(Finding {
                kind: "tampered",
                seq: Some(*index),
                location: locate(*index),
                reason: reason.to_string(),
            });
            (None, None)
        }
        Verdict::Intact {
            records, attested, ..
        } => {
            if records > attested && !args.allow_unattested {
                findings.push(Finding {
                    kind: "unattested",
                    seq: Some(*attested),
                    location: locate(*attested),
                    reason: format!(
                        "{} records after the last signed checkpoint (size {attested}) are not attested",
                        records - attested
                    ),
                });
            }
            (Some(*records), Some(*attested))
        }
    };
    for q in &quarantines {
        if q.unattested_only && args.allow_unattested {
            continue;
        }
        findings.push(quarantine_finding(q, &locate));
    }
    // The first bad record first: chain findings before checkpoint-log ones.
    findings.sort_by_key(|f| f.seq.is_none());

    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "trail": trail_name,
            "verified": findings.is_empty(),
            "records": records,
            "attested": attested,
            "files": files,
            "checkpoints": checkpoints.len(),
            "witnesses": witnesses.iter().zip(&cosigned).map(|(w, n)| serde_json::json!({"name": w.name(), "cosigned": n})).collect::<Vec<_>>(),
            "findings": findings.iter().map(|f| serde_json::json!({
                "kind": f.kind, "seq": f.seq, "location": f.location, "reason": f.reason,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{report}")?;
    } else if findings.is_empty() {
        writeln!(
            out,
            "verified: {} records in {trail_name}, {} attested by {} signed checkpoints",
            records.unwrap_or(0),
            attested.unwrap_or(0),
            checkpoints.len()
        )?;
    } else {
        for f in &findings {
            writeln!(out, "{}: {}: {}", f.kind, f.location, f.reason)?;
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn quarantine_finding(q: &Quarantine, locate: &dyn Fn(u64) -> String) -> Finding {
    Finding {
        kind: if q.unattested_only {
            "unattested"
        } else {
            "tampered"
        },
        seq: Some(q.first_bad),
        location: format!("record {} (moved to {})", q.first_bad, q.moved_to),
        reason: format!(
            "on restart the sink set aside {} records its last checkpoint did not vouch for: {} (reported at {})",
            q.records,
            q.reason,
            locate(q.seq)
        ),
    }
}

fn prove(args: &ProveArgs) -> Result<ExitCode> {
    if args.from > args.to {
        bail!("--from must not exceed --to");
    }
    let leaves = leaf_hashes(&args.dir, &args.prefix, args.to)?;
    let proof = consistency_proof(&leaves, args.from).context("sizes out of range")?;
    let mut out = std::io::stdout().lock();
    for h in proof {
        writeln!(out, "{}", B64.encode(h.0))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn witness(args: &WitnessArgs) -> Result<ExitCode> {
    let skey = zeroize::Zeroizing::new(key_from(args.key_file.as_deref(), "PALISADE_WITNESS_KEY")?);
    let key = WitnessKey::from_skey(&skey).context("the witness key is malformed")?;
    let log = CheckpointVerifier::from_vkey(&read_key(&args.log_key_file)?)
        .context("the log key is malformed")?;
    let note = std::fs::read_to_string(&args.note)
        .with_context(|| format!("cannot read {}", args.note.display()))?;
    let new = log
        .verify(&note, &args.origin)
        .context("the checkpoint does not verify")?;
    let last = match std::fs::read_to_string(&args.state) {
        Ok(text) => Some(
            log.verify(&text, &args.origin)
                .context("the witness state does not verify")?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("cannot read the witness state"),
    };
    let proof: Vec<TreeHash> = match &args.proof {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                B64.decode(l.trim())
                    .ok()
                    .and_then(|b| TreeHash::from_slice(&b))
                    .context("the proof holds a line that is not a base64 hash")
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    if let Err(e) = check_extends(last.as_ref(), &new, &proof) {
        writeln!(std::io::stderr().lock(), "palisade: {e}")?;
        return Ok(ExitCode::from(1));
    }
    let cosigned = key.cosign(&note, SystemClock.now().as_secs())?;
    // The state moves forward only once the cosignature exists; written atomically.
    let tmp = args.state.with_extension("tmp");
    std::fs::write(&tmp, &note)?;
    std::fs::rename(&tmp, &args.state)?;
    std::io::stdout().lock().write_all(cosigned.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
