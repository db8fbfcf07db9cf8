//! Password policy per NIST SP 800-63B: length bounds and a blocklist, no composition rules.
//!
//! NIST SP 800-63B (revision 4, section 3.1.1.2) asks verifiers to require a minimum length,
//! to accept at least 64 characters, to count each Unicode code point as one character after
//! normalisation, to refuse passwords found in lists of commonly used or breached passwords and
//! context-specific words (the service name, the user name), and *not* to impose composition
//! rules (digits, symbols, mixed case) or periodic changes. [`Policy`] does exactly that.
//!
//! # Which minimum
//! Revision 4 asks for 15 characters when the password is the only authentication factor, and
//! allows 8 when it is one factor of several. A library cannot know which applies, so the
//! default is the safe one, [`Policy::SINGLE_FACTOR`] (15); services that enforce a second
//! factor may choose [`Policy::MULTI_FACTOR`] (8). No minimum below 8 can be configured.
//!
//! # The blocklist
//! A built-in list of 441 common passwords (those of 8 or more characters among the first
//! 2152 of the SecLists "10 million password list" ranking, compiled in from
//! `src/data/common-passwords.txt`), compared ASCII-case-insensitively after normalisation. Short
//! passwords are not on it because every policy's minimum already refuses them; none of the
//! 2152 is 15 characters long, so under the single-factor minimum the list rarely fires. For a
//! larger breach corpus (Have I Been Pwned's k-anonymity range API, say), check it alongside.
//!
//! # Patterns
//! A length rule alone accepts `1234567890123456`, `aaaaaaaaaaaaaaaaaaaa`, `passwordpassword`
//! and `qwertyuiopasdfgh`, which guessers try early (zxcvbn's repeat, sequence and spatial
//! matchers). [`Policy`] also counts the *unpredictable* characters: those that are not a
//! repeat of the one before, the next or previous letter or digit (`9` to `0` wraps), a
//! neighbour on a keyboard row (`1234567890`, `qwertyuiop`, `asdfghjkl`, `zxcvbnm`), nor the
//! end of a three-character group seen earlier in the password. Fewer than
//! [`Policy::min_unpredictable_chars`] (default: three fifths of the minimum length, rounded
//! up: 9 for 15) is [`Violation::Predictable`]. `correct horse battery staple` has 21.
//!
//! # Errors
//! [`Policy::new`] returns [`Error::InvalidPolicy`] for bounds outside NIST's. A password that
//! breaks the policy is not an error but a [`Verdict::Reject`] with a [`Violation`].
//!
//! # Panics
//! None.

use core::fmt;
use std::sync::OnceLock;

use crate::{Error, MAX_PASSWORD_BYTES, Normalization};

const COMMON: &str = include_str!("data/common-passwords.txt");

/// Length bounds and blocklists for newly chosen passwords.
///
/// ```
/// use palisade_password::{Policy, Verdict, Violation};
///
/// let policy = Policy::default(); // 15 to 128 characters
/// assert_eq!(policy.check("correct horse battery staple"), Verdict::Accept);
/// assert_eq!(
///     policy.check("Tr0ub4dor&3"),
///     Verdict::Reject(Violation::TooShort { min_chars: 15, actual_chars: 11 })
/// );
/// let mfa = Policy::MULTI_FACTOR;
/// assert_eq!(mfa.check("Password1"), Verdict::Reject(Violation::Common));
/// assert_eq!(
///     mfa.check_with_context("alice2024!", &["alice", "example.com"]),
///     Verdict::Reject(Violation::ContextSpecific)
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    min_chars: usize,
    max_chars: usize,
    min_unpredictable: usize,
    normalization: Normalization,
}

/// Three fifths of `min_chars`, rounded up.
const fn default_unpredictable(min_chars: usize) -> usize {
    (min_chars * 3).div_ceil(5)
}

impl Policy {
    /// For passwords that are the only authentication factor: 15 to 128 characters. The default.
    pub const SINGLE_FACTOR: Policy = Policy {
        min_chars: 15,
        max_chars: 128,
        min_unpredictable: default_unpredictable(15),
        normalization: Normalization::Nfkc,
    };

    /// For passwords used together with a second factor: 8 to 128 characters.
    pub const MULTI_FACTOR: Policy = Policy {
        min_chars: 8,
        max_chars: 128,
        min_unpredictable: default_unpredictable(8),
        normalization: Normalization::Nfkc,
    };

