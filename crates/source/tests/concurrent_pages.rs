//! Concurrent v1 paging requests exactly the pages sequential paging requests, and yields them in the
//! same order with the same records.

use futures::TryStreamExt;
use personio_client::{ClientConfig, PacingConfig, PagingMode, PersonioClient};
use personio_sandbox::{Preset, Sandbox, SandboxConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn client(base: String) -> PersonioClient {
    let mut c = ClientConfig::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_base_url(base);
    c.pacing = PacingConfig::disabled();
    PersonioClient::new(c).expect("client")
}

#[tokio::test]
async fn concurrent_pages_equal_sequential_pages() {
    let sandbox = Sandbox::start(SandboxConfig::preset(Preset::Small, 3), "127.0.0.1:0").await.expect("sandbox");
    let h = sandbox.handle();
    let c = client(sandbox.base_url());
    c.authenticate().await.expect("auth");
    let cases = [
        ("company/employees", PagingMode::RecordOffset { limit: Some(7) }),
        ("company/time-offs", PagingMode::PageNumber { limit: Some(9) }),
        ("company/time-off-types", PagingMode::Single),
    ];
    for (path, mode) in cases {
        h.reset_request_log();
        let seq: Vec<_> = c.v1_pages(path, Vec::new(), mode).try_collect().await.expect("sequential");
        let seq_log: Vec<String> = h.request_log().iter().map(|r| format!("{}?{}", r.path, r.query)).collect();
        for concurrency in [2, 8] {
            h.reset_request_log();
            let conc: Vec<_> = c.v1_pages_concurrent(path, Vec::new(), mode, concurrency).try_collect().await.expect("concurrent");
            let mut conc_log: Vec<String> = h.request_log().iter().map(|r| format!("{}?{}", r.path, r.query)).collect();
            let mut want = seq_log.clone();
            conc_log.sort();
            want.sort();
            assert_eq!(conc_log, want, "{path} x{concurrency}: the same requests, none twice");
            assert_eq!(conc.len(), seq.len(), "{path} x{concurrency}");
            for (a, b) in seq.iter().zip(&conc) {
                assert_eq!((&a.url, a.index, &a.data), (&b.url, b.index, &b.data), "{path} x{concurrency}");
            }
        }
        assert!(seq.len() > 1 || mode == PagingMode::Single, "{path}: several pages expected");
    }
}
