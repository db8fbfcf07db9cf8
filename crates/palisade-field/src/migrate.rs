//! The migration engine: encrypt a plaintext column, convert Fernet tokens, or rewrap values
//! under the active key, in batches, resumably and idempotently.
//!
//! The engine is storage-agnostic: a [`MigrationStore`] reads rows in id order and commits one
//! batch of updates together with a checkpoint (the last id processed) atomically.
//! [`MemoryStore`] is the in-memory implementation; `postgres::PgStore` (feature `postgres`)
//! drives a PostgreSQL table.
//!
//! # Guarantees
//! - **Idempotent**: a value already sealed by the active key (with the cipher's algorithm) is
//!   skipped by reading its header only, so re-running never encrypts a value twice.
//! - **Resumable**: each batch and its checkpoint commit together; after an interruption (a
//!   crash, a kill, a cancelled future) the next [`Migrator::run`] starts after the last committed
//!   batch. Even without the checkpoint, re-running is safe by the previous point. A run that
//!   reaches the end clears the checkpoint, so the next run is a fresh full pass.
//! - **Loses nothing**: a value that cannot be decrypted (unknown or retired key, tampered, a
//!   Fernet token no configured key opens) is left untouched and counted. Each update is a
//!   compare-and-set on the values that were read, so a row the application changed meanwhile is
//!   not overwritten (it is counted as a conflict and handled by the next run).
//!
//! # Context
//! Every value is bound to `Context::new(table, column, id)` (plus an optional tenant), where
//! `table` and `column` are the names given to [`Migrator::new`]: the logical names your
//! application uses when it decrypts, which need not be the physical column names.
//!
//! # Errors
//! [`FieldError::Storage`] from the store; encryption errors ([`FieldError::LimitReached`],
//! [`FieldError::Random`]) stop the run with the batch uncommitted.
//!
//! # Panics
//! None.

use std::collections::BTreeMap;
use std::future::Future;

use palisade_core::audit::{Action, AuditEvent};
use palisade_core::keyring::KeyId;
use palisade_core::time::{Clock, SystemClock, UnixTime};

use crate::cipher::FieldCipher;
use crate::context::Context;
use crate::envelope::{self, Header};
use crate::error::FieldError;
use crate::fernet::Fernet;

#[cfg(feature = "postgres")]
pub mod postgres;

/// How stored values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Text columns: plaintext is text, ciphertext is the `pal1:` text form.
    Text,
    /// Binary (`bytea`) columns: ciphertext is the raw form. In place, a plaintext that happens
    /// to parse as a raw header (it would start with byte 0x01) is taken for a ciphertext: use a
    /// separate target column when that can happen.
    Raw,
}

/// One row as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// The row id (the checkpoint is the largest id of a committed batch).
    pub id: i64,
    /// The source column's value.
    pub source: Option<Vec<u8>>,
    /// The target column's value (ignored when the store migrates in place).
    pub target: Option<Vec<u8>>,
}

/// One update: set the target of row `id` to `value` if the row still holds what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The row id.
    pub id: i64,
    /// The new target value.
    pub value: Vec<u8>,
    /// The source value as read (compare-and-set).
    pub old_source: Option<Vec<u8>>,
    /// The target value as read (compare-and-set; same as the source when in place).
    pub old_target: Option<Vec<u8>>,
}

/// Where the rows live. Implement it for your storage; see [`MemoryStore`].
pub trait MigrationStore: Send {
    /// Whether source and target are the same column.
    fn in_place(&self) -> bool;

    /// How values are encoded.
    fn encoding(&self) -> Encoding;

    /// Up to `limit` rows with an id greater than `after` (all rows when `None`), ascending.
    fn fetch(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SourceRow>, FieldError>> + Send;

    /// Applies `updates` (each only where the row still holds `old_source` / `old_target`) and
    /// records `checkpoint`, atomically. Returns how many updates applied.
    fn commit(
        &mut self,
        updates: &[Update],
        checkpoint: i64,
    ) -> impl Future<Output = Result<u64, FieldError>> + Send;

    /// The checkpoint of an unfinished run.
    fn checkpoint(&mut self) -> impl Future<Output = Result<Option<i64>, FieldError>> + Send;

    /// Clears the checkpoint (the run reached the end).
    fn clear_checkpoint(&mut self) -> impl Future<Output = Result<(), FieldError>> + Send;
}

/// What a run did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Batches committed.
    pub batches: u64,
    /// Rows read.
    pub rows: u64,
    /// Plaintext values encrypted.
    pub encrypted: u64,
    /// Values under an older key rewrapped.
    pub rewrapped: u64,
    /// Fernet tokens converted.
    pub converted: u64,
    /// Values already under the active key.
    pub skipped: u64,
    /// Rows with nothing to encrypt (NULL).
    pub nulls: u64,
    /// Values left untouched because they could not be decrypted.
    pub undecryptable: u64,
    /// Updates not applied because the row changed after it was read.
    pub conflicts: u64,
    /// The last id committed.
    pub last_id: Option<i64>,
    /// Whether the run reached the end of the table.
    pub finished: bool,
}

