//! The HR charts: SQL run in the destination, drawn as server-rendered SVG stacked bars.
//!
//! * headcount by department at the end of each month (hired on or before the month's last day, not
//!   terminated before it);
//! * absences per month (by start date) and type;
//! * attendance hours per week (work periods minus breaks).
//!
//! Date-only HR values (`hire_date`, `start_date`) are stored as the UTC instant of local midnight
//! (`2014-11-08T23:00:00+00:00` for 9 November in Berlin, as dlt stores them); they are rounded to the
//! nearest day, which recovers the local date for any zone within ±12 hours.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use pipeline_destinations::read::{ColumnInfo, DatasetReader, QueryRows, SqlDialect};

use crate::html::esc;

/// The charts, in page order: id and title.
pub const HR_CHARTS: &[(&str, &str)] = &[
    ("headcount", "Headcount by department (end of month)"),
    ("absences", "Absences per month by type"),
    ("attendance", "Attendance hours per week"),
];

/// Most recent buckets drawn (months for the monthly charts, weeks for attendance).
const MAX_MONTHS: usize = 36;
const MAX_WEEKS: usize = 52;

/// One computed chart: stacked values per bucket and series.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    /// Chart id (`headcount`, `absences`, `attendance`).
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Unit of the values.
    pub unit: &'static str,
    /// Bucket labels (`2024-05`, or a week's Monday), oldest first.
    pub buckets: Vec<String>,
    /// Series names (departments, absence types).
    pub series: Vec<String>,
    /// `values[bucket][series]`.
    pub values: Vec<Vec<f64>>,
    /// The SQL that computed it.
    pub sql: String,
}

impl ChartData {
    /// The total of one bucket.
    pub fn total(&self, bucket: usize) -> f64 {
        self.values.get(bucket).map(|v| v.iter().sum()).unwrap_or(0.0)
    }
}

/// Columns of the dataset by table: column → type.
pub type Columns = HashMap<String, HashMap<String, String>>;

/// Group [`ColumnInfo`]s by table.
pub fn by_table(columns: &[ColumnInfo]) -> Columns {
    let mut out: Columns = HashMap::new();
    for c in columns {
        out.entry(c.table.clone()).or_default().insert(c.name.clone(), c.data_type.clone());
    }
    out
}

/// A SQL expression for the calendar day of a date-like column of type `data_type`. Timestamps are read
/// in UTC (both readers' sessions are in UTC).
fn day_expr(d: SqlDialect, column: &str, data_type: &str) -> String {
    let t = data_type.to_ascii_uppercase();
    let col = quote(column);
    if t == "DATE" {
        col
    } else if t.starts_with("TIMESTAMP") {
        format!("CAST(CAST({col} AS TIMESTAMP) + INTERVAL '12 hours' AS DATE)")
    } else {
        d.try_date(&format!("CAST({col} AS VARCHAR)"))
    }
}

