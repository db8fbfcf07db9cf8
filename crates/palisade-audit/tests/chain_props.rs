//! Property tests: the JSON form round-trips, and every single modification, deletion,
//! insertion, reordering or truncation of a chained trail is detected.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use palisade_audit::chain::{BreakReason, ChainRecord};
use palisade_audit::{
    Action, AuditEvent, ChainHash, Chainer, CheckpointSigner, Outcome, Severity, Verdict, Verifier,
    format,
};
use palisade_core::time::UnixTime;
use proptest::prelude::*;

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..Action::STANDARD.len()).prop_map(|i| Action::STANDARD[i].clone()),
        "x_[a-z_]{0,12}".prop_map(Action::Custom),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>())
}

fn event() -> impl Strategy<Value = AuditEvent> {
    (
        action(),
        any::<u64>(),
        (opt_text(), opt_text(), opt_text()),
        proptest::option::of(any::<std::net::IpAddr>()),
        proptest::collection::btree_map(any::<String>(), any::<String>(), 0..4),
        (0u8..5, 0u8..3),
    )
        .prop_map(|(a, t, (user, ua, tenant), ip, meta, (sev, out))| {
            let mut e = AuditEvent::new(a, UnixTime::from_nanos(t));
            e.user_id = user;
            e.user_agent = ua;
            e.tenant = tenant;
            e.ip_address = ip;
            e.metadata = meta;
            e.severity = [
                Severity::Informational,
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ][usize::from(sev)];
            e.outcome = [Outcome::Success, Outcome::Failure, Outcome::Unknown][usize::from(out)];
            e
        })
}

#[derive(Debug, Clone)]
enum Tamper {
    /// XOR one byte of one line with a non-zero mask.
    Modify {
        line: usize,
        pos: usize,
        mask: u8,
    },
    Delete {
        line: usize,
    },
    /// Insert a copy of another line.
    InsertCopy {
        at: usize,
        from: usize,
    },
    /// Insert a forged record, correctly chained to the record before it.
    InsertForged {
        at: usize,
    },
    Swap {
        a: usize,
        b: usize,
    },
    /// Keep only the first `keep` lines.
    Truncate {
        keep: usize,
    },
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(line, pos, mask)| Tamper::Modify {
            line,
            pos,
            mask
        }),
        any::<usize>().prop_map(|line| Tamper::Delete { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(at, from)| Tamper::InsertCopy { at, from }),
        any::<usize>().prop_map(|at| Tamper::InsertForged { at }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap { a, b }),
        any::<usize>().prop_map(|keep| Tamper::Truncate { keep }),
    ]
}

