#!/usr/bin/env bash
# Server CPU per audited patient read for one release binary (an A/B helper for #19): run it on a
# store seeded once, warm up 3 s, then wrk 12 s at 64 connections, and divide the server's CPU time
# (utime + stime from /proc) by the requests answered. Alternate two binaries several times:
#
#   export CAREPORT__DATA_DIR=/tmp/ab/data CAREPORT__LOG__LEVEL=warn CAREPORT__ML__EMBEDDING_PROVIDER=off
#   A=/path/to/careport-a B=/path/to/careport-b
#   "$A" seed-demo --admins 1 --clinicians 20 --patients 10000 --patient-accounts 0 \
#       --appointments-per-patient 0 > seed.txt       # once, in an empty data dir
#   awk '$2 ~ /^doctor/ {print $2" "$3; exit}' seed.txt > doc.txt
#   for b in "$A" "$B" "$A" "$B"; do bash bench/ab-cpu.sh "$b"; done
#
# Runs in the current directory (doc.txt; ids.txt is made on the first run).
set -euo pipefail
LUA=$(cd "$(dirname "$0")" && pwd)/patients.lua
BIN=$1; PORT=18555
CAREPORT__HTTP__PORT=$PORT $BIN serve > serve.log 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:$PORT/readyz >/dev/null 2>&1 && break; sleep 0.1; done
read EMAIL PW < doc.txt
TOKEN=$(curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$EMAIL\",\"password\":\"$PW\"}" http://127.0.0.1:$PORT/api/v1/auth/login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
[ -f ids.txt ] || curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/patients?limit=200" | python3 -c 'import json,sys; [print(p["id"]) for p in json.load(sys.stdin)["items"]]' > ids.txt
BENCH_TOKEN=$TOKEN BENCH_IDS=ids.txt wrk -t2 -c64 -d3s -s "$LUA" http://127.0.0.1:$PORT >/dev/null
t0=$(awk '{print $14+$15}' /proc/$PID/stat)
out=$(BENCH_TOKEN=$TOKEN BENCH_IDS=ids.txt wrk -t2 -c64 -d12s -s "$LUA" http://127.0.0.1:$PORT)
t1=$(awk '{print $14+$15}' /proc/$PID/stat)
n=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
python3 -c "print(f'$(basename $BIN): {$rps:.0f} req/s, server CPU {($t1-$t0)/100:.2f} s for $n requests = {($t1-$t0)*10000/$n:.1f} us/request')"
kill $PID; wait $PID 2>/dev/null || true
