//! DuckDB's load during extract (`DuckDbConfig::load_during_extract`): the tables a load creates are
//! filled batch by batch while the run extracts, in the load's transaction. What lands must be exactly
//! what a load after the extract lands — columns that appear late, type drift, children, duplicate
//! keys of a first merge, replace and append — and nothing may land when the run fails.

use pipeline_destinations::duckdb::DuckDbDestination;
use pipeline_engine::fixture::FixtureSource;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunOptions, RunReport};
use serde_json::{json, Value};

use crate::support::{sel, source, Env};

const TABLES: [&str; 4] = ["people", "people__cost_centers", "types", "events"];

/// 60 people in small batches: a field that first appears at the 21st, a name that turns into a number
/// at the 31st (coerced to text), ids 5 and 6 repeated at the end (the last row wins), children.
fn fixture() -> FixtureSource {
    let mut people: Vec<Value> = (1..=60)
        .map(|i: i64| {
            let mut p = json!({
                "id": i,
                "name": format!("p{i}"),
                "updated_at": "\u{F027}2024-01-01T00:00:00+00:00",
                "cost_centers": (0..i % 3).map(|c| json!({"id": i * 10 + c, "pct": 50})).collect::<Vec<_>>(),
            });
            if i > 20 {
                p["title"] = json!(format!("t{i}"));
            }
            if i > 30 {
                p["name"] = json!(i);
            }
            p
        })
        .collect();
    for i in [5, 6] {
        people.push(json!({"id": i, "name": format!("p{i}-again"), "updated_at": "\u{F027}2024-01-02T00:00:00+00:00", "cost_centers": [{"id": i * 1000, "pct": 100}]}));
    }
    let mut src = source();
    src.set("people", people);
    src.set("types", (1..=25).map(|i| json!({"id": i, "label": format!("type {i}")})).collect());
    src.set("events", (1..=40).map(|i| json!({"at": i, "what": if i % 7 == 0 { Value::Null } else { json!("x\u{0}y") }})).collect());
    src.with_page_size(4)
}

fn pipeline(env: &Env) -> Pipeline {
    let mut config = PipelineConfig::new("test_pipeline", &env.dataset, env.pipelines_dir());
    config.batch_rows = 3;
    Pipeline::open(config).expect("open pipeline")
}

/// Columns (in order) and rows (as JSON, ordered, without the random `_dlt_*` ids) of every data table.
fn dump(env: &Env, d: &DuckDbDestination) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let cols = format!(
            "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_schema = 'test_data' AND table_name = '{t}'"
        );
        out.push(format!("{t}: {}", env.query_strings(d, &cols).join("")));
        let ids = if t.contains("__") { "_dlt_id, _dlt_parent_id, _dlt_root_id" } else { "_dlt_id, _dlt_load_id" };
        let rows = format!("SELECT CAST(to_json(r) AS VARCHAR) FROM (SELECT * EXCLUDE ({ids}) FROM test_data.{t}) r ORDER BY 1");
        out.extend(env.query_strings(d, &rows));
    }
    let children = "SELECT CAST(p.id AS VARCHAR) || ':' || CAST(c.id AS VARCHAR) FROM test_data.people__cost_centers c \
                    JOIN test_data.people p ON c._dlt_root_id = p._dlt_id ORDER BY 1";
    out.extend(env.query_strings(d, children));
    out
}

async fn load(early: bool) -> (RunReport, Vec<String>, Env) {
    load_with(move |c| c.load_during_extract = early).await
}

async fn load_with(settings: impl FnOnce(&mut pipeline_destinations::duckdb::DuckDbConfig) + 'static) -> (RunReport, Vec<String>, Env) {
    let env = Env::new();
    let mut d = env.destination_with(settings);
    let report = pipeline(&env).run(&fixture(), Some(&sel(&["people", "types", "events"])), &mut d).await.expect("run");
    let rows = dump(&env, &d);
    (report, rows, env)
}

