//! The hot paths `palisade size` measures.

use std::time::Duration;

use anyhow::Result;
use palisade_core::random::{SecureRandom, SystemRandom};

use crate::size::{Workload, measure_threads};

/// What `palisade size` runs.
pub(crate) struct Plan {
    /// The workloads, in report order.
    pub(crate) workloads: Vec<Box<dyn Workload>>,
    /// What was left out and why (for example Redis when it is not configured).
    pub(crate) notes: Vec<String>,
}

/// Every workload this machine can run.
pub(crate) fn all() -> Result<Plan> {
    let workloads: Vec<Box<dyn Workload>> = vec![Box::new(RandomDraw)];
    Ok(Plan {
        workloads,
        notes: Vec::new(),
    })
}

/// A 12-byte nonce draw from the default randomness source.
struct RandomDraw;

impl Workload for RandomDraw {
    fn name(&self) -> String {
        "random nonce (12 B)".into()
    }
    fn unit(&self) -> &'static str {
        "draws"
    }
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)> {
        measure_threads(threads, duration, || {
            let mut nonce = [0u8; 12];
            Ok(move || Ok(SystemRandom.fill(std::hint::black_box(&mut nonce))?))
        })
    }
}
