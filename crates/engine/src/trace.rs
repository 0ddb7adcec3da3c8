//! The run trace: the steps of one run with their wall times, and the error that ended it.
//!
//! The pipeline writes the last run's [`crate::pipeline::RunReport`] to `trace.json` in the working
//! directory after every run, failed runs included; its `steps` come from a [`StepClock`]. Extract and
//! normalize overlap (the normalizer consumes pages while they arrive), so two steps may be open at once.

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// One step of a run, as recorded in the trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// `sync` (resume pending packages, restore state), `extract`, `normalize` or `load`.
    pub step: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it finished; absent when the run ended inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Wall seconds, until it finished or the run ended.
    pub duration_secs: f64,
    /// Why the run ended inside this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Records steps as a run goes; see the module docs.
#[derive(Debug, Default)]
pub struct StepClock {
    steps: Vec<TraceStep>,
    starts: Vec<Instant>,
}

/// A started step; pass it back to [`StepClock::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepId(usize);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl StepClock {
    /// Start a step now.
    pub fn start(&mut self, step: &str) -> StepId {
        self.steps.push(TraceStep { step: step.to_string(), started_at: rfc3339(Utc::now()), ..Default::default() });
        self.starts.push(Instant::now());
        StepId(self.steps.len() - 1)
    }

    /// Finish a started step now (a second call keeps the first time).
    pub fn finish(&mut self, id: StepId) {
        if let (Some(step), Some(start)) = (self.steps.get_mut(id.0), self.starts.get(id.0)) {
            if step.finished_at.is_none() {
                step.finished_at = Some(rfc3339(Utc::now()));
                step.duration_secs = start.elapsed().as_secs_f64();
            }
        }
    }

    /// The run ended with `error`: every unfinished step gets its time so far and the error.
    pub fn fail_unfinished(&mut self, error: &str) {
        for (step, start) in self.steps.iter_mut().zip(&self.starts) {
            if step.finished_at.is_none() {
                step.duration_secs = start.elapsed().as_secs_f64();
                step.error = Some(error.to_string());
            }
        }
    }

    /// The steps recorded so far, in start order.
    pub fn steps(&self) -> &[TraceStep] {
        &self.steps
    }

    /// Take the steps.
    pub fn into_steps(self) -> Vec<TraceStep> {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_steps_and_a_failure() {
        let mut clock = StepClock::default();
        let sync = clock.start("sync");
        clock.finish(sync);
        let extract = clock.start("extract");
        let normalize = clock.start("normalize");
        clock.finish(extract);
        clock.fail_unfinished("normalize failed: boom");
        let steps = clock.into_steps();
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(names, ["sync", "extract", "normalize"]);
        assert!(steps[0].finished_at.is_some() && steps[0].error.is_none());
        assert!(steps[1].finished_at.is_some() && steps[1].error.is_none());
        assert_eq!(steps[2].finished_at, None);
        assert_eq!(steps[2].error.as_deref(), Some("normalize failed: boom"));
        let _ = normalize;
    }

    #[test]
    fn finishing_twice_keeps_the_first_time() {
        let mut clock = StepClock::default();
        let load = clock.start("load");
        clock.finish(load);
        let first = clock.steps()[0].clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        clock.finish(load);
        assert_eq!(clock.steps()[0], first);
    }
}
