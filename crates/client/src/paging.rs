//! Paging: v1 record-offset and page-number modes (dlt's `get_pages`), v2 cursors.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures::stream::{self, BoxStream, FuturesOrdered, Stream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use url::Url;

use crate::client::{check_v1_envelope, redact, Api, PersonioClient};
use crate::error::ClientError;
use crate::pacing::{classify_v1, Class};

/// A stream of pages; ends after the last page or after the first error.
pub type PageStream = BoxStream<'static, Result<Page, ClientError>>;

/// How a v1 endpoint pages (dlt-compat §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// `offset` is a 0-based record offset (employees, attendances; dlt `offset_by_page=False`).
    /// Starts at `offset=0&page=0`; advances `offset += limit`, `page += 1`. Without a limit
    /// (F5, the report list) `offset` advances by 1.
    RecordOffset {
        /// Page size; when `None`, taken from a `limit` query parameter if the caller passed one.
        limit: Option<u32>,
    },
    /// `offset` is a 1-based page number (time-offs, custom report detail; dlt `offset_by_page=True`).
    /// Starts at `offset=1&page=1`; both advance by 1.
    PageNumber {
        /// Page size; when `None`, taken from a `limit` query parameter if the caller passed one.
        limit: Option<u32>,
    },
    /// Exactly one call, still with `offset=0&page=0` as dlt sends to unpaginated endpoints
    /// (document categories, projects, absence balances). For a bare call use
    /// [`PersonioClient::get_v1_json`].
    Single,
}

/// Paging metadata of a v1 response (`metadata{total_elements, current_page, total_pages}`);
/// numbers or numeric strings are accepted, anything else reads as `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageMetadata {
    /// `metadata.total_elements`.
    pub total_elements: Option<i64>,
    /// `metadata.current_page` (0-based for employees/attendances, 1-based for time-offs).
    pub current_page: Option<i64>,
    /// `metadata.total_pages`.
    pub total_pages: Option<i64>,
}

/// One page of results.
#[derive(Clone, Debug)]
pub struct Page {
    /// The records: v1 `data`, v2 `_data`. A single object is returned as a one-element vector;
    /// `null` as an empty one.
    pub data: Vec<Value>,
    /// v1 paging metadata, if the response had a non-empty `metadata` object.
    pub metadata: Option<PageMetadata>,
    /// The rest of the response body, with `data` / `_data` removed.
    pub raw: Value,
    /// The requested URL (query included, secrets redacted).
    pub url: String,
    /// 0-based index of this page within its stream.
    pub index: u32,
    /// The `offset` parameter sent (v1; `None` for v2).
    pub offset: Option<u64>,
    /// The `page` parameter sent (v1; `None` for v2).
    pub page: Option<u64>,
}

impl Page {
    /// A page without records (a window whose listing was empty).
    pub(crate) fn empty() -> Page {
        Page { data: Vec::new(), metadata: None, raw: Value::Null, url: String::new(), index: 0, offset: None, page: None }
    }
}

impl PagingMode {
    fn limit(&self) -> Option<u32> {
        match self {
            PagingMode::RecordOffset { limit } | PagingMode::PageNumber { limit } => *limit,
            PagingMode::Single => None,
        }
    }
}

struct V1State {
    client: PersonioClient,
    path: String,
    class: Class,
    params: Vec<(String, String)>,
    pager: V1Pager,
}

/// The v1 paging state machine without I/O: which `offset`/`page` to request next, and what a
/// response body means (envelope check, records, metadata, stop test, progress check).
/// [`PersonioClient::v1_pages`] runs exactly this; it is public so the logic can be fuzzed and tested
/// without a server.
#[derive(Clone, Debug)]
pub struct V1Pager {
    mode: PagingMode,
    step: u64,
    offset: u64,
    page: u64,
    zero_based: bool,
    index: u32,
    done: bool,
    /// Fingerprints of the non-empty pages received: a repeat is [`ClientError::PagingStalled`].
    seen: HashSet<u64>,
}

