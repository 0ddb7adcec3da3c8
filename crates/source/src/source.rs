//! The generic extractor: runs the declarations of [`crate::resources`] through the Personio client.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use futures::{StreamExt, TryStreamExt};
use personio_client::{ClientError, PagingMode, PartitionOptions, PersonioClient};
use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::reconcile::{key_text, KeyOutcome, ReconcileSpec, Schedule};
use serde_json::Value;

/// Pages of an incrementally filtered v2 listing read in one chain before it is split into windows:
/// up to 10,000 changed records cost exactly their pages (see `PartitionOptions::probe_pages`). Windows
/// re-read the listing from its start, so a split after the probe costs the probe's pages again plus a
/// partial page per window (`large`, 1 % changed: 3,017 periods took 107 requests with 25 probe pages,
/// 31 in one chain). At 300 ms a page, 100 pages are 30 s in one chain before the listing is split.
const INCREMENTAL_PROBE_PAGES: u32 = 100;

use crate::resources::{Api, Bound, KeySource, Paging, Resource, Shape, TimeFormat, UpdatedFilter, RESOURCES};
use crate::shape;

/// Errors of the Personio source.
#[derive(Debug, thiserror::Error)]
pub enum PersonioSourceError {
    /// The API call failed.
    #[error("{resource}: {source}")]
    Api {
        /// Resource.
        resource: &'static str,
        /// Client error.
        #[source]
        source: ClientError,
    },
    /// A record could not be shaped.
    #[error(transparent)]
    Shape(#[from] shape::ShapeError),
    /// Personio answered 403 on a data endpoint: the credential lacks the endpoint's scope.
    #[error("{resource}: Personio refused GET {url} (HTTP 403{}): the API credential lacks the scope `{scope}`. \
             Grant it to this credential in Personio (Settings > Integrations > API credentials), or leave \
             `{resource}` out of --resources; nothing was loaded",
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    MissingScope {
        /// Resource.
        resource: &'static str,
        /// The scope the endpoint needs (Personio's name).
        scope: &'static str,
        /// The refused URL (secrets redacted).
        url: String,
        /// Personio's message, if any.
        message: Option<String>,
    },
    /// A retired v1 resource was selected.
    #[error("resource `{resource}` calls a v1 endpoint Personio retired on 2026-08-30; select `{replacement}` instead (or pass --allow-retired-v1 for a tenant or sandbox that still serves it)")]
    Retired {
        /// The retired resource.
        resource: String,
        /// Its v2 replacement.
        replacement: String,
    },
    /// The incremental filter failed.
    #[error(transparent)]
    Incremental(#[from] pipeline_engine::incremental::IncrementalError),
    /// The engine stopped taking records (its own error is reported by the pipeline).
    #[error("{resource}: the pipeline stopped taking records: {message}")]
    Stopped {
        /// Resource being emitted.
        resource: &'static str,
        /// The engine's message.
        message: String,
    },
}

/// Key of a versioned transformer's resource state ([`Resource::parent_version`]; `custom_reports`, hence
/// the name): per parent id, the version its rows were last loaded at. A parent still at that version is
/// not called again — unless the transformer's reconciliation is due (it needs every call's rows), or
/// `refresh_all_reports` is set.
pub const PARENT_VERSIONS: &str = "report_versions";

/// One versioned transformer during its parent's run.
struct Versioned {
    child: &'static str,
    /// Parent id → version its rows were loaded at (empty when every call is due).
    loaded: serde_json::Map<String, Value>,
    /// Parent id → version listed by this run.
    listed: Mutex<serde_json::Map<String, Value>>,
}

/// Called after each page: (resource, rows in the page).
pub type ProgressFn = Arc<dyn Fn(&str, usize) + Send + Sync>;

/// Options of the Personio source (`sources.personio.*`).
#[derive(Clone)]
pub struct SourceOptions {
    /// Page size (`items_per_page`, dlt default 200); capped per endpoint (employees ≤ 100).
    pub items_per_page: u32,
    /// First day of attendances (dlt: 2000-01-01).
    pub start_date: NaiveDate,
    /// Last day of attendances (default: today, UTC).
    pub end_date: Option<NaiveDate>,
    /// Allow the v1 endpoints Personio retired (old tenants, the sandbox).
    pub allow_retired_v1: bool,
    /// Fetch balances for every employee, not only new or changed ones.
    pub refresh_all_balances: bool,
    /// Fetch every custom report's rows, not only those of reports Personio refreshed since the last
    /// load (see [`PARENT_VERSIONS`]).
    pub refresh_all_reports: bool,
    /// Transformer calls (balances, report rows, employments) one listing may have in flight at once,
    /// across its parent pages; results keep parent order. The client's adaptive limit
    /// (`max_concurrency`) applies on top, so this only caps it.
    pub transformer_concurrency: usize,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceOptions")
            .field("items_per_page", &self.items_per_page)
            .field("start_date", &self.start_date)
            .field("end_date", &self.end_date)
            .field("allow_retired_v1", &self.allow_retired_v1)
            .field("refresh_all_balances", &self.refresh_all_balances)
            .field("refresh_all_reports", &self.refresh_all_reports)
            .field("transformer_concurrency", &self.transformer_concurrency)
            .finish()
    }
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            items_per_page: 200,
            start_date: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default(),
            end_date: None,
            allow_retired_v1: false,
            refresh_all_balances: false,
            refresh_all_reports: false,
            transformer_concurrency: 32,
            progress: None,
        }
    }
}

