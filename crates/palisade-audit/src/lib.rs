#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod alert;
pub mod chain;
pub mod checkpoint;
pub mod file;
pub mod format;
pub mod merkle;
#[cfg(feature = "postgres")]
pub mod postgres;
mod queue;
pub mod redact;
pub mod siem;
pub mod sink;

use std::sync::Arc;

pub use palisade_core::audit::{
    Action, AuditEvent, AuditSink, EventId, MemorySink, NoopSink, Outcome, SCHEMA_VERSION, Severity,
};

pub use crate::chain::{BreakReason, ChainHash, ChainRecord, Chainer, Verdict, Verifier};
pub use crate::checkpoint::{
    Checkpoint, CheckpointSigner, CheckpointVerifier, SignedCheckpoint, WitnessKey, WitnessVerifier,
};
pub use crate::merkle::{Frontier, TreeHash};
pub use crate::redact::Redactor;
pub use crate::sink::{FanOut, SeverityFilter, SinkStats, TracingSink};

/// What can go wrong in this crate.
///
/// A broken chain is not an error: verification returns a [`Verdict`]. Errors are for bad input
/// (malformed JSON, a malformed checkpoint or key) and unavailable I/O.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A JSON document (an event, a record) could not be decoded.
    #[error("malformed audit json: {0}")]
    Json(Arc<serde_json::Error>),
    /// A checkpoint note is malformed, or its signature does not verify.
    #[error("invalid checkpoint: {0}")]
    Checkpoint(&'static str),
    /// A signing or verifying key is malformed.
    #[error("invalid key: {0}")]
    Key(&'static str),
    /// File I/O failed.
    #[error("audit i/o failed")]
    Io(#[source] Arc<std::io::Error>),
    /// The database failed or is unreachable.
    #[error("audit database unavailable")]
    Database(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Events were still pending when a flush or shutdown gave up waiting.
    #[error("{pending} audit events not yet durable")]
    Pending {
        /// How many events were not yet written.
        pending: u64,
    },
    /// Opening a trail found records that its last signed checkpoint does not vouch for:
    /// edited, removed, re-chained or appended while the writer was not running (or left
    /// unsigned by a crash). Nothing is signed over them. Alert on it.
    #[error("audit trail tampered at record {first_bad}: {reason}")]
    Tampered {
        /// The chain position (sequence number) of the first record not vouched for.
        first_bad: u64,
        /// What is wrong with it.
        reason: BreakReason,
    },
    /// The sink was shut down.
    #[error("audit sink is shut down")]
    Closed,
    /// The trail stayed unwritable through shutdown: the writer stopped and these events
    /// are lost.
    #[error("audit trail unwritable: {lost} events lost")]
    Unwritable {
        /// How many accepted events were never written.
        lost: u64,
    },
}

impl From<serde_json::Error> for AuditError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(Arc::new(e))
    }
}

impl From<std::io::Error> for AuditError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}
