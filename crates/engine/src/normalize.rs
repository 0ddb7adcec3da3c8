//! dlt's relational normalizer: JSON records → rows of a root table and its child tables, streamed into
//! Arrow record batches, growing the [`Schema`] as columns appear.
//!
//! Behaviour follows `dlt/common/normalizers/json/relational.py` and the JSONL items normalizer of dlt
//! 1.31 (type inference, coercion, variant columns); see the project's `dlt-compat.md` §4:
//! * objects flatten into `a__b` columns (empty objects add nothing); lists become child tables
//!   `<table>__<path>` whose rows are the flattened objects, `{value: v}` for scalars and `{list: v}`
//!   for nested lists (so a list of lists gives `<table>__<key>` rows with only system columns and a
//!   `<table>__<key>__list` grand-child);
//! * system columns `_dlt_load_id`/`_dlt_id` on roots, `_dlt_root_id` (merge only), `_dlt_parent_id`,
//!   `_dlt_list_idx`, `_dlt_id` (deterministic) on children;
//! * the first non-null value fixes a column's type (strings that are full ISO date-times become
//!   `timestamp`); later values are coerced or go to a `<col>__v_<type>` variant column.
//!
//! Column order is the record's, objects flattened in place depth first (dlt ≤ 1.22), primary-key
//! columns first, system columns after the data of the row that created them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float64Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::merge::{self, MergeHints, RowIdType};
use crate::naming::{self, Naming};
use crate::schema::{Column, DataType, MergeStrategy, Schema, SortOrder, Table, WriteDisposition};
use crate::typed::{self, Iso, Typed};

/// The normalizer's lookup maps (key paths, slot and table names): foldhash instead of SipHash, randomly
/// seeded, so keys a server sends cannot be chosen to collide. Per record the normalizer does one lookup
/// per key, which made SipHash ~10 % of a release profile.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// `_dlt_id`.
pub const C_DLT_ID: &str = "_dlt_id";
/// `_dlt_load_id`.
pub const C_DLT_LOAD_ID: &str = "_dlt_load_id";
/// `_dlt_root_id`.
pub const C_DLT_ROOT_ID: &str = "_dlt_root_id";
/// `_dlt_parent_id`.
pub const C_DLT_PARENT_ID: &str = "_dlt_parent_id";
/// `_dlt_list_idx`.
pub const C_DLT_LIST_IDX: &str = "_dlt_list_idx";
/// Column of a scalar list element.
pub const C_VALUE: &str = "value";
/// Key of a nested list element.
pub const C_LIST: &str = "list";

/// The default [`NormalizeConfig::batch_bytes`].
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;

/// Normalizer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeConfig {
    /// Shorten identifiers longer than this (DuckDB: none needed).
    pub max_identifier_len: Option<usize>,
    /// Rows buffered per table before [`Normalizer::take_ready`] returns a batch.
    pub batch_rows: usize,
    /// Bytes of values (an estimate: text length, 8 per number) buffered per table before
    /// [`Normalizer::take_ready`] returns a batch, whichever of the two comes first: wide rows (employees
    /// with their custom attributes) make batches of fewer rows, so a table's buffer does not grow with
    /// the company.
    pub batch_bytes: usize,
    /// Also return a table's rows once the oldest has waited this long (`None`: only by size). Set while a
    /// destination loads during the extract, so a table whose resource has finished (or trickles) reaches
    /// it before the extract ends instead of after.
    pub max_batch_age: Option<std::time::Duration>,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig { max_identifier_len: None, batch_rows: 10_000, batch_bytes: DEFAULT_BATCH_BYTES, max_batch_age: None }
    }
}

/// Hints for a resource's root table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootHints {
    /// The resource name.
    pub resource: String,
    /// The root table name, raw (normalized by the normalizer).
    pub table: String,
    /// Primary-key fields, raw (normalized by the normalizer), in declared order.
    pub primary_key: Vec<String>,
    /// The write disposition.
    pub disposition: WriteDisposition,
    /// Merge strategy and hints (meaningful for `merge` only): they decide the root's `_dlt_id`, whether
    /// child rows get `_dlt_root_id`, and the hints recorded in the schema ([`crate::merge`]).
    pub merge: MergeHints,
}

/// A normalization failure.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// A value fits neither its column nor the column's variant (dlt: `CannotCoerceColumnException`).
    #[error("cannot coerce {value} ({from}) into column `{column}` ({to}) of table `{table}`, nor into a variant column")]
    CannotCoerce {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Type of the value.
        from: DataType,
        /// Type of the column.
        to: DataType,
        /// The value, rendered.
        value: String,
    },
    /// A NOT NULL column (primary key, system column) got null or is missing.
    #[error("column `{column}` of table `{table}` is NOT NULL but the row has no value for it")]
    NullInNotNull {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
    },
    /// An integer outside the signed 64-bit range.
    #[error("integer {value} in column `{column}` of table `{table}` does not fit in 64 bits")]
    IntegerOverflow {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The number as text.
        value: String,
    },
    /// Two different nested paths normalize to the same child table name under different parents
    /// (e.g. a list at `a.b` and a list at `a_b`); dlt mixes both into one table, which breaks
    /// `_dlt_parent_id`. Refused instead.
    #[error("nested lists at `{first}` and `{second}` both normalize to child table `{table}` (parents `{first_parent}` and `{second_parent}`); rename one of the fields in the source")]
    ChildTableCollision {
        /// The child table name both paths normalize to.
        table: String,
        /// The path that created the table first.
        first: String,
        /// Its parent table.
        first_parent: String,
        /// The colliding path.
        second: String,
        /// Its parent table.
        second_parent: String,
    },
    /// Building a record batch failed.
    #[error("building the record batch of table `{table}`: {source}")]
    Arrow {
        /// Table name.
        table: String,
        /// The Arrow error.
        source: ArrowError,
    },
}

/// The Arrow type of a dlt type.
pub fn arrow_type(dt: DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType as A;
    match dt {
        DataType::Text | DataType::Json => A::Utf8,
        DataType::Bigint => A::Int64,
        DataType::Double => A::Float64,
        DataType::Bool => A::Boolean,
        DataType::Timestamp => A::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Date => A::Date32,
        DataType::Time => A::Time64(TimeUnit::Microsecond),
        DataType::Decimal => A::Decimal128(38, 9),
        DataType::Binary => A::Binary,
    }
}

/// The Arrow schema of a table: all its columns, in order, NOT NULL columns non-nullable.
pub fn arrow_schema(table: &Table) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        table.columns.values().map(|c| Field::new(&c.name, arrow_type(c.data_type), c.nullable)).collect::<Vec<_>>(),
    ))
}

// ---------------------------------------------------------------------------------------------------
// Values, inference and coercion
// ---------------------------------------------------------------------------------------------------

/// A classified non-null input value.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Text(&'a str),
    Bigint(i64),
    Double(f64),
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Ts(i64),
    /// Days since the epoch.
    Date(i32),
}

impl Val<'_> {
    fn src_type(&self) -> DataType {
        match self {
            Val::Text(_) => DataType::Text,
            Val::Bigint(_) => DataType::Bigint,
            Val::Double(_) => DataType::Double,
            Val::Bool(_) => DataType::Bool,
            Val::Ts(_) => DataType::Timestamp,
            Val::Date(_) => DataType::Date,
        }
    }

    fn render(&self) -> String {
        match self {
            Val::Text(s) => format!("{s:?}"),
            other => text_of(other).into_owned(),
        }
    }
}

/// A value ready for a column builder.
#[derive(Debug)]
enum Cell<'a> {
    Text(Cow<'a, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ts(i64),
    Date(i32),
    Time(i64),
    Dec(i128),
    Bin(Vec<u8>),
}

impl Cell<'_> {
    /// Bytes the value takes in its column buffer (offsets and validity left out).
    fn size(&self) -> usize {
        match self {
            Cell::Text(s) => s.len() + 4,
            Cell::Bin(b) => b.len() + 4,
            Cell::Bool(_) => 1,
            Cell::Date(_) => 4,
            Cell::Dec(_) => 16,
            Cell::I64(_) | Cell::F64(_) | Cell::Ts(_) | Cell::Time(_) => 8,
        }
    }
}