/// The Personio source.
#[derive(Debug, Clone)]
pub struct PersonioSource {
    client: PersonioClient,
    options: SourceOptions,
    page_concurrency: usize,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl PersonioSource {
    /// A source over a client.
    pub fn new(client: PersonioClient, options: SourceOptions) -> Self {
        let page_concurrency = client.config().concurrency.max.max(1);
        PersonioSource { client, options, page_concurrency, warnings: Arc::default() }
    }

    /// How many pages of one listing may be requested at a time (default: the client's
    /// `max_concurrency`; the client's adaptive limit decides how many actually are). v1 listings: pages
    /// after the first, once it announced the total; v2 listings with declared windows: cursor chains
    /// side by side (half this many windows with more than a page). `1` = one page after another, as dlt.
    /// Records keep a deterministic order either way.
    pub fn with_page_concurrency(mut self, n: usize) -> Self {
        self.page_concurrency = n.max(1);
        self
    }

    /// The warnings of the runs so far (each also logged once with `tracing::warn!`).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(message);
    }

    /// The client (for its statistics).
    pub fn client(&self) -> &PersonioClient {
        &self.client
    }

    fn limit(&self, r: &Resource) -> u32 {
        self.options.items_per_page.clamp(1, r.max_limit)
    }

    /// The cursor's start value to push into the query, if the resource pushes one.
    fn since(&self, r: &Resource, ctx: &ExtractContext) -> Option<DateTime<Utc>> {
        if self.options.refresh_all_balances && r.name == "employees" {
            return None;
        }
        r.cursor?;
        ctx.start_value(r.name).as_ref().and_then(pipeline_engine::incremental::as_datetime)
    }

