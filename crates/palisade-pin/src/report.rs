//! Pin violation reports: the [`Violation`] a policy hands to a [`ViolationReporter`], and
//! (feature `report`) [`HttpReporter`], which POSTs them as JSON to a report URI.
//!
//! A policy calls its reporter synchronously, on the handshake path, after it has decided; the
//! reporter cannot change the decision, and a good one never blocks. [`HttpReporter`] keeps
//! that promise with a bounded channel and a background task: a report that finds the channel
//! full is dropped and counted, never waited for.
//!
//! # The JSON report
//! The fields of RFC 7469 section 3 where they fit: `date-time`, `hostname`, `noted-hostname`
//! (the pin set's pattern), `include-subdomains`, `effective-expiration-date`, `known-pins`
//! (`pin-sha256="..."` for SPKI pins, as in the RFC). The verifier sees only the paths it
//! verified, as pins, and not the port, so `port`, `served-certificate-chain` and
//! `validated-certificate-chain` are left out; `validated-pins` lists the SPKI pins of every
//! verified path (end-entity first), `mode` is `enforcing` or `report-only`, and `denied-pin`
//! names a key of the deny list when one was found.

use core::fmt;

use palisade_core::time::UnixTime;

use crate::pin::Pin;
#[cfg(feature = "report")]
use crate::pin::PinKind;

/// Receives every pin violation of a policy (see the [module docs](self)).
pub trait ViolationReporter: fmt::Debug + Send + Sync {
    /// Called once per refused (or, in report-only mode, reported) connection. Must not block.
    fn report(&self, violation: &Violation);
}

/// One pin violation: what a policy saw when it refused (or reported) a verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The canonical host name.
    pub host: String,
    /// The pattern of the pin set that applied, if one did (a denied key needs none).
    pub pattern: Option<String>,
    /// Whether that pattern is a wildcard.
    pub include_subdomains: bool,
    /// The pin set's expiry.
    pub expires_at: Option<UnixTime>,
    /// The pins of the set.
    pub expected: Vec<Pin>,
    /// The SPKI pins of every verified path tried, end-entity first.
    pub presented: Vec<Vec<Pin>>,
    /// A key of the deny list found on a path.
    pub denied: Option<Pin>,
    /// Whether the connection went through (report-only set).
    pub report_only: bool,
    /// When.
    pub at: UnixTime,
}