/// Where a column stands: see [`Migrator::status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Rows read.
    pub rows: u64,
    /// NULL values.
    pub nulls: u64,
    /// Values not yet encrypted.
    pub plaintext: u64,
    /// Fernet tokens that the configured Fernet keys open (to be converted).
    pub fernet: u64,
    /// Values sealed by the active key (and decrypting).
    pub current: u64,
    /// Values sealed by older keys (and decrypting), per key.
    pub older: BTreeMap<KeyId, u64>,
    /// Values that look encrypted but do not decrypt.
    pub undecryptable: u64,
}

impl Status {
    /// Whether every non-NULL value is sealed by the active key.
    pub fn is_complete(&self) -> bool {
        self.plaintext == 0 && self.fernet == 0 && self.undecryptable == 0 && self.older.is_empty()
    }
}

/// What a value is.
enum Kind {
    Null,
    Plaintext,
    Fernet,
    Current,
    Older,
    Foreign,
}

/// Runs migrations for one column. See the [module documentation](self).
///
/// ```
/// use palisade_core::keyring::Keyring;
/// use palisade_field::migrate::{Encoding, MemoryStore, Migrator};
/// use palisade_field::{Context, FieldCipher};
///
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// let ring = Keyring::parse("k1:active:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")?;
/// let cipher = FieldCipher::new(&ring)?;
/// let mut store = MemoryStore::in_place(Encoding::Text);
/// store.insert(1, Some(b"+15551234567".to_vec()));
/// let migrator = Migrator::new(&cipher, "users", "phone").batch_size(100);
/// let report = migrator.run(&mut store).await?;
/// assert_eq!(report.encrypted, 1);
/// assert_eq!(migrator.status(&mut store).await?.plaintext, 0);
/// let stored = store.target(1).unwrap();
/// assert_eq!(&*cipher.decrypt(stored, &Context::new("users", "phone", 1))?, b"+15551234567");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Migrator<'a> {
    cipher: &'a FieldCipher,
    table: String,
    column: String,
    tenant: Option<String>,
    fernet: Option<Fernet>,
    batch_size: usize,
    max_batches: Option<u64>,
}

impl<'a> Migrator<'a> {
    /// A migrator binding values to `table`.`column` (logical names, see the module docs).
    /// Batches of 1000 rows by default.
    pub fn new(cipher: &'a FieldCipher, table: &str, column: &str) -> Self {
        Self {
            cipher,
            table: table.to_owned(),
            column: column.to_owned(),
            tenant: None,
            fernet: None,
            batch_size: 1000,
            max_batches: None,
        }
    }

    /// Binds every value to this tenant as well.
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    /// Converts Fernet tokens found in the source, opened with these keys.
    #[must_use]
    pub fn fernet(mut self, fernet: Fernet) -> Self {
        self.fernet = Some(fernet);
        self
    }

    /// Rows per batch (and per transaction); at least 1.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Stops after this many batches (the checkpoint stays, so the next run resumes).
    #[must_use]
    pub fn max_batches(mut self, n: Option<u64>) -> Self {
        self.max_batches = n;
        self
    }