impl V1Pager {
    /// A pager for `mode`; `limit` is the page size actually sent (the mode's, or the caller's
    /// `limit` parameter), which sets the record-offset step.
    pub fn new(mode: PagingMode, limit: Option<u32>) -> Self {
        let (start, step) = match mode {
            PagingMode::RecordOffset { .. } => (0, u64::from(limit.unwrap_or(1).max(1))),
            PagingMode::PageNumber { .. } => (1, 1),
            PagingMode::Single => (0, 0),
        };
        Self { mode, step, offset: start, page: start, zero_based: false, index: 0, done: false, seen: HashSet::new() }
    }

    /// The `(offset, page)` to request next, or `None` once paging has ended (last page or error).
    pub fn next_request(&self) -> Option<(u64, u64)> {
        (!self.done).then_some((self.offset, self.page))
    }

    /// Interprets the parsed body of the response to the request [`next_request`](Self::next_request)
    /// named, fetched from `url`, and advances. An error ends paging.
    pub fn on_response(&mut self, body: Value, url: &Url) -> Result<Page, ClientError> {
        let result = self.step(body, url);
        if result.is_err() {
            self.done = true;
        }
        result
    }

    fn step(&mut self, body: Value, url: &Url) -> Result<Page, ClientError> {
        check_v1_envelope(&body, url)?;
        let paged = self.mode != PagingMode::Single;
        let (data, raw) = split_body(body, "data", url)?;
        let metadata = raw.get("metadata").and_then(parse_metadata);
        if paged && !data.is_empty() && !self.seen.insert(fingerprint(&data)) {
            return Err(ClientError::PagingStalled { url: redact(url), index: self.index });
        }
        let page = Page {
            data,
            metadata: metadata.clone(),
            raw,
            url: redact(url),
            index: self.index,
            offset: Some(self.offset),
            page: Some(self.page),
        };
        self.index = self.index.saturating_add(1);
        self.done = !paged || {
            match metadata.as_ref().and_then(|m| m.current_page.zip(m.total_pages)) {
                None => true,
                Some((current, total)) => {
                    if current == 0 {
                        self.zero_based = true;
                    }
                    let last = total.saturating_sub(i64::from(self.zero_based));
                    current >= last || page.data.is_empty()
                }
            }
        };
        if !self.done {
            self.offset = self.offset.saturating_add(self.step);
            self.page = self.page.saturating_add(1);
        }
        Ok(page)
    }
}

/// The v2 cursor paging state machine without I/O: the next URL to request, and what a response
/// body means (`_data`, `_meta.links.next.href` resolved, same-origin and cycle checks).
/// [`PersonioClient::v2_pages`] runs exactly this; public so it can be fuzzed and tested.
#[derive(Clone, Debug)]
pub struct V2Pager {
    base: Url,
    base_text: String,
    next: Option<Url>,
    index: u32,
    /// Every URL requested so far: a next link back to one of them is a cycle.
    seen: HashSet<Url>,
}

impl V2Pager {
    /// A pager starting at `first`; next links must stay on the origin of `base_url` (the client's
    /// configured base URL, e.g. `https://api.personio.de`).
    pub fn new(base_url: &str, first: Url) -> Result<Self, ClientError> {
        let trimmed = base_url.trim_end_matches('/');
        let base = Url::parse(&format!("{trimmed}/"))
            .map_err(|e| ClientError::Config(format!("base_url {base_url:?}: {e}")))?;
        Ok(Self::with_base(base, base_url.to_string(), first))
    }

    pub(crate) fn with_base(base: Url, base_text: String, first: Url) -> Self {
        Self { base, base_text, next: Some(first), index: 0, seen: HashSet::new() }
    }

    /// Whether another page is due (the last response had a next link, or nothing was requested yet).
    pub fn has_next(&self) -> bool {
        self.next.is_some()
    }

    /// The URL to request next (marked as requested), or `None` once paging has ended.
    pub fn next_request(&mut self) -> Option<Url> {
        let url = self.next.take()?;
        self.seen.insert(url.clone());
        Some(url)
    }

