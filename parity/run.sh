#!/usr/bin/env bash
# dlt parity check: load every fixture case, run by run, through real dlt and through the Rust engine,
# and compare the two DuckDB datasets after every run. See docs/parity.md.
#
# usage: bash parity/run.sh [MODE] [CASE ...]
#   (no mode)          dlt vs Rust (the check CI runs)
#   --self-test        dlt vs dlt, plus planted differences that compare.py must catch (no cargo)
#   --write-expected   run dlt only and rewrite parity/expected/<case>.txt
#   CASE ...           only these cases (folder names under parity/fixtures/); default all
#
# environment:
#   PARITY_VENV       virtualenv to create/use (default ~/.cache/personio-pipeline/parity-venv)
#   PARITY_KEEP=1     keep the work folder with both DuckDB files of every case (path is printed)
#   CARGO_TARGET_DIR  respected by cargo as usual
#   PARITY_LOADER     a prebuilt load_fixtures binary to use instead of `cargo run`
# Exit status: 0 when every check passed, 1 otherwise (including a failed dlt install: never skipped).
set -euo pipefail

PARITY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$PARITY_DIR")"
VENV="${PARITY_VENV:-$HOME/.cache/personio-pipeline/parity-venv}"
REQS="$PARITY_DIR/requirements.txt"
DATASET="parity_data"

die() { echo "parity: ERROR: $*" >&2; exit 1; }

mode=compare
cases=()
for arg in "$@"; do
  case "$arg" in
    --self-test) mode=self-test ;;
    --write-expected) mode=write-expected ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown option $arg" ;;
    *) cases+=("$arg") ;;
  esac
done

# --- 1. the Python side: a venv with the pinned dlt and duckdb ---------------------------------------
ensure_venv() {
  command -v python3 >/dev/null 2>&1 || die "python3 not found; it is needed to install dlt"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "parity: creating virtualenv $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  fi
  local stamp="$VENV/.parity-requirements.txt"
  if ! cmp -s "$REQS" "$stamp"; then
    echo "parity: installing $(grep -v '^#' "$REQS" | xargs) into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS" \
      || die "pip install -r $REQS failed: cannot run the dlt parity check"
    cp "$REQS" "$stamp"
  fi
  # The installed versions must be the pinned ones, whatever the stamp says.
  "$VENV/bin/python" - "$REQS" <<'PY' || die "the virtualenv $VENV does not hold the pinned versions (delete it to reinstall)"
import re, sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#;]+)", line)
    if not m:
        continue
    name, want = m.group(1), m.group(3)
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        bad.append(f"{name}: want {want}, have {have}")
import dlt, duckdb  # noqa: F401  (must import)
if bad:
    sys.exit("; ".join(bad))
PY
}
ensure_venv
PY="$VENV/bin/python"
echo "parity: $("$PY" -c 'import dlt, duckdb; print(f"dlt {dlt.__version__}, duckdb {duckdb.__version__}")')"

if [ "$mode" = self-test ]; then
  nice -n 15 "$PY" "$PARITY_DIR/compare.py" --self-test
  exit $?
fi

