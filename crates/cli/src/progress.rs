//! Progress per resource: indicatif bars on a terminal, plain log lines otherwise, nothing with `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use personio_source::ProgressFn;

#[derive(Default)]
struct Counts {
    rows: u64,
    pages: u64,
    last_log: Option<Instant>,
}

/// Progress display for one run.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Arc<Mutex<HashMap<String, (ProgressBar, Counts)>>>,
    quiet: bool,
    started: Instant,
}

impl Progress {
    /// Bars when stderr is a terminal; `quiet` (for `--json`) shows nothing.
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Progress { multi, bars: Arc::default(), quiet, started: Instant::now() }
    }

    /// The callback handed to the source: (resource, rows in a page).
    pub fn callback(&self) -> ProgressFn {
        let bars = self.bars.clone();
        let multi = self.multi.clone();
        let quiet = self.quiet;
        let started = self.started;
        Arc::new(move |resource: &str, rows: usize| {
            if quiet {
                return;
            }
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            let entry = bars.entry(resource.to_string()).or_insert_with(|| {
                let bar = match &multi {
                    Some(m) => m.add(ProgressBar::new_spinner()),
                    None => ProgressBar::hidden(),
                };
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<28} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(resource.to_string());
                (bar, Counts::default())
            });
            entry.1.rows += rows as u64;
            entry.1.pages += 1;
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let msg = format!("{} rows, {} pages, {:.0} rows/s", entry.1.rows, entry.1.pages, entry.1.rows as f64 / secs);
            if multi.is_some() {
                entry.0.set_message(msg);
                entry.0.tick();
            } else if entry.1.last_log.is_none_or(|t| t.elapsed().as_secs() >= 5) {
                entry.1.last_log = Some(Instant::now());
                eprintln!("{resource}: {msg}");
            }
        })
    }

    /// Close the bars and print each resource's totals.
    pub fn finish(&self) {
        if self.quiet {
            return;
        }
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        for (resource, (bar, counts)) in bars.iter() {
            bar.finish_and_clear();
            eprintln!("{resource}: {} rows in {} pages", counts.rows, counts.pages);
        }
    }
}
