//! Argon2id cost parameters: the presets, and limits on what a stored hash may ask for.
//!
//! A [`Params`] is memory (`m`, KiB), passes (`t`) and lanes (`p`). Hashes are always Argon2id,
//! version 0x13, with a 16-byte salt and a 32-byte output (RFC 9106, section 4).
//!
//! # Choosing a preset
//! Cost is per login: a server that must sustain `L` logins per second at `h` hashes per second
//! per core needs `L / h` cores for hashing alone. The figures below are single-thread times of
//! [`Hasher::hash`](crate::Hasher::hash) from the `password_hash` bench (`cargo bench -p
//! palisade-benches --bench password`) on the reference machine, a 2-core AMD EPYC VM with
//! AVX2, measured while the machine was shared (load average about 15), so a dedicated core
//! does better: treat them as conservative and measure your own hardware with the same bench.
//!
//! | preset | m | t | p | time per hash | hashes per second per core |
//! |---|---|---|---|---|---|
//! | [`Params::OWASP_19_MIB`] (default) | 19 MiB | 2 | 1 | 83 ms | 12 |
//! | [`Params::OWASP_46_MIB`] | 46 MiB | 1 | 1 | 111 ms | 9.0 |
//! | [`Params::RFC9106_64_MIB`] | 64 MiB | 3 | 4 | 578 ms | 1.7 |
//!
//! The `argon2` crate computes lanes one after another, so `p = 4` costs the same CPU time as
//! `p = 1` at equal `m` and `t`; it does not finish sooner, and it does not cost more.
//!
//! # Errors
//! [`Params::new`] and [`CostLimits::new`] return [`Error::InvalidParams`] for values Argon2
//! cannot use.
//!
//! # Panics
//! None.

use crate::Error;

/// Argon2id cost parameters.
///
/// ```
/// use palisade_password::Params;
///
/// let p = Params::OWASP_19_MIB;
/// assert_eq!((p.m_kib(), p.t(), p.p()), (19 * 1024, 2, 1));
/// assert_eq!(Params::default(), Params::OWASP_19_MIB);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    m_kib: u32,
    t: u32,
    p: u32,
}

impl Params {
    /// OWASP Password Storage Cheat Sheet, Argon2id, first equivalent minimum: m = 19 MiB
    /// (19456 KiB), t = 2, p = 1. The same as the `argon2` crate's default. The default preset.
    pub const OWASP_19_MIB: Params = Params {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    /// OWASP Password Storage Cheat Sheet, Argon2id, the most memory-hard minimum: m = 46 MiB
    /// (47104 KiB), t = 1, p = 1. For servers with memory to spare: an attacker's GPU pays for
    /// memory, the server mostly for time.
    pub const OWASP_46_MIB: Params = Params {
        m_kib: 46 * 1024,
        t: 1,
        p: 1,
    };

    /// RFC 9106, section 4, second recommended option ("if much less memory is available"):
    /// m = 64 MiB (65536 KiB), t = 3, p = 4. The stronger interactive preset: about five times
    /// the work of [`Params::OWASP_19_MIB`] per guess, for attackers and for the server alike
    /// (about half a second per hash on the reference machine: for services with few logins
    /// per core, such as administration consoles).
    pub const RFC9106_64_MIB: Params = Params {
        m_kib: 64 * 1024,
        t: 3,
        p: 4,
    };

    /// Parameters of your own. Prefer a preset; anything below [`Params::OWASP_19_MIB`]'s work
    /// is weaker than OWASP's minimum (tests use tiny values to run fast).
    ///
    /// # Errors
    /// [`Error::InvalidParams`] unless `t >= 1`, `1 <= p <= 2^24 - 1` and `m_kib >= 8 * p`
    /// (Argon2's own bounds).
    pub const fn new(m_kib: u32, t: u32, p: u32) -> Result<Self, Error> {
        if t < argon2::Params::MIN_T_COST {
            return Err(Error::InvalidParams {
                reason: "t must be at least 1",
            });
        }
        if p < argon2::Params::MIN_P_COST || p > argon2::Params::MAX_P_COST {
            return Err(Error::InvalidParams {
                reason: "p must be between 1 and 2^24 - 1",
            });
        }
        // p <= 2^24 - 1, so 8 * p cannot overflow.
        if m_kib < argon2::Params::MIN_M_COST || m_kib < 8 * p {
            return Err(Error::InvalidParams {
                reason: "m must be at least 8 KiB per lane",
            });
        }
        Ok(Self { m_kib, t, p })
    }

    /// Memory in KiB.
    pub const fn m_kib(&self) -> u32 {
        self.m_kib
    }

    /// Passes over memory.
    pub const fn t(&self) -> u32 {
        self.t
    }

    /// Lanes.
    pub const fn p(&self) -> u32 {
        self.p
    }

    pub(crate) fn to_argon2(self) -> Result<argon2::Params, Error> {
        argon2::Params::new(self.m_kib, self.t, self.p, Some(crate::hasher::OUTPUT_LEN))
            .map_err(Error::Argon2)
    }
}

impl Default for Params {
    /// [`Params::OWASP_19_MIB`].
    fn default() -> Self {
        Self::OWASP_19_MIB
    }
}

/// The most work a stored hash may ask [`Hasher::verify`](crate::Hasher::verify) to do.
///
/// Verification takes its parameters from the stored PHC string. A corrupted row, or one an
/// attacker could write, might ask for `m = 4 TiB` or `t = 4 billion`; without a ceiling the
/// process would abort on allocation failure or spin for hours. Hashes above the limits fail
/// with [`Error::CostTooHigh`] before any memory is allocated.
///
/// The default allows 256 MiB, 16 passes and 16 lanes: four times the memory of the strongest
/// preset, room to lower the preset later while old hashes still verify (and are upgraded).
///
/// ```
/// use palisade_password::CostLimits;
///
/// let limits = CostLimits::default();
/// assert_eq!(limits.max_m_kib(), 256 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CostLimits {
    max_m_kib: u32,
    max_t: u32,
    max_p: u32,
}

