//! dlt's filesystem layout: where every file of a dataset goes and what the bookkeeping files hold.
//!
//! ```text
//! <bucket_url>/<dataset>/init                                         {"initial_version":2,"current_version":2}
//! <bucket_url>/<dataset>/<table>/<load_id>.<file_id>.parquet          data (or .jsonl.gz)
//! <bucket_url>/<dataset>/<table>/_delta_log/…                         Delta tables (merge, replace)
//! <bucket_url>/<dataset>/_dlt_loads/<schema>__<load_id>.jsonl
//! <bucket_url>/<dataset>/_dlt_pipeline_state/<pipeline>__<load_id>__<hex(schema hash)>.jsonl
//! <bucket_url>/<dataset>/_dlt_version/<schema>__<load_id>__<hex(schema hash)>.jsonl
//! ```
//!
//! Each bookkeeping file holds one JSON object, the row dlt would insert into the table of that name;
//! dlt 1.31's filesystem destination reads them back the same way (the newest by the load id in the file
//! name). `<hex(…)>` is dlt's path-safe form of a base64 hash: the decoded bytes in lowercase hex.

use base64::Engine as _;
use pipeline_engine::plan::{LoadsRow, VersionRow};
use pipeline_engine::schema::WriteDisposition;
use pipeline_engine::state::StateRow;
use serde_json::{json, Value};

/// dlt's separator between the parts of a bookkeeping file name.
pub const SEP: &str = "__";
/// The dataset marker file dlt writes at `<dataset>/init`.
pub const INIT_FILE: &str = "init";
/// Its content (dlt's storage version 2: compressed files carry a `.gz` extension).
pub const INIT_CONTENT: &str = r#"{"initial_version":2,"current_version":2}"#;
/// `_dlt_loads`.
pub const LOADS: &str = "_dlt_loads";
/// `_dlt_pipeline_state`.
pub const STATE: &str = "_dlt_pipeline_state";
/// `_dlt_version`.
pub const VERSION: &str = "_dlt_version";
/// The folder of a Delta table's log.
pub const DELTA_LOG: &str = "_delta_log";

/// dlt's `_to_path_safe_string`: a base64 hash as the hex of its bytes (the text itself if it is not
/// base64, which dlt never writes).
pub fn path_safe_hash(hash: &str) -> String {
    match base64::engine::general_purpose::STANDARD.decode(hash) {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => hash.chars().filter(|c| c.is_ascii_alphanumeric()).collect(),
    }
}

/// `<schema>__<load_id>.jsonl` in `_dlt_loads`.
pub fn loads_file(schema_name: &str, load_id: &str) -> String {
    format!("{schema_name}{SEP}{load_id}.jsonl")
}

/// `<pipeline>__<load_id>__<hex(schema hash)>.jsonl` in `_dlt_pipeline_state` (dlt names the state file by
/// the schema's hash, not the state's).
pub fn state_file(pipeline_name: &str, load_id: &str, schema_hash: &str) -> String {
    format!("{pipeline_name}{SEP}{load_id}{SEP}{}.jsonl", path_safe_hash(schema_hash))
}

/// `<schema>__<load_id>__<hex(schema hash)>.jsonl` in `_dlt_version`.
pub fn version_file(schema_name: &str, load_id: &str, schema_hash: &str) -> String {
    format!("{schema_name}{SEP}{load_id}{SEP}{}.jsonl", path_safe_hash(schema_hash))
}

/// The parts of a bookkeeping file name: `(name, load_id, hash)` for three-part names (state, version),
/// `(name, load_id, "")` for `_dlt_loads`. Names of other files give `None`.
pub fn parse_bookkeeping(file_name: &str) -> Option<(String, String, String)> {
    let stem = file_name.strip_suffix(".jsonl")?;
    // dlt splits from the right (`rsplit(SEP, maxsplit=2)`): names may contain `__`, load ids and hashes do not.
    let mut parts: Vec<&str> = stem.rsplitn(3, SEP).collect();
    parts.reverse();
    match parts.as_slice() {
        [name, load_id, hash] if is_load_id(load_id) => Some((name.to_string(), load_id.to_string(), hash.to_string())),
        [name, load_id, last] if is_load_id(last) => Some((format!("{name}{SEP}{load_id}"), last.to_string(), String::new())),
        [name, load_id] if is_load_id(load_id) => Some((name.to_string(), load_id.to_string(), String::new())),
        _ => None,
    }
}

