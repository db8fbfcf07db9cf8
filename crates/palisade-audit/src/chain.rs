//! The hash chain that makes an audit trail tamper-evident, and its verifier.
//!
//! Every event is stored as a [`ChainRecord`]: a sequence number counted from 0, the previous
//! record's hash, this record's hash, and the event. The hash is
//!
//! ```text
//! hash(n) = SHA-256( "palisade-audit/chain/v1" || 0x00 || hash(n-1) || be64(n) || canonical(event n) )
//! hash(-1) = 32 zero bytes ("genesis")
//! ```
//!
//! where `canonical` is [`format::to_canonical_json`](crate::format::to_canonical_json). The
//! domain tag keeps these hashes apart from any other SHA-256 use; the sequence number makes a
//! deleted, inserted or reordered record visible even when events are identical.
//!
//! # The record line
//! File and log sinks write one record per line, in canonical form (no whitespace):
//!
//! ```text
//! {"seq":0,"prev":"<64 hex>","hash":"<64 hex>","event":{...canonical event...}}
//! ```
//!
//! # What the chain proves, and what it needs a checkpoint for
//! The chain alone detects any change, deletion, insertion or reordering *inside* a trail. It
//! cannot detect cutting records off the end, nor a full rewrite by someone who recomputes every
//! hash: SHA-256 has no key. Signed [checkpoints](crate::checkpoint) close both gaps: a checkpoint
//! is an Ed25519 signature over (size, head hash), kept apart from the trail; the [`Verifier`]
//! checks that the trail reaches each checkpoint's size with that checkpoint's head. Records after
//! the last checkpoint are reported as not yet attested ([`Verdict::Intact::attested`]); for a
//! trail closed with a final checkpoint, [`Verifier::require_attested`] rejects any record past it.
//!
//! # Errors and panics
//! Building records returns [`AuditError`] only if serialization fails (it does not in practice).
//! Verification never errors or panics on any input: a broken trail is a [`Verdict::Broken`]
//! value naming the first bad record.

use std::collections::BTreeMap;
use std::fmt;

use palisade_core::audit::AuditEvent;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AuditError;
use crate::checkpoint::Checkpoint;
use crate::format::{not_canonical, push_decimal, write_canonical_json};
use crate::merkle::{Frontier, TreeHash};

/// The domain tag hashed in front of every record (followed by one zero byte).
pub const DOMAIN_TAG: &[u8] = b"palisade-audit/chain/v1\0";

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The hash before the first record: 32 zero bytes.
    pub const GENESIS: Self = Self([0; 32]);

    /// The hash of record `seq` whose predecessor's hash is `prev` and whose canonical event
    /// bytes are `canonical_event`.
    pub fn compute(prev: &Self, seq: u64, canonical_event: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(DOMAIN_TAG);
        h.update(prev.0);
        h.update(seq.to_be_bytes());
        h.update(canonical_event);
        Self(h.finalize().into())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(self) -> String {
        let mut s = String::with_capacity(64);
        push_hex(&self.0, &mut s);
        s
    }

    /// Reads 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_val(*hi)?, hex_val(*lo)?),
                _ => return None,
            };
            *o = (hi << 4) | lo;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_digit(nibble: u8) -> u8 {
    match nibble & 0x0f {
        n @ 0..=9 => b'0' + n,
        n => b'a' + (n - 10),
    }
}

fn push_hex(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push(char::from(hex_digit(b >> 4)));
        out.push(char::from(hex_digit(*b)));
    }
}

/// One event in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRecord {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// The previous record's hash ([`ChainHash::GENESIS`] for record 0).
    pub prev: ChainHash,
    /// This record's hash.
    pub hash: ChainHash,
    /// The event, as stored (after redaction).
    pub event: AuditEvent,
}

#[derive(Deserialize)]
struct RawRecord {
    seq: u64,
    prev: String,
    hash: String,
    event: AuditEvent,
}

