//! The ground truth: every entity as the list endpoints serve it, without paging.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

/// Ground truth: every entity as the API serves it, without paging.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Truth {
    /// v1 employee records (`{"type":"Employee","attributes":{…}}`), by id.
    pub employees: Vec<Value>,
    /// v1 `company/employees/attributes` entries.
    pub employee_attributes: Vec<Value>,
    /// v1 time-off records (`/company/time-offs`), by id.
    pub absences: Vec<Value>,
    /// v1 attendance records of every status (as with `includePending=true`), by id.
    pub attendances: Vec<Value>,
    /// v1 time-off types.
    pub time_off_types: Vec<Value>,
    /// v1 projects.
    pub projects: Vec<Value>,
    /// v1 document categories.
    pub document_categories: Vec<Value>,
    /// v1 balance rows per employee id.
    pub balances: BTreeMap<i64, Vec<Value>>,
    /// v1 custom report list records.
    pub custom_reports: Vec<Value>,
    /// v1 custom report items per report id.
    pub custom_report_items: BTreeMap<String, Vec<Value>>,
    /// v2 persons.
    pub persons: Vec<Value>,
    /// v2 employments per person id.
    pub employments: BTreeMap<String, Vec<Value>>,
    /// v2 absence periods.
    pub absence_periods: Vec<Value>,
    /// v2 absence types.
    pub absence_types: Vec<Value>,
    /// v2 attendance periods.
    pub attendance_periods: Vec<Value>,
    /// v2 projects.
    pub projects_v2: Vec<Value>,
}


fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

impl Company {
    /// `company/employees/attributes` entries (v1).
    pub fn attribute_list(&self) -> Vec<Value> {
        let Some(first) = self.employees.first() else { return Vec::new() };
        first
            .attrs
            .iter()
            .map(|(k, a)| {
                let options: Vec<String> = self.attr_defs.iter().find(|d| &d.key == k).map(|d| d.options.clone()).unwrap_or_default();
                json!({"key": k, "label": a.get("label"), "type": a.get("type"), "universal_id": a.get("universal_id"), "options": options})
            })
            .collect()
    }

    /// Builds the ground truth; `base` is the server's base URL (v2 links), `bare` the persons-without-attributes mode.
    pub fn truth(&self, base: &str, bare: bool) -> Truth {
        let w = self;
        let mut t = Truth {
            employees: w.employees.iter().map(|e| parse(&e.json)).collect(),
            employee_attributes: w.attribute_list(),
            absences: w.absences.iter().filter(|a| w.is_v1_time_off(a)).map(|a| parse(&a.json)).collect(),
            attendances: w.attendances.iter().map(|a| parse(&a.json)).collect(),
            time_off_types: w.time_off_types.iter().map(Company::time_off_type_v1).collect(),
            projects: w.projects.iter().map(Company::project_v1).collect(),
            document_categories: w.document_categories.iter().map(Company::document_category_v1).collect(),
            custom_reports: w.reports.iter().map(|r| json!({"type": "Report", "attributes": w.report_v1_meta(r)})).collect(),
            persons: w.employees.iter().map(|e| w.person_v2(e, base, bare)).collect(),
            absence_periods: w.absences.iter().map(|a| w.absence_v2(a)).collect(),
            absence_types: w.time_off_types.iter().map(Company::absence_type_v2).collect(),
            attendance_periods: default_period_order(w)
                .into_iter()
                .filter_map(|p| w.attendances.get((p >> 1) as usize).map(|a| w.attendance_period_v2(a, p & 1 == 1)))
                .collect(),
            projects_v2: w.projects.iter().map(Company::project_v2).collect(),
            ..Default::default()
        };
        for e in &w.employees {
            t.balances.insert(e.id, w.balance_v1(e));
            t.employments.insert(e.id.to_string(), vec![w.employment_v2(e, base)]);
        }
        for (ri, r) in w.reports.iter().enumerate() {
            let items = w.report_items(ri, w.report_employees(r));
            t.custom_report_items.insert(r.id.clone(), items);
        }
        t
    }
}
