//! The PostgreSQL driver of the migration engine (feature `postgres`).
//!
//! Migrates a text column of a table with a `bigint` (or `integer`) id, in place or into a
//! separate text target column. Each batch is one transaction: one
//! `UPDATE ... FROM unnest($ids, $values, ...)` statement (a compare-and-set on the values that
//! were read) and the checkpoint upsert into `palisade_field_migrations`, which
//! [`PgStore::prepare`] creates if missing.
//!
//! The `tokio_postgres` crate is re-exported, so callers connect with the exact version the
//! driver was built against.
//!
//! # Errors
//! [`FieldError::Storage`] wrapping the `tokio_postgres` error; [`FieldError::Malformed`] for an
//! identifier that is not `[A-Za-z_][A-Za-z0-9_]*` (at most 63 bytes).
//!
//! # Panics
//! None.

pub use tokio_postgres;
use tokio_postgres::Client;

use super::{Encoding, MigrationStore, SourceRow, Update};
use crate::error::FieldError;

/// The table that holds checkpoints.
pub const PROGRESS_TABLE: &str = "palisade_field_migrations";

/// A column of a PostgreSQL table as a [`MigrationStore`].
#[derive(Debug)]
pub struct PgStore<'a> {
    client: &'a mut Client,
    job: String,
    in_place: bool,
    fetch_after: String,
    fetch_all: String,
    update: String,
}

impl<'a> PgStore<'a> {
    /// A store over `table`, keyed by `id_column`, reading `source_column` and writing
    /// `target_column` (the same name migrates in place). The checkpoint is kept under the
    /// name `table.target_column`.
    ///
    /// # Errors
    /// [`FieldError::Malformed`] for a bad identifier.
    pub fn new(
        client: &'a mut Client,
        table: &str,
        id_column: &str,
        source_column: &str,
        target_column: &str,
    ) -> Result<Self, FieldError> {
        let t = ident(table)?;
        let id = ident(id_column)?;
        let src = ident(source_column)?;
        let tgt = ident(target_column)?;
        let in_place = source_column == target_column;
        let cols = if in_place {
            format!("{id}::int8, {src}::text, NULL::text")
        } else {
            format!("{id}::int8, {src}::text, {tgt}::text")
        };
        Ok(Self {
            client,
            job: format!("{table}.{target_column}"),
            in_place,
            fetch_after: format!("SELECT {cols} FROM {t} WHERE {id} > $1 ORDER BY {id} LIMIT $2"),
            fetch_all: format!("SELECT {cols} FROM {t} ORDER BY {id} LIMIT $1"),
            update: format!(
                "UPDATE {t} AS t SET {tgt} = u.v \
                 FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[]) AS u(id, v, os, ot) \
                 WHERE t.{id} = u.id AND t.{src}::text IS NOT DISTINCT FROM u.os \
                 AND t.{tgt}::text IS NOT DISTINCT FROM u.ot"
            ),
        })
    }

    /// Names the checkpoint (default `table.target_column`), to run several jobs on one column.
    #[must_use]
    pub fn job(mut self, name: &str) -> Self {
        name.clone_into(&mut self.job);
        self
    }

    /// Creates the checkpoint table if it does not exist.
    ///
    /// # Errors
    /// [`FieldError::Storage`].
    pub async fn prepare(&mut self) -> Result<(), FieldError> {
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\
                 job text PRIMARY KEY, last_id bigint NOT NULL, \
                 updated_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await
            .map_err(FieldError::storage)
    }
}

fn ident(name: &str) -> Result<String, FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(FieldError::malformed(
            "sql identifiers must match [A-Za-z_][A-Za-z0-9_]*",
        ))
    }
}

fn text(v: Option<&Vec<u8>>) -> Result<Option<String>, FieldError> {
    v.map(|b| String::from_utf8(b.clone()).map_err(|_| FieldError::malformed("value is not utf-8")))
        .transpose()
}

impl MigrationStore for PgStore<'_> {
    fn in_place(&self) -> bool {
        self.in_place
    }

    fn encoding(&self) -> Encoding {
        Encoding::Text
    }

    async fn fetch(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SourceRow>, FieldError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match after {
            Some(a) => self.client.query(&self.fetch_after, &[&a, &limit]).await,
            None => self.client.query(&self.fetch_all, &[&limit]).await,
        }
        .map_err(FieldError::storage)?;
        rows.iter()
            .map(|r| {
                Ok(SourceRow {
                    id: r.try_get(0).map_err(FieldError::storage)?,
                    source: r
                        .try_get::<_, Option<String>>(1)
                        .map_err(FieldError::storage)?
                        .map(String::into_bytes),
                    target: r
                        .try_get::<_, Option<String>>(2)
                        .map_err(FieldError::storage)?
                        .map(String::into_bytes),
                })
            })
            .collect()
    }

    async fn commit(&mut self, updates: &[Update], checkpoint: i64) -> Result<u64, FieldError> {
        let mut ids = Vec::with_capacity(updates.len());
        let mut values = Vec::with_capacity(updates.len());
        let mut old_src = Vec::with_capacity(updates.len());
        let mut old_tgt = Vec::with_capacity(updates.len());
        for u in updates {
            ids.push(u.id);
            values.push(text(Some(&u.value))?);
            old_src.push(text(u.old_source.as_ref())?);
            old_tgt.push(text(u.old_target.as_ref())?);
        }
        let tx = self
            .client
            .transaction()
            .await
            .map_err(FieldError::storage)?;
        let applied = if ids.is_empty() {
            0
        } else {
            tx.execute(&self.update, &[&ids, &values, &old_src, &old_tgt])
                .await
                .map_err(FieldError::storage)?
        };
        tx.execute(
            &format!(
                "INSERT INTO {PROGRESS_TABLE} (job, last_id) VALUES ($1, $2) \
                 ON CONFLICT (job) DO UPDATE SET last_id = excluded.last_id, updated_at = now()"
            ),
            &[&self.job, &checkpoint],
        )
        .await
        .map_err(FieldError::storage)?;
        tx.commit().await.map_err(FieldError::storage)?;
        Ok(applied)
    }

    async fn checkpoint(&mut self) -> Result<Option<i64>, FieldError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT last_id FROM {PROGRESS_TABLE} WHERE job = $1"),
                &[&self.job],
            )
            .await
            .map_err(FieldError::storage)?;
        row.map(|r| r.try_get(0).map_err(FieldError::storage))
            .transpose()
    }

    async fn clear_checkpoint(&mut self) -> Result<(), FieldError> {
        self.client
            .execute(
                &format!("DELETE FROM {PROGRESS_TABLE} WHERE job = $1"),
                &[&self.job],
            )
            .await
            .map_err(FieldError::storage)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_and_quoted() {
        assert_eq!(ident("users_2").unwrap(), "\"users_2\"");
        for bad in ["", "2x", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(ident(bad).is_err(), "{bad}");
        }
    }
}
