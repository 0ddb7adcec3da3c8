use std::collections::BTreeSet;

use personio_sandbox::{Preset, SandboxConfig};
use serde_json::Value;

use crate::common::{page_record_mode, start, start_with};

fn ids(v: &[Value], ptr: &str) -> Vec<i64> {
    v.iter().map(|r| r.pointer(ptr).and_then(Value::as_i64).expect("id")).collect()
}

#[tokio::test]
async fn employees_paging_covers_everything_once() {
    let env = start(Preset::Small).await;
    let truth = env.sb.handle().truth();
    let (all, pages, meta) = page_record_mode(&env, "/v1/company/employees", "", 7).await;
    assert_eq!(meta["total_elements"], truth.employees.len());
    assert_eq!(pages, truth.employees.len().div_ceil(7));
    let got = ids(&all, "/attributes/id/value");
    let set: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(set.len(), got.len(), "no duplicates");
    assert_eq!(got, ids(&truth.employees, "/attributes/id/value"));
    assert_eq!(all, truth.employees, "list records equal the truth");
    // Page past the end: empty data.
    let (s, v) = env.get("/v1/company/employees?limit=10&offset=1000").await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    // Default limit is 50.
    let (_, v) = env.get("/v1/company/employees").await;
    assert_eq!(v["limit"], 50);
    assert_eq!(v["metadata"]["current_page"], 0);
}

#[tokio::test]
async fn employees_limit_bounds() {
    let env = start(Preset::Tiny).await;
    for bad in ["0", "101", "abc", "-1"] {
        let (s, v) = env.get(&format!("/v1/company/employees?limit={bad}")).await;
        assert_eq!(s, 422, "limit={bad}");
        assert_eq!(v["error"]["message"], "The limit must be between 1 and 100.");
        assert_eq!(v["success"], false);
    }
    let (s, _) = env.get("/v1/company/employees?limit=100").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn employee_record_shape_is_realistic() {
    let env = start(Preset::Small).await;
    let t = env.sb.handle().truth();
    let first = &t.employees[0]["attributes"];
    assert_eq!(first["supervisor"]["value"], Value::Null, "first employee has no supervisor");
    assert!(first["weekly_working_hours"]["value"].is_string());
    assert_eq!(first["id"]["universal_id"], "id");
    let labels: Vec<&str> = first.as_object().unwrap().values().filter_map(|a| a["label"].as_str()).collect();
    for l in ["Größe", "E-Mail (privat)", "Cost Center %", "1. Hilfe", "Notice period", "Notice Period"] {
        assert!(labels.contains(&l), "label {l}");
    }
    assert!(t.employees.iter().any(|e| e["attributes"]["supervisor"]["value"]["attributes"]["id"]["value"].is_i64()));
    assert!(t.employees.iter().any(|e| e["attributes"]["cost_centers"]["value"].as_array().is_some_and(|a| a.len() == 2)));
    // Absences: first integral, some half days.
    let first_abs = &t.absences[0]["attributes"]["days_count"];
    assert!(first_abs.is_i64(), "{first_abs}");
    assert!(t.absences.iter().any(|a| a["attributes"]["days_count"].as_f64().is_some_and(|d| d.fract() == 0.5)));
    // Balances: first integral, some fractional.
    let first_bal = t.balances.values().next().unwrap();
    assert!(first_bal[0]["balance"].is_i64());
    assert!(t.balances.values().flatten().any(|b| b["balance"].as_f64().is_some_and(|x| x.fract() != 0.0)));
    // Attendances: pending and rejected exist; some end_time null.
    assert!(t.attendances.iter().any(|a| a["attributes"]["status"] == "pending"));
    assert!(t.attendances.iter().any(|a| a["attributes"]["end_time"].is_null()));
    // Every report data type.
    let items = serde_json::to_string(&t.custom_report_items).unwrap();
    for dt in ["TEXT", "ENTITY", "COST_CENTER", "DURATION", "ABSENCE_OVERVIEW", "ABSENCE_PERIOD", "SALARY", "COMPENSATION", "PERFORMANCE_TARGET", "PERFORMANCE_KPI", "effective_date"] {
        assert!(items.contains(dt), "{dt}");
    }
    // The spec's item fields are not nullable, DURATION is an integer and DATE is not a data type.
    for a in t.custom_report_items.values().flatten().flat_map(|i| i["attributes"].as_array().into_iter().chain(i["historical_attributes"].as_array()).flatten()) {
        assert!(a.as_object().is_some_and(|m| m.values().all(|v| !v.is_null())), "{a}");
        assert!(a["data_type"] != "DURATION" || a["duration"].is_i64(), "{a}");
        assert_ne!(a["data_type"], "DATE", "{a}");
    }
}

#[tokio::test]
async fn projection_email_and_single_employee() {
    let env = start(Preset::Small).await;
    let t = env.sb.handle().truth();
    let (_, v) = env.get("/v1/company/employees?attributes[]=first_name&attributes[]=last_name&limit=5").await;
    for e in v["data"].as_array().unwrap() {
        let keys: Vec<&String> = e["attributes"].as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["id", "first_name", "last_name"]);
    }
    let email = t.employees[3]["attributes"]["email"]["value"].as_str().unwrap();
    let (_, v) = env.get(&format!("/v1/company/employees?email={email}")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0], t.employees[3]);
    let id = t.employees[3]["attributes"]["id"]["value"].as_i64().unwrap();
    let (s, v) = env.get(&format!("/v1/company/employees/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"], t.employees[3]);
    let (s, v) = env.get("/v1/company/employees/1").await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], 404);
    let (s, v) = env.get(&format!("/v1/company/employees/{id}/absences/balance")).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"], Value::Array(t.balances[&id].clone()));
    let (s, v) = env.get("/v1/company/employees/custom-attributes").await;
    assert_eq!(s, 200);
    assert!(v["data"].as_array().unwrap().iter().any(|a| a["label"] == "Größe" && a["options"].as_array().is_some_and(|o| !o.is_empty())));
}

