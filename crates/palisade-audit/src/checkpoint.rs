//! Signed checkpoints: Ed25519 signatures over the trail's Merkle tree head (and its chain
//! head), in the C2SP signed-note / tlog-checkpoint format, and C2SP cosignatures by witnesses.
//!
//! # Format
//! A checkpoint is a [C2SP signed note](https://c2sp.org/signed-note) whose text is a
//! [C2SP checkpoint](https://c2sp.org/tlog-checkpoint) body:
//!
//! ```text
//! <origin>                          e.g. "audit.example.com/prod"
//! <size>                            records in the trail, decimal
//! <base64 root hash>                the RFC 6962 Merkle root over the records (see merkle)
//! palisade-chain <base64 head>      extension line: the chain hash of record size-1
//! palisade-time <POSIX seconds>     extension line: when it was signed
//!
//! — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>
//! — <witness name> <base64(key id || timestamp (8 bytes, big endian) || signature)>
//! ```
//!
//! The log's signature covers the text up to and including the last body newline. The key id
//! is the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`, as C2SP defines for
//! Ed25519. Keys use the note key encodings: a verifier key is `<name>+<hex key id>+<base64(0x01
//! || public key)>`; a signer key is `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
//!
//! The chain head travels in an extension line (C2SP allows opaque extension lines) so that a
//! restarting sink can check the records after the checkpoint against the chain without the
//! Merkle tree of the whole trail. The time line makes checkpoints of a quiet trail (same size,
//! same root) distinct, so that timer checkpoints attest the quiet period and a gap between
//! their times is itself evidence. Tools that know only C2SP checkpoints read the first three
//! lines and verify the tree head as usual.
//!
//! # Witness cosignatures
//! A `Witness` checks that a checkpoint extends the last one it cosigned (a consistency
//! proof) and adds a [C2SP cosignature/v1](https://c2sp.org/tlog-cosignature) line: an Ed25519
//! signature, with key type `0x04` in its key id, over
//!
//! ```text
//! cosignature/v1
//! time <POSIX seconds>
//! <the checkpoint body>
//! ```
//!
//! [`WitnessVerifier::verify`] checks such a line for one witness key.
//!
//! # Security
//! Keep the verifier key and copies of the checkpoints away from the trail (another host, a
//! ticket, a witness). The signing key lives with the writer; whoever holds it can sign a
//! rewritten trail, so checkpoints published or cosigned elsewhere are what make a later rewrite
//! contradict an earlier signature. [`CheckpointVerifier::verify`] also checks the origin line,
//! so a checkpoint of one trail is not accepted for another.
//!
//! # Errors and panics
//! Parsing and verifying return [`AuditError::Checkpoint`] or [`AuditError::Key`]; never panic.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use palisade_core::random::SecureRandom;
use palisade_core::time::UnixTime;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::AuditError;
use crate::chain::{ChainHash, Chainer};
use crate::merkle::{Frontier, TreeHash};

/// The longest note [`CheckpointVerifier::verify`] reads, in bytes.
pub const MAX_NOTE_LEN: usize = 64 * 1024;

/// The most signature lines a note may carry (C2SP asks verifiers to accept at least 16).
pub const MAX_SIGNATURES: usize = 64;

const ED25519_TYPE: u8 = 0x01;
const COSIGNATURE_TYPE: u8 = 0x04;
const SIG_PREFIX: &str = "\u{2014} ";
const CHAIN_EXTENSION: &str = "palisade-chain ";
const TIME_EXTENSION: &str = "palisade-time ";

/// A trail's size, Merkle root and chain head, as attested by a valid signature.
///
/// Only [`CheckpointSigner::sign`] and [`CheckpointVerifier::verify`] make one, so holding a
/// `Checkpoint` means its signature was made or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: TreeHash,
    head: ChainHash,
    time: u64,
}

impl Checkpoint {
    /// The origin line: which trail this is.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many records the trail held.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 Merkle root over the records.
    pub fn root(&self) -> TreeHash {
        self.root
    }

