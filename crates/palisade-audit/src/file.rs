//! The JSON-lines file sink: a chained, rotated, fsynced audit trail on local disk.
//!
//! [`JsonlSink::record`] redacts nothing and writes nothing on the caller's thread: it queues
//! the event (bounded, see [`Overflow`]) and returns. A background thread takes everything
//! queued as one batch, redacts each event, chains it ([`Chainer`]), appends the record lines to
//! the current file (one `write` per 128 KiB, while the lines are still in the CPU cache), and
//! then applies the durability policy. Under [`Durability::FsyncPerBatch`] a second thread
//! `fsync`s a written batch while the first one serializes and writes the next.
//!
//! # Files
//! In the configured directory, `<prefix>-<first sequence number, 20 digits>.jsonl`, one
//! [record line](crate::chain) per event. When a file reaches `max_file_bytes` the next record
//! starts a new file; the chain runs on across files (the first record of a file has the last
//! record of the previous file as its `prev`). The latest signed checkpoint, if a signer is
//! configured, is kept in `<prefix>.checkpoint` (replaced atomically) and handed to the
//! `on_checkpoint` callback so it can be shipped elsewhere.
//!
//! # Durability
//! - [`Durability::FsyncPerBatch`] (default): each batch is `fsync`ed (`sync_data`) before it
//!   counts as written; [`JsonlSink::flush`] returning `Ok` means every event recorded before
//!   the call is on stable storage. The `fsync` of batch N runs on its own thread while batch
//!   N+1 is serialized and written; batch N+1 is handed to that thread only after the `fsync` of
//!   batch N succeeded, so batches are acknowledged in order, each by an `fsync` that covers it.
//!   A crash loses at most the batches not yet acknowledged, which no `flush` has confirmed.
//! - [`Durability::FlushPerBatch`]: written to the OS (survives a process crash, not a power
//!   loss); a signed checkpoint always forces an `fsync` first, so a checkpoint never attests
//!   records that are not on disk.
//!
//! On start, the sink resumes the chain from the last record of the newest file; a partial last
//! line (a crash in the middle of a write) is cut off first. Write and `fsync` errors (disk
//! full, ...) are retried with backoff: the record lines of every batch not yet acknowledged
//! (at most two: the one being `fsync`ed and the one written after it) stay in memory, the file
//! is truncated back to where the first of them started, and they are written again in order
//! and `fsync`ed, so nothing is lost, written twice or reordered and the chain stays intact.
//! A new file is started only once everything in the old one is acknowledged. Only one
//! process may write one trail.
//!
//! Once the sink is shut down and 50 attempts failed, the writer gives up for good: the file is
//! cut back to its last acknowledged record if it can be, nothing more is written or signed
//! (the records given up would leave a gap in the chain), and every waiting and later flush
//! fails with [`AuditError::Unwritable`], which counts the lost events (also in
//! [`SinkStats::lost`]). Under [`Durability::FlushPerBatch`] the lines of a batch are not kept
//! once handed to the OS, so after a failed `fsync` the sink cannot make sure they reach the
//! disk: that flush and every later one fail, and no checkpoint is signed until the trail is
//! opened again (which resumes from what is on disk).
//!
//! # Errors and panics
//! [`JsonlSink::open`] fails with [`AuditError::Io`] or, if the newest record is unreadable,
//! [`AuditError::Json`]. `record` never fails or panics.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use palisade_core::audit::{Action, AuditEvent, AuditSink, Outcome, Severity};
use palisade_core::time::UnixTime;

use crate::AuditError;
use crate::chain::{BreakReason, ChainHash, ChainRecord, Chainer, Verdict, Verifier};
use crate::checkpoint::{Checkpoint, CheckpointSigner, LogEntry, SignedCheckpoint};
use crate::merkle::{Frontier, TreeHash, leaf_hash};
use crate::queue::Queue;
use crate::redact::Redactor;
use crate::sink::{Overflow, SinkStats};

/// When a batch counts as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `fsync` after every batch (the default).
    #[default]
    FsyncPerBatch,
    /// Hand to the OS after every batch; `fsync` only before a checkpoint and at shutdown.
    FlushPerBatch,
}

/// A callback that receives every signed checkpoint.
pub type CheckpointCallback = Box<dyn Fn(&SignedCheckpoint) + Send>;

/// How to open a [`JsonlSink`].
pub struct JsonlConfig {
    dir: PathBuf,
    prefix: String,
    max_file_bytes: u64,
    durability: Durability,
    capacity: usize,
    batch_max: usize,
    overflow: Overflow,
    redactor: Redactor,
    signer: Option<CheckpointSigner>,
    checkpoint_every: u64,
    checkpoint_interval: Option<Duration>,
    on_checkpoint: Option<CheckpointCallback>,
    on_tamper: OnTamper,
    flush_timeout: Duration,
    max_backoff: Duration,
    faults: Option<FaultHook>,
}

impl std::fmt::Debug for JsonlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlConfig")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("durability", &self.durability)
            .field("capacity", &self.capacity)
            .field("signer", &self.signer)
            .field("checkpoint_every", &self.checkpoint_every)
            .finish_non_exhaustive()
    }
}

impl JsonlConfig {
    /// Files `<prefix>-<seq>.jsonl` in `dir`; defaults: 64 MiB files, fsync per batch, a queue
    /// of 65 536 events that blocks when full, batches of up to 8192, the default redactor, no
    /// checkpoints, a 30 s flush timeout.
    pub fn new(dir: impl Into<PathBuf>, prefix: &str) -> Self {
        Self {
            dir: dir.into(),
            prefix: prefix.to_owned(),
            max_file_bytes: 64 << 20,
            durability: Durability::FsyncPerBatch,
            capacity: 65_536,
            batch_max: 8192,
            overflow: Overflow::Block,
            redactor: Redactor::new(),
            signer: None,
            checkpoint_every: 10_000,
            checkpoint_interval: None,
            on_checkpoint: None,
            on_tamper: OnTamper::default(),
            flush_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(1),
            faults: None,
        }
    }

    /// Starts a new file once the current one reaches `bytes`.
    #[must_use]
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes.max(1);
        self
    }

    /// The durability policy.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The queue's bound and what happens when it is full.
    #[must_use]
    pub fn queue(mut self, capacity: usize, overflow: Overflow) -> Self {
        self.capacity = capacity.max(1);
        self.overflow = overflow;
        self
    }

    /// The most events written per batch.
    #[must_use]
    pub fn batch_max(mut self, events: usize) -> Self {
        self.batch_max = events.max(1);
        self
    }

    /// The redaction policy.
    #[must_use]
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Signs a checkpoint every `every` records, at every flush that wrote something, and at
    /// shutdown.
    #[must_use]
    pub fn checkpoints(mut self, signer: CheckpointSigner, every: u64) -> Self {
        self.signer = Some(signer);
        self.checkpoint_every = every.max(1);
        self
    }

    /// Also signs a checkpoint every `interval` when events arrive or not (as CloudTrail's
    /// hourly digests), so that a quiet period is attested and a gap in the checkpoint log is
    /// itself evidence. Needs [`JsonlConfig::checkpoints`].
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = Some(interval.max(Duration::from_millis(10)));
        self
    }

    /// What opening does with records its last signed checkpoint does not vouch for (default
    /// [`OnTamper::Quarantine`]).
    #[must_use]
    pub fn on_tamper(mut self, policy: OnTamper) -> Self {
        self.on_tamper = policy;
        self
    }

    /// Also hands each signed checkpoint to `callback` (to publish it away from the trail).
    /// Every checkpoint is also appended to the checkpoint log
    /// ([`JsonlConfig::checkpoint_log_path`]). It runs on the writer thread: keep it quick.
    #[must_use]
    pub fn on_checkpoint(mut self, callback: impl Fn(&SignedCheckpoint) + Send + 'static) -> Self {
        self.on_checkpoint = Some(Box::new(callback));
        self
    }

    /// How long [`JsonlSink::flush`] and drop wait for the writer.
    #[must_use]
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The longest pause between attempts to write again after a failure (10 ms doubling up
    /// to this; default 1 s). The writer gives up once the sink is shut down and 50 attempts
    /// failed.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Makes writes or `fsync`s of record lines fail where `hook` says so.
    #[cfg(test)]
    fn inject_faults(mut self, hook: impl Fn(IoStep) -> bool + Send + Sync + 'static) -> Self {
        self.faults = Some(Arc::new(hook));
        self
    }

    /// Where the latest checkpoint note is kept.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join(format!("{}.checkpoint", self.prefix))
    }

    /// Where every signed checkpoint is appended, one [`LogEntry`] a line.
    pub fn checkpoint_log_path(&self) -> PathBuf {
        checkpoint_log_path(&self.dir, &self.prefix)
    }
}