fn is_load_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// Load ids in time order (`<seconds>.<fraction>`, compared as numbers: `"9.5" < "10.1"`).
pub fn load_id_order(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| -> (u64, String) {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        (int.parse().unwrap_or(0), frac.trim_end_matches('0').to_string())
    };
    let (ai, af) = split(a);
    let (bi, bf) = split(b);
    ai.cmp(&bi).then_with(|| af.cmp(&bf))
}

/// The name of a data file: `<load_id>.<file_id>.<ext>`, with a file id derived from the table and the
/// file's index in the load, so a retried package writes (and overwrites) exactly the same files.
pub fn data_file(load_id: &str, table: &str, index: usize, ext: &str) -> String {
    format!("{load_id}.{}.{ext}", file_id(table, index))
}

/// 10 hex digits (dlt's file id width) of FNV-1a over `<table>/<index>`: stable across builds and
/// platforms, unlike the standard library's hasher.
pub fn file_id(table: &str, index: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in table.bytes().chain([b'/']).chain(index.to_string().bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// The load id a data file was written by (`<load_id>.<file_id>.<ext>`), if its name has that form.
pub fn data_file_load_id(file_name: &str) -> Option<&str> {
    // The load id has exactly one dot: `<seconds>.<fraction>`.
    let mut dots = file_name.match_indices('.').map(|(i, _)| i);
    let _first = dots.next()?;
    let second = dots.next()?;
    let id = &file_name[..second];
    is_load_id(id).then_some(id)
}

/// `_dlt_loads` file content.
pub fn loads_json(row: &LoadsRow) -> String {
    json!({
        "load_id": row.load_id,
        "schema_name": row.schema_name,
        "status": row.status,
        "inserted_at": iso(&row.inserted_at),
        "schema_version_hash": row.schema_version_hash,
    })
    .to_string()
}

/// `_dlt_pipeline_state` file content: the state row with its `_dlt_load_id`, as dlt writes it.
pub fn state_json(row: &StateRow, load_id: &str) -> String {
    json!({
        "version": row.version,
        "engine_version": row.engine_version,
        "pipeline_name": row.pipeline_name,
        "state": row.state,
        "created_at": iso(&row.created_at),
        "version_hash": row.version_hash,
        "_dlt_load_id": load_id,
    })
    .to_string()
}

/// `_dlt_version` file content (`schema` is the schema's JSON as a string, as dlt stores it).
pub fn version_json(row: &VersionRow) -> String {
    json!({
        "version_hash": row.version_hash,
        "schema_name": row.schema_name,
        "version": row.version,
        "engine_version": row.engine_version,
        "inserted_at": iso(&row.inserted_at),
        "schema": row.schema_json,
    })
    .to_string()
}

/// The stored schema JSON with dlt's `table_format: "delta"` hint on the root tables that are Delta
/// tables here (children inherit it in dlt), so dlt's own readers (`pipeline.dataset()`) read their
/// current snapshot rather than every Parquet file. The schema's `version_hash` is left as the engine
/// computed it (dlt treats hints it finds as part of the stored schema). Text that is not a JSON object
/// is returned as it is.
pub fn with_table_formats(schema_json: &str, is_delta: impl Fn(WriteDisposition) -> bool) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(schema_json) else { return schema_json.to_string() };
    let Some(tables) = v.get_mut("tables").and_then(Value::as_object_mut) else { return schema_json.to_string() };
    for (name, t) in tables.iter_mut() {
        if name.starts_with("_dlt_") || t.get("parent").is_some() {
            continue;
        }
        let disposition = t.get("write_disposition").and_then(Value::as_str).and_then(|d| d.parse().ok()).unwrap_or_default();
        if is_delta(disposition) {
            if let Some(obj) = t.as_object_mut() {
                obj.insert("table_format".into(), json!("delta"));
            }
        }
    }
    v.to_string()
}

/// A state row read back from a `_dlt_pipeline_state` file (dlt's own files included: before 0.5 they
/// named the load id `dlt_load_id`). Returns the row and its load id.
pub fn parse_state(text: &str) -> Option<(StateRow, String)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let load_id = s("_dlt_load_id").or_else(|| s("dlt_load_id"))?;
    let row = StateRow {
        version: v.get("version")?.as_i64()?,
        engine_version: v.get("engine_version").and_then(Value::as_i64).unwrap_or(pipeline_engine::state::STATE_ENGINE_VERSION),
        pipeline_name: s("pipeline_name")?,
        state: s("state")?,
        created_at: s("created_at").and_then(|t| parse_time(&t)).unwrap_or_else(chrono::Utc::now),
        version_hash: s("version_hash").unwrap_or_default(),
        dlt_id: String::new(),
    };
    Some((row, load_id))
}

