#![no_main]
//! Decoding audit events and record lines from arbitrary bytes: never panics, and whatever
//! decodes re-encodes canonically and decodes to the same value.
use libfuzzer_sys::fuzz_target;
use palisade_audit::chain::ChainRecord;
use palisade_audit::format;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = format::from_json(data) {
        let canonical = format::to_canonical_json(&event).expect("an event always serializes");
        let again = format::from_canonical_json(&canonical).expect("canonical bytes decode");
        assert_eq!(
            format::to_canonical_json(&again).expect("serializes"),
            canonical,
            "canonical form is a fixed point"
        );
        let _ = palisade_audit::siem::to_ocsf(&event);
        let _ = palisade_audit::siem::to_ecs(&event);
        let mut redacted = event;
        palisade_audit::Redactor::new().redact(&mut redacted);
    }
    if let Ok(record) = ChainRecord::from_line(data) {
        assert_eq!(
            record.to_line().expect("serializes"),
            data,
            "record lines are canonical"
        );
    }
});
