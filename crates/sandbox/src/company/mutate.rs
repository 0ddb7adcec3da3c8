//! Mutations through the admin API and faults; each bumps the data generation.

use super::*;

impl Company {

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

    /// Changes a share (0–1) of the company at the clock, as a benchmark's "1 % changed" step: that share
    /// of employees (position or city), of absences and of attendances (each at least one when any
    /// exist), picked with the company's seeded RNG. Returns how many of each changed.
    pub fn mutate_share(&mut self, share: f64) -> (usize, usize, usize) {
        let share = if share.is_finite() { share.clamp(0.0, 1.0) } else { 0.0 };
        let count = |len: usize| if len == 0 || share == 0.0 { 0 } else { ((len as f64 * share).ceil() as usize).clamp(1, len) };
        let employees = self.update_employees(count(self.employees.len())).len();
        let picks = |rng: &mut ChaCha8Rng, len: usize| {
            let mut picked = BTreeSet::new();
            while picked.len() < count(len) {
                picked.insert(rng.random_range(0..len));
            }
            picked
        };
        let absence_ids: Vec<i64> = picks(&mut self.rng, self.absences.len()).into_iter().map(|i| self.absences[i].id).collect();
        let attendance_ids: Vec<i64> = picks(&mut self.rng, self.attendances.len()).into_iter().map(|i| self.attendances[i].id).collect();
        let absences = absence_ids.into_iter().filter(|id| self.update_absence(*id)).count();
        let attendances = attendance_ids.into_iter().filter(|id| self.update_attendance(*id)).count();
        (employees, absences, attendances)
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

    /// Erases an employee as Personio does after the retention period: the employee and every absence
    /// and attendance of theirs are gone (no tombstones), so are their balances, v2 person, employment
    /// and report rows. References to them in other employees' records (supervisor) stay as they were.
    /// Returns false for an unknown id.
    pub fn erase_employee(&mut self, id: i64) -> bool {
        let Ok(i) = self.employees.binary_search_by_key(&id, |e| e.id) else { return false };
        self.employees.remove(i);
        self.absences.retain(|a| a.employee_id != id);
        self.attendances.retain(|a| a.employee_id != id);
        self.generation += 1;
        true
    }

    /// Moves an employee to the next department of the company's list (after the last: the first; an
    /// employee without one gets the first) at the clock, as an HR change: `department` and
    /// `last_modified_at` change. Returns the new department's (id, name), `None` for an unknown id.
    pub fn move_to_next_department(&mut self, id: i64) -> Option<(i64, String)> {
        let now = self.now;
        let departments = self.org.departments.clone();
        let e = self.employees.iter_mut().find(|e| e.id == id)?;
        let current = e.attrs.get("department").and_then(|a| a.pointer("/value/attributes/id")).and_then(Value::as_i64);
        let next = match current.and_then(|c| departments.iter().position(|(d, _)| *d == c)) {
            Some(i) => departments[(i + 1) % departments.len()],
            None => *departments.first()?,
        };
        let a = e.attrs.get_mut("department").and_then(Value::as_object_mut)?;
        a.insert("value".into(), json!({"type": "Department", "attributes": {"id": next.0, "name": next.1}}));
        e.attr_changed.insert("department".into(), now);
        e.set_modified(now);
        self.generation += 1;
        Some((next.0, next.1.to_string()))
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