/// ISO 8601 with offset, as dlt's pendulum writes it (`2024-05-01T10:00:00.123456+00:00`).
pub fn iso(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// Parse an ISO 8601 time with offset.
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|d| d.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_names_are_dlts() {
        // A dlt 1.31 run wrote `pp__1796077180.314954__b8f0…5e.jsonl` for the schema hash `uPBH…2F4=`.
        let hash = "uPBHIZc1GQ88ULjYdesZh5Y9crdAhgZ9lWPSAnRa2F4=";
        assert_eq!(path_safe_hash(hash), "b8f047219735190f3c50b8d875eb1987963d72b74086067d9563d202745ad85e");
        let name = state_file("pp", "1796077180.314954", hash);
        assert_eq!(name, "pp__1796077180.314954__b8f047219735190f3c50b8d875eb1987963d72b74086067d9563d202745ad85e.jsonl");
        let (p, id, h) = parse_bookkeeping(&name).expect("parses");
        assert_eq!((p.as_str(), id.as_str(), h.len()), ("pp", "1796077180.314954", 64));
        assert_eq!(loads_file("src", "1796077180.6146731"), "src__1796077180.6146731.jsonl");
        let (s, id, h) = parse_bookkeeping("src__1796077180.6146731.jsonl").expect("parses");
        assert_eq!((s.as_str(), id.as_str(), h.as_str()), ("src", "1796077180.6146731", ""));
        // Names with `__` inside.
        let (p, id, _) = parse_bookkeeping(&state_file("my__pipe", "1.5", hash)).expect("parses");
        assert_eq!((p.as_str(), id.as_str()), ("my__pipe", "1.5"));
        assert_eq!(parse_bookkeeping("init"), None);
    }

    #[test]
    fn delta_tables_carry_dlts_table_format_hint() {
        let schema = r#"{"name":"s","version_hash":"h","tables":{"_dlt_loads":{"write_disposition":"append"},"people":{"write_disposition":"merge"},"people__tags":{"parent":"people"},"types":{"write_disposition":"replace"},"events":{"write_disposition":"append"}}}"#;
        let out: Value = serde_json::from_str(&with_table_formats(schema, |d| d != WriteDisposition::Append)).expect("json");
        let format = |t: &str| out["tables"][t].get("table_format").cloned();
        assert_eq!((format("people"), format("types")), (Some(json!("delta")), Some(json!("delta"))));
        assert_eq!((format("people__tags"), format("events"), format("_dlt_loads")), (None, None, None));
        assert_eq!(out["version_hash"], json!("h"), "the engine's hash is kept");
        assert_eq!(with_table_formats("not json", |_| true), "not json");
    }

    #[test]
    fn load_ids_order_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(load_id_order("9.5", "10.1"), Less);
        assert_eq!(load_id_order("1796077180.314954", "1796077180.6146731"), Less);
        assert_eq!(load_id_order("1.50", "1.5"), Equal);
    }

    #[test]
    fn data_files_are_deterministic_and_carry_their_load_id() {
        let a = data_file("1796077180.314954", "people", 0, "parquet");
        assert_eq!(a, data_file("1796077180.314954", "people", 0, "parquet"));
        assert_ne!(a, data_file("1796077180.314954", "people", 1, "parquet"));
        assert_ne!(a, data_file("1796077180.314954", "people__tags", 0, "parquet"));
        assert_eq!(data_file_load_id(&a), Some("1796077180.314954"));
        assert_eq!(data_file_load_id("part-0001-abc.parquet"), None);
        assert_eq!(file_id("t", 0).len(), 10);
    }

    #[test]
    fn state_round_trips_and_reads_dlts_own_files() {
        let row = StateRow {
            version: 3,
            engine_version: 4,
            pipeline_name: "pp".into(),
            state: "eNpdj92K".into(),
            created_at: parse_time("2026-11-30T22:19:40.347306+00:00").expect("time"),
            version_hash: "8RSq=".into(),
            dlt_id: String::new(),
        };
        let (back, id) = parse_state(&state_json(&row, "1.2")).expect("parses");
        assert_eq!((back, id.as_str()), (row, "1.2"));
        let dlt = r#"{"version":1,"engine_version":4,"pipeline_name":"pp","state":"eNpd","created_at":"2026-11-30T22:19:40.347306+00:00","version_hash":"8RSq","_dlt_load_id":"1796077180.314954"}"#;
        let (row, id) = parse_state(dlt).expect("dlt's file");
        assert_eq!((row.version, id.as_str()), (1, "1796077180.314954"));
    }
}
