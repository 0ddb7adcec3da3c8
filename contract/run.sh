#!/usr/bin/env bash
# Contract check: start the sandbox (`small` company), crawl every endpoint it serves (v1 and v2, success and
# error responses) and validate each response against Personio's own OpenAPI files. See docs/contract.md.
#
# usage: bash contract/run.sh [--verbose] [--dump FILE]
#
# environment:
#   CONTRACT_SPEC_DIR  the official OpenAPI files (default ../shared/spec/personio-openapi beside the clone)
#   CONTRACT_SANDBOX   a binary that serves the sandbox: the CLI (`personio-pipeline`, run as `… sandbox`) or the
#                      sandbox example `serve`. Default: what `cargo test --workspace` built in $CARGO_TARGET_DIR
#                      (debug/personio-pipeline, else debug/examples/serve); else the example is built.
#   CONTRACT_VENV      virtualenv to create/use (default ~/.cache/personio-pipeline/contract-venv)
#   CARGO_TARGET_DIR   respected as usual
# Exit status: 0 when every response matches the spec or a documented erratum (contract/errata.yaml), 1 on a
# violation, 2 when the check cannot run (spec files missing, no sandbox, failed install): never skipped.
set -euo pipefail

CONTRACT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$CONTRACT_DIR")"
VENV="${CONTRACT_VENV:-$HOME/.cache/personio-pipeline/contract-venv}"
REQS="$CONTRACT_DIR/requirements.txt"
SPEC_DIR="${CONTRACT_SPEC_DIR:-$REPO_DIR/../shared/spec/personio-openapi}"
TARGET="${CARGO_TARGET_DIR:-$REPO_DIR/target}"

die() { echo "contract: ERROR: $*" >&2; exit 2; }

case "${1:-}" in -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;; esac

# --- 1. the reference files: never silently skipped --------------------------------------------------
for f in personio-personnel-data-api-oa3.yaml personio-auth-api.yaml common-components-v2.json \
         v2/credentials-service-api-v2.json v2/persons-service-api-v2.json v2/employment-contract-v2.json; do
  [ -f "$SPEC_DIR/$f" ] || die "missing $SPEC_DIR/$f: the contract check needs Personio's OpenAPI files in ../shared/spec/personio-openapi (beside the clone) or CONTRACT_SPEC_DIR"
done
SPEC_DIR="$(cd "$SPEC_DIR" && pwd)"

# --- 2. the Python side: a venv with the pinned validator --------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 not found; it is needed for the contract check"
if [ ! -x "$VENV/bin/python" ]; then
  echo "contract: creating virtualenv $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
stamp="$VENV/.contract-requirements.txt"
if ! cmp -s "$REQS" "$stamp"; then
  echo "contract: installing $REQS into $VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS" \
    || die "pip install -r $REQS failed: cannot run the contract check"
  cp "$REQS" "$stamp"
fi
"$VENV/bin/python" - "$REQS" <<'PY' || die "the virtualenv $VENV does not hold the pinned versions (delete it to reinstall)"
import re, sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s#;]+)", line)
    if not m:
        continue
    try:
        have = version(m.group(1))
    except PackageNotFoundError:
        have = None
    if have != m.group(2):
        bad.append(f"{m.group(1)}: want {m.group(2)}, have {have}")
import openapi_schema_validator, yaml  # noqa: F401  (must import)
if bad:
    sys.exit("; ".join(bad))
PY

# --- 3. the checker itself: planted responses it must flag (or tolerate) exactly ----------------------
"$VENV/bin/python" "$CONTRACT_DIR/check.py" --spec-dir "$SPEC_DIR" --self-test | tail -n 1
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "contract: ERROR: the checker's self-test failed (run check.py --self-test)" >&2; exit 1; }

# --- 4. the sandbox binary ----------------------------------------------------------------------------
# Prefer what `cargo test --workspace` already built (.ci/run): no second build, no DuckDB recompile.
sandbox=()
bin="${CONTRACT_SANDBOX:-}"
if [ -z "$bin" ]; then
  for cand in "$TARGET/debug/personio-pipeline" "$TARGET/debug/examples/serve"; do
    if [ -x "$cand" ]; then bin="$cand"; break; fi
  done
fi
if [ -z "$bin" ]; then
  command -v cargo >/dev/null 2>&1 || die "no sandbox binary in $TARGET/debug and no cargo to build one (set CONTRACT_SANDBOX)"
  echo "contract: building the sandbox example serve (CARGO_TARGET_DIR=$TARGET)"
  (cd "$REPO_DIR" && CARGO_TARGET_DIR="$TARGET" nice -n 10 cargo build -q -p personio-sandbox --example serve) \
    || die "cargo build -p personio-sandbox --example serve failed"
  bin="$TARGET/debug/examples/serve"
fi
[ -x "$bin" ] || die "CONTRACT_SANDBOX=$bin is not an executable"
case "$(basename "$bin")" in
  personio-pipeline*) sandbox=("$bin" sandbox) ;;
  *) sandbox=("$bin") ;;
esac
echo "contract: sandbox binary ${sandbox[*]}"

# --- 5. crawl and validate ----------------------------------------------------------------------------
exec "$VENV/bin/python" "$CONTRACT_DIR/check.py" --spec-dir "$SPEC_DIR" "$@" \
  --sandbox "${sandbox[@]}" --preset small --seed 42 --port 0 --host 127.0.0.1
