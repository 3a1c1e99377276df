//! A JSON object as a row: each key's value into its column, found by the
//! key's name ([`column_name`]), with no map built per row (that cost a
//! fifth of a JSON import). With `flatten`, an object's fields become
//! columns of their own, named by their path (`"Address": {"City": …}` is
//! `Address.City`, the column `AddressCity`), as API exports nest them.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::naming::column_name;
use super::quoted;
use super::rows::{JsonRow, Raw};
use super::MAX_COLUMNS;

/// Deepest nesting flattened; an object deeper down is kept as its JSON
/// text in the column of its path.
pub const MAX_FLATTEN_DEPTH: usize = 8;

/// Most flattened paths whose column is remembered by [`FileKeys`]; past it,
/// a path is named again each time it is met.
pub const MAX_REMEMBERED_PATHS: usize = 4 * MAX_COLUMNS;

/// What one file's keys named so far.
#[derive(Debug, Default)]
pub(super) struct FileKeys {
    /// Flattened paths already named, for the rows after the one they were
    /// met in: a path's column (`None`: not a column, the columns fixed).
    named: HashMap<String, Option<usize>>,
    /// The path being placed, built in place.
    path: String,
    /// The object being read (from 1).
    object: u64,
    /// Per column, the last object that gave it a value, and the key that
    /// did when not the column's own name.
    filled: Vec<(u64, String)>,
    /// Two keys of one object that name one column, as an error; the read
    /// stops at that row.
    pub clash: Option<String>,
}

impl FileKeys {
    /// Note that `key` gives column `i`, named `name`, a value in the
    /// object being read. Another key naming it there sets `clash` (one
    /// value would be lost); the same key again is a duplicate, whose last
    /// value counts, as most JSON readers do.
    #[inline]
    fn fill(&mut self, i: usize, name: &str, key: &str) {
        // The common case, a key filling its own column once, compares
        // nothing but pointers and the object number.
        let itself = std::ptr::eq(key, name) || key == name;
        match self.filled.get_mut(i) {
            Some((object, first)) if *object != self.object => {
                *object = self.object;
                if !itself {
                    first.clear();
                    first.push_str(key);
                } else if !first.is_empty() {
                    first.clear();
                }
            }
            Some(_) => self.filled_again(i, name, key, itself),
            None => {
                self.filled.resize_with(i + 1, Default::default);
                self.fill(i, name, key);
            }
        }
    }

    /// A second key for column `i` in one object: a clash unless it is the
    /// first key again.
    #[cold]
    fn filled_again(&mut self, i: usize, name: &str, key: &str, itself: bool) {
        let first = self.filled.get(i).map_or("", |(_, first)| first.as_str());
        let same = match itself {
            true => first.is_empty(),
            false => first == key,
        };
        if same || self.clash.is_some() {
            return;
        }
        let first = if first.is_empty() { name } else { first };
        self.clash = Some(format!(
            "keys {} and {} both name the column {}",
            quoted(first),
            quoted(key),
            quoted(name)
        ));
    }
}

/// One JSON object read straight into a row in `columns` order, adding
/// new columns unless `fixed`. A duplicate key keeps its last value (two
/// different keys naming one column set `keys.clash`);
/// anything but an object is a malformed row, `not_object`. A key past
/// [`MAX_COLUMNS`] columns stops the parse and sets `overflow`.
pub(super) struct ObjectRow<'c> {
    pub columns: &'c mut Vec<String>,
    pub fixed: bool,
    /// Objects' fields are columns of their own.
    pub flatten: bool,
    pub keys: &'c mut FileKeys,
    pub not_object: &'static str,
    pub overflow: &'c mut bool,
}