    /// Bounds of your own, in characters (Unicode code points after normalisation).
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] unless `8 <= min_chars <= max_chars`, `max_chars >= 64`
    /// (NIST's floor for the maximum) and `max_chars * 4 <= MAX_PASSWORD_BYTES` (so every
    /// accepted password can be hashed).
    pub const fn new(min_chars: usize, max_chars: usize) -> Result<Self, Error> {
        if min_chars < 8 {
            return Err(Error::InvalidPolicy {
                reason: "minimum length below 8 characters",
            });
        }
        if max_chars < 64 {
            return Err(Error::InvalidPolicy {
                reason: "maximum length below 64 characters",
            });
        }
        if min_chars > max_chars {
            return Err(Error::InvalidPolicy {
                reason: "minimum length above maximum",
            });
        }
        if max_chars > MAX_PASSWORD_BYTES / 4 {
            return Err(Error::InvalidPolicy {
                reason: "maximum length above what the hasher accepts",
            });
        }
        Ok(Self {
            min_chars,
            max_chars,
            min_unpredictable: default_unpredictable(min_chars),
            normalization: Normalization::Nfkc,
        })
    }

    /// The same policy with another normalisation; use the one the [`Hasher`](crate::Hasher)
    /// uses.
    #[must_use]
    pub const fn with_normalization(mut self, normalization: Normalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// The same policy with another threshold for [`Violation::Predictable`] (see
    /// [Patterns](self#patterns)); `0` turns the pattern check off.
    #[must_use]
    pub const fn with_min_unpredictable_chars(mut self, chars: usize) -> Self {
        self.min_unpredictable = chars;
        self
    }

    /// The fewest unpredictable characters a password needs.
    pub const fn min_unpredictable_chars(&self) -> usize {
        self.min_unpredictable
    }

    /// Minimum length in characters.
    pub const fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Maximum length in characters.
    pub const fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Checks a newly chosen password.
    pub fn check(&self, password: &str) -> Verdict {
        self.check_with_context(password, &[])
    }

    /// Checks a newly chosen password, also refusing one built around a context-specific word
    /// (user name, e-mail address, service name): refused when what is left after removing the
    /// word (ASCII-case-insensitively) is shorter than the minimum length on its own. Words
    /// shorter than 3 characters are ignored.
    pub fn check_with_context(&self, password: &str, context: &[&str]) -> Verdict {
        // Refuse megabyte inputs before normalising them. NFKC shrinks a string by at most a
        // few characters per character (Hangul jamo: 3 to 1), so nothing this long can fit.
        if password.len() > 4 * MAX_PASSWORD_BYTES {
            return Verdict::Reject(Violation::TooLong {
                max_chars: self.max_chars,
            });
        }
        let normalized = self.normalization.apply(password);
        let password = normalized.as_str();
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Verdict::Reject(Violation::TooShort {
                min_chars: self.min_chars,
                actual_chars: chars,
            });
        }
        if chars > self.max_chars {
            return Verdict::Reject(Violation::TooLong {
                max_chars: self.max_chars,
            });
        }
        if is_common(password) {
            return Verdict::Reject(Violation::Common);
        }
        if self.min_unpredictable > 0 && unpredictable_chars(password) < self.min_unpredictable {
            return Verdict::Reject(Violation::Predictable);
        }
        for word in context {
            let word = self.normalization.apply(word);
            let word = word.as_str();
            let word_chars = word.chars().count();
            if word_chars >= 3
                && let Some(found) = count_ascii_ci(password, word)
                && chars.saturating_sub(found * word_chars) < self.min_chars
            {
                return Verdict::Reject(Violation::ContextSpecific);
            }
        }
        Verdict::Accept
    }
}

impl Default for Policy {
    /// [`Policy::SINGLE_FACTOR`].
    fn default() -> Self {
        Self::SINGLE_FACTOR
    }
}

/// Whether `password` is on the built-in list of common passwords (ASCII case ignored; the
/// input is compared as given, without normalisation).
///
/// ```
/// assert!(palisade_password::policy::is_common("Baseball"));
/// assert!(!palisade_password::policy::is_common("a long passphrase nobody uses"));
/// ```
pub fn is_common(password: &str) -> bool {
    // Every entry is lower-case ASCII (a unit test checks), so nothing else can match.
    password.is_ascii()
        && sorted_common()
            .binary_search_by(|entry| {
                entry
                    .bytes()
                    .cmp(password.bytes().map(|b| b.to_ascii_lowercase()))
            })
            .is_ok()
}

/// The list sorted once, on first use, for binary search.
fn sorted_common() -> &'static [&'static str] {
    static SORTED: OnceLock<Vec<&'static str>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut all: Vec<&'static str> = common_passwords().collect();
        all.sort_unstable();
        all
    })
}