#[tokio::test]
async fn a_load_during_the_extract_lands_exactly_what_a_load_after_it_lands() {
    let (after, expected, _e1) = load(false).await;
    let (during, got, env) = load(true).await;
    assert_eq!(after.early_rows, 0, "load_during_extract = false appends nothing early");
    let total: u64 = during.rows.values().sum();
    assert_eq!(during.early_rows, total, "every row of the new tables was appended while extracting: {:?}", during.rows);
    assert_eq!(got, expected);
    // The records themselves: 60 people (5 and 6 once, their last version), children of the winners only.
    let d = env.destination();
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 60);
    assert_eq!(env.query_strings(&d, "SELECT name FROM test_data.people WHERE id IN (5, 6) ORDER BY id"), vec!["p5-again", "p6-again"]);
    let orphans = "SELECT count(*) FROM test_data.people__cost_centers c LEFT JOIN test_data.people p ON c._dlt_root_id = p._dlt_id WHERE p.id IS NULL";
    assert_eq!(env.query_i64(&d, orphans), 0);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people WHERE title IS NOT NULL"), 40, "the column added after the first batches");
    assert_eq!(env.query_strings(&d, "SELECT name FROM test_data.people WHERE id = 31"), vec!["31"], "a number in a text column");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.events WHERE what = 'xy'"), 35, "NUL characters removed");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data._dlt_loads"), 1);
}

/// An early load that is full (`early_load_memory_mib`; 0: full after its first append) keeps what it
/// appended, and the load step inserts the rest of every table after it: the same columns and rows,
/// duplicate keys resolved across the two parts (ids 5 and 6 come again in the last batches).
#[tokio::test]
async fn a_full_early_load_leaves_the_rest_of_each_table_to_the_load_step() {
    let (after, expected, _e1) = load(false).await;
    let (during, got, env) = load_with(|c| c.early_load_memory_mib = Some(0)).await;
    let total: u64 = during.rows.values().sum();
    assert!(during.early_rows > 0 && during.early_rows < total, "a part was appended early: {} of {total}", during.early_rows);
    assert_eq!(got, expected);
    let d = env.destination();
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 60);
    assert_eq!(env.query_strings(&d, "SELECT name FROM test_data.people WHERE id IN (5, 6) ORDER BY id"), vec!["p5-again", "p6-again"]);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.events"), 40);
    assert_eq!(during.rows, after.rows, "every table's rows reported once, as a load after the extract reports them");
}

#[tokio::test]
async fn an_early_load_is_rolled_back_when_the_run_fails_and_the_package_resumes() {
    let env = Env::new();
    let mut d = env.destination();
    let p = pipeline(&env);
    let src = fixture();
    let options = RunOptions { fail_before_load: true, ..Default::default() };
    let resources = sel(&["people", "types", "events"]);
    p.run_with(&src, Some(&resources), &mut d, options).await.expect_err("failure injected before the load");
    let data_tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'test_data'";
    assert_eq!(env.query_i64(&d, data_tables), 0, "the early load was rolled back: no table, no row");

    let resumed = p.resume_pending(&mut d).await.expect("resume");
    assert_eq!(resumed.len(), 1, "the package written by the failed run is loaded");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 60);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.types"), 25);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.events"), 40, "the events of the package, once");
}

#[tokio::test]
async fn a_full_refresh_replaces_the_tables_in_its_early_load() {
    let env = Env::new();
    let mut d = env.destination();
    let p = pipeline(&env);
    let resources = sel(&["people", "types", "events"]);
    p.run(&fixture(), Some(&resources), &mut d).await.expect("first run");
    let mut src = source().with_page_size(4);
    src.set("people", vec![json!({"id": 100, "name": "only", "updated_at": "\u{F027}2024-03-01T00:00:00+00:00"})]);
    src.set("types", vec![json!({"id": 1, "label": "one"})]);
    src.set("events", vec![json!({"at": 1})]);
    let options = RunOptions { full_refresh: true, ..Default::default() };
    let r = p.run_with(&src, Some(&resources), &mut d, options).await.expect("full refresh");
    assert!(r.early_rows > 0, "the refreshed tables were filled while extracting");
    assert_eq!(env.query_strings(&d, "SELECT name FROM test_data.people"), vec!["only"]);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.types"), 1);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.events"), 1);
    // The dropped tables' columns are gone with them: `title` came from the first run's records only.
    let title = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'test_data' AND table_name = 'people' AND column_name = 'title'";
    assert_eq!(env.query_i64(&d, title), 0);
    // A later incremental run (tables exist now) loads after the extract, as before.
    let mut next = source().with_page_size(4);
    next.set("people", vec![json!({"id": 101, "name": "next", "updated_at": "\u{F027}2024-03-02T00:00:00+00:00"})]);
    let r = p.run(&next, Some(&sel(&["people"])), &mut d).await.expect("incremental");
    assert_eq!(r.early_rows, 0);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 2);
}
