#!/usr/bin/env bash
# Create (or reuse) the lake virtualenv: moto's S3 server for the filesystem destination's S3 tests, and the
# readers of the lake check (pyarrow, deltalake, PySpark, DuckDB), pinned by lake/requirements.txt.
# Idempotent: a stamp file in the venv records the installed requirements; a rerun with the same file only
# verifies the versions (about a second). See docs/lake.md.
#
# usage: bash lake/setup.sh
#
# environment:
#   LAKE_VENV   virtualenv to create/use (default ~/.cache/personio-pipeline/lake-venv). The Rust S3 tests
#               start $LAKE_VENV/bin/moto_server.
# Exit status: 0 when the venv holds the pinned versions, 1 otherwise (never skipped).
set -euo pipefail

LAKE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LAKE_VENV:-$HOME/.cache/personio-pipeline/lake-venv}"
REQS="$LAKE_DIR/requirements.txt"
start=$(date +%s)

die() { echo "lake setup: ERROR: $*" >&2; exit 1; }

case "${1:-}" in -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;; esac

command -v python3 >/dev/null 2>&1 || die "python3 not found; it is needed for the lake venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "lake setup: creating virtualenv $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
stamp="$VENV/.lake-requirements.txt"
if ! cmp -s "$REQS" "$stamp"; then
  echo "lake setup: installing $REQS into $VENV (moto, pyarrow, deltalake, pyspark, duckdb; ~1.2 GB)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS" \
    || die "pip install -r $REQS failed: the S3 tests and the lake check cannot run"
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
    try:
        have = version(m.group(1))
    except PackageNotFoundError:
        have = None
    if have != m.group(3):
        bad.append(f"{m.group(1)}: want {m.group(3)}, have {have}")
import deltalake, duckdb, moto, pyarrow, pyspark  # noqa: F401  (must import)
if bad:
    sys.exit("; ".join(bad))
PY
[ -x "$VENV/bin/moto_server" ] || die "$VENV/bin/moto_server is missing (moto[server] not installed?)"

if command -v java >/dev/null 2>&1; then
  java_version=$(java -version 2>&1 | head -n 1)
else
  java_version="none (PySpark needs Java 17: apt-get install openjdk-17-jre-headless)"
fi
echo "lake setup: $VENV ready: $("$VENV/bin/python" -c 'import deltalake, duckdb, moto, pyarrow, pyspark; print(f"moto {moto.__version__}, pyarrow {pyarrow.__version__}, deltalake {deltalake.__version__}, pyspark {pyspark.__version__}, duckdb {duckdb.__version__}")'); java: $java_version"
echo "lake setup took $(( $(date +%s) - start ))s"
