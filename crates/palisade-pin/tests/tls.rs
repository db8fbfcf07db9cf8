//! Real TLS handshakes on 127.0.0.1: a rustls server thread and the pinning client.
//!
//! Certificates are generated with rcgen for each test: a legitimate hierarchy (root,
//! intermediate, leaf), a rogue CA that is also trusted (a compromised or coerced public CA)
//! issuing a valid leaf for the same name, and a cross-signed root.
#![cfg(feature = "rustls")]
// Test helpers: a failed set-up step is a failed test.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_core::audit::{Action, MemorySink, Outcome};
use palisade_core::time::UnixTime;
use palisade_pin::{Pin, PinError, PinPolicy, PinPolicyBuilder, PinSet, PinningVerifier};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{CertificateError, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

const HOST: &str = "pinned.test";

/// A certificate authority: its certificate, and what it needs to sign.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert: CertificateDer<'static>,
}

impl Ca {
    fn root(name: &str) -> Self {
        let params = ca_params(name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Self { params, key, cert }
    }

    fn intermediate(name: &str, issuer: &Ca) -> Self {
        let params = ca_params(name);
        let key = KeyPair::generate().unwrap();
        let cert = issuer.sign(&params, &key);
        Self { params, key, cert }
    }

    fn sign(&self, params: &CertificateParams, key: &KeyPair) -> CertificateDer<'static> {
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(key, &issuer).unwrap().der().clone()
    }

    fn leaf(&self, host: &str) -> Leaf {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, host);
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = self.sign(&params, &key);
        Leaf { cert, key }
    }

    fn spki(&self) -> Pin {
        spki_pin(&self.cert)
    }
}

struct Leaf {
    cert: CertificateDer<'static>,
    key: KeyPair,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn spki_pin(cert: &CertificateDer<'_>) -> Pin {
    palisade_pin::pins_from_der(cert).unwrap()[0].spki()
}

/// A pin for a key that exists only offline.
fn offline_backup() -> Pin {
    Pin::spki_sha256([0x42; 32])
}

/// The legitimate hierarchy and a rogue CA, both trusted.
struct World {
    root: Ca,
    intermediate: Ca,
    leaf: Leaf,
    rogue_root: Ca,
    rogue_intermediate: Ca,
    rogue_leaf: Leaf,
}

impl World {
    fn new() -> Self {
        let root = Ca::root("Palisade Test Root");
        let intermediate = Ca::intermediate("Palisade Test Intermediate", &root);
        let leaf = intermediate.leaf(HOST);
        let rogue_root = Ca::root("Rogue Root");
        let rogue_intermediate = Ca::intermediate("Rogue Intermediate", &rogue_root);
        let rogue_leaf = rogue_intermediate.leaf(HOST);
        Self {
            root,
            intermediate,
            leaf,
            rogue_root,
            rogue_intermediate,
            rogue_leaf,
        }
    }

    fn roots(&self) -> Vec<CertificateDer<'static>> {
        vec![self.root.cert.clone(), self.rogue_root.cert.clone()]
    }

    fn legit_chain(&self) -> Served {
        Served::new(
            vec![self.leaf.cert.clone(), self.intermediate.cert.clone()],
            &self.leaf.key,
        )
    }

    fn rogue_chain(&self) -> Served {
        Served::new(
            vec![
                self.rogue_leaf.cert.clone(),
                self.rogue_intermediate.cert.clone(),
            ],
            &self.rogue_leaf.key,
        )
    }
}

/// What a server presents.
struct Served {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

impl Served {
    fn new(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Self {
        Self {
            chain,
            key: key.serialize_der(),
        }
    }
}

/// Starts a one-connection TLS echo server on 127.0.0.1.
fn serve(served: &Served) -> (SocketAddr, JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            served.chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(served.key.clone())),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = ServerConnection::new(Arc::new(config)).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 4];
        // A refused client closes the connection: the server just stops.
        if stream.read_exact(&mut buf).is_ok() {
            let _ = stream.write_all(&buf);
            let _ = stream.flush();
        }
    });
    (addr, handle)
}

