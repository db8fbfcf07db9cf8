//! Runs the built `palisade` binary, as an operator would.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap()
}

#[allow(dead_code)]
fn palisade_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn every_command_has_help() {
    for cmd in [&["--help"][..], &["keygen", "--help"], &["size", "--help"]] {
        let out = palisade(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage"), "{cmd:?}");
    }
}

#[test]
fn keygen_prints_loadable_keys() {
    for kind in ["field", "hmac", "jwt-hs256", "ed25519"] {
        let out = palisade(&["keygen", kind, "--id", "test-1"]);
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        let line = stdout(&out);
        let ring = palisade_core::keyring::Keyring::parse(line.trim()).unwrap();
        let key = ring.active().unwrap();
        assert_eq!(key.id().as_str(), "test-1");
        assert_eq!(key.material().len(), 32);
    }
    let a = stdout(&palisade(&["keygen", "field"]));
    let b = stdout(&palisade(&["keygen", "field"]));
    assert_ne!(a, b, "two keys must differ");
    assert!(a.contains("q"), "default ids name the quarter: {a}");
}

#[test]
fn keygen_fernet_is_urlsafe_base64_of_32_bytes() {
    use base64::Engine as _;
    let out = palisade(&["keygen", "fernet"]);
    assert!(out.status.success());
    let key = stdout(&out);
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(key.trim())
        .unwrap();
    assert_eq!(raw.len(), 32);
}

#[test]
fn bad_arguments_fail_with_a_reason() {
    let out = palisade(&["keygen", "rot13"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rot13"));
    let out = palisade(&["keygen", "field", "--id", "bad id!"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid key id"), "{}", stderr(&out));
}

#[test]
fn size_prints_a_table_and_json() {
    let out = palisade(&["size", "--threads", "1", "--seconds", "0.5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("per core"), "{text}");
    assert!(text.contains("random nonce"), "{text}");
    let out = palisade(&["size", "--threads", "2", "--seconds", "0.5", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row["per_core"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["rates"].as_array().unwrap().len(), 2);
    }
}
