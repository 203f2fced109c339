#!/usr/bin/env bash
# An S3 server for the object-storage tests (actors/store/src/objects): moto on 127.0.0.1:9000
# with the bucket `careport-test`. Idempotent: installs moto[server] only if missing, starts it
# only if the port does not answer, and creating an existing bucket is harmless.
#
#   bash .ci/start-s3.sh
#   CAREPORT_TEST_S3_ENDPOINT=http://127.0.0.1:9000 cargo test -p careport-store --lib objects
#
# moto keeps everything in memory: a restart forgets the bucket, so run this again after one.
set -euo pipefail

HOST=127.0.0.1
PORT=${CAREPORT_CI_S3_PORT:-9000}
BUCKET=${CAREPORT_TEST_S3_BUCKET:-careport-test}
ENDPOINT="http://$HOST:$PORT"
LOG=/tmp/careport-ci-moto.log
# The python on PATH (pyenv's when there is one), the same for pip and for running the server:
# `python3 -m moto.server` needs no shim rehash after a fresh install.
PY=${CAREPORT_CI_PYTHON:-python3}

answers() { curl -s -o /dev/null --max-time 2 "$ENDPOINT/moto-api/" ; }

if ! answers; then
  if ! "$PY" -c "import moto.server, flask" 2>/dev/null; then
    "$PY" -m pip install --quiet 'moto[server]'
  fi
  # setsid: the server outlives this script and is not killed with the caller's process group.
  setsid "$PY" -m moto.server -H "$HOST" -p "$PORT" >>"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do answers && break; sleep 0.5; done
  answers || { echo "moto did not start on $ENDPOINT; see $LOG" >&2; tail -n 20 "$LOG" >&2; exit 1; }
fi

# moto accepts unsigned bucket creation; 200 when created, 409 when it already exists.
status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$ENDPOINT/$BUCKET")
case "$status" in
  200|409) echo "s3: $ENDPOINT/$BUCKET ready (moto, log in $LOG)" ;;
  *) echo "s3: creating bucket $BUCKET at $ENDPOINT answered $status" >&2; exit 1 ;;
esac
