//! Fuzz target: the client's response parsing and paging — the same `V1Pager` / `V2Pager` the page
//! streams run after each response (JSON body → envelope check, records, metadata, next request).
//!
//! Input: one mode byte, then response bodies separated by `0xFF` (never part of UTF-8 JSON). Each
//! body is parsed with `serde_json` as the client does and fed to the pager until it says stop.
//! Invariants: no panic; an error ends paging; every error renders; v1 never accepts a non-empty page
//! identical to an earlier one and requests never go backwards; v2 never follows a link off the
//! base origin nor back to a URL already requested.
#![no_main]

use libfuzzer_sys::fuzz_target;
use personio_client::{PagingMode, V1Pager, V2Pager};
use serde_json::Value;
use url::Url;

const BASE: &str = "https://api.personio.de";

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let bodies = rest.split(|&b| b == 0xFF);
    match mode % 4 {
        3 => v2(bodies),
        m => {
            let limit = u32::from(mode / 4) % 8;
            let limit = (limit > 0).then_some(limit);
            let mode = match m {
                0 => PagingMode::RecordOffset { limit },
                1 => PagingMode::PageNumber { limit },
                _ => PagingMode::Single,
            };
            v1(mode, limit, bodies)
        }
    }
});

fn v1<'a>(mode: PagingMode, limit: Option<u32>, bodies: impl Iterator<Item = &'a [u8]>) {
    let mut pager = V1Pager::new(mode, limit);
    let mut last: Option<(u64, u64)> = None;
    let mut pages: Vec<Vec<Value>> = Vec::new();
    for body in bodies {
        let Some((offset, page)) = pager.next_request() else { break };
        if let Some((o, p)) = last {
            assert!(offset >= o && page >= p, "paging went backwards: {o},{p} → {offset},{page}");
        }
        last = Some((offset, page));
        let url = Url::parse(&format!("{BASE}/v1/company/employees?offset={offset}&page={page}")).expect("static URL");
        let Ok(json) = serde_json::from_slice::<Value>(body) else { break }; // the client retries, then fails
        match pager.on_response(json, &url) {
            Ok(p) => {
                assert_eq!(p.index as usize, pages.len());
                assert_eq!((p.offset, p.page), (Some(offset), Some(page)));
                if mode != PagingMode::Single && !p.data.is_empty() {
                    assert!(!pages.contains(&p.data), "a repeated page was accepted");
                }
                pages.push(p.data);
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(pager.next_request().is_none(), "paging continues after {e}");
                break;
            }
        }
        if mode == PagingMode::Single {
            assert!(pager.next_request().is_none(), "Single made a second request");
        }
    }
}

fn v2<'a>(bodies: impl Iterator<Item = &'a [u8]>) {
    let first = Url::parse(&format!("{BASE}/v2/persons?limit=2")).expect("static URL");
    let Ok(mut pager) = V2Pager::new(BASE, first) else { panic!("static base URL") };
    let base = Url::parse(BASE).expect("static URL");
    let mut requested: Vec<Url> = Vec::new();
    for body in bodies {
        let Some(url) = pager.next_request() else { break };
        assert_eq!(url.origin(), base.origin(), "followed a link off the base origin: {url}");
        assert!(!requested.contains(&url), "requested {url} twice (a cycle)");
        requested.push(url.clone());
        let Ok(json) = serde_json::from_slice::<Value>(body) else { break };
        if let Err(e) = pager.on_response(json, &url) {
            let _ = e.to_string();
            assert!(pager.next_request().is_none(), "paging continues after {e}");
            break;
        }
    }
}
