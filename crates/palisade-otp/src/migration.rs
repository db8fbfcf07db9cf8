//! Import of Google Authenticator's export: `otpauth-migration://offline?data=...`.
//!
//! "Transfer accounts" in Google Authenticator shows one or more QR codes, each a URI whose
//! `data` parameter is standard base64 (percent-encoded) of a protobuf `MigrationPayload`: a
//! batch of accounts (secret bytes, name, issuer, algorithm, digit count, HOTP or TOTP, HOTP
//! counter) and the batch's size, index and id, so an import can tell when it has every QR
//! code of an export. [`MigrationBatch::parse`] decodes one into [`OtpauthUri`]s, ready to
//! store or re-emit. The protobuf is read by hand: five fields of one message and seven of
//! another, varints and length-delimited bytes only, unknown fields skipped; a dependency on a
//! protobuf runtime would be larger than the decoder.
//!
//! Names: an export's `name` may be `issuer:account` (as in a URI label); the account is the
//! part after the colon, and the `issuer` field wins over the prefix, as in
//! [`uri`](crate::uri#label-and-parameter-issuers). TOTP accounts get the 30-second period (the
//! export carries none).
//!
//! # Errors
//! [`OtpError::InvalidUri`] naming what is wrong (never a secret), and the secret's errors
//! ([`OtpError::WeakSecret`] below 128 bits unless [`UriOptions::accept_weak_secret`]).
//!
//! # Security
//! The URI and the decoded payload hold every secret of the batch: the payload is wiped after
//! decoding, and the secrets live on in the [`OtpauthUri`]s (zeroized, `***` in `Debug`).

use palisade_core::secret::SecretBytes;
use zeroize::Zeroizing;

use crate::OtpError;
use crate::otp::{Digits, Period};
use crate::secret::{Algorithm, OtpSecret};
use crate::uri::{OtpKind, OtpauthUri, UriOptions, percent_decode};

/// The longest export URI read (one QR code holds at most about 3 KiB; batches are split).
pub const MAX_MIGRATION_URI_LEN: usize = 64 * 1024;
const PREFIX: &str = "otpauth-migration://offline?";

/// One QR code of a Google Authenticator export.
#[derive(Debug)]
pub struct MigrationBatch {
    accounts: Vec<OtpauthUri>,
    size: u64,
    index: u64,
    id: u64,
}

impl MigrationBatch {
    /// Decodes an `otpauth-migration://offline?data=...` URI with the defaults of
    /// [`UriOptions::new`].
    ///
    /// # Errors
    /// See the [module documentation](self).
    pub fn parse(uri: &str) -> Result<Self, OtpError> {
        Self::parse_with(uri, &UriOptions::new())
    }

    /// Decodes with `options` (only [`UriOptions::accept_weak_secret`] applies).
    ///
    /// # Errors
    /// See the [module documentation](self).
    pub fn parse_with(uri: &str, options: &UriOptions) -> Result<Self, OtpError> {
        let uri = uri.trim();
        if uri.len() > MAX_MIGRATION_URI_LEN {
            return Err(invalid("export uri longer than 64 KiB"));
        }
        let query = uri
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .and_then(|_| uri.get(PREFIX.len()..))
            .ok_or(invalid("not an otpauth-migration://offline uri"))?;
        let mut data = None;
        for pair in query.split('&') {
            if let Some(value) = pair.strip_prefix("data=") {
                if data.is_some() {
                    return Err(invalid("duplicate data parameter"));
                }
                data = Some(Zeroizing::new(
                    percent_decode(value, false).ok_or(invalid("bad percent-encoding in data"))?,
                ));
            }
        }
        let data = data.ok_or(invalid("missing data parameter"))?;
        // Standard base64; some exporters drop the padding, and a space may stand for a '+'
        // that was not percent-encoded.
        let text = Zeroizing::new(data.trim_end_matches('=').replace(' ', "+"));
        let payload = Zeroizing::new(
            data_encoding::BASE64_NOPAD
                .decode(text.as_bytes())
                .map_err(|_| invalid("data is not base64"))?,
        );
        Self::decode(&payload, options)
    }

    fn decode(payload: &[u8], options: &UriOptions) -> Result<Self, OtpError> {
        let mut batch = Self {
            accounts: Vec::new(),
            size: 1,
            index: 0,
            id: 0,
        };
        let mut r = Reader(payload);
        while let Some((field, value)) = r.field()? {
            match (field, value) {
                (1, Value::Bytes(otp)) => batch.accounts.push(account(otp, options)?),
                (3, Value::Varint(n)) => batch.size = n,
                (4, Value::Varint(n)) => batch.index = n,
                (5, Value::Varint(n)) => batch.id = n,
                (1 | 3 | 4 | 5, _) => return Err(invalid("wrong wire type in the payload")),
                _ => {}
            }
        }
        if batch.size == 0 || batch.index >= batch.size {
            return Err(invalid("batch index outside the batch size"));
        }
        Ok(batch)
    }

