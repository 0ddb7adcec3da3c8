//! Helpers: a fixture source, a pipeline in a temp dir, queries.

use pipeline_destinations::duckdb::{DuckDbConfig, DuckDbDestination};
use pipeline_engine::extract::ResourceSpec;
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig};
use pipeline_engine::schema::WriteDisposition;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub dataset: String,
}

impl Env {
    pub fn new() -> Self {
        Env { dir: tempfile::tempdir().expect("tempdir"), dataset: "test_data".into() }
    }

    pub fn pipelines_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("pipelines")
    }

    pub fn pipeline(&self) -> Pipeline {
        Pipeline::open(PipelineConfig::new("test_pipeline", &self.dataset, self.pipelines_dir())).expect("open pipeline")
    }

    pub fn destination(&self) -> DuckDbDestination {
        self.destination_with(|_| {})
    }

    /// A destination with adjusted settings.
    pub fn destination_with(&self, adjust: impl FnOnce(&mut DuckDbConfig)) -> DuckDbDestination {
        let mut config = DuckDbConfig::for_pipeline(self.dir.path(), "test_pipeline", &self.dataset);
        adjust(&mut config);
        config.build().expect("duckdb")
    }

    pub fn query_i64(&self, d: &DuckDbDestination, sql: &str) -> i64 {
        d.connection().expect("connection").query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn query_strings(&self, d: &DuckDbDestination, sql: &str) -> Vec<String> {
        let conn = d.connection().expect("connection");
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.map(|r| r.expect("row")).collect()
    }
}

pub fn specs() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec::new("people", &["id"], WriteDisposition::Merge).with_cursor("updated_at"),
        ResourceSpec::new("types", &["id"], WriteDisposition::Replace),
        ResourceSpec::new("events", &[], WriteDisposition::Append),
    ]
}

pub fn source() -> FixtureSource {
    FixtureSource::new("fixtures", specs())
}

pub fn sel(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