    /// Query parameters in dlt's order (§2.4); the client appends `offset` and `page`. Only `limit` and
    /// the endpoint's declared filters are ever sent.
    fn params(&self, r: &Resource, since: Option<DateTime<Utc>>) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        if matches!(r.paging, Paging::RecordOffset | Paging::PageNumber | Paging::Cursor) || r.name == "absence_types" {
            p.push(("limit".into(), self.limit(r).to_string()));
        }
        if r.name == "attendances" {
            p.push(("start_date".into(), self.options.start_date.format("%Y-%m-%d").to_string()));
            let end = self.options.end_date.unwrap_or_else(|| Utc::now().date_naive());
            p.push(("end_date".into(), end.format("%Y-%m-%d").to_string()));
        }
        if let (Some(since), Some(f)) = (since, r.updated_filter) {
            p.push((f.param.into(), filter_value(since, f)));
        }
        if r.name == "attendances" {
            p.push(("includePending".into(), "True".into()));
        }
        p
    }

    fn mode(&self, r: &Resource) -> PagingMode {
        match r.paging {
            Paging::RecordOffset => PagingMode::RecordOffset { limit: Some(self.limit(r)) },
            Paging::PageNumber => PagingMode::PageNumber { limit: Some(self.limit(r)) },
            Paging::RecordNoLimit => PagingMode::RecordOffset { limit: None },
            Paging::Single | Paging::Cursor => PagingMode::Single,
        }
    }

    fn pages<'a>(
        &'a self,
        r: &'static Resource,
        path: String,
        params: Vec<(String, String)>,
    ) -> futures::stream::BoxStream<'a, Result<Fetched, PersonioSourceError>> {
        self.listing(r, path, params, true)
    }

    /// [`Self::pages`]; `windows: false` reads a v2 listing in one cursor chain, never split into time
    /// windows: exactly one request per page (windows buy wall time with extra requests).
    fn listing<'a>(
        &'a self,
        r: &'static Resource,
        path: String,
        params: Vec<(String, String)>,
        windows: bool,
    ) -> futures::stream::BoxStream<'a, Result<Fetched, PersonioSourceError>> {
        let err = move |source| api_error(r, source);
        let pages = match (r.api, r.windows) {
            (Api::V1, _) => self.client.v1_pages_concurrent(&path, params, self.mode(r), self.page_concurrency),
            (Api::V2, Some(spec)) if windows && self.page_concurrency > 1 => {
                let mut options = PartitionOptions::new(self.anchor());
                options.target_windows = (self.page_concurrency / 2).max(2);
                // An incremental run's listing (the update-time filter is in the query) is mostly a
                // few pages: page more of it before splitting, since every window costs a request of
                // its own (medium, 1 % changed: 99 requests for 14 pages with 3 probe pages).
                if r.updated_filter.is_some_and(|f| params.iter().any(|(k, _)| k == f.param)) {
                    options.probe_pages = INCREMENTAL_PROBE_PAGES;
                }
                self.client.v2_pages_partitioned(&path, params, spec, options)
            }
            (Api::V2, _) => self.client.v2_pages(&path, params),
        };
        pages.map_ok(|p| Fetched { total: p.metadata.and_then(|m| m.total_elements), data: p.data }).map_err(err).boxed()
    }

    /// Where v2 windows are laid out: the end of the data (`end_date`, else now).
    fn anchor(&self) -> DateTime<Utc> {
        match self.options.end_date.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            Some(t) => t.and_utc(),
            None => Utc::now(),
        }
    }

    fn shape_page(r: &Resource, page: Vec<Value>) -> Result<Vec<Value>, PersonioSourceError> {
        let mut shaped = Vec::with_capacity(page.len());
        for item in page {
            shaped.extend(Self::shape(r, &Value::Null, item)?);
        }
        Ok(shaped)
    }

    fn shape(r: &Resource, parent_id: &Value, mut item: Value) -> Result<Vec<Value>, PersonioSourceError> {
        Ok(match r.shape {
            Shape::Employee => vec![shape::employee(item)],
            Shape::Attributes => vec![shape::attributes(item)],
            Shape::Absence => vec![shape::absence(item)?],
            Shape::Attendance => vec![shape::attendance(item)?],
            Shape::Project => vec![shape::project(item)?],
            Shape::DocumentCategory => vec![shape::document_category(item)],
            Shape::Balance => vec![shape::balance(parent_id, item)],
            Shape::ReportItems => match item.pointer_mut("/attributes/items").map(Value::take) {
                Some(Value::Array(items)) => items.into_iter().map(|i| shape::report_item(parent_id, i)).collect(),
                _ => Vec::new(),
            },
            Shape::V2 => vec![shape::v2(item)],
            Shape::V2Employment => {
                let mut v = shape::v2(item);
                if let Value::Object(m) = &mut v {
                    m.insert("person_id".into(), parent_id.clone());
                }
                vec![v]
            }
        })
    }

    fn report(&self, resource: &str, rows: usize) {
        if let Some(p) = &self.options.progress {
            p(resource, rows);
        }
    }

    /// All records of a transformer for one parent id (their keys gathered when `gather` wants them).
    async fn child_records(&self, child: &'static Resource, parent_id: Value, gather: &Gather) -> Result<Vec<Value>, PersonioSourceError> {
        self.child_pages(child, parent_id, gather, None).await
    }

    /// A transformer's call for one parent id: with `emit`, each page's records are emitted as the page
    /// arrives and nothing is returned ([`Resource::streams_calls`]); without, they are collected.
    async fn child_pages(
        &self,
        child: &'static Resource,
        parent_id: Value,
        gather: &Gather,
        emit: Option<&ExtractContext>,
    ) -> Result<Vec<Value>, PersonioSourceError> {
        let id_text = match &parent_id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let path = child.path.replace("{id}", &id_text);
        let params = if matches!(child.paging, Paging::PageNumber | Paging::Cursor) {
            vec![("limit".to_string(), self.limit(child).to_string())]
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        let mut listing = gather.wants(child.name).then(Listing::default);
        let mut pages = self.pages(child, path, params);
        while let Some(page) = pages.next().await {
            let Fetched { data, total } = page?;
            let start = out.len();
            for item in data {
                out.extend(Self::shape(child, &parent_id, item)?);
            }
            if let (Some(l), Some(rc)) = (listing.as_mut(), child.reconcile) {
                l.page(rc.columns, total, &out[start..]);
            }
            if let Some(ctx) = emit {
                let records = std::mem::take(&mut out);
                self.report(child.name, records.len());
                ctx.emit(child.name, records).await.map_err(|e| PersonioSourceError::Stopped { resource: child.name, message: e.to_string() })?;
            }
        }
        if let Some(l) = listing {
            gather.add(child.name, l);
        }
        Ok(out)
    }

    async fn run_resource(&self, r: &'static Resource, ctx: &ExtractContext, needed: &BTreeSet<&str>, gather: &Gather) -> Result<(), PersonioSourceError> {
        let since = self.since(r, ctx);
        let children: Vec<&'static Resource> =
            RESOURCES.iter().filter(|c| c.parent == Some(r.name) && needed.contains(c.name)).collect();
        let has_children = !children.is_empty();
        let mut pages = self.pages(r, r.path.to_string(), self.params(r, since));
        // Set when the records lack the cursor field: no filter, no cursor move, every record kept.
        let mut without_cursor = false;
        let Some(first) = pages.next().await else {
            if gather.wants(r.name) {
                gather.add(r.name, Listing::default());
            }
            return Ok(());
        };
        let first = first?;
        let mut first_total = first.total;
        let mut first = Self::shape_page(r, first.data)?;
        if let Some(cursor) = r.cursor {
            if first.iter().any(|rec| rec.get(cursor).is_none_or(Value::is_null)) {
                without_cursor = true;
                self.warn(missing_cursor_warning(r, cursor));
                if since.is_some() {
                    // The pushed filter would hide unchanged records: start over without it.
                    pages = self.pages(r, r.path.to_string(), self.params(r, None));
                    (first, first_total) = match pages.next().await {
                        Some(page) => {
                            let page = page?;
                            (Self::shape_page(r, page.data)?, page.total)
                        }
                        None => (Vec::new(), None),
                    };
                }
            }
        }
        let shaped_pages = futures::stream::once(futures::future::ready(Ok((first, first_total))))
            .chain(pages.map(|page| page.and_then(|p| Ok((Self::shape_page(r, p.data)?, p.total)))));
        // Versioned transformers (custom reports): per child, the parent versions its rows were loaded at
        // (none when every call is due) and the versions listed now.
        let versioned: Vec<Versioned> = children
            .iter()
            .filter(|c| c.parent_version.is_some())
            .map(|c| {
                let all_due = self.options.refresh_all_reports || ctx.reconcile_due(c.name);
                let loaded = match ctx.resource_state(c.name, PARENT_VERSIONS) {
                    Some(Value::Object(m)) if !all_due => m,
                    _ => serde_json::Map::new(),
                };
                Versioned { child: c.name, loaded, listed: Mutex::new(serde_json::Map::new()) }
            })
            .collect();
        let versioned_ref = &versioned;
        // The listing's own keys, before the incremental filter, when a reconciliation wants them.
        let own: Option<Mutex<Listing>> = gather.wants(r.name).then(|| Mutex::new(Listing::default()));
        let own_ref = &own;
        // Each page becomes work in order: one item per transformer call (children of the page), then the
        // page itself. Calls run concurrently across page boundaries, bounded, and are emitted in order.
        let work = shaped_pages
            .map(move |shaped| -> Vec<Work> {
                let shaped = match shaped {
                    Ok((s, total)) => {
                        if let (Some(l), Some(rc)) = (own_ref.as_ref(), r.reconcile) {
                            l.lock().unwrap_or_else(|e| e.into_inner()).page(rc.columns, total, &s);
                        }
                        s
                    }
                    Err(e) => return vec![Work::Failed(e)],
                };
                if let (Some(cursor), false) = (r.cursor, without_cursor) {
                    if shaped.iter().any(|rec| rec.get(cursor).is_none_or(Value::is_null)) {
                        without_cursor = true;
                        self.warn(missing_cursor_warning(r, cursor));
                    }
                }
                let all_ids: Vec<Value> = if self.options.refresh_all_balances {
                    shaped.iter().filter_map(|rec| rec.get("id").cloned()).collect()
                } else {
                    Vec::new()
                };
                let kept = if without_cursor {
                    shaped
                } else {
                    match ctx.filter(r.name, shaped) {
                        Ok(k) => k,
                        Err(e) => return vec![Work::Failed(e.into())],
                    }
                };
                self.report(r.name, kept.len());
                let mut items = Vec::new();
                for child in &children {
                    let ids = if self.options.refresh_all_balances && child.name == "employees_absences_balance" {
                        all_ids.clone()
                    } else if let (Some(version_of), Some(v)) = (child.parent_version, versioned_ref.iter().find(|v| v.child == child.name)) {
                        kept.iter().filter_map(|rec| {
                            let id = rec.get("id")?;
                            let key = id.as_str().map_or_else(|| id.to_string(), str::to_string);
                            let version = version_of(rec);
                            let unchanged = version.as_ref().is_some_and(|ver| v.loaded.get(&key).and_then(Value::as_str) == Some(ver.as_str()));
                            if let Some(ver) = version {
                                v.listed.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), Value::String(ver));
                            }
                            if unchanged {
                                gather.skipped(child.name);
                                tracing::debug!(resource = child.name, parent = %key, "parent unchanged since its rows were loaded: not called");
                                return None;
                            }
                            Some(id.clone())
                        }).collect()
                    } else {
                        kept.iter().filter_map(|rec| rec.get("id").cloned()).collect()
                    };
                    items.extend(ids.into_iter().map(|id| Work::Child(child, id)));
                }
                items.push(Work::Parent(kept));
                items
            })
            .flat_map(futures::stream::iter);
        // Calls run side by side; a listing without transformers takes one page at a time here (its pages
        // are already fetched ahead by the client, bounded by bytes: a wider window would only hold up to
        // `width` more shaped pages, `absences` ~20 MB on `large`).
        let width = if has_children { self.options.transformer_concurrency.max(1) } else { 1 };
        let mut results = work
            .map(|item| async move {
                match item {
                    // Long calls are run by the consumer, in order, page by page.
                    Work::Child(child, id) if child.streams_calls() => Ok(Done::Stream(child, id)),
                    Work::Child(child, id) => self.child_records(child, id, gather).await.map(|records| Done::Records(child.name, records)),
                    Work::Parent(records) => Ok(Done::Records(r.name, records)),
                    Work::Failed(e) => Err(e),
                }
            })
            .buffered(width);
        while let Some(result) = results.next().await {
            let (name, records) = match result? {
                Done::Records(name, records) => (name, records),
                Done::Stream(child, id) => {
                    self.child_pages(child, id, gather, Some(ctx)).await?;
                    continue;
                }
            };
            if name != r.name {
                self.report(name, records.len());
            }
            ctx.emit(name, records).await.map_err(|e| PersonioSourceError::Stopped { resource: name, message: e.to_string() })?;
        }
        drop(results);
        if let Some(l) = own {
            gather.add(r.name, l.into_inner().unwrap_or_else(|e| e.into_inner()));
        }
        for v in versioned {
            // Committed with this run's rows: the next run skips parents still at these versions.
            ctx.set_resource_state(v.child, PARENT_VERSIONS, Value::Object(v.listed.into_inner().unwrap_or_else(|e| e.into_inner())));
        }
        Ok(())
    }

    /// Whether this run's extract reads `r`'s whole listing: a top-level resource without a pushed update
    /// filter (first run, no cursor, `--refresh-all-balances` for employees).
    fn reads_whole_listing(&self, r: &Resource, ctx: &ExtractContext) -> bool {
        r.parent.is_none() && self.since(r, ctx).is_none()
    }

    /// The listing a resource's key set comes from: itself, or its parent for [`KeySource::Parent`].
    fn key_listing(r: &'static Resource) -> Option<&'static Resource> {
        match r.reconcile?.keys {
            KeySource::Listing(_) | KeySource::Extract => Some(r),
            KeySource::Parent => r.parent.and_then(crate::resources::find).filter(|p| matches!(p.reconcile.map(|x| x.keys), Some(KeySource::Listing(_)))),
        }
    }

    /// Whether `r`'s key set comes free with this run's extract.
    fn keys_are_free(&self, r: &'static Resource, ctx: &ExtractContext) -> bool {
        match (r.reconcile.map(|x| x.keys), Self::key_listing(r)) {
            (Some(KeySource::Extract), _) => {
                r.parent.and_then(crate::resources::find).is_some_and(|p| self.reads_whole_listing(p, ctx))
            }
            (Some(_), Some(l)) => self.reads_whole_listing(l, ctx),
            _ => false,
        }
    }

    /// Read a listing for its keys only: every page at the endpoint's largest page, no update filter,
    /// with the declared projection. Returns the keys (or why they cannot be trusted) and the requests it
    /// made (every attempt, counted by the client; passes run one at a time after the extract).
    async fn key_pass(&self, r: &'static Resource) -> (Result<Vec<Vec<String>>, String>, u64) {
        let Some(rc) = r.reconcile else { return (Err(format!("{} declares no reconciliation", r.name)), 0) };
        let before = self.client.stats().requests;
        let mut params = self.params(r, None);
        if let KeySource::Listing(extra) = rc.keys {
            params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        let mut listing = Listing::default();
        // Requests, not wall time, are what a key listing should save: a v2 listing is read in one cursor
        // chain, one request per page (windows cost extra requests: medium persons 50 instead of 20,
        // absence periods 200 instead of 145).
        let mut pages = self.listing(r, r.path.to_string(), params, false);
        let result = loop {
            match pages.next().await {
                None => break listing.finish(),
                Some(Err(e)) => break Err(format!("the key listing failed: {e}")),
                Some(Ok(page)) => match Self::shape_page(r, page.data) {
                    Ok(shaped) => listing.page(rc.columns, page.total, &shaped),
                    Err(e) => break Err(format!("a record of the key listing could not be read: {e}")),
                },
            }
        };
        drop(pages);
        (result, self.client.stats().requests.saturating_sub(before))
    }

    /// After the extract: hand each reconciled resource its key set — free from the extract, or from a
    /// key pass when its reconciliation is due.
    async fn reconcile(&self, ctx: &ExtractContext, gather: Gather, enabled: &[&'static Resource]) {
        let got = gather.got.into_inner().unwrap_or_else(|e| e.into_inner());
        let partial = gather.partial.into_inner().unwrap_or_else(|e| e.into_inner());
        // Listings to read for keys: those of due reconciliations that did not come free.
        let mut passes: BTreeMap<&'static str, (Result<Vec<Vec<String>>, String>, u64)> = BTreeMap::new();
        for r in enabled {
            if self.keys_are_free(r, ctx) || !ctx.reconcile_due(r.name) {
                continue;
            }
            match (r.reconcile.map(|x| x.keys), Self::key_listing(r)) {
                (Some(KeySource::Extract), _) | (_, None) => ctx.submit_keys(
                    r.name,
                    KeyOutcome::Incomplete { reason: "its key set only comes with a run that reads its parent's whole listing".into(), requests: 0 },
                ),
                (_, Some(l)) => {
                    if !passes.contains_key(l.name) {
                        let outcome = self.key_pass(l).await;
                        tracing::info!(resource = l.name, requests = outcome.1, complete = outcome.0.is_ok(), "reconciliation key listing");
                        passes.insert(l.name, outcome);
                    }
                }
            }
        }
        let mut charged: BTreeSet<&'static str> = BTreeSet::new();
        // Owners of a listing first, so a pass shared with a transformer is charged to its own resource.
        let mut order: Vec<&'static Resource> = enabled.to_vec();
        order.sort_by_key(|r| !matches!(r.reconcile.map(|x| x.keys), Some(KeySource::Listing(_))));
        for r in order {
            let Some(l) = Self::key_listing(r) else { continue };
            let (result, requests) = if self.keys_are_free(r, ctx) {
                if partial.contains(l.name) {
                    // Calls were skipped only because no reconciliation is due: nothing to hand in.
                    continue;
                }
                (got.get(l.name).cloned().unwrap_or_else(|| Ok(Vec::new())), 0)
            } else if let Some((result, requests)) = passes.get(l.name) {
                (result.clone(), if charged.insert(l.name) { *requests } else { 0 })
            } else {
                continue;
            };
            let outcome = match result {
                Ok(keys) => KeyOutcome::Complete { keys, requests },
                Err(reason) => KeyOutcome::Incomplete { reason, requests },
            };
            ctx.submit_keys(r.name, outcome);
        }
    }
}

/// One page of a listing: its records and the total it announced (v1 `metadata.total_elements`).
struct Fetched {
    data: Vec<Value>,
    total: Option<i64>,
}

/// Keys read from one listing (a resource's pages, one transformer call, or a key pass), and what says
/// whether every record was seen: v1 pages announce a total, which must not change between pages and
/// must equal the distinct keys read (a record deleted or added mid-listing shifts offset pages).
#[derive(Debug, Default)]
struct Listing {
    keys: Vec<Vec<String>>,
    totals: BTreeSet<i64>,
}

impl Listing {
    fn page(&mut self, columns: &[&str], total: Option<i64>, records: &[Value]) {
        if let Some(t) = total {
            self.totals.insert(t);
        }
        for rec in records {
            if let Some(k) = columns.iter().map(|c| rec.get(*c).and_then(key_text)).collect::<Option<Vec<String>>>() {
                self.keys.push(k);
            }
        }
    }

    /// The keys, or why the listing cannot be trusted to hold every record.
    fn finish(self) -> Result<Vec<Vec<String>>, String> {
        if self.totals.len() > 1 {
            let seen: Vec<String> = self.totals.iter().map(i64::to_string).collect();
            return Err(format!("the listing's total changed while it was read ({}): records were added or deleted meanwhile", seen.join(" → ")));
        }
        if let Some(&total) = self.totals.iter().next() {
            let distinct = self.keys.iter().collect::<HashSet<_>>().len();
            if i64::try_from(distinct).ok() != Some(total) {
                return Err(format!("the listing announced {total} records but {distinct} distinct keys were read"));
            }
        }
        Ok(self.keys)
    }
}

/// Key sets gathered by the extract itself, per listing.
#[derive(Debug, Default)]
struct Gather {
    /// Listings whose keys the extract collects.
    collect: BTreeSet<&'static str>,
    /// Their keys (a transformer: every call's), or the first reason they cannot be trusted.
    got: Mutex<BTreeMap<&'static str, Result<Vec<Vec<String>>, String>>>,
    /// Transformers that skipped calls (unchanged custom reports): their keys from the extract are not the
    /// whole set, so they are not handed in.
    partial: Mutex<BTreeSet<&'static str>>,
}

impl Gather {
    fn wants(&self, listing: &str) -> bool {
        self.collect.contains(listing)
    }

    fn skipped(&self, listing: &'static str) {
        self.partial.lock().unwrap_or_else(|e| e.into_inner()).insert(listing);
    }

    fn add(&self, listing: &'static str, l: Listing) {
        let result = l.finish();
        let mut got = self.got.lock().unwrap_or_else(|e| e.into_inner());
        match (got.get_mut(listing), result) {
            (Some(Ok(keys)), Ok(more)) => keys.extend(more),
            (Some(Err(_)), _) => {}
            (_, result) => {
                got.insert(listing, result);
            }
        }
    }
}

/// A step of a listing, done: records to emit, or a long transformer call to stream.
enum Done {
    Records(&'static str, Vec<Value>),
    Stream(&'static Resource, Value),
}

/// One step of a listing, in emission order.
enum Work {
    /// The records of one transformer call for this parent id.
    Child(&'static Resource, Value),
    /// A page of the listing, shaped and filtered.
    Parent(Vec<Value>),
    /// Shaping or filtering failed.
    Failed(PersonioSourceError),
}

/// The one warning line of a resource whose records come without the cursor field.
fn missing_cursor_warning(r: &Resource, cursor: &str) -> String {
    let what = r.cursor_hint.unwrap_or("make the endpoint return it (check the API credential's readable attributes in Personio)");
    format!(
        "{}: Personio sent records without `{cursor}`, so this run loads all of them (merged by {}) and the \
         incremental cursor stays unchanged; to load only changes, {what}",
        r.name,
        r.primary_key.join(", ")
    )
}

/// The value of an update-time filter: the UTC instant without fractional seconds, in the endpoint's
/// format; for a strict `>` filter one second earlier, so rows at the cursor's own timestamp come back
/// (the engine drops the ones it already loaded by their boundary hashes).
pub(crate) fn filter_value(since: DateTime<Utc>, f: UpdatedFilter) -> String {
    let mut at = since.trunc_subsecs(0);
    if f.bound == Bound::After {
        at -= chrono::Duration::seconds(1);
    }
    match f.format {
        TimeFormat::NaiveUtc => at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        TimeFormat::UtcZ => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        TimeFormat::DateDayBefore => {
            let d = at.date_naive();
            d.pred_opt().unwrap_or(d).format("%Y-%m-%d").to_string()
        }
    }
}

/// The engine's view of every resource (name, key, disposition, cursor, parent, reconciliation), in
/// source order; what [`PersonioSource`] declares, available without a client (settings are checked
/// against it before anything starts).
pub fn resource_specs() -> Vec<ResourceSpec> {
    RESOURCES
        .iter()
        .map(|r| ResourceSpec {
            name: r.name.to_string(),
            primary_key: r.primary_key.iter().map(|s| s.to_string()).collect(),
            write_disposition: r.disposition,
            cursor: r.cursor.map(str::to_string),
            parent: r.parent.map(str::to_string),
            merge: Default::default(),
            reconcile: r.reconcile.map(|rc| ReconcileSpec {
                columns: rc.columns.iter().map(|c| c.to_string()).collect(),
                // The declarations' schedules are checked by a test; an unreadable one never runs.
                schedule: rc.schedule.parse().unwrap_or(Schedule::Never),
            }),
        })
        .collect()
}

/// A client error of a resource; a 403 on a data endpoint names the scope the resource needs.
fn api_error(r: &'static Resource, source: ClientError) -> PersonioSourceError {
    match source {
        ClientError::Http { status: 403, url, message, .. } => {
            PersonioSourceError::MissingScope { resource: r.name, scope: r.scope, url, message }
        }
        source => PersonioSourceError::Api { resource: r.name, source },
    }
}

#[async_trait::async_trait]
impl Source for PersonioSource {
    fn name(&self) -> &str {
        "personio"
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        resource_specs()
    }

    fn default_resources(&self) -> Vec<String> {
        RESOURCES
            .iter()
            .filter(|r| r.default || (self.options.allow_retired_v1 && r.retired_for.is_some()))
            .map(|r| r.name.to_string())
            .collect()
    }

    fn validate_selection(&self, selected: &[String]) -> Result<(), SourceError> {
        if self.options.allow_retired_v1 {
            return Ok(());
        }
        for name in selected {
            if let Some(replacement) = crate::resources::find(name).and_then(|r| r.retired_for) {
                return Err(Box::new(PersonioSourceError::Retired { resource: name.clone(), replacement: replacement.to_string() }));
            }
        }
        Ok(())
    }

    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError> {
        let mut needed: BTreeSet<&str> = BTreeSet::new();
        for name in ctx.selected() {
            if let Some(r) = crate::resources::find(name) {
                needed.insert(r.name);
                if let Some(p) = r.parent {
                    needed.insert(p);
                }
            }
        }
        // Like dlt, authenticate before any data call so bad credentials fail the run up front.
        if RESOURCES.iter().any(|r| needed.contains(r.name) && r.api == Api::V1) {
            self.client.authenticate().await.map_err(|source| PersonioSourceError::Api { resource: "auth", source })?;
        }
        let top: Vec<&'static Resource> = RESOURCES.iter().filter(|r| r.parent.is_none() && needed.contains(r.name)).collect();
        // Reconciliations: which key sets the extract collects on its way (free), the rest are read
        // after it by key passes when due.
        let enabled: Vec<&'static Resource> = RESOURCES.iter().filter(|r| r.reconcile.is_some() && ctx.reconcile_enabled(r.name)).collect();
        let mut gather = Gather::default();
        for r in &enabled {
            if let (true, Some(l)) = (self.keys_are_free(r, &ctx), Self::key_listing(r)) {
                gather.collect.insert(l.name);
            }
        }
        let needed = &needed;
        let ctx = &ctx;
        let gather_ref = &gather;
        futures::future::try_join_all(top.into_iter().map(|r| self.run_resource(r, ctx, needed, gather_ref))).await?;
        self.reconcile(ctx, gather, &enabled).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use personio_client::ClientConfig;

    fn source(items_per_page: u32) -> PersonioSource {
        let client = PersonioClient::new(ClientConfig::new("id", "secret")).expect("client");
        PersonioSource::new(client, SourceOptions { items_per_page, ..SourceOptions::default() })
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
    }

    /// Every parameter sent is `limit` (within the endpoint's maximum) or a filter the endpoint declares.
    #[test]
    fn only_declared_filters_and_limits_within_range_are_sent() {
        for ipp in [1, 200, 10_000] {
            let s = source(ipp);
            for r in RESOURCES {
                for since in [None, Some(at("2024-05-01T12:00:00.5Z"))] {
                    for (k, v) in s.params(r, since) {
                        if k == "limit" {
                            let n: u32 = v.parse().expect("number");
                            assert!((1..=r.max_limit).contains(&n), "{}: limit={n}", r.name);
                        } else {
                            assert!(r.filters.contains(&k.as_str()), "{}: `{k}` is not a filter of its endpoint", r.name);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn update_filters_use_each_endpoints_operator_and_format() {
        let s = source(200);
        let since = Some(at("2024-05-01T12:00:00.5Z"));
        let get = |name: &str| s.params(find(name).expect("resource"), since);
        let has = |name: &str, kv: (&str, &str)| {
            assert!(get(name).contains(&(kv.0.to_string(), kv.1.to_string())), "{name}: {:?}", get(name));
        };
        // persons: strict `.gt` with `Z`, one second before the cursor (boundary rows come back).
        has("persons", ("updated_at.gt", "2024-05-01T11:59:59Z"));
        has("persons", ("limit", "50"));
        has("attendance_periods", ("updated_at.gte", "2024-05-01T12:00:00"));
        has("attendance_periods", ("limit", "100"));
        has("absence_periods", ("updated_at.gte", "2024-05-01T12:00:00"));
        has("projects_v2", ("limit", "100"));
        // v1 as dlt (parity), time-offs with the day before (F2).
        has("employees", ("updated_since", "2024-05-01T12:00:00"));
        has("employees", ("limit", "100"));
        has("absences", ("updated_from", "2024-04-30"));
        // No cursor pushed on a first run; none on endpoints that cannot filter by update time.
        assert!(s.params(find("persons").expect("persons"), None).iter().all(|(k, _)| k == "limit"));
        assert!(get("projects_v2").iter().all(|(k, _)| k == "limit"));
    }

    #[test]
    fn a_403_names_the_scope_and_the_resource() {
        let err = api_error(
            find("attendance_periods").expect("resource"),
            ClientError::Http { status: 403, url: "http://x/v2/attendance-periods".into(), message: Some("Forbidden".into()), attempts: 1 },
        );
        let text = err.to_string();
        assert!(text.contains("personio:attendances:read") && text.starts_with("attendance_periods:"), "{text}");
        let other = api_error(find("persons").expect("resource"), ClientError::Http { status: 400, url: String::new(), message: None, attempts: 1 });
        assert!(matches!(other, PersonioSourceError::Api { resource: "persons", .. }));
    }

    #[test]
    fn the_missing_cursor_warning_says_what_to_whitelist() {
        let w = missing_cursor_warning(find("persons").expect("persons"), "updated_at");
        assert!(w.starts_with("persons: ") && w.contains("updated_at") && w.contains("whitelist"), "{w}");
        assert!(!w.contains('\n'));
    }
}
