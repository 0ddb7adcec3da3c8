//! append, replace and merge, child tables included.

use serde_json::json;

use crate::support::{sel, source, Env};

fn person(id: i64, at: &str, centers: &[i64]) -> serde_json::Value {
    json!({
        "id": id,
        "name": format!("p{id}"),
        "updated_at": format!("\u{F027}{at}"),
        "cost_centers": centers.iter().map(|c| json!({"id": c, "pct": 100 / centers.len().max(1) as i64})).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn merge_replaces_child_rows_and_dedups_last_wins() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("people", vec![person(1, "2024-01-01T00:00:00+00:00", &[10, 11]), person(2, "2024-01-01T00:00:00+00:00", &[20])]);
    let r1 = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
    assert_eq!(r1.loaded_packages.len(), 1);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people__cost_centers"), 3);
    let kept_child_id = env.query_strings(&d, "SELECT c._dlt_id FROM test_data.people__cost_centers c JOIN test_data.people p ON c._dlt_root_id = p._dlt_id WHERE p.id = 2");

    // Person 1 changes twice in one package (the last wins) and loses its cost centers.
    let mut dup = person(1, "2024-02-01T00:00:00+00:00", &[12]);
    dup["name"] = json!("first-version");
    src.set("people", vec![dup, person(1, "2024-02-02T00:00:00+00:00", &[])]);
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 2");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people"), 2);
    assert_eq!(env.query_strings(&d, "SELECT name FROM test_data.people WHERE id = 1"), vec!["p1"]);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people__cost_centers c JOIN test_data.people p ON c._dlt_root_id = p._dlt_id WHERE p.id = 1"), 0);
    // Person 2 was not in the package: its child rows are untouched, ids included.
    let after = env.query_strings(&d, "SELECT c._dlt_id FROM test_data.people__cost_centers c JOIN test_data.people p ON c._dlt_root_id = p._dlt_id WHERE p.id = 2");
    assert_eq!(after, kept_child_id);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people__cost_centers"), 1);
}

/// The first merge of a table (created by this load, so DuckDB loads it without staging) keeps the last
/// row of a duplicated key and only that row's children, like every later merge.
#[tokio::test]
async fn first_merge_with_duplicate_keys_keeps_the_last_row_and_its_children() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    let mut early = person(1, "2024-01-01T00:00:00+00:00", &[10, 11]);
    early["name"] = json!("first-version");
    src.set("people", vec![early, person(2, "2024-01-01T00:00:00+00:00", &[20]), person(1, "2024-01-02T00:00:00+00:00", &[12])]);
    p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run");
    assert_eq!(env.query_strings(&d, "SELECT CAST(id AS VARCHAR) || ':' || name FROM test_data.people ORDER BY id"), vec!["1:p1", "2:p2"]);
    let children = "SELECT CAST(p.id AS VARCHAR) || ':' || CAST(c.id AS VARCHAR) FROM test_data.people__cost_centers c \
                    JOIN test_data.people p ON c._dlt_root_id = p._dlt_id ORDER BY 1";
    assert_eq!(env.query_strings(&d, children), vec!["1:12", "2:20"]);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people__cost_centers"), 2, "no orphaned child rows");
    let staged = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'test_data_staging' AND table_name = 'people'";
    assert_eq!(env.query_i64(&d, staged), 0, "loaded without staging");
}