    /// The hash of record `size - 1` ([`ChainHash::GENESIS`] for size 0).
    pub fn head(&self) -> ChainHash {
        self.head
    }

    /// When it was signed, in POSIX seconds.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// The note text that is signed (C2SP checkpoint body, ending in a newline).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{CHAIN_EXTENSION}{}\n{TIME_EXTENSION}{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0),
            B64.encode(self.head.0),
            self.time
        )
    }
}

/// A checkpoint and its signed note text, ready to store or publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// The signed note, text and signature line.
    pub note: String,
}

/// A signed note split into its text and signature lines, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note<'a> {
    /// The note text, with its final newline.
    pub text: &'a str,
    /// The signature lines: key name, key id and the signature bytes after the key id.
    pub signatures: Vec<NoteSignature<'a>>,
}

/// One signature line of a [`Note`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature<'a> {
    /// The key name.
    pub name: &'a str,
    /// The 4-byte key id.
    pub id: [u8; 4],
    /// What follows the key id.
    pub signature: Vec<u8>,
}

/// Splits a signed note (C2SP signed-note) into text and signature lines. Checks the form
/// only: no signature is verified.
///
/// # Errors
/// [`AuditError::Checkpoint`] if the note is too long, has control characters, no signature
/// block, a malformed signature line or more than [`MAX_SIGNATURES`] of them.
pub fn parse_note(note: &str) -> Result<Note<'_>, AuditError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(AuditError::Checkpoint("note too long"));
    }
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AuditError::Checkpoint("note has control characters"));
    }
    let sigs = note
        .strip_suffix('\n')
        .ok_or(AuditError::Checkpoint("note must end with a newline"))?;
    // The text ends at the last blank line.
    let split = sigs
        .rfind("\n\n")
        .ok_or(AuditError::Checkpoint("note has no signature block"))?;
    let (text, rest) = sigs.split_at(split.saturating_add(1));
    let rest = rest
        .strip_prefix('\n')
        .ok_or(AuditError::Checkpoint("note has no signature block"))?;
    let mut signatures = Vec::new();
    for line in rest.split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return Err(AuditError::Checkpoint("too many signatures"));
        }
        let body = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(AuditError::Checkpoint("malformed signature line"))?;
        let (name, b64) = body
            .split_once(' ')
            .ok_or(AuditError::Checkpoint("malformed signature line"))?;
        if !valid_name(name) {
            return Err(AuditError::Checkpoint("malformed key name"));
        }
        let blob = B64
            .decode(b64)
            .map_err(|_| AuditError::Checkpoint("signature is not base64"))?;
        let (Some(id), Some(signature)) = (blob.get(..4), blob.get(4..)) else {
            return Err(AuditError::Checkpoint("signature too short"));
        };
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(id);
        signatures.push(NoteSignature {
            name,
            id: key_id,
            signature: signature.to_vec(),
        });
    }
    Ok(Note { text, signatures })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('+')
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

fn valid_origin(origin: &str) -> bool {
    !origin.is_empty() && !origin.contains('\n') && origin.chars().all(|c| !c.is_control())
}

fn key_id(name: &str, kind: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(public);
    let d = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or(&[0; 4]));
    id
}

fn hex4(id: [u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(id))
}

/// An Ed25519 key with a note key name, for one signature type. Zeroized on drop.
struct NamedKey {
    name: String,
    kind: u8,
    key: SigningKey,
}

