//! v2 record fields and enums as Personio's specs give them.

use std::collections::BTreeSet;

use personio_sandbox::{Preset, SandboxConfig};
use serde_json::Value;

use crate::common::{start, start_with};

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

#[tokio::test]
async fn persons_and_employments_have_the_spec_fields() {
    let env = start(Preset::Small).await;
    let t = env.sb.handle().truth();
    let base = env.sb.base_url();
    for p in &t.persons {
        let want: BTreeSet<&str> = [
            "id", "email", "created_at", "updated_at", "first_name", "last_name", "preferred_name", "gender", "profile_picture", "status",
            "custom_attributes", "employments", "_meta",
        ]
        .into();
        assert_eq!(keys(p), want);
        assert!(["ACTIVE", "INACTIVE"].contains(&p["status"].as_str().unwrap_or("")));
        assert!(["UNSPECIFIED", "MALE", "FEMALE", "DIVERSE"].contains(&p["gender"].as_str().unwrap_or("")));
        assert!(p["profile_picture"]["url"].is_string());
        let pid = p["id"].as_str().expect("id");
        assert_eq!(p["_meta"]["links"]["employments"]["href"], format!("{base}/v2/persons/{pid}/employments"));
        for c in p["custom_attributes"].as_array().expect("custom") {
            assert!(c["id"].as_str().is_some_and(|i| i.starts_with("dynamic_")), "{c}");
            assert!(c["global_id"].is_string() && c["label"].is_string(), "{c}");
            assert!(["STRING", "INT", "DOUBLE", "DATE", "BOOLEAN", "STRING_LIST"].contains(&c["type"].as_str().unwrap_or("")), "{c}");
            assert!(c["value"].is_string() || c["value"].as_array().is_some_and(|a| a.iter().all(Value::is_string)), "{c}");
        }
        let eid = p["employments"][0]["id"].as_str().expect("employment id");
        assert!(is_uuid(eid) && !eid.contains(pid), "employment id {eid} of person {pid}");
        let e = &t.employments[pid][0];
        assert_eq!(e["id"], eid);
        for k in [
            "position", "employment_end_date", "contract_end_date", "probation_end_date", "job", "cost_centers",
            "org_units", "status", "type", "weekly_working_hours", "full_time_weekly_working_hours", "person", "_meta",
        ] {
            assert!(e.get(k).is_some(), "{k} in {e}");
        }
        // The spec's fields are not nullable: absent objects/values are left out (only the end dates may be null).
        for (k, v) in e.as_object().expect("employment object") {
            assert!(!v.is_null() || k.ends_with("_end_date"), "{k}: null in {e}");
        }
        if let Some(term) = e.get("termination") {
            let term = term.as_object().expect("termination object");
            assert!(!term.is_empty() && term.values().all(Value::is_string), "{e}");
            for k in term.keys() {
                assert!(["termination_date", "last_working_day", "terminated_at", "type", "reason"].contains(&k.as_str()), "termination.{k}");
            }
        }
        assert!(["ACTIVE", "INACTIVE", "ONBOARDING", "LEAVE"].contains(&e["status"].as_str().unwrap_or("")), "{e}");
        assert!(e["org_units"].as_array().expect("org_units").iter().all(|u| u["type"] == "department" || u["type"] == "team"));
        if e["status"] == "INACTIVE" {
            assert!(e["termination"]["terminated_at"].is_string() && e["termination"]["last_working_day"].is_string(), "{e}");
            assert!(e["termination"]["type"].as_str().is_some_and(|t| t == t.to_uppercase()), "{e}");
        }
    }
    assert!(t.persons.iter().any(|p| p["custom_attributes"].as_array().is_some_and(|a| a.iter().any(|c| c["global_id"] == "iban"))));
    // Not terminated → no `termination` object; the sparse first employee → no start date, supervisor, office.
    let all: Vec<&Value> = t.employments.values().flatten().collect();
    assert!(all.iter().any(|e| e["status"] == "ACTIVE" && e.get("termination").is_none()));
    assert!(all.iter().any(|e| e.get("employment_start_date").is_none() && e.get("supervisor").is_none() && e.get("office").is_none()));
}

#[tokio::test]
async fn absence_types_have_upper_case_categories_and_units() {
    let env = start(Preset::Tiny).await;
    let t = env.sb.handle().truth();
    for a in &t.absence_types {
        assert_eq!(keys(a), ["category", "id", "name", "unit"].into());
        let cat = a["category"].as_str().expect("category");
        assert_eq!(cat, cat.to_uppercase());
        assert!(a["unit"] == "DAY" || a["unit"] == "HOUR");
    }
    assert!(t.absence_types.iter().any(|a| a["category"] == "PAID_VACATION"));
}

#[tokio::test]
async fn persons_without_whitelisted_attributes() {
    let config = SandboxConfig { persons_without_attributes: true, ..SandboxConfig::preset(Preset::Tiny, 2) };
    let env = start_with(config).await;
    let tok = env.v2_token().await;
    let r = env.http.get(env.url("/v2/persons?limit=50")).bearer_auth(&tok).send().await.expect("send");
    let v: Value = r.json().await.expect("json");
    let data = v["_data"].as_array().expect("_data");
    assert!(!data.is_empty());
    for p in data {
        assert_eq!(keys(p), ["_meta", "employments", "id"].into(), "{p}");
    }
    assert_eq!(data, &env.sb.handle().truth().persons);
    env.sb.handle().set_persons_without_attributes(false);
    let r = env.http.get(env.url("/v2/persons?limit=1")).bearer_auth(&tok).send().await.expect("send");
    let v: Value = r.json().await.expect("json");
    assert!(v["_data"][0]["updated_at"].is_string());
}
