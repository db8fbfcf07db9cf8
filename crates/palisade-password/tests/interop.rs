//! Hashes made elsewhere: argon2-cffi (libargon2) hashes the password's bytes as given, so
//! non-ASCII passwords hashed there do not verify under NFKC; `verify_interop` accepts them and
//! asks for a rehash. Committed vectors from `tests/data/make-argon2-cffi.py`, and a live check
//! that argon2-cffi verifies our hashes (skipped without python3 and argon2-cffi).

// Test helpers may unwrap and print: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::panic)]

use std::process::Command;

use palisade_password::{Hasher, Params, Verification};

fn vectors() -> Vec<(String, &'static str)> {
    include_str!("data/argon2-cffi-phc.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(p, phc)| (serde_json_str(p), phc))
        .collect()
}

/// Decodes the JSON string literals the generator writes (`\uXXXX` escapes only).
fn serde_json_str(literal: &str) -> String {
    let inner = literal.trim_matches('"');
    let mut out = String::new();
    let mut rest = inner;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let code = u32::from_str_radix(&rest[i + 2..i + 6], 16).unwrap();
        out.push(char::from_u32(code).unwrap());
        rest = &rest[i + 6..];
    }
    out.push_str(rest);
    out
}

fn hasher() -> Hasher {
    Hasher::new(Params::new(1024, 2, 1).unwrap())
}

#[test]
fn argon2_cffi_hashes_verify_through_the_interop_mode_and_then_rehash() {
    let h = hasher();
    let v = vectors();
    assert_eq!(v.len(), 4);
    let (mut strict, mut interop) = (0, 0);
    for (password, phc) in &v {
        strict += usize::from(h.verify(phc, password.as_str()).unwrap().is_match());
        match h.verify_interop(phc, password.as_str()).unwrap() {
            Verification::Match(verified) => {
                interop += 1;
                let ascii = password.is_ascii();
                // Our salt length differs from argon2-cffi's, so every one wants a rehash.
                assert!(verified.needs_rehash() || ascii, "{phc}");
                let rehashed = h.hash(password.as_str()).unwrap();
                assert!(
                    h.verify(rehashed.as_str(), password.as_str())
                        .unwrap()
                        .is_match()
                );
            }
            Verification::Mismatch => panic!("{phc} did not verify"),
        }
        assert!(!h.verify_interop(phc, "wrong").unwrap().is_match());
    }
    // Only the ASCII password verifies under NFKC; all four through the interop mode.
    assert_eq!((strict, interop), (1, 4));
}

#[test]
fn argon2_cffi_verifies_our_hashes_of_the_normalised_password() {
    let probe = Command::new("python3")
        .args(["-c", "import argon2"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with argon2-cffi is not installed");
        return;
    }
    let h = hasher();
    for (password, _) in vectors() {
        let phc = h.hash(password.as_str()).unwrap();
        let script = "import sys, unicodedata, argon2\n\
            p = unicodedata.normalize('NFKC', sys.stdin.readline().rstrip('\\n'))\n\
            print(argon2.PasswordHasher().verify(sys.argv[1], p))";
        let mut child = Command::new("python3")
            .args(["-c", script, phc.as_str()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "True",
            "{}",
            phc.as_str()
        );
    }
}