fn build(events: &[AuditEvent]) -> (Vec<Vec<u8>>, Chainer) {
    let mut c = Chainer::new();
    let mut lines = Vec::new();
    for e in events {
        let mut out = Vec::new();
        c.push_line(e, &mut out).unwrap();
        out.pop(); // newline
        lines.push(out);
    }
    (lines, c)
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// Applies the tampering; returns the first line index where the trail must break (for the
/// operations where it is determined), or None if the operation was a no-op.
fn apply(lines: &mut Vec<Vec<u8>>, t: &Tamper) -> Option<Option<u64>> {
    let n = lines.len();
    match *t {
        Tamper::Modify { line, pos, mask } => {
            let line = line % n;
            let l = &mut lines[line];
            let pos = pos % l.len();
            l[pos] ^= mask;
            Some(Some(line as u64))
        }
        Tamper::Delete { line } => {
            let line = line % n;
            lines.remove(line);
            Some(if line + 1 == n {
                None
            } else {
                Some(line as u64)
            })
        }
        Tamper::InsertCopy { at, from } => {
            let at = at % (n + 1);
            let from = from % n;
            let copy = lines[from].clone();
            lines.insert(at, copy);
            // A copy of the very line it is inserted before is valid where it stands; the
            // original after it breaks.
            Some(if at == n {
                None
            } else if from == at {
                Some(at as u64 + 1)
            } else {
                Some(at as u64)
            })
        }
        Tamper::InsertForged { at } => {
            let at = at % (n + 1);
            let prev = if at == 0 {
                ChainHash::GENESIS
            } else {
                ChainRecord::from_line(&lines[at - 1]).unwrap().hash
            };
            let mut tree = palisade_audit::Frontier::new();
            for l in &lines[..at] {
                tree.push(&ChainRecord::from_line(l).unwrap().hash.0);
            }
            let mut c = Chainer::resume(prev, tree);
            let mut out = Vec::new();
            let forged =
                AuditEvent::new(Action::LoginSucceeded, UnixTime::from_secs(7)).user_id("mallory");
            c.push_line(&forged, &mut out).unwrap();
            out.pop();
            lines.insert(at, out);
            // The forged record is chained correctly: the one after it breaks, unless the forged
            // one already reaches the checkpoint's size, whose signed head it does not match.
            Some(if at == n {
                None
            } else if at + 1 == n {
                Some(at as u64)
            } else {
                Some(at as u64 + 1)
            })
        }
        Tamper::Swap { a, b } => {
            let (a, b) = (a % n, b % n);
            if a == b {
                return None;
            }
            lines.swap(a, b);
            Some(Some(a.min(b) as u64))
        }
        Tamper::Truncate { keep } => {
            let keep = keep % n;
            lines.truncate(keep);
            Some(None)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_json_round_trips(e in event()) {
        let bytes = format::to_canonical_json(&e).unwrap();
        let back = format::from_canonical_json(&bytes).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(format::from_json(&bytes).unwrap(), e);
    }

    #[test]
    fn any_single_tampering_is_detected(
        events in proptest::collection::vec(event(), 1..12),
        t in tamper(),
    ) {
        let signer = CheckpointSigner::from_seed("k", "test/audit", &[3; 32]).unwrap();
        let verifier = signer.verifier();
        let (mut lines, chain) = build(&events);
        // The trail was closed with a final checkpoint, published away from it.
        let note = signer.sign_chain(&chain, UnixTime::from_secs(1_700_000_000)).note;
        let cp = verifier.verify(&note, "test/audit").unwrap();
        let check = |trail: &[u8]| Verifier::new().checkpoint(&cp).require_attested(true).verify_lines(trail);

        let intact = check(&join(&lines));
        prop_assert_eq!(
            intact,
            Verdict::Intact { records: events.len() as u64, head: chain.head(), attested: events.len() as u64 }
        );

        let Some(expected_index) = apply(&mut lines, &t) else { return Ok(()) };
        let verdict = check(&join(&lines));
        match verdict {
            Verdict::Broken { index, reason } => {
                if let Some(i) = expected_index {
                    prop_assert_eq!(index, i, "{:?} {:?}", t, reason);
                }
                if let Tamper::Truncate { .. } = t {
                    let truncated = matches!(reason, BreakReason::Truncated { .. });
                    prop_assert!(truncated, "{:?}", reason);
                }
            }
            v @ Verdict::Intact { .. } => prop_assert!(false, "undetected {:?}: {:?}", t, v),
        }
    }

    #[test]
    fn truncation_without_checkpoint_is_only_attested_up_to_it(
        events in proptest::collection::vec(event(), 2..8),
    ) {
        // Without a checkpoint a cut tail looks like a shorter trail: the verdict says how much
        // is attested (0), which is why checkpoints exist.
        let (lines, _) = build(&events);
        let v = Verifier::new().verify_lines(&join(&lines[..1]));
        let ok = matches!(v, Verdict::Intact { records: 1, attested: 0, .. });
        prop_assert!(ok, "{:?}", v);
    }

    #[test]
    fn verifier_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Verifier::new().verify_lines(&data);
    }
}

#[test]
fn full_rewrite_is_detected_by_an_earlier_checkpoint() {
    let signer = CheckpointSigner::from_seed("k", "test/audit", &[3; 32]).unwrap();
    let events: Vec<_> = (0..10)
        .map(|i| AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(i)).user_id("ann"))
        .collect();
    let (lines, chain) = build(&events);
    let cp = signer
        .verifier()
        .verify(
            &signer
                .sign_chain(&chain, UnixTime::from_secs(1_700_000_000))
                .note,
            "test/audit",
        )
        .unwrap();
    // Someone rewrites event 3 and recomputes every hash after it.
    let mut rewritten = events;
    rewritten[3] = rewritten[3].clone().user_id("someone-else");
    let (forged, _) = build(&rewritten);
    assert!(Verifier::new().verify_lines(&join(&forged)).is_intact());
    match Verifier::new().checkpoint(&cp).verify_lines(&join(&forged)) {
        Verdict::Broken { reason, .. } => {
            assert_eq!(reason, BreakReason::CheckpointMismatch { size: 10 });
        }
        v @ Verdict::Intact { .. } => panic!("{v:?}"),
    }
    assert!(
        Verifier::new()
            .checkpoint(&cp)
            .verify_lines(&join(&lines))
            .is_intact()
    );
}