fn ts_micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn micros_to_dt(m: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(m)
}

fn days_to_date(d: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(d.checked_add(719_163)?)
}

/// Type of a first value: `iso_timestamp` detection on strings.
fn infer(v: &Val<'_>) -> DataType {
    match v {
        Val::Text(s) if !s.is_empty() && matches!(typed::parse_iso(s), Some(Iso::DateTime(_))) => DataType::Timestamp,
        other => other.src_type(),
    }
}

/// Python's `repr(float)`.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{:e}", f); // shortest round-trip digits, e.g. "-1.2345e17"
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

fn text_of<'a>(v: &Val<'a>) -> Cow<'a, str> {
    match *v {
        Val::Text(s) => Cow::Borrowed(s),
        Val::Bigint(i) => Cow::Owned(i.to_string()),
        Val::Double(f) => Cow::Owned(py_float_repr(f)),
        Val::Bool(b) => Cow::Borrowed(if b { "True" } else { "False" }),
        Val::Ts(m) => Cow::Owned(micros_to_dt(m).map(|t| typed::format_timestamp(&t)).unwrap_or_default()),
        Val::Date(d) => Cow::Owned(days_to_date(d).map(|d| typed::format_date(&d)).unwrap_or_default()),
    }
}

/// Remove `_` between ASCII digits (Python numeric literals); `None` if misplaced.
fn strip_underscores(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('_') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' && !(i > 0 && b[i - 1].is_ascii_hexdigit() && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)) {
            return None;
        }
    }
    Some(Cow::Owned(s.replace('_', "")))
}

/// Python `int(s.strip())`, with dlt's `0x` prefix for hex.
fn py_int(s: &str) -> Option<i64> {
    let t = naming::py_strip(s);
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(&strip_underscores(hex)?, 16).ok();
    }
    let t = strip_underscores(t)?;
    let digits = t.strip_prefix(['+', '-']).unwrap_or(&t);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Python `float(s.strip())`, with dlt's `0x` prefix for hex.
fn py_float(s: &str) -> Option<f64> {
    let t = naming::py_strip(s);
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(&strip_underscores(hex)?, 16).ok().map(|i| i as f64);
    }
    let t = strip_underscores(t)?;
    let body = t.strip_prefix(['+', '-']).unwrap_or(&t).to_ascii_lowercase();
    let ok = matches!(body.as_str(), "inf" | "infinity" | "nan")
        || (!body.is_empty() && body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-')));
    if !ok {
        return None;
    }
    t.parse().ok()
}

fn str2bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "t" | "y" | "1" => Some(true),
        "no" | "false" | "f" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Unix seconds → microseconds (pendulum `from_timestamp`).
fn seconds_to_micros(s: f64) -> Option<i64> {
    let m = (s * 1e6).round();
    (s.is_finite() && m.abs() < 9.0e18).then_some(m as i64)
}

fn text_to_ts(s: &str) -> Option<i64> {
    match typed::parse_iso(s) {
        Some(Iso::DateTime(t)) => Some(ts_micros(&t)),
        Some(Iso::Date(d)) => Some(ts_micros(&typed::date_to_timestamp(d))),
        Some(Iso::Time(_)) => None,
        None => seconds_to_micros(py_float(s)?),
    }
}

fn micros_to_days(m: i64) -> Option<i32> {
    micros_to_dt(m).map(|t| typed::date_to_days(t.date_naive()))
}

fn parse_decimal(s: &str) -> Option<i128> {
    let t = naming::py_strip(s);
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty()) || frac.len() > 9 || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    v = v.checked_mul(1_000_000_000)?;
    let mut f: i128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    f *= 10i128.pow(9 - frac.len() as u32);
    v = v.checked_add(f)?;
    (v.abs() < 10i128.pow(38)).then_some(if neg { -v } else { v })
}

/// dlt's `coerce_value(to, from, v)`: `None` when the value cannot be coerced.
fn coerce<'a>(v: &Val<'a>, to: DataType) -> Option<Cell<'a>> {
    use DataType as T;
    Some(match (to, *v) {
        (T::Text, v) => Cell::Text(text_of(&v)),
        (T::Bigint, Val::Bigint(i)) => Cell::I64(i),
        (T::Bigint, Val::Text(s)) => Cell::I64(py_int(s)?),
        (T::Bigint, Val::Double(f)) => {
            if !f.is_finite() || f.fract() != 0.0 || f.abs() >= 9.223_372_036_854_776e18 {
                return None;
            }
            Cell::I64(f as i64)
        }
        (T::Double, Val::Double(f)) => Cell::F64(f),
        (T::Double, Val::Bigint(i)) => Cell::F64(i as f64),
        (T::Double, Val::Text(s)) => Cell::F64(py_float(s)?),
        (T::Bool, Val::Bool(b)) => Cell::Bool(b),
        (T::Bool, Val::Text(s)) => Cell::Bool(str2bool(s)?),
        (T::Bool, Val::Bigint(i)) => Cell::Bool(i != 0),
        (T::Bool, Val::Double(f)) => Cell::Bool(f != 0.0),
        (T::Timestamp, Val::Ts(m)) => Cell::Ts(m),
        (T::Timestamp, Val::Text(s)) => Cell::Ts(text_to_ts(s)?),
        (T::Timestamp, Val::Bigint(i)) => Cell::Ts(seconds_to_micros(i as f64)?),
        (T::Timestamp, Val::Double(f)) => Cell::Ts(seconds_to_micros(f)?),
        (T::Timestamp, Val::Date(d)) => Cell::Ts(i64::from(d) * 86_400_000_000),
        (T::Date, Val::Date(d)) => Cell::Date(d),
        (T::Date, Val::Text(s)) => Cell::Date(match typed::parse_iso(s) {
            Some(Iso::Date(d)) => typed::date_to_days(d),
            _ => micros_to_days(text_to_ts(s)?)?,
        }),
        (T::Date, Val::Ts(m)) => Cell::Date(micros_to_days(m)?),
        (T::Date, Val::Bigint(i)) => Cell::Date(micros_to_days(seconds_to_micros(i as f64)?)?),
        (T::Date, Val::Double(f)) => Cell::Date(micros_to_days(seconds_to_micros(f)?)?),
        (T::Time, Val::Text(s)) => match typed::parse_iso(s)? {
            Iso::Time(t) => Cell::Time(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)),
            _ => return None,
        },
        (T::Decimal, Val::Bigint(i)) => Cell::Dec(i128::from(i) * 1_000_000_000),
        (T::Decimal, Val::Double(f)) if f.is_finite() => Cell::Dec(parse_decimal(&format!("{f}"))?),
        (T::Decimal, Val::Text(s)) => Cell::Dec(parse_decimal(s)?),
        (T::Json, Val::Text(s)) => {
            serde_json::from_str::<Value>(s).ok()?;
            Cell::Text(Cow::Borrowed(s))
        }
        (T::Binary, Val::Text(s)) => Cell::Bin(text_to_binary(s)?),
        _ => return None,
    })
}