impl Violation {
    /// The JSON report (RFC 7469 section 3 fields where they fit; see the [module docs](self)).
    #[cfg(feature = "report")]
    pub fn to_json(&self) -> serde_json::Value {
        let mut report = serde_json::json!({
            "date-time": rfc3339(self.at),
            "hostname": self.host,
            "include-subdomains": self.include_subdomains,
            "known-pins": self.expected.iter().map(rfc7469_pin).collect::<Vec<_>>(),
            "validated-pins": self.presented.iter()
                .map(|path| path.iter().map(Pin::to_string).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            "mode": if self.report_only { "report-only" } else { "enforcing" },
        });
        if let Some(object) = report.as_object_mut() {
            if let Some(pattern) = &self.pattern {
                object.insert("noted-hostname".into(), pattern.as_str().into());
            }
            if let Some(at) = self.expires_at {
                object.insert("effective-expiration-date".into(), rfc3339(at).into());
            }
            if let Some(pin) = self.denied {
                object.insert("denied-pin".into(), pin.to_string().into());
            }
        }
        report
    }
}

/// `pin-sha256="<base64>"` for an SPKI pin (RFC 7469 section 2.1.1); our form otherwise.
#[cfg(feature = "report")]
fn rfc7469_pin(pin: &Pin) -> String {
    match pin.kind() {
        PinKind::Spki => {
            let text = pin.to_string();
            format!("pin-sha256=\"{}\"", text.trim_start_matches("sha256/"))
        }
        PinKind::Certificate => pin.to_string(),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(at: UnixTime) -> String {
    let secs = at.as_secs();
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01, `None` before 1970 or for a bad date.
pub(crate) fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    // Reject 31 February and friends: the date must come back unchanged.
    (civil_from_days(days) == (if m <= 2 { y + 1 } else { y }, m, d)).then_some(days)
}

#[cfg(feature = "report")]
pub use http::{HttpReporter, ReporterStats};

#[cfg(feature = "report")]
mod http {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::{Violation, ViolationReporter};

    /// How many (host, pin set) entries the de-duplication table keeps before pruning.
    const MAX_DEDUP_ENTRIES: usize = 4096;

    /// POSTs JSON violation reports to a report URI from a background task, at most once per
    /// host and pin set per window (see the [module docs](super)).
    #[derive(Debug)]
    pub struct HttpReporter {
        sender: mpsc::Sender<String>,
        window: Duration,
        /// (host, pattern and pins) -> when it was last sent, in seconds.
        last_sent: Mutex<HashMap<(String, String), u64>>,
        stats: Arc<Counters>,
    }

    #[derive(Debug, Default)]
    struct Counters {
        queued: AtomicU64,
        deduplicated: AtomicU64,
        dropped: AtomicU64,
        delivered: AtomicU64,
        failed: AtomicU64,
    }

    /// What an [`HttpReporter`] did so far.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[non_exhaustive]
    pub struct ReporterStats {
        /// Reports put on the channel.
        pub queued: u64,
        /// Reports skipped because the same host and pin set was reported within the window.
        pub deduplicated: u64,
        /// Reports dropped because the channel was full.
        pub dropped: u64,
        /// Reports the endpoint answered with a 2xx status.
        pub delivered: u64,
        /// Reports whose POST failed or got another status.
        pub failed: u64,
    }

    impl HttpReporter {
        /// Starts the background task on the current tokio runtime; reports go to `uri` through
        /// `client`, at most `capacity` wait in the channel, and one host and pin set is
        /// reported at most once per `window`.
        ///
        /// # Panics
        /// Outside a tokio runtime (like `tokio::spawn`).
        pub fn spawn(
            client: reqwest::Client,
            uri: reqwest::Url,
            window: Duration,
            capacity: usize,
        ) -> Arc<Self> {
            let (sender, mut receiver) = mpsc::channel::<String>(capacity.max(1));
            let stats = Arc::new(Counters::default());
            let counters = Arc::clone(&stats);
            tokio::spawn(async move {
                while let Some(body) = receiver.recv().await {
                    let sent = client
                        .post(uri.clone())
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    let counter = match sent {
                        Ok(response) if response.status().is_success() => &counters.delivered,
                        Ok(_) | Err(_) => &counters.failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            Arc::new(Self {
                sender,
                window,
                last_sent: Mutex::new(HashMap::new()),
                stats,
            })
        }

        /// The counters so far.
        pub fn stats(&self) -> ReporterStats {
            let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
            ReporterStats {
                queued: load(&self.stats.queued),
                deduplicated: load(&self.stats.deduplicated),
                dropped: load(&self.stats.dropped),
                delivered: load(&self.stats.delivered),
                failed: load(&self.stats.failed),
            }
        }

        /// Whether this host and pin set was not reported within the window; records it.
        fn first_in_window(&self, violation: &Violation) -> bool {
            let pins: Vec<String> = violation.expected.iter().map(ToString::to_string).collect();
            let key = (
                violation.host.clone(),
                format!(
                    "{} {}",
                    violation.pattern.as_deref().unwrap_or("-"),
                    pins.join(" ")
                ),
            );
            let now = violation.at.as_secs();
            let window = self.window.as_secs();
            let mut table = self
                .last_sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if table
                .get(&key)
                .is_some_and(|&last| now.saturating_sub(last) < window)
            {
                return false;
            }
            if table.len() >= MAX_DEDUP_ENTRIES {
                table.retain(|_, last| now.saturating_sub(*last) < window);
            }
            table.insert(key, now);
            true
        }
    }

    impl ViolationReporter for HttpReporter {
        fn report(&self, violation: &Violation) {
            if !self.first_in_window(violation) {
                self.stats.deduplicated.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let counter = match self.sender.try_send(violation.to_json().to_string()) {
                Ok(()) => &self.stats.queued,
                Err(_) => &self.stats.dropped,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(UnixTime::from_secs(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UnixTime::from_secs(1_800_000_000)),
            "2027-01-15T08:00:00Z"
        );
        assert_eq!(days_from_civil(2027, 2, 31), None);
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
    }

    proptest! {
        #[test]
        fn days_round_trip(days in 0u64..2_932_896) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }
}
