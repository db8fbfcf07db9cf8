//! The PostgreSQL sink (feature `postgres`): the chained trail in a table a security team can
//! query.
//!
//! [`PostgresSink::record`] queues the event and returns (bounded queue, see [`Overflow`]). A
//! background thread with its own single-threaded tokio runtime takes batches of up to
//! `batch_max` events, redacts and chains them, and inserts each batch with one multi-row
//! `INSERT ... SELECT FROM unnest(...)` statement.
//!
//! # Table
//! Created if missing (`CREATE TABLE IF NOT EXISTS`), with indexes on time, action and user:
//!
//! ```sql
//! CREATE TABLE <table> (
//!     seq            bigint PRIMARY KEY,      -- chain sequence number, from 0
//!     event_id       uuid NOT NULL,           -- UUIDv7
//!     ts             timestamptz NOT NULL,    -- event time (microseconds; exact in `event`)
//!     action         text NOT NULL,
//!     severity       text NOT NULL,
//!     outcome        text NOT NULL,
//!     user_id        text,
//!     user_name      text,
//!     tenant         text,
//!     ip             inet,
//!     correlation_id text,
//!     prev_hash      bytea NOT NULL,          -- 32 bytes
//!     hash           bytea NOT NULL,          -- 32 bytes
//!     event          text NOT NULL            -- canonical JSON, exactly the hashed bytes
//! );
//! CREATE INDEX ON <table> (ts);  CREATE INDEX ON <table> (action, ts);
//! CREATE INDEX ON <table> (user_id, ts);
//! ```
//!
//! `event` is text, not `jsonb`, because `jsonb` reorders and reformats and the chain needs the
//! exact bytes; query it with `event::jsonb -> 'metadata'`. With a signer configured, signed
//! checkpoint notes go to `<table>_checkpoints (size bigint PRIMARY KEY, note text)` and to the
//! `on_checkpoint` callback.
//!
//! # Outages: no loss, no duplicates
//! Sequence numbers and hashes are assigned to a batch once. If the insert fails (server down,
//! connection killed), the sink reconnects with backoff (10 ms doubling to `max_backoff`) and
//! inserts the *same* rows again, with `ON CONFLICT (seq) DO NOTHING`: a batch that was in fact
//! committed before the connection dropped is not inserted twice, and one that was not is
//! inserted now. Meanwhile new events wait in the bounded queue; when it is full, `record`
//! waits (backpressure, the default) or drops and counts ([`Overflow::DropNewest`]). On start,
//! the sink resumes the chain from the row with the highest `seq`. One writer per table.
//!
//! # Errors and panics
//! [`PostgresConfig::new`] fails only for an invalid table name or URL. Connection problems never fail `open` or `record`: they show in
//! [`PostgresSink::stats`] and make `flush` time out. Nothing panics.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use palisade_core::audit::{Action, AuditEvent, AuditSink, Outcome, Severity};
use palisade_core::time::UnixTime;
use tokio_postgres::{Client, Config, NoTls};

/// The PostgreSQL client this module uses, for callers that query the trail themselves.
pub use tokio_postgres;

use crate::AuditError;
use crate::chain::{BreakReason, ChainHash, Chainer, Verdict, Verifier};
use crate::checkpoint::{Checkpoint, CheckpointSigner, LogEntry, SignedCheckpoint};
use crate::file::{CheckpointCallback, OnTamper, QUARANTINE_ACTION};
use crate::format::{outcome_name, severity_name};
use crate::merkle::Frontier;
use crate::queue::Queue;
use crate::redact::Redactor;
use crate::sink::{Overflow, SinkStats};

/// How to open a [`PostgresSink`].
pub struct PostgresConfig {
    config: Config,
    table: String,
    capacity: usize,
    overflow: Overflow,
    batch_max: usize,
    redactor: Redactor,
    signer: Option<CheckpointSigner>,
    checkpoint_every: u64,
    checkpoint_interval: Option<Duration>,
    on_checkpoint: Option<CheckpointCallback>,
    on_tamper: OnTamper,
    flush_timeout: Duration,
    max_backoff: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("table", &self.table)
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("batch_max", &self.batch_max)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

fn valid_ident(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && p.len() <= 50
    };
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), None, None) => ok(t),
        (Some(schema), Some(t), None) => ok(schema) && ok(t),
        _ => false,
    }
}

