//! The pages. Each reads afresh and renders complete HTML; a part that cannot be read says why.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use pipeline_destinations::read::{ColumnInfo, DatasetReader, LoadRow};
use pipeline_engine::load::TableInfo;
use pipeline_engine::schema::{Schema, Table};
use pipeline_engine::state::PipelineState;
use serde_json::Value;

use crate::charts;
use crate::data::{resources, show_value, Local, Remote};
use crate::html::{esc, facts, json_block, layout, notice, num, table, url_encode};
use crate::{App, Params};

/// Loads shown as growth columns on the tables page.
const GROWTH_LOADS: usize = 5;

fn is_bookkeeping(name: &str) -> bool {
    name.starts_with("_dlt")
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

fn code(text: &str) -> String {
    format!("<code>{}</code>", esc(text))
}

fn n_cell(id: &str, n: u64) -> String {
    format!("<span id=\"{}\" data-value=\"{n}\">{}</span>", esc(id), num(n))
}

/// The reader or an error box.
fn reader<'a>(remote: &'a mut Remote, body: &mut String) -> Option<&'a mut Box<dyn DatasetReader>> {
    match &mut remote.reader {
        Ok(r) => Some(r),
        Err(e) => {
            body.push_str(&notice("error", "destination-error", &format!("The destination cannot be read: {e}")));
            None
        }
    }
}

/// What the pages with local facts start from: the working directory (its notices already in `body`)
/// and the destination, each read afresh.
struct Page {
    local: Local,
    remote: Remote,
    body: String,
}

impl Page {
    fn open(app: &App) -> Page {
        let local = Local::read(app);
        let mut body = String::new();
        local_notice(&local, &mut body);
        Page { local, remote: Remote::open(app), body }
    }
}

fn local_notice(local: &Local, body: &mut String) {
    if !local.exists {
        body.push_str(&notice(
            "warn",
            "no-workdir",
            &format!("No working directory at {}: the state and schema are restored from the destination on the next run.", local.workdir.display()),
        ));
    }
    if let Some(p) = &local.problem {
        body.push_str(&notice("warn", "local-problem", p));
    }
}

/// Tables in schema order (parents before children), then the rest by name.
fn ordered_tables(tables: &[TableInfo], schema: Option<&Schema>) -> Vec<TableInfo> {
    let mut out: Vec<TableInfo> = Vec::new();
    if let Some(s) = schema {
        for root in s.tables.values().filter(|t| t.parent.is_none()) {
            for t in s.table_chain(&root.name) {
                if let Some(info) = tables.iter().find(|i| i.name == t.name) {
                    out.push(info.clone());
                }
            }
        }
    }
    for t in tables {
        if !out.iter().any(|o| o.name == t.name) {
            out.push(t.clone());
        }
    }
    out
}

fn depth(schema: Option<&Schema>, table: &str) -> usize {
    let Some(s) = schema else { return 0 };
    let mut d = 0;
    let mut name = table;
    while let Some(p) = s.tables.get(name).and_then(|t| t.parent.as_deref()) {
        d += 1;
        name = p;
        if d > 32 {
            break;
        }
    }
    d
}

/// The schema to show: the local one, else the destination's.
fn best_schema(local: &Local, reader: Option<&mut Box<dyn DatasetReader>>, name: &str) -> (Option<Schema>, &'static str) {
    if let Some(s) = &local.schema {
        return (Some(s.clone()), "the working directory");
    }
    match reader.map(|r| r.stored_schema(name)) {
        Some(Ok(Some(s))) => (Some(s), "the destination (_dlt_version)"),
        _ => (None, "nowhere"),
    }
}

