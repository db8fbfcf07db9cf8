//! Pins computed by the crate equal openssl's for a fixed certificate.
//!
//! `tests/data/fixed.pem` (and its DER form `fixed.der`) is a self-signed P-256 certificate for
//! `pin-fixture.palisade.test`, made once with:
//!
//! ```sh
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!     -keyout /dev/null -out fixed.pem -days 36500 \
//!     -subj "/CN=pin-fixture.palisade.test" -addext "subjectAltName=DNS:pin-fixture.palisade.test"
//! openssl x509 -in fixed.pem -outform der -out fixed.der
//! ```
//!
//! The expected pins below are openssl's output (OpenSSL 3):
//!
//! ```sh
//! # SPKI pin (the HPKP / OkHttp recipe):
//! openssl x509 -in fixed.pem -pubkey -noout | openssl pkey -pubin -outform der \
//!     | openssl dgst -sha256 -binary | openssl base64
//! # => Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=
//! # Certificate fingerprint:
//! openssl x509 -in fixed.pem -noout -fingerprint -sha256
//! # => sha256 Fingerprint=CD:CE:7B:43:F0:D1:A2:8C:D0:2B:F0:C2:22:3D:66:EB:34:53:BF:74:FD:2E:F0:78:E9:02:B2:DB:23:06:4E:1F
//! ```

use palisade_core::time::UnixTime;
use palisade_pin::{
    Pin, PinError, PinPolicy, PinSet, PinStatus, pins_from_bytes, pins_from_der, pins_from_pem,
};

const PEM: &[u8] = include_bytes!("data/fixed.pem");
const DER: &[u8] = include_bytes!("data/fixed.der");
const OPENSSL_SPKI: &str = "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=";
const OPENSSL_FINGERPRINT: &str = "sha256 Fingerprint=CD:CE:7B:43:F0:D1:A2:8C:D0:2B:F0:C2:22:3D:66:EB:34:53:BF:74:FD:2E:F0:78:E9:02:B2:DB:23:06:4E:1F";

#[test]
fn pins_equal_openssl_from_pem_and_der() {
    let spki: Pin = OPENSSL_SPKI.parse().unwrap();
    let fingerprint: Pin = OPENSSL_FINGERPRINT.parse().unwrap();
    for pins in [
        pins_from_pem(PEM).unwrap(),
        pins_from_der(DER).unwrap(),
        pins_from_bytes(PEM).unwrap(),
        pins_from_bytes(DER).unwrap(),
    ] {
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].spki(), spki);
        assert_eq!(pins[0].certificate(), fingerprint);
        assert_eq!(pins[0].spki().to_string(), OPENSSL_SPKI);
        assert_eq!(
            format!("sha256 Fingerprint={}", pins[0].certificate()),
            OPENSSL_FINGERPRINT
        );
        assert_eq!(pins[0].subject(), "CN=pin-fixture.palisade.test");
    }
}

#[test]
fn chains_in_pem_and_concatenated_der() {
    let mut pem = b"subject=CN=whatever\n".to_vec();
    pem.extend_from_slice(PEM);
    pem.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    pem.extend_from_slice(PEM);
    assert_eq!(pins_from_pem(&pem).unwrap().len(), 2);

    let der = [DER, DER].concat();
    assert_eq!(pins_from_der(&der).unwrap().len(), 2);
    assert!(matches!(
        pins_from_der(&[DER, &DER[..10]].concat()),
        Err(PinError::UnparseableCertificate { index: 1, .. })
    ));
    assert!(matches!(
        pins_from_der(&DER[..DER.len() - 1]),
        Err(PinError::UnparseableCertificate { index: 0, .. })
    ));
}

#[test]
fn backup_rule_against_the_served_chain() {
    let served = [DER];
    let current: Pin = OPENSSL_SPKI.parse().unwrap();
    let fingerprint: Pin = OPENSSL_FINGERPRINT.parse().unwrap();
    let backup = Pin::spki_sha256([9; 32]);
    let builder = || PinSet::builder("pin-fixture.palisade.test".parse().unwrap());

    // Both pins are in the served chain: no backup.
    assert!(matches!(
        builder()
            .pin(current)
            .pin(fingerprint)
            .served_chain(&served)
            .build(),
        Err(PinError::NoBackupPin { .. })
    ));
    // Nothing matches the served chain: clients would break at once.
    assert!(matches!(
        builder().pin(backup).pin(Pin::spki_sha256([8; 32])).served_chain(&served).build(),
        Err(PinError::NoPinMatchesServedChain { served, .. }) if served == [current]
    ));
    let set = builder()
        .pin(current)
        .pin(backup)
        .served_chain(&served)
        .build()
        .unwrap();
    // Explicit opt-out: one pin, in the chain.
    builder()
        .pin(current)
        .allow_single_pin()
        .served_chain(&served)
        .build()
        .unwrap();

    let policy = PinPolicy::builder().pin_set(set).build().unwrap();
    let ok = policy
        .check(
            "PIN-FIXTURE.palisade.test.",
            &served,
            UnixTime::from_secs(1_800_000_000),
        )
        .unwrap();
    assert_eq!(ok.host(), "pin-fixture.palisade.test");
    assert_eq!(ok.status(), &PinStatus::Matched(current));
    assert!(matches!(
        policy.check(
            "pin-fixture.palisade.test",
            &[b"not a certificate"],
            UnixTime::EPOCH
        ),
        Err(PinError::UnparseableCertificate { index: 0, .. })
    ));
    assert!(matches!(
        policy.check(
            "pin-fixture.palisade.test",
            &[] as &[&[u8]],
            UnixTime::EPOCH
        ),
        Err(PinError::NoCertificate)
    ));
}