    /// Interprets the parsed body of the response to the last [`next_request`](Self::next_request),
    /// fetched from `url`. An error ends paging.
    pub fn on_response(&mut self, body: Value, url: &Url) -> Result<Page, ClientError> {
        self.next = None;
        let (data, raw) = split_body(body, "_data", url)?;
        let href = raw
            .pointer("/_meta/links/next/href")
            .and_then(Value::as_str)
            .filter(|h| !h.trim().is_empty())
            .map(str::to_string);
        if let Some(href) = href {
            let next = self.resolve_next(url, &href)?;
            if self.seen.contains(&next) {
                return Err(ClientError::BadNextLink {
                    next: href,
                    url: redact(url),
                    message: "it points to a page already fetched in this listing (a cycle of next \
                              links would loop forever)"
                        .into(),
                });
            }
            if !data.is_empty() {
                self.next = Some(next);
            }
        }
        let page = Page { data, metadata: None, raw, url: redact(url), index: self.index, offset: None, page: None };
        self.index = self.index.saturating_add(1);
        Ok(page)
    }

    fn resolve_next(&self, current: &Url, href: &str) -> Result<Url, ClientError> {
        let base = &self.base;
        let next = base.join(href.trim()).map_err(|e| ClientError::BadNextLink {
            next: href.to_string(),
            url: redact(current),
            message: e.to_string(),
        })?;
        let same_origin = next.scheme() == base.scheme()
            && next.host_str().map(str::to_ascii_lowercase) == base.host_str().map(str::to_ascii_lowercase)
            && next.port_or_known_default() == base.port_or_known_default();
        if !same_origin {
            return Err(ClientError::ForeignNextLink {
                next: redact(&next),
                url: redact(current),
                base: self.base_text.clone(),
            });
        }
        if &next == current {
            return Err(ClientError::BadNextLink {
                next: href.to_string(),
                url: redact(current),
                message: "it points to the page just fetched (would loop forever)".into(),
            });
        }
        Ok(next)
    }
}

impl PersonioClient {
    /// Streams the pages of a v1 GET endpoint, exactly as dlt's `get_pages` does (dlt-compat §2.3):
    /// query = `params` in the given order, then `offset`, then `page` (in every mode, as dlt does). If the mode has a limit and `params` has no `limit` key, `limit`
    /// is put first (dlt's order). Each page is emitted before the stop test; paging stops when
    /// `metadata` is missing or lacks `current_page`/`total_pages`, when
    /// `current_page >= total_pages - 1` (zero-based, sticky once a `current_page == 0` is seen) or
    /// `>= total_pages` (one-based), or when `data` is empty.
    /// Every response passes the F8 envelope check; a non-empty page identical to an earlier one is
    /// [`ClientError::PagingStalled`] (the logic is [`V1Pager`]).
    pub fn v1_pages(&self, path: &str, params: Vec<(String, String)>, mode: PagingMode) -> PageStream {
        let mut params = params;
        let from_params = params
            .iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.trim().parse::<u32>().ok());
        let limit = mode.limit().or(from_params);
        if let (Some(l), false) = (mode.limit(), params.iter().any(|(k, _)| k == "limit")) {
            params.insert(0, ("limit".to_string(), l.to_string()));
        }
        let state = V1State {
            client: self.clone(),
            class: classify_v1(path),
            path: path.to_string(),
            params,
            pager: V1Pager::new(mode, limit),
        };
        stream::try_unfold(state, |mut st| async move {
            let Some((offset, page)) = st.pager.next_request() else { return Ok(None) };
            let mut q = st.params.clone();
            q.push(("offset".into(), offset.to_string()));
            q.push(("page".into(), page.to_string()));
            let url = st.client.build_url(Api::V1, &st.path, &q)?;
            let fetched = st.client.get(Api::V1, st.class, url).await?;
            let page = st.pager.on_response(fetched.body()?, &fetched.url)?;
            Ok(Some((page, st)))
        })
        .boxed()
    }

    /// Streams the pages of a v2 GET endpoint: the first request is `{base_url}/v2/{path}?{params}`;
    /// then `_meta.links.next.href` is followed until absent. Relative links resolve against the
    /// base URL; a link to another scheme/host/port is refused with [`ClientError::ForeignNextLink`],
    /// a link to a page already fetched (a cycle) with [`ClientError::BadNextLink`].
    /// A response without `_data` is a [`ClientError::Envelope`]. The logic is [`V2Pager`].
    pub fn v2_pages(&self, path: &str, params: Vec<(String, String)>) -> PageStream {
        let first = match self.build_url(Api::V2, path, &params) {
            Ok(u) => u,
            Err(e) => return stream::once(async move { Err(e) }).boxed(),
        };
        let pager = V2Pager::with_base(self.inner.base.clone(), self.inner.config.base_url.clone(), first);
        stream::try_unfold((self.clone(), pager), |(client, mut pager)| async move {
            let Some(url) = pager.next_request() else { return Ok(None) };
            let fetched = client.get(Api::V2, Class::V2, url).await?;
            let page = pager.on_response(fetched.body()?, &fetched.url)?;
            Ok(Some((page, (client, pager))))
        })
        .boxed()
    }
}

