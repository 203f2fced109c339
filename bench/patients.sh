#!/usr/bin/env bash
# Authenticated patient reads with 10,000 patients loaded: wrk at 64 connections on
# `GET /api/v1/patients/{id}` as a doctor rotating over their assigned patients (200), and on a
# patient of another doctor (denied: 404), measured in the same run as `/healthz`, on the
# embedded SQLite store or on PostgreSQL. Each read is authorized by the Datalog policies
# (store facts fetched per request) and written to the audit trail before it answers.
#
#   bash bench/patients.sh [sqlite|postgres] [DURATION_SECONDS]
#     postgres: CAREPORT_BENCH_PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres);
#     a database careport_bench is dropped and created.
#
# On PostgreSQL the Python stack we replace (bench/peer/) answers the same reads in the same run,
# and the ratios careport / peer are printed. For every run it also prints where the machine's
# CPU went per request (bench/cpu.py): the server under test, PostgreSQL, and the rest.
#
# Needs wrk, curl, python3. wrk and the server share this machine's 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
BACKEND=${1:-sqlite}
DURATION=${2:-15}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
# BENCH_BIN: measure another build (an A/B comparison) instead of building this checkout's.
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release -q -p careport
  BIN="$CARGO_TARGET_DIR/release/careport"
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn
if [ "$BACKEND" = postgres ]; then
  ADMIN=${CAREPORT_BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
  psql "$ADMIN" -qc "DROP DATABASE IF EXISTS careport_bench WITH (FORCE)" -c "CREATE DATABASE careport_bench"
  export CAREPORT__DATABASE__URL="${ADMIN%/*}/careport_bench"
  eval "$("$BIN" keys generate | sed 's/^/export /')"
fi
PID=
trap '[ -n "$PID" ] && { kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; }; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"' EXIT

echo "seeding 10,000 patients ($BACKEND)…"
start=$(date +%s)
"$BIN" seed-demo --admins 1 --clinicians 20 --patients 10000 --patient-accounts 0 \
  --appointments-per-patient 0 >"$WORK/seed.txt"
echo "seeded in $(( $(date +%s) - start )) s"
# Two doctors' generated credentials (printed once by seed-demo).
mapfile -t DOCS < <(awk '$2 ~ /^doctor/ {print $2" "$3}' "$WORK/seed.txt" | head -n2)

CAREPORT__HTTP__PORT=$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
login() {
  curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" \
    "http://127.0.0.1:$PORT/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ids_of() {  # every patient the token may list, one id per line
  python3 - "$PORT" "$1" <<'PY'
import json, sys, urllib.request
port, token, cursor = sys.argv[1], sys.argv[2], None
while True:
    url = f"http://127.0.0.1:{port}/api/v1/patients?limit=200" + (f"&cursor={cursor}" if cursor else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(req))
    for p in page["items"]:
        print(p["id"])
    cursor = page["next_cursor"]
    if not cursor:
        break
PY
}
TOKEN=$(login ${DOCS[0]})
OTHER=$(login ${DOCS[1]})
ids_of "$TOKEN" >"$WORK/ids.txt"
ids_of "$OTHER" >"$WORK/other.txt"
head -n1 "$WORK/other.txt" >"$WORK/denied-ids.txt"
echo "doctor has $(wc -l <"$WORK/ids.txt") assigned patients; the other doctor $(wc -l <"$WORK/other.txt")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$PORT/api/v1/patients/$(head -n1 "$WORK/ids.txt")")
[ "$code" = 200 ] || { echo "first read: HTTP $code" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$PORT/api/v1/patients/$(cat "$WORK/denied-ids.txt")")
[ "$code" = 404 ] || { echo "denied read: HTTP $code, expected 404" >&2; exit 1; }

run() {  # name, the server's pid, then wrk arguments
  local name=$1 server=$2; shift 2
  local before after
  before=$(python3 bench/cpu.py "$server")
  wrk -t2 -c64 -d"${DURATION}s" --latency "$@" >"$WORK/$name.txt" || { cat "$WORK/$name.txt" >&2; exit 1; }
  after=$(python3 bench/cpu.py "$server")
  # CPU per request in each part (clock ticks are 10 ms): server, PostgreSQL, the rest.
  awk -v name="$name" -v b="$before" -v a="$after" '/requests in/ {
      split(b, x, " "); split(a, y, " "); n = $1; tick = 1e4 / n
      printf "%s %.0f %.0f %.0f\n", name, (y[1]-x[1])*tick, (y[2]-x[2])*tick, ((y[3]-x[3])-(y[1]-x[1])-(y[2]-x[2]))*tick
    }' "$WORK/$name.txt" >>"$WORK/cpu.txt"
  local rps p50 p99 non2xx sock
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/$name.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/$name.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/$name.txt")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$WORK/$name.txt")
  sock=$(awk '/^  Socket errors:/ {print $4+$6+$8+$10}' "$WORK/$name.txt")
  echo "$name ${rps} ${p50} ${p99} ${non2xx:-0} ${sock:-0}" >>"$WORK/results.txt"
}
wrk -t2 -c64 -d3s "http://127.0.0.1:$PORT/healthz" >/dev/null
echo "load average before: $(uptime | sed 's/.*load average: //')"
run healthz "$PID" "http://127.0.0.1:$PORT/healthz"
export BENCH_TOKEN=$TOKEN BENCH_IDS="$WORK/ids.txt"
run allowed "$PID" -s bench/patients.lua "http://127.0.0.1:$PORT"
export BENCH_IDS="$WORK/denied-ids.txt"
run denied "$PID" -s bench/patients.lua "http://127.0.0.1:$PORT"
# For comparison (BENCH_EXTRA=1): an authorized read without audit — the doctor's own directory
# entry (`GET /api/v1/clinicians/{id}`: policy decision, four small queries, no audit event).
if [ -n "${BENCH_EXTRA:-}" ]; then
  ME=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/auth/me" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  run unaudited "$PID" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/clinicians/$ME"
