//! History with dlt's `scd2` merge strategy, through the CLI binary against the sandbox: configured in
//! `.dlt/config.toml`, an employee moved to another department three times across runs has four
//! contiguous versions, everybody else one, an erased employee is retired, and the README's as-of query
//! answers "headcount per department on a date" (docs/history.md).

use std::collections::BTreeMap;
use std::time::Duration;

use personio_sandbox::{Preset, SandboxConfig};

use crate::support::cli_run::{query_strings, BgSandbox, Project, DATASET};
use crate::support::{attr, text};

const LIMIT: Duration = Duration::from_secs(180);

/// `(department, valid_from, valid_to or "open", _dlt_id)` of an employee's versions, oldest first.
fn versions(project: &Project, id: i64) -> Vec<(String, String, String, String)> {
    let sql = format!(
        "SELECT COALESCE(department__attributes__name, '-') || '|' || CAST(_dlt_valid_from AS VARCHAR) || '|' || \
         COALESCE(CAST(_dlt_valid_to AS VARCHAR), 'open') || '|' || _dlt_id FROM {DATASET}.employees WHERE id = {id} ORDER BY _dlt_valid_from"
    );
    query_strings(&project.db(), &sql)
        .expect("query")
        .into_iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect()
}

#[test]
fn employees_with_scd2_keep_contiguous_versions_and_retire_the_erased() {
    let sandbox = BgSandbox::start(SandboxConfig::preset(Preset::Tiny, 3));
    let h = sandbox.handle();
    let project = Project::new();
    project.write_dlt("config.toml", "[sources.personio.resources.employees]\nmerge_strategy = \"scd2\"\n");
    let run = || {
        let r = project.run(project.cli(&sandbox.base_url()).args(["run", "--resources", "employees"]), LIMIT);
        assert!(r.ok(), "{}", r.summary());
    };
    run();
    let truth = h.truth();
    let ids: Vec<i64> = truth.employees.iter().filter_map(|e| attr(e, "id").as_i64()).collect();
    assert!(ids.len() >= 3, "the tiny company has employees");
    let (mover, erased) = (ids[0], ids[1]);
    let first = truth.employees.iter().find(|e| attr(e, "id").as_i64() == Some(mover)).expect("mover");
    let mut departments = vec![match &attr(first, "department")["attributes"]["name"] {
        serde_json::Value::Null => "-".to_string(),
        v => text(v),
    }];

    // Three moves, one run after each.
    for _ in 0..3 {
        h.advance_clock(chrono::Duration::hours(1));
        let (_, name) = h.move_to_next_department(mover).expect("known employee");
        departments.push(name);
        run();
    }
    let v = versions(&project, mover);
    assert_eq!(v.iter().map(|x| x.0.clone()).collect::<Vec<_>>(), departments, "one version per department: {v:?}");
    for pair in v.windows(2) {
        assert_eq!(pair[0].2, pair[1].1, "contiguous: valid_to of one version is valid_from of the next: {v:?}");
    }
    assert_eq!(v[3].2, "open", "the last version is the current one: {v:?}");
    let distinct: std::collections::BTreeSet<&String> = v.iter().map(|x| &x.3).collect();
    assert_eq!(distinct.len(), 4, "each version has its own row hash: {v:?}");

    // Everybody else: one open version (unchanged records are neither retired nor inserted again).
    let per_id = query_strings(
        &project.db(),
        &format!("SELECT CAST(id AS VARCHAR) || '|' || CAST(count(*) AS VARCHAR) || '|' || CAST(count(_dlt_valid_to) AS VARCHAR) FROM {DATASET}.employees WHERE id <> {mover} GROUP BY id ORDER BY id"),
    )
    .expect("query");
    assert_eq!(per_id.len(), ids.len() - 1, "{per_id:?}");
    assert!(per_id.iter().all(|r| r.ends_with("|1|0")), "one open version each: {per_id:?}");

    // The README's as-of query, at the moment the mover's second version started.
    let at = &v[1].1;
    let as_of = format!(
        "SELECT department__attributes__name || '|' || CAST(count(*) AS VARCHAR) FROM {DATASET}.employees \
         WHERE _dlt_valid_from <= CAST('{at}' AS TIMESTAMPTZ) AND (_dlt_valid_to IS NULL OR _dlt_valid_to > CAST('{at}' AS TIMESTAMPTZ)) \
         AND department__attributes__name IS NOT NULL GROUP BY department__attributes__name ORDER BY 1"
    );
    let headcount: BTreeMap<String, i64> = query_strings(&project.db(), &as_of)
        .expect("as-of query")
        .into_iter()
        .filter_map(|r| r.split_once('|').map(|(d, n)| (d.to_string(), n.parse().unwrap_or(0))))
        .collect();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for e in &truth.employees {
        let id = attr(e, "id").as_i64();
        let dept = if id == Some(mover) {
            Some(departments[1].clone())
        } else {
            attr(e, "department")["attributes"]["name"].as_str().map(str::to_string)
        };
        if let Some(d) = dept.filter(|d| d != "-") {
            *expected.entry(d).or_default() += 1;
        }
    }
    assert_eq!(headcount, expected, "headcount per department as of {at}");

    // Erased in Personio: missing from the next full extract, so retired (not deleted).
    h.advance_clock(chrono::Duration::hours(1));
    assert!(h.erase_employee(erased));
    run();
    let gone = versions(&project, erased);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_ne!(gone[0].2, "open", "retired: {gone:?}");
    let last_load = query_strings(&project.db(), &format!("SELECT max(load_id) FROM {DATASET}._dlt_loads")).expect("loads");
    let boundary = pipeline_engine::merge::boundary_of(&last_load[0], None);
    let retired = chrono::DateTime::parse_from_str(&format!("{}:00", gone[0].2), "%Y-%m-%d %H:%M:%S%.f%:z").expect("timestamp");
    assert_eq!(retired, boundary, "retired at the last load's boundary (its load id's time)");
    assert_eq!(versions(&project, mover).len(), 4, "the others are untouched");
    let open = query_strings(&project.db(), &format!("SELECT CAST(count(*) AS VARCHAR) FROM {DATASET}.employees WHERE _dlt_valid_to IS NULL")).expect("count");
    assert_eq!(open, vec![(ids.len() - 1).to_string()], "every employee still in Personio has one open version");
}
