#!/usr/bin/env bash
# The slow profile of the reliability suites (docs/reliability.md): 100 fault runs, 36 crash points, the
# bad-input catalogue and the secrets test, one after another, figures printed at the end of each.
# The fast profile of the same tests runs in `cargo test --workspace` (and so in .ci/run).
#
#   bash scripts/slow-suites.sh                 # everything
#   PP_FAULT_RUNS=300 bash scripts/slow-suites.sh fault_runs   # one suite, more runs
#
# Knobs: PP_FAULT_RUNS (default 100 here), PP_FAULT_SEED, PP_CRASH_SEED, PP_BAD_INPUT (only rows whose
# name contains it). Uses the same target directory and command as CI, so DuckDB is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/personio-pipeline/target}"
export PP_SLOW=1
filters=("$@")
if [ ${#filters[@]} -eq 0 ]; then
  filters=(fault_runs_end_exact sigkill_at_any_point bad_inputs_are_refused no_secret_or_token)
fi
# One test at a time: the suites time and kill child processes and share two cores.
log="${TMPDIR:-/tmp}/slow-suites.$$.log"
status=0
cargo test --workspace -- --nocapture --test-threads=1 "${filters[@]}" >"$log" 2>&1 || status=$?
grep -E '^(fault runs|crash points|bad inputs handled|secret hits|WRONG|INCONSISTENT|NOT HANDLED|not reached)|^test .* \.\.\. |^ *[0-9.]+s (ok|FAIL)' "$log" || true
echo "full output: $log (exit status $status)"
exit "$status"
