use personio_sandbox::{Preset, SandboxConfig};

use crate::common::start_with;

async fn bodies(seed: u64) -> Vec<Vec<u8>> {
    let env = start_with(SandboxConfig::preset(Preset::Small, seed)).await;
    let tok = env.v2_token().await;
    let mut out = vec![env.token.clone().into_bytes()];
    for p in [
        "/v1/company/employees?limit=100",
        "/v1/company/time-offs?limit=200&offset=1",
        "/v1/company/attendances?start_date=2000-01-01&end_date=2030-01-01&includePending=true",
        "/v1/company/time-off-types",
        "/v1/company/custom-reports/reports",
        "/v1/company/employees/attributes",
    ] {
        out.push(env.get_raw(p).await.unwrap().bytes().await.unwrap().to_vec());
    }
    let base = env.sb.base_url();
    for p in ["/v2/persons?limit=50", "/v2/absence-periods", "/v2/attendance-periods"] {
        let b = env.http.get(env.url(p)).bearer_auth(&tok).send().await.unwrap().bytes().await.unwrap().to_vec();
        // hrefs carry the (random) port; compare without it.
        out.push(String::from_utf8(b).unwrap().replace(&base, "BASE").into_bytes());
    }
    out
}

#[tokio::test]
async fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = bodies(7).await;
    let b = bodies(7).await;
    assert_eq!(a, b);
    let c = bodies(8).await;
    assert_ne!(a[1], c[1]);
}
