//! Paging: v1 record-offset, page-number (0- vs 1-based), F5 report list, single, v2 cursors.

use futures::TryStreamExt;
use personio_client::{ClientError, Page, PagingMode, PersonioClient};
use serde_json::{json, Value};

use crate::fake::*;

async fn collect(stream: personio_client::PageStream) -> Result<Vec<Page>, ClientError> {
    stream.try_collect().await
}

fn ids(pages: &[Page]) -> Vec<Vec<i64>> {
    pages.iter().map(|p| p.data.iter().map(|r| r["id"].as_i64().unwrap()).collect()).collect()
}

/// Employees-like endpoint: record offset, 0-based current_page.
fn employees_reply(req: &Req, total: i64) -> Reply {
    let limit: i64 = param(&req.query, "limit").map(|v| v.parse().unwrap()).unwrap_or(50);
    let offset: i64 = param(&req.query, "offset").map(|v| v.parse().unwrap()).unwrap_or(0);
    let data: Vec<Value> = (offset..(offset + limit).min(total)).map(|i| json!({"id": i})).collect();
    Reply::Json(
        200,
        json!({"success": true,
               "metadata": {"total_elements": total, "current_page": offset / limit, "total_pages": (total + limit - 1) / limit},
               "offset": offset, "limit": limit, "data": data}),
    )
}

/// Time-offs-like endpoint: offset is a 1-based page number (0 reads as 1).
fn timeoffs_reply(req: &Req, total: i64) -> Reply {
    let limit: i64 = param(&req.query, "limit").map(|v| v.parse().unwrap()).unwrap_or(200);
    let page: i64 = param(&req.query, "offset").map(|v| v.parse().unwrap()).unwrap_or(1).max(1);
    let start = (page - 1) * limit;
    let data: Vec<Value> = (start..(start + limit).min(total)).map(|i| json!({"id": i})).collect();
    Reply::Json(
        200,
        json!({"success": true,
               "metadata": {"total_elements": total, "current_page": page, "total_pages": (total + limit - 1) / limit},
               "offset": page, "limit": limit, "data": data}),
    )
}

fn with_auth(f: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> impl Fn(&Req, usize) -> Reply + Send + Sync + 'static {
    move |req, n| if req.path == "/v1/auth" { auth_ok("papi-t") } else { f(req, n) }
}

