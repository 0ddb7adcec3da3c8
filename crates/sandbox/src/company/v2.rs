//! v2 renderings of the model, with the fields and enums of Personio's v2 specs
//! (`personio-openapi/v2/*.json`, personio-api.md §13.1).

use std::cmp::Ordering;

use chrono::NaiveDateTime;

use super::*;

/// v1 attribute type → v2 custom attribute type (common-components-v2.json `CustomAttribute.type`).
fn custom_type_v2(ty: &str) -> &'static str {
    match ty {
        "integer" => "INT",
        "decimal" => "DOUBLE",
        "date" => "DATE",
        "tags" => "STRING_LIST",
        _ => "STRING",
    }
}

/// A v1 attribute value as a v2 custom attribute value (a string or a list of strings); `None` for null.
fn custom_value_v2(ty: &str, v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if ty == "tags" => Some(json!(s.split(',').map(str::trim).filter(|x| !x.is_empty()).collect::<Vec<_>>())),
        Value::String(s) if ty == "date" => Some(json!(s.get(..10).unwrap_or(s))),
        Value::String(s) => Some(json!(s)),
        Value::Number(n) => Some(json!(n.to_string())),
        Value::Bool(b) => Some(json!(b.to_string())),
        other => Some(json!(other.to_string())),
    }
}

/// Removes the `null` members of an object.
fn drop_nulls(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
}

/// v1 `termination_type` → v2 `termination.type` (employment-contract-v2.json `Termination.type`).
fn termination_type_v2(v1: &str) -> Option<&'static str> {
    match v1 {
        "employee" => Some("EMPLOYEE"),
        "employer" => Some("FIRED"),
        "mutual" => Some("AGREEMENT"),
        _ => None,
    }
}

impl Company {
    /// Start minute of the day of every break period.
    pub const BREAK_START_MIN: u16 = 12 * 60;