impl PostgresConfig {
    /// Writes to `table` (lower-case letters, digits and `_`, optionally `schema.table`) in the
    /// database at `url` (`postgres://user@host:5432/db`; no TLS: use a local socket or a
    /// trusted network). Defaults: a queue of 65 536 events that blocks when full, batches of up
    /// to 4096, the default redactor, no checkpoints, a 30 s flush timeout, backoff up to 2 s,
    /// application name `palisade-audit`.
    ///
    /// # Errors
    /// [`AuditError::Database`] if the URL does not parse or the table name is invalid.
    pub fn new(url: &str, table: &str) -> Result<Self, AuditError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| AuditError::Database(Arc::new(e)))?;
        if config.get_application_name().is_none() {
            config.application_name("palisade-audit");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if !valid_ident(table) {
            return Err(AuditError::Database(Arc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "table name must be [a-z_][a-z0-9_]*, optionally schema-qualified",
            ))));
        }
        Ok(Self {
            config,
            table: table.to_owned(),
            capacity: 65_536,
            overflow: Overflow::Block,
            batch_max: 4096,
            redactor: Redactor::new(),
            signer: None,
            checkpoint_every: 10_000,
            checkpoint_interval: None,
            on_checkpoint: None,
            on_tamper: OnTamper::default(),
            flush_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(2),
        })
    }

    /// The application name the connection reports (`pg_stat_activity.application_name`).
    #[must_use]
    pub fn application_name(mut self, name: &str) -> Self {
        self.config.application_name(name);
        self
    }

    /// The queue's bound and what happens when it is full.
    #[must_use]
    pub fn queue(mut self, capacity: usize, overflow: Overflow) -> Self {
        self.capacity = capacity.max(1);
        self.overflow = overflow;
        self
    }

    /// The most events per insert.
    #[must_use]
    pub fn batch_max(mut self, events: usize) -> Self {
        self.batch_max = events.clamp(1, 16_384);
        self
    }

    /// The redaction policy.
    #[must_use]
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Signs a checkpoint every `every` records, at flushes that wrote something, and at
    /// shutdown; stored in `<table>_checkpoints`.
    #[must_use]
    pub fn checkpoints(mut self, signer: CheckpointSigner, every: u64) -> Self {
        self.signer = Some(signer);
        self.checkpoint_every = every.max(1);
        self
    }

    /// Also signs a checkpoint every `interval`, when events arrive or not, so that a quiet
    /// period is attested. Needs [`PostgresConfig::checkpoints`].
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = Some(interval.max(Duration::from_millis(10)));
        self
    }

    /// What the first connection does with rows the last signed checkpoint does not vouch for
    /// (default [`OnTamper::Quarantine`]: moved to `<table>_suspect`, and an
    /// `audit_trail_quarantined` event recorded; [`OnTamper::Refuse`]: nothing is written and
    /// every flush fails with [`AuditError::Tampered`]).
    #[must_use]
    pub fn on_tamper(mut self, policy: OnTamper) -> Self {
        self.on_tamper = policy;
        self
    }

    /// Also hands each signed checkpoint to `callback`. It runs on the writer thread.
    #[must_use]
    pub fn on_checkpoint(mut self, callback: impl Fn(&SignedCheckpoint) + Send + 'static) -> Self {
        self.on_checkpoint = Some(Box::new(callback));
        self
    }

    /// How long `flush` and drop wait for the writer.
    #[must_use]
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The longest wait between reconnection attempts.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max.max(Duration::from_millis(10));
        self
    }
}

fn db_err(e: tokio_postgres::Error) -> AuditError {
    AuditError::Database(Arc::new(e))
}

fn quoted(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

fn index_prefix(table: &str) -> String {
    table.replace('.', "_")
}

/// The rows of one batch, with chain positions assigned once.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    id: Vec<String>,
    ts: Vec<i64>,
    action: Vec<String>,
    severity: Vec<&'static str>,
    outcome: Vec<&'static str>,
    user_id: Vec<Option<String>>,
    user_name: Vec<Option<String>>,
    tenant: Vec<Option<String>>,
    ip: Vec<Option<String>>,
    correlation_id: Vec<Option<String>>,
    prev: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    event: Vec<String>,
}

