#!/usr/bin/env bash
# Benchmarks: one command, one run on this machine, results in bench/results/<date>.{json,md}
# (docs/performance.md explains every number).
#
#   bash bench/run.sh [--quick] [--sections normalize,engine,full,realistic] [--skip-dlt]
#       1. builds the release binaries with the workspace's one feature set
#          (`cargo build --release --workspace --examples --bins`; the first build compiles DuckDB, ~45 min);
#       2. creates ~/.cache/personio-pipeline/bench-venv once (dlt and duckdb pinned as in
#          parity/requirements.txt) for the dlt comparison;
#       3. runs bench/bench.py: normalizer records/s, the engine + DuckDB synthetic load, full loads of the
#          `medium` and `large` sandbox companies with the raw-fetch floor and an incremental run, and the
#          realistic tenant (300 ms latency, Personio's rate limits) against dlt's personio source.
#       --quick runs small presets (a smoke test; written as quick-<date>.*).
#
#   bash bench/run.sh load [records...]
#       only the engine + DuckDB load of synthetic records (bench_load): throughput and peak RSS per phase;
#       PROFILE=release for release builds (default: the dev profile `cargo test --workspace` builds).
#
# dlt's personio source is not on PyPI: put sources/personio of dlt-hub/verified-sources (GitHub) in
# ~/.cache/personio-pipeline/verified-sources/personio, or point BENCH_DLT_SOURCES at the folder holding
# personio/. Without it the dlt column says why it was not run.
# Environment: CARGO_TARGET_DIR (default ~/.cache/personio-pipeline/target), BENCH_VENV, BENCH_DLT_SOURCES.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/personio-pipeline/target}"

if [ "${1:-}" = load ]; then
  shift
  if [ "${PROFILE:-dev}" = release ]; then
    cargo build -q --release --workspace --examples --bins
    dir=release
  else
    cargo test -q --workspace --no-run
    dir=debug
  fi
  counts=("$@")
  [ ${#counts[@]} -gt 0 ] || counts=(1000000 5000000)
  for n in "${counts[@]}"; do
    "$CARGO_TARGET_DIR/$dir/examples/bench_load" "$n"
  done
  exit 0
fi

echo "bench: building release binaries in $CARGO_TARGET_DIR" >&2
cargo build -q --release --workspace --examples --bins

VENV="${BENCH_VENV:-$HOME/.cache/personio-pipeline/bench-venv}"
REQS=parity/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
  echo "bench: creating virtualenv $VENV" >&2
  python3 -m venv "$VENV"
fi
if ! cmp -s "$REQS" "$VENV/.bench-requirements.txt"; then
  echo "bench: installing $(grep -v '^#' "$REQS" | xargs) into $VENV" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS"
  cp "$REQS" "$VENV/.bench-requirements.txt"
fi

exec python3 bench/bench.py --bin-dir "$CARGO_TARGET_DIR/release" --venv "$VENV" "$@"
