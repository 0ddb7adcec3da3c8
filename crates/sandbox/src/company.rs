//! The fake company: deterministic generation from a seed, v1/v2 rendering, mutations.

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

/// (label, type, universal_id, options) of the default custom attributes, in record order.
const CUSTOM: &[(&str, &str, Option<&str>, &[&str])] = &[
    ("National insurance number", "standard", None, &[]),
    ("Holder of bank account", "standard", None, &[]),
    ("Emergency contact name", "standard", None, &[]),
    ("Address", "multiline", Some("address"), &[]),
    ("Key number ID", "integer", None, &[]),
    ("Type of visa", "list", None, &["EU Blue Card", "Work permit", "Not required"]),
    ("IBAN", "standard", Some("iban"), &[]),
    ("Emergency contact phone number", "standard", None, &[]),
    ("Marital status", "list", None, &["married", "single", "divorced", "widowed"]),
    ("City", "standard", Some("city"), &[]),
    ("Laptop serial number", "standard", None, &[]),
    ("Trainings", "tags", None, &["First aid", "Fire safety", "GDPR", "Leadership"]),
    ("Employee ID", "standard", None, &[]),
    ("Type of health insurance", "list", None, &["statutory", "private"]),
    ("BIC", "standard", Some("bic"), &[]),
    ("Postcode", "standard", Some("postcode"), &[]),
    ("Emergency contact relationship to the employee", "list", None, &["Partner", "Parent", "Sibling", "Friend"]),
    ("Language skills", "tags", None, &["German", "English", "French", "Spanish", "Turkish"]),
    ("Name of health insurance", "standard", None, &[]),
    ("Personal email", "standard", None, &[]),
    ("LinkedIn", "link", None, &[]),
    ("First aider", "list", None, &["Yes", "No"]),
    ("Main or secondary occupation", "list", None, &["Main occupation", "Secondary occupation"]),
    ("Child allowance", "decimal", None, &[]),
    ("Nationality", "list", Some("nationality"), &["German", "Austrian", "French", "Turkish", "Polish", "Spanish"]),
    ("Salary type", "list", None, &["Fixed salary", "Hourly wage"]),
    ("Notice period", "standard", None, &[]),
    ("Occupation type", "list", None, &["Full-time", "Part-time", "Mini-job"]),
    ("Project manager", "standard", None, &[]),
    ("Mentor", "standard", None, &[]),
    ("Birthday", "date", Some("date_of_birth"), &[]),
    ("Visa expiry date", "date", None, &[]),
    ("Größe", "list", None, &["XS", "S", "M", "L", "XL"]),
    ("E-Mail (privat)", "standard", None, &[]),
    ("Cost Center %", "decimal", None, &[]),
    ("1. Hilfe", "list", None, &["ja", "nein"]),
    ("Notice Period", "multiline", None, &[]),
    ("Anniversary Date", "date", None, &[]),
];

