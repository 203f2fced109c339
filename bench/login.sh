#!/usr/bin/env bash
# Logins per second with the configured argon2 parameters (config/default.toml [auth.argon2]:
# argon2id m=19456 KiB, t=2, p=1, OWASP's minimum), at 4 and 8 connections. Starts the release
# binary on a temp data dir (embedded mode) with the login throttle raised so the bench is never
# locked out, creates one verified patient with the CLI, runs wrk (bench/login.lua) on loopback,
# stops the server. A run with any non-200 response or socket error is not a valid result.
#
#   bash bench/login.sh [DURATION_SECONDS]     (needs: apt-get install -y wrk openssl)
#
# wrk and the server share this machine's 2 cores; each login is one argon2 hash on the
# blocking pool, so the number is CPU-bound by design. Note the load average printed below.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
DURATION=${1:-15}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p careport
BIN="$CARGO_TARGET_DIR/release/careport"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BENCH_EMAIL=bench@example.org
BENCH_PASSWORD=$(openssl rand -hex 12)
export BENCH_PASSWORD
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn
PID=
trap '[ -n "$PID" ] && { kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; }; rm -rf "$WORK"' EXIT

# The account, created before the server starts (a patient created by the CLI is verified).
printf '%s\n' "$BENCH_PASSWORD" | "$BIN" user create --email "$BENCH_EMAIL" --role patient --name Bench >/dev/null

CAREPORT__HTTP__PORT=$PORT \
  CAREPORT__AUTH__THROTTLE__ACCOUNT_MAX_FAILURES=1000000 \
  CAREPORT__AUTH__THROTTLE__IP_MAX_FAILURES=1000000 \
  "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/api/v1/auth/login"
# One login by hand: fail early, with the server's answer, if the credentials do not work.
code=$(curl -sS -o "$WORK/first.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "{\"email\":\"$BENCH_EMAIL\",\"password\":\"$BENCH_PASSWORD\"}" "$URL")
[ "$code" = 200 ] || { echo "first login: HTTP $code: $(cat "$WORK/first.json")" >&2; cat "$WORK/serve.log" >&2; exit 1; }

echo "load average before: $(uptime | sed 's/.*load average: //')"
# Warm up, then measure at 4 and at 8 connections.
wrk -t2 -c4 -d3s -s bench/login.lua "$URL" >/dev/null
invalid=0
for c in 4 8; do
  ( sleep $(( DURATION / 2 )); echo "load average during c=$c: $(uptime | sed 's/.*load average: //')" ) &
  wrk -t2 -c$c -d"${DURATION}s" --latency -s bench/login.lua "$URL" | tee "$WORK/wrk-$c.txt"
  wait $!
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk-$c.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk-$c.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk-$c.txt")
  bad=$(awk '/^non-200 responses:/ {print $3}' "$WORK/wrk-$c.txt")
  sock=$(awk '/^socket errors:/ {print $4+$6+$8+$10}' "$WORK/wrk-$c.txt")
  if [ "${bad:-1}" != 0 ] || [ "${sock:-1}" != 0 ]; then
    echo "INVALID c=$c: $bad non-200 responses, $sock socket errors" >&2
    invalid=1
  fi
  echo "RESULT logins/s c=$c: ${rps}, p50 ${p50}, p99 ${p99} (non-200: ${bad}, socket errors: ${sock})"
done
echo "load average after: $(uptime | sed 's/.*load average: //')"
exit $invalid