fn text_to_binary(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if let Some(hex) = s.strip_prefix("0x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        return (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

// ---------------------------------------------------------------------------------------------------
// Column buffers
// ---------------------------------------------------------------------------------------------------

enum Builder {
    Text(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Dec(Decimal128Builder),
    Bin(BinaryBuilder),
}

impl Builder {
    fn new(dt: DataType) -> Self {
        match dt {
            DataType::Text | DataType::Json => Builder::Text(StringBuilder::new()),
            DataType::Bigint => Builder::I64(Int64Builder::new()),
            DataType::Double => Builder::F64(Float64Builder::new()),
            DataType::Bool => Builder::Bool(BooleanBuilder::new()),
            DataType::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            DataType::Date => Builder::Date(Date32Builder::new()),
            DataType::Time => Builder::Time(Time64MicrosecondBuilder::new()),
            DataType::Decimal => Builder::Dec(
                Decimal128Builder::new().with_precision_and_scale(38, 9).unwrap_or_else(|_| Decimal128Builder::new()),
            ),
            DataType::Binary => Builder::Bin(BinaryBuilder::new()),
        }
    }

    fn b(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            Builder::Text(b) => b,
            Builder::I64(b) => b,
            Builder::F64(b) => b,
            Builder::Bool(b) => b,
            Builder::Ts(b) => b,
            Builder::Date(b) => b,
            Builder::Time(b) => b,
            Builder::Dec(b) => b,
            Builder::Bin(b) => b,
        }
    }

    /// Append `missing` nulls.
    fn append_nulls(&mut self, missing: usize) {
        match self {
            Builder::Text(b) => b.append_nulls(missing),
            Builder::I64(b) => b.append_nulls(missing),
            Builder::F64(b) => b.append_nulls(missing),
            Builder::Bool(b) => b.append_nulls(missing),
            Builder::Ts(b) => b.append_nulls(missing),
            Builder::Date(b) => b.append_nulls(missing),
            Builder::Time(b) => b.append_nulls(missing),
            Builder::Dec(b) => b.append_nulls(missing),
            Builder::Bin(b) => {
                for _ in 0..missing {
                    b.append_null()
                }
            }
        }
    }

    /// Append a cell; `false` if its kind does not match the builder (a bug, reported by the caller).
    fn push(&mut self, cell: Cell<'_>) -> bool {
        match (self, cell) {
            (Builder::Text(b), Cell::Text(s)) => b.append_value(s),
            (Builder::I64(b), Cell::I64(v)) => b.append_value(v),
            (Builder::F64(b), Cell::F64(v)) => b.append_value(v),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Ts(b), Cell::Ts(v)) => b.append_value(v),
            (Builder::Date(b), Cell::Date(v)) => b.append_value(v),
            (Builder::Time(b), Cell::Time(v)) => b.append_value(v),
            (Builder::Dec(b), Cell::Dec(v)) => b.append_value(v),
            (Builder::Bin(b), Cell::Bin(v)) => b.append_value(v),
            _ => return false,
        }
        true
    }

    fn finish(&mut self) -> ArrayRef {
        self.b().finish()
    }
}

struct ColState {
    dtype: DataType,
    nullable: bool,
    builder: Builder,
    /// Values in `builder` (tracked here: asking the builder goes through `dyn ArrayBuilder`).
    len: usize,
}

impl ColState {
    fn new(dtype: DataType, nullable: bool) -> Self {
        ColState { dtype, nullable, builder: Builder::new(dtype), len: 0 }
    }

    /// Null-fill the rows before `row` that gave this column no value.
    fn pad(&mut self, row: usize) {
        if self.len < row {
            self.builder.append_nulls(row - self.len);
            self.len = row;
        }
    }

    /// The column's array of the rows buffered so far; the buffer starts empty again.
    fn finish(&mut self, rows: usize) -> ArrayRef {
        self.pad(rows);
        self.len = 0;
        self.builder.finish()
    }
}

/// An interned column name of a table.
struct Slot {
    name: String,
    /// Index into `TableState::cols` once the column exists.
    col: Option<usize>,
    /// The schema was consulted for an existing column of this name.
    checked: bool,
    /// NOT NULL by dlt's default hints (system columns) or a primary key.
    not_null: bool,
    primary_key: bool,
    /// This slot is a variant column.
    variant: bool,
    /// Variant slots by value type.
    variants: Vec<(DataType, usize)>,
    /// Row generation in which this slot was last staged, and its staged position.
    stamp: u64,
    pos: usize,
}

/// A node of a table's key-path trie (raw keys → normalized paths).
struct Node {
    children: FastMap<String, usize>,
    /// Unshortened normalized path from the row (`a__b`).
    full: String,
    slot: Option<usize>,
    list_table: Option<usize>,
}

struct TableState {
    name: String,
    /// Unshortened normalized fragments of the table path, joined.
    full: String,
    parent: Option<usize>,
    resource: String,
    nodes: Vec<Node>,
    slots: Vec<Slot>,
    slot_ids: FastMap<String, usize>,
    cols: Vec<ColState>,
    col_ids: FastMap<String, usize>,
    primary_key: Vec<String>,
    /// The slots of `primary_key`, in its order (set with it, so rows need no lookup).
    pk_slots: Vec<usize>,
    /// The slots of the system columns ([`SYS_COLUMNS`] order), looked up once.
    sys_slots: [Option<usize>; SYS_COLUMNS.len()],
    /// A root's merge hints, with normalized column names.
    hints: Option<RootColumnHints>,
    rows: usize,
    /// Estimated bytes of the buffered values (see [`NormalizeConfig::batch_bytes`]).
    bytes: usize,
    /// When the oldest buffered row arrived (see [`NormalizeConfig::max_batch_age`]).
    first_at: Option<std::time::Instant>,
    /// This table's entry in [`Normalizer::row_counts`].
    count_idx: Option<usize>,
    seen: bool,
    gen: u64,
}

/// The system columns a row can carry; [`TableState::sys_slot`] indexes them.
const SYS_COLUMNS: [&str; 5] = [C_DLT_ID, C_DLT_LOAD_ID, C_DLT_ROOT_ID, C_DLT_PARENT_ID, C_DLT_LIST_IDX];
const SYS_ID: usize = 0;
const SYS_LOAD_ID: usize = 1;
const SYS_ROOT_ID: usize = 2;
const SYS_PARENT_ID: usize = 3;
const SYS_LIST_IDX: usize = 4;

/// A root table's merge hints as the normalizer applies them (normalized column names).
#[derive(Debug, Clone, PartialEq)]
struct RootColumnHints {
    row_id: RowIdType,
    root_key: bool,
    hard_delete: Option<String>,
    dedup_sort: Option<(String, SortOrder)>,
}

impl RootColumnHints {
    /// Set (or clear) the merge hints of one column of the root.
    fn flag(&self, column: &mut Column) {
        let hard_delete = self.hard_delete.as_deref() == Some(column.name.as_str());
        if column.hard_delete != hard_delete {
            column.hard_delete = hard_delete;
        }
        let dedup = self.dedup_sort.as_ref().filter(|(c, _)| *c == column.name).map(|(_, o)| *o);
        if column.dedup_sort != dedup {
            column.dedup_sort = dedup;
        }
        if column.name == C_DLT_ID {
            let row_version = self.row_id == RowIdType::RowHash;
            if column.row_version != row_version {
                column.row_version = row_version;
                column.unique = !row_version;
            }
        }
    }
}

impl TableState {
    fn new(name: String, full: String, parent: Option<usize>, resource: String) -> Self {
        TableState {
            name,
            full,
            parent,
            resource,
            nodes: vec![Node { children: FastMap::default(), full: String::new(), slot: None, list_table: None }],
            slots: Vec::new(),
            slot_ids: FastMap::default(),
            cols: Vec::new(),
            col_ids: FastMap::default(),
            primary_key: Vec::new(),
            pk_slots: Vec::new(),
            sys_slots: [None; SYS_COLUMNS.len()],
            hints: None,
            rows: 0,
            bytes: 0,
            first_at: None,
            count_idx: None,
            seen: false,
            gen: 0,
        }
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&s) = self.slot_ids.get(name) {
            return s;
        }
        let primary_key = self.primary_key.iter().any(|p| p == name);
        let not_null =
            primary_key || matches!(name, C_DLT_ID | C_DLT_LOAD_ID | C_DLT_ROOT_ID | C_DLT_PARENT_ID | C_DLT_LIST_IDX);
        let id = self.slots.len();
        self.slots.push(Slot {
            name: name.to_string(),
            col: None,
            checked: false,
            not_null,
            primary_key,
            variant: false,
            variants: Vec::new(),
            stamp: 0,
            pos: 0,
        });
        self.slot_ids.insert(name.to_string(), id);
        id
    }

    /// The slot of system column `SYS_COLUMNS[i]`.
    fn sys_slot(&mut self, i: usize) -> usize {
        match self.sys_slots[i] {
            Some(s) => s,
            None => {
                let s = self.slot(SYS_COLUMNS[i]);
                self.sys_slots[i] = Some(s);
                s
            }
        }
    }
}

