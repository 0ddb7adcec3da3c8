//! The in-memory destination (`pipeline_engine::memory`) and a parent/child test source, for state and
//! refresh tests without DuckDB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use pipeline_engine::extract::{ExtractContext, ResourceSpec, Source, SourceError};
use pipeline_engine::schema::WriteDisposition;
use serde_json::{json, Value};

/// The engine's in-memory reference destination, under the name these tests always used.
pub use pipeline_engine::memory::MemoryDestination as MemDestination;

/// A Personio-like source: `parents` (merge, cursor `updated_at`, filtered server-side too), `kids`
/// (a transformer of `parents`, one call per kept parent) and `others` (merge, cursor).
#[derive(Debug, Default)]
pub struct Tree {
    pub parents: Mutex<Vec<Value>>,
    pub kids: Mutex<HashMap<i64, Vec<Value>>>,
    pub others: Mutex<Vec<Value>>,
    /// Fail the extract (after the first pages went out), like an API answering 500.
    pub fail: AtomicBool,
    /// Kid calls made (one per parent id).
    pub kid_calls: AtomicUsize,
    /// Parents returned by the "API" (after the server-side `updated_since`).
    pub parents_served: AtomicUsize,
    /// A destination whose connection is checked while extracting.
    pub probe: Mutex<Option<MemDestination>>,
    /// Set when the probe was connected during an extract.
    pub probe_saw_connected: AtomicBool,
}

pub fn at(day: u32) -> String {
    format!("2024-01-{day:02}T00:00:00+00:00")
}

impl Tree {
    /// `n` parents updated on day 1, each with two kids, and `n` others.
    pub fn new(n: i64) -> Self {
        let t = Tree::default();
        for id in 1..=n {
            t.set_parent(id, 1);
            t.others.lock().unwrap_or_else(|e| e.into_inner()).push(json!({"id": id, "updated_at": at(1)}));
        }
        t
    }

    /// Add or update a parent (and give it two kids).
    pub fn set_parent(&self, id: i64, day: u32) {
        let mut parents = self.parents.lock().unwrap_or_else(|e| e.into_inner());
        parents.retain(|p| p["id"] != json!(id));
        parents.push(json!({"id": id, "updated_at": at(day)}));
        self.kids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, vec![json!({"parent_id": id, "id": 1, "v": day}), json!({"parent_id": id, "id": 2, "v": day})]);
    }

    pub fn kid_calls(&self) -> usize {
        self.kid_calls.load(Ordering::SeqCst)
    }

    pub fn reset_counters(&self) {
        self.kid_calls.store(0, Ordering::SeqCst);
        self.parents_served.store(0, Ordering::SeqCst);
    }

    fn probe(&self) {
        if let Some(p) = self.probe.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if p.is_connected() {
                self.probe_saw_connected.store(true, Ordering::SeqCst);
            }
        }
    }
}

fn since(records: &[Value], start: Option<Value>) -> Vec<Value> {
    let start = start.and_then(|v| v.as_str().map(|s| s.trim_start_matches('\u{F027}').to_string()));
    records
        .iter()
        .filter(|r| start.as_deref().is_none_or(|s| r["updated_at"].as_str().unwrap_or_default() >= s))
        .cloned()
        .collect()
}

#[async_trait::async_trait]
impl Source for Tree {
    fn name(&self) -> &str {
        "tree"
    }

    fn resources(&self) -> Vec<ResourceSpec> {
        vec![
            ResourceSpec::new("parents", &["id"], WriteDisposition::Merge).with_cursor("updated_at"),
            ResourceSpec::new("kids", &["parent_id", "id"], WriteDisposition::Merge).with_parent("parents"),
            ResourceSpec::new("others", &["id"], WriteDisposition::Merge).with_cursor("updated_at"),
        ]
    }

    async fn extract(&self, ctx: ExtractContext) -> Result<(), SourceError> {
        self.probe();
        let want_kids = ctx.is_selected("kids");
        if ctx.is_selected("parents") || want_kids {
            let all = self.parents.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let page = since(&all, ctx.start_value("parents"));
            self.parents_served.fetch_add(page.len(), Ordering::SeqCst);
            let kept = ctx.filter("parents", page)?;
            if want_kids {
                for p in &kept {
                    let id = p["id"].as_i64().unwrap_or_default();
                    self.kid_calls.fetch_add(1, Ordering::SeqCst);
                    let kids = self.kids.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned().unwrap_or_default();
                    ctx.emit("kids", kids).await?;
                }
            }
            ctx.emit("parents", kept).await?;
        }
        self.probe();
        if self.fail.load(Ordering::SeqCst) {
            return Err("the API answered 500 Internal Server Error".into());
        }
        if ctx.is_selected("others") {
            let all = self.others.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let kept = ctx.filter("others", since(&all, ctx.start_value("others")))?;
            ctx.emit("others", kept).await?;
        }
        Ok(())
    }
}