#[tokio::test]
async fn updated_since_sees_mutations() {
    let env = start(Preset::Small).await;
    let h = env.sb.handle();
    h.advance_clock(chrono::Duration::hours(20));
    let now = h.now();
    let changed = h.update_employees(4);
    let since = (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S").to_string();
    let (_, v) = env.get(&format!("/v1/company/employees?updated_since={since}&limit=100")).await;
    let mut got = ids(v["data"].as_array().unwrap(), "/attributes/id/value");
    got.sort();
    let mut want = changed.clone();
    want.sort();
    assert_eq!(got, want);
    // Selection by attribute: a key nobody changed yields nothing.
    let (_, v) = env.get(&format!("/v1/company/employees?updated_since={since}&attributes[]=gender")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    // New custom attribute: everyone changed.
    let key = h.add_custom_attribute("Shoe size (EU)", "integer");
    let (_, v) = env.get(&format!("/v1/company/employees?updated_since={since}&attributes[]={key}&limit=100")).await;
    assert_eq!(v["metadata"]["total_elements"], h.truth().employees.len());
    assert!(v["data"][0]["attributes"][&key]["value"].is_i64());
    assert!(h.change_attribute_type(&key, "standard"));
    assert!(h.truth().employees[0]["attributes"][&key]["value"].is_string());
}

#[tokio::test]
async fn time_offs_are_page_numbered() {
    let env = start(Preset::Small).await;
    let t = env.sb.handle().truth();
    let total = t.absences.len();
    assert!(total > 50, "{total}");
    let (_, p0) = env.get("/v1/company/time-offs?limit=20&offset=0").await;
    let (_, p1) = env.get("/v1/company/time-offs?limit=20&offset=1").await;
    assert_eq!(p0["data"], p1["data"]);
    assert_eq!(p1["metadata"]["current_page"], 1);
    let total_pages = p1["metadata"]["total_pages"].as_u64().unwrap();
    assert_eq!(total_pages as usize, total.div_ceil(20));
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let (s, v) = env.get(&format!("/v1/company/time-offs?limit=20&offset={page}&page={page}")).await;
        assert_eq!(s, 200);
        all.extend(v["data"].as_array().unwrap().iter().cloned());
        if v["metadata"]["current_page"].as_u64().unwrap() >= total_pages {
            break;
        }
        page += 1;
    }
    assert_eq!(all, t.absences);
    let (_, past) = env.get(&format!("/v1/company/time-offs?limit=20&offset={}", total_pages + 1)).await;
    assert_eq!(past["data"].as_array().unwrap().len(), 0);
    let (s, _) = env.get("/v1/company/time-offs?limit=201").await;
    assert_eq!(s, 422);
    // Hour-unit absences are not time-offs.
    assert!(all.iter().all(|a| a["attributes"]["time_off_type"]["attributes"]["name"] != "Home office"));
}

#[tokio::test]
async fn time_off_mutations_visible_through_updated_from() {
    let env = start(Preset::Small).await;
    let h = env.sb.handle();
    h.advance_clock(chrono::Duration::hours(20));
    let today = personio_sandbox::time::berlin_date(h.now()).format("%Y-%m-%d").to_string();
    let emp = h.truth().employees[1]["attributes"]["id"]["value"].as_i64().unwrap();
    let new_id = h.add_absence(emp, chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), 3, None).unwrap();
    let old_id = h.truth().absences[5]["attributes"]["id"].as_i64().unwrap();
    assert!(h.update_absence(old_id));
    let (_, v) = env.get(&format!("/v1/company/time-offs?updated_from={today}")).await;
    let mut got = ids(v["data"].as_array().unwrap(), "/attributes/id");
    got.sort();
    assert_eq!(got, vec![old_id, new_id]);
    let (_, v) = env.get(&format!("/v1/company/time-offs?updated_since={today}T00:00:00&employees[]={emp}")).await;
    assert_eq!(ids(v["data"].as_array().unwrap(), "/attributes/id"), vec![new_id]);
    assert!(h.delete_absence(new_id));
    let (_, v) = env.get(&format!("/v1/company/time-offs?updated_from={today}")).await;
    assert_eq!(ids(v["data"].as_array().unwrap(), "/attributes/id"), vec![old_id]);
    h.delete_all_time_off_types();
    let (_, v) = env.get("/v1/company/time-off-types").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn attendances_contract() {
    let env = start(Preset::Small).await;
    let h = env.sb.handle();
    let t = h.truth();
    let (s, v) = env.get("/v1/company/attendances?end_date=2030-01-01").await;
    assert_eq!(s, 422);
    assert_eq!(v["success"], false);
    for flag in ["True", "true", "1"] {
        let (_, v) = env.get(&format!("/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&includePending={flag}&limit=1")).await;
        assert_eq!(v["metadata"]["total_elements"], t.attendances.len(), "{flag}");
    }
    let (_, v) = env.get("/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&limit=1").await;
    let confirmed = t.attendances.iter().filter(|a| a["attributes"]["status"] == "confirmed").count();
    assert_eq!(v["metadata"]["total_elements"], confirmed);
    let (all, _, _) = page_record_mode(&env, "/v1/company/attendances", "&start_date=2000-01-01&end_date=2030-01-01&includePending=True", 200).await;
    assert_eq!(all, t.attendances);
    assert!(all[0]["id"].is_i64() && all[0]["attributes"].get("id").is_none());
    let (s, _) = env.get("/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&limit=201").await;
    assert_eq!(s, 422);
    // Mutation visible through updated_from.
    h.advance_clock(chrono::Duration::hours(5));
    let id = t.attendances[10]["id"].as_i64().unwrap();
    assert!(h.update_attendance(id));
    let from = (h.now() - chrono::Duration::minutes(1)).with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let (_, v) = env.get(&format!("/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&includePending=true&updated_from={}", urlenc(&from))).await;
    assert_eq!(ids(v["data"].as_array().unwrap(), "/id"), vec![id]);
    let (_, p) = env.get("/v1/company/attendances/projects").await;
    assert_eq!(p["data"], Value::Array(t.projects.clone()));
    assert!(p.get("metadata").is_none());
    let (_, d) = env.get("/v1/company/document-categories?offset=0&page=0").await;
    assert_eq!(d["data"], Value::Array(t.document_categories.clone()));
}

fn urlenc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn retired_v1_endpoints() {
    let env = start_with(SandboxConfig { v1_retired: true, ..SandboxConfig::preset(Preset::Tiny, 3) }).await;
    let (s, v) = env.get("/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01").await;
    assert_eq!(s, 410);
    assert!(v["error"]["message"].as_str().unwrap().contains("/v2/attendance-periods"));
    let (s, _) = env.get("/v1/company/attendances/projects").await;
    assert_eq!(s, 410);
    let (s, _) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn custom_reports() {
    let env = start(Preset::Small).await;
    let t = env.sb.handle().truth();
    let (s, v) = env.get("/v1/company/custom-reports/reports?offset=0&page=0").await;
    assert_eq!(s, 200);
    assert_eq!(v["data"], Value::Array(t.custom_reports.clone()));
    assert_eq!(v["metadata"]["current_page"], 1);
    assert_eq!(v["metadata"]["total_pages"], 1);
    for r in &t.custom_reports {
        let id = r["attributes"]["id"].as_str().unwrap();
        let want = &t.custom_report_items[id];
        let mut got = Vec::new();
        let mut page = 1;
        loop {
            let (s, v) = env.get(&format!("/v1/company/custom-reports/reports/{id}?limit=15&offset={page}&page={page}")).await;
            assert_eq!(s, 200);
            assert_eq!(v["metadata"]["total_elements"], want.len());
            got.extend(v["data"][0]["attributes"]["items"].as_array().unwrap().iter().cloned());
            if v["metadata"]["current_page"].as_u64().unwrap() >= v["metadata"]["total_pages"].as_u64().unwrap() {
                break;
            }
            page += 1;
        }
        assert_eq!(&got, want);
    }
    let (s, v) = env.get("/v1/company/custom-reports/reports/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(s, 404);
    assert_eq!(v[0]["errors"][0]["_meta"][0]["field"], "ID");
    assert_eq!(v[0]["status"], 404);
}

#[tokio::test]
async fn a_report_is_refreshed_when_its_items_change_and_only_then() {
    let env = start(Preset::Small).await;
    let h = env.sb.handle();
    let refreshed = || -> Vec<(String, String)> {
        h.with_company(|c| c.reports.iter().map(|r| (r.name.clone(), personio_sandbox::time::fmt_v2(r.refreshed_at))).collect())
    };
    let at_start = refreshed();
    // The clock alone changes no report.
    h.advance_clock(chrono::Duration::hours(5));
    assert_eq!(refreshed(), at_start);
    // An attendance is in no report.
    let attendance = h.with_company(|c| c.attendances[0].id);
    assert!(h.delete_attendance(attendance));
    assert_eq!(refreshed(), at_start);
    // A department change shows in the headcount and the position history, not in the vacation or the
    // compensation report; those two keep their time, the others are refreshed at the clock.
    let id = h.with_company(|c| c.report_employees(&c.reports[0])[0].id);
    h.advance_clock(chrono::Duration::hours(1));
    h.move_to_next_department(id).unwrap();
    let now = personio_sandbox::time::fmt_v2(h.now());
    let after = refreshed();
    let moved: BTreeSet<&str> = after.iter().zip(&at_start).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0.as_str()).collect();
    assert_eq!(moved, BTreeSet::from(["Headcount by department", "Position history"]), "{after:?}");
    assert!(after.iter().filter(|(n, _)| moved.contains(n.as_str())).all(|(_, at)| *at == now), "{after:?} at {now}");
    // What the list serves is what the truth says.
    let (_, v) = env.get("/v1/company/custom-reports/reports").await;
    assert_eq!(v["data"], Value::Array(h.truth().custom_reports.clone()));
}