    fn context(&self, id: i64) -> Context<'_> {
        let ctx = Context::new(&self.table, &self.column, id);
        match &self.tenant {
            Some(t) => ctx.tenant(t),
            None => ctx,
        }
    }

    fn kind(
        &self,
        value: Option<&[u8]>,
        encoding: Encoding,
        in_place: bool,
        has_target: bool,
    ) -> Kind {
        let Some(v) = value else { return Kind::Null };
        let sealed = match encoding {
            Encoding::Text => envelope::is_text(v),
            Encoding::Raw => Header::parse(v).is_ok(),
        };
        if sealed {
            return match self.cipher.needs_rotation(v) {
                Ok(false) => Kind::Current,
                Ok(true) => Kind::Older,
                Err(_) => Kind::Foreign,
            };
        }
        if has_target && !in_place {
            // A separate target column holding something that is no ciphertext.
            return Kind::Foreign;
        }
        if Fernet::looks_like_token(v) {
            return Kind::Fernet;
        }
        Kind::Plaintext
    }

    fn seal(
        &self,
        plaintext: &[u8],
        ctx: &Context<'_>,
        encoding: Encoding,
    ) -> Result<Vec<u8>, FieldError> {
        match encoding {
            Encoding::Text => self
                .cipher
                .encrypt_text(plaintext, ctx)
                .map(String::into_bytes),
            Encoding::Raw => self.cipher.encrypt(plaintext, ctx),
        }
    }

    fn open_fernet(&self, token: &[u8]) -> Option<crate::Plaintext> {
        self.fernet
            .as_ref()
            .and_then(|f| f.decrypt(token, None, UnixTime::EPOCH).ok())
    }

    /// The value a row is judged by, and whether it sits in a separate target column.
    fn subject(row: &SourceRow, in_place: bool) -> (Option<&[u8]>, bool) {
        if in_place {
            (row.source.as_deref(), false)
        } else if row.target.is_some() {
            (row.target.as_deref(), true)
        } else {
            (row.source.as_deref(), false)
        }
    }

    /// Runs until the end of the table (or [`Migrator::max_batches`]), resuming from the
    /// store's checkpoint.
    ///
    /// # Errors
    /// See the [module documentation](self).
    pub async fn run<S: MigrationStore>(&self, store: &mut S) -> Result<Progress, FieldError> {
        self.run_with_progress(store, |_| {}).await
    }

    /// [`Migrator::run`], calling `on_batch` after each committed batch.
    ///
    /// # Errors
    /// See the [module documentation](self).
    pub async fn run_with_progress<S: MigrationStore>(
        &self,
        store: &mut S,
        mut on_batch: impl FnMut(&Progress),
    ) -> Result<Progress, FieldError> {
        let in_place = store.in_place();
        let encoding = store.encoding();
        let mut progress = Progress {
            last_id: store.checkpoint().await?,
            ..Progress::default()
        };
        let mut updates = Vec::with_capacity(self.batch_size);
        loop {
            if self.max_batches.is_some_and(|m| progress.batches >= m) {
                break;
            }
            let rows = store.fetch(progress.last_id, self.batch_size).await?;
            let Some(last) = rows.last().map(|r| r.id) else {
                store.clear_checkpoint().await?;
                progress.finished = true;
                break;
            };
            updates.clear();
            for row in rows {
                progress.rows += 1;
                let ctx = self.context(row.id);
                let (subject, in_target) = Self::subject(&row, in_place);
                let value = match self.kind(subject, encoding, in_place, in_target) {
                    Kind::Null => {
                        progress.nulls += 1;
                        continue;
                    }
                    Kind::Current => {
                        progress.skipped += 1;
                        continue;
                    }
                    Kind::Foreign => {
                        progress.undecryptable += 1;
                        continue;
                    }
                    Kind::Plaintext => {
                        progress.encrypted += 1;
                        self.seal(subject.unwrap_or_default(), &ctx, encoding)?
                    }
                    Kind::Fernet => match self.open_fernet(subject.unwrap_or_default()) {
                        Some(plain) => {
                            progress.converted += 1;
                            self.seal(&plain, &ctx, encoding)?
                        }
                        None => {
                            progress.undecryptable += 1;
                            continue;
                        }
                    },
                    Kind::Older => match self.cipher.rewrap(subject.unwrap_or_default(), &ctx) {
                        Ok(v) => {
                            progress.rewrapped += 1;
                            v
                        }
                        Err(FieldError::LimitReached { id }) => {
                            return Err(FieldError::LimitReached { id });
                        }
                        Err(FieldError::Random(e)) => return Err(FieldError::Random(e)),
                        Err(_) => {
                            progress.undecryptable += 1;
                            continue;
                        }
                    },
                };
                let old_target = if in_place {
                    row.source.clone()
                } else {
                    row.target
                };
                updates.push(Update {
                    id: row.id,
                    value,
                    old_source: row.source,
                    old_target,
                });
            }
            let applied = store.commit(&updates, last).await?;
            progress.conflicts += (updates.len() as u64).saturating_sub(applied);
            progress.batches += 1;
            progress.last_id = Some(last);
            on_batch(&progress);
        }
        if progress.rewrapped > 0 {
            let event = AuditEvent::new(Action::KeyRotated, SystemClock.now())
                .resource(format!("{}.{}", self.table, self.column))
                .meta("key_id", self.cipher.active_key_id().as_str())
                .meta("rewrapped", progress.rewrapped.to_string())
                .meta("finished", progress.finished.to_string());
            self.cipher.audit_sink().record(event);
        }
        Ok(progress)
    }

    /// Reads every row and classifies it, decrypting each ciphertext (and Fernet token) to
    /// confirm it opens. Writes nothing.
    ///
    /// # Errors
    /// [`FieldError::Storage`].
    pub async fn status<S: MigrationStore>(&self, store: &mut S) -> Result<Status, FieldError> {
        let in_place = store.in_place();
        let encoding = store.encoding();
        let mut status = Status::default();
        let mut after = None;
        loop {
            let rows = store.fetch(after, self.batch_size).await?;
            let Some(last) = rows.last().map(|r| r.id) else {
                break;
            };
            for row in &rows {
                status.rows += 1;
                let ctx = self.context(row.id);
                let (subject, in_target) = Self::subject(row, in_place);
                let v = subject.unwrap_or_default();
                match self.kind(subject, encoding, in_place, in_target) {
                    Kind::Null => status.nulls += 1,
                    Kind::Plaintext => status.plaintext += 1,
                    Kind::Fernet => {
                        if self.open_fernet(v).is_some() {
                            status.fernet += 1;
                        } else {
                            status.undecryptable += 1;
                        }
                    }
                    Kind::Foreign => status.undecryptable += 1,
                    Kind::Current | Kind::Older => {
                        if self.cipher.decrypt(v, &ctx).is_err() {
                            status.undecryptable += 1;
                        } else if let Ok(false) = self.cipher.needs_rotation(v) {
                            status.current += 1;
                        } else if let Ok(i) = envelope::inspect(v) {
                            *status.older.entry(i.key_id).or_default() += 1;
                        }
                    }
                }
            }
            after = Some(last);
        }
        Ok(status)
    }
}