/// Connects with the pinning client and exchanges 4 bytes; the handshake error otherwise.
fn connect(
    served: &Served,
    roots: &[CertificateDer<'static>],
    policy: PinPolicy,
) -> Result<(), rustls::Error> {
    connect_as(HOST, served, roots, policy)
}

/// [`connect`], with `name` as the server name the client asks for.
fn connect_as(
    name: &'static str,
    served: &Served,
    roots: &[CertificateDer<'static>],
    policy: PinPolicy,
) -> Result<(), rustls::Error> {
    let (addr, server) = serve(served);
    let verifier = Arc::new(PinningVerifier::new(roots, policy).unwrap());
    let config = palisade_pin::client_config(verifier).unwrap();
    let conn =
        ClientConnection::new(Arc::new(config), ServerName::try_from(name).unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    let result = stream
        .write_all(b"ping")
        .and_then(|()| stream.flush())
        .and_then(|()| {
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).map(|()| buf)
        });
    drop(stream);
    server.join().unwrap();
    match result {
        Ok(buf) => {
            assert_eq!(&buf, b"ping");
            Ok(())
        }
        Err(e) => {
            let inner = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            Err(inner
                .cloned()
                .unwrap_or_else(|| panic!("not a TLS error: {e}")))
        }
    }
}

/// The [`PinError`] inside a handshake error.
fn pin_error(err: &rustls::Error) -> &PinError {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other
            .0
            .downcast_ref::<PinError>()
            .unwrap_or_else(|| panic!("not a pin error: {err}")),
        other => panic!("not a pin error: {other:?}"),
    }
}

fn policy(pins: &[Pin]) -> PinPolicyBuilder {
    PinPolicy::builder().pin_set(
        PinSet::builder(HOST.parse().unwrap())
            .pins(pins.iter().copied())
            .build()
            .unwrap(),
    )
}

#[test]
fn pinned_chain_connects() {
    let w = World::new();
    let policy = policy(&[spki_pin(&w.leaf.cert), offline_backup()])
        .build()
        .unwrap();
    connect(&w.legit_chain(), &w.roots(), policy).unwrap();
}

#[test]
fn pinned_root_connects() {
    let w = World::new();
    let policy = policy(&[w.root.spki(), offline_backup()]).build().unwrap();
    connect(&w.legit_chain(), &w.roots(), policy).unwrap();
}

#[test]
fn rogue_ca_chain_is_refused_with_a_mismatch_listing_the_presented_pins() {
    let w = World::new();
    let sink = Arc::new(MemorySink::new());
    let expected = [w.intermediate.spki(), offline_backup()];
    let policy = policy(&expected).audit_sink(sink.clone()).build().unwrap();
    let err = connect(&w.rogue_chain(), &w.roots(), policy).unwrap_err();
    match pin_error(&err) {
        PinError::Mismatch {
            host,
            expected: listed,
            presented,
        } => {
            assert_eq!(host, HOST);
            assert_eq!(listed, &expected);
            assert_eq!(
                presented,
                &[vec![
                    spki_pin(&w.rogue_leaf.cert),
                    w.rogue_intermediate.spki(),
                    w.rogue_root.spki(),
                ]]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&w.rogue_root.spki().to_string()));
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, Action::PinMismatch);
    assert_eq!(events[0].outcome, Outcome::Failure);
    assert_eq!(events[0].resource.as_deref(), Some(HOST));
    assert_eq!(events[0].metadata["mode"], "enforcing");
    assert!(events[0].metadata["presented"].contains(&spki_pin(&w.rogue_leaf.cert).to_string()));
    assert!(events[0].metadata["expected"].contains(&w.intermediate.spki().to_string()));
}

#[test]
fn report_only_lets_the_rogue_chain_through_and_records_it() {
    let w = World::new();
    let sink = Arc::new(MemorySink::new());
    let policy = PinPolicy::builder()
        .pin_set(
            PinSet::builder(HOST.parse().unwrap())
                .pin(w.intermediate.spki())
                .pin(offline_backup())
                .report_only()
                .build()
                .unwrap(),
        )
        .audit_sink(sink.clone())
        .build()
        .unwrap();
    connect(&w.rogue_chain(), &w.roots(), policy).unwrap();
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, Action::PinMismatch);
    assert_eq!(events[0].metadata["mode"], "report_only");
    assert!(events[0].metadata["presented"].contains(&w.rogue_intermediate.spki().to_string()));
}

