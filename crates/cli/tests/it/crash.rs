//! Crash suite (issue 9 §3): SIGKILL the CLI at points spread over fetch, normalize, load, state commit and
//! refresh/drop, then check what a crash may leave and rerun:
//!
//! * the destination's newest state is never ahead of its data (a stored cursor never exceeds the newest
//!   cursor value of its table);
//! * the working directory stays usable (`pipeline info` and the rerun succeed, no lock left behind);
//! * after the rerun the dataset equals the ground truth: no lost rows, no duplicate keys.
//!
//! Points are deterministic where the process lets them be: "the sandbox has served request k" (the
//! request log is polled), "a package appeared in `load/<stage>`" plus a delay, or a fraction of a
//! calibrated run time. Fast profile: 4 points; slow profile (`PP_SLOW=1`): 36 points. Figures are
//! printed at the end. See docs/reliability.md.

use std::path::Path;
use std::time::{Duration, Instant};

use personio_sandbox::{Preset, SandboxConfig};

use crate::support::cli_run::{
    compare_with_truth, cursors_ahead, destination_state, slow, BgSandbox, Lcg, Project, Ran, Running,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `run` after a few changes in the sandbox.
    Incremental,
    /// `run --full-refresh`.
    FullRefresh,
    /// `pipeline personio drop --resources absences,employees`.
    Drop,
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// The sandbox has logged this share (0–1) of the requests a full run makes.
    Requests(f64),
    /// A package directory appeared under `load/<stage>` (`new`, `normalized`, `loaded`), then wait.
    Stage(&'static str, u64),
    /// This share of the calibrated duration of this kind of command.
    Time(f64),
}

#[derive(Clone, Copy, Debug)]
struct Point {
    kind: Kind,
    trigger: Trigger,
}

fn points(slow: bool) -> Vec<Point> {
    use Kind::*;
    use Trigger::*;
    let p = |kind, trigger| Point { kind, trigger };
    if !slow {
        return vec![
            p(FullRefresh, Requests(0.5)),
            p(FullRefresh, Stage("normalized", 30)),
            p(Incremental, Stage("normalized", 0)),
            p(Drop, Time(0.5)),
        ];
    }
    let mut v = Vec::new();
    for f in [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95] {
        v.push(p(FullRefresh, Requests(f)));
    }
    for f in [0.3, 0.9] {
        v.push(p(Incremental, Requests(f)));
    }
    for ms in [0, 10, 30, 60, 120, 250] {
        v.push(p(FullRefresh, Stage("normalized", ms)));
    }
    for ms in [0, 20, 80] {
        v.push(p(Incremental, Stage("normalized", ms)));
    }
    v.push(p(FullRefresh, Stage("new", 0)));
    v.push(p(FullRefresh, Stage("loaded", 0)));
    v.push(p(Incremental, Stage("loaded", 0)));
    for f in [0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.97] {
        v.push(p(FullRefresh, Time(f)));
    }
    for f in [0.15, 0.35, 0.5, 0.65, 0.8, 0.95] {
        v.push(p(Drop, Time(f)));
    }
    for f in [0.5, 0.85] {
        v.push(p(Incremental, Time(f)));
    }
    v
}

fn command(p: &Project, sb: &BgSandbox, kind: Kind) -> std::process::Command {
    let mut c = p.cli(&sb.base_url());
    match kind {
        Kind::Incremental => {
            c.arg("run");
        }
        Kind::FullRefresh => {
            c.args(["run", "--full-refresh"]);
        }
        Kind::Drop => {
            c.args(["pipeline", "personio", "drop", "--resources", "absences,employees"]);
        }
    }
    c
}

fn stage_entries(p: &Project, stage: &str) -> Vec<String> {
    std::fs::read_dir(p.workdir().join("load").join(stage))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Waits for the trigger and kills; `None` when the command ended first (point not reached).
fn kill_at(p: &Project, sb: &BgSandbox, mut child: Running, trigger: Trigger, full_requests: usize, calibrated: Duration) -> Result<Ran, Ran> {
    let started = Instant::now();
    let before: Vec<String> = match trigger {
        Trigger::Stage(stage, _) => stage_entries(p, stage),
        _ => Vec::new(),
    };
    let h = sb.handle();
    loop {
        if child.finished() {
            return Err(child.wait(Duration::from_secs(1)));
        }
        let fire = match trigger {
            Trigger::Requests(f) => h.request_log().len() >= ((full_requests as f64 * f).ceil() as usize).max(1),
            Trigger::Stage(stage, delay) => {
                if stage_entries(p, stage).iter().any(|e| !before.contains(e)) {
                    std::thread::sleep(Duration::from_millis(delay));
                    true
                } else {
                    false
                }
            }
            Trigger::Time(f) => started.elapsed() >= calibrated.mul_f64(f),
        };
        if fire {
            return Ok(child.kill());
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(child.kill());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn check_after_kill(p: &Project, sb: &BgSandbox) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(state) = destination_state(&p.db()) {
        for a in cursors_ahead(&p.db(), &state) {
            problems.push(format!("destination state ahead of data: {a}"));
        }
    }
    let info = p.run(p.cli(&sb.base_url()).args(["pipeline", "personio", "info"]), Duration::from_secs(60));
    if !info.ok() {
        problems.push(format!("`pipeline info` failed after the kill: {}", info.summary()));
    }
    let rerun = p.run(p.cli(&sb.base_url()).arg("run"), Duration::from_secs(180));
    let t = sb.handle().truth();
    if !rerun.ok() {
        problems.push(format!("the rerun failed: {}", rerun.summary()));
    }
    let diffs = compare_with_truth(&p.db(), &t, &t);
    if !diffs.is_empty() {
        problems.push(format!("after the rerun the dataset differs from the truth: {diffs:?}"));
    }
    if let Some(state) = destination_state(&p.db()) {
        for a in cursors_ahead(&p.db(), &state) {
            problems.push(format!("after the rerun, destination state ahead of data: {a}"));
        }
    }
    problems
}

fn timed(p: &Project, cmd: &mut std::process::Command) -> (Ran, Duration) {
    let t = Instant::now();
    let ran = p.run(cmd, Duration::from_secs(180));
    (ran, t.elapsed())
}

fn assert_exact(p: &Project, sb: &BgSandbox, ran: &Ran, what: &str) {
    assert!(ran.ok(), "{what}: {}", ran.summary());
    let t = sb.handle().truth();
    let diffs = compare_with_truth(&p.db(), &t, &t);
    assert!(diffs.is_empty(), "{what}: {diffs:?}");
}

#[test]
fn sigkill_at_any_point_leaves_a_consistent_pipeline() {
    let slow = slow();
    let seed = crate::support::cli_run::env_or("PP_CRASH_SEED", 5u64);
    let sb = BgSandbox::start(SandboxConfig::preset(Preset::Tiny, seed));
    let h = sb.handle();
    let p = Project::new();
    let mut rng = Lcg(seed);

    // Calibration, as far as the points need it: a first full run (the request count of a full run), then
    // the duration of each kind of command a time trigger refers to.
    let points = points(slow);
    let needs = |k: fn(&Kind) -> bool| points.iter().any(|p| k(&p.kind) && matches!(p.trigger, Trigger::Time(_)));
    h.reset_request_log();
    let (first, _) = timed(&p, p.cli(&sb.base_url()).arg("run"));
    assert_exact(&p, &sb, &first, "first run");
    let full_requests = h.request_log().len();
    let mut t_refresh = Duration::ZERO;
    if needs(|k| matches!(k, Kind::FullRefresh)) {
        let (refresh, t) = timed(&p, p.cli(&sb.base_url()).args(["run", "--full-refresh"]));
        assert_exact(&p, &sb, &refresh, "calibration full refresh");
        t_refresh = t;
    }
    let mut t_drop = Duration::ZERO;
    if needs(|k| matches!(k, Kind::Drop)) {
        let (dropped, t) = timed(&p, &mut command(&p, &sb, Kind::Drop));
        assert!(dropped.ok(), "calibration drop: {}", dropped.summary());
        t_drop = t;
        let (rerun, _) = timed(&p, p.cli(&sb.base_url()).arg("run"));
        assert_exact(&p, &sb, &rerun, "rerun after the calibration drop");
    }
    let mut t_incr = Duration::ZERO;
    if needs(|k| matches!(k, Kind::Incremental)) {
        h.advance_clock(chrono::Duration::hours(1));
        h.update_employees(2);
        let (incr, t) = timed(&p, p.cli(&sb.base_url()).arg("run"));
        assert_exact(&p, &sb, &incr, "calibration incremental run");
        t_incr = t;
    }

    let mut tried = 0;
    let mut consistent = 0;
    let mut not_reached = Vec::new();
    let mut failures = Vec::new();
    for point in points {
        // Something to load on every run.
        h.advance_clock(chrono::Duration::minutes(30 + rng.below(120) as i64));
        h.update_employees(1 + rng.below(2) as usize);
        let (emp, today) = h.with_company(|c| (c.employees.first().map(|e| e.id), personio_sandbox::time::berlin_date(c.now)));
        if let Some(emp) = emp {
            let _ = h.add_absence(emp, today, 1, None);
        }
        let calibrated = match point.kind {
            Kind::Incremental => t_incr,
            Kind::FullRefresh => t_refresh,
            Kind::Drop => t_drop,
        };
        h.reset_request_log();
        let child = p.spawn(&mut command(&p, &sb, point.kind));
        match kill_at(&p, &sb, child, point.trigger, full_requests, calibrated) {
            Err(ran) => {
                not_reached.push(format!("{point:?} ({})", ran.summary()));
                // The command ran to its end: the pipeline must still be exact after a rerun.
                let problems = check_after_kill(&p, &sb);
                if !problems.is_empty() {
                    failures.push(format!("{point:?} (not killed): {problems:?}"));
                }
            }
            Ok(killed) => {
                tried += 1;
                let problems = check_after_kill(&p, &sb);
                if problems.is_empty() {
                    consistent += 1;
                } else {
                    failures.push(format!("{point:?} killed after {:.2}s: {problems:?}", killed.secs));
                }
            }
        }
    }
    leftover_lock_check(&p);
    println!(
        "crash points consistent: {consistent} of {tried} tried ({} not reached: the command ended first); calibration: {full_requests} requests, full refresh {:.2}s, drop {:.2}s, incremental {:.2}s",
        not_reached.len(),
        t_refresh.as_secs_f64(),
        t_drop.as_secs_f64(),
        t_incr.as_secs_f64()
    );
    for n in &not_reached {
        println!("not reached: {n}");
    }
    for f in &failures {
        println!("INCONSISTENT: {f}");
    }
    assert!(failures.is_empty(), "{} of {tried} crash points left an inconsistent pipeline: {failures:#?}", failures.len());
    assert!(tried >= if slow { 30 } else { 3 }, "only {tried} points reached");
}

/// The lock file may stay, but it must not block: a fresh `pipeline info` takes it.
fn leftover_lock_check(p: &Project) {
    let lock = p.workdir().join("pipeline.lock");
    if Path::new(&lock).exists() {
        let ran = p.run(p.cli("http://127.0.0.1:9").args(["pipeline", "personio", "info"]), Duration::from_secs(30));
        assert!(ran.ok(), "a lock left by a killed process blocks: {}", ran.summary());
    }
}
