#!/usr/bin/env bash
# Idle memory (issue #19): the whole portal — embedded SQLite, the local embedding model loaded,
# the OCR workers, the bundled plugins, a small demo clinic — at rest after start. Prints the
# server's VmRSS once /readyz reports the model ready, 10 s later, and after one knowledge search
# (which runs the model once).
#
#   bash bench/idle.sh [BINARY]        (default: the release build in $CARGO_TARGET_DIR)
#
# The model is found like bench/soak.sh finds it; without one the figure is without a model, and
# the output says so. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/cache/careport-target}
BIN=${1:-$TARGET/release/careport}
[ -x "$BIN" ] || { echo "no careport binary at $BIN (cargo build --release -p careport)" >&2; exit 1; }
while read -r var; do unset "$var"; done < <(env | sed -n 's/^\(CAREPORT__[A-Za-z0-9_]*\)=.*/\1/p')
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn
MODEL=""
for dir in "${CAREPORT_SOAK_MODEL_DIR:-}" "${CAREPORT_TEST_MODEL_DIR:-}" /var/cache/careport-ci-data/models/all-MiniLM-L6-v2 ./data/models/all-MiniLM-L6-v2; do
  if [ -n "$dir" ] && [ -f "$dir/model.safetensors" ]; then MODEL=$dir; break; fi
done
if [ -n "$MODEL" ]; then export CAREPORT__ML__LOCAL__MODEL_DIR="$MODEL"; else export CAREPORT__ML__EMBEDDING_PROVIDER=off; fi
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" seed-demo --admins 1 --clinicians 4 --patients 20 --patient-accounts 2 --appointments-per-patient 1 >"$WORK/seed.txt"
CAREPORT__HTTP__PORT=$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
rss() { echo $(( $(awk '/^VmRSS/ {print $2}' "/proc/$PID/status") / 1024 )); }
for _ in $(seq 1 300); do
  if curl -fsS "$BASE/readyz" 2>/dev/null | python3 -c 'import json,sys; c=json.load(sys.stdin)["components"]; sys.exit(0 if c.get("model",{}).get("status") in ("ok","disabled") else 1)' 2>/dev/null; then
    break
  fi
  sleep 0.2
done
echo "binary: $BIN; model: ${MODEL:-off}"
echo "ready: $(rss) MiB"
sleep 10
echo "at rest 10 s later: $(rss) MiB"
admin=$(awk '$1 == "admin" {print $2" "$3; exit}' "$WORK/seed.txt")
token=$(python3 - "$BASE" $admin <<'PY'
import json, sys, urllib.request
base, email, password = sys.argv[1:4]
req = urllib.request.Request(base + "/api/v1/auth/login", data=json.dumps({"email": email, "password": password}).encode(),
                             headers={"Content-Type": "application/json"}, method="POST")
print(json.load(urllib.request.urlopen(req))["access_token"])
PY
)
curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"query":"what does a biopsy show"}' "$BASE/api/v1/knowledge/search" || echo "(the search did not answer 200)"
sleep 2
echo "after one knowledge search: $(rss) MiB"