impl ChainRecord {
    /// The record's canonical line, without the trailing newline.
    ///
    /// # Errors
    /// As [`format::to_canonical_json`](crate::format::to_canonical_json).
    pub fn to_line(&self) -> Result<Vec<u8>, AuditError> {
        let mut event = Vec::with_capacity(384);
        write_canonical_json(&self.event, &mut event)?;
        let mut out = Vec::with_capacity(event.len() + 180);
        write_line(self.seq, &self.prev, &self.hash, &event, &mut out);
        Ok(out)
    }

    /// Reads a canonical record line (without its newline). The hash is not checked here:
    /// that is the [`Verifier`]'s job.
    ///
    /// # Errors
    /// [`AuditError::Json`] if the line is not a record or not in canonical form.
    pub fn from_line(line: &[u8]) -> Result<Self, AuditError> {
        let (record, _) = parse_line(line)?;
        Ok(record)
    }

    /// The canonical event bytes and whether this record's hash matches them and `prev`.
    fn hash_matches(&self, canonical_event: &[u8]) -> bool {
        ChainHash::compute(&self.prev, self.seq, canonical_event) == self.hash
    }
}

/// Parses a line strictly; returns the record and its canonical event bytes.
fn parse_line(line: &[u8]) -> Result<(ChainRecord, Vec<u8>), AuditError> {
    let raw: RawRecord = serde_json::from_slice(line)?;
    let (Some(prev), Some(hash)) = (
        ChainHash::from_hex(&raw.prev),
        ChainHash::from_hex(&raw.hash),
    ) else {
        return Err(not_canonical());
    };
    let mut event = Vec::with_capacity(line.len());
    write_canonical_json(&raw.event, &mut event)?;
    let mut again = Vec::with_capacity(line.len());
    write_line(raw.seq, &prev, &hash, &event, &mut again);
    if again != line {
        return Err(not_canonical());
    }
    Ok((
        ChainRecord {
            seq: raw.seq,
            prev,
            hash,
            event: raw.event,
        },
        event,
    ))
}

fn write_line(seq: u64, prev: &ChainHash, hash: &ChainHash, event: &[u8], out: &mut Vec<u8>) {
    out.reserve(event.len().saturating_add(180));
    write_line_head(seq, prev, out);
    out.extend_from_slice(&hash_hex(hash));
    out.extend_from_slice(b"\",\"event\":");
    out.extend_from_slice(event);
    out.push(b'}');
}

/// `{"seq":<seq>,"prev":"<prev hex>","hash":"`: the part of a record line before its hash.
fn write_line_head(seq: u64, prev: &ChainHash, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"seq\":");
    push_decimal(seq, out);
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(&hash_hex(prev));
    out.extend_from_slice(b"\",\"hash\":\"");
}

/// Lower-case hex of a hash, on the stack.
fn hash_hex(hash: &ChainHash) -> [u8; 64] {
    let mut hex = [0u8; 64];
    for (pair, b) in hex.chunks_exact_mut(2).zip(hash.0) {
        if let [hi, lo] = pair {
            *hi = hex_digit(b >> 4);
            *lo = hex_digit(b);
        }
    }
    hex
}

/// Appends events to a chain: assigns sequence numbers and hashes, and keeps the
/// [Merkle tree](crate::merkle) over the records' hashes.
///
/// A `Chainer` is the single writer of one chain; sinks own one each and resume it from a
/// verified state when they restart.
#[derive(Debug, Clone)]
pub struct Chainer {
    next_seq: u64,
    head: ChainHash,
    tree: Frontier,
    scratch: Vec<u8>,
}

impl Default for Chainer {
    fn default() -> Self {
        Self::new()
    }
}

impl Chainer {
    /// A new, empty chain.
    pub fn new() -> Self {
        Self::resume(ChainHash::GENESIS, Frontier::new())
    }

    /// Continues a chain whose last hash is `head` and whose Merkle tree is `tree` (its size is
    /// the next sequence number).
    pub fn resume(head: ChainHash, tree: Frontier) -> Self {
        Self {
            next_seq: tree.size(),
            head,
            tree,
            scratch: Vec::with_capacity(512),
        }
    }

    /// The Merkle root over the records so far.
    pub fn root(&self) -> TreeHash {
        self.tree.root()
    }

