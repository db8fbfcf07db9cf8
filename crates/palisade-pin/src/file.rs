//! The pin file (TOML) and the `CERT_PINNING_FINGERPRINTS` environment form.
//!
//! ```toml
//! # Hosts without an entry fail closed unless this is true.
//! allow_unpinned_hosts = false
//! # Keys refused for every host (sha256/ SPKI pins only).
//! deny = ["sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
//! # Hosts exempted from pinning even under a wildcard entry (TrustKit-Android#8).
//! exempt = ["status.example.com"]
//! # Where violation reports go (read it with `PinFile::report_uri`).
//! report_uri = "https://reports.example.com/pins"
//!
//! [[host]]
//! patterns = ["example.com", "**.example.com"]
//! pins = [
//!   "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=",   # today's key
//!   "sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",   # the backup, kept offline
//! ]
//! expires = 2027-06-01          # a TOML date (UTC midnight) or an offset date-time
//! report_only = false
//! allow_single_pin = false      # a set needs a backup pin unless this is true
//! ```
//!
//! Every entry becomes one [`PinSet`] per pattern, and [`PinFile::policy_builder`] gives a
//! [`PinPolicyBuilder`] to add an audit sink or a reporter to. Unknown keys are refused, so a
//! misspelt `report_only` cannot silently enforce.
//!
//! # Errors
//! [`PinError::File`], naming the line and column (from 1) of the offending value: TOML syntax,
//! a bad pin or pattern, a set without a backup pin, a duplicate pattern, a fingerprint on the
//! deny list, a date before 1970 or without an offset.

use std::path::Path;

use palisade_core::time::UnixTime;
use serde::Deserialize;
use toml::Spanned;

use crate::error::PinError;
use crate::host::HostPattern;
use crate::pin::Pin;
use crate::policy::{PinPolicy, PinPolicyBuilder, PinSet};
use crate::report::{days_from_civil, rfc3339};

/// The environment variable of the checklists' form: comma-separated SHA-256 fingerprints.
pub const FINGERPRINTS_ENV: &str = "CERT_PINNING_FINGERPRINTS";

/// A parsed, validated pin file (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinFile {
    sets: Vec<PinSet>,
    deny: Vec<Pin>,
    exempt: Vec<HostPattern>,
    allow_unpinned_hosts: bool,
    report_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    allow_unpinned_hosts: bool,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    exempt: Vec<Spanned<String>>,
    report_uri: Option<String>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    patterns: Vec<Spanned<String>>,
    pins: Vec<Spanned<String>>,
    expires: Option<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    report_only: bool,
    #[serde(default)]
    allow_single_pin: bool,
}

