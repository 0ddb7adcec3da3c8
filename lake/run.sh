#!/usr/bin/env bash
# The lake reader check: `personio-pipeline run --demo --destination filesystem` into a local path and into
# s3:// on moto's S3 server (started on loopback, stopped at the end), then pyarrow, Python deltalake and
# PySpark (local mode) must read exactly the rows of the same demo loaded into DuckDB; then changed
# employees between two runs leave one row per employee in the Delta table, and a fresh working directory
# resumes from the bucket's state. See docs/lake.md and lake/check.py's docstring.
#
# usage: bash lake/run.sh
#
# environment:
#   LAKE_BIN          the personio-pipeline binary (default: $CARGO_TARGET_DIR/debug/personio-pipeline, what
#                     `cargo test --workspace` builds; built with `cargo build --workspace` when missing)
#   LAKE_VENV         virtualenv (default ~/.cache/personio-pipeline/lake-venv; created by lake/setup.sh)
#   LAKE_KEEP=1       keep the work folder (both lakes, the DuckDB files, logs; its path is printed)
#   CARGO_TARGET_DIR  respected as usual
# Exit status: 0 when every reader sees the reference's rows, 1 on a difference, 2 when the check cannot
# run (no binary, no Java, failed install, a server that does not start): never skipped.
set -euo pipefail

LAKE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$LAKE_DIR")"
VENV="${LAKE_VENV:-$HOME/.cache/personio-pipeline/lake-venv}"
TARGET="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
start=$(date +%s)

die() { echo "lake: ERROR: $*" >&2; exit 2; }

case "${1:-}" in -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;; esac

# --- 1. the readers (idempotent: a second call only verifies the pinned versions) ---------------------
LAKE_VENV="$VENV" bash "$LAKE_DIR/setup.sh" || die "lake/setup.sh failed"
command -v java >/dev/null 2>&1 || die "java not found: PySpark needs Java 17 (apt-get install openjdk-17-jre-headless)"

# --- 2. the CLI binary ----------------------------------------------------------------------------------
bin="${LAKE_BIN:-$TARGET/debug/personio-pipeline}"
if [ ! -x "$bin" ] && [ -z "${LAKE_BIN:-}" ]; then
  command -v cargo >/dev/null 2>&1 || die "no binary at $bin and no cargo to build it (set LAKE_BIN)"
  echo "lake: building the workspace (CARGO_TARGET_DIR=$TARGET)"
  (cd "$REPO_DIR" && CARGO_TARGET_DIR="$TARGET" nice -n 10 cargo build --workspace -q) || die "cargo build --workspace failed"
fi
[ -x "$bin" ] || die "LAKE_BIN=$bin is not an executable"
echo "lake: binary $bin"

# --- 3. the check ------------------------------------------------------------------------------------------
args=(--bin "$bin" --moto "$VENV/bin/moto_server")
if [ "${LAKE_KEEP:-}" = 1 ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/lake-check-XXXXXX")"
  args+=(--work "$work" --keep)
fi
rc=0
"$VENV/bin/python" "$LAKE_DIR/check.py" "${args[@]}" || rc=$?
echo "lake check (setup + runs + readers) took $(( $(date +%s) - start ))s"
exit "$rc"