/// `<dir>/<prefix>.checkpoints`: the checkpoint log of a trail.
pub fn checkpoint_log_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}.checkpoints"))
}

/// What opening a trail does with records that its last signed checkpoint does not vouch for
/// (edited, deleted, re-chained or appended while no writer ran, or written but left unsigned
/// by a crash). Either way they are never signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnTamper {
    /// Opening fails with [`AuditError::Tampered`]; nothing is written.
    Refuse,
    /// The records from the first one not vouched for are moved, unchanged, to a file of their
    /// own (`<prefix>.suspect-<first seq>-<unix time>.jsonl`, beside the trail), the chain
    /// continues from the last checkpoint, and its next record is an
    /// `audit_trail_quarantined` event (severity critical) that names the first bad record,
    /// the reason, how many records were moved and where. Verifiers report it.
    #[default]
    Quarantine,
}

/// The action of the event that records a quarantine in the trail.
pub const QUARANTINE_ACTION: &str = "audit_trail_quarantined";

/// The trail's files in `dir` with `prefix`, oldest first.
///
/// # Errors
/// [`AuditError::Io`] if the directory cannot be read.
pub fn trail_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, AuditError> {
    let mut files = Vec::new();
    let head = format!("{prefix}-");
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(&head)
            .and_then(|r| r.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The result of verifying a trail on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailReport {
    /// The verdict over all files in order.
    pub verdict: Verdict,
    /// For a broken trail: the file and the 1-based line of the first bad record (the last file
    /// and one past its last line for a truncation).
    pub location: Option<(PathBuf, u64)>,
    /// The files read, each with the sequence number of its first record, in order.
    pub files: Vec<(u64, PathBuf)>,
    /// The quarantines the sink recorded in the trail ([`OnTamper::Quarantine`]), in order.
    pub quarantines: Vec<Quarantine>,
}

impl TrailReport {
    /// The file and 1-based line of record `seq`, if the trail's files reach it (one past the
    /// last line of the last file for the record after the end).
    pub fn locate(&self, seq: u64) -> Option<(PathBuf, u64)> {
        self.files
            .iter()
            .rev()
            .find(|(start, _)| *start <= seq)
            .map(|(start, path)| (path.clone(), seq.saturating_sub(*start).saturating_add(1)))
    }
}

/// A quarantine recorded in a trail: on a restart, the sink found records its last checkpoint
/// did not vouch for and moved them aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// The sequence number of the record that reports it.
    pub seq: u64,
    /// The first bad record (as numbered before the move).
    pub first_bad: u64,
    /// What was wrong, in words.
    pub reason: String,
    /// Whether the records were only unattested (chained correctly, left unsigned by a crash or
    /// appended by someone without the key), not shown to be edited.
    pub unattested_only: bool,
    /// How many records were moved.
    pub records: u64,
    /// Where they were moved (a file beside the trail, or a table).
    pub moved_to: String,
}

impl Quarantine {
    /// The quarantine a record reports, if it is a quarantine record.
    pub fn from_record(record: &ChainRecord) -> Option<Self> {
        if record.event.action.as_str() != QUARANTINE_ACTION {
            return None;
        }
        let m = &record.event.metadata;
        let num = |k: &str| m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(Self {
            seq: record.seq,
            first_bad: num("first_bad"),
            reason: m.get("reason").cloned().unwrap_or_default(),
            unattested_only: m.get("unattested_only").is_some_and(|v| v == "true"),
            records: num("records"),
            moved_to: m.get("file").cloned().unwrap_or_default(),
        })
    }
}

/// Whether a record line may be a quarantine record (a cheap test before parsing it).
pub(crate) fn may_be_quarantine(line: &[u8]) -> bool {
    let needle = QUARANTINE_ACTION.as_bytes();
    line.windows(needle.len()).any(|w| w == needle)
}

/// Verifies every file of a trail in order as one chain and one Merkle tree, against
/// `checkpoints` (already signature-checked with
/// [`CheckpointVerifier::verify`](crate::CheckpointVerifier::verify)). A file whose name does
/// not give the position of its first record (a deleted, reordered or renamed file) breaks the
/// trail there; records after the last checkpoint are reported as not attested
/// ([`Verdict::Intact::attested`]).
///
/// # Errors
/// [`AuditError::Io`] if a file cannot be read. A broken trail is a [`Verdict::Broken`].
pub fn verify_trail(
    dir: &Path,
    prefix: &str,
    checkpoints: &[Checkpoint],
) -> Result<TrailReport, AuditError> {
    let mut v = Verifier::new();
    for cp in checkpoints {
        v.add_checkpoint(cp);
    }
    let mut files = Vec::new();
    let mut quarantines = Vec::new();
    let mut seen = 0u64;
    let mut misplaced = None;
    for path in trail_files(dir, prefix)? {
        let named = file_first_seq(&path);
        files.push((seen, path.clone()));
        if named != seen && !v.is_broken() {
            misplaced = Some(Verdict::Broken {
                index: seen,
                reason: BreakReason::Sequence {
                    expected: seen,
                    found: named,
                },
            });
            break;
        }
        let data = fs::read(&path)?;
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        if !data.is_empty() {
            for line in body.split(|b| *b == b'\n') {
                v.push_line(line);
                if v.is_broken() {
                    break;
                }
                if may_be_quarantine(line)
                    && let Some(q) = ChainRecord::from_line(line)
                        .ok()
                        .as_ref()
                        .and_then(Quarantine::from_record)
                {
                    quarantines.push(q);
                }
                seen = seen.saturating_add(1);
            }
        }
        if v.is_broken() {
            break;
        }
    }
    let verdict = match (v.finish(), misplaced) {
        (broken @ Verdict::Broken { .. }, None) => broken,
        (Verdict::Broken { index, reason }, Some(_)) if index < seen => {
            Verdict::Broken { index, reason }
        }
        (_, Some(m)) => m,
        (intact, None) => intact,
    };
    let mut report = TrailReport {
        verdict,
        location: None,
        files,
        quarantines,
    };
    if let Verdict::Broken { index, .. } = &report.verdict {
        report.location = report.locate(*index);
    }
    Ok(report)
}

/// The Merkle leaf hashes of the first `size` records of a trail (for proofs). Reads the files
/// in order; the records are not verified here (see [`verify_trail`]).
///
/// # Errors
/// [`AuditError::Io`] if a file cannot be read, [`AuditError::Json`] for a malformed record,
/// [`AuditError::Checkpoint`] if the trail has fewer than `size` records.
pub fn leaf_hashes(dir: &Path, prefix: &str, size: u64) -> Result<Vec<TreeHash>, AuditError> {
    let mut out = Vec::new();
    'files: for path in trail_files(dir, prefix)? {
        let data = fs::read(&path)?;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if out.len() as u64 >= size {
                break 'files;
            }
            out.push(leaf_hash(&ChainRecord::from_line(line)?.hash.0));
        }
    }
    if (out.len() as u64) < size {
        return Err(AuditError::Checkpoint(
            "the trail has fewer records than the tree",
        ));
    }
    Ok(out)
}

