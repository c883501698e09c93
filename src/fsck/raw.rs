//! Reading redb without trusting it: keys and values as raw bytes, the
//! tuple keys fsck splits itself, row cursors with one row of look-ahead,
//! and the guard that turns a redb panic into a message.

use std::cmp::Ordering;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redb::{Key, StorageError, TableDefinition, TableHandle, TypeName, Value};

/// Runs `f`, turning a panic into its message. redb trusts the structure of
/// the pages it reads and may panic on one damaged outside redb.
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic without a message".into())
    })
}

/// A table key or value read as its raw bytes, under the type name of `T` so
/// that redb opens a table declared with `T`. redb's `&str` decoding unwraps
/// UTF-8, and its fixed-width decoding unwraps the length, either of which a
/// damaged page would turn into a panic; fsck decodes the bytes itself.
#[derive(Debug)]
pub(super) struct Raw<T>(PhantomData<T>);

impl<T: Value + 'static> Value for Raw<T> {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        T::fixed_width()
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        T::type_name()
    }
}

impl<T: Key + 'static> Key for Raw<T> {
    /// `T`'s order, so the table is the same table. fsck only iterates raw
    /// tables from end to end, which compares no keys.
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        T::compare(data1, data2)
    }
}

/// A table's name, for as long as the program runs.
pub(super) fn name_of<K: Key + 'static, V: Value + 'static>(
    def: &'static TableDefinition<'static, K, V>,
) -> &'static str {
    def.name()
}

/// The same table with its values read raw.
pub(super) fn raw_values<K: Key + 'static, V: Value + 'static>(
    def: &'static TableDefinition<'static, K, V>,
) -> TableDefinition<'static, K, Raw<V>> {
    TableDefinition::new(name_of(def))
}

/// The same table with its keys read raw.
pub(super) fn raw_keys<K: Key + 'static, V: Value + 'static>(
    def: &'static TableDefinition<'static, K, V>,
) -> TableDefinition<'static, Raw<K>, V> {
    TableDefinition::new(name_of(def))
}

/// Splits a redb 2-tuple key whose first element has variable width: redb
/// writes that element's length first (one byte below 254; 254 then a u16;
/// 255 then a u32, little-endian), then the first element, then the last,
/// which runs to the end. `None` if the bytes cannot be such a key.
fn split_pair(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&tag, rest) = key.split_first()?;
    let (len, rest) = match tag {
        0..=253 => (usize::from(tag), rest),
        254 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_le_bytes(*len)), rest)
        }
        255 => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_le_bytes(*len)).ok()?, rest)
        }
    };
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// A `(&str, u64)` key: an index row's field value and leaf index.
pub(super) fn str_u64_key(key: &[u8]) -> Option<(&str, u64)> {
    let (value, index) = split_pair(key)?;
    let index = u64::from_le_bytes(index.try_into().ok()?);
    Some((std::str::from_utf8(value).ok()?, index))
}

/// A `(&str, &str)` key: an idempotency row's source and key.
pub(super) fn str_str_key(key: &[u8]) -> Option<(&str, &str)> {
    let (source, key) = split_pair(key)?;
    Some((
        std::str::from_utf8(source).ok()?,
        std::str::from_utf8(key).ok()?,
    ))
}

/// The rows of one table in key order, owned, with one row of look-ahead. A
/// read error ends the table and is kept for the checker to report.
pub(super) struct Cursor<T> {
    pub(super) table: &'static str,
    rows: Box<dyn Iterator<Item = Result<T, StorageError>>>,
    ahead: Option<T>,
    pub(super) error: Option<StorageError>,
}

impl<T> Cursor<T> {
    pub(super) fn new(
        table: &'static str,
        rows: impl Iterator<Item = Result<T, StorageError>> + 'static,
    ) -> Self {
        Self {
            table,
            rows: Box::new(rows),
            ahead: None,
            error: None,
        }
    }

    fn peek(&mut self) -> Option<&T> {
        if self.ahead.is_none() && self.error.is_none() {
            match self.rows.next() {
                Some(Ok(row)) => self.ahead = Some(row),
                Some(Err(e)) => self.error = Some(e),
                None => {}
            }
        }
        self.ahead.as_ref()
    }

    pub(super) fn next_if(&mut self, wanted: impl FnOnce(&T) -> bool) -> Option<T> {
        if self.peek().is_some_and(wanted) {
            self.ahead.take()
        } else {
            None
        }
    }
}

/// Rows as fsck reads them: key and raw value bytes.
pub(super) type Rows<K> = Cursor<(K, Vec<u8>)>;

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTable};

    #[test]
    fn raw_tuple_keys_split_as_redb_writes_them() {
        const PAIRS: TableDefinition<(&str, u64), ()> = TableDefinition::new("pairs");
        const STRINGS: TableDefinition<(&str, &str), u64> = TableDefinition::new("strings");
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(300);
        let db = Database::create(dir.path().join("t.redb")).expect("db");
        let txn = db.begin_write().expect("write");
        {
            let mut pairs = txn.open_table(PAIRS).expect("pairs");
            let mut strings = txn.open_table(STRINGS).expect("strings");
            for (s, i) in [("", 0u64), ("alice", 5), (long.as_str(), u64::MAX)] {
                pairs.insert((s, i), ()).expect("insert");
                strings.insert((s, "key"), i).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let txn = db.begin_read().expect("read");
        let pairs = txn.open_table(raw_keys(&PAIRS)).expect("raw pairs");
        let got: Vec<(String, u64)> = pairs
            .iter()
            .expect("iter")
            .map(|row| {
                let (k, _) = row.expect("row");
                let (s, i) = str_u64_key(k.value()).expect("splits");
                (s.to_string(), i)
            })
            .collect();
        assert_eq!(
            got,
            [
                (String::new(), 0),
                ("alice".to_string(), 5),
                (long.clone(), u64::MAX)
            ]
        );
        let strings = txn.open_table(raw_keys(&STRINGS)).expect("raw strings");
        for row in strings.iter().expect("iter") {
            let (k, _) = row.expect("row");
            assert_eq!(str_str_key(k.value()).expect("splits").1, "key");
        }
        assert_eq!(split_pair(&[]), None);
        assert_eq!(split_pair(&[5, b'a']), None);
        assert_eq!(split_pair(&[254, 1]), None);
        assert_eq!(str_u64_key(&[1, b'a', 0]), None);
    }
}
