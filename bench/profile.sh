#!/usr/bin/env bash
# CPU profile of one full load (release build), as docs/performance.md#profile-findings reports it:
#   bash bench/profile.sh [preset] [resources]     default: large, the default resource set
# Starts the sandbox (its own process, v2 records rendered first), records `personio-pipeline run` with
# `perf record -e cpu-clock -g` (Debian: apt-get install linux-perf; software clock, so it works where
# hardware counters are not exposed), and prints the hottest symbols, self time, of the pipeline process
# and of its normalizer and load threads. perf.data and the full report stay in $OUT (printed).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-large}"
resources="${2:-}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/personio-pipeline/target}/release"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/pp-profile.XXXXXX")"
command -v perf >/dev/null || { echo "profile: perf not found (apt-get install linux-perf)" >&2; exit 1; }
[ -x "$BIN/personio-pipeline" ] || { echo "profile: no release build in $BIN (bash bench/run.sh builds it)" >&2; exit 1; }

. bench/sandbox.sh
start_sandbox "$BIN/personio-pipeline" "$preset" "$OUT"
export PERSONIO_PIPELINES_DIR="$OUT/pipelines"
args=(--json --project-dir "$OUT" run --pipeline-name profile)
# CALLGRAPH=dwarf: call graphs through Rust code built without frame pointers (larger perf.data; use
# `perf report --children` for inclusive shares). The default samples frame pointers only.
graph=(-F 999 -g)
[ "${CALLGRAPH:-}" = dwarf ] && graph=(-F 499 --call-graph dwarf,24576)
if [ -n "$resources" ]; then
  args+=(--resources "$resources")
  case ",$resources," in *,attendances,*) args+=(--allow-retired-v1) ;; esac
fi
perf record -e cpu-clock "${graph[@]}" -o "$OUT/perf.data" -- "$BIN/personio-pipeline" "${args[@]}" >"$OUT/run.json" 2>"$OUT/perf-record.log"
perf report -i "$OUT/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null >"$OUT/report.txt"
echo "profile: $preset, $(grep -c . "$OUT/run.json") lines of run report; perf data and full report in $OUT" >&2
grep -v '^#' "$OUT/report.txt" | grep -E '^ +[0-9]' | head -40
