#!/usr/bin/env bash
# dlt parity check: load every fixture case, run by run, through real dlt and through the Rust engine,
# and compare the two datasets after every run, on DuckDB and on PostgreSQL. See docs/parity.md.
#
# usage: bash parity/run.sh [--destination duckdb|postgres] [MODE] [CASE ...]
#   (no mode)          dlt vs Rust (the check CI runs), on every destination unless --destination
#   --destination D    only destination D (repeatable); default: duckdb and postgres
#   --self-test        dlt vs dlt, plus planted differences that compare.py must catch (no cargo; DuckDB)
#   --write-expected   run dlt only and rewrite parity/expected/<case>.txt (DuckDB)
#   CASE ...           only these cases (folder names under parity/fixtures/); default all
#
# environment:
#   PARITY_VENV       virtualenv to create/use (default ~/.cache/personio-pipeline/parity-venv)
#   PARITY_KEEP=1     keep the work folder with both DuckDB files of every case, and the PostgreSQL
#                     databases (their names are printed)
#   PARITY_POSTGRES   PostgreSQL server to use, as a connection string to a database the user may
#                     CREATE DATABASE from (default postgresql://postgres@127.0.0.1:5432/test)
#   CARGO_TARGET_DIR  respected by cargo as usual
#   PARITY_LOADER     a prebuilt load_fixtures binary to use instead of `cargo run`
# Exit status: 0 when every check passed, 1 otherwise (including a failed dlt install or an unreachable
# PostgreSQL: never skipped).
set -euo pipefail

PARITY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$PARITY_DIR")"
VENV="${PARITY_VENV:-$HOME/.cache/personio-pipeline/parity-venv}"
REQS="$PARITY_DIR/requirements.txt"
DATASET="parity_data"

die() { echo "parity: ERROR: $*" >&2; exit 1; }

mode=compare
cases=()
destinations=()
want_destination=0
for arg in "$@"; do
  if [ "$want_destination" = 1 ]; then
    case "$arg" in
      duckdb|postgres) destinations+=("$arg") ;;
      *) die "unknown destination $arg (duckdb or postgres)" ;;
    esac
    want_destination=0
    continue
  fi
  case "$arg" in
    --self-test) mode=self-test ;;
    --write-expected) mode=write-expected ;;
    --destination) want_destination=1 ;;
    --destination=*)
      d="${arg#--destination=}"
      [[ "$d" =~ ^(duckdb|postgres)$ ]] || die "unknown destination $d (duckdb or postgres)"
      destinations+=("$d") ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown option $arg" ;;
    *) cases+=("$arg") ;;
  esac
