#!/usr/bin/env bash
# Benchmarks, one run on this machine; quote the printed numbers as ratios.
#   bash bench/run.sh [records...]   engine + DuckDB load of synthetic records: throughput and peak RSS
#   sandbox serving rate:            cargo bench -p personio-sandbox (see docs/sandbox.md)
# PROFILE=release selects release builds (default: the dev profile CI builds, which shares its DuckDB).
# The example is built by `cargo test --workspace --no-run`, the feature resolution CI uses: a
# `cargo run -p …` resolves features for one package and would compile DuckDB a second time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/personio-pipeline/target}"
if [ "${PROFILE:-dev}" = release ]; then flag=(--release); dir=release; else flag=(); dir=debug; fi
cargo test -q --workspace "${flag[@]}" --no-run
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000000 5000000)
for n in "${counts[@]}"; do
  "$CARGO_TARGET_DIR/$dir/examples/bench_load" "$n"
done
