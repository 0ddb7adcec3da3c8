//! dlt's merge strategies and merge hints: `delete-insert`, `upsert` and `scd2`, the `hard_delete` and
//! `dedup_sort` column hints, and the row ids they need.
//!
//! A resource's [`MergeHints`] (declared by its source, overridden per resource in configuration) reach
//! the normalizer through [`crate::normalize::RootHints`], which records them in the schema the way dlt
//! does (`x-merge-strategy` on the root table, `hard_delete`, `dedup_sort`, `x-valid-from`,
//! `x-valid-to`, `x-row-version` on columns) and gives root rows the `_dlt_id` dlt gives them:
//!
//! * `delete-insert`: random;
//! * `upsert`: [`key_hash`] of the primary-key values, so child rows get stable ids too;
//! * `scd2`: [`row_hash`] of the whole record, the surrogate key that identifies a version. Child tables
//!   of an scd2 root get no `_dlt_root_id` (their `_dlt_id` derives from the parent's hash).
//!
//! What each strategy does at load time is the [`crate::plan::LoadJob`] the plan gives it; the
//! semantics are spelled out in `docs/history.md` and checked against dlt by the parity check.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::extract::ResourceSpec;
use crate::naming;
use crate::schema::{MergeStrategy, SortOrder, WriteDisposition};

/// dlt's default scd2 validity column names.
pub const DEFAULT_VALIDITY_COLUMNS: (&str, &str) = ("_dlt_valid_from", "_dlt_valid_to");

/// How a merge resource is merged: dlt's merge strategy with its options, and the column hints that
/// steer a merge. The default is dlt's: `delete-insert`, no hints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeHints {
    /// The merge strategy.
    pub strategy: MergeStrategy,
    /// The field with dlt's `hard_delete` hint (raw name, normalized like any field).
    pub hard_delete: Option<String>,
    /// The field with dlt's `dedup_sort` hint and its order.
    pub dedup_sort: Option<(String, SortOrder)>,
    /// scd2: the validity column names (`None`: `_dlt_valid_from`, `_dlt_valid_to`).
    pub validity_column_names: Option<(String, String)>,
    /// scd2: the `valid_to` value of an active version (`None`: NULL).
    pub active_record_timestamp: Option<DateTime<Utc>>,
    /// scd2: the boundary of every load (`None`: the load package's creation time, dlt's default).
    pub boundary_timestamp: Option<DateTime<Utc>>,
}

impl MergeHints {
    /// Hints for a strategy, no column hints.
    pub fn strategy(strategy: MergeStrategy) -> Self {
        MergeHints { strategy, ..MergeHints::default() }
    }

    /// Whether these are dlt's defaults (nothing to record in the schema).
    pub fn is_default(&self) -> bool {
        *self == MergeHints::default()
    }

    /// The validity column names (raw).
    pub fn validity_columns(&self) -> (String, String) {
        match &self.validity_column_names {
            Some((from, to)) => (from.clone(), to.clone()),
            None => (DEFAULT_VALIDITY_COLUMNS.0.to_string(), DEFAULT_VALIDITY_COLUMNS.1.to_string()),
        }
    }

    /// Check the hints against the resource they are for. The message says what to change.
    pub fn check(&self, spec: &ResourceSpec) -> Result<(), String> {
        let name = &spec.name;
        if self.is_default() {
            return Ok(());
        }
        if spec.write_disposition != WriteDisposition::Merge {
            return Err(format!(
                "resource `{name}` has write disposition `{}`: merge_strategy, hard_delete and dedup_sort apply only to `merge` resources; remove them from its settings",
                spec.write_disposition
            ));
        }
        if self.strategy == MergeStrategy::Upsert && spec.primary_key.is_empty() {
            return Err(format!("resource `{name}` has no primary key, which the `upsert` merge strategy needs; use `delete-insert` or `scd2`"));
        }
        if self.strategy == MergeStrategy::Scd2 && self.hard_delete.is_some() {
            return Err(format!(
                "resource `{name}`: hard_delete has no effect with the `scd2` merge strategy (dlt ignores it there: a record missing from the extract is retired); remove hard_delete or use `delete-insert`/`upsert`"
            ));
        }
        if self.dedup_sort.is_some() && spec.primary_key.is_empty() {
            return Err(format!("resource `{name}` has no primary key, so dedup_sort has nothing to deduplicate; remove dedup_sort"));
        }
        if self.dedup_sort.is_some() && self.strategy == MergeStrategy::Scd2 {
            return Err(format!(
                "resource `{name}`: dedup_sort has no effect with the `scd2` merge strategy (versions are identified by their content); remove dedup_sort"
            ));
        }
        if self.strategy != MergeStrategy::Scd2
            && (self.validity_column_names.is_some() || self.active_record_timestamp.is_some() || self.boundary_timestamp.is_some())
        {
            return Err(format!(
                "resource `{name}`: validity_column_names, active_record_timestamp and boundary_timestamp apply only to the `scd2` merge strategy; remove them or set merge_strategy = \"scd2\""
            ));
        }
        if let Some((from, to)) = &self.validity_column_names {
            if from.trim().is_empty() || to.trim().is_empty() || naming::normalize_key(from, None) == naming::normalize_key(to, None) {
                return Err(format!("resource `{name}`: validity_column_names must be two different, non-empty column names"));
            }
        }
        Ok(())
    }
}

