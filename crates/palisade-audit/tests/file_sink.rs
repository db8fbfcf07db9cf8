//! The JSON-lines sink: rotation keeps the chain, restarts resume it, a torn last line is cut,
//! checkpoints attest the trail, and the verifier names the file and line of a bad record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use palisade_audit::chain::BreakReason;
use palisade_audit::file::{JsonlConfig, JsonlSink, trail_files, verify_trail};
use palisade_audit::{Action, AuditEvent, AuditSink, CheckpointSigner, Verdict};
use palisade_core::time::UnixTime;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let r = RandomState::new().hash_one(name) % 1_000_000;
        let p =
            std::env::temp_dir().join(format!("palisade-audit-{name}-{}-{r}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ORIGIN: &str = "test.example/audit";

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("test-key", ORIGIN, &[9; 32]).unwrap()
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000 + i))
        .user_id(format!("user-{}", i % 7))
        .meta("i", i.to_string())
}

fn latest_checkpoint(dir: &TempDir) -> palisade_audit::Checkpoint {
    let note = std::fs::read_to_string(dir.0.join("audit.checkpoint")).unwrap();
    signer().verifier().verify(&note, ORIGIN).unwrap()
}

#[test]
fn rotation_resume_and_checkpoints() {
    let dir = TempDir::new("rotate");
    let notes = Arc::new(Mutex::new(Vec::new()));
    let n2 = Arc::clone(&notes);
    let sink = JsonlSink::open(
        JsonlConfig::new(&dir.0, "audit")
            .max_file_bytes(4096)
            .checkpoints(signer(), 50)
            .on_checkpoint(move |c| n2.lock().unwrap().push(c.checkpoint.size())),
    )
    .unwrap();
    for i in 0..200 {
        sink.record(event(i));
    }
    sink.flush().unwrap();
    // Flushed means on disk: every line is there now.
    let lines: usize = trail_files(&dir.0, "audit")
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 200);
    sink.shutdown().unwrap();
    assert_eq!(sink.stats().written, 200);
    assert_eq!(notes.lock().unwrap().last(), Some(&200));

    let files = trail_files(&dir.0, "audit").unwrap();
    assert!(files.len() >= 4, "{files:?}");
    let cp = latest_checkpoint(&dir);
    assert_eq!(cp.size(), 200);
    let report = verify_trail(&dir.0, "audit", &[cp]).unwrap();
    assert!(
        matches!(
            report.verdict,
            Verdict::Intact {
                records: 200,
                attested: 200,
                ..
            }
        ),
        "{report:?}"
    );

    // A restart resumes the chain where it stopped.
    let sink =
        JsonlSink::open(JsonlConfig::new(&dir.0, "audit").checkpoints(signer(), 1000)).unwrap();
    for i in 200..250 {
        sink.record(event(i));
    }
    sink.shutdown().unwrap();
    let cp = latest_checkpoint(&dir);
    assert_eq!(cp.size(), 250);
    let report = verify_trail(&dir.0, "audit", std::slice::from_ref(&cp)).unwrap();
    assert!(
        matches!(report.verdict, Verdict::Intact { records: 250, .. }),
        "{report:?}"
    );

    // Cutting the newest file off is caught by the checkpoint.
    let files = trail_files(&dir.0, "audit").unwrap();
    let last = files.last().unwrap();
    let kept = std::fs::read(last).unwrap();
    std::fs::write(last, b"").unwrap();
    let report = verify_trail(&dir.0, "audit", std::slice::from_ref(&cp)).unwrap();
    assert!(
        matches!(
            report.verdict,
            Verdict::Broken {
                reason: BreakReason::Truncated {
                    checkpoint_size: 250,
                    ..
                },
                ..
            }
        ),
        "{report:?}"
    );
    std::fs::write(last, &kept).unwrap();

    // A changed byte is reported with its file and line.
    let second = &files[1];
    let text = std::fs::read_to_string(second).unwrap();
    let third_line_start: usize = text.lines().take(2).map(|l| l.len() + 1).sum();
    let mut bytes = text.into_bytes();
    let at = third_line_start
        + bytes[third_line_start..]
            .windows(5)
            .position(|w| w == b"user-")
            .unwrap()
        + 5;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(second, &bytes).unwrap();
    let report = verify_trail(&dir.0, "audit", &[cp]).unwrap();
    assert!(
        matches!(
            report.verdict,
            Verdict::Broken {
                reason: BreakReason::HashMismatch,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(report.location, Some((second.clone(), 3)));
}

#[test]
fn large_batches_written_in_parts_across_files() {
    // Batches of many kilobytes are handed to the file in parts; every record lands once, in
    // order, in the file named after its first record.
    let dir = TempDir::new("parts");
    let sink = JsonlSink::open(JsonlConfig::new(&dir.0, "audit").max_file_bytes(1 << 20)).unwrap();
    let filler = "x".repeat(2000);
    for i in 0..3000 {
        sink.record(event(i).meta("filler", filler.as_str()));
    }
    sink.flush().unwrap();
    let files = trail_files(&dir.0, "audit").unwrap();
    assert!(files.len() >= 5, "{files:?}");
    let mut next = 0u64;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("audit-{next:020}.jsonl"));
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            let rec = palisade_audit::ChainRecord::from_line(line.as_bytes()).unwrap();
            assert_eq!(rec.seq, next);
            next += 1;
        }
    }
    assert_eq!(next, 3000);
    let report = verify_trail(&dir.0, "audit", &[]).unwrap();
    assert!(
        matches!(report.verdict, Verdict::Intact { records: 3000, .. }),
        "{report:?}"
    );
    sink.shutdown().unwrap();
}

#[test]
fn torn_last_line_is_cut_on_restart() {
    let dir = TempDir::new("torn");
    let sink = JsonlSink::open(JsonlConfig::new(&dir.0, "audit")).unwrap();
    for i in 0..10 {
        sink.record(event(i));
    }
    sink.shutdown().unwrap();
    let file = trail_files(&dir.0, "audit").unwrap().pop().unwrap();
    let mut data = std::fs::read(&file).unwrap();
    data.extend_from_slice(b"{\"seq\":10,\"prev\":\"00");
    std::fs::write(&file, &data).unwrap();
    assert!(
        !verify_trail(&dir.0, "audit", &[])
            .unwrap()
            .verdict
            .is_intact()
    );

    let sink = JsonlSink::open(JsonlConfig::new(&dir.0, "audit")).unwrap();
    sink.record(event(10));
    sink.shutdown().unwrap();
    let report = verify_trail(&dir.0, "audit", &[]).unwrap();
    assert!(
        matches!(report.verdict, Verdict::Intact { records: 11, .. }),
        "{report:?}"
    );
}

#[test]
fn records_after_shutdown_are_counted_as_dropped() {
    let dir = TempDir::new("closed");
    let sink = JsonlSink::open(JsonlConfig::new(&dir.0, "audit")).unwrap();
    sink.record(event(0));
    sink.shutdown().unwrap();
    sink.record(event(1));
    let stats = sink.stats();
    assert_eq!(stats.written, 1);
    assert_eq!(stats.dropped, 1);
}
