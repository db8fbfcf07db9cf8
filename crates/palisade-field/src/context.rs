//! The context a value is bound to: table, column, row and optional tenant.
//!
//! Every encryption and decryption takes a [`Context`]. Its canonical encoding becomes part of
//! the AEAD associated data, so a ciphertext copied to another row, column, table or tenant fails
//! to decrypt with [`crate::FieldError::Authentication`] instead of yielding another row's secret.
//!
//! # Encoding
//! Unambiguous by construction: every part is length-prefixed, and the row id carries a type
//! tag, so no two different contexts encode to the same bytes.
//!
//! ```text
//! len | table | len | column | row | tenant
//! row    = 0x01 | i64 BE                 (integer id)
//!        | 0x02 | len | bytes            (text or binary id, e.g. a UUID)
//! tenant = 0x00                          (none)
//!        | 0x01 | len | bytes
//! len    = unsigned LEB128, shortest form (one byte below 128, at most three)
//! ```
//!
//! LEB128 keeps the usual context (short names, an integer row) inside two 16-byte blocks of
//! associated data together with the header, which GHASH then processes in two steps instead of
//! three; its shortest form is prefix-free, so the encoding stays unambiguous.
//!
//! Each part may be at most 65 535 bytes; a longer part is refused with
//! [`crate::FieldError::Malformed`].
//!
//! # Panics
//! None.

use crate::error::FieldError;

/// A row's identity inside its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RowId<'a> {
    /// An integer primary key.
    Int(i64),
    /// Any other key (text, UUID bytes, a composite key you encoded yourself).
    Bytes(&'a [u8]),
}

impl From<i64> for RowId<'_> {
    fn from(id: i64) -> Self {
        Self::Int(id)
    }
}

impl From<i32> for RowId<'_> {
    fn from(id: i32) -> Self {
        Self::Int(i64::from(id))
    }
}

impl<'a> From<&'a str> for RowId<'a> {
    fn from(id: &'a str) -> Self {
        Self::Bytes(id.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for RowId<'a> {
    fn from(id: &'a [u8]) -> Self {
        Self::Bytes(id)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for RowId<'a> {
    fn from(id: &'a [u8; N]) -> Self {
        Self::Bytes(id)
    }
}

/// Where a value lives: bound into the ciphertext as associated data. Cheap to build (it only
/// borrows).
///
/// ```
/// use palisade_field::Context;
///
/// let ctx = Context::new("users", "phone", 42).tenant("acme");
/// assert_eq!(ctx.column_name(), "phone");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context<'a> {
    table: &'a str,
    column: &'a str,
    row: RowId<'a>,
    tenant: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// A context for `table`.`column` in row `row`.
    pub fn new(table: &'a str, column: &'a str, row: impl Into<RowId<'a>>) -> Self {
        Self {
            table,
            column,
            row: row.into(),
            tenant: None,
        }
    }

    /// The same context, scoped to a tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: &'a str) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// The same context for another row.
    #[must_use]
    pub fn with_row(mut self, row: impl Into<RowId<'a>>) -> Self {
        self.row = row.into();
        self
    }

    /// The table.
    pub fn table_name(&self) -> &'a str {
        self.table
    }

    /// The column.
    pub fn column_name(&self) -> &'a str {
        self.column
    }

    /// The row.
    pub fn row_id(&self) -> RowId<'a> {
        self.row
    }

    /// The tenant, if any.
    pub fn tenant_name(&self) -> Option<&'a str> {
        self.tenant
    }

    /// The encoded length (see the [module documentation](self)).
    pub(crate) fn encoded_len(&self) -> usize {
        let part = |len: usize| leb128_len(len) + len;
        let row = match self.row {
            RowId::Int(_) => 9,
            RowId::Bytes(b) => 1 + part(b.len()),
        };
        let tenant = self.tenant.map_or(1, |t| 1 + part(t.len()));
        part(self.table.len()) + part(self.column.len()) + row + tenant
    }

    /// Checks that every part is at most 65 535 bytes long.
    pub(crate) fn check(&self) -> Result<(), FieldError> {
        let row = match self.row {
            RowId::Int(_) => 0,
            RowId::Bytes(b) => b.len(),
        };
        let longest = self
            .table
            .len()
            .max(self.column.len())
            .max(row)
            .max(self.tenant.map_or(0, str::len));
        if longest > usize::from(u16::MAX) {
            return Err(FieldError::malformed(
                "a context part is longer than 65535 bytes",
            ));
        }
        Ok(())
    }

    /// Appends the canonical encoding to `out`, reserving room for all of it first.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FieldError> {
        self.check()?;
        out.reserve(self.encoded_len());
        self.append_to(out);
        Ok(())
    }

    /// Writes the canonical encoding to `out`. Call [`Context::check`] first (a part over
    /// 65 535 bytes would get a wrong prefix).
    pub(crate) fn append_to(&self, out: &mut impl ByteOut) {
        part(out, self.table.as_bytes());
        part(out, self.column.as_bytes());
        match self.row {
            RowId::Int(id) => {
                let mut row = [0x01; 9];
                let [_, be @ ..] = &mut row;
                *be = id.to_be_bytes();
                out.put(&row);
            }
            RowId::Bytes(b) => {
                out.byte(0x02);
                part(out, b);
            }
        }
        match self.tenant {
            None => out.byte(0x00),
            Some(t) => {
                out.byte(0x01);
                part(out, t.as_bytes());
            }
        }
    }

    /// The canonical encoding (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`FieldError::Malformed`] when a part is longer than 65 535 bytes.
    pub fn to_bytes(self) -> Result<Vec<u8>, FieldError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

