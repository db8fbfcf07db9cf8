//! Unicode normalisation of passwords before they are counted, compared or hashed.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};
use zeroize::Zeroizing;

/// How a password is normalised before it is checked or hashed.
///
/// NIST SP 800-63B (section 3.1.1.2 of revision 4) recommends NFKC or NFKD, so that the same
/// password typed on two keyboards (a precomposed `é` or `e` plus a combining accent, a full-width
/// digit) hashes the same. The choice is part of every stored hash: change it only together
/// with a rehash of every password, or non-ASCII passwords stop verifying. ASCII passwords are
/// unaffected by either choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Normalization {
    /// Unicode Normalisation Form KC (the default).
    #[default]
    Nfkc,
    /// The bytes as given. Use only to verify hashes made by a system that did not normalise.
    None,
}

/// A password as it will be hashed: borrowed when already normal, else a copy wiped on drop.
pub(crate) enum Normalized<'a> {
    Borrowed(&'a str),
    Owned(Zeroizing<String>),
}

impl Normalized<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Normalized::Borrowed(s) => s,
            Normalized::Owned(s) => s.as_str(),
        }
    }
}

impl Normalization {
    /// Normalises `password`; ASCII and already-normal input is borrowed, not copied.
    pub(crate) fn apply(self, password: &str) -> Normalized<'_> {
        match self {
            Normalization::None => Normalized::Borrowed(password),
            Normalization::Nfkc => {
                if password.is_ascii() || is_nfkc_quick(password.chars()) == IsNormalized::Yes {
                    Normalized::Borrowed(password)
                } else {
                    // Sized exactly first, so the buffer never grows and leaves an unwiped copy.
                    let len = password.nfkc().map(char::len_utf8).sum();
                    let mut out = Zeroizing::new(String::with_capacity(len));
                    out.extend(password.nfkc());
                    Normalized::Owned(out)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_and_decomposed_agree() {
        let composed = "caf\u{e9}";
        let decomposed = "cafe\u{301}";
        assert_ne!(composed, decomposed);
        let n = Normalization::Nfkc;
        assert_eq!(n.apply(composed).as_str(), n.apply(decomposed).as_str());
    }

    #[test]
    fn compatibility_forms_fold() {
        // Full-width digits and the ligature "fi" become their plain forms.
        let n = Normalization::Nfkc;
        assert_eq!(n.apply("\u{ff11}\u{ff12}\u{fb01}").as_str(), "12fi");
    }

    #[test]
    fn none_keeps_bytes() {
        assert_eq!(
            Normalization::None.apply("cafe\u{301}").as_str(),
            "cafe\u{301}"
        );
    }

    #[test]
    fn ascii_is_borrowed() {
        assert!(matches!(
            Normalization::Nfkc.apply("plain ascii"),
            Normalized::Borrowed(_)
        ));
    }
}