/// A merge split into many hash buckets (3 staged rows each) lands exactly what the single-step merge
/// lands, and what the records say: last duplicate wins, children follow their root.
#[tokio::test]
async fn bucketed_merge_matches_single_step_merge() {
    let t1 = "2024-01-01T00:00:00+00:00";
    let run1: Vec<_> = (1..=40).map(|i| person(i, t1, &[i * 10, i * 10 + 1])).collect();
    let mut run2: Vec<_> = (20..=60).map(|i| person(i, "2024-02-01T00:00:00+00:00", &[i * 100])).collect();
    for i in 25..=30 {
        let mut later = person(i, "2024-02-02T00:00:00+00:00", &[i * 1000, i * 1000 + 1, i * 1000 + 2]);
        later["name"] = json!(format!("p{i}-second"));
        run2.push(later);
    }
    let mut expected_people: Vec<String> = Vec::new();
    let mut expected_children: Vec<String> = Vec::new();
    for i in 1..=60i64 {
        let (name, centers): (String, Vec<i64>) = match i {
            1..=19 => (format!("p{i}"), vec![i * 10, i * 10 + 1]),
            25..=30 => (format!("p{i}-second"), vec![i * 1000, i * 1000 + 1, i * 1000 + 2]),
            _ => (format!("p{i}"), vec![i * 100]),
        };
        expected_people.push(format!("{i}:{name}"));
        expected_children.extend(centers.iter().map(|c| format!("{i}:{c}")));
    }
    expected_children.sort();

    let people_sql = "SELECT CAST(id AS VARCHAR) || ':' || name FROM test_data.people ORDER BY id";
    let children_sql = "SELECT CAST(p.id AS VARCHAR) || ':' || CAST(c.id AS VARCHAR) FROM test_data.people__cost_centers c \
                        JOIN test_data.people p ON c._dlt_root_id = p._dlt_id ORDER BY 1";
    let mut seen = Vec::new();
    for chunk in [None, Some(3)] {
        let env = Env::new();
        let mut d = env.destination_with(|c| {
            if let Some(rows) = chunk {
                c.merge_chunk_rows = rows;
                c.memory_limit = Some("64MB".into());
            }
        });
        let p = env.pipeline();
        let mut src = source();
        src.set("people", run1.clone());
        p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 1");
        src.set("people", run2.clone());
        let report = p.run(&src, Some(&sel(&["people"])), &mut d).await.expect("run 2");
        assert_eq!(report.rows.get("people").copied(), Some(47), "41 keys, 6 of them twice");
        let people = env.query_strings(&d, people_sql);
        let children = env.query_strings(&d, children_sql);
        assert_eq!(people, expected_people, "merge_chunk_rows {chunk:?}");
        assert_eq!(children, expected_children, "merge_chunk_rows {chunk:?}");
        assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.people__cost_centers"), expected_children.len() as i64);
        seen.push((people, children));
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn replace_swaps_contents_and_empty_selection_empties() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("types", vec![json!({"id": 1, "tags": ["a", "b"]}), json!({"id": 2, "tags": ["c"]})]);
    p.run(&src, Some(&sel(&["types"])), &mut d).await.expect("run 1");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.types__tags"), 3);
    src.set("types", vec![json!({"id": 3, "tags": ["z"]})]);
    p.run(&src, Some(&sel(&["types"])), &mut d).await.expect("run 2");
    assert_eq!(env.query_strings(&d, "SELECT CAST(id AS VARCHAR) FROM test_data.types"), vec!["3"]);
    assert_eq!(env.query_strings(&d, "SELECT value FROM test_data.types__tags"), vec!["z"]);
    src.set("types", vec![]);
    let r = p.run(&src, Some(&sel(&["types"])), &mut d).await.expect("run 3");
    assert_eq!(r.loaded_packages.len(), 1, "a selected replace resource always yields a package");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.types"), 0);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.types__tags"), 0);
}

#[tokio::test]
async fn append_keeps_everything() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("events", vec![json!({"k": 1}), json!({"k": 1})]);
    p.run(&src, Some(&sel(&["events"])), &mut d).await.expect("run 1");
    p.run(&src, Some(&sel(&["events"])), &mut d).await.expect("run 2");
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data.events"), 4);
    assert_eq!(env.query_i64(&d, "SELECT count(*) FROM test_data._dlt_loads WHERE status = 0"), 2);
}

#[tokio::test]
async fn types_follow_dlt_mapping_and_variants_appear() {
    let env = Env::new();
    let mut d = env.destination();
    let p = env.pipeline();
    let mut src = source();
    src.set("events", vec![
        json!({"n": 1, "at": "2024-05-01T10:00:00+02:00", "day": "\u{F028}2024-05-01", "ok": true, "txt": "x"}),
        json!({"n": 0.5}),
    ]);
    p.run(&src, Some(&sel(&["events"])), &mut d).await.expect("run");
    let types = env.query_strings(&d, "SELECT column_name || ':' || data_type FROM information_schema.columns WHERE table_schema = 'test_data' AND table_name = 'events' ORDER BY ordinal_position");
    for want in ["n:BIGINT", "at:TIMESTAMP WITH TIME ZONE", "day:DATE", "ok:BOOLEAN", "txt:VARCHAR", "_dlt_load_id:VARCHAR", "_dlt_id:VARCHAR", "n__v_double:DOUBLE"] {
        assert!(types.iter().any(|t| t == want), "missing {want} in {types:?}");
    }
    assert_eq!(env.query_strings(&d, "SELECT CAST(\"at\" AS VARCHAR) FROM test_data.events WHERE \"at\" IS NOT NULL"), vec!["2024-05-01 08:00:00+00"]);
}