#[tokio::test]
async fn record_mode_pages_employees_with_exact_queries() {
    let fake = Fake::start(with_auth(|req, _| employees_reply(req, 5))).await;
    let client = fake.client();
    let pages = collect(client.v1_pages(
        "company/employees",
        params(&[("limit", "2"), ("updated_since", "2024-01-02T03:04:05")]),
        PagingMode::RecordOffset { limit: Some(2) },
    ))
    .await
    .unwrap();
    assert_eq!(ids(&pages), vec![vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(
        fake.queries("/v1/company/employees"),
        [
            "limit=2&updated_since=2024-01-02T03%3A04%3A05&offset=0&page=0",
            "limit=2&updated_since=2024-01-02T03%3A04%3A05&offset=2&page=1",
            "limit=2&updated_since=2024-01-02T03%3A04%3A05&offset=4&page=2",
        ]
    );
    assert_eq!(pages[2].index, 2);
    assert_eq!(pages[2].offset, Some(4));
    assert_eq!(pages[2].page, Some(2));
    assert_eq!(pages[2].metadata.as_ref().unwrap().current_page, Some(2));
    assert!(pages[2].raw.get("data").is_none(), "data is moved out of raw");
    assert_eq!(pages[2].raw["metadata"]["total_pages"], 3);
    assert!(pages[0].url.ends_with("/v1/company/employees?limit=2&updated_since=2024-01-02T03%3A04%3A05&offset=0&page=0"));
}

#[tokio::test]
async fn record_mode_inserts_limit_first_when_missing_and_keeps_caller_order() {
    let fake = Fake::start(with_auth(|req, _| employees_reply(req, 3))).await;
    let client = fake.client();
    let pages = collect(client.v1_pages(
        "company/attendances",
        params(&[("start_date", "2000-01-01"), ("end_date", "2024-06-30"), ("includePending", "True")]),
        PagingMode::RecordOffset { limit: Some(200) },
    ))
    .await
    .unwrap();
    assert_eq!(pages.len(), 1);
    // dlt-compat §2.2's example first attendances call, byte for byte.
    assert_eq!(
        fake.queries("/v1/company/attendances"),
        ["limit=200&start_date=2000-01-01&end_date=2024-06-30&includePending=True&offset=0&page=0"]
    );
}

#[tokio::test]
async fn record_mode_stops_on_empty_data_and_on_missing_metadata() {
    // metadata claims 10 pages but the second page is empty: stop after it (emitted).
    let fake = Fake::start(with_auth(|_, n| {
        let data = if n == 0 { json!([{"id": 1}]) } else { json!([]) };
        Reply::Json(200, json!({"success": true, "metadata": {"current_page": n, "total_pages": 10}, "data": data}))
    }))
    .await;
    let pages = collect(fake.client().v1_pages("company/employees", vec![], PagingMode::RecordOffset { limit: Some(1) })).await.unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[1].data.is_empty());
    assert_eq!(fake.queries("/v1/company/employees"), ["limit=1&offset=0&page=0", "limit=1&offset=1&page=1"]);

    // No metadata (time-off-types, balances, projects): exactly one call, offset/page still sent.
    let fake = Fake::start(with_auth(|_, _| ok_data(json!([{"id": 1}, {"id": 2}])))).await;
    let pages = collect(fake.client().v1_pages(
        "company/time-off-types",
        params(&[("limit", "200")]),
        PagingMode::RecordOffset { limit: Some(200) },
    ))
    .await
    .unwrap();
    assert_eq!(ids(&pages), vec![vec![1, 2]]);
    assert!(pages[0].metadata.is_none());
    assert_eq!(fake.queries("/v1/company/time-off-types"), ["limit=200&offset=0&page=0"]);

    // Empty metadata object, or metadata without paging fields (F8): last page.
    let fake = Fake::start(with_auth(|req, _| {
        if req.path.ends_with("/a") {
            Reply::Json(200, json!({"success": true, "metadata": {}, "data": [{"id": 1}]}))
        } else {
            Reply::Json(200, json!({"success": true, "metadata": {"total_elements": 9}, "data": [{"id": 1}]}))
        }
    }))
    .await;
    let client = fake.client();
    assert_eq!(collect(client.v1_pages("company/a", vec![], PagingMode::RecordOffset { limit: Some(1) })).await.unwrap().len(), 1);
    assert_eq!(collect(client.v1_pages("company/b", vec![], PagingMode::RecordOffset { limit: Some(1) })).await.unwrap().len(), 1);
    assert_eq!(fake.requests().len(), 3, "one auth + one call each");
}

#[tokio::test]
async fn page_number_mode_one_based_time_offs() {
    let fake = Fake::start(with_auth(|req, _| timeoffs_reply(req, 5))).await;
    let pages = collect(fake.client().v1_pages(
        "company/time-offs",
        params(&[("limit", "2"), ("updated_from", "2024-05-01")]),
        PagingMode::PageNumber { limit: Some(2) },
    ))
    .await
    .unwrap();
    assert_eq!(ids(&pages), vec![vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(
        fake.queries("/v1/company/time-offs"),
        [
            "limit=2&updated_from=2024-05-01&offset=1&page=1",
            "limit=2&updated_from=2024-05-01&offset=2&page=2",
            "limit=2&updated_from=2024-05-01&offset=3&page=3",
        ]
    );
    assert_eq!(pages.iter().map(|p| p.page.unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test]
async fn page_number_mode_with_zero_based_server_uses_sticky_flag() {
    // A page-mode endpoint that reports 0-based current_page: once current_page == 0 is seen, the
    // call is zero-based and stops at current_page >= total_pages - 1 (no extra request).
    let fake = Fake::start(with_auth(|req, _| {
        let page: i64 = param(&req.query, "page").unwrap().parse().unwrap();
        Reply::Json(200, json!({"success": true, "metadata": {"current_page": page - 1, "total_pages": 3},
                                "data": [{"id": page}]}))
    }))
    .await;
    let pages = collect(fake.client().v1_pages("company/custom-reports/reports/r1", params(&[("limit", "1")]), PagingMode::PageNumber { limit: None })).await.unwrap();
    assert_eq!(ids(&pages), vec![vec![1], vec![2], vec![3]]);
    assert_eq!(
        fake.queries("/v1/company/custom-reports/reports/r1"),
        ["limit=1&offset=1&page=1", "limit=1&offset=2&page=2", "limit=1&offset=3&page=3"]
    );
}

#[tokio::test]
async fn one_based_metadata_in_record_mode_is_not_cut_short() {
    // current_page never 0 → one-based: 3 total pages → stop at current_page 3.
    let fake = Fake::start(with_auth(|_, n| {
        Reply::Json(200, json!({"success": true, "metadata": {"current_page": n + 1, "total_pages": 3}, "data": [{"id": n}]}))
    }))
    .await;
    let pages = collect(fake.client().v1_pages("company/x", params(&[("limit", "10")]), PagingMode::RecordOffset { limit: None })).await.unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(
        fake.queries("/v1/company/x"),
        ["limit=10&offset=0&page=0", "limit=10&offset=10&page=1", "limit=10&offset=20&page=2"],
        "the step is taken from the caller's limit parameter"
    );
}

#[tokio::test]
async fn report_list_without_limit_advances_offset_by_one_f5() {
    let fake = Fake::start(with_auth(|req, _| {
        let offset: i64 = param(&req.query, "offset").unwrap().parse().unwrap();
        Reply::Json(200, json!({"success": true, "metadata": {"total_elements": 3, "current_page": offset, "total_pages": 3},
                                "data": [{"type": "Report", "attributes": {"id": format!("r{offset}")}}]}))
    }))
    .await;
    let pages = collect(fake.client().v1_pages("company/custom-reports/reports", vec![], PagingMode::RecordOffset { limit: None })).await.unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(
        fake.queries("/v1/company/custom-reports/reports"),
        ["offset=0&page=0", "offset=1&page=1", "offset=2&page=2"]
    );
}

#[tokio::test]
async fn single_mode_makes_one_call_with_offset_and_page_and_wraps_object_data() {
    let fake = Fake::start(with_auth(|_, _| ok_data(json!({"type": "Employee", "attributes": {"id": 5}})))).await;
    let pages = collect(fake.client().v1_pages("company/employees/5", params(&[("attributes[]", "first_name"), ("attributes[]", "last_name")]), PagingMode::Single)).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].data.len(), 1);
    assert_eq!(pages[0].data[0]["attributes"]["id"], 5);
    assert_eq!(pages[0].offset, Some(0));
    assert_eq!(
        fake.queries("/v1/company/employees/5"),
        ["attributes%5B%5D=first_name&attributes%5B%5D=last_name&offset=0&page=0"]
    );
    // Even with paging metadata that promises more pages, Single stops after one call.
    let fake = Fake::start(with_auth(|_, _| {
        Reply::Json(200, json!({"success": true, "metadata": {"current_page": 0, "total_pages": 5}, "data": [{"id": 1}]}))
    }))
    .await;
    let pages = collect(fake.client().v1_pages("company/document-categories", vec![], PagingMode::Single)).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(fake.queries("/v1/company/document-categories"), ["offset=0&page=0"]);
}

#[tokio::test]
async fn paging_error_ends_stream_after_emitted_pages() {
    let fake = Fake::start(with_auth(|_, n| {
        if n == 0 {
            Reply::Json(200, json!({"success": true, "metadata": {"current_page": 0, "total_pages": 3}, "data": [{"id": 0}]}))
        } else {
            v1_error(404, "gone")
        }
    }))
    .await;
    let items: Vec<Result<Page, ClientError>> =
        futures::StreamExt::collect(fake.client().v1_pages("company/employees", vec![], PagingMode::RecordOffset { limit: Some(1) })).await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().status(), Some(404));
}

#[tokio::test]
async fn envelope_errors_surface_in_paging() {
    let fake = Fake::start(with_auth(|_, _| Reply::Json(200, json!({"success": false, "error": {"message": "Report is updating"}})))).await;
    let err = collect(fake.client().v1_pages("company/custom-reports/reports/x", vec![], PagingMode::PageNumber { limit: Some(10) })).await.unwrap_err();
    assert_eq!(err.personio_message(), Some("Report is updating"));
}

fn v2_handler(base: String) -> impl Fn(&Req, usize) -> Reply + Send + Sync + 'static {
    move |req, _| match req.path.as_str() {
        "/v2/auth/token" => Reply::Json(200, json!({"access_token": "papi-v2", "expires_in": 86400})),
        "/v2/persons" => match param(&req.query, "cursor").as_deref() {
            None => Reply::Json(200, json!({"_data": [{"id": "1"}, {"id": "2"}],
                "_meta": {"links": {"self": {"href": format!("{base}/v2/persons?limit=2")},
                                    "next": {"href": format!("{base}/v2/persons?cursor=abc&limit=2")}}}})),
            Some("abc") => Reply::Json(200, json!({"_data": [{"id": "3"}, {"id": "4"}],
                "_meta": {"links": {"next": {"href": "/v2/persons?cursor=def&limit=2"}}}})),
            Some("def") => Reply::Json(200, json!({"_data": [{"id": "5"}], "_meta": {"links": {"self": {"href": "x"}}}})),
            Some(other) => panic!("unexpected cursor {other}"),
        },
        "/v2/evil" => Reply::Json(200, json!({"_data": [{"id": "1"}],
            "_meta": {"links": {"next": {"href": "http://evil.example/v2/evil?cursor=steal"}}}})),
        "/v2/otherport" => Reply::Json(200, json!({"_data": [{"id": "1"}],
            "_meta": {"links": {"next": {"href": "http://127.0.0.1:1/v2/otherport?cursor=x"}}}})),
        "/v2/loop" => Reply::Json(200, json!({"_data": [{"id": "1"}],
            "_meta": {"links": {"next": {"href": "/v2/loop?limit=1"}}}})),
        "/v2/nodata" => Reply::Json(200, json!({"errors": [{"title": "weird"}]})),
        _ => Reply::Json(404, json!({"errors": [{"title": "Not found", "detail": "no route"}]})),
    }
}

#[tokio::test]
async fn v2_cursor_paging_follows_absolute_and_relative_next_links() {
    // The handler needs the server's own base URL for absolute links: fill it in after start.
    let base_cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let cell = base_cell.clone();
    let fake = Fake::start(move |req, n| v2_handler(cell.get().unwrap().clone())(req, n)).await;
    base_cell.set(fake.base()).unwrap();
    let client = fake.client();
    let pages = collect(client.v2_pages("persons", params(&[("limit", "2")]))).await.unwrap();
    let got: Vec<Vec<&str>> = pages.iter().map(|p| p.data.iter().map(|r| r["id"].as_str().unwrap()).collect()).collect();
    assert_eq!(got, vec![vec!["1", "2"], vec!["3", "4"], vec!["5"]]);
    assert_eq!(fake.queries("/v2/persons"), ["limit=2", "cursor=abc&limit=2", "cursor=def&limit=2"]);
    assert!(pages[0].raw.get("_data").is_none());
    assert!(pages[0].raw["_meta"]["links"]["next"]["href"].as_str().unwrap().contains("cursor=abc"));
    for r in fake.requests_to("/v2/persons") {
        assert_eq!(r.header("authorization").unwrap(), "Bearer papi-v2");
    }
    assert_eq!(fake.requests_to("/v2/auth/token").len(), 1);
}

#[tokio::test]
async fn v2_refuses_foreign_next_links() {
    let fake = Fake::start(v2_handler("unused".into())).await;
    let client = fake.client();
    let err = collect(client.v2_pages("evil", vec![])).await.unwrap_err();
    match &err {
        ClientError::ForeignNextLink { next, .. } => assert!(next.starts_with("http://evil.example/")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retryable());
    let err = collect(client.v2_pages("otherport", vec![])).await.unwrap_err();
    assert!(matches!(err, ClientError::ForeignNextLink { .. }), "{err:?}");
    let err = collect(client.v2_pages("loop", params(&[("limit", "1")]))).await.unwrap_err();
    assert!(matches!(err, ClientError::BadNextLink { .. }), "{err:?}");
    let err = collect(client.v2_pages("nodata", vec![])).await.unwrap_err();
    assert!(matches!(&err, ClientError::Envelope { message, .. } if message == "weird"), "{err:?}");
    let err = collect(client.v2_pages("missing", vec![])).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.personio_message(), Some("Not found: no route"));
    // Nothing was requested from elsewhere, and the foreign hosts never saw a token.
    assert!(fake.requests().iter().all(|r| r.path.starts_with("/v2/")));
}

#[tokio::test]
async fn bad_paths_and_base_urls_are_config_errors() {
    assert!(matches!(PersonioClient::new(personio_client::ClientConfig::new("a", "b").with_base_url("not a url")), Err(ClientError::Config(_))));
    let fake = Fake::start(with_auth(|_, _| ok_data(json!([])))).await;
    let err = fake.client().get_v1_json("company/employees?limit=1", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Config(_)));
    // A trailing slash on base_url is fine.
    let mut cfg = fake.config();
    cfg.base_url.push('/');
    PersonioClient::new(cfg).unwrap().get_v1_json("/company/document-categories", &[]).await.unwrap();
    assert_eq!(fake.requests_to("/v1/company/document-categories").len(), 1);
}
