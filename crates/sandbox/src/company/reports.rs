//! Custom reports (v1): list metadata and per-employee report items.

use super::*;

impl Company {
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
            ("data_refreshed_at", json!(fmt_v2(r.refreshed_at))),
            ("columns", json!(r.columns)), ("filters", json!(filters)),
            ("period_type", json!(if r.kind == "timeframe" { "last_month" } else { "today" })),
        ] {
            m.insert(k.into(), v);
        }
        m
    }

    /// Bring every report's `data_refreshed_at` up to date after mutations: a report whose items changed
    /// since it was last refreshed is refreshed at the clock (Personio refreshes a report when data relevant
    /// to it changes, so a report whose rows are the same keeps its time). Runs when a write to the company
    /// ends ([`crate::state::WorldWrite`]); costs one rendering of every report's items per data generation.
    pub fn sync_reports(&mut self) {
        use std::hash::{Hash, Hasher};
        if self.reports_generation == Some(self.generation) {
            return;
        }
        for ri in 0..self.reports.len() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if let Some(r) = self.reports.get(ri) {
                for item in self.report_items(ri, self.report_employees(r)) {
                    item.to_string().hash(&mut h);
                }
            }
            let hash = h.finish();
            let now = self.now;
            if let Some(r) = self.reports.get_mut(ri) {
                if r.content_hash.is_some_and(|old| old != hash) {
                    // A refresh takes time at Personio, so two refreshes never share a time; here the clock
                    // stands still between `advance_clock` calls, so later refreshes go one second further.
                    r.refreshed_at = now.max(r.refreshed_at + Duration::seconds(1));
                }
                r.content_hash = Some(hash);
            }
        }
        self.reports_generation = Some(self.generation);
    }

    /// Employees that appear in a report, in order.
    pub fn report_employees(&self, r: &Report) -> Vec<&Employee> {
        if !r.has_items {
            return Vec::new();
        }
        self.employees.iter().filter(|e| attr_str(e, "status") != "inactive").collect()
    }

    /// The report items (one per employee) of `employees`, in order. The vacations of the report's period
    /// are indexed once per call, not scanned per item.
    pub fn report_items<'a>(&'a self, ri: usize, employees: impl IntoIterator<Item = &'a Employee>) -> Vec<Value> {
        let Some(r) = self.reports.get(ri) else { return Vec::new() };
        let vacations = self.vacations_by_employee(r.period);
        employees.into_iter().map(|e| self.report_item(ri, e, &vacations)).collect()
    }

    /// Vacation absences overlapping `period`, by employee (what report items of absence columns list).
    fn vacations_by_employee(&self, period: (NaiveDate, NaiveDate)) -> std::collections::HashMap<i64, Vec<&Absence>> {
        let vac_id = self.time_off_types.first().map(|t| t.id).unwrap_or(0);
        let mut by: std::collections::HashMap<i64, Vec<&Absence>> = std::collections::HashMap::new();
        for a in self.absences.iter().filter(|a| a.type_id == vac_id && a.start <= period.1 && a.end >= period.0) {
            by.entry(a.employee_id).or_default().push(a);
        }
        by
    }

    /// One report item (per employee), given the vacations of the report's period by employee.
    fn report_item(&self, ri: usize, e: &Employee, vacations: &std::collections::HashMap<i64, Vec<&Absence>>) -> Value {
        let Some(r) = self.reports.get(ri) else { return Value::Null };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (e.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ri as u64);
        let eid = e.id;
        let val = |k: &str| e.attrs.get(k).and_then(|a| a.get("value")).cloned().unwrap_or(Value::Null);
        // (entity id as a string, entity name); both `None` when the employee has none.
        let entity = |k: &str| {
            let v = val(k);
            let id = v.pointer("/attributes/id").filter(|x| !x.is_null()).map(|x| x.as_str().map_or_else(|| x.to_string(), String::from));
            let name = v.pointer("/attributes/name").and_then(Value::as_str).map(String::from);
            (id, name)
        };
        if r.kind == "historical_data" {
            let mut hist = Vec::new();
            // Anchored to the report's creation, so the history does not move when the clock does.
            let created = r.created_at - Duration::days(rng.random_range(200..1200));
            hist.push(json!({"attribute_id": "position", "data_type": "TEXT", "value": pick(&mut rng, POSITIONS), "effective_date": berlin_date(created).format("%Y-%m-%d").to_string(), "employee_id": eid}));
            if let (Some(did), Some(dname)) = entity("department") {
                hist.push(json!({"attribute_id": "department", "entity_id": did, "data_type": "ENTITY", "value": dname, "effective_date": berlin_date(created).format("%Y-%m-%d").to_string(), "employee_id": eid}));
            }
            if rng.random_bool(0.4) {
                let later = created + Duration::days(rng.random_range(30..180));
                if let Some(p) = val("position").as_str() {
                    hist.push(json!({"attribute_id": "position", "data_type": "TEXT", "value": p, "effective_date": berlin_date(later).format("%Y-%m-%d").to_string(), "employee_id": eid}));
                }
            }
            return json!({"employee_id": eid, "historical_attributes": hist});
        }
        let mut attrs = Vec::new();
        match ri {
            0 => {
                attrs.push(json!({"attribute_id": "first_name", "data_type": "TEXT", "value": val("first_name"), "employee_id": eid}));
                attrs.push(json!({"attribute_id": "last_name", "data_type": "TEXT", "value": val("last_name"), "employee_id": eid}));
                // The spec's `value`/`entity_id` are not nullable: an empty column is left out of the item.
                if let (Some(did), Some(dname)) = entity("department") {
                    attrs.push(json!({"attribute_id": "department", "entity_id": did, "data_type": "ENTITY", "value": dname, "employee_id": eid}));
                }
                let ccs: Vec<Value> = val("cost_centers").as_array().cloned().unwrap_or_default().iter().map(|c| json!({
                    "cost_center_id": c.pointer("/attributes/id").map(|x| x.to_string()), "value": c.pointer("/attributes/name"),
                    "weight": format!("{}%", c.pointer("/attributes/percentage").cloned().unwrap_or(json!(100)))})).collect();
                attrs.push(json!({"attribute_id": "cost_center", "data_type": "COST_CENTER", "employee_id": eid, "cost_centers": ccs}));
                let hours: f64 = val("weekly_working_hours").as_str().and_then(|s| s.parse().ok()).unwrap_or(40.0);
                // DURATION is an integer in the spec: the daily target in minutes (32 h/week → 384).
                let minutes = (hours / 5.0 * 60.0).round() as i64;
                attrs.push(json!({"attribute_id": "attendance_contractual_target_hours", "data_type": "DURATION", "duration": minutes, "employee_id": eid}));
                // The spec has no DATE data type: a date column is TEXT holding `YYYY-MM-DD`.
                if let Some(hd) = val("hire_date").as_str().and_then(|s| s.get(..10)) {
                    attrs.push(json!({"attribute_id": "hire_date", "data_type": "TEXT", "value": hd, "employee_id": eid}));
                }
            }
            1 => {
                attrs.push(json!({"attribute_id": "first_name", "data_type": "TEXT", "value": val("first_name"), "employee_id": eid}));
                let (s, en) = r.period;
                let vac_id = self.time_off_types.first().map(|t| t.id).unwrap_or(0);
                let periods: &[&Absence] = vacations.get(&eid).map(Vec::as_slice).unwrap_or_default();
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
}
