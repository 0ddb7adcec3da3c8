//! Requests Personio refuses are refused by the sandbox, with Personio's status and body.

use personio_sandbox::{Preset, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::Value;

use crate::common::{start, start_with, Env};

/// GET with a bearer token: status, content type, body.
async fn get(env: &Env, tok: &str, url: &str) -> (u16, String, Value) {
    let r = env.http.get(url).bearer_auth(tok).send().await.expect("send");
    let s = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let t = r.text().await.expect("body");
    (s, ct, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

/// Asserts a v2 400 `application/problem+json` with Personio's error shape and this `detail`.
fn assert_v2_400(s: u16, ct: &str, v: &Value, detail: &str) {
    assert_eq!(s, 400, "{v}");
    assert_eq!(ct, "application/problem+json");
    assert!(v["personio_trace_id"].is_string() && v["timestamp"].is_string(), "{v}");
    assert_eq!(v["errors"][0]["title"], "Bad request", "{v}");
    assert_eq!(v["errors"][0]["detail"], detail, "{v}");
    assert_eq!(v["errors"][0]["type"], "https://developer.personio.de/reference/errors#common.bad_request");
}

#[tokio::test]
async fn v2_limit_ranges_per_endpoint() {
    let env = start(Preset::Tiny).await;
    let tok = env.v2_token().await;
    let pid = env.sb.handle().truth().persons[0]["id"].as_str().expect("id").to_string();
    let employments = format!("/v2/persons/{pid}/employments");
    let cases: [(&str, usize, &str); 6] = [
        ("/v2/persons", 50, "Provided request parameters are invalid."),
        (&employments, 50, "Provided request parameters are invalid."),
        ("/v2/absence-periods", 100, "Provided request parameters are invalid."),
        ("/v2/absence-types", 100, "Provided request parameters are invalid."),
        ("/v2/attendance-periods", 100, "Invalid request content."),
        ("/v2/projects", 100, "Provided request parameters are invalid."),
    ];
    for (path, max, detail) in cases {
        let (s, _, v) = get(&env, &tok, &env.url(&format!("{path}?limit={max}"))).await;
        assert_eq!(s, 200, "{path} limit={max}: {v}");
        for bad in [0, max + 1, 200] {
            let (s, ct, v) = get(&env, &tok, &env.url(&format!("{path}?limit={bad}"))).await;
            assert_v2_400(s, &ct, &v, detail);
        }
    }
}

#[tokio::test]
async fn v2_unknown_operators_and_parameters_are_refused() {
    let env = start(Preset::Tiny).await;
    let tok = env.v2_token().await;
    for q in [
        "/v2/persons?updated_at.gte=2026-01-01T00:00:00Z",
        "/v2/persons?updated_at.lte=2026-01-01T00:00:00Z",
        "/v2/persons?id.nooperator=1",
        "/v2/persons?foo=bar",
        "/v2/absence-types?id=x",
        "/v2/absence-periods?updated_at.gt=2026-01-01T00:00:00",
        "/v2/attendance-periods?updated_at.gt=2026-01-01T00:00:00",
        "/v2/projects?updated_at.gte=2026-01-01T00:00:00",
    ] {
        let (s, ct, v) = get(&env, &tok, &env.url(q)).await;
        assert_v2_400(s, &ct, &v, "Provided filter encoding is invalid.");
    }
    // The published operators are accepted.
    for q in [
        "/v2/persons?updated_at.gt=2026-01-01T00:00:00Z&updated_at.lt=2027-01-01T00:00:00Z&created_at.lt=2027-01-01T00:00:00Z&status=ACTIVE",
        "/v2/absence-periods?updated_at.gte=2026-01-01T00:00:00&starts_from.date_time.gte=2025-01-01T00:00:00",
        "/v2/attendance-periods?updated_at.gte=2026-01-01T00:00:00&date.gte=2026-01-01&status=CONFIRMED&sort=-start.date_time",
    ] {
        let (s, _, v) = get(&env, &tok, &env.url(q)).await;
        assert_eq!(s, 200, "{q}: {v}");
    }
}

#[tokio::test]
async fn v2_bad_filter_values_and_datetime_formats() {
    let env = start(Preset::Tiny).await;
    let tok = env.v2_token().await;
    // persons spec example "400 List persons using wrong filter value".
    let (s, ct, v) = get(&env, &tok, &env.url("/v2/persons?created_at.lt=wrong-date-format")).await;
    assert_v2_400(s, &ct, &v, "Provided request parameters are invalid.");
    // persons/employments filters are RFC 3339 date-times with an offset.
    let (s, ct, v) = get(&env, &tok, &env.url("/v2/persons?updated_at.gt=2026-01-01T00:00:00")).await;
    assert_v2_400(s, &ct, &v, "Provided request parameters are invalid.");
    let (s, ct, v) = get(&env, &tok, &env.url("/v2/persons?status=LEAVE")).await;
    assert_v2_400(s, &ct, &v, "Provided request parameters are invalid.");
    // attendance-periods: local date-times only; a `Z` is refused.
    let (s, ct, v) = get(&env, &tok, &env.url("/v2/attendance-periods?updated_at.gte=2026-01-01T00:00:00Z")).await;
    assert_v2_400(s, &ct, &v, "Invalid request content.");
    let (s, ct, v) = get(&env, &tok, &env.url("/v2/attendance-periods?sort=comment")).await;
    assert_v2_400(s, &ct, &v, "Invalid request content.");
    let (s, ct, v) = get(&env, &tok, &env.url("/v2/persons?cursor=garbage!")).await;
    assert_v2_400(s, &ct, &v, "Provided request parameters are invalid.");
}

#[tokio::test]
async fn v1_limits_are_refused_with_422() {
    let env = start(Preset::Tiny).await;
    for (path, max) in [("/v1/company/employees", 100), ("/v1/company/time-offs", 200), ("/v1/company/time-off-types", 200)] {
        let (s, v) = env.get(&format!("{path}?limit={max}")).await;
        assert_eq!(s, 200, "{path}: {v}");
        let (s, v) = env.get(&format!("{path}?limit={}", max + 1)).await;
        assert_eq!(s, 422, "{path}: {v}");
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["message"], format!("The limit must be between 1 and {max}."));
    }
}

/// Follows next links, asserting each carries only the cursor; returns every record.
async fn follow_cursor_only(env: &Env, tok: &str, first: &str) -> Vec<Value> {
    let mut url = env.url(first);
    let mut out = Vec::new();
    loop {
        let (s, _, v) = get(env, tok, &url).await;
        assert_eq!(s, 200, "{url}: {v}");
        out.extend(v["_data"].as_array().expect("_data").iter().cloned());
        let Some(next) = v["_meta"]["links"]["next"]["href"].as_str() else { return out };
        let query = next.split_once('?').map(|(_, q)| q).unwrap_or("");
        let keys: Vec<&str> = query.split('&').map(|kv| kv.split('=').next().unwrap_or("")).collect();
        assert_eq!(keys, vec!["cursor"], "next link carries only the cursor: {next}");
        url = next.to_string();
    }
}

#[tokio::test]
async fn next_links_carry_only_the_cursor_which_keeps_the_filters() {
    let env = start(Preset::Small).await;
    let tok = env.v2_token().await;
    let h = env.sb.handle();
    let truth = h.truth();
    let active: Vec<&Value> = truth.persons.iter().filter(|p| p["status"] == "ACTIVE").collect();
    assert!(active.len() < truth.persons.len(), "the company has inactive persons");
    let got = follow_cursor_only(&env, &tok, "/v2/persons?limit=7&status=ACTIVE").await;
    assert_eq!(got.len(), active.len());
    assert!(got.iter().all(|p| p["status"] == "ACTIVE"));

    let person = truth.attendance_periods[truth.attendance_periods.len() / 2]["person"]["id"].as_str().expect("id");
    let want: Vec<&Value> = truth.attendance_periods.iter().filter(|p| p["person"]["id"] == person).collect();
    assert!(!want.is_empty());
    let got = follow_cursor_only(&env, &tok, &format!("/v2/attendance-periods?limit=9&person.id={person}")).await;
    assert_eq!(got.iter().collect::<Vec<_>>(), want);

    // A cursor used with other filters than it was issued for is refused.
    let (_, _, v) = get(&env, &tok, &env.url("/v2/persons?limit=2&status=ACTIVE")).await;
    let next = v["_meta"]["links"]["next"]["href"].as_str().expect("next").to_string();
    let (s, ct, v) = get(&env, &tok, &format!("{next}&status=INACTIVE")).await;
    assert_v2_400(s, &ct, &v, "Provided request parameters are invalid.");
    let (s, _, _) = get(&env, &tok, &format!("{next}&status=ACTIVE")).await;
    assert_eq!(s, 200, "the same filters with the cursor are accepted");
}

#[tokio::test]
async fn persons_updated_at_gt_is_strict_and_exact_match_works() {
    let env = start(Preset::Small).await;
    let tok = env.v2_token().await;
    let h = env.sb.handle();
    h.advance_clock(chrono::Duration::hours(3));
    let t = h.now();
    let changed = h.update_employees(2);
    let at = t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let ids = |v: Vec<Value>| {
        let mut x: Vec<i64> = v.iter().map(|p| p["id"].as_str().expect("id").parse().expect("num")).collect();
        x.sort();
        x
    };
    let mut want = changed.clone();
    want.sort();
    assert!(follow_cursor_only(&env, &tok, &format!("/v2/persons?updated_at.gt={at}")).await.is_empty(), ".gt excludes the boundary");
    assert_eq!(ids(follow_cursor_only(&env, &tok, &format!("/v2/persons?updated_at={at}")).await), want);
    let before = (t - chrono::Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(ids(follow_cursor_only(&env, &tok, &format!("/v2/persons?updated_at.gt={before}")).await), want);
}

#[tokio::test]
async fn missing_scope_gives_403_on_v1_and_v2() {
    let config = SandboxConfig { scopes: Some(vec!["personio:persons:read".into()]), ..SandboxConfig::preset(Preset::Tiny, 1) };
    let env = start_with(config).await;
    let tok = env.v2_token().await;
    let (s, _, _) = get(&env, &tok, &env.url("/v2/persons")).await;
    assert_eq!(s, 200);
    for path in ["/v2/absence-periods", "/v2/attendance-periods", "/v2/absence-types", "/v2/projects"] {
        let (s, ct, v) = get(&env, &tok, &env.url(path)).await;
        assert_eq!(s, 403, "{path}: {v}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(v["errors"][0]["title"], "Forbidden");
        assert!(v["errors"][0]["_meta"]["required_scope"].as_str().is_some_and(|s| s.starts_with("personio:")), "{v}");
    }
    let (s, v) = env.get("/v1/company/employees").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = env.get("/v1/company/time-offs").await;
    assert_eq!(s, 403);
    assert_eq!(v["success"], false);
    assert_eq!(v["error"]["code"], 403);
    // A token cannot be asked for a scope the credential lacks.
    let r = env
        .http
        .post(env.url("/v2/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "personio:absences:read"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_scope");
    // The admin API switches scopes (and revokes tokens).
    env.sb.handle().set_scopes(personio_sandbox::ALL_SCOPES.iter().map(|s| s.to_string()).collect());
    let tok = env.v2_token().await;
    let (s, _, _) = get(&env, &tok, &env.url("/v2/absence-periods")).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_token_asked_for_fewer_scopes_only_has_those() {
    let env = start(Preset::Tiny).await;
    let r = env
        .http
        .post(env.url("/v2/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "personio:absences:read"),
        ])
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["scope"], "personio:absences:read");
    let tok = v["access_token"].as_str().expect("token");
    let (s, _, _) = get(&env, tok, &env.url("/v2/absence-periods")).await;
    assert_eq!(s, 200);
    let (s, _, _) = get(&env, tok, &env.url("/v2/persons")).await;
    assert_eq!(s, 403);
}

async fn token_error(env: &Env, ct: &str, body: &str) -> (u16, String, Value) {
    let r = env.http.post(env.url("/v2/auth/token")).header("content-type", ct).body(body.to_string()).send().await.expect("send");
    let s = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (s, ct, r.json().await.expect("json"))
}

#[tokio::test]
async fn token_errors_are_400_problem_json() {
    let env = start(Preset::Tiny).await;
    let form = "application/x-www-form-urlencoded";
    let good = format!("client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}");
    let cases = [
        (form, format!("client_id={DEFAULT_CLIENT_ID}"), "invalid_request"),
        ("application/json", format!(r#"{{"client_id":"{DEFAULT_CLIENT_ID}"}}"#), "invalid_request"),
        (form, "grant_type=client_credentials&client_id=client_who".to_string(), "invalid_client"),
        (form, format!("grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret=wrong"), "unauthorized_client"),
        (form, format!("grant_type=urn:ietf:params:oauth:grant-type:device_code&{good}"), "unsupported_grant_type"),
        (form, format!("grant_type=lilu_dallas_multipass&{good}"), "invalid_grant"),
        (form, format!("grant_type=client_credentials&{good}&scope=personio:person:read+fake_scope:777"), "invalid_scope"),
    ];
    for (ct, body, error) in cases {
        let (s, got_ct, v) = token_error(&env, ct, &body).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(got_ct, "application/problem+json");
        assert_eq!(v["error"], error, "{body}: {v}");
        for k in ["error_description", "error_uri", "timestamp", "trace_id"] {
            assert!(v[k].is_string(), "{k} in {v}");
        }
    }
    let (_, _, v) = token_error(&env, form, &format!("client_id={DEFAULT_CLIENT_ID}")).await;
    assert_eq!(v["meta"]["missing_parameters"], serde_json::json!(["grant_type", "client_secret"]));
    let (s, _, v) = token_error(&env, form, &format!("grant_type=client_credentials&{good}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 86400);
    // Revocation: the token stops working.
    let tok = v["access_token"].as_str().expect("token").to_string();
    let r = env.http.post(env.url("/v2/auth/revoke")).form(&[("token", tok.as_str())]).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let (s, _, _) = get(&env, &tok, &env.url("/v2/persons")).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn token_endpoint_rate_limit_150_per_minute_then_1_per_second() {
    let env = start_with(SandboxConfig { rate_limits: true, ..SandboxConfig::preset(Preset::Tiny, 1) }).await;
    let body = format!("grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}");
    let form = "application/x-www-form-urlencoded";
    let post = || env.http.post(env.url("/v2/auth/token")).header("content-type", form).body(body.clone()).send();
    let mut ok = 0;
    let mut first_429 = None;
    for i in 0..155 {
        let r = post().await.expect("send");
        if r.status() == 200 {
            ok += 1;
        } else if first_429.is_none() {
            assert_eq!(r.status(), 429);
            assert_eq!(r.headers()["retry-after"], "1");
            let v: Value = r.json().await.expect("json");
            assert_eq!(v["error"], "temporarily_unavailable");
            first_429 = Some(i);
        }
    }
    // 150 per minute (a slow machine may refill a few tokens at 2.5/s meanwhile).
    let first = first_429.expect("limited");
    assert!((150..=154).contains(&first), "first 429 at {first}, {ok} ok");
    // Then one request per second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(post().await.expect("send").status(), 200);
    assert_eq!(post().await.expect("send").status(), 429);
}
