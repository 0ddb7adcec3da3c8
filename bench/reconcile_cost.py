#!/usr/bin/env python3
"""The request cost of reconciliations (deletion detection, docs/deletions.md) on a sandbox company.

    python3 bench/reconcile_cost.py --cli "$CARGO_TARGET_DIR/debug/personio-pipeline" [--preset medium]

1. a full load of every resource that can be reconciled (plus the replace list the report rows hang off):
   its reconciliations ride on the extract and cost no request;
2. 1 % of the company changed (`POST /_sandbox/mutate`), an incremental run without reconciliation: the
   baseline;
3. the same again with `--reconcile`: every resource's key listing; the run report says what each cost
   (every attempt the client sent), the sandbox's request log confirms the total.

Pacing is off (the sandbox enforces no limits), so the numbers are requests, not waiting. Writes
bench/results/<date>-reconcile-<preset>.{json,md}.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Sandbox, log, measure, pipeline_env  # noqa: E402

RESOURCES = [
    "employees",
    "employees_absences_balance",
    "absences",
    "attendances",
    "attendance_periods",
    "custom_reports_list",
    "custom_reports",
    "persons",
    "employments",
    "absence_periods",
]


def run(cli, sb, work, extra):
    sb.admin("DELETE", "requests")
    args = [str(cli), "--json", "--project-dir", str(work), "run", "--pipeline-name", "cost", "--allow-retired-v1",
            "--resources", ",".join(RESOURCES), *extra]
    r = measure(args, env=pipeline_env(sb.base, work / "pipelines", pacing=False), cwd=work)
    report = json.loads(r["stdout"])
    counts = sb.admin("GET", "requests/counts")
    return {"wall_secs": r["wall_secs"], "requests": counts["total"], "by_status": counts.get("by_status", {}),
            "reconciliations": report.get("reconciliations", []), "rows": report.get("rows", {})}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True, help="the personio-pipeline binary")
    p.add_argument("--preset", default="medium")
    p.add_argument("--out", default=None, help="output stem (default bench/results/<date>-reconcile-<preset>)")
    a = p.parse_args()
    stem = Path(a.out or f"bench/results/{time.strftime('%Y-%m-%d')}-reconcile-{a.preset}")
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "sandbox.log", "w") as sblog:
        work = Path(tmp)
        sb = Sandbox(a.cli, a.preset, [], sblog)
        try:
            sb.admin("POST", "warm")
            truth = sb.admin("GET", "truth")
            sizes = {k: len(truth[k]) for k in ("employees", "absences", "attendances", "attendance_periods", "persons", "absence_periods")}
            log(f"full load of {', '.join(RESOURCES)}")
            full = run(a.cli, sb, work, [])
            sb.admin("POST", "clock/advance", {"hours": 2})
            mutated = sb.admin("POST", "mutate", {"share": 0.01})
            log(f"1 % changed: {mutated}; incremental without reconciliation")
            incremental = run(a.cli, sb, work, [])
            log("incremental with --reconcile")
            reconciled = run(a.cli, sb, work, ["--reconcile"])
        finally:
            sb.close()
    res = {"preset": a.preset, "company": sb.company, "sizes": sizes, "mutated": mutated,
           "full": full, "incremental": incremental, "reconciled": reconciled,
           "key_listing_requests": sum(r["requests"] for r in reconciled["reconciliations"])}
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2))
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))


def markdown(res):
    lines = [
        f"# Reconciliation request cost, `{res['preset']}` ({time.strftime('%Y-%m-%d')})",
        "",
        f"Company: {res['company']}; sizes {res['sizes']}. Pacing off; every attempt counted.",
        "",
        f"* full load of the reconcilable resources: {res['full']['requests']} requests "
        f"({res['full']['wall_secs']} s); its reconciliations cost "
        f"{sum(r['requests'] for r in res['full']['reconciliations'])} extra requests;",
        f"* incremental after 1 % changed ({res['mutated']}): {res['incremental']['requests']} requests;",
        f"* incremental with `--reconcile` (no change since): {res['reconciled']['requests']} requests, "
        f"{res['reconciled']['wall_secs']} s.",
        "",
        "| resource | status | keys | extra requests | rows deleted |",
        "|---|---|---|---|---|",
    ]
    for r in res["reconciled"]["reconciliations"]:
        lines.append(f"| `{r['resource']}` | {r['status']} | {r['keys']} | {r['requests']} | {r['rows']} |")
    total = sum(r["requests"] for r in res["reconciled"]["reconciliations"])
    lines += ["", f"Sum of the key listings: {total} requests.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