/// A staged cell of the row being built.
#[derive(Clone, Copy)]
enum Staged<'a> {
    Json(&'a Value),
    Str(&'a str),
    Int(i64),
}

/// Context of a row: its position in the tree.
struct RowCtx<'a> {
    load_id: &'a str,
    /// Child rows carry `_dlt_root_id`.
    root_key: bool,
    /// A root row's id computed before flattening (the scd2 row hash).
    preset_id: Option<&'a str>,
    parent_id: Option<&'a str>,
    root_id: Option<&'a str>,
    list_idx: usize,
}

/// What a row is made of.
enum RowSrc<'a> {
    Object(&'a Map<String, Value>),
    /// A scalar list element → `{value: v}`; also a non-object record.
    Scalar(&'a Value),
    /// A list element that is a list → `{list: v}`.
    List(&'a Value),
}

/// Streaming relational normalizer (see the module docs).
pub struct Normalizer {
    config: NormalizeConfig,
    naming: Naming,
    tables: Vec<TableState>,
    table_ids: FastMap<String, usize>,
    roots: FastMap<String, usize>,
    row_counts: IndexMap<String, u64>,
    /// A child-table name collision found while flattening; reported by the row that found it.
    collision: Option<NormalizeError>,
}

impl Normalizer {
    /// A normalizer with the given settings.
    pub fn new(config: NormalizeConfig) -> Self {
        let naming = Naming::new(config.max_identifier_len);
        Normalizer {
            config,
            naming,
            tables: Vec::new(),
            table_ids: FastMap::default(),
            roots: FastMap::default(),
            row_counts: IndexMap::new(),
            collision: None,
        }
    }

    /// The normalized name of a raw table name.
    pub fn table_name(&mut self, raw: &str) -> String {
        self.naming.table(raw).unwrap_or_else(|_| naming::EMPTY_KEY.to_string())
    }

    /// Creates the root table in the schema if absent and sets its resource and disposition. Primary-key
    /// columns are created with their first value (their type is unknown until then) but ordered first,
    /// NOT NULL and `primary_key`.
    pub fn ensure_root(&mut self, schema: &mut Schema, hints: &RootHints) {
        self.root(schema, hints);
    }

    fn root(&mut self, schema: &mut Schema, hints: &RootHints) -> usize {
        let name = match self.roots.get(&hints.table) {
            Some(&t) => self.tables[t].name.clone(),
            None => self.table_name(&hints.table),
        };
        let t = match self.table_ids.get(&name) {
            Some(&t) => t,
            None => {
                let t = self.tables.len();
                self.tables.push(TableState::new(name.clone(), name.clone(), None, hints.resource.clone()));
                self.table_ids.insert(name.clone(), t);
                t
            }
        };
        self.roots.insert(hints.table.clone(), t);
        let pk: Vec<String> = hints.primary_key.iter().map(|k| self.naming.key(k).to_string()).collect();
        let state = &mut self.tables[t];
        if state.primary_key != pk {
            for s in &mut state.slots {
                s.primary_key = pk.contains(&s.name);
                s.not_null = s.not_null || s.primary_key;
            }
            state.primary_key = pk;
            // After `primary_key`: a slot created here is flagged from it.
            let names = state.primary_key.clone();
            state.pk_slots = names.iter().map(|p| state.slot(p)).collect();
        }
        state.resource = hints.resource.clone();
        let column_hints = self.column_hints(hints);
        match schema.tables.get_mut(&name) {
            Some(table) => {
                if table.resource.as_deref() != Some(hints.resource.as_str()) {
                    table.resource = Some(hints.resource.clone());
                }
                if table.write_disposition != Some(hints.disposition) {
                    table.write_disposition = Some(hints.disposition);
                }
            }
            None => {
                schema.tables.insert(name.clone(), Table::root(name.clone(), hints.resource.clone(), hints.disposition));
            }
        }
        if let Some(table) = schema.tables.get_mut(&name) {
            self.apply_merge_hints(table, hints, &column_hints);
        }
        self.tables[t].hints = Some(column_hints);
        t
    }

    /// The root's merge hints with normalized column names.
    fn column_hints(&mut self, hints: &RootHints) -> RootColumnHints {
        let merge_root = hints.disposition == WriteDisposition::Merge;
        let m = &hints.merge;
        RootColumnHints {
            row_id: RowIdType::of(hints.disposition, m.strategy),
            root_key: merge::propagates_root_key(hints.disposition, m.strategy),
            hard_delete: m.hard_delete.as_deref().filter(|_| merge_root).map(|c| self.naming.key(c).to_string()),
            dedup_sort: m.dedup_sort.as_ref().filter(|_| merge_root).map(|(c, o)| (self.naming.key(c).to_string(), *o)),
        }
    }

    /// Record a root's merge strategy and hints in the schema as dlt does: `x-merge-strategy` (unset for
    /// the default `delete-insert`), the column hints, and for scd2 the validity columns (created up
    /// front, like dlt's hint columns, nullable: staged rows have no value) and `x-boundary-timestamp`.
    /// Only what changed is written, so the schema hash moves only with a real change.
    fn apply_merge_hints(&mut self, table: &mut Table, hints: &RootHints, column_hints: &RootColumnHints) {
        let merge_root = hints.disposition == WriteDisposition::Merge;
        let strategy = Some(hints.merge.strategy).filter(|s| merge_root && *s != MergeStrategy::DeleteInsert);
        if table.merge_strategy != strategy {
            table.merge_strategy = strategy;
        }
        let scd2 = strategy == Some(MergeStrategy::Scd2);
        let boundary = hints.merge.boundary_timestamp.filter(|_| scd2);
        if table.boundary_timestamp != boundary {
            table.boundary_timestamp = boundary;
        }
        for column in table.columns.values_mut() {
            column_hints.flag(column);
        }
        let (from, to) = hints.merge.validity_columns();
        let (from, to) = (self.naming.key(&from).to_string(), self.naming.key(&to).to_string());
        let active = hints.merge.active_record_timestamp;
        for column in table.columns.values_mut() {
            let is_from = scd2 && column.name == from;
            let is_to = scd2 && column.name == to;
            if column.valid_from != is_from {
                column.valid_from = is_from;
            }
            if column.valid_to != is_to {
                column.valid_to = is_to;
            }
            let active_ts = active.filter(|_| is_to);
            if column.active_record_timestamp != active_ts {
                column.active_record_timestamp = active_ts;
            }
        }
        if scd2 {
            // dlt puts the validity columns first, before the record's columns.
            for (i, name) in [from, to].into_iter().enumerate() {
                if !table.columns.contains_key(&name) {
                    let mut c = Column::new(name.clone(), DataType::Timestamp);
                    c.valid_from = i == 0;
                    c.valid_to = i == 1;
                    c.active_record_timestamp = if i == 1 { active } else { None };
                    table.columns.shift_insert(i.min(table.columns.len()), name, c);
                }
            }
        }
    }

    /// Normalize one record of a resource into rows of the root table and its child tables.
    pub fn push(
        &mut self,
        schema: &mut Schema,
        hints: &RootHints,
        record: Value,
        load_id: &str,
    ) -> Result<(), NormalizeError> {
        let t = match self.roots.get(&hints.table) {
            Some(&t) if self.tables[t].seen => t,
            _ => self.root(schema, hints),
        };
        let root_key = merge::propagates_root_key(hints.disposition, hints.merge.strategy);
        let row_hash = match self.tables[t].hints.as_ref().map(|h| h.row_id) {
            Some(RowIdType::RowHash) => Some(merge::row_hash(&record)),
            _ => None,
        };
        let ctx = RowCtx {
            load_id,
            root_key,
            preset_id: row_hash.as_deref(),
            parent_id: None,
            root_id: None,
            list_idx: 0,
        };
        let src = match &record {
            Value::Object(m) => RowSrc::Object(m),
            other => RowSrc::Scalar(other),
        };
        self.row(schema, t, src, &ctx)
    }

    fn child_node(&mut self, t: usize, parent: usize, key: &str) -> usize {
        if let Some(&n) = self.tables[t].nodes[parent].children.get(key) {
            return n;
        }
        let norm = self.naming.key(key);
        let state = &mut self.tables[t];
        let full = if parent == 0 { norm.to_string() } else { format!("{}__{}", state.nodes[parent].full, norm) };
        let n = state.nodes.len();
        state.nodes.push(Node { children: FastMap::default(), full, slot: None, list_table: None });
        state.nodes[parent].children.insert(key.to_string(), n);
        n
    }

    fn node_slot(&mut self, t: usize, n: usize) -> usize {
        if let Some(s) = self.tables[t].nodes[n].slot {
            return s;
        }
        let name = self.naming.fragments(&[&self.tables[t].nodes[n].full]);
        let state = &mut self.tables[t];
        let s = state.slot(&name);
        state.nodes[n].slot = Some(s);
        s
    }

    fn list_table(&mut self, t: usize, n: usize) -> usize {
        if let Some(c) = self.tables[t].nodes[n].list_table {
            return c;
        }
        let full = format!("{}__{}", self.tables[t].full, self.tables[t].nodes[n].full);
        let name = self.naming.fragments(&[&full]);
        let c = match self.table_ids.get(&name) {
            Some(&c) => {
                if self.tables[c].parent != Some(t) && self.collision.is_none() {
                    let parent_name = |p: Option<usize>| p.map_or_else(String::new, |p| self.tables[p].name.clone());
                    self.collision = Some(NormalizeError::ChildTableCollision {
                        table: name.clone(),
                        first: self.tables[c].full.clone(),
                        first_parent: parent_name(self.tables[c].parent),
                        second: full.clone(),
                        second_parent: parent_name(Some(t)),
                    });
                }
                c
            }
            None => {
                let c = self.tables.len();
                let resource = self.tables[t].resource.clone();
                self.tables.push(TableState::new(name.clone(), full, Some(t), resource));
                self.table_ids.insert(name, c);
                c
            }
        };
        if self.tables[c].parent == Some(t) {
            self.tables[t].nodes[n].list_table = Some(c);
        }
        c
    }

    /// Stage `value` at `key` under trie node `parent`, flattening objects and collecting lists.
    fn flatten<'r>(
        &mut self,
        t: usize,
        parent: usize,
        key: &str,
        value: &'r Value,
        cells: &mut Vec<(usize, Staged<'r>)>,
        lists: &mut Vec<(usize, &'r [Value])>,
    ) {
        let n = self.child_node(t, parent, key);
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    self.flatten(t, n, k, v, cells, lists);
                }
            }
            Value::Array(a) => {
                let c = self.list_table(t, n);
                match lists.iter_mut().find(|(lc, _)| *lc == c) {
                    Some(entry) => entry.1 = a,
                    None => lists.push((c, a)),
                }
            }
            _ => {
                let s = self.node_slot(t, n);
                self.stage(t, s, Staged::Json(value), cells);
            }
        }
    }

    fn stage<'r>(&mut self, t: usize, s: usize, v: Staged<'r>, cells: &mut Vec<(usize, Staged<'r>)>) {
        let state = &mut self.tables[t];
        let slot = &mut state.slots[s];
        if slot.stamp == state.gen {
            cells[slot.pos].1 = v;
        } else {
            slot.stamp = state.gen;
            slot.pos = cells.len();
            cells.push((s, v));
        }
    }

    fn row(&mut self, schema: &mut Schema, t: usize, src: RowSrc<'_>, ctx: &RowCtx<'_>) -> Result<(), NormalizeError> {
        self.tables[t].gen += 1;
        let mut cells: Vec<(usize, Staged<'_>)> = Vec::with_capacity(16);
        let mut lists: Vec<(usize, &[Value])> = Vec::new();
        match src {
            RowSrc::Object(m) => {
                for (k, v) in m {
                    self.flatten(t, 0, k, v, &mut cells, &mut lists);
                }
            }
            RowSrc::Scalar(v) => self.flatten(t, 0, C_VALUE, v, &mut cells, &mut lists),
            RowSrc::List(v) => self.flatten(t, 0, C_LIST, v, &mut cells, &mut lists),
        }
        if let Some(e) = self.collision.take() {
            return Err(e);
        }
        // An existing non-empty `_dlt_id` in the data is kept, as dlt does.
        let id_slot = self.tables[t].sys_slot(SYS_ID);
        let existing = {
            let slot = &self.tables[t].slots[id_slot];
            if slot.stamp == self.tables[t].gen {
                match cells[slot.pos].1 {
                    Staged::Json(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
                    _ => None,
                }
            } else {
                None
            }
        };
        // A random id is built on the stack: most rows of most loads take one.
        let mut random_id = naming::DltIdBuf::default();
        let row_id: Cow<'_, str> = match (existing, ctx.parent_id) {
            (Some(id), _) => Cow::Borrowed(id),
            (None, None) => match (ctx.preset_id, self.tables[t].hints.as_ref().map(|h| h.row_id)) {
                (Some(id), _) => Cow::Borrowed(id),
                (None, Some(RowIdType::KeyHash)) => Cow::Owned(self.key_hash(t, &cells)),
                _ => Cow::Borrowed(random_id.random()),
            },
            (None, Some(p)) => Cow::Owned(naming::nested_row_id(p, &self.tables[t].name, ctx.list_idx)),
        };
        let row_id: &str = &row_id;
        let root_id = ctx.root_id.unwrap_or(row_id);
        match ctx.parent_id {
            None => {
                let load_slot = self.tables[t].sys_slot(SYS_LOAD_ID);
                self.stage(t, load_slot, Staged::Str(ctx.load_id), &mut cells);
            }
            Some(p) => {
                if ctx.root_key {
                    let s = self.tables[t].sys_slot(SYS_ROOT_ID);
                    self.stage(t, s, Staged::Str(root_id), &mut cells);
                }
                let s = self.tables[t].sys_slot(SYS_PARENT_ID);
                self.stage(t, s, Staged::Str(p), &mut cells);
                let s = self.tables[t].sys_slot(SYS_LIST_IDX);
                self.stage(t, s, Staged::Int(ctx.list_idx as i64), &mut cells);
            }
        }
        self.stage(t, id_slot, Staged::Str(row_id), &mut cells);
        self.commit(schema, t, &cells)?;
        for (c, list) in lists {
            for (idx, elem) in list.iter().enumerate() {
                let child_ctx = RowCtx {
                    load_id: ctx.load_id,
                    root_key: ctx.root_key,
                    preset_id: None,
                    parent_id: Some(row_id),
                    root_id: Some(root_id),
                    list_idx: idx,
                };
                let src = match elem {
                    Value::Object(m) => RowSrc::Object(m),
                    Value::Array(_) => RowSrc::List(elem),
                    other => RowSrc::Scalar(other),
                };
                self.row(schema, c, src, &child_ctx)?;
            }
        }
        Ok(())
    }

    /// dlt's upsert row id: the hash of the row's primary-key values as received (see [`merge::key_hash`]).
    fn key_hash(&self, t: usize, cells: &[(usize, Staged<'_>)]) -> String {
        let state = &self.tables[t];
        let null = Value::Null;
        let pairs: Vec<(&str, &Value)> = state
            .primary_key
            .iter()
            .map(|pk| {
                let value = cells.iter().find_map(|(s, v)| match v {
                    Staged::Json(j) if state.slots[*s].name == *pk => Some(*j),
                    _ => None,
                });
                (pk.as_str(), value.unwrap_or(&null))
            })
            .collect();
        merge::key_hash(&pairs)
    }

    /// A table this run creates must have the parent the stored schema gives it: a child table whose
    /// name a previous load gave to a table under another parent (or to a root) would mix unrelated
    /// rows under one `_dlt_parent_id`. Refused like a collision within one package.
    fn check_stored_parent(&self, schema: &Schema, t: usize) -> Result<(), NormalizeError> {
        let state = &self.tables[t];
        let Some(stored) = schema.tables.get(&state.name) else { return Ok(()) };
        let parent = state.parent.map(|p| self.tables[p].name.clone());
        if stored.parent == parent {
            return Ok(());
        }
        Err(NormalizeError::ChildTableCollision {
            table: state.name.clone(),
            first: format!("{} (stored schema)", state.name),
            first_parent: stored.parent.clone().unwrap_or_default(),
            second: state.full.clone(),
            second_parent: parent.unwrap_or_default(),
        })
    }

    fn ensure_schema_table<'s>(&mut self, schema: &'s mut Schema, t: usize) -> &'s mut Table {
        let state = &self.tables[t];
        let parent = state.parent.map(|p| self.tables[p].name.clone());
        let table = schema.tables.entry(state.name.clone()).or_insert_with(|| {
            let mut table = Table::root(state.name.clone(), state.resource.clone(), WriteDisposition::Append);
            if parent.is_some() {
                table.write_disposition = None;
                table.parent = parent;
            }
            table
        });
        if !self.tables[t].seen {
            if !table.seen_data {
                table.seen_data = true;
            }
            self.tables[t].seen = true;
        }
        table
    }

    fn commit(&mut self, schema: &mut Schema, t: usize, cells: &[(usize, Staged<'_>)]) -> Result<(), NormalizeError> {
        if !self.tables[t].seen {
            self.check_stored_parent(schema, t)?;
            self.ensure_schema_table(schema, t);
        }
        let row = self.tables[t].rows;
        // Phase 1: resolve every cell (columns created, values coerced); nothing is buffered on error.
        let mut resolved: Vec<(usize, Cell<'_>)> = Vec::with_capacity(cells.len());
        for &(s, v) in cells {
            let (val, detect) = match v {
                Staged::Str(x) => (Some(Val::Text(x)), false),
                Staged::Int(i) => (Some(Val::Bigint(i)), false),
                Staged::Json(j) => (self.classify(t, s, j)?, true),
            };
            match val {
                None => {
                    let state = &self.tables[t];
                    let slot = &state.slots[s];
                    if slot.not_null || slot.col.is_some_and(|c| !state.cols[c].nullable) {
                        return Err(self.null_err(t, s));
                    }
                }
                Some(val) => resolved.push(self.resolve(schema, t, s, val, detect)?),
            }
        }
        // Primary-key columns must have a value in this row.
        let state = &self.tables[t];
        for (pk, &s) in state.primary_key.iter().zip(&state.pk_slots) {
            if !state.slots[s].col.is_some_and(|c| resolved.iter().any(|(rc, _)| *rc == c)) {
                return Err(NormalizeError::NullInNotNull { table: state.name.clone(), column: pk.clone() });
            }
        }
        // Phase 2: buffer.
        let state = &mut self.tables[t];
        for (c, cell) in resolved {
            state.bytes += cell.size();
            let col = &mut state.cols[c];
            col.pad(row);
            // A column takes at most one value per row.
            if col.len == row {
                if !col.builder.push(cell) {
                    return Err(NormalizeError::Arrow {
                        table: state.name.clone(),
                        source: ArrowError::InvalidArgumentError(format!("value kind does not match column {c}")),
                    });
                }
                col.len += 1;
            }
        }
        let state = &mut self.tables[t];
        if state.rows == 0 {
            state.first_at = Some(std::time::Instant::now());
        }
        state.rows += 1;
        match state.count_idx.and_then(|i| self.row_counts.get_index_mut(i)) {
            Some((_, n)) => *n += 1,
            None => {
                let entry = self.row_counts.entry(state.name.clone());
                state.count_idx = Some(entry.index());
                *entry.or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn null_err(&self, t: usize, s: usize) -> NormalizeError {
        NormalizeError::NullInNotNull { table: self.tables[t].name.clone(), column: self.tables[t].slots[s].name.clone() }
    }

    fn classify<'v>(&self, t: usize, s: usize, v: &'v Value) -> Result<Option<Val<'v>>, NormalizeError> {
        Ok(Some(match v {
            Value::Null => return Ok(None),
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Bigint(i),
                None if n.is_u64() => {
                    return Err(NormalizeError::IntegerOverflow {
                        table: self.tables[t].name.clone(),
                        column: self.tables[t].slots[s].name.clone(),
                        value: n.to_string(),
                    })
                }
                None => Val::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(x) => match typed::decode(x) {
                Typed::Timestamp(ts) => Val::Ts(ts_micros(&ts)),
                Typed::Date(d) => Val::Date(typed::date_to_days(d)),
                Typed::Text(x) => Val::Text(x),
            },
            // Objects and lists never reach here: they are flattened.
            Value::Object(_) | Value::Array(_) => Val::Text(""),
        }))
    }

    /// The column of a slot, adopting an existing schema column on first use.
    fn slot_col(&mut self, schema: &Schema, t: usize, s: usize) -> Option<usize> {
        let state = &mut self.tables[t];
        if let Some(c) = state.slots[s].col {
            return Some(c);
        }
        if state.slots[s].checked {
            return None;
        }
        state.slots[s].checked = true;
        let existing = schema.tables.get(&state.name).and_then(|tb| tb.columns.get(&state.slots[s].name))?;
        let c = state.cols.len();
        state.cols.push(ColState::new(existing.data_type, existing.nullable));
        state.col_ids.insert(existing.name.clone(), c);
        state.slots[s].col = Some(c);
        if existing.variant {
            state.slots[s].variant = true;
        }
        Some(c)
    }

    /// The column a value goes to (its own, a variant, or a new one) and the coerced value.
    fn resolve<'v>(
        &mut self,
        schema: &mut Schema,
        t: usize,
        s: usize,
        val: Val<'v>,
        detect: bool,
    ) -> Result<(usize, Cell<'v>), NormalizeError> {
        match self.slot_col(schema, t, s) {
            Some(c) => {
                let dtype = self.tables[t].cols[c].dtype;
                if let Some(cell) = coerce(&val, dtype) {
                    return Ok((c, cell));
                }
                let slot = &self.tables[t].slots[s];
                if slot.variant {
                    return Err(NormalizeError::CannotCoerce {
                        table: self.tables[t].name.clone(),
                        column: slot.name.clone(),
                        from: val.src_type(),
                        to: dtype,
                        value: val.render(),
                    });
                }
                let vs = self.variant_slot(t, s, val.src_type());
                self.resolve(schema, t, vs, val, detect)
            }
            None => {
                let dtype = if detect { infer(&val) } else { val.src_type() };
                let cell = coerce(&val, dtype).ok_or_else(|| NormalizeError::CannotCoerce {
                    table: self.tables[t].name.clone(),
                    column: self.tables[t].slots[s].name.clone(),
                    from: val.src_type(),
                    to: dtype,
                    value: val.render(),
                })?;
                Ok((self.create_column(schema, t, s, dtype), cell))
            }
        }
    }

    fn variant_slot(&mut self, t: usize, s: usize, src: DataType) -> usize {
        if let Some(&(_, vs)) = self.tables[t].slots[s].variants.iter().find(|(d, _)| *d == src) {
            return vs;
        }
        let name = self.naming.fragments(&[&self.tables[t].slots[s].name, &format!("v_{}", src.as_str())]);
        let state = &mut self.tables[t];
        let vs = state.slot(&name);
        state.slots[vs].variant = true;
        state.slots[s].variants.push((src, vs));
        vs
    }

    fn create_column(&mut self, schema: &mut Schema, t: usize, s: usize, dtype: DataType) -> usize {
        let table = self.ensure_schema_table(schema, t);
        let state = &mut self.tables[t];
        let slot = &state.slots[s];
        let mut column = Column::new(slot.name.clone(), dtype);
        column.nullable = !slot.not_null;
        column.primary_key = slot.primary_key;
        column.unique = slot.name == C_DLT_ID;
        column.variant = slot.variant;
        if let Some(h) = &state.hints {
            h.flag(&mut column);
        }
        if slot.primary_key {
            // Ordered first, in declared order.
            let my_rank = state.primary_key.iter().position(|p| *p == slot.name).unwrap_or(0);
            let before = state.primary_key[..my_rank].iter().filter(|p| table.columns.contains_key(p.as_str())).count();
            // After the scd2 validity columns, which dlt puts first.
            let lead = table.columns.values().take_while(|c| c.valid_from || c.valid_to).count();
            table.columns.shift_insert((lead + before).min(table.columns.len()), slot.name.clone(), column);
        } else {
            table.columns.insert(slot.name.clone(), column);
        }
        let c = state.cols.len();
        state.cols.push(ColState::new(dtype, !slot.not_null));
        state.col_ids.insert(slot.name.clone(), c);
        state.slots[s].col = Some(c);
        state.slots[s].checked = true;
        c
    }

    fn flush(&mut self, schema: &Schema, t: usize) -> Result<Option<(String, RecordBatch)>, NormalizeError> {
        let state = &mut self.tables[t];
        let rows = state.rows;
        if rows == 0 {
            return Ok(None);
        }
        state.rows = 0;
        state.bytes = 0;
        state.first_at = None;
        let arrow_err = |source| NormalizeError::Arrow { table: state.name.clone(), source };
        let Some(table) = schema.tables.get(&state.name) else {
            return Err(arrow_err(ArrowError::SchemaError(format!("table `{}` missing from the schema", state.name))));
        };
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
        let mut used = vec![false; state.cols.len()];
        for col in table.columns.values() {
            match state.col_ids.get(&col.name) {
                Some(&c) => {
                    used[c] = true;
                    arrays.push(state.cols[c].finish(rows));
                }
                None => arrays.push(new_null_array(&arrow_type(col.data_type), rows)),
            }
        }
        for (c, u) in used.into_iter().enumerate() {
            if !u {
                state.cols[c].finish(0);
            }
        }
        let batch = RecordBatch::try_new(arrow_schema(table), arrays)
            .map_err(|source| NormalizeError::Arrow { table: state.name.clone(), source })?;
        Ok(Some((state.name.clone(), batch)))
    }

    /// Batches of tables whose buffer reached `batch_rows` or `batch_bytes` (drained), as (table name, batch).
    pub fn take_ready(&mut self, schema: &Schema) -> Result<Vec<(String, RecordBatch)>, NormalizeError> {
        let mut out = Vec::new();
        let now = self.config.max_batch_age.map(|age| (std::time::Instant::now(), age));
        for t in 0..self.tables.len() {
            let state = &self.tables[t];
            let aged = match (now, state.first_at) {
                (Some((now, age)), Some(first)) => now.duration_since(first) >= age,
                _ => false,
            };
            if state.rows >= self.config.batch_rows.max(1) || (state.rows > 0 && state.bytes >= self.config.batch_bytes) || aged {
                out.extend(self.flush(schema, t)?);
            }
        }
        Ok(out)
    }

    /// Flush every buffer.
    pub fn finish(&mut self, schema: &Schema) -> Result<Vec<(String, RecordBatch)>, NormalizeError> {
        let mut out = Vec::new();
        for t in 0..self.tables.len() {
            out.extend(self.flush(schema, t)?);
        }
        Ok(out)
    }

    /// Rows normalized per table so far.
    pub fn row_counts(&self) -> &IndexMap<String, u64> {
        &self.row_counts
    }

    /// Rows buffered and not yet returned, over all tables.
    pub fn buffered_rows(&self) -> usize {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (0.5, "0.5"), (1e20, "1e+20"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1.0, "1.0"),
            (1e-5, "1e-05"), (0.0001, "0.0001"), (123456789012345678.0, "1.2345678901234568e+17"), (-0.0, "-0.0"),
            (-2.5, "-2.5"), (12.0, "12.0"),
        ] {
            assert_eq!(py_float_repr(f), want);
        }
    }

    #[test]
    fn coercions_match_dlt() {
        let c = |v: Val<'static>, to| coerce(&v, to).map(|c| format!("{c:?}"));
        assert_eq!(c(Val::Text(" 5 "), DataType::Bigint).as_deref(), Some("I64(5)"));
        assert_eq!(c(Val::Text("+5"), DataType::Bigint).as_deref(), Some("I64(5)"));
        assert_eq!(c(Val::Text("1_000"), DataType::Bigint).as_deref(), Some("I64(1000)"));
        assert_eq!(c(Val::Text("0x1f"), DataType::Bigint).as_deref(), Some("I64(31)"));
        assert_eq!(c(Val::Text("5.0"), DataType::Bigint), None);
        assert_eq!(c(Val::Double(5.0), DataType::Bigint).as_deref(), Some("I64(5)"));
        assert_eq!(c(Val::Double(5.5), DataType::Bigint), None);
        assert_eq!(c(Val::Text("1e3"), DataType::Double).as_deref(), Some("F64(1000.0)"));
        assert_eq!(c(Val::Bool(true), DataType::Text).as_deref(), Some("Text(\"True\")"));
        assert_eq!(c(Val::Text("Yes"), DataType::Bool).as_deref(), Some("Bool(true)"));
        assert_eq!(c(Val::Text("maybe"), DataType::Bool), None);
        assert_eq!(c(Val::Bigint(5), DataType::Bool).as_deref(), Some("Bool(true)"));
        assert_eq!(c(Val::Text("08:00"), DataType::Timestamp), None);
        assert_eq!(c(Val::Text("1700000000"), DataType::Timestamp).as_deref(), Some("Ts(1700000000000000)"));
        assert_eq!(c(Val::Text("2014-11-08"), DataType::Timestamp).as_deref(), Some("Ts(1415404800000000)"));
        // 2014-11-08T23:30-05:00 is 2014-11-09 in UTC
        let d = typed::date_to_days(NaiveDate::from_ymd_opt(2014, 11, 9).unwrap());
        assert_eq!(c(Val::Text("2014-11-08T23:30:00-05:00"), DataType::Date), Some(format!("Date({d})")));
        assert_eq!(c(Val::Text("08:30"), DataType::Time).as_deref(), Some("Time(30600000000)"));
        assert_eq!(c(Val::Text("1.5"), DataType::Decimal).as_deref(), Some("Dec(1500000000)"));
    }

    /// Root hints of an append resource `things` without a key.
    fn things_hints() -> RootHints {
        RootHints {
            resource: "things".into(),
            table: "things".into(),
            primary_key: vec![],
            disposition: WriteDisposition::Append,
            merge: MergeHints::default(),
        }
    }

    /// With `max_batch_age`, buffered rows are returned once the oldest has waited that long, whatever
    /// the batch size; without, only full batches are.
    #[test]
    fn rows_older_than_the_batch_age_are_returned() {
        let hints = things_hints();
        for (age, expected) in [(None, 0usize), (Some(std::time::Duration::ZERO), 2)] {
            let mut schema = Schema::new("t");
            let mut n = Normalizer::new(NormalizeConfig { max_batch_age: age, ..NormalizeConfig::default() });
            n.ensure_root(&mut schema, &hints);
            n.push(&mut schema, &hints, serde_json::json!({"id": 1}), "1.1").expect("push");
            n.push(&mut schema, &hints, serde_json::json!({"id": 2}), "1.1").expect("push");
            let ready: usize = n.take_ready(&schema).expect("take").iter().map(|(_, b)| b.num_rows()).sum();
            assert_eq!(ready, expected, "max_batch_age {age:?}");
            assert_eq!(n.buffered_rows(), 2 - expected);
        }
    }

    /// Found by the `normalize` fuzz target: a list nested two levels under `""` and a list under
    /// an object at `""."“` both normalize to `things___empty___empty`, with different parents.
    #[test]
    fn child_tables_colliding_under_different_parents_are_refused() {
        let hints = things_hints();
        let mut schema = Schema::new("t");
        let mut n = Normalizer::new(NormalizeConfig { batch_rows: 10, ..NormalizeConfig::default() });
        n.ensure_root(&mut schema, &hints);
        let nested_lists = serde_json::json!({"": [{"": [1, 2]}]});
        n.push(&mut schema, &hints, nested_lists, "1.1").expect("first shape is fine");
        let object_then_list = serde_json::json!({"": {"": [3]}});
        let err = n.push(&mut schema, &hints, object_then_list, "1.1").expect_err("collision must be refused");
        assert!(
            matches!(&err, NormalizeError::ChildTableCollision { table, .. } if table == "things___empty___empty"),
            "{err}"
        );
        // The same shape again is refused again (the colliding path is not cached).
        let err = n.push(&mut schema, &hints, serde_json::json!({"": {"": [4]}}), "1.1").expect_err("still refused");
        assert!(matches!(err, NormalizeError::ChildTableCollision { .. }));
    }

    /// The same collision across two runs: the first run stores `things___empty___empty` under
    /// `things___empty`; a later run whose records put it directly under `things` is refused.
    #[test]
    fn child_table_colliding_with_the_stored_schema_is_refused() {
        let hints = things_hints();
        let mut schema = Schema::new("t");
        let mut first = Normalizer::new(NormalizeConfig { batch_rows: 10, ..NormalizeConfig::default() });
        first.ensure_root(&mut schema, &hints);
        first.push(&mut schema, &hints, serde_json::json!({"": [{"": [1, 2]}]}), "1.1").expect("first run");
        assert_eq!(schema.tables["things___empty___empty"].parent.as_deref(), Some("things___empty"));
        // A new run (new normalizer) over the stored schema.
        let mut second = Normalizer::new(NormalizeConfig { batch_rows: 10, ..NormalizeConfig::default() });
        second.ensure_root(&mut schema, &hints);
        let err = second.push(&mut schema, &hints, serde_json::json!({"": {"": [3]}}), "1.2").expect_err("refused");
        assert!(
            matches!(&err, NormalizeError::ChildTableCollision { table, first_parent, second_parent, .. }
                if table == "things___empty___empty" && first_parent == "things___empty" && second_parent == "things"),
            "{err}"
        );
        // A run with the stored shape is accepted.
        let mut third = Normalizer::new(NormalizeConfig { batch_rows: 10, ..NormalizeConfig::default() });
        third.ensure_root(&mut schema, &hints);
        third.push(&mut schema, &hints, serde_json::json!({"": [{"": [4]}]}), "1.3").expect("same parent");
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::merge::MergeHints;
    use arrow::array::Array;
    use serde_json::json;

    fn hints(resource: &str, strategy: MergeStrategy) -> RootHints {
        RootHints {
            resource: resource.into(),
            table: resource.into(),
            primary_key: vec!["id".into()],
            disposition: WriteDisposition::Merge,
            merge: MergeHints::strategy(strategy),
        }
    }

    /// Table → column → values as text.
    type Values = HashMap<String, HashMap<String, Vec<Option<String>>>>;

    /// The schema and the values of everything normalized.
    fn normalize(h: &RootHints, records: Vec<Value>) -> (Schema, Values) {
        let mut schema = Schema::new("t");
        let mut n = Normalizer::new(NormalizeConfig::default());
        n.ensure_root(&mut schema, h);
        for r in records {
            n.push(&mut schema, h, r, "1.1").expect("push");
        }
        let mut out: Values = HashMap::new();
        for (table, batch) in n.finish(&schema).expect("finish") {
            let cols = out.entry(table).or_default();
            for (i, f) in batch.schema().fields().iter().enumerate() {
                let a = batch.column(i);
                let vals = (0..a.len())
                    .map(|r| if a.is_null(r) { None } else { arrow::util::display::array_value_to_string(a, r).ok() })
                    .collect::<Vec<_>>();
                cols.entry(f.name().clone()).or_default().extend(vals);
            }
        }
        (schema, out)
    }

    fn texts(v: &[Option<String>]) -> Vec<&str> {
        v.iter().map(|s| s.as_deref().unwrap_or("NULL")).collect()
    }

    /// Ids dlt 1.31 gave the same records (see `merge::tests`): the scd2 root id is the row hash, child
    /// ids derive from it, child rows have no `_dlt_root_id`; the validity columns come first.
    #[test]
    fn scd2_roots_get_dlts_row_hash() {
        let (schema, t) = normalize(&hints("emp", MergeStrategy::Scd2), vec![json!({"id": 1, "dep": "A", "cc": [{"n": 1}, {"n": 2}]})]);
        assert_eq!(texts(&t["emp"]["_dlt_id"]), ["GsAMdPvro64eCg"]);
        assert_eq!(texts(&t["emp__cc"]["_dlt_id"]), ["Vtkuo2lOg7bLOQ", "9El8JTJnf3dJSA"]);
        assert!(!t["emp__cc"].contains_key(C_DLT_ROOT_ID), "scd2 children carry no root key");
        let emp = &schema.tables["emp"];
        assert_eq!(emp.merge_strategy, Some(MergeStrategy::Scd2));
        let cols: Vec<&str> = emp.columns.keys().map(String::as_str).collect();
        assert_eq!(&cols[..3], ["_dlt_valid_from", "_dlt_valid_to", "id"], "as dlt orders them");
        assert!(emp.columns["_dlt_valid_from"].valid_from && emp.columns["_dlt_valid_to"].valid_to);
        let id = &emp.columns[C_DLT_ID];
        assert!(id.row_version && !id.unique, "the row hash repeats after delete-reinsert");
        assert_eq!(texts(&t["emp"]["_dlt_valid_to"]), ["NULL"], "validity is set at load time");
    }

    #[test]
    fn upsert_roots_get_dlts_key_hash() {
        let (_, t) = normalize(&hints("up", MergeStrategy::Upsert), vec![json!({"id": 2, "v": "b2", "c": [4, 5]})]);
        assert_eq!(texts(&t["up"]["_dlt_id"]), ["M6/KlLzJ2FeV/w"]);
        assert_eq!(texts(&t["up__c"]["_dlt_id"]), ["x/LviWHp4ISp+w", "YqcZp+vc3IbOpg"]);
        assert_eq!(texts(&t["up__c"][C_DLT_ROOT_ID]), ["M6/KlLzJ2FeV/w", "M6/KlLzJ2FeV/w"]);
    }

    #[test]
    fn column_hints_are_recorded_and_cleared() {
        let mut h = hints("di", MergeStrategy::DeleteInsert);
        h.merge.hard_delete = Some("Deleted".into());
        h.merge.dedup_sort = Some(("lsn".into(), SortOrder::Desc));
        let mut schema = Schema::new("t");
        let mut n = Normalizer::new(NormalizeConfig::default());
        n.ensure_root(&mut schema, &h);
        n.push(&mut schema, &h, json!({"id": 1, "lsn": 3, "Deleted": false}), "1.1").expect("push");
        let t = &schema.tables["di"];
        assert!(t.columns["deleted"].hard_delete && t.columns["lsn"].dedup_sort == Some(SortOrder::Desc));
        assert_eq!(t.merge_strategy, None, "delete-insert is dlt's default: not recorded");
        let json = schema.to_dlt_json();
        assert_eq!(json["tables"]["di"]["columns"]["deleted"]["hard_delete"], json!(true));
        assert_eq!(json["tables"]["di"]["columns"]["lsn"]["dedup_sort"], json!("desc"));
        assert_eq!(Schema::from_dlt_json(&json).expect("round trip"), schema);
        // The next run without the hints clears them.
        let plain = hints("di", MergeStrategy::DeleteInsert);
        let mut n = Normalizer::new(NormalizeConfig::default());
        n.ensure_root(&mut schema, &plain);
        let t = &schema.tables["di"];
        assert!(!t.columns["deleted"].hard_delete && t.columns["lsn"].dedup_sort.is_none());
    }
}