/// The built-in list, most common first.
pub fn common_passwords() -> impl Iterator<Item = &'static str> {
    COMMON
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Keyboard rows whose neighbours count as predictable.
const KEYBOARD_ROWS: [&[u8]; 4] = [b"1234567890", b"qwertyuiop", b"asdfghjkl", b"zxcvbnm"];

/// How many characters of `password` are not predicted by the one before (repeat, sequence,
/// keyboard neighbour) or by an earlier three-character group (see [Patterns](self#patterns)).
/// ASCII letters are compared lower-cased.
pub fn unpredictable_chars(password: &str) -> usize {
    let chars: Vec<char> = password.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut count = 0;
    for (i, &c) in chars.iter().enumerate() {
        let follows_previous = i
            .checked_sub(1)
            .and_then(|prev| chars.get(prev))
            .is_some_and(|&p| follows(p, c));
        let repeated_group = i >= 2
            && chars.get(i - 2..=i).is_some_and(|group| {
                chars
                    .get(..i)
                    .is_some_and(|before| before.windows(3).any(|w| w == group))
            });
        if !(follows_previous || repeated_group) {
            count += 1;
        }
    }
    count
}

/// Whether `c` is predictable right after `prev`: the same, the next or previous letter or
/// digit, or a keyboard-row neighbour.
fn follows(prev: char, c: char) -> bool {
    if prev == c {
        return true;
    }
    let (Ok(a), Ok(b)) = (u8::try_from(prev), u8::try_from(c)) else {
        return false;
    };
    let sequence = if a.is_ascii_digit() && b.is_ascii_digit() {
        matches!((b + 10 - a) % 10, 1 | 9)
    } else {
        a.is_ascii_lowercase() && b.is_ascii_lowercase() && a.abs_diff(b) == 1
    };
    sequence
        || KEYBOARD_ROWS.iter().any(|row| {
            match (
                row.iter().position(|&k| k == a),
                row.iter().position(|&k| k == b),
            ) {
                (Some(i), Some(j)) => i.abs_diff(j) == 1,
                _ => false,
            }
        })
}

/// How many non-overlapping times `word` occurs in `haystack`, ASCII case ignored; `None` if
/// never. Counts characters consistently with `str::chars` for the caller's arithmetic.
fn count_ascii_ci(haystack: &str, word: &str) -> Option<usize> {
    let (h, w) = (haystack.as_bytes(), word.as_bytes());
    if w.is_empty() || w.len() > h.len() {
        return None;
    }
    let mut count = 0;
    let mut i = 0;
    while let Some(window) = h.get(i..i + w.len()) {
        // A match of a valid UTF-8 word starts and ends on character boundaries.
        if window.eq_ignore_ascii_case(w) {
            count += 1;
            i += w.len();
        } else {
            i += 1;
        }
    }
    (count > 0).then_some(count)
}

/// The answer of a policy check.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password may be used.
    Accept,
    /// The password must not be used, for this reason (safe to show to the user).
    Reject(Violation),
}

impl Verdict {
    /// Whether the password was accepted.
    pub fn is_accept(&self) -> bool {
        matches!(self, Verdict::Accept)
    }
}