/// How a root row gets its `_dlt_id` (dlt's `TRowIdType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowIdType {
    /// Random (delete-insert, append, replace).
    Random,
    /// [`key_hash`] of the primary key (upsert).
    KeyHash,
    /// [`row_hash`] of the record (scd2).
    RowHash,
}

impl RowIdType {
    /// The row id type of a root with this disposition and strategy.
    pub fn of(disposition: WriteDisposition, strategy: MergeStrategy) -> Self {
        match (disposition, strategy) {
            (WriteDisposition::Merge, MergeStrategy::Upsert) => RowIdType::KeyHash,
            (WriteDisposition::Merge, MergeStrategy::Scd2) => RowIdType::RowHash,
            _ => RowIdType::Random,
        }
    }
}

/// Whether child rows of a root carry `_dlt_root_id` (dlt propagates the root key for `delete-insert`
/// and `upsert`, which delete child rows by it; not for `scd2`, whose child rows are insert-only).
pub fn propagates_root_key(disposition: WriteDisposition, strategy: MergeStrategy) -> bool {
    disposition == WriteDisposition::Merge && strategy != MergeStrategy::Scd2
}

/// dlt's scd2 row hash (`get_row_hash(dict_row)`): the record as JSON with sorted keys, without its
/// top-level `_dlt*` fields, nested objects and lists included (so a change in a child list is a new
/// version), hashed with shake-128 into 10 bytes, base64 without padding. A record that is not an
/// object is hashed as `{"value": record}`, as dlt wraps it.
pub fn row_hash(record: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    match record {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| !k.starts_with("_dlt")).collect();
            keys.sort();
            write_sorted_object(&mut out, keys.into_iter().map(|k| (k.as_str(), &m[k])));
        }
        other => write_sorted_object(&mut out, std::iter::once(("value", other))),
    }
    naming::digest128_bytes(&out, naming::DLT_ID_LENGTH_BYTES)
}

/// dlt's upsert row id (`get_row_hash(row, subset=primary_key)`): the primary-key values (normalized
/// column name → value as received, before any type coercion) as JSON with sorted keys, hashed like
/// [`row_hash`].
pub fn key_hash(pairs: &[(&str, &Value)]) -> String {
    let mut sorted: Vec<(&str, &Value)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64);
    write_sorted_object(&mut out, sorted.into_iter());
    naming::digest128_bytes(&out, naming::DLT_ID_LENGTH_BYTES)
}

fn write_sorted_object<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push(b'{');
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_json(out, v);
    }
    out.push(b'}');
}

/// JSON exactly as dlt's `json.dumpb(…, sort_keys=True)` (orjson) renders it: no whitespace, keys
/// sorted at every level, non-ASCII as UTF-8, floats as orjson prints them.
fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.extend_from_slice(i.to_string().as_bytes()),
            (None, Some(u), _) => out.extend_from_slice(u.to_string().as_bytes()),
            (None, None, Some(f)) => out.extend_from_slice(orjson_float(f).as_bytes()),
            _ => out.extend_from_slice(n.to_string().as_bytes()),
        },
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            write_sorted_object(out, keys.into_iter().map(|k| (k.as_str(), &m[k])));
        }
    }
}