/// The destination's newest state document of the pipeline.
fn destination_state(reader: &mut dyn DatasetReader, pipeline: &str) -> Result<Option<(PipelineState, String)>, String> {
    match reader.stored_state(pipeline) {
        Ok(Some(stored)) => PipelineState::decode(&stored.row.state).map(|s| Some((s, stored.load_id))).map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Rows of local and destination state side by side, with a status per line.
fn state_comparison(local: Option<&PipelineState>, remote: Option<&PipelineState>) -> (Vec<Vec<String>>, bool) {
    let mut rows = Vec::new();
    let mut same = true;
    let mut line = |what: String, l: String, r: String| {
        let status = if l == r { badge("ok", "same") } else { same = false; badge("warn", "differs") };
        rows.push(vec![what, code(&l), code(&r), status]);
    };
    let ver = |s: Option<&PipelineState>| s.map(|s| s.version().to_string()).unwrap_or_else(|| "—".into());
    let hash = |s: Option<&PipelineState>| s.map(|s| s.version_hash().to_string()).unwrap_or_else(|| "—".into());
    line("state version".into(), ver(local), ver(remote));
    line("version hash".into(), hash(local), hash(remote));
    let lr = local.map(|s| resources(s.doc())).unwrap_or_default();
    let rr = remote.map(|s| resources(s.doc())).unwrap_or_default();
    let mut keys: Vec<&(String, String)> = lr.keys().chain(rr.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let cursors = |m: &BTreeMap<(String, String), crate::data::ResourceState>| {
            m.get(key).map(|r| r.cursors.iter().map(|(c, v)| format!("{c} = {}", show_value(v.get("last_value")))).collect::<Vec<_>>().join(", "))
        };
        let (l, r) = (cursors(&lr), cursors(&rr));
        if l.as_deref().unwrap_or("").is_empty() && r.as_deref().unwrap_or("").is_empty() {
            continue;
        }
        line(format!("cursor of {}", esc(&key.1)), l.unwrap_or_else(|| "—".into()), r.unwrap_or_else(|| "—".into()));
    }
    (rows, same)
}

// ------------------------------------------------------------------------------------------ overview

/// `/`: pipeline, destination, last run, pending packages, errors, local vs destination state.
pub fn overview(app: &App, _: &Params) -> String {
    let c = &app.config;
    let Page { local, mut remote, mut body } = Page::open(app);
    let r = reader(&mut remote, &mut body);
    let (kind, location) = r.as_ref().map(|r| (r.kind().to_string(), r.location())).unwrap_or(("—".into(), "—".into()));
    let mut tables = Vec::new();
    let mut loads = Vec::new();
    let mut remote_state = Ok(None);
    let mut schema = (None, "nowhere");
    if let Some(r) = r {
        match r.tables() {
            Ok(t) => tables = t,
            Err(e) => body.push_str(&notice("error", "tables-error", &e.to_string())),
        }
        match r.loads(10_000) {
            Ok(l) => loads = l,
            Err(e) => body.push_str(&notice("error", "loads-error", &e.to_string())),
        }
        remote_state = destination_state(r.as_mut(), &c.pipeline_name);
        schema = best_schema(&local, Some(r), &c.schema_name);
    }
    let data: Vec<&TableInfo> = tables.iter().filter(|t| !is_bookkeeping(&t.name)).collect();
    let rows: u64 = data.iter().map(|t| t.rows).sum();
    let completed = loads.iter().filter(|l| l.status == 0).count() as u64;
    let _ = write!(
        body,
        "<div class=\"cards\">\
         <div class=\"card\"><div class=\"value\">{}</div><div class=\"label\">data tables</div></div>\
         <div class=\"card\"><div class=\"value\">{}</div><div class=\"label\">rows in data tables</div></div>\
         <div class=\"card\"><div class=\"value\">{}</div><div class=\"label\">completed loads</div></div>\
         <div class=\"card\"><div class=\"value\">{}</div><div class=\"label\">pending packages</div></div></div>",
        n_cell("card-tables", data.len() as u64),
        n_cell("card-rows", rows),
        n_cell("card-loads", completed),
        n_cell("card-pending", local.pending.len() as u64),
    );
    let last = loads.first();
    let schema_text = schema.0.as_ref().map(|s| format!("{} version {} (from {})", s.name, s.version, schema.1)).unwrap_or_else(|| "none yet".into());
    body.push_str(&facts(
        "pipeline-facts",
        &[
            ("Pipeline", esc(&c.pipeline_name)),
            ("Working directory", esc(&local.workdir.display().to_string())),
            ("Destination", esc(&kind)),
            ("Location", esc(&location)),
            ("Dataset", format!("<span id=\"dataset\">{}</span>", esc(&c.dataset_name))),
            ("Schema", esc(&schema_text)),
            (
                "Last load",
                last.map(|l| format!("<span id=\"last-load\">{}</span> at {} (status {})", esc(&l.load_id), esc(&l.inserted_at), l.status))
                    .unwrap_or_else(|| "none".into()),
            ),
        ],
    ));

    body.push_str("<h2>Last run</h2>");
    match &local.trace {
        Some(trace) => body.push_str(&trace_summary(trace)),
        None => body.push_str(&notice("", "no-trace", "No trace: the pipeline has not run from this working directory.")),
    }

    body.push_str("<h2>Errors of the last run</h2>");
    let errors = local.trace.as_ref().map(trace_errors).unwrap_or_default();
    if errors.is_empty() {
        body.push_str(&notice("ok", "errors", "None recorded in the last trace."));
    } else {
        let rows: Vec<Vec<String>> = errors.iter().map(|e| vec![format!("<pre>{}</pre>", esc(e))]).collect();
        body.push_str(&table("errors", &["error"], &rows));
    }

    body.push_str("<h2>Pending packages</h2>");
    if local.pending.is_empty() {
        body.push_str(&notice("ok", "pending-none", "None: every package in the working directory is loaded."));
    } else {
        body.push_str(&notice("warn", "pending-note", "These packages were extracted and normalized but not loaded; the next run loads them first."));
        let rows: Vec<Vec<String>> = local
            .pending
            .iter()
            .map(|p| vec![code(&p.load_id), p.tables.iter().map(|(t, n)| format!("{} {}", esc(t), num(*n))).collect::<Vec<_>>().join(", ")])
            .collect();
        body.push_str(&table("pending", &["load id", "rows per table"], &rows));
    }

    body.push_str("<h2>Local state vs the destination's</h2>");
    match remote_state {
        Ok(remote) => {
            let (rows, same) = state_comparison(local.state.as_ref(), remote.as_ref().map(|r| &r.0));
            if local.state.is_none() && remote.is_none() {
                body.push_str(&notice("", "state-sync", "No state yet, neither in the working directory nor in the destination."));
            } else if same {
                body.push_str(&notice("ok", "state-sync", "In sync: the working directory holds the state the destination has."));
            } else if local.state.is_none() {
                body.push_str(&notice("warn", "state-sync", "No local state: the next run restores it from the destination."));
            } else {
                body.push_str(&notice("warn", "state-sync", "The local state differs from the destination's (a load pending, or a dropped working directory or dataset)."));
            }
            if let Some((_, load_id)) = &remote {
                let _ = write!(body, "<p class=\"muted\">Destination state from load {}.</p>", code(load_id));
            }
            body.push_str(&table("state-compare", &["", "local", "destination", ""], &rows));
        }
        Err(e) => body.push_str(&notice("error", "state-error", &format!("The destination's state cannot be read: {e}"))),
    }
    layout(&c.pipeline_name, "/", "Overview", &body)
}

/// Facts of a trace (the engine's run report) and its rows per table.
fn trace_summary(trace: &Value) -> String {
    let get = |k: &str| trace.get(k);
    let list = |k: &str| {
        get(k).and_then(Value::as_array).map(|a| a.iter().map(|v| code(&show_value(Some(v)))).collect::<Vec<_>>().join(" ")).unwrap_or_default()
    };
    let elapsed = get("elapsed_secs").and_then(Value::as_f64).map(|s| format!("<span id=\"trace-elapsed\">{s:.2}</span> s")).unwrap_or_else(|| "—".into());
    let mut out = facts(
        "trace-facts",
        &[
            ("Outcome", match get("error").and_then(Value::as_str) {
                Some(_) => badge("err", "failed"),
                None => badge("ok", "completed"),
            }),
            ("Started", esc(&show_value(get("started_at")))),
            ("Duration", elapsed),
            ("Resources", list("resources")),
            ("Loaded packages", list("loaded_packages")),
            ("Resumed packages", list("resumed_packages")),
            ("State changed", esc(&show_value(get("state_changed")))),
        ],
    );
    if let Some(steps) = get("steps").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
                let secs = s.get("duration_secs").and_then(Value::as_f64).unwrap_or(0.0);
                let status = match s.get("error").and_then(Value::as_str) {
                    Some(e) => format!("{} {}", badge("err", "failed"), esc(e)),
                    None if s.get("finished_at").is_some() => badge("ok", "done"),
                    None => badge("warn", "unfinished"),
                };
                vec![esc(text("step")), esc(text("started_at")), format!("<span class=\"n\">{secs:.3} s</span>"), status]
            })
            .collect();
        out.push_str("<h3>Steps of the last run</h3>");
        out.push_str(&table("trace-steps", &["step", "started", "duration", "outcome"], &rows));
    }
    if let Some(rows) = get("rows").and_then(Value::as_object) {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(t, n)| {
                let n = n.as_u64().unwrap_or(0);
                vec![esc(t), format!("<span class=\"n\">{}</span>", n_cell(&format!("run-rows-{t}"), n))]
            })
            .collect();
        out.push_str("<h3>Rows normalized by the last run</h3>");
        out.push_str(&table("last-run-rows", &["table", "rows"], &rows));
    }
    if let Some(warnings) = get("warnings").and_then(Value::as_array).filter(|w| !w.is_empty()) {
        let rows: Vec<Vec<String>> = warnings.iter().map(|w| vec![esc(&show_value(Some(w)))]).collect();
        out.push_str("<h3>Warnings of the last run</h3>");
        out.push_str(&table("trace-warnings", &["warning"], &rows));
    }
    out
}