/// Splits the records (`key`) out of a response body.
fn split_body(body: Value, key: &str, url: &Url) -> Result<(Vec<Value>, Value), ClientError> {
    let Value::Object(mut map) = body else {
        return Err(ClientError::Envelope {
            url: redact(url),
            message: "the response is not a JSON object".into(),
            body,
        });
    };
    let data = match map.remove(key) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) => Vec::new(),
        Some(obj @ Value::Object(_)) => vec![obj],
        Some(other) => {
            map.insert(key.to_string(), other);
            return Err(ClientError::Envelope {
                url: redact(url),
                message: format!("`{key}` is neither a list nor an object"),
                body: Value::Object(map),
            });
        }
        None => {
            return Err(ClientError::Envelope {
                url: redact(url),
                message: crate::error::extract_message(&Value::Object(map.clone()))
                    .unwrap_or_else(|| format!("the response has no `{key}` field")),
                body: Value::Object(map),
            })
        }
    };
    Ok((data, Value::Object(map)))
}

/// A hash of a page's records, to recognise a page received before.
fn fingerprint(data: &[Value]) -> u64 {
    fn feed(v: &Value, h: &mut impl Hasher) {
        match v {
            Value::Null => h.write_u8(0),
            Value::Bool(b) => {
                h.write_u8(1);
                b.hash(h);
            }
            Value::Number(n) => {
                h.write_u8(2);
                n.hash(h);
            }
            Value::String(s) => {
                h.write_u8(3);
                s.hash(h);
            }
            Value::Array(a) => {
                h.write_u8(4);
                h.write_usize(a.len());
                a.iter().for_each(|x| feed(x, h));
            }
            Value::Object(m) => {
                h.write_u8(5);
                h.write_usize(m.len());
                for (k, x) in m {
                    k.hash(h);
                    feed(x, h);
                }
            }
        }
    }
    // foldhash, not SipHash: every page is hashed, and the fingerprints only meet each other in this run.
    let mut h = foldhash::quality::FixedState::with_seed(0x5eed_0f_9a6e).build_hasher();
    h.write_usize(data.len());
    data.iter().for_each(|v| feed(v, &mut h));
    h.finish()
}

fn parse_metadata(v: &Value) -> Option<PageMetadata> {
    let map: &Map<String, Value> = v.as_object()?;
    if map.is_empty() {
        return None;
    }
    let num = |k: &str| match map.get(k)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Some(PageMetadata {
        total_elements: num("total_elements"),
        current_page: num("current_page"),
        total_pages: num("total_pages"),
    })
}

impl V1Pager {
    /// The requests still due after the page just received, as the metadata announces them:
    /// `(offset, page)` pairs in order (empty once paging has ended or without metadata).
    fn planned(&self, metadata: Option<&PageMetadata>) -> impl Iterator<Item = (u64, u64)> {
        let (offset, page, step) = (self.offset, self.page, self.step);
        let remaining = match (self.next_request(), metadata.and_then(|m| m.current_page.zip(m.total_pages))) {
            (Some(_), Some((current, total))) => {
                let last = total.saturating_sub(i64::from(self.zero_based));
                u64::try_from(last.saturating_sub(current)).unwrap_or(0)
            }
            _ => 0,
        };
        (0..remaining).map(move |i| (offset.saturating_add(step.saturating_mul(i)), page.saturating_add(i)))
    }
}

