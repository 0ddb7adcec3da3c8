#!/usr/bin/env python3
"""The measurements behind `bash bench/run.sh` (docs/performance.md), one run on this machine.

Needs only the Python standard library and the release binaries (`--bin-dir`, e.g.
`~/.cache/personio-pipeline/target/release`): `personio-pipeline` (the CLI, which also serves the sandbox),
`examples/bench_fetch`, `examples/bench_normalize`, `examples/bench_load`. The dlt side runs in its own
virtualenv (`--venv`) with dlt's personio verified source (`--dlt-sources`, a folder holding `personio/`).

Sections (all by default; `--sections a,b`):
  normalize   normalizer records/s in memory (simple and nested records)
  engine      engine + DuckDB load of synthetic records (bench_load): records/s, peak RSS per phase
  full        full load of `medium` and `large` into DuckDB, no latency, no pacing: wall, rows/s, peak RSS,
              stages; then the raw-fetch floor (the same requests replayed at the same concurrency) and
              an incremental run after 1 % of the company changed
  realistic   `medium`, 300 ms latency and Personio's rate limits on: wall against requests / allowed rate,
              429s; the same workload through dlt's personio source
  lake        (not in the default set) write throughput of the filesystem destination against DuckDB on the
              same packages (examples/bench_lake: a full load, then a 1 % increment): a local folder, and
              s3:// on moto's server from the lake virtualenv (`--lake-venv`, lake/setup.sh) when installed

Writes `<out>/<date>.json` and `<out>/<date>.md`.
"""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "papi-sandbox-client"
CLIENT_SECRET = "papi-sandbox-secret"
# Personio's published limits (docs/sandbox.md#rate-limits): every v1 call, and GET /company/employees*.
V1_PER_MIN = 2000
EMPLOYEES_PER_MIN = 300
REALISTIC_RESOURCES = ["employees", "absences", "attendances"]
REALISTIC_LATENCY = {"mean_ms": 300, "tail_ms": 1000, "tail_share": 0.02, "seed": 7}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the sandbox, as a separate process


class Sandbox:
    """`personio-pipeline sandbox` in its own process (its memory and CPU are not the pipeline's)."""

    def __init__(self, cli, preset, extra, logfile):
        args = [str(cli), "sandbox", "--preset", preset, "--port", "0", "--seed", "42", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=logfile, text=True)
        self.base = None
        started = time.time()
        for line in self.proc.stdout:
            if line.startswith("Personio sandbox listening on "):
                self.base = line.split()[-1].strip()
            if line.startswith("  company:"):
                self.company = line.strip()
                break
        if self.base is None:
            raise RuntimeError(f"the sandbox did not start (see {logfile.name})")
        self.startup_secs = time.time() - started
        log(f"sandbox {preset} at {self.base} in {self.startup_secs:.1f} s: {self.company}")

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/_sandbox/{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read() or b"null")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------ a measured child process


def measure(args, env=None, cwd=None, stages_dir=None):
    """Runs a command; returns wall seconds, peak RSS (MiB), CPU seconds, stdout, and — with `stages_dir`
    (a pipeline working directory) — when its package reached `load/normalized/` and `load/loaded/`."""
    out = tempfile.TemporaryFile(mode="w+")
    err = tempfile.TemporaryFile(mode="w+")
    t0 = time.time()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
    seen = {}
    before = set()
    if stages_dir is not None:
        for sub in ("normalized", "loaded"):
            d = Path(stages_dir) / "load" / sub
            if d.is_dir():
                before |= {(sub, p.name) for p in d.iterdir()}
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        now = time.time()
        if stages_dir is not None:
            for sub in ("normalized", "loaded"):
                d = Path(stages_dir) / "load" / sub
                if sub not in seen and d.is_dir() and any((sub, p.name) not in before for p in d.iterdir()):
                    seen[sub] = now
        if pid != 0:
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    out.seek(0)
    err.seek(0)
    result = {
        "wall_secs": round(wall, 3),
        "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
        "cpu_secs": round(ru.ru_utime + ru.ru_stime, 2),
        "exit": proc.returncode,
        "stdout": out.read(),
        "stderr": err.read(),
        "t0": t0,
    }
    for sub, at in seen.items():
        result[f"{sub}_at"] = at
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {proc.returncode}: {result['stderr'][-2000:]}")
    return result