impl NamedKey {
    fn from_seed(name: &str, kind: u8, seed: &[u8; 32]) -> Result<Self, AuditError> {
        if !valid_name(name) {
            return Err(AuditError::Key(
                "key name must be non-empty, without spaces or '+'",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            kind,
            key: SigningKey::from_bytes(seed),
        })
    }

    fn generate(
        name: &str,
        kind: u8,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<Self, AuditError> {
        let mut seed = [0u8; 32];
        rng.fill(&mut seed)
            .map_err(|_| AuditError::Key("random source failed"))?;
        let key = Self::from_seed(name, kind, &seed);
        seed.zeroize();
        key
    }

    fn from_skey(skey: &str, kind: u8) -> Result<Self, AuditError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(AuditError::Key("signer key must start with PRIVATE+KEY+"))?;
        let mut parts = rest.split('+');
        let (Some(name), Some(id), Some(b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuditError::Key("signer key has the wrong number of fields"));
        };
        let mut raw = B64
            .decode(b64)
            .map_err(|_| AuditError::Key("signer key is not base64"))?;
        let result = match raw.as_slice() {
            [k, seed @ ..] if *k == kind && seed.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(seed);
                let key = Self::from_seed(name, kind, &s);
                s.zeroize();
                key
            }
            _ => Err(AuditError::Key(
                "signer key is not an ed25519 seed of this type",
            )),
        };
        raw.zeroize();
        let key = result?;
        if hex4(key.id()) != id.to_ascii_lowercase() {
            return Err(AuditError::Key("signer key id does not match the key"));
        }
        Ok(key)
    }

    fn to_skey_secret(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(self.kind);
        raw.extend_from_slice(self.key.as_bytes());
        let s = format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex4(self.id()),
            B64.encode(&raw)
        );
        raw.zeroize();
        s
    }

    fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.kind, self.key.verifying_key().as_bytes())
    }

    fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            kind: self.kind,
            id: self.id(),
            key: self.key.verifying_key(),
        }
    }
}

/// A public key with its note key name, for one signature type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PublicKey {
    name: String,
    kind: u8,
    id: [u8; 4],
    key: VerifyingKey,
}

impl PublicKey {
    fn new(name: &str, kind: u8, public: &[u8; 32]) -> Result<Self, AuditError> {
        if !valid_name(name) {
            return Err(AuditError::Key(
                "key name must be non-empty, without spaces or '+'",
            ));
        }
        let key = VerifyingKey::from_bytes(public)
            .map_err(|_| AuditError::Key("not an ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            kind,
            id: key_id(name, kind, public),
            key,
        })
    }

    fn from_vkey(vkey: &str, kind: u8) -> Result<Self, AuditError> {
        // The base64 key may itself hold '+': only the first two separate fields.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AuditError::Key(
                "verifier key has the wrong number of fields",
            ));
        };
        let raw = B64
            .decode(b64)
            .map_err(|_| AuditError::Key("verifier key is not base64"))?;
        let public: [u8; 32] = match raw.as_slice() {
            [k, rest @ ..] if *k == kind => rest
                .try_into()
                .map_err(|_| AuditError::Key("verifier key has the wrong length"))?,
            _ => return Err(AuditError::Key("verifier key is not of this type")),
        };
        let v = Self::new(name, kind, &public)?;
        if hex4(v.id) != id.to_ascii_lowercase() {
            return Err(AuditError::Key("verifier key id does not match the key"));
        }
        Ok(v)
    }

    fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(self.kind);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex4(self.id), B64.encode(&raw))
    }

    /// The signature bytes of this key's lines in `note` (those whose name and key id match).
    fn lines<'n>(&self, note: &'n Note<'_>) -> impl Iterator<Item = &'n [u8]> {
        let (name, id) = (self.name.clone(), self.id);
        note.signatures
            .iter()
            .filter(move |s| s.name == name && s.id == id)
            .map(|s| s.signature.as_slice())
    }
}

/// Signs checkpoints with an Ed25519 key. The key is zeroized on drop and never printed.
pub struct CheckpointSigner {
    origin: String,
    key: NamedKey,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.key.name)
            .field("origin", &self.origin)
            .field("key", &"***")
            .finish()
    }
}

impl CheckpointSigner {
    /// A signer named `name` (no spaces, no `+`) for the trail `origin`, from a 32-byte
    /// Ed25519 seed. The caller's copy of the seed is not touched; zeroize it.
    ///
    /// # Errors
    /// [`AuditError::Key`] for an invalid name or origin.
    pub fn from_seed(name: &str, origin: &str, seed: &[u8; 32]) -> Result<Self, AuditError> {
        Self::with_origin(NamedKey::from_seed(name, ED25519_TYPE, seed)?, origin)
    }