    /// The Merkle tree's frontier (to store beside a checkpoint, for a later resume).
    pub fn tree(&self) -> &Frontier {
        &self.tree
    }

    /// How many records the chain holds (the next sequence number).
    pub fn size(&self) -> u64 {
        self.next_seq
    }

    /// The last record's hash ([`ChainHash::GENESIS`] if empty).
    pub fn head(&self) -> ChainHash {
        self.head
    }

    /// Chains `event` and returns its record.
    ///
    /// # Errors
    /// As [`format::to_canonical_json`](crate::format::to_canonical_json); the chain is unchanged.
    pub fn push(&mut self, event: AuditEvent) -> Result<ChainRecord, AuditError> {
        self.scratch.clear();
        write_canonical_json(&event, &mut self.scratch)?;
        let (seq, prev, hash) = self.advance();
        Ok(ChainRecord {
            seq,
            prev,
            hash,
            event,
        })
    }

    /// Chains `event` and appends its record line and a newline to `out`; returns the record's
    /// sequence number and hash. The fast path of the file sink: one serialization per event.
    ///
    /// # Errors
    /// As [`Chainer::push`]; `out` and the chain are unchanged.
    pub fn push_line(
        &mut self,
        event: &AuditEvent,
        out: &mut Vec<u8>,
    ) -> Result<(u64, ChainHash), AuditError> {
        // The event is serialized once, straight into `out`, and hashed there: the hash covers
        // exactly the bytes written. Its 64 hex digits are filled in afterwards.
        let start = out.len();
        let seq = self.next_seq;
        let prev = self.head;
        write_line_head(seq, &prev, out);
        let hash_at = out.len();
        out.extend_from_slice(&[b'0'; 64]);
        out.extend_from_slice(b"\",\"event\":");
        let event_at = out.len();
        if let Err(e) = write_canonical_json(event, out) {
            out.truncate(start);
            return Err(e);
        }
        let hash = ChainHash::compute(&prev, seq, out.get(event_at..).unwrap_or(&[]));
        if let Some(slot) = out.get_mut(hash_at..hash_at.saturating_add(64)) {
            slot.copy_from_slice(&hash_hex(&hash));
        }
        out.extend_from_slice(b"}\n");
        self.head = hash;
        self.tree.push(&hash.0);
        self.next_seq = seq.saturating_add(1);
        Ok((seq, hash))
    }

    /// Chains `event` and returns `(seq, prev, hash, canonical event bytes)`, for sinks that
    /// store the parts in columns.
    ///
    /// # Errors
    /// As [`Chainer::push`].
    pub fn push_parts(
        &mut self,
        event: &AuditEvent,
    ) -> Result<(u64, ChainHash, ChainHash, Vec<u8>), AuditError> {
        let mut bytes = Vec::with_capacity(384);
        write_canonical_json(event, &mut bytes)?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&bytes);
        let (seq, prev, hash) = self.advance();
        Ok((seq, prev, hash, bytes))
    }

    fn advance(&mut self) -> (u64, ChainHash, ChainHash) {
        let seq = self.next_seq;
        let prev = self.head;
        let hash = ChainHash::compute(&prev, seq, &self.scratch);
        self.head = hash;
        self.tree.push(&hash.0);
        self.next_seq = seq.saturating_add(1);
        (seq, prev, hash)
    }
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("not a record"),
            Self::NotCanonical => f.write_str("not in canonical form (edited)"),
            Self::Sequence { expected, found } => write!(
                f,
                "sequence {found} where {expected} was expected (a deletion, insertion or reordering)"
            ),
            Self::PrevMismatch => f.write_str("does not follow the previous record's hash"),
            Self::HashMismatch => f.write_str("hash does not match its content (edited)"),
            Self::CheckpointMismatch { size } => write!(
                f,
                "the trail differs from the signed checkpoint of size {size} (rewritten)"
            ),
            Self::Truncated {
                checkpoint_size,
                records,
            } => write!(
                f,
                "the trail ends after {records} records, a checkpoint attests {checkpoint_size}"
            ),
            Self::Unattested { checkpoint_size } => write!(
                f,
                "not covered by a signed checkpoint (the last attests {checkpoint_size} records)"
            ),
            Self::BadCheckpoint => f.write_str("a stored checkpoint does not verify"),
        }
    }
}

