//! Pipeline state: dlt's state document, its hash, and its encoding in `_dlt_pipeline_state`.
//!
//! The document holds the incremental cursors and resource state under
//! `sources.<source>.resources.<resource>`. It is mirrored in the working directory and shipped to the
//! destination in the same transaction as the data that moved it; a run with an empty working directory
//! restores it from the destination.

use std::io::{Read, Write};

use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha3::Digest as _;

/// dlt's state engine version.
pub const STATE_ENGINE_VERSION: i64 = 4;

/// Errors decoding a stored state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The stored `state` column is not base64/zlib/JSON as dlt writes it.
    #[error("the stored pipeline state cannot be decoded ({0}); drop the pipeline's state with `pipeline <name> drop` or fix the `_dlt_pipeline_state` row")]
    Decode(String),
}

/// A row of `_dlt_pipeline_state`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateRow {
    /// `_state_version`.
    pub version: i64,
    /// 4.
    pub engine_version: i64,
    /// Pipeline name.
    pub pipeline_name: String,
    /// base64(zlib(compact typed JSON)).
    pub state: String,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `_version_hash`.
    pub version_hash: String,
    /// The row's `_dlt_id` (random, 14 characters).
    pub dlt_id: String,
}

/// The pipeline state document.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineState {
    doc: Map<String, Value>,
}

impl PipelineState {
    /// A fresh state for a pipeline.
    pub fn new(pipeline_name: &str, dataset_name: &str, schema_name: &str, destination_type: &str) -> Self {
        let mut doc = Map::new();
        doc.insert("_state_version".into(), json!(0));
        doc.insert("_state_engine_version".into(), json!(STATE_ENGINE_VERSION));
        doc.insert("pipeline_name".into(), json!(pipeline_name));
        doc.insert("dataset_name".into(), json!(dataset_name));
        doc.insert("default_schema_name".into(), json!(schema_name));
        doc.insert("schema_names".into(), json!([schema_name]));
        doc.insert("destination_type".into(), json!(destination_type));
        doc.insert("destination_name".into(), Value::Null);
        // No hash yet: the first package of a pipeline always writes a state row, as dlt does.
        doc.insert("_version_hash".into(), json!(""));
        PipelineState { doc }
    }

    /// Make sure `sources.<source>` exists (dlt creates it whenever a replace resource runs).
    pub fn ensure_source(&mut self, source: &str) {
        let sources = self.doc.entry("sources".to_string()).or_insert_with(|| json!({}));
        if let Value::Object(m) = sources {
            m.entry(source.to_string()).or_insert_with(|| json!({}));
        }
    }

    /// Wrap an existing document (from the local mirror or the destination).
    pub fn from_doc(doc: Map<String, Value>) -> Self {
        PipelineState { doc }
    }

    /// The document.
    pub fn doc(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// `_state_version`.
    pub fn version(&self) -> i64 {
        self.doc.get("_state_version").and_then(Value::as_i64).unwrap_or(0)
    }

    /// `_version_hash`.
    pub fn version_hash(&self) -> &str {
        self.doc.get("_version_hash").and_then(Value::as_str).unwrap_or("")
    }

    /// The state of one resource of a source (`sources.<source>.resources.<resource>`), if any.
    pub fn resource(&self, source: &str, resource: &str) -> Option<&Map<String, Value>> {
        self.doc.get("sources")?.get(source)?.get("resources")?.get(resource)?.as_object()
    }

    /// Mutable state of one resource, created on demand.
    pub fn resource_mut(&mut self, source: &str, resource: &str) -> &mut Map<String, Value> {
        let mut node = &mut self.doc;
        for key in ["sources", source, "resources", resource] {
            let entry = node.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = match entry {
                Value::Object(m) => m,
                _ => unreachable!("just made an object"),
            };
        }
        node
    }

    /// Remove a resource's state (for `pipeline drop`).
    pub fn drop_resource(&mut self, source: &str, resource: &str) -> bool {
        self.doc
            .get_mut("sources")
            .and_then(|s| s.get_mut(source))
            .and_then(|s| s.get_mut("resources"))
            .and_then(Value::as_object_mut)
            .map(|m| m.remove(resource).is_some())
            .unwrap_or(false)
    }

    /// Set a top-level field (e.g. `destination_type`).
    pub fn set(&mut self, key: &str, value: Value) {
        self.doc.insert(key.to_string(), value);
    }

    /// dlt's content hash: base64 of SHA3-256 over the sorted-key JSON, without the version fields and
    /// `_local`.
    pub fn compute_hash(&self) -> String {
        let mut content = self.doc.clone();
        for k in ["_local", "_state_version", "_state_engine_version", "_version_hash"] {
            content.remove(k);
        }
        let text = sorted(&Value::Object(content)).to_string();
        base64::engine::general_purpose::STANDARD.encode(sha3::Sha3_256::digest(text.as_bytes()))
    }

    /// Recompute the hash and, if the content changed, bump `_state_version`. Returns whether it changed.
    pub fn bump(&mut self) -> bool {
        let hash = self.compute_hash();
        if hash == self.version_hash() {
            return false;
        }
        let v = self.version() + 1;
        self.doc.insert("_state_version".into(), json!(v));
        self.doc.insert("_version_hash".into(), json!(hash));
        true
    }

    /// base64(zlib level 9(compact JSON without `_local`)), as in `_dlt_pipeline_state.state`.
    pub fn encode(&self) -> String {
        let mut doc = self.doc.clone();
        doc.remove("_local");
        let text = Value::Object(doc).to_string();
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(text.as_bytes());
        let bytes = enc.finish().unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Decode a `_dlt_pipeline_state.state` value.
    pub fn decode(encoded: &str) -> Result<Self, StateError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| StateError::Decode(e.to_string()))?;
        let mut text = String::new();
        flate2::read::ZlibDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| StateError::Decode(e.to_string()))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(doc)) => Ok(PipelineState { doc }),
            Ok(_) => Err(StateError::Decode("not a JSON object".into())),
            Err(e) => Err(StateError::Decode(e.to_string())),
        }
    }

    /// The row to append to `_dlt_pipeline_state`.
    pub fn to_row(&self, created_at: chrono::DateTime<chrono::Utc>) -> StateRow {
        StateRow {
            version: self.version(),
            engine_version: STATE_ENGINE_VERSION,
            pipeline_name: self.doc.get("pipeline_name").and_then(Value::as_str).unwrap_or_default().to_string(),
            state: self.encode(),
            created_at,
            version_hash: self.version_hash().to_string(),
            dlt_id: crate::naming::random_dlt_id(),
        }
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_hash_is_order_independent() {
        let mut s = PipelineState::new("p", "d", "personio", "dlt.destinations.duckdb");
        assert!(s.bump(), "a new state always gets a first version");
        assert!(!s.bump());
        s.resource_mut("personio", "employees").insert("x".into(), json!(1));
        assert!(s.bump());
        assert_eq!(s.version(), 2);
        let back = PipelineState::decode(&s.encode()).unwrap();
        assert_eq!(back.doc(), s.doc());
        assert_eq!(back.compute_hash(), s.compute_hash());
        assert!(!s.clone().bump());
    }

    #[test]
    fn local_section_is_not_hashed_or_encoded() {
        let mut s = PipelineState::new("p", "d", "personio", "x");
        let h = s.compute_hash();
        s.set("_local", json!({"first_run": false}));
        assert_eq!(h, s.compute_hash());
        assert!(PipelineState::decode(&s.encode()).unwrap().doc().get("_local").is_none());
    }
}