impl PinFile {
    /// Parses a pin file.
    ///
    /// # Errors
    /// [`PinError::File`] with the line and column of the problem.
    pub fn parse(text: &str) -> Result<Self, PinError> {
        let at = |offset: usize, error: &dyn core::fmt::Display| file_error(text, offset, error);
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, &e.message())
        })?;
        let mut file = Self {
            allow_unpinned_hosts: raw.allow_unpinned_hosts,
            report_uri: raw.report_uri,
            ..Self::default()
        };
        for pin in &raw.deny {
            let parsed = Pin::parse(pin.get_ref()).map_err(|e| at(pin.span().start, &e))?;
            if !parsed.is_spki() {
                return Err(at(
                    pin.span().start,
                    &PinError::DenyListNotSpki { pin: parsed },
                ));
            }
            file.deny.push(parsed);
        }
        for pattern in &raw.exempt {
            let parsed =
                HostPattern::parse(pattern.get_ref()).map_err(|e| at(pattern.span().start, &e))?;
            file.exempt.push(parsed);
        }
        for entry in &raw.host {
            let host = entry.get_ref();
            let mut pins = Vec::with_capacity(host.pins.len());
            for pin in &host.pins {
                pins.push(Pin::parse(pin.get_ref()).map_err(|e| at(pin.span().start, &e))?);
            }
            let expires = match &host.expires {
                None => None,
                Some(date) => {
                    Some(unix_time(date.get_ref()).map_err(|e| at(date.span().start, &e))?)
                }
            };
            if host.patterns.is_empty() {
                return Err(at(entry.span().start, &"a [[host]] entry needs patterns"));
            }
            for pattern in &host.patterns {
                let start = pattern.span().start;
                let mut builder = PinSet::builder(
                    HostPattern::parse(pattern.get_ref()).map_err(|e| at(start, &e))?,
                )
                .pins(pins.iter().copied());
                if let Some(expires) = expires {
                    builder = builder.expires_at(expires);
                }
                if host.report_only {
                    builder = builder.report_only();
                }
                if host.allow_single_pin {
                    builder = builder.allow_single_pin();
                }
                let set = builder.build().map_err(|e| at(start, &e))?;
                if file.sets.iter().any(|s| s.pattern() == set.pattern()) {
                    let e = PinError::DuplicatePattern {
                        pattern: set.pattern().to_string(),
                    };
                    return Err(at(start, &e));
                }
                file.sets.push(set);
            }
        }
        Ok(file)
    }

    /// Reads and parses a pin file.
    ///
    /// # Errors
    /// [`PinError::File`] (line 0 when the file cannot be read).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PinError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PinError::File {
            line: 0,
            column: 0,
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::parse(&text)
    }

    /// The checklists' environment form for hosts matching `pattern`: comma-separated SHA-256
    /// fingerprints (`AA:BB:...`, or `sha256/` pins). Two are needed (the backup-pin rule).
    ///
    /// # Errors
    /// [`PinError::File`] naming the column (line 1) of the bad entry, or of the value when it
    /// has too few pins; [`PinError::InvalidHostPattern`] for `pattern`.
    pub fn from_fingerprints(pattern: &str, value: &str) -> Result<Self, PinError> {
        let pattern = HostPattern::parse(pattern)?;
        let mut pins = Vec::new();
        let mut offset = 0;
        for entry in value.split(',') {
            let trimmed = entry.trim();
            let column = offset + (entry.len() - entry.trim_start().len());
            offset += entry.len() + 1;
            if trimmed.is_empty() {
                continue;
            }
            pins.push(Pin::parse(trimmed).map_err(|e| file_error(value, column, &e))?);
        }
        let set = PinSet::builder(pattern)
            .pins(pins)
            .build()
            .map_err(|e| file_error(value, 0, &e))?;
        Ok(Self {
            sets: vec![set],
            ..Self::default()
        })
    }

    /// [`from_fingerprints`](Self::from_fingerprints) with the value of
    /// `CERT_PINNING_FINGERPRINTS`.
    ///
    /// # Errors
    /// As `from_fingerprints`, and [`PinError::File`] when the variable is not set.
    pub fn from_env(pattern: &str) -> Result<Self, PinError> {
        let value = std::env::var(FINGERPRINTS_ENV).map_err(|e| PinError::File {
            line: 0,
            column: 0,
            reason: format!("{FINGERPRINTS_ENV}: {e}"),
        })?;
        Self::from_fingerprints(pattern, &value)
    }

    /// A file holding `sets` and nothing else (no deny list, no exemptions, unpinned hosts
    /// refused): what `palisade pin --connect --format toml` prints through [`to_toml`](Self::to_toml).
    pub fn from_pin_sets(sets: Vec<PinSet>) -> Self {
        Self {
            sets,
            ..Self::default()
        }
    }

    /// The pin sets, one per pattern.
    pub fn pin_sets(&self) -> &[PinSet] {
        &self.sets
    }

    /// The report URI, if the file names one.
    pub fn report_uri(&self) -> Option<&str> {
        self.report_uri.as_deref()
    }

    /// A policy builder holding the file's sets, deny list, exemptions and unpinned-host rule.
    pub fn policy_builder(&self) -> PinPolicyBuilder {
        let mut builder = PinPolicy::builder();
        for set in &self.sets {
            builder = builder.pin_set(set.clone());
        }
        for pin in &self.deny {
            builder = builder.deny(*pin);
        }
        for pattern in &self.exempt {
            builder = builder.exempt(pattern.clone());
        }
        if self.allow_unpinned_hosts {
            builder = builder.allow_unpinned_hosts();
        }
        builder
    }

    /// The policy, with no audit sink and no reporter.
    ///
    /// # Errors
    /// None in practice: the file was validated when parsed.
    pub fn into_policy(self) -> Result<PinPolicy, PinError> {
        self.policy_builder().build()
    }

    /// The file as TOML that [`parse`](Self::parse) reads back to an equal `PinFile`.
    pub fn to_toml(&self) -> String {
        let list = |items: Vec<String>| {
            let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out = String::new();
        out.push_str(&format!(
            "allow_unpinned_hosts = {}\n",
            self.allow_unpinned_hosts
        ));
        out.push_str(&format!(
            "deny = {}\n",
            list(self.deny.iter().map(ToString::to_string).collect())
        ));
        out.push_str(&format!(
            "exempt = {}\n",
            list(self.exempt.iter().map(ToString::to_string).collect())
        ));
        if let Some(uri) = &self.report_uri {
            out.push_str(&format!("report_uri = {}\n", toml_string(uri)));
        }
        for set in &self.sets {
            out.push_str("\n[[host]]\n");
            out.push_str(&format!(
                "patterns = {}\n",
                list(vec![set.pattern().to_string()])
            ));
            out.push_str("pins = [\n");
            for pin in set.pins() {
                out.push_str(&format!("  \"{pin}\",\n"));
            }
            out.push_str("]\n");
            if let Some(at) = set.expires_at() {
                out.push_str(&format!("expires = {}\n", rfc3339(at)));
            }
            out.push_str(&format!("report_only = {}\n", set.is_report_only()));
            if set.pins().len() < 2 {
                out.push_str("allow_single_pin = true\n");
            }
        }
        out
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first second a [`UnixTime`] (u64 nanoseconds) cannot hold.
const MAX_EXPIRY_SECS: u64 = u64::MAX / 1_000_000_000;

/// A TOML date (UTC midnight) or offset date-time as Unix time.
fn unix_time(value: &toml::value::Datetime) -> Result<UnixTime, &'static str> {
    let date = value.date.ok_or("expires needs a date")?;
    let days = days_from_civil(
        u64::from(date.year),
        u64::from(date.month),
        u64::from(date.day),
    )
    .ok_or("expires must be a valid date from 1970 to 9999")?;
    let mut secs = i64::try_from(days * 86_400).map_err(|_| "expires is out of range")?;
    if let Some(time) = value.time {
        let offset = match value.offset {
            Some(toml::value::Offset::Z) => 0,
            Some(toml::value::Offset::Custom { minutes }) => i64::from(minutes) * 60,
            None => return Err("expires needs a time zone offset (or a plain date)"),
        };
        secs += i64::from(time.hour) * 3600
            + i64::from(time.minute) * 60
            + i64::from(time.second.unwrap_or(0))
            - offset;
    }
    let secs = u64::try_from(secs).map_err(|_| "expires is before 1970")?;
    if secs >= MAX_EXPIRY_SECS {
        return Err("expires is after 2554 (beyond the clock's range)");
    }
    Ok(UnixTime::from_secs(secs))
}

/// A [`PinError::File`] at byte `offset` of `text`.
fn file_error(text: &str, offset: usize, error: &dyn core::fmt::Display) -> PinError {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    PinError::File {
        line,
        column,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=";
    const B: &str = "sha256/AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn file(body: &str) -> Result<PinFile, PinError> {
        PinFile::parse(body)
    }

    #[test]
    fn full_file_loads() {
        let text = format!(
            "deny = [\"{B}\"]\nexempt = [\"status.example.com\"]\nreport_uri = \"https://r.test/p\"\n\
             [[host]]\npatterns = [\"example.com\", \"**.example.com\"]\npins = [\"{A}\", \"{B}\"]\n\
             expires = 2027-06-01\nreport_only = true\n"
        );
        let f = file(&text).unwrap();
        assert_eq!(f.pin_sets().len(), 2);
        assert_eq!(f.report_uri(), Some("https://r.test/p"));
        let set = &f.pin_sets()[1];
        assert!(set.is_report_only());
        assert_eq!(set.expires_at(), Some(UnixTime::from_secs(1_811_808_000)));
        let policy = f.into_policy().unwrap();
        assert!(policy.pin_set_for("api.example.com").unwrap().is_some());
        assert!(policy.pin_set_for("status.example.com").unwrap().is_none());
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = format!("[[host]]\npatterns = [\"a.test\"]\npins = [\"{A}\", \"nope\"]\n");
        let err = file(&text).unwrap_err();
        let PinError::File { line, column, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!((line, column), (3, 13 + A.len()));

        // No backup pin: refused at the pattern.
        let text = format!("[[host]]\npatterns = [\"a.test\"]\npins = [\"{A}\"]\n");
        let err = file(&text).unwrap_err();
        assert!(
            matches!(err, PinError::File { line: 2, column: 13, ref reason } if reason.contains("backup")),
            "{err}"
        );
        let text = format!(
            "[[host]]\npatterns = [\"a.test\"]\npins = [\"{A}\"]\nallow_single_pin = true\n"
        );
        assert!(file(&text).is_ok());

        // Syntax and unknown keys.
        assert!(matches!(
            file("a = 1\nb = ]\n"),
            Err(PinError::File { line: 2, .. })
        ));
        assert!(matches!(
            file("\nreport_onyl = true\n"),
            Err(PinError::File { line: 2, .. })
        ));
        // A local date-time is ambiguous.
        let text = format!(
            "[[host]]\npatterns = [\"a.test\"]\npins = [\"{A}\", \"{B}\"]\nexpires = 2027-01-01T00:00:00\n"
        );
        assert!(matches!(
            file(&text),
            Err(PinError::File {
                line: 4,
                column: 11,
                ..
            })
        ));
        // A fingerprint on the deny list.
        let fp = ["AB"; 32].join(":");
        assert!(matches!(
            file(&format!("deny = [\"{fp}\"]")),
            Err(PinError::File {
                line: 1,
                column: 9,
                ..
            })
        ));
    }

    #[test]
    fn environment_form_loads() {
        let a = ["AB"; 32].join(":");
        let b = ["cd"; 32].join(":");
        let f = PinFile::from_fingerprints("**.example.com", &format!("{a}, {b}")).unwrap();
        assert_eq!(f.pin_sets()[0].pins().len(), 2);
        let err = PinFile::from_fingerprints("a.test", &format!("{a},XX")).unwrap_err();
        assert!(
            matches!(err, PinError::File { line: 1, column, .. } if column == a.len() + 2),
            "{err}"
        );
        assert!(matches!(
            PinFile::from_fingerprints("a.test", &a),
            Err(PinError::File { .. })
        ));
    }

    fn arb_pin() -> impl Strategy<Value = Pin> {
        (any::<[u8; 32]>(), any::<bool>()).prop_map(|(d, spki)| {
            if spki {
                Pin::spki_sha256(d)
            } else {
                Pin::certificate_sha256(d)
            }
        })
    }

    fn arb_file() -> impl Strategy<Value = PinFile> {
        let set = (
            "[a-z]{1,8}\\.(test|example)",
            0u8..3,
            proptest::collection::vec(arb_pin(), 1..4),
            proptest::option::of(0u64..MAX_EXPIRY_SECS),
            any::<bool>(),
        )
            .prop_map(|(name, kind, pins, expires, report_only)| {
                let prefix = ["", "*.", "**."][usize::from(kind)];
                let mut b = PinSet::builder(format!("{prefix}{name}").parse().unwrap())
                    .pins(pins)
                    .allow_single_pin();
                if let Some(e) = expires {
                    b = b.expires_at(UnixTime::from_secs(e));
                }
                if report_only {
                    b = b.report_only();
                }
                b.build().unwrap()
            });
        (
            proptest::collection::vec(set, 0..4),
            proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            any::<bool>(),
            proptest::option::of("[ -~]{0,20}"),
        )
            .prop_map(|(mut sets, deny, allow_unpinned_hosts, report_uri)| {
                let mut seen = Vec::new();
                sets.retain(|s: &PinSet| {
                    let fresh = !seen.contains(s.pattern());
                    seen.push(s.pattern().clone());
                    fresh
                });
                PinFile {
                    sets,
                    deny: deny.into_iter().map(Pin::spki_sha256).collect(),
                    exempt: vec!["status.test".parse().unwrap()],
                    allow_unpinned_hosts,
                    report_uri,
                }
            })
    }

    proptest! {
        #[test]
        fn to_toml_round_trips(f in arb_file()) {
            prop_assert_eq!(PinFile::parse(&f.to_toml()).unwrap(), f);
        }

        #[test]
        fn any_text_gives_a_file_or_a_located_error(text in "[ -~\n]{0,200}") {
            match PinFile::parse(&text) {
                Ok(_) => {}
                Err(PinError::File { line, column, .. }) => {
                    prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
                    prop_assert!(column >= 1);
                }
                Err(e) => prop_assert!(false, "unlocated error {e:?}"),
            }
        }
    }
}