    /// The accounts of this QR code, in export order.
    pub fn accounts(&self) -> &[OtpauthUri] {
        &self.accounts
    }

    /// Takes the accounts.
    pub fn into_accounts(self) -> Vec<OtpauthUri> {
        self.accounts
    }

    /// How many QR codes the export has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Which of them this is (from 0).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The export's id, the same on each of its QR codes.
    pub fn id(&self) -> u64 {
        self.id
    }
}

fn invalid(reason: &'static str) -> OtpError {
    OtpError::InvalidUri { reason }
}

fn text(bytes: &[u8]) -> Result<&str, OtpError> {
    core::str::from_utf8(bytes).map_err(|_| invalid("a name is not utf-8"))
}

/// One `OtpParameters` message as a URI.
fn account(message: &[u8], options: &UriOptions) -> Result<OtpauthUri, OtpError> {
    let mut secret: Option<&[u8]> = None;
    let (mut name, mut issuer) = ("", "");
    let (mut algorithm, mut digits, mut kind, mut counter) = (0, 0, 0, 0);
    let mut r = Reader(message);
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => secret = Some(b),
            (2, Value::Bytes(b)) => name = text(b)?,
            (3, Value::Bytes(b)) => issuer = text(b)?,
            (4, Value::Varint(n)) => algorithm = n,
            (5, Value::Varint(n)) => digits = n,
            (6, Value::Varint(n)) => kind = n,
            (7, Value::Varint(n)) => counter = n,
            (1..=7, _) => return Err(invalid("wrong wire type in an account")),
            _ => {}
        }
    }
    let bytes = SecretBytes::from_slice(secret.ok_or(invalid("an account has no secret"))?);
    let secret = if options.accepts_weak_secret() {
        OtpSecret::import_weak(bytes)?.0
    } else {
        OtpSecret::from_bytes(bytes)?
    };
    let algorithm = match algorithm {
        0 | 1 => Algorithm::Sha1,
        2 => Algorithm::Sha256,
        3 => Algorithm::Sha512,
        _ => return Err(invalid("unsupported algorithm in an account")),
    };
    let digits = match digits {
        0 | 1 => Digits::SIX,
        2 => Digits::EIGHT,
        _ => return Err(invalid("unsupported digit count in an account")),
    };
    let kind = match kind {
        1 => OtpKind::Hotp { counter },
        2 => OtpKind::Totp {
            period: Period::default(),
        },
        _ => return Err(invalid("an account is neither hotp nor totp")),
    };
    let (prefix, account) = match name.split_once(':') {
        Some((prefix, account)) => (Some(prefix.trim()), account.trim()),
        None => (None, name.trim()),
    };
    let issuer = Some(issuer.trim()).filter(|i| !i.is_empty()).or(prefix);
    OtpauthUri::new(kind, secret, algorithm, digits, issuer, account)
}

/// A protobuf field value of the two wire types the format uses.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Reads protobuf fields; fixed-width fields are skipped, groups refused.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, OtpError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .0
                .split_first()
                .ok_or(invalid("truncated protobuf varint"))?;
            self.0 = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(invalid("protobuf varint longer than 10 bytes"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], OtpError> {
        let len = usize::try_from(len).map_err(|_| invalid("truncated protobuf field"))?;
        if len > self.0.len() {
            return Err(invalid("truncated protobuf field"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    /// The next field number and value, skipping fixed-width fields; `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, OtpError> {
        loop {
            if self.0.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let number = key >> 3;
            match key & 7 {
                0 => return Ok(Some((number, Value::Varint(self.varint()?)))),
                2 => {
                    let len = self.varint()?;
                    return Ok(Some((number, Value::Bytes(self.take(len)?))));
                }
                1 => {
                    self.take(8)?;
                }
                5 => {
                    self.take(4)?;
                }
                _ => return Err(invalid("unsupported protobuf wire type")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_payloads_are_typed_errors() {
        for bad in [
            "",
            "otpauth://totp/x?secret=AAAA",
            "otpauth-migration://offline?",
            "otpauth-migration://offline?data=%ZZ",
            "otpauth-migration://offline?data=!!!",
            // 0x0a 0x05: an account of 5 bytes, but none follow.
            "otpauth-migration://offline?data=CgU%3D",
            // A varint of 11 continuation bytes.
            "otpauth-migration://offline?data=EP%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F8B",
            // Wire type 3 (a group).
            "otpauth-migration://offline?data=Cw%3D%3D",
        ] {
            assert!(
                matches!(MigrationBatch::parse(bad), Err(OtpError::InvalidUri { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_empty_payload_is_an_empty_batch() {
        let batch = MigrationBatch::parse("otpauth-migration://offline?data=").unwrap();
        assert!(batch.accounts().is_empty());
        assert_eq!((batch.size(), batch.index()), (1, 0));
    }
}
