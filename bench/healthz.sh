#!/usr/bin/env bash
# /healthz throughput and latency at 64 connections: the ceiling every API endpoint is
# measured against. Starts the release binary on a temp data dir (embedded mode), runs wrk on
# loopback, stops the server.
#
#   bash bench/healthz.sh [DURATION_SECONDS]     (needs: apt-get install -y wrk)
#
# wrk and the server share this machine's 2 cores; the number is a same-machine ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
DURATION=${1:-20}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p careport
BIN="$CARGO_TARGET_DIR/release/careport"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CAREPORT__DATA_DIR="$WORK/data" CAREPORT__HTTP__PORT=$PORT CAREPORT__LOG__LEVEL=warn \
  "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
# Warm up, then measure.
wrk -t2 -c64 -d3s "http://127.0.0.1:$PORT/healthz" >/dev/null
wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/healthz" | tee "$WORK/wrk.txt"
rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")
echo "RESULT /healthz c=64: ${rps} req/s, p99 ${p99}"