    fn id_namespace(&self) -> Uuid {
        Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("personio-sandbox:company:{}", self.seed).as_bytes())
    }

    /// The UUID of a person's (only) employment, deterministic from the seed and the person.
    pub fn employment_id(&self, e: &Employee) -> Uuid {
        Uuid::new_v5(&self.id_namespace(), format!("employment:{}", e.id).as_bytes())
    }

    /// v2 person (persons-service-api-v2.json `Person`). `bare`: a credential without whitelisted
    /// attributes, which sees only `{id, employments, _meta}`.
    pub fn person_v2(&self, e: &Employee, base: &str, bare: bool) -> Value {
        let val = |k: &str| e.attrs.get(k).and_then(|a| a.get("value")).cloned().unwrap_or(Value::Null);
        let employments = json!([{"id": self.employment_id(e).to_string()}]);
        let meta = json!({"links": {"employments": {"href": format!("{base}/v2/persons/{}/employments", e.id)}}});
        if bare {
            return json!({"id": e.id.to_string(), "employments": employments, "_meta": meta});
        }
        let custom: Vec<Value> = self
            .attr_defs
            .iter()
            .filter_map(|d| {
                let v = custom_value_v2(&d.ty, e.attrs.get(&d.key)?.get("value")?)?;
                let global_id = d.universal_id.clone().unwrap_or_else(|| d.key.clone());
                Some(json!({"id": d.key, "type": custom_type_v2(&d.ty), "global_id": global_id, "label": d.label, "value": v}))
            })
            .collect();
        let gender = match val("gender").as_str() {
            Some("male") => "MALE",
            Some("female") => "FEMALE",
            Some("diverse") => "DIVERSE",
            _ => "UNSPECIFIED",
        };
        let status = if val("status").as_str() == Some("inactive") { "INACTIVE" } else { "ACTIVE" };
        json!({"id": e.id.to_string(), "email": val("email"), "created_at": fmt_v2(e.created_at), "updated_at": fmt_v2(e.last_modified),
            "first_name": val("first_name"), "last_name": val("last_name"), "preferred_name": val("preferred_name"), "gender": gender,
            "profile_picture": {"url": format!("https://api.personio.de/v1/company/employees/{}/profile-picture", e.id)},
            "status": status, "custom_attributes": custom, "employments": employments, "_meta": meta})
    }

    /// v2 employment of a person (employment-contract-v2.json `Employment`).
    pub fn employment_v2(&self, e: &Employee, base: &str) -> Value {
        let val = |k: &str| e.attrs.get(k).and_then(|a| a.get("value")).cloned().unwrap_or(Value::Null);
        let entity_id = |k: &str| val(k).pointer("/attributes/id").map(|v| v.to_string());
        let id_obj = |id: Option<String>| id.map(|i| json!({"id": i})).unwrap_or(Value::Null);
        let date = |k: &str| val(k).as_str().and_then(|s| s.get(..10)).map(String::from);
        let sup = val("supervisor").pointer("/attributes/id/value").map(|v| v.to_string());
        let mut org_units = Vec::new();
        if let Some(t) = entity_id("team") {
            org_units.push(json!({"type": "team", "id": t}));
        }
        if let Some(d) = entity_id("department") {
            org_units.push(json!({"type": "department", "id": d}));
        }
        let hours: f64 = val("weekly_working_hours").as_str().and_then(|s| s.parse().ok()).unwrap_or(40.0);
        let status = val("status").as_str().unwrap_or("").to_uppercase();
        let termination_date = date("termination_date");
        let terminated_at = termination_date
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(|d| (d - Duration::days(30 + e.id.rem_euclid(61))).format("%Y-%m-%d").to_string());
        let term_type = termination_type_v2(val("termination_type").as_str().unwrap_or(""));
        let reason = val("termination_reason").as_str().filter(|s| !s.is_empty()).map(String::from);
        let position = val("position");
        let job = position.as_str().map(|p| Uuid::new_v5(&self.id_namespace(), format!("job:{p}").as_bytes()).to_string());
        let sub = entity_id("subcompany");
        let cost_centers: Vec<Value> = val("cost_centers")
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| json!({"id": c.pointer("/attributes/id").map(|x| x.to_string()), "weight": c.pointer("/attributes/percentage")}))
            .collect();
        let mut links = serde_json::Map::new();
        links.insert("person".into(), json!({"href": format!("{base}/v2/persons/{}", e.id)}));
        if let Some(s) = &sup {
            links.insert("supervisor".into(), json!({"href": format!("{base}/v2/persons/{s}")}));
        }
        let mut termination = json!({"termination_date": termination_date, "last_working_day": date("last_working_day"),
            "terminated_at": terminated_at, "type": term_type, "reason": reason});
        drop_nulls(&mut termination);
        let mut v = json!({"id": self.employment_id(e).to_string(), "status": status, "weekly_working_hours": num(hours), "full_time_weekly_working_hours": 40,
            "probation_end_date": date("probation_period_end"), "employment_start_date": date("hire_date"),
            "employment_end_date": if status == "INACTIVE" { termination_date.clone() } else { None },
            "type": val("employment_type").as_str().map(str::to_uppercase), "contract_end_date": date("contract_end_date"),
            "created_at": fmt_v2(e.created_at), "updated_at": fmt_v2(e.last_modified),
            "position": {"title": position}, "supervisor": id_obj(sup), "office": id_obj(entity_id("office")),
            "legal_entity": id_obj(sub.clone()), "job": id_obj(job), "sub_company": id_obj(sub), "org_units": org_units,
            "cost_centers": cost_centers, "person": {"id": e.id.to_string()},
            "termination": if termination.as_object().is_some_and(|m| m.is_empty()) { Value::Null } else { termination },
            "_meta": {"links": links}});
        // The spec's fields are not nullable: an absent object or value is left out. The three end dates stay
        // `null` when absent, as every employment example of the spec has `"employment_end_date": null`.
        if let Some(m) = v.as_object_mut() {
            m.retain(|k, x| !x.is_null() || matches!(k.as_str(), "employment_end_date" | "contract_end_date" | "probation_end_date"));
        }
        v
    }

    /// v2 absence period (hub get_v2-absence-periods; personio-api.md §13.1).
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

    /// v2 absence type: `{id, name, category (UPPER_CASE), unit (DAY/HOUR)}` (hub get_v2-absence-types).
    pub fn absence_type_v2(t: &TimeOffType) -> Value {
        json!({"id": t.id_v2.to_string(), "name": t.name, "category": t.category.to_uppercase(), "unit": t.unit.to_uppercase()})
    }

    /// The id of an attendance's WORK period (its v1 `id_v2`) or of its BREAK period.
    pub fn period_id(&self, a: &Attendance, brk: bool) -> Uuid {
        if brk { Uuid::new_v5(&a.id_v2, b"break") } else { a.id_v2 }
    }

    /// One v2 attendance period: the WORK period of an attendance, or its BREAK period (hub get_v2-attendance-periods).
    pub fn attendance_period_v2(&self, a: &Attendance, brk: bool) -> Value {
        let d = a.date.format("%Y-%m-%d");
        let status = a.status.to_uppercase();
        if brk {
            let bs = Self::BREAK_START_MIN;
            return json!({"id": self.period_id(a, true).to_string(), "person": {"id": a.employee_id.to_string()}, "type": "BREAK",
                "start": {"date_time": format!("{d}T{}:00", hhmm(bs))}, "end": {"date_time": format!("{d}T{}:00", hhmm(bs + a.break_min))},
                "project": Value::Null, "comment": "", "status": status, "updated_at": fmt_v2(a.updated_at)});
        }
        let end = a.end_min.map(|m| json!({"date_time": format!("{d}T{}:00", hhmm(m))})).unwrap_or(Value::Null);
        let project = a.project_id.map(|p| json!({"id": p.to_string()})).unwrap_or(Value::Null);
        json!({"id": a.id_v2.to_string(), "person": {"id": a.employee_id.to_string()}, "type": "WORK",
            "start": {"date_time": format!("{d}T{}:00", hhmm(a.start_min))}, "end": end, "project": project,
            "comment": a.comment, "status": status, "updated_at": fmt_v2(a.updated_at)})
    }

    /// v2 project status: `ACTIVE` or `ARCHIVED`.
    pub fn project_status_v2(p: &Project) -> &'static str {
        if p.active { "ACTIVE" } else { "ARCHIVED" }
    }

    /// v2 project.
    pub fn project_v2(p: &Project) -> Value {
        json!({"id": p.id.to_string(), "name": p.name, "status": Self::project_status_v2(p),
            "created_at": fmt_v2(p.created_at), "updated_at": fmt_v2(p.updated_at)})
    }
}

