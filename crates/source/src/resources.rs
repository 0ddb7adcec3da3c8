//! The Personio resources, as declarations: one row per resource, read like a table.
//!
//! Each row also states the endpoint's contract as Personio publishes it (`shared/spec/personio-api.md`
//! §3.6, §13.1): the largest `limit` it accepts, the exact filter parameters it knows, whether and how it
//! filters by update time (operator and date-time format), and the credential scope it needs. The
//! generic extractor in [`crate::source`] only sends what a row declares; nothing here is a hand-written loop.

use personio_client::WindowSpec;
use pipeline_engine::schema::WriteDisposition::{self, Merge, Replace};

/// Which API a resource uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `https://api.personio.de/v1`.
    V1,
    /// `https://api.personio.de/v2`.
    V2,
}

/// How a resource's endpoint pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// `offset` is a 0-based record offset, `limit` a page size (employees, attendances).
    RecordOffset,
    /// `offset` is a 1-based page number (time-offs, report detail).
    PageNumber,
    /// One call (type lists, balances); dlt still sends `offset=0&page=0`.
    Single,
    /// Record mode without a `limit` (the report list, fix F5).
    RecordNoLimit,
    /// v2 cursor paging through `_meta.links.next`.
    Cursor,
}

/// How an API item becomes a record (see [`crate::shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Employee attribute → column rule.
    Employee,
    /// `item.attributes`.
    Attributes,
    /// Time-off with UTC `created_at`/`updated_at`.
    Absence,
    /// `{id} ∪ attributes`, `date` as date.
    Attendance,
    /// `{id} ∪ attributes` with UTC timestamps.
    Project,
    /// `{id} ∪ attributes`.
    DocumentCategory,
    /// `{employee_id} ∪ row`.
    Balance,
    /// Report items of a report object.
    ReportItems,
    /// v2 object, timestamps converted.
    V2,
    /// v2 employment, with its person's id added.
    V2Employment,
}

/// Whether the update-time filter includes the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `updated ≥ value` (v1 `updated_since`/`updated_from`, v2 `updated_at.gte`).
    AtOrAfter,
    /// `updated > value` only (v2 persons: `updated_at.gt`, there is no `.gte`). The source asks from one
    /// second before the cursor, so rows sharing the cursor's timestamp come back and the engine's
    /// boundary hashes drop the ones already loaded.
    After,
}

/// How a date-time goes into a filter value (always the UTC instant, fractional seconds dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2024-05-01T12:00:00`: no zone (v1, dlt parity; v2 attendance-periods, where a `Z` gives 400).
    NaiveUtc,
    /// `2024-05-01T12:00:00Z` (v2 persons and employments, per their OpenAPI examples).
    UtcZ,
    /// `2024-04-30`: the UTC date minus one day (time-offs' day-granular `updated_from`, fix F2).
    DateDayBefore,
}

/// An endpoint's filter on update time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatedFilter {
    /// Query parameter, exactly as the endpoint names it.
    pub param: &'static str,
    /// Inclusive or strict.
    pub bound: Bound,
    /// Value format.
    pub format: TimeFormat,
}

const fn upd(param: &'static str, bound: Bound, format: TimeFormat) -> Option<UpdatedFilter> {
    Some(UpdatedFilter { param, bound, format })
}

/// Where an endpoint is in Personio's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Served, no end date announced.
    Live,
    /// Served, with an announced end date (`YYYY-MM-DD`).
    Deprecated(&'static str),
    /// No longer served since the date (`YYYY-MM-DD`).
    Retired(&'static str),
}

/// Where a reconciliation's full key set comes from (deletion detection, `docs/deletions.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The resource's own listing, read for keys only: every page at the endpoint's largest `limit`, no
    /// update filter, plus these parameters (a projection where the endpoint has one). Free when the run's
    /// extract read the whole listing anyway (a first run, a resource without update filter).
    Listing(&'static [(&'static str, &'static str)]),
    /// The parent's key set: the reconciled columns hold the parent's key, so the rows of a parent that is
    /// gone are removed (a transformer whose own listing costs one call per parent).
    Parent,
    /// Only from the run's extract, which always reads the whole listing (no update filter on it or its
    /// parent): free every run.
    Extract,
}

/// A resource whose records can disappear upstream (Personio has no tombstones): how it is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconcile {
    /// Fields of the shaped record matched against the key set (the primary key, or the parent's key).
    pub columns: &'static [&'static str],
    /// Where the key set comes from.
    pub keys: KeySource,
    /// Default schedule (`always`, `never` or a duration such as `7d`); chosen by request cost, see
    /// `docs/deletions.md`.
    pub schedule: &'static str,
}

