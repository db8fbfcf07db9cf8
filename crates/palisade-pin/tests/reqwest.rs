//! reqwest clients built from a pin file, against a local HTTPS server (tokio-rustls on
//! 127.0.0.1, certificates from rcgen), and violation reports to a local HTTP endpoint.
#![cfg(feature = "report")]
// Test helpers: a failed set-up step is a failed test.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_pin::{HttpReporter, PinError, PinFile, PinningVerifier, pins_from_der};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "pinned.palisade.test";
const BACKUP: &str = "sha256/QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// A root and the leaf it signed for [`HOST`].
struct Pki {
    root: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_key: KeyPair,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Reqwest Test Root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_key = KeyPair::generate().unwrap();
    let root = params.self_signed(&root_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&params, &root_key);
    let mut leaf_params = CertificateParams::new(vec![HOST.to_owned()]).unwrap();
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        root: root.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key,
    }
}

/// An HTTPS server on loopback answering every request with `200 ok`.
async fn https_server(pki: &Pki) -> SocketAddr {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf.clone(), pki.root.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake is the client's business.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = read_request(&mut tls).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// Reads one HTTP/1.1 request; returns its body.
async fn read_request(stream: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(buf[end + 4..].to_vec());
        }
    }
}

/// A plain HTTP endpoint on loopback that keeps every body it is sent.
async fn report_endpoint() -> (reqwest::Url, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let body = read_request(&mut tcp).await.unwrap();
                store
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                let _ = tcp
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let url = format!("http://{addr}/pin-report").parse().unwrap();
    (url, received)
}

fn pin_file(pins: &[String], report_only: bool) -> PinFile {
    let pins: Vec<String> = pins.iter().map(|p| format!("\"{p}\"")).collect();
    PinFile::parse(&format!(
        "[[host]]\npatterns = [\"**.palisade.test\"]\npins = [{}]\nreport_only = {report_only}\n",
        pins.join(", ")
    ))
    .unwrap()
}

