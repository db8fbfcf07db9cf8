#![no_main]
//! Pin checks over arbitrary DER chains: the input is split into certificates by 2-byte
//! big-endian length prefixes. Checking, computing pins and building a pin set against the
//! chain never panic; the only outcomes are the typed ones.
use libfuzzer_sys::fuzz_target;
use palisade_core::time::UnixTime;
use palisade_pin::{Pin, PinError, PinPolicy, PinSet, pins_from_bytes};

fuzz_target!(|data: &[u8]| {
    let mut chain: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (cert, next) = tail.split_at(len);
        chain.push(cert);
        rest = next;
    }
    let _ = pins_from_bytes(data);

    let policy = PinPolicy::builder()
        .pin_set(
            PinSet::builder("**.example.com".parse().expect("valid pattern"))
                .pin(Pin::spki_sha256([1; 32]))
                .pin(Pin::certificate_sha256([2; 32]))
                .build()
                .expect("two pins"),
        )
        .deny(Pin::spki_sha256([3; 32]))
        .build()
        .expect("valid policy");
    match policy.check(
        "api.example.com",
        &chain,
        UnixTime::from_secs(1_800_000_000),
    ) {
        Ok(_)
        | Err(PinError::Mismatch { .. })
        | Err(PinError::Denied { .. })
        | Err(PinError::NoCertificate)
        | Err(PinError::UnparseableCertificate { .. }) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
    let _ = PinSet::builder("example.com".parse().expect("valid pattern"))
        .pin(Pin::spki_sha256([1; 32]))
        .pin(Pin::spki_sha256([4; 32]))
        .served_chain(&chain)
        .build();
});