/// (source, target) of one in-memory row.
type MemoryRow = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An in-memory [`MigrationStore`]: a map from id to (source, target), for tests, benches and
/// as a reference implementation.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    rows: BTreeMap<i64, MemoryRow>,
    in_place: bool,
    encoding: Encoding,
    checkpoint: Option<i64>,
}

impl MemoryStore {
    /// A store whose source column is also the target.
    pub fn in_place(encoding: Encoding) -> Self {
        Self {
            rows: BTreeMap::new(),
            in_place: true,
            encoding,
            checkpoint: None,
        }
    }

    /// A store with a separate (initially NULL) target column.
    pub fn separate(encoding: Encoding) -> Self {
        Self {
            in_place: false,
            ..Self::in_place(encoding)
        }
    }

    /// Inserts or replaces a row's source value (the target starts NULL).
    pub fn insert(&mut self, id: i64, source: Option<Vec<u8>>) {
        self.rows.insert(id, (source, None));
    }

    /// Overwrites a row's target value, as the application might.
    pub fn set_target(&mut self, id: i64, target: Option<Vec<u8>>) {
        if self.in_place {
            self.insert(id, target);
        } else if let Some(row) = self.rows.get_mut(&id) {
            row.1 = target;
        }
    }

    /// The value to read back: the target column (the source when in place).
    pub fn target(&self, id: i64) -> Option<&[u8]> {
        let (s, t) = self.rows.get(&id)?;
        if self.in_place {
            s.as_deref()
        } else {
            t.as_deref()
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl MigrationStore for MemoryStore {
    fn in_place(&self) -> bool {
        self.in_place
    }

    fn encoding(&self) -> Encoding {
        self.encoding
    }

    async fn fetch(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SourceRow>, FieldError> {
        let range = match after {
            Some(a) => self
                .rows
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => self.rows.range(..),
        };
        Ok(range
            .take(limit)
            .map(|(&id, (s, t))| SourceRow {
                id,
                source: s.clone(),
                target: if self.in_place { None } else { t.clone() },
            })
            .collect())
    }

    async fn commit(&mut self, updates: &[Update], checkpoint: i64) -> Result<u64, FieldError> {
        let mut applied = 0;
        for u in updates {
            if let Some(row) = self.rows.get_mut(&u.id) {
                let current_target = if self.in_place { &row.0 } else { &row.1 };
                if row.0 == u.old_source && *current_target == u.old_target {
                    if self.in_place {
                        row.0 = Some(u.value.clone());
                    } else {
                        row.1 = Some(u.value.clone());
                    }
                    applied += 1;
                }
            }
        }
        self.checkpoint = Some(checkpoint);
        Ok(applied)
    }

    async fn checkpoint(&mut self) -> Result<Option<i64>, FieldError> {
        Ok(self.checkpoint)
    }

    async fn clear_checkpoint(&mut self) -> Result<(), FieldError> {
        self.checkpoint = None;
        Ok(())
    }
}