fi
# The Python stack we replace, side by side in the same run (PostgreSQL only: it reads careport's
# tables there): FastAPI + SQLAlchemy (asyncpg) + a JWT check + the same role rule + one audit
# row per read (bench/peer/README.md). Same ids, same wrk, same machine. BENCH_NO_PEER=1 skips it.
if [ "$BACKEND" = postgres ] && [ -z "${BENCH_NO_PEER:-}" ]; then
  bash bench/peer/setup.sh >/dev/null
  PEER_PY=${PEER_VENV:-/var/cache/careport-ci-data/peer-venv}/bin/python
  PEER_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  export PEER_JWT_SECRET
  PEER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  bash bench/peer/serve.sh "$PEER_PORT" "$CAREPORT__DATABASE__URL" >"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  trap '[ -n "$PID" ] && { kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; }; kill $PEER_PID 2>/dev/null || true; wait $PEER_PID 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"' EXIT
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PEER_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  DOC_ID=$(psql "$CAREPORT__DATABASE__URL" -tAc "SELECT id FROM users WHERE email = '${DOCS[0]%% *}'")
  PEER_TOKEN=$("$PEER_PY" bench/peer/mint_token.py "$DOC_ID" doctor)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PEER_TOKEN" \
    "http://127.0.0.1:$PEER_PORT/api/v1/patients/$(head -n1 "$WORK/ids.txt")")
  [ "$code" = 200 ] || { echo "peer, first read: HTTP $code" >&2; exit 1; }
  export BENCH_TOKEN=$PEER_TOKEN BENCH_IDS="$WORK/ids.txt"
  run peer_allowed "$PEER_PID" -s bench/patients.lua "http://127.0.0.1:$PEER_PORT"
  export BENCH_IDS="$WORK/denied-ids.txt"
  run peer_denied "$PEER_PID" -s bench/patients.lua "http://127.0.0.1:$PEER_PORT"
fi
echo "load average after: $(uptime | sed 's/.*load average: //')"
base=$(awk '$1 == "healthz" {print $2}' "$WORK/results.txt")
invalid=0
while read -r name rps p50 p99 non2xx sock; do
  frac=$(python3 -c "print(f'{float($rps)/float($base):.2f}')")
  echo "RESULT $BACKEND $name: ${rps} req/s (${frac} of /healthz), p50 ${p50}, p99 ${p99}; non-2xx ${non2xx}, socket errors ${sock}"
  if [ "$name" != denied ] && [ "$name" != peer_denied ] && [ "$non2xx" != 0 ]; then invalid=1; fi
  if [ "$sock" != 0 ]; then invalid=1; fi
done <"$WORK/results.txt"
# Where the machine's CPU went, per request answered (µs): the server under test, PostgreSQL,
# and the rest (wrk, the kernel's threads, the background). Two cores give 2,000,000 µs a second.
while read -r name server pg rest; do
  echo "CPU $BACKEND $name: server ${server} us, postgres ${pg} us, rest ${rest} us per request"
done <"$WORK/cpu.txt"
if grep -q '^peer_allowed ' "$WORK/results.txt"; then
  for pair in "allowed peer_allowed" "denied peer_denied"; do
    set -- $pair
    a=$(awk -v n="$1" '$1 == n {print $2}' "$WORK/results.txt")
    b=$(awk -v n="$2" '$1 == n {print $2}' "$WORK/results.txt")
    echo "RATIO $BACKEND $1: careport / Python peer = $(python3 -c "print(f'{float($a)/float($b):.1f}')")x"
  done
fi
[ $invalid = 0 ] || echo "INVALID: unexpected statuses or socket errors" >&2
exit $invalid