/// A SQL expression for a local date-time column (naive text or a timestamp) as `TIMESTAMP`.
fn timestamp_expr(d: SqlDialect, column: &str, data_type: &str) -> String {
    let col = quote(column);
    if data_type.to_ascii_uppercase().starts_with("TIMESTAMP") {
        format!("CAST({col} AS TIMESTAMP)")
    } else {
        d.try_timestamp(&format!("CAST({col} AS VARCHAR)"))
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The headcount query, or why it cannot be computed.
pub fn headcount_sql(reader: &dyn DatasetReader, cols: &Columns) -> Result<String, String> {
    let d = reader.dialect();
    let e = cols.get("employees").ok_or("the dataset has no employees table (load the employees resource)")?;
    let hire = e.get("hire_date").ok_or("employees has no hire_date column")?;
    let left = match e.get("termination_date") {
        Some(t) => day_expr(d, "termination_date", t),
        None => "CAST(NULL AS DATE)".to_string(),
    };
    let dept = if e.contains_key("department__attributes__name") { "CAST(department__attributes__name AS VARCHAR)" } else { "CAST(NULL AS VARCHAR)" };
    Ok(format!(
        "WITH e AS (\n  SELECT {hired} AS hired, {left} AS left_on, coalesce({dept}, '(no department)') AS department\n  FROM {table} WHERE hire_date IS NOT NULL),\n\
         months AS (\n  SELECT CAST(m AS DATE) AS month FROM generate_series(\n    CAST(date_trunc('month', (SELECT min(hired) FROM e)) AS TIMESTAMP),\n    CAST(date_trunc('month', CAST(CAST(now() AS TIMESTAMP) AS DATE)) AS TIMESTAMP), INTERVAL '1 month') AS t(m))\n\
         SELECT month, department, count(*) AS headcount\nFROM months JOIN e\n  ON e.hired < month + INTERVAL '1 month'\n \
         AND (e.left_on IS NULL OR e.left_on >= CAST(month + INTERVAL '1 month' - INTERVAL '1 day' AS DATE))\nGROUP BY 1, 2 ORDER BY 1, 2",
        hired = day_expr(d, "hire_date", hire),
        table = reader.table_ref("employees"),
    ))
}

/// The absences query, or why it cannot be computed.
pub fn absences_sql(reader: &dyn DatasetReader, cols: &Columns) -> Result<String, String> {
    let a = cols.get("absences").ok_or("the dataset has no absences table (load the absences resource)")?;
    let start = a.get("start_date").ok_or("absences has no start_date column")?;
    let kind = if a.contains_key("time_off_type__attributes__name") { "CAST(time_off_type__attributes__name AS VARCHAR)" } else { "CAST(NULL AS VARCHAR)" };
    Ok(format!(
        "SELECT CAST(date_trunc('month', day) AS DATE) AS month, type, count(*) AS absences\n\
         FROM (SELECT {day} AS day, coalesce({kind}, '(unknown type)') AS type FROM {table}) AS a\n\
         WHERE day IS NOT NULL\nGROUP BY 1, 2 ORDER BY 1, 2",
        day = day_expr(reader.dialect(), "start_date", start),
        table = reader.table_ref("absences"),
    ))
}

/// The attendance query (v2 attendance periods, else v1 attendances), or why it cannot be computed.
pub fn attendance_sql(reader: &dyn DatasetReader, cols: &Columns) -> Result<String, String> {
    let d = reader.dialect();
    if let Some(p) = cols.get("attendance_periods") {
        let (Some(s), Some(e)) = (p.get("start__date_time"), p.get("end__date_time")) else {
            return Err("attendance_periods has no start__date_time/end__date_time columns".into());
        };
        let kind = if p.contains_key("type") { "CAST(\"type\" AS VARCHAR)" } else { "'WORK'" };
        return Ok(format!(
            "SELECT CAST(date_trunc('week', s) AS DATE) AS week, 'hours' AS series,\n  \
             {hours} AS hours\n\
             FROM (SELECT {s} AS s, {e} AS e, {kind} AS kind FROM {table}) AS p\n\
             WHERE s IS NOT NULL AND e IS NOT NULL\nGROUP BY 1, 2 ORDER BY 1",
            hours = d.round2("sum(CASE WHEN kind = 'BREAK' THEN -1 ELSE 1 END * date_part('epoch', e - s)) / 3600.0"),
            s = timestamp_expr(d, "start__date_time", s),
            e = timestamp_expr(d, "end__date_time", e),
            table = reader.table_ref("attendance_periods"),
        ));
    }
    if let Some(a) = cols.get("attendances") {
        if !(a.contains_key("date") && a.contains_key("start_time") && a.contains_key("end_time")) {
            return Err("attendances has no date/start_time/end_time columns".into());
        }
        let brk = if a.contains_key("break") { "coalesce(CAST(\"break\" AS DOUBLE PRECISION), 0) / 60.0" } else { "0" };
        let worked = format!(
            "date_part('epoch', {} - {}) / 3600.0 - {brk}",
            d.try_time("CAST(end_time AS VARCHAR)"),
            d.try_time("CAST(start_time AS VARCHAR)")
        );
        return Ok(format!(
            "SELECT CAST(date_trunc('week', {day}) AS DATE) AS week, 'hours' AS series,\n  \
             {hours} AS hours\n\
             FROM {table} WHERE end_time IS NOT NULL\nGROUP BY 1, 2 ORDER BY 1",
            hours = d.round2(&format!("sum({worked})")),
            day = day_expr(d, "date", a.get("date").map(String::as_str).unwrap_or("DATE")),
            table = reader.table_ref("attendances"),
        ));
    }
    Err("the dataset has no attendance_periods or attendances table (load attendance_periods)".into())
}

/// Compute every chart; a chart that cannot be computed says why.
pub fn compute(reader: &mut dyn DatasetReader, columns: &[ColumnInfo]) -> Vec<(&'static str, &'static str, Result<ChartData, String>)> {
    let cols = by_table(columns);
    let mut out = Vec::new();
    for (id, title) in HR_CHARTS {
        let (sql, unit, max, month_labels) = match *id {
            "headcount" => (headcount_sql(reader, &cols), "employees", MAX_MONTHS, true),
            "absences" => (absences_sql(reader, &cols), "absences", MAX_MONTHS, true),
            _ => (attendance_sql(reader, &cols), "hours", MAX_WEEKS, false),
        };
        let chart = sql.and_then(|sql| {
            let rows = reader.query(&sql, 100_000).map_err(|e| e.to_string())?;
            Ok(from_rows(id, title, unit, sql, &rows, max, month_labels))
        });
        out.push((*id, *title, chart));
    }
    out
}

/// Rows of (bucket, series, value) → a chart of the `max` most recent buckets.
fn from_rows(id: &'static str, title: &'static str, unit: &'static str, sql: String, rows: &QueryRows, max: usize, month_labels: bool) -> ChartData {
    let mut cells: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut series: Vec<String> = Vec::new();
    for r in &rows.rows {
        let (Some(Some(bucket)), Some(Some(name)), Some(Some(value))) = (r.first(), r.get(1), r.get(2)) else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let label = if month_labels { bucket.get(..7).unwrap_or(bucket).to_string() } else { bucket.get(..10).unwrap_or(bucket).to_string() };
        if !series.contains(name) {
            series.push(name.clone());
        }
        *cells.entry(label).or_default().entry(name.clone()).or_insert(0.0) += v;
    }
    series.sort();
    let skip = cells.len().saturating_sub(max);
    let buckets: Vec<String> = cells.keys().skip(skip).cloned().collect();
    let values = buckets
        .iter()
        .map(|b| series.iter().map(|s| cells.get(b).and_then(|m| m.get(s)).copied().unwrap_or(0.0)).collect())
        .collect();
    ChartData { id, title, unit, buckets, series, values, sql }
}

const PALETTE: &[&str] = &["#2f6fdb", "#e8833a", "#3aa76d", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"];

/// A number for an axis or tooltip (no trailing `.0`).
fn fmt_value(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// A round axis maximum ≥ `max` (1, 2 or 5 × 10^k).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= max {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The chart as a legend, an SVG of stacked bars (one `<g class="bar">` per bucket) and its numbers.
pub fn render(chart: &ChartData) -> String {
    let (w, h) = (960.0_f64, 300.0_f64);
    let (ml, mr, mt, mb) = (56.0, 12.0, 12.0, 62.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let n = chart.buckets.len().max(1) as f64;
    let max = (0..chart.buckets.len()).map(|i| chart.total(i)).fold(0.0, f64::max);
    let top = nice_max(max);
    let band = pw / n;
    let bar = (band * 0.8).max(1.0);
    let mut svg = format!(
        "<svg id=\"chart-{id}\" class=\"bars\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{title}\">",
        id = chart.id,
        title = esc(chart.title)
    );
    for i in 0..=4 {
        let v = top * i as f64 / 4.0;
        let y = mt + ph - ph * i as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{ml}\" x2=\"{x2}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e7ee\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{v}</text>",
            x2 = ml + pw,
            tx = ml - 6.0,
            ty = y + 4.0,
            v = fmt_value(v)
        );
    }
    let every = (chart.buckets.len() / 24).max(1);
    for (i, bucket) in chart.buckets.iter().enumerate() {
        let x = ml + band * i as f64 + (band - bar) / 2.0;
        let total = chart.total(i);
        let _ = write!(
            svg,
            "<g class=\"bar\" data-bucket=\"{b}\" data-total=\"{t}\"><title>{b}: {t} {unit}</title>",
            b = esc(bucket),
            t = fmt_value(total),
            unit = chart.unit
        );
        let mut y = mt + ph;
        for (s, v) in chart.values.get(i).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let bh = ph * v / top;
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{c}\"><title>{b} · {name}: {v}</title></rect>",
                c = PALETTE[s % PALETTE.len()],
                b = esc(bucket),
                name = esc(&chart.series[s]),
                v = fmt_value(*v)
            );
        }
        svg.push_str("</g>");
        if i % every == 0 {
            let lx = ml + band * i as f64 + band / 2.0;
            let ly = mt + ph + 12.0;
            let _ = write!(svg, "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {lx:.1} {ly:.1})\">{}</text>", esc(bucket));
        }
    }
    let _ = write!(svg, "<line x1=\"{ml}\" x2=\"{x2}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#8a93a5\"/></svg>", x2 = ml + pw, y = mt + ph);

    let mut legend = String::from("<div class=\"legend\">");
    if chart.series.len() > 1 {
        for (s, name) in chart.series.iter().enumerate() {
            let _ = write!(legend, "<span><i style=\"background:{}\"></i>{}</span>", PALETTE[s % PALETTE.len()], esc(name));
        }
    }
    legend.push_str("</div>");

    let mut numbers = format!("<details><summary>Numbers ({} buckets)</summary><div class=\"scroll\"><table id=\"numbers-{}\"><thead><tr><th></th>", chart.buckets.len(), chart.id);
    for s in &chart.series {
        let _ = write!(numbers, "<th class=\"n\">{}</th>", esc(s));
    }
    numbers.push_str("<th class=\"n\">total</th></tr></thead><tbody>");
    for (i, b) in chart.buckets.iter().enumerate() {
        let _ = write!(numbers, "<tr><td>{}</td>", esc(b));
        for v in chart.values.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            let _ = write!(numbers, "<td class=\"n\">{}</td>", fmt_value(*v));
        }
        let _ = write!(numbers, "<td class=\"n\">{}</td></tr>", fmt_value(chart.total(i)));
    }
    let _ = write!(numbers, "</tbody></table></div></details><details><summary>SQL</summary><pre>{}</pre></details>", esc(&chart.sql));
    format!("{legend}<div class=\"chart\">{svg}</div>{numbers}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[(&str, &str, &str)]) -> QueryRows {
        QueryRows {
            columns: vec!["b".into(), "s".into(), "v".into()],
            rows: data.iter().map(|(b, s, v)| vec![Some(b.to_string()), Some(s.to_string()), Some(v.to_string())]).collect(),
            truncated: false,
        }
    }

    #[test]
    fn buckets_are_months_in_order_and_capped() {
        let r = rows(&[("2024-02-01", "Sick", "2"), ("2024-01-01", "Vacation", "3"), ("2024-02-01", "Vacation", "1"), ("2023-12-01", "Sick", "5")]);
        let c = from_rows("absences", "t", "absences", String::new(), &r, 2, true);
        assert_eq!(c.buckets, vec!["2024-01", "2024-02"]);
        assert_eq!(c.series, vec!["Sick", "Vacation"]);
        assert_eq!(c.values, vec![vec![0.0, 3.0], vec![2.0, 1.0]]);
        let svg = render(&c);
        assert_eq!(svg.matches("<g class=\"bar\"").count(), 2);
        assert!(svg.contains("data-bucket=\"2024-02\" data-total=\"3\""));
    }

    #[test]
    fn axis_maximum_is_round() {
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(fmt_value(2.0), "2");
        assert_eq!(fmt_value(2.25), "2.2");
    }

    #[test]
    fn date_expressions_follow_the_column_type() {
        for d in [SqlDialect::DuckDb, SqlDialect::Postgres] {
            assert_eq!(day_expr(d, "d", "DATE"), "\"d\"");
            assert_eq!(day_expr(d, "d", "date"), "\"d\"", "PostgreSQL reports types in lower case");
            assert!(day_expr(d, "d", "timestamp with time zone").contains("INTERVAL '12 hours'"));
            assert!(day_expr(d, "d", "VARCHAR").contains("substr"));
        }
        assert!(day_expr(SqlDialect::DuckDb, "d", "VARCHAR").starts_with("TRY_CAST"));
        assert!(!day_expr(SqlDialect::Postgres, "d", "character varying").contains("TRY_CAST"), "PostgreSQL has no TRY_CAST");
    }
}