/// Why a record broke the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakReason {
    /// The record is not a record (bad JSON, bad hex, a blank line).
    Malformed,
    /// The record decodes but is not in canonical form (edited whitespace, key order, ...).
    NotCanonical,
    /// The sequence number is not the expected one (a deletion, insertion or reordering).
    Sequence {
        /// The sequence number expected here.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// The record's `prev` is not the previous record's hash.
    PrevMismatch,
    /// The record's hash does not match its content.
    HashMismatch,
    /// The chain's head or Merkle root at a checkpoint's size is not the signed one (a
    /// rewrite).
    CheckpointMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// The trail ends before a checkpoint's size (records cut off the end).
    Truncated {
        /// How many records the checkpoint attests.
        checkpoint_size: u64,
        /// How many records the trail has.
        records: u64,
    },
    /// Records follow the last checkpoint although the trail was required to end there.
    Unattested {
        /// How many records the checkpoint attests.
        checkpoint_size: u64,
    },
    /// A checkpoint kept with the trail (in its checkpoint log or table) does not verify, or
    /// its stored Merkle frontier does not match its signed root.
    BadCheckpoint,
}

/// The result of verifying a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Every record checks out.
    Intact {
        /// How many records the chain holds (the next sequence number).
        records: u64,
        /// The last record's hash.
        head: ChainHash,
        /// How many records a signed checkpoint attests (0 without checkpoints). Records past
        /// this are chained but could have been appended by someone without the signing key.
        attested: u64,
    },
    /// The first bad record.
    Broken {
        /// The record's position in the input, from 0 (its line number minus one for a file).
        /// For a checkpoint or truncation failure: the position where the trail diverged or ended.
        index: u64,
        /// What is wrong.
        reason: BreakReason,
    },
}

impl Verdict {
    /// Whether the trail is intact.
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }
}