fn lock(p: &std::sync::Mutex<V1Pager>) -> std::sync::MutexGuard<'_, V1Pager> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl PersonioClient {
    /// Like [`v1_pages`](Self::v1_pages) (same requests, same pages, same order, same stop rules), but
    /// once the first page has announced `total_pages`, up to `concurrency` of the remaining pages are
    /// requested at a time. Every request still passes the client's one rate limiter, so concurrency
    /// hides latency without exceeding the allowance. Responses are interpreted in order by the same
    /// [`V1Pager`]: if a page ends paging early (e.g. it came back empty), the rest is dropped; if the
    /// listing grew past the announced pages, paging continues one page at a time.
    pub fn v1_pages_concurrent(
        &self,
        path: &str,
        params: Vec<(String, String)>,
        mode: PagingMode,
        concurrency: usize,
    ) -> PageStream {
        if concurrency <= 1 || mode == PagingMode::Single {
            return self.v1_pages(path, params, mode);
        }
        let mut params = params;
        let from_params = params.iter().find(|(k, _)| k == "limit").and_then(|(_, v)| v.trim().parse::<u32>().ok());
        let limit = mode.limit().or(from_params);
        if let (Some(l), false) = (mode.limit(), params.iter().any(|(k, _)| k == "limit")) {
            params.insert(0, ("limit".to_string(), l.to_string()));
        }
        let client = self.clone();
        let class = classify_v1(path);
        let path = path.to_string();
        let sizes = Arc::new(PageSizes::default());
        let fetch = {
            let sizes = sizes.clone();
            move |(offset, page): (u64, u64)| {
                let (client, path, mut q, sizes) = (client.clone(), path.clone(), params.clone(), sizes.clone());
                async move {
                    q.push(("offset".into(), offset.to_string()));
                    q.push(("page".into(), page.to_string()));
                    let url = client.build_url(Api::V1, &path, &q)?;
                    let fetched = client.get(Api::V1, class, url).await?;
                    sizes.record(fetched.len);
                    Ok::<_, ClientError>(((offset, page), fetched))
                }
            }
        };
        let pager = std::sync::Arc::new(std::sync::Mutex::new(V1Pager::new(mode, limit)));
        let first = {
            let (pager, fetch) = (pager.clone(), fetch.clone());
            async move {
                let Some(request) = lock(&pager).next_request() else { return Ok(stream::empty().boxed()) };
                let (_, fetched) = fetch(request).await?;
                let page = lock(&pager).on_response(fetched.body()?, &fetched.url)?;
                // Lazy: a hostile `total_pages` costs nothing until pages actually arrive.
                let planned = lock(&pager).planned(page.metadata.as_ref());
                // The announced pages, up to `concurrency` requested ahead of the consumer — fewer when the
                // pages are large (`LOOKAHEAD_BYTES`) — interpreted in request order.
                let interpret = pager.clone();
                let width = move || sizes.lookahead(concurrency);
                let rest = buffered_adaptive(stream::iter(planned).map(fetch.clone()), width).scan((), move |_, result| {
                    let mut p = lock(&interpret);
                    let out = match result {
                        Err(e) => Some(Err(e)),
                        Ok((request, fetched)) if p.next_request() == Some(request) => Some(fetched.body().and_then(|body| p.on_response(body, &fetched.url))),
                        Ok(_) => None,
                    };
                    futures::future::ready(out)
                });
                // Anything beyond the announcement, one page at a time.
                let tail = stream::try_unfold((pager, fetch), |(pager, fetch)| async move {
                    let Some(request) = lock(&pager).next_request() else { return Ok(None) };
                    let (_, fetched) = fetch(request).await?;
                    let page = lock(&pager).on_response(fetched.body()?, &fetched.url)?;
                    Ok(Some((page, (pager, fetch))))
                });
                Ok::<PageStream, ClientError>(stream::once(futures::future::ready(Ok(page))).chain(rest).chain(tail).boxed())
            }
        };
        stream::once(first).try_flatten().boxed()
    }
}

