#!/usr/bin/env bash
# Start the real binary on PostgreSQL + Redis (a fresh database), wait for /readyz to answer
# 200, stop it with SIGTERM and expect a clean exit.
#   .ci/smoke.sh BINARY PG_ADMIN_URL REDIS_URL
set -euo pipefail
BIN=$1 PG_ADMIN=$2 REDIS_URL=$3
DB=careport_smoke
psql "$PG_ADMIN" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
set -a
# shellcheck disable=SC1090
source <("$BIN" keys generate)
set +a
CAREPORT__DATA_DIR="$WORK/data" CAREPORT__HTTP__PORT=$PORT \
CAREPORT__DATABASE__URL="${PG_ADMIN%/*}/$DB" CAREPORT__REDIS__URL="$REDIS_URL" \
  "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ok=""
for _ in $(seq 1 60); do
  if body=$(curl -fsS "http://127.0.0.1:$PORT/readyz" 2>/dev/null); then ok=1; break; fi
  sleep 0.5
done
if [ -z "$ok" ]; then
  echo "FAIL: /readyz never answered 200"; cat "$WORK/serve.log"; exit 1
fi
echo "readyz: $body"
echo "$body" | grep -q '"store":{"status":"ok","detail":"postgres"}'
echo "$body" | grep -q '"redis":{"status":"ok"'
kill -TERM "$PID"
wait "$PID"
echo "smoke: ok (clean exit after SIGTERM)"
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
