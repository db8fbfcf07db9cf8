//! Signed checkpoints: Ed25519 signatures over a chain's size and head hash, in the C2SP
//! signed-note / checkpoint format, so that cutting records off the end of a trail or rewriting
//! it wholesale is detected.
//!
//! # Format
//! A checkpoint is a [C2SP signed note](https://c2sp.org/signed-note) whose text is a
//! [C2SP checkpoint](https://c2sp.org/tlog-checkpoint) body:
//!
//! ```text
//! <origin>                       e.g. "audit.example.com/prod"
//! <size>                         records in the chain, decimal
//! <base64 head hash>             the chain hash of record size-1 (32 zero bytes for size 0)
//!
//! — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>
//! ```
//!
//! The signature covers the text up to and including the third newline. The key id is the first
//! four bytes of `SHA-256(name || "\n" || 0x01 || public key)`, as C2SP defines for Ed25519.
//! Keys use the note key encodings: a verifier key is `<name>+<hex key id>+<base64(0x01 ||
//! public key)>`; a signer key is `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
//!
//! The "root hash" line carries the head of a linear hash chain, not a Merkle tree root: the
//! note format and tooling fit, but inclusion proofs do not apply.
//!
//! # Security
//! Keep the verifier key and copies of the checkpoints away from the trail (another host, a
//! ticket, a transparency log). The signing key lives with the writer; whoever holds it can sign
//! a rewritten trail, so checkpoints published elsewhere are what make a later rewrite
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
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::AuditError;
use crate::chain::ChainHash;

/// The longest note [`CheckpointVerifier::verify`] reads, in bytes.
pub const MAX_NOTE_LEN: usize = 64 * 1024;

const ED25519_TYPE: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";

/// A chain's size and head, as attested by a valid signature.
///
/// Only [`CheckpointSigner::sign`] and [`CheckpointVerifier::verify`] make one, so holding a
/// `Checkpoint` means its signature was made or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    head: ChainHash,
}

impl Checkpoint {
    /// The origin line: which trail this is.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many records the chain held.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hash of record `size - 1` ([`ChainHash::GENESIS`] for size 0).
    pub fn head(&self) -> ChainHash {
        self.head
    }

    fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.head.0)
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('+')
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

fn valid_origin(origin: &str) -> bool {
    !origin.is_empty() && !origin.contains('\n') && origin.chars().all(|c| !c.is_control())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_TYPE]);
    h.update(public);
    let d = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or(&[0; 4]));
    id
}

fn hex4(id: [u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(id))
}

/// Signs checkpoints with an Ed25519 key. The key is zeroized on drop and never printed.
pub struct CheckpointSigner {
    name: String,
    origin: String,
    key: SigningKey,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.name)
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
        if !valid_name(name) {
            return Err(AuditError::Key(
                "key name must be non-empty, without spaces or '+'",
            ));
        }
        if !valid_origin(origin) {
            return Err(AuditError::Key("origin must be one non-empty line"));
        }
        Ok(Self {
            name: name.to_owned(),
            origin: origin.to_owned(),
            key: SigningKey::from_bytes(seed),
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
        let mut seed = [0u8; 32];
        rng.fill(&mut seed)
            .map_err(|_| AuditError::Key("random source failed"))?;
        let signer = Self::from_seed(name, origin, &seed);
        seed.zeroize();
        signer
    }

    /// Reads a note signer key `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if it is malformed or its key id does not match.
    pub fn from_skey(skey: &str, origin: &str) -> Result<Self, AuditError> {
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
            [ED25519_TYPE, seed @ ..] if seed.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(seed);
                let signer = Self::from_seed(name, origin, &s);
                s.zeroize();
                signer
            }
            _ => Err(AuditError::Key("signer key is not an ed25519 seed")),
        };
        raw.zeroize();
        let signer = result?;
        if hex4(signer.key_id()) != id.to_ascii_lowercase() {
            return Err(AuditError::Key("signer key id does not match the key"));
        }
        Ok(signer)
    }

    /// The signer key in note encoding. It is a secret: store it like one.
    pub fn to_skey_secret(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ED25519_TYPE);
        raw.extend_from_slice(self.key.as_bytes());
        let s = format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex4(self.key_id()),
            B64.encode(&raw)
        );
        raw.zeroize();
        s
    }

    fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.key.verifying_key().as_bytes())
    }

    /// The origin line this signer writes.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            name: self.name.clone(),
            id: self.key_id(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs a checkpoint for a chain of `size` records whose last hash is `head`.
    pub fn sign(&self, size: u64, head: ChainHash) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            head,
        };
        let body = checkpoint.body();
        let sig = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id());
        blob.extend_from_slice(&sig.to_bytes());
        let note = format!("{body}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(&blob));
        SignedCheckpoint { checkpoint, note }
    }
}