/// Why a password was refused. The message is meant for the person choosing it and never
/// repeats the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Violation {
    /// Fewer characters than the minimum.
    TooShort {
        /// The minimum.
        min_chars: usize,
        /// The password's length in characters.
        actual_chars: usize,
    },
    /// More characters than the maximum.
    TooLong {
        /// The maximum.
        max_chars: usize,
    },
    /// On the list of commonly used passwords.
    Common,
    /// Built around the user name, service name or another context-specific word.
    ContextSpecific,
    /// Mostly repeats, sequences or keyboard runs (`aaaa`, `1234`, `qwerty`, a word twice).
    Predictable,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TooShort { min_chars, .. } => {
                write!(f, "passwords need at least {min_chars} characters")
            }
            Violation::TooLong { max_chars } => {
                write!(f, "passwords may have at most {max_chars} characters")
            }
            Violation::Common => f.write_str("this password is too commonly used"),
            Violation::ContextSpecific => {
                f.write_str("this password is too close to your user name or the service name")
            }
            Violation::Predictable => f.write_str(
                "this password is mostly repeats, sequences or keyboard runs: add unrelated words",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_lower_case_long_enough_and_unique() {
        let all: Vec<&str> = common_passwords().collect();
        assert_eq!(all.len(), 441);
        assert_eq!(all[0], "password");
        let mut seen = std::collections::HashSet::new();
        for p in &all {
            assert!(p.chars().count() >= 8, "{p}");
            assert_eq!(*p, p.to_ascii_lowercase());
            assert!(p.is_ascii() && !p.contains(char::is_whitespace));
            assert!(seen.insert(*p), "duplicate {p}");
        }
    }

    #[test]
    fn every_entry_is_found() {
        for p in common_passwords() {
            assert!(is_common(p), "{p}");
            assert!(is_common(&p.to_ascii_uppercase()), "{p}");
        }
        assert!(!is_common("zzzzzzzzzzzzzzzzzzzz"));
        assert!(!is_common(""));
        assert!(!is_common("pässword"));
    }

    #[test]
    fn common_check_ignores_case() {
        assert!(is_common("PASSWORD"));
        assert!(is_common("QwErTyUiOp"));
        assert!(!is_common("password!"));
        assert_eq!(
            Policy::MULTI_FACTOR.check("Sunshine"),
            Verdict::Reject(Violation::Common)
        );
    }

    #[test]
    fn counts_code_points_after_nfkc() {
        // Length alone: the pattern check would refuse a repeated character.
        let p = Policy::MULTI_FACTOR.with_min_unpredictable_chars(0);
        // Eight characters, sixteen bytes.
        assert!(
            p.check("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}")
                .is_accept()
        );
        // Seven precomposed characters written as fourteen code points: seven after NFKC.
        assert_eq!(
            p.check(&"e\u{301}".repeat(7)),
            Verdict::Reject(Violation::TooShort {
                min_chars: 8,
                actual_chars: 7
            })
        );
        let raw = p.with_normalization(Normalization::None);
        assert!(raw.check(&"e\u{301}".repeat(7)).is_accept());
    }

    #[test]
    fn bounds() {
        let p = Policy::new(8, 64).unwrap().with_min_unpredictable_chars(0);
        assert!(p.check(&"x".repeat(64)).is_accept());
        assert_eq!(
            p.check(&"x".repeat(65)),
            Verdict::Reject(Violation::TooLong { max_chars: 64 })
        );
        assert!(Policy::new(7, 64).is_err());
        assert!(Policy::new(8, 63).is_err());
        assert!(Policy::new(70, 64).is_err());
        assert!(Policy::new(8, MAX_PASSWORD_BYTES).is_err());
        assert!(Policy::new(8, MAX_PASSWORD_BYTES / 4).is_ok());
    }

    #[test]
    fn huge_inputs_are_refused_cheaply() {
        let huge = "a".repeat(10 * 1024 * 1024);
        assert_eq!(
            Policy::default().check(&huge),
            Verdict::Reject(Violation::TooLong { max_chars: 128 })
        );
    }

    #[test]
    fn no_composition_rules() {
        let p = Policy::SINGLE_FACTOR;
        assert!(p.check("all lower case words only").is_accept());
        assert!(p.check("съешь же ещё этих мягких").is_accept());
        assert!(p.check("739164028357192846").is_accept());
        assert!(p.check("ALL UPPER CASE WORDS ONLY").is_accept());
    }

    #[test]
    fn context_words() {
        let p = Policy::MULTI_FACTOR;
        let ctx = ["jsmith", "example"];
        assert_eq!(
            p.check_with_context("JSmith2024!", &ctx),
            Verdict::Reject(Violation::ContextSpecific)
        );
        assert_eq!(
            p.check_with_context("jsmithjsmith", &ctx),
            Verdict::Reject(Violation::ContextSpecific)
        );
        assert_eq!(
            p.check_with_context("example.com1", &ctx),
            Verdict::Reject(Violation::ContextSpecific)
        );
        assert!(
            p.check_with_context("jsmith likes long walks", &ctx)
                .is_accept()
        );
        assert!(
            p.check_with_context("unrelated passphrase", &ctx)
                .is_accept()
        );
        // Words under three characters are ignored.
        assert!(p.check_with_context("jo2024!xyz", &["jo"]).is_accept());
    }

    #[test]
    fn messages_do_not_echo_the_password() {
        let v = Policy::SINGLE_FACTOR.check("hunter2");
        let Verdict::Reject(v) = v else { panic!() };
        assert!(!v.to_string().contains("hunter2"));
        assert_eq!(v.to_string(), "passwords need at least 15 characters");
    }

    #[test]
    fn count_ascii_ci_counts() {
        assert_eq!(count_ascii_ci("abcABCab", "abc"), Some(2));
        assert_eq!(count_ascii_ci("ab", "abc"), None);
        assert_eq!(count_ascii_ci("ééabc", "abc"), Some(1));
    }
}