/// A trail's checkpoint log, oldest first. A partial last line (a crash while appending) is
/// skipped.
///
/// # Errors
/// [`AuditError::Io`] if the log exists but cannot be read; [`AuditError::Checkpoint`] if a
/// complete line is malformed.
pub fn read_checkpoint_log(path: &Path) -> Result<Vec<LogEntry>, AuditError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let complete = text
        .rfind('\n')
        .map_or("", |end| text.get(..end).unwrap_or(""));
    complete
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(LogEntry::from_line)
        .collect()
}

/// The verified state of the last checkpoint in the trail's log: (size, chain head, tree).
fn last_checkpoint(
    config: &JsonlConfig,
    signer: &CheckpointSigner,
) -> Result<(ChainHash, Frontier), AuditError> {
    let bad = |_| AuditError::Tampered {
        first_bad: 0,
        reason: BreakReason::BadCheckpoint,
    };
    let entries = read_checkpoint_log(&config.checkpoint_log_path()).map_err(|e| match e {
        AuditError::Io(_) => e,
        other => bad(other),
    })?;
    match entries.last() {
        None => Ok((ChainHash::GENESIS, Frontier::new())),
        Some(entry) => {
            let (cp, tree) = entry
                .verify(&signer.verifier(), signer.origin())
                .map_err(bad)?;
            Ok((cp.head(), tree))
        }
    }
}

/// Cuts a partial last line (an interrupted write, never confirmed) off the newest file.
fn cut_partial_line(config: &JsonlConfig) -> Result<(), AuditError> {
    let Some(path) = trail_files(&config.dir, &config.prefix)?.pop() else {
        return Ok(());
    };
    let mut f = OpenOptions::new().read(true).write(true).open(&path)?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let keep = data
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p.saturating_add(1));
    if keep < data.len() {
        f.set_len(keep as u64)?;
        f.sync_all()?;
    }
    Ok(())
}