impl Rows {
    fn build(chainer: &mut Chainer, batch: &mut [AuditEvent], queue: &Queue<AuditEvent>) -> Self {
        let mut r = Self::default();
        for e in batch.iter_mut() {
            let (seq, prev, hash, bytes) = match chainer.push_parts(e) {
                Ok(parts) => parts,
                Err(err) => {
                    queue.fail(err.to_string());
                    continue;
                }
            };
            let Ok(event) = String::from_utf8(bytes) else {
                continue;
            };
            r.seq.push(i64::try_from(seq).unwrap_or(i64::MAX));
            r.id.push(e.id.to_string());
            r.ts.push(i64::try_from(e.timestamp.as_nanos() / 1000).unwrap_or(i64::MAX));
            r.action.push(e.action.as_str().to_owned());
            r.severity.push(severity_name(e.severity));
            r.outcome.push(outcome_name(e.outcome));
            r.user_id.push(e.user_id.take());
            r.user_name.push(e.user_name.take());
            r.tenant.push(e.tenant.take());
            r.ip.push(e.ip_address.map(|ip| ip.to_string()));
            r.correlation_id.push(e.correlation_id.take());
            r.prev.push(prev.0.to_vec());
            r.hash.push(hash.0.to_vec());
            r.event.push(event);
        }
        r
    }
}

struct Writer {
    config: PostgresConfig,
    client: Option<Client>,
    chainer: Option<Chainer>,
    insert_sql: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// The trail failed verification and the policy is to refuse it.
    refused: Option<AuditError>,
}