const fn rec(columns: &'static [&'static str], keys: KeySource, schedule: &'static str) -> Option<Reconcile> {
    Some(Reconcile { columns, keys, schedule })
}

/// v1 employees: the projection to `id` only (`id` is always returned; [SPEC] `attributes[]`).
const KEYS_EMPLOYEES: KeySource = KeySource::Listing(&[("attributes[]", "id")]);
/// No projection on the endpoint: the plain listing.
const KEYS_LISTING: KeySource = KeySource::Listing(&[]);

/// One resource.
#[derive(Debug, Clone, Copy)]
pub struct Resource {
    /// Resource and table name.
    pub name: &'static str,
    /// API version.
    pub api: Api,
    /// Path below the API root; `{id}` is the parent's id for transformers.
    pub path: &'static str,
    /// Paging style.
    pub paging: Paging,
    /// Largest page size the endpoint accepts (the `limit` sent is `min(items_per_page, max_limit)`).
    pub max_limit: u32,
    /// The filter parameters the endpoint accepts (exact names and operators; paging parameters aside).
    /// Any other parameter is an error on v2 ("Provided filter encoding is invalid").
    pub filters: &'static [&'static str],
    /// How the endpoint filters by update time; `None`: it cannot (every run reads everything).
    pub updated_filter: Option<UpdatedFilter>,
    /// v2 cursor listings: the date-time filter whose windows split the listing into cursor chains
    /// fetched side by side (`PersonioClient::v2_pages_partitioned`); `None`: one chain.
    pub windows: Option<WindowSpec>,
    /// The scope the credential needs, in Personio's v2 naming (`personio:persons:read` and
    /// `personio:absences:read` are published; the others follow the pattern, UNVERIFIED). A 403 names it.
    pub scope: &'static str,
    /// Lifecycle of the endpoint.
    pub lifecycle: Lifecycle,
    /// Record shaping.
    pub shape: Shape,
    /// Primary key of the shaped record.
    pub primary_key: &'static [&'static str],
    /// Write disposition.
    pub disposition: WriteDisposition,
    /// Incremental cursor field (pushed into the query through `updated_filter`).
    pub cursor: Option<&'static str>,
    /// What to whitelist in Personio when records come without the cursor field.
    pub cursor_hint: Option<&'static str>,
    /// Parent resource (transformers): runs once per parent record, with the parent's `id`.
    pub parent: Option<&'static str>,
    /// Part of the default set (works against today's API).
    pub default: bool,
    /// Retired upstream: the replacement resource to name in the error.
    pub retired_for: Option<&'static str>,
    /// Its records can disappear (deletion detection by reconciliation); `None`: replace resources
    /// (every load is the whole listing) and lists that do not lose records.
    pub reconcile: Option<Reconcile>,
    /// Transformers: the version of a parent record (read from its list record) that changes when the
    /// rows of its call change. A call whose parent is still at the version its rows were loaded at is
    /// skipped (the versions are kept in the resource state [`crate::source::PARENT_VERSIONS`]); `None`:
    /// called for every parent record the run extracts.
    pub parent_version: Option<fn(&serde_json::Value) -> Option<String>>,
}

