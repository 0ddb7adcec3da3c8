//! The run trace: the steps of one run with their wall times, the error that ended it, and which
//! configuration value was found where.
//!
//! The pipeline writes the last run's [`crate::pipeline::RunReport`] to `trace.json` in the working
//! directory after every run, failed runs included; its `steps` come from a [`StepClock`]. Extract and
//! normalize overlap (the normalizer consumes pages while they arrive), so two steps may be open at once.
//! `resolved_config_values` ([`ConfigValue`]) are handed in by the caller that resolved the
//! configuration ([`crate::pipeline::RunOptions::config_values`]), secrets without their value.

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

/// One configuration value of a run, as dlt's trace lists its `resolved_config_values`: the key, where it
/// was found and the value — never the value of a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// Dotted key as the program asks for it (`sources.personio.client_id`).
    pub key: String,
    /// `environment`, `secrets.toml`, `config.toml`, or `default` (not set anywhere).
    pub provider: String,
    /// Where exactly: the environment variable or the key path in the file; absent for a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The value as text; `None` for a secret, and for a default the program does not spell out.
    #[serde(default)]
    pub value: Option<String>,
    /// Whether the value is a secret (its value is never written).
    #[serde(default)]
    pub is_secret: bool,
}

impl ConfigValue {
    /// The value to show: `***` for a set secret, `(default)` for an unnamed default.
    pub fn shown(&self) -> String {
        match (&self.value, self.is_secret) {
            (_, true) if self.provider != "default" => "***".to_string(),
            (Some(v), false) => v.clone(),
            _ => "(default)".to_string(),
        }
    }
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
    fn secrets_are_shown_as_stars() {
        let secret = ConfigValue {
            key: "sources.personio.client_secret".into(),
            provider: "secrets.toml".into(),
            location: Some("sources.personio.client_secret".into()),
            value: None,
            is_secret: true,
        };
        assert_eq!(secret.shown(), "***");
        let default = ConfigValue { key: "runtime.request_timeout".into(), provider: "default".into(), value: Some("30".into()), ..Default::default() };
        assert_eq!(default.shown(), "30");
        let unnamed = ConfigValue { key: "sources.personio.app_id".into(), provider: "default".into(), ..Default::default() };
        assert_eq!(unnamed.shown(), "(default)");
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