/// The trace's `resolved_config_values`: every setting of the last run, where it was found and its value
/// (a secret as `***`: the trace never holds its value).
fn config_values(trace: &Value) -> String {
    let Some(values) = trace.get("resolved_config_values").and_then(Value::as_array).filter(|v| !v.is_empty()) else {
        return notice("", "no-config-values", "The trace does not list configuration values (the run was not started by the CLI).");
    };
    let rows: Vec<Vec<String>> = values
        .iter()
        .filter_map(|v| serde_json::from_value::<pipeline_engine::trace::ConfigValue>(v.clone()).ok())
        .map(|c| {
            let provider = match c.provider.as_str() {
                "default" => badge("", "default"),
                p => badge("ok", p),
            };
            let value = if c.is_secret && c.provider != "default" { badge("warn", "*** (secret)") } else { code(&c.shown()) };
            vec![format!("<code id=\"config-{}\">{}</code>", esc(&c.key), esc(&c.key)), provider, c.location.as_deref().map(code).unwrap_or_default(), value]
        })
        .collect();
    let mut out = String::from(
        "<p class=\"muted\">Where each setting of the last run was found: environment variables first, then <code>.dlt/secrets.toml</code>, \
         then <code>.dlt/config.toml</code>, else the program's default. Secrets are never written to the trace.</p>",
    );
    out.push_str(&table("config-values", &["key", "provider", "found at", "value"], &rows));
    out
}