done
[ "$want_destination" = 0 ] || die "--destination needs a value (duckdb or postgres)"
if [ ${#destinations[@]} -eq 0 ]; then
  if [ "$mode" = compare ]; then destinations=(duckdb postgres); else destinations=(duckdb); fi
fi
if [ "$mode" != compare ] && [[ " ${destinations[*]} " == *" postgres "* ]]; then
  die "--self-test and --write-expected run on DuckDB only"
fi

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
import dlt, duckdb, psycopg2  # noqa: F401  (must import)
if bad:
    sys.exit("; ".join(bad))
PY
}
ensure_venv
PY="$VENV/bin/python"
echo "parity: $("$PY" -c 'import dlt, duckdb, psycopg2; print(f"dlt {dlt.__version__}, duckdb {duckdb.__version__}, psycopg2 {psycopg2.__version__.split()[0]}")')"

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
[ "${PARITY_KEEP:-0}" = 1 ] && echo "parity: keeping work folder $WORK"
trap '[ "${PARITY_KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT

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

# `where` below is a DuckDB file, or a PostgreSQL connection string (`postgresql://…`).
where_flag() { case "$1" in postgresql://*) echo --postgres ;; *) echo --duckdb ;; esac; }
load_dlt() {  # case run where workdir log
  nice -n 15 "$PY" "$PARITY_DIR/dlt_load.py" --fixtures "$PARITY_DIR/fixtures/$1" --run "$2" \
    "$(where_flag "$3")" "$(dlt_where "$3")" --pipeline-name "parity_$1" --dataset "$DATASET" --workdir "$4" >>"$5" 2>&1
}
load_rust() {  # case run where workdir log
  (cd "$REPO_DIR" && nice -n 15 "${RUST_LOADER[@]}" --fixtures "$PARITY_DIR/fixtures/$1" --run "$2" \
    "$(where_flag "$3")" "$3" --pipeline-name "parity_$1" --dataset "$DATASET" --workdir "$4") >>"$5" 2>&1
}

# --- 4. PostgreSQL: one database per case and side, created here and dropped at the end -------------
PG_ADMIN="${PARITY_POSTGRES:-postgresql://postgres@127.0.0.1:5432/test}"
PG_QUERY=""
[[ "$PG_ADMIN" == *\?* ]] && PG_QUERY="?${PG_ADMIN#*\?}"
PG_BASE="${PG_ADMIN%%\?*}"
PG_BASE="${PG_BASE%/*}"  # postgresql://user[:password]@host:port
PG_PREFIX="parity_$$_"
PG_DATABASES=()
pg_url() { echo "$PG_BASE/$1$PG_QUERY"; }
# dlt refuses PostgreSQL credentials without a password; trust authentication ignores the one added here.
dlt_where() {
  case "$1" in
    postgresql://*@*)
      local rest user
      rest="${1#postgresql://}"
      user="${rest%%@*}"
      if [[ "$user" == *:* ]]; then echo "$1"; else echo "postgresql://$user:parity@${rest#*@}"; fi ;;
    *) echo "$1" ;;
  esac
}
pg_admin() {  # create|drop NAME...
  "$PY" - "$PG_ADMIN" "$@" <<'PY'
import sys
import psycopg2
admin, action, names = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    con = psycopg2.connect(admin)
except psycopg2.Error as e:
    sys.exit(f"cannot connect to PostgreSQL ({e}); start it (127.0.0.1:5432, database test) or set PARITY_POSTGRES")
con.autocommit = True
cur = con.cursor()
for name in names:
    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if action == "create":
        cur.execute(f'CREATE DATABASE "{name}"')
PY
}
pg_cleanup() {
  if [ ${#PG_DATABASES[@]} -gt 0 ]; then
    if [ "${PARITY_KEEP:-0}" = 1 ]; then
      echo "parity: keeping PostgreSQL databases ${PG_DATABASES[*]}"
    else
      pg_admin drop "${PG_DATABASES[@]}" || echo "parity: could not drop the databases ${PG_DATABASES[*]}" >&2
    fi
  fi
  if [ "${PARITY_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap pg_cleanup EXIT

total_passed=0
total_failed=0
summaries=()
for dest in "${destinations[@]}"; do
dest_start=$(date +%s)
passed=0
failed=0
if [ "$dest" = postgres ]; then
  echo "parity: PostgreSQL: databases ${PG_PREFIX}<case>_dlt and ${PG_PREFIX}<case>_rust on ${PG_BASE##*@}"
  pg_admin create || die "PostgreSQL is needed for the postgres parity check"
fi
for c in "${cases[@]}"; do
  mkdir -p "$WORK/$dest/$c/dlt" "$WORK/$dest/$c/rust"
  if [ "$dest" = postgres ]; then
    dlt_db="$(pg_url "${PG_PREFIX}${c}_dlt")"
    rust_db="$(pg_url "${PG_PREFIX}${c}_rust")"
    PG_DATABASES+=("${PG_PREFIX}${c}_dlt" "${PG_PREFIX}${c}_rust")
    if ! pg_admin create "${PG_PREFIX}${c}_dlt" "${PG_PREFIX}${c}_rust"; then
      failed=$((failed + 1))
      echo "parity: [postgres $c] cannot create the case's databases" >&2
      break
    fi
  else
    dlt_db="$WORK/$dest/$c/dlt/parity_$c.duckdb"
    rust_db="$WORK/$dest/$c/rust/parity_$c.duckdb"
  fi
  W="$WORK/$dest/$c"
  if [ "$mode" = write-expected ]; then
    mkdir -p "$PARITY_DIR/expected"
    out="$PARITY_DIR/expected/$c.txt"
    {
      echo "# parity/expected/$c.txt: what dlt wrote for fixture case '$c', after each run."
      echo "# Generated by 'bash parity/run.sh --write-expected' with $("$PY" -c 'import dlt, duckdb; print(f"dlt {dlt.__version__}, duckdb {duckdb.__version__}")')."
      echo "# Columns are in DuckDB ordinal order (information_schema.columns); only their set is compared."
    } >"$out"
    for n in $(runs_of "$c"); do
      load_dlt "$c" "$n" "$dlt_db" "$W/dlt/work" "$W/dlt.log" \
        || { cat "$W/dlt.log" >&2; die "dlt failed on $c/run$n"; }
      { echo; echo "=== after run$n ==="; "$PY" "$PARITY_DIR/compare.py" --dump "$dlt_db" --dataset "$DATASET" --case-dir "$PARITY_DIR/fixtures/$c"; } >>"$out"
    done
    echo "parity: wrote $out"
    passed=$((passed + 1))
    continue
  fi
  case_ok=1
  for n in $(runs_of "$c"); do
    label="$dest $c/run$n"
    if ! load_dlt "$c" "$n" "$dlt_db" "$W/dlt/work" "$W/dlt.log"; then
      echo "parity: [$label] dlt FAILED to load (a fixture or dlt_load.py problem):" >&2
      tail -n 40 "$W/dlt.log" >&2
      failed=$((failed + 1)); case_ok=0; break
    fi
    if ! load_rust "$c" "$n" "$rust_db" "$W/rust/work" "$W/rust.log"; then
      echo "parity: [$label] the Rust example FAILED to load:" >&2
      tail -n 40 "$W/rust.log" >&2
      failed=$((failed + 1)); case_ok=0; break
    fi
    if "$PY" "$PARITY_DIR/compare.py" --dlt "$dlt_db" --rust "$rust_db" --dataset "$DATASET" \
         --case-dir "$PARITY_DIR/fixtures/$c" --label "$label"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); case_ok=0
    fi
  done
  [ "$case_ok" = 1 ] || echo "parity: case $c on $dest FAILED (logs: $W/*.log; PARITY_KEEP=1 keeps them)"
done
if [ "$mode" = write-expected ]; then
  echo "parity: expected files written for $passed case(s)"
  exit 0
fi
summaries+=("$(printf '%-8s %3d passed, %d failed in %ds' "$dest" "$passed" "$failed" "$(( $(date +%s) - dest_start ))")")
total_passed=$((total_passed + passed))
total_failed=$((total_failed + failed))
done

for line in "${summaries[@]}"; do echo "parity: $line"; done
echo "parity: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
