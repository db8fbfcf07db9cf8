//! Benches of palisade-audit beside their peers.
//!
//! - `audit_event`: build + redact + chain + serialize one event (the whole per-event cost of
//!   the file sink's writer), beside plain `serde_json` serialization of the same event (what
//!   an unchained, unredacted JSON log line costs).
//! - `audit_jsonl_sink`: events per second through `JsonlSink` (record on the caller's thread,
//!   redact + chain + write + fsync per batch on the writer thread, until `flush` confirms),
//!   beside plain JSON lines through a `BufWriter` with one fsync at the end.
//! - `audit_postgres_sink` (only with `PALISADE_DATABASE_URL`): events per second through
//!   `PostgresSink` until `flush` confirms the commit.

use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use palisade_audit::file::{JsonlConfig, JsonlSink};
use palisade_audit::{Action, AuditEvent, AuditSink, Chainer, Redactor};
use palisade_core::time::UnixTime;

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000 + i))
        .user_id("u-1234567")
        .user_name("ann@example.com")
        .ip(std::net::IpAddr::from([203, 0, 113, 9]))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
        .correlation_id("req-8f14e45fceea167a")
        .meta("reason", "bad password")
        .meta("password", "hunter2")
        .meta("attempt", "3")
}

fn per_event(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit_event");
    g.throughput(Throughput::Elements(1));
    let redactor = Redactor::new();
    let mut chain = Chainer::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut i = 0u64;
    g.bench_function("build_redact_chain_serialize", |b| {
        b.iter(|| {
            i += 1;
            let mut e = event(i);
            redactor.redact(&mut e);
            if buf.len() > (1 << 19) {
                buf.clear();
            }
            black_box(chain.push_line(&e, &mut buf).ok());
        });
    });
    // The parts, on one prebuilt event (already redacted, so redaction scans but changes
    // nothing and the event needs no clone).
    let mut fixed = event(0);
    redactor.redact(&mut fixed);
    g.bench_function("part_redact_scan", |b| {
        b.iter(|| redactor.redact(black_box(&mut fixed)));
    });
    g.bench_function("part_chain_serialize", |b| {
        b.iter(|| {
            if buf.len() > (1 << 19) {
                buf.clear();
            }
            black_box(chain.push_line(black_box(&fixed), &mut buf).ok());
        });
    });
    g.bench_function("part_build", |b| {
        b.iter(|| {
            i += 1;
            black_box(event(i))
        });
    });
    let mut buf = Vec::with_capacity(1 << 20);
    g.bench_function("peer_build_serde_json", |b| {
        b.iter(|| {
            i += 1;
            let e = event(i);
            if buf.len() > (1 << 19) {
                buf.clear();
            }
            black_box(serde_json::to_writer(&mut buf, &e).ok());
            buf.push(b'\n');
        });
    });
    g.finish();
}

const SINK_EVENTS: u64 = 50_000;

fn jsonl(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("palisade-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut g = c.benchmark_group("audit_jsonl_sink");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SINK_EVENTS));
    let sink = JsonlSink::open(JsonlConfig::new(&dir, "bench").max_file_bytes(256 << 20))
        .expect("open sink");
    g.bench_function("record_until_flushed", |b| {
        b.iter_batched(
            || (0..SINK_EVENTS).map(event).collect::<Vec<_>>(),
            |events| {
                for e in events {
                    sink.record(e);
                }
                sink.flush().expect("flush");
            },
            BatchSize::PerIteration,
        );
    });
    let peer_path = dir.join("peer.jsonl");
    g.bench_function("peer_serde_json_bufwriter_fsync", |b| {
        b.iter_batched(
            || (0..SINK_EVENTS).map(event).collect::<Vec<_>>(),
            |events| {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&peer_path)
                    .expect("open");
                let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
                for e in &events {
                    serde_json::to_writer(&mut w, e).expect("write");
                    w.write_all(b"\n").expect("write");
                }
                let f = w.into_inner().expect("flush");
                f.sync_data().expect("fsync");
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
    report_writer_cpu("jsonl", &sink.stats());
    sink.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Prints events per CPU-second of the sink's threads (from /proc, Linux only): a
/// per-core figure that does not depend on how busy the rest of the machine is.
fn report_writer_cpu(what: &str, stats: &palisade_audit::SinkStats) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let comm = comm.trim_end();
        // The writer ("palisade-audit-jsonl", "palisade-audit-pg", cut to 15 bytes by the
        // kernel) and the JSONL sink's fsync thread.
        let thread = if comm.starts_with("palisade-audit") {
            "writer"
        } else if comm == "palisade-fsync" {
            "fsync"
        } else {
            continue;
        };
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after_name = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name; clock ticks of
        // 1/100 s on Linux.
        let ticks: u64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|x| x.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        if ticks > 0 {
            let secs = ticks as f64 / 100.0;
            eprintln!(
                "{what} {thread} thread: {} events in {secs:.2} CPU-s = {:.0} events per CPU-second",
                stats.written,
                stats.written as f64 / secs
            );
        }
    }
}

fn postgres(c: &mut Criterion) {
    use palisade_audit::postgres::{PostgresConfig, PostgresSink, tokio_postgres};

    let Ok(url) = std::env::var("PALISADE_DATABASE_URL") else {
        return;
    };
    let table = format!("audit_bench_{}", std::process::id());
    let sink = PostgresSink::open(
        PostgresConfig::new(&url, &table)
            .expect("config")
            .flush_timeout(Duration::from_secs(120)),
    )
    .expect("open");
    const PG_EVENTS: u64 = 20_000;
    let mut g = c.benchmark_group("audit_postgres_sink");
    g.sample_size(10);
    g.throughput(Throughput::Elements(PG_EVENTS));
    g.bench_function("record_until_committed", |b| {
        b.iter_batched(
            || (0..PG_EVENTS).map(event).collect::<Vec<_>>(),
            |events| {
                for e in events {
                    sink.record(e);
                }
                sink.flush().expect("flush");
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
    report_writer_cpu("postgres", &sink.stats());
    sink.shutdown().expect("shutdown");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                .await;
        }
    });
}

criterion_group!(benches, per_event, jsonl, postgres);
criterion_main!(benches);
