use personio_sandbox::{Preset, RunningSandbox, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{json, Value};

pub struct Env {
    pub sb: RunningSandbox,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start_with(config: SandboxConfig) -> Env {
    let sb = Sandbox::start(config, "127.0.0.1:0").await.expect("start");
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let r = http
        .post(format!("{}/v1/auth", sb.base_url()))
        .json(&json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}))
        .send()
        .await
        .expect("auth");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let token = v["data"]["token"].as_str().expect("token").to_string();
    sb.handle().reset_request_log();
    Env { sb, http, token }
}

pub async fn start(preset: Preset) -> Env {
    start_with(SandboxConfig::preset(preset, 42)).await
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sb.base_url(), path)
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).bearer_auth(&self.token).send().await.expect("send");
        let s = r.status().as_u16();
        let t = r.text().await.expect("body");
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }
    pub async fn get_raw(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.http.get(self.url(path)).bearer_auth(&self.token).send().await
    }
    pub async fn v2_token(&self) -> String {
        let r = self
            .http
            .post(self.url("/v2/auth/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", DEFAULT_CLIENT_ID), ("client_secret", DEFAULT_CLIENT_SECRET)])
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        v["access_token"].as_str().expect("access_token").to_string()
    }
}

/// Pages a v1 record-offset listing like dlt (stop at total_pages); returns all records and the pages requested.
pub async fn page_record_mode(env: &Env, path: &str, extra: &str, limit: usize) -> (Vec<Value>, usize, Value) {
    let mut offset = 0;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let (s, v) = env.get(&format!("{path}?limit={limit}{extra}&offset={offset}&page={pages}")).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        let data = v["data"].as_array().expect("data").clone();
        out.extend(data.iter().cloned());
        let cur = v["metadata"]["current_page"].as_u64().expect("current_page") as usize;
        let total_pages = v["metadata"]["total_pages"].as_u64().expect("total_pages") as usize;
        assert_eq!(cur, offset / limit);
        if data.is_empty() || cur + 1 >= total_pages {
            return (out, pages, v["metadata"].clone());
        }
        offset += limit;
    }
}
