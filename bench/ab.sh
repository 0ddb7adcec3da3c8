#!/usr/bin/env bash
# Interleaved A/B of full loads: the same preset loaded by each binary in turn, RUNS rounds, against one
# sandbox (started from the first binary, v2 records rendered first), client-side pacing off:
#   bash bench/ab.sh PRESET RUNS BIN_A BIN_B ...      e.g. bash bench/ab.sh medium 4 /tmp/a/personio-pipeline target/release/personio-pipeline
# Prints per run: wall, CPU (user+system), peak RSS, the sandbox's CPU during the run, and the rows loaded.
# Ratios between binaries from interleaved runs are what docs/performance.md quotes as "A/B".
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,5p "$0" >&2; exit 2; }
preset=$1; runs=$2; shift 2
bins=("$@")
OUT=$(mktemp -d "${TMPDIR:-/tmp}/pp-ab.XXXXXX")
. "$(dirname "$0")/sandbox.sh"
start_sandbox "${bins[0]}" "$preset" "$OUT"
tck=$(getconf CLK_TCK)
sandbox_ticks() { awk '{print $14 + $15}' "/proc/$sb/stat"; }
for r in $(seq 1 "$runs"); do
  i=0
  for b in "${bins[@]}"; do
    i=$((i + 1))
    d="$OUT/run$r-bin$i"
    mkdir -p "$d"
    s0=$(sandbox_ticks)
    if ! /usr/bin/time -f "%e %U %S %M" -o "$d/time" env PERSONIO_PIPELINES_DIR="$d/pipelines" \
        "$b" --json --project-dir "$d" run --pipeline-name ab >"$d/run.json" 2>"$d/err"; then
      echo "run $r bin $i: failed ($d/err)"; continue
    fi
    s1=$(sandbox_ticks)
    read -r wall user sys rss_kib <"$d/time"
    rows=$(python3 -c 'import json,sys; print(sum(json.load(open(sys.argv[1])).get("rows", {}).values()))' "$d/run.json" 2>/dev/null || echo "?")
    python3 -c 'import sys; w,u,s,m,s0,s1,t,r=sys.argv[1:9]; print(f"run {sys.argv[9]} bin {sys.argv[10]}: wall {float(w):.2f} s  cpu {float(u)+float(s):.2f} s  rss {int(m)//1024} MiB  sandbox cpu {(int(s1)-int(s0))/int(t):.2f} s  rows {r}")' \
      "$wall" "$user" "$sys" "$rss_kib" "$s0" "$s1" "$tck" "$rows" "$r" "$i"
  done
done