/// Response bytes of one listing's pages that may be requested ahead of its consumer: a page that has
/// arrived waits, as its bytes (parsed only when consumed), until the pages before it are consumed, so
/// when the consumer is slower than the server (loopback, a busy normalizer) the lookahead is what the
/// listing holds in memory. 4 MiB of bodies keeps 32 pages of time-offs or attendances ahead (hiding
/// latency as before) but only two pages of wide employee records, whatever the company's size.
pub const LOOKAHEAD_BYTES: u64 = 4 << 20;

/// The sizes of a listing's pages so far, for [`PageSizes::lookahead`].
#[derive(Default)]
struct PageSizes {
    bytes: AtomicU64,
    pages: AtomicU64,
}

impl PageSizes {
    fn record(&self, len: usize) {
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.pages.fetch_add(1, Ordering::Relaxed);
    }

    /// Pages to keep requested ahead: [`LOOKAHEAD_BYTES`] over the mean page size so far, between 2 and
    /// `max`.
    fn lookahead(&self, max: usize) -> usize {
        let max = max.max(1);
        let pages = self.pages.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        if pages == 0 || bytes == 0 {
            return max;
        }
        let fit = usize::try_from(LOOKAHEAD_BYTES / (bytes / pages).max(1)).unwrap_or(usize::MAX);
        fit.clamp(2.min(max), max)
    }
}

/// Like [`StreamExt::buffered`], but the number of futures run ahead is `width()` read at each admission,
/// so it can shrink and grow while the stream runs. Outputs keep the order of `futures`.
fn buffered_adaptive<S>(futures: S, width: impl Fn() -> usize + Send + 'static) -> impl Stream<Item = <S::Item as Future>::Output> + Send
where
    S: Stream + Send + 'static,
    S::Item: Future + Send,
    <S::Item as Future>::Output: Send,
{
    let mut source = Box::pin(futures.fuse());
    let mut queue = FuturesOrdered::new();
    stream::poll_fn(move |cx| {
        while queue.len() < width().max(1) {
            match source.as_mut().poll_next(cx) {
                Poll::Ready(Some(f)) => queue.push_back(f),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        match queue.poll_next_unpin(cx) {
            Poll::Ready(Some(out)) => Poll::Ready(Some(out)),
            // The queue is empty: done when the source is, else the source's waker wakes us.
            Poll::Ready(None) if source.is_done() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookahead_follows_the_page_size() {
        let sizes = PageSizes::default();
        assert_eq!(sizes.lookahead(32), 32, "nothing seen yet: the configured width");
        sizes.record(30_000);
        assert_eq!(sizes.lookahead(32), 32, "small pages: the configured width");
        let wide = PageSizes::default();
        wide.record(1 << 20);
        assert_eq!(wide.lookahead(32), 4);
        let huge = PageSizes::default();
        huge.record(64 << 20);
        assert_eq!(huge.lookahead(32), 2, "never below two");
        assert_eq!(huge.lookahead(1), 1, "never above the configured width");
    }

    #[tokio::test]
    async fn buffered_adaptive_keeps_order_and_its_width() {
        use std::sync::atomic::AtomicUsize;
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let width = Arc::new(AtomicUsize::new(3));
        let (r, p) = (running.clone(), peak.clone());
        let futs = stream::iter(0..20u64).map(move |i| {
            let (running, peak) = (r.clone(), p.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later items finish first: the output order must still be the input order.
                tokio::time::sleep(std::time::Duration::from_millis(20 - i)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                i
            }
        });
        let w = width.clone();
        let out: Vec<u64> = buffered_adaptive(futs, move || w.load(Ordering::SeqCst)).collect().await;
        assert_eq!(out, (0..20).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3, "peak {}", peak.load(Ordering::SeqCst));
        assert!(peak.load(Ordering::SeqCst) >= 2, "ran concurrently");
    }

    #[test]
    fn metadata_lenient() {
        let m = parse_metadata(&json!({"current_page":"1","total_pages":2.0})).unwrap();
        assert_eq!(m.current_page, Some(1));
        assert_eq!(m.total_pages, Some(2));
        assert_eq!(m.total_elements, None);
        assert!(parse_metadata(&json!({})).is_none());
        assert!(parse_metadata(&json!(null)).is_none());
    }
}
