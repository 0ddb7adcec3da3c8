use std::collections::BTreeSet;

use personio_sandbox::Preset;
use serde_json::Value;

use crate::common::{start, Env};

async fn get2(env: &Env, tok: &str, url: &str) -> (u16, Value) {
    let r = env.http.get(url).bearer_auth(tok).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn follow(env: &Env, tok: &str, path: &str) -> (Vec<Value>, usize) {
    let mut url = env.url(path);
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let (s, v) = get2(env, tok, &url).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        assert!(v["_meta"]["links"]["self"]["href"].as_str().unwrap().starts_with(&env.sb.base_url()));
        out.extend(v["_data"].as_array().unwrap().iter().cloned());
        match v["_meta"]["links"]["next"]["href"].as_str() {
            Some(n) => {
                assert!(n.starts_with("http://127.0.0.1:"), "absolute next href");
                url = n.to_string();
            }
            None => return (out, pages),
        }
    }
}

#[tokio::test]
async fn persons_cursor_paging() {
    let env = start(Preset::Small).await;
    let tok = env.v2_token().await;
    let t = env.sb.handle().truth();
    let (all, pages) = follow(&env, &tok, "/v2/persons?limit=7").await;
    assert_eq!(pages, t.persons.len().div_ceil(7));
    assert_eq!(all, t.persons);
    assert!(all[0]["id"].is_string());
    let (d, _) = follow(&env, &tok, "/v2/persons").await;
    assert_eq!(d.len(), t.persons.len());
    for bad in ["0", "51"] {
        let (s, v) = get2(&env, &tok, &env.url(&format!("/v2/persons?limit={bad}"))).await;
        assert_eq!(s, 400);
        assert!(v["errors"][0]["detail"].is_string());
    }
    let (s, _) = get2(&env, &tok, &env.url("/v2/persons?cursor=garbage!")).await;
    assert_eq!(s, 400);
    let (s, v) = get2(&env, &tok, &env.url("/v2/persons?limit=1")).await;
    assert_eq!(s, 200);
    assert_eq!(v["_data"].as_array().unwrap().len(), 1);
    let pid = t.persons[2]["id"].as_str().unwrap();
    let (emp, _) = follow(&env, &tok, &format!("/v2/persons/{pid}/employments")).await;
    assert_eq!(emp, t.employments[pid]);
}

#[tokio::test]
async fn absence_and_attendance_periods_match_v1_ids() {
    let env = start(Preset::Small).await;
    let tok = env.v2_token().await;
    let t = env.sb.handle().truth();
    let (abs, _) = follow(&env, &tok, "/v2/absence-periods?limit=100").await;
    assert_eq!(abs, t.absence_periods);
    let v2ids: BTreeSet<&str> = abs.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(t.absences.iter().all(|a| v2ids.contains(a["attributes"]["id_v2"].as_str().unwrap())));
    let (s, _) = get2(&env, &tok, &env.url("/v2/absence-periods?limit=101")).await;
    assert_eq!(s, 400);
    let (att, _) = follow(&env, &tok, "/v2/attendance-periods?limit=100").await;
    assert_eq!(att, t.attendance_periods);
    let v2ids: BTreeSet<&str> = att.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(t.attendances.iter().all(|a| v2ids.contains(a["attributes"]["id_v2"].as_str().unwrap())));
    let (types, _) = follow(&env, &tok, "/v2/absence-types").await;
    assert_eq!(types, t.absence_types);
    let (projects, _) = follow(&env, &tok, "/v2/projects").await;
    assert_eq!(projects, t.projects_v2);
    // A `Z` on attendance-periods is rejected.
    let (s, _) = get2(&env, &tok, &env.url("/v2/attendance-periods?updated_at.gte=2023-01-01T12:00:00Z")).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn updated_at_filters_see_mutations() {
    let env = start(Preset::Small).await;
    let tok = env.v2_token().await;
    let h = env.sb.handle();
    h.advance_clock(chrono::Duration::hours(20));
    let gte = h.now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let gt = (h.now() - chrono::Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let changed = h.update_employees(3);
    let (p, _) = follow(&env, &tok, &format!("/v2/persons?updated_at.gt={gt}")).await;
    let mut got: Vec<i64> = p.iter().map(|x| x["id"].as_str().unwrap().parse().unwrap()).collect();
    got.sort();
    let mut want = changed;
    want.sort();
    assert_eq!(got, want);
    let att_id = h.truth().attendances[3]["id"].as_i64().unwrap();
    h.update_attendance(att_id);
    let (a, _) = follow(&env, &tok, &format!("/v2/attendance-periods?updated_at.gte={gte}")).await;
    assert!(!a.is_empty() && a.iter().all(|x| x["updated_at"].as_str().unwrap() >= gte.as_str()));
    let abs = h.truth().absences[0]["attributes"]["id"].as_i64().unwrap();
    h.update_absence(abs);
    let (b, _) = follow(&env, &tok, &format!("/v2/absence-periods?updated_at.gte={gte}")).await;
    assert_eq!(b.len(), 1);
}
