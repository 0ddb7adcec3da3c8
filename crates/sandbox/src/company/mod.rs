//! The fake company: the model (this file), its deterministic generation ([`generate`](self)), v1 and v2
//! renderings, custom reports and mutations, each in its own module.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use indexmap::IndexMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::Sizes;
use crate::time::{berlin_date, berlin_to_utc, fmt_v1, fmt_v1_date, fmt_v2};

mod generate;
mod mutate;
mod reports;
mod truth;
mod v1;
mod v2;

pub use truth::Truth;
pub use v2::{absence_bounds, cmp_nulls_last, default_period_order, period_keys, period_ref, PeriodRef};

/// A custom (`dynamic_*`) attribute definition.
#[derive(Clone, Debug)]
pub struct AttrDef {
    /// `dynamic_<id>`.
    pub key: String,
    /// The company's label, e.g. `Größe`.
    pub label: String,
    /// `standard | date | integer | decimal | list | link | tags | multiline`.
    pub ty: String,
    /// The mapped standard field, if any.
    pub universal_id: Option<String>,
    /// Options of a `list` attribute.
    pub options: Vec<String>,
}

/// One employee: wrapped attributes in record order plus bookkeeping.
#[derive(Clone, Debug)]
pub struct Employee {
    /// Numeric id.
    pub id: i64,
    /// `key -> {label, value, type, universal_id[, currency]}` in record order.
    pub attrs: IndexMap<String, Value>,
    /// Creation instant.
    pub created_at: DateTime<Utc>,
    /// `last_modified_at`.
    pub last_modified: DateTime<Utc>,
    /// Per-attribute change instants after generation (else `initial_modified`).
    pub attr_changed: BTreeMap<String, DateTime<Utc>>,
    /// `last_modified_at` as generated.
    pub initial_modified: DateTime<Utc>,
    /// Time-off type id and entitlement.
    pub entitlements: Vec<(i64, f64)>,
    /// Whether this employee tracks attendances.
    pub tracks_time: bool,
    /// Pre-serialized v1 record.
    pub json: Arc<str>,
}

/// A time-off type.
#[derive(Clone, Debug)]
pub struct TimeOffType {
    /// v1 id.
    pub id: i64,
    /// v2 id.
    pub id_v2: Uuid,
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
    /// `day` or `hour`.
    pub unit: String,
    /// Approval required.
    pub approval_required: bool,
}

/// An absence (day unit: a v1 time-off; hour unit: only in v2).
#[derive(Clone, Debug)]
pub struct Absence {
    /// v1 id.
    pub id: i64,
    /// v2 id.
    pub id_v2: Uuid,
    /// Employee id.
    pub employee_id: i64,
    /// Time-off type id.
    pub type_id: i64,
    /// `approved | pending | requested`.
    pub status: String,
    /// Free text.
    pub comment: String,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Half day at start.
    pub half_start: bool,
    /// Half day at end.
    pub half_end: bool,
    /// Days (day unit) or hours (hour unit).
    pub amount: f64,
    /// Hour unit: start and end minute of the day.
    pub hours: Option<(u16, u16)>,
    /// `API` or an admin's name.
    pub created_by: String,
    /// Certificate status.
    pub certificate: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
    /// Pre-serialized v1 record (day unit only; empty otherwise).
    pub json: Arc<str>,
}

/// An attendance period.
#[derive(Clone, Debug)]
pub struct Attendance {
    /// v1 id.
    pub id: i64,
    /// v2 id.
    pub id_v2: Uuid,
    /// Employee id.
    pub employee_id: i64,
    /// Day.
    pub date: NaiveDate,
    /// Start minute of the day.
    pub start_min: u16,
    /// End minute of the day (None: open).
    pub end_min: Option<u16>,
    /// Break in minutes.
    pub break_min: u16,
    /// Comment.
    pub comment: String,
    /// `confirmed | pending | rejected`.
    pub status: String,
    /// Project id.
    pub project_id: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
    /// Pre-serialized v1 record.
    pub json: Arc<str>,
}

/// An attendance project.
#[derive(Clone, Debug)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Active.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A custom report definition.
#[derive(Clone, Debug)]
pub struct Report {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `point_in_time | historical_data | timeframe`.
    pub kind: String,
    /// `up_to_date | updating | update_failed`.
    pub status: String,
    /// Columns.
    pub columns: Vec<String>,
    /// Includes all active employees (false: none).
    pub has_items: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Period start/end.
    pub period: (NaiveDate, NaiveDate),
    /// When Personio last refreshed the report's data (`data_refreshed_at`): "any data changes that
    /// happen in the system that are relevant for report results will trigger an automated update"
    /// (Personio's changelog, "Custom Reports API - Report status added"). Moved by
    /// [`Company::sync_reports`] when the report's items change.
    pub refreshed_at: DateTime<Utc>,
    /// Hash of the report's items at `refreshed_at` (`None` until [`Company::sync_reports`] first ran).
    pub content_hash: Option<u64>,
}