/// The first sequence number a trail file's name gives.
fn file_first_seq(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('-').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// Where a writer resumes, and the records it must not sign over.
struct Resumed {
    chainer: Chainer,
    current: Option<(PathBuf, u64)>,
    suspect: Option<Suspect>,
}

/// Records after the last checkpoint that it does not vouch for.
struct Suspect {
    /// The first bad record's sequence number.
    first_bad: u64,
    reason: BreakReason,
    /// The checkpoint's size: the first record moved aside.
    from: u64,
    /// Where record `from` starts: its file and byte offset.
    start: (PathBuf, u64),
    /// How many records follow the checkpoint.
    records: u64,
}

impl Suspect {
    fn error(&self) -> AuditError {
        AuditError::Tampered {
            first_bad: self.first_bad,
            reason: self.reason.clone(),
        }
    }

    fn event(&self, moved: &Path) -> AuditEvent {
        let file = moved
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        AuditEvent::new(
            Action::Custom(QUARANTINE_ACTION.to_owned()),
            UnixTime::from(SystemTime::now()),
        )
        .severity(Severity::Critical)
        .outcome(Outcome::Failure)
        .meta("first_bad", self.first_bad.to_string())
        .meta("reason", self.reason.to_string())
        .meta(
            "unattested_only",
            matches!(self.reason, BreakReason::Unattested { .. }).to_string(),
        )
        .meta("from_seq", self.from.to_string())
        .meta("records", self.records.to_string())
        .meta("file", file)
    }
}

/// Checks the trail against its last signed checkpoint before anything is written: the record
/// at the checkpoint's size - 1 must carry the signed chain head, and every record after it
/// must chain from there. Without a signer the whole trail is checked (chain only).
fn resume(config: &JsonlConfig) -> Result<Resumed, AuditError> {
    let (head, tree) = match &config.signer {
        Some(signer) => last_checkpoint(config, signer)?,
        None => (ChainHash::GENESIS, Frontier::new()),
    };
    let size = tree.size();
    let files = trail_files(&config.dir, &config.prefix)?;
    // Start at the file holding record size - 1 (by its name; a wrong name shows as a
    // mismatch below).
    let anchor = size.checked_sub(1);
    let first = anchor.map_or(0, |a| {
        files
            .iter()
            .rposition(|f| file_first_seq(f) <= a)
            .unwrap_or(0)
    });
    let mut tail = Verifier::resume_tree(head, tree.clone());
    let mut anchored = anchor.is_none();
    let mut start = None;
    let mut pos = files.get(first).map_or(0, |f| file_first_seq(f));
    let mut tail_records = 0u64;
    for path in files.iter().skip(first) {
        let data = fs::read(path)?;
        let mut offset = 0u64;
        for line in data.split_inclusive(|b| *b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            if Some(pos) == anchor {
                anchored = true;
                if !record_matches(body, pos, &head) {
                    return Err(AuditError::Tampered {
                        first_bad: pos,
                        reason: BreakReason::CheckpointMismatch { size },
                    });
                }
            } else if pos >= size {
                if start.is_none() {
                    start = Some((path.clone(), offset));
                }
                tail.push_line(body);
                tail_records = tail_records.saturating_add(1);
            }
            pos = pos.saturating_add(1);
            offset = offset.saturating_add(line.len() as u64);
        }
    }
    if !anchored {
        return Err(AuditError::Tampered {
            first_bad: pos.min(size.saturating_sub(1)),
            reason: BreakReason::Truncated {
                checkpoint_size: size,
                records: pos,
            },
        });
    }
    let current = match files.last() {
        Some(p) => Some((p.clone(), fs::metadata(p)?.len())),
        None => None,
    };
    let resumed_tree = tail.tree().cloned().unwrap_or_default();
    let resumed_head = tail.head();
    let bad = match tail.finish() {
        Verdict::Broken { index, reason } => Some((size.saturating_add(index), reason)),
        Verdict::Intact { .. } if config.signer.is_some() && tail_records > 0 => Some((
            size,
            BreakReason::Unattested {
                checkpoint_size: size,
            },
        )),
        Verdict::Intact { .. } => None,
    };
    let Some((first_bad, reason)) = bad else {
        // Nothing to set aside: continue after the last record (without a signer the tail
        // is the whole trail, verified from genesis).
        return Ok(Resumed {
            chainer: Chainer::resume(resumed_head, resumed_tree),
            current,
            suspect: None,
        });
    };
    Ok(Resumed {
        chainer: Chainer::resume(head, tree),
        current,
        suspect: Some(Suspect {
            first_bad,
            reason,
            from: size,
            start: start.unwrap_or_default(),
            records: tail_records,
        }),
    })
}

/// Whether `line` is a valid record `seq` whose hash is `head`.
fn record_matches(line: &[u8], seq: u64, head: &ChainHash) -> bool {
    let Ok(rec) = ChainRecord::from_line(line) else {
        return false;
    };
    if rec.seq != seq || rec.hash != *head {
        return false;
    }
    let mut v = Verifier::resume(seq, rec.prev);
    v.push_line(line);
    !v.is_broken()
}

/// Moves the suspect records, unchanged, to a file of their own and cuts them from the trail.
/// Returns that file's path.
fn quarantine(config: &JsonlConfig, suspect: &Suspect) -> Result<PathBuf, AuditError> {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dest = config.dir.join(format!(
        "{}.suspect-{:020}-{secs}.jsonl",
        config.prefix, suspect.from
    ));
    let (path, offset) = &suspect.start;
    let files = trail_files(&config.dir, &config.prefix)?;
    let Some(index) = files.iter().position(|f| f == path) else {
        return Ok(dest);
    };
    let later = files.get(index.saturating_add(1)..).unwrap_or(&[]);
    {
        let mut out = OpenOptions::new().create(true).append(true).open(&dest)?;
        let data = fs::read(path)?;
        let from = usize::try_from(*offset).unwrap_or(usize::MAX);
        out.write_all(data.get(from..).unwrap_or(&[]))?;
        for f in later {
            out.write_all(&fs::read(f)?)?;
        }
        out.sync_all()?;
    }
    sync_dir(&config.dir);
    // Only once the copy is durable are the records cut from the trail.
    for f in later.iter().rev() {
        fs::remove_file(f)?;
    }
    if *offset == 0 {
        fs::remove_file(path)?;
    } else {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(*offset)?;
        f.sync_all()?;
    }
    sync_dir(&config.dir);
    Ok(dest)
}

struct Writer {
    config: JsonlConfig,
    queue: Arc<Queue<AuditEvent>>,
    chainer: Chainer,
    file: Arc<File>,
    len: u64,
    since_checkpoint: u64,
    /// Written since the last `fsync` (only under [`Durability::FlushPerBatch`]; under
    /// `FsyncPerBatch` every segment is fsynced by the [`Syncer`] or by a rewrite).
    dirty: bool,
    /// The `fsync` stage, under [`Durability::FsyncPerBatch`].
    syncer: Option<Syncer>,
    /// The segment whose `fsync` is running: written, not yet acknowledged. Its lines stay in
    /// memory until the `fsync` succeeded, so that a failure can write them again.
    in_flight: Option<Segment>,
    /// The buffer of an acknowledged segment, reused for the next one.
    spare: Vec<u8>,
    /// When the last checkpoint was signed (for timer checkpoints).
    last_checkpoint: Instant,
    /// The writer gave up on unacknowledged segments: final. Nothing is written or signed
    /// after it, since the chain has a gap where the given-up records were.
    gave_up: bool,
    /// An `fsync` under [`Durability::FlushPerBatch`] failed. The bytes it covered are not in
    /// memory to write again, and a later `fsync` may succeed without them reaching the disk,
    /// so from then on no checkpoint is signed and every settle reports this error.
    sync_lost: Option<String>,
}

impl Writer {
    fn open(config: JsonlConfig, queue: Arc<Queue<AuditEvent>>) -> Result<Self, AuditError> {
        fs::create_dir_all(&config.dir)?;
        cut_partial_line(&config)?;
        let resumed = resume(&config)?;
        let (chainer, current) = match resumed.suspect {
            None => (resumed.chainer, resumed.current),
            Some(suspect) => {
                if config.on_tamper == OnTamper::Refuse {
                    return Err(suspect.error());
                }
                let moved = quarantine(&config, &suspect)?;
                let event = suspect.event(&moved);
                tracing::error!(
                    target: "palisade_audit",
                    first_bad = suspect.first_bad,
                    reason = %suspect.reason,
                    quarantined = suspect.records,
                    file = %moved.display(),
                    "audit trail: records not vouched for by the last checkpoint moved aside"
                );
                queue.push(event);
                let current = trail_files(&config.dir, &config.prefix)?
                    .pop()
                    .map(|p| fs::metadata(&p).map(|m| (p, m.len())))
                    .transpose()?;
                (resumed.chainer, current)
            }
        };
        let (file, len) = match current {
            Some((path, len)) => (OpenOptions::new().append(true).open(path)?, len),
            None => (new_file(&config, chainer.size())?, 0),
        };
        let syncer = match config.durability {
            Durability::FsyncPerBatch => {
                Some(Syncer::start(Arc::clone(&queue), config.faults.clone())?)
            }
            Durability::FlushPerBatch => None,
        };
        Ok(Self {
            config,
            queue,
            chainer,
            file: Arc::new(file),
            len,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            dirty: false,
            syncer,
            in_flight: None,
            spare: Vec::new(),
            gave_up: false,
            sync_lost: None,
        })
    }

    /// An empty segment for the chain's next records.
    fn segment(&mut self) -> Segment {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.reserve(1 << 16);
        Segment {
            first: self.chainer.size(),
            buf,
            start: None,
            written: 0,
            events: 0,
            failed: false,
        }
    }

    /// Keeps the buffer of an acknowledged segment for the next one.
    fn recycle(&mut self, seg: Segment) {
        if seg.buf.capacity() > self.spare.capacity() {
            self.spare = seg.buf;
        }
    }

    /// Gives `seg` its place at the end of the current file (starting a new file first if the
    /// current one is full), unless it has one.
    fn place(&mut self, seg: &mut Segment) -> std::io::Result<()> {
        if seg.start.is_none() {
            self.rotate_if_full(seg.first)?;
            seg.start = Some(self.len);
        }
        Ok(())
    }

    /// Writes the not yet written tail of `seg` to the file without syncing, while it is
    /// still in the CPU cache. After an error nothing more of the segment is written here:
    /// [`Writer::finish`] writes it again whole.
    fn stream(&mut self, seg: &mut Segment) {
        if seg.failed || self.gave_up {
            seg.failed = true;
            return;
        }
        if self.place(seg).is_err() {
            seg.failed = true;
            return;
        }
        let part = seg.buf.get(seg.written..).unwrap_or(&[]);
        match write_bytes(&self.file, part, self.config.faults.as_ref()) {
            Ok(()) => {
                self.len = self.len.saturating_add(part.len() as u64);
                seg.written = seg.buf.len();
            }
            Err(e) => {
                self.queue.fail(format!("writing audit file: {e}"));
                seg.failed = true;
            }
        }
    }

    /// Writes the rest of `seg`, waits for the `fsync` of the segment before it, and hands
    /// `seg` to the `fsync` stage, so that its `fsync` runs while the next segment is
    /// serialized. If this segment's write or the previous segment's `fsync` failed, both
    /// (neither acknowledged) are written again from memory, in order, and fsynced before
    /// anything else. `false` if the writer gives up (the file stays unwritable at shutdown).
    fn finish(&mut self, mut seg: Segment) -> bool {
        self.stream(&mut seg);
        let mut redo = Vec::with_capacity(2);
        if let Some(prev) = self.in_flight.take() {
            match self.wait_sync() {
                Ok(()) => self.recycle(prev),
                Err(e) => {
                    self.queue.fail(format!("syncing audit file: {e}"));
                    redo.push(prev);
                }
            }
        }
        if redo.is_empty() && !seg.failed {
            return self.submit(seg);
        }
        redo.push(seg);
        self.rewrite(redo)
    }

    /// Hands a written segment to the `fsync` stage, which acknowledges its events once the
    /// `fsync` succeeded. Without that stage (`FlushPerBatch`) the events count as written now.
    fn submit(&mut self, seg: Segment) -> bool {
        let Some(syncer) = &self.syncer else {
            self.dirty = true;
            self.queue.complete(seg.events);
            self.recycle(seg);
            return true;
        };
        let job = Job::Sync {
            file: Arc::clone(&self.file),
            events: seg.events,
        };
        if syncer.jobs.send(job).is_ok() {
            self.in_flight = Some(seg);
            true
        } else {
            // The fsync thread is gone (it never stops on its own): sync here instead.
            self.rewrite(vec![seg])
        }
    }

    /// The result of the running `fsync`.
    fn wait_sync(&self) -> std::io::Result<()> {
        match &self.syncer {
            Some(s) => s
                .results
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread stopped"))),
            None => Ok(()),
        }
    }

    /// Waits for the running `fsync`, and writes its segment again if it failed. `false` if the
    /// writer gives up.
    fn drain(&mut self) -> bool {
        let Some(prev) = self.in_flight.take() else {
            return true;
        };
        match self.wait_sync() {
            Ok(()) => {
                self.recycle(prev);
                true
            }
            Err(e) => {
                self.queue.fail(format!("syncing audit file: {e}"));
                self.rewrite(vec![prev])
            }
        }
    }

    /// Writes `segs` (consecutive and unacknowledged, the first one placed in the current file
    /// or not placed yet) again from memory and fsyncs them, retrying with backoff, then
    /// acknowledges their events. `false` if the writer gives up (the file stays unwritable at
    /// shutdown): then it is given up for good ([`Writer::gave_up`]).
    fn rewrite(&mut self, mut segs: Vec<Segment>) -> bool {
        if self.gave_up {
            return false;
        }
        let mut attempt = 0u32;
        while let Err(e) = self.try_rewrite(&mut segs) {
            self.queue.fail(format!("writing audit file: {e}"));
            attempt = attempt.saturating_add(1);
            if self.gave_up || (self.queue.is_closed() && attempt > 50) {
                self.give_up(&segs);
                return false;
            }
            let pause = Duration::from_millis(10u64 << attempt.min(7)).min(self.config.max_backoff);
            std::thread::sleep(pause);
        }
        self.queue.complete(segs.iter().map(|s| s.events).sum());
        self.queue.recovered();
        for seg in segs {
            self.recycle(seg);
        }
        true
    }

    /// Stops writing for good. The file is cut back, if it can be, to where the first of
    /// `segs` (never acknowledged) started, so that no torn line stays on disk; otherwise the
    /// next [`JsonlSink::open`] cuts the partial line.
    fn give_up(&mut self, segs: &[Segment]) {
        self.gave_up = true;
        if let Some(start) = segs.first().and_then(|s| s.start)
            && self.file.set_len(start).is_ok()
        {
            self.len = start;
        }
    }

    fn try_rewrite(&mut self, segs: &mut [Segment]) -> std::io::Result<()> {
        let Some(first) = segs.first_mut() else {
            return Ok(());
        };
        self.place(first)?;
        let start = first.start.unwrap_or(self.len);
        // Everything from the first unacknowledged byte is cut (a torn write, or lines whose
        // fsync failed), so each record ends up in the file once, in order.
        self.file.set_len(start)?;
        self.len = start;
        for seg in segs.iter_mut() {
            seg.start = Some(self.len);
            seg.written = 0;
            write_bytes(&self.file, &seg.buf, self.config.faults.as_ref())?;
            self.len = self.len.saturating_add(seg.buf.len() as u64);
            seg.written = seg.buf.len();
        }
        sync_data(&self.file, self.config.faults.as_ref())?;
        self.dirty = false;
        Ok(())
    }

    /// Redacts, chains and writes `batch` (the events stay in it), handing each segment to the
    /// `fsync` stage. `false` if the writer gives up.
    fn write_batch(&mut self, batch: &mut [AuditEvent]) -> bool {
        let max = self.config.max_file_bytes;
        let mut seg = self.segment();
        // A full file is replaced before the first record: count from zero then.
        let mut projected = if self.len >= max { 0 } else { self.len };
        for event in batch.iter_mut() {
            self.config.redactor.redact(event);
            seg.events = seg.events.saturating_add(1);
            let before = seg.buf.len();
            if let Err(e) = self.chainer.push_line(event, &mut seg.buf) {
                self.queue.fail(e.to_string());
                continue;
            }
            projected = projected.saturating_add((seg.buf.len() - before) as u64);
            if projected >= max {
                // The file is full after this record: the next one starts a new file.
                if !self.finish(seg) {
                    return false;
                }
                seg = self.segment();
                projected = 0;
            } else if seg.buf.len() - seg.written >= STREAM_BYTES {
                self.stream(&mut seg);
            }
        }
        seg.events == 0 || self.finish(seg)
    }

    /// Empties `batch` for the next one: the events are dropped on the `fsync` thread, if
    /// there is one, and `batch` becomes an emptied vector from there.
    fn free(&mut self, batch: &mut Vec<AuditEvent>) {
        let Some(syncer) = &self.syncer else {
            batch.clear();
            return;
        };
        let spare = syncer.spare_batches.try_recv().unwrap_or_default();
        let spent = std::mem::replace(batch, spare);
        // Should the thread be gone, the events are dropped with the unsent job.
        let _ = syncer.jobs.send(Job::Free(spent));
    }

    fn after_batch(&mut self, n: u64) -> std::io::Result<()> {
        self.since_checkpoint = self.since_checkpoint.saturating_add(n);
        if self.config.signer.is_some() && self.since_checkpoint >= self.config.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Starts a new file, whose first record is `first_seq`, if the current one is full.
    fn rotate_if_full(&mut self, first_seq: u64) -> std::io::Result<()> {
        if self.len >= self.config.max_file_bytes {
            // The old file is settled first, so a rewrite after a failure never spans files.
            self.settle()?;
            self.file = Arc::new(new_file(&self.config, first_seq)?);
            self.len = 0;
        }
        Ok(())
    }

    /// Waits until everything written is fsynced.
    fn settle(&mut self) -> std::io::Result<()> {
        if !self.drain() || self.gave_up {
            return Err(std::io::Error::other("audit file unwritable"));
        }
        if let Some(e) = &self.sync_lost {
            return Err(std::io::Error::other(format!(
                "an earlier fsync of the audit file failed: {e}"
            )));
        }
        if self.dirty {
            if let Err(e) = sync_data(&self.file, self.config.faults.as_ref()) {
                self.sync_lost = Some(e.to_string());
                return Err(e);
            }
            self.dirty = false;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> std::io::Result<()> {
        if self.config.signer.is_none() {
            return Ok(());
        }
        // A checkpoint never attests records that are not on disk.
        self.settle()?;
        let Some(signer) = &self.config.signer else {
            return Ok(());
        };
        let signed = signer.sign_chain(&self.chainer, UnixTime::from(SystemTime::now()));
        // The log first: it is what a restart resumes from and what verifiers read.
        let entry = LogEntry::new(&signed, self.chainer.tree());
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.checkpoint_log_path())?;
        log.write_all(format!("{}\n", entry.to_line()).as_bytes())?;
        log.sync_data()?;
        let path = self.config.checkpoint_path();
        let tmp = path.with_extension("checkpoint.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(signed.note.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&self.config.dir);
        if let Some(cb) = &self.config.on_checkpoint {
            cb(&signed);
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Whether a timer checkpoint is due (a quiet trail is attested too).
    fn timer_due(&self) -> bool {
        self.config.signer.is_some()
            && self
                .config
                .checkpoint_interval
                .is_some_and(|every| self.last_checkpoint.elapsed() >= every)
    }

    /// How long the writer may wait for events before a timer checkpoint is due.
    fn until_timer(&self) -> Duration {
        match (&self.config.signer, self.config.checkpoint_interval) {
            (Some(_), Some(every)) => every
                .saturating_sub(self.last_checkpoint.elapsed())
                .min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }

    /// After giving up: fails every waiting and later flush, reports the lost events (those
    /// of the batch being written, of the segment being fsynced and those still queued) and
    /// stops.
    fn abandon(self) {
        let lost = self.queue.give_up();
        tracing::error!(target: "palisade_audit", lost, "audit file unwritable at shutdown");
        self.stop();
    }

    /// Stops the `fsync` stage (after [`Writer::settle`], it has nothing left to do).
    fn stop(mut self) {
        if let Some(Syncer { jobs, thread, .. }) = self.syncer.take() {
            drop(jobs);
            let _ = thread.join();
        }
    }
}

/// The second stage of the writer: `fsync`s a written segment while the writer serializes and
/// writes the next one, and acknowledges the segment's events once its `fsync` succeeded.
struct Syncer {
    jobs: mpsc::Sender<Job>,
    results: mpsc::Receiver<std::io::Result<()>>,
    /// Emptied batch vectors handed back for reuse.
    spare_batches: mpsc::Receiver<Vec<AuditEvent>>,
    thread: JoinHandle<()>,
}

enum Job {
    /// `fsync` the file, then acknowledge `events`.
    Sync { file: Arc<File>, events: usize },
    /// Drop a written batch's events here, off the writer's thread (freeing an event's
    /// strings costs about as much as redacting it), and hand the emptied vector back.
    Free(Vec<AuditEvent>),
}

impl Syncer {
    fn start(queue: Arc<Queue<AuditEvent>>, faults: Option<FaultHook>) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (result_tx, results) = mpsc::channel();
        let (spare_tx, spare_batches) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("palisade-fsync".into())
            .spawn(move || {
                for job in job_rx {
                    let sent = match job {
                        Job::Sync { file, events } => {
                            let result = sync_data(&file, faults.as_ref());
                            if result.is_ok() {
                                // Acknowledged here rather than by the writer, so that a
                                // waiting `flush` returns as soon as its `fsync` is done.
                                queue.complete(events);
                            }
                            result_tx.send(result).is_ok()
                        }
                        Job::Free(mut batch) => {
                            batch.clear();
                            spare_tx.send(batch).is_ok()
                        }
                    };
                    if !sent {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs,
            results,
            spare_batches,
            thread,
        })
    }
}

/// Where an injected I/O failure strikes, in tests of the recovery paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoStep {
    /// A write of record lines.
    Write,
    /// An `fsync` of record lines.
    Sync,
}

/// Decides, for each write or `fsync` of record lines, whether it fails.
type FaultHook = Arc<dyn Fn(IoStep) -> bool + Send + Sync>;

fn write_bytes(mut file: &File, bytes: &[u8], faults: Option<&FaultHook>) -> std::io::Result<()> {
    if faults.is_some_and(|hook| hook(IoStep::Write)) {
        // A torn write: part of the bytes reach the file before the error.
        file.write_all(bytes.get(..bytes.len() / 2).unwrap_or(&[]))?;
        return Err(std::io::Error::other("injected write failure"));
    }
    file.write_all(bytes)
}

fn sync_data(file: &File, faults: Option<&FaultHook>) -> std::io::Result<()> {
    if faults.is_some_and(|hook| hook(IoStep::Sync)) {
        return Err(std::io::Error::other("injected fsync failure"));
    }
    file.sync_data()
}

fn sync_dir(dir: &Path) {
    // Makes a new or renamed entry durable on Unix; not supported (and not needed) everywhere.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn new_file(config: &JsonlConfig, first_seq: u64) -> std::io::Result<File> {
    let path = config
        .dir
        .join(format!("{}-{first_seq:020}.jsonl", config.prefix));
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    sync_dir(&config.dir);
    Ok(f)
}

/// Bytes of record lines handed to `write` at a time while a batch is serialized: small
/// enough that they are still in the CPU cache when the kernel copies them.
const STREAM_BYTES: usize = 128 << 10;

/// The record lines of one batch that go to one file.
struct Segment {
    /// The sequence number of the first record.
    first: u64,
    buf: Vec<u8>,
    /// The file's length before the first byte of this segment was written, once it was.
    start: Option<u64>,
    /// How much of `buf` is written.
    written: usize,
    /// How many events the segment acknowledges (an event that failed to serialize counts,
    /// reported through the sink's stats, so that `flush` does not wait for it forever).
    events: usize,
    /// A write of this segment failed: it is written again whole.
    failed: bool,
}

fn run(mut w: Writer) {
    let queue = Arc::clone(&w.queue);
    let mut batch = Vec::with_capacity(w.config.batch_max);
    loop {
        // While an fsync runs, take only what is already queued; with nothing queued, see the
        // fsync through (and rewrite its segment if it failed) before waiting for events.
        let wait = if w.in_flight.is_some() {
            Duration::ZERO
        } else {
            w.until_timer()
        };
        let (alive, flush) = queue.take(&mut batch, w.config.batch_max, wait);
        // Giving up is final (it can happen in any of the steps below, also while settling
        // for a checkpoint or a new file): nothing is written or signed after it.
        if !batch.is_empty() {
            let n = batch.len();
            if w.write_batch(&mut batch) {
                w.free(&mut batch);
                if let Err(e) = w.after_batch(n as u64) {
                    queue.fail(format!("checkpointing: {e}"));
                }
            }
            if w.gave_up {
                return w.abandon();
            }
        } else if alive && flush.is_none() {
            if !w.drain() {
                return w.abandon();
            }
            continue;
        }
        let timer = w.timer_due();
        if flush.is_some() || !alive || timer {
            let result = if (w.since_checkpoint > 0 || timer) && w.config.signer.is_some() {
                w.checkpoint()
            } else {
                w.settle()
            };
            if w.gave_up {
                return w.abandon();
            }
            match (result, flush) {
                (Ok(()), Some(ticket)) => queue.ack_flush(ticket),
                (Ok(()), None) => {}
                (Err(e), ticket) => {
                    queue.fail(format!("checkpoint: {e}"));
                    if let Some(ticket) = ticket {
                        queue.fail_flush(ticket, e.into());
                    }
                }
            }
        }
        if !alive {
            w.stop();
            return;
        }
    }
}

/// The JSON-lines file sink. See the module docs.
///
/// ```
/// use palisade_audit::file::{JsonlConfig, JsonlSink, verify_trail};
/// use palisade_audit::{Action, AuditEvent, AuditSink};
/// use palisade_core::time::UnixTime;
///
/// let dir = std::env::temp_dir().join(format!("palisade-audit-doc-{}", std::process::id()));
/// let sink = JsonlSink::open(JsonlConfig::new(&dir, "audit"))?;
/// sink.record(AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1)).meta("password", "hunter2"));
/// sink.flush()?; // durable from here on
/// let report = verify_trail(&dir, "audit", &[])?;
/// assert!(report.verdict.is_intact());
/// # sink.shutdown()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JsonlSink {
    queue: Arc<Queue<AuditEvent>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    flush_timeout: Duration,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("stats", &self.queue.stats())
            .finish_non_exhaustive()
    }
}

impl JsonlSink {
    /// Opens (or resumes) the trail and starts the writer thread.
    ///
    /// # Errors
    /// [`AuditError::Io`] if the directory or files cannot be opened; [`AuditError::Json`] if
    /// the newest record cannot be read to resume the chain.
    pub fn open(config: JsonlConfig) -> Result<Self, AuditError> {
        let queue = Arc::new(Queue::new(config.capacity, config.overflow));
        let flush_timeout = config.flush_timeout;
        let writer = Writer::open(config, Arc::clone(&queue))?;
        let thread = std::thread::Builder::new()
            .name("palisade-audit-jsonl".into())
            .spawn(move || run(writer))?;
        Ok(Self {
            queue,
            thread: Mutex::new(Some(thread)),
            flush_timeout,
        })
    }

    /// Waits until every event recorded before this call is written per the durability policy
    /// (and checkpointed, if a signer is configured).
    ///
    /// # Errors
    /// [`AuditError::Pending`] if the flush timeout passes first (the events stay queued);
    /// [`AuditError::Io`] if the `fsync` or the checkpoint failed; [`AuditError::Unwritable`]
    /// once the writer gave up on events.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.queue.wait_durable(self.flush_timeout)
    }

    /// Stops accepting events, writes what is queued, signs a final checkpoint and stops the
    /// writer. Later `record` calls drop their events (counted in [`SinkStats::dropped`]).
    ///
    /// # Errors
    /// [`AuditError::Pending`] if the writer did not finish within the flush timeout (it then
    /// goes on in the background); [`AuditError::Io`] if the last `fsync` or checkpoint failed;
    /// [`AuditError::Unwritable`] if the writer gave up on events.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        let result = self.queue.wait_durable(self.flush_timeout);
        self.queue.close();
        if !matches!(result, Err(AuditError::Pending { .. })) {
            let handle = self
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        result
    }

    /// The sink's counters.
    pub fn stats(&self) -> SinkStats {
        self.queue.stats()
    }
}

impl AuditSink for JsonlSink {
    fn record(&self, event: AuditEvent) {
        self.queue.push(event);
    }
}

impl Drop for JsonlSink {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use palisade_core::audit::Action;
    use palisade_core::time::UnixTime;

    use super::*;
    use crate::CheckpointVerifier;

    /// Which failures to inject: the second `fsync` fails, the third write fails (torn, half
    /// written), or both. Batches below 128 KiB are written with one write each, so the third
    /// write is that of the third batch, which the writer makes while the second batch's
    /// `fsync` runs.
    #[derive(Default)]
    struct Script {
        fail_sync: bool,
        fail_write: bool,
        /// The second `fsync` waits until the third batch is written. Only where the writer
        /// does not wait for that `fsync` first (no file rotation in between); a writer that
        /// did would never return from the test.
        hold: bool,
        durability: Durability,
        /// Writes wait for this, so that the events queue up into several batches.
        go: AtomicBool,
        writes: AtomicU64,
        syncs: AtomicU64,
        /// Writes when the second `fsync` returned, and when the third began: between them
        /// are the writes of the rewrite after a failure of the second `fsync`.
        writes_at_sync: [AtomicU64; 2],
    }

    impl Script {
        fn hook(&self, step: IoStep) -> bool {
            match step {
                IoStep::Write => {
                    while !self.go.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let index = self.writes.fetch_add(1, Ordering::SeqCst);
                    self.fail_write && index == 2
                }
                IoStep::Sync => match self.syncs.fetch_add(1, Ordering::SeqCst) {
                    1 => {
                        while self.hold && self.writes.load(Ordering::SeqCst) < 3 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        let w = self.writes.load(Ordering::SeqCst);
                        self.writes_at_sync[0].store(w, Ordering::SeqCst);
                        self.fail_sync
                    }
                    2 => {
                        let w = self.writes.load(Ordering::SeqCst);
                        self.writes_at_sync[1].store(w, Ordering::SeqCst);
                        false
                    }
                    _ => false,
                },
            }
        }

        /// Writes made between the second `fsync` and the third.
        fn writes_between(&self) -> u64 {
            let [a, b] = &self.writes_at_sync;
            b.load(Ordering::SeqCst) - a.load(Ordering::SeqCst)
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("palisade-audit-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    /// Records `n` events through a sink with `script`'s failures and checks that every event
    /// is in the trail exactly once, in order, that the trail verifies against the final
    /// checkpoint, and that the failures happened. Returns the script, to check what the
    /// hook saw.
    fn run_script(name: &str, script: Script, max_file_bytes: u64) -> Arc<Script> {
        const N: u64 = 400;
        let dir = temp_dir(name);
        let durability = script.durability;
        let script = Arc::new(script);
        let s = Arc::clone(&script);
        let signer = CheckpointSigner::from_seed("k", "test/audit", &[7; 32]).unwrap();
        let verifier = signer.verifier();
        let sink = JsonlSink::open(
            JsonlConfig::new(&dir, "audit")
                .batch_max(16)
                .durability(durability)
                .max_file_bytes(max_file_bytes)
                .checkpoints(signer, 100)
                .inject_faults(move |step| s.hook(step)),
        )
        .unwrap();
        for i in 0..N {
            sink.record(
                AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(i))
                    .meta("i", i.to_string())
                    .meta("password", "hunter2"),
            );
        }
        script.go.store(true, Ordering::SeqCst);
        sink.flush().unwrap();
        let stats = sink.stats();
        assert_eq!(stats.written, N);
        assert!(stats.write_failures >= 1, "{stats:?}");
        sink.shutdown().unwrap();

        let files = trail_files(&dir, "audit").unwrap();
        if max_file_bytes < 1 << 20 {
            assert!(files.len() >= 3, "{files:?}");
        }
        let mut next = 0u64;
        for f in &files {
            let text = fs::read_to_string(f).unwrap();
            assert!(!text.contains("hunter2"));
            let name = f.file_name().unwrap().to_str().unwrap();
            assert_eq!(name, format!("audit-{next:020}.jsonl"));
            for line in text.lines() {
                let rec = ChainRecord::from_line(line.as_bytes()).unwrap();
                assert_eq!(rec.seq, next, "{name}");
                assert_eq!(rec.event.metadata["i"], next.to_string());
                next += 1;
            }
        }
        assert_eq!(next, N);
        assert_checkpointed(&dir, &verifier, N, N, name);
        let _ = fs::remove_dir_all(&dir);
        script
    }

    /// Checks that the trail in `dir` holds `records` intact records and that the latest
    /// checkpoint, signed by `verifier`'s key, attests the first `attested` of them.
    fn assert_checkpointed(
        dir: &Path,
        verifier: &CheckpointVerifier,
        records: u64,
        attested: u64,
        name: &str,
    ) {
        let note = fs::read_to_string(dir.join("audit.checkpoint")).unwrap();
        let cp = verifier.verify(&note, "test/audit").unwrap();
        assert_eq!(cp.size(), attested, "{name}");
        let report = verify_trail(dir, "audit", &[cp]).unwrap();
        let verdict = &report.verdict;
        assert!(
            matches!(verdict, Verdict::Intact { records: r, attested: a, .. }
                if (*r, *a) == (records, attested)),
            "{name}: {report:?}"
        );
    }

    #[test]
    fn failures_while_a_later_batch_is_written_rewrite_both_batches() {
        // The second batch's fsync is held until the third batch is written, which the writer
        // does without waiting for that fsync: the failures meet a later batch.
        let fsync = Durability::FsyncPerBatch;
        for (name, fail_sync, fail_write, rewritten) in [
            // The fsync of batch 2 fails after batch 3 was written: one rewrite writes both
            // segments again, then fsyncs them.
            ("fsync", true, false, 2),
            // The write of batch 3 fails while the fsync of batch 2 runs (and succeeds):
            // batch 3 alone is written again.
            ("write", false, true, 1),
            // Both fail: one rewrite writes both segments again.
            ("both", true, true, 2),
        ] {
            let script = Script {
                fail_sync,
                fail_write,
                durability: fsync,
                hold: true,
                ..Script::default()
            };
            let script = run_script(name, script, 64 << 20);
            assert_eq!(script.writes_between(), rewritten, "{name}");
        }
    }

    #[test]
    fn failures_around_a_file_rotation_are_written_again_in_the_right_file() {
        // With 8 KiB files the writer starts a new file every few batches and settles the old
        // file first, so the failures may meet a rotation instead of a later batch. Under
        // `FlushPerBatch` there is no fsync stage: the torn write is recovered alone.
        let flush = Durability::FlushPerBatch;
        let fsync = Durability::FsyncPerBatch;
        for (name, fail_sync, fail_write, durability) in [
            ("rot-fsync", true, false, fsync),
            ("rot-write", false, true, fsync),
            ("rot-both", true, true, fsync),
            ("rot-flush-write", false, true, flush),
        ] {
            let script = Script {
                fail_sync,
                fail_write,
                durability,
                ..Script::default()
            };
            let script = run_script(name, script, 8 << 10);
            assert!(script.writes.load(Ordering::SeqCst) >= 3, "{name}");
        }
    }

    /// A disk that breaks after `ok_writes` more writes: every later write fails torn, every
    /// later `fsync` fails.
    #[derive(Default)]
    struct Breaks {
        broken: AtomicBool,
        ok_writes: u64,
        writes: AtomicU64,
    }

    impl Breaks {
        fn hook(&self, step: IoStep) -> bool {
            if !self.broken.load(Ordering::SeqCst) {
                return false;
            }
            match step {
                IoStep::Write => self.writes.fetch_add(1, Ordering::SeqCst) >= self.ok_writes,
                IoStep::Sync => true,
            }
        }
    }

    fn event(i: u64) -> AuditEvent {
        AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(i)).meta("i", i.to_string())
    }

    fn signer() -> CheckpointSigner {
        CheckpointSigner::from_seed("k", "test/audit", &[7; 32]).unwrap()
    }

    /// Opens a sink on `disk` in `dir`, configured by `config` (a signer from [`signer`]), with
    /// a short flush timeout; records `kept` events and flushes them, then breaks the disk and
    /// records `more`.
    fn record_across_a_break(
        dir: &Path,
        disk: &Arc<Breaks>,
        kept: u64,
        more: u64,
        config: impl FnOnce(JsonlConfig) -> JsonlConfig,
    ) -> (JsonlSink, CheckpointVerifier) {
        let d = Arc::clone(disk);
        let base = JsonlConfig::new(dir, "audit")
            .flush_timeout(Duration::from_millis(20))
            .inject_faults(move |step| d.hook(step));
        let sink = JsonlSink::open(config(base)).unwrap();
        for i in 0..kept {
            sink.record(event(i));
        }
        flush_answer(&sink).unwrap();
        disk.broken.store(true, Ordering::SeqCst);
        for i in kept..kept + more {
            sink.record(event(i));
        }
        (sink, signer().verifier())
    }

    /// Flushes until the writer answers (a slow machine may need more than one timeout).
    fn flush_answer(sink: &JsonlSink) -> Result<(), AuditError> {
        loop {
            match sink.flush() {
                Err(AuditError::Pending { .. }) => {}
                other => return other,
            }
        }
    }

    #[test]
    fn giving_up_at_shutdown_is_final_and_signs_nothing_more() {
        // The first segment after the break is written, then its fsync fails and every write
        // fails torn. With a checkpoint after every batch, the checkpoint waits for that
        // fsync and meets the give-up there; with a file per record, the next record's new
        // file does. Neither is the batch's own write.
        give_up_case("give-up-checkpoint", 1, 64 << 20);
        give_up_case("give-up-rotation", 1000, 1);
    }

    fn give_up_case(name: &str, checkpoint_every: u64, max_file_bytes: u64) {
        const KEPT: u64 = 20;
        const LOST: u64 = 30;
        let dir = temp_dir(name);
        let disk = Arc::new(Breaks {
            ok_writes: 1,
            ..Breaks::default()
        });
        let (sink, verifier) = record_across_a_break(&dir, &disk, KEPT, LOST, |c| {
            c.checkpoints(signer(), checkpoint_every)
                .max_file_bytes(max_file_bytes)
                .max_backoff(Duration::from_millis(1))
        });
        // The writer retries until shut down; then it gives up.
        assert!(matches!(sink.flush(), Err(AuditError::Pending { .. })));
        assert!(sink.shutdown().is_err());
        let writer = sink.thread.lock().unwrap().take().unwrap();
        writer.join().unwrap();

        match flush_answer(&sink) {
            Err(AuditError::Unwritable { lost }) => assert_eq!(lost, LOST, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let stats = sink.stats();
        assert_eq!(
            (stats.written, stats.lost, stats.pending),
            (KEPT, LOST, 0),
            "{name}"
        );
        drop(sink);

        assert_checkpointed(&dir, &verifier, KEPT, KEPT, name);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_fsync_under_flush_per_batch_fails_the_flush_and_signs_nothing_more() {
        const KEPT: u64 = 20;
        const MORE: u64 = 30;
        let dir = temp_dir("flush-fsync");
        let disk = Arc::new(Breaks {
            ok_writes: u64::MAX,
            ..Breaks::default()
        });
        let (sink, verifier) = record_across_a_break(&dir, &disk, KEPT, MORE, |c| {
            c.durability(Durability::FlushPerBatch)
                .checkpoints(signer(), 1000)
        });
        assert!(matches!(flush_answer(&sink), Err(AuditError::Io(_))));
        // The fsync would succeed now, but the bytes it failed for may be gone from the
        // page cache: the flush still fails, and no checkpoint covers them.
        disk.broken.store(false, Ordering::SeqCst);
        assert!(matches!(flush_answer(&sink), Err(AuditError::Io(_))));
        assert!(matches!(sink.shutdown(), Err(AuditError::Io(_))));
        assert!(sink.thread.lock().unwrap().is_none());
        let stats = sink.stats();
        assert_eq!((stats.written, stats.lost), (KEPT + MORE, 0));
        drop(sink);

        assert_checkpointed(&dir, &verifier, KEPT + MORE, KEPT, "flush-fsync");
        let _ = fs::remove_dir_all(&dir);
    }
}
