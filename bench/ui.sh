#!/usr/bin/env bash
# The web UI's server rendering: the patient dashboard (`GET /home`, HTML: the start-page
# operation with its audit event, the menu asked of the policies, recent records and
# conversations, the template) at 64 connections with a session cookie, beside `/healthz` in
# the same run. Release binary, embedded mode, demo data (one patient with appointments).
#
#   bash bench/ui.sh [DURATION_SECONDS]     (needs: apt-get install -y wrk)
#
# wrk and the server share this machine's 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
DURATION=${1:-15}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p careport
BIN="$CARGO_TARGET_DIR/release/careport"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn CAREPORT__ML__EMBEDDING_PROVIDER=off
"$BIN" seed-demo --admins 1 --clinicians 3 --patients 20 --patient-accounts 1 --appointments-per-patient 3 >"$WORK/seed.txt"
PATIENT=$(awk '$1 == "patient" {print $2" "$3; exit}' "$WORK/seed.txt")
CAREPORT__HTTP__PORT=$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
set -- $PATIENT
# The session cookie as a browser holds it (the access token lives 15 minutes: enough).
ACCESS=$(curl -fsS -c - -H 'Content-Type: application/json' \
  -d "{\"email\":\"$1\",\"password\":\"$2\",\"use_cookie\":true}" "http://127.0.0.1:$PORT/api/v1/auth/login" \
  | awk '$6 == "__Host-careport_access" {print $7}')
[ -n "$ACCESS" ] || { echo "no session cookie" >&2; exit 1; }
COOKIE="Cookie: __Host-careport_access=$ACCESS"
code=$(curl -s -o "$WORK/home.html" -w '%{http_code}' -H "$COOKIE" "http://127.0.0.1:$PORT/home")
[ "$code" = 200 ] || { echo "GET /home answered $code" >&2; exit 1; }
echo "page: $(wc -c <"$WORK/home.html") bytes"
wrk -t2 -c64 -d3s -H "$COOKIE" "http://127.0.0.1:$PORT/home" >/dev/null
wrk -t2 -c64 -d"${DURATION}s" --latency -H "$COOKIE" "http://127.0.0.1:$PORT/home" | tee "$WORK/home.txt"
wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/healthz" | tee "$WORK/healthz.txt"
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
p() { awk -v q="$2" '$1 == q {print $2}' "$1"; }
non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/home.txt")
echo "RESULT GET /home (patient) c=64: $(rps "$WORK/home.txt") req/s, p50 $(p "$WORK/home.txt" 50%), p99 $(p "$WORK/home.txt" 99%), non-2xx ${non2xx:-0}"
echo "RESULT /healthz c=64 (same run): $(rps "$WORK/healthz.txt") req/s"
python3 -c "print('ratio: %.3f of /healthz' % ($(rps "$WORK/home.txt") / $(rps "$WORK/healthz.txt")))"