/// A JSON string as orjson escapes it: `"`, `\`, and control characters (`\b \t \n \f \r` short,
/// others `\u00xx`); everything else as UTF-8.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A float as orjson 3.x prints it: the shortest round-trip digits; plain notation for decimal
/// exponents from -5 to 15 (`0.00001`, `1000000000000000.0`), else `1e+16`, `1.5e-6`.
pub fn orjson_float(f: f64) -> String {
    if !f.is_finite() {
        // JSON input never holds these; orjson writes null.
        return "null".into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{f:e}"); // shortest round-trip digits, e.g. "-1.2345e17"
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
    if (-5..16).contains(&exp) {
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
        if exp > 0 {
            out.push('+');
        }
        out.push_str(&exp.to_string());
    }
    out
}

/// The scd2 boundary of a package: its configured `boundary_timestamp`, else the load package's
/// creation time, which is the time in its load id (`<unix seconds>.<microseconds>`), as dlt uses the
/// package's `created_at`. Derived from the package, so a package loaded again after a failure gets the
/// same boundary.
pub fn boundary_of(load_id: &str, configured: Option<DateTime<Utc>>) -> DateTime<Utc> {
    if let Some(b) = configured {
        return b;
    }
    let parsed = load_id.split_once('.').and_then(|(secs, frac)| {
        let secs: i64 = secs.parse().ok()?;
        let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        let micros: i64 = frac.parse().ok()?;
        DateTime::<Utc>::from_timestamp_micros(secs.checked_mul(1_000_000)?.checked_add(micros)?)
    });
    parsed.unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Values computed with dlt 1.31 (`get_row_hash`, orjson 3.13).
    #[test]
    fn hashes_match_dlt() {
        let record = json!({"id": 1, "name": "Anna", "department": {"id": 7, "name": "Sales"}, "_dlt_x": 1, "tags": ["a", "b"], "w": 0.5, "é": null});
        assert_eq!(row_hash(&record), "HKqaGwiF1l0IPQ");
        assert_eq!(row_hash(&json!({"id": 1, "dep": "A", "cc": [{"n": 1}, {"n": 2}]})), "GsAMdPvro64eCg");
        assert_eq!(key_hash(&[("id", &json!(1))]), "z5jIxXIbUnmbKw");
        assert_eq!(key_hash(&[("id", &json!("x")), ("employee_id", &json!(3))]), "hsRCvofI/nczSQ");
        assert_eq!(key_hash(&[("id", &json!(2))]), "M6/KlLzJ2FeV/w");
    }

    #[test]
    fn json_is_rendered_like_orjson() {
        let mut out = Vec::new();
        write_json(&mut out, &json!({"b": "\u{1}\u{1f}\"\\/\n\t\u{7f} é 😀 \u{2028}", "a": [{"z": 1, "y": null, "x": true}], "A": 18446744073709551615u64}));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"A\":18446744073709551615,\"a\":[{\"x\":true,\"y\":null,\"z\":1}],\"b\":\"\\u0001\\u001f\\\"\\\\/\\n\\t\u{7f} é 😀 \u{2028}\"}"
        );
        for (f, want) in [
            (1.0, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (1e-7, "1e-7"), (1.2345678901234568e20, "1.2345678901234568e+20"),
            (-0.0, "-0.0"), (2.5e-5, "0.000025"), (1e22, "1e+22"), (12345678.9, "12345678.9"), (1e15, "1000000000000000.0"),
            (1e-5, "0.00001"), (1e-6, "1e-6"), (1.5e-6, "1.5e-6"), (9999999999999998.0, "9999999999999998.0"),
            (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (0.000123456789, "0.000123456789"),
            (-2.5, "-2.5"), (2e-10, "2e-10"),
        ] {
            assert_eq!(orjson_float(f), want, "{f:e}");
        }
    }

    #[test]
    fn boundary_is_the_load_id_time() {
        let b = boundary_of("1796077296.846038", None);
        assert_eq!(b.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), "2026-11-30T22:21:36.846038Z");
        assert_eq!(boundary_of("1796077296.8", None).timestamp_subsec_micros(), 800_000);
        let fixed = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(boundary_of("1796077296.846038", Some(fixed)), fixed);
    }

    #[test]
    fn hints_are_checked_against_the_resource() {
        let merge = ResourceSpec::new("e", &["id"], WriteDisposition::Merge);
        let keyless = ResourceSpec::new("e", &[], WriteDisposition::Merge);
        let replace = ResourceSpec::new("r", &["id"], WriteDisposition::Replace);
        assert!(MergeHints::default().check(&replace).is_ok());
        assert!(MergeHints::strategy(MergeStrategy::Scd2).check(&merge).is_ok());
        assert!(MergeHints::strategy(MergeStrategy::Scd2).check(&keyless).is_ok());
        let e = MergeHints::strategy(MergeStrategy::Scd2).check(&replace).unwrap_err();
        assert!(e.contains("only to `merge` resources"), "{e}");
        let e = MergeHints::strategy(MergeStrategy::Upsert).check(&keyless).unwrap_err();
        assert!(e.contains("no primary key"), "{e}");
        let scd2_delete = MergeHints { hard_delete: Some("deleted".into()), ..MergeHints::strategy(MergeStrategy::Scd2) };
        assert!(scd2_delete.check(&merge).unwrap_err().contains("hard_delete"));
        let validity = MergeHints { validity_column_names: Some(("a".into(), "b".into())), ..MergeHints::default() };
        assert!(validity.check(&merge).unwrap_err().contains("only to the `scd2`"));
        let same = MergeHints { validity_column_names: Some(("From".into(), "from".into())), ..MergeHints::strategy(MergeStrategy::Scd2) };
        assert!(same.check(&merge).unwrap_err().contains("two different"));
    }
}
