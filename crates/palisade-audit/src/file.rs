//! The JSON-lines file sink: a chained, rotated, fsynced audit trail on local disk.
//!
//! [`JsonlSink::record`] redacts nothing and writes nothing on the caller's thread: it queues
//! the event (bounded, see [`Overflow`]) and returns. A background thread takes everything
//! queued as one batch, redacts each event, chains it ([`Chainer`]), appends the record lines to
//! the current file (one `write` per 128 KiB, while the lines are still in the CPU cache), and
//! then applies the durability policy.
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
//! - [`Durability::FsyncPerBatch`] (default): after each batch the file is `fsync`ed
//!   (`sync_data`) before the batch counts as written; [`JsonlSink::flush`] returning `Ok` means
//!   every event recorded before the call is on stable storage. A crash loses at most the batch
//!   being written, which no `flush` has confirmed.
//! - [`Durability::FlushPerBatch`]: written to the OS (survives a process crash, not a power
//!   loss); a signed checkpoint always forces an `fsync` first, so a checkpoint never attests
//!   records that are not on disk.
//!
//! On start, the sink resumes the chain from the last record of the newest file; a partial last
//! line (a crash in the middle of a write) is cut off first. Write errors (disk full, ...) are
//! retried with backoff; the batch stays in memory and the file is truncated back to its length
//! before the failed write, so nothing is lost or written twice. Only one process may write one
//! trail.
//!
//! # Errors and panics
//! [`JsonlSink::open`] fails with [`AuditError::Io`] or, if the newest record is unreadable,
//! [`AuditError::Json`]. `record` never fails or panics.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_core::audit::{AuditEvent, AuditSink};

use crate::AuditError;
use crate::chain::{ChainRecord, Chainer, Verdict, Verifier};
use crate::checkpoint::{Checkpoint, CheckpointSigner, SignedCheckpoint};
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
    on_checkpoint: Option<CheckpointCallback>,
    flush_timeout: Duration,
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
            on_checkpoint: None,
            flush_timeout: Duration::from_secs(30),
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

    /// Also hands each signed checkpoint to `callback` (to publish it away from the trail).
    /// It runs on the writer thread: keep it quick.
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

    /// Where the latest checkpoint note is kept.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join(format!("{}.checkpoint", self.prefix))
    }
}

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
}

/// Verifies every file of a trail in order as one chain, against `checkpoints` (already
/// signature-checked with [`CheckpointVerifier::verify`](crate::CheckpointVerifier::verify)).
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
    let mut starts = Vec::new();
    let mut seen = 0u64;
    for path in trail_files(dir, prefix)? {
        let data = fs::read(&path)?;
        starts.push((seen, path));
        v.push_lines(&data);
        let lines = if data.is_empty() {
            0
        } else {
            let parts = data.split(|b| *b == b'\n').count() as u64;
            parts.saturating_sub(u64::from(data.ends_with(b"\n")))
        };
        seen = seen.saturating_add(lines);
        if v.is_broken() {
            break;
        }
    }
    let verdict = v.finish();
    let location = match &verdict {
        Verdict::Broken { index, .. } => starts
            .iter()
            .rev()
            .find(|(start, _)| start <= index)
            .map(|(start, path)| (path.clone(), index.saturating_sub(*start).saturating_add(1))),
        Verdict::Intact { .. } => None,
    };
    Ok(TrailReport { verdict, location })
}

struct Writer {
    config: JsonlConfig,
    chainer: Chainer,
    file: File,
    len: u64,
    since_checkpoint: u64,
    dirty: bool,
}

