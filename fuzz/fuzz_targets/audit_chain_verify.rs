#![no_main]
//! Verifying a trail and checkpoint notes over arbitrary input: never panics, and a verdict of
//! intact is only given to a trail that re-chains to the same head.
use libfuzzer_sys::fuzz_target;
use palisade_audit::chain::ChainRecord;
use palisade_audit::{Chainer, CheckpointSigner, CheckpointVerifier, Verdict, Verifier};

fuzz_target!(|data: &[u8]| {
    if let Verdict::Intact { records, head, .. } = Verifier::new().verify_lines(data) {
        // Rebuild the chain from the decoded events: it must reach the same head.
        let mut chain = Chainer::new();
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        if !body.is_empty() {
            for line in body.split(|b| *b == b'\n') {
                let record = ChainRecord::from_line(line).expect("intact lines decode");
                chain.push(record.event).expect("serializes");
            }
        }
        assert_eq!(chain.size(), records);
        assert_eq!(chain.head(), head);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let signer = CheckpointSigner::from_seed("fuzz", "fuzz/origin", &[1; 32]).expect("valid");
        let _ = signer.verifier().verify(text, "fuzz/origin");
        let _ = CheckpointVerifier::from_vkey(text);
        let _ = CheckpointSigner::from_skey(text, "fuzz/origin");
    }
});