/// The length of `len` in unsigned LEB128.
fn leb128_len(len: usize) -> usize {
    match len {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        _ => 3,
    }
}

/// Where an encoding goes: a `Vec` with room reserved, or a [`Writer`] over a stack buffer.
pub(crate) trait ByteOut {
    fn put(&mut self, data: &[u8]);
    fn byte(&mut self, byte: u8);
}

impl ByteOut for Vec<u8> {
    #[inline]
    fn put(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }

    #[inline]
    fn byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// A bounds-checked cursor over a fixed buffer. Writes past the end are dropped and
/// recorded, so the hot path carries no error values; callers check [`Writer::overflowed`].
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            overflow: false,
        }
    }

    /// The bytes written, or `None` if some did not fit.
    pub(crate) fn written(&self) -> Option<&[u8]> {
        if self.overflow {
            return None;
        }
        self.buf.get(..self.pos)
    }
}

impl ByteOut for Writer<'_> {
    #[inline]
    fn put(&mut self, data: &[u8]) {
        let end = self.pos + data.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(data);
                self.pos = end;
            }
            None => self.overflow = true,
        }
    }

    #[inline]
    fn byte(&mut self, byte: u8) {
        match self.buf.get_mut(self.pos) {
            Some(dst) => {
                *dst = byte;
                self.pos += 1;
            }
            None => self.overflow = true,
        }
    }
}

/// Writes `part` with its length as unsigned LEB128.
#[inline]
fn part(out: &mut impl ByteOut, part: &[u8]) {
    // Lengths were checked by `Context::check`: at most 65 535, so at most three bytes.
    let mut len = part.len();
    while len >= 0x80 {
        // Truncation keeps the low seven bits, which is the point.
        #[allow(clippy::cast_possible_truncation)]
        out.byte((len & 0x7f) as u8 | 0x80);
        len >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.byte(len as u8);
    out.put(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_length_prefixed_and_typed() {
        let a = Context::new("ab", "c", 1).to_bytes().unwrap();
        let b = Context::new("a", "bc", 1).to_bytes().unwrap();
        assert_ne!(a, b);
        let int = Context::new("t", "c", 0x3132).to_bytes().unwrap();
        let text = Context::new("t", "c", "12").to_bytes().unwrap();
        assert_ne!(int, text);
        let none = Context::new("t", "c", 1).to_bytes().unwrap();
        let empty_tenant = Context::new("t", "c", 1).tenant("").to_bytes().unwrap();
        assert_ne!(none, empty_tenant);
        assert_eq!(none, [1, b't', 1, b'c', 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        let long = "x".repeat(300);
        let encoded = Context::new(&long, "c", 1).to_bytes().unwrap();
        assert_eq!(encoded.get(..2), Some(&[0xac, 0x02][..])); // 300 = 0b10_0101100
        let longest = "y".repeat(65_535);
        let encoded = Context::new("t", "c", 1)
            .tenant(&longest)
            .to_bytes()
            .unwrap();
        assert_eq!(encoded.get(13..17), Some(&[0x01, 0xff, 0xff, 0x03][..]));
        for ctx in [
            Context::new("t", "c", "xyz").tenant("acme"),
            Context::new("", "", 7),
            Context::new(&long, &"z".repeat(128), &*"r".repeat(16_384)).tenant(&longest),
        ] {
            assert_eq!(ctx.to_bytes().unwrap().len(), ctx.encoded_len());
        }
    }

    #[test]
    fn oversized_parts_are_refused() {
        let long = "x".repeat(70_000);
        assert!(matches!(
            Context::new(&long, "c", 1).to_bytes(),
            Err(FieldError::Malformed { .. })
        ));
    }
}
