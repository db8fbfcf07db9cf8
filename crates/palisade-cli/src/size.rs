//! `palisade size`: runs every hot path on 1..N threads and says what the rates mean.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

/// One hot path to measure.
pub(crate) trait Workload: Send + Sync {
    /// A short name for the table.
    fn name(&self) -> String;
    /// What one operation is, plural ("encryptions").
    fn unit(&self) -> &'static str;
    /// Runs the workload on `threads` threads for about `duration`; returns operations done
    /// and the time they took.
    fn measure(&self, threads: usize, duration: Duration) -> Result<(u64, Duration)>;
    /// What a rate of `per_core` operations per second per core means for sizing.
    fn advice(&self, _per_core: f64) -> Option<String> {
        None
    }
}

/// Runs `make_op()`'s operation in a loop on each of `threads` threads until `duration` is up.
pub(crate) fn measure_threads<F, Op>(
    threads: usize,
    duration: Duration,
    make_op: F,
) -> Result<(u64, Duration)>
where
    F: Fn() -> Result<Op> + Sync,
    Op: FnMut() -> Result<()>,
{
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut op = make_op()?;
                    let mut done = 0u64;
                    // Check the flag after every slow operation (Argon2) but only every few
                    // dozen fast ones, so that neither the check nor an overrun distorts the
                    // rate: batches start at one and double while they take under a millisecond.
                    let mut batch = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        for _ in 0..batch {
                            op()?;
                        }
                        done = done.saturating_add(batch);
                        if batch < 64 && t.elapsed() < Duration::from_millis(1) {
                            batch = batch.saturating_mul(2);
                        }
                    }
                    total.fetch_add(done, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a measuring thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((total.load(Ordering::Relaxed), start.elapsed()))
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    unit: &'static str,
    /// Operations per second, by thread count.
    rates: Vec<Rate>,
    /// Operations per second per core at the highest thread count.
    per_core: f64,
    advice: Option<String>,
}

#[derive(Debug, Serialize)]
struct Rate {
    threads: usize,
    per_second: f64,
}

/// Runs every workload and prints the report.
pub(crate) fn run(
    workloads: &[Box<dyn Workload>],
    max_threads: usize,
    seconds: f64,
    json: bool,
    notes: &[String],
) -> Result<()> {
    let counts: Vec<usize> = if max_threads <= 1 {
        vec![1]
    } else {
        vec![1, max_threads]
    };
    let measurements = workloads.len().saturating_mul(counts.len()).max(1);
    let slice = Duration::from_secs_f64((seconds / measurements as f64).max(0.05));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(measurements as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut rows = Vec::new();
    for w in workloads {
        let mut rates = Vec::new();
        for &threads in &counts {
            bar.set_message(format!("{} on {threads} thread(s)", w.name()));
            let (ops, took) = w.measure(threads, slice)?;
            rates.push(Rate {
                threads,
                per_second: ops as f64 / took.as_secs_f64().max(1e-9),
            });
            bar.inc(1);
        }
        let last = rates.last().map_or(0.0, |r| r.per_second);
        let used = counts.last().copied().unwrap_or(1).min(cores).max(1);
        let per_core = last / used as f64;
        rows.push(Row {
            name: w.name(),
            unit: w.unit(),
            advice: w.advice(per_core),
            rates,
            per_core,
        });
    }
    bar.finish_and_clear();

    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "Palisade sizing report: {cores} core(s) available, {:.1} s per measurement",
        slice.as_secs_f64()
    )?;
    writeln!(out)?;
    let header: Vec<String> = counts.iter().map(|t| format!("{t} thread(s)")).collect();
    write!(out, "{:<38}", "operation")?;
    for h in &header {
        write!(out, "{h:>16}")?;
    }
    writeln!(out, "{:>16}  unit", "per core")?;
    for row in &rows {
        write!(out, "{:<38}", row.name)?;
        for r in &row.rates {
            write!(out, "{:>14}/s", human(r.per_second))?;
        }
        writeln!(out, "{:>14}/s  {}", human(row.per_core), row.unit)?;
    }
    let advice: Vec<&String> = rows.iter().filter_map(|r| r.advice.as_ref()).collect();
    if !advice.is_empty() || !notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "What it means:")?;
        for a in advice {
            writeln!(out, "- {a}")?;
        }
        for n in notes {
            writeln!(out, "- {n}")?;
        }
    }
    Ok(())
}

/// 1234567.8 -> "1,234,568"; small rates keep one decimal.
pub(crate) fn human(x: f64) -> String {
    if x < 100.0 {
        return format!("{x:.1}");
    }
    // Rates are positive and far below 2^64; `as` saturates anyway.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_groups_thousands() {
        assert_eq!(human(1_234_567.4), "1,234,567");
        assert_eq!(human(999.6), "1,000");
        assert_eq!(human(78.25), "78.2");
        assert_eq!(human(100.0), "100");
    }

    #[test]
    fn measure_threads_counts_operations() {
        let (ops, took) = measure_threads(2, Duration::from_millis(20), || Ok(|| Ok(()))).unwrap();
        assert!(ops > 0);
        assert!(took >= Duration::from_millis(20));
    }

    #[test]
    fn measure_threads_propagates_errors() {
        let r = measure_threads(1, Duration::from_millis(5), || {
            Ok(|| Err(anyhow::anyhow!("boom")))
        });
        assert!(r.is_err());
    }
}
