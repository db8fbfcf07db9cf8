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

fn palisade_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading its input closes the pipe: that is not a test error.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
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
fn keygen_output_loads_into_the_crates() {
    use palisade_token::jwt::{JwtAlgorithm, JwtKeys};
    let load = |kind: &str| {
        let out = palisade(&["keygen", kind, "--id", "k"]);
        palisade_core::keyring::Keyring::parse(stdout(&out).trim()).unwrap()
    };
    palisade_field::FieldCipher::new(&load("field")).unwrap();
    JwtKeys::from_keyring(JwtAlgorithm::Hs256, &load("jwt-hs256")).unwrap();
    JwtKeys::from_keyring(JwtAlgorithm::EdDsa, &load("ed25519")).unwrap();
    let ring = load("ed25519");
    let seed: [u8; 32] = ring
        .active()
        .unwrap()
        .material()
        .expose_secret()
        .try_into()
        .unwrap();
    palisade_audit::CheckpointSigner::from_seed("ops", "example.com/audit", &seed).unwrap();
    let fernet = stdout(&palisade(&["keygen", "fernet"]));
    palisade_field::fernet::FernetKey::from_base64(fernet.trim()).unwrap();
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
    // Every hot path, briefly, on one thread: the report runs with no server configured.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_palisade"));
    cmd.args(["size", "--threads", "1", "--seconds", "1"])
        .env_remove("PALISADE_REDIS_URL");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for name in [
        "random nonce",
        "field encrypt",
        "field decrypt",
        "TOTP verify",
        "recovery code verify",
        "rate limit, in memory",
        "pin check",
        "audit append",
        "JWT verify (Hs256)",
        "JWT verify (EdDsa)",
        "API key verify",
        "Argon2id OWASP 19 MiB",
        "Argon2id RFC 9106 64 MiB",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains("needs"),
        "the report says what the rates mean: {text}"
    );
    assert!(
        text.contains("PALISADE_REDIS_URL"),
        "it says Redis was left out: {text}"
    );

    let out = palisade(&[
        "size",
        "--threads",
        "2",
        "--seconds",
        "0.2",
        "--json",
        "--only",
        "field",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "field encrypt and decrypt");
    for row in rows {
        assert!(row["per_core"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["rates"].as_array().unwrap().len(), 2);
    }
    let out = palisade(&["size", "--only", "no such thing"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn totp_code_and_verify_match_rfc_6238() {
    // RFC 6238 appendix B, SHA-1 seed "12345678901234567890" in base32, T = 59.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let out = palisade(&[
        "totp", "code", "--secret", secret, "--at", "59", "--digits", "8",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "94287082");
    let sha512 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA=";
    let out = palisade(&[
        "totp",
        "code",
        "--secret",
        sha512,
        "--at",
        "1111111109",
        "--digits",
        "8",
        "--algorithm",
        "SHA512",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "25091201");

    let verify = |code: &str| {
        palisade(&[
            "totp", "verify", "--secret", secret, "--at", "59", "--digits", "8", "--code", code,
        ])
    };
    let ok = verify("94287082");
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let bad = verify("94287083");
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    let malformed = verify("12ab");
    assert_eq!(malformed.status.code(), Some(1));
}

#[test]
fn totp_rejects_bad_secrets_and_parameters() {
    let out = palisade(&["totp", "code", "--secret", "not base32!"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("base32"), "{}", stderr(&out));
    let out = palisade(&[
        "totp",
        "code",
        "--secret",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "--period",
        "0",
    ]);
    assert!(!out.status.success());
    let out = palisade(&[
        "totp",
        "code",
        "--secret",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "--digits",
        "9",
    ]);
    assert!(!out.status.success());
}

#[test]
fn totp_new_prints_secret_uri_and_qr() {
    let out = palisade(&[
        "totp",
        "new",
        "--issuer",
        "Acme Co",
        "--account",
        "alice@example.com",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();
    let uri = text
        .lines()
        .find_map(|l| l.strip_prefix("uri:    "))
        .unwrap();
    assert!(uri.starts_with("otpauth://totp/Acme%20Co:alice"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")));
    assert!(uri.contains("issuer=Acme%20Co"), "{uri}");
    assert!(text.contains('█'), "a terminal QR code is printed");
    // The printed secret produces codes the verifier accepts.
    let code = stdout(&palisade(&[
        "totp", "code", "--secret", &secret, "--at", "1000000",
    ]));
    let check = palisade(&[
        "totp",
        "verify",
        "--secret",
        &secret,
        "--at",
        "1000000",
        "--code",
        code.trim(),
    ]);
    assert_eq!(check.status.code(), Some(0));

    let dir = std::env::temp_dir().join(format!("palisade-cli-qr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, magic) in [("qr.png", &b"\x89PNG"[..]), ("qr.svg", &b"<?xml"[..])] {
        let path = dir.join(name);
        let out = palisade(&[
            "totp",
            "new",
            "--issuer",
            "A",
            "--account",
            "b",
            "--qr",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stdout(&out).contains('█'));
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(magic), "{name}");
    }
    let out = palisade(&[
        "totp",
        "new",
        "--issuer",
        "A",
        "--account",
        "b",
        "--qr",
        dir.join("qr.gif").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recovery_codes_are_distinct_and_formatted() {
    let out = palisade(&["recovery-codes", "-n", "12"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let codes: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 12);
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), 12);
    for code in &codes {
        palisade_otp::recovery::RecoveryCode::parse(code).unwrap();
        assert!(code.contains('-'), "{code}");
    }
    assert_eq!(stdout(&palisade(&["recovery-codes"])).lines().count(), 10);
    assert!(!palisade(&["recovery-codes", "-n", "0"]).status.success());
}

fn generated_chain() -> (String, Vec<Vec<u8>>) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Palisade Test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let pem = format!("{}{}", leaf.pem(), ca.pem());
    (
        pem,
        vec![
            leaf.der().to_vec(),
            ca.der().to_vec(),
            leaf_key.serialize_der(),
        ],
    )
}

/// Runs `openssl` when it is installed; `None` otherwise.
fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    Some(out.stdout)
}

#[test]
fn pin_agrees_with_openssl() {
    let (pem, _) = generated_chain();
    let dir = std::env::temp_dir().join(format!("palisade-cli-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chain.pem");
    std::fs::write(&path, &pem).unwrap();
    let out = palisade(&["pin", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let spki: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("spki-pin:"))
        .map(str::trim)
        .collect();
    let fps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("fingerprint:"))
        .map(str::trim)
        .collect();
    assert_eq!((spki.len(), fps.len()), (2, 2), "{text}");
    assert!(text.contains("subject:      CN=Palisade Test CA"), "{text}");

    // Each certificate alone, through openssl.
    let leaf_pem = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    let Some(pubkey) = openssl(&["x509", "-pubkey", "-noout"], Some(leaf_pem.as_bytes())) else {
        eprintln!("skipped: openssl is not installed");
        return;
    };
    let der = openssl(&["pkey", "-pubin", "-outform", "der"], Some(&pubkey)).unwrap();
    let digest = openssl(&["dgst", "-sha256", "-binary"], Some(&der)).unwrap();
    let b64 = openssl(&["base64"], Some(&digest)).unwrap();
    assert_eq!(
        spki[0],
        format!("sha256/{}", String::from_utf8(b64).unwrap().trim())
    );
    let fp = openssl(
        &["x509", "-noout", "-fingerprint", "-sha256"],
        Some(leaf_pem.as_bytes()),
    )
    .unwrap();
    let fp = String::from_utf8(fp).unwrap();
    assert_eq!(fps[0], fp.trim().rsplit('=').next().unwrap());

    // DER input gives the same pins.
    let der_path = dir.join("leaf.der");
    let der_cert = openssl(&["x509", "-outform", "der"], Some(leaf_pem.as_bytes())).unwrap();
    std::fs::write(&der_path, der_cert).unwrap();
    let out = stdout(&palisade(&["pin", der_path.to_str().unwrap()]));
    assert!(out.contains(spki[0]) && out.contains(fps[0]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pin_refuses_garbage_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("palisade-cli-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("junk.pem");
    std::fs::write(
        &path,
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = palisade(&["pin", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).is_empty());
    let out = palisade(&["pin", dir.join("absent").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"));
    std::fs::remove_dir_all(&dir).unwrap();
    let out = palisade(&["pin"]);
    assert!(!out.status.success());
}

#[test]
fn pin_connect_reads_a_live_chain() {
    use std::sync::Arc;
    let (_, ders) = generated_chain();
    let certs = vec![
        rustls::pki_types::CertificateDer::from(ders[0].clone()),
        rustls::pki_types::CertificateDer::from(ders[1].clone()),
    ];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ders[2].clone().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(config).unwrap();
        while conn.is_handshaking() {
            if conn.complete_io(&mut sock).is_err() {
                return;
            }
        }
        let _ = conn.complete_io(&mut sock);
    });
    let out = palisade(&[
        "pin",
        "--connect",
        &addr.to_string(),
        "--server-name",
        "localhost",
    ]);
    server.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let file_pins = palisade_pin::pins_from_der(&ders[0]).unwrap();
    assert!(text.contains(&file_pins[0].spki().to_string()), "{text}");
    assert!(
        text.contains("certificate 1"),
        "the intermediate is shown too: {text}"
    );

    let refused = palisade(&["pin", "--connect", "127.0.0.1:1"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("cannot connect"));
}

/// Writes a signed, hash-chained trail of `n` events; returns its file and the public key.
fn audit_trail(dir: &std::path::Path, n: u64) -> (std::path::PathBuf, String) {
    use palisade_audit::file::{JsonlConfig, JsonlSink};
    use palisade_audit::{Action, AuditEvent, AuditSink, CheckpointSigner};
    let signer = CheckpointSigner::generate(
        "ops",
        "example.com/audit",
        &palisade_core::random::SystemRandom,
    )
    .unwrap();
    let vkey = signer.verifier().to_vkey();
    let sink = JsonlSink::open(JsonlConfig::new(dir, "audit").checkpoints(signer, 1_000)).unwrap();
    for i in 0..n {
        sink.record(
            AuditEvent::new(
                Action::LoginFailed,
                palisade_core::time::UnixTime::from_secs(1_700_000_000 + i),
            )
            .user_id(format!("u{i}")),
        );
    }
    sink.shutdown().unwrap();
    (dir.join("audit-00000000000000000000.jsonl"), vkey)
}

/// `palisade audit verify DIR` with the checkpoint key in `PALISADE_AUDIT_PUBLIC_KEY`, never argv.
fn audit_verify(dir: &std::path::Path, vkey: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["audit", "verify"])
        .arg(dir)
        .args(extra)
        .env("PALISADE_AUDIT_PUBLIC_KEY", vkey)
        .env_remove("PALISADE_DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn audit_verify_accepts_intact_and_finds_tampering() {
    let dir = std::env::temp_dir().join(format!("palisade-cli-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (file, vkey) = audit_trail(&dir, 20);
    let original = std::fs::read_to_string(&file).unwrap();

    let out = audit_verify(&dir, &vkey, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("verified: 20 records") && stdout(&out).contains("20 attested"),
        "{}",
        stdout(&out)
    );

    // Edit one user id on line 7: the first bad record is line 7.
    let tampered = original.replacen("\"u6\"", "\"u9\"", 1);
    assert_ne!(tampered, original);
    std::fs::write(&file, &tampered).unwrap();
    let out = audit_verify(&dir, &vkey, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("jsonl line 7: "), "{}", stdout(&out));

    // A line appended after the last checkpoint (a copy of the last record) is refused.
    std::fs::write(
        &file,
        format!("{original}{}\n", original.lines().last().unwrap()),
    )
    .unwrap();
    let out = audit_verify(&dir, &vkey, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("jsonl line 21: "), "{}", stdout(&out));

    // Cut the last three records: the chain alone looks fine, the checkpoint does not.
    let lines: Vec<&str> = original.lines().collect();
    std::fs::write(&file, format!("{}\n", lines[..17].join("\n"))).unwrap();
    let out = audit_verify(&dir, &vkey, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("line 18: the trail ends after 17 records"),
        "{}",
        stdout(&out)
    );

    // Under another key no checkpoint verifies: nothing is attested.
    let other = palisade_audit::CheckpointSigner::generate(
        "ops",
        "example.com/audit",
        &palisade_core::random::SystemRandom,
    )
    .unwrap()
    .verifier()
    .to_vkey();
    std::fs::write(&file, &original).unwrap();
    let out = audit_verify(&dir, &other, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("does not verify"), "{}", stdout(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fernet_decrypt_reads_the_spec_vector() {
    // Fernet specification, verify.json.
    let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    let key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let out = palisade_stdin(
        &["fernet", "decrypt", "--key", key],
        format!("{token}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello");
    // MultiFernet: the right key second.
    let other = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let out = palisade_stdin(
        &["fernet", "decrypt", "--key", &format!("{other},{key}")],
        token.as_bytes(),
    );
    assert_eq!(out.stdout, b"hello", "{}", stderr(&out));
    // The token is from 1985: with a TTL it has expired.
    let out = palisade_stdin(
        &["fernet", "decrypt", "--key", key, "--ttl", "60"],
        token.as_bytes(),
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one line: {}",
        stderr(&out)
    );
    // A tampered token, or the wrong key: a one-line reason, nothing on stdout.
    let tampered = token.replacen("gAAAAAAd", "gAAAAAAe", 1);
    for (k, t) in [(key, tampered.as_str()), (other, token)] {
        let out = palisade_stdin(&["fernet", "decrypt", "--key", k], t.as_bytes());
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        assert!(stderr(&out).contains("invalid token"), "{}", stderr(&out));
    }
}

fn key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("field.keys");
    let key = stdout(&palisade(&["keygen", "field", "--id", "k1"]));
    std::fs::write(&path, key).unwrap();
    path
}

#[test]
fn field_encrypt_and_decrypt_are_bound_to_their_context() {
    let dir = std::env::temp_dir().join(format!("palisade-cli-field-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = key_file(&dir);
    let keys = keys.to_str().unwrap();
    let out = palisade_stdin(
        &[
            "field",
            "encrypt",
            "--key-file",
            keys,
            "--context",
            "users.phone:42",
        ],
        b"+15551234567",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sealed = stdout(&out);
    assert!(sealed.starts_with("pal1:"), "{sealed}");
    assert!(!sealed.contains("5551234567"));
    let out = palisade_stdin(
        &[
            "field",
            "decrypt",
            "--key-file",
            keys,
            "--context",
            "users.phone:42",
        ],
        sealed.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"+15551234567");
    // Another row, another column: refused.
    for ctx in ["users.phone:43", "users.email:42", "staff.phone:42"] {
        let out = palisade_stdin(
            &["field", "decrypt", "--key-file", keys, "--context", ctx],
            sealed.as_bytes(),
        );
        assert!(!out.status.success(), "{ctx}");
        assert!(out.stdout.is_empty());
    }
    let out = palisade_stdin(
        &[
            "field",
            "encrypt",
            "--key-file",
            keys,
            "--context",
            "users-phone-42",
        ],
        b"x",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TABLE.COLUMN:ROW"));
    let out = palisade_stdin(
        &[
            "field",
            "encrypt",
            "--key-file",
            dir.join("none").to_str().unwrap(),
            "--context",
            "a.b:1",
        ],
        b"x",
    );
    assert!(
        stderr(&out).contains("cannot read key file"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn field_migrate_and_status_on_postgres() {
    let Ok(url) = std::env::var("PALISADE_DATABASE_URL") else {
        eprintln!("skipped: PALISADE_DATABASE_URL is not set");
        return;
    };
    let dir = std::env::temp_dir().join(format!("palisade-cli-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = key_file(&dir);
    let keys = keys.to_str().unwrap();
    let table = format!("cli_migrate_{}", std::process::id());
    let fernet_key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let fernet_token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([url.as_str(), "-Atqc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    psql(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, phone text); \
         INSERT INTO {table} SELECT g, '+1555' || g FROM generate_series(1, 1000) g; \
         UPDATE {table} SET phone = NULL WHERE id = 7; \
         UPDATE {table} SET phone = '{fernet_token}' WHERE id = 8;"
    ));
    let column = |extra: &[&str]| {
        let mut args = vec![
            "--key-file",
            keys,
            "--database-url",
            &url,
            "--table",
            &table,
            "--id-column",
            "id",
            "--from",
            "phone",
            "--to",
            "phone",
            "--from-fernet-key",
            fernet_key,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |cmd: &[&str], extra: &[&str]| {
        let mut args: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        args.extend(column(extra));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        palisade(&refs)
    };

    let before = stdout(&run(&["field", "status"], &[]));
    assert!(before.contains("plaintext:     998"), "{before}");
    assert!(before.contains("fernet:        1"), "{before}");
    // Interrupted after two batches of 100, as a crash would leave it.
    let out = run(
        &["field", "migrate"],
        &["--batch", "100", "--max-batches", "2", "--quiet"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("stopped"), "{}", stdout(&out));
    let mid = stdout(&run(&["field", "status"], &[]));
    assert!(mid.contains("plaintext:     800"), "{mid}");
    // Resumed to the end.
    let out = run(&["field", "migrate"], &["--batch", "100", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("done"), "{}", stdout(&out));
    let after = stdout(&run(&["field", "status"], &[]));
    assert!(
        after.contains("plaintext:     0") && after.contains("complete:      yes"),
        "{after}"
    );
    assert!(after.contains("current key:   999 (k1)"), "{after}");

    // Every value decrypts to the original, bound to its row.
    for (id, expected) in [
        (1, "+15551".to_owned()),
        (500, "+1555500".to_owned()),
        (8, "hello".to_owned()),
    ] {
        let sealed = psql(&format!("SELECT phone FROM {table} WHERE id = {id}"));
        assert!(sealed.starts_with("pal1:"), "{sealed}");
        let ctx = format!("{table}.phone:{id}");
        let out = palisade_stdin(
            &["field", "decrypt", "--key-file", keys, "--context", &ctx],
            sealed.as_bytes(),
        );
        assert_eq!(stdout(&out), expected, "{}", stderr(&out));
    }
    assert_eq!(
        psql(&format!("SELECT count(*) FROM {table} WHERE phone IS NULL")).trim(),
        "1"
    );
    psql(&format!(
        "DROP TABLE {table}; DELETE FROM palisade_field_migrations WHERE job = '{table}.phone'"
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The command line of a live process, as `ps` shows it to every user of the machine.
#[cfg(target_os = "linux")]
fn visible_argv(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn secrets_come_from_env_file_or_stdin_and_never_show_in_ps() {
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let at = ["--at", "59", "--digits", "8"];
    // From the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["totp", "code", "--secret-env", "PALISADE_TEST_TOTP"])
        .args(at)
        .env("PALISADE_TEST_TOTP", secret)
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "94287082", "{}", stderr(&out));
    // From a file.
    let dir = std::env::temp_dir().join(format!("palisade-cli-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("totp.secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let mut args = vec!["totp", "code", "--secret-file", file.to_str().unwrap()];
    args.extend(at);
    let out = palisade(&args);
    assert_eq!(stdout(&out).trim(), "94287082", "{}", stderr(&out));
    // From standard input, with the process's argv read while it waits for the secret.
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["totp", "verify", "--secret-file", "-", "--code", "94287082"])
        .args(at)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    #[cfg(target_os = "linux")]
    {
        // Right after spawn the child may not have exec'd yet: wait for its own command line.
        let mut argv = String::new();
        for _ in 0..500 {
            argv = visible_argv(child.id());
            if argv.contains("verify") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(argv.contains("verify"), "{argv}");
        assert!(
            !argv.contains(secret),
            "the secret is visible in ps: {argv}"
        );
    }
    writeln!(child.stdin.take().unwrap(), "{secret}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Fernet keys too: from a file, and one that starts with '-' on argv.
    let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    let key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let key_file = dir.join("fernet.key");
    std::fs::write(&key_file, key).unwrap();
    let out = palisade_stdin(
        &[
            "fernet",
            "decrypt",
            "--key-file",
            key_file.to_str().unwrap(),
        ],
        token.as_bytes(),
    );
    assert_eq!(out.stdout, b"hello", "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
    // A key that begins with '-' (1 Fernet key in 64) is a value, not an option.
    let dash_key = "-AABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4=";
    let out = palisade_stdin(&["fernet", "decrypt", "--key", dash_key], token.as_bytes());
    assert!(
        stderr(&out).contains("invalid token"),
        "the key was not taken as a key: {}",
        stderr(&out)
    );
    let out = palisade(&[
        "totp",
        "code",
        "--secret",
        "-EZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    ]);
    // Base32 reading skips dashes, so this is a secret, and the command prints its code.
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim().len(), 6);
}

#[test]
fn totp_at_past_the_last_time_is_refused() {
    let out = palisade(&[
        "totp",
        "code",
        "--secret",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "--at",
        "20000000000",
    ]);
    assert!(!out.status.success(), "printed {}", stdout(&out));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("--at"), "{}", stderr(&out));
}

#[test]
fn totp_new_with_a_bad_qr_path_prints_no_secret() {
    let out = palisade(&[
        "totp",
        "new",
        "--issuer",
        "A",
        "--account",
        "b",
        "--qr",
        "x.jpg",
    ]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "printed before failing: {}",
        stdout(&out)
    );
    let out = palisade(&[
        "totp",
        "new",
        "--issuer",
        "A",
        "--account",
        "b",
        "--qr",
        "/nonexistent-dir/qr.png",
    ]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "printed before failing: {}",
        stdout(&out)
    );
}

#[test]
fn keygen_field_ids_follow_the_field_rule_and_states_are_chosen() {
    // 17 to 32 characters are valid keyring ids but too long for field keys: refused at once.
    let out = palisade(&["keygen", "field", "--id", "a-seventeen-chars"]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "printed {}", stdout(&out));
    let out = palisade(&["keygen", "hmac", "--id", "a-seventeen-chars"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = palisade(&["keygen", "field", "--id", "f1", "--state", "decrypt-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("f1:decrypt-only:"),
        "{}",
        stdout(&out)
    );
}