/// A client of its own (so its own TLS session store: every request is a full handshake).
fn pinned_client(
    pki: &Pki,
    addr: SocketAddr,
    policy: &Arc<palisade_pin::PinPolicy>,
) -> reqwest::Client {
    let policy = Arc::clone(policy);
    let verifier = Arc::new(PinningVerifier::new(std::slice::from_ref(&pki.root), policy).unwrap());
    palisade_pin::reqwest::client_builder_with_verifier(verifier)
        .unwrap()
        .resolve(HOST, addr)
        .build()
        .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("https://{HOST}:{}/", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_pin_connects_wrong_pin_is_a_typed_error() {
    let pki = pki();
    let addr = https_server(&pki).await;
    let leaf_pin = pins_from_der(&pki.leaf).unwrap()[0].spki().to_string();

    let right = pin_file(&[leaf_pin.clone(), BACKUP.to_owned()], false);
    let policy = Arc::new(right.into_policy().unwrap());
    let mut ok = 0;
    for _ in 0..5 {
        let client = pinned_client(&pki, addr, &policy);
        let response = client.get(url(addr)).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "ok");
        ok += 1;
    }
    assert_eq!(ok, 5, "5 of 5 requests with the right pin went through");

    let other = "sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned();
    let wrong = pin_file(&[other, BACKUP.to_owned()], false);
    let policy = Arc::new(wrong.into_policy().unwrap());
    let mut refused = 0;
    for _ in 0..5 {
        let client = pinned_client(&pki, addr, &policy);
        let error = client.get(url(addr)).send().await.unwrap_err();
        match palisade_pin::reqwest::pin_error(&error) {
            Some(PinError::Mismatch { presented, .. }) => {
                // The chain validated (the verified path runs leaf to root), then pins refused it.
                assert_eq!(presented[0][0].to_string(), leaf_pin);
                refused += 1;
            }
            other => panic!("expected a pin mismatch, got {other:?} from {error:?}"),
        }
    }
    assert_eq!(
        refused, 5,
        "5 of 5 requests with a wrong pin were refused by pinning"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_chain_with_the_pinned_key_fails_validation_not_pinning() {
    let pki = pki();
    let addr = https_server(&pki).await;
    let leaf_pin = pins_from_der(&pki.leaf).unwrap()[0].spki().to_string();
    let file = pin_file(&[leaf_pin, BACKUP.to_owned()], false);
    // The client trusts another root: the right pin does not rescue an untrusted chain.
    let stranger = self::pki();
    let verifier =
        Arc::new(PinningVerifier::new(&[stranger.root], file.into_policy().unwrap()).unwrap());
    let client = palisade_pin::reqwest::client_builder_with_verifier(verifier)
        .unwrap()
        .resolve(HOST, addr)
        .build()
        .unwrap();
    let error = client.get(url(addr)).send().await.unwrap_err();
    assert!(
        palisade_pin::reqwest::pin_error(&error).is_none(),
        "{error:?}"
    );
    assert!(
        format!("{error:?}").contains("InvalidCertificate"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_connects_and_reports_once_per_window() {
    let pki = pki();
    let addr = https_server(&pki).await;
    let (endpoint, received) = report_endpoint().await;
    let other = "sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned();
    let file = pin_file(&[other, BACKUP.to_owned()], true);

    for (window, expected_reports) in [(Duration::from_secs(3600), 1), (Duration::ZERO, 5)] {
        received.lock().unwrap().clear();
        let reporter = HttpReporter::spawn(reqwest::Client::new(), endpoint.clone(), window, 64);
        let policy = file
            .policy_builder()
            .violation_reporter(reporter.clone())
            .build()
            .unwrap();
        let policy = Arc::new(policy);
        let mut connected = 0;
        for _ in 0..5 {
            let client = pinned_client(&pki, addr, &policy);
            let response = client.get(url(addr)).send().await.unwrap();
            assert_eq!(response.text().await.unwrap(), "ok");
            connected += 1;
        }
        assert_eq!(connected, 5, "report-only: 5 of 5 requests went through");
        // Wait for the background task to deliver what it queued (an event, not a deadline).
        while {
            let s = reporter.stats();
            s.delivered + s.failed < s.queued
        } {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = reporter.stats();
        assert_eq!(stats.queued, expected_reports);
        assert_eq!(stats.delivered, expected_reports);
        assert_eq!(stats.deduplicated, 5 - expected_reports);
        assert_eq!(stats.dropped, 0);
        let reports = received.lock().unwrap().clone();
        assert_eq!(reports.len() as u64, expected_reports, "{reports:?}");
        let report = &reports[0];
        assert_eq!(report["hostname"], HOST);
        assert_eq!(report["noted-hostname"], "**.palisade.test");
        assert_eq!(report["include-subdomains"], true);
        assert_eq!(report["mode"], "report-only");
        assert_eq!(
            report["known-pins"][1],
            format!("pin-sha256=\"{}\"", BACKUP.trim_start_matches("sha256/"))
        );
        let leaf_pin = pins_from_der(&pki.leaf).unwrap()[0].spki().to_string();
        assert_eq!(report["validated-pins"][0][0], leaf_pin);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_channel_drops_and_counts_without_blocking() {
    let pki = pki();
    let addr = https_server(&pki).await;
    // An endpoint that accepts connections and never answers: the one report in flight hangs.
    let black_hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole = black_hole.local_addr().unwrap();
    let _keep: tokio::task::JoinHandle<Vec<TcpStream>> = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = black_hole.accept().await {
            open.push(tcp);
        }
        open
    });
    let reporter = HttpReporter::spawn(
        reqwest::Client::new(),
        format!("http://{hole}/").parse().unwrap(),
        Duration::ZERO,
        1,
    );
    let other = "sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned();
    let policy = pin_file(&[other, BACKUP.to_owned()], true)
        .policy_builder()
        .violation_reporter(reporter.clone())
        .build()
        .unwrap();
    let policy = Arc::new(policy);
    for _ in 0..10 {
        let client = pinned_client(&pki, addr, &policy);
        assert!(
            client
                .get(url(addr))
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let stats = reporter.stats();
    // One taken by the task (hanging), at most one waiting, the rest dropped.
    assert_eq!(stats.queued + stats.dropped, 10);
    assert!(stats.dropped >= 8, "{stats:?}");
}