impl Writer {
    fn open(config: JsonlConfig) -> Result<Self, AuditError> {
        fs::create_dir_all(&config.dir)?;
        let files = trail_files(&config.dir, &config.prefix)?;
        let mut chainer = Chainer::new();
        let mut current = None;
        for path in files.iter().rev() {
            let mut f = OpenOptions::new().read(true).write(true).open(path)?;
            let mut data = Vec::new();
            f.read_to_end(&mut data)?;
            let keep = data
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p.saturating_add(1));
            if keep < data.len() {
                // A partial line from an interrupted write: never confirmed, cut it off.
                f.set_len(keep as u64)?;
                f.sync_all()?;
                data.truncate(keep);
            }
            if current.is_none() {
                current = Some((path.clone(), keep as u64));
            }
            let body = data.strip_suffix(b"\n").unwrap_or(&data);
            if let Some(last) = body
                .rsplit(|b| *b == b'\n')
                .next()
                .filter(|l| !l.is_empty())
            {
                let rec = ChainRecord::from_line(last)?;
                chainer = Chainer::resume(rec.seq.saturating_add(1), rec.hash);
                break;
            }
        }
        let (file, len) = match current {
            Some((path, len)) => (OpenOptions::new().append(true).open(path)?, len),
            None => (new_file(&config, 0)?, 0),
        };
        Ok(Self {
            config,
            chainer,
            file,
            len,
            since_checkpoint: 0,
            dirty: false,
        })
    }

    /// Writes the not yet written tail of `seg` to the file without syncing, while it is
    /// still in the CPU cache. On an error the file is cut back to before the segment and the
    /// whole segment is left to [`Writer::finish_segment`] and its retries.
    fn stream(&mut self, seg: &mut Segment) {
        if seg.start.is_none() {
            if self.rotate_if_full(seg.first).is_err() {
                return;
            }
            seg.start = Some(self.len);
        }
        let part = seg.buf.get(seg.written..).unwrap_or(&[]);
        match self.file.write_all(part) {
            Ok(()) => {
                self.len = self.len.saturating_add(part.len() as u64);
                seg.written = seg.buf.len();
                self.dirty = true;
            }
            Err(_) => self.unwind(seg),
        }
    }

    /// Writes the rest of `seg` and applies the durability policy. On an error the file is cut
    /// back to before the segment, so a retry writes the whole segment once.
    fn finish_segment(&mut self, seg: &mut Segment) -> std::io::Result<()> {
        if seg.start.is_none() {
            self.rotate_if_full(seg.first)?;
            seg.start = Some(self.len);
        }
        let part = seg.buf.get(seg.written..).unwrap_or(&[]);
        let result = self.file.write_all(part).and_then(|()| {
            if self.config.durability == Durability::FsyncPerBatch {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            self.unwind(seg);
            return Err(e);
        }
        self.len = self.len.saturating_add(part.len() as u64);
        self.dirty = self.config.durability != Durability::FsyncPerBatch;
        seg.start = None;
        seg.written = 0;
        seg.buf.clear();
        Ok(())
    }

    /// Cuts any part of `seg` already written, so that nothing is written twice.
    fn unwind(&mut self, seg: &mut Segment) {
        if let Some(start) = seg.start.take() {
            let _ = self.file.set_len(start);
            let _ = self.file.seek(SeekFrom::End(0));
            self.len = start;
        }
        seg.written = 0;
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
            self.sync()?;
            self.file = new_file(&self.config, first_seq)?;
            self.len = 0;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> std::io::Result<()> {
        let Some(signer) = &self.config.signer else {
            return Ok(());
        };
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        let signed = signer.sign(self.chainer.size(), self.chainer.head());
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
        Ok(())
    }
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
}

/// Writes the rest of `seg`, retrying with backoff; `false` if the writer gives up (the file
/// stays unwritable at shutdown).
fn finish_with_retries(w: &mut Writer, queue: &Queue<AuditEvent>, seg: &mut Segment) -> bool {
    let mut attempt = 0u32;
    while let Err(e) = w.finish_segment(seg) {
        queue.fail(format!("writing audit file: {e}"));
        attempt = attempt.saturating_add(1);
        if queue.is_closed() && attempt > 50 {
            return false;
        }
        std::thread::sleep(Duration::from_millis((10u64 << attempt.min(7)).min(1000)));
    }
    true
}

fn run(mut w: Writer, queue: &Queue<AuditEvent>) {
    let mut batch = Vec::with_capacity(w.config.batch_max);
    // The line buffer is kept from batch to batch: no large allocation per batch.
    let mut seg = Segment {
        first: w.chainer.size(),
        buf: Vec::with_capacity(1 << 16),
        start: None,
        written: 0,
    };
    loop {
        let (alive, flush) = queue.take(&mut batch, w.config.batch_max, Duration::from_secs(1));
        if !batch.is_empty() {
            let n = batch.len();
            let mut projected = w.len;
            for mut event in batch.drain(..) {
                w.config.redactor.redact(&mut event);
                if seg.buf.is_empty() {
                    seg.first = w.chainer.size();
                }
                let before = seg.buf.len();
                if let Err(e) = w.chainer.push_line(&event, &mut seg.buf) {
                    queue.fail(e.to_string());
                    continue;
                }
                projected = projected.saturating_add((seg.buf.len() - before) as u64);
                if projected >= w.config.max_file_bytes {
                    // The file is full after this record: the next one starts a new file.
                    if !finish_with_retries(&mut w, queue, &mut seg) {
                        tracing::error!(target: "palisade_audit", lost = n, "audit file unwritable at shutdown");
                        return;
                    }
                    projected = 0;
                } else if seg.buf.len() - seg.written >= STREAM_BYTES {
                    w.stream(&mut seg);
                }
            }
            if !seg.buf.is_empty() && !finish_with_retries(&mut w, queue, &mut seg) {
                tracing::error!(target: "palisade_audit", lost = n, "audit file unwritable at shutdown");
                return;
            }
            if let Err(e) = w.after_batch(n as u64) {
                queue.fail(format!("checkpointing: {e}"));
            }
            queue.complete(n);
        }
        if flush.is_some() || !alive {
            let result = if w.since_checkpoint > 0 {
                w.checkpoint()
            } else {
                w.sync()
            };
            if let Err(e) = result {
                queue.fail(format!("checkpoint: {e}"));
            }
        }
        if let Some(ticket) = flush {
            queue.ack_flush(ticket);
        }
        if !alive {
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
        let writer = Writer::open(config)?;
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("palisade-audit-jsonl".into())
            .spawn(move || run(writer, &q))?;
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
    /// [`AuditError::Pending`] if the flush timeout passes first (the events stay queued).
    pub fn flush(&self) -> Result<(), AuditError> {
        self.queue.wait_durable(self.flush_timeout)
    }

    /// Stops accepting events, writes what is queued, signs a final checkpoint and stops the
    /// writer. Later `record` calls drop their events (counted in [`SinkStats::dropped`]).
    ///
    /// # Errors
    /// [`AuditError::Pending`] if the writer did not finish within the flush timeout.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        let result = self.queue.wait_durable(self.flush_timeout);
        self.queue.close();
        if result.is_ok() {
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