/// Checks checkpoint signatures against one Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// A verifier for the key `name` with the 32-byte Ed25519 public key `public`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if the name or the key is invalid.
    pub fn new(name: &str, public: &[u8; 32]) -> Result<Self, AuditError> {
        if !valid_name(name) {
            return Err(AuditError::Key(
                "key name must be non-empty, without spaces or '+'",
            ));
        }
        let key = VerifyingKey::from_bytes(public)
            .map_err(|_| AuditError::Key("not an ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, public),
            key,
        })
    }

    /// Reads a note verifier key `<name>+<hex id>+<base64(0x01 || public key)>`.
    ///
    /// # Errors
    /// [`AuditError::Key`] if it is malformed or its key id does not match.
    pub fn from_vkey(vkey: &str) -> Result<Self, AuditError> {
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
            [ED25519_TYPE, rest @ ..] => rest
                .try_into()
                .map_err(|_| AuditError::Key("verifier key has the wrong length"))?,
            _ => return Err(AuditError::Key("verifier key is not ed25519")),
        };
        let v = Self::new(name, &public)?;
        if hex4(v.id) != id.to_ascii_lowercase() {
            return Err(AuditError::Key("verifier key id does not match the key"));
        }
        Ok(v)
    }

    /// The verifier key in note encoding (public; publish it).
    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ED25519_TYPE);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex4(self.id), B64.encode(&raw))
    }

    /// Parses a signed checkpoint note, checks that one of its signatures is this key's and
    /// valid, and that its origin is `origin`.
    ///
    /// # Errors
    /// [`AuditError::Checkpoint`] if the note is malformed, not for `origin`, or not signed
    /// by this key.
    pub fn verify(&self, note: &str, origin: &str) -> Result<Checkpoint, AuditError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(AuditError::Checkpoint("note too long"));
        }
        let split = note
            .find("\n\n")
            .ok_or(AuditError::Checkpoint("note has no signature block"))?;
        let (body, sigs) = note.split_at(split.saturating_add(1));
        let sigs = sigs
            .strip_prefix('\n')
            .ok_or(AuditError::Checkpoint("note has no signature block"))?;
        let checkpoint = parse_body(body)?;
        if checkpoint.origin != origin {
            return Err(AuditError::Checkpoint("checkpoint is for another origin"));
        }
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(AuditError::Checkpoint("note must end with a newline"))?;
        let mut found = false;
        for line in sigs.split('\n') {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or(AuditError::Checkpoint("malformed signature line"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(AuditError::Checkpoint("malformed signature line"))?;
            if name != self.name {
                continue;
            }
            let Ok(blob) = B64.decode(b64) else {
                return Err(AuditError::Checkpoint("signature is not base64"));
            };
            let (Some(id), Some(sig)) = (blob.get(..4), blob.get(4..)) else {
                continue;
            };
            if id != self.id {
                continue;
            }
            let sig = Signature::from_slice(sig)
                .map_err(|_| AuditError::Checkpoint("malformed signature"))?;
            if self.key.verify_strict(body.as_bytes(), &sig).is_ok() {
                found = true;
            } else {
                return Err(AuditError::Checkpoint("bad signature"));
            }
        }
        if found {
            Ok(checkpoint)
        } else {
            Err(AuditError::Checkpoint("no signature by this key"))
        }
    }
}

fn parse_body(body: &str) -> Result<Checkpoint, AuditError> {
    let body = body
        .strip_suffix('\n')
        .ok_or(AuditError::Checkpoint("malformed body"))?;
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(head)) = (lines.next(), lines.next(), lines.next()) else {
        return Err(AuditError::Checkpoint(
            "checkpoint needs origin, size and hash lines",
        ));
    };
    // Extension lines may follow; C2SP says they must not be empty.
    if lines.any(str::is_empty) {
        return Err(AuditError::Checkpoint("empty extension line"));
    }
    if !valid_origin(origin) {
        return Err(AuditError::Checkpoint("malformed origin"));
    }
    let canonical_number = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let size: u64 = if canonical_number {
        size.parse()
            .map_err(|_| AuditError::Checkpoint("size out of range"))?
    } else {
        return Err(AuditError::Checkpoint("malformed size"));
    };
    let raw = B64
        .decode(head)
        .map_err(|_| AuditError::Checkpoint("hash is not base64"))?;
    let head: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| AuditError::Checkpoint("hash must be 32 bytes"))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        head: ChainHash(head),
    })
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
        let signed = s.sign(1, head);
        let lines: Vec<&str> = signed.note.split('\n').collect();
        assert_eq!(lines[0], "example.com/audit");
        assert_eq!(lines[1], "1");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} audit-1 "));
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
        for body in ["o\n01\nAAAA\n", "o\n1\n", "o\n-1\nAAAA\n", "\n1\nAAAA\n"] {
            assert!(parse_body(body).is_err(), "{body:?}");
        }
    }
}