/// The version of a custom report's data, from its list record, when it can be trusted: the report is
/// `up_to_date` and says when its data was refreshed. Personio refreshes a report's data itself when data
/// relevant to it changes ("Custom Reports API - Report status added"), so a report still at the version
/// its rows were loaded at serves those rows.
fn report_version(report: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    if report.get("status").and_then(Value::as_str) != Some("up_to_date") {
        return None;
    }
    let refreshed = report.get("data_refreshed_at").and_then(Value::as_str).filter(|s| !s.is_empty())?;
    let updated = report.get("updated_at").and_then(Value::as_str).unwrap_or("");
    Some(format!("{updated}|{refreshed}"))
}

impl Resource {
    /// A transformer whose calls are long page-numbered listings (a custom report: one call reads a page
    /// per 200 employees). Its pages are emitted as they arrive, one parent after another, instead of each
    /// call's records being collected first: memory then holds the pages in flight, not whole reports
    /// (`large`: 4 reports of 9,000 rows were 4 × ~25 MB at once).
    pub fn streams_calls(&self) -> bool {
        self.parent.is_some() && self.paging == Paging::PageNumber
    }
}

const fn r(name: &'static str, api: Api, path: &'static str, paging: Paging, shape: Shape) -> Resource {
    Resource {
        name,
        api,
        path,
        paging,
        max_limit: 200,
        filters: &[],
        updated_filter: None,
        windows: None,
        scope: "",
        lifecycle: Lifecycle::Live,
        shape,
        primary_key: &["id"],
        disposition: Replace,
        cursor: None,
        cursor_hint: None,
        parent: None,
        default: true,
        retired_for: None,
        reconcile: None,
        parent_version: None,
    }
}

use Bound::{After, AtOrAfter};
use TimeFormat::{DateDayBefore, NaiveUtc, UtcZ};

// Filter parameters per endpoint (personio-api.md §5–§12 for v1 [SPEC], §13.1 for v2 [V2SPEC]/[HUB]).
const F_EMPLOYEES: &[&str] = &["email", "attributes[]", "updated_since"];
const F_TIME_OFFS: &[&str] = &["start_date", "end_date", "updated_from", "updated_to", "employees[]"];
const F_ATTENDANCES: &[&str] = &["start_date", "end_date", "updated_from", "updated_to", "includePending", "employees[]"];
const F_REPORTS: &[&str] = &["report_ids"];
const F_REPORT: &[&str] = &["locale"];
const F_PERSONS: &[&str] = &[
    "id", "email", "first_name", "last_name", "preferred_name", "created_at", "created_at.gt", "created_at.lt",
    "updated_at", "updated_at.gt", "updated_at.lt", "status",
];
const F_EMPLOYMENTS: &[&str] = &["id", "updated_at", "updated_at.gt", "updated_at.lt"];
const F_ABSENCE_PERIODS: &[&str] = &[
    "id", "absence_type.id", "person.id", "starts_from.date_time.gte", "starts_from.date_time.lte",
    "ends_at.date_time.gte", "ends_at.date_time.lte", "updated_at.gte", "updated_at.lte",
];
const F_ATTENDANCE_PERIODS: &[&str] = &[
    "id", "person.id", "start.date_time.gte", "start.date_time.lte", "end.date_time.gte", "end.date_time.lte",
    "updated_at.gte", "updated_at.lte", "date.gte", "date.lte", "project.id", "status", "sort",
];
const F_PROJECTS: &[&str] = &["id", "name", "status", "project_code", "parent_project.id", "top_level_only"];

// Windows per v2 endpoint (§13.1): on the field every record has and the endpoint filters on.
/// Attendance periods by start (zone-less values: a `Z` gives 400).
const W_ATTENDANCE: Option<WindowSpec> = Some(WindowSpec {
    lower: "start.date_time.gte",
    upper: "start.date_time.lte",
    strict: false,
    zoned: false,
    field: "/start/date_time",
});
/// Absence periods by start (the hub says these filters match overlapping periods; either reading works).
const W_ABSENCE: Option<WindowSpec> = Some(WindowSpec {
    lower: "starts_from.date_time.gte",
    upper: "starts_from.date_time.lte",
    strict: false,
    zoned: false,
    field: "/starts_from/date_time",
});
/// Persons by creation time (strict `.gt`/`.lt` only, with `Z`). Not split when the records lack
/// `created_at` (a credential without whitelisted attributes).
const W_PERSONS: Option<WindowSpec> = Some(WindowSpec {
    lower: "created_at.gt",
    upper: "created_at.lt",
    strict: true,
    zoned: true,
    field: "/created_at",
});

