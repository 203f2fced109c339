#!/usr/bin/env bash
# The vault's throughput and memory: upload + download MiB/s of a 16 MiB and a 200 MiB file,
# and the server's resident memory during a 1 GiB upload and download (its growth over idle).
# Starts the release binary on a temp data dir (embedded mode: SQLite, the local directory), or
# with `s3` on the moto server of .ci/start-s3.sh; creates a doctor with the CLI, logs in, opens
# a patient record, then times each transfer with curl on loopback (streaming both ways: curl
# -T reads the file as it sends). Every download is compared with its upload (cmp).
#
#   bash bench/vault.sh [local|s3] [RUNS]      (needs: curl; s3 also: bash .ci/start-s3.sh)
#   BENCH_DISCARD=1 bash bench/vault.sh …      downloads of the 16 and 200 MiB files go to
#                                             /dev/null (no compare): the server's side alone
#
# MiB/s = file size / curl's total time for the request. The Python portal we replace reads
# each file whole into memory and managed about 70 MiB/s on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
BACKEND=${1:-local}
RUNS=${2:-3}
cargo build --release -q -p careport
BIN="$CARGO_TARGET_DIR/release/careport"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
EMAIL=bench-doctor@example.org
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn CAREPORT__VAULT__MAX_UPLOAD_MIB=2048
if [ "$BACKEND" = s3 ]; then
  bash .ci/start-s3.sh >/dev/null
  export CAREPORT__STORAGE__BACKEND=s3 CAREPORT__STORAGE__S3__BUCKET=careport-test \
    CAREPORT__STORAGE__S3__ENDPOINT=http://127.0.0.1:9000 CAREPORT__STORAGE__S3__ALLOW_HTTP=true \
    CAREPORT__STORAGE__S3__ACCESS_KEY_ID=testing CAREPORT__STORAGE__S3__SECRET_ACCESS_KEY=testing \
    CAREPORT__STORAGE__S3__PREFIX="bench-$(date +%s)/"
fi
PID=
SAMPLER=
trap '[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null; [ -n "$PID" ] && { kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; }; rm -rf "$WORK"' EXIT

printf '%s\n' "$PASSWORD" | "$BIN" user create --email "$EMAIL" --role clinician --staff-role doctor \
  --department oncology --name Bench >/dev/null
CAREPORT__HTTP__PORT=$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT/api/v1"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
TOKEN=$(curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" \
  "$BASE/auth/login" | json access_token)
PATIENT=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"full_name":"Bench Patient"}' "$BASE/patients" | json id)

# Files: a PDF header then random bytes (incompressible; every run's content differs, so no
# upload is a duplicate).
make_file() { { printf '%%PDF-1.7\n'; head -c $(( $2 * 1024 * 1024 - 9 )) /dev/urandom; } > "$1"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }

upload() {  # file → "seconds record_id"
  curl -fsS -X POST -T "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/pdf' \
    -w '%{time_total} ' -o "$WORK/up.json" "$BASE/patients/$PATIENT/records?record_type=laboratory-results&title=bench"
  json id < "$WORK/up.json"
}
download() {  # record, out file → seconds
  curl -fsS -H "Authorization: Bearer $TOKEN" -w '%{time_total}' -o "$2" "$BASE/records/$1/content"
}
rate() { python3 -c "print(f'{$1 / $2:.0f}')"; }

echo "backend: $BACKEND; load average before: $(uptime | sed 's/.*load average: //')"
for mib in 16 200; do
  ups=(); downs=()
  for run in $(seq 1 "$RUNS"); do
    make_file "$WORK/in.pdf" "$mib"
    read -r up_s id < <(upload "$WORK/in.pdf")
    if [ -n "${BENCH_DISCARD:-}" ]; then
      down_s=$(download "$id" /dev/null)
    else
      down_s=$(download "$id" "$WORK/out.pdf")
      cmp -s "$WORK/in.pdf" "$WORK/out.pdf" || { echo "MISMATCH: the download differs from the upload" >&2; exit 1; }
    fi
    ups+=("$(rate "$mib" "$up_s")"); downs+=("$(rate "$mib" "$down_s")")
    echo "  ${mib} MiB run $run: upload ${up_s}s, download ${down_s}s"
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "RESULT $BACKEND ${mib} MiB: upload $(med "${ups[@]}") MiB/s, download $(med "${downs[@]}") MiB/s (median of $RUNS: up ${ups[*]}, down ${downs[*]})"
done

# Memory: sample the server's RSS every 20 ms through a 1 GiB upload and its download.
make_file "$WORK/big.pdf" 1024
sleep 1
IDLE=$(rss_kib)
( peak=0; while kill -0 $PID 2>/dev/null; do r=$(rss_kib); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$WORK/peak"; sleep 0.02; done ) &
SAMPLER=$!
read -r up_s id < <(upload "$WORK/big.pdf")
down_s=$(download "$id" "$WORK/big.out")
sleep 0.2
kill $SAMPLER 2>/dev/null || true; SAMPLER=
cmp -s "$WORK/big.pdf" "$WORK/big.out" || { echo "MISMATCH on the 1 GiB file" >&2; exit 1; }
PEAK=$(cat "$WORK/peak")
echo "RESULT $BACKEND 1 GiB: upload $(rate 1024 "$up_s") MiB/s, download $(rate 1024 "$down_s") MiB/s; RSS idle $(( IDLE / 1024 )) MiB, peak $(( PEAK / 1024 )) MiB, growth $(( (PEAK - IDLE) / 1024 )) MiB (limit 64 MiB)"
[ $(( (PEAK - IDLE) / 1024 )) -lt 64 ] || { echo "OVER: RSS grew by 64 MiB or more" >&2; exit 1; }
