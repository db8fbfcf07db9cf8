//! Known-answer tests against the Argon2 reference implementation's PHC strings
//! (`tests/data/argon2-reference-phc.txt`, source noted there).

use palisade_password::{Hasher, Normalization, Params, PasswordHash, Verification};

fn vectors() -> Vec<(&'static str, &'static str)> {
    include_str!("data/argon2-reference-phc.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .collect()
}

#[test]
fn reference_vectors_verify() {
    let v = vectors();
    assert_eq!(v.len(), 8);
    let hasher = Hasher::default();
    for (password, phc) in v {
        match hasher.verify(phc, password).unwrap() {
            // None of them has the default preset's parameters or salt length.
            Verification::Match(verified) => assert!(verified.needs_rehash(), "{phc}"),
            Verification::Mismatch => panic!("{phc} did not verify"),
        }
    }
}

#[test]
fn reference_vectors_reject_other_passwords() {
    let hasher = Hasher::default();
    for (password, phc) in vectors() {
        if !phc.contains("m=256,") {
            continue; // the cheap ones suffice; the 64 MiB ones are slow in debug builds
        }
        let wrong = format!("{password}!");
        assert_eq!(hasher.verify(phc, &wrong).unwrap(), Verification::Mismatch);
        assert_eq!(hasher.verify(phc, "").unwrap(), Verification::Mismatch);
    }
}

#[test]
fn missing_version_means_argon2_1_0() {
    let with = PasswordHash::parse(
        "$argon2i$v=16$m=256,t=2,p=1$c29tZXNhbHQ$/U3YPXYsSb3q9XxHvc0MLxur+GP960kN9j7emXX8zwY",
    )
    .unwrap();
    let without = PasswordHash::parse(
        "$argon2i$m=256,t=2,p=1$c29tZXNhbHQ$/U3YPXYsSb3q9XxHvc0MLxur+GP960kN9j7emXX8zwY",
    )
    .unwrap();
    assert_eq!(with.version(), 0x10);
    assert_eq!(without.version(), 0x10);
}

#[test]
fn ascii_vectors_do_not_depend_on_normalisation() {
    let raw = Hasher::new(Params::default()).with_normalization(Normalization::None);
    let phc =
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
    assert!(raw.verify(phc, "password").unwrap().is_match());
}