/// Error texts a trace records (`error`, `errors`, `exception`, and per-step `error`s).
fn trace_errors(trace: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn collect(v: &Value, out: &mut Vec<String>, depth: usize) {
        if depth > 4 {
            return;
        }
        if let Value::Object(m) = v {
            for (k, val) in m {
                if matches!(k.as_str(), "error" | "errors" | "exception" | "exceptions" | "failed_jobs") {
                    match val {
                        Value::Null => {}
                        Value::Array(a) => out.extend(a.iter().map(|e| show_value(Some(e)))),
                        other => out.push(show_value(Some(other))),
                    }
                } else {
                    collect(val, out, depth + 1);
                }
            }
        }
    }
    collect(trace, &mut out, 0);
    out
}

// ------------------------------------------------------------------------------------------ tables

/// `/tables`: row counts and rows per recent load.
pub fn tables(app: &App, _: &Params) -> String {
    let c = &app.config;
    let Page { local, mut remote, mut body } = Page::open(app);
    if let Some(r) = reader(&mut remote, &mut body) {
        let (schema, _) = best_schema(&local, Some(r), &c.schema_name);
        match (r.tables(), r.loads(GROWTH_LOADS), r.columns()) {
            (Ok(tables), Ok(loads), Ok(columns)) => {
                body.push_str(&tables_table(r.as_mut(), &tables, &loads, &columns, schema.as_ref()));
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => body.push_str(&notice("error", "tables-error", &e.to_string())),
        }
    }
    layout(&c.pipeline_name, "/tables", "Tables", &body)
}

fn tables_table(r: &mut dyn DatasetReader, tables: &[TableInfo], loads: &[LoadRow], columns: &[ColumnInfo], schema: Option<&Schema>) -> String {
    let has_load_id: Vec<&str> = columns.iter().filter(|c| c.name == "_dlt_load_id").map(|c| c.table.as_str()).collect();
    let mut out = String::from(
        "<p class=\"muted\">Rows per load: rows of the table that carry the load's id now (rows a load inserted or merged and that \
         are still there; child tables follow their root table).</p>",
    );
    let mut head: Vec<String> = vec!["table".into(), "resource".into(), "disposition".into(), "<span class=\"n\">rows</span>".into()];
    for l in loads {
        head.push(format!("<span title=\"{}\">load {}</span>", esc(&l.inserted_at), esc(&l.load_id)));
    }
    let mut rows = Vec::new();
    let mut bookkeeping = Vec::new();
    for t in ordered_tables(tables, schema) {
        if is_bookkeeping(&t.name) {
            bookkeeping.push(vec![code(&t.name), n_cell(&format!("rows-{}", t.name), t.rows)]);
            continue;
        }
        let st: Option<&Table> = schema.and_then(|s| s.tables.get(&t.name));
        let indent = "&nbsp;&nbsp;&nbsp;".repeat(depth(schema, &t.name));
        let marker = if indent.is_empty() { "" } else { "└ " };
        let mut row = vec![
            format!("{indent}{marker}<a href=\"/data?table={}\">{}</a>", url_encode(&t.name), esc(&t.name)),
            esc(st.and_then(|t| t.resource.as_deref()).unwrap_or("—")),
            esc(&schema.map(|s| s.disposition_of(&t.name).to_string()).unwrap_or_else(|| "—".into())),
            n_cell(&format!("rows-{}", t.name), t.rows),
        ];
        let per_load: HashMap<String, u64> =
            if has_load_id.contains(&t.name.as_str()) { r.rows_per_load(&t.name).unwrap_or_default().into_iter().collect() } else { HashMap::new() };
        for l in loads {
            row.push(match per_load.get(&l.load_id) {
                Some(n) => format!("+{}", n_cell(&format!("growth-{}-{}", t.name, l.load_id), *n)),
                None if has_load_id.contains(&t.name.as_str()) => "0".into(),
                None => "<span class=\"muted\">—</span>".into(),
            });
        }
        rows.push(row);
    }
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    out.push_str("<div class=\"scroll\">");
    out.push_str(&table("tables", &head_refs, &rows));
    out.push_str("</div><h2>Bookkeeping tables</h2>");
    out.push_str(&table("bookkeeping", &["table", "rows"], &bookkeeping));
    out
}

// ------------------------------------------------------------------------------------------ schema

/// `/schema`: every table with its columns and hints, child tables as a tree.
pub fn schema(app: &App, _: &Params) -> String {
    let c = &app.config;
    let Page { local, mut remote, mut body } = Page::open(app);
    let r = reader(&mut remote, &mut body);
    let mut db_columns: Vec<ColumnInfo> = Vec::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut stored: Option<Schema> = None;
    let (shown, from) = match r {
        Some(r) => {
            db_columns = r.columns().unwrap_or_default();
            counts = r.tables().unwrap_or_default().into_iter().map(|t| (t.name, t.rows)).collect();
            stored = r.stored_schema(&c.schema_name).ok().flatten();
            best_schema(&local, Some(r), &c.schema_name)
        }
        None => best_schema(&local, None, &c.schema_name),
    };
    let Some(s) = shown else {
        body.push_str(&notice("warn", "no-schema", "No schema yet: run the pipeline first."));
        return layout(&c.pipeline_name, "/schema", "Schema", &body);
    };
    let sync = match &stored {
        Some(d) if d.version_hash == s.version_hash => badge("ok", "same as the destination's"),
        Some(d) => badge("warn", &format!("destination has version {} ({})", d.version, d.version_hash)),
        None => badge("warn", "not stored in the destination"),
    };
    body.push_str(&facts(
        "schema-facts",
        &[
            ("Name", esc(&s.name)),
            ("Version", format!("<span id=\"schema-version\">{}</span> {sync}", s.version)),
            ("Version hash", code(&s.version_hash)),
            ("Read from", esc(from)),
            ("Tables", s.tables.len().to_string()),
        ],
    ));
    let types: HashMap<(&str, &str), &ColumnInfo> = db_columns.iter().map(|c| ((c.table.as_str(), c.name.as_str()), c)).collect();
    body.push_str("<ul class=\"tree\" id=\"schema-tree\">");
    for root in s.tables.values().filter(|t| t.parent.is_none()) {
        schema_node(&s, root, &types, &counts, &mut body, 0);
    }
    body.push_str("</ul>");
    layout(&c.pipeline_name, "/schema", "Schema", &body)
}

fn schema_node(s: &Schema, t: &Table, types: &HashMap<(&str, &str), &ColumnInfo>, counts: &HashMap<String, u64>, out: &mut String, level: usize) {
    let disposition = s.disposition_of(&t.name).to_string();
    let pk = t.primary_key();
    let rows = counts.get(&t.name).map(|n| format!("{} rows", num(*n))).unwrap_or_else(|| "not in the destination".into());
    let kind = if t.parent.is_some() { "child table" } else { "root table" };
    let _ = write!(
        out,
        "<li><details{open} id=\"schema-{id}\"><summary><strong>{name}</strong> {badge} <span class=\"muted\">{kind} · resource {res} · {rows}{pk}</span></summary>",
        open = if level == 0 { " open" } else { "" },
        id = esc(&t.name),
        name = esc(&t.name),
        badge = badge("", &disposition),
        res = esc(t.resource.as_deref().unwrap_or("—")),
        pk = if pk.is_empty() { String::new() } else { format!(" · primary key {}", esc(&pk.join(", "))) },
    );
    let rows: Vec<Vec<String>> = t
        .columns
        .values()
        .map(|c| {
            let mut hints = Vec::new();
            if c.primary_key {
                hints.push(badge("ok", "primary key"));
            }
            if c.unique {
                hints.push(badge("", "unique"));
            }
            if c.variant {
                hints.push(badge("warn", "variant"));
            }
            match c.name.as_str() {
                "_dlt_id" => hints.push(badge("", "row key")),
                "_dlt_parent_id" => hints.push(badge("", "parent key")),
                "_dlt_root_id" => hints.push(badge("", "root key")),
                _ => {}
            }
            let db = types.get(&(t.name.as_str(), c.name.as_str()));
            vec![
                code(&c.name),
                esc(c.data_type.as_str()),
                db.map(|d| esc(&d.data_type)).unwrap_or_else(|| "<span class=\"muted\">not created yet</span>".into()),
                if c.nullable { "yes".into() } else { "NOT NULL".into() },
                hints.join(" "),
            ]
        })
        .collect();
    out.push_str(&table(&format!("columns-{}", t.name), &["column", "type", "destination type", "nullable", "hints"], &rows));
    let children: Vec<&Table> = s.tables.values().filter(|c| c.parent.as_deref() == Some(t.name.as_str())).collect();
    if !children.is_empty() && level < 16 {
        out.push_str("<ul>");
        for child in children {
            schema_node(s, child, types, counts, out, level + 1);
        }
        out.push_str("</ul>");
    }
    out.push_str("</details></li>");
}

// ------------------------------------------------------------------------------------------ state

/// `/state`: cursors and state of every resource, local and in the destination.
pub fn state(app: &App, _: &Params) -> String {
    let c = &app.config;
    let Page { local, mut remote, mut body } = Page::open(app);
    let remote_state = match reader(&mut remote, &mut body) {
        Some(r) => match destination_state(r.as_mut(), &c.pipeline_name) {
            Ok(s) => s,
            Err(e) => {
                body.push_str(&notice("error", "state-error", &format!("The destination's state cannot be read: {e}")));
                None
            }
        },
        None => None,
    };
    let lr = local.state.as_ref().map(|s| resources(s.doc())).unwrap_or_default();
    let rr = remote_state.as_ref().map(|(s, _)| resources(s.doc())).unwrap_or_default();
    let mut keys: Vec<&(String, String)> = lr.keys().chain(rr.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut cursor_rows = Vec::new();
    let mut other = String::new();
    for key in keys {
        let (l, r) = (lr.get(key), rr.get(key));
        let mut names: Vec<&String> = l.iter().chain(r.iter()).flat_map(|x| x.cursors.iter().map(|(c, _)| c)).collect();
        names.sort();
        names.dedup();
        for cursor in names {
            let find = |x: Option<&crate::data::ResourceState>| x.and_then(|x| x.cursors.iter().find(|(c, _)| c == cursor).map(|(_, v)| v.clone()));
            let (lv, rv) = (find(l), find(r));
            let lval = show_value(lv.as_ref().and_then(|v| v.get("last_value")));
            let rval = show_value(rv.as_ref().and_then(|v| v.get("last_value")));
            let any = lv.as_ref().or(rv.as_ref());
            let hashes = any.and_then(|v| v.get("unique_hashes")).and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            let status = if lval == rval { badge("ok", "same") } else { badge("warn", "differs") };
            cursor_rows.push(vec![
                esc(&key.0),
                format!("<strong>{}</strong>", esc(&key.1)),
                code(cursor),
                format!("<code id=\"cursor-{}\">{}</code>", esc(&key.1), esc(&lval)),
                code(&rval),
                code(&show_value(any.and_then(|v| v.get("initial_value")))),
                hashes.to_string(),
                status,
            ]);
        }
        for (side, x) in [("local", l), ("destination", r)] {
            if let Some(x) = x.filter(|x| !x.other.is_empty()) {
                other.push_str(&json_block(&format!("{} — other state ({side})", key.1), &Value::Object(x.other.clone())));
            }
        }
    }
    body.push_str("<h2>Incremental cursors</h2>");
    if cursor_rows.is_empty() {
        body.push_str(&notice("", "no-cursors", "No cursor state yet."));
    } else {
        body.push_str(&table(
            "cursors",
            &["source", "resource", "cursor", "last value (local)", "last value (destination)", "initial value", "boundary rows", ""],
            &cursor_rows,
        ));
    }
    if !other.is_empty() {
        body.push_str("<h2>Other resource state</h2>");
        body.push_str(&other);
    }
    body.push_str("<h2>State documents</h2>");
    let mut items = vec![("Local version", local.state.as_ref().map(|s| s.version().to_string()).unwrap_or_else(|| "none".into()))];
    items.push(("Destination version", remote_state.as_ref().map(|(s, id)| format!("{} (load {})", s.version(), esc(id))).unwrap_or_else(|| "none".into())));
    body.push_str(&facts("state-facts", &items));
    if let Some(s) = &local.state {
        body.push_str(&json_block("Local state document", &Value::Object(s.doc().clone())));
    }
    if let Some((s, _)) = &remote_state {
        body.push_str(&json_block("Destination state document", &Value::Object(s.doc().clone())));
    }
    layout(&c.pipeline_name, "/state", "State", &body)
}

// ------------------------------------------------------------------------------------------ loads

/// `/loads`: the load history with rows per table, and the last run's trace.
pub fn loads(app: &App, _: &Params) -> String {
    let c = &app.config;
    let Page { local, mut remote, mut body } = Page::open(app);
    if let Some(r) = reader(&mut remote, &mut body) {
        match (r.loads(200), r.columns()) {
            (Ok(loads), Ok(columns)) => {
                // Rows carrying each load id now, for loads whose package manifest is gone.
                let mut now: HashMap<String, Vec<(String, u64)>> = HashMap::new();
                let mut tables: Vec<&str> = columns.iter().filter(|c| c.name == "_dlt_load_id" && !is_bookkeeping(&c.table)).map(|c| c.table.as_str()).collect();
                tables.dedup();
                if loads.iter().any(|l| !local.loaded.contains_key(&l.load_id)) {
                    for t in tables {
                        for (id, n) in r.rows_per_load(t).unwrap_or_default() {
                            now.entry(id).or_default().push((t.to_string(), n));
                        }
                    }
                }
                let rows: Vec<Vec<String>> = loads
                    .iter()
                    .map(|l| {
                        let (per_table, from) = match local.loaded.get(&l.load_id) {
                            Some(t) => (t.clone(), "package"),
                            None => (now.get(&l.load_id).cloned().unwrap_or_default(), "destination"),
                        };
                        let total: u64 = per_table.iter().map(|(_, n)| n).sum();
                        let list = per_table
                            .iter()
                            .filter(|(_, n)| *n > 0)
                            .map(|(t, n)| format!("{} <span id=\"load-{}-{}\">{}</span>", esc(t), esc(&l.load_id), esc(t), num(*n)))
                            .collect::<Vec<_>>()
                            .join(", ");
                        vec![
                            code(&l.load_id),
                            if l.status == 0 { badge("ok", "completed") } else { badge("warn", &format!("status {}", l.status)) },
                            esc(&l.inserted_at),
                            format!("<code title=\"{}\">{}</code>", esc(&l.schema_version_hash), esc(l.schema_version_hash.get(..10).unwrap_or(&l.schema_version_hash))),
                            num(total),
                            format!("{list} <span class=\"muted\">({from})</span>"),
                        ]
                    })
                    .collect();
                body.push_str(
                    "<p class=\"muted\">Rows per table: from the load package's manifest when the working directory keeps it \
                     (what the load wrote), otherwise the rows that carry the load id in the destination now.</p>",
                );
                body.push_str(&table("loads", &["load id", "status", "inserted at", "schema", "rows", "rows per table"], &rows));
            }
            (Err(e), _) | (_, Err(e)) => body.push_str(&notice("error", "loads-error", &e.to_string())),
        }
    }
    body.push_str("<h2>Trace of the last run</h2>");
    match &local.trace {
        Some(trace) => {
            body.push_str(&trace_summary(trace));
            body.push_str("<h3>Configuration of the last run</h3>");
            body.push_str(&config_values(trace));
            body.push_str(&json_block("Full trace", trace));
        }
        None => body.push_str(&notice("", "no-trace", "No trace: the pipeline has not run from this working directory.")),
    }
    layout(&c.pipeline_name, "/loads", "Loads", &body)
}

// ------------------------------------------------------------------------------------------ data

/// `/data?table=…&page=…`: a table's rows, a page at a time.
pub fn data(app: &App, params: &Params) -> String {
    let c = &app.config;
    let mut remote = Remote::open(app);
    let mut body = String::new();
    if let Some(r) = reader(&mut remote, &mut body) {
        match r.tables() {
            Ok(tables) => {
                let chosen = params.table.clone().or_else(|| tables.iter().find(|t| !is_bookkeeping(&t.name)).map(|t| t.name.clone()));
                let mut form = String::from("<form class=\"inline\" method=\"get\" action=\"/data\"><label for=\"table\">Table</label><select id=\"table\" name=\"table\">");
                for t in &tables {
                    let sel = if Some(&t.name) == chosen.as_ref() { " selected" } else { "" };
                    let _ = write!(form, "<option value=\"{0}\"{sel}>{0} ({1})</option>", esc(&t.name), num(t.rows));
                }
                form.push_str("</select><button type=\"submit\" id=\"show-table\">Show</button></form>");
                body.push_str(&form);
                match chosen.and_then(|name| tables.iter().find(|t| t.name == name)) {
                    Some(t) => body.push_str(&data_page(r.as_mut(), t, params.page.unwrap_or(1), c.page_rows)),
                    None => body.push_str(&notice("warn", "no-table", "No such table in the dataset; pick one above.")),
                }
            }
            Err(e) => body.push_str(&notice("error", "tables-error", &e.to_string())),
        }
    }
    layout(&c.pipeline_name, "/data", "Data", &body)
}

fn data_page(r: &mut dyn DatasetReader, t: &TableInfo, page: u64, per_page: usize) -> String {
    let per = per_page.max(1) as u64;
    let pages = t.rows.div_ceil(per).max(1);
    let page = page.clamp(1, pages);
    let mut out = String::new();
    let link = |p: u64, id: &str, text: &str| format!("<a id=\"{id}\" href=\"/data?table={}&amp;page={p}\">{text}</a>", url_encode(&t.name));
    let prev = if page > 1 { link(page - 1, "prev", "← previous") } else { "<span class=\"muted\">← previous</span>".into() };
    let next = if page < pages { link(page + 1, "next", "next →") } else { "<span class=\"muted\">next →</span>".into() };
    let _ = write!(
        out,
        "<div class=\"pager\">{prev}<span id=\"page-info\">page <span id=\"page\">{page}</span> of <span id=\"pages\">{pages}</span> · rows {} to {} of <span id=\"total-rows\">{}</span></span>{next}</div>",
        num(((page - 1) * per + 1).min(t.rows)),
        num((page * per).min(t.rows)),
        num(t.rows),
    );
    match r.browse(&t.name, (page - 1) * per, per as usize) {
        Ok(rows) => {
            let head: Vec<String> = rows.columns.iter().map(|c| esc(c)).collect();
            let head: Vec<&str> = head.iter().map(String::as_str).collect();
            let body: Vec<Vec<String>> = rows.rows.iter().map(|r| r.iter().map(cell).collect()).collect();
            out.push_str("<div class=\"scroll\">");
            out.push_str(&table("data", &head, &body));
            out.push_str("</div>");
        }
        Err(e) => out.push_str(&notice("error", "data-error", &e.to_string())),
    }
    out
}

/// A result cell: NULL marked, long text cut (full text in the tooltip).
fn cell(v: &Option<String>) -> String {
    match v {
        None => "<span class=\"muted\">NULL</span>".into(),
        Some(s) if s.chars().count() > 120 => {
            let short: String = s.chars().take(120).collect();
            format!("<span title=\"{}\">{}…</span>", esc(s), esc(&short))
        }
        Some(s) => esc(s),
    }
}

// ------------------------------------------------------------------------------------------ sql

/// `/sql?q=…`: one read-only query against the destination, results capped.
pub fn sql(app: &App, params: &Params) -> String {
    let c = &app.config;
    let mut body = String::new();
    let query = params.q.clone().unwrap_or_default();
    let example = format!("SELECT * FROM {}.employees LIMIT 10", c.dataset_name);
    let mut remote = Remote::open(app);
    let keywords = match &remote.reader {
        Ok(r) => r.dialect().query_keywords().iter().map(|k| k.to_ascii_uppercase()).collect::<Vec<_>>().join(", "),
        Err(_) => "SELECT".to_string(),
    };
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/sql\" id=\"sql-form\"><textarea id=\"sql-input\" name=\"q\" spellcheck=\"false\" placeholder=\"{}\">{}</textarea>\
         <p><button type=\"submit\" id=\"sql-run\">Run query</button> <span class=\"muted\">The destination is opened read-only; only a single \
         query ({}) runs, at most {} rows are shown, and a query is stopped after 20 seconds. Tables are in schema <code>{}</code>.</span></p></form>",
        esc(&example),
        esc(&query),
        esc(&keywords),
        c.sql_row_cap,
        esc(&c.dataset_name),
    );
    if !query.trim().is_empty() {
        if let Some(r) = reader(&mut remote, &mut body) {
            match r.query(&query, c.sql_row_cap) {
                Ok(rows) => {
                    let cap = if rows.truncated { format!(" (capped at {} rows)", c.sql_row_cap) } else { String::new() };
                    let _ = write!(body, "<p id=\"sql-summary\"><span id=\"sql-rows\">{}</span> rows{cap}</p>", rows.rows.len());
                    let head: Vec<String> = rows.columns.iter().map(|c| esc(c)).collect();
                    let head: Vec<&str> = head.iter().map(String::as_str).collect();
                    let cells: Vec<Vec<String>> = rows.rows.iter().map(|r| r.iter().map(cell).collect()).collect();
                    body.push_str("<div class=\"scroll\">");
                    body.push_str(&table("sql-result", &head, &cells));
                    body.push_str("</div>");
                }
                Err(e) => body.push_str(&notice("error", "sql-error", &e.message)),
            }
        }
    }
    layout(&c.pipeline_name, "/sql", "SQL", &body)
}

// ------------------------------------------------------------------------------------------ charts

/// `/charts`: the HR charts, computed with SQL in the destination.
pub fn charts(app: &App, _: &Params) -> String {
    let c = &app.config;
    let mut remote = Remote::open(app);
    let mut body = String::new();
    if let Some(r) = reader(&mut remote, &mut body) {
        match r.columns() {
            Ok(columns) => {
                for (id, title, chart) in charts::compute(r.as_mut(), &columns) {
                    let _ = write!(body, "<section id=\"section-{id}\"><h2>{}</h2>", esc(title));
                    match chart {
                        Ok(chart) if chart.buckets.is_empty() => body.push_str(&notice("", &format!("empty-{id}"), "No data for this chart.")),
                        Ok(chart) => body.push_str(&charts::render(&chart)),
                        Err(e) => body.push_str(&notice("warn", &format!("missing-{id}"), &e)),
                    }
                    body.push_str("</section>");
                }
            }
            Err(e) => body.push_str(&notice("error", "columns-error", &e.to_string())),
        }
    }
    layout(&c.pipeline_name, "/charts", "Charts", &body)
}