    fn with_origin(key: NamedKey, origin: &str) -> Result<Self, AuditError> {
        if !valid_origin(origin) {
            return Err(AuditError::Key("origin must be one non-empty line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            key,
        })
    }

    /// A new random key.
    ///
    /// # Errors
    /// [`AuditError::Key`] for an invalid name or origin, or if the random source fails.
    pub fn generate(
        name: &str,
        origin: &str,
        rng: &(impl SecureRandom + ?Sized),
    ) -> Result<Self, AuditError> {
        Self::with_origin(NamedKey::generate(name, ED25519_TYPE, rng)?, origin)
    }

    /// Reads a note signer key `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if it is malformed or its key id does not match.
    pub fn from_skey(skey: &str, origin: &str) -> Result<Self, AuditError> {
        Self::with_origin(NamedKey::from_skey(skey, ED25519_TYPE)?, origin)
    }

    /// The signer key in note encoding. It is a secret: store it like one.
    pub fn to_skey_secret(&self) -> String {
        self.key.to_skey_secret()
    }

    /// The origin line this signer writes.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            key: self.key.public(),
        }
    }

    /// Signs a checkpoint, made at `at`, for a trail of `size` records with Merkle root `root`
    /// and chain head `head`.
    pub fn sign(
        &self,
        size: u64,
        root: TreeHash,
        head: ChainHash,
        at: UnixTime,
    ) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            head,
            time: at.as_secs(),
        };
        let body = checkpoint.body();
        let sig = self.key.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key.id());
        blob.extend_from_slice(&sig.to_bytes());
        let note = format!(
            "{body}\n{SIG_PREFIX}{} {}\n",
            self.key.name,
            B64.encode(&blob)
        );
        SignedCheckpoint { checkpoint, note }
    }

    /// Signs a checkpoint, made at `at`, of everything `chain` holds.
    pub fn sign_chain(&self, chain: &Chainer, at: UnixTime) -> SignedCheckpoint {
        self.sign(chain.size(), chain.root(), chain.head(), at)
    }
}

/// Checks checkpoint signatures against one Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    key: PublicKey,
}

impl CheckpointVerifier {
    /// A verifier for the key `name` with the 32-byte Ed25519 public key `public`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if the name or the key is invalid.
    pub fn new(name: &str, public: &[u8; 32]) -> Result<Self, AuditError> {
        Ok(Self {
            key: PublicKey::new(name, ED25519_TYPE, public)?,
        })
    }

    /// Reads a note verifier key `<name>+<hex id>+<base64(0x01 || public key)>`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if it is malformed or its key id does not match.
    pub fn from_vkey(vkey: &str) -> Result<Self, AuditError> {
        Ok(Self {
            key: PublicKey::from_vkey(vkey, ED25519_TYPE)?,
        })
    }

    /// The verifier key in note encoding (public; publish it).
    pub fn to_vkey(&self) -> String {
        self.key.to_vkey()
    }

    /// Parses a signed checkpoint note, checks that one of its signatures is this key's and
    /// valid (and none of this key's is invalid), and that its origin is `origin`.
    ///
    /// # Errors
    /// [`AuditError::Checkpoint`] if the note is malformed, not for `origin`, or not signed
    /// by this key.
    pub fn verify(&self, note: &str, origin: &str) -> Result<Checkpoint, AuditError> {
        let parsed = parse_note(note)?;
        let checkpoint = parse_body(parsed.text)?;
        if checkpoint.origin != origin {
            return Err(AuditError::Checkpoint("checkpoint is for another origin"));
        }
        let mut found = false;
        for sig in self.key.lines(&parsed) {
            let sig = Signature::from_slice(sig)
                .map_err(|_| AuditError::Checkpoint("malformed signature"))?;
            if self
                .key
                .key
                .verify_strict(parsed.text.as_bytes(), &sig)
                .is_err()
            {
                return Err(AuditError::Checkpoint("bad signature"));
            }
            found = true;
        }
        if found {
            Ok(checkpoint)
        } else {
            Err(AuditError::Checkpoint("no signature by this key"))
        }
    }
}