impl Company {
    /// Generates the company deterministically from `seed` and `sizes`, with the clock at `now`.
    pub fn generate(seed: u64, sizes: &Sizes, now: DateTime<Utc>) -> Company {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let org = Org {
            offices: vec![(131014, "Munich"), (131015, "Berlin"), (131016, "Madrid"), (131017, "London"), (131018, "Remote")],
            departments: vec![
                (281521, "Customer Support"), (281522, "Engineering"), (281523, "Sales"), (281524, "People & Culture"),
                (281525, "Finance"), (281526, "Marketing"), (281527, "Product"),
            ],
            teams: vec![(59026, "T_X"), (59027, "Platform"), (59028, "Growth"), (59029, "Payroll"), (59030, "Team Süd")],
            subcompanies: vec![(7033, "CS Demo GmbH"), (7034, "CS Demo España S.L.")],
            cost_centers: vec![(82957, "Cost center 1"), (82958, "R&D"), (82959, "Sales & Marketing"), (82960, "Overhead")],
            calendars: vec![
                (2, "Deutschland (Bayern) Feiertage", "DE", Some("Bayern")),
                (3, "Deutschland (Berlin) Feiertage", "DE", Some("Berlin")),
                (9, "España Festivos", "ES", None),
                (12, "United Kingdom Bank Holidays", "GB", None),
            ],
            schedules: vec![
                (97188, "Full-time, 40 hours without time tracking, (mon,tue,wed,thu,fri)",
                 ["08:00", "08:00", "08:00", "08:00", "08:00", "00:00", "00:00"]),
                (97189, "Part-time 20h (mon-fri)", ["04:00", "04:00", "04:00", "04:00", "04:00", "00:00", "00:00"]),
                (97190, "Part-time 32h (mon-thu)", ["08:00", "08:00", "08:00", "08:00", "00:00", "00:00", "00:00"]),
            ],
        };
        let time_off_types = vec![
            ("Paid vacation", "paid_vacation", "day", true),
            ("Sick leave", "sick_leave", "day", false),
            ("Unpaid vacation", "unpaid_vacation", "day", true),
            ("Parental leave", "maternity_parental_leave", "day", true),
            ("Home office", "offsite_work", "hour", true),
            ("Overtime compensation", "other", "hour", true),
            ("Weiterbildung / Training", "other", "day", true),
            ("Kind krank", "child_care", "day", false),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, cat, unit, appr))| TimeOffType {
            id: 113437 + i as i64 * 3,
            id_v2: uuid(&mut rng),
            name: name.into(),
            category: cat.into(),
            unit: unit.into(),
            approval_required: appr,
        })
        .collect::<Vec<_>>();
        let mut attr_defs = Vec::new();
        let mut next_attr_id = 1_000_101i64;
        for (label, ty, uid, opts) in CUSTOM {
            attr_defs.push(AttrDef {
                key: format!("dynamic_{next_attr_id}"),
                label: (*label).into(),
                ty: (*ty).into(),
                universal_id: uid.map(String::from),
                options: opts.iter().map(|s| s.to_string()).collect(),
            });
            next_attr_id += rng.random_range(1..40);
        }
        let projects = [
            ("Website relaunch", true), ("Customer onboarding", true), ("ERP Migration", false),
            ("Internal tools", true), ("Messe München 2025", false), ("Büro-Umzug", true),
        ]
        .iter()
        .enumerate()
        .map(|(i, (n, a))| {
            let c = now - Duration::days(900 - i as i64 * 60) - Duration::minutes(rng.random_range(0..600));
            Project { id: i as i64 + 1, name: (*n).into(), active: *a, created_at: c, updated_at: c + Duration::days(rng.random_range(0..200)) }
        })
        .collect();
        let document_categories = [
            "Certificates of employment", "Other documents", "Arbeitsvertrag", "Gehaltsabrechnungen", "Krankmeldungen (AU)",
            "Zeugnisse & Zertifikate", "Onboarding",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i64 + 1, n.to_string()))
        .collect();

        let mut c = Company {
            seed,
            now,
            attr_defs,
            employees: Vec::new(),
            time_off_types,
            absences: Vec::new(),
            attendances: Vec::new(),
            projects,
            document_categories,
            reports: Vec::new(),
            generation: 0,
            org,
            rng,
            next_employee_id: 1_132_880,
            next_absence_id: 31_000_000,
            next_attendance_id: 80_000_000,
            next_attr_id,
        };
        let mut emails = BTreeSet::new();
        for i in 0..sizes.employees {
            c.push_employee(i, sizes, &mut emails);
        }
        // Absences and attendances per employee.
        for i in 0..c.employees.len() {
            c.gen_absences(i, sizes.years);
        }
        for i in 0..c.employees.len() {
            if c.employees[i].tracks_time {
                c.gen_attendances(i, sizes.years);
            }
        }
        c.gen_reports();
        c
    }

    fn push_employee(&mut self, idx: usize, sizes: &Sizes, emails: &mut BTreeSet<String>) {
        let rng = &mut self.rng;
        let id = self.next_employee_id;
        self.next_employee_id += rng.random_range(1..5);
        let first = pick(rng, FIRST).to_string();
        let last = pick(rng, LAST).to_string();
        let mut email = format!("{}.{}@demo-gmbh.example", ascii(&first), ascii(&last));
        let mut n = 2;
        while emails.contains(&email) {
            email = format!("{}.{}{}@demo-gmbh.example", ascii(&first), ascii(&last), n);
            n += 1;
        }
        emails.insert(email.clone());
        let now = self.now;
        let today = berlin_date(now);
        let sparse = idx == 0;
        let roll: f64 = rng.random();
        let status = if idx < 3 {
            "active"
        } else if roll < 0.78 {
            "active"
        } else if roll < 0.88 {
            "inactive"
        } else if roll < 0.95 {
            "onboarding"
        } else {
            "leave"
        };
        let hire = if status == "onboarding" {
            today + Duration::days(rng.random_range(3..90))
        } else {
            today - Duration::days(rng.random_range(30..3650))
        };
        let created_at = berlin_to_utc((hire - Duration::days(rng.random_range(14..60))).and_hms_opt(9, 0, 0).unwrap_or_default())
            + Duration::seconds(rng.random_range(0..28_800));
        let created_at = created_at.min(now - Duration::hours(1));
        let span = (now - created_at).num_seconds().max(1);
        let last_modified = created_at + Duration::seconds(rng.random_range(0..span));
        let gender = *pick(rng, &["male", "female", "female", "male", "diverse"]);
        let position = *pick(rng, POSITIONS);
        let part_time = rng.random_bool(0.2);
        let schedule = if part_time { self.org.schedules[1 + rng.random_range(0..2)] } else { self.org.schedules[0] };
        let hours = if part_time { if schedule.0 == 97189 { "20" } else { "32" } } else { "40" };
        let o = &self.org;
        let office = *pick(rng, &o.offices);
        let dept = *pick(rng, &o.departments);
        let team = if rng.random_bool(0.7) { Some(*pick(rng, &o.teams)) } else { None };
        let sub = if office.1 == "Madrid" { o.subcompanies[1] } else { o.subcompanies[0] };
        let cal = match office.1 {
            "Munich" => o.calendars[0],
            "Madrid" => o.calendars[2],
            "London" => o.calendars[3],
            _ => o.calendars[1],
        };
        let n_cc = if rng.random_bool(0.15) { 2 } else if rng.random_bool(0.9) { 1 } else { 0 };
        let mut ccs = Vec::new();
        for k in 0..n_cc {
            let cc = o.cost_centers[(rng.random_range(0..o.cost_centers.len()) + k) % o.cost_centers.len()];
            let pct = if n_cc == 2 { if k == 0 { 60 } else { 40 } } else { 100 };
            ccs.push(json!({"type": "CostCenter", "attributes": {"id": cc.0, "name": cc.1, "percentage": pct}}));
        }
        let vacation = *pick(rng, &[24.0, 26.0, 28.0, 30.0, 27.5]);
        let vacation = if idx == 0 { 30.0 } else { vacation };
        let entitlements = vec![(self.time_off_types[0].id, vacation), (self.time_off_types[5].id, 0.0)];
        let tracks_time = idx < 2 || rng.random_bool(sizes.attendance_share);
        let supervisor = if idx < 2 {
            None
        } else {
            let k = rng.random_range(0..idx.min(idx / 4 + 3));
            Some(k)
        };
        let sup_val = supervisor.map(|k| {
            let e = &self.employees[k];
            let mut a = serde_json::Map::new();
            for key in ["id", "first_name", "last_name", "preferred_name", "email"] {
                if let Some(v) = e.attrs.get(key) {
                    a.insert(key.into(), v.clone());
                }
            }
            json!({"type": "Employee", "attributes": a})
        });
        let (term_date, term_type, term_reason) = if status == "inactive" {
            let d = today - Duration::days(rng.random_range(1..700));
            let d = d.max(hire + Duration::days(20));
            (json!(fmt_v1_date(d)), json!(pick(rng, &["employee", "employer", "mutual"])), json!(pick(rng, &["Relocation", "Career change", "Performance", "Kündigung in der Probezeit"])))
        } else if rng.random_bool(0.5) {
            (Value::Null, json!(""), json!(""))
        } else {
            (Value::Null, Value::Null, Value::Null)
        };
        let contract_end = if !sparse && rng.random_bool(0.15) { json!(fmt_v1_date(hire + Duration::days(rng.random_range(365..1100)))) } else { Value::Null };
        let probation = if sparse { Value::Null } else { json!(fmt_v1_date(hire + Duration::days(182))) };
        let salary = rng.random_range(28..120) as f64 * 1000.0 / 12.0;
        let salary = (salary * 100.0).round() / 100.0;
        let hourly = if rng.random_bool(0.1) { 14.5 + rng.random_range(0..20) as f64 * 0.25 } else { 0.0 };

        let mut at: IndexMap<String, Value> = IndexMap::new();
        at.insert("id".into(), std_attr("ID", json!(id), "integer", "id"));
        at.insert("first_name".into(), std_attr("First name", json!(first), "standard", "first_name"));
        at.insert("last_name".into(), std_attr("Last name", json!(last), "standard", "last_name"));
        at.insert("preferred_name".into(), std_attr("Name (preferred)", json!(format!("{first} {last}")), "standard", "preferred_name"));
        at.insert("email".into(), std_attr("Email", json!(email), "standard", "email"));
        at.insert("gender".into(), std_attr("Gender", json!(gender), "standard", "gender"));
        at.insert("status".into(), std_attr("Status", json!(status), "standard", "status"));
        at.insert("position".into(), std_attr("Position", json!(if idx == 0 { "CEO" } else { position }), "standard", "position"));
        at.insert("supervisor".into(), std_attr("Supervisor", sup_val.unwrap_or(Value::Null), "standard", "supervisor"));
        at.insert("employment_type".into(), std_attr("Employment type", json!(if rng.random_bool(0.9) { "internal" } else { "external" }), "standard", "employment_type"));
        at.insert("weekly_working_hours".into(), std_attr("Weekly hours", json!(hours), "standard", "weekly_working_hours"));
        at.insert("hire_date".into(), std_attr("Hire date", if sparse { Value::Null } else { json!(fmt_v1_date(hire)) }, "date", "hire_date"));
        at.insert("contract_end_date".into(), std_attr("Contract ends", contract_end, "date", "contract_end_date"));
        at.insert("termination_date".into(), std_attr("Termination date", term_date.clone(), "date", "termination_date"));
        at.insert("termination_type".into(), std_attr("Termination type", term_type, "standard", "termination_type"));
        at.insert("termination_reason".into(), std_attr("Termination reason", term_reason, "standard", "termination_reason"));
        at.insert("probation_period_end".into(), std_attr("Probation period end", probation, "date", "probation_period_end"));
        at.insert("created_at".into(), std_attr("created_at", json!(fmt_v1(created_at)), "date", "created_at"));
        at.insert("last_modified_at".into(), std_attr("Last modified", json!(fmt_v1(last_modified)), "date", "last_modified_at"));
        let obj = |t: &str, (i, n): (i64, &str)| json!({"type": t, "attributes": {"id": i, "name": n}});
        at.insert("subcompany".into(), std_attr("Subcompany", if sparse { Value::Null } else { obj("Subcompany", sub) }, "standard", "subcompany"));
        at.insert("office".into(), std_attr("Office", if sparse { Value::Null } else { obj("Office", office) }, "standard", "office"));
        at.insert("department".into(), std_attr("Department", if sparse { Value::Null } else { obj("Department", dept) }, "standard", "department"));
        at.insert("cost_centers".into(), std_attr("Cost center", Value::Array(ccs), "standard", "cost_centers"));
        at.insert(
            "holiday_calendar".into(),
            std_attr("Public holidays", json!({"type": "HolidayCalendar", "attributes": {"id": cal.0, "name": cal.1, "country": cal.2, "state": cal.3}}), "standard", "holiday_calendar"),
        );
        let ent: Vec<Value> = entitlements
            .iter()
            .filter_map(|(tid, amount)| {
                let t = self.time_off_types.iter().find(|t| t.id == *tid)?;
                Some(json!({"type": "TimeOffType", "attributes": {"id": t.id, "name": t.name, "category": t.category, "entitlement": num(*amount)}}))
            })
            .collect();
        at.insert("absence_entitlement".into(), std_attr("Absence entitlement", Value::Array(ent), "standard", "absence_entitlement"));
        let valid_from = if sparse { Value::Null } else { json!(fmt_v1_date(hire)) };
        let d = schedule.2;
        at.insert(
            "work_schedule".into(),
            std_attr(
                "Work schedule",
                json!({"type": "WorkSchedule", "attributes": {"id": schedule.0, "name": schedule.1, "valid_from": valid_from,
                    "monday": d[0], "tuesday": d[1], "wednesday": d[2], "thursday": d[3], "friday": d[4], "saturday": d[5], "sunday": d[6]}}),
                "standard",
                "work_schedule",
            ),
        );
        let mut fs = std_attr("Fix salary", num(salary), "decimal", "fix_salary");
        if let Some(m) = fs.as_object_mut() {
            m.insert("currency".into(), json!("EUR"));
        }
        at.insert("fix_salary".into(), fs);
        at.insert("fix_salary_interval".into(), std_attr("Salary interval", json!("monthly"), "standard", "fix_salary_interval"));
        let mut hs = std_attr("Hourly salary", num(hourly), "decimal", "hourly_salary");
        if let Some(m) = hs.as_object_mut() {
            m.insert("currency".into(), json!("EUR"));
        }
        at.insert("hourly_salary".into(), hs);
        at.insert("last_working_day".into(), std_attr("Last day of work", term_date, "date", "last_working_day"));
        at.insert(
            "profile_picture".into(),
            std_attr("Profile Picture", if sparse { Value::Null } else { json!(format!("https://api.personio.de/v1/company/employees/{id}/profile-picture")) }, "standard", "profile_picture"),
        );
        at.insert("team".into(), std_attr("Team", if sparse { Value::Null } else { team.map(|t| obj("Team", t)).unwrap_or(Value::Null) }, "standard", "team"));
        let defs = self.attr_defs.clone();
        for def in &defs {
            let v = custom_value(&mut self.rng, def, idx, &first, &last, hire, &self.employees);
            at.insert(def.key.clone(), dyn_attr(def, v));
        }
        let mut e = Employee {
            id,
            attrs: at,
            created_at,
            last_modified,
            attr_changed: BTreeMap::new(),
            initial_modified: last_modified,
            entitlements,
            tracks_time,
            json: Arc::from(""),
        };
        e.rerender();
        self.employees.push(e);
    }

    fn gen_absences(&mut self, i: usize, years: u32) {
        let now = self.now;
        let today = berlin_date(now);
        let e = &self.employees[i];
        let eid = e.id;
        let status = attr_str(e, "status");
        let hire = attr_str(e, "hire_date").get(..10).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        let from = (today - Duration::days(365 * years as i64)).max(hire.unwrap_or(today - Duration::days(365 * years as i64)));
        if status == "onboarding" || from >= today {
            return;
        }
        let horizon = today + Duration::days(75);
        let mut used: BTreeSet<NaiveDate> = BTreeSet::new();
        let first_employee = i == 0;
        let mut planned: Vec<(NaiveDate, NaiveDate, usize, bool, bool)> = Vec::new();
        let total_days = (horizon - from).num_days().max(1);
        let years_f = total_days as f64 / 365.0;
        let n_vac = ((5.0 * years_f).round() as usize).max(1);
        let n_sick = (2.0 * years_f).round() as usize;
        let n_other = (0.7 * years_f).round() as usize;
        let mut kinds: Vec<usize> = Vec::new();
        kinds.extend(std::iter::repeat_n(0usize, n_vac));
        kinds.extend(std::iter::repeat_n(1usize, n_sick));
        for _ in 0..n_other {
            kinds.push(*pick(&mut self.rng, &[2usize, 6, 7, 6, 7]));
        }
        let n_hours = (4.0 * years_f).round() as usize;
        kinds.extend(std::iter::repeat_n(4usize, n_hours));
        for k in kinds {
            let rng = &mut self.rng;
            let start = from + Duration::days(rng.random_range(0..total_days));
            if !is_workday(start) {
                continue;
            }
            let len = match k {
                0 => rng.random_range(1..11),
                1 => rng.random_range(1..6),
                4 => 1,
                _ => rng.random_range(1..4),
            };
            let mut end = start;
            let mut n = 1;
            while n < len {
                end += Duration::days(1);
                if is_workday(end) {
                    n += 1;
                }
            }
            let mut d = start;
            let mut clash = false;
            while d <= end {
                if used.contains(&d) {
                    clash = true;
                }
                d += Duration::days(1);
            }
            if clash {
                continue;
            }
            let mut d = start;
            while d <= end {
                used.insert(d);
                d += Duration::days(1);
            }
            let half_ok = k == 0 && !first_employee;
            let hs = half_ok && rng.random_bool(0.08);
            let he = half_ok && !hs && len > 1 && rng.random_bool(0.06);
            planned.push((start, end, k, hs, he));
        }
        planned.sort_by_key(|p| p.0);
        for (start, end, k, hs, he) in planned {
            let rng = &mut self.rng;
            let t = &self.time_off_types[k];
            let created_at = (berlin_to_utc(start.and_hms_opt(10, 0, 0).unwrap_or_default()) - Duration::days(rng.random_range(if k == 1 { 0..2 } else { 3..60 }))
                + Duration::seconds(rng.random_range(0..20_000)))
            .min(now - Duration::minutes(5));
            let updated_at = (created_at + Duration::seconds(rng.random_range(0..259_200))).min(now - Duration::minutes(1)).max(created_at);
            let future = start > today;
            let status = if !future {
                if rng.random_bool(0.97) { "approved" } else { "pending" }
            } else if rng.random_bool(0.65) {
                "approved"
            } else if rng.random_bool(0.8) {
                "pending"
            } else {
                "requested"
            };
            let (amount, hours) = if t.unit == "hour" {
                let s = rng.random_range(16..30) * 30;
                let h = rng.random_range(2..17) * 30;
                (h as f64 / 60.0, Some((s as u16, (s + h) as u16)))
            } else {
                (workdays(start, end) as f64 - if hs { 0.5 } else { 0.0 } - if he { 0.5 } else { 0.0 }, None)
            };
            let comment = match k {
                0 => pick(rng, &["", "", "", "Summer vacation", "Urlaub in Österreich 🏔", "Familienbesuch", "Brückentag"]).to_string(),
                1 => String::new(),
                _ => pick(rng, &["", "Kita geschlossen", "Workshop \"Leadership\""]).to_string(),
            };
            let created_by = if rng.random_bool(0.8) { "API".to_string() } else { "Ulrike Admin".to_string() };
            let certificate = if k == 1 && workdays(start, end) > 3 { "uploaded" } else { "not-required" };
            let id = self.next_absence_id;
            self.next_absence_id += rng.random_range(1..4);
            let mut a = Absence {
                id,
                id_v2: uuid(rng),
                employee_id: eid,
                type_id: t.id,
                status: status.into(),
                comment,
                start,
                end,
                half_start: hs,
                half_end: he,
                amount,
                hours,
                created_by,
                certificate: certificate.into(),
                created_at,
                updated_at,
                json: Arc::from(""),
            };
            self.render_absence(&mut a);
            self.absences.push(a);
        }
    }

    fn gen_attendances(&mut self, i: usize, years: u32) {
        let now = self.now;
        let today = berlin_date(now);
        let e = &self.employees[i];
        let eid = e.id;
        let status = attr_str(e, "status");
        if status == "onboarding" {
            return;
        }
        let hire = attr_str(e, "hire_date").get(..10).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        let from = (today - Duration::days(365 * years as i64)).max(hire.unwrap_or(today - Duration::days(365 * years as i64)));
        let off: BTreeSet<NaiveDate> = self
            .absences
            .iter()
            .filter(|a| a.employee_id == eid && a.hours.is_none())
            .flat_map(|a| {
                let mut v = Vec::new();
                let mut d = a.start;
                while d <= a.end {
                    v.push(d);
                    d += Duration::days(1);
                }
                v
            })
            .collect();
        let active_projects: Vec<i64> = self.projects.iter().filter(|p| p.active).map(|p| p.id).collect();
        let mut d = from;
        while d <= today {
            let rng = &mut self.rng;
            if !is_workday(d) || off.contains(&d) || rng.random_bool(0.03) {
                d += Duration::days(1);
                continue;
            }
            let age = (today - d).num_days();
            let start_min = 450 + rng.random_range(0..10) * 15;
            let break_min = *pick(rng, &[30u16, 30, 45, 60, 0]);
            let work = 420 + rng.random_range(0..8) * 15;
            let mut end_min = Some((start_min + work + break_min).min(23 * 60 + 59));
            let status = if age > 14 {
                if rng.random_bool(0.01) { "rejected" } else { "confirmed" }
            } else if age == 0 {
                end_min = None;
                "pending"
            } else if rng.random_bool(0.6) {
                "confirmed"
            } else if rng.random_bool(0.9) {
                if rng.random_bool(0.05) {
                    end_min = None;
                }
                "pending"
            } else {
                "rejected"
            };
            let project_id = if !active_projects.is_empty() && rng.random_bool(0.3) { Some(*pick(rng, &active_projects)) } else { None };
            let comment = if rng.random_bool(0.05) { pick(rng, &["Kundentermin in Köln", "I was super productive", "Late shift", "Messe"]).to_string() } else { String::new() };
            let end_local = d.and_time(NaiveTime::from_hms_opt(u32::from(end_min.unwrap_or(start_min + 60)) / 60, u32::from(end_min.unwrap_or(start_min + 60)) % 60, 0).unwrap_or(NaiveTime::MIN));
            let created_at = (berlin_to_utc(end_local) + Duration::seconds(rng.random_range(0..7200))).min(now - Duration::minutes(2));
            let updated_at = if rng.random_bool(0.05) { created_at + Duration::seconds(rng.random_range(0..864_000)) } else { created_at };
            let updated_at = updated_at.min(now - Duration::minutes(1)).max(created_at);
            let id = self.next_attendance_id;
            self.next_attendance_id += 1;
            let mut a = Attendance {
                id,
                id_v2: uuid(rng),
                employee_id: eid,
                date: d,
                start_min,
                end_min,
                break_min,
                comment,
                status: status.into(),
                project_id,
                created_at,
                updated_at,
                json: Arc::from(""),
            };
            self.render_attendance(&mut a);
            self.attendances.push(a);
            d += Duration::days(1);
        }
    }

    fn gen_reports(&mut self) {
        let now = self.now;
        let today = berlin_date(now);
        let vac = self.time_off_types[0].id;
        let month_start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
        let prev_month_end = month_start - Duration::days(1);
        let prev_month_start = NaiveDate::from_ymd_opt(prev_month_end.year(), prev_month_end.month(), 1).unwrap_or(prev_month_end);
        let defs: Vec<(&str, &str, &str, &str, Vec<String>, bool)> = vec![
            ("Headcount by department", "All employees with department, cost center and target hours", "point_in_time", "up_to_date",
             vec!["first_name".into(), "last_name".into(), "department".into(), "cost_center".into(), "attendance_contractual_target_hours".into(), "hire_date".into()], true),
            ("Employee vacations past month", "Vacation overview and periods", "timeframe", "up_to_date",
             vec!["first_name".into(), format!("absence_{vac}"), format!("absence_{vac}:periods")], true),
            ("Compensation & performance", "Salary, compensation and performance", "point_in_time", "up_to_date",
             vec!["salary_4711".into(), "COMP-BONUS-2026".into(), "performance_target_q4".into(), "performance_kpi_nps".into()], true),
            ("Position history", "Historical positions and departments", "historical_data", "up_to_date",
             vec!["position".into(), "department".into()], true),
            ("Leavers 2027 (draft)", "Empty report", "point_in_time", "updating", vec!["first_name".into()], false),
        ];
        for (i, (name, desc, kind, status, columns, has_items)) in defs.into_iter().enumerate() {
            let id = uuid(&mut self.rng).to_string();
            let created_at = now - Duration::days(400 - i as i64 * 50) - Duration::seconds(self.rng.random_range(0..80_000));
            let period = if kind == "timeframe" { (prev_month_start, prev_month_end) } else { (today, today) };
            self.reports.push(Report { id, name: name.into(), description: desc.into(), kind: kind.into(), status: status.into(), columns, has_items, created_at, period });
        }
    }

    /// Renders an absence's v1 record into its cache.
    fn render_absence(&self, a: &mut Absence) {
        let Some(t) = self.time_off_types.iter().find(|t| t.id == a.type_id).cloned().or_else(|| a.hours.map(|_| TimeOffType {
            id: a.type_id, id_v2: Uuid::nil(), name: String::new(), category: String::new(), unit: "hour".into(), approval_required: false,
        })) else {
            a.json = Arc::from("");
            return;
        };
        if t.unit != "day" {
            a.json = Arc::from("");
            return;
        }
        let v = self.absence_v1(a, &t);
        a.json = Arc::from(v.to_string());
    }

    fn absence_v1(&self, a: &Absence, t: &TimeOffType) -> Value {
        let emp = self.employee(a.employee_id);
        let mut ea = serde_json::Map::new();
        if let Some(e) = emp {
            for (k, label) in [("id", "id"), ("first_name", "First name"), ("last_name", "Last name"), ("email", "Email")] {
                if let Some(v) = e.attrs.get(k) {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.insert("label".into(), json!(label));
                    }
                    ea.insert(k.into(), v);
                }
            }
        }
        json!({"type": "TimeOffPeriod", "attributes": {
            "id": a.id, "id_v2": a.id_v2.to_string(), "status": a.status, "comment": a.comment,
            "start_date": fmt_v1_date(a.start), "end_date": fmt_v1_date(a.end),
            "days_count": num(a.amount), "half_day_start": a.half_start, "half_day_end": a.half_end,
            "time_off_type": {"type": "TimeOffType", "attributes": {"id": t.id, "name": t.name, "category": t.category}},
            "employee": {"type": "Employee", "attributes": ea},
            "created_by": a.created_by, "certificate": {"status": a.certificate},
            "created_at": fmt_v1(a.created_at), "updated_at": fmt_v1(a.updated_at)}})
    }

    fn render_attendance(&self, a: &mut Attendance) {
        a.json = Arc::from(self.attendance_v1(a).to_string());
    }

    fn attendance_v1(&self, a: &Attendance) -> Value {
        let project = a.project_id.and_then(|p| self.projects.iter().find(|x| x.id == p)).map(|p| {
            json!({"id": p.id, "type": "Project", "attributes": {"name": p.name, "active": p.active}})
        });
        json!({"id": a.id, "type": "AttendancePeriod", "attributes": {
            "id_v2": a.id_v2.to_string(), "employee": a.employee_id, "date": a.date.format("%Y-%m-%d").to_string(),
            "start_time": hhmm(a.start_min), "end_time": a.end_min.map(hhmm), "break": a.break_min, "comment": a.comment,
            "updated_at": fmt_v1(a.updated_at), "status": a.status, "is_holiday": false, "is_on_time_off": false,
            "project": project}})
    }

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

    /// v1 time-off-type record.
    pub fn time_off_type_v1(t: &TimeOffType) -> Value {
        json!({"type": "TimeOffType", "attributes": {"id": t.id, "id_v2": t.id_v2.to_string(), "name": t.name, "category": t.category, "unit": t.unit, "approval_required": t.approval_required}})
    }

    /// v1 project record.
    pub fn project_v1(p: &Project) -> Value {
        json!({"id": p.id, "type": "Project", "attributes": {"name": p.name, "active": p.active, "created_at": fmt_v1(p.created_at), "updated_at": fmt_v1(p.updated_at)}})
    }

    /// v1 document-category record.
    pub fn document_category_v1(c: &(i64, String)) -> Value {
        json!({"id": c.0, "type": "DocumentCategory", "attributes": {"name": c.1}})
    }

    /// v1 `/absences/balance` rows of an employee.
    pub fn balance_v1(&self, e: &Employee) -> Vec<Value> {
        let today = berlin_date(self.now);
        let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
        let mut out = Vec::new();
        for (tid, ent) in &e.entitlements {
            let Some(t) = self.time_off_type(*tid) else { continue };
            let mut taken = 0.0;
            let mut upcoming = 0.0;
            for a in self.absences.iter().filter(|a| a.employee_id == e.id && a.type_id == *tid && a.status == "approved") {
                if a.start > today {
                    upcoming += a.amount;
                } else if a.end >= year_start {
                    taken += a.amount;
                }
            }
            let (balance, available) = if t.unit == "hour" {
                let worked: f64 = (e.id % 7) as f64 * 2.5 + if e.id % 2 == 0 { 0.0 } else { 0.75 };
                (worked - taken, worked - taken - upcoming)
            } else {
                (ent - taken, ent - taken - upcoming)
            };
            out.push(json!({"id": t.id, "name": t.name, "category": t.category, "balance": num(balance), "available_balance": num(available)}));
        }
        out
    }

    /// v1 custom report list record.
    pub fn report_v1_meta(&self, r: &Report) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        let filters: Vec<Value> = if r.kind == "point_in_time" && r.has_items { vec![json!({"column": "status", "comparison": "neq", "value": "inactive"})] } else { vec![] };
        for (k, v) in [
            ("id", json!(r.id)), ("name", json!(r.name)), ("description", json!(r.description)),
            ("author_first_name", json!("Ulrike")), ("author_last_name", json!("Admin")),
            ("type", json!(r.kind)), ("status", json!(r.status)),
            ("start_date", json!(r.period.0.format("%Y-%m-%d").to_string())), ("end_date", json!(r.period.1.format("%Y-%m-%d").to_string())),
            ("created_at", json!(fmt_v2(r.created_at))), ("updated_at", json!(fmt_v2(r.created_at + Duration::days(3)))),
            ("data_refreshed_at", json!(fmt_v2(self.now - Duration::hours(2)))),
            ("columns", json!(r.columns)), ("filters", json!(filters)),
            ("period_type", json!(if r.kind == "timeframe" { "last_month" } else { "today" })),
        ] {
            m.insert(k.into(), v);
        }
        m
    }

    /// Employees that appear in a report, in order.
    pub fn report_employees(&self, r: &Report) -> Vec<&Employee> {
        if !r.has_items {
            return Vec::new();
        }
        self.employees.iter().filter(|e| attr_str(e, "status") != "inactive").collect()
    }

    /// One report item (per employee).
    pub fn report_item(&self, ri: usize, e: &Employee) -> Value {
        let Some(r) = self.reports.get(ri) else { return Value::Null };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (e.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ri as u64);
        let eid = e.id;
        let val = |k: &str| e.attrs.get(k).and_then(|a| a.get("value")).cloned().unwrap_or(Value::Null);
        let entity = |k: &str| {
            let v = val(k);
            let id = v.pointer("/attributes/id").map(|x| x.to_string());
            let name = v.pointer("/attributes/name").cloned().unwrap_or(Value::Null);
            (id, name)
        };
        if r.kind == "historical_data" {
            let mut hist = Vec::new();
            let created = self.now - Duration::days(rng.random_range(200..1200));
            let (did, dname) = entity("department");
            hist.push(json!({"attribute_id": "position", "data_type": "TEXT", "value": pick(&mut rng, POSITIONS), "effective_date": berlin_date(created).format("%Y-%m-%d").to_string(), "employee_id": eid}));
            hist.push(json!({"attribute_id": "department", "entity_id": did, "data_type": "ENTITY", "value": dname, "effective_date": berlin_date(created).format("%Y-%m-%d").to_string(), "employee_id": eid}));
            if rng.random_bool(0.4) {
                let later = created + Duration::days(rng.random_range(30..180));
                hist.push(json!({"attribute_id": "position", "data_type": "TEXT", "value": val("position"), "effective_date": berlin_date(later).format("%Y-%m-%d").to_string(), "employee_id": eid}));
            }
            return json!({"employee_id": eid, "historical_attributes": hist});
        }
        let mut attrs = Vec::new();
        match ri {
            0 => {
                attrs.push(json!({"attribute_id": "first_name", "data_type": "TEXT", "value": val("first_name"), "employee_id": eid}));
                attrs.push(json!({"attribute_id": "last_name", "data_type": "TEXT", "value": val("last_name"), "employee_id": eid}));
                let (did, dname) = entity("department");
                attrs.push(json!({"attribute_id": "department", "entity_id": did.map(|s| s.trim_matches('"').to_string()), "data_type": "ENTITY", "value": dname, "employee_id": eid}));
                let ccs: Vec<Value> = val("cost_centers").as_array().cloned().unwrap_or_default().iter().map(|c| json!({
                    "cost_center_id": c.pointer("/attributes/id").map(|x| x.to_string()), "value": c.pointer("/attributes/name"),
                    "weight": format!("{}%", c.pointer("/attributes/percentage").cloned().unwrap_or(json!(100)))})).collect();
                attrs.push(json!({"attribute_id": "cost_center", "data_type": "COST_CENTER", "employee_id": eid, "cost_centers": ccs}));
                let hours: f64 = val("weekly_working_hours").as_str().and_then(|s| s.parse().ok()).unwrap_or(40.0);
                attrs.push(json!({"attribute_id": "attendance_contractual_target_hours", "data_type": "DURATION", "duration": num(hours / 5.0), "employee_id": eid}));
                let hd = val("hire_date");
                attrs.push(json!({"attribute_id": "hire_date", "data_type": "DATE", "value": hd.as_str().and_then(|s| s.get(..10)), "employee_id": eid}));
            }
            1 => {
                attrs.push(json!({"attribute_id": "first_name", "data_type": "TEXT", "value": val("first_name"), "employee_id": eid}));
                let (s, en) = r.period;
                let vac_id = self.time_off_types.first().map(|t| t.id).unwrap_or(0);
                let periods: Vec<&Absence> = self.absences.iter().filter(|a| a.employee_id == eid && a.type_id == vac_id && a.start <= en && a.end >= s).collect();
                let days: f64 = periods.iter().map(|a| a.amount).sum();
                attrs.push(json!({"attribute_id": format!("absence_{vac_id}"), "data_type": "ABSENCE_OVERVIEW", "start_date": s.format("%Y-%m-%d").to_string(), "end_date": en.format("%Y-%m-%d").to_string(),
                    "duration_days": num(days).to_string(), "duration_hours": num(days * 8.0).to_string(), "employee_id": eid}));
                for a in periods {
                    attrs.push(json!({"attribute_id": format!("absence_{vac_id}:periods"), "data_type": "ABSENCE_PERIOD", "start_date": a.start.format("%Y-%m-%d").to_string(),
                        "end_date": a.end.format("%Y-%m-%d").to_string(), "half_day_at_start": a.half_start, "half_day_at_end": a.half_end, "employee_id": eid}));
                }
            }
            _ => {
                let salary = val("fix_salary").as_f64().unwrap_or(0.0);
                attrs.push(json!({"attribute_id": "salary_4711", "data_type": "SALARY", "amount": format!("{salary:.2}"), "currency_symbol": "€", "employee_id": eid}));
                attrs.push(json!({"attribute_id": "COMP-BONUS-2026", "data_type": "COMPENSATION", "amount": format!("{:.2}", rng.random_range(0..5000) as f64), "currency_code": "EUR", "currency_symbol": "€",
                    "overtime_hours": rng.random_range(0..30).to_string(), "bonus_type": pick(&mut rng, &["MAX", "TARGET", "NONE"]), "employee_id": eid}));
                attrs.push(json!({"attribute_id": "performance_target_q4", "data_type": "PERFORMANCE_TARGET", "target_name": "Q4 goals", "target_value": "100", "achieved_value": rng.random_range(40..130).to_string(), "unit": "%", "employee_id": eid}));
                attrs.push(json!({"attribute_id": "performance_kpi_nps", "data_type": "PERFORMANCE_KPI", "kpi_name": "NPS", "kpi_value": rng.random_range(-20..80).to_string(), "employee_id": eid}));
            }
        }
        json!({"employee_id": eid, "attributes": attrs})
    }

    // ---------------------------------------------------------------- v2 rendering

    /// v2 person.
    pub fn person_v2(&self, e: &Employee) -> Value {
        let val = |k: &str| e.attrs.get(k).and_then(|a| a.get("value")).cloned().unwrap_or(Value::Null);
        let custom: Vec<Value> = self
            .attr_defs
            .iter()
            .filter_map(|d| {
                let v = e.attrs.get(&d.key)?.get("value")?.clone();
                Some(json!({"id": d.key.trim_start_matches("dynamic_"), "type": d.ty.to_uppercase(), "value": v}))
            })
            .collect();
        let gender = val("gender").as_str().map(str::to_uppercase);
        json!({"id": e.id.to_string(), "email": val("email"), "first_name": val("first_name"), "last_name": val("last_name"),
            "preferred_name": val("preferred_name"), "gender": gender, "language_code": "de",
            "created_at": fmt_v2(e.created_at), "updated_at": fmt_v2(e.last_modified),
            "custom_attributes": custom, "employments": [{"id": format!("{}1", e.id)}]})
    }

    /// v2 employment of a person.
    pub fn employment_v2(&self, e: &Employee) -> Value {
        let val = |k: &str| e.attrs.get(k).and_then(|a| a.get("value")).cloned().unwrap_or(Value::Null);
        let idof = |k: &str| val(k).pointer("/attributes/id").map(|v| json!({"id": v.to_string()})).unwrap_or(Value::Null);
        let date = |k: &str| val(k).as_str().and_then(|s| s.get(..10)).map(String::from);
        let sup = val("supervisor").pointer("/attributes/id/value").map(|v| json!({"id": v.to_string()})).unwrap_or(Value::Null);
        let mut org_units = Vec::new();
        if let Some(d) = val("department").pointer("/attributes/id") {
            org_units.push(json!({"id": d.to_string(), "type": "DEPARTMENT"}));
        }
        if let Some(t) = val("team").pointer("/attributes/id") {
            org_units.push(json!({"id": t.to_string(), "type": "TEAM"}));
        }
        let hours: f64 = val("weekly_working_hours").as_str().and_then(|s| s.parse().ok()).unwrap_or(40.0);
        json!({"id": format!("{}1", e.id), "person": {"id": e.id.to_string()},
            "position": {"title": val("position")}, "status": val("status").as_str().map(str::to_uppercase),
            "employment_start_date": date("hire_date"), "type": val("employment_type").as_str().map(str::to_uppercase),
            "contract_end_date": date("contract_end_date"), "probation_end_date": date("probation_period_end"),
            "termination": {"termination_date": date("termination_date"), "type": val("termination_type"), "reason": val("termination_reason")},
            "weekly_working_hours": num(hours), "full_time_weekly_working_hours": 40,
            "supervisor": sup, "office": idof("office"), "org_units": org_units, "legal_entity": idof("subcompany"),
            "cost_centers": val("cost_centers").as_array().cloned().unwrap_or_default().iter().map(|c| json!({"id": c.pointer("/attributes/id").map(|x| x.to_string()), "weight": c.pointer("/attributes/percentage")})).collect::<Vec<_>>(),
            "created_at": fmt_v2(e.created_at), "updated_at": fmt_v2(e.last_modified)})
    }

    /// v2 absence period.
    pub fn absence_v2(&self, a: &Absence) -> Value {
        let type_v2 = self.time_off_type(a.type_id).map(|t| t.id_v2.to_string()).unwrap_or_else(|| a.type_id.to_string());
        let (start, end) = match a.hours {
            Some((s, e)) => (
                format!("{}T{}:00", a.start.format("%Y-%m-%d"), hhmm(s)),
                format!("{}T{}:00", a.end.format("%Y-%m-%d"), hhmm(e)),
            ),
            None => (format!("{}T00:00:00", a.start.format("%Y-%m-%d")), format!("{}T23:59:59", a.end.format("%Y-%m-%d"))),
        };
        json!({"id": a.id_v2.to_string(), "person": {"id": a.employee_id.to_string()}, "absence_type": {"id": type_v2},
            "starts_from": {"date_time": start, "type": if a.half_start { json!("SECOND_HALF") } else { Value::Null }},
            "ends_at": {"date_time": end, "type": if a.half_end { json!("FIRST_HALF") } else { Value::Null }},
            "timezone_id": "Europe/Berlin", "comment": a.comment, "approval": {"status": a.status.to_uppercase()},
            "created_at": fmt_v2(a.created_at), "updated_at": fmt_v2(a.updated_at)})
    }

    /// v2 absence type.
    pub fn absence_type_v2(t: &TimeOffType) -> Value {
        json!({"id": t.id_v2.to_string(), "name": t.name, "category": t.category, "unit": t.unit.to_uppercase(),
            "approval_required": t.approval_required, "legacy_id": t.id.to_string()})
    }

    /// v2 attendance periods (a WORK period with the v1 `id_v2`, plus a BREAK period when there was a break).
    pub fn attendance_v2(&self, a: &Attendance) -> Vec<Value> {
        let d = a.date.format("%Y-%m-%d");
        let end = a.end_min.map(|m| json!({"date_time": format!("{d}T{}:00", hhmm(m))})).unwrap_or(Value::Null);
        let project = a.project_id.map(|p| json!({"id": p.to_string()})).unwrap_or(Value::Null);
        let mut out = vec![json!({"id": a.id_v2.to_string(), "person": {"id": a.employee_id.to_string()}, "type": "WORK",
            "start": {"date_time": format!("{d}T{}:00", hhmm(a.start_min))}, "end": end, "project": project,
            "comment": a.comment, "status": a.status.to_uppercase(), "timezone_id": "Europe/Berlin",
            "created_at": fmt_v2(a.created_at), "updated_at": fmt_v2(a.updated_at)})];
        if a.break_min > 0 {
            let bs = 12 * 60u16;
            let bid = Uuid::new_v5(&a.id_v2, b"break");
            out.push(json!({"id": bid.to_string(), "person": {"id": a.employee_id.to_string()}, "type": "BREAK",
                "start": {"date_time": format!("{d}T{}:00", hhmm(bs))}, "end": {"date_time": format!("{d}T{}:00", hhmm(bs + a.break_min))},
                "project": Value::Null, "comment": "", "status": a.status.to_uppercase(), "timezone_id": "Europe/Berlin",
                "created_at": fmt_v2(a.created_at), "updated_at": fmt_v2(a.updated_at)}));
        }
        out
    }

    /// v2 project.
    pub fn project_v2(p: &Project) -> Value {
        json!({"id": p.id.to_string(), "name": p.name, "status": if p.active { "ACTIVE" } else { "INACTIVE" },
            "created_at": fmt_v2(p.created_at), "updated_at": fmt_v2(p.updated_at)})
    }

    // ---------------------------------------------------------------- mutations

    /// Updates `n` employees (a changed position or city); their `last_modified_at` becomes the clock. Returns their ids.
    pub fn update_employees(&mut self, n: usize) -> Vec<i64> {
        let now = self.now;
        let len = self.employees.len();
        let mut ids = Vec::new();
        if len == 0 {
            return ids;
        }
        let mut picked = BTreeSet::new();
        while picked.len() < n.min(len) {
            picked.insert(self.rng.random_range(0..len));
        }
        let city_key = self.attr_defs.iter().find(|d| d.label == "City").map(|d| d.key.clone());
        for i in picked {
            let change_position = self.rng.random_bool(0.5);
            let newpos = *pick(&mut self.rng, POSITIONS);
            let newcity = *pick(&mut self.rng, &["Hamburg", "Köln", "Leipzig", "Graz", "Zürich"]);
            let e = &mut self.employees[i];
            let key = if change_position || city_key.is_none() { "position".to_string() } else { city_key.clone().unwrap_or_default() };
            let val = if key == "position" { newpos } else { newcity };
            if let Some(a) = e.attrs.get_mut(&key).and_then(Value::as_object_mut) {
                a.insert("value".into(), json!(val));
            }
            e.attr_changed.insert(key, now);
            e.set_modified(now);
            ids.push(e.id);
        }
        self.generation += 1;
        ids
    }

    /// Adds an absence (day unit, approved, `days` working days from `start`) for an employee; returns its id.
    pub fn add_absence(&mut self, employee_id: i64, start: NaiveDate, days: u32, type_id: Option<i64>) -> Option<i64> {
        self.employee(employee_id)?;
        let now = self.now;
        let t = match type_id {
            Some(t) => self.time_off_type(t)?.clone(),
            None => self.time_off_types.iter().find(|t| t.unit == "day")?.clone(),
        };
        let mut end = start;
        let mut n = 1;
        while n < days.max(1) {
            end += Duration::days(1);
            if is_workday(end) {
                n += 1;
            }
        }
        let id = self.next_absence_id;
        self.next_absence_id += 1;
        let hours = if t.unit == "hour" { Some((540u16, 780u16)) } else { None };
        let mut a = Absence {
            id, id_v2: uuid(&mut self.rng), employee_id, type_id: t.id, status: "approved".into(), comment: "added by sandbox".into(),
            start, end, half_start: false, half_end: false,
            amount: if hours.is_some() { 4.0 } else { workdays(start, end) as f64 }, hours, created_by: "API".into(),
            certificate: "not-required".into(), created_at: now, updated_at: now, json: Arc::from(""),
        };
        self.render_absence(&mut a);
        self.absences.push(a);
        self.generation += 1;
        Some(id)
    }

    /// Updates an absence (comment and status); `updated_at` becomes the clock.
    pub fn update_absence(&mut self, id: i64) -> bool {
        let Ok(i) = self.absences.binary_search_by_key(&id, |a| a.id) else { return false };
        let mut a = self.absences[i].clone();
        a.comment = format!("updated at {}", fmt_v1(self.now));
        if a.status != "approved" {
            a.status = "approved".into();
        }
        a.updated_at = self.now;
        self.render_absence(&mut a);
        self.absences[i] = a;
        self.generation += 1;
        true
    }

    /// Deletes an absence (no tombstone, as in Personio).
    pub fn delete_absence(&mut self, id: i64) -> bool {
        let Ok(i) = self.absences.binary_search_by_key(&id, |a| a.id) else { return false };
        self.absences.remove(i);
        self.generation += 1;
        true
    }

    /// Adds a confirmed attendance for an employee on a date; returns its id.
    pub fn add_attendance(&mut self, employee_id: i64, date: NaiveDate) -> Option<i64> {
        self.employee(employee_id)?;
        let id = self.next_attendance_id;
        self.next_attendance_id += 1;
        let now = self.now;
        let mut a = Attendance {
            id, id_v2: uuid(&mut self.rng), employee_id, date, start_min: 540, end_min: Some(1050), break_min: 30,
            comment: "added by sandbox".into(), status: "confirmed".into(), project_id: None, created_at: now, updated_at: now, json: Arc::from(""),
        };
        self.render_attendance(&mut a);
        self.attendances.push(a);
        self.generation += 1;
        Some(id)
    }

    /// Updates an attendance (end time moved by 15 minutes, confirmed); `updated_at` becomes the clock.
    pub fn update_attendance(&mut self, id: i64) -> bool {
        let Ok(i) = self.attendances.binary_search_by_key(&id, |a| a.id) else { return false };
        let mut a = self.attendances[i].clone();
        a.end_min = Some(a.end_min.unwrap_or(a.start_min + 480).saturating_add(15).min(23 * 60 + 59));
        a.status = "confirmed".into();
        a.updated_at = self.now;
        self.render_attendance(&mut a);
        self.attendances[i] = a;
        self.generation += 1;
        true
    }

    /// Deletes an attendance.
    pub fn delete_attendance(&mut self, id: i64) -> bool {
        let Ok(i) = self.attendances.binary_search_by_key(&id, |a| a.id) else { return false };
        self.attendances.remove(i);
        self.generation += 1;
        true
    }

    /// Adds a custom attribute to every employee (values filled in); every employee's `last_modified_at` moves. Returns its key.
    pub fn add_custom_attribute(&mut self, label: &str, ty: &str) -> String {
        let key = format!("dynamic_{}", self.next_attr_id);
        self.next_attr_id += 7;
        let def = AttrDef { key: key.clone(), label: label.into(), ty: ty.into(), universal_id: None, options: Vec::new() };
        let now = self.now;
        for i in 0..self.employees.len() {
            let v = match ty {
                "integer" => json!(self.rng.random_range(1..100)),
                "decimal" => num(self.rng.random_range(0..10_000) as f64 / 100.0),
                "date" => json!((berlin_date(now) - Duration::days(self.rng.random_range(0..2000))).format("%Y-%m-%d").to_string()),
                _ => json!(format!("{} {}", label, self.rng.random_range(1..1000))),
            };
            let e = &mut self.employees[i];
            e.attrs.insert(key.clone(), dyn_attr(&def, v));
            e.attr_changed.insert(key.clone(), now);
            e.set_modified(now);
        }
        self.attr_defs.push(def);
        self.generation += 1;
        key
    }

    /// Changes the type of an attribute (converting values to strings, numbers or dates as fits); returns false for an unknown key.
    pub fn change_attribute_type(&mut self, key: &str, ty: &str) -> bool {
        let Some(def) = self.attr_defs.iter_mut().find(|d| d.key == key) else { return false };
        def.ty = ty.into();
        let now = self.now;
        for e in &mut self.employees {
            if let Some(a) = e.attrs.get_mut(key).and_then(Value::as_object_mut) {
                let old = a.get("value").cloned().unwrap_or(Value::Null);
                let new = match (ty, &old) {
                    (_, Value::Null) => Value::Null,
                    ("integer", Value::String(s)) => s.trim().parse::<i64>().map(|n| json!(n)).unwrap_or(json!(s.len() as i64)),
                    ("decimal", Value::String(s)) => s.trim().parse::<f64>().map(num).unwrap_or(json!(s.len() as f64 + 0.5)),
                    ("standard" | "multiline" | "link", Value::Number(n)) => json!(n.to_string()),
                    _ => old,
                };
                a.insert("value".into(), new);
                a.insert("type".into(), json!(ty));
                e.attr_changed.insert(key.to_string(), now);
                e.set_modified(now);
            }
        }
        self.generation += 1;
        true
    }

    /// Deletes every time-off type (absences stay but are no longer served by v1 time-offs).
    pub fn delete_all_time_off_types(&mut self) {
        self.time_off_types.clear();
        let mut abs = std::mem::take(&mut self.absences);
        for a in &mut abs {
            self.render_absence(a);
        }
        self.absences = abs;
        self.generation += 1;
    }

    /// Adds `n` new employees (e.g. between two pages); returns their ids.
    pub fn add_employees(&mut self, n: usize) -> Vec<i64> {
        let sizes = Sizes { employees: 0, years: 1, attendance_share: 0.0 };
        let mut emails: BTreeSet<String> = self.employees.iter().map(|e| attr_str(e, "email")).collect();
        let mut ids = Vec::new();
        for _ in 0..n {
            let idx = self.employees.len().max(3);
            self.push_employee(idx, &sizes, &mut emails);
            if let Some(e) = self.employees.last_mut() {
                let now = self.now;
                e.created_at = now;
                e.initial_modified = now;
                if let Some(a) = e.attrs.get_mut("created_at").and_then(Value::as_object_mut) {
                    a.insert("value".into(), json!(fmt_v1(now)));
                }
                e.set_modified(now);
                ids.push(e.id);
            }
        }
        self.generation += 1;
        ids
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

fn custom_value(rng: &mut ChaCha8Rng, def: &AttrDef, idx: usize, first: &str, last: &str, hire: NaiveDate, prev: &[Employee]) -> Value {
    let sparse = idx == 0;
    if !def.options.is_empty() && def.ty == "list" {
        if rng.random_bool(0.1) {
            return Value::Null;
        }
        return json!(pick(rng, &def.options));
    }
    match def.label.as_str() {
        "Trainings" | "Language skills" => {
            let n = rng.random_range(0..3);
            let mut v: Vec<&str> = (0..n).map(|_| pick(rng, &def.options).as_str()).collect();
            v.sort();
            v.dedup();
            json!(v.join(","))
        }
        "National insurance number" => json!(format!("{:02} {:06} {}{:03}", rng.random_range(10..99), rng.random_range(0..999_999), ascii(last).chars().next().unwrap_or('x').to_ascii_uppercase(), rng.random_range(0..999))),
        "Holder of bank account" => json!(format!("{first} {last}")),
        "Emergency contact name" => if rng.random_bool(0.2) { json!("") } else { json!(format!("{} {}", pick(rng, FIRST), last)) },
        "Address" => json!(format!("{} {}\n{} {}", pick(rng, &["Hauptstraße", "Bahnhofstr.", "Lindenweg", "Am Mühlbach"]), rng.random_range(1..120), rng.random_range(10000..99999), pick(rng, &["München", "Berlin", "Köln"]))),
        "Key number ID" => if sparse { Value::Null } else { json!(rng.random_range(100..999)) },
        "IBAN" => json!(format!("DE{:02} {:04} {:04} {:04} {:04} {:02}", rng.random_range(10..99), rng.random_range(0..9999), rng.random_range(0..9999), rng.random_range(0..9999), rng.random_range(0..9999), rng.random_range(0..99))),
        "Emergency contact phone number" => json!(format!("+49 {} {}", rng.random_range(150..179), rng.random_range(1_000_000..9_999_999))),
        "City" => json!(pick(rng, &["München", "Berlin", "Madrid", "London", "Düsseldorf"])),
        "Laptop serial number" => json!(format!("C02{}{:05}", pick(rng, &["XK", "YL", "ZQ"]), rng.random_range(0..99_999))),
        "Employee ID" => json!(format!("E-{:05}", idx + 1)),
        "BIC" => json!(pick(rng, &["COBADEFFXXX", "DEUTDEDBMUC", "HYVEDEMMXXX"])),
        "Postcode" => json!(format!("{:05}", rng.random_range(1000..99999))),
        "Name of health insurance" => json!(pick(rng, &["TK", "AOK Bayern", "Barmer", "DAK-Gesundheit"])),
        "Personal email" => json!(format!("{}.{}@mail.example", ascii(first), ascii(last))),
        "E-Mail (privat)" => if rng.random_bool(0.5) { Value::Null } else { json!(format!("{}{}@privat.example", ascii(first), rng.random_range(1..99))) },
        "LinkedIn" => if rng.random_bool(0.3) { json!("") } else { json!(format!("https://www.linkedin.com/in/{}-{}", ascii(first), ascii(last))) },
        "Child allowance" => num(*pick(rng, &[0.0, 0.5, 1.0, 1.5, 2.0])),
        "Notice period" => json!(pick(rng, &["3 months", "4 weeks", "6 weeks to quarter end"])),
        "Notice Period" => json!(pick(rng, &["Gesetzlich", "Vertraglich: 3 Monate"])),
        "Project manager" | "Mentor" => {
            if prev.is_empty() {
                Value::Null
            } else {
                let e = &prev[rng.random_range(0..prev.len())];
                json!(format!("{} {}", attr_str(e, "first_name"), attr_str(e, "last_name")))
            }
        }
        "Birthday" => if sparse { Value::Null } else { json!((hire - Duration::days(rng.random_range(20 * 365..55 * 365))).format("%Y-%m-%d").to_string()) },
        "Visa expiry date" => if sparse || rng.random_bool(0.85) { Value::Null } else { json!(fmt_v1_date(hire + Duration::days(rng.random_range(400..1500)))) },
        "Cost Center %" => num(*pick(rng, &[100.0, 50.0, 33.33, 75.5])),
        "Anniversary Date" => json!((hire + Duration::days(365 * 5)).format("%Y-%m-%d").to_string()),
        _ => match def.ty.as_str() {
            "integer" => json!(rng.random_range(0..100)),
            "decimal" => num(rng.random_range(0..10_000) as f64 / 100.0),
            _ => json!(""),
        },
    }
}