impl Writer {
    async fn connect(&mut self) -> Result<(), tokio_postgres::Error> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.client = None;
        let (client, connection) = self.config.config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let t = quoted(&self.config.table);
        let ix = index_prefix(&self.config.table);
        let ix = ix.rsplit('.').next().unwrap_or(&ix);
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    seq bigint PRIMARY KEY, event_id uuid NOT NULL, ts timestamptz NOT NULL,
                    action text NOT NULL, severity text NOT NULL, outcome text NOT NULL,
                    user_id text, user_name text, tenant text, ip inet, correlation_id text,
                    prev_hash bytea NOT NULL, hash bytea NOT NULL, event text NOT NULL);
                 CREATE INDEX IF NOT EXISTS \"{ix}_ts\" ON {t} (ts);
                 CREATE INDEX IF NOT EXISTS \"{ix}_action_ts\" ON {t} (action, ts);
                 CREATE INDEX IF NOT EXISTS \"{ix}_user_ts\" ON {t} (user_id, ts);"
            ))
            .await?;
        if self.config.signer.is_some() {
            let ct = quoted(&format!("{}_checkpoints", self.config.table));
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {ct} (size bigint NOT NULL, time bigint NOT NULL, \
                     note text NOT NULL, entry text NOT NULL, PRIMARY KEY (size, time))"
                ))
                .await?;
        }
        if self.chainer.is_none() && self.refused.is_none() {
            match self.resume(&client).await? {
                Ok(chainer) => self.chainer = Some(chainer),
                Err(suspect) if suspect.fatal || self.config.on_tamper == OnTamper::Refuse => {
                    tracing::error!(
                        target: "palisade_audit",
                        first_bad = suspect.first_bad,
                        reason = %suspect.reason,
                        "audit table fails verification against its last checkpoint: refused"
                    );
                    self.refused = Some(suspect.error());
                }
                Err(suspect) => {
                    let mut chainer = self.quarantine(&client, &suspect).await?;
                    let mut event = vec![suspect.event(&format!("{}_suspect", self.config.table))];
                    let rows =
                        Rows::build(&mut chainer, &mut event, &Queue::new(1, Overflow::Block));
                    self.client = Some(client);
                    self.insert(&rows).await?;
                    self.chainer = Some(chainer);
                    return Ok(());
                }
            }
        }
        self.client = Some(client);
        Ok(())
    }

    /// Checks the table against its last signed checkpoint (see [`OnTamper`]): the row at the
    /// checkpoint's size - 1 carries the signed chain head and every row after it chains from
    /// there. The outer error is the database's; the inner one the rows not vouched for.
    async fn resume(
        &self,
        client: &Client,
    ) -> Result<Result<Chainer, Suspect>, tokio_postgres::Error> {
        let t = quoted(&self.config.table);
        let (head, tree) = match &self.config.signer {
            None => (ChainHash::GENESIS, Frontier::new()),
            Some(signer) => {
                let ct = quoted(&format!("{}_checkpoints", self.config.table));
                let row = client
                    .query_opt(
                        &format!("SELECT entry FROM {ct} ORDER BY size DESC, time DESC LIMIT 1"),
                        &[],
                    )
                    .await?;
                let state = match row {
                    None => Ok((ChainHash::GENESIS, Frontier::new())),
                    Some(row) => LogEntry::from_line(&row.try_get::<_, String>(0)?)
                        .and_then(|e| e.verify(&signer.verifier(), signer.origin()))
                        .map(|(cp, tree)| (cp.head(), tree)),
                };
                match state {
                    Ok(state) => state,
                    Err(_) => {
                        return Ok(Err(Suspect::fatal(0, BreakReason::BadCheckpoint)));
                    }
                }
            }
        };
        let size = tree.size();
        if let Some(anchor) = size.checked_sub(1) {
            let row = client
                .query_opt(
                    &format!("SELECT seq, prev_hash, hash, event FROM {t} WHERE seq = $1"),
                    &[&i64::try_from(anchor).unwrap_or(i64::MAX)],
                )
                .await?;
            let Some(row) = row else {
                let reason = BreakReason::Truncated {
                    checkpoint_size: size,
                    records: anchor,
                };
                return Ok(Err(Suspect::fatal(anchor, reason)));
            };
            let (seq, prev, hash, event) = row_parts(&row)?;
            let mut v = Verifier::resume(anchor, prev);
            v.push_parts(seq, prev, hash, event.as_bytes());
            if v.is_broken() || hash != head {
                return Ok(Err(Suspect::fatal(
                    anchor,
                    BreakReason::CheckpointMismatch { size },
                )));
            }
        }
        let mut tail = Verifier::resume_tree(head, tree.clone());
        let mut records = 0u64;
        let sql = format!(
            "SELECT seq, prev_hash, hash, event FROM {t} WHERE seq > $1 ORDER BY seq LIMIT 10000"
        );
        let mut after = i64::try_from(size).unwrap_or(i64::MAX).saturating_sub(1);
        loop {
            let rows = client.query(&sql, &[&after]).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let (seq, prev, hash, event) = row_parts(row)?;
                tail.push_parts(seq, prev, hash, event.as_bytes());
                records = records.saturating_add(1);
                after = i64::try_from(seq).unwrap_or(i64::MAX);
            }
        }
        let resumed = (tail.head(), tail.tree().cloned().unwrap_or_default());
        let bad = match tail.finish() {
            Verdict::Broken { index, reason } => Some((size.saturating_add(index), reason)),
            Verdict::Intact { .. } if self.config.signer.is_some() && records > 0 => Some((
                size,
                BreakReason::Unattested {
                    checkpoint_size: size,
                },
            )),
            Verdict::Intact { .. } => None,
        };
        Ok(match bad {
            None => Ok(Chainer::resume(resumed.0, resumed.1)),
            Some((first_bad, reason)) => Err(Suspect {
                first_bad,
                reason,
                from: size,
                records,
                fatal: false,
                resume: Some(Chainer::resume(head, tree)),
            }),
        })
    }

    /// Moves the rows not vouched for, unchanged, to `<table>_suspect` (with the time they were
    /// moved) in one transaction, and returns the chain continued from the last checkpoint.
    async fn quarantine(
        &self,
        client: &Client,
        suspect: &Suspect,
    ) -> Result<Chainer, tokio_postgres::Error> {
        let t = quoted(&self.config.table);
        let st = quoted(&format!("{}_suspect", self.config.table));
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {st} (LIKE {t});
                 ALTER TABLE {st} ADD COLUMN IF NOT EXISTS quarantined_at timestamptz NOT NULL DEFAULT now();"
            ))
            .await?;
        let from = i64::try_from(suspect.from).unwrap_or(i64::MAX);
        client.batch_execute("BEGIN").await?;
        let moved = async {
            client
                .execute(
                    &format!("INSERT INTO {st} SELECT {t}.*, now() FROM {t} WHERE seq >= $1"),
                    &[&from],
                )
                .await?;
            client
                .execute(&format!("DELETE FROM {t} WHERE seq >= $1"), &[&from])
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = moved {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        tracing::error!(
            target: "palisade_audit",
            first_bad = suspect.first_bad,
            reason = %suspect.reason,
            quarantined = suspect.records,
            "audit table: rows not vouched for by the last checkpoint moved aside"
        );
        Ok(suspect.resume.clone().unwrap_or_default())
    }

    /// Whether a timer checkpoint is due.
    fn timer_due(&self) -> bool {
        self.config.signer.is_some()
            && self
                .config
                .checkpoint_interval
                .is_some_and(|every| self.last_checkpoint.elapsed() >= every)
    }

    /// How long to wait for events before a timer checkpoint is due.
    fn until_timer(&self) -> Duration {
        match (&self.config.signer, self.config.checkpoint_interval) {
            (Some(_), Some(every)) => every
                .saturating_sub(self.last_checkpoint.elapsed())
                .min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }

    async fn insert(&mut self, rows: &Rows) -> Result<(), tokio_postgres::Error> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        client
            .execute(
                &self.insert_sql,
                &[
                    &rows.seq,
                    &rows.id,
                    &rows.ts,
                    &rows.action,
                    &rows.severity,
                    &rows.outcome,
                    &rows.user_id,
                    &rows.user_name,
                    &rows.tenant,
                    &rows.ip,
                    &rows.correlation_id,
                    &rows.prev,
                    &rows.hash,
                    &rows.event,
                ],
            )
            .await?;
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<(), tokio_postgres::Error> {
        let (Some(signer), Some(chainer), Some(client)) =
            (&self.config.signer, &self.chainer, &self.client)
        else {
            return Ok(());
        };
        let signed = signer.sign_chain(chainer, UnixTime::from(SystemTime::now()));
        let entry = LogEntry::new(&signed, chainer.tree());
        let ct = quoted(&format!("{}_checkpoints", self.config.table));
        client
            .execute(
                &format!(
                    "INSERT INTO {ct} (size, time, note, entry) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (size, time) DO NOTHING"
                ),
                &[
                    &i64::try_from(signed.checkpoint.size()).unwrap_or(i64::MAX),
                    &i64::try_from(signed.checkpoint.time()).unwrap_or(i64::MAX),
                    &signed.note,
                    &entry.to_line(),
                ],
            )
            .await?;
        if let Some(cb) = &self.config.on_checkpoint {
            cb(&signed);
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

async fn write_batch(
    w: &mut Writer,
    rows: &mut Option<Rows>,
    batch: &mut [AuditEvent],
    queue: &Queue<AuditEvent>,
) -> Result<(), tokio_postgres::Error> {
    w.connect().await?;
    if rows.is_none() {
        let Some(chainer) = w.chainer.as_mut() else {
            return Ok(());
        };
        *rows = Some(Rows::build(chainer, batch, queue));
    }
    match rows {
        Some(r) => w.insert(r).await,
        None => Ok(()),
    }
}

fn row_parts(
    row: &tokio_postgres::Row,
) -> Result<(u64, ChainHash, ChainHash, String), tokio_postgres::Error> {
    let seq: i64 = row.try_get(0)?;
    let prev: Vec<u8> = row.try_get(1)?;
    let hash: Vec<u8> = row.try_get(2)?;
    let event: String = row.try_get(3)?;
    let to_hash = |b: &[u8]| <[u8; 32]>::try_from(b).map(ChainHash).unwrap_or_default();
    Ok((
        u64::try_from(seq).unwrap_or(u64::MAX),
        to_hash(&prev),
        to_hash(&hash),
        event,
    ))
}

/// Rows after the last checkpoint that it does not vouch for.
struct Suspect {
    first_bad: u64,
    reason: BreakReason,
    /// The checkpoint's size: the first row moved aside.
    from: u64,
    records: u64,
    /// The damage reaches into what the checkpoint signed: nothing can be set aside.
    fatal: bool,
    /// The chain continued from the last checkpoint.
    resume: Option<Chainer>,
}

impl Suspect {
    fn fatal(first_bad: u64, reason: BreakReason) -> Self {
        Self {
            first_bad,
            reason,
            from: 0,
            records: 0,
            fatal: true,
            resume: None,
        }
    }

    fn error(&self) -> AuditError {
        AuditError::Tampered {
            first_bad: self.first_bad,
            reason: self.reason.clone(),
        }
    }

    fn event(&self, moved_to: &str) -> AuditEvent {
        AuditEvent::new(
            Action::Custom(QUARANTINE_ACTION.to_owned()),
            UnixTime::from(SystemTime::now()),
        )
        .severity(Severity::Critical)
        .outcome(Outcome::Failure)
        .meta("first_bad", self.first_bad.to_string())
        .meta("reason", self.reason.to_string())
        .meta(
            "unattested_only",
            matches!(self.reason, BreakReason::Unattested { .. }).to_string(),
        )
        .meta("from_seq", self.from.to_string())
        .meta("records", self.records.to_string())
        .meta("file", moved_to.to_owned())
    }
}

fn backoff(attempt: u32, max: Duration) -> Duration {
    Duration::from_millis(10u64 << attempt.min(10)).min(max)
}

fn run(mut w: Writer, rt: &tokio::runtime::Runtime, queue: &Queue<AuditEvent>) {
    let mut batch = Vec::with_capacity(w.config.batch_max);
    loop {
        let (alive, flush) = queue.take(&mut batch, w.config.batch_max, w.until_timer());
        if !batch.is_empty() {
            for e in &mut batch {
                w.config.redactor.redact(e);
            }
            let n = batch.len();
            let mut rows = None;
            let mut attempt = 0u32;
            while let Err(e) = rt.block_on(write_batch(&mut w, &mut rows, &mut batch, queue)) {
                queue.fail(format!("writing audit rows: {e}"));
                w.client = None;
                attempt = attempt.saturating_add(1);
                if queue.is_closed() && attempt > 30 {
                    tracing::error!(target: "palisade_audit", lost = n, "audit database unreachable at shutdown");
                    return;
                }
                std::thread::sleep(backoff(attempt, w.config.max_backoff));
            }
            if let Some(e) = w.refused.take() {
                return queue.refuse(e);
            }
            if attempt > 0 {
                queue.recovered();
            }
            batch.clear();
            w.since_checkpoint = w.since_checkpoint.saturating_add(n as u64);
            if w.config.signer.is_some()
                && w.since_checkpoint >= w.config.checkpoint_every
                && let Err(e) = rt.block_on(w.checkpoint())
            {
                queue.fail(format!("writing checkpoint: {e}"));
            }
            queue.complete(n);
        }
        let timer = w.timer_due();
        if (flush.is_some() || !alive || timer)
            && w.config.signer.is_some()
            && (w.since_checkpoint > 0 || timer)
        {
            let result = rt.block_on(async {
                w.connect().await?;
                w.checkpoint().await
            });
            if let Some(e) = w.refused.take() {
                return queue.refuse(e);
            }
            if let Err(e) = result {
                queue.fail(format!("writing checkpoint: {e}"));
            }
        }
        if let Some(ticket) = flush {
            queue.ack_flush(ticket);
        }
        if !alive {
            return;
        }
    }
}

/// The PostgreSQL sink. See the module docs.
pub struct PostgresSink {
    queue: Arc<Queue<AuditEvent>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    flush_timeout: Duration,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("stats", &self.queue.stats())
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// Starts the writer thread. Does not wait for the database: the first batch connects,
    /// creates the table if missing and resumes the chain.
    ///
    /// # Errors
    /// [`AuditError::Io`] if the thread or its runtime cannot be started.
    pub fn open(config: PostgresConfig) -> Result<Self, AuditError> {
        let queue = Arc::new(Queue::new(config.capacity, config.overflow));
        let flush_timeout = config.flush_timeout;
        let t = quoted(&config.table);
        let insert_sql = format!(
            "INSERT INTO {t} (seq, event_id, ts, action, severity, outcome, user_id, user_name, \
             tenant, ip, correlation_id, prev_hash, hash, event) \
             SELECT s, e::uuid, to_timestamp(t::float8 / 1e6), a, sv, o, u, un, tn, ip::inet, c, p, h, ev \
             FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], \
             $13::bytea[], $14::text[]) AS x(s, e, t, a, sv, o, u, un, tn, ip, c, p, h, ev) \
             ON CONFLICT (seq) DO NOTHING"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let writer = Writer {
            config,
            client: None,
            chainer: None,
            insert_sql,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            refused: None,
        };
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("palisade-audit-pg".into())
            .spawn(move || run(writer, &rt, &q))?;
        Ok(Self {
            queue,
            thread: Mutex::new(Some(thread)),
            flush_timeout,
        })
    }

    /// Waits until every event recorded before this call is committed (and checkpointed, if a
    /// signer is configured).
    ///
    /// # Errors
    /// [`AuditError::Pending`] if the flush timeout passes first (the events stay queued and
    /// are written when the database is back).
    pub fn flush(&self) -> Result<(), AuditError> {
        self.queue.wait_durable(self.flush_timeout)
    }

    /// Like [`PostgresSink::flush`] with its own timeout.
    ///
    /// # Errors
    /// As [`PostgresSink::flush`].
    pub fn flush_within(&self, timeout: Duration) -> Result<(), AuditError> {
        self.queue.wait_durable(timeout)
    }

    /// Stops accepting events, writes what is queued, signs a final checkpoint and stops the
    /// writer.
    ///
    /// # Errors
    /// [`AuditError::Pending`] if the writer did not finish within the flush timeout.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        let result = self.queue.wait_durable(self.flush_timeout);
        self.queue.close();
        if result.is_ok() {
            let handle = self
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        result
    }

    /// The sink's counters; `write_failures` counts failed inserts (each retried).
    pub fn stats(&self) -> SinkStats {
        self.queue.stats()
    }
}

impl AuditSink for PostgresSink {
    fn record(&self, event: AuditEvent) {
        self.queue.push(event);
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The result of verifying a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// The verdict over the rows in `seq` order; a broken one's index is the row's sequence
    /// position.
    pub verdict: Verdict,
    /// The quarantines the sink recorded in the table ([`OnTamper::Quarantine`]).
    pub quarantines: Vec<crate::file::Quarantine>,
}

/// Verifies the chain and Merkle tree stored in `table` against `checkpoints`
/// (signature-checked), reading rows in `seq` order in pages of 10 000.
///
/// # Errors
/// [`AuditError::Database`] if the database cannot be read. A broken chain is a
/// [`Verdict::Broken`] whose index is the row's position in `seq` order.
pub async fn verify_table(
    url: &str,
    table: &str,
    checkpoints: &[Checkpoint],
) -> Result<TableReport, AuditError> {
    if !valid_ident(table) {
        return Err(AuditError::Database(Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "invalid table name",
        ))));
    }
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(db_err)?;
    let conn = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut v = Verifier::new();
    for cp in checkpoints {
        v.add_checkpoint(cp);
    }
    let sql = format!(
        "SELECT seq, prev_hash, hash, event FROM {} WHERE seq > $1 ORDER BY seq LIMIT 10000",
        quoted(table)
    );
    let mut quarantines = Vec::new();
    let mut after = -1i64;
    loop {
        let rows = client.query(&sql, &[&after]).await.map_err(db_err)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let (seq, prev, hash, event) = row_parts(row).map_err(db_err)?;
            v.push_parts(seq, prev, hash, event.as_bytes());
            if crate::file::may_be_quarantine(event.as_bytes())
                && let Ok(ev) = crate::format::from_canonical_json(event.as_bytes())
                && let Some(q) = crate::file::Quarantine::from_record(&crate::chain::ChainRecord {
                    seq,
                    prev,
                    hash,
                    event: ev,
                })
            {
                quarantines.push(q);
            }
            after = i64::try_from(seq).unwrap_or(i64::MAX);
        }
        if v.is_broken() {
            break;
        }
    }
    drop(client);
    let _ = conn.await;
    Ok(TableReport {
        verdict: v.finish(),
        quarantines,
    })
}

/// The checkpoint notes stored in `<table>_checkpoints`, oldest first, to verify with
/// [`CheckpointVerifier::verify`](crate::CheckpointVerifier::verify). Checkpoints stored beside
/// the trail only prove something if copies are also kept elsewhere.
///
/// # Errors
/// [`AuditError::Database`] if the database cannot be read.
pub async fn checkpoint_notes(url: &str, table: &str) -> Result<Vec<String>, AuditError> {
    if !valid_ident(table) {
        return Err(AuditError::Database(Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "invalid table name",
        ))));
    }
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(db_err)?;
    let conn = tokio::spawn(async move {
        let _ = connection.await;
    });
    let rows = client
        .query(
            &format!(
                "SELECT note FROM {} ORDER BY size, time",
                quoted(&format!("{table}_checkpoints"))
            ),
            &[],
        )
        .await
        .map_err(db_err)?;
    let notes = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    drop(client);
    let _ = conn.await;
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(valid_ident("audit_events"));
        assert!(valid_ident("sec.audit_1"));
        assert!(!valid_ident("Audit"));
        assert!(!valid_ident("a;drop"));
        assert!(!valid_ident("a.b.c"));
        assert!(!valid_ident(""));
        assert!(PostgresConfig::new("postgres://x@127.0.0.1/db", "bad name").is_err());
    }
}