def pipeline_env(base, pipelines_dir, pacing):
    env = dict(os.environ)
    env.update({
        "SOURCES__PERSONIO__BASE_URL": base,
        "SOURCES__PERSONIO__CLIENT_ID": CLIENT_ID,
        "SOURCES__PERSONIO__CLIENT_SECRET": CLIENT_SECRET,
        "PERSONIO_PIPELINES_DIR": str(pipelines_dir),
    })
    if not pacing:
        for key in ("REQUESTS_PER_MINUTE", "EMPLOYEES_REQUESTS_PER_MINUTE", "AUTH_REQUESTS_PER_MINUTE"):
            env[f"SOURCES__PERSONIO__{key}"] = "0"
    return env


def run_pipeline(cli, sb, work, name, resources, pacing):
    """One `personio-pipeline run` against the sandbox; the sandbox's request log is reset first."""
    sb.admin("DELETE", "requests")
    pipelines = work / "pipelines"
    args = [str(cli), "--json", "--project-dir", str(work), "run", "--pipeline-name", name]
    if resources:
        args += ["--resources", ",".join(resources)]
        if "attendances" in resources:
            args.append("--allow-retired-v1")
    r = measure(args, env=pipeline_env(sb.base, pipelines, pacing), cwd=work, stages_dir=pipelines / name)
    report = json.loads(r["stdout"])
    counts = sb.admin("GET", "requests/counts")
    rows = sum(report.get("rows", {}).values())
    traffic = counts["traffic"]
    fetch_end = traffic["last_unix_ms"] / 1000 if traffic["last_unix_ms"] else None
    stages = {}
    if fetch_end:
        stages["start_and_fetch_secs"] = round(fetch_end - r["t0"], 3)
        if "normalized_at" in r:
            stages["normalize_tail_secs"] = round(r["normalized_at"] - fetch_end, 3)
            if "loaded_at" in r:
                stages["load_secs"] = round(r["loaded_at"] - r["normalized_at"], 3)
                stages["finish_secs"] = round(r["t0"] + r["wall_secs"] - r["loaded_at"], 3)
    # The engine's own step times (trace.json / the run report's `steps`), when this build records them.
    trace = {}
    for step in report.get("steps") or []:
        trace[step["step"]] = round(trace.get(step["step"], 0.0) + step.get("duration_secs", 0.0), 3)
    if trace:
        stages["trace_steps_secs"] = trace
    return {
        "wall_secs": r["wall_secs"],
        "cpu_secs": r["cpu_secs"],
        "peak_rss_mib": r["peak_rss_mib"],
        "rows": rows,
        "early_rows": report.get("early_rows", 0),
        "rows_per_sec": round(rows / r["wall_secs"]) if r["wall_secs"] else None,
        "tables": len(report.get("rows", {})),
        "requests": counts["total"],
        "requests_by_status": counts.get("by_status", {}),
        "max_in_flight": traffic["max_in_flight"],
        "stages": stages,
        "report_elapsed_secs": report.get("elapsed_secs"),
    }


def data_requests(log_entries):
    return [e for e in log_entries if e["method"] == "GET" and e["path"] not in ("/v1/auth", "/v2/auth/token")]


def floor(bins, sb, work, concurrency, pacing):
    """Replays the successful data requests of the last run at `concurrency`, bodies discarded."""
    entries = sb.admin("GET", "requests")
    path = work / "requests.json"
    path.write_text(json.dumps(entries))
    sb.admin("DELETE", "requests")
    r = measure([str(bins / "examples" / "bench_fetch"), "--base-url", sb.base, "--log", str(path), "--concurrency",
                 str(max(1, concurrency)), "--pacing", "default" if pacing else "off"])
    out = json.loads(r["stdout"])
    out["process_wall_secs"] = r["wall_secs"]
    out["peak_rss_mib"] = r["peak_rss_mib"]
    return out


# ------------------------------------------------------------------ sections


def section_normalize(bins, quick):
    n = 200_000 if quick else 1_000_000
    r = measure([str(bins / "examples" / "bench_normalize"), str(n)])
    return {json.loads(line)["shape"]: json.loads(line) for line in r["stdout"].splitlines() if line.strip()}


def section_engine(bins, quick):
    n = 200_000 if quick else 1_000_000
    r = measure([str(bins / "examples" / "bench_load"), str(n)])
    out = json.loads(r["stdout"].strip().splitlines()[-1])
    out["peak_rss_mib"] = r["peak_rss_mib"]
    return out