#[test]
fn expired_pin_set_connects_and_is_recorded() {
    let w = World::new();
    let sink = Arc::new(MemorySink::new());
    let policy = PinPolicy::builder()
        .pin_set(
            PinSet::builder(HOST.parse().unwrap())
                .pin(w.intermediate.spki())
                .pin(offline_backup())
                .expires_at(UnixTime::from_secs(1_600_000_000)) // September 2020
                .build()
                .unwrap(),
        )
        .audit_sink(sink.clone())
        .build()
        .unwrap();
    connect(&w.rogue_chain(), &w.roots(), policy).unwrap();
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, Action::PinSetExpired);
    assert_eq!(events[0].metadata["expired_at"], "1600000000");
}

#[test]
fn backup_pin_matching_the_intermediate_connects() {
    let w = World::new();
    // The primary pin is a key the server no longer uses; the backup is the intermediate's.
    let retired = Ca::root("Retired Key").spki();
    let policy = policy(&[retired, w.intermediate.spki()]).build().unwrap();
    connect(&w.legit_chain(), &w.roots(), policy).unwrap();
}

#[test]
fn cve_2016_2402_appended_pinned_certificates_are_ignored() {
    let w = World::new();
    // The attacker's valid chain, with the public pinned intermediate and root appended.
    let attack = Served::new(
        vec![
            w.rogue_leaf.cert.clone(),
            w.rogue_intermediate.cert.clone(),
            w.intermediate.cert.clone(),
            w.root.cert.clone(),
        ],
        &w.rogue_leaf.key,
    );
    let policy = policy(&[w.intermediate.spki(), w.root.spki()])
        .build()
        .unwrap();
    let err = connect(&attack, &w.roots(), policy).unwrap_err();
    match pin_error(&err) {
        PinError::Mismatch { presented, .. } => {
            for path in presented {
                assert!(!path.contains(&w.intermediate.spki()));
                assert!(!path.contains(&w.root.spki()));
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cross_signed_root_connects_when_only_the_longer_path_is_pinned() {
    let old_root = Ca::root("Old Root");
    let new_root = Ca::root("New Root");
    // The new root's key and name, certified by the old root.
    let cross = old_root.sign(&new_root.params, &new_root.key);
    let intermediate = Ca::intermediate("Issuing CA", &new_root);
    let leaf = intermediate.leaf(HOST);
    let served = Served::new(
        vec![leaf.cert.clone(), intermediate.cert.clone(), cross.clone()],
        &leaf.key,
    );
    let roots = vec![new_root.cert.clone(), old_root.cert.clone()];

    // webpki finds leaf -> intermediate -> new root first; only the path through the cross
    // certificate to the old root holds the pin.
    let pins = [old_root.spki(), offline_backup()];
    let short_path = [
        leaf.cert.clone(),
        intermediate.cert.clone(),
        new_root.cert.clone(),
    ];
    let strict = policy(&pins).build().unwrap();
    assert!(matches!(
        strict.check(HOST, &short_path, UnixTime::from_secs(1_800_000_000)),
        Err(PinError::Mismatch { .. })
    ));
    connect(&served, &roots, policy(&pins).build().unwrap()).unwrap();

    // And a pin on neither path is refused, listing both paths.
    let err = connect(
        &served,
        &roots,
        policy(&[offline_backup(), Pin::spki_sha256([7; 32])])
            .build()
            .unwrap(),
    )
    .unwrap_err();
    match pin_error(&err) {
        PinError::Mismatch { presented, .. } => assert_eq!(presented.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn certificate_fingerprint_pins_work_on_every_level() {
    let w = World::new();
    for cert in [&w.leaf.cert, &w.intermediate.cert, &w.root.cert] {
        let fingerprint = palisade_pin::pins_from_der(cert).unwrap()[0].certificate();
        let policy = policy(&[fingerprint, offline_backup()]).build().unwrap();
        connect(&w.legit_chain(), &w.roots(), policy).unwrap();
    }
}

#[test]
fn denied_key_is_refused_even_for_an_unpinned_host() {
    let w = World::new();
    let policy = PinPolicy::builder()
        .allow_unpinned_hosts()
        .deny(w.rogue_intermediate.spki())
        .build()
        .unwrap();
    let err = connect(&w.rogue_chain(), &w.roots(), policy).unwrap_err();
    assert!(
        matches!(pin_error(&err), PinError::Denied { pin, .. } if *pin == w.rogue_intermediate.spki())
    );
}

#[test]
fn unpinned_host_fails_closed_unless_allowed() {
    let w = World::new();
    let other = PinPolicy::builder()
        .pin_set(
            PinSet::builder("other.test".parse().unwrap())
                .pin(w.root.spki())
                .pin(offline_backup())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = connect(&w.legit_chain(), &w.roots(), other).unwrap_err();
    assert!(matches!(pin_error(&err), PinError::NoPins { host } if host == HOST));
    let open = PinPolicy::builder().allow_unpinned_hosts().build().unwrap();
    connect(&w.legit_chain(), &w.roots(), open).unwrap();
}

#[test]
fn validation_still_comes_first() {
    let w = World::new();
    // A pinned key does not make an untrusted chain acceptable.
    let only_rogue_trusted = vec![w.rogue_root.cert.clone()];
    let pinned = policy(&[w.intermediate.spki(), w.leaf_spki()])
        .build()
        .unwrap();
    let err = connect(&w.legit_chain(), &only_rogue_trusted, pinned).unwrap_err();
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );

    // A valid, pinned chain for another name is refused for the name.
    let other_leaf = w.intermediate.leaf("other.test");
    let served = Served::new(
        vec![other_leaf.cert.clone(), w.intermediate.cert.clone()],
        &other_leaf.key,
    );
    let pinned = policy(&[w.intermediate.spki(), offline_backup()])
        .build()
        .unwrap();
    let err = connect(&served, &w.roots(), pinned).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{err:?}"
    );
}

impl World {
    fn leaf_spki(&self) -> Pin {
        spki_pin(&self.leaf.cert)
    }
}

#[test]
fn server_name_is_canonicalised_before_matching() {
    let w = World::new();
    let sink = Arc::new(MemorySink::new());
    let expected = [w.intermediate.spki(), offline_backup()];
    // The pin set is written in lower case; the client asks for an upper-case name.
    connect_as(
        "PINNED.Test",
        &w.legit_chain(),
        &w.roots(),
        policy(&expected).build().unwrap(),
    )
    .unwrap();
    let err = connect_as(
        "Pinned.TEST",
        &w.rogue_chain(),
        &w.roots(),
        policy(&expected).audit_sink(sink.clone()).build().unwrap(),
    )
    .unwrap_err();
    assert!(matches!(pin_error(&err), PinError::Mismatch { host, .. } if host == HOST));
    assert_eq!(sink.events()[0].resource.as_deref(), Some(HOST));
}

#[test]
fn root_store_anchors_match_spki_pins_but_not_fingerprints() {
    use rustls::client::danger::ServerCertVerifier;

    let w = World::new();
    let mut store = rustls::RootCertStore::empty();
    store.add(w.root.cert.clone()).unwrap();
    let name = ServerName::try_from(HOST).unwrap();
    let now = rustls::pki_types::UnixTime::now();
    let verify = |pins: &[Pin]| {
        PinningVerifier::with_root_store(store.clone(), policy(pins).build().unwrap())
            .verify_server_cert(
                &w.leaf.cert,
                std::slice::from_ref(&w.intermediate.cert),
                &name,
                &[],
                now,
            )
    };
    verify(&[w.root.spki(), offline_backup()]).unwrap();
    let root_fingerprint = palisade_pin::pins_from_der(&w.root.cert).unwrap()[0].certificate();
    let err = verify(&[root_fingerprint, offline_backup()]).unwrap_err();
    assert!(matches!(pin_error(&err), PinError::Mismatch { .. }));
}