/// What a credential needs for `persons.updated_at` (and the other person fields) to be sent.
const PERSONS_HINT: &str = "whitelist the person attributes (at least `created_at` and `updated_at`) for this API credential in Personio (Settings > Integrations > API credentials > Readable attributes)";

/// Every resource, in source order: dlt's nine, then the v2 ones.
#[rustfmt::skip]
pub const RESOURCES: &[Resource] = &[
    // v1 (dlt's nine; limits of §3.6: employees 1–100 since 2025-01-31, the others 200 as dlt sends).
    Resource { max_limit: 100, filters: F_EMPLOYEES, updated_filter: upd("updated_since", AtOrAfter, NaiveUtc), scope: "personio:persons:read", disposition: Merge, cursor: Some("last_modified_at"), reconcile: rec(&["id"], KEYS_EMPLOYEES, "1d"), ..r("employees", Api::V1, "company/employees", Paging::RecordOffset, Shape::Employee) },
    Resource { scope: "personio:absences:read", ..r("absence_types", Api::V1, "company/time-off-types", Paging::Single, Shape::Attributes) },
    Resource { filters: F_TIME_OFFS, updated_filter: upd("updated_from", AtOrAfter, DateDayBefore), scope: "personio:absences:read", disposition: Merge, cursor: Some("updated_at"), reconcile: rec(&["id"], KEYS_LISTING, "1d"), ..r("absences", Api::V1, "company/time-offs", Paging::PageNumber, Shape::Absence) },
    Resource { filters: F_ATTENDANCES, updated_filter: upd("updated_from", AtOrAfter, NaiveUtc), scope: "personio:attendances:read", lifecycle: Lifecycle::Retired("2026-08-30"), disposition: Merge, cursor: Some("updated_at"), default: false, retired_for: Some("attendance_periods"), reconcile: rec(&["id"], KEYS_LISTING, "7d"), ..r("attendances", Api::V1, "company/attendances", Paging::RecordOffset, Shape::Attendance) },
    Resource { scope: "personio:projects:read", lifecycle: Lifecycle::Retired("2026-08-30"), default: false, retired_for: Some("projects_v2"), ..r("projects", Api::V1, "company/attendances/projects", Paging::Single, Shape::Project) },
    Resource { scope: "personio:document_categories:read", ..r("document_categories", Api::V1, "company/document-categories", Paging::Single, Shape::DocumentCategory) },
    Resource { scope: "personio:absences:read", primary_key: &["employee_id", "id"], disposition: Merge, parent: Some("employees"), reconcile: rec(&["employee_id"], KeySource::Parent, "1d"), ..r("employees_absences_balance", Api::V1, "company/employees/{id}/absences/balance", Paging::Single, Shape::Balance) },
    Resource { filters: F_REPORTS, scope: "personio:reports:read", lifecycle: Lifecycle::Deprecated("2027-06-30"), ..r("custom_reports_list", Api::V1, "company/custom-reports/reports", Paging::RecordNoLimit, Shape::Attributes) },
    Resource { filters: F_REPORT, scope: "personio:reports:read", lifecycle: Lifecycle::Deprecated("2027-06-30"), primary_key: &["report_id", "item_id"], disposition: Merge, parent: Some("custom_reports_list"), reconcile: rec(&["report_id", "item_id"], KeySource::Extract, "1d"), parent_version: Some(report_version), ..r("custom_reports", Api::V1, "company/custom-reports/reports/{id}", Paging::PageNumber, Shape::ReportItems) },
    // v2 (§13.1). attendance_periods and projects_v2 replace the retired v1 attendances and projects.
    Resource { max_limit: 50, filters: F_PERSONS, updated_filter: upd("updated_at.gt", After, UtcZ), windows: W_PERSONS, scope: "personio:persons:read", disposition: Merge, default: false, cursor: Some("updated_at"), cursor_hint: Some(PERSONS_HINT), reconcile: rec(&["id"], KEYS_LISTING, "1d"), ..r("persons", Api::V2, "persons", Paging::Cursor, Shape::V2) },
    Resource { max_limit: 50, filters: F_EMPLOYMENTS, updated_filter: upd("updated_at.gt", After, UtcZ), scope: "personio:employments:read", disposition: Merge, default: false, parent: Some("persons"), reconcile: rec(&["person_id"], KeySource::Parent, "1d"), ..r("employments", Api::V2, "persons/{id}/employments", Paging::Cursor, Shape::V2Employment) },
    Resource { max_limit: 100, filters: F_ABSENCE_PERIODS, updated_filter: upd("updated_at.gte", AtOrAfter, NaiveUtc), windows: W_ABSENCE, scope: "personio:absences:read", disposition: Merge, default: false, cursor: Some("updated_at"), reconcile: rec(&["id"], KEYS_LISTING, "1d"), ..r("absence_periods", Api::V2, "absence-periods", Paging::Cursor, Shape::V2) },
    Resource { max_limit: 100, filters: F_ATTENDANCE_PERIODS, updated_filter: upd("updated_at.gte", AtOrAfter, NaiveUtc), windows: W_ATTENDANCE, scope: "personio:attendances:read", disposition: Merge, cursor: Some("updated_at"), reconcile: rec(&["id"], KEYS_LISTING, "7d"), ..r("attendance_periods", Api::V2, "attendance-periods", Paging::Cursor, Shape::V2) },
    Resource { max_limit: 100, filters: F_PROJECTS, scope: "personio:projects:read", ..r("projects_v2", Api::V2, "projects", Paging::Cursor, Shape::V2) },
];