impl<'de> DeserializeSeed<'de> for ObjectRow<'_> {
    type Value = JsonRow<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<JsonRow<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectRow<'_> {
    type Value = JsonRow<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonRow<'de>, A::Error> {
        let mut row = vec![Raw::Null; self.columns.len()];
        let mut next = 0;
        self.keys.object += 1;
        loop {
            let column = ColumnOf {
                columns: &mut *self.columns,
                fixed: self.fixed,
                flatten: self.flatten,
                hint: next,
                overflow: &mut *self.overflow,
                keys: &mut *self.keys,
            };
            match map.next_key_seed(column)? {
                None => break,
                Some(Slot::Skip) => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(Slot::Column(i)) => {
                    put(&mut row, i, map.next_value_seed(RawSeed)?);
                    next = i + 1;
                }
                Some(Slot::ByValue(key)) => {
                    self.keys.path.clear();
                    self.keys.path.push_str(&key);
                    let mut leaves = Leaves {
                        columns: &mut *self.columns,
                        fixed: self.fixed,
                        overflow: &mut *self.overflow,
                        row: &mut row,
                        keys: &mut *self.keys,
                        last: None,
                    };
                    map.next_value_seed(Flattened {
                        leaves: &mut leaves,
                        depth: 1,
                    })?;
                    if let Some(i) = leaves.last {
                        next = i + 1;
                    }
                }
            }
        }
        row.resize(self.columns.len(), Raw::Null);
        Ok(Ok(row))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonRow<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(self.not_object.to_owned()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonRow<'de>, E> {
        Ok(Err(self.not_object.to_owned()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<JsonRow<'de>, E> {
        Ok(Err(self.not_object.to_owned()))
    }

    fn visit_u64<E>(self, _: u64) -> Result<JsonRow<'de>, E> {
        Ok(Err(self.not_object.to_owned()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<JsonRow<'de>, E> {
        Ok(Err(self.not_object.to_owned()))
    }

    fn visit_str<E>(self, _: &str) -> Result<JsonRow<'de>, E> {
        Ok(Err(self.not_object.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<JsonRow<'de>, E> {
        Ok(Err(self.not_object.to_owned()))
    }
}

/// `value` as the `i`th column's value.
fn set(row: &mut Vec<Raw<'_>>, i: usize, value: serde_json::Value) {
    put(
        row,
        i,
        match value {
            serde_json::Value::Null => Raw::Null,
            serde_json::Value::Bool(b) => Raw::Bool(b),
            serde_json::Value::Number(n) => Raw::Num(n),
            v => Raw::Json(Box::new(v)),
        },
    );
}

/// Put `value` in column `i` of `row`.
fn put<'a>(row: &mut Vec<Raw<'a>>, i: usize, value: Raw<'a>) {
    if row.len() <= i {
        row.resize(i + 1, Raw::Null);
    }
    row[i] = value;
}

/// A column's value as read: a string without escapes borrowed from the
/// text, not copied (most of a JSON row's values).
struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = Raw<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Raw<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RawSeed {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Raw<'de>, E> {
        Ok(Raw::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Raw<'de>, E> {
        Ok(Raw::Num(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Raw<'de>, E> {
        Ok(Raw::Num(n.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Raw<'de>, E> {
        Ok(serde_json::Number::from_f64(f).map_or(Raw::Null, Raw::Num))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Raw<'de>, A::Error> {
        serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))
            .map(|v| Raw::Json(Box::new(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw<'de>, A::Error> {
        serde_json::Value::deserialize(MapAccessDeserializer::new(map))
            .map(|v| Raw::Json(Box::new(v)))
    }
}

/// Where a key's value goes.
enum Slot {
    /// Into this column.
    Column(usize),
    /// Nowhere: not a column, and the columns are `fixed`.
    Skip,
    /// Where its value says (flattening): the fields of an object, or a
    /// column of this key.
    ByValue(String),
}

/// The index of the column `key` names, or a new column for it unless
/// `fixed`. A key that names no column keeps its text, which the check
/// after the read refuses.
fn column_index<E: serde::de::Error>(
    columns: &mut Vec<String>,
    fixed: bool,
    overflow: &mut bool,
    key: &str,
) -> Result<Option<usize>, E> {
    let named = column_name(key);
    let name = named.as_deref().unwrap_or(key);
    if let Some(i) = columns.iter().position(|c| c == name) {
        return Ok(Some(i));
    }
    if fixed {
        return Ok(None);
    }
    if columns.len() >= MAX_COLUMNS {
        // Stop reading the object: the caller reports the limit.
        *overflow = true;
        return Err(E::custom("too many columns"));
    }
    columns.push(name.to_owned());
    Ok(Some(columns.len() - 1))
}

/// A JSON key as where its value goes; a new one past [`MAX_COLUMNS`]
/// sets `overflow` and fails. Keys mostly come in column order, so `hint`
/// is tried first.
struct ColumnOf<'c> {
    columns: &'c mut Vec<String>,
    fixed: bool,
    flatten: bool,
    hint: usize,
    overflow: &'c mut bool,
    keys: &'c mut FileKeys,
}

impl<'de> DeserializeSeed<'de> for ColumnOf<'_> {
    type Value = Slot;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Slot, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnOf<'_> {
    type Value = Slot;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Slot, E> {
        if self.columns.get(self.hint).is_some_and(|c| c == key) {
            self.keys.fill(self.hint, key, key);
            return Ok(Slot::Column(self.hint));
        }
        if self.flatten {
            // A column already, or an object's fields: its value decides.
            return Ok(Slot::ByValue(key.to_owned()));
        }
        Ok(
            match column_index(self.columns, self.fixed, self.overflow, key)? {
                Some(i) => {
                    self.keys.fill(i, &self.columns[i], key);
                    Slot::Column(i)
                }
                None => Slot::Skip,
            },
        )
    }
}

/// A flattened value's leaves placed in their columns.
struct Leaves<'c, 'r> {
    columns: &'c mut Vec<String>,
    fixed: bool,
    overflow: &'c mut bool,
    row: &'c mut Vec<Raw<'r>>,
    keys: &'c mut FileKeys,
    /// The column placed last.
    last: Option<usize>,
}

impl Leaves<'_, '_> {
    /// `value`, found at `keys.path`, into the path's column.
    fn leaf<E: serde::de::Error>(&mut self, v: serde_json::Value) -> Result<(), E> {
        let FileKeys { named, path, .. } = &mut *self.keys;
        let column = match named.get(path.as_str()) {
            Some(column) => *column,
            None => {
                let column = column_index(self.columns, self.fixed, self.overflow, path)?;
                if named.len() < MAX_REMEMBERED_PATHS {
                    named.insert(path.clone(), column);
                }
                column
            }
        };
        if let Some(i) = column {
            let path = std::mem::take(&mut self.keys.path);
            self.keys.fill(i, &self.columns[i], &path);
            self.keys.path = path;
            set(self.row, i, v);
            self.last = Some(i);
        }
        Ok(())
    }
}

/// A key added to the path being placed (`.key`), without a copy.
struct PathKey<'p>(&'p mut String);

impl<'de> DeserializeSeed<'de> for PathKey<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for PathKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<(), E> {
        self.0.push('.');
        self.0.push_str(key);
        Ok(())
    }
}

/// A flattened value read in place, with no map built for it: an
/// object's fields each at `path.field` (`depth` keys deep), anything else
/// (arrays, and objects past [`MAX_FLATTEN_DEPTH`], as their JSON) in the
/// path's column.
struct Flattened<'l, 'c, 'r> {
    leaves: &'l mut Leaves<'c, 'r>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Flattened<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flattened<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_FLATTEN_DEPTH {
            let deep = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
            return self.leaves.leaf(deep);
        }
        loop {
            let len = self.leaves.keys.path.len();
            if map
                .next_key_seed(PathKey(&mut self.leaves.keys.path))?
                .is_none()
            {
                return Ok(());
            }
            let placed = map.next_value_seed(Flattened {
                leaves: &mut *self.leaves,
                depth: self.depth + 1,
            });
            self.leaves.keys.path.truncate(len);
            placed?;
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let array = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        self.leaves.leaf(array)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<(), E> {
        self.leaves.leaf(b.into())
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<(), E> {
        self.leaves.leaf(n.into())
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<(), E> {
        self.leaves.leaf(n.into())
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<(), E> {
        self.leaves.leaf(n.into())
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        self.leaves.leaf(s.into())
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<(), E> {
        self.leaves.leaf(s.into())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaves.leaf(serde_json::Value::Null)
    }
}