/// Checks records one at a time, streaming, and remembers the first bad one.
///
/// ```
/// use palisade_audit::{Action, AuditEvent, Chainer, Verifier};
/// use palisade_core::time::UnixTime;
///
/// let mut chain = Chainer::new();
/// let mut trail = Vec::new();
/// for i in 0..3 {
///     let event = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(i)).user_id("u1");
///     chain.push_line(&event, &mut trail).unwrap();
/// }
/// assert!(Verifier::new().verify_lines(&trail).is_intact());
/// trail[40] ^= 1; // flip one bit of the first record
/// assert!(!Verifier::new().verify_lines(&trail).is_intact());
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    start_seq: u64,
    next_seq: u64,
    head: ChainHash,
    /// The Merkle tree, when verifying from the start (or from a known frontier).
    tree: Option<Frontier>,
    index: u64,
    checkpoints: BTreeMap<u64, (ChainHash, TreeHash)>,
    require_attested: bool,
    broken: Option<(u64, BreakReason)>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// Verifies a trail from its first record (sequence 0, genesis hash), chain and Merkle
    /// tree.
    pub fn new() -> Self {
        Self::resume_tree(ChainHash::GENESIS, Frontier::new())
    }

    /// Verifies a trail that continues a verified one: its first record is `next_seq` and
    /// follows `head`. Without the tree, checkpoints are checked by their chain head only.
    pub fn resume(next_seq: u64, head: ChainHash) -> Self {
        Self {
            start_seq: next_seq,
            next_seq,
            head,
            tree: None,
            index: 0,
            checkpoints: BTreeMap::new(),
            require_attested: false,
            broken: None,
        }
    }

    /// Verifies a trail that continues a verified one whose Merkle tree is `tree`: chain
    /// heads and Merkle roots are both checked at each checkpoint.
    pub fn resume_tree(head: ChainHash, tree: Frontier) -> Self {
        let mut v = Self::resume(tree.size(), head);
        v.tree = Some(tree);
        v
    }

    /// The records verified so far (the next sequence number).
    pub fn size(&self) -> u64 {
        self.next_seq
    }

    /// The last verified record's hash.
    pub fn head(&self) -> ChainHash {
        self.head
    }

    /// The Merkle tree over the verified records, if kept.
    pub fn tree(&self) -> Option<&Frontier> {
        self.tree.as_ref()
    }

    /// Also checks the trail against a (signature-verified) checkpoint.
    #[must_use]
    pub fn checkpoint(mut self, checkpoint: &Checkpoint) -> Self {
        self.add_checkpoint(checkpoint);
        self
    }

    /// Adds a (signature-verified) checkpoint to check against.
    pub fn add_checkpoint(&mut self, checkpoint: &Checkpoint) {
        let signed = (checkpoint.head(), checkpoint.root());
        let size = checkpoint.size();
        // Two checkpoints of one size that disagree: a fork; one of them is not this trail's.
        let conflict = self
            .checkpoints
            .get(&size)
            .is_some_and(|seen| *seen != signed);
        if conflict || (size == self.next_seq && !self.matches(signed)) {
            self.fail(BreakReason::CheckpointMismatch { size });
        }
        self.checkpoints.insert(size, signed);
    }

    fn matches(&self, (head, root): (ChainHash, TreeHash)) -> bool {
        head == self.head && self.tree.as_ref().is_none_or(|t| t.root() == root)
    }

    /// Requires the trail to end exactly at the last checkpoint: for a trail closed with a final
    /// checkpoint, so that appended records are detected too.
    #[must_use]
    pub fn require_attested(mut self, yes: bool) -> Self {
        self.require_attested = yes;
        self
    }

    fn fail(&mut self, reason: BreakReason) {
        if self.broken.is_none() {
            self.broken = Some((self.index, reason));
        }
    }

    /// Checks one record line (without its newline).
    pub fn push_line(&mut self, line: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        match parse_line(line) {
            Ok((record, event)) => self.check(&record, &event),
            Err(_) => {
                let reason = if serde_json::from_slice::<RawRecord>(line).is_ok() {
                    BreakReason::NotCanonical
                } else {
                    BreakReason::Malformed
                };
                self.fail(reason);
            }
        }
        self.index = self.index.saturating_add(1);
    }

    /// Checks one record given as parts (as a database stores them): the sequence number, the
    /// hashes and the canonical event bytes.
    pub fn push_parts(&mut self, seq: u64, prev: ChainHash, hash: ChainHash, event: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        match crate::format::from_canonical_json(event) {
            Ok(ev) => {
                let record = ChainRecord {
                    seq,
                    prev,
                    hash,
                    event: ev,
                };
                self.check(&record, event);
            }
            Err(_) => self.fail(BreakReason::NotCanonical),
        }
        self.index = self.index.saturating_add(1);
    }

    fn check(&mut self, record: &ChainRecord, canonical_event: &[u8]) {
        if record.seq != self.next_seq {
            return self.fail(BreakReason::Sequence {
                expected: self.next_seq,
                found: record.seq,
            });
        }
        if record.prev != self.head {
            return self.fail(BreakReason::PrevMismatch);
        }
        if !record.hash_matches(canonical_event) {
            return self.fail(BreakReason::HashMismatch);
        }
        self.head = record.hash;
        if let Some(tree) = &mut self.tree {
            tree.push(&record.hash.0);
        }
        self.next_seq = self.next_seq.saturating_add(1);
        if let Some(signed) = self.checkpoints.get(&self.next_seq).copied()
            && !self.matches(signed)
        {
            let size = self.next_seq;
            self.fail(BreakReason::CheckpointMismatch { size });
        }
    }

    /// Checks a whole trail of newline-terminated record lines (a final line without newline
    /// is accepted) and returns the verdict.
    pub fn verify_lines(mut self, trail: &[u8]) -> Verdict {
        self.push_lines(trail);
        self.finish()
    }

    /// Checks newline-separated record lines; a trailing newline ends the last line.
    pub fn push_lines(&mut self, trail: &[u8]) {
        let body = trail.strip_suffix(b"\n").unwrap_or(trail);
        if body.is_empty() && !trail.is_empty() {
            // A lone newline: one blank (malformed) line.
            self.push_line(body);
            return;
        }
        if body.is_empty() {
            return;
        }
        for line in body.split(|b| *b == b'\n') {
            self.push_line(line);
            if self.broken.is_some() {
                return;
            }
        }
    }

    /// Whether a bad record was found so far.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The verdict over everything pushed so far, with truncation checked against the
    /// checkpoints.
    pub fn finish(self) -> Verdict {
        if let Some((index, reason)) = self.broken {
            return Verdict::Broken { index, reason };
        }
        let records = self.next_seq;
        let last_checkpoint = self.checkpoints.keys().next_back().copied();
        if let Some(size) = last_checkpoint {
            if size > records {
                return Verdict::Broken {
                    index: self.index,
                    reason: BreakReason::Truncated {
                        checkpoint_size: size,
                        records,
                    },
                };
            }
            if self.require_attested && records > size {
                return Verdict::Broken {
                    index: size.saturating_sub(self.start_seq),
                    reason: BreakReason::Unattested {
                        checkpoint_size: size,
                    },
                };
            }
        }
        Verdict::Intact {
            records,
            head: self.head,
            attested: last_checkpoint.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::audit::Action;
    use palisade_core::time::UnixTime;

    use super::*;

    fn trail(n: u64) -> (Vec<u8>, Chainer) {
        let mut c = Chainer::new();
        let mut out = Vec::new();
        for i in 0..n {
            let e = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(i)).user_id("u");
            c.push_line(&e, &mut out).unwrap();
        }
        (out, c)
    }

    #[test]
    fn hex_round_trip() {
        let h = ChainHash::compute(&ChainHash::GENESIS, 0, b"x");
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ChainHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(ChainHash::from_hex("zz"), None);
        assert_eq!(ChainHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn known_hash_layout() {
        // hash(0) over an empty event, computed independently with the documented layout.
        let mut h = Sha256::new();
        h.update(b"palisade-audit/chain/v1\0");
        h.update([0u8; 32]);
        h.update([0u8; 8]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(ChainHash::compute(&ChainHash::GENESIS, 0, b"").0, want);
    }

    #[test]
    fn lines_round_trip_and_verify() {
        let (t, c) = trail(5);
        let v = Verifier::new().verify_lines(&t);
        assert_eq!(
            v,
            Verdict::Intact {
                records: 5,
                head: c.head(),
                attested: 0
            }
        );
        let first = t.split(|b| *b == b'\n').next().unwrap();
        let rec = ChainRecord::from_line(first).unwrap();
        assert_eq!(rec.to_line().unwrap(), first);
        assert_eq!(rec.seq, 0);
    }

    #[test]
    fn resume_continues() {
        let (t, c) = trail(3);
        let mut c2 = Chainer::resume(c.head(), c.tree().clone());
        let mut more = Vec::new();
        c2.push_line(
            &AuditEvent::new(Action::KeyRotated, UnixTime::EPOCH),
            &mut more,
        )
        .unwrap();
        let mut all = t;
        all.extend_from_slice(&more);
        assert!(Verifier::new().verify_lines(&all).is_intact());
        assert!(
            Verifier::resume(3, c.head())
                .verify_lines(&more)
                .is_intact()
        );
        assert!(!Verifier::new().verify_lines(&more).is_intact());
    }

    #[test]
    fn reports_first_bad_line() {
        let (t, _) = trail(4);
        let mut lines: Vec<&[u8]> = t.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        lines.swap(1, 2);
        let joined = lines.join(&b'\n');
        match Verifier::new().verify_lines(&joined) {
            Verdict::Broken { index, reason } => {
                assert_eq!(index, 1);
                assert_eq!(
                    reason,
                    BreakReason::Sequence {
                        expected: 1,
                        found: 2
                    }
                );
            }
            v @ Verdict::Intact { .. } => panic!("{v:?}"),
        }
    }
}