/// Start and end wall-clock times of an absence period as v2 serves them.
pub fn absence_bounds(a: &Absence) -> (NaiveDateTime, NaiveDateTime) {
    let at = |d: NaiveDate, min: u32| d.and_hms_opt(min / 60, min % 60, 0).unwrap_or_default();
    match a.hours {
        Some((s, e)) => (at(a.start, u32::from(s)), at(a.end, u32::from(e))),
        None => (at(a.start, 0), a.end.and_hms_opt(23, 59, 59).unwrap_or_default()),
    }
}

/// One attendance period: the attendance's index and whether it is its BREAK part.
pub type PeriodRef = u32;

pub fn period_ref(idx: usize, brk: bool) -> PeriodRef {
    (idx as u32) << 1 | u32::from(brk)
}

/// Sort keys of a period: (person id, start, end (None = open), updated_at, status).
pub fn period_keys(a: &Attendance, brk: bool) -> (i64, NaiveDateTime, Option<NaiveDateTime>) {
    let at = |min: u16| a.date.and_hms_opt(u32::from(min) / 60, u32::from(min) % 60, 0).unwrap_or_default();
    if brk {
        let bs = Company::BREAK_START_MIN;
        (a.employee_id, at(bs), Some(at(bs + a.break_min)))
    } else {
        (a.employee_id, at(a.start_min), a.end_min.map(at))
    }
}

/// Every attendance period in the default order `person.id,start.date_time,end.date_time`.
pub fn default_period_order(w: &Company) -> Vec<PeriodRef> {
    let mut v: Vec<(i64, NaiveDateTime, Option<NaiveDateTime>, PeriodRef)> = Vec::with_capacity(w.attendances.len() * 2);
    for (i, a) in w.attendances.iter().enumerate() {
        let (p, s, e) = period_keys(a, false);
        v.push((p, s, e, period_ref(i, false)));
        if a.break_min > 0 {
            let (p, s, e) = period_keys(a, true);
            v.push((p, s, e, period_ref(i, true)));
        }
    }
    v.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)).then_with(|| cmp_nulls_last(x.2, y.2)).then(x.3.cmp(&y.3)));
    v.into_iter().map(|x| x.3).collect()
}

pub fn cmp_nulls_last<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
    }
}

