//! Deterministic generation of the company from a seed.

use super::*;

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
            reports_generation: None,
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
        c.sync_reports();
        c
    }

    pub(crate) fn push_employee(&mut self, idx: usize, sizes: &Sizes, emails: &mut BTreeSet<String>) {
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

    pub(crate) fn gen_absences(&mut self, i: usize, years: u32) {
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

    pub(crate) fn gen_attendances(&mut self, i: usize, years: u32) {
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

    pub(crate) fn gen_reports(&mut self) {
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
            // Refreshed two hours before the clock when the company is made ([`Company::sync_reports`]).
            let refreshed_at = now - Duration::hours(2);
            self.reports.push(Report { id, name: name.into(), description: desc.into(), kind: kind.into(), status: status.into(), columns, has_items, created_at, period, refreshed_at, content_hash: None });
        }
    }

}

pub(crate) fn custom_value(rng: &mut ChaCha8Rng, def: &AttrDef, idx: usize, first: &str, last: &str, hire: NaiveDate, prev: &[Employee]) -> Value {
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
