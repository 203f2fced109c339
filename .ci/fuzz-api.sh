#!/usr/bin/env bash
# Fuzz the API from its contract: schemathesis (PyPI, pinned) generates requests from
# /api/openapi.json and holds every answer to the document — no 5xx, no undocumented status,
# no answer that breaks its documented content type or schema, no request over 10 s. One pass
# per role (anonymous, patient, doctor, nurse, administrator), each with a fresh token, against
# the real binary on embedded SQLite with a demo clinic and the local model.
#
#   bash .ci/fuzz-api.sh BINARY [SECONDS_PER_PASS]
#
# Routes that would end the pass's own session or change its account (logout, sessions, password,
# MFA) are left out of the signed-in passes, and the administrator's pass (which can deactivate
# accounts) runs last. Fails when a check fails in any pass, when the server panicked, or when
# fewer than MIN_CASES cases ran in all. A pass that schemathesis itself ends with an internal
# error (no check failing) is tried three times, then counted with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?the careport binary}
PER_PASS=${2:-40}
MIN_CASES=${MIN_CASES:-5000}
VERSION=4.32.5
DATA=${CAREPORT_CI_MODEL_DATA:-/var/cache/careport-ci-data}
VENV="$DATA/schemathesis-$VERSION"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn
if [ -n "${CAREPORT_TEST_MODEL_DIR:-}" ]; then
  export CAREPORT__ML__LOCAL__MODEL_DIR="$CAREPORT_TEST_MODEL_DIR"
fi
"$BIN" seed-demo --admins 1 --clinicians 4 --patients 10 --patient-accounts 2 --appointments-per-patient 2 >"$WORK/seed.txt"
CAREPORT__HTTP__PORT=$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
BASE="http://127.0.0.1:$PORT"
account() { awk -v r="$1" -v p="$2" '$1 == r && $2 ~ p {print $2" "$3; exit}' "$WORK/seed.txt"; }
token() {
  set -- $1
  curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" "$BASE/api/v1/auth/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
total=0
failed=0
# The first `lines` lines of a report's section, each cut to 300 characters. Not `sed | head`:
# head closing the pipe early kills sed with SIGPIPE, which pipefail turns into the script's exit.
excerpt() {
  local file=$1 range=$2 lines=$3
  sed -n "$range" "$file" | cut -c1-300 > "$file.excerpt" || true
  awk -v n="$lines" 'NR <= n' "$file.excerpt"
}
pass() {
  local name=$1 header=$2
  local args=(run "$BASE/api/openapi.json" --max-time "$PER_PASS" --workers 2 --request-timeout 10
    --phases examples,coverage,fuzzing --suppress-health-check all
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
    --seed 20261205)
  if [ -n "$header" ]; then
    args+=(-H "$header" --exclude-path-regex '^/api/v1/auth/(logout|sessions|password|mfa)')
  fi
  echo "--- pass: $name"
  local rc=0 try
  for try in 1 2 3; do
    rc=0
    # From a scratch folder of its own: schemathesis keeps a cache where it runs (not in the
    # clone), and a try that ended on an internal error must not start from that one's cache.
    mkdir -p "$WORK/run-$name-$try"
    (cd "$WORK/run-$name-$try" && "$VENV/bin/schemathesis" "${args[@]}") >"$WORK/$name.txt" 2>&1 || rc=$?
    # A run whose only trouble is schemathesis's own runtime error (a hypothesis internal that
    # strikes now and then), with no check failing, is run again, up to twice; a failing check
    # never is.
    if [ "$rc" -ne 0 ] && ! grep -q '^Failures:' "$WORK/$name.txt" && grep -q 'Runtime Error' "$WORK/$name.txt" && [ "$try" != 3 ]; then
      echo "schemathesis stopped on an internal error, not on a check; running the pass again"
      excerpt "$WORK/$name.txt" '/=== ERRORS ===/,/=== /p' 15
      continue
    fi
    break
  done
  local n
  n=$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$WORK/$name.txt" | tail -n1)
  total=$((total + ${n:-0}))
  excerpt "$WORK/$name.txt" '/=== SUMMARY ===/,$p' 60
  if [ "$rc" -ne 0 ] && ! grep -q '^Failures:' "$WORK/$name.txt" && grep -q 'Runtime Error' "$WORK/$name.txt" && [ "${n:-0}" -gt 0 ]; then
    # Three tries, each ended by schemathesis's own error (a KeyError inside its coverage
    # phase, seen on 2026-12-05), none by a check: every case it did send passed every check.
    # That is a fault of the tool, not a finding about careport; the pass counts its cases and
    # says so loudly, and MIN_CASES still bounds how much must have run.
    echo "WARNING: the $name pass ended on schemathesis's own error three times; its ${n} cases passed every check"
    return
  fi
  if [ "$rc" -ne 0 ]; then
    failed=1
    excerpt "$WORK/$name.txt" '/=== FAILURES ===/,/=== SUMMARY ===/p' 200
    excerpt "$WORK/$name.txt" '/=== ERRORS ===/,/=== /p' 40
  fi
}
pass anonymous ""
pass patient "Authorization: Bearer $(token "$(account patient .)")"
pass doctor "Authorization: Bearer $(token "$(account clinician doctor)")"
pass nurse "Authorization: Bearer $(token "$(account clinician nurse)")"
pass admin "Authorization: Bearer $(token "$(account admin .)")"
if grep -q "panicked" "$WORK/serve.log"; then
  echo "the server panicked:"; grep -n "panicked" "$WORK/serve.log" | head; failed=1
fi
echo "fuzzing: $total cases in all"
if [ "$total" -lt "$MIN_CASES" ]; then
  echo "fewer than $MIN_CASES cases ran"; failed=1
fi
exit $failed