/// Org objects referenced by employees.
#[derive(Clone, Debug, Default)]
struct Org {
    offices: Vec<(i64, &'static str)>,
    departments: Vec<(i64, &'static str)>,
    teams: Vec<(i64, &'static str)>,
    subcompanies: Vec<(i64, &'static str)>,
    cost_centers: Vec<(i64, &'static str)>,
    calendars: Vec<(i64, &'static str, &'static str, Option<&'static str>)>,
    schedules: Vec<(i64, &'static str, [&'static str; 7])>,
}

/// The whole fake tenant.
#[derive(Clone, Debug)]
pub struct Company {
    /// Seed it was generated from.
    pub seed: u64,
    /// Fake clock.
    pub now: DateTime<Utc>,
    /// Custom attribute definitions, in record order.
    pub attr_defs: Vec<AttrDef>,
    /// Employees by ascending id.
    pub employees: Vec<Employee>,
    /// Time-off types.
    pub time_off_types: Vec<TimeOffType>,
    /// Absences by ascending id.
    pub absences: Vec<Absence>,
    /// Attendances by ascending id.
    pub attendances: Vec<Attendance>,
    /// Projects.
    pub projects: Vec<Project>,
    /// Document categories `(id, name)`.
    pub document_categories: Vec<(i64, String)>,
    /// Custom reports.
    pub reports: Vec<Report>,
    /// Data generation counter (bumped by every mutation).
    pub generation: u64,
    /// The generation the reports' `refreshed_at` was last brought up to date at.
    reports_generation: Option<u64>,
    org: Org,
    rng: ChaCha8Rng,
    next_employee_id: i64,
    next_absence_id: i64,
    next_attendance_id: i64,
    next_attr_id: i64,
}

const FIRST: &[&str] = &[
    "Anna", "Lukas", "Sophie", "Jürgen", "Zoë", "Mehmet", "Marie", "Jonas", "Emma", "Leon", "Mia", "Finn", "Hannah",
    "Paul", "Lea", "Elias", "Chloé", "Ömer", "Ingrid", "José", "Aisha", "Ben", "Clara", "Noah", "Greta", "Felix",
    "Ida", "Karl", "Lina", "Matteo", "Nora", "Oskar", "Priya", "Rafael", "Sara", "Tim", "Ulrike", "Viktor", "Wei",
    "Yasmin", "Björn", "Søren", "Małgorzata", "Andrés", "Fatma", "Kenji", "Olivia", "Henrik", "Amélie", "Dmitri",
];
const LAST: &[&str] = &[
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Özdemir", "Yılmaz", "Kowalski", "García", "Rossi", "Nguyen", "Smith", "Johansson", "Dubois", "Papadopoulos",
    "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
    "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann",
    "O'Brien", "van der Berg", "Al-Sayed", "Nakamura", "Silva",
];
const POSITIONS: &[&str] = &[
    "Software Engineer", "Senior Software Engineer", "Product Manager", "Sales Manager", "Account Executive",
    "HR Business Partner", "Recruiter", "Customer Success Manager", "Support Specialist", "Data Analyst",
    "Designer", "Marketing Manager", "Office Manager", "Controller", "Team Lead", "Working Student",
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, s: &'a [T]) -> &'a T {
    &s[rng.random_range(0..s.len())]
}

fn uuid(rng: &mut ChaCha8Rng) -> Uuid {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A JSON number that is an integer when the value is whole (`3` rather than `3.0`).
pub fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            'ä' | 'Ä' => out.push_str("ae"),
            'ö' | 'Ö' => out.push_str("oe"),
            'ü' | 'Ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'é' | 'è' | 'ë' => out.push('e'),
            'á' | 'à' => out.push('a'),
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'ı' => out.push('i'),
            'ó' => out.push('o'),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out
}

fn std_attr(label: &str, value: Value, ty: &str, uid: &str) -> Value {
    json!({"label": label, "value": value, "type": ty, "universal_id": uid})
}

fn dyn_attr(def: &AttrDef, value: Value) -> Value {
    json!({"label": def.label, "value": value, "universal_id": def.universal_id, "type": def.ty})
}

fn is_workday(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn workdays(a: NaiveDate, b: NaiveDate) -> u32 {
    let mut n = 0;
    let mut d = a;
    while d <= b {
        if is_workday(d) {
            n += 1;
        }
        d += Duration::days(1);
    }
    n
}

fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

impl Company {
    /// An employee by id.
    pub fn employee(&self, id: i64) -> Option<&Employee> {
        self.employees.binary_search_by_key(&id, |e| e.id).ok().map(|i| &self.employees[i])
    }

    /// A time-off type by id.
    pub fn time_off_type(&self, id: i64) -> Option<&TimeOffType> {
        self.time_off_types.iter().find(|t| t.id == id)
    }

    /// Is this absence served by v1 `/company/time-offs` (its type exists and has day unit)?
    pub fn is_v1_time_off(&self, a: &Absence) -> bool {
        !a.json.is_empty() && a.hours.is_none()
    }

}

impl Employee {
    fn set_modified(&mut self, t: DateTime<Utc>) {
        self.last_modified = t;
        if let Some(a) = self.attrs.get_mut("last_modified_at").and_then(Value::as_object_mut) {
            a.insert("value".into(), json!(fmt_v1(t)));
        }
        self.rerender();
    }

    fn rerender(&mut self) {
        let v = json!({"type": "Employee", "attributes": self.attrs});
        self.json = Arc::from(v.to_string());
    }

    /// The full v1 record.
    pub fn v1(&self) -> Value {
        json!({"type": "Employee", "attributes": self.attrs})
    }

    /// When an attribute last changed.
    pub fn attr_changed_at(&self, key: &str) -> DateTime<Utc> {
        self.attr_changed.get(key).copied().unwrap_or(self.initial_modified)
    }
}

/// A string attribute value (empty when absent or not a string).
pub fn attr_str(e: &Employee, key: &str) -> String {
    e.attrs.get(key).and_then(|a| a.get("value")).and_then(Value::as_str).unwrap_or("").to_string()
}
