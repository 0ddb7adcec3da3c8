//! The Personio resources, as declarations: one row per resource, read like a table.
//!
//! The generic extractor in [`crate::source`] runs them; nothing here is a hand-written loop.

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

/// How the cursor's start value goes into the API query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorParam {
    /// Nothing is pushed.
    None,
    /// `updated_since=<naive UTC date-time>` (employees, parity).
    UpdatedSince,
    /// `updated_from=<UTC date minus one day>` (time-offs, fix F2).
    UpdatedFromDayBefore,
    /// `updated_from=<naive UTC date-time>` (attendances, parity).
    UpdatedFrom,
    /// `updated_at.gte=<naive UTC date-time>` (v2).
    UpdatedAtGte,
}

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
    /// Maximum page size the endpoint accepts (the `limit` sent is `min(items_per_page, max_limit)`).
    pub max_limit: u32,
    /// Record shaping.
    pub shape: Shape,
    /// Primary key of the shaped record.
    pub primary_key: &'static [&'static str],
    /// Write disposition.
    pub disposition: WriteDisposition,
    /// Incremental cursor field.
    pub cursor: Option<&'static str>,
    /// How the cursor is pushed into the query.
    pub cursor_param: CursorParam,
    /// Parent resource (transformers): runs once per parent record, with the parent's `id`.
    pub parent: Option<&'static str>,
    /// Part of the default set (works against today's API).
    pub default: bool,
    /// Retired upstream: the replacement resource to name in the error.
    pub retired_for: Option<&'static str>,
}

const fn r(name: &'static str, api: Api, path: &'static str, paging: Paging, shape: Shape) -> Resource {
    Resource {
        name,
        api,
        path,
        paging,
        max_limit: 200,
        shape,
        primary_key: &["id"],
        disposition: Replace,
        cursor: None,
        cursor_param: CursorParam::None,
        parent: None,
        default: true,
        retired_for: None,
    }
}

/// Every resource, in source order: dlt's nine, then the v2 ones.
pub const RESOURCES: &[Resource] = &[
    Resource { max_limit: 100, disposition: Merge, cursor: Some("last_modified_at"), cursor_param: CursorParam::UpdatedSince, ..r("employees", Api::V1, "company/employees", Paging::RecordOffset, Shape::Employee) },
    r("absence_types", Api::V1, "company/time-off-types", Paging::Single, Shape::Attributes),
    Resource { disposition: Merge, cursor: Some("updated_at"), cursor_param: CursorParam::UpdatedFromDayBefore, ..r("absences", Api::V1, "company/time-offs", Paging::PageNumber, Shape::Absence) },
    Resource { disposition: Merge, cursor: Some("updated_at"), cursor_param: CursorParam::UpdatedFrom, default: false, retired_for: Some("attendance_periods"), ..r("attendances", Api::V1, "company/attendances", Paging::RecordOffset, Shape::Attendance) },
    Resource { default: false, retired_for: Some("projects_v2"), ..r("projects", Api::V1, "company/attendances/projects", Paging::Single, Shape::Project) },
    r("document_categories", Api::V1, "company/document-categories", Paging::Single, Shape::DocumentCategory),
    Resource { primary_key: &["employee_id", "id"], disposition: Merge, parent: Some("employees"), ..r("employees_absences_balance", Api::V1, "company/employees/{id}/absences/balance", Paging::Single, Shape::Balance) },
    r("custom_reports_list", Api::V1, "company/custom-reports/reports", Paging::RecordNoLimit, Shape::Attributes),
    Resource { primary_key: &["report_id", "item_id"], disposition: Merge, parent: Some("custom_reports_list"), ..r("custom_reports", Api::V1, "company/custom-reports/reports/{id}", Paging::PageNumber, Shape::ReportItems) },
    // v2 (today's API). attendance_periods and projects_v2 replace the retired v1 attendances and projects.
    Resource { max_limit: 50, disposition: Merge, default: false, cursor: Some("updated_at"), cursor_param: CursorParam::UpdatedAtGte, ..r("persons", Api::V2, "persons", Paging::Cursor, Shape::V2) },
    Resource { max_limit: 50, disposition: Merge, default: false, parent: Some("persons"), ..r("employments", Api::V2, "persons/{id}/employments", Paging::Cursor, Shape::V2Employment) },
    Resource { max_limit: 100, disposition: Merge, default: false, cursor: Some("updated_at"), cursor_param: CursorParam::UpdatedAtGte, ..r("absence_periods", Api::V2, "absence-periods", Paging::Cursor, Shape::V2) },
    Resource { max_limit: 200, disposition: Merge, cursor: Some("updated_at"), cursor_param: CursorParam::UpdatedAtGte, ..r("attendance_periods", Api::V2, "attendance-periods", Paging::Cursor, Shape::V2) },
    Resource { max_limit: 200, ..r("projects_v2", Api::V2, "projects", Paging::Cursor, Shape::V2) },
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
            assert!(find(r.retired_for.unwrap()).is_some_and(|x| x.default));
        }
        assert_eq!(find("employees").unwrap().max_limit, 100);
    }
}
