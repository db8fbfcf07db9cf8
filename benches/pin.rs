//! Benches of palisade-pin beside their peers.
//!
//! One three-certificate chain (ECDSA P-256 root, intermediate, leaf, made with rcgen):
//! - `policy_check`: `PinPolicy::check` on the verified chain (parse three certificates with
//!   x509-parser, hash their keys, match), the pure pin check for non-rustls users;
//! - `webpki_verifier`: rustls's own `WebPkiServerVerifier::verify_server_cert`, the peer;
//! - `pinning_verifier`: `PinningVerifier::verify_server_cert` with the pin on the root (every
//!   key of the path is hashed), and `pinning_verifier_unpinned` with no pins to check.
//!
//! The goal: `pinning_verifier` within 5% of `webpki_verifier`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::time::UnixTime;
use palisade_pin::{Pin, PinPolicy, PinSet, PinningVerifier, pins_from_der};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName};

const HOST: &str = "api.example.com";

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Root, intermediate and leaf certificates.
fn chain() -> [CertificateDer<'static>; 3] {
    let root_params = ca_params("Bench Root");
    let root_key = KeyPair::generate().unwrap();
    let root = root_params.self_signed(&root_key).unwrap().der().clone();
    let int_params = ca_params("Bench Intermediate");
    let int_key = KeyPair::generate().unwrap();
    let int = int_params
        .signed_by(&int_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap()
        .der()
        .clone();
    let mut leaf_params = CertificateParams::new(vec![HOST.to_owned()]).unwrap();
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params
        .signed_by(&leaf_key, &Issuer::from_params(&int_params, &int_key))
        .unwrap()
        .der()
        .clone();
    [leaf, int, root]
}

fn policy(pin: Pin) -> PinPolicy {
    PinPolicy::builder()
        .pin_set(
            PinSet::builder(HOST.parse().unwrap())
                .pin(Pin::spki_sha256([0x42; 32]))
                .pin(pin)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn pin(c: &mut Criterion) {
    let [leaf, int, root] = chain();
    let root_pin = pins_from_der(&root).unwrap()[0].spki();
    let now = rustls::pki_types::UnixTime::now();
    let server_name = ServerName::try_from(HOST).unwrap();
    let intermediates = [int.clone()];

    let mut group = c.benchmark_group("pin");

    let pinned = policy(root_pin);
    let verified_chain = [leaf.clone(), int.clone(), root.clone()];
    let at = UnixTime::from_secs(now.as_secs());
    assert!(pinned.check(HOST, &verified_chain, at).is_ok());
    group.bench_function("policy_check_3_certs", |b| {
        b.iter(|| pinned.check(black_box(HOST), black_box(&verified_chain), at))
    });

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = RootCertStore::empty();
    store.add(root.clone()).unwrap();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .unwrap();
    let pinning = PinningVerifier::new(std::slice::from_ref(&root), policy(root_pin)).unwrap();
    let unpinned = PinningVerifier::new(
        std::slice::from_ref(&root),
        PinPolicy::builder().allow_unpinned_hosts().build().unwrap(),
    )
    .unwrap();
    for (name, verifier) in [
        ("webpki_verifier", &*webpki as &dyn ServerCertVerifier),
        ("pinning_verifier", &pinning),
        ("pinning_verifier_unpinned", &unpinned),
    ] {
        assert!(
            verifier
                .verify_server_cert(&leaf, &intermediates, &server_name, &[], now)
                .is_ok()
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                verifier.verify_server_cert(
                    black_box(&leaf),
                    black_box(&intermediates),
                    &server_name,
                    &[],
                    now,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pin);
criterion_main!(benches);