/// Parses a checkpoint body (the note text): origin, size, root and the chain extension.
///
/// # Errors
/// [`AuditError::Checkpoint`] if it is malformed.
pub fn parse_body(body: &str) -> Result<Checkpoint, AuditError> {
    let body = body
        .strip_suffix('\n')
        .ok_or(AuditError::Checkpoint("malformed body"))?;
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(AuditError::Checkpoint(
            "checkpoint needs origin, size and hash lines",
        ));
    };
    if !valid_origin(origin) {
        return Err(AuditError::Checkpoint("malformed origin"));
    }
    let size = parse_decimal(size).ok_or(AuditError::Checkpoint("malformed size"))?;
    let root =
        decode_hash(root).ok_or(AuditError::Checkpoint("root must be base64 of 32 bytes"))?;
    let mut head = None;
    let mut time = None;
    for line in lines {
        // C2SP: extension lines must not be empty.
        if line.is_empty() {
            return Err(AuditError::Checkpoint("empty extension line"));
        }
        if let Some(h) = line.strip_prefix(CHAIN_EXTENSION) {
            if head.is_some() {
                return Err(AuditError::Checkpoint("two chain heads"));
            }
            head = Some(decode_hash(h).ok_or(AuditError::Checkpoint(
                "chain head must be base64 of 32 bytes",
            ))?);
        } else if let Some(t) = line.strip_prefix(TIME_EXTENSION) {
            if time.is_some() {
                return Err(AuditError::Checkpoint("two times"));
            }
            time = Some(parse_decimal(t).ok_or(AuditError::Checkpoint("malformed time"))?);
        }
    }
    let head = head.ok_or(AuditError::Checkpoint("checkpoint has no chain head"))?;
    let time = time.ok_or(AuditError::Checkpoint("checkpoint has no time"))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root: TreeHash(root),
        head: ChainHash(head),
        time,
    })
}

/// A decimal number without sign or leading zeros that fits in a u64.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

fn decode_hash(b64: &str) -> Option<[u8; 32]> {
    B64.decode(b64).ok()?.as_slice().try_into().ok()
}

/// What a witness checks before it cosigns `new`: that it is for the same origin and extends
/// `last`, the checkpoint it cosigned before, by the consistency `proof` from `last`'s size to
/// `new`'s. A smaller tree, or one of the same size with another root, or a proof that does not
/// verify, is a fork (or a rollback) and is refused.
///
/// # Errors
/// [`AuditError::Checkpoint`] naming what is wrong.
pub fn check_extends(
    last: Option<&Checkpoint>,
    new: &Checkpoint,
    proof: &[TreeHash],
) -> Result<(), AuditError> {
    let Some(last) = last else {
        return Ok(());
    };
    if last.origin != new.origin {
        return Err(AuditError::Checkpoint("checkpoint is for another origin"));
    }
    if new.size < last.size {
        return Err(AuditError::Checkpoint(
            "refused: smaller than the checkpoint cosigned before (a rollback or fork)",
        ));
    }
    if last.size == 0 {
        return Ok(());
    }
    crate::merkle::verify_consistency(last.size, new.size, proof, &last.root, &new.root).map_err(
        |_| {
            AuditError::Checkpoint(
                "refused: not consistent with the checkpoint cosigned before (a fork)",
            )
        },
    )
}

/// One entry of a checkpoint log: a signed note and the Merkle frontier at its size, which a
/// restarting writer continues from (after checking it against the signed root).
///
/// Stored one JSON object a line: `{"note":"<signed note>","tree":["<base64 hash>",...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The signed checkpoint note.
    pub note: String,
    /// The frontier's hashes (see [`Frontier::nodes`]).
    pub tree: Vec<TreeHash>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RawEntry {
    note: String,
    tree: Vec<String>,
}

impl LogEntry {
    /// The entry for `signed`, made by a writer whose tree is `tree`.
    pub fn new(signed: &SignedCheckpoint, tree: &Frontier) -> Self {
        Self {
            note: signed.note.clone(),
            tree: tree.nodes().to_vec(),
        }
    }