impl CostLimits {
    /// Limits of your own.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] when a limit is zero.
    pub const fn new(max_m_kib: u32, max_t: u32, max_p: u32) -> Result<Self, Error> {
        if max_m_kib == 0 || max_t == 0 || max_p == 0 {
            return Err(Error::InvalidParams {
                reason: "cost limits must be positive",
            });
        }
        Ok(Self {
            max_m_kib,
            max_t,
            max_p,
        })
    }

    /// Largest memory in KiB.
    pub const fn max_m_kib(&self) -> u32 {
        self.max_m_kib
    }

    /// Largest number of passes.
    pub const fn max_t(&self) -> u32 {
        self.max_t
    }

    /// Largest number of lanes.
    pub const fn max_p(&self) -> u32 {
        self.max_p
    }

    /// Whether `params` lies within the limits.
    pub const fn allows(&self, params: &Params) -> bool {
        params.m_kib <= self.max_m_kib && params.t <= self.max_t && params.p <= self.max_p
    }
}

impl Default for CostLimits {
    fn default() -> Self {
        Self {
            max_m_kib: 256 * 1024,
            max_t: 16,
            max_p: 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_argon2_params() {
        for p in [
            Params::OWASP_19_MIB,
            Params::OWASP_46_MIB,
            Params::RFC9106_64_MIB,
        ] {
            assert_eq!(Params::new(p.m_kib(), p.t(), p.p()).unwrap(), p);
            assert!(p.to_argon2().is_ok());
            assert!(CostLimits::default().allows(&p));
        }
    }

    #[test]
    fn owasp_values() {
        assert_eq!(Params::OWASP_19_MIB.m_kib(), 19_456);
        assert_eq!(Params::OWASP_46_MIB.m_kib(), 47_104);
        assert_eq!(Params::RFC9106_64_MIB.m_kib(), 65_536);
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(matches!(
            Params::new(64, 0, 1),
            Err(Error::InvalidParams { .. })
        ));
        assert!(matches!(
            Params::new(64, 1, 0),
            Err(Error::InvalidParams { .. })
        ));
        assert!(matches!(
            Params::new(31, 1, 4),
            Err(Error::InvalidParams { .. })
        ));
        assert!(matches!(
            Params::new(u32::MAX, 1, 1 << 24),
            Err(Error::InvalidParams { .. })
        ));
        assert!(Params::new(32, 1, 4).is_ok());
        assert!(CostLimits::new(0, 1, 1).is_err());
    }

    #[test]
    fn limits_compare_each_dimension() {
        let l = CostLimits::new(1024, 3, 2).unwrap();
        assert!(l.allows(&Params::new(1024, 3, 2).unwrap()));
        assert!(!l.allows(&Params::new(1025, 3, 2).unwrap()));
        assert!(!l.allows(&Params::new(1024, 4, 2).unwrap()));
        assert!(!l.allows(&Params::new(1024, 3, 3).unwrap()));
    }
}