# --- 2. cases --------------------------------------------------------------------------------------
if [ ${#cases[@]} -eq 0 ]; then
  for d in "$PARITY_DIR"/fixtures/*/; do
    [ -f "$d/resources.json" ] && cases+=("$(basename "$d")")
  done
fi
[ ${#cases[@]} -gt 0 ] || die "no fixture cases under $PARITY_DIR/fixtures"
for c in "${cases[@]}"; do
  [ -f "$PARITY_DIR/fixtures/$c/resources.json" ] || die "no such case: $c"
done

runs_of() {  # run numbers of a case, ascending
  local c="$1"
  for d in "$PARITY_DIR/fixtures/$c"/run*/; do
    d="$(basename "$d")"; echo "${d#run}"
  done | sort -n
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/parity.XXXXXX")"
if [ "${PARITY_KEEP:-0}" = 1 ]; then
  echo "parity: keeping work folder $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi

# --- 3. the Rust side: build once, so a build failure is reported as such ---------------------------
# PARITY_LOADER: a prebuilt load_fixtures binary (.ci/run passes the one `cargo test --workspace` built, so
# no second feature resolution can trigger another DuckDB compile).
if [ -n "${PARITY_LOADER:-}" ]; then
  [ -x "$PARITY_LOADER" ] || die "PARITY_LOADER=$PARITY_LOADER is not an executable"
  RUST_LOADER=("$PARITY_LOADER")
  echo "parity: using the prebuilt Rust loader $PARITY_LOADER"
else
RUST_LOADER=(cargo run -q -p pipeline-destinations --example load_fixtures --)
fi
if [ "$mode" = compare ] && [ -z "${PARITY_LOADER:-}" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found"
  echo "parity: building the Rust example load_fixtures (CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-<default>})"
  (cd "$REPO_DIR" && nice -n 15 cargo build -q -p pipeline-destinations --example load_fixtures) \
    || die "cargo build of pipeline-destinations --example load_fixtures failed"
fi

load_dlt() {  # case run db workdir log
  nice -n 15 "$PY" "$PARITY_DIR/dlt_load.py" --fixtures "$PARITY_DIR/fixtures/$1" --run "$2" \
    --duckdb "$3" --pipeline-name "parity_$1" --dataset "$DATASET" --workdir "$4" >>"$5" 2>&1
}
load_rust() {  # case run db workdir log
  (cd "$REPO_DIR" && nice -n 15 "${RUST_LOADER[@]}" --fixtures "$PARITY_DIR/fixtures/$1" --run "$2" \
    --duckdb "$3" --pipeline-name "parity_$1" --dataset "$DATASET" --workdir "$4") >>"$5" 2>&1
}

passed=0
failed=0
for c in "${cases[@]}"; do
  mkdir -p "$WORK/$c/dlt" "$WORK/$c/rust"
  dlt_db="$WORK/$c/dlt/parity_$c.duckdb"
  rust_db="$WORK/$c/rust/parity_$c.duckdb"
  if [ "$mode" = write-expected ]; then
    mkdir -p "$PARITY_DIR/expected"
    out="$PARITY_DIR/expected/$c.txt"
    {
      echo "# parity/expected/$c.txt: what dlt wrote for fixture case '$c', after each run."
      echo "# Generated by 'bash parity/run.sh --write-expected' with $("$PY" -c 'import dlt, duckdb; print(f"dlt {dlt.__version__}, duckdb {duckdb.__version__}")')."
      echo "# Columns are in DuckDB ordinal order (information_schema.columns); only their set is compared."
    } >"$out"
    for n in $(runs_of "$c"); do
      load_dlt "$c" "$n" "$dlt_db" "$WORK/$c/dlt/work" "$WORK/$c/dlt.log" \
        || { cat "$WORK/$c/dlt.log" >&2; die "dlt failed on $c/run$n"; }
      { echo; echo "=== after run$n ==="; "$PY" "$PARITY_DIR/compare.py" --dump "$dlt_db" --dataset "$DATASET" --case-dir "$PARITY_DIR/fixtures/$c"; } >>"$out"
    done
    echo "parity: wrote $out"
    passed=$((passed + 1))
    continue
  fi
  case_ok=1
  for n in $(runs_of "$c"); do
    label="$c/run$n"
    if ! load_dlt "$c" "$n" "$dlt_db" "$WORK/$c/dlt/work" "$WORK/$c/dlt.log"; then
      echo "parity: [$label] dlt FAILED to load (a fixture or dlt_load.py problem):" >&2
      tail -n 40 "$WORK/$c/dlt.log" >&2
      failed=$((failed + 1)); case_ok=0; break
    fi
    if ! load_rust "$c" "$n" "$rust_db" "$WORK/$c/rust/work" "$WORK/$c/rust.log"; then
      echo "parity: [$label] the Rust example FAILED to load:" >&2
      tail -n 40 "$WORK/$c/rust.log" >&2
      failed=$((failed + 1)); case_ok=0; break
    fi
    if "$PY" "$PARITY_DIR/compare.py" --dlt "$dlt_db" --rust "$rust_db" --dataset "$DATASET" \
         --case-dir "$PARITY_DIR/fixtures/$c" --label "$label"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); case_ok=0
    fi
  done
  [ "$case_ok" = 1 ] || echo "parity: case $c FAILED (logs: $WORK/$c/*.log; PARITY_KEEP=1 keeps them)"
done

if [ "$mode" = write-expected ]; then
  echo "parity: expected files written for $passed case(s)"
  exit 0
fi
echo "parity: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