    /// The entry's JSON line, without a newline.
    pub fn to_line(&self) -> String {
        let raw = RawEntry {
            note: self.note.clone(),
            tree: self.tree.iter().map(|h| B64.encode(h.0)).collect(),
        };
        serde_json::to_string(&raw).unwrap_or_default()
    }

    /// Reads an entry's JSON line.
    ///
    /// # Errors
    /// [`AuditError::Checkpoint`] if it is malformed.
    pub fn from_line(line: &str) -> Result<Self, AuditError> {
        let raw: RawEntry = serde_json::from_str(line)
            .map_err(|_| AuditError::Checkpoint("malformed checkpoint log entry"))?;
        let tree = raw
            .tree
            .iter()
            .map(|h| decode_hash(h).map(TreeHash))
            .collect::<Option<Vec<_>>>()
            .ok_or(AuditError::Checkpoint("malformed frontier hash"))?;
        Ok(Self {
            note: raw.note,
            tree,
        })
    }

    /// Verifies the note with `verifier` for `origin` and checks the frontier against its signed
    /// root: the state a writer may continue from.
    ///
    /// # Errors
    /// [`AuditError::Checkpoint`] if the note does not verify or the frontier does not match.
    pub fn verify(
        &self,
        verifier: &CheckpointVerifier,
        origin: &str,
    ) -> Result<(Checkpoint, Frontier), AuditError> {
        let cp = verifier.verify(&self.note, origin)?;
        let tree = Frontier::from_parts(cp.size(), self.tree.clone())
            .filter(|t| t.root() == cp.root())
            .ok_or(AuditError::Checkpoint(
                "frontier does not match the signed root",
            ))?;
        Ok((cp, tree))
    }
}

/// A witness's cosigning key (C2SP cosignature/v1, Ed25519, key type `0x04`). Zeroized on
/// drop and never printed.
pub struct WitnessKey {
    key: NamedKey,
}

impl fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WitnessKey")
            .field("name", &self.key.name)
            .field("key", &"***")
            .finish()
    }
}

fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

impl WitnessKey {
    /// A witness key named `name` from a 32-byte Ed25519 seed.
    ///
    /// # Errors
    /// [`AuditError::Key`] for an invalid name.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, AuditError> {
        Ok(Self {
            key: NamedKey::from_seed(name, COSIGNATURE_TYPE, seed)?,
        })
    }

    /// A new random witness key.
    ///
    /// # Errors
    /// [`AuditError::Key`] for an invalid name or if the random source fails.
    pub fn generate(name: &str, rng: &(impl SecureRandom + ?Sized)) -> Result<Self, AuditError> {
        Ok(Self {
            key: NamedKey::generate(name, COSIGNATURE_TYPE, rng)?,
        })
    }

    /// Reads `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 || seed)>`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if it is malformed or its key id does not match.
    pub fn from_skey(skey: &str) -> Result<Self, AuditError> {
        Ok(Self {
            key: NamedKey::from_skey(skey, COSIGNATURE_TYPE)?,
        })
    }

    /// The key in note encoding. It is a secret: store it like one.
    pub fn to_skey_secret(&self) -> String {
        self.key.to_skey_secret()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            key: self.key.public(),
        }
    }

    /// Adds this witness's cosignature line, made at `timestamp` (POSIX seconds), to a signed
    /// note. The caller checks first that the checkpoint is one to cosign (`Witness` does).
    ///
    /// # Errors
    /// [`AuditError::Checkpoint`] if the note is malformed or `timestamp` exceeds 2^63 - 1.
    pub fn cosign(&self, note: &str, timestamp: u64) -> Result<String, AuditError> {
        if timestamp > i64::MAX as u64 {
            return Err(AuditError::Checkpoint("timestamp out of range"));
        }
        let parsed = parse_note(note)?;
        let sig = self
            .key
            .key
            .sign(cosigned_message(parsed.text, timestamp).as_bytes());
        let mut blob = Vec::with_capacity(76);
        blob.extend_from_slice(&self.key.id());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{note}{SIG_PREFIX}{} {}\n",
            self.key.name,
            B64.encode(&blob)
        ))
    }
}

