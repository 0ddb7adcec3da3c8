//! v1 renderings of the model (records as the v1 endpoints serve them).

use super::*;

impl Company {
    /// Renders an absence's v1 record into its cache.
    pub(crate) fn render_absence(&self, a: &mut Absence) {
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

    pub(crate) fn absence_v1(&self, a: &Absence, t: &TimeOffType) -> Value {
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

    pub(crate) fn render_attendance(&self, a: &mut Attendance) {
        a.json = Arc::from(self.attendance_v1(a).to_string());
    }

    pub(crate) fn attendance_v1(&self, a: &Attendance) -> Value {
        let project = a.project_id.and_then(|p| self.projects.iter().find(|x| x.id == p)).map(|p| {
            json!({"id": p.id, "type": "Project", "attributes": {"name": p.name, "active": p.active}})
        });
        json!({"id": a.id, "type": "AttendancePeriod", "attributes": {
            "id_v2": a.id_v2.to_string(), "employee": a.employee_id, "date": a.date.format("%Y-%m-%d").to_string(),
            "start_time": hhmm(a.start_min), "end_time": a.end_min.map(hhmm), "break": a.break_min, "comment": a.comment,
            "updated_at": fmt_v1(a.updated_at), "status": a.status, "is_holiday": false, "is_on_time_off": false,
            "project": project}})
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

}
