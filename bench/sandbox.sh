# Sourced by bench/profile.sh and bench/ab.sh: `start_sandbox BIN PRESET DIR` starts `BIN sandbox` on a free
# port (its output in DIR/sandbox.out), waits for its company, renders the v2 records (`/_sandbox/warm`),
# kills it on exit, and exports the pipeline's settings for it with client-side pacing off. Sets `sb` (its
# pid) and `base` (its URL).
start_sandbox() {
  "$1" sandbox --preset "$2" --port 0 >"$3/sandbox.out" 2>&1 &
  sb=$!
  trap 'kill $sb 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    grep -q '^  company:' "$3/sandbox.out" 2>/dev/null && break
    sleep 0.5
  done
  base="$(sed -n 's/^Personio sandbox listening on //p' "$3/sandbox.out")"
  [ -n "$base" ] || { cat "$3/sandbox.out" >&2; exit 1; }
  curl -s -X POST "$base/_sandbox/warm" >/dev/null
  export SOURCES__PERSONIO__BASE_URL="$base" SOURCES__PERSONIO__CLIENT_ID=papi-sandbox-client \
    SOURCES__PERSONIO__CLIENT_SECRET=papi-sandbox-secret SOURCES__PERSONIO__REQUESTS_PER_MINUTE=0 \
    SOURCES__PERSONIO__EMPLOYEES_REQUESTS_PER_MINUTE=0 SOURCES__PERSONIO__AUTH_REQUESTS_PER_MINUTE=0
}