/// Checks one witness's C2SP cosignature/v1 lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessVerifier {
    key: PublicKey,
}

impl WitnessVerifier {
    /// Reads a witness verifier key `<name>+<hex id>+<base64(0x04 || public key)>`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if it is malformed or its key id does not match.
    pub fn from_vkey(vkey: &str) -> Result<Self, AuditError> {
        Ok(Self {
            key: PublicKey::from_vkey(vkey, COSIGNATURE_TYPE)?,
        })
    }

    /// The verifier key in note encoding (public).
    pub fn to_vkey(&self) -> String {
        self.key.to_vkey()
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// Checks that `note` carries a valid cosignature by this witness, and none of its lines
    /// is invalid; returns the cosignature's timestamp.
    ///
    /// # Errors
    /// [`AuditError::Checkpoint`] if the note is malformed, a line by this witness does not
    /// verify, or there is none.
    pub fn verify(&self, note: &str) -> Result<u64, AuditError> {
        let parsed = parse_note(note)?;
        let mut timestamp = None;
        for blob in self.key.lines(&parsed) {
            let (Some(ts), Some(sig)) = (blob.get(..8), blob.get(8..)) else {
                return Err(AuditError::Checkpoint("malformed cosignature"));
            };
            let mut t = [0u8; 8];
            t.copy_from_slice(ts);
            let t = u64::from_be_bytes(t);
            let sig = Signature::from_slice(sig)
                .map_err(|_| AuditError::Checkpoint("malformed cosignature"))?;
            if t > i64::MAX as u64
                || self
                    .key
                    .key
                    .verify_strict(cosigned_message(parsed.text, t).as_bytes(), &sig)
                    .is_err()
            {
                return Err(AuditError::Checkpoint("bad cosignature"));
            }
            timestamp = Some(t);
        }
        timestamp.ok_or(AuditError::Checkpoint("no cosignature by this witness"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CheckpointSigner {
        CheckpointSigner::from_seed("audit-1", "example.com/audit", &[7u8; 32]).unwrap()
    }

    #[test]
    fn vkeys_round_trip_whatever_their_base64_holds() {
        // Standard base64 uses '+': keys whose encoding holds one must still read back.
        let mut with_plus = 0;
        for seed in 0u8..64 {
            let v = CheckpointSigner::from_seed("audit-1", "o", &[seed; 32])
                .unwrap()
                .verifier();
            let vkey = v.to_vkey();
            with_plus += usize::from(vkey.matches('+').count() > 2);
            assert_eq!(
                CheckpointVerifier::from_vkey(&vkey).unwrap().to_vkey(),
                vkey
            );
        }
        assert!(with_plus > 0, "no seed exercised a '+' in the key");
    }

    #[test]
    fn sign_verify_round_trip() {
        let s = signer();
        let head = ChainHash::compute(&ChainHash::GENESIS, 0, b"e");
        let root = crate::merkle::leaf_hash(&head.0);
        let signed = s.sign(1, root, head, UnixTime::from_secs(1_700_000_000));
        let lines: Vec<&str> = signed.note.split('\n').collect();
        assert_eq!(lines[0], "example.com/audit");
        assert_eq!(lines[1], "1");
        assert_eq!(lines[2], B64.encode(root.0));
        assert_eq!(lines[3], format!("palisade-chain {}", B64.encode(head.0)));
        assert_eq!(lines[4], "palisade-time 1700000000");
        assert_eq!(lines[5], "");
        assert!(lines[6].starts_with("\u{2014} audit-1 "));
        let v = s.verifier();
        let cp = v.verify(&signed.note, "example.com/audit").unwrap();
        assert_eq!(cp, signed.checkpoint);
        assert!(v.verify(&signed.note, "other").is_err());
        let tampered = signed.note.replacen("\n1\n", "\n2\n", 1);
        assert!(v.verify(&tampered, "example.com/audit").is_err());
        let other = CheckpointSigner::from_seed("audit-1", "example.com/audit", &[8u8; 32])
            .unwrap()
            .verifier();
        assert!(other.verify(&signed.note, "example.com/audit").is_err());
    }

    #[test]
    fn c2sp_signed_note_example_verifies() {
        // c2sp.org/signed-note, "Verifier keys", Example.
        let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        let key = PublicKey::from_vkey(vkey, ED25519_TYPE).unwrap();
        let parsed = parse_note(note).unwrap();
        assert_eq!(parsed.text, "This is an example message.\n");
        let sigs: Vec<&[u8]> = key.lines(&parsed).collect();
        assert_eq!(sigs.len(), 1);
        let sig = Signature::from_slice(sigs[0]).unwrap();
        key.key.verify_strict(parsed.text.as_bytes(), &sig).unwrap();
        let edited = parsed.text.replace("an example", "a forged");
        assert!(key.key.verify_strict(edited.as_bytes(), &sig).is_err());
    }

    #[test]
    fn cosignatures_verify_and_a_bad_one_is_refused() {
        let s = signer();
        let head = ChainHash::compute(&ChainHash::GENESIS, 0, b"e");
        let signed = s.sign(
            1,
            crate::merkle::leaf_hash(&head.0),
            head,
            UnixTime::from_secs(5),
        );
        let w = WitnessKey::from_seed("witness.example/w1", &[9; 32]).unwrap();
        let wv = w.verifier();
        assert!(wv.to_vkey().starts_with("witness.example/w1+"));
        assert_eq!(WitnessVerifier::from_vkey(&wv.to_vkey()).unwrap(), wv);
        assert!(WitnessKey::from_skey(&w.to_skey_secret()).is_ok());
        // A witness key is not a log key, nor the other way round (type byte 0x04 vs 0x01).
        assert!(CheckpointVerifier::from_vkey(&wv.to_vkey()).is_err());
        let cosigned = w.cosign(&signed.note, 1_700_000_000).unwrap();
        assert_eq!(wv.verify(&cosigned).unwrap(), 1_700_000_000);
        // The log's signature still verifies on the cosigned note.
        s.verifier().verify(&cosigned, "example.com/audit").unwrap();
        assert!(wv.verify(&signed.note).is_err());
        // A cosignature whose timestamp was changed (or any byte of it) is refused.
        let line = cosigned.lines().last().unwrap();
        let (name, b64) = line
            .trim_start_matches("\u{2014} ")
            .split_once(' ')
            .unwrap();
        let mut blob = B64.decode(b64).unwrap();
        let mut refused = 0;
        for i in 4..blob.len() {
            blob[i] ^= 1;
            let bad = format!("{}\u{2014} {name} {}\n", signed.note, B64.encode(&blob));
            refused += usize::from(wv.verify(&bad).is_err());
            blob[i] ^= 1;
        }
        assert_eq!(refused, blob.len() - 4, "every flipped bit refused");
    }

    #[test]
    fn key_encodings_round_trip() {
        let s = signer();
        let vkey = s.verifier().to_vkey();
        assert!(vkey.starts_with("audit-1+"));
        assert_eq!(CheckpointVerifier::from_vkey(&vkey).unwrap(), s.verifier());
        let skey = s.to_skey_secret();
        let s2 = CheckpointSigner::from_skey(&skey, "example.com/audit").unwrap();
        assert_eq!(s2.verifier(), s.verifier());
        assert!(CheckpointVerifier::from_vkey("a+00000000+AQ==").is_err());
        assert!(CheckpointSigner::from_seed("a b", "o", &[0; 32]).is_err());
        assert!(!format!("{s:?}").contains(&skey));
    }

    #[test]
    fn rejects_malformed_bodies() {
        for body in [
            "o\n01\nAAAA\n",
            "o\n1\n",
            "o\n-1\nAAAA\n",
            "\n1\nAAAA\n",
            "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            assert!(parse_body(body).is_err(), "{body:?}");
        }
    }
}