def section_lake(bins, quick, lake_venv):
    """examples/bench_lake: two packages normalized once (a full load of N employee-like records, then an
    increment changing 1 % of them), copies of each loaded into DuckDB, the filesystem destination on a local
    folder and on s3:// served by moto on loopback (a Python S3 emulator: its figure shows the S3 path at
    volume, not a real S3's speed). One process, one run."""
    n = 20_000 if quick else 200_000
    out = {"records": n}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESTINATION__", "BENCH_S3_"))}
    moto = lake_venv / "bin" / "moto_server"
    server = None
    if moto.exists():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        endpoint = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"), timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        env.update({"BENCH_S3_ENDPOINT": endpoint, "BENCH_S3_BUCKET": "bench"})
    else:
        out["s3_skipped"] = f"no {moto} (run bash lake/setup.sh)"
    try:
        r = measure([str(bins / "examples" / "bench_lake"), str(n)], env=env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    out["destinations"] = {d["destination"]: d for d in (json.loads(line) for line in r["stdout"].splitlines() if line.strip())}
    out["wall_secs"] = r["wall_secs"]
    out["peak_rss_mib"] = r["peak_rss_mib"]
    return out


def section_full(bins, cli, presets, logfile):
    results = {}
    for preset in presets:
        work = Path(tempfile.mkdtemp(prefix=f"bench-{preset}-"))
        sb = Sandbox(cli, preset, [], logfile)
        try:
            warm = sb.admin("POST", "warm")
            log(f"{preset}: sandbox warm ({warm['rendered']} v2 records rendered); full load")
            full = run_pipeline(cli, sb, work, f"bench_{preset}", [], pacing=False)
            log(f"{preset}: full load {full['wall_secs']} s, {full['rows']} rows, {full['requests']} requests; floor")
            fl = floor(bins, sb, work, full["max_in_flight"], pacing=False)
            full["floor"] = fl
            full["ratio_to_floor"] = round(full["wall_secs"] / fl["seconds"], 2) if fl["seconds"] else None
            log(f"{preset}: floor {fl['seconds']} s at concurrency {fl['concurrency']}; incremental after 1 % changed")
            sb.admin("POST", "clock/advance", {"hours": 1})
            changed = sb.admin("POST", "mutate", {"share": 0.01})
            inc = run_pipeline(cli, sb, work, f"bench_{preset}", [], pacing=False)
            inc["changed"] = changed
            inc["requests_vs_full"] = round(inc["requests"] / full["requests"], 4) if full["requests"] else None
            inc["wall_vs_full"] = round(inc["wall_secs"] / full["wall_secs"], 3) if full["wall_secs"] else None
            log(f"{preset}: incremental {inc['wall_secs']} s, {inc['requests']} requests")
            results[preset] = {"sandbox": sb.company, "full": full, "incremental": inc}
        finally:
            sb.close()
            shutil.rmtree(work, ignore_errors=True)
    return results


def theoretical_min_secs(entries):
    """Requests ÷ allowed rate: every v1 data call under 2,000/min, employees calls also under 300/min."""
    data = data_requests(entries)
    v1 = sum(1 for e in data if e["path"].startswith("/v1/"))
    emp = sum(1 for e in data if e["path"].startswith("/v1/company/employees"))
    return max(v1 / (V1_PER_MIN / 60), emp / (EMPLOYEES_PER_MIN / 60)), len(data), v1, emp


def section_realistic(bins, cli, preset, logfile, venv, dlt_sources, skip_dlt):
    work = Path(tempfile.mkdtemp(prefix="bench-realistic-"))
    lat = REALISTIC_LATENCY
    extra = ["--rate-limits", "--latency-ms", str(lat["mean_ms"]), "--latency-tail-ms", str(lat["tail_ms"]),
             "--latency-tail-share", str(lat["tail_share"]), "--fault-seed", str(lat["seed"])]
    sb = Sandbox(cli, preset, extra, logfile)
    out = {"preset": preset, "sandbox": sb.company, "resources": REALISTIC_RESOURCES, "latency": lat, "rate_limits": True}
    try:
        log(f"realistic: ours ({preset}, {', '.join(REALISTIC_RESOURCES)})")
        ours = run_pipeline(cli, sb, work, "bench_realistic", REALISTIC_RESOURCES, pacing=True)
        entries = sb.admin("GET", "requests")["requests"]
        tmin, n_data, n_v1, n_emp = theoretical_min_secs(entries)
        ours["data_requests"] = n_data
        ours["responses_429"] = sum(1 for e in entries if e["status"] == 429)
        ours["theoretical_min_secs"] = round(tmin, 2)
        ours["ratio_to_min"] = round(ours["wall_secs"] / tmin, 3) if tmin else None
        out["ours"] = ours
        log(f"realistic: ours {ours['wall_secs']} s for {n_data} data requests (min {tmin:.1f} s), {ours['responses_429']} x 429")
        if skip_dlt:
            out["dlt"] = {"skipped": "--skip-dlt"}
            return out
        problem = dlt_problem(venv, dlt_sources)
        if problem:
            out["dlt"] = {"skipped": problem}
            log(f"realistic: dlt skipped: {problem}")
            return out
        # The same server state for dlt: fresh buckets, the same latency sequence, an empty log.
        sb.admin("PUT", "rate-limits", {"enabled": True})
        sb.admin("PUT", "latency", lat)
        sb.admin("DELETE", "requests")
        log("realistic: dlt's personio source (fetches one page at a time)")
        r = measure([str(venv / "bin" / "python"), str(ROOT / "bench" / "dlt_personio.py"), "--base-url", sb.base,
                     "--sources-dir", str(dlt_sources), "--resources", ",".join(REALISTIC_RESOURCES),
                     "--workdir", str(work / "dlt")])
        entries = sb.admin("GET", "requests")["requests"]
        report = json.loads(r["stdout"].strip().splitlines()[-1])
        dlt_out = {
            "wall_secs": r["wall_secs"],
            "cpu_secs": r["cpu_secs"],
            "peak_rss_mib": r["peak_rss_mib"],
            "rows": report.get("rows"),
            "requests": len(entries),
            "data_requests": len(data_requests(entries)),
            "responses_429": sum(1 for e in entries if e["status"] == 429),
            "versions": report.get("versions"),
        }
        dlt_out["ratio_to_ours"] = round(dlt_out["wall_secs"] / ours["wall_secs"], 2)
        out["dlt"] = dlt_out
        log(f"realistic: dlt {dlt_out['wall_secs']} s, {dlt_out['data_requests']} data requests")
        return out
    finally:
        sb.close()
        shutil.rmtree(work, ignore_errors=True)


def dlt_problem(venv, sources):
    if not (venv / "bin" / "python").exists():
        return f"no virtualenv at {venv}"
    if not (sources / "personio" / "__init__.py").exists():
        return (f"dlt's personio verified source is not at {sources}/personio (it is not published on PyPI: "
                "copy sources/personio of dlt-hub/verified-sources there, see docs/performance.md)")
    return None


# ------------------------------------------------------------------ report


def machine():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("rustc") else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(), "rustc": rustc,
            "python": platform.python_version(), "commit": commit, "load_avg_at_start": os.getloadavg()[0]}


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(res):
    m = res["machine"]
    lines = [f"# Benchmark {res['date']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}; {m['rustc']}; commit {m['commit']}; "
             f"{res['build']} build{' (NOT release: CPU figures are not representative)' if res['build'] != 'release' else ''}. "
             f"One run of `bench/bench.py` (sections: {', '.join(res['sections'])}); load average at start "
             f"{m['load_avg_at_start']:.1f}.", ""]
    if "normalize" in res:
        lines += [f"## Normalizer (in memory, {res['build']} build)", "", "| records | shape | records/s |", "|---|---|---|"]
        for shape, r in res["normalize"].items():
            lines.append(f"| {fmt(r['records'])} | {shape} | {fmt(r['records_per_sec'])} |")
        lines.append("")
    if "engine" in res:
        e = res["engine"]
        lines += ["## Engine + DuckDB, synthetic employee-like records (bench_load)", "",
                  "| records | wall (s) | records/s | normalize (s) | load (s) | peak RSS normalize / load (MiB) |",
                  "|---|---|---|---|---|---|",
                  f"| {fmt(e['records'])} | {fmt(e['seconds'], 2)} | {fmt(e['records_per_sec'])} | {fmt(e['normalize_seconds'], 2)} | "
                  f"{fmt(e['load_seconds'], 2)} | {fmt(e['normalize_peak_rss_mib'])} / {fmt(e['load_peak_rss_mib'])} |", ""]
    if "lake" in res:
        lk = res["lake"]
        lines += [f"## Filesystem destination vs DuckDB on the same packages (bench_lake: {fmt(lk['records'])} employee-like "
                  "records + one child row each, merge; then an increment changing 1 %)", "",
                  "| destination | full load (s) | records/s | throughput vs DuckDB | increment 1 % (s) | vs DuckDB |",
                  "|---|---|---|---|---|---|"]
        labels = {"duckdb": "DuckDB", "filesystem-local": "filesystem, local folder (Delta)",
                  "filesystem-s3": "filesystem, s3:// on moto (loopback)"}
        for name, r in lk["destinations"].items():
            lines.append(f"| {labels.get(name, name)} | {fmt(r['full_load_seconds'], 2)} | {fmt(r['full_records_per_sec'])} | "
                         f"**{r['full_vs_duckdb']:.2f}×** | {fmt(r['increment_1pct_seconds'], 2)} | **{r['increment_vs_duckdb']:.2f}×** |")
        if "s3_skipped" in lk:
            lines.append(f"| filesystem, s3:// | not run: {lk['s3_skipped']} | | | | |")
        lines += ["", "Throughput vs DuckDB = DuckDB's load time ÷ this destination's (above 1: faster). moto is a Python S3 "
                  "emulator: its row shows the S3 path at volume, not a real S3's speed.", ""]
    if "full" in res:
        lines += ["## Full load into DuckDB, default resources, no latency, no pacing", "",
                  "| preset | requests | rows | wall (s) | rows/s | CPU (s) | peak RSS (MiB) | fetch floor (s) | wall / floor | "
                  "start+fetch / normalize tail / load / finish (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for preset, r in res["full"].items():
            f = r["full"]
            s = f["stages"]
            lines.append(
                f"| {preset} | {fmt(f['requests'])} | {fmt(f['rows'])} | {fmt(f['wall_secs'], 2)} | {fmt(f['rows_per_sec'])} | "
                f"{fmt(f['cpu_secs'], 1)} | {fmt(f['peak_rss_mib'])} | {fmt(f['floor']['seconds'], 2)} (×{f['floor']['concurrency']}) | "
                f"{fmt(f['ratio_to_floor'], 2)} | {fmt(s.get('start_and_fetch_secs'), 2)} / {fmt(s.get('normalize_tail_secs'), 2)} / "
                f"{fmt(s.get('load_secs'), 2)} / {fmt(s.get('finish_secs'), 2)} |")
        steps = {p: r["full"]["stages"].get("trace_steps_secs") for p, r in res["full"].items()}
        if any(steps.values()):
            lines += ["", "The engine's step times (trace.json; extract and normalize overlap): " + "; ".join(
                f"{p}: " + ", ".join(f"{k} {v:.2f} s" for k, v in st.items()) for p, st in steps.items() if st) + "."]
        lines += ["", "Rows appended while extracting (DuckDB's `load_during_extract`; the load step then completes them): " + "; ".join(
            f"{p}: {fmt(r['full'].get('early_rows', 0))} of {fmt(r['full']['rows'])}" for p, r in res["full"].items()) + "."]
        lines += ["", "Incremental run after 1 % of employees, absences and attendances changed (clock +1 h):", "",
                  "| preset | changed (employees / absences / attendances) | requests | of the full load's | wall (s) | of the full load's |",
                  "|---|---|---|---|---|---|"]
        for preset, r in res["full"].items():
            i = r["incremental"]
            c = i["changed"]
            lines.append(f"| {preset} | {c['employees']} / {c['absences']} / {c['attendances']} | {fmt(i['requests'])} | "
                         f"{fmt(100 * i['requests_vs_full'], 2)} % | {fmt(i['wall_secs'], 2)} | {fmt(100 * i['wall_vs_full'], 1)} % |")
        if "medium" in res["full"] and "large" in res["full"]:
            a, b = res["full"]["medium"]["full"]["peak_rss_mib"], res["full"]["large"]["full"]["peak_rss_mib"]
            lines += ["", f"Peak RSS `large` / `medium`: {fmt(b)} / {fmt(a)} MiB = **{b / a:.2f}×**."]
        lines.append("")
    if "realistic" in res:
        r = res["realistic"]
        o = r["ours"]
        lat = r["latency"]
        lines += [f"## Realistic tenant: `{r['preset']}`, {', '.join(r['resources'])}; latency {lat['mean_ms']} ms ± 50 % "
                  f"({100 * lat['tail_share']:.0f} % at {lat['tail_ms']} ms), Personio's rate limits on", "",
                  "| | data requests | wall (s) | requests ÷ allowed rate (s) | wall / minimum | 429s | CPU (s) | peak RSS (MiB) |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| personio-pipeline | {fmt(o['data_requests'])} | {fmt(o['wall_secs'], 2)} | {fmt(o['theoretical_min_secs'], 2)} | "
                  f"{fmt(o['ratio_to_min'], 2)} | {o['responses_429']} | {fmt(o['cpu_secs'], 1)} | {fmt(o['peak_rss_mib'])} |"]
        d = r.get("dlt", {})
        if "skipped" in d:
            lines += ["", f"dlt: not run ({d['skipped']})."]
        else:
            lines.append(f"| dlt personio source | {fmt(d['data_requests'])} | {fmt(d['wall_secs'], 2)} | | "
                         f"{fmt(d['wall_secs'] / o['theoretical_min_secs'] if o['theoretical_min_secs'] else None, 2)} | "
                         f"{d['responses_429']} | {fmt(d['cpu_secs'], 1)} | {fmt(d['peak_rss_mib'])} |")
            lines += ["", f"dlt / personio-pipeline wall time: **{d['ratio_to_ours']:.1f}×** ({d.get('versions')})."]
        if "early_rows" in o:
            lines += ["", f"Rows appended while extracting (DuckDB's `load_during_extract`): {fmt(o['early_rows'])} of {fmt(o.get('rows'))}."]
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", required=True, type=Path, help="folder of the release binaries (target/release)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--sections", default="normalize,engine,full,realistic")
    p.add_argument("--quick", action="store_true", help="small presets and counts (a smoke test, not a result)")
    p.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "personio-pipeline" / "bench-venv")
    p.add_argument("--dlt-sources", type=Path, default=Path(os.environ.get(
        "BENCH_DLT_SOURCES", Path.home() / ".cache" / "personio-pipeline" / "verified-sources")))
    p.add_argument("--skip-dlt", action="store_true")
    p.add_argument("--presets", default="medium,large", help="presets of the full-load section")
    p.add_argument("--lake-venv", type=Path, default=Path(os.environ.get(
        "LAKE_VENV", Path.home() / ".cache" / "personio-pipeline" / "lake-venv")), help="lake/setup.sh's venv (moto_server)")
    args = p.parse_args()
    bins = args.bin_dir.resolve()
    cli = bins / "personio-pipeline"
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    build = "release" if bins.name == "release" else "dev"
    res = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "machine": machine(), "build": build,
           "sections": sections, "quick": args.quick}
    args.out.mkdir(parents=True, exist_ok=True)
    sandbox_log = Path(tempfile.gettempdir()) / "personio-bench-sandbox.log"
    log(f"sandbox output: {sandbox_log}")
    with open(sandbox_log, "w") as logfile:
        if "normalize" in sections:
            log("normalizer")
            res["normalize"] = section_normalize(bins, args.quick)
        if "engine" in sections:
            log("engine + DuckDB synthetic load")
            res["engine"] = section_engine(bins, args.quick)
        if "lake" in sections:
            log("filesystem destination vs DuckDB on the same package")
            res["lake"] = section_lake(bins, args.quick, args.lake_venv)
        if "full" in sections:
            presets = ["tiny", "small"] if args.quick else [x.strip() for x in args.presets.split(",") if x.strip()]
            res["full"] = section_full(bins, cli, presets, logfile)
        if "realistic" in sections:
            res["realistic"] = section_realistic(bins, cli, "small" if args.quick else "medium", logfile, args.venv,
                                                 args.dlt_sources, args.skip_dlt)
    stem = ("quick-" if args.quick else "") + dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d") + ("" if build == "release" else "-dev")
    if sections == ["lake"]:
        stem = "lake-" + stem  # a lake-only run must not overwrite the day's full results
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (args.out / f"{stem}.md").write_text(md + "\n")
    print(md)
    log(f"wrote {args.out / (stem + '.json')} and .md")


if __name__ == "__main__":
    main()