/// Look a resource up by name.
pub fn find(name: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlt_resources_keep_dlt_names_keys_and_dispositions() {
        let expect = [
            ("employees", &["id"][..], Merge, Some("last_modified_at")),
            ("absence_types", &["id"][..], Replace, None),
            ("absences", &["id"][..], Merge, Some("updated_at")),
            ("attendances", &["id"][..], Merge, Some("updated_at")),
            ("projects", &["id"][..], Replace, None),
            ("document_categories", &["id"][..], Replace, None),
            ("employees_absences_balance", &["employee_id", "id"][..], Merge, None),
            ("custom_reports_list", &["id"][..], Replace, None),
            ("custom_reports", &["report_id", "item_id"][..], Merge, None),
        ];
        for (i, (name, pk, wd, cursor)) in expect.iter().enumerate() {
            let r = &RESOURCES[i];
            assert_eq!((r.name, r.primary_key, r.disposition, r.cursor), (*name, *pk, *wd, *cursor));
        }
    }

    #[test]
    fn retired_resources_are_not_default_and_name_a_replacement() {
        for r in RESOURCES.iter().filter(|r| r.retired_for.is_some()) {
            assert!(!r.default);
            assert!(matches!(r.lifecycle, Lifecycle::Retired(_)), "{}", r.name);
            assert!(find(r.retired_for.unwrap()).is_some_and(|x| x.default));
        }
    }

    /// The published limits (personio-api.md §3.6, §13.1): never above the endpoint's maximum.
    #[test]
    fn limits_follow_each_endpoint() {
        let max = |n: &str| find(n).unwrap().max_limit;
        assert_eq!(max("employees"), 100);
        assert_eq!(max("persons"), 50);
        assert_eq!(max("employments"), 50);
        assert_eq!(max("absence_periods"), 100);
        assert_eq!(max("attendance_periods"), 100);
        assert_eq!(max("projects_v2"), 100);
        for r in RESOURCES.iter().filter(|r| r.api == Api::V2) {
            assert!(r.max_limit <= 100, "{}", r.name);
        }
    }

    #[test]
    fn update_filters_are_declared_filters_with_the_endpoint_operator() {
        for r in RESOURCES {
            if let Some(f) = r.updated_filter {
                assert!(r.filters.contains(&f.param), "{}: {} is not a declared filter", r.name, f.param);
            }
            if r.cursor.is_some() {
                assert!(r.updated_filter.is_some(), "{}: a cursor without a way to push it", r.name);
            }
            assert!(!r.scope.is_empty(), "{}: no scope", r.name);
        }
        // persons has no `.gte`: strict `.gt`, with `Z`; attendance-periods takes no `Z`.
        let p = find("persons").unwrap();
        assert!(!p.filters.contains(&"updated_at.gte"));
        assert_eq!(p.updated_filter, upd("updated_at.gt", After, UtcZ));
        assert_eq!(find("attendance_periods").unwrap().updated_filter.map(|f| f.format), Some(NaiveUtc));
        assert!(find("projects_v2").unwrap().updated_filter.is_none());
    }

    /// Windows only on v2 cursor listings, only with filters the endpoint declares.
    #[test]
    fn windows_use_declared_filters() {
        for r in RESOURCES {
            if let Some(w) = &r.windows {
                assert_eq!((r.api, r.paging, r.parent), (Api::V2, Paging::Cursor, None), "{}", r.name);
                assert!(r.filters.contains(&w.lower) && r.filters.contains(&w.upper), "{}", r.name);
            }
        }
        for name in ["attendance_periods", "absence_periods", "persons"] {
            assert!(find(name).unwrap().windows.is_some(), "{name}");
        }
        // persons has only strict operators; attendance-periods refuses a `Z`.
        assert!(find("persons").unwrap().windows.as_ref().is_some_and(|w| w.strict && w.zoned));
        assert!(find("attendance_periods").unwrap().windows.as_ref().is_some_and(|w| !w.zoned));
    }

    /// Deletion detection: every resource whose records can disappear declares it, by a field of its
    /// record, with a readable schedule; a parent-key reconciliation has a parent with its own listing.
    #[test]
    fn reconciliations_are_declared_where_records_can_disappear() {
        let declared: Vec<&str> = RESOURCES.iter().filter(|r| r.reconcile.is_some()).map(|r| r.name).collect();
        for name in ["employees", "absences", "attendances", "employees_absences_balance", "custom_reports", "persons", "employments", "absence_periods", "attendance_periods"] {
            assert!(declared.contains(&name), "{name}");
        }
        for r in RESOURCES {
            let Some(rc) = r.reconcile else {
                assert_eq!(r.disposition, Replace, "{}: a merge resource whose records can disappear must declare a reconciliation", r.name);
                continue;
            };
            assert_eq!(r.disposition, Merge, "{}", r.name);
            assert!(rc.schedule.parse::<pipeline_engine::reconcile::Schedule>().is_ok(), "{}: {}", r.name, rc.schedule);
            match rc.keys {
                KeySource::Listing(extra) => {
                    assert_eq!(rc.columns, r.primary_key, "{}", r.name);
                    assert!(r.parent.is_none(), "{}", r.name);
                    assert!(extra.iter().all(|(k, _)| r.filters.contains(k)), "{}: projection is not a declared filter", r.name);
                }
                KeySource::Parent => {
                    let parent = find(r.parent.expect("a parent")).expect("parent");
                    assert!(matches!(parent.reconcile.map(|p| p.keys), Some(KeySource::Listing(_))), "{}", r.name);
                    assert_eq!(rc.columns.len(), parent.primary_key.len(), "{}", r.name);
                }
                KeySource::Extract => {
                    let parent = find(r.parent.expect("a parent")).expect("parent");
                    assert!(parent.cursor.is_none() && parent.parent.is_none(), "{}: its parent is read whole every run", r.name);
                    assert_eq!(rc.columns, r.primary_key, "{}", r.name);
                }
            }
        }
    }
}
