//! A sandbox on a loopback port, a pipeline in a temp dir, and queries.

use std::collections::BTreeSet;

use personio_client::{ClientConfig, PersonioClient};
use personio_sandbox::{RunningSandbox, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use personio_source::{PersonioSource, SourceOptions};
use pipeline_destinations::duckdb::{DuckDbConfig, DuckDbDestination};
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunReport};

pub struct World {
    pub sandbox: RunningSandbox,
    /// Keeps the DuckDB file and working directory alive for the test.
    pub _dir: tempfile::TempDir,
    pub dataset: String,
    pub pipeline: Pipeline,
    pub destination: DuckDbDestination,
    pub options: SourceOptions,
}

impl World {
    pub async fn new(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::start(config, "127.0.0.1:0").await.expect("sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        let dataset = "test_data".to_string();
        let pipeline = Pipeline::open(PipelineConfig::new("test_pipeline", &dataset, dir.path().join("pipelines"))).expect("pipeline");
        let destination = DuckDbConfig::for_pipeline(dir.path(), "test_pipeline", &dataset).build().expect("duckdb");
        let options = SourceOptions { allow_retired_v1: true, ..SourceOptions::default() };
        World { sandbox, _dir: dir, dataset, pipeline, destination, options }
    }

    pub fn client(&self) -> PersonioClient {
        let mut c = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(self.sandbox.base_url());
        c.backoff_factor = std::time::Duration::from_millis(20);
        c.retry_after_floor = std::time::Duration::from_millis(20);
        PersonioClient::new(c).expect("client")
    }

    pub fn source(&self) -> PersonioSource {
        PersonioSource::new(self.client(), self.options.clone())
    }

    pub async fn run(&mut self, resources: &[&str]) -> RunReport {
        let source = self.source();
        let selected: Vec<String> = resources.iter().map(|s| s.to_string()).collect();
        self.pipeline.run(&source, Some(&selected), &mut self.destination).await.expect("run")
    }

    pub fn count(&self, table: &str) -> i64 {
        self.i64(&format!("SELECT count(*) FROM {}.{table}", self.dataset))
    }

    pub fn i64(&self, sql: &str) -> i64 {
        self.destination.connection().query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn strings(&self, sql: &str) -> Vec<String> {
        let conn = self.destination.connection();
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.map(|r| r.expect("row")).collect()
    }

    pub fn id_set(&self, sql: &str) -> BTreeSet<String> {
        self.strings(sql).into_iter().collect()
    }
}

/// A JSON value as the text DuckDB prints for it (ids).
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The v1 employee attribute value.
pub fn attr<'a>(e: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &e["attributes"][key]["value"]
}
