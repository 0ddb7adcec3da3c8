#!/usr/bin/env bash
# Benchmarks, one run on this machine; quote the printed numbers as ratios.
#   bash bench/run.sh [records...]     engine+DuckDB load: throughput and peak RSS per record count
#   sandbox serving rate:              cargo bench -p personio-sandbox (see docs/sandbox.md)
# PROFILE=release (default dev, the profile CI builds) selects the cargo profile.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/personio-pipeline/target}"
profile_flag=()
[ "${PROFILE:-dev}" = release ] && profile_flag=(--release)
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000000 5000000)
for n in "${counts[@]}"; do
  cargo run -q "${profile_flag[@]}" -p pipeline-destinations --example bench_load -- "$n"
done
